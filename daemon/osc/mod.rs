//! OSC surfaces: the network server every OSC dialect runs on, and the native dialect
//! (SPEC §5). The X-Air dialect (SPEC §6) plugs into the same server through [`Dialect`].
//!
//! # Layout
//! - [`guard`]: allow / read-only lists (CIDR), per-client token-bucket rate limit, drop
//!   counters, rate-limited log lines.
//! - [`decode`]: safe decoding of a datagram into timed messages (bounded nesting, finite
//!   floats, UTF-8, no trailing bytes).
//! - [`server`]: the UDP server on tokio: one task per surface owning its socket and every
//!   client's state (leases, coalescing, touch hold-back, scheduled bundles, meters).
//! - [`native`]: the native dialect: address = `/` + parameter path.
//! - [`query`]: OSCQuery over HTTP on the same port number (TCP); [`ws`]: its WebSocket
//!   `LISTEN` (value streaming).
//!
//! # How a dialect plugs in
//! A [`Dialect`] is pure protocol logic: it turns one decoded message into console calls and
//! replies (through [`ClientCx`], which knows the client's rights and subscription), and turns
//! a stored [`Change`] into the message a subscriber sees. The server does everything that
//! is the same for every dialect: admission, decoding, per-client origins (a client never
//! gets its own echo, other clients of the same surface do), lease bookkeeping, per-address
//! coalescing at `feedback_hz`, touch hold-back, bundles due later, meter streaming, counters.
//! To serve a dialect, [`spawn`] it on a surface's [`NetSurface`]; the daemon does that for
//! every `osc` surface with [`native::Native`] and for every `xair` surface with the X-Air
//! dialect ([`dialect_for`]).
//!
//! # Clients
//! A client is a source `ip:port`. Its first admitted message registers it with the console
//! as a surface of its own (`osc 192.168.1.20:9001`), so its changes carry its own
//! [`Origin`]. It is forgotten (and unregistered, releasing its touches) once it has no live
//! subscription and has sent nothing for [`server::IDLE`]; at most [`server::MAX_CLIENTS`] are
//! kept.
//!
//! # Touch hold-back
//! While a client touches a control (`/PATH/touch 1`, or implicitly for 1 s after each of its
//! own moves when it never sent a touch message) it gets no feedback for that control. On
//! an explicit release it gets the current value once; when an implicit touch ends it gets
//! the current value once if a change from elsewhere was held back meanwhile (so a client
//! never sees its own value echoed).

pub mod decode;
pub mod guard;
pub mod native;
pub mod query;
pub mod server;
pub mod ws;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rosc::{OscBundle, OscMessage, OscPacket};
use tokio::time::Instant;

use crate::control::{Change, ConsoleHandle, ControlError, Origin};
use crate::engine::Meters;
use crate::params::ParamTree;
use crate::session::model::{NetSurface, Surface};

pub use guard::{Access, Guard};
pub use server::{Server, spawn};

/// One OSC dialect: native (SPEC §5) or X-Air (SPEC §6). Pure protocol logic; the server
/// calls it from one task, never concurrently for one surface.
pub trait Dialect: Send + Sync + 'static {
    /// Short name for logs and surface names (`osc`, `xair`).
    fn name(&self) -> &'static str;

    /// Handle one decoded message from the client in `cx`: sets, queries, touches and
    /// subscriptions through `cx`; returns the replies for the sender (errors included).
    fn incoming(&self, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket>;

    /// The message a subscribed client gets for a stored change (None: the dialect has no
    /// address for it). Called once per change, whatever the number of subscribers.
    fn feedback(&self, change: &Change, tree: &ParamTree) -> Option<OscMessage>;

    /// Every message of a full snapshot of the console, as the dialect's feedback messages.
    fn snapshot(&self, console: &ConsoleHandle, tree: &ParamTree) -> Vec<OscMessage>;

    /// The packets a meter subscriber gets for one meter snapshot (native: `/meters` bundles;
    /// X-Air: a `/meters/1` blob).
    fn meters(&self, meters: &Meters, tree: &ParamTree) -> Vec<OscPacket>;

    /// Whether the server also answers OSCQuery (HTTP) on the same port number.
    fn oscquery(&self) -> bool {
        false
    }
}

/// The dialect that serves `surface`, with its network settings; None for surfaces that are
/// not OSC.
pub fn dialect_for(surface: &Surface) -> Option<(NetSurface, Arc<dyn Dialect>)> {
    match surface {
        Surface::Osc(net) => Some((net.clone(), Arc::new(native::Native))),
        Surface::Xair(net) => Some((
            net.clone(),
            Arc::new(crate::xair::XairDialect::new(&net.listen)),
        )),
        _ => None,
    }
}

/// Why a client's set was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetError {
    #[error("this client is read-only")]
    ReadOnlyClient,
    #[error("{0}")]
    Control(#[from] ControlError),
}

/// How long an implicit touch lasts after a client's last move of a control.
pub const IMPLICIT_TOUCH: Duration = Duration::from_secs(1);

/// The subscription and touch state of one client (owned by the server).
#[derive(Debug, Default)]
pub struct ClientSubs {
    /// Feedback subscription lease end.
    pub(crate) feedback_until: Option<Instant>,
    /// Meter subscription lease end.
    pub(crate) meters_until: Option<Instant>,
    /// True once the client sent a touch message: no implicit touches for it after that.
    pub(crate) uses_touch: bool,
    /// Controls the client touches (canonical paths).
    pub(crate) touched: HashSet<Arc<str>>,
    /// Implicit touches: control → when it ends.
    pub(crate) implicit: HashMap<Arc<str>, Instant>,
    /// Controls whose feedback was held back while touched.
    pub(crate) held: HashSet<Arc<str>>,
    /// Controls released in this message: send their current value once.
    pub(crate) released: Vec<Arc<str>>,
}

impl ClientSubs {
    /// True while feedback for `path` is held back.
    pub(crate) fn holds(&self, path: &str, now: Instant) -> bool {
        self.touched.contains(path) || self.implicit.get(path).is_some_and(|t| *t > now)
    }

    pub(crate) fn subscribed(&self, now: Instant) -> bool {
        self.feedback_until.is_some_and(|t| t > now)
    }

    pub(crate) fn metering(&self, now: Instant) -> bool {
        self.meters_until.is_some_and(|t| t > now)
    }
}

/// What a dialect knows and may do about the client that sent a message.
pub struct ClientCx<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) access: Access,
    pub(crate) origin: Origin,
    pub(crate) console: &'a ConsoleHandle,
    pub(crate) tree: &'a ParamTree,
    pub(crate) subs: &'a mut ClientSubs,
    pub(crate) guard: &'a Guard,
    pub(crate) now: Instant,
    /// When the message's changes must sound (a time-tagged bundle); None: at once.
    pub(crate) at: Option<std::time::Instant>,
    /// The surface's socket, for replies sent later ([`ClientCx::reply_later`]).
    pub(crate) sock: &'a Arc<tokio::net::UdpSocket>,
}

/// Sends replies to one client after its message was handled (for commands that take a
/// while, such as an insert measurement).
#[derive(Clone)]
pub struct LaterReply {
    sock: Arc<tokio::net::UdpSocket>,
    to: SocketAddr,
}

impl LaterReply {
    /// Send `p` to the client (a failure is logged at debug level, as for every reply).
    pub async fn send(&self, p: &OscPacket) {
        match rosc::encoder::encode(p) {
            Ok(bytes) => {
                if let Err(e) = self.sock.send_to(&bytes, self.to).await {
                    tracing::debug!("OSC reply to {}: {e}", self.to);
                }
            }
            Err(e) => tracing::warn!("cannot encode an OSC reply: {e:?}"),
        }
    }
}

impl ClientCx<'_> {
    /// The client's address (replies go there).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A way to answer this client later, from another task.
    pub fn reply_later(&self) -> LaterReply {
        LaterReply {
            sock: self.sock.clone(),
            to: self.addr,
        }
    }

    /// True for clients in the surface's `read_only` list.
    pub fn read_only(&self) -> bool {
        self.access == Access::ReadOnly
    }

    /// Run a transport command as this client, at the message's time.
    ///
    /// # Errors
    /// What the console refuses.
    pub fn transport(&self, cmd: crate::control::Transport) -> Result<(), ControlError> {
        self.console.transport_at(cmd, self.at)
    }

    /// The client's own origin (its changes carry it).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The console, for queries and scenes.
    pub fn console(&self) -> &ConsoleHandle {
        self.console
    }

    /// The current parameter tree.
    pub fn tree(&self) -> &ParamTree {
        self.tree
    }

    fn canonical(&self, path: &str) -> Option<Arc<str>> {
        self.tree
            .resolve(path)
            .map(|id| Arc::from(self.tree.get(id).path.as_str()))
    }

    /// Refuse (and count) a write from a read-only client.
    ///
    /// # Errors
    /// The client is read-only.
    pub fn check_write(&self) -> Result<(), SetError> {
        if self.read_only() {
            self.guard.reject(
                guard::Dropped::ReadOnly,
                self.addr,
                &"a set from a read-only client",
            );
            return Err(SetError::ReadOnlyClient);
        }
        Ok(())
    }

    fn moved(&mut self, path: &str) {
        if !self.subs.uses_touch
            && let Some(p) = self.canonical(path)
        {
            self.subs.implicit.insert(p, self.now + IMPLICIT_TOUCH);
        }
    }

    /// Set a parameter as this client. Returns the stored value.
    ///
    /// # Errors
    /// A read-only client, or what the console refuses (unknown path, NaN, out of range,
    /// read-only engine parameter).
    pub fn set(&mut self, path: &str, value: f32) -> Result<f32, SetError> {
        self.check_write()?;
        let v = match self.at {
            Some(at) => self.console.set_sync_at(path, value, self.origin, at)?,
            None => self.console.set_sync(path, value, self.origin)?,
        };
        self.moved(path);
        Ok(v)
    }

    /// Set a parameter from 0..1 control travel through its taper (the fader law for faders).
    ///
    /// # Errors
    /// As [`ClientCx::set`]; `n` outside 0..1 is out of range.
    pub fn set_normalized(&mut self, path: &str, n: f32) -> Result<f32, SetError> {
        self.check_write()?;
        let id = self.tree.resolve(path).ok_or(ControlError::UnknownPath {
            path: path.to_string(),
        })?;
        if !(0.0..=1.0).contains(&n) {
            return Err(ControlError::OutOfRange {
                path: path.to_string(),
                value: n,
                range: "0..1 (normalized)".into(),
            }
            .into());
        }
        let v = self.tree.get(id).spec.from_normalized(n);
        self.set(path, v)
    }

    /// Touch (`true`) or release a control: its feedback to this client is held back until
    /// the release, then the current value is sent once. Also tells the console (automation
    /// does not drive touched controls) unless the client is read-only.
    ///
    /// # Errors
    /// Unknown path.
    pub fn touch(&mut self, path: &str, touched: bool) -> Result<(), SetError> {
        let p = self.canonical(path).ok_or(ControlError::UnknownPath {
            path: path.to_string(),
        })?;
        self.subs.uses_touch = true;
        self.subs.implicit.remove(&p);
        if !self.read_only() {
            self.console.touch_sync(&p, touched, self.origin)?;
        }
        if touched {
            self.subs.touched.insert(p);
        } else if self.subs.touched.remove(&p) {
            self.subs.held.remove(&p);
            self.subs.released.push(p);
        }
        Ok(())
    }

    /// Start or renew the feedback subscription for `lease`. Returns true when it was not
    /// active (a new subscription).
    pub fn subscribe(&mut self, lease: Duration) -> bool {
        let was = self.subs.subscribed(self.now);
        self.subs.feedback_until = Some(self.now + lease);
        !was
    }

    /// End the feedback subscription.
    pub fn unsubscribe(&mut self) {
        self.subs.feedback_until = None;
    }

    /// Start or renew the meter subscription for `lease`.
    pub fn subscribe_meters(&mut self, lease: Duration) {
        self.subs.meters_until = Some(self.now + lease);
    }

    /// End the meter subscription.
    pub fn unsubscribe_meters(&mut self) {
        self.subs.meters_until = None;
    }
}

/// Largest bundle [`bundles`] builds: fits one Wi-Fi frame with room to spare.
pub const BUNDLE_BYTES: usize = 1200;

/// Group `msgs` into immediate bundles of at most [`BUNDLE_BYTES`] encoded bytes (a message
/// larger than that gets a bundle of its own). For snapshots and meter streams.
pub fn bundles(msgs: Vec<OscMessage>) -> Vec<OscPacket> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 16usize;
    for m in msgs {
        let n = rosc::encoder::encode(&OscPacket::Message(m.clone())).map_or(0, |b| b.len()) + 4;
        if !cur.is_empty() && size + n > BUNDLE_BYTES {
            out.push(bundle(std::mem::take(&mut cur)));
            size = 16;
        }
        size += n;
        cur.push(OscPacket::Message(m));
    }
    if !cur.is_empty() {
        out.push(bundle(cur));
    }
    out
}

fn bundle(content: Vec<OscPacket>) -> OscPacket {
    OscPacket::Bundle(OscBundle {
        timetag: decode::IMMEDIATELY,
        content,
    })
}

/// `/error ,ss ADDRESS MESSAGE`.
pub fn error_reply(addr: &str, message: &str) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: "/error".into(),
        args: vec![
            rosc::OscType::String(addr.to_string()),
            rosc::OscType::String(message.to_string()),
        ],
    })
}
