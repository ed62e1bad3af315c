//! MCU latency: a fader move (bytes into the daemon's serial MIDI port) → the motor echo
//! (bytes out of it), with 8 faders moving continuously at full DIN MIDI rate.
//!
//! `cargo bench --bench mcu` starts the release daemon on the null backend with 8 channels and
//! an MCU surface on a pseudo-terminal (`serial:...@31250`), handshakes, then for
//! `FB_BENCH_SECS` (default 20) sends pitch bends for faders 1..8 in turn, paced at DIN MIDI's
//! 3125 bytes/s (3 bytes a move: one move every 0.96 ms, each fader ~130 moves/s), every move
//! to a new position. Each echo is matched to its move by (fader, position); the report gives
//! p50/p99/max of move → echo, and how many moves got no echo.
//! Under `cargo test` (no `--bench` argument) it does nothing.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faderbridge::midi::{MidiEvent, Parser};

#[path = "../tests/common/pty.rs"]
mod pty;
use pty::Pty;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("mcu bench: skipped (run with cargo bench --bench mcu)");
        return;
    }
    let secs: u64 = std::env::var("FB_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let status = Command::new("cargo")
        .args(["build", "--release", "--bin", "faderbridge", "-q"])
        .status()
        .expect("cargo");
    assert!(status.success());

    let dir = std::env::temp_dir().join(format!("fb-bench-mcu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pty = Pty::open();
    let link = dir.join("mcu");
    pty.link(&link);
    let mut master = pty.master.try_clone().unwrap();
    let mut session = String::from("version: 1\nchannels:\n");
    for i in 1..=8 {
        session += &format!("  - {{ name: c{i}, source: {{ input: {i} }} }}\n");
    }
    let osc_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    session += &format!(
        "surfaces:\n  - {{ kind: mcu, midi: \"serial:{}@31250\" }}\n  - {{ kind: osc, listen: \"127.0.0.1:{osc_port}\" }}\n",
        link.display()
    );
    std::fs::write(dir.join("s.yaml"), session).unwrap();
    // This bench runs from <target>/release/deps/; the daemon is in <target>/release/.
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("faderbridge");
    let mut daemon = Command::new(bin)
        .args(["run"])
        .arg(dir.join("s.yaml"))
        .args(["--backend", "null", "--state-dir"])
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");

    // Reader: timestamps every pitch bend the host sends.
    let echoes: Arc<Mutex<Vec<(u8, u16, Instant)>>> = Arc::default();
    let mut reader = master.try_clone().unwrap();
    {
        let echoes = echoes.clone();
        std::thread::spawn(move || {
            let mut p = Parser::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let t = Instant::now();
                let mut e = echoes.lock().unwrap();
                p.push(&buf[..n], |ev| {
                    if let MidiEvent::PitchBend { channel, value } = ev {
                        e.push((channel, value, t));
                    }
                });
            }
        });
    }
    // An OSC tablet subscribed to feedback: timestamps every fader value it is sent.
    let feedback: Arc<Mutex<Vec<(u8, f32, Instant)>>> = Arc::default();
    let osc = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    {
        let osc = osc.try_clone().unwrap();
        let feedback = feedback.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = osc.recv(&mut buf) {
                let t = Instant::now();
                let Ok((_, p)) = rosc::decoder::decode_udp(&buf[..n]) else {
                    continue;
                };
                let mut stack = vec![p];
                let mut f = feedback.lock().unwrap();
                while let Some(p) = stack.pop() {
                    match p {
                        rosc::OscPacket::Message(m) => {
                            let k = m
                                .addr
                                .strip_prefix("/ch/c")
                                .and_then(|r| r.strip_suffix("/fader_db"))
                                .and_then(|k| k.parse::<u8>().ok());
                            if let (Some(k), Some(rosc::OscType::Float(v))) = (k, m.args.first()) {
                                f.push((k - 1, *v, t));
                            }
                        }
                        rosc::OscPacket::Bundle(b) => stack.extend(b.content),
                    }
                }
            }
        });
    }
    let subscribe = |secs: i32| {
        let p = rosc::OscPacket::Message(rosc::OscMessage {
            addr: "/subscribe".into(),
            args: vec![rosc::OscType::Int(secs)],
        });
        let _ = osc.send_to(&rosc::encoder::encode(&p).unwrap(), ("127.0.0.1", osc_port));
    };
    // Wait for the initial sync (8 faders at 0 dB).
    let deadline = Instant::now() + Duration::from_secs(20);
    while echoes.lock().unwrap().len() < 8 {
        assert!(Instant::now() < deadline, "no initial sync from the daemon");
        std::thread::sleep(Duration::from_millis(10));
    }
    subscribe(i32::try_from(secs + 10).unwrap_or(i32::MAX));
    std::thread::sleep(Duration::from_millis(200));
    echoes.lock().unwrap().clear();
    feedback.lock().unwrap().clear();

    // Moves: fader k walks through positions unique to it (k + 8 * step), paced at DIN rate.
    let period = Duration::from_micros(960);
    let mut sent: Vec<(u8, u16, Instant)> = Vec::new();
    let start = Instant::now();
    let mut next = start;
    let mut step: u32 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        let fader = (step % 8) as u8;
        let value = ((step / 8 * 37 + u32::from(fader) * 2000) % 16000) as u16 + 100;
        let msg = [0xE0 | fader, (value & 0x7F) as u8, (value >> 7) as u8];
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        // Stamp before writing: the echo may be read before this thread runs again.
        sent.push((fader, value, Instant::now()));
        master.write_all(&msg).unwrap();
        next += period;
        step += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let echoes = echoes.lock().unwrap().clone();
    let feedback = feedback.lock().unwrap().clone();
    let _ = daemon.kill();
    let _ = daemon.wait();

    // Match each move to the first later echo of the same (fader, value).
    let mut lat: Vec<f64> = Vec::with_capacity(sent.len());
    let mut missing = 0;
    let mut j = 0usize;
    for (f, v, t) in &sent {
        while j < echoes.len() && echoes[j].2 < *t {
            j += 1;
        }
        match echoes[j..]
            .iter()
            .take(4096)
            .find(|(ef, ev, _)| ef == f && ev == v)
        {
            Some((_, _, te)) => lat.push(te.duration_since(*t).as_secs_f64() * 1e3),
            None => {
                missing += 1;
                if std::env::var_os("FB_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "missing: fader {f} value {v} bytes {:02X} {:02X}",
                        v & 0x7F,
                        v >> 7
                    );
                }
            }
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "mcu: {} moves in {secs} s (8 faders at DIN rate), echo latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {missing} without echo",
        sent.len(),
        q(0.5),
        q(0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    // OSC feedback: each value the tablet got, against the latest move of that fader to that
    // value (feedback is coalesced per address at 30 Hz: not every move is sent, by design).
    let db_of = |v: u16| faderbridge::params::spec::fader_pos_to_db(f32::from(v) / 16383.0);
    let mut osc_lat: Vec<f64> = Vec::new();
    for (k, v, t) in &feedback {
        let m = sent
            .iter()
            .rev()
            .filter(|(f, _, ts)| f == k && ts <= t)
            .find(|(_, sv, _)| (db_of(*sv) - v).abs() < 1e-3);
        if let Some((_, _, ts)) = m {
            osc_lat.push(t.duration_since(*ts).as_secs_f64() * 1e3);
        }
    }
    osc_lat.sort_by(|a, b| a.total_cmp(b));
    if !osc_lat.is_empty() {
        let q = |p: f64| osc_lat[((osc_lat.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "mcu → OSC: {} feedback messages, latency from the move p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            osc_lat.len(),
            q(0.5),
            q(0.99),
            osc_lat.last().copied().unwrap_or(f64::NAN)
        );
    }
    drop(master);
    drop(pty);
    let _ = std::fs::remove_dir_all(&dir);
}
