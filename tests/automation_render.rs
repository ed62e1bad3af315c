//! Automation playback (issue 7): `faderbridge render --automation` end to end with the real
//! binary (sample accuracy of a step, a dB ramp followed per sample, a state directory, bad
//! lane files), the threaded and block-size independence of the offline engine with lanes,
//! and the wait-free exchange of lane sets with the audio thread under the allocation guard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_no_alloc::{AllocDisabler, assert_no_alloc};
use faderbridge::automation::{Interp, Mode, PlayLane, Playback, Point};
use faderbridge::engine::{Engine, GAIN_GLIDE_MS};
use faderbridge::params::ParamTree;
use faderbridge::state::{STATE_VERSION, SavedState, StateDir};

mod common;
#[path = "common/wav.rs"]
mod wav;

#[cfg(debug_assertions)]
#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

const RATE: u32 = 48000;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_faderbridge")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-autorender-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The two channels of a WAV.
fn read_wav(path: &Path) -> [Vec<f32>; 2] {
    wav::read(path).try_into().expect("a stereo WAV")
}

/// A folder with a one-second stereo stem of DC 0.5 (both sides) and a session playing it
/// on channel `a` (balance centre: unity on both sides) with `extra` strip settings.
fn dc_session(tag: &str, extra: &str) -> PathBuf {
    let dir = tempdir(tag);
    let dc = vec![0.5f32; RATE as usize];
    wav::write(&dir.join("dc.wav"), RATE, &[dc.clone(), dc]);
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "version: 1\nengine: {{ sample_rate: 48000 }}\nchannels:\n  - {{ name: a, source: {{ file: dc.wav }}{extra} }}\n"
        ),
    )
    .unwrap();
    dir
}

/// Run `render` on `dir/s.yaml` with `--automation auto`; the output's two channels.
fn render(dir: &Path, auto: &Path) -> [Vec<f32>; 2] {
    let out = dir.join("mix.wav");
    let o = Command::new(bin())
        .args(["render", "--end", "1"])
        .arg(dir.join("s.yaml"))
        .arg("-o")
        .arg(&out)
        .arg("--automation")
        .arg(auto)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    read_wav(&out)
}

fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// The raised-cosine glide of a gain from `g0` to `g1` over `len` samples: its value at the
/// `k`th sample (0-based) after the change.
fn glide(g0: f64, g1: f64, len: usize, k: usize) -> f64 {
    if k + 1 >= len {
        return g1;
    }
    let t = (k + 1) as f64 / len as f64;
    g0 + (g1 - g0) * 0.5 * (1.0 - (std::f64::consts::PI * t).cos())
}

#[test]
fn a_gain_step_appears_at_its_sample_with_the_fader_glide() {
    let dir = dc_session("step", "");
    // N is neither a multiple of the 32-frame grid nor of any block size.
    const N: usize = 10_007;
    let lanes = dir.join("lanes.yaml");
    std::fs::write(
        &lanes,
        format!(
            "version: 1
lanes:
  ch/a/fader_db:
    points:
      - {{ frame: 0, value: -20 }}
      - {{ frame: {}, value: -20 }}
      - {{ frame: {N}, value: 0 }}
",
            N - 1
        ),
    )
    .unwrap();
    let [l, r] = render(&dir, &lanes);
    assert_eq!(l.len(), RATE as usize);
    assert_eq!(l, r, "a centred stereo strip: both sides alike");
    let before = 0.5 * db_to_gain(-20.0);
    let first = l
        .iter()
        .position(|&v| (f64::from(v) - before).abs() > 1e-6)
        .expect("the step shows");
    assert!(
        (N - 1..=N + 1).contains(&first),
        "first changed sample {first}, step at {N}"
    );
    for (i, &v) in l[..N - 1].iter().enumerate() {
        assert!((f64::from(v) - before).abs() < 1e-6, "sample {i}: {v}");
    }
    // From the step on, the fader's own glide: GAIN_GLIDE_MS of raised cosine, -20 -> 0 dB.
    let len = (f64::from(GAIN_GLIDE_MS) * 1e-3 * f64::from(RATE)).round() as usize;
    assert_eq!(len, 480);
    let mut worst: f64 = 0.0;
    for k in 0..len + 1000 {
        let want = 0.5 * glide(db_to_gain(-20.0), 1.0, len, k);
        let got = f64::from(l[N + k]);
        worst = worst.max((got - want).abs());
    }
    eprintln!("step at {N}: first change at {first}, glide max error {worst:.2e}");
    assert!(
        worst < 1e-5,
        "glide differs from the raised cosine by {worst}"
    );
    assert!(l[N + len..].iter().all(|&v| v == 0.5));
}

#[test]
fn a_slow_db_ramp_is_followed_per_sample_within_a_hundredth_of_a_db() {
    let dir = dc_session("ramp", "");
    let lanes = dir.join("lanes.yaml");
    // -30 dB at 0.1 s to 0 dB at 0.9 s, in seconds as a DAW exports it.
    std::fs::write(
        &lanes,
        "version: 1\nlanes:\n  ch/a/fader_db: { points: [[0.1, -30], [0.9, 0.0]] }\n",
    )
    .unwrap();
    let [l, _] = render(&dir, &lanes);
    let lane_db = |i: usize| -> f64 {
        let t = i as f64 / f64::from(RATE);
        if t <= 0.1 {
            -30.0
        } else if t >= 0.9 {
            0.0
        } else {
            -30.0 + 30.0 * (t - 0.1) / 0.8
        }
    };
    let mut worst: f64 = 0.0;
    for (i, &v) in l.iter().enumerate() {
        let got = 20.0 * (f64::from(v) / 0.5).log10();
        worst = worst.max((got - lane_db(i)).abs());
    }
    eprintln!(
        "dB ramp: worst per-sample error {worst:.5} dB over {} samples",
        l.len()
    );
    assert!(worst < 0.01, "off by {worst} dB");
}

#[test]
fn a_state_directory_renders_its_values_and_its_lanes_not_in_mode_off() {
    // The session pans the strip hard left and leaves trim at 0; the state centres it, trims
    // -6.02 dB (x0.5), and has two lanes: the fader's (read) and the pan's (no mode: off).
    let dir = dc_session("state", ", pan: -1.0, fader_db: -40");
    let state_dir = dir.join("state");
    let p = |frame, value| Point { frame, value };
    let state = SavedState {
        version: STATE_VERSION,
        params: BTreeMap::from([
            ("ch/a/pan".to_string(), 0.0),
            ("ch/a/trim_db".to_string(), -6.0206),
            ("ch/a/fader_db".to_string(), -40.0),
        ]),
        automation: BTreeMap::from([("ch/a/fader_db".to_string(), Mode::Read)]),
        // Frames at 96 kHz: the step at 48000 is at 24000 at the render's 48 kHz.
        lanes: BTreeMap::from([
            (
                "ch/a/fader_db".to_string(),
                vec![p(0, -12.0), p(47_998, -12.0), p(48_000, 0.0)],
            ),
            ("ch/a/pan".to_string(), vec![p(0, 1.0)]),
        ]),
        lane_rate: 96_000,
        ..Default::default()
    };
    StateDir::open(&state_dir).unwrap().save(&state).unwrap();
    let [l, r] = render(&dir, &state_dir);
    assert_eq!(
        l, r,
        "centred by the state's value, the off pan lane ignored"
    );
    let trim = db_to_gain(-6.0206);
    let a = 0.5 * trim * db_to_gain(-12.0);
    for i in [0, 1000, 23_998] {
        assert!((f64::from(l[i]) - a).abs() < 1e-6, "sample {i}: {}", l[i]);
    }
    let b = 0.5 * trim;
    for i in [24_000 + 480, 30_000, 47_999] {
        assert!((f64::from(l[i]) - b).abs() < 1e-6, "sample {i}: {}", l[i]);
    }
}

#[test]
fn a_bad_lane_file_exits_2_with_its_line_and_column() {
    let dir = dc_session("bad", "");
    let lanes = dir.join("lanes.yaml");
    std::fs::write(
        &lanes,
        "version: 1\nlanes:\n  ch/a/fader_db: { points: [[0, 0], [1, 13]] }\n  ch/zz/pan: { points: [[0, 0]] }\n",
    )
    .unwrap();
    let out = dir.join("mix.wav");
    let o = Command::new(bin())
        .arg("render")
        .arg(dir.join("s.yaml"))
        .arg("-o")
        .arg(&out)
        .arg("--automation")
        .arg(&lanes)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let f = lanes.display();
    assert!(
        err.contains(&format!("{f}:3:37: ch/a/fader_db: 13 is out of range")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:4:3: unknown parameter `ch/zz/pan`")),
        "{err}"
    );
    assert!(!out.exists(), "no output after a failure");
}

const LANES: &str = "version: 1
lanes:
  ch/a/fader_db: { points: [[0.05, -20], [0.4, 0], [0.4001, -8], [0.9, -30]] }
  ch/b/fader_db: { points: [[0, 0], [0.3, -12], [0.31, -12], [0.3101, -3]] }
  ch/a/pan: { points: [[0, -1], [0.7, 1]] }
  ch/b/pan: { points: [[0.2, 0.5], [0.6, -0.5]] }
  ch/a/trim_db: { points: [[0.1, 0], [0.5, -6]] }
  ch/b/sends/verb/level_db: { points: [[0, -inf], [0.5, 0]] }
  ch/a/eq/2/freq: { points: [[0, 200], [0.8, 4000]] }
  ch/b/hpf/freq: { points: [[0.1, 40], [0.6, 400]] }
  ch/a/mute: { points: [[0, false], [0.61234, true], [0.7, false]] }
  ch/b/comp/threshold_db: { points: [[0, -30], [1, -10]] }
  bus/drums/fader_db: { points: [[0, -6], [0.5, 0]] }
  bus/echo/fx/delay/feedback: { points: [[0, 0.1], [0.5, 0.6]] }
  master/fader_db: { points: [[0.3, 0], [0.30002, -3]] }
";

/// A session of two full strips (one per render thread) on noise stems, sends to a reverb
/// and a delay, a group, and lanes on gains, pans, filters, mutes, sends, the buses and the
/// master, rendered with `threads` and `block`: the master's two channels.
fn render_engine(threads: usize, block: usize) -> [Vec<f32>; 2] {
    render_engine_with(threads, block, LANES)
}

fn render_engine_with(threads: usize, block: usize, lanes: &str) -> [Vec<f32>; 2] {
    let dir = tempdir(&format!("eng-{threads}-{block}"));
    let n = RATE as usize;
    let noise = |seed: u32| -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                0.3 * ((x as f32 / u32::MAX as f32) * 2.0 - 1.0)
            })
            .collect()
    };
    wav::write(&dir.join("a.wav"), RATE, &[noise(1)]);
    wav::write(&dir.join("b.wav"), RATE, &[noise(2), noise(3)]);
    let strip = common::full_strip::FULL_STRIP;
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "version: 1
engine: {{ sample_rate: 48000 }}
channels:
  - name: a
    source: {{ file: a.wav }}
    output: drums{strip}
  - name: b
    source: {{ file: b.wav }}{strip}
buses:
  - {{ name: drums, kind: group, comp: {{ threshold_db: -20, ratio: 2 }} }}
  - {{ name: verb, kind: aux, fx: {{ reverb: {{ decay_s: 1.0 }} }} }}
  - {{ name: echo, kind: aux, fx: {{ delay: {{ time_ms: 120, feedback: 0.3 }} }} }}
master:
  comp: {{ threshold_db: -18, ratio: 2 }}
  limiter: {{ ceiling_dbtp: -1.0 }}
"
        ),
    )
    .unwrap();
    let session = faderbridge::session::load(&dir.join("s.yaml")).expect("session");
    let tree = ParamTree::build(&session);
    let auto = faderbridge::automation::file::parse_str(lanes, Path::new("l.yaml"), &tree, RATE)
        .unwrap_or_else(|e| panic!("{e}"));
    let stems = faderbridge::render::load_stems(&session).expect("stems");
    let mut engine = Engine::build(&session, &tree, &stems, RATE as f32, block).expect("build");
    engine.set_strip_meters(false);
    engine.set_playback(Box::new(auto.playback(&tree)));
    let mut out: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    engine.render_offline(block, threads, |o| {
        out[0].extend_from_slice(o[0]);
        out[1].extend_from_slice(o[1]);
        out[0].len() < n
    });
    out[0].truncate(n);
    out[1].truncate(n);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn lanes_render_the_same_on_one_thread_or_two_and_with_any_block_size() {
    let one = render_engine(1, 4096);
    let two = render_engine(2, 4096);
    let peak = one[0].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.05, "sound came out ({peak})");
    // Each strip on its own thread: the same arithmetic in the same order, bit for bit.
    assert!(one == two, "threads=1 and threads=2 differ");
    // Live runs 64..1024-frame periods; the lanes are read at the same frames whatever the
    // block, and every processor runs per sample: the same samples, bit for bit.
    let small = render_engine(1, 64);
    let worst = one
        .iter()
        .zip(&small)
        .flat_map(|(a, b)| a.iter().zip(b))
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("block 64 vs 4096: max difference {worst:.3e} (peak {peak})");
    assert!(worst < 1e-6, "block 64 vs 4096 differ by {worst}");
    assert!(one == small, "block 64 vs 4096: not bit-identical");
    // Blocks that are no multiple of the 32-frame grid (nor of the reverb's control chunk).
    let odd = render_engine(2, 1000);
    let worst = one
        .iter()
        .zip(&odd)
        .flat_map(|(a, b)| a.iter().zip(b))
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("block 1000 on two threads vs 4096 on one: max difference {worst:.3e}");
    assert!(one == odd, "block 1000 on two threads differs by {worst}");
}

/// Live: sets sent through the handle while the engine runs are swapped in without the
/// audio thread allocating or freeing, and drive the fader at once; the control side frees
/// the replaced sets.
#[test]
fn lane_sets_reach_the_audio_thread_without_allocation() {
    let yaml = format!(
        "version: 1\nchannels:\n  - name: a\n    source: {{ input: 1 }}{}\nbuses:\n  - {{ name: verb, kind: aux, outputs: [3, 4] }}\n  - {{ name: echo, kind: aux, outputs: [5, 6] }}\n",
        common::full_strip::FULL_STRIP
    );
    let mut rig = common::Rig::new(&yaml);
    let block = common::BLOCK;
    let frames = block * 2000;
    let tone = common::sine(1000.0, 0.25, frames);
    let addr = |p: &str| rig.tree.get(rig.tree.resolve(p).unwrap()).addr;
    let fader = addr("ch/a/fader_db");
    let freq = addr("ch/a/eq/2/freq");
    let mute = addr("ch/a/mute");
    let pan = addr("ch/a/pan");
    let set = |db: f32| {
        let l = PlayLane::from_pairs;
        Box::new(Playback {
            lanes: vec![
                l(fader, Interp::Linear, &[(0, db)]),
                l(freq, Interp::Log, &[(0, 300.0), (40_000, 3000.0)]),
                l(
                    mute,
                    Interp::Step,
                    &[(0, 0.0), (50_000, 1.0), (50_100, 0.0)],
                ),
                l(pan, Interp::Linear, &[(1000, -0.3), (90_000, 0.3)]),
            ],
        })
    };
    let mut out = vec![vec![0.0f32; block]; rig.engine.output_ports().len()];
    let mut level = Vec::new();
    let mut sent = 0;
    let mut freed = 0;
    for b in 0..frames / block {
        // A new set every 100 blocks: alternately -10 and -30 dB on the fader.
        if b % 100 == 0 {
            let db = if (b / 100) % 2 == 0 { -10.0 } else { -30.0 };
            freed += rig.handle.collect();
            rig.handle.send_playback(set(db)).expect("ring has room");
            sent += 1;
        }
        let ins: [&[f32]; 1] = [&tone[b * block..(b + 1) * block]];
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        let engine = &mut rig.engine;
        assert_no_alloc(|| engine.process(block, &ins, &mut outs));
        // Power of both sides: the mono pan law keeps it whatever the pan lane does.
        level.push((common::rms(&out[0]).powi(2) + common::rms(&out[1]).powi(2)).sqrt());
    }
    freed += rig.handle.collect();
    // Every set but the one playing came back to be freed here.
    assert_eq!(freed, sent - 1);
    // The fader follows the sets: 20 dB between the -10 and the -30 dB passes (measured well
    // inside each, past the glide, the mute and the EQ sweep).
    let mean = |r: std::ops::Range<usize>| level[r.clone()].iter().sum::<f64>() / r.len() as f64;
    let loud = mean(1020..1080);
    let quiet = mean(1120..1180);
    let diff = 20.0 * (loud / quiet).log10();
    eprintln!("lane sets: {sent} sent, {freed} freed; -10 vs -30 dB pass: {diff:.3} dB");
    assert!((diff - 20.0).abs() < 0.1, "{diff} dB");
}

/// Live, through the handle: a fader lane followed per sample while playing; held while the
/// transport is stopped; re-read with the fader's own glide on a locate; and a lane new in a
/// set with `glide_in` moving from `glide_from` to its curve, while the lanes the previous
/// set played carry on without a pause.
#[test]
fn live_lanes_hold_when_stopped_reread_on_locate_and_glide_in() {
    let mut rig =
        common::Rig::new("version: 1\nchannels:\n  - { name: a, source: { input: [1, 2] } }\n");
    let block = common::BLOCK;
    let dc = vec![0.5f32; block];
    let ins: [&[f32]; 2] = [&dc, &dc];
    let mut out = vec![vec![0.0f32; block]; 2];
    // Every output sample's gain (dB), in engine frames.
    let mut all: Vec<f64> = Vec::new();
    let mut run = |rig: &mut common::Rig, blocks: usize| {
        for _ in 0..blocks {
            let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
            rig.engine.process(block, &ins, &mut outs);
            assert_eq!(out[0], out[1]);
            all.extend(out[0].iter().map(|&v| 20.0 * (f64::from(v) / 0.5).log10()));
        }
    };
    let addr = |rig: &common::Rig, p: &str| rig.tree.get(rig.tree.resolve(p).unwrap()).addr;
    let lane = |addr, pts: &[(u64, f32)], glide_in: u32| PlayLane {
        glide_in,
        ..PlayLane::from_pairs(addr, Interp::Linear, pts)
    };
    // -20 dB at 0 to 0 dB at 1 s.
    let fader_db = |f: usize| -20.0 + 20.0 * f as f64 / 48000.0;
    let fader = lane(addr(&rig, "ch/a/fader_db"), &[(0, -20.0), (48_000, 0.0)], 0);
    rig.handle
        .send_playback(Box::new(Playback {
            lanes: vec![fader.clone()],
        }))
        .unwrap();
    run(&mut rig, 100); // frames 0..6400, transport 0..6400
    rig.engine.set_playing(false);
    run(&mut rig, 20); // frames 6400..7680, stopped at 6400
    rig.engine.locate(24_000);
    run(&mut rig, 20); // frames 7680..8960, stopped at 24000
    // Playing again from 24000, a new set: the fader lane carries on, a new trim lane at
    // -6 dB glides in from 0 dB over 4800 frames (linearly in dB).
    rig.engine.set_playing(true);
    let trim = lane(addr(&rig, "ch/a/trim_db"), &[(0, -6.0)], 4800);
    rig.handle
        .send_playback(Box::new(Playback {
            lanes: vec![fader, trim],
        }))
        .unwrap();
    run(&mut rig, 110); // frames 8960.., transport 24000..
    // The output lags the strips by the limiter's look-ahead.
    let lat = rig.engine.latency();
    let g = |f: usize| all[f + lat];

    // The lane starts with the fader's glide (from the session's 0 dB), then follows it
    // per sample.
    let worst = (1024..6400)
        .map(|f| (g(f) - fader_db(f)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "playing: off the lane by {worst} dB");
    // Stopped at 6400: the value holds.
    let held = fader_db(6400);
    let worst = (6400..7680)
        .map(|f| (g(f) - held).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "stopped: moved by {worst} dB from {held}");
    // Located to 0.5 s while stopped: the fader glides to -10 dB with its raised cosine.
    let (g0, g1) = (db_to_gain(held), db_to_gain(-10.0));
    for k in 0..1280 {
        let want = 20.0 * glide(g0, g1, 480, k).log10();
        let v = g(7680 + k);
        assert!(
            (v - want).abs() < 1e-3,
            "locate glide, sample {k}: {v} vs {want}"
        );
    }
    // Playing: fader lane + the trim gliding in, with no pause of the fader.
    let mut worst: f64 = 0.0;
    for k in 0..6400 {
        let trim_db = -6.0 * (k as f64 / 4800.0).min(1.0);
        worst = worst.max((g(8960 + k) - (fader_db(24_000 + k) + trim_db)).abs());
    }
    eprintln!("glide-in over a playing lane: worst {worst:.4} dB");
    assert!(worst < 0.01, "off by {worst} dB");
}
