//! Stems in and bounces out for the render tests: 32-bit float WAVs written from samples, WAVs
//! read back as channels, and `faderbridge render` of a session text read back as samples.
//!
//! Include it with `#[path = "common/wav.rs"] mod wav;`.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;

/// Write `chans` (one slice per channel, equal lengths) to `path` as a 32-bit float WAV at
/// `rate`.
pub fn write(path: &Path, rate: u32, chans: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for i in 0..chans[0].len() {
        for c in chans {
            w.write_sample(c[i]).expect("write");
        }
    }
    w.finalize().expect("finalize");
}

/// Write `samples` to `path` as a mono 32-bit float WAV at `rate`.
pub fn write_mono(path: &Path, rate: u32, samples: impl IntoIterator<Item = f32>) {
    write(path, rate, &[samples.into_iter().collect()]);
}

/// A WAV's format and its channels (integer formats scaled to ±1).
pub fn read_spec(path: &Path) -> (hound::WavSpec, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let n = spec.channels as usize;
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("sample") as f32 / scale)
                .collect()
        }
    };
    let chans = (0..n)
        .map(|c| samples.iter().skip(c).step_by(n).copied().collect())
        .collect();
    (spec, chans)
}

/// A WAV's channels ([`read_spec`] without the format).
pub fn read(path: &Path) -> Vec<Vec<f32>> {
    read_spec(path).1
}

/// `faderbridge render` (f32, from the start to `end_s` seconds) of the session text `yaml`,
/// written to `DIR/NAME.yaml` (its stems are found next to it) and bounced to `DIR/NAME.wav`;
/// the bounce's samples, interleaved.
pub fn render_text(dir: &Path, name: &str, yaml: &str, end_s: f64) -> Vec<f32> {
    let sp = dir.join(format!("{name}.yaml"));
    std::fs::write(&sp, yaml).expect("session");
    let out = dir.join(format!("{name}.wav"));
    faderbridge::render::render(
        &sp,
        &faderbridge::render::RenderOptions {
            out: out.clone(),
            start_s: None,
            end_s: Some(end_s),
            format: faderbridge::media::WavFormat::F32,
            progress: false,
            automation: None,
        },
    )
    .expect("render");
    hound::WavReader::open(&out)
        .expect("open")
        .samples::<f32>()
        .map(|s| s.expect("sample"))
        .collect()
}
