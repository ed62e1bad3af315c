//! Inserts on buses and the master, the insert position and the whole-graph latency
//! compensation (issue 8), on the engine in this process (no JACK):
//!
//! - Null tests: a session with fixed-latency inserts (held bypassed offline, so each is a
//!   delay of its latency) on a group bus, an aux bus, the master, a post-fader channel insert
//!   with a pre-fader send, ... against the same session without inserts, shifted by the
//!   engine's reported latency: the outputs must be the same samples (residual below
//!   -120 dBFS), and the reported latency must be the hand-computed one.
//! - Position tests: the engine's insert send is fed back into its return one block later (a
//!   "gear" with a one-block latency, declared as `latency: BLOCK`); the send's level shows
//!   where the insert sits (a -6 dB fader changes it by -6.00 dB only after the fader, an EQ
//!   boost shows on it only after the EQ), and the output with the gear in circuit nulls
//!   against the session without insert delayed by the engine's latency.
//! - A threaded `render` with bus and master inserts equals the render without them; a send
//!   switched between pre- and post-fader around a post-fader insert stays aligned.

use std::collections::HashMap;
use std::path::Path;

use faderbridge::engine::{Engine, InsertSetup};
use faderbridge::params::ParamTree;
use faderbridge::session::{self, model::Session};

#[path = "common/wav.rs"]
mod wav;

const RATE: f32 = 48000.0;
const BLOCK: usize = 64;

fn parse(yaml: &str) -> Session {
    session::parse_str(yaml, Path::new("/nonexistent/insert-graph.yaml"))
        .unwrap_or_else(|e| panic!("test session does not parse:\n{e}\n{yaml}"))
}

/// Deterministic noise (a different sequence per seed), amplitude 0.25.
fn noise(seed: u32, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            0.25 * ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

/// [`noise`] of `n` samples into each of the input ports `names`, seeds 1, 2, ... in order.
fn noise_inputs(names: &[&'static str], n: usize) -> HashMap<&'static str, Vec<f32>> {
    (1..)
        .zip(names)
        .map(|(seed, &p)| (p, noise(seed, n)))
        .collect()
}

fn sine(f: f32, a: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| a * (2.0 * std::f32::consts::PI * f * i as f32 / RATE).sin())
        .collect()
}

/// Run `e` over `frames` frames in blocks of [`BLOCK`]: every input port named in `sig` plays
/// that signal; with `gear`, every `*_insert_return*` input gets the matching
/// `*_insert_send*` output of the previous block (a one-block round trip at unity). Returns
/// every output by port name.
fn run(
    e: &mut Engine,
    sig: &HashMap<&str, Vec<f32>>,
    frames: usize,
    gear: bool,
) -> HashMap<String, Vec<f32>> {
    let ins: Vec<String> = e.input_ports().iter().map(|p| p.name.clone()).collect();
    let outs: Vec<String> = e.output_ports().iter().map(|p| p.name.clone()).collect();
    // For each input: the output it is fed from (gear), if any.
    let loop_from: Vec<Option<usize>> = ins
        .iter()
        .map(|n| {
            let send = n.replace("_insert_return", "_insert_send");
            (gear && n.contains("_insert_return"))
                .then(|| outs.iter().position(|o| *o == send))
                .flatten()
        })
        .collect();
    let mut out_bufs = vec![vec![0.0f32; BLOCK]; outs.len()];
    let mut in_bufs = vec![vec![0.0f32; BLOCK]; ins.len()];
    let mut rec: Vec<Vec<f32>> = vec![Vec::with_capacity(frames); outs.len()];
    for k in 0..frames / BLOCK {
        for (i, name) in ins.iter().enumerate() {
            match (loop_from[i], sig.get(name.as_str())) {
                (Some(o), _) => in_bufs[i].copy_from_slice(&out_bufs[o]),
                (None, Some(s)) => in_bufs[i].copy_from_slice(&s[k * BLOCK..(k + 1) * BLOCK]),
                (None, None) => in_bufs[i].fill(0.0),
            }
        }
        let inputs: Vec<&[f32]> = in_bufs.iter().map(|b| &b[..]).collect();
        let mut o: Vec<&mut [f32]> = out_bufs.iter_mut().map(|b| &mut b[..]).collect();
        e.process(BLOCK, &inputs, &mut o);
        for (r, b) in rec.iter_mut().zip(&out_bufs) {
            r.extend_from_slice(b);
        }
    }
    outs.into_iter().zip(rec).collect()
}

fn build(yaml: &str, setup: Option<&InsertSetup>) -> Engine {
    let s = parse(yaml);
    let tree = ParamTree::build(&s);
    let setup = setup.cloned().unwrap_or_else(|| InsertSetup::offline(&s));
    Engine::build_with(&s, &tree, &HashMap::new(), RATE, BLOCK, &setup).expect("build")
}

/// The same `yaml` with every `insert:` line and key removed.
fn without_inserts(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.trim_start().starts_with("insert:"))
        .map(|l| match l.find(", insert:") {
            Some(i) => format!("{} }}", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The largest |y[t + shift] − r[t]| over `t` in `from..to`, in dBFS.
fn residual_db(r: &[f32], y: &[f32], shift: usize, from: usize, to: usize) -> f64 {
    let m = (from..to)
        .map(|t| (f64::from(y[t + shift]) - f64::from(r[t])).abs())
        .fold(0.0, f64::max);
    20.0 * m.max(1e-15).log10()
}

fn rms_db(v: &[f32]) -> f64 {
    let s: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum();
    10.0 * (s / v.len().max(1) as f64).log10()
}

/// Null `yaml` (offline: inserts bypassed with their fixed latency) against the same session
/// without inserts, on the outputs `ports` (each with the delay it should have against the
/// plain session: the added latency for outputs on the master's timeline, the cue's own
/// input time for a cue mix); the added latency must be `want_added`.
fn null_against_plain(what: &str, yaml: &str, want_added: usize, ports: &[(&str, usize)]) {
    let n = 48000;
    let sig = noise_inputs(&["a_in", "b_in", "c_in"], n);
    let mut with = build(yaml, None);
    let mut plain = build(&without_inserts(yaml), None);
    let added = with.latency() - plain.latency();
    let yw = run(&mut with, &sig, n, false);
    let yp = run(&mut plain, &sig, n, false);
    for &(p, shift) in ports {
        let (r, y) = (&yp[p], &yw[p]);
        let res = residual_db(r, y, shift, 0, n - want_added.max(shift));
        let other = if shift == 0 { added } else { 0 };
        eprintln!(
            "{what}: {p}: added latency {added} (want {want_added}), residual {res:.1} dBFS \
             at a shift of {shift}, reference RMS {:.1} dBFS; at a shift of {other}: {:.1} dBFS",
            rms_db(r),
            residual_db(r, y, other, 0, n - want_added.max(shift))
        );
        assert!(rms_db(r) > -30.0, "{what}: {p} carries the noise");
        assert!(res < -120.0, "{what}: {p} nulls: {res:.1} dBFS");
    }
    assert_eq!(added, want_added, "{what}: the reported latency");
}

#[test]
fn a_group_bus_insert_is_compensated_on_the_master() {
    // a, b -> drums (insert 300) -> master; c -> master (gets +300).
    let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, output: drums }
  - { name: b, source: { input: 2 }, output: drums }
  - { name: c, source: { input: 3 } }
buses:
  - { name: drums, kind: group, insert: { send: 5, return: 5, latency: 300 } }
";
    null_against_plain(
        "group insert",
        yaml,
        300,
        &[("master_L", 300), ("master_R", 300)],
    );
    let e = build(yaml, None);
    assert_eq!(e.bus_insert_latencies(), vec![Some(300)]);
    assert_eq!(e.compensation(), 300);
}

#[test]
fn an_aux_bus_insert_is_compensated_on_the_master_and_a_cue() {
    // a, b, c -> master; a, b send to fx (insert 200, post-fader) -> master; b, c to a cue.
    let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, sends: [ { bus: fx, level_db: -3 } ] }
  - { name: b, source: { input: 2 }, sends: [ { bus: fx, level_db: 0, pre_fader: true }, { bus: cue, level_db: 0 } ] }
  - { name: c, source: { input: 3 }, fader_db: -4, sends: [ { bus: cue, level_db: -6 } ] }
buses:
  - { name: fx, kind: aux, eq: [ { type: bell, freq: 1000, gain_db: 4 } ], insert: { send: 5, return: 5, latency: 200, position: post_fader } }
  - { name: cue, kind: aux, outputs: [7, 8] }
";
    null_against_plain(
        "aux insert",
        yaml,
        200,
        // The cue is aligned among its own inputs (b and c, no insert): no added delay.
        &[
            ("master_L", 200),
            ("master_R", 200),
            ("cue_L", 0),
            ("cue_R", 0),
        ],
    );
}

#[test]
fn a_master_insert_adds_to_the_latency() {
    let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, insert: { send: 9, return: 9, latency: 50 } }
  - { name: b, source: { input: 2 } }
master:
  limiter: { ceiling_dbtp: -1 }
  insert: { send: 5, return: 5, latency: 128, position: pre_eq }
";
    null_against_plain(
        "master insert",
        yaml,
        178,
        &[("master_L", 178), ("master_R", 178)],
    );
    let e = build(yaml, None);
    let plain = build(&without_inserts(yaml), None);
    assert_eq!(e.master_insert_latency(), Some(128));
    assert_eq!(e.latency(), plain.latency() + 50 + 128);
}

#[test]
fn a_post_fader_insert_with_a_pre_fader_send_and_nested_buses() {
    // a: post-fader insert 400, pre-fader send to fx; b -> sub (insert 40) -> drums
    // (insert 100) -> master; c -> drums, sends post-fader to fx.
    let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, fader_db: -6, sends: [ { bus: fx, level_db: -2, pre_fader: true } ], insert: { send: 9, return: 9, latency: 400, position: post_fader } }
  - { name: b, source: { input: 2 }, output: sub }
  - { name: c, source: { input: 3 }, output: drums, sends: [ { bus: fx, level_db: -1 } ] }
buses:
  - { name: sub, kind: group, output: drums, insert: { send: 5, return: 5, latency: 40 } }
  - { name: drums, kind: group, fader_db: -3, insert: { send: 3, return: 3, latency: 100, position: post_fader } }
  - { name: fx, kind: aux, outputs: [7, 8] }
";
    // Master input time: max(a 400, drums 40 + 100) = 400.
    null_against_plain(
        "post-fader insert",
        yaml,
        400,
        // fx (a cue mix) is aligned among its own inputs: a's send is planned at its later
        // (post-fader) tap, 400, so that switching it to post-fader keeps it aligned; c is
        // delayed to match.
        &[
            ("master_L", 400),
            ("master_R", 400),
            ("fx_L", 400),
            ("fx_R", 400),
        ],
    );
}

#[test]
fn inserts_on_channels_only_need_no_edge_delay_lines() {
    // Today's case: the channels are delayed to the slowest insert, nothing else.
    let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, output: drums, sends: [ { bus: fx, level_db: -3 } ], insert: { send: 9, return: 9, latency: 237 } }
  - { name: b, source: { input: 2 }, sends: [ { bus: fx, level_db: 0, pre_fader: true } ], insert: { send: 10, return: 10, latency: 100, position: pre_eq } }
  - { name: c, source: { input: 3 }, output: drums }
buses:
  - { name: drums, kind: group }
  - { name: fx, kind: aux }
";
    null_against_plain(
        "channels only",
        yaml,
        237,
        &[("master_L", 237), ("master_R", 237)],
    );
    let nodes: Vec<_> = [237usize, 100, 0]
        .iter()
        .zip([
            faderbridge::session::model::Output::Bus(0),
            faderbridge::session::model::Output::Master,
            faderbridge::session::model::Output::Bus(0),
        ])
        .map(|(&l, o)| faderbridge::engine::latcomp::ChanNode {
            latency: l,
            post_fader: false,
            output: o,
            sends: vec![1],
        })
        .collect();
    let bus = |o| faderbridge::engine::latcomp::BusNode {
        latency: 0,
        output: o,
        terminal: false,
    };
    let m = faderbridge::session::model::Output::Master;
    let p = faderbridge::engine::latcomp::plan(&nodes, &[bus(m), bus(m)], &[0, 1], 0);
    assert!(p.no_extras(), "{p:?}");
    assert_eq!(p.common, vec![0, 137, 237]);
}

// ---------------------------------------------------------------------------------------------
// Position: the send level shows where the insert sits.

/// The steady-state RMS (dBFS) of output `port` of `yaml` with the one-block gear looped in,
/// for a 1 kHz sine at -12 dBFS into `a`.
fn send_level(yaml: &str, port: &str) -> f64 {
    let n = 24000;
    let sig: HashMap<&str, Vec<f32>> = [("a_in", sine(1000.0, 0.25, n))].into_iter().collect();
    let s = parse(yaml);
    let mut setup = InsertSetup::offline(&s);
    setup.outboard = true;
    let mut e = build(yaml, Some(&setup));
    let y = run(&mut e, &sig, n, true);
    rms_db(&y[port][n / 2..])
}

/// A session with the insert at a position, a fader and an EQ boost at 1 kHz (dB).
type Yaml = dyn Fn(&str, f32, f32) -> String;

/// For each case (position, fader, EQ, expected change in dB): the send level at `port` of
/// `yaml` with those changes by the expected dB (within 0.01) from `base`.
fn assert_send_changes(
    what: &str,
    yaml: &Yaml,
    port: &str,
    base: f64,
    cases: &[(&str, f32, f32, f64)],
) {
    for &(pos, fader, eq, change) in cases {
        let got = send_level(&yaml(pos, fader, eq), port) - base;
        eprintln!("{what} insert {pos}, fader {fader} dB, EQ {eq} dB: send {got:+.3} dB");
        assert!(
            (got - change).abs() < 0.01,
            "{what} {pos} fader {fader} eq {eq}: send changed by {got:.3} dB, want {change}"
        );
    }
}

fn channel_yaml(position: &str, fader: f32, eq_db: f32) -> String {
    format!(
        "version: 1
channels:
  - {{ name: a, source: {{ input: 1 }}, fader_db: {fader}, eq: [ {{ type: bell, freq: 1000, gain_db: {eq_db}, q: 1 }} ], insert: {{ send: 9, return: 9, latency: {BLOCK}, position: {position} }} }}
"
    )
}

#[test]
fn the_channel_insert_sits_where_its_position_says() {
    let port = "a_insert_send";
    // The reference: a -12 dBFS sine through a unity strip (RMS -15.05 dBFS).
    let base = send_level(&channel_yaml("post_dynamics", 0.0, 0.0), port);
    let want = 20.0 * (0.25f64 / 2f64.sqrt()).log10();
    assert!(
        (base - want).abs() < 0.01,
        "send at unity: {base:.3} vs {want:.3}"
    );
    let cases = [
        // (position, fader, eq, expected change of the send in dB)
        ("post_fader", -6.0, 0.0, -6.0),
        ("post_dynamics", -6.0, 0.0, 0.0),
        ("pre_eq", -6.0, 0.0, 0.0),
        ("post_dynamics", 0.0, 6.0, 6.0),
        ("post_fader", 0.0, 6.0, 6.0),
        ("pre_eq", 0.0, 6.0, 0.0),
    ];
    assert_send_changes("channel", &channel_yaml, port, base, &cases);
}

#[test]
fn bus_and_master_inserts_sit_where_their_position_says() {
    let bus = |pos: &str, fader: f32, eq: f32| {
        format!(
            "version: 1
channels:
  - {{ name: a, source: {{ input: 1 }}, output: drums }}
buses:
  - {{ name: drums, kind: group, fader_db: {fader}, eq: [ {{ type: bell, freq: 1000, gain_db: {eq}, q: 1 }} ], insert: {{ send: 3, return: 3, latency: {BLOCK}, position: {pos} }} }}
"
        )
    };
    let master = |pos: &str, fader: f32, eq: f32| {
        format!(
            "version: 1
channels:
  - {{ name: a, source: {{ input: 1 }} }}
master:
  fader_db: {fader}
  eq: [ {{ type: bell, freq: 1000, gain_db: {eq}, q: 1 }} ]
  insert: {{ send: 3, return: 3, latency: {BLOCK}, position: {pos} }}
"
        )
    };
    let strips: [(&str, &Yaml, &str); 2] = [
        ("bus", &bus, "drums_insert_send_L"),
        ("master", &master, "master_insert_send_L"),
    ];
    for (what, yaml, port) in strips {
        let base = send_level(&yaml("post_dynamics", 0.0, 0.0), port);
        let cases = [
            ("post_fader", -6.0, 0.0, -6.0),
            ("post_dynamics", -6.0, 0.0, 0.0),
            ("post_dynamics", 0.0, 6.0, 6.0),
            ("pre_eq", 0.0, 6.0, 0.0),
        ];
        assert_send_changes(what, yaml, port, base, &cases);
    }
}

/// With the one-block gear in circuit (not bypassed) on a channel, a group bus and the master,
/// the master output is the session without inserts delayed by the engine's latency.
#[test]
fn gear_in_circuit_everywhere_nulls_against_the_plain_session() {
    let yaml = format!(
        "version: 1
channels:
  - {{ name: a, source: {{ input: 1 }}, output: drums, insert: {{ send: 9, return: 9, latency: {BLOCK}, position: post_fader }} }}
  - {{ name: b, source: {{ input: 2 }}, sends: [ {{ bus: fx, level_db: -3, pre_fader: true }} ] }}
  - {{ name: c, source: {{ input: 3 }}, output: drums, sends: [ {{ bus: fx, level_db: 0 }} ] }}
buses:
  - {{ name: drums, kind: group, insert: {{ send: 3, return: 3, latency: {BLOCK} }} }}
  - {{ name: fx, kind: aux, insert: {{ send: 5, return: 5, latency: {BLOCK}, position: pre_eq }} }}
master:
  insert: {{ send: 7, return: 7, latency: {BLOCK}, position: post_fader }}
"
    );
    let n = 24000;
    let sig = noise_inputs(&["a_in", "b_in", "c_in"], n);
    let s = parse(&yaml);
    let mut setup = InsertSetup::offline(&s);
    setup.outboard = true;
    let mut e = build(&yaml, Some(&setup));
    let mut plain = build(&without_inserts(&yaml), None);
    let added = e.latency() - plain.latency();
    // a: 64 into drums (64 more) = 128; master = 128, + master insert 64.
    assert_eq!(added, 3 * BLOCK);
    let y = run(&mut e, &sig, n, true);
    let r = run(&mut plain, &sig, n, false);
    for p in ["master_L", "master_R"] {
        let res = residual_db(&r[p], &y[p], added, 0, n - added);
        eprintln!("gear everywhere: {p}: residual {res:.1} dBFS, added {added}");
        assert!(res < -120.0, "{p}: {res:.1} dBFS");
    }
}

/// `faderbridge render` (the threaded offline renderer) of a session with fixed-latency
/// inserts on a group bus, an aux bus and the master, and a post-fader channel insert with a
/// pre-fader send, equals the render without them sample for sample: the render removes the
/// engine's whole reported latency, and every path is aligned to it.
#[test]
fn a_render_with_bus_and_master_inserts_stays_aligned_to_the_stems() {
    let dir = std::env::temp_dir().join(format!("fb-insert-graph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, seed) in [("n1.wav", 1), ("n2.wav", 2), ("n3.wav", 3)] {
        wav::write_mono(&dir.join(name), RATE as u32, noise(seed, 24000));
    }
    let with = "version: 1
channels:
  - { name: a, source: { file: n1.wav }, output: drums }
  - { name: b, source: { file: n2.wav }, fader_db: -4, sends: [ { bus: fx, level_db: -3, pre_fader: true } ], insert: { send: 9, return: 9, latency: 77, position: post_fader } }
  - { name: c, source: { file: n3.wav }, sends: [ { bus: fx, level_db: 0 } ] }
buses:
  - { name: drums, kind: group, insert: { send: 3, return: 3, latency: 300 } }
  - { name: fx, kind: aux, insert: { send: 5, return: 5, latency: 120, position: pre_eq } }
master:
  insert: { send: 7, return: 7, latency: 64 }
";
    let without = without_inserts(with);
    let outs = [("with", with), ("without", without.as_str())]
        .map(|(n, y)| wav::render_text(&dir, n, y, 0.5));
    assert_eq!(outs[0].len(), outs[1].len());
    let res = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    let res_db = 20.0 * res.max(1e-15).log10();
    eprintln!(
        "render with bus/master inserts against without: residual {res_db:.1} dBFS over {} samples",
        outs[0].len()
    );
    assert!(rms_db(&outs[1]) > -30.0, "the render carries the noise");
    assert!(res_db < -120.0, "aligned to the stems: {res_db:.1} dBFS");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A send behind a post-fader insert switched between pre- and post-fader (at build and in
/// the middle of playback) stays aligned on its cue mix: its delay line takes the length of
/// the tap it now uses.
#[test]
fn a_send_switched_pre_post_around_a_post_fader_insert_stays_aligned() {
    let with = "version: 1
channels:
  - { name: a, source: { input: 1 }, fader_db: -5, sends: [ { bus: cue, level_db: -2, pre_fader: true } ], insert: { send: 9, return: 9, latency: 200, position: post_fader } }
  - { name: b, source: { input: 2 }, sends: [ { bus: cue, level_db: 0 } ] }
buses:
  - { name: cue, kind: aux, outputs: [3, 4] }
";
    let plain_pre = without_inserts(with);
    let plain_post = plain_pre.replace("pre_fader: true", "pre_fader: false");
    let n = 384 * BLOCK;
    let half = n / 2;
    let sig = noise_inputs(&["a_in", "b_in"], n);
    let first: HashMap<&str, Vec<f32>> =
        sig.iter().map(|(k, v)| (*k, v[..half].to_vec())).collect();
    let second: HashMap<&str, Vec<f32>> =
        sig.iter().map(|(k, v)| (*k, v[half..].to_vec())).collect();
    let pre = run(&mut build(&plain_pre, None), &sig, n, false);
    let post = run(&mut build(&plain_post, None), &sig, n, false);
    // The cue takes its inputs at 200 (a's send at its post-fader tap, behind the insert).
    let shift = 200;
    let s = parse(with);
    let tree = ParamTree::build(&s);
    let pre_addr = tree
        .get(tree.resolve("ch/a/sends/cue/pre_fader").expect("path"))
        .addr;

    // Switched to post-fader before playing.
    let mut e = build(with, None);
    e.apply(pre_addr, 0.0);
    let y = run(&mut e, &sig, n, false);
    let res = residual_db(&post["cue_L"], &y["cue_L"], shift, 0, n - shift);
    eprintln!("send post-fader from the start: cue residual {res:.1} dBFS");
    assert!(res < -120.0, "post from the start: {res:.1} dBFS");

    // Pre-fader, switched to post-fader half way.
    let mut e = build(with, None);
    let mut y = run(&mut e, &first, half, false);
    e.apply(pre_addr, 0.0);
    let y2 = run(&mut e, &second, n - half, false);
    for (k, v) in y.iter_mut() {
        v.extend_from_slice(&y2[k]);
    }
    let before = residual_db(&pre["cue_L"], &y["cue_L"], shift, 0, half - shift);
    let after = residual_db(&post["cue_L"], &y["cue_L"], shift, half, n - shift);
    eprintln!(
        "send pre-fader, then post-fader from sample {half}: cue residual {before:.1} dBFS \
         before, {after:.1} dBFS after"
    );
    assert!(before < -120.0, "pre-fader: {before:.1} dBFS");
    assert!(
        after < -120.0,
        "post-fader after the switch: {after:.1} dBFS"
    );
}
