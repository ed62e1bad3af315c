//! Generic MIDI controllers end to end: the real daemon (`faderbridge run --backend null`)
//! with the shipped mapping files, each on its own pseudo-terminal serial device that the
//! test plays byte by byte, next to an MCU (simulated X-Touch) and an OSC client; plus
//! `faderbridge check` on every shipped map and on broken maps, and hot reload.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faderbridge::midi::{MidiEvent, Parser};

#[path = "common/pty.rs"]
mod pty;
use pty::Pty;

#[path = "common/mcu_sim.rs"]
mod mcu_sim;

#[path = "common/daemon.rs"]
mod daemon;

#[path = "osc_client/mod.rs"]
mod osc_client;
use daemon::{Daemon, WAIT};
use osc_client::Client;

/// The X32 fader law of DESIGN.md: travel → dB.
fn law(f: f64) -> f64 {
    if f >= 0.5 {
        40.0 * f - 30.0
    } else if f >= 0.25 {
        80.0 * f - 50.0
    } else if f >= 0.0625 {
        160.0 * f - 70.0
    } else if f > 0.0 {
        480.0 * f - 90.0
    } else {
        f64::NEG_INFINITY
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-midimap-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A device on a pty: what the daemon sends it is parsed and kept; `feed` is called with
/// the raw bytes too (for the MCU simulator).
struct Dev {
    pty: Pty,
    got: Arc<Mutex<Vec<MidiEvent>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Dev {
    fn open(link: &Path, sink: Option<Arc<mcu_sim::Device>>) -> Dev {
        let pty = Pty::open();
        pty.link(link);
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut r = pty.master.try_clone().unwrap();
        let (g, st) = (got.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let mut parser = Parser::new();
            let mut buf = [0u8; 1024];
            while !st.load(std::sync::atomic::Ordering::Acquire) {
                let mut pfd = libc::pollfd {
                    fd: r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
                    continue;
                }
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Some(s) = &sink {
                            s.feed(&buf[..n]);
                        }
                        g.lock().unwrap().extend(parser.parse(&buf[..n]));
                    }
                }
            }
        });
        Dev {
            pty,
            got,
            stop,
            reader: Some(reader),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.pty.master.write_all(bytes).unwrap();
        self.pty.master.flush().unwrap();
    }

    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Wait until a message after index `from` equals `ev`; returns its index.
    fn wait_for(&self, from: usize, ev: &MidiEvent, what: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let at = self
                .got
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .position(|e| e == ev);
            if let Some(i) = at {
                return from + i;
            }
            assert!(Instant::now() < deadline, "{what}: never got {ev:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

fn cc(channel: u8, controller: u8, value: u8) -> MidiEvent {
    MidiEvent::ControlChange {
        channel,
        controller,
        value,
    }
}

/// Wait for a message to `addr` whose float satisfies `f`.
fn wait_float(c: &Client, addr: &str, f: impl Fn(f32) -> bool) -> f32 {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for m in c.recv_within(deadline - Instant::now()).unwrap_or_default() {
            if m.addr == addr
                && let Some(rosc::OscType::Float(v)) = m.args.first()
                && f(*v)
            {
                return *v;
            }
        }
    }
    panic!("no OSC {addr} with the expected value");
}

/// How each shipped map's first fader and first mute button look on the wire.
struct Case {
    map: &'static str,
    /// Fader messages for a travel (0..1).
    fader: fn(f64) -> Vec<u8>,
    /// The fader's resolution (127 or 16383 steps).
    steps: f64,
    fader_path: &'static str,
    /// Mute button press and release.
    press: &'static [u8],
    release: &'static [u8],
    /// True: each press flips; false: press = on, release = off (device-side toggle).
    toggle: bool,
    /// The mute LED message the device gets when strip 1 is muted from elsewhere.
    led_on: MidiEvent,
}

fn cc7(status: u8, n: u8) -> impl Fn(f64) -> Vec<u8> {
    move |t| vec![status, n, (t * 127.0).round() as u8]
}

const CASES: &[Case] = &[
    Case {
        map: "nanokontrol2",
        fader: |t| cc7(0xB0, 0)(t),
        steps: 127.0,
        fader_path: "ch/1/fader_db",
        press: &[0xB0, 48, 127],
        release: &[0xB0, 48, 0],
        toggle: true,
        led_on: MidiEvent::ControlChange {
            channel: 0,
            controller: 48,
            value: 127,
        },
    },
    Case {
        map: "midimix",
        fader: |t| cc7(0xB0, 19)(t),
        steps: 127.0,
        fader_path: "ch/1/fader_db",
        press: &[0x90, 1, 127],
        release: &[0x80, 1, 0],
        toggle: true,
        led_on: MidiEvent::NoteOn {
            channel: 0,
            note: 1,
            velocity: 127,
        },
    },
    Case {
        map: "xtouch-mini",
        fader: |t| cc7(0xBA, 9)(t),
        steps: 127.0,
        fader_path: "master/fader_db",
        press: &[0x9A, 8, 127],
        release: &[0x8A, 8, 0],
        toggle: true,
        led_on: MidiEvent::NoteOn {
            channel: 10,
            note: 8,
            velocity: 1,
        },
    },
    Case {
        map: "launchcontrol-xl",
        fader: |t| cc7(0xB8, 77)(t),
        steps: 127.0,
        fader_path: "ch/1/fader_db",
        press: &[0x98, 41, 127],
        release: &[0x88, 41, 0],
        toggle: true,
        led_on: MidiEvent::NoteOn {
            channel: 8,
            note: 41,
            velocity: 15,
        },
    },
    Case {
        map: "faderport",
        fader: |t| {
            let v = (t * 16383.0).round() as u16;
            vec![0xB0, 0, (v >> 7) as u8, 0xB0, 32, (v & 0x7F) as u8]
        },
        steps: 16383.0,
        fader_path: "ch/1/fader_db",
        press: &[0xA0, 18, 1],
        release: &[0xA0, 18, 0],
        toggle: true,
        led_on: MidiEvent::PolyPressure {
            channel: 0,
            note: 21,
            pressure: 1,
        },
    },
    Case {
        map: "bcf2000",
        fader: |t| cc7(0xB0, 81)(t),
        steps: 127.0,
        fader_path: "ch/1/fader_db",
        press: &[0xB0, 65, 127],
        release: &[0xB0, 65, 0],
        toggle: false,
        led_on: MidiEvent::ControlChange {
            channel: 0,
            controller: 65,
            value: 127,
        },
    },
];

fn check(file: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("check")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn every_shipped_map_passes_check() {
    let mut n = 0;
    for e in std::fs::read_dir(repo().join("mappings")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let o = check(&p);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(out.contains(": ok (mapping file"), "{out}");
            n += 1;
        }
    }
    assert_eq!(n, CASES.len(), "one shipped map per tested device");
    // Every target of every shipped map is a path of the parameter tree (`check` resolves
    // their shapes); here against a real 16-channel session too, strips 1..8.
    for c in CASES {
        let m =
            faderbridge::midimap::load(&repo().join(format!("mappings/{}.yaml", c.map))).unwrap();
        for ctl in &m.controls {
            if let faderbridge::midimap::format::Target::Param { path, .. } = &ctl.target {
                let p = path.replace("{strip}", &ctl.strip.to_string());
                assert!(
                    faderbridge::midimap::format::spec_of(&p).is_some(),
                    "{}: {p}",
                    c.map
                );
            }
        }
    }
}

#[test]
fn broken_maps_exit_2_with_their_location() {
    let dir = repo().join("tests/fixtures/midimap");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let want = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap();
        let o = check(&f);
        assert_eq!(o.status.code(), Some(2), "{}", f.display());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            err.trim_end(),
            format!("{}:{want}", f.display()),
            "{}",
            f.display()
        );
    }
}

fn session(dir: &Path, osc_port: u16) -> String {
    let mut s = String::from("version: 1\nengine: { sample_rate: 48000, block: 64 }\nchannels:\n");
    for i in 1..=16 {
        s += &format!("  - {{ name: ch{i}, source: {{ input: {i} }} }}\n");
    }
    s += "master: { outputs: [1, 2] }\nsurfaces:\n";
    s += &format!(
        "  - {{ kind: osc, listen: \"127.0.0.1:{osc_port}\", allow: [\"127.0.0.0/8\"] }}\n"
    );
    s += &format!(
        "  - {{ kind: mcu, midi: \"serial:{}@31250\", profile: xtouch }}\n",
        dir.join("mcu").display()
    );
    for c in CASES {
        s += &format!(
            "  - {{ kind: midi_map, map: {}, midi: \"serial:{}@31250\" }}\n",
            repo().join(format!("mappings/{}.yaml", c.map)).display(),
            dir.join(c.map).display()
        );
    }
    s
}

#[test]
fn shipped_maps_mcu_and_osc_on_one_daemon() {
    let dir = tempdir("all");
    let port = osc_client::free_port();
    let mcu = Arc::new(mcu_sim::Device::default());
    let _mcu_dev = Dev::open(&dir.join("mcu"), Some(mcu.clone()));
    let mut devs: Vec<Dev> = CASES
        .iter()
        .map(|c| Dev::open(&dir.join(c.map), None))
        .collect();
    let mut d = Daemon::start(&dir, &session(&dir, port), &["--backend", "null"]);
    let osc = Client::new(format!("127.0.0.1:{port}").parse().unwrap());
    // Every surface registered (the ports connect as the ptys are there).
    let deadline = Instant::now() + WAIT;
    loop {
        let st = d.request(r#"{"cmd":"status"}"#);
        let n = st["surfaces"].as_array().map_or(0, |a| a.len());
        if n >= CASES.len() + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "surfaces: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The FaderPort map switches the device to native mode when it connects.
    devs[4].wait_for(
        0,
        &MidiEvent::NoteOn {
            channel: 1,
            note: 0,
            velocity: 0x64,
        },
        "FaderPort native mode",
    );
    osc.send("/subscribe", vec![rosc::OscType::Int(30)]);

    for (c, dev) in CASES.iter().zip(devs.iter_mut()) {
        // Fader: bottom, top (crossing the current value: soft takeover picks it up), then
        // a middle position whose dB the fader law gives.
        dev.send(&(c.fader)(0.0));
        dev.send(&(c.fader)(1.0));
        d.wait_value(c.fader_path, |v| v == 10.0);
        let mid = 0.6;
        dev.send(&(c.fader)(mid));
        let t = ((mid * c.steps).round()) / c.steps;
        let want = law(t);
        let got = d.wait_value(c.fader_path, |v| (v - want).abs() < 1e-3);
        eprintln!("{}: fader at {t:.5} → {got:.4} dB (law {want:.4})", c.map);
        if c.fader_path == "ch/1/fader_db" {
            // The MCU's motor 1 follows (X-Touch: 14-bit pitch bend of the travel).
            let bend = (t * 16383.0).round() as i32;
            mcu.wait(&format!("{}: MCU motor 1 at {bend}", c.map), |s| {
                s.faders
                    .get(&0)
                    .is_some_and(|b| (i32::from(*b) - bend).abs() <= 2)
                    .then_some(())
            });
            // And an OSC subscriber hears it.
            wait_float(&osc, "/ch/ch1/fader_db", |v| {
                (f64::from(v) - want).abs() < 1e-3
            });
        }
        // Mute button.
        let before = d.get("ch/1/mute");
        dev.send(c.press);
        if c.toggle {
            d.wait_value("ch/1/mute", |v| v == 1.0 - before);
            dev.send(c.release);
        } else {
            d.wait_value("ch/1/mute", |v| v == 1.0);
            dev.send(c.release);
            d.wait_value("ch/1/mute", |v| v == 0.0);
        }
    }

    // Feedback: an OSC mute lights every device's mute LED (strip 1 unmuted now?).
    if d.get("ch/1/mute") == 1.0 {
        d.set("ch/1/mute", 0.0);
    }
    let marks: Vec<usize> = devs.iter().map(|x| x.len()).collect();
    osc.send("/ch/1/mute", vec![rosc::OscType::Float(1.0)]);
    for ((c, dev), from) in CASES.iter().zip(&devs).zip(marks) {
        dev.wait_for(
            from,
            &c.led_on,
            &format!("{}: mute LED after the OSC change", c.map),
        );
    }

    // No echo: the BCF2000's own fader move is not sent back to it; a later change from
    // elsewhere (strip 2) is, and arrives after it, so everything before it was seen.
    let bcf = devs.len() - 1;
    let from = devs[bcf].len();
    devs[bcf].send(&[0xB0, 81, 100]);
    d.wait_value("ch/1/fader_db", |v| (v - law(100.0 / 127.0)).abs() < 1e-3);
    d.set("ch/2/fader_db", -10.0);
    let marker = devs[bcf].wait_for(
        from,
        &cc(0, 82, 64),
        "BCF2000 motor 2 at -10 dB (travel 0.5)",
    );
    let echoed = devs[bcf].got.lock().unwrap()[from..marker]
        .iter()
        .any(|e| matches!(e, MidiEvent::ControlChange { controller: 81, .. }));
    assert!(!echoed, "the BCF2000's own fader move came back to it");
    // The MCU (another surface) did get the BCF2000's move.
    let bend = (law_inv(law(100.0 / 127.0)) * 16383.0).round() as i32;
    mcu.wait("MCU motor 1 follows the BCF2000", |s| {
        s.faders
            .get(&0)
            .is_some_and(|b| (i32::from(*b) - bend).abs() <= 2)
            .then_some(())
    });
}

/// The fader law's inverse for dB above -10 (the upper segment).
fn law_inv(db: f64) -> f64 {
    (db + 30.0) / 40.0
}

#[test]
fn hot_reload_applies_within_a_second_and_keeps_the_map_on_a_broken_edit() {
    let dir = tempdir("reload");
    let map = dir.join("knob.yaml");
    let v1 =
        "name: knob\nchannel: 1\ntakeover: jump\ncontrols:\n  - { cc: 7, target: ch/ch1/pan }\n";
    std::fs::write(&map, v1).unwrap();
    let mut s = String::from("version: 1\nchannels:\n");
    for i in 1..=2 {
        s += &format!("  - {{ name: ch{i}, source: {{ input: {i} }} }}\n");
    }
    s += &format!(
        "surfaces:\n  - {{ kind: midi_map, map: knob.yaml, midi: \"serial:{}@31250\" }}\n",
        dir.join("dev").display()
    );
    let mut dev = Dev::open(&dir.join("dev"), None);
    let mut d = Daemon::start(&dir, &s, &["--backend", "null"]);
    // The port connects when the daemon opens the pty: resend until the console moves.
    let deadline = Instant::now() + WAIT;
    while d.get("ch/ch1/pan") != 1.0 {
        dev.send(&[0xB0, 7, 127]);
        assert!(Instant::now() < deadline, "the map never drove ch1");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Edit: the knob now drives ch2.
    let t0 = Instant::now();
    std::fs::write(&map, v1.replace("ch/ch1/pan", "ch/ch2/pan")).unwrap();
    let mut v = 0u8;
    loop {
        dev.send(&[0xB0, 7, v]);
        if d.get("ch/ch2/pan") != 0.0 {
            break;
        }
        v ^= 127;
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "the edit was not applied within 1 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    let ch1 = d.get("ch/ch1/pan");
    eprintln!(
        "hot reload applied after {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_secs(1));
    // A broken edit: logged, and the previous map keeps working.
    std::fs::write(&map, v1.replace("ch/ch1/pan", "ch/ch2/pann")).unwrap();
    let log = dir.join("daemon.log");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("keeping the previous map") {
            assert!(text.contains("did you mean ch/ch2/pan"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line for the broken edit:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    dev.send(&[0xB0, 7, 127]);
    d.wait_value("ch/ch2/pan", |v| v == 1.0);
    dev.send(&[0xB0, 7, 0]);
    d.wait_value("ch/ch2/pan", |v| v == -1.0);
    assert_eq!(
        d.get("ch/ch1/pan"),
        ch1,
        "ch1 untouched since the edit applied"
    );
}

#[test]
fn learn_binds_the_next_control_and_keeps_the_file_s_comments() {
    let dir = tempdir("learn");
    let map = dir.join("mine.yaml");
    let v1 = "# My controller: comments stay.\nname: mine\nchannel: 1\ntakeover: jump\ncontrols:\n  # the knob\n  - { cc: 7, target: ch/ch1/pan }\n";
    std::fs::write(&map, v1).unwrap();
    let mut s = String::from("version: 1\nchannels:\n");
    for i in 1..=2 {
        s += &format!("  - {{ name: ch{i}, source: {{ input: {i} }} }}\n");
    }
    let port = osc_client::free_port();
    s += &format!(
        "surfaces:\n  - {{ kind: midi_map, map: mine.yaml, midi: \"serial:{}@31250\" }}\n",
        dir.join("dev").display()
    );
    s += &format!("  - {{ kind: osc, listen: \"127.0.0.1:{port}\" }}\n");
    let mut dev = Dev::open(&dir.join("dev"), None);
    let mut d = Daemon::start(&dir, &s, &["--backend", "null"]);
    let _ = d.get("ch/ch1/pan");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .args(["learn", "ch/ch2/fader_db", "--timeout", "10", "--state-dir"])
        .arg(dir.join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Move the unmapped CC 20 until the learn request (armed at some point) takes it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        dev.send(&[0xB0, 20, 64]);
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "learn did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("- { cc: 20, channel: 1, target: \"ch/ch2/fader_db\" }"),
        "{out}"
    );
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(
        text.starts_with(v1),
        "the file's text and comments are kept:\n{text}"
    );
    // The new entry works at once: CC 20 at the top is +10 dB on ch2.
    dev.send(&[0xB0, 20, 127]);
    d.wait_value("ch/ch2/fader_db", |v| v == 10.0);

    // OSC `/learn ,s PATH` arms the same: acknowledged, then note 9 is bound to ch1's mute.
    let osc = Client::new(format!("127.0.0.1:{port}").parse().unwrap());
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    'ack: loop {
        osc.send("/learn", vec![rosc::OscType::String("ch/ch1/mute".into())]);
        if let Ok(n) = osc.sock.recv(&mut buf)
            && let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n])
        {
            assert_eq!(m.addr, "/learn", "{m:?}");
            assert_eq!(m.args, vec![rosc::OscType::String("ch/ch1/mute".into())]);
            break 'ack;
        }
        assert!(Instant::now() < deadline, "no /learn acknowledgement");
    }
    dev.send(&[0x90, 9, 127]);
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&map)
        .unwrap()
        .contains("- { note: 9, channel: 1, target: \"ch/ch1/mute\" }")
    {
        assert!(Instant::now() < deadline, "OSC learn wrote nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        d.get("ch/ch1/mute"),
        0.0,
        "the learning press itself changes nothing"
    );
    dev.send(&[0x90, 9, 127]);
    d.wait_value("ch/ch1/mute", |v| v == 1.0);
}

#[test]
fn checking_a_session_checks_its_mapping_files() {
    let dir = tempdir("sessioncheck");
    std::fs::copy(
        repo().join("tests/fixtures/midimap/unknown-path.yaml"),
        dir.join("bad.yaml"),
    )
    .unwrap();
    let s = "version: 1\nchannels:\n  - { name: a, source: { input: 1 } }\nsurfaces:\n  - { kind: midi_map, map: bad.yaml, midi: \"alsa:x\" }\n";
    let file = dir.join("s.yaml");
    std::fs::write(&file, s).unwrap();
    let o = check(&file);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    // The session's `map:` value (line 5, column 28), then the map's own location.
    assert_eq!(
        err.trim_end(),
        format!(
            "{}:5:28: surfaces/1/map: {}:4:33: target: \"ch/{{strip}}/fadr_db\" is not a parameter path; did you mean ch/{{strip}}/fader_db?",
            file.display(),
            dir.join("bad.yaml").display()
        )
    );
}

/// The FaderPort map's automation LEDs (poly pressure on MIDI channel 1, `A0`): read 13, write 14
/// (and the rec button's 23, also `mode: write`), touch 15.
const FP_AUTO_LEDS: [(u8, &str); 4] = [(13, "read"), (14, "write"), (23, "write"), (15, "touch")];

/// The last value the device got for each FaderPort LED.
fn fp_leds(dev: &Dev) -> std::collections::HashMap<u8, u8> {
    let mut m = std::collections::HashMap::new();
    for e in dev.got.lock().unwrap().iter() {
        if let MidiEvent::PolyPressure {
            channel: 0,
            note,
            pressure,
        } = e
        {
            m.insert(*note, *pressure);
        }
    }
    m
}

/// Wait until exactly the automation LEDs of `mode` are lit.
fn wait_fp_auto_leds(dev: &Dev, mode: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let leds = fp_leds(dev);
        let ok = FP_AUTO_LEDS
            .iter()
            .all(|(n, m)| leds.get(n) == Some(&u8::from(*m == mode)));
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "FaderPort automation LEDs never showed {mode}: {leds:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The console's automation mode of `path`, asked over OSC.
fn osc_mode(c: &Client, path: &str) -> String {
    let addr = format!("/{path}/automation");
    c.send(&addr, vec![]);
    let m = c
        .wait_for(&addr, WAIT)
        .unwrap_or_else(|| panic!("no reply to {addr}"));
    match m.args.first() {
        Some(rosc::OscType::String(s)) => s.clone(),
        a => panic!("{addr}: {a:?}"),
    }
}

/// A MIDI map's automation LEDs show the console's mode of their strip, whoever set it.
#[test]
fn map_automation_leds_follow_modes_set_anywhere() {
    let dir = tempdir("auto");
    let port = osc_client::free_port();
    let mut dev = Dev::open(&dir.join("fp"), None);
    let session = format!(
        "version: 1\nchannels:\n  - {{ name: kick }}\n  - {{ name: snare }}\nsurfaces:\n  \
         - {{ kind: osc, listen: \"127.0.0.1:{port}\" }}\n  \
         - {{ kind: midi_map, map: {}, midi: \"serial:{}@31250\" }}\n",
        repo().join("mappings/faderport.yaml").display(),
        dir.join("fp").display()
    );
    let _d = Daemon::start(&dir, &session, &["--backend", "null"]);
    let osc = Client::new(format!("127.0.0.1:{port}").parse().unwrap());
    wait_fp_auto_leds(&dev, "off");
    for mode in ["touch", "read", "write"] {
        let t0 = Instant::now();
        osc.send(
            "/ch/kick/automation",
            vec![rosc::OscType::String(mode.into())],
        );
        wait_fp_auto_leds(&dev, mode);
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{mode}: {:?}",
            t0.elapsed()
        );
    }
    // Latch has no button on this map: every automation LED goes dark.
    osc.send(
        "/ch/kick/automation",
        vec![rosc::OscType::String("latch".into())],
    );
    wait_fp_auto_leds(&dev, "off");
    // Another strip's mode does not show on strip 1's buttons.
    osc.send(
        "/ch/snare/automation",
        vec![rosc::OscType::String("touch".into())],
    );
    assert_eq!(osc_mode(&osc, "ch/snare"), "touch");
    osc.send(
        "/ch/kick/automation",
        vec![rosc::OscType::String("read".into())],
    );
    wait_fp_auto_leds(&dev, "read");
    // Pressing the lit READ (poly 10) turns the strip's automation off.
    dev.send(&[0xA0, 10, 1, 0xA0, 10, 0]);
    wait_fp_auto_leds(&dev, "off");
    assert_eq!(osc_mode(&osc, "ch/kick"), "off");
    // Pressing TOUCH (poly 8) sets it in the console.
    dev.send(&[0xA0, 8, 1, 0xA0, 8, 0]);
    wait_fp_auto_leds(&dev, "touch");
    assert_eq!(osc_mode(&osc, "ch/kick/fader_db"), "touch");
    // Channel right (poly 21): the bank moves to the snare, whose mode shows.
    dev.send(&[0xA0, 21, 1, 0xA0, 21, 0]);
    wait_fp_auto_leds(&dev, "touch");
    osc.send(
        "/ch/snare/automation",
        vec![rosc::OscType::String("write".into())],
    );
    wait_fp_auto_leds(&dev, "write");
}
