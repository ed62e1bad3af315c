//! The serial MIDI transport against a real pseudo-terminal pair: the test holds the master
//! side (the "device"), the port opens the slave through a stable symlink, as a udev rule
//! would give it (`/dev/faderbridge/...`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use faderbridge::midi::transport::{MidiPort, PortEvent, PortSpec};
use faderbridge::midi::{MidiEvent, encode_running};

#[path = "common/pty.rs"]
mod pty;
use pty::Pty;

fn openpty() -> Pty {
    Pty::open()
}

async fn next(port: &mut MidiPort) -> PortEvent {
    tokio::time::timeout(Duration::from_secs(5), port.recv())
        .await
        .expect("no event from the port within 5 s")
        .expect("port stopped")
}

/// Wait for `Connected`, skipping nothing else.
async fn connected(port: &mut MidiPort) -> String {
    match next(port).await {
        PortEvent::Connected { device } => device,
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// Read exactly `n` bytes from the device side, with a deadline.
fn read_n(pty: &mut Pty, n: usize) -> Vec<u8> {
    pty.nonblocking();
    let master = &mut pty.master;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "read {got:02X?}, wanted {n} bytes"
        );
        match master.read(&mut buf) {
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_port_parses_sends_and_survives_replugging() {
    let dir = tempdir();
    let link = dir.join("mcu");
    // Absent at start: the port waits for the device.
    let mut port = MidiPort::open(PortSpec::Serial {
        path: link.clone(),
        baud: 31250,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await; // let it fail at least once
    assert!(port.try_recv().is_none(), "no device yet: no event");
    assert!(!port.is_connected());

    let mut pty = openpty();
    pty.link(&link);
    let device = connected(&mut port).await;
    assert!(device.contains("@ 31250"), "{device}");

    // Device → host: running status split across writes, real-time bytes inside, garbage.
    let chunks: [&[u8]; 5] = [
        &[0x55, 0x66, 0xE0, 0x00], // stray bytes, then pitch bend ch1 split
        &[0x40, 0x7F],             // ... its MSB, then running status LSB
        &[0xF8, 0x7F],             // clock inside the running-status message
        &[0xF0, 0x00, 0x00, 0x66], // SysEx split
        &[0x14, 0x01, 0xF7, 0x90, 0x68, 0x7F],
    ];
    for c in chunks {
        pty.master.write_all(c).unwrap();
        pty.master.flush().unwrap();
    }
    let want = vec![
        MidiEvent::PitchBend {
            channel: 0,
            value: 8192,
        },
        MidiEvent::RealTime(0xF8),
        MidiEvent::PitchBend {
            channel: 0,
            value: 16383,
        },
        MidiEvent::SysEx(vec![0x00, 0x00, 0x66, 0x14, 0x01]),
        MidiEvent::NoteOn {
            channel: 0,
            note: 0x68,
            velocity: 0x7F,
        },
    ];
    for w in &want {
        assert_eq!(next(&mut port).await, PortEvent::Midi(w.clone()));
    }
    assert_eq!(port.parser_stats().stray_bytes, 2);

    // Host → device: bytes arrive unchanged (raw mode: no echo, no CR/LF translation).
    let out = [
        MidiEvent::PitchBend {
            channel: 2,
            value: 0x1234,
        },
        MidiEvent::ControlChange {
            channel: 0,
            controller: 0x30,
            value: 0x0A, // would become CR LF through a cooked tty
        },
    ];
    let mut expect = Vec::new();
    for ev in &out {
        port.send(ev);
        ev.encode(&mut expect).unwrap();
    }
    assert_eq!(read_n(&mut pty, expect.len()), expect);

    // Unplug: the device side closes and disappears.
    let t0 = std::time::Instant::now();
    drop(pty);
    let _ = std::fs::remove_file(&link);
    match next(&mut port).await {
        PortEvent::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(!port.is_connected());
    // Replug: a new device node behind the same stable name.
    let mut pty = openpty();
    pty.link(&link);
    connected(&mut port).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "reconnect took {took:?}");

    // And it works again, with a fresh parser state.
    let mut bytes = Vec::new();
    let evs = [
        MidiEvent::NoteOn {
            channel: 0,
            note: 0x10,
            velocity: 0x7F,
        },
        MidiEvent::NoteOn {
            channel: 0,
            note: 0x10,
            velocity: 0x00,
        },
    ];
    encode_running(&evs, &mut bytes).unwrap();
    assert_eq!(bytes.len(), 5, "running status used");
    pty.master.write_all(&bytes).unwrap();
    for w in &evs {
        assert_eq!(next(&mut port).await, PortEvent::Midi(w.clone()));
    }
    port.send(&MidiEvent::NoteOn {
        channel: 0,
        note: 0x5E,
        velocity: 0x7F,
    });
    assert_eq!(read_n(&mut pty, 3), vec![0x90, 0x5E, 0x7F]);
    drop(port);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fb-midi-serial-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
