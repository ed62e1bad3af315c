//! The X-Air dialect on the shared OSC server ([`crate::osc::Dialect`]): [`super::Xair`]'s
//! protocol logic with the console reached through the server's [`ClientCx`].
//!
//! - `/xremote` starts or renews the sender's feedback lease ([`super::LEASE`], 10 s). The
//!   server then forwards every change made by anyone else (other X-Air clients, native OSC
//!   clients, scenes, ...), coalesced per address at the surface's `feedback_hz`. Unlike the
//!   native `/subscribe`, no snapshot is sent: X-Air apps read the console with queries.
//! - `/meters ,s "/meters/1"` (or `/batchsubscribe`) starts a 10 s meter lease; the server
//!   streams `/meters/1` blobs at the control plane's meter rate (about 30 a second; the
//!   console sends about 20). Every subscriber gets them on `/meters/1` (an alias given to
//!   `/batchsubscribe` is not honoured).
//! - An EQ band switched off shows in `…/eq/on` as 0 only when no other band is on.
//! - Errors get no reply (the console never answers one); they are logged at debug level.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::OnceLock;

use rosc::{OscMessage, OscPacket};

use super::{Action, LEASE, ServerInfo, Values, Xair, meters::METERS_1};
use crate::control::{Change, ConsoleHandle};
use crate::engine::Meters;
use crate::osc::{ClientCx, Dialect};
use crate::params::ParamTree;

/// The console name X-Air apps show.
pub const CONSOLE_NAME: &str = "faderbridge";

/// The X-Air dialect of one `kind: xair` surface.
pub struct XairDialect {
    /// The surface's `listen` address: its IP is what `/xinfo` and `/status` report, unless it
    /// is unspecified (`0.0.0.0`), in which case the local address towards the client is.
    listen: Option<SocketAddr>,
    /// The console, kept from the first message: feedback of one EQ band switch reads the
    /// other bands to tell whether the console's `…/eq/on` is still on. (Feedback only goes
    /// to clients that sent `/xremote`, so it is always set by then.)
    console: OnceLock<ConsoleHandle>,
}

impl XairDialect {
    /// The dialect for a surface listening on `listen` (`0.0.0.0:10024`).
    pub fn new(listen: &str) -> Self {
        Self {
            listen: listen.parse().ok(),
            console: OnceLock::new(),
        }
    }

    /// Our IP as the client at `client` reaches it.
    fn ip_for(&self, client: SocketAddr) -> String {
        if let Some(l) = self.listen
            && !l.ip().is_unspecified()
        {
            return l.ip().to_string();
        }
        // The address the kernel would send from to reach the client (no packet is sent).
        let local = match client.ip() {
            IpAddr::V4(_) => UdpSocket::bind(("0.0.0.0", 0)),
            IpAddr::V6(_) => UdpSocket::bind(("::", 0)),
        }
        .and_then(|s| s.connect(client).and_then(|()| s.local_addr()));
        match local {
            Ok(a) => a.ip().to_string(),
            Err(_) => client.ip().to_string(),
        }
    }
}

/// The console's values as one client sees and sets them.
struct CxValues<'c, 'a>(&'c mut ClientCx<'a>);

impl Values for CxValues<'_, '_> {
    fn get(&self, path: &str) -> Option<f32> {
        self.0.console().get_sync(path).ok()
    }

    fn set(&mut self, path: &str, value: f32) -> Result<f32, String> {
        self.0.set(path, value).map_err(|e| e.to_string())
    }
}

/// The console's values, read-only (snapshots).
struct ConsoleValues<'a>(&'a ConsoleHandle);

impl Values for ConsoleValues<'_> {
    fn get(&self, path: &str) -> Option<f32> {
        self.0.get_sync(path).ok()
    }

    fn set(&mut self, path: &str, _value: f32) -> Result<f32, String> {
        Err(format!("{path}: read-only here"))
    }
}

impl Dialect for XairDialect {
    fn name(&self) -> &'static str {
        "xair"
    }

    fn incoming(&self, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        self.console.get_or_init(|| cx.console().clone());
        // Only `/xinfo` and `/status` report our IP (finding it may cost a system call).
        let ip = match msg.addr.as_str() {
            "/xinfo" | "/status" => self.ip_for(cx.addr()),
            _ => String::new(),
        };
        let info = ServerInfo {
            ip,
            name: CONSOLE_NAME.into(),
        };
        // The server's tree outlives the context: copy the reference out so the context can
        // be lent to the value adapter.
        let tree: &ParamTree = cx.tree;
        let r = Xair.incoming(tree, msg, &mut CxValues(cx), &info);
        if let Some(e) = &r.error {
            tracing::debug!("xair client {}: {e}", cx.addr());
        }
        match r.action {
            Some(Action::XRemote) => {
                cx.subscribe(LEASE);
            }
            Some(Action::Meters { .. } | Action::RenewMeters) => cx.subscribe_meters(LEASE),
            Some(Action::Unsubscribe) => {
                cx.unsubscribe();
                cx.unsubscribe_meters();
            }
            None => {}
        }
        r.replies.into_iter().map(OscPacket::Message).collect()
    }

    fn feedback(&self, change: &Change, tree: &ParamTree) -> Option<OscMessage> {
        let values = self.console.get().map(ConsoleValues);
        Xair.feedback(
            tree,
            &change.path,
            change.value,
            values.as_ref().map(|v| v as &dyn Values),
        )
    }

    fn snapshot(&self, console: &ConsoleHandle, tree: &ParamTree) -> Vec<OscMessage> {
        Xair.snapshot(tree, &ConsoleValues(console))
    }

    fn meters(&self, meters: &Meters, _tree: &ParamTree) -> Vec<OscPacket> {
        vec![OscPacket::Message(Xair.meters(METERS_1, meters))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xinfo_reports_the_listen_ip_or_the_route_to_the_client() {
        let client: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(
            XairDialect::new("192.168.1.20:10024").ip_for(client),
            "192.168.1.20"
        );
        // Listening on every interface: the local address towards the client.
        assert_eq!(
            XairDialect::new("0.0.0.0:10024").ip_for(client),
            "127.0.0.1"
        );
        assert_eq!(
            XairDialect::new("not an address").ip_for(client),
            "127.0.0.1"
        );
    }
}
