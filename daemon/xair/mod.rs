//! The X-Air OSC dialect (SPEC §6): the address space, value formats and replies of a
//! Behringer X-Air / Midas MR console, over our parameter tree, so the apps and libraries made
//! for those mixers can drive faderbridge.
//!
//! This module is protocol logic: OSC messages in, replies and subscription requests out, with
//! the console's values read and written through the [`Values`] trait. It owns no socket,
//! lease, rate limit or allow list; the shared UDP server ([`crate::osc`]) does that and calls
//! in here through [`dialect::XairDialect`].
//!
//! - [`convert`]: value conversions (fader law, switches, pan, linear/log floats, enums).
//! - [`address`]: the address space over a parameter tree ([`address::binding`],
//!   [`address::mirror`], [`address::addresses`]).
//! - [`meters`]: the `/meters/1` blob.
//! - [`Xair`]: one message in → [`Response`]; a change of ours → the console's feedback
//!   message; the full snapshot.
//! - [`dialect`]: [`Xair`] as a [`crate::osc::Dialect`] on the shared OSC server.
//!
//! # Protocol summary (what the console does, and so what we do)
//! - `/xinfo` → `/xinfo ,ssss IP NAME MODEL FIRMWARE`; `/info` → `/info ,ssss SERVER_VERSION
//!   NAME MODEL FIRMWARE`; `/status` → `/status ,sss active IP NAME`.
//! - `/xremote` (no arguments): the sender receives every change made elsewhere for 10 s;
//!   clients renew it about every 9 s. `/xremotenfb` is treated the same.
//! - An address with no arguments is a query: the reply is the same address with the current
//!   value. Unknown addresses get no reply, as on the console.
//! - An address with one argument is a set; the console answers nothing. When the stored value
//!   differs from the one sent (clamped to our range, or an EQ type we map to another), the
//!   stored value is sent back so the app shows the truth. Names are read-only here: a rename
//!   is answered with the current name.
//! - `/config/chlink`, `/config/buslink` (and each `/1-2` pair) read 0: nothing is linked
//!   (our stereo sources are single channels).
//! - `/meters ,s "/meters/1"` and `/batchsubscribe ,ss ALIAS "/meters/1" …` subscribe to the
//!   `/meters/1` blob (on `/meters/1`, or on ALIAS); `/renew` renews meter subscriptions.

pub mod address;
pub mod convert;
pub mod dialect;
pub mod meters;

use rosc::{OscMessage, OscType};

pub use address::{Binding, Mirror, XAIR_BUSES, XAIR_CHANNELS};
pub use convert::{Conv, XVal};
pub use dialect::XairDialect;

use crate::engine::Meters;
use crate::params::ParamTree;

/// The model the daemon reports (`/xinfo`, `/info`): the 18-input X-Air.
pub const MODEL: &str = "XR18";
/// The console firmware version reported (a released X-Air firmware).
pub const FIRMWARE: &str = "1.17";
/// The OSC server version the console reports in `/info`.
pub const SERVER_VERSION: &str = "V0.04";
/// How long an `/xremote` or meter subscription lasts without renewal.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Access to the console's current values, by canonical parameter path.
pub trait Values {
    /// The current value of `path`.
    fn get(&self, path: &str) -> Option<f32>;
    /// Store `value` (already inside the parameter's range); returns the stored value.
    ///
    /// # Errors
    /// A one-line reason when the value was refused (read-only client, unknown path).
    fn set(&mut self, path: &str, value: f32) -> Result<f32, String>;
}

/// What the daemon says about itself in `/xinfo`, `/info` and `/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    /// The address the client reached us on (`192.168.1.20`).
    pub ip: String,
    /// The console name apps show.
    pub name: String,
}

/// A subscription request carried by a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `/xremote`: start or renew the sender's 10 s feedback subscription.
    XRemote,
    /// Stream `/meters/1` to the sender on address `reply` for 10 s.
    Meters { reply: String },
    /// `/renew`: renew the sender's meter subscriptions.
    RenewMeters,
    /// `/unsubscribe`: end the sender's subscriptions.
    Unsubscribe,
}

/// What one incoming message asks of the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Messages to send back to the sender, in order.
    pub replies: Vec<OscMessage>,
    pub action: Option<Action>,
    /// Why the message did nothing (unknown address, bad argument), for counting and logs;
    /// the console itself never answers errors.
    pub error: Option<String>,
    /// True when the message changed a value (the server may then feed it back to others).
    pub changed: bool,
}

impl Response {
    fn reply(msg: OscMessage) -> Self {
        Self {
            replies: vec![msg],
            ..Self::default()
        }
    }

    fn action(a: Action) -> Self {
        Self {
            action: Some(a),
            ..Self::default()
        }
    }

    fn error(e: impl Into<String>) -> Self {
        Self {
            error: Some(e.into()),
            ..Self::default()
        }
    }
}

fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
    OscMessage {
        addr: addr.to_string(),
        args,
    }
}

fn s(v: &str) -> OscType {
    OscType::String(v.to_string())
}

/// The X-Air dialect. Stateless: every call reads the parameter tree it is given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Xair;

impl Xair {
    /// Handle one message from a client.
    pub fn incoming(
        &self,
        tree: &ParamTree,
        m: &OscMessage,
        values: &mut dyn Values,
        info: &ServerInfo,
    ) -> Response {
        match m.addr.as_str() {
            "/xinfo" => Response::reply(msg(
                "/xinfo",
                vec![s(&info.ip), s(&info.name), s(MODEL), s(FIRMWARE)],
            )),
            "/info" => Response::reply(msg(
                "/info",
                vec![s(SERVER_VERSION), s(&info.name), s(MODEL), s(FIRMWARE)],
            )),
            "/status" => Response::reply(msg(
                "/status",
                vec![s("active"), s(&info.ip), s(&info.name)],
            )),
            "/xremote" | "/xremotenfb" => Response::action(Action::XRemote),
            "/renew" => Response::action(Action::RenewMeters),
            "/unsubscribe" => Response::action(Action::Unsubscribe),
            // Stereo links: our stereo sources are single channels, so no pair is linked.
            // Apps read these to lay out their strips (the container form answers every pair).
            "/config/chlink" => {
                Response::reply(msg(&m.addr, vec![OscType::Int(0); XAIR_CHANNELS / 2]))
            }
            "/config/buslink" => {
                Response::reply(msg(&m.addr, vec![OscType::Int(0); XAIR_BUSES / 2]))
            }
            addr if link_pair(addr) => Response::reply(msg(addr, vec![OscType::Int(0)])),
            "/meters" => match m.args.first() {
                Some(OscType::String(id)) if id == meters::METERS_1 => {
                    Response::action(Action::Meters { reply: id.clone() })
                }
                Some(OscType::String(id)) => Response::error(format!("{id}: meter not provided")),
                _ => Response::error("/meters: expected a meter id string"),
            },
            "/batchsubscribe" => match (m.args.first(), m.args.get(1)) {
                (Some(OscType::String(alias)), Some(OscType::String(id)))
                    if id == meters::METERS_1 =>
                {
                    let reply = if alias.starts_with('/') {
                        alias.clone()
                    } else {
                        format!("/{alias}")
                    };
                    Response::action(Action::Meters { reply })
                }
                (_, Some(OscType::String(id))) => {
                    Response::error(format!("{id}: meter not provided"))
                }
                _ => Response::error("/batchsubscribe: expected alias and meter id strings"),
            },
            addr => match address::binding(tree, addr) {
                None => Response::error(format!("{addr}: no such address")),
                Some(b) => match m.args.first() {
                    None => match value(&b, values) {
                        Some(v) => Response::reply(msg(addr, vec![v.to_osc()])),
                        None => Response::error(format!("{addr}: no value")),
                    },
                    Some(arg) => set(addr, &b, arg, values),
                },
            },
        }
    }

    /// The console message that shows a change of our parameter `path` to `value`; None when
    /// the console has no address for it. An EQ band switch shows in `…/eq/on`, which reads 1
    /// while any band is on: with `values` the other bands are read; without, a band turned
    /// off shows nothing (the switch may still be on).
    pub fn feedback(
        &self,
        tree: &ParamTree,
        path: &str,
        value: f32,
        values: Option<&dyn Values>,
    ) -> Option<OscMessage> {
        match address::mirror(tree, path)? {
            Mirror::Value { addr, conv } => Some(msg(&addr, vec![conv.to_xair(value).to_osc()])),
            Mirror::EqOn { addr, bands } => {
                let on = if value >= 0.5 {
                    true
                } else {
                    let values = values?;
                    let canonical = tree.get(tree.resolve(path)?).path.as_str();
                    bands
                        .iter()
                        .filter(|p| p.as_str() != canonical)
                        .any(|p| values.get(p).is_some_and(|v| v >= 0.5))
                };
                Some(msg(&addr, vec![OscType::Int(i32::from(on))]))
            }
        }
    }

    /// Every address with its current value, in console order.
    pub fn snapshot(&self, tree: &ParamTree, values: &dyn Values) -> Vec<OscMessage> {
        address::addresses(tree)
            .into_iter()
            .filter_map(|a| {
                let v = value(&address::binding(tree, &a)?, values)?;
                Some(msg(&a, vec![v.to_osc()]))
            })
            .collect()
    }

    /// The `/meters/1` message for a subscriber that asked for it on `reply`.
    pub fn meters(&self, reply: &str, m: &Meters) -> OscMessage {
        meters::meters_1_message(reply, m)
    }
}

/// The console's current value of binding `b`.
fn value(b: &Binding, values: &dyn Values) -> Option<XVal> {
    match b {
        Binding::Param { path, conv, .. } => values.get(path).map(|v| conv.to_xair(v)),
        Binding::EqOn { bands } => Some(XVal::Int(i32::from(
            bands
                .iter()
                .any(|p| values.get(p).is_some_and(|v| v >= 0.5)),
        ))),
        Binding::Name(n) => Some(XVal::Str(n.clone())),
        Binding::Fixed(v) => Some(v.clone()),
    }
}

fn set(addr: &str, b: &Binding, arg: &OscType, values: &mut dyn Values) -> Response {
    match b {
        Binding::Param { path, conv, spec } => {
            let ours = match conv.to_ours(arg) {
                Ok(v) => spec.sanitize(v),
                Err(e) => return Response::error(format!("{addr}: {e}")),
            };
            let before = values.get(path);
            match values.set(path, ours) {
                Ok(stored) => {
                    let shown = conv.to_xair(stored);
                    let mut r = if same(&shown, arg) {
                        Response::default()
                    } else {
                        Response::reply(msg(addr, vec![shown.to_osc()]))
                    };
                    r.changed = before != Some(stored);
                    r
                }
                Err(e) => Response::error(format!("{addr}: {e}")),
            }
        }
        Binding::EqOn { bands } => {
            let v = match Conv::Switch.to_ours(arg) {
                Ok(v) => v,
                Err(e) => return Response::error(format!("{addr}: {e}")),
            };
            let mut r = Response::default();
            for p in bands {
                let before = values.get(p);
                match values.set(p, v) {
                    Ok(stored) => r.changed |= before != Some(stored),
                    Err(e) => r.error = Some(format!("{addr}: {e}")),
                }
            }
            r
        }
        Binding::Name(_) | Binding::Fixed(_) => {
            let mut r = value(b, values).map_or_else(Response::default, |v| {
                Response::reply(msg(addr, vec![v.to_osc()]))
            });
            r.error = Some(format!("{addr}: read-only"));
            r
        }
    }
}

/// `/config/chlink/1-2` .. `/config/chlink/15-16`, `/config/buslink/1-2` .. `/5-6`.
fn link_pair(addr: &str) -> bool {
    let (pairs, rest) = if let Some(r) = addr.strip_prefix("/config/chlink/") {
        (XAIR_CHANNELS / 2, r)
    } else if let Some(r) = addr.strip_prefix("/config/buslink/") {
        (XAIR_BUSES / 2, r)
    } else {
        return false;
    };
    (0..pairs).any(|p| rest == format!("{}-{}", 2 * p + 1, 2 * p + 2))
}

/// True when the value the console shows equals the argument the client sent (floats within
/// 1e-4 after clamping to 0..1, ints exactly).
fn same(shown: &XVal, sent: &OscType) -> bool {
    let Some(sent) = XVal::number(sent) else {
        return false;
    };
    match shown {
        XVal::Float(f) => (f - sent.clamp(0.0, 1.0)).abs() <= 1e-4,
        XVal::Int(i) => *i as f32 == sent.round(),
        XVal::Str(_) => false,
    }
}

#[cfg(test)]
mod tests;
