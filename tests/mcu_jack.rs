//! The Mackie Control host over JACK MIDI (`jack:` transport): a private `jackd -d dummy`,
//! the daemon on the JACK backend, and a simulated MCU as a JACK client with one MIDI input and
//! one MIDI output. The daemon finds the device's ports by name, connects them, handshakes,
//! syncs, follows fader moves, and resyncs when the device's client goes away and comes back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/mcu_sim.rs"]
mod mcu_sim;
use mcu_sim::Device;

#[path = "common/daemon.rs"]
mod daemon;
use daemon::Daemon;

#[path = "common/jackd.rs"]
mod jackd;
use jackd::Jackd;

const SERVER: &str = "fbtest-mcu-jack";

fn jack_client(name: &str) -> Option<jack::Client> {
    faderbridge::audio::jack::open_client(name, Some(SERVER)).ok()
}

/// The simulated device's JACK side: MIDI in feeds the device, queued messages go out.
struct SimProcess {
    input: jack::Port<jack::MidiIn>,
    output: jack::Port<jack::MidiOut>,
    dev: Arc<Device>,
    queue: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl jack::ProcessHandler for SimProcess {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        for ev in self.input.iter(ps) {
            self.dev.feed(ev.bytes);
        }
        let mut w = self.output.writer(ps);
        let mut q = self.queue.lock().unwrap();
        for m in q.drain(..) {
            let _ = w.write(&jack::RawMidi { time: 0, bytes: &m });
        }
        jack::Control::Continue
    }
}

struct Sim {
    client: Option<jack::AsyncClient<(), SimProcess>>,
    dev: Arc<Device>,
    queue: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sim {
    fn start() -> Sim {
        let client = jack_client("mcusim").expect("sim client");
        let input = client.register_port("in", jack::MidiIn::default()).unwrap();
        let output = client
            .register_port("out", jack::MidiOut::default())
            .unwrap();
        let dev = Arc::new(Device::default());
        let queue = Arc::new(Mutex::new(Vec::new()));
        let p = SimProcess {
            input,
            output,
            dev: dev.clone(),
            queue: queue.clone(),
        };
        Sim {
            client: Some(client.activate_async((), p).unwrap()),
            dev,
            queue,
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.queue.lock().unwrap().push(bytes.to_vec());
    }

    /// Unplug: the device's client leaves the graph.
    fn stop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.deactivate();
        }
    }
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-mcu-jack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mcu_over_jack_midi_handshakes_follows_and_resyncs() {
    let dir = tempdir();
    let _jackd = Jackd::start_with(
        SERVER,
        jackd::Options {
            log: Some(dir.join("jackd.log")),
            ..jackd::Options::default()
        },
    );
    // Faders at the law's table points: 0, -10, -30, +10 dB; then 0 dB.
    let mut session = String::from("version: 1\nchannels:\n");
    for (i, f) in ["0", "-10", "-30", "10", "0", "0", "0", "0"]
        .iter()
        .enumerate()
    {
        session += &format!("  - {{ name: c{}, fader_db: {f} }}\n", i + 1);
    }
    session += "surfaces:\n  - { kind: mcu, midi: \"jack:mcusim\" }\n";
    let mut sim = Sim::start();
    let mut d = Daemon::start(
        &dir,
        &session,
        &["--backend", "jack", "--jack-server", SERVER],
    );

    sim.dev.handshake(|b| sim.send(b));
    let want = [12287, 8192, 4096, 16383, 12287, 12287, 12287, 12287];
    sim.dev
        .wait_faders("the initial sync over JACK MIDI", &want);
    sim.dev.wait("names on the LCD", |s| {
        String::from_utf8_lossy(&s.lcd[..56])
            .starts_with("c1     c2     c3")
            .then_some(())
    });

    // Fader 2 to 4096 (travel 0.25): -30 dB; the echo comes back.
    let n0 = sim.dev.bends().len();
    sim.send(&[0xE1, 0x00, 0x20]);
    let v = d.wait_value("ch/2/fader_db", |v| (v + 30.0).abs() < 0.02);
    assert!((v + 30.0).abs() < 0.02, "{v}");
    sim.dev.wait("the echo", |s| {
        s.bends[n0..].contains(&(1, 4096)).then_some(())
    });

    // Unplug the device (its client leaves), replug a fresh one: full resync within 2 s.
    sim.stop();
    let t0 = Instant::now();
    let sim = Sim::start();
    sim.dev.wait("the device query after replug", |s| {
        s.sysex.iter().any(|(c, _)| *c == 0).then_some(())
    });
    let want = [12287, 4096, 4096, 16383, 12287, 12287, 12287, 12287];
    sim.dev.wait_faders("full resync after replug", &want);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "resync took {took:?}");
}
