//! The X-Air dialect end to end (SPEC §6): the real daemon on the null backend with a
//! `kind: xair` surface and a native `kind: osc` surface, driven over real UDP sockets.
//! `/xinfo` `/info` `/status`, the fader law both ways, `/mix/on` mute semantics, names,
//! sends, `/xremote` feedback of changes made by native OSC and by other X-Air clients (never
//! echoed to the sender), lease expiry and renewal, and the `/meters/1` blob of a known tone.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faderbridge::media::{AtomicWavWriter, WavFormat};
use rosc::{OscMessage, OscPacket, OscType};

const SESSION: &str = r#"version: 1
channels:
  - { name: kick, source: { file: tone.wav }, fader_db: -3 }
  - { name: snare, source: { input: 2 } }
buses:
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.5 } } }
  - { name: drums, kind: group }
surfaces:
  - { kind: xair, listen: "127.0.0.1:{XPORT}" }
  - { kind: osc, listen: "127.0.0.1:{OPORT}" }
"#;

/// Amplitude of the 1 kHz tone the kick channel plays (peak -6.02 dBFS).
const TONE_AMP: f32 = 0.5;

fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        // The native surface also serves OSCQuery over TCP on its port.
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running daemon, killed when dropped.
struct Daemon {
    child: Child,
    xair: SocketAddr,
    osc: SocketAddr,
    dir: PathBuf,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("fb-xair-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // One second of a 1 kHz sine (whole periods, so the loop is seamless).
        let tone: Vec<f32> = (0..48000)
            .map(|i| TONE_AMP * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48000.0).sin())
            .collect();
        let mut w = AtomicWavWriter::create(&dir.join("tone.wav"), 48000, 1, WavFormat::F32)
            .expect("tone file");
        w.write_planar(&[&tone]).unwrap();
        w.finish().unwrap();
        let (xp, op) = (free_port(), free_port());
        let file = dir.join("s.yaml");
        let text = SESSION
            .replace("{XPORT}", &xp.to_string())
            .replace("{OPORT}", &op.to_string());
        std::fs::write(&file, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_faderbridge"));
        cmd.arg("run")
            .arg(&file)
            .args(["--backend", "null", "--state-dir"])
            .arg(dir.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe. The daemon dies with the test process even when
        // that is killed before `Drop` runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn daemon");
        let d = Daemon {
            child,
            xair: SocketAddr::from(([127, 0, 0, 1], xp)),
            osc: SocketAddr::from(([127, 0, 0, 1], op)),
            dir,
        };
        // Ready when both surfaces answer (polled with a deadline: an external process).
        let (x, o) = (d.xair_client(), d.osc_client());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ready = (false, false);
        while Instant::now() < deadline && ready != (true, true) {
            if !ready.0 {
                x.send("/xinfo", vec![]);
                ready.0 = x.wait_for("/xinfo", Duration::from_millis(100)).is_some();
            }
            if !ready.1 {
                o.send("/engine/xruns", vec![]);
                ready.1 = o
                    .wait_for("/engine/xruns", Duration::from_millis(100))
                    .is_some();
            }
        }
        assert_eq!(ready, (true, true), "daemon surfaces did not answer");
        d
    }

    fn xair_client(&self) -> Client {
        Client::new(self.xair)
    }

    fn osc_client(&self) -> Client {
        Client::new(self.osc)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One UDP client.
struct Client {
    sock: UdpSocket,
    to: SocketAddr,
}

fn flatten(p: OscPacket, out: &mut Vec<OscMessage>) {
    match p {
        OscPacket::Message(m) => out.push(m),
        OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| flatten(p, out)),
    }
}

impl Client {
    fn new(to: SocketAddr) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Client { sock, to }
    }

    fn send(&self, addr: &str, args: Vec<OscType>) {
        let p = OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        });
        self.sock
            .send_to(&rosc::encoder::encode(&p).unwrap(), self.to)
            .unwrap();
    }

    /// The messages of the next datagram within `limit`.
    fn recv_within(&self, limit: Duration) -> Option<Vec<OscMessage>> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let (_, p) = rosc::decoder::decode_udp(&buf[..n]).expect("daemon sent bad OSC");
                let mut out = Vec::new();
                flatten(p, &mut out);
                return Some(out);
            }
        }
    }

    /// Every message received during `d`.
    fn collect(&self, d: Duration) -> Vec<OscMessage> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(ms) = self.recv_within(left) {
                out.extend(ms);
            }
        }
        out
    }

    /// The first message with address `addr` within `limit` (others are skipped).
    fn wait_for(&self, addr: &str, limit: Duration) -> Option<OscMessage> {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some(ms) = self.recv_within(left)
                && let Some(m) = ms.into_iter().find(|m| m.addr == addr)
            {
                return Some(m);
            }
        }
        None
    }

    /// Query `addr` (no arguments) and return the reply's single argument.
    fn query(&self, addr: &str) -> OscType {
        self.send(addr, vec![]);
        let m = self
            .wait_for(addr, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no reply to {addr}"));
        assert_eq!(m.args.len(), 1, "{m:?}");
        m.args[0].clone()
    }

    fn query_f(&self, addr: &str) -> f32 {
        match self.query(addr) {
            OscType::Float(f) => f,
            other => panic!("{addr}: expected a float, got {other:?}"),
        }
    }

    /// Set `addr` and wait until this surface has applied it (its reply to a query comes
    /// after the set, on the same socket): other surfaces then see the new value.
    fn set_synced(&self, addr: &str, args: Vec<OscType>) {
        self.send(addr, args);
        self.query(addr);
    }

    fn query_i(&self, addr: &str) -> i32 {
        match self.query(addr) {
            OscType::Int(i) => i,
            other => panic!("{addr}: expected an int, got {other:?}"),
        }
    }
}

fn f(v: f32) -> Vec<OscType> {
    vec![OscType::Float(v)]
}

fn i(v: i32) -> Vec<OscType> {
    vec![OscType::Int(v)]
}

fn strings(m: &OscMessage) -> Vec<String> {
    m.args
        .iter()
        .map(|a| match a {
            OscType::String(s) => s.clone(),
            other => panic!("{}: non-string argument {other:?}", m.addr),
        })
        .collect()
}

/// The console's four-segment law at its documented points: (fader position, dB).
const LAW: [(f32, f32); 5] = [
    (0.0, f32::NEG_INFINITY),
    (0.25, -30.0),
    (0.5, -10.0),
    (0.75, 0.0),
    (1.0, 10.0),
];

fn same_db(a: f32, b: f32) -> bool {
    a == b || (a - b).abs() < 1e-4
}

#[test]
fn xinfo_info_and_status_have_the_consoles_shape() {
    let d = Daemon::start("info");
    let x = d.xair_client();
    x.send("/xinfo", vec![]);
    let m = x
        .wait_for("/xinfo", Duration::from_secs(2))
        .expect("/xinfo");
    assert_eq!(strings(&m), ["127.0.0.1", "faderbridge", "XR18", "1.17"]);
    x.send("/info", vec![]);
    let m = x.wait_for("/info", Duration::from_secs(2)).expect("/info");
    assert_eq!(strings(&m), ["V0.04", "faderbridge", "XR18", "1.17"]);
    x.send("/status", vec![]);
    let m = x
        .wait_for("/status", Duration::from_secs(2))
        .expect("/status");
    assert_eq!(strings(&m), ["active", "127.0.0.1", "faderbridge"]);
}

#[test]
fn fader_law_both_directions_through_the_daemon() {
    let d = Daemon::start("law");
    let (x, o) = (d.xair_client(), d.osc_client());
    // Session value: -3 dB is (−3 + 30) / 40 = 0.675.
    assert!((x.query_f("/ch/01/mix/fader") - 0.675).abs() < 1e-6);
    for (pos, db) in LAW {
        x.set_synced("/ch/01/mix/fader", f(pos));
        let got = o.query_f("/ch/kick/fader_db");
        assert!(same_db(got, db), "X-Air {pos} -> {got} dB, want {db}");
    }
    for (pos, db) in LAW {
        // Native OSC takes a closed fader as the string "-inf" (OSC floats must be finite).
        let arg = if db.is_finite() {
            f(db)
        } else {
            vec![OscType::String("-inf".into())]
        };
        o.set_synced("/ch/snare/fader_db", arg);
        let got = x.query_f("/ch/02/mix/fader");
        assert!(
            (got - pos).abs() < 1e-6,
            "{db} dB -> X-Air {got}, want {pos}"
        );
    }
    // Master and buses use the same law.
    x.set_synced("/lr/mix/fader", f(0.5));
    assert!(same_db(o.query_f("/master/fader_db"), -10.0));
    o.set_synced("/bus/verb/fader_db", f(-30.0));
    assert!((x.query_f("/bus/1/mix/fader") - 0.25).abs() < 1e-6);
}

#[test]
fn mix_on_is_the_inverse_of_mute() {
    let d = Daemon::start("mute");
    let (x, o) = (d.xair_client(), d.osc_client());
    assert_eq!(x.query_i("/ch/01/mix/on"), 1, "unmuted in the session");
    x.set_synced("/ch/01/mix/on", i(0));
    assert_eq!(o.query_f("/ch/kick/mute"), 1.0, "on 0 = muted");
    x.set_synced("/ch/01/mix/on", i(1));
    assert_eq!(o.query_f("/ch/kick/mute"), 0.0, "on 1 = unmuted");
    o.set_synced("/ch/snare/mute", f(1.0));
    assert_eq!(x.query_i("/ch/02/mix/on"), 0);
    x.set_synced("/bus/2/mix/on", i(0));
    assert_eq!(o.query_f("/bus/drums/mute"), 1.0);
    // Our master has no mute: /lr/mix/on stays 1 and a set is answered with it.
    x.send("/lr/mix/on", i(0));
    let m = x
        .wait_for("/lr/mix/on", Duration::from_secs(2))
        .expect("answer");
    assert_eq!(m.args, i(1));
}

#[test]
fn names_are_the_session_names_and_read_only() {
    let d = Daemon::start("names");
    let x = d.xair_client();
    for (addr, name) in [
        ("/ch/01/config/name", "kick"),
        ("/ch/02/config/name", "snare"),
        ("/bus/1/config/name", "verb"),
        ("/bus/2/config/name", "drums"),
        ("/lr/config/name", "LR"),
    ] {
        assert_eq!(x.query(addr), OscType::String(name.into()), "{addr}");
    }
    // A rename is answered with the current name.
    x.send(
        "/ch/01/config/name",
        vec![OscType::String("bassdrum".into())],
    );
    let m = x
        .wait_for("/ch/01/config/name", Duration::from_secs(2))
        .expect("answer");
    assert_eq!(m.args, vec![OscType::String("kick".into())]);
    // Addresses past the session's strips get no answer, as on the console.
    x.send("/ch/03/config/name", vec![]);
    x.send("/bus/3/mix/fader", vec![]);
    assert!(x.collect(Duration::from_millis(300)).is_empty());
}

#[test]
fn sends_use_the_fader_law() {
    let d = Daemon::start("sends");
    let (x, o) = (d.xair_client(), d.osc_client());
    // No send in the session: -inf = 0.
    assert_eq!(x.query_f("/ch/01/mix/01/level"), 0.0);
    x.set_synced("/ch/01/mix/01/level", f(0.5));
    assert!(same_db(o.query_f("/ch/kick/sends/verb/level_db"), -10.0));
    o.set_synced("/ch/snare/sends/verb/level_db", f(-30.0));
    assert!((x.query_f("/ch/02/mix/01/level") - 0.25).abs() < 1e-6);
    // Bus 2 is a group: channels reach it through their output, not a send.
    assert_eq!(x.query_f("/ch/01/mix/02/level"), 0.0);
}

#[test]
fn xremote_feeds_back_changes_from_native_osc_and_other_xair_clients() {
    let d = Daemon::start("xremote");
    let (a, b, o) = (d.xair_client(), d.xair_client(), d.osc_client());
    a.send("/xremote", vec![]);
    b.send("/xremote", vec![]);
    // A query answered after /xremote proves the subscription is in place (one task, in order).
    a.query("/ch/01/mix/fader");
    b.query("/ch/01/mix/fader");
    // A change from a native OSC client reaches both X-Air clients in X-Air form.
    o.send("/ch/snare/fader_db", f(-10.0));
    for c in [&a, &b] {
        let m = c
            .wait_for("/ch/02/mix/fader", Duration::from_secs(2))
            .expect("feedback of the native change");
        assert_eq!(m.args, f(0.5));
    }
    o.send("/ch/snare/mute", f(1.0));
    let m = a
        .wait_for("/ch/02/mix/on", Duration::from_secs(2))
        .expect("mute feedback");
    assert_eq!(m.args, i(0));
    b.wait_for("/ch/02/mix/on", Duration::from_secs(2))
        .expect("mute feedback to b");
    // A change from X-Air client b reaches a, once, and is not echoed to b.
    b.send("/ch/01/mix/on", i(0));
    b.set_synced("/ch/01/eq/2/g", f(0.75));
    let got_a = a.collect(Duration::from_millis(500));
    let on: Vec<&OscMessage> = got_a.iter().filter(|m| m.addr == "/ch/01/mix/on").collect();
    assert_eq!(on.len(), 1, "{got_a:?}");
    assert_eq!(on[0].args, i(0));
    let g: Vec<&OscMessage> = got_a.iter().filter(|m| m.addr == "/ch/01/eq/2/g").collect();
    assert_eq!(g.len(), 1, "{got_a:?}");
    assert_eq!(g[0].args, f(0.75));
    let got_b = b.collect(Duration::from_millis(300));
    assert!(
        !got_b
            .iter()
            .any(|m| m.addr == "/ch/01/mix/on" || m.addr == "/ch/01/eq/2/g"),
        "echo to the sender: {got_b:?}"
    );
    // The change is stored in our units: eq gain 0.75 on ±15 dB is +7.5 dB.
    assert!(same_db(o.query_f("/ch/kick/eq/2/gain_db"), 7.5));
    // The console's EQ switch follows our per-band switches: on while any band is on.
    o.send("/ch/snare/eq/2/on", f(1.0));
    let m = a
        .wait_for("/ch/02/eq/on", Duration::from_secs(2))
        .expect("eq on");
    assert_eq!(m.args, i(1));
    o.send("/ch/snare/eq/2/on", f(0.0));
    let m = a
        .wait_for("/ch/02/eq/on", Duration::from_secs(2))
        .expect("eq off");
    assert_eq!(m.args, i(0));
    // A client that never sent /xremote gets nothing.
    let c = d.xair_client();
    c.query("/ch/01/mix/fader");
    o.send("/ch/kick/fader_db", f(-20.0));
    a.wait_for("/ch/01/mix/fader", Duration::from_secs(2))
        .expect("a is subscribed");
    assert!(c.collect(Duration::from_millis(300)).is_empty());
}

#[test]
fn xremote_lapses_after_ten_seconds_and_renews() {
    let d = Daemon::start("lease");
    let (a, o) = (d.xair_client(), d.osc_client());
    a.send("/xremote", vec![]);
    a.query("/ch/01/mix/fader");
    let subscribed = Instant::now();
    o.send("/ch/kick/fader_db", f(-10.0));
    a.wait_for("/ch/01/mix/fader", Duration::from_secs(2))
        .expect("subscribed");
    // Let the 10 s lease run out (sleeping is the point here: nothing is sent meanwhile).
    std::thread::sleep(Duration::from_millis(10_300).saturating_sub(subscribed.elapsed()));
    o.send("/ch/kick/fader_db", f(-20.0));
    let got = a.collect(Duration::from_millis(500));
    assert!(
        got.iter().all(|m| m.addr != "/ch/01/mix/fader"),
        "feedback after the lease: {got:?}"
    );
    a.send("/xremote", vec![]);
    a.query("/ch/01/mix/fader");
    o.send("/ch/kick/fader_db", f(0.0));
    let m = a
        .wait_for("/ch/01/mix/fader", Duration::from_secs(2))
        .expect("renewed");
    assert_eq!(m.args, f(0.75));
}

#[test]
fn meters_1_streams_the_consoles_blob() {
    let d = Daemon::start("meters");
    let x = d.xair_client();
    x.send("/meters", vec![OscType::String("/meters/1".into())]);
    // The tone starts with the daemon; take the first blobs after the meters have settled.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames = Vec::new();
    while Instant::now() < deadline && frames.len() < 10 {
        if let Some(m) = x.wait_for("/meters/1", deadline - Instant::now()) {
            let [OscType::Blob(b)] = m.args.as_slice() else {
                panic!("not one blob: {m:?}")
            };
            frames.push(b.clone());
        }
    }
    assert_eq!(frames.len(), 10, "meter stream");
    let b = frames.last().unwrap();
    assert_eq!(b.len(), 4 + 2 * 40, "int32 count + 40 int16");
    assert_eq!(i32::from_le_bytes([b[0], b[1], b[2], b[3]]), 40);
    let level = |n: usize| f32::from(i16::from_le_bytes([b[4 + 2 * n], b[5 + 2 * n]])) / 256.0;
    // Channel 1 (pre-fader): a 0.5 sine peaks at 20 log10 0.5 = -6.02 dBFS.
    let want = 20.0 * TONE_AMP.log10();
    assert!((level(0) - want).abs() < 0.2, "ch 1 {} dB", level(0));
    // Channel 2 (a silent input on the null backend) and the buses read the floor.
    assert_eq!(level(1), -128.0);
    assert_eq!(level(26), -128.0, "bus 1 (verb, no sends)");
    assert_eq!(level(27), -128.0, "bus 2 (drums, nothing routed)");
    // Main L/R (post-fader): fader -3 dB, centre pan -3 dB per side: -12.04 dBFS.
    for n in [36, 37] {
        assert!(
            (level(n) - (want - 6.0)).abs() < 0.3,
            "main {n}: {} dB",
            level(n)
        );
    }
}
