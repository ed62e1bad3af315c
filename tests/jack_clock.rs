//! The daemon's clock against JACK's, on a private `jackd -d dummy` at 256-frame periods with
//! the daemon playing a DC stem hard left:
//! - time-tagged OSC bundles land sample-accurately (issue 4, SPEC §5): a JACK client records
//!   `faderbridge:master_L`; bundles muting and unmuting the strip at future instants must
//!   change the output at the JACK frame of each instant (JACK's own `jack_time_to_frames`)
//!   plus the latency the daemon reports on the port, not at the next period boundary or a
//!   timer's wake-up;
//! - the transport follows JACK's (issue 7): starting, stopping and locating it through the
//!   JACK API moves the daemon's transport.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/daemon.rs"]
mod daemon;
use daemon::Daemon;

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;

const SERVER: &str = "fbtest-jack-clock";
const RATE: u32 = 48_000;
const PERIOD: u32 = 256;

fn jack_client(name: &str) -> Option<jack::Client> {
    // SAFETY: set before any thread of ours reads it; libjack reads it when a client opens.
    unsafe { std::env::set_var("JACK_DEFAULT_SERVER", SERVER) };
    jack::Client::new(name, jack::ClientOptions::NO_START_SERVER)
        .ok()
        .map(|(c, _)| c)
}

/// An edge in the recorded signal, with the JACK frame time of its first sample.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Edge {
    /// The signal first reached 1.0 (audio flows).
    Flowing(u32),
    /// It left 1.0 (a mute's glide starts here).
    Falls(u32),
    /// It left 0.0 (an unmute's glide starts here).
    Rises(u32),
}

struct Recorder {
    input: jack::Port<jack::AudioIn>,
    last: f32,
    tx: mpsc::Sender<Edge>,
}

impl jack::ProcessHandler for Recorder {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        let t0 = ps.last_frame_time();
        for (i, &v) in self.input.as_slice(ps).iter().enumerate() {
            let at = t0.wrapping_add(i as u32);
            let edge = if self.last != 1.0 && v == 1.0 {
                Some(Edge::Flowing(at))
            } else if self.last == 1.0 && v < 1.0 {
                Some(Edge::Falls(at))
            } else if self.last == 0.0 && v > 0.0 {
                Some(Edge::Rises(at))
            } else {
                None
            };
            if let Some(e) = edge {
                let _ = self.tx.send(e);
            }
            self.last = v;
        }
        jack::Control::Continue
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-jack-clock-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bundle of one `/ch/a/mute ,f VALUE` for NTP time `tag`.
fn bundle(tag: SystemTime, value: f32) -> Vec<u8> {
    let d = tag.duration_since(UNIX_EPOCH).unwrap();
    let secs = (d.as_secs() + 2_208_988_800) as u32;
    let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    rosc::encoder::encode(&rosc::OscPacket::Bundle(rosc::OscBundle {
        timetag: rosc::OscTime {
            seconds: secs,
            fractional: frac,
        },
        content: vec![rosc::OscPacket::Message(rosc::OscMessage {
            addr: "/ch/a/mute".into(),
            args: vec![rosc::OscType::Float(value)],
        })],
    }))
    .unwrap()
}

/// The daemon on a fresh server, playing `seconds` of DC at 1.0 (looped) hard left, with an
/// OSC surface; returns the server, the daemon and the OSC port.
fn start(tag: &str, seconds: u32) -> (std::sync::MutexGuard<'static, ()>, Jackd, Daemon, u16) {
    // libjack picks the server from the process environment: one server at a time here.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir(tag);
    let jackd = Jackd::start_with(
        SERVER,
        jackd::Options {
            period: PERIOD,
            log: Some(dir.join("jackd.log")),
            ..jackd::Options::default()
        },
    );
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(dir.join("dc.wav"), spec).unwrap();
    for _ in 0..RATE * seconds {
        w.write_sample(1.0f32).unwrap();
    }
    w.finalize().unwrap();
    let port = {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port()
    };
    let session = format!(
        "version: 1\nchannels:\n  - {{ name: a, source: {{ file: {} }}, pan: -1 }}\n\
         surfaces:\n  - {{ kind: osc, listen: \"127.0.0.1:{port}\" }}\n",
        dir.join("dc.wav").display()
    );
    let d = Daemon::start(
        &dir,
        &session,
        &["--backend", "jack", "--jack-server", SERVER],
    );
    (one, jackd, d, port)
}

#[test]
fn time_tagged_bundles_land_on_their_jack_frame() {
    // One second of DC at 1.0, looped: hard left it reaches master_L at exactly 1.0.
    let (_one, _jackd, _d, port) = start("bundles", 1);
    let client = jack_client("timedrec").expect("recorder client");
    let input = client
        .register_port("in", jack::AudioIn::default())
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let rec = client
        .activate_async(
            (),
            Recorder {
                input,
                last: 0.0,
                tx,
            },
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rec
        .as_client()
        .connect_ports_by_name("faderbridge:master_L", "timedrec:in")
        .is_err()
    {
        assert!(Instant::now() < deadline, "no faderbridge:master_L");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The stem may fade in as the connection is made: wait until it holds 1.0.
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Edge::Flowing(_)) => break,
            Ok(_) => continue,
            Err(e) => panic!("audio never flowed: {e}"),
        }
    }

    // The engine's output is late by the latency it reports on its ports (the master
    // limiter's look-ahead): a change made at frame F sounds at master_L at F + latency.
    let (lat, lat_hi) = rec
        .as_client()
        .port_by_name("faderbridge:master_L")
        .expect("master_L")
        .get_latency_range(jack::LatencyType::Capture);
    assert_eq!(lat, lat_hi, "no inputs: one latency");

    // Mute, unmute, mute, unmute, each sent 300 ms ahead once the previous one sounded; every
    // instant is read on JACK's clock at the moment its time tag is taken from the wall
    // clock, so both sides name the same instant.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = rec.as_client();
    let mut errors = Vec::new();
    for k in 0..4u64 {
        let mute = k % 2 == 0;
        let (wall, jack_us) = (SystemTime::now(), c.time());
        let ahead = Duration::from_millis(300);
        let want = c.time_to_frames(jack_us + ahead.as_micros() as u64) + lat;
        sock.send_to(
            &bundle(wall + ahead, if mute { 1.0 } else { 0.0 }),
            ("127.0.0.1", port),
        )
        .unwrap();
        let got = loop {
            match rx.recv_timeout(Duration::from_secs(3)) {
                Ok(Edge::Falls(f)) if mute => break f,
                Ok(Edge::Rises(f)) if !mute => break f,
                Ok(_) => continue,
                Err(e) => panic!("change {k} never sounded: {e}"),
            }
        };
        let err = got.wrapping_sub(want) as i32;
        errors.push(err);
        eprintln!("change {k}: sounded at {got}, expected {want}: {err:+} frames");
    }
    // Each change on its frame within a few frames (the two clocks are paired by
    // consecutive reads); a period-boundary or timer placement would be off by up to
    // 256 frames and by whole periods. One of four may suffer a VM stall (an xrun).
    let on_frame = errors.iter().filter(|e| e.abs() <= 8).count();
    assert!(
        on_frame >= 3,
        "frame errors {errors:?} (want |e| <= 8 of {PERIOD}-frame periods)"
    );
}

/// Poll JACK's transport until it is in `state` (a start waits for the next cycle).
fn wait_jack(t: &jack::Transport, state: jack::TransportState) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.query_state().unwrap() != state {
        assert!(
            Instant::now() < deadline,
            "JACK's transport never reached {state:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_transport_follows_jacks() {
    // A 10 s loop, so that every position below stays inside it.
    let (_one, _jackd, mut d, _) = start("transport", 10);
    let client = jack_client("transportctl").expect("control client");
    let t = client.transport();
    // JACK's transport starts stopped and nobody touched it: the daemon plays on its own.
    let (playing, _) = d.wait_transport("free running", |p, _| p);
    assert!(playing);

    // Locating JACK's stopped transport moves the daemon there; it keeps playing.
    t.locate(RATE * 6).unwrap();
    let (p, s) = d.wait_transport("locate to 6 s", |_, s| (6.0..7.0).contains(&s));
    assert!(p, "a locate alone does not stop the daemon");
    assert!((6.0..7.0).contains(&s), "{s}");

    // Rolling: start at 2 s; once JACK rolls, the daemon plays at JACK's position (to
    // within a display tick of the meters the status reads).
    t.locate(RATE * 2).unwrap();
    t.start().unwrap();
    wait_jack(&t, jack::TransportState::Rolling);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (p, s) = d.transport();
        let jack_s = f64::from(t.query().unwrap().pos.frame()) / f64::from(RATE);
        if p && (jack_s - s).abs() < 0.1 && s >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "daemon {p} at {s:.3} s vs JACK rolling at {jack_s:.3} s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // JACK stops: so does the daemon, where JACK stopped.
    t.stop().unwrap();
    wait_jack(&t, jack::TransportState::Stopped);
    let (_, held) = d.wait_transport("stop", |p, _| !p);
    let jack_s = f64::from(t.query().unwrap().pos.frame()) / f64::from(RATE);
    assert!(
        (jack_s - held).abs() <= 2.0 * f64::from(PERIOD) / f64::from(RATE),
        "stopped at {held:.4} s, JACK at {jack_s:.4} s"
    );
    // Stopped: the position holds across several display ticks.
    let (_, later) = d.wait_transport("holding", |p, _| !p);
    assert_eq!(later, held, "the position moved while stopped");

    // Locate while stopped: exactly there (to the period), still stopped.
    t.locate(RATE * 4).unwrap();
    let (p, s) = d.wait_transport("locate to 4 s", |_, s| (s - 4.0).abs() < 0.01);
    assert!(!p);
    assert!(
        (s - 4.0).abs() <= f64::from(PERIOD) / f64::from(RATE),
        "{s}"
    );
}
