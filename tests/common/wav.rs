//! Stems in and bounces out for the render tests: a mono 32-bit float WAV written from samples,
//! and `faderbridge render` of a session text read back as samples.
//!
//! Include it with `#[path = "common/wav.rs"] mod wav;`.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;

/// Write `samples` to `path` as a mono 32-bit float WAV at `rate`.
pub fn write_mono(path: &Path, rate: u32, samples: impl IntoIterator<Item = f32>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for v in samples {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
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
