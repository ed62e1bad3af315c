//! MIDI Time Code chase end to end: the real daemon (`faderbridge run --backend null`) with a
//! `kind: mtc` surface on a pseudo-terminal serial port that the test plays as an MTC
//! master. The transport is read back from the status socket (`transport`: playing and
//! position in seconds, from the engine's meters). Plus `faderbridge check` on a bad port.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/pty.rs"]
mod pty;
use pty::Pty;

#[path = "common/daemon.rs"]
mod daemon;
use daemon::{Daemon, WAIT};

#[path = "osc_client/mod.rs"]
mod osc_client;

use faderbridge::mtc::decode::{Rate, Timecode, full_frame_payload, quarter_frames};

/// One frame at 25 fps, in seconds.
const FRAME_25: f64 = 0.04;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-mtc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn session(link: &Path, osc_port: u16) -> String {
    format!(
        "version: 1\nengine: {{ sample_rate: 48000, block: 64 }}\nchannels:\n  - {{ name: a }}\n\
         surfaces:\n  - {{ kind: mtc, midi: \"serial:{}@31250\" }}\n  \
         - {{ kind: osc, listen: \"127.0.0.1:{osc_port}\" }}\n",
        link.display()
    )
}

fn send(pty: &mut Pty, bytes: &[u8]) {
    pty.master.write_all(bytes).unwrap();
    pty.master.flush().unwrap();
}

#[test]
fn mtc_full_frame_locates_quarter_frames_play_and_their_end_stops() {
    let dir = tempdir("chase");
    let link = dir.join("mtc");
    let mut pty = Pty::open();
    pty.link(&link);
    let port = osc_client::free_port();
    let mut d = Daemon::start(&dir, &session(&link, port), &["--backend", "null"]);
    // Wait for the surface to be up (the port connects as the pty is there).
    let deadline = Instant::now() + WAIT;
    loop {
        let st = d.request(r#"{"cmd":"status"}"#);
        let up = st["surfaces"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.to_string().contains("Time Code")));
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "no mtc surface: {st}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The daemon plays from the start; stop it so a locate holds still.
    let osc = osc_client::Client::new(format!("127.0.0.1:{port}").parse().unwrap());
    let deadline = Instant::now() + WAIT;
    while d.transport().0 {
        assert!(Instant::now() < deadline, "/transport/stop did not stop it");
        osc.send("/transport/stop", vec![]);
        std::thread::sleep(Duration::from_millis(20));
    }

    // Full frame 00:00:10:00 @ 25 fps: the position reads 10.0 s ± 1 frame; still stopped.
    let ten = Timecode::new(0, 0, 10, 0, Rate::Fps25).unwrap();
    let mut ff = vec![0xF0];
    ff.extend(full_frame_payload(&ten));
    ff.push(0xF7);
    assert_eq!(ff, [0xF0, 0x7F, 0x7F, 0x01, 0x01, 0x20, 0, 10, 0, 0xF7]);
    send(&mut pty, &ff);
    let (_, pos) = d.wait_transport("located to 10 s", |_, s| (s - 10.0).abs() <= FRAME_25);
    eprintln!("full frame 00:00:10:00 → position {pos:.4} s");
    std::thread::sleep(Duration::from_millis(100));
    let (playing, held) = d.transport();
    assert!(!playing, "a full frame does not start the transport");
    assert!((held - 10.0).abs() <= FRAME_25, "{held}");

    // Drop frame: 00:01:00;02 is frame 1800 at 30000/1001 fps, 60.06 s.
    let df = Timecode::new(0, 1, 0, 2, Rate::Df2997).unwrap();
    let mut ff = vec![0xF0];
    ff.extend(full_frame_payload(&df));
    ff.push(0xF7);
    assert_eq!(ff, [0xF0, 0x7F, 0x7F, 0x01, 0x01, 0x40, 1, 0, 2, 0xF7]);
    send(&mut pty, &ff);
    let (_, pos) = d.wait_transport("located to 60.06 s", |_, s| {
        (s - 1800.0 * 1001.0 / 30000.0).abs() <= 1001.0 / 30000.0
    });
    eprintln!("full frame 00:01:00;02 → position {pos:.4} s");

    // Quarter frames from 00:00:20:00, one every 10 ms (25 fps), for 1 s, paced against
    // absolute deadlines by a writer thread. Quarter frame i stands for 20 s + i × 10 ms.
    let start = Timecode::new(0, 0, 20, 0, Rate::Fps25).unwrap();
    let mut writer = pty.master.try_clone().unwrap();
    let t0 = Instant::now() + Duration::from_millis(20);
    let n_qf = 100u32;
    let master = std::thread::spawn(move || {
        for i in 0..n_qf {
            let tc = start.add_frames(2 * i64::from(i / 8));
            let d = quarter_frames(&tc)[(i % 8) as usize];
            let at = t0 + Duration::from_millis(10) * i;
            if let Some(w) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            writer.write_all(&[0xF1, d]).unwrap();
            writer.flush().unwrap();
        }
        Instant::now()
    });
    // The transport plays within a cycle or so, and then tracks the MTC time.
    d.wait_transport("playing on quarter frames", |p, _| p);
    let started = t0.elapsed();
    eprintln!(
        "playing {:.0} ms after the first quarter frame",
        started.as_secs_f64() * 1e3
    );
    assert!(started < Duration::from_millis(300), "{started:?}");
    let mut worst: f64 = 0.0;
    let mut samples = 0;
    while t0.elapsed() < Duration::from_millis(950) {
        let before = t0.elapsed().as_secs_f64();
        let (playing, pos) = d.transport();
        let after = t0.elapsed().as_secs_f64();
        // Skip the first cycle and its locate; sample the rest, when the reply came quickly
        // enough to say when the position was read (a loaded machine may stall a request).
        if before > 0.2 && after - before < 0.005 {
            assert!(playing, "stopped at {before:.3} s while quarter frames ran");
            let want = 20.0 + (before + after) / 2.0;
            worst = worst.max((pos - want).abs());
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{samples} samples: position within {:.1} ms of the MTC time",
        worst * 1e3
    );
    assert!(samples >= 10, "{samples}");
    assert!(worst <= 2.0 * FRAME_25, "off by {worst:.4} s");

    // The quarter frames end: the transport stops STOP_AFTER (150 ms) later, near where
    // the MTC stopped.
    let last = master.join().unwrap();
    let (_, pos) = d.wait_transport("stopped after the quarter frames", |p, _| !p);
    let took = last.elapsed();
    eprintln!(
        "stopped {:.0} ms after the last quarter frame, at {pos:.3} s",
        took.as_secs_f64() * 1e3
    );
    assert!(took >= faderbridge::mtc::STOP_AFTER, "{took:?}");
    assert!(took < Duration::from_millis(600), "{took:?}");
    let last_mtc = 20.0 + 0.01 * f64::from(n_qf - 1);
    assert!(
        pos >= last_mtc && pos < last_mtc + 0.6,
        "stopped at {pos} (last MTC {last_mtc})"
    );
}
