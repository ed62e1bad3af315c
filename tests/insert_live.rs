//! The hardware insert live on JACK (issue 8, points 1 and 4), against a private
//! `jackd -d dummy` started here (256-frame periods) and two JACK clients of this process:
//! "gear" stands in for outboard gear (delays its input by [`GEAR_DELAY`] samples and applies
//! [`GEAR_DB`]) and "tester" plays deterministic noise into two identical channels and records
//! `faderbridge:master_L`/`_R` together with what it played.
//!
//! Channel `a` (panned hard left) has the insert into the gear; channel `b` (hard right) has
//! none and is the reference path. As in `tests/insert_measure.rs`, JACK closes the
//! send → gear → return cycle with one period, so the return arrives `GEAR_DELAY + PERIOD`
//! samples after the send; the engine is given exactly that as the insert's (measured)
//! latency, so bypass (a delay of that length) and the gear line up.
//!
//! The same through the daemon (`faderbridge run`), with the latency taken from a stored
//! measurement. Also here: the allocation guard (the insert processor never allocates in
//! `process`) and the offline behaviour (bypassed, delayed by the fixed latency).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_no_alloc::{AllocDisabler, assert_no_alloc};
use faderbridge::audio::EngineFactory;
use faderbridge::audio::jack::{client_lock, open_client};
use faderbridge::engine::{Engine, EngineHandle, InsertSetup};
use faderbridge::params::{ParamChange, ParamTree};
use faderbridge::session::{
    self,
    model::{PortRef, Session},
};

#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;
#[path = "common/tester.rs"]
mod tester;
use tester::{Noise, Tester, heard, played};

#[cfg(debug_assertions)]
#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

const SERVER: &str = "fbtest-insert-live";

/// The JACK tests run one at a time (libjack keeps per-process state).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const PERIOD: u32 = 256;
const GEAR_DELAY: usize = 237;
const GEAR_DB: f32 = -6.0;
/// The round trip through the gear: its delay and the period that closes the cycle.
const ROUND_TRIP: usize = GEAR_DELAY + PERIOD as usize;
const NOISE_AMP: f32 = 0.25;

const SESSION: &str = r#"
version: 1
channels:
  - { name: a, source: { input: 1 }, pan: -1, insert: { send: "gear:in", return: "gear:out" } }
  - { name: b, source: { input: 2 }, pan: 1 }
"#;

/// [`SESSION`] without the insert: the engine's latency is the limiter's look-ahead alone.
const SESSION_PLAIN: &str = r#"
version: 1
channels:
  - { name: a, source: { input: 1 }, pan: -1 }
  - { name: b, source: { input: 2 }, pan: 1 }
"#;

fn parse(yaml: &str) -> Session {
    session::parse_str(yaml, Path::new("/nonexistent/insert-live.yaml"))
        .unwrap_or_else(|e| panic!("test session does not parse:\n{e}"))
}

// ---------------------------------------------------------------------------------------------
// The gear: a delay of GEAR_DELAY samples and a gain.

#[path = "common/gear.rs"]
mod gear;
use gear::{Gear, GearSetup};

/// The gear of these tests: GEAR_DELAY samples at GEAR_DB.
fn gear_setup() -> GearSetup {
    GearSetup {
        gain_db: GEAR_DB,
        ..GearSetup::delay(GEAR_DELAY)
    }
}

// ---------------------------------------------------------------------------------------------
// The tester: plays noise, records (played, master_L, master_R) per frame.

fn start_tester(server: &str) -> Tester<1, 2> {
    Tester::start(
        server,
        "tester",
        ["sig"],
        ["rec_L", "rec_R"],
        Noise::new(0x1234_5678, NOISE_AMP).signal(),
        &[
            ("tester:sig", "faderbridge:a_in"),
            ("tester:sig", "faderbridge:b_in"),
            ("faderbridge:master_L", "tester:rec_L"),
            ("faderbridge:master_R", "tester:rec_R"),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Analysis.

/// The delay of `y` against `x` (0..max_lag) with the best normalised correlation over
/// `y[start..start + len]`, the least-squares gain at it and the largest residual.
fn fit(x: &[f32], y: &[f32], start: usize, len: usize, max_lag: usize) -> (usize, f64, f64) {
    let mut best = (0, 0.0f64);
    for lag in 0..max_lag.min(start) {
        let (mut xy, mut xx) = (0.0f64, 0.0f64);
        for t in start..start + len {
            let xv = f64::from(x[t - lag]);
            xy += xv * f64::from(y[t]);
            xx += xv * xv;
        }
        let c = xy.abs() / xx.sqrt().max(1e-30);
        if c > best.1 {
            best = (lag, c);
        }
    }
    let lag = best.0;
    let (mut xy, mut xx) = (0.0f64, 0.0f64);
    for t in start..start + len {
        let xv = f64::from(x[t - lag]);
        xy += xv * f64::from(y[t]);
        xx += xv * xv;
    }
    let g = xy / xx;
    let res = (start..start + len)
        .map(|t| (f64::from(y[t]) - g * f64::from(x[t - lag])).abs())
        .fold(0.0, f64::max);
    (lag, g, res)
}

fn db(g: f64) -> f64 {
    20.0 * g.abs().log10()
}

/// The engine's raised-cosine glide over `len` samples, `k` samples after it started
/// (`SmoothedGain`: the first sample already moves).
fn glide(k: i64, len: i64) -> f64 {
    if k < 0 {
        0.0
    } else if k >= len - 1 {
        1.0
    } else {
        let t = (k + 1) as f64 / len as f64;
        0.5 - 0.5 * (std::f64::consts::PI * t).cos()
    }
}

// ---------------------------------------------------------------------------------------------

struct Console {
    session: Session,
    tree: ParamTree,
    handle: Option<EngineHandle>,
    latencies: Vec<Option<usize>>,
}

fn factory(c: &Arc<Mutex<Console>>, latency: f64) -> EngineFactory {
    let c = c.clone();
    Arc::new(move |rate, block| {
        let mut c = c.lock().map_err(|e| e.to_string())?;
        let setup = InsertSetup {
            latency: vec![Some(latency), None],
            outboard: true,
            ..InsertSetup::default()
        };
        let mut e = Engine::build_with(
            &c.session,
            &c.tree,
            &HashMap::new(),
            rate as f32,
            block,
            &setup,
        )
        .map_err(|e| e.to_string())?;
        c.handle = Some(e.handle());
        c.latencies = e.insert_latencies();
        Ok(Box::new(e))
    })
}

fn set(c: &Arc<Mutex<Console>>, path: &str, value: f32) {
    let mut c = c.lock().expect("console");
    let id = c.tree.resolve(path).expect("parameter exists");
    let addr = c.tree.get(id).addr;
    c.handle
        .as_mut()
        .expect("engine running")
        .send(ParamChange {
            addr,
            value,
            frame: 0,
        })
        .expect("queue has room");
}

#[test]
fn the_gear_sits_in_the_channel_and_bypass_keeps_its_timing_without_a_click() {
    let _s = serial();
    let _jackd = Jackd::start_period(SERVER, PERIOD);
    let gear = Gear::start(SERVER, gear_setup());
    let session = parse(SESSION);
    let tree = ParamTree::build(&session);
    for p in ["send_db", "return_db", "wet", "invert", "bypass"] {
        assert!(
            tree.resolve(&format!("ch/a/insert/{p}")).is_some(),
            "ch/a/insert/{p} is a parameter"
        );
    }
    assert!(tree.resolve("ch/b/insert/wet").is_none(), "b has no insert");
    let con = Arc::new(Mutex::new(Console {
        session,
        tree,
        handle: None,
        latencies: Vec::new(),
    }));
    let audio = tester::start_engine(SERVER, factory(&con, ROUND_TRIP as f64));
    assert_eq!(
        con.lock().expect("console").latencies,
        vec![Some(ROUND_TRIP), None]
    );
    // The insert's ports exist and are connected as the session says.
    {
        let c = open_client("probe", Some(SERVER)).expect("probe");
        let send = c.port_by_name("faderbridge:a_insert_send").expect("send");
        let ret = c
            .port_by_name("faderbridge:a_insert_return")
            .expect("return");
        assert!(send.is_connected_to("gear:in").expect("query"));
        assert!(ret.is_connected_to("gear:out").expect("query"));
        assert!(c.port_by_name("faderbridge:b_insert_send").is_none());
        let _g = client_lock();
        drop(c);
    }
    let mut t = start_tester(SERVER);
    let rate = 48000usize;
    let max_lag = 4 * PERIOD as usize + ROUND_TRIP;

    // 1. Gear in (wet 1): the level drops by the gear's 6 dB and the signal arrives one round
    // trip after the reference channel's.
    let rec = t.record(rate / 2);
    let (x, yl, yr) = (played(&rec, 0), heard(&rec, 0), heard(&rec, 1));
    let (start, len) = (max_lag + 1, rate / 4);
    let (lag_ref, g_ref, res_ref) = fit(&x, &yr, start, len, max_lag);
    let (lag_in, g_in, res_in) = fit(&x, &yl, start, len, max_lag);
    eprintln!(
        "reference: lag {lag_ref}, gain {:.4} dB, residual {res_ref:.2e}; gear in: lag {lag_in}, \
         gain {:.4} dB, residual {res_in:.2e}",
        db(g_ref),
        db(g_in)
    );
    assert!(
        res_ref < 1e-5 && res_in < 1e-5,
        "the paths are exact delays"
    );
    assert!(db(g_ref).abs() < 0.01, "reference at unity: {}", db(g_ref));
    assert!(
        (db(g_in) - db(g_ref) - f64::from(GEAR_DB)).abs() < 0.1,
        "gear in: {} dB against the reference",
        db(g_in) - db(g_ref)
    );
    // The return arrives GEAR_DELAY + one period after the send; the latency compensation
    // delays the reference channel by as much, so both arrive together.
    assert_eq!(
        lag_in, lag_ref,
        "the reference channel is delayed by the insert's round trip"
    );
    assert!(lag_ref >= ROUND_TRIP, "{lag_ref}");

    // 2. Bypass while playing: a 10 ms crossfade from the gear to the latency delay, no time
    // shift, no click.
    let rec = t.record_then(rate, rate / 4, || set(&con, "ch/a/insert/bypass", 1.0));
    let (x, yl) = (played(&rec, 0), heard(&rec, 0));
    let lag = lag_in;
    let g = 10f64.powf(f64::from(GEAR_DB) / 20.0);
    // Where the fade starts: the first sample off the gear-in line by more than 1e-4.
    let onset = (lag..yl.len())
        .find(|&i| (f64::from(yl[i]) - g * f64::from(x[i - lag])).abs() > 1e-4)
        .expect("the bypass took effect in the recording");
    assert!(
        onset > lag + 2 * PERIOD as usize,
        "recorded the gear-in state before the toggle"
    );
    let fade = (10 * rate / 1000) as i64;
    let window = (onset - PERIOD as usize)..(onset + 2 * fade as usize + 4800).min(yl.len());
    let expect = |s: i64, i: usize| {
        let b = glide(i as i64 - s, fade);
        f64::from(x[i - lag]) * (g + (1.0 - g) * b)
    };
    let (mut best_s, mut best_err) = (0i64, f64::MAX);
    for s in (onset as i64 - 200)..=(onset as i64) {
        let err = window
            .clone()
            .map(|i| (f64::from(yl[i]) - expect(s, i)).abs())
            .fold(0.0, f64::max);
        if err < best_err {
            best_err = err;
            best_s = s;
        }
    }
    eprintln!(
        "bypass: fade starts {} samples before the first deviation > 1e-4; largest deviation \
         from the expected crossfade {best_err:.2e} ({:.1} dBFS)",
        onset as i64 - best_s,
        db(best_err)
    );
    assert!(
        db(best_err) < -60.0,
        "no click above -60 dBFS around the toggle: {:.1} dBFS",
        db(best_err)
    );
    // Settled: the dry level, at the very same delay.
    let settled = onset + fade as usize + 1000;
    let (lag_b, g_b, res_b) = fit(&x, &yl, settled, rate / 8, max_lag);
    eprintln!(
        "bypassed: lag {lag_b}, gain {:.4} dB, residual {res_b:.2e}",
        db(g_b)
    );
    assert_eq!(lag_b, lag_in, "no time shift between bypassed and inserted");
    assert!(db(g_b).abs() < 0.1, "bypassed: the dry level");
    assert!(res_b < 1e-5);

    // 3. And back in: the gear's level again, same delay.
    set(&con, "ch/a/insert/bypass", 0.0);
    t.record(rate / 10);
    let rec = t.record(rate / 2);
    let (x, yl) = (played(&rec, 0), heard(&rec, 0));
    let (lag_2, g_2, _) = fit(&x, &yl, max_lag + 1, rate / 4, max_lag);
    assert_eq!(lag_2, lag_in);
    assert!((db(g_2) - f64::from(GEAR_DB)).abs() < 0.1, "{}", db(g_2));

    drop(t);
    audio.stop();
    drop(gear);
}

/// 2000 blocks of 64 frames of `e` under the allocation guard, a sine at 0.5 into every input,
/// with the parameters `moves` changed in turn every 7 blocks (to 1 and 0 alternately; the
/// `_db` ones to -12 and 0): the peak of each output in `watch`.
fn churn(e: &mut Engine, tree: &ParamTree, moves: &[&str], watch: &[usize]) -> Vec<f32> {
    let mut h = e.handle();
    let addr = |p: &str| tree.get(tree.resolve(p).expect("path")).addr;
    let sig: Vec<f32> = (0..64).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
    let inputs: Vec<&[f32]> = vec![&sig; e.input_ports().len()];
    let mut out = vec![vec![0.0f32; 64]; e.output_ports().len()];
    let mut peak = vec![0.0f32; watch.len()];
    for k in 0..2000usize {
        if k % 7 == 0 {
            let p = moves[(k / 7) % moves.len()];
            let v = if (k / 7) % 2 == 0 { 1.0 } else { 0.0 };
            h.send(ParamChange {
                addr: addr(p),
                value: if p.ends_with("_db") { -v * 12.0 } else { v },
                frame: 0,
            })
            .expect("queue");
        }
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        assert_no_alloc(|| e.process(64, &inputs, &mut outs));
        for (p, &o) in peak.iter_mut().zip(watch) {
            *p = p.max(out[o].iter().fold(0.0, |m, v| m.max(v.abs())));
        }
    }
    peak
}

/// The insert processor (send, return, wet, polarity and bypass moving) allocates nothing in
/// `process`.
#[test]
fn the_insert_never_allocates_while_processing() {
    let yaml = "version: 1\nchannels:\n  - { name: m, source: { input: 1 }, insert: { send: 3, return: 3 } }\n  - { name: s, source: { input: [1, 2] }, insert: { send: 5, return: 5, latency: 300 } }\n";
    let s = parse(yaml);
    let tree = ParamTree::build(&s);
    let setup = InsertSetup {
        latency: vec![Some(493.0), Some(300.0)],
        outboard: true,
        ..InsertSetup::default()
    };
    let mut e = Engine::build_with(&s, &tree, &HashMap::new(), 48000.0, 64, &setup).expect("build");
    // `s` runs through a compensation delay of 493 − 300 samples: covered by the guard too.
    assert_eq!(e.compensation(), 493);
    let names: Vec<&str> = e.output_ports().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "master_L",
            "master_R",
            "m_insert_send",
            "s_insert_send_L",
            "s_insert_send_R"
        ]
    );
    let ins: Vec<&str> = e.input_ports().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        ins,
        [
            "m_in",
            "s_in_L",
            "s_in_R",
            "m_insert_return",
            "s_insert_return_L",
            "s_insert_return_R"
        ]
    );
    let moves = [
        "ch/m/insert/bypass",
        "ch/m/insert/wet",
        "ch/m/insert/invert",
        "ch/s/insert/send_db",
        "ch/s/insert/return_db",
        "ch/s/insert/bypass",
    ];
    let peak_send = churn(&mut e, &tree, &moves, &[2])[0];
    assert!(peak_send > 0.1, "the send carries the signal: {peak_send}");
}

/// Inserts on a group bus, an aux bus and the master, a post-fader channel insert whose send
/// is switched between pre- and post-fader (its edge delay line changes length), the
/// compensation's per-edge delay lines: no allocation on the audio thread either.
#[test]
fn bus_and_master_inserts_never_allocate_while_processing() {
    let yaml = "version: 1
channels:
  - { name: m, source: { input: 1 }, sends: [ { bus: fx, level_db: 0, pre_fader: true }, { bus: cue, level_db: 0 } ], insert: { send: 3, return: 3, position: post_fader } }
  - { name: s, source: { input: [1, 2] }, output: grp, sends: [ { bus: cue, level_db: -3 } ] }
buses:
  - { name: grp, kind: group, insert: { send: 5, return: 5, position: pre_eq } }
  - { name: fx, kind: aux, insert: { send: 7, return: 7, position: post_fader } }
  - { name: cue, kind: aux, outputs: [11, 12] }
master:
  insert: { send: 9, return: 9 }
";
    let s = parse(yaml);
    let tree = ParamTree::build(&s);
    let setup = InsertSetup {
        latency: vec![Some(300.0), None],
        bus_latency: vec![Some(200.0), Some(50.0), None],
        master_latency: Some(64.0),
        outboard: true,
    };
    let mut e = Engine::build_with(&s, &tree, &HashMap::new(), 48000.0, 64, &setup).expect("build");
    // Master input time: max(m 300, grp 0 + 200, fx 300 + 50) = 350; + the master's 64.
    assert_eq!(e.compensation(), 414);
    assert_eq!(e.bus_insert_latencies(), vec![Some(200), Some(50), None]);
    let names: Vec<&str> = e.output_ports().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "master_L",
            "master_R",
            "cue_L",
            "cue_R",
            "m_insert_send",
            "grp_insert_send_L",
            "grp_insert_send_R",
            "fx_insert_send_L",
            "fx_insert_send_R",
            "master_insert_send_L",
            "master_insert_send_R",
        ]
    );
    let dests: Vec<Option<PortRef>> = e.output_ports()[5..]
        .iter()
        .map(|p| p.dest.clone())
        .collect();
    let want: Vec<Option<PortRef>> = [5, 6, 7, 8, 9, 10]
        .map(|n| Some(PortRef::Number(n)))
        .to_vec();
    assert_eq!(dests, want, "stereo sends go to N and N+1");
    let ins: Vec<&str> = e.input_ports().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        ins,
        [
            "m_in",
            "s_in_L",
            "s_in_R",
            "m_insert_return",
            "grp_insert_return_L",
            "grp_insert_return_R",
            "fx_insert_return_L",
            "fx_insert_return_R",
            "master_insert_return_L",
            "master_insert_return_R",
        ]
    );
    let moves = [
        "ch/m/sends/fx/pre_fader",
        "bus/grp/insert/bypass",
        "ch/m/fader_db",
        "bus/fx/insert/wet",
        "master/insert/invert",
        "ch/m/insert/bypass",
        "master/insert/send_db",
        "bus/fx/insert/return_db",
    ];
    let peak = churn(&mut e, &tree, &moves, &[5, 7, 9]);
    assert!(
        peak.iter().all(|&p| p > 0.1),
        "the bus and master sends carry the signal: {peak:?}"
    );
}

/// Offline (`Engine::build`: render, and the null backend through `set_outboard(false)`) the
/// insert is bypassed with its latency: the session's fixed `latency: N`, or 0 for `auto`
/// (no measurement applies without a backend). Whatever the `bypass` parameter says.
#[test]
fn offline_the_insert_is_a_delay_of_its_latency() {
    let yaml = "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, pan: -1, insert: { send: 3, return: 3, latency: 100 } }\n  - { name: b, source: { input: 2 }, pan: 1, insert: { send: 4, return: 4 } }\n";
    let s = parse(yaml);
    let tree = ParamTree::build(&s);
    let mut e = Engine::build(&s, &tree, &HashMap::new(), 48000.0, 64).expect("build");
    assert_eq!(e.insert_latencies(), vec![Some(100), Some(0)]);
    let mut h = e.handle();
    let bypass = tree
        .get(tree.resolve("ch/a/insert/bypass").expect("path"))
        .addr;
    h.send(ParamChange {
        addr: bypass,
        value: 0.0,
        frame: 0,
    })
    .expect("queue");
    let n = 64 * 40;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    // The returns carry something else: it must not be heard.
    let junk = vec![0.9f32; n];
    let (mut l, mut r) = (Vec::new(), Vec::new());
    let mut out = vec![vec![0.0f32; 64]; e.output_ports().len()];
    for k in 0..n / 64 {
        let xs = &x[k * 64..(k + 1) * 64];
        let js = &junk[..64];
        let inputs: Vec<&[f32]> = vec![xs, xs, js, js];
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        e.process(64, &inputs, &mut outs);
        l.extend_from_slice(&out[0]);
        r.extend_from_slice(&out[1]);
    }
    // Both sides also pass the master's constant latency (the limiter's look-ahead), and `b`
    // (insert latency 0) is delayed by 100 to match `a`: the engine reports both.
    let look_ahead = Engine::build(
        &parse(SESSION_PLAIN),
        &ParamTree::build(&parse(SESSION_PLAIN)),
        &HashMap::new(),
        48000.0,
        64,
    )
    .expect("build")
    .latency();
    assert_eq!(e.compensation(), 100);
    assert_eq!(e.latency(), look_ahead + 100);
    let ml = look_ahead + 100;
    let at = |i: usize, d: usize| if i >= d { x[i - d] } else { 0.0 };
    for i in 0..n {
        let want_l = at(i, ml);
        assert!(
            (l[i] - want_l).abs() < 1e-6,
            "L at {i}: {} vs {want_l}",
            l[i]
        );
        assert!((r[i] - at(i, ml)).abs() < 1e-6, "R at {i}");
    }

    // The same engine with gear declared hears the return (0.9 × the default gains).
    let mut e = Engine::build_with(
        &s,
        &tree,
        &HashMap::new(),
        48000.0,
        64,
        &InsertSetup {
            latency: vec![Some(100.0), None],
            outboard: true,
            ..InsertSetup::default()
        },
    )
    .expect("build");
    let inputs: Vec<&[f32]> = vec![&x[..64], &x[..64], &junk[..64], &junk[..64]];
    for _ in 0..4 {
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        e.process(64, &inputs, &mut outs);
    }
    assert!(
        out[0].iter().all(|v| (v - 0.9).abs() < 1e-6),
        "{:?}",
        &out[0][..4]
    );
    // And `set_outboard(false)` (the null backend) holds it bypassed again.
    e.set_outboard(false);
    for _ in 0..4 {
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        e.process(64, &inputs, &mut outs);
    }
    assert!(
        out[0].iter().all(|v| v.abs() < 0.5),
        "no return after set_outboard(false)"
    );
}

/// The daemon itself (`faderbridge run --backend jack`): it takes the insert's latency that
/// `measure-insert` stored for this server, rate and period from its state directory, and the
/// insert's parameters answer on the control plane (here the status socket).
#[test]
fn the_daemon_runs_the_insert_with_the_stored_latency() {
    let _s = serial();
    const SERVER2: &str = "fbtest-insert-daemon";
    let dir = std::env::temp_dir().join(format!("fb-insert-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let _jackd = Jackd::start_period(SERVER2, PERIOD);
    let gear = Gear::start(SERVER2, gear_setup());
    faderbridge::insert::cli::store(
        &dir.join("state"),
        "a",
        faderbridge::insert::InsertMeasurement {
            backend: faderbridge::insert::backend_key("jack", Some(SERVER2)),
            rate: 48000,
            block: PERIOD,
            samples: ROUND_TRIP as f64 + 0.02,
            error: 0.01,
            inverted: false,
            manual: false,
        },
    )
    .expect("store the measurement");
    let mut d = daemon::Daemon::start(
        &dir,
        SESSION,
        &["--backend", "jack", "--jack-server", SERVER2],
    );
    // The session's connections are made once the daemon is up.
    {
        let c = open_client("probe", Some(SERVER2)).expect("probe");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = c
                .port_by_name("faderbridge:a_insert_return")
                .is_some_and(|p| p.is_connected_to("gear:out").unwrap_or(false));
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the insert was never connected");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The added latency: the limiter's look-ahead plus the compensation (the stored
        // round trip, rounded), read back as `engine/latency_samples` and reported to JACK as
        // master_L's capture latency: the least capture latency of the daemon's inputs plus the
        // engine's.
        let plain = parse(SESSION_PLAIN);
        let look_ahead = Engine::build(
            &plain,
            &ParamTree::build(&plain),
            &HashMap::new(),
            48000.0,
            256,
        )
        .expect("build")
        .latency();
        let want = look_ahead + ROUND_TRIP;
        let reported = d.get("engine/latency_samples");
        let port = c.port_by_name("faderbridge:master_L").expect("master_L");
        let deadline = Instant::now() + Duration::from_secs(10);
        let upstream = || {
            ["a_in", "b_in", "a_insert_return"]
                .iter()
                .map(|n| {
                    c.port_by_name(&format!("faderbridge:{n}"))
                        .expect("input port")
                        .get_latency_range(jack::LatencyType::Capture)
                        .0 as usize
                })
                .min()
                .unwrap_or(0)
        };
        let mut range = port.get_latency_range(jack::LatencyType::Capture);
        while range.0 as usize != upstream() + want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            range = port.get_latency_range(jack::LatencyType::Capture);
        }
        let up = upstream();
        eprintln!(
            "latency: engine/latency_samples {reported}, master_L capture latency {range:?}, \
             inputs' least capture latency {up}, look-ahead {look_ahead} + round trip \
             {ROUND_TRIP}"
        );
        assert_eq!(reported, want as f64, "engine/latency_samples");
        assert_eq!(range.0 as usize, up + want, "master_L's capture latency");
        let _g = client_lock();
        drop(c);
    }
    let mut t = start_tester(SERVER2);
    let rate = 48000usize;
    let max_lag = 4 * PERIOD as usize + ROUND_TRIP;
    let (start, len) = (max_lag + 1, rate / 4);
    let take = |t: &mut Tester<1, 2>| {
        t.record(rate / 10);
        let rec = t.record(rate / 2);
        let (x, yl, yr) = (played(&rec, 0), heard(&rec, 0), heard(&rec, 1));
        (
            fit(&x, &yl, start, len, max_lag),
            fit(&x, &yr, start, len, max_lag),
        )
    };
    let ((lag_in, g_in, _), (lag_ref, _, _)) = take(&mut t);
    d.set("ch/a/insert/bypass", 1.0);
    let ((lag_b, g_b, _), _) = take(&mut t);
    d.set("ch/a/insert/bypass", 0.0);
    d.set("ch/a/insert/return_db", -3.0);
    let ((lag_r, g_r, _), _) = take(&mut t);
    eprintln!(
        "daemon: gear in lag {} ({:.3} dB), bypassed lag {} ({:.3} dB), return -3 dB lag {} \
         ({:.3} dB), against the reference",
        lag_in as i64 - lag_ref as i64,
        db(g_in),
        lag_b as i64 - lag_ref as i64,
        db(g_b),
        lag_r as i64 - lag_ref as i64,
        db(g_r)
    );
    assert_eq!(
        lag_in, lag_ref,
        "compensated: the reference channel is delayed as much"
    );
    assert_eq!(lag_b, lag_in, "bypass delays by the stored latency");
    assert_eq!(lag_r, lag_in);
    assert!((db(g_in) - f64::from(GEAR_DB)).abs() < 0.1);
    assert!(db(g_b).abs() < 0.1);
    assert!((db(g_r) - f64::from(GEAR_DB) + 3.0).abs() < 0.1);
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(
        !log.contains("no insert latency stored"),
        "the stored latency was found: {log}"
    );
    drop(t);
    drop(d);
    drop(gear);
    let _ = std::fs::remove_dir_all(&dir);
}
