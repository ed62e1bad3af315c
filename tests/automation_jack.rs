//! Issue 7: a mix ridden live bounces identically offline. On a private `jackd -d dummy`
//! (256-frame periods) the daemon plays a noise stem; an OSC client rides the fader in touch
//! mode; on the next pass, in read mode, a JACK client records `faderbridge:master_L`; then
//! `faderbridge render --automation STATE_DIR` bounces the same session with the state the
//! daemon saved. The recording, aligned on the first sample of sound, must equal the render
//! within 1e-4 (render runs 4096-frame blocks, JACK 256: lanes are read on the transport's
//! grid, not the block's).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rosc::OscType::{Float, Int, String as Str};

#[path = "common/daemon.rs"]
mod daemon;
use daemon::Daemon;

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;

#[path = "common/wav.rs"]
mod wav;

const SERVER: &str = "fbtest-auto-live";
const RATE: u32 = 48_000;
const PERIOD: u32 = 256;
/// Length of the stem (the live daemon loops it; passes stay inside).
const STEM_S: u32 = 6;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-auto-jack-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic white noise at ±0.1 (no sample is exactly 0).
fn noise(n: usize) -> Vec<f32> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let u = (x >> 8) as f32 / (1u32 << 24) as f32;
            let v = (u - 0.5) * 0.2;
            if v == 0.0 { 1e-3 } else { v }
        })
        .collect()
}

struct Osc {
    sock: std::net::UdpSocket,
    to: std::net::SocketAddr,
}

impl Osc {
    fn send(&self, addr: &str, args: Vec<rosc::OscType>) {
        let p = rosc::OscPacket::Message(rosc::OscMessage {
            addr: addr.into(),
            args,
        });
        self.sock
            .send_to(&rosc::encoder::encode(&p).unwrap(), self.to)
            .unwrap();
    }
}

/// Records one JACK input into a wait-free ring.
struct Recorder {
    input: jack::Port<jack::AudioIn>,
    tx: rtrb::Producer<f32>,
}

impl jack::ProcessHandler for Recorder {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        for &v in self.input.as_slice(ps) {
            let _ = self.tx.push(v);
        }
        jack::Control::Continue
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_mix_ridden_live_bounces_identically_offline() {
    let dir = tempdir("ride");
    let _jackd = Jackd::start_with(
        SERVER,
        jackd::Options {
            period: PERIOD,
            log: Some(dir.join("jackd.log")),
            ..jackd::Options::default()
        },
    );
    let stem = dir.join("noise.wav");
    wav::write_mono(&stem, RATE, noise((RATE * STEM_S) as usize));
    let port = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port()
    };
    let session = format!(
        "version: 1\nengine: {{ sample_rate: {RATE}, block: {PERIOD} }}\nchannels:\n  - {{ name: a, source: {{ file: {} }}, fader_db: -6 }}\n\
         surfaces:\n  - {{ kind: osc, listen: \"127.0.0.1:{port}\" }}\n",
        stem.display()
    );
    let mut d = Daemon::start(
        &dir,
        &session,
        &["--backend", "jack", "--jack-server", SERVER],
    );
    let osc = Osc {
        sock: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        to: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    const FADER: &str = "/ch/a/fader_db";

    // Pass 1: touch, ride -6 → -20 → -2 dB over 2 s (with a held stretch), release.
    osc.send(&format!("{FADER}/automation"), vec![Str("touch".into())]);
    osc.send("/transport/stop", vec![]);
    osc.send("/transport/locate", vec![Float(0.0)]);
    std::thread::sleep(Duration::from_millis(100));
    osc.send("/transport/play", vec![]);
    let t0 = Instant::now();
    let ride = |t: f64| -> f32 {
        let v = match t {
            t if t < 0.3 => -6.0,
            t if t < 1.0 => -6.0 - 20.0 * (t - 0.3),
            t if t < 1.4 => -20.0,
            t if t < 2.3 => -20.0 + 20.0 * (t - 1.4),
            _ => -2.0,
        };
        v.max(-20.0) as f32
    };
    osc.send(&format!("{FADER}/touch"), vec![Int(1)]);
    while t0.elapsed() < Duration::from_millis(2500) {
        osc.send(FADER, vec![Float(ride(t0.elapsed().as_secs_f64()))]);
        std::thread::sleep(Duration::from_millis(10));
    }
    osc.send(&format!("{FADER}/touch"), vec![Int(0)]);
    std::thread::sleep(Duration::from_millis(500));
    osc.send("/transport/stop", vec![]);
    // The pass is in the state once the daemon has saved it.
    let state = dir.join("state").join("state.json");
    wait_until(
        "the written lane in the state",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(&state)
                .is_ok_and(|s| s.contains("\"lanes\":{\"ch/a/fader_db\""))
        },
    );

    // Pass 2: read, from 0, recorded through JACK. A take during which JACK saw an xrun (a
    // period lost on this VM) is repeated, up to 3 times.
    osc.send(&format!("{FADER}/automation"), vec![Str("read".into())]);
    // SAFETY: set before any thread of ours reads it; libjack reads it when a client opens.
    unsafe { std::env::set_var("JACK_DEFAULT_SERVER", SERVER) };
    let mut takes = 0;
    let (live, xruns) = loop {
        takes += 1;
        osc.send("/transport/stop", vec![]);
        osc.send("/transport/locate", vec![Float(0.0)]);
        let (client, _) =
            jack::Client::new("autorec", jack::ClientOptions::NO_START_SERVER).expect("client");
        let input = client
            .register_port("in", jack::AudioIn::default())
            .expect("port");
        let (tx, mut rx) = rtrb::RingBuffer::new((RATE * 8) as usize);
        let active = client
            .activate_async((), Recorder { input, tx })
            .expect("activate");
        active
            .as_client()
            .connect_ports_by_name("faderbridge:master_L", "autorec:in")
            .expect("connect");
        std::thread::sleep(Duration::from_millis(300));
        let before = d.get("engine/xruns");
        osc.send("/transport/play", vec![]);
        std::thread::sleep(Duration::from_millis(4000));
        osc.send("/transport/stop", vec![]);
        std::thread::sleep(Duration::from_millis(100));
        let xruns = d.get("engine/xruns") - before;
        let mut live = Vec::new();
        while let Ok(v) = rx.pop() {
            live.push(v);
        }
        let _ = active.deactivate();
        if xruns == 0.0 || takes == 3 {
            break (live, xruns);
        }
    };
    drop(d);

    // Render with the state the daemon saved.
    let out = dir.join("bounce.wav");
    let r = Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("render")
        .arg(dir.join("s.yaml"))
        .arg("-o")
        .arg(&out)
        .args(["--end", "3.5", "--format", "f32", "--automation"])
        .arg(dir.join("state"))
        .output()
        .expect("render");
    assert!(
        r.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let bounce = wav::read(&out).swap_remove(0);

    // Align on the first sound: the stem has no zero sample, the stopped transport is silent.
    let k0 = live
        .iter()
        .position(|v| *v != 0.0)
        .expect("the recording has sound");
    let n = (RATE as usize * 3).min(live.len() - k0);
    assert!(
        n > RATE as usize * 2,
        "recorded {} frames after the start",
        n
    );
    // The ride is in the recording: -20 dB around 1.2 s, -2 dB after 2.4 s.
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    let at = |s: f64| ((s * f64::from(RATE)) as usize) + k0;
    let loud = rms(&live[at(2.5)..at(2.7)]);
    let quiet = rms(&live[at(1.1)..at(1.3)]);
    let db = 20.0 * (loud / quiet).log10();
    assert!((db - 18.0).abs() < 1.0, "ride range {db} dB");
    let worst = (0..n)
        .map(|i| (i, (live[k0 + i] - bounce[i]).abs()))
        .fold((0, 0.0f32), |a, b| if b.1 > a.1 { b } else { a });
    eprintln!(
        "live vs render over {n} frames: worst difference {:.3e} at frame {}; ride range {db:.2} dB; {xruns} xruns",
        worst.1, worst.0
    );
    assert!(
        worst.1 < 1e-4,
        "live and render differ by {} at frame {} ({xruns} xruns)",
        worst.1,
        worst.0
    );
}
