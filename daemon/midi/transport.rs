//! MIDI transports (SPEC §7): one string names a port, one [`MidiPort`] carries bytes both
//! ways, whatever is underneath.
//!
//! - `serial:/dev/ttyX@BAUD`: raw MIDI bytes over a UART or USB-serial adapter (31250 baud for
//!   DIN MIDI, 115200 for ttymidi-style bridges), through `serialport`.
//! - `alsa:NAME`: the first ALSA sequencer (CoreMIDI on macOS) port whose name contains NAME,
//!   through `midir`.
//! - `jack:NAME`: JACK MIDI ports of the daemon's own JACK client (see [`crate::audio`]).
//!
//! A port is opened once and then looks after itself on its own thread: while the device is
//! absent it waits and retries (with backoff, up to [`RETRY_MAX`]); when it appears it reports
//! [`PortEvent::Connected`]; when it disappears it reports [`PortEvent::Disconnected`] and goes
//! back to waiting. A surface answers `Connected` with its handshake and a full resend of its
//! state. Bytes sent while no device is connected are dropped (the resend on connect covers
//! them).

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use super::parse::{MidiEvent, Parser, ParserStats};

/// First wait between two attempts to open an absent port.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts (a device plugged in is found within this).
pub const RETRY_MAX: Duration = Duration::from_millis(1000);
/// How often a connected ALSA port checks that its device is still there.
const ALSA_PRESENCE_PERIOD: Duration = Duration::from_millis(500);
/// Read timeout of a serial port: how quickly a port notices it was asked to stop.
const SERIAL_READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Where a MIDI surface's bytes go (the parsed form of the SPEC §7 string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// ALSA sequencer / CoreMIDI port whose name contains the string.
    Alsa(String),
    /// JACK MIDI: the daemon's own ports named after the string, connected to ports whose
    /// name contains it.
    Jack(String),
    /// A serial device and its baud rate.
    Serial { path: PathBuf, baud: u32 },
}

/// A port string that does not follow SPEC §7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MIDI port; use alsa:NAME, jack:NAME or serial:/dev/ttyX@BAUD")]
pub struct BadPortSpec(pub String);

impl FromStr for PortSpec {
    type Err = BadPortSpec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPortSpec(s.to_string());
        if let Some(rest) = s.strip_prefix("serial:") {
            let (dev, baud) = rest.rsplit_once('@').ok_or_else(bad)?;
            let baud: u32 = baud.parse().map_err(|_| bad())?;
            if dev.is_empty() || baud == 0 {
                return Err(bad());
            }
            return Ok(PortSpec::Serial {
                path: PathBuf::from(dev),
                baud,
            });
        }
        for (pre, make) in [
            ("alsa:", PortSpec::Alsa as fn(String) -> PortSpec),
            ("jack:", PortSpec::Jack),
        ] {
            if let Some(name) = s.strip_prefix(pre) {
                if name.is_empty() {
                    return Err(bad());
                }
                return Ok(make(name.to_string()));
            }
        }
        Err(bad())
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Alsa(n) => write!(f, "alsa:{n}"),
            PortSpec::Jack(n) => write!(f, "jack:{n}"),
            PortSpec::Serial { path, baud } => write!(f, "serial:{}@{baud}", path.display()),
        }
    }
}

/// What a port reports to its surface.
#[derive(Debug, Clone, PartialEq)]
pub enum PortEvent {
    /// The device is there (again): run the handshake and resend everything.
    Connected {
        /// The device as found (`/dev/ttyUSB0 @ 31250`, the ALSA port's full name).
        device: String,
    },
    /// The device went away; the port waits for it to come back.
    Disconnected { why: String },
    /// One MIDI message from the device.
    Midi(MidiEvent),
}

/// Why a port could not be opened at all (a device merely absent is not an error: the port
/// waits for it).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot start the thread of MIDI port {0}: {1}")]
    Thread(PortSpec, std::io::Error),
}

/// State shared by a port's handle and its thread.
struct PortShared {
    stop: AtomicBool,
    connected: AtomicBool,
    stats: Mutex<ParserStats>,
}

/// A MIDI port: receive [`PortEvent`]s with [`MidiPort::recv`], send with
/// [`MidiPort::send`]. Dropping it stops its thread.
pub struct MidiPort {
    spec: PortSpec,
    events: mpsc::UnboundedReceiver<PortEvent>,
    out: std_mpsc::Sender<Vec<u8>>,
    shared: Arc<PortShared>,
    thread: Option<JoinHandle<()>>,
}

impl MidiPort {
    /// Start looking after the port `spec`. Returns at once; the device may appear later.
    pub fn open(spec: PortSpec) -> Result<MidiPort, TransportError> {
        let (tx, events) = mpsc::unbounded_channel();
        let (out, out_rx) = std_mpsc::channel::<Vec<u8>>();
        let shared = Arc::new(PortShared {
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            stats: Mutex::new(ParserStats::default()),
        });
        let link = Link {
            sink: Arc::new(Sink {
                tx,
                shared: shared.clone(),
            }),
            out_rx: Mutex::new(out_rx),
        };
        let name = format!("midi {spec}");
        let body: Box<dyn FnOnce() + Send> = match spec.clone() {
            PortSpec::Serial { path, baud } => Box::new(move || serial_thread(path, baud, link)),
            PortSpec::Alsa(name) => Box::new(move || alsa_thread(name, link)),
            PortSpec::Jack(name) => Box::new(move || jack_thread(name, link)),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(body)
            .map_err(|e| TransportError::Thread(spec.clone(), e))?;
        Ok(MidiPort {
            spec,
            events,
            out,
            shared,
            thread: Some(thread),
        })
    }

    /// A handle that sends to this port (for code that does not own the port).
    pub fn sender(&self) -> MidiSender {
        MidiSender {
            out: self.out.clone(),
            shared: self.shared.clone(),
        }
    }

    /// The port string this port was opened with.
    pub fn spec(&self) -> &PortSpec {
        &self.spec
    }

    /// The next event; `None` only after the port was stopped.
    pub async fn recv(&mut self) -> Option<PortEvent> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<PortEvent> {
        self.events.try_recv().ok()
    }

    /// Send one message. Dropped when no device is connected (a surface resends its state on
    /// [`PortEvent::Connected`]).
    pub fn send(&self, ev: &MidiEvent) {
        if let Ok(bytes) = ev.to_bytes() {
            self.send_bytes(bytes);
        }
    }

    /// Send raw bytes (several messages at once keep their order and go out in one write).
    pub fn send_bytes(&self, bytes: Vec<u8>) {
        if self.is_connected() && !bytes.is_empty() {
            // The thread owns the receiver for the port's whole life.
            let _ = self.out.send(bytes);
        }
    }

    /// Is a device connected right now?
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// What the parser skipped so far (stray bytes, truncated messages, ...).
    pub fn parser_stats(&self) -> ParserStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends to a [`MidiPort`]; cheap to clone.
#[derive(Clone)]
pub struct MidiSender {
    out: std_mpsc::Sender<Vec<u8>>,
    shared: Arc<PortShared>,
}

impl MidiSender {
    /// Send raw bytes; dropped while no device is connected.
    pub fn send_bytes(&self, bytes: Vec<u8>) {
        if self.shared.connected.load(Ordering::Acquire) && !bytes.is_empty() {
            let _ = self.out.send(bytes);
        }
    }
}

impl Drop for MidiPort {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The thread notices within one read timeout or retry step.
            let _ = t.join();
        }
    }
}

/// The thread's end of a port: where events go (shareable with reader callbacks) ...
struct Sink {
    tx: mpsc::UnboundedSender<PortEvent>,
    shared: Arc<PortShared>,
}

/// ... and where outgoing bytes come from.
struct Link {
    sink: Arc<Sink>,
    /// Locked by the one writer of the current connection.
    out_rx: Mutex<std_mpsc::Receiver<Vec<u8>>>,
}

impl Link {
    fn connected(&self, device: String) {
        // Bytes queued for the previous connection are stale: the surface resends.
        let rx = self.out_rx.lock().unwrap_or_else(|e| e.into_inner());
        while rx.try_recv().is_ok() {}
        self.sink.shared.connected.store(true, Ordering::Release);
        let _ = self.sink.tx.send(PortEvent::Connected { device });
    }
}

impl Sink {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Wait `d` (in short steps, so a stop is noticed). Returns false when stopped.
    fn wait(&self, d: Duration) -> bool {
        let step = Duration::from_millis(20);
        let mut left = d;
        while !left.is_zero() {
            if self.stopped() {
                return false;
            }
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
        !self.stopped()
    }

    fn disconnected(&self, why: String) {
        self.shared.connected.store(false, Ordering::Release);
        let _ = self.tx.send(PortEvent::Disconnected { why });
    }

    fn deliver(&self, parser: &mut Parser, bytes: &[u8]) {
        let mut events = Vec::new();
        parser.push(bytes, |ev| events.push(ev));
        // Stats first, so whoever sees an event also sees what was skipped before it.
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = parser.stats();
        for ev in events {
            let _ = self.tx.send(PortEvent::Midi(ev));
        }
    }
}

fn serial_thread(path: PathBuf, baud: u32, link: Link) {
    let sink = link.sink.clone();
    let mut parser = Parser::new();
    let mut backoff = RETRY_MIN;
    let mut logged_absent = false;
    while !sink.stopped() {
        let port = serialport::new(path.to_string_lossy(), baud)
            .timeout(SERIAL_READ_TIMEOUT)
            .open_native();
        let mut port = match port {
            Ok(p) => p,
            Err(e) => {
                if !logged_absent {
                    tracing::info!("MIDI serial:{}@{baud}: waiting ({e})", path.display());
                    logged_absent = true;
                }
                if !sink.wait(backoff) {
                    break;
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        };
        let mut writer = match port.try_clone_native() {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("MIDI serial:{}: cannot clone the port: {e}", path.display());
                if !sink.wait(backoff) {
                    break;
                }
                continue;
            }
        };
        backoff = RETRY_MIN;
        logged_absent = false;
        parser.reset();
        tracing::info!("MIDI serial:{}@{baud}: connected", path.display());
        link.connected(format!("{} @ {baud}", path.display()));
        let alive = AtomicBool::new(true);
        let why = std::thread::scope(|s| {
            s.spawn(|| {
                let rx = link.out_rx.lock().unwrap_or_else(|e| e.into_inner());
                while alive.load(Ordering::Acquire) {
                    match rx.recv_timeout(SERIAL_READ_TIMEOUT) {
                        Ok(bytes) => {
                            if writer.write_all(&bytes).is_err() {
                                alive.store(false, Ordering::Release);
                            }
                        }
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            });
            let mut buf = [0u8; 1024];
            let why = loop {
                if sink.stopped() {
                    break "stopped".to_string();
                }
                if !alive.load(Ordering::Acquire) {
                    break "write failed".to_string();
                }
                match port.read(&mut buf) {
                    Ok(0) => break "end of file".to_string(),
                    Ok(n) => sink.deliver(&mut parser, &buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break e.to_string(),
                }
            };
            alive.store(false, Ordering::Release);
            why
        });
        drop(port);
        tracing::info!("MIDI serial:{}: disconnected ({why})", path.display());
        sink.disconnected(why);
    }
}

/// How often a JACK MIDI port looks at its rings (the latency it adds at most).
const JACK_POLL: Duration = Duration::from_millis(1);

fn jack_thread(name: String, link: Link) {
    use crate::audio::jack_midi::{self, RawMsg};
    let sink = link.sink.clone();
    let jl = jack_midi::link(&name);
    let mut generation = 0;
    let mut rings = None;
    let mut connected = false;
    let mut epoch = 0;
    let mut parser = Parser::new();
    // Splits what the surface sends into whole messages (JACK MIDI carries messages).
    let mut splitter = Parser::new();
    let mut waited = std::time::Instant::now();
    let mut logged = false;
    while !sink.stopped() {
        if let Some((g, r)) = jl.take_new(generation) {
            generation = g;
            rings = Some(r);
        }
        let peer = rings.is_some() && jl.has_peer();
        // A different device behind the same name (replugged between two checks) counts as a
        // new connection: the surface resyncs.
        let new_peer = peer && jl.peer_epoch() != epoch;
        if peer && (!connected || new_peer) {
            connected = true;
            epoch = jl.peer_epoch();
            parser.reset();
            tracing::info!("MIDI jack:{name}: connected");
            link.connected(format!("jack:{name}"));
        } else if !peer && connected {
            connected = false;
            waited = std::time::Instant::now();
            logged = false;
            tracing::info!("MIDI jack:{name}: disconnected");
            sink.disconnected("no JACK MIDI peer connected".into());
        } else if !peer && !logged && waited.elapsed() > Duration::from_secs(2) {
            tracing::info!(
                "MIDI jack:{name}: waiting for a JACK MIDI port whose name contains {name:?} \
                 (the daemon must run on the JACK backend)"
            );
            logged = true;
        }
        if connected && let Some(r) = rings.as_mut() {
            let mut bytes = Vec::new();
            while let Ok(m) = r.incoming.pop() {
                bytes.extend_from_slice(m.bytes());
            }
            if !bytes.is_empty() {
                sink.deliver(&mut parser, &bytes);
            }
            let rx = link.out_rx.lock().unwrap_or_else(|e| e.into_inner());
            while let Ok(out) = rx.try_recv() {
                splitter.push(&out, |ev| {
                    if let Ok(b) = ev.to_bytes()
                        && let Some(m) = RawMsg::new(&b)
                    {
                        // A full ring drops the message (the device is not keeping up).
                        let _ = r.outgoing.push(m);
                    }
                });
            }
        }
        std::thread::sleep(JACK_POLL);
    }
}

/// Index of the first port whose name contains `name`.
fn find_port<T: midir::MidiIO>(io: &T, name: &str) -> Option<(T::Port, String)> {
    io.ports().into_iter().find_map(|p| {
        let n = io.port_name(&p).ok()?;
        n.contains(name).then_some((p, n))
    })
}

fn alsa_thread(name: String, link: Link) {
    let mut backoff = RETRY_MIN;
    let mut logged = false;
    let sink = link.sink.clone();
    while !sink.stopped() {
        let attempt = (|| -> Result<_, String> {
            let input = midir::MidiInput::new("faderbridge").map_err(|e| e.to_string())?;
            let output = midir::MidiOutput::new("faderbridge").map_err(|e| e.to_string())?;
            let (ip, in_name) =
                find_port(&input, &name).ok_or_else(|| "no such input port".to_string())?;
            let (op, _) =
                find_port(&output, &name).ok_or_else(|| "no such output port".to_string())?;
            let l = sink.clone();
            let parser = Mutex::new(Parser::new());
            let conn_in = input
                .connect(
                    &ip,
                    "faderbridge-in",
                    move |_, bytes, _| {
                        let mut p = parser.lock().unwrap_or_else(|e| e.into_inner());
                        l.deliver(&mut p, bytes);
                    },
                    (),
                )
                .map_err(|e| e.to_string())?;
            let conn_out = output
                .connect(&op, "faderbridge-out")
                .map_err(|e| e.to_string())?;
            Ok((conn_in, conn_out, in_name))
        })();
        let (conn_in, mut conn_out, device) = match attempt {
            Ok(c) => c,
            Err(e) => {
                if !logged {
                    tracing::info!("MIDI alsa:{name}: waiting ({e})");
                    logged = true;
                }
                if !sink.wait(backoff) {
                    break;
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        };
        backoff = RETRY_MIN;
        logged = false;
        tracing::info!("MIDI alsa:{name}: connected to {device}");
        link.connected(device.clone());
        let why = loop {
            if sink.stopped() {
                break "stopped".to_string();
            }
            let next = link
                .out_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(ALSA_PRESENCE_PERIOD);
            match next {
                Ok(bytes) => {
                    if let Err(e) = conn_out.send(&bytes) {
                        break e.to_string();
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break "closed".to_string(),
            }
            // Still there? midir does not report unplugging; look the port up again.
            let present = midir::MidiInput::new("faderbridge-probe")
                .ok()
                .is_some_and(|i| {
                    i.ports()
                        .iter()
                        .any(|p| i.port_name(p).is_ok_and(|n| n == device))
                });
            if !present {
                break "port gone".to_string();
            }
        };
        drop(conn_in);
        conn_out.close();
        tracing::info!("MIDI alsa:{name}: disconnected ({why})");
        sink.disconnected(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_strings_parse_as_spec_section_7_says() {
        assert_eq!(
            "alsa:X-Touch".parse::<PortSpec>().unwrap(),
            PortSpec::Alsa("X-Touch".into())
        );
        assert_eq!(
            "jack:mcu".parse::<PortSpec>().unwrap(),
            PortSpec::Jack("mcu".into())
        );
        assert_eq!(
            "serial:/dev/ttyAMA0@31250".parse::<PortSpec>().unwrap(),
            PortSpec::Serial {
                path: "/dev/ttyAMA0".into(),
                baud: 31250
            }
        );
        for bad in [
            "alsa:",
            "usb:foo",
            "serial:/dev/ttyS0",
            "serial:@9600",
            "serial:/dev/x@fast",
            "serial:/dev/x@0",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
        let s = PortSpec::Serial {
            path: "/dev/ttyUSB0".into(),
            baud: 115200,
        };
        assert_eq!(s.to_string().parse::<PortSpec>().unwrap(), s);
    }
}
