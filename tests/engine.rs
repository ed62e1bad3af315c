//! End-to-end behaviour of the mix engine on known signals: pan law and balance, faders,
//! pre/post-fader sends, mute, solo-in-place with solo-safe and aux returns, group routing,
//! sample-accurate parameter changes and click-free fader moves.

mod common;
use common::*;

/// Last `n` samples of `x` (after settling and the engine's latency).
fn tail(x: &[f32], n: usize) -> &[f32] {
    &x[x.len() - n..]
}

const N: usize = 48000 / 2;
const WIN: usize = 4800; // 0.1 s: whole periods of every test tone (multiples of 10 Hz)

#[test]
fn mono_pan_is_constant_power_minus_3db_at_centre() {
    let mut rig =
        Rig::new("version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: 0.0 }\n");
    let x = sine(1000.0, 0.5, N);
    for pan in [-1.0f32, -0.5, 0.0, 0.3, 1.0] {
        rig.set("ch/a/pan", pan);
        let out = rig.run(&[&x]);
        let (l, r) = (rms(tail(&out[0], WIN)), rms(tail(&out[1], WIN)));
        let theta = (pan as f64 + 1.0) * std::f64::consts::FRAC_PI_4;
        let src = rms(tail(&x, WIN));
        assert!((l - src * theta.cos()).abs() < 1e-4, "pan {pan}: L {l}");
        assert!((r - src * theta.sin()).abs() < 1e-4, "pan {pan}: R {r}");
        if pan == 0.0 {
            assert!((db(l / src) + 3.0103).abs() < 0.01, "centre is -3 dB");
        }
    }
}

#[test]
fn stereo_balance_is_unity_at_centre_and_attenuates_far_side() {
    let mut rig = Rig::new("version: 1\nchannels:\n  - { name: st, source: { input: [1, 2] } }\n");
    let l_in = sine(500.0, 0.4, N);
    let r_in = sine(700.0, 0.3, N);
    let out = rig.run(&[&l_in, &r_in]);
    assert!((tone_amp(tail(&out[0], WIN), 500.0) - 0.4).abs() < 1e-4);
    assert!((tone_amp(tail(&out[1], WIN), 700.0) - 0.3).abs() < 1e-4);
    // Balance right: the left side falls, the right stays at unity, nothing crosses over.
    rig.set("ch/st/pan", 0.5);
    let out = rig.run(&[&l_in, &r_in]);
    let expect_l = 2f64.sqrt() * (0.75 * std::f64::consts::FRAC_PI_2).cos();
    assert!((tone_amp(tail(&out[0], WIN), 500.0) - 0.4 * expect_l).abs() < 1e-4);
    assert!((tone_amp(tail(&out[1], WIN), 700.0) - 0.3).abs() < 1e-4);
    assert!(tone_amp(tail(&out[0], WIN), 700.0) < 1e-6);
}

#[test]
fn fader_scales_by_its_gain() {
    let mut rig = Rig::new(
        "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, fader_db: -6.0, pan: -1 }\n",
    );
    let x = sine(1000.0, 0.5, N);
    let out = rig.run(&[&x]);
    let got = db(rms(tail(&out[0], WIN)) / rms(tail(&x, WIN)));
    assert!((got + 6.0).abs() < 0.01, "{got}");
    rig.set("ch/a/fader_db", f32::NEG_INFINITY);
    let out = rig.run(&[&x]);
    assert_eq!(rms(tail(&out[0], WIN)), 0.0);
}

const SENDS: &str = "version: 1
channels:
  - name: a
    source: { input: 1 }
    pan: -1
    fader_db: -inf
    sends: [ { bus: cue, level_db: -6, pre_fader: true }, { bus: fx, level_db: -6 } ]
buses:
  - { name: cue, kind: aux, outputs: [3, 4] }
  - { name: fx, kind: aux, outputs: [5, 6] }
";

#[test]
fn pre_fader_send_ignores_the_fader_post_fader_follows_it() {
    let mut rig = Rig::new(SENDS);
    let ports: Vec<String> = rig
        .engine
        .output_ports()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(
        ports,
        ["master_L", "master_R", "cue_L", "cue_R", "fx_L", "fx_R"]
    );
    let x = sine(1000.0, 0.5, N);
    let out = rig.run(&[&x]);
    let src = rms(tail(&x, WIN));
    // Fader closed: master and the post-fader send are silent, the pre-fader send is not.
    assert_eq!(rms(tail(&out[0], WIN)), 0.0);
    assert_eq!(rms(tail(&out[4], WIN)), 0.0);
    let cue = db(rms(tail(&out[2], WIN)) / src);
    assert!((cue + 6.0).abs() < 0.01, "pre-fader send {cue} dB");
    // Fader at -10 dB: the post-fader send carries send level + fader.
    rig.set("ch/a/fader_db", -10.0);
    let out = rig.run(&[&x]);
    let fx = db(rms(tail(&out[4], WIN)) / src);
    assert!((fx + 16.0).abs() < 0.01, "post-fader send {fx} dB");
    let cue = db(rms(tail(&out[2], WIN)) / src);
    assert!(
        (cue + 6.0).abs() < 0.01,
        "pre-fader send unchanged: {cue} dB"
    );
}

#[test]
fn mute_silences_main_and_every_send() {
    let mut rig = Rig::new(SENDS);
    rig.set("ch/a/fader_db", 0.0);
    rig.set("ch/a/mute", 1.0);
    let x = sine(1000.0, 0.5, N);
    let out = rig.run(&[&x]);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(rms(tail(o, WIN)), 0.0, "output {i} while muted");
    }
    rig.set("ch/a/mute", 0.0);
    let out = rig.run(&[&x]);
    assert!((db(rms(tail(&out[0], WIN)) / rms(tail(&x, WIN)))).abs() < 0.01);
}

const SOLO: &str = "version: 1
channels:
  - { name: a, source: { input: 1 } }
  - { name: b, source: { input: 2 } }
  - { name: c, source: { input: 3 }, solo_safe: true }
  - { name: d, source: { input: 4 }, sends: [ { bus: ret, level_db: 0, pre_fader: true } ] }
buses:
  - { name: ret, kind: aux }
";

#[test]
fn solo_in_place_mutes_others_but_not_solo_safe_or_aux_returns() {
    let mut rig = Rig::new(SOLO);
    let (fa, fb, fc, fd) = (300.0, 500.0, 700.0, 1100.0);
    let xs = [
        sine(fa, 0.2, N),
        sine(fb, 0.2, N),
        sine(fc, 0.2, N),
        sine(fd, 0.2, N),
    ];
    let ins: Vec<&[f32]> = xs.iter().map(|v| &v[..]).collect();
    let centre = 0.2 * std::f64::consts::FRAC_1_SQRT_2;

    let out = rig.run(&ins);
    let m = tail(&out[0], WIN);
    for f in [fa, fb, fc] {
        assert!((tone_amp(m, f) - centre).abs() < 1e-4, "{f} Hz before solo");
    }
    // d reaches master twice: direct and through the aux return.
    assert!((tone_amp(m, fd) - 2.0 * centre).abs() < 1e-4);

    rig.set("ch/a/solo", 1.0);
    let out = rig.run(&ins);
    let m = tail(&out[0], WIN);
    assert!(
        (tone_amp(m, fa) - centre).abs() < 1e-4,
        "soloed strip plays"
    );
    assert!(tone_amp(m, fb) < 1e-6, "unsoloed strip is muted");
    assert!(
        (tone_amp(m, fc) - centre).abs() < 1e-4,
        "solo-safe strip plays"
    );
    assert!(
        (tone_amp(m, fd) - centre).abs() < 1e-4,
        "aux return stays, direct is muted"
    );

    rig.set("ch/a/solo", 0.0);
    let out = rig.run(&ins);
    assert!(
        (tone_amp(tail(&out[0], WIN), fb) - centre).abs() < 1e-4,
        "unsolo restores"
    );
}

#[test]
fn group_bus_sums_its_channels_and_applies_its_fader_and_mute() {
    let mut rig = Rig::new(
        "version: 1
channels:
  - { name: k, source: { input: 1 }, output: drums }
  - { name: s, source: { input: 2 }, output: drums }
  - { name: v, source: { input: 3 } }
buses:
  - { name: drums, kind: group, fader_db: -6, output: sub }
  - { name: sub, kind: group, fader_db: -4 }
",
    );
    let xs = [
        sine(200.0, 0.2, N),
        sine(400.0, 0.2, N),
        sine(800.0, 0.2, N),
    ];
    let ins: Vec<&[f32]> = xs.iter().map(|v| &v[..]).collect();
    let centre = 0.2 * std::f64::consts::FRAC_1_SQRT_2;
    let out = rig.run(&ins);
    let m = tail(&out[0], WIN);
    let g = 10f64.powf(-10.0 / 20.0);
    assert!((tone_amp(m, 200.0) - centre * g).abs() < 1e-4);
    assert!((tone_amp(m, 400.0) - centre * g).abs() < 1e-4);
    assert!((tone_amp(m, 800.0) - centre).abs() < 1e-4);
    rig.set("bus/drums/mute", 1.0);
    let out = rig.run(&ins);
    let m = tail(&out[0], WIN);
    assert!(tone_amp(m, 200.0) < 1e-6 && tone_amp(m, 400.0) < 1e-6);
    assert!((tone_amp(m, 800.0) - centre).abs() < 1e-4);
}

#[test]
fn parameter_changes_land_at_their_frame() {
    let mut rig =
        Rig::new("version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1 }\n");
    let lat = rig.engine.latency();
    let dc = vec![1.0f32; 4096];
    rig.run(&[&dc]);
    // Mute at frame 17 of the next block: the glide starts exactly there.
    rig.set_at("ch/a/mute", 1.0, 17);
    let out = rig.run(&[&dc[..BLOCK * 20]]);
    let l = &out[0];
    assert_eq!(l[lat + 16], 1.0, "unchanged before the change");
    assert!(l[lat + 17] < 1.0, "glide starts at the change");
    let glide = (10.0 * SR / 1000.0) as usize;
    assert_eq!(l[lat + 17 + glide], 0.0, "fully muted after the glide");
}

#[test]
fn timed_changes_are_held_until_their_frame_in_a_later_block() {
    // Two strips panned hard left and right: each side shows one strip's mute glide.
    let mut rig = Rig::new(
        "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1 }\n  \
         - { name: b, source: { input: 2 }, pan: 1 }\n",
    );
    let lat = rig.engine.latency();
    let dc = vec![1.0f32; BLOCK * 40];
    rig.run(&[&dc[..BLOCK * 4], &dc[..BLOCK * 4]]);
    let base = rig.engine.next_frame();
    assert_eq!(base, (BLOCK * 4) as u64, "the engine counts its frames");
    // a: muted 5 blocks and 23 frames ahead; b: queued later but for now. A change for a
    // frame that has already played applies at the next block start, like an untimed one.
    let t_a = base + (BLOCK * 5 + 23) as u64;
    rig.set_at_frame("ch/a/mute", 1.0, t_a);
    rig.set_at_frame("ch/b/mute", 1.0, base.saturating_sub(100));
    let out = rig.run(&[&dc[..BLOCK * 20], &dc[..BLOCK * 20]]);
    let (l, r) = (&out[0], &out[1]);
    let at = (t_a - base) as usize + lat;
    assert_eq!(l[at - 1], 1.0, "a untouched up to its frame");
    assert!(l[at] < 1.0, "a's glide starts exactly at its frame");
    assert!(
        r[lat] < 1.0,
        "b's overdue change applies at the block start"
    );
    let glide = (10.0 * SR / 1000.0) as usize;
    assert_eq!(l[at + glide], 0.0);
    assert_eq!(r[lat + glide], 0.0);
}

#[test]
fn many_held_changes_apply_in_frame_order() {
    // Fader steps queued out of order, each for its own frame: the output follows them in
    // frame order (fader glides are 10 ms; steps 1000 frames apart settle in between).
    let mut rig =
        Rig::new("version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1 }\n");
    let lat = rig.engine.latency();
    let dc = vec![1.0f32; 48_000];
    rig.run(&[&dc[..BLOCK]]);
    let base = rig.engine.next_frame();
    let steps = [(3u64, -6.0f32), (1, -12.0), (4, -3.0), (2, -20.0)];
    for (k, db) in steps {
        rig.set_at_frame("ch/a/fader_db", db, base + k * 1000);
    }
    let out = rig.run(&[&dc[..6000]]);
    let l = &out[0];
    for (k, db) in steps {
        // Just before the next step starts, this step has settled.
        let i = ((k + 1) * 1000) as usize + lat - 1;
        let want = 10f32.powf(db / 20.0);
        assert!(
            (l[i] - want).abs() < 1e-4,
            "step {k}: {} != {want} at {i}",
            l[i]
        );
    }
    assert_eq!(l[1000 + lat - 1], 1.0, "nothing before the first step");
}

/// Largest sample-to-sample step of `x`.
fn max_step(x: &[f32]) -> f32 {
    x.windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fader_jump_from_minus_inf_does_not_click() {
    let (f, a) = (1000.0f32, 0.25f32);
    let x = sine(f, a, N);
    // A jump from -inf to +6 dB inside a block.
    let mut rig = Rig::new(
        "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1, fader_db: -inf }\n",
    );
    rig.set_at("ch/a/fader_db", 6.0, 30);
    let out = rig.run(&[&x]);
    let gain = 10f32.powf(6.0 / 20.0);
    // Pan hard left is unity for a mono source: L carries x * fader.
    let own_slope = a * gain * 2.0 * std::f32::consts::PI * f / SR;
    let worst = max_step(&out[0]);
    assert!(
        worst <= own_slope * 1.001,
        "step {worst} > sine's own {own_slope}"
    );
    assert!((rms(tail(&out[0], WIN)) - rms(tail(&x, WIN)) * gain as f64).abs() < 1e-4);
}

#[test]
fn fader_stream_sweep_stays_within_signal_slope() {
    let mut rig = Rig::new(
        "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1, fader_db: -60 }\n",
    );
    let (f, a) = (1000.0f32, 0.25f32);
    let x = sine(f, a, N);
    let warm = rig.run(&[&x[..BLOCK * 10]]);
    drop(warm);
    let mut out = Vec::new();
    // 10 ms = 480 frames = 7.5 blocks: one move every 60 frames from -60 to +6 dB.
    for i in 0..8 {
        let db = -60.0 + 66.0 * (i + 1) as f32 / 8.0;
        rig.set_at("ch/a/fader_db", db, 0);
        let o = rig.run(&[&x[BLOCK * (10 + i)..BLOCK * (11 + i)]]);
        out.extend_from_slice(&o[0]);
    }
    let o = rig.run(&[&x[BLOCK * 18..BLOCK * 40]]);
    out.extend_from_slice(&o[0]);
    let gain = 10f32.powf(6.0 / 20.0);
    let own_slope = a * gain * 2.0 * std::f32::consts::PI * f / SR;
    let worst = max_step(&out);
    assert!(
        worst <= own_slope * 1.001,
        "step {worst} > sine's own {own_slope}"
    );
}

#[test]
fn file_sources_loop_sample_exactly_when_looping_is_on() {
    use std::collections::HashMap;
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("fb-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.wav"), b"").unwrap(); // validation checks existence only
    let s = faderbridge::session::parse_str(
        "version: 1\nchannels:\n  - { name: x, source: { file: x.wav }, pan: -1 }\n",
        &dir.join("s.yaml"),
    )
    .unwrap();
    let tree = faderbridge::params::ParamTree::build(&s);
    // A 100-sample ramp: sample i has value i + 1.
    let ramp: Vec<f32> = (0..100).map(|i| (i + 1) as f32).collect();
    let stems = HashMap::from([(0usize, Arc::new(vec![ramp.into()]))]);
    let mut e = faderbridge::engine::Engine::build(&s, &tree, &stems, SR, BLOCK).unwrap();
    assert_eq!(e.file_length(), 100);
    e.set_loop(Some(100));
    let lat = e.latency();
    let mut l = vec![0.0f32; 512];
    let mut r = vec![0.0f32; 512];
    for k in 0..8 {
        let mut outs: Vec<&mut [f32]> =
            vec![&mut l[k * 64..(k + 1) * 64], &mut r[k * 64..(k + 1) * 64]];
        e.process(64, &[], &mut outs);
    }
    for (i, v) in l.iter().enumerate().skip(lat) {
        assert_eq!(*v, ((i - lat) % 100 + 1) as f32, "sample {i}");
    }
    // Without the loop, silence after the end.
    e.set_loop(None);
    e.locate(90);
    let mut outs: Vec<&mut [f32]> = vec![&mut l[..64], &mut r[..64]];
    // Blocks 90..154 and 154..218 still carry the ramp's end through the limiter's
    // look-ahead; the third block's input (218 - latency onward) is all past the end.
    for _ in 0..3 {
        e.process(64, &[], &mut outs);
    }
    assert!(lat < 218 - 100);
    assert!(l.iter().take(64).all(|&v| v == 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}
