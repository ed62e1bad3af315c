//! JACK MIDI ports of the daemon's own JACK client, for `jack:NAME` MIDI surfaces (SPEC §7).
//!
//! A surface asks for a [`Link`] by name ([`link`]) before the audio backend starts (the
//! daemon does this for every `jack:` port of the session). When the JACK backend connects to
//! a server it registers `NAME_midi_in` and `NAME_midi_out` for each link, with a pair of
//! wait-free rings between the process callback and the surface's port thread
//! ([`crate::midi::transport`]). The callback moves whole messages: incoming events go into
//! one ring stamped with their absolute frame time; outgoing messages come out of the other and
//! are written at the start of the period. Housekeeping on the backend's supervisor thread
//! connects the ports to other clients' MIDI ports whose names contain NAME (a device through
//! a2jmidid, a hardware port, a test client) and tells the link whether a peer is connected: a
//! peer appearing is what the surface sees as its device connecting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ::jack::{Client, MidiIn, MidiOut, Port, PortFlags, ProcessScope};

/// Largest message carried (an MCU LCD SysEx is 121 bytes); longer ones are dropped.
pub const MAX_MSG: usize = 256;
/// Messages each ring holds.
const RING: usize = 1024;
/// How often peers are looked for and connected.
const PEER_CHECK: Duration = Duration::from_millis(100);

/// One MIDI message with its time.
#[derive(Clone, Copy)]
pub struct RawMsg {
    /// Absolute JACK frame time (incoming); ignored for outgoing.
    pub frame: u64,
    pub len: u16,
    pub data: [u8; MAX_MSG],
}

impl RawMsg {
    pub fn new(bytes: &[u8]) -> Option<RawMsg> {
        if bytes.is_empty() || bytes.len() > MAX_MSG {
            return None;
        }
        let mut data = [0; MAX_MSG];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(RawMsg {
            frame: 0,
            len: bytes.len() as u16,
            data,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// The surface's end of the rings.
pub struct ThreadSide {
    pub incoming: rtrb::Consumer<RawMsg>,
    pub outgoing: rtrb::Producer<RawMsg>,
}

/// A named JACK MIDI endpoint, shared by the surface's port thread and the JACK backend.
pub struct Link {
    pub name: String,
    thread_side: Mutex<Option<ThreadSide>>,
    /// Bumped each time the backend installs fresh rings (a new JACK connection).
    generation: AtomicU64,
    /// Our ports exist and are connected to a peer.
    peer: AtomicBool,
    /// Bumped whenever the set of connected peer ports changes to a non-empty set (a device
    /// replugged faster than a check period is still a new device).
    peer_epoch: AtomicU64,
}

impl Link {
    /// The rings installed since generation `seen`, if any: `(generation, rings)`.
    pub fn take_new(&self, seen: u64) -> Option<(u64, ThreadSide)> {
        let g = self.generation.load(Ordering::Acquire);
        if g == seen {
            return None;
        }
        let side = self.thread_side.lock().ok()?.take()?;
        Some((g, side))
    }

    /// Whether a peer is connected to our ports now.
    pub fn has_peer(&self) -> bool {
        self.peer.load(Ordering::Acquire)
    }

    /// Changes whenever a different set of peer ports is connected.
    pub fn peer_epoch(&self) -> u64 {
        self.peer_epoch.load(Ordering::Acquire)
    }

    fn lost(&self) {
        self.peer.store(false, Ordering::Release);
    }
}

fn registry() -> &'static Mutex<Vec<Arc<Link>>> {
    static R: OnceLock<Mutex<Vec<Arc<Link>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// The link named `name` (created on first request).
pub fn link(name: &str) -> Arc<Link> {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = r.iter().find(|l| l.name == name) {
        return l.clone();
    }
    let l = Arc::new(Link {
        name: name.to_string(),
        thread_side: Mutex::new(None),
        generation: AtomicU64::new(0),
        peer: AtomicBool::new(false),
        peer_epoch: AtomicU64::new(0),
    });
    r.push(l.clone());
    l
}

fn links() -> Vec<Arc<Link>> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The audio thread's end of one link.
struct AudioSide {
    input: Port<MidiIn>,
    output: Port<MidiOut>,
    to_thread: rtrb::Producer<RawMsg>,
    from_thread: rtrb::Consumer<RawMsg>,
}

/// The MIDI ports of one JACK connection (owned by the process callback).
#[derive(Default)]
pub(crate) struct MidiPorts {
    sides: Vec<AudioSide>,
}

impl MidiPorts {
    /// Register the ports of every requested link and install fresh rings. Before activation.
    pub(crate) fn register(client: &Client) -> (MidiPorts, MidiBook) {
        let mut sides = Vec::new();
        let mut book = MidiBook::default();
        for l in links() {
            let input = client.register_port(&format!("{}_midi_in", l.name), MidiIn::default());
            let output = client.register_port(&format!("{}_midi_out", l.name), MidiOut::default());
            let (input, output) = match (input, output) {
                (Ok(i), Ok(o)) => (i, o),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!("JACK MIDI {}: cannot register ports: {e}", l.name);
                    continue;
                }
            };
            let (to_thread, incoming) = rtrb::RingBuffer::new(RING);
            let (outgoing, from_thread) = rtrb::RingBuffer::new(RING);
            book.entries.push(BookEntry {
                link: l.clone(),
                input: input.clone_unowned(),
                output: output.clone_unowned(),
                peers: Vec::new(),
            });
            if let Ok(mut t) = l.thread_side.lock() {
                *t = Some(ThreadSide { incoming, outgoing });
            }
            l.lost();
            l.generation.fetch_add(1, Ordering::AcqRel);
            sides.push(AudioSide {
                input,
                output,
                to_thread,
                from_thread,
            });
        }
        (MidiPorts { sides }, book)
    }

    /// One period. Real-time safe: no allocation, no locks.
    pub(crate) fn process(&mut self, ps: &ProcessScope) {
        let start = u64::from(ps.last_frame_time());
        for s in &mut self.sides {
            for ev in s.input.iter(ps) {
                if let Some(mut m) = RawMsg::new(ev.bytes) {
                    m.frame = start + u64::from(ev.time);
                    // A full ring drops the event (the surface is not reading).
                    let _ = s.to_thread.push(m);
                }
            }
            let mut w = s.output.writer(ps);
            while let Ok(m) = s.from_thread.peek().copied() {
                let raw = ::jack::RawMidi {
                    time: 0,
                    bytes: m.bytes(),
                };
                if w.write(&raw).is_err() {
                    // The port's buffer is full for this period: the rest waits.
                    break;
                }
                let _ = s.from_thread.pop();
            }
        }
    }
}

struct BookEntry {
    link: Arc<Link>,
    input: Port<::jack::Unowned>,
    output: Port<::jack::Unowned>,
    /// Peer ports connected at the last check.
    peers: Vec<String>,
}

/// What the supervisor keeps to connect peers.
#[derive(Default)]
pub(crate) struct MidiBook {
    entries: Vec<BookEntry>,
    last_check: Option<Instant>,
}

/// `name` as a literal inside a JACK (POSIX extended) port-name regex.
fn regex_escape(name: &str) -> String {
    let mut s = String::with_capacity(name.len() * 2);
    for c in name.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

impl MidiBook {
    /// Connect our MIDI ports to peers whose names contain the link's name, and publish
    /// whether each link has a peer. Call from the supervisor (not the audio thread).
    pub(crate) fn housekeep(&mut self, client: &Client) {
        if self.last_check.is_some_and(|t| t.elapsed() < PEER_CHECK) {
            return;
        }
        self.last_check = Some(Instant::now());
        let ours = format!("{}:", client.name());
        for e in &mut self.entries {
            let pattern = regex_escape(&e.link.name);
            let (Ok(in_name), Ok(out_name)) = (e.input.name(), e.output.name()) else {
                continue;
            };
            let theirs = |flags| {
                client
                    .ports(Some(&pattern), Some("midi"), flags)
                    .into_iter()
                    .filter(|p| !p.starts_with(&ours))
                    .collect::<Vec<_>>()
            };
            if e.input.connected_count().unwrap_or(0) == 0 {
                for src in theirs(PortFlags::IS_OUTPUT) {
                    let _ = client.connect_ports_by_name(&src, &in_name);
                }
            }
            if e.output.connected_count().unwrap_or(0) == 0 {
                for dst in theirs(PortFlags::IS_INPUT) {
                    let _ = client.connect_ports_by_name(&out_name, &dst);
                }
            }
            // Peers by port name and their client's UUID: a device that left and came back
            // under the same name is a new client with a new UUID.
            let mut peers: Vec<String> = e
                .input
                .get_connections()
                .into_iter()
                .chain(e.output.get_connections())
                .map(|p| {
                    let owner = p.split(':').next().unwrap_or_default();
                    let uuid = client.uuid_of_client_by_name(owner).unwrap_or_default();
                    format!("{p}#{uuid}")
                })
                .collect();
            peers.sort();
            if peers != e.peers {
                if !peers.is_empty() {
                    e.link.peer_epoch.fetch_add(1, Ordering::AcqRel);
                }
                e.peers = peers;
            }
            e.link.peer.store(!e.peers.is_empty(), Ordering::Release);
        }
    }

    /// The JACK connection is gone: every link loses its peer.
    pub(crate) fn lost(&self) {
        for e in &self.entries {
            e.link.lost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fit_or_are_refused() {
        assert_eq!(RawMsg::new(&[0x90, 1, 2]).unwrap().bytes(), &[0x90, 1, 2]);
        assert!(RawMsg::new(&[]).is_none());
        assert!(RawMsg::new(&[0xF0; MAX_MSG + 1]).is_none());
        assert_eq!(regex_escape("a.b(c)"), "a\\.b\\(c\\)");
        assert!(Arc::ptr_eq(&link("t-x"), &link("t-x")));
    }
}
