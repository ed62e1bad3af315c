//! The demo session renders to a finished mix: loudness near -14 LUFS, no clipping, the
//! limiter's ceiling held in true peak, a sensible loudness range, and every stem audible.

use std::path::PathBuf;

use faderbridge::media::WavFormat;
use faderbridge::render::{RenderOptions, render};

fn demo_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn demo_renders_a_balanced_mix_at_streaming_loudness() {
    let dir = demo_dir();
    let session = faderbridge::demo::ensure(&dir).expect("demo written");
    let out = dir.join("mix.wav");
    let opts = RenderOptions {
        out: out.clone(),
        start_s: None,
        end_s: None,
        format: WavFormat::S24,
        progress: false,
        automation: None,
    };
    let r = render(&session, &opts).expect("demo renders");
    assert!(out.exists());
    // 30 s of music plus the reverb/echo tail.
    assert!(
        r.length_s() > 30.0 && r.length_s() < 36.0,
        "{}",
        r.length_s()
    );
    assert!(
        (r.integrated_lufs + 14.0).abs() <= 1.0,
        "integrated {} LUFS",
        r.integrated_lufs
    );
    assert!(
        r.true_peak_dbtp <= -1.0 + 0.05,
        "true peak {} dBTP",
        r.true_peak_dbtp
    );
    assert!(
        r.sample_peak_dbfs < -1.0,
        "sample peak {} dBFS",
        r.sample_peak_dbfs
    );
    assert!(
        (3.0..=15.0).contains(&r.loudness_range_lu),
        "LRA {}",
        r.loudness_range_lu
    );

    // Balance: each stem soloed alone is audible but none carries the mix by itself:
    // every element sits between 3 and 25 LU below the full mix.
    let text = std::fs::read_to_string(&session).unwrap();
    for name in ["kick", "snare", "bass", "vocal", "keys", "hats"] {
        let marker = format!("  - name: {name}");
        let at = text
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} in demo"));
        let line_end = at + text[at..].find('\n').unwrap() + 1;
        let soloed = format!("{}    solo: true\n{}", &text[..line_end], &text[line_end..]);
        let solo_path = dir.join(format!("solo-{name}.yaml"));
        std::fs::write(&solo_path, soloed).unwrap();
        let o = RenderOptions {
            out: dir.join(format!("solo-{name}.wav")),
            end_s: Some(30.0),
            ..opts.clone()
        };
        let s = render(&solo_path, &o).expect("solo render");
        let below = r.integrated_lufs - s.integrated_lufs;
        eprintln!("{name}: {below:.1} LU below the mix");
        assert!(
            (3.0..=25.0).contains(&below),
            "{name} is {below:.1} LU below the mix"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
