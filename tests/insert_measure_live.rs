//! Measuring a hardware insert on the running daemon (issue 8, point 2): `faderbridge run
//! --backend jack` on a private `jackd -d dummy` (256-frame periods) started here, with JACK
//! clients of this process standing in for outboard gear (`tests/common/gear.rs`: a delay of
//! [`GEAR_DELAY`] samples at -3 dB, optionally inverted). The measurement is asked over OSC
//! (`/ch/kick/insert/measure`, real UDP) and through `faderbridge measure-insert` (which uses
//! the daemon's status socket when one answers).
//!
//! As `tests/insert_measure.rs` explains, JACK closes the send → gear → return cycle with one
//! period, so the expected round trip is `GEAR_DELAY + PERIOD`. The daemon's answer is also
//! compared with what `faderbridge measure-insert` measures with no daemon running, on the
//! same server and gear.
//!
//! The JACK tests run one at a time (a process-wide lock).

mod osc_client;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faderbridge::audio::jack::{client_lock, open_client};
use faderbridge::engine::Engine;
use faderbridge::params::ParamTree;
use faderbridge::state::{SavedState, StateDir};
use osc_client::{Client, Daemon};
use rosc::{OscMessage, OscType};

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;

#[path = "common/gear.rs"]
mod gear;
use gear::{Gear, GearSetup};

#[path = "common/tester.rs"]
mod tester;
use tester::{Noise, Tester};

const PERIOD: u32 = 256;
const GEAR_DELAY: usize = 237;
/// The round trip through a gear client: its delay and the period that closes the cycle.
const ROUND_TRIP: f64 = (GEAR_DELAY + PERIOD as usize) as f64;
/// Longest wait for a measurement's answer (up to 5 attempts of about 3 s).
const MEASURE_WAIT: Duration = Duration::from_secs(60);

const SESSION: &str = r#"version: 1
channels:
  - { name: kick, source: { input: 1 }, insert: { send: "gear:in", return: "gear:out" } }
  - { name: tom, source: { input: 2 }, insert: { send: "gearinv:in", return: "gearinv:out" } }
  - { name: hat, source: { input: 2 }, insert: { send: 1, return: 1 } }
  - { name: snare, source: { input: 1 } }
surfaces:
  - { kind: osc, listen: "127.0.0.1:{PORT}" }
"#;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gear: GEAR_DELAY samples at -3 dB.
fn gear_setup(invert: bool) -> GearSetup {
    GearSetup {
        gain_db: -3.0,
        invert,
        ..GearSetup::delay(GEAR_DELAY)
    }
}

/// The master limiter's look-ahead: the engine's latency without insert latencies.
fn look_ahead() -> usize {
    let plain = faderbridge::session::parse_str(
        "version: 1\nchannels: [{ name: a, source: { input: 1 } }]\n",
        Path::new("/nonexistent/plain.yaml"),
    )
    .expect("session");
    Engine::build(
        &plain,
        &ParamTree::build(&plain),
        &HashMap::new(),
        48000.0,
        PERIOD as usize,
    )
    .expect("build")
    .latency()
}

/// `faderbridge measure-insert SESSION STRIP` with this server and state directory.
fn cli(session: &Path, strip: &str, server: &str, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("measure-insert")
        .arg(session)
        .arg(strip)
        .args(["--jack-server", server, "--state-dir"])
        .arg(state)
        .output()
        .expect("run faderbridge")
}

/// The samples of the report's first line (`kick: 493.02 samples (...)`).
fn cli_samples(out: &Output) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "measure-insert failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let w: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(w.get(2), Some(&"samples"), "{text}");
    w[1].parse().expect("samples")
}

/// Wait until the daemon's insert ports are connected to the gear (the session's connections
/// are made once the daemon is up).
fn wait_connected(server: &str, pairs: &[(&str, &str)]) {
    let c = open_client("probe", Some(server)).expect("probe");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = pairs.iter().all(|(ours, theirs)| {
            c.port_by_name(ours)
                .is_some_and(|p| p.is_connected_to(theirs).unwrap_or(false))
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the inserts were never connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _g = client_lock();
    drop(c);
}

/// Wait until `port` exists on `server`.
fn wait_port(server: &str, port: &str) {
    let c = open_client("probe", Some(server)).expect("probe");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.port_by_name(port).is_none() {
        assert!(Instant::now() < deadline, "{port} never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _g = client_lock();
    drop(c);
}

/// The OSC answer to a measurement (`/ch/NAME/insert/latency ,ffi` or `/error ,ss`).
fn answer(c: &Client, latency_addr: &str, limit: Duration) -> OscMessage {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(ms) = c.recv_within(end - Instant::now())
            && let Some(m) = ms
                .into_iter()
                .find(|m| m.addr == latency_addr || m.addr == "/error")
        {
            return m;
        }
    }
    panic!("no answer to the measurement within {limit:?}");
}

/// (samples, error, inverted) of a `/…/insert/latency ,ffi` reply.
fn latency_args(m: &OscMessage) -> (f64, f64, bool) {
    match m.args.as_slice() {
        [OscType::Float(s), OscType::Float(e), OscType::Int(i)] => {
            (f64::from(*s), f64::from(*e), *i != 0)
        }
        _ => panic!("{}: unexpected arguments {:?}", m.addr, m.args),
    }
}

fn error_text(m: &OscMessage) -> String {
    assert_eq!(m.addr, "/error", "expected an error, got {m:?}");
    match m.args.as_slice() {
        [OscType::String(_), OscType::String(e)] => e.clone(),
        other => panic!("/error with {other:?}"),
    }
}

/// The state file, once it satisfies `f` (the console writes it within 250 ms of a change).
fn wait_state(dir: &Path, f: impl Fn(&SavedState) -> bool) -> SavedState {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = StateDir::open(dir)
            .ok()
            .and_then(|d| d.load().ok().flatten());
        if let Some(s) = s
            && f(&s)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "the state file never had it");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// OSC: the daemon measures the gear as the command does without it, stores the result in
/// the state file, applies it (`engine/latency_samples`), announces nothing about the
/// insert's parameters; a second request while it runs is refused; an insert whose return
/// brings nothing back is refused and changes nothing.
#[test]
fn osc_measure_on_the_running_daemon_stores_and_applies_the_latency() {
    let _s = serial();
    const SERVER: &str = "fbtest-livemeas-osc";
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let _gear = Gear::start(jackd.name(), gear_setup(false));
    let _inv = Gear::start_named(jackd.name(), "gearinv", gear_setup(true));

    // The command on its own (no daemon), for comparison, into a state dir of its own.
    let solo = osc_client::tempdir("livemeas-solo");
    std::fs::write(solo.join("s.yaml"), SESSION.replace("{PORT}", "9")).expect("session");
    let by_cli = cli_samples(&cli(
        &solo.join("s.yaml"),
        "kick",
        SERVER,
        &solo.join("state"),
    ));
    let _ = std::fs::remove_dir_all(&solo);

    let d = Daemon::start(
        "livemeas-osc",
        SESSION,
        &["--backend", "jack", "--jack-server", SERVER],
    );
    let state = d.path().join("state");
    wait_connected(
        SERVER,
        &[
            ("faderbridge:kick_insert_send", "gear:in"),
            ("faderbridge:kick_insert_return", "gear:out"),
        ],
    );
    let look = look_ahead();
    let c = Client::new(d.addr());
    let watcher = Client::new(d.addr());
    watcher.subscribe(60);
    assert_eq!(
        c.query("/engine/latency_samples") as usize,
        look,
        "nothing stored yet: the look-ahead alone"
    );

    // Measure; a second request (another client) while it runs is refused at once.
    let t0 = Instant::now();
    c.send("/ch/kick/insert/measure", vec![]);
    let other = Client::new(d.addr());
    // The first one runs once its measuring client is on the server.
    wait_port(SERVER, "faderbridge-measure:send");
    other.send("/ch/1/insert/measure", vec![]);
    let busy = error_text(&answer(&other, "/ch/kick/insert/latency", MEASURE_WAIT));
    eprintln!("second request: {busy}");
    assert!(
        busy.contains("a measurement of ch/kick is running"),
        "{busy}"
    );

    let m = answer(&c, "/ch/kick/insert/latency", MEASURE_WAIT);
    let took = t0.elapsed();
    let (samples, error, inverted) = latency_args(&m);
    eprintln!(
        "daemon: {samples:.3} samples (error {error:.4}, inverted {inverted}) in {took:.1?}; \
         command without daemon: {by_cli:.2}; expected {ROUND_TRIP} (gear {GEAR_DELAY} + one period)"
    );
    assert!(
        (samples - by_cli).abs() <= 1.0,
        "daemon {samples} vs command {by_cli}"
    );
    assert!(
        (samples - ROUND_TRIP).abs() <= 1.0,
        "{samples} vs {ROUND_TRIP}"
    );
    assert!(!inverted);
    assert!(error < 0.5, "error {error}");

    // Stored in the live state, hence in the state file, keyed like the command's.
    let key = format!("jack:{SERVER}");
    let st = wait_state(&state, |s| s.insert_measurements.contains_key("kick"));
    let e = faderbridge::insert::stored(&st, "kick", &key, 48000, PERIOD).expect("stored");
    assert!(
        (e.samples - samples).abs() < 1e-3,
        "{} vs {samples}",
        e.samples
    );
    assert!(!e.manual && !e.inverted);
    // Applied: an engine with the new latency runs.
    let want = look + samples.round() as usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lat = c.query("/engine/latency_samples") as usize;
    while lat != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        lat = c.query("/engine/latency_samples") as usize;
    }
    eprintln!(
        "engine/latency_samples {lat} = look-ahead {look} + {}",
        samples.round()
    );
    assert_eq!(lat, want, "engine/latency_samples");
    // The insert's parameters were not touched: same values, nothing announced.
    assert_eq!(c.query("/ch/kick/insert/bypass"), 0.0);
    assert_eq!(c.query("/ch/kick/insert/send_db"), 0.0);
    let fed: Vec<String> = watcher
        .collect(Duration::from_millis(200))
        .into_iter()
        .map(|(_, m)| m.addr)
        .filter(|a| a.contains("/insert/"))
        .collect();
    assert!(
        fed.is_empty(),
        "insert feedback during the measurement: {fed:?}"
    );
    assert!(
        !st.params.is_empty() && st.params["ch/kick/insert/bypass"] == 0.0,
        "saved parameters as they were"
    );

    // Nothing comes back from system:capture_1 (the dummy driver's silent input): refused,
    // nothing stored, the latency stays.
    c.send("/ch/hat/insert/measure", vec![]);
    let refused = error_text(&answer(&c, "/ch/hat/insert/latency", MEASURE_WAIT));
    eprintln!("no return: {refused}");
    assert!(
        refused.contains("hat") && refused.contains("nothing comes back"),
        "{refused}"
    );
    assert_eq!(c.query("/engine/latency_samples") as usize, want);
    // A strip without an insert, and one that does not exist: refused at once.
    c.send("/ch/snare/insert/measure", vec![]);
    let e = error_text(&answer(
        &c,
        "/ch/snare/insert/latency",
        Duration::from_secs(2),
    ));
    assert!(e.contains("channel snare has no insert"), "{e}");
    c.send("/ch/nope/insert/measure", vec![]);
    let e = error_text(&answer(
        &c,
        "/ch/nope/insert/latency",
        Duration::from_secs(2),
    ));
    assert!(e.contains("no such parameter"), "{e}");
    // The console saves later changes without losing the measurement (and stores no entry
    // for the refused strips).
    c.send("/ch/snare/fader_db", vec![OscType::Float(-7.0)]);
    let st = wait_state(&state, |s| s.params.get("ch/snare/fader_db") == Some(&-7.0));
    assert!(faderbridge::insert::stored(&st, "kick", &key, 48000, PERIOD).is_some());
    assert!(!st.insert_measurements.contains_key("hat"));
    assert!(!st.insert_measurements.contains_key("snare"));

    // SIGTERM during a measurement: the daemon stops as promptly as ever (the measurement is
    // cancelled) and stores nothing for it.
    let mut d = d;
    c.send("/ch/tom/insert/measure", vec![]);
    wait_port(SERVER, "faderbridge-measure:send");
    let t = Instant::now();
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(d.child.id() as i32, libc::SIGTERM);
    }
    let status = loop {
        if let Some(s) = d.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stopped = t.elapsed();
    eprintln!("SIGTERM during a measurement: stopped in {stopped:.2?} ({status})");
    assert!(status.success(), "{status}");
    assert!(stopped < Duration::from_secs(2), "{stopped:?}");
    let st = wait_state(&state, |_| true);
    assert!(
        !st.insert_measurements.contains_key("tom"),
        "nothing stored"
    );
    assert!(faderbridge::insert::stored(&st, "kick", &key, 48000, PERIOD).is_some());
    drop(d);
    drop(jackd);
}

/// `faderbridge measure-insert` while the daemon runs: the daemon measures (status socket),
/// stores and applies; the inverted gear's polarity is reported.
#[test]
fn the_command_asks_a_running_daemon_and_polarity_is_reported() {
    let _s = serial();
    const SERVER: &str = "fbtest-livemeas-cli";
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let _gear = Gear::start(jackd.name(), gear_setup(false));
    let _inv = Gear::start_named(jackd.name(), "gearinv", gear_setup(true));
    let d = Daemon::start(
        "livemeas-cli",
        SESSION,
        &["--backend", "jack", "--jack-server", SERVER],
    );
    let state = d.path().join("state");
    wait_connected(
        SERVER,
        &[
            ("faderbridge:tom_insert_send", "gearinv:in"),
            ("faderbridge:tom_insert_return", "gearinv:out"),
        ],
    );
    // By position (tom is channel 2): the command resolves it from the session.
    let out = cli(&d.path().join("s.yaml"), "2", SERVER, &state);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let samples = cli_samples(&out);
    assert!(text.starts_with("tom: "), "{text}");
    assert!(text.contains("polarity inverted"), "{text}");
    assert!(text.contains("measured by the running daemon"), "{text}");
    assert!(
        (samples - ROUND_TRIP).abs() <= 1.0,
        "{samples} vs {ROUND_TRIP}"
    );
    let want = look_ahead() + samples.round() as usize;
    assert!(
        text.contains(&format!("engine/latency_samples {want}")),
        "{text}"
    );
    let key = format!("jack:{SERVER}");
    let st = wait_state(&state, |s| s.insert_measurements.contains_key("tom"));
    let e = faderbridge::insert::stored(&st, "tom", &key, 48000, PERIOD).expect("stored");
    assert!(e.inverted, "polarity stored");
    assert!(
        (e.samples - samples).abs() < 0.006,
        "{} vs {samples}",
        e.samples
    );
    let c = Client::new(d.addr());
    assert_eq!(c.query("/engine/latency_samples") as usize, want);
    // `faderbridge status` shows each insert's latency and where it comes from.
    let out = Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .expect("status");
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    let tom = format!("insert ch/tom: {:.2} samples, measured (error ", e.samples);
    assert!(
        status.contains(&tom) && status.contains("polarity inverted)"),
        "{status}"
    );
    assert!(
        status.contains("insert ch/kick: latency unknown"),
        "{status}"
    );
    // Over OSC the polarity is the third argument.
    c.send("/ch/tom/insert/measure", vec![]);
    let m = answer(&c, "/ch/tom/insert/latency", MEASURE_WAIT);
    let (s2, _, inverted) = latency_args(&m);
    eprintln!("tom again over OSC: {s2:.3}, inverted {inverted}");
    assert!(inverted);
    assert!((s2 - samples).abs() <= 1.0);
    // A query answers what the insert runs with; unknown is an error.
    c.send("/ch/tom/insert/latency", vec![]);
    let (q, _, qi) = latency_args(&answer(
        &c,
        "/ch/tom/insert/latency",
        Duration::from_secs(2),
    ));
    assert!((q - s2).abs() < 1e-3 && qi, "query {q} vs measured {s2}");
    c.send("/ch/hat/insert/latency", vec![]);
    let e = error_text(&answer(
        &c,
        "/ch/hat/insert/latency",
        Duration::from_secs(2),
    ));
    assert!(e.contains("latency unknown"), "{e}");

    // `--set` through the daemon: stored by hand and applied.
    let out = Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("measure-insert")
        .arg(d.path().join("s.yaml"))
        .args(["kick", "--set", "600", "--state-dir"])
        .arg(&state)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want_set = look_ahead() + 600;
    assert!(text.starts_with("kick: 600.00 samples"), "{text}");
    assert!(
        text.contains(&format!(
            "set by the running daemon (status socket {}): stored and applied, engine/latency_samples {want_set}",
            state.join("status.sock").display()
        )),
        "{text}"
    );
    assert_eq!(c.query("/engine/latency_samples") as usize, want_set);
    let st = wait_state(&state, |s| {
        faderbridge::insert::stored(s, "kick", &key, 48000, PERIOD).is_some_and(|e| e.manual)
    });
    let e = faderbridge::insert::stored(&st, "kick", &key, 48000, PERIOD).expect("kick");
    assert_eq!(e.samples, 600.0);
    // And over OSC: `,f SAMPLES` sets, answered like a measurement; the largest insert
    // latency (tom's) is the compensation then.
    c.send("/ch/kick/insert/latency", vec![OscType::Float(300.0)]);
    let (v, err, inv) = latency_args(&answer(&c, "/ch/kick/insert/latency", MEASURE_WAIT));
    assert_eq!((v, err, inv), (300.0, 0.0, false));
    assert_eq!(
        c.query("/engine/latency_samples") as usize,
        look_ahead() + samples.round() as usize
    );
    // A refusal from the daemon: exit 2 with its reason, nothing stored.
    let out = cli(&d.path().join("s.yaml"), "hat", SERVER, &state);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("hat via the daemon: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the daemon says") && err.contains("nothing comes back"),
        "{err}"
    );
    drop(d);
    drop(jackd);
}

/// The null backend has no outboard gear: a measurement is refused with the reason and stores
/// nothing; a latency set by hand is stored and applied.
#[test]
fn the_null_backend_refuses_to_measure_but_takes_a_latency_set_by_hand() {
    let d = Daemon::start("livemeas-null", SESSION, &["--backend", "null"]);
    let c = Client::new(d.addr());
    let before = c.query("/engine/latency_samples");
    c.send("/ch/kick/insert/measure", vec![]);
    let e = error_text(&answer(
        &c,
        "/ch/kick/insert/latency",
        Duration::from_secs(5),
    ));
    eprintln!("null backend: {e}");
    assert!(
        e.contains("needs the JACK backend") && e.contains("null"),
        "{e}"
    );
    assert_eq!(c.query("/engine/latency_samples"), before);
    assert_eq!(c.query("/ch/kick/insert/bypass"), 0.0);
    let st = StateDir::open(&d.path().join("state"))
        .ok()
        .and_then(|s| s.load().ok().flatten())
        .unwrap_or_default();
    assert!(st.insert_measurements.is_empty());
    // A latency set by hand applies on any backend (the insert is held bypassed here: a
    // delay of that length).
    c.send("/ch/kick/insert/latency", vec![OscType::Float(100.0)]);
    let (v, _, _) = latency_args(&answer(&c, "/ch/kick/insert/latency", MEASURE_WAIT));
    assert_eq!(v, 100.0);
    assert_eq!(c.query("/engine/latency_samples"), before + 100.0);
    let st = wait_state(&d.path().join("state"), |s| {
        s.insert_measurements.contains_key("kick")
    });
    let e = &st.insert_measurements["kick"][0];
    assert_eq!(
        (e.backend.as_str(), e.samples, e.manual),
        ("null", 100.0, true)
    );
}

// ---------------------------------------------------------------------------------------------
// The strip plays on while it measures.

/// Two identical channels fed the same noise, `kick` (hard left) through the gear, `snare`
/// (hard right) the reference; the latency stored before the daemon starts.
const SESSION_PLAY: &str = r#"version: 1
channels:
  - { name: kick, source: { input: 1 }, pan: -1, insert: { send: "gear:in", return: "gear:out" } }
  - { name: snare, source: { input: 1 }, pan: 1 }
surfaces:
  - { kind: osc, listen: "127.0.0.1:{PORT}" }
"#;

/// Plays noise into both channels and records the master (L, R).
fn start_player(server: &str) -> Tester<1, 2> {
    Tester::start(
        server,
        "player",
        ["sig"],
        ["rec_L", "rec_R"],
        Noise::new(12345, 0.25).signal(),
        &[
            ("player:sig", "faderbridge:kick_in"),
            ("player:sig", "faderbridge:snare_in"),
            ("faderbridge:master_L", "player:rec_L"),
            ("faderbridge:master_R", "player:rec_R"),
        ],
    )
}

/// Drop what was recorded so far, then record `frames` frames of the master (L, R).
fn record(p: &mut Tester<1, 2>, frames: usize) -> Vec<(f32, f32)> {
    p.record(frames)
        .iter()
        .take(frames)
        .map(|f| (f.heard[0], f.heard[1]))
        .collect()
}

/// Largest `|L − g·R|` and the RMS of `R` (dBFS) over a recording.
fn residual_db(rec: &[(f32, f32)], g: f32) -> (f64, f64) {
    let worst = rec
        .iter()
        .map(|(l, r)| f64::from((l - g * r).abs()))
        .fold(0.0, f64::max);
    let rms = (rec.iter().map(|(_, r)| f64::from(r * r)).sum::<f64>() / rec.len() as f64).sqrt();
    (
        20.0 * worst.max(1e-12).log10(),
        20.0 * rms.max(1e-12).log10(),
    )
}

/// While the daemon measures, the channel plays on at the same time: the gear is replaced by
/// its latency delay (the channel comes out at unity, sample-aligned with the reference
/// channel), the probe never reaches the mix, and the channel's own signal does not reach the
/// gear (the measurement's signal-to-noise stays at its cap); afterwards the gear is back.
#[test]
fn the_strip_plays_on_bypassed_while_it_measures() {
    let _s = serial();
    const SERVER: &str = "fbtest-livemeas-play";
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let _gear = Gear::start(jackd.name(), gear_setup(false));
    let dir = osc_client::tempdir("livemeas-play");
    faderbridge::insert::cli::store(
        &dir.join("state"),
        "kick",
        faderbridge::insert::InsertMeasurement {
            backend: format!("jack:{SERVER}"),
            rate: 48000,
            block: PERIOD,
            samples: ROUND_TRIP,
            error: 0.0,
            inverted: false,
            manual: true,
        },
    )
    .expect("store");
    let d = Daemon::start_in(
        dir.clone(),
        SESSION_PLAY,
        &["--backend", "jack", "--jack-server", SERVER],
    );
    wait_connected(
        SERVER,
        &[
            ("faderbridge:kick_insert_send", "gear:in"),
            ("faderbridge:kick_insert_return", "gear:out"),
        ],
    );
    let mut p = start_player(SERVER);
    let gear_gain = 10f32.powf(-3.0 / 20.0);
    let settle = 48000 / 5;
    record(&mut p, settle);
    let (before, level) = residual_db(&record(&mut p, 24000), gear_gain);
    // Asked on the status socket, whose answer has the signal-to-noise ratio.
    let sock = dir.join("state").join("status.sock");
    let asked = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("status socket");
        s.write_all(b"{\"cmd\":\"measure-insert\",\"strip\":\"ch/kick\"}\n")
            .expect("ask");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("answer");
        serde_json::from_str::<serde_json::Value>(&line).expect("json")
    });
    wait_port(SERVER, "faderbridge-measure:send");
    // Held from before the measuring client exists; the probe plays for 2.7 s from when it
    // is connected.
    let (held, _) = residual_db(&record(&mut p, 48000), 1.0);
    let m = asked.join().expect("asked");
    let samples = m["measurement"]["samples"]
        .as_f64()
        .unwrap_or_else(|| panic!("{m}"));
    let snr = m["snr_db"].as_f64().expect("snr_db");
    record(&mut p, settle);
    let (after, _) = residual_db(&record(&mut p, 24000), gear_gain);
    eprintln!(
        "reference channel at {level:.1} dBFS RMS; largest |L − g·R|: gear in before \
         {before:.1} dBFS, held (bypassed, g = 1) {held:.1} dBFS, gear in after {after:.1} dBFS; \
         measured {samples:.3}, signal-to-noise {snr:.1} dB"
    );
    assert!(level > -25.0, "the noise plays ({level} dBFS)");
    assert!(before < -80.0, "gear in, aligned: {before} dBFS");
    assert!(held < -80.0, "held: the delay only, no probe: {held} dBFS");
    assert!(after < -80.0, "gear back: {after} dBFS");
    assert!((samples - ROUND_TRIP).abs() <= 1.0, "{samples}");
    // The channel's noise at the gear's input would lower it far below the cap.
    assert!(snr > 150.0, "only the probe reached the gear: {snr} dB");
    drop(p);
    drop(d);
    drop(jackd);
    let _ = std::fs::remove_dir_all(&dir);
}
