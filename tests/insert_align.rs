//! Latency compensation of the hardware inserts (issue 8, point 3), against a private
//! `jackd -d dummy` (256-frame periods) and two JACK clients of this process: "gear" (a delay
//! of [`GEAR_DELAY`] samples at unity gain) and "tester" (plays deterministic noise into two
//! identical channels and records `master_L` and the aux bus `fx_L`).
//!
//! Channel `a` has the insert into the gear, channel `b` none; both are centred and both send
//! to the aux bus `fx` (`a` pre-fader, `b` post-fader), whose output goes to its own ports.
//! The engine is given the gear's round trip (its delay plus the period that closes the JACK
//! cycle) as the insert's latency, so `b` is delayed by as much. The live master and aux
//! outputs must null against the offline engine (what `faderbridge render` runs) fed the same
//! noise through the same session without the `insert:` key, once aligned; the uncompensated
//! sum would not.
//!
//! Group bus alignment with an insert on a bus: the same gear on a group bus fed by `a`, `b`
//! straight to the master; the master nulls against the render without the insert.
//!
//! Also: a render of a session with a fixed-latency insert (bypassed offline) equals the
//! render without it, sample for sample.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use faderbridge::audio::{EngineFactory, RunningAudio};
use faderbridge::engine::{Engine, InsertSetup};
use faderbridge::params::ParamTree;
use faderbridge::session::{self, model::Session};

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;
#[path = "common/tester.rs"]
mod tester;
use tester::{Noise, Tester};
#[path = "common/wav.rs"]
mod wav;

const SERVER: &str = "fbtest-insert-align";

/// The JACK tests run one at a time (libjack keeps per-process state).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const PERIOD: u32 = 256;
const GEAR_DELAY: usize = 237;
const ROUND_TRIP: usize = GEAR_DELAY + PERIOD as usize;
const NOISE_AMP: f32 = 0.25;
const RATE: usize = 48000;

const SESSION: &str = r#"
version: 1
channels:
  - name: a
    source: { input: 1 }
    insert: { send: "gear:in", return: "gear:out" }
    sends: [ { bus: fx, level_db: 0, pre_fader: true } ]
  - name: b
    source: { input: 2 }
    sends: [ { bus: fx, level_db: 0, pre_fader: false } ]
buses:
  - { name: fx, kind: aux, outputs: [3, 4] }
"#;

fn parse(yaml: &str) -> Session {
    session::parse_str(yaml, Path::new("/nonexistent/insert-align.yaml"))
        .unwrap_or_else(|e| panic!("test session does not parse:\n{e}"))
}

/// `yaml` without its `insert:` key.
fn plain(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.contains("insert:"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// The gear: a delay of GEAR_DELAY samples at unity.

#[path = "common/gear.rs"]
mod gear;
use gear::{Gear, GearSetup};

// ---------------------------------------------------------------------------------------------
// The live engine and the tester.

/// The engine of `session` with `setup` (and `tweak` applied once built) on JACK, linked; with
/// the compensation and the latency of the engine that runs.
fn start_engine(
    server: &str,
    session: Session,
    setup: InsertSetup,
    tweak: fn(&ParamTree, &mut Engine) -> Result<(), String>,
) -> (RunningAudio, usize, usize) {
    let made: Arc<Mutex<Option<(usize, usize)>>> = Arc::new(Mutex::new(None));
    let factory: EngineFactory = {
        let made = made.clone();
        Arc::new(move |rate, block| {
            let tree = ParamTree::build(&session);
            let mut e =
                Engine::build_with(&session, &tree, &HashMap::new(), rate as f32, block, &setup)
                    .map_err(|e| e.to_string())?;
            tweak(&tree, &mut e)?;
            *made.lock().map_err(|e| e.to_string())? = Some((e.compensation(), e.latency()));
            Ok(Box::new(e))
        })
    };
    let audio = tester::start_engine(server, factory);
    let (comp, latency) = made.lock().expect("made").expect("an engine was built");
    (audio, comp, latency)
}

/// The tester plays noise into both channels; after 0.1 s, one second of what it played,
/// `master_L` and `fx_L`.
fn record(server: &str) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut t = Tester::start(
        server,
        "tester",
        ["sig"],
        ["rec_m", "rec_fx"],
        Noise::new(0x2468_ace1, NOISE_AMP).signal(),
        &[
            ("tester:sig", "faderbridge:a_in"),
            ("tester:sig", "faderbridge:b_in"),
            ("faderbridge:master_L", "tester:rec_m"),
            ("faderbridge:fx_L", "tester:rec_fx"),
        ],
    );
    t.record(RATE / 10);
    let rec = t.record(RATE);
    (
        tester::played(&rec, 0),
        tester::heard(&rec, 0),
        tester::heard(&rec, 1),
    )
}

// ---------------------------------------------------------------------------------------------
// Analysis.

/// The lag (0..max_lag) at which `y[t]` best matches `r[t − lag]` (normalised correlation
/// over `y[start..start + len]`).
fn best_lag(r: &[f32], y: &[f32], start: usize, len: usize, max_lag: usize) -> usize {
    let mut best = (0, f64::MIN);
    for lag in 0..max_lag.min(start) {
        let (mut ry, mut rr) = (0.0f64, 0.0f64);
        for t in start..start + len {
            let rv = f64::from(r[t - lag]);
            ry += rv * f64::from(y[t]);
            rr += rv * rv;
        }
        let c = ry / rr.sqrt().max(1e-30);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best.0
}

/// The largest |y[t] − r[t − lag]| over the window, in dBFS.
fn residual_db(r: &[f32], y: &[f32], lag: usize, start: usize, len: usize) -> f64 {
    let m = (start..start + len)
        .map(|t| (f64::from(y[t]) - f64::from(r[t - lag])).abs())
        .fold(0.0, f64::max);
    20.0 * m.max(1e-12).log10()
}

/// The lag of the live `y` behind the render `r` ([`best_lag`], up to the round trip and four
/// periods, over half a second) and the largest residual there ([`residual_db`]).
fn null(r: &[f32], y: &[f32]) -> (usize, f64) {
    let max_lag = ROUND_TRIP + 4 * PERIOD as usize;
    let (start, len) = (max_lag + 1, RATE / 2);
    let lag = best_lag(r, y, start, len, max_lag);
    (lag, residual_db(r, y, lag, start, len))
}

/// The control: a live output of two equal halves (`a` and `b`) as it would be without
/// compensation, `b`'s half [`ROUND_TRIP`] samples earlier.
fn uncompensated(y: &[f32]) -> Vec<f32> {
    (0..y.len() - ROUND_TRIP)
        .map(|i| 0.5 * y[i] + 0.5 * y[i + ROUND_TRIP])
        .collect()
}

fn rms_db(v: &[f32]) -> f64 {
    let s: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum();
    10.0 * (s / v.len() as f64).log10()
}

/// The offline engine (as `faderbridge render` runs it) on `yaml`, fed `x` into both channel
/// inputs: (master L, fx L), compensated for the engine's own latency like a render is.
fn offline(yaml: &str, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let s = parse(yaml);
    let tree = ParamTree::build(&s);
    let mut e = Engine::build(&s, &tree, &HashMap::new(), RATE as f32, 256).expect("build");
    let lat = e.latency();
    let n = x.len() + lat;
    let mut padded = x.to_vec();
    padded.resize(n.div_ceil(256) * 256, 0.0);
    let (mut m, mut f) = (Vec::new(), Vec::new());
    let mut out = vec![vec![0.0f32; 256]; e.output_ports().len()];
    let fx = e
        .output_ports()
        .iter()
        .position(|p| p.name == "fx_L")
        .expect("fx_L");
    for b in padded.chunks(256) {
        let inputs: Vec<&[f32]> = vec![b, b];
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        e.process(256, &inputs, &mut outs);
        m.extend_from_slice(&out[0]);
        f.extend_from_slice(&out[fx]);
    }
    (
        m[lat..lat + x.len()].to_vec(),
        f[lat..lat + x.len()].to_vec(),
    )
}

#[test]
fn the_insert_channel_nulls_against_the_render_without_insert_on_master_and_aux() {
    let _s = serial();
    let _jackd = Jackd::start_period(SERVER, PERIOD);
    let gear = Gear::start(SERVER, GearSetup::delay(GEAR_DELAY));
    let setup = InsertSetup {
        latency: vec![Some(ROUND_TRIP as f64), None],
        outboard: true,
        ..InsertSetup::default()
    };
    let (audio, comp, latency) = start_engine(SERVER, parse(SESSION), setup, |_, _| Ok(()));
    assert_eq!(
        comp, ROUND_TRIP,
        "compensation = the largest insert latency"
    );
    let (x, ym, yf) = record(SERVER);
    let (rm, rf) = offline(&plain(SESSION), &x);
    assert!(rms_db(&rm) > -20.0, "the reference carries the noise");

    // The live output lags the render by the engine's compensation plus JACK's loop.
    let (lag_m, res_m) = null(&rm, &ym);
    let (lag_f, res_f) = null(&rf, &yf);

    // Control: the uncompensated sum. Both channels contribute half of the (compensated) live
    // output; without compensation `b`'s half would arrive ROUND_TRIP samples earlier.
    let (_, unc_m) = null(&rm, &uncompensated(&ym));
    let (_, unc_f) = null(&rf, &uncompensated(&yf));
    eprintln!(
        "engine latency {latency} (compensation {comp}); master: lag {lag_m}, residual \
         {res_m:.1} dBFS (uncompensated {unc_m:.1} dBFS); aux: lag {lag_f}, residual \
         {res_f:.1} dBFS (uncompensated {unc_f:.1} dBFS); reference RMS {:.1} dBFS",
        rms_db(&rm)
    );
    assert!(
        lag_m >= ROUND_TRIP && lag_m == lag_f,
        "master and aux lag the render by the compensation plus the JACK loop: {lag_m}, {lag_f}"
    );
    assert!(
        res_m < -80.0,
        "master nulls against the render: {res_m:.1} dBFS"
    );
    assert!(
        res_f < -80.0,
        "aux nulls against the render: {res_f:.1} dBFS"
    );
    assert!(
        unc_m > -30.0 && unc_f > -30.0,
        "without compensation no null: {unc_m:.1}, {unc_f:.1} dBFS"
    );

    audio.stop();
    drop(gear);
}

const BUS_SERVER: &str = "fbtest-insert-align-bus";

/// The gear on a group bus: `a` reaches the master through `grp` (the insert), `b` directly;
/// both also feed the cue mix `fx` (its own outputs) post-fader.
const BUS_SESSION: &str = r#"
version: 1
channels:
  - name: a
    source: { input: 1 }
    output: grp
    sends: [ { bus: fx, level_db: 0 } ]
  - name: b
    source: { input: 2 }
    sends: [ { bus: fx, level_db: 0 } ]
buses:
  - name: grp
    kind: group
    insert: { send: "gear:in", return: "gear:out" }
  - { name: fx, kind: aux, outputs: [3, 4] }
"#;

/// Group bus alignment with an insert on a bus: the gear (unity, delaying [`GEAR_DELAY`]) on
/// the group `grp` fed by `a`, `b` straight to the master. The master must null against the
/// render of the session without the insert (`b` delayed by the bus insert's round trip);
/// the cue mix `fx`, fed by both channels ahead of any insert, stays at its earliest (the
/// round trip less behind the master) and nulls too.
#[test]
fn group_bus_alignment_with_an_insert_on_a_bus() {
    let _s = serial();
    let _jackd = Jackd::start_period(BUS_SERVER, PERIOD);
    let gear = Gear::start(BUS_SERVER, GearSetup::delay(GEAR_DELAY));
    let setup = InsertSetup {
        bus_latency: vec![Some(ROUND_TRIP as f64), None],
        outboard: true,
        ..InsertSetup::default()
    };
    let (audio, comp, latency) = start_engine(BUS_SERVER, parse(BUS_SESSION), setup, |tree, e| {
        // Both sides of the stereo send go to the one mono `gear:in` (and both returns come
        // from `gear:out`): half the send level each makes the gear's round trip unity for the
        // (centred, so L = R) bus.
        let send = tree
            .resolve("bus/grp/insert/send_db")
            .ok_or("no bus/grp/insert/send_db")?;
        e.apply(tree.get(send).addr, 20.0 * 0.5f32.log10());
        e.settle();
        Ok(())
    });
    assert_eq!(
        comp, ROUND_TRIP,
        "compensation = the bus insert's round trip"
    );
    let (x, ym, yf) = record(BUS_SERVER);
    let (rm, rf) = offline(&plain(BUS_SESSION), &x);
    assert!(rms_db(&rm) > -20.0, "the reference carries the noise");

    let (lag_m, res_m) = null(&rm, &ym);
    let (lag_f, res_f) = null(&rf, &yf);
    // Control: without compensation `b`'s half of the master would arrive ROUND_TRIP samples
    // before `a`'s.
    let (_, unc_m) = null(&rm, &uncompensated(&ym));
    eprintln!(
        "bus insert: engine latency {latency} (compensation {comp}); master: lag {lag_m}, \
         residual {res_m:.1} dBFS (uncompensated {unc_m:.1} dBFS); cue: lag {lag_f}, residual \
         {res_f:.1} dBFS; reference RMS {:.1} dBFS",
        rms_db(&rm)
    );
    assert!(
        res_m < -80.0,
        "master nulls against the render: {res_m:.1} dBFS"
    );
    assert!(
        unc_m > -30.0,
        "without compensation no null: {unc_m:.1} dBFS"
    );
    assert!(res_f < -80.0, "the cue nulls: {res_f:.1} dBFS");
    assert_eq!(
        lag_m,
        lag_f + ROUND_TRIP,
        "the cue stays at its earliest, the master one round trip later"
    );

    audio.stop();
    drop(gear);
}

/// `faderbridge render` of a session whose channel has an insert with a fixed latency
/// (bypassed offline: a delay of that length) is the render without it, sample for sample:
/// the other channel is compensated and the render removes the engine's whole latency.
#[test]
fn a_render_with_a_fixed_latency_insert_stays_aligned_to_the_stems() {
    let dir = std::env::temp_dir().join(format!("fb-insert-align-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut noise = Noise::new(0x1357_9bdf, NOISE_AMP);
    wav::write_mono(
        &dir.join("n.wav"),
        RATE as u32,
        (0..RATE / 2).map(|_| noise.next_sample()),
    );
    let with = "version: 1\nchannels:\n  - { name: a, source: { file: n.wav }, insert: { send: 3, return: 3, latency: 237 } }\n  - { name: b, source: { file: n.wav } }\n";
    let without = "version: 1\nchannels:\n  - { name: a, source: { file: n.wav } }\n  - { name: b, source: { file: n.wav } }\n";
    let outs =
        [("with", with), ("without", without)].map(|(n, y)| wav::render_text(&dir, n, y, 0.5));
    assert_eq!(outs[0].len(), outs[1].len());
    let res = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "render with a 237-sample insert against without: largest difference {res:e} over {} samples",
        outs[0].len()
    );
    assert!(rms_db(&outs[1]) > -20.0, "the render carries the noise");
    assert!(res < 1e-6, "aligned to the stems: {res}");
    let _ = std::fs::remove_dir_all(&dir);
}
