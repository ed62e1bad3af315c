//! `faderbridge measure-insert` end to end (issue 8, point 2), against private
//! `jackd -d dummy` servers started here and a JACK client "gear" in this process standing in
//! for outboard gear: it delays its input by [`GEAR_DELAY`] samples and applies a gain (and
//! optionally a polarity flip or a fixed linear-phase filter).
//!
//! # What the round trip should be
//! The measuring client's `send` feeds `gear:in`, and `gear:out` feeds its `return`: the two
//! clients form a cycle in JACK's graph. JACK runs the clients of a cycle in one order each
//! period and feeds the connection that closes the cycle with what its source wrote in the
//! *previous* period (jack2 `JackConnectionManager`: a loop connection is a "feedback"
//! connection and adds no activation dependency). Whichever client runs first, the return
//! therefore arrives exactly one period later than the gear's own delay:
//! `expected = GEAR_DELAY (+ 1 for the 1-2-1 filter's group delay) + period`.
//! That is what a hardware insert's measurement includes too (the interface's buffering);
//! the command reports the whole round trip.
//!
//! The JACK tests run one at a time (a process-wide lock; libjack keeps per-process state).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use faderbridge::insert::{self, latency_for};
use faderbridge::state::StateDir;

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;

/// The simulated gear's delay in samples.
const GEAR_DELAY: usize = 237;

const SESSION: &str = r#"
version: 1
channels:
  - { name: kick, source: { input: 1 }, insert: { send: "gear:in", return: "gear:out" } }
  - { name: snare, source: { input: 2 } }
  - { name: tom, source: { input: 3 }, insert: { send: 1, return: 1 } }
  - { name: hat, source: { input: 4 }, insert: { send: 9, return: 9 } }
buses:
  - { name: drums, kind: group }
"#;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory (session file and state dir), removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("fb-insmeasure-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        std::fs::write(p.join("session.yaml"), SESSION).expect("session");
        Dir(p)
    }
    fn session(&self) -> PathBuf {
        self.0.join("session.yaml")
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[path = "common/gear.rs"]
mod gear;
use gear::{Gear, GearSetup};

/// The gear of these tests: GEAR_DELAY samples at -3 dB.
fn gear_setup() -> GearSetup {
    GearSetup {
        gain_db: -3.0,
        ..GearSetup::delay(GEAR_DELAY)
    }
}

fn server(tag: &str, period: u32) -> Jackd {
    Jackd::start_period(&format!("fbtest-insert-{tag}"), period)
}

fn run(dir: &Dir, strip: &str, server: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("measure-insert")
        .arg(dir.session())
        .arg(strip)
        .args(["--jack-server", server, "--state-dir"])
        .arg(dir.state())
        .args(extra)
        .output()
        .expect("run faderbridge")
}

/// The first line: `kick: 493.02 samples (10.271 ms) at 48000 Hz / 256 frames, error 0.01,
/// polarity normal` → (samples, rate, block, error, inverted).
fn parse(out: &Output) -> (f64, u32, u32, f64, bool) {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "measure-insert failed ({}): {}{}",
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let line = text.lines().next().expect("a line");
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w[0], "kick:", "{line}");
    assert_eq!(w[2], "samples", "{line}");
    let num = |s: &str| s.trim_end_matches(',').parse::<f64>().expect(line);
    let at = w.iter().position(|&x| x == "at").expect(line);
    let err = w.iter().position(|&x| x == "error").expect(line);
    let pol = w.iter().position(|&x| x == "polarity").expect(line);
    (
        num(w[1]),
        num(w[at + 1]) as u32,
        num(w[at + 4]) as u32,
        num(w[err + 1]),
        w[pol + 1] == "inverted",
    )
}

fn load(dir: &Path) -> faderbridge::state::SavedState {
    StateDir::open(dir)
        .expect("state dir")
        .load()
        .expect("load")
        .expect("a state file")
}

#[test]
fn measures_the_gear_at_two_period_sizes_and_keys_the_results() {
    let _s = serial();
    let dir = Dir::new("periods");
    let mut got = Vec::new();
    for period in [256u32, 128] {
        let jackd = server(&format!("p{period}"), period);
        let _gear = Gear::start(jackd.name(), gear_setup());
        let out = run(&dir, "kick", jackd.name(), &[]);
        let (samples, rate, block, error, inverted) = parse(&out);
        let want = (GEAR_DELAY + period as usize) as f64;
        eprintln!(
            "period {period}: measured {samples:.3}, expected {want} (gear {GEAR_DELAY} + one period), off {:+.3}, error {error}",
            samples - want
        );
        assert_eq!((rate, block), (48000, period));
        assert!(
            (samples - want).abs() <= 1.0,
            "period {period}: {samples}, want {want} ± 1"
        );
        assert!(!inverted);
        // The return level is the gear's -3 dB.
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("return level -3.0 dB"), "{text}");
        got.push((period, samples));
    }
    // Both stored, keyed by rate and block, read back as measured (2 decimals printed).
    let st = load(&dir.state());
    assert_eq!(st.insert_measurements["kick"].len(), 2);
    for (period, samples) in got {
        let v = latency_for(&st, "kick", "jack", 48000, period);
        assert_eq!(v, None, "the backend key names the server");
        let key = format!("jack:fbtest-insert-p{period}");
        let v = latency_for(&st, "kick", &key, 48000, period).expect("stored");
        let want = (GEAR_DELAY + period as usize) as f64;
        eprintln!(
            "period {period}: stored {v:.6}, off {:+.6} from gear {GEAR_DELAY} + one period",
            v - want
        );
        assert!((v - want).abs() <= 1.0);
        assert!((v - samples).abs() < 0.006, "{v} vs printed {samples}");
        let e = insert::stored(&st, "kick", &key, 48000, period).expect("entry");
        assert!(!e.manual && !e.inverted);
        assert_eq!(latency_for(&st, "kick", &key, 44100, period), None);
    }
    // A manual value replaces the measurement for its key only.
    let jackd = server("p256", 256);
    let out = run(&dir, "kick", jackd.name(), &["--set", "500"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("kick: 500.00 samples"), "{text}");
    let st = load(&dir.state());
    let e = insert::stored(&st, "kick", "jack:fbtest-insert-p256", 48000, 256).expect("manual");
    assert!(e.manual);
    assert_eq!(e.samples, 500.0);
    assert!(latency_for(&st, "kick", "jack:fbtest-insert-p128", 48000, 128).is_some());
}

#[test]
fn inverted_and_filtered_gear() {
    let _s = serial();
    let dir = Dir::new("invert");
    let period = 256;
    let jackd = server("invert", period);
    let _gear = Gear::start(
        jackd.name(),
        GearSetup {
            invert: true,
            filter: true,
            ..gear_setup()
        },
    );
    let (samples, _, _, error, inverted) = parse(&run(&dir, "kick", jackd.name(), &[]));
    let want = (GEAR_DELAY + 1 + period as usize) as f64;
    eprintln!(
        "inverted, 1-2-1 filter: measured {samples:.3}, expected {want}, off {:+.3}, error {error}",
        samples - want
    );
    assert!((samples - want).abs() <= 1.0, "{samples}, want {want} ± 1");
    assert!(inverted, "polarity");
    let st = load(&dir.state());
    assert!(st.insert_measurements["kick"][0].inverted);
}

#[test]
fn no_return_stores_nothing() {
    let _s = serial();
    let dir = Dir::new("noreturn");
    let jackd = server("noreturn", 256);
    // The gear is not running: its ports are not there.
    let out = run(&dir, "kick", jackd.name(), &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("no gear: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gear:in") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!dir.state().join("state.json").exists());
    // The gear runs but sends nothing back (switched off).
    let _gear = Gear::start(
        jackd.name(),
        GearSetup {
            mute: true,
            ..gear_setup()
        },
    );
    let out = run(&dir, "kick", jackd.name(), &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("silent gear: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing comes back"), "{err}");
    assert!(!dir.state().join("state.json").exists());
    // Interface numbers: the dummy driver's system:playback_1 / system:capture_1 (its
    // capture is silent), and a 9th output it does not have.
    let out = run(&dir, "tom", jackd.name(), &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("send 1 / return 1 on the dummy driver: {err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing comes back"), "{err}");
    let out = run(&dir, "hat", jackd.name(), &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("insert send 9: the server has 2 physical playback ports"),
        "{err}"
    );
    assert!(!dir.state().join("state.json").exists());
}

#[test]
fn strips_without_an_insert_are_refused() {
    // Refused before JACK is asked (no server needed).
    let dir = Dir::new("strips");
    for (strip, says) in [
        ("snare", "channel snare has no insert"),
        ("2", "channel snare has no insert"),
        ("toms", "no strip named toms"),
        ("drums", "bus drums has no insert"),
        ("bus/drums", "bus drums has no insert"),
        ("master", "the master has no insert"),
    ] {
        let out = run(&dir, strip, "fbtest-insert-none", &[]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{strip}: {err}");
        assert!(err.contains(says), "{strip}: {err}");
    }
    assert!(!dir.state().join("state.json").exists());
}

/// Not a test: keeps the simulated gear running on `$FADERBRIDGE_GEAR_SERVER` for
/// `$FADERBRIDGE_GEAR_SECS` seconds (default 20), to compare `measure-insert` with
/// `jack_iodelay` by hand (README, "Hardware inserts").
#[test]
#[ignore]
fn gear_for_a_manual_check() {
    let Ok(server) = std::env::var("FADERBRIDGE_GEAR_SERVER") else {
        return;
    };
    let secs: u64 = std::env::var("FADERBRIDGE_GEAR_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let _gear = Gear::start(&server, gear_setup());
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
