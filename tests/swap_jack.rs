//! Engine swaps on a live daemon (issue 8 point 3: "a changed latency is applied without a
//! click"), against a private `jackd -d dummy` (256-frame periods) and two JACK clients of this
//! process: "player" plays a 50 Hz sine at 0.5 whose phase is a function of JACK's frame time,
//! and "recorder" records `faderbridge:master_L` with the frame time of every sample. Two
//! clients, not one, so the graph player → daemon → recorder has no cycle and JACK adds no
//! period of its own: the recording at frame `f` is the sine of frame `f − D`, `D` the
//! engine's latency (`engine/latency_samples`).
//!
//! The channel has a bypassed insert with a fixed `latency: 300` (bypass is a delay of the
//! latency, so no gear is needed). Reloading the session with `latency: 500` moves the output
//! by 200 samples; the swap crossfades (after the new engine's warm-up), so:
//!
//! - before: `y(f) = x(f − D1)`; after: `y(f) = x(f − D2)`; between: the raised-cosine
//!   crossfade of the two over [`FADE`] samples;
//! - no click: the second difference of the recording stays below [`BOUND`]. The sine alone
//!   has `|Δ²x| ≤ A·w² = 0.5·(2π·50/48000)² = 2.14e-5`; the crossfade adds at most
//!   `2·max|Δg|·max|Δ(x2 − x1)| + max|Δ²g|·max|x2 − x1|` with `max|Δg| = π/(2·FADE)`,
//!   `max|Δ²g| = π²/(2·FADE²)` and `|x2 − x1| ≤ 2A·sin(w·200/2) = 0.61`: 1.0e-5 more, so
//!   3.2e-5 in all; the bound is 1e-4. A hard cut between the two jumps by up to 0.61 at one
//!   sample: the same run with the crossfade off (`FADERBRIDGE_SWAP_FADE_MS=0`) exceeds the
//!   bound, measured here too.
//! - A reload that changes only a fader (the console keeps its live value) swaps in an
//!   identical engine: the output does not move at all (the warm-up filled its delay lines).
//!
//! And JACK's latency report with a hardware insert wired to gear: `master_L`'s capture
//! latency is the capture port's plus the engine's, and it does not grow across reloads and
//! restarts (the insert's return port used to count as a main input: the gear closed a loop).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faderbridge::audio::jack::{client_lock, open_client};

#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/gear.rs"]
mod gear;
#[path = "common/jackd.rs"]
mod jackd;
#[path = "common/tester.rs"]
mod tester;
use daemon::Daemon;
use jackd::Jackd;
use tester::Tester;

/// The JACK tests run one at a time (libjack keeps per-process state).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const PERIOD: u32 = 256;
const RATE: f64 = 48000.0;
const FREQ: f64 = 50.0;
const AMP: f64 = 0.5;
/// The crossfade: the daemon's default, 30 ms.
const FADE: usize = 1440;
/// Largest |second difference| allowed across a swap (see the module doc).
const BOUND: f64 = 1e-4;

fn session(latency: u32, fader_db: f32) -> String {
    format!(
        r#"version: 1
channels:
  - {{ name: a, source: {{ input: 1 }}, pan: -1, fader_db: {fader_db}, insert: {{ send: "nogear:in", return: "nogear:out", latency: {latency} }} }}
"#
    )
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-swap-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The sine at JACK frame `f` (exact: the phase is reduced modulo the sine's period first).
fn x(f: i64) -> f64 {
    let period = (RATE / FREQ) as i64; // 960 frames
    AMP * (std::f64::consts::TAU * f.rem_euclid(period) as f64 / period as f64).sin()
}

// ---------------------------------------------------------------------------------------------
// The player and the recorder.

/// Both clients, connected player → `faderbridge:a_in`, `faderbridge:master_L` → recorder.
struct Rig {
    recorder: Tester<0, 1>,
    /// Plays until dropped (after the recorder, as the fields are declared).
    _player: Tester<1, 0>,
}

impl Rig {
    fn start(server: &str) -> Rig {
        let player = Tester::start(
            server,
            "player",
            ["out"],
            [],
            Box::new(|f| [x(f) as f32]),
            &[("player:out", "faderbridge:a_in")],
        );
        let recorder = Tester::start(
            server,
            "recorder",
            [],
            ["in"],
            tester::no_signal(),
            &[("faderbridge:master_L", "recorder:in")],
        );
        Rig {
            recorder,
            _player: player,
        }
    }

    /// Record `frames` frames from now on, calling `act` once `at` frames are in (polling with
    /// a deadline): (frame time, sample). None when JACK's frame time jumped (a skipped cycle).
    fn record_then(
        &mut self,
        frames: usize,
        at: usize,
        act: impl FnMut(),
    ) -> Option<Vec<(i64, f64)>> {
        let v = self.recorder.record_then(frames, at, act);
        if let Some((i, n)) = tester::skipped(&v) {
            eprintln!("JACK skipped {n} frames after frame {i} of the recording");
            return None;
        }
        Some(
            v.into_iter()
                .map(|f| (i64::from(f.time), f64::from(f.heard[0])))
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Analysis.

/// The delay (0..960) and positive gain that fit `rec[range]` best as `g·x(f − d)` (least
/// squares), with the largest residual.
fn fit(rec: &[(i64, f64)], range: std::ops::Range<usize>) -> (i64, f64, f64) {
    let mut best = (0i64, 0.0f64, f64::MAX);
    for d in 0..960i64 {
        let (mut xy, mut xx) = (0.0, 0.0);
        for &(f, y) in &rec[range.clone()] {
            xy += x(f - d) * y;
            xx += x(f - d) * x(f - d);
        }
        let g = xy / xx;
        if g <= 0.0 {
            // Half a period away, inverted: the same sine.
            continue;
        }
        let res = rec[range.clone()]
            .iter()
            .map(|&(f, y)| (y - g * x(f - d)).abs())
            .fold(0.0, f64::max);
        if res < best.2 {
            best = (d, g, res);
        }
    }
    best
}

/// Largest |second difference| of the recording over `range`.
fn max_d2(rec: &[(i64, f64)], range: std::ops::Range<usize>) -> (f64, usize) {
    range
        .filter(|&i| i >= 1 && i + 1 < rec.len())
        .map(|i| ((rec[i + 1].1 - 2.0 * rec[i].1 + rec[i - 1].1).abs(), i))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// The daemon's raised-cosine crossfade, `k` samples after it started.
fn rising(k: i64) -> f64 {
    if k < 0 {
        0.0
    } else if k + 1 >= FADE as i64 {
        1.0
    } else {
        0.5 - 0.5 * (std::f64::consts::PI * (k + 1) as f64 / FADE as f64).cos()
    }
}

fn wait_linked(server: &str, port: &str, to: &str) {
    let c = open_client("probe", Some(server)).expect("probe");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.port_by_name(port)
            .is_some_and(|p| p.is_connected_to(to).unwrap_or(false))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{port} never connected to {to}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _g = client_lock();
    drop(c);
}

/// Poll `engine/latency_samples` until it reads `want`.
fn wait_latency(d: &mut Daemon, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = d.get("engine/latency_samples");
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "engine/latency_samples stuck at {v}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The daemon on `session(300, 0)` with the insert bypassed, the rig connected, and the
/// engine's latency with the 300-sample insert (`engine/latency_samples`).
fn start(server: &str, dir: &Path, env: &[(&str, &str)]) -> (Daemon, Rig, i64) {
    let mut d = Daemon::start_env(
        dir,
        &session(300, 0.0),
        &["--backend", "jack", "--jack-server", server],
        env,
    );
    wait_linked(server, "faderbridge:master_L", "system:playback_1");
    d.set("ch/a/insert/bypass", 1.0);
    let lat = d.get("engine/latency_samples");
    assert!(lat >= 300.0, "the insert's latency counts: {lat}");
    let mut rig = Rig::start(server);
    // Past the first cycles of the new connections and the bypass's 10 ms crossfade.
    rig.record_then(RATE as usize / 4, usize::MAX, || {});
    (d, rig, lat as i64)
}

/// Reload the session as `text` (rewrite, SIGHUP) once `at` frames are recorded; record
/// `frames` in all. None when the server reported an xrun meanwhile or skipped a cycle (the
/// test machine is shared; a late cycle is a glitch of its own): the caller tries again.
fn reload_while_recording(
    jackd: &Jackd,
    d: &mut Daemon,
    rig: &mut Rig,
    dir: &Path,
    text: &str,
    frames: usize,
    at: usize,
) -> Option<Vec<(i64, f64)>> {
    let before = jackd.xrun_causes();
    let rec = rig.record_then(frames, at, || {
        std::fs::write(dir.join("s.yaml"), text).expect("rewrite the session");
        d.signal(libc::SIGHUP);
    });
    let xruns = jackd.xrun_causes() - before;
    if xruns != jackd::XrunCauses::default() || rec.is_none() {
        eprintln!(
            "xruns during the recording ({xruns:?}, gap: {}): again",
            rec.is_none()
        );
        return None;
    }
    rec
}

/// Count the daemon's reloads in its log until there are `n`.
fn wait_reloads(dir: &Path, n: usize) {
    let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while log().matches("reloaded").count() < n {
        assert!(
            Instant::now() < deadline,
            "no reload in the log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Attempts at a recording spoilt by the machine's load before the test gives up.
const ATTEMPTS: usize = 4;

/// The reload from `latency: 300` to `latency: 500` (both at `fader_db`) once a quarter
/// second is recorded, `frames` in all; a spoilt attempt is undone (back to 300, settled) and
/// tried again. The engine runs with the new latency (`d1 + 200`) when this returns.
fn reload_300_to_500(
    jackd: &Jackd,
    d: &mut Daemon,
    rig: &mut Rig,
    dir: &Path,
    d1: i64,
    fader_db: f32,
    frames: usize,
) -> Vec<(i64, f64)> {
    let rate = RATE as usize;
    (0..ATTEMPTS)
        .find_map(|_| {
            let text = session(500, fader_db);
            let r = reload_while_recording(jackd, d, rig, dir, &text, frames, rate / 4);
            wait_latency(d, (d1 + 200) as f64);
            if r.is_none() {
                // Back to 300 for the next attempt.
                std::fs::write(dir.join("s.yaml"), session(300, fader_db)).expect("rewrite");
                d.signal(libc::SIGHUP);
                wait_latency(d, d1 as f64);
                rig.record_then(rate / 4, usize::MAX, || {});
            }
            r
        })
        .expect("a recording without xruns")
}

/// The swap of `rec` from delay `d1` to `d2` (gain `g`): the first sample off `g·x(f − d1)`
/// and the last one off `g·x(f − d2)` (by more than 1e-4).
fn swap_window(rec: &[(i64, f64)], g: f64, d1: i64, d2: i64) -> (usize, usize) {
    let off = |i: usize, d: i64| (rec[i].1 - g * x(rec[i].0 - d)).abs() > 1e-4;
    let first = (0..rec.len())
        .find(|&i| off(i, d1))
        .expect("the output moved");
    let last = (0..rec.len())
        .rev()
        .find(|&i| off(i, d2))
        .expect("the output was not at the new delay at once");
    (first, last)
}

#[test]
fn a_reload_that_changes_the_latency_crossfades_without_a_click() {
    let _s = serial();
    const SERVER: &str = "fbtest-swap-xfade";
    let dir = tempdir("xfade");
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let (mut d, mut rig, d1) = start(SERVER, &dir, &[]);
    let rate = RATE as usize;
    let mut reloads = 0;

    // 1. A reload that changes only a fader: the console keeps its live value, so the new
    // engine is the same; warmed up, it takes over without moving a sample.
    let rec = (0..ATTEMPTS)
        .find_map(|k| {
            let text = session(300, -6.0 - k as f32);
            let r = reload_while_recording(&jackd, &mut d, &mut rig, &dir, &text, rate, rate / 4);
            reloads += 1;
            wait_reloads(&dir, reloads);
            r
        })
        .expect("a recording without xruns");
    let (lag, g, res) = fit(&rec, 0..rec.len());
    let (d2f, at) = max_d2(&rec, 0..rec.len());
    eprintln!(
        "fader-only reload: one fit over the whole second: delay {lag} (engine latency {d1}), \
         gain {g:.6}, largest residual {res:.2e}; largest |second difference| {d2f:.3e} at {at}"
    );
    assert_eq!(
        lag, d1,
        "the output is the input delayed by engine/latency_samples"
    );
    assert!((g - 1.0).abs() < 1e-4, "unity gain (pan hard left): {g}");
    assert!(res < 1e-5, "the output never moved: {res}");
    assert!(d2f < BOUND, "no click: {d2f}");

    // 2. A reload to `latency: 500`: the output moves by 200 samples through the crossfade.
    let rec = reload_300_to_500(&jackd, &mut d, &mut rig, &dir, d1, -6.0, 2 * rate);
    let d2 = d.get("engine/latency_samples") as i64;
    let (first, last) = swap_window(&rec, g, d1, d2);
    // The crossfade's start: the one that fits the window best.
    let window = first.saturating_sub(PERIOD as usize)..(last + PERIOD as usize).min(rec.len());
    let expect = |s: i64, i: usize| {
        let (f, r) = (rec[i].0, rising(i as i64 - s));
        g * ((1.0 - r) * x(f - d1) + r * x(f - d2))
    };
    let (mut start, mut err) = (0i64, f64::MAX);
    for s in (first as i64 - 50)..=(first as i64) {
        let e = window
            .clone()
            .map(|i| (rec[i].1 - expect(s, i)).abs())
            .fold(0.0, f64::max);
        if e < err {
            (start, err) = (s, e);
        }
    }
    // The delays before and after the crossfade.
    let start_i = start.max(0) as usize;
    let (lag1, g1, res1) = fit(&rec, 0..start_i);
    let (lag2, g2, res2) = fit(&rec, (start_i + FADE).min(rec.len())..rec.len());
    let (d2_pre, _) = max_d2(&rec, 0..first);
    let (d2_swap, at) = max_d2(&rec, window.clone());
    let (d2_all, _) = max_d2(&rec, 0..rec.len());
    eprintln!(
        "latency 300 -> 500: before delay {lag1} (latency {d1}, gain {g1:.6}, residual \
         {res1:.2e}), after delay {lag2} (latency {d2}, gain {g2:.6}, residual {res2:.2e}); \
         swap from sample {first} to {last} ({} samples), best crossfade start {start}, largest \
         deviation from a {FADE}-sample raised-cosine crossfade {err:.2e}; |second difference|: \
         {d2_pre:.3e} before, {d2_swap:.3e} across the swap (at {at}), {d2_all:.3e} overall \
         (bound {BOUND:.0e})",
        last - first + 1
    );
    assert_eq!(lag1, d1, "before: delayed by the old latency");
    assert_eq!(lag2, d2, "after: delayed by the new latency");
    assert_eq!(d2 - d1, 200, "the insert's latency grew by 200");
    assert!(res1 < 1e-5 && res2 < 1e-5, "pure delays: {res1} {res2}");
    assert!(
        last - first < FADE,
        "the move takes the fade, not more: {}",
        last - first
    );
    assert!(err < 1e-5, "the crossfade is the raised cosine: {err}");
    assert!(d2_all < BOUND, "no click: {d2_all} >= {BOUND}");
    drop(rig);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same latency change with the crossfade off (a hard cut once the new engine is warm):
/// the click the bound is there to catch.
#[test]
fn the_same_swap_as_a_hard_cut_exceeds_the_bound() {
    let _s = serial();
    const SERVER: &str = "fbtest-swap-cut";
    let dir = tempdir("cut");
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let (mut d, mut rig, d1) = start(SERVER, &dir, &[("FADERBRIDGE_SWAP_FADE_MS", "0")]);
    let rate = RATE as usize;
    let rec = reload_300_to_500(&jackd, &mut d, &mut rig, &dir, d1, 0.0, rate);
    let d2 = d1 + 200;
    let (first, last) = swap_window(&rec, 1.0, d1, d2);
    let (d2_swap, at) = max_d2(&rec, 0..rec.len());
    let jump = (x(rec[first].0 - d2) - x(rec[first].0 - d1)).abs();
    eprintln!(
        "hard cut: from sample {first} to {last}, the sine jumps by {jump:.3}; largest |second \
         difference| {d2_swap:.3e} at {at} (bound {BOUND:.0e})"
    );
    assert_eq!(
        first,
        last + 1,
        "a cut from one sample to the next, with no gap (the warm-up)"
    );
    assert!(d2_swap > BOUND, "a hard cut clicks: {d2_swap}");
    drop(rig);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `master_L`'s capture latency with an insert wired to gear: the capture port's (one period
/// on the dummy driver) plus the engine's, as a single value, before and after a reload and
/// a restart. The insert's ports: the send carries the strip's signal with the main inputs'
/// capture latency; the return reaches the outputs `engine latency − insert latency` later.
#[test]
fn jack_latency_of_master_l_ignores_the_insert_loop() {
    let _s = serial();
    const SERVER: &str = "fbtest-swap-latency";
    let dir = tempdir("latency");
    let _jackd = Jackd::start_period(SERVER, PERIOD);
    let _gear = gear::Gear::start(SERVER, gear::GearSetup::delay(100));
    let text = session(300, 0.0).replace("nogear", "gear");
    let probe = open_client("probe", Some(SERVER)).expect("probe");
    let range = |port: &str, kind| {
        probe
            .port_by_name(port)
            .unwrap_or_else(|| panic!("{port}"))
            .get_latency_range(kind)
    };
    let capture = jack::LatencyType::Capture;
    let playback = jack::LatencyType::Playback;
    let upstream = range("system:capture_1", capture);
    let downstream = range("system:playback_1", playback);
    eprintln!("system:capture_1 capture {upstream:?}, system:playback_1 playback {downstream:?}");
    assert_eq!(
        upstream,
        (PERIOD, PERIOD),
        "the dummy driver's capture latency"
    );
    let mut seen = Vec::new();
    for round in 0..3 {
        let mut d = Daemon::start(&dir, &text, &["--backend", "jack", "--jack-server", SERVER]);
        wait_linked(SERVER, "faderbridge:a_insert_return", "gear:out");
        let lat = d.get("engine/latency_samples") as u32;
        for reload in 0..2 {
            if reload == 1 {
                d.signal(libc::SIGHUP);
                let deadline = Instant::now() + Duration::from_secs(5);
                let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
                while !log().contains("reloaded") {
                    assert!(Instant::now() < deadline, "no reload:\n{}", log());
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Independent expectations: the system ports' latencies and the engine's.
            let want = (PERIOD + lat, PERIOD + lat);
            let out = downstream.0 + lat;
            let r = out - 300;
            let read = || {
                (
                    range("faderbridge:master_L", capture),
                    range("faderbridge:a_insert_send", capture),
                    range("faderbridge:a_in", playback),
                    range("faderbridge:a_insert_return", playback),
                )
            };
            // The daemon makes its connections after it starts; JACK recomputes after each.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut now = read();
            while now != (want, upstream, (out, out), (r, r)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                now = read();
            }
            let (got, send, a_in, ret) = now;
            eprintln!(
                "round {round}, reload {reload}: engine latency {lat}; master_L capture {got:?}, \
                 a_insert_send capture {send:?}, a_in playback {a_in:?}, a_insert_return \
                 playback {ret:?}"
            );
            assert_eq!(got, want, "master_L: capture port + engine latency");
            assert_eq!(send, upstream, "the send: the main inputs' capture latency");
            assert_eq!(a_in, (out, out), "a_in: playback port + engine latency");
            assert_eq!(ret, (r, r), "the return: less the insert's latency");
            seen.push(got);
        }
        drop(d);
        // The daemon's ports are gone before the next round.
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.port_by_name("faderbridge:master_L").is_some() {
            assert!(
                Instant::now() < deadline,
                "the killed daemon's ports stayed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    let _g = client_lock();
    drop(probe);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Minor page faults so far of the daemon's audio thread (JACK's process thread, which the
/// daemon names `fb-audio` on its first cycle): field 10 of its `/proc` stat line.
fn audio_thread_faults(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "fb-audio" {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).expect("stat");
        // After the command's closing parenthesis: field 3 (state) onwards; minflt is 10.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        return rest
            .split_whitespace()
            .nth(10 - 3)
            .and_then(|v| v.parse().ok())
            .expect("minflt");
    }
    panic!("no thread named fb-audio in daemon {pid}");
}

/// A swap to an engine with big delay lines (a 1 s insert: 48 000 samples, 188 KiB per line,
/// the allocator's fresh mappings) takes no page fault on the audio thread: the engine's
/// buffers and rings are written where they are built, on the control plane. A first write to
/// a fresh page faults and zeroes it, microseconds each inside the period: 242 faults for this
/// swap before (the delay lines, the loudness tap's ring, the parameter queue). The first swap
/// of a process also runs the crossfade's code for the first time (its pages of the binary:
/// 2 faults here), so the second swap is the one held to zero.
#[test]
fn a_swap_takes_no_page_fault_on_the_audio_thread() {
    let _s = serial();
    const SERVER: &str = "fbtest-swap-faults";
    let dir = tempdir("faults");
    let jackd = Jackd::start_period(SERVER, PERIOD);
    let (mut d, mut rig, d1) = start(SERVER, &dir, &[]);
    let rate = RATE as usize;
    // Reload to `latency` a quarter second in and record until the new engine plays alone
    // (warm-up for its latency, the 30 ms fade, the old one retired: 2 s cover it); the
    // audio thread's page faults across it.
    let mut swap = |d: &mut Daemon, latency: u32| -> u64 {
        let before = audio_thread_faults(d.pid());
        let want = d1 - 300 + i64::from(latency);
        let rec = rig
            .record_then(2 * rate, rate / 4, || {
                std::fs::write(dir.join("s.yaml"), session(latency, 0.0)).expect("rewrite");
                d.signal(libc::SIGHUP);
            })
            .unwrap_or_else(|| {
                // A skipped cycle spoils the recording, not the swap: record the new engine.
                rig.record_then(rate / 2, usize::MAX, || {})
                    .expect("a recording")
            });
        wait_latency(d, want as f64);
        // The swap is over: the last quarter second is the input delayed by the new latency
        // (unity gain: fader 0 dB, pan hard left).
        let worst = rec[rec.len() - rate / 4..]
            .iter()
            .map(|&(f, y)| (y - x(f - want)).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-5,
            "the new engine (delay {want}) plays alone: {worst}"
        );
        audio_thread_faults(d.pid()) - before
    };
    let first = swap(&mut d, 48_000);
    let second = swap(&mut d, 47_000);
    eprintln!("minor page faults on the audio thread: first swap {first}, second {second}");
    let _ = jackd.xrun_causes();
    assert!(first <= 8, "the first swap: code pages at most, {first}");
    assert_eq!(second, 0, "page faults on the audio thread during a swap");
    drop(rig);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
