//! `faderbridge render` end to end: the real binary on stems written by the test.
//! Null test (neutral console = the stems' sum), lengths, formats, the report, and failures
//! that must leave no file behind.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/wav.rs"]
mod wav;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_faderbridge")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-render-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic noise-like test material.
fn signal(seed: u32, n: usize, amp: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            amp * ((x as f32 / u32::MAX as f32) * 2.0 - 1.0)
        })
        .collect()
}

#[test]
fn neutral_console_renders_the_exact_sum_of_its_stems() {
    let dir = tempdir("null");
    let a_l = signal(1, 48000, 0.3);
    let a_r = signal(2, 48000, 0.3);
    let b = signal(3, 28800, 0.3); // 0.6 s: shorter, silence after its end
    let c = signal(4, 40000, 0.2);
    wav::write(&dir.join("a.wav"), 48000, &[a_l.clone(), a_r.clone()]);
    wav::write(&dir.join("b.wav"), 48000, std::slice::from_ref(&b));
    wav::write(&dir.join("c.wav"), 48000, std::slice::from_ref(&c));
    std::fs::write(
        dir.join("s.yaml"),
        "version: 1
engine: { sample_rate: 48000, block: 64 }
channels:
  - { name: a, source: { file: a.wav } }
  - { name: b, source: { file: b.wav }, pan: -1 }
  - { name: c, source: { file: c.wav }, pan: 1 }
",
    )
    .unwrap();
    let out = dir.join("mix.wav");
    let res = Command::new(bin())
        .args(["render", dir.join("s.yaml").to_str().unwrap(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = String::from_utf8_lossy(&res.stdout);
    assert!(
        report.contains("LUFS") && report.contains("dBTP"),
        "{report}"
    );
    let (spec, mix) = wav::read_spec(&out);
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_format, hound::SampleFormat::Float);
    assert_eq!(mix[0].len(), 48000, "length = longest stem");
    let mut worst = 0.0f32;
    for i in 0..48000 {
        let el = a_l[i] + b.get(i).copied().unwrap_or(0.0);
        let er = a_r[i] + c.get(i).copied().unwrap_or(0.0);
        worst = worst
            .max((mix[0][i] - el).abs())
            .max((mix[1][i] - er).abs());
    }
    assert!(worst < 1e-6, "worst deviation {worst}");
}

#[test]
fn integer_formats_and_ranges() {
    let dir = tempdir("fmt");
    let x: Vec<f32> = (0..48000).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
    wav::write(&dir.join("x.wav"), 48000, &[x.clone(), x.clone()]);
    std::fs::write(
        dir.join("s.yaml"),
        "version: 1\nchannels:\n  - { name: x, source: { file: x.wav } }\n",
    )
    .unwrap();
    let out = dir.join("mix16.wav");
    let res = Command::new(bin())
        .args([
            "render",
            dir.join("s.yaml").to_str().unwrap(),
            "--format",
            "s16",
        ])
        .args(["--start", "0.25", "--end", "0.75", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (spec, mix) = wav::read_spec(&out);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(mix[0].len(), 24000);
    // Sample 0 of the output is sample 12000 of the stem; dither adds at most ~1.5 LSB.
    let lsb = 1.0 / 32768.0;
    for i in [0usize, 1, 777, 23999] {
        assert!((mix[0][i] - x[12000 + i]).abs() < 2.0 * lsb, "sample {i}");
    }
}

fn assert_fails_without_output(dir: &Path, session: &str, expect: &str) {
    std::fs::write(dir.join("s.yaml"), session).unwrap();
    let out = dir.join("never.wav");
    let res = Command::new(bin())
        .args(["render", dir.join("s.yaml").to_str().unwrap(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains(expect), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "no output file after a failed render");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("never"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn bad_sessions_and_stems_write_nothing() {
    let dir = tempdir("bad");
    let path = dir.join("s.yaml");
    let p = path.display().to_string();
    // Missing stem: caught by validation, with its location.
    assert_fails_without_output(
        &dir,
        "version: 1\nchannels:\n  - { name: a, source: { file: gone.wav } }\n",
        &format!("{p}:3:"),
    );
    // A stem that exists but is not audio.
    std::fs::write(dir.join("junk.wav"), b"RIFF....not a wave file at all").unwrap();
    assert_fails_without_output(
        &dir,
        "version: 1\nchannels:\n  - { name: a, source: { file: junk.wav } }\n",
        "channel a",
    );
    // A 3-channel stem.
    let z = vec![0.0f32; 100];
    wav::write(&dir.join("three.wav"), 48000, &[z.clone(), z.clone(), z]);
    assert_fails_without_output(
        &dir,
        "version: 1\nchannels:\n  - { name: a, source: { file: three.wav } }\n",
        "channel a",
    );
    // Unknown bus.
    assert_fails_without_output(
        &dir,
        "version: 1\nchannels:\n  - { name: a, output: nowhere }\n",
        &format!("{p}:3:"),
    );
}

#[test]
fn failed_render_leaves_an_existing_output_untouched() {
    let dir = tempdir("keep");
    let out = dir.join("mix.wav");
    std::fs::write(&out, b"previous mix").unwrap();
    std::fs::write(
        dir.join("s.yaml"),
        "version: 1\nchannels:\n  - { name: a, source: { file: gone.wav } }\n",
    )
    .unwrap();
    let res = Command::new(bin())
        .args(["render", dir.join("s.yaml").to_str().unwrap(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous mix");
}
