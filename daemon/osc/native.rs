//! The native OSC dialect (SPEC §5): the address is `/` + the parameter path.
//!
//! | message | effect |
//! |---|---|
//! | `/ch/kick/fader_db ,f -6` | set (also `,i`, `,d`, `,h`, `,T`/`,F`; `,s "-inf"` closes a fader; choice names like `,s "bell"`) |
//! | `/ch/kick/fader_db` | query: the reply is the same address with the current value |
//! | `/subscribe [,i SECONDS]` | feedback lease (default 10 s, 0 ends it); answers a full snapshot |
//! | `/unsubscribe` | end the lease |
//! | `/PATH/touch ,i 1\|0` | touch / release a control |
//! | `/meters/subscribe [,i SECONDS]`, `/meters/unsubscribe` | meter stream |
//! | `/meters/reset` | restart the master's integrated loudness and true peak |
//! | `/scene/save ,s NAME`, `/scene/recall ,s NAME` | scenes |
//! | `/learn ,s PATH` | MIDI learn: the next control of a mapped device is bound to PATH (answered `/learn ,s PATH`; the result is logged) |
//! | `/transport/play`, `/transport/stop`, `/transport/locate ,f S` | the transport of file sources (stopped: silent, position held) |
//! | `/STRIP/insert/unit ,s NAME`, `/STRIP/insert/setting ,ss KNOB VALUE`, `/STRIP/insert/notes` | outboard recall notes (no argument / `,s KNOB`: query) |
//! | `/STRIP/insert/measure` | measure the insert's round-trip latency on the running daemon (JACK), store and apply it; a few seconds later `/STRIP/insert/latency ,ffi SAMPLES ERROR INVERTED` (STRIP canonical, `ch/kick`; INVERTED 1 when the return is inverted), or `/error` |
//! | `/STRIP/insert/latency [,f SAMPLES]` | no argument: the latency the insert runs with, `,ffi` as above (`/error` when unknown); `,f`: store it by hand (as `measure-insert --set`) and apply it, answered the same way |
//! | `/automation/undo` | put back the lanes the last automation pass wrote; replies `,i` how many |
//! | `/PATH/automation ,s MODE` | the automation mode of a parameter, or of every parameter of a strip (`/ch/kick/automation`); no argument: the mode, `,s` |
//!
//! Every refusal answers `/error ,ss ADDRESS MESSAGE` to the sender and changes nothing.
//! Feedback and snapshots are `/PATH ,f VALUE` (a closed fader is `-inf`). Meter bundles carry
//! `/meters/ch/N`, `/meters/bus/N` (1-based positions, like `ch/N/...`, so one tablet layout
//! fits every session) `,ffff PEAK_DBFS RMS_DBFS COMP_GR_DB GATE_GR_DB` (peak and RMS: the
//! louder side; silence reads [`METER_FLOOR_DB`]) and
//! `/meters/master ,ffff PEAK RMS COMP_GR LIMITER_GR`, then the master's live loudness (EBU
//! R128, measured off the audio thread): `/meters/master/lufs_m`, `/meters/master/lufs_s`,
//! `/meters/master/lufs_i` (momentary, short-term, integrated LUFS) and
//! `/meters/master/true_peak` (dBTP, the largest since the last reset), each `,f`; no
//! measurement yet reads [`METER_FLOOR_DB`]. `/meters/reset` (or `/transport/locate ,f 0`)
//! restarts the integrated loudness and the true peak.

use std::time::Duration;

use rosc::{OscMessage, OscPacket, OscType};

use super::{ClientCx, Dialect, bundles, error_reply};
use crate::control::{Change, ConsoleHandle, Transport};
use crate::engine::{Meters, StripMeters};
use crate::params::ParamTree;
use crate::params::spec::Unit;

/// How long `/learn` waits for a control.
const LEARN_TIMEOUT: Duration = Duration::from_secs(30);

/// Lease when `/subscribe` gives none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// Longest lease granted.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// What silent meters read (dBFS).
pub const METER_FLOOR_DB: f32 = -144.0;

/// The native dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

fn reply(addr: &str, value: f32) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.to_string(),
        args: vec![OscType::Float(value)],
    })
}

/// Lease seconds from `[,i SECONDS]` (also float); None for a bad argument.
fn lease(args: &[OscType]) -> Option<Option<Duration>> {
    let secs = match args.first() {
        None => return Some(Some(DEFAULT_LEASE)),
        Some(OscType::Int(i)) => f64::from(*i),
        Some(OscType::Float(f)) => f64::from(*f),
        Some(OscType::Long(l)) => *l as f64,
        Some(OscType::Double(d)) => *d,
        _ => return None,
    };
    if secs <= 0.0 {
        return Some(None);
    }
    Some(Some(Duration::from_secs_f64(secs).min(MAX_LEASE)))
}

/// A number from one argument (bools as 0/1).
fn number(a: &OscType) -> Option<f32> {
    match a {
        OscType::Float(f) => Some(*f),
        OscType::Double(d) => Some(*d as f32),
        OscType::Int(i) => Some(*i as f32),
        OscType::Long(l) => Some(*l as f32),
        OscType::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn text(args: &[OscType]) -> Option<&str> {
    match args {
        [OscType::String(s)] => Some(s),
        _ => None,
    }
}

fn meter_db(v: f32) -> f32 {
    if v.is_nan() {
        METER_FLOOR_DB
    } else {
        v.clamp(METER_FLOOR_DB, 60.0)
    }
}

/// A gain reduction (dB, ≥ 0) fit for the wire: NaN reads 0.
fn gr_db(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 200.0) }
}

fn strip_meter(addr: String, m: &StripMeters, last: f32) -> OscMessage {
    let peak = m.peak_db[0].max(m.peak_db[1]);
    let rms = m.rms_db[0].max(m.rms_db[1]);
    OscMessage {
        addr,
        args: vec![
            OscType::Float(meter_db(peak)),
            OscType::Float(meter_db(rms)),
            OscType::Float(gr_db(m.comp_gr_db)),
            OscType::Float(gr_db(last)),
        ],
    }
}

impl Native {
    fn set(&self, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        let path = &msg.addr[1..];
        // Engine statistics are not in the tree: the console answers them (read-only).
        let Some(spec) = cx.tree().resolve(path).map(|id| cx.tree().get(id).spec) else {
            return match cx.set(path, 0.0) {
                Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
                Ok(_) => vec![],
            };
        };
        let value = match msg.args.as_slice() {
            [a] => match (number(a), a) {
                (Some(v), _) => Some(v),
                (None, OscType::String(s)) => match (s.trim(), spec.unit) {
                    ("-inf", _) => Some(f32::NEG_INFINITY),
                    (s, Unit::Choice(names)) => {
                        names.iter().position(|n| *n == s).map(|i| i as f32)
                    }
                    (s, _) => s.parse::<f32>().ok().filter(|v| v.is_finite()),
                },
                _ => None,
            },
            _ => None,
        };
        let Some(value) = value else {
            let want = match spec.unit {
                Unit::Choice(names) => format!("one number (or one of {})", names.join("|")),
                _ => "one number (,f)".to_string(),
            };
            return vec![error_reply(
                &msg.addr,
                &format!("wrong type: expected {want}"),
            )];
        };
        match cx.set(path, value) {
            Ok(_) => vec![],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }

    fn query(&self, msg: &OscMessage, cx: &ClientCx<'_>) -> Vec<OscPacket> {
        match cx.console().get_sync(&msg.addr[1..]) {
            Ok(v) => vec![reply(&msg.addr, v)],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }

    fn touch(&self, msg: &OscMessage, path: &str, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        let on = match msg.args.as_slice() {
            [a] => number(a).map(|v| v != 0.0),
            _ => None,
        };
        let Some(on) = on else {
            return vec![error_reply(&msg.addr, "wrong type: expected ,i 1|0")];
        };
        match cx.touch(path, on) {
            Ok(()) => vec![],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }

    fn scene(&self, msg: &OscMessage, save: bool, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        let Some(name) = text(&msg.args) else {
            return vec![error_reply(&msg.addr, "wrong type: expected ,s NAME")];
        };
        if let Err(e) = cx.check_write() {
            return vec![error_reply(&msg.addr, &e.to_string())];
        }
        let r = if save {
            cx.console().scene_save_sync(name)
        } else {
            cx.console().scene_recall_sync(name)
        };
        match r {
            Ok(()) => vec![],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }
}

impl Native {
    /// `/PATH/automation`: with no argument, the mode (`,s`); with `,s MODE`, set it for the
    /// parameter or for every parameter of the strip.
    fn automation(
        &self,
        msg: &OscMessage,
        path: &str,
        current: crate::automation::Mode,
        cx: &mut ClientCx<'_>,
    ) -> Vec<OscPacket> {
        if msg.args.is_empty() {
            return vec![OscPacket::Message(OscMessage {
                addr: msg.addr.clone(),
                args: vec![OscType::String(current.name().into())],
            })];
        }
        let mode = match text(&msg.args).map(str::parse::<crate::automation::Mode>) {
            Some(Ok(m)) => m,
            Some(Err(e)) => return vec![error_reply(&msg.addr, &e.to_string())],
            None => {
                return vec![error_reply(
                    &msg.addr,
                    "wrong type: expected ,s off|read|touch|latch|write|trim",
                )];
            }
        };
        if let Err(e) = cx.check_write() {
            return vec![error_reply(&msg.addr, &e.to_string())];
        }
        match cx.console().set_automation(path, mode) {
            Ok(_) => vec![],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }

    fn transport(&self, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        let cmd = match (msg.addr.as_str(), msg.args.as_slice()) {
            ("/transport/play", []) => Transport::Play,
            ("/transport/stop", []) => Transport::Stop,
            ("/transport/locate", [a]) => match number(a) {
                Some(s) => Transport::Locate(s),
                None => return vec![error_reply(&msg.addr, "wrong type: expected ,f SECONDS")],
            },
            ("/transport/locate", _) => {
                return vec![error_reply(&msg.addr, "wrong type: expected ,f SECONDS")];
            }
            _ => return vec![error_reply(&msg.addr, "wrong type: expected no arguments")],
        };
        if let Err(e) = cx.check_write() {
            return vec![error_reply(&msg.addr, &e.to_string())];
        }
        match cx.transport(cmd) {
            Ok(()) => vec![],
            Err(e) => vec![error_reply(&msg.addr, &e.to_string())],
        }
    }
}

impl Dialect for Native {
    fn name(&self) -> &'static str {
        "osc"
    }

    fn oscquery(&self) -> bool {
        true
    }

    fn incoming(&self, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
        let a = msg.addr.as_str();
        match a {
            "/subscribe" => match lease(&msg.args) {
                Some(Some(d)) => {
                    cx.subscribe(d);
                    bundles(self.snapshot(cx.console(), cx.tree()))
                }
                Some(None) => {
                    cx.unsubscribe();
                    vec![]
                }
                None => vec![error_reply(a, "wrong type: expected ,i SECONDS")],
            },
            "/unsubscribe" => {
                cx.unsubscribe();
                vec![]
            }
            "/meters/subscribe" => match lease(&msg.args) {
                Some(Some(d)) => {
                    cx.subscribe_meters(d);
                    vec![]
                }
                Some(None) => {
                    cx.unsubscribe_meters();
                    vec![]
                }
                None => vec![error_reply(a, "wrong type: expected ,i SECONDS")],
            },
            "/meters/unsubscribe" => {
                cx.unsubscribe_meters();
                vec![]
            }
            "/meters/reset" => {
                if !msg.args.is_empty() {
                    return vec![error_reply(a, "wrong type: expected no arguments")];
                }
                if let Err(e) = cx.check_write() {
                    return vec![error_reply(a, &e.to_string())];
                }
                cx.console().reset_loudness();
                vec![]
            }
            "/learn" => match text(&msg.args) {
                Some(path) if crate::midimap::format::spec_of(path).is_some() => {
                    if let Err(e) = cx.check_write() {
                        return vec![error_reply(a, &e.to_string())];
                    }
                    let Ok(rt) = tokio::runtime::Handle::try_current() else {
                        return vec![error_reply(a, "MIDI learn is not available here")];
                    };
                    let rx = match crate::midimap::learn::arm(path) {
                        Ok(rx) => rx,
                        Err(e) => return vec![error_reply(a, &e)],
                    };
                    let path = path.to_string();
                    rt.spawn(async move {
                        let r = crate::midimap::learn::wait(rx, LEARN_TIMEOUT).await;
                        if let Err(e) = r {
                            tracing::warn!("MIDI learn of {path} (OSC): {e}");
                        }
                    });
                    vec![OscPacket::Message(OscMessage {
                        addr: a.into(),
                        args: vec![OscType::String(text(&msg.args).unwrap_or_default().into())],
                    })]
                }
                Some(path) => vec![error_reply(a, &format!("{path}: no such parameter"))],
                None => vec![error_reply(a, "wrong type: expected ,s PATH")],
            },
            "/automation/undo" => {
                if !msg.args.is_empty() {
                    return vec![error_reply(a, "wrong type: expected no arguments")];
                }
                if let Err(e) = cx.check_write() {
                    return vec![error_reply(a, &e.to_string())];
                }
                let n = cx.console().automation_undo();
                vec![OscPacket::Message(OscMessage {
                    addr: a.into(),
                    args: vec![OscType::Int(n as i32)],
                })]
            }
            "/scene/save" => self.scene(msg, true, cx),
            "/scene/recall" => self.scene(msg, false, cx),
            "/transport/play" | "/transport/stop" | "/transport/locate" => self.transport(msg, cx),
            _ => {
                if let Some(strip) = a.strip_suffix("/insert/measure") {
                    return measure(a, &strip[1.min(strip.len())..], msg, cx);
                }
                if let Some(strip) = a.strip_suffix("/insert/latency") {
                    return insert_latency(a, &strip[1.min(strip.len())..], msg, cx);
                }
                if let Some(reply) = outboard(a, msg, cx) {
                    return reply;
                }
                if let Some(path) = a.strip_suffix("/touch")
                    && cx.tree().resolve(path).is_some()
                {
                    return self.touch(msg, path, cx);
                }
                if let Some(path) = a.strip_suffix("/automation")
                    && let Ok(mode) = cx.console().automation(&path[1..])
                {
                    return self.automation(msg, &path[1..], mode, cx);
                }
                if msg.args.is_empty() {
                    self.query(msg, cx)
                } else {
                    self.set(msg, cx)
                }
            }
        }
    }

    fn feedback(&self, change: &Change, _tree: &ParamTree) -> Option<OscMessage> {
        Some(OscMessage {
            addr: format!("/{}", change.path),
            args: vec![OscType::Float(change.value)],
        })
    }

    fn snapshot(&self, console: &ConsoleHandle, tree: &ParamTree) -> Vec<OscMessage> {
        tree.params()
            .iter()
            .filter_map(|p| {
                let v = console.get_sync(&p.path).ok()?;
                Some(OscMessage {
                    addr: format!("/{}", p.path),
                    args: vec![OscType::Float(v)],
                })
            })
            .collect()
    }

    fn meters(&self, m: &Meters, _tree: &ParamTree) -> Vec<OscPacket> {
        let mut msgs = Vec::new();
        for (i, s) in m.channels.iter().enumerate() {
            msgs.push(strip_meter(
                format!("/meters/ch/{}", i + 1),
                s,
                s.gate_gr_db,
            ));
        }
        for (i, s) in m.buses.iter().enumerate() {
            msgs.push(strip_meter(
                format!("/meters/bus/{}", i + 1),
                s,
                s.gate_gr_db,
            ));
        }
        msgs.push(strip_meter(
            "/meters/master".into(),
            &m.master,
            m.limiter_gr_db,
        ));
        let l = &m.loudness;
        for (addr, v) in [
            ("/meters/master/lufs_m", l.momentary_lufs),
            ("/meters/master/lufs_s", l.short_term_lufs),
            ("/meters/master/lufs_i", l.integrated_lufs),
            ("/meters/master/true_peak", l.true_peak_dbtp),
        ] {
            msgs.push(OscMessage {
                addr: addr.into(),
                args: vec![OscType::Float(meter_db(v))],
            });
        }
        bundles(msgs)
    }
}

/// `/STRIP/insert/latency ,ffi SAMPLES ERROR INVERTED`.
fn latency_reply(strip: &str, samples: f64, error: f64, inverted: bool) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: format!("/{strip}/insert/latency"),
        args: vec![
            OscType::Float(samples as f32),
            OscType::Float(error as f32),
            OscType::Int(i32::from(inverted)),
        ],
    })
}

/// `/STRIP/insert/latency`: the latency the insert runs with; `,f SAMPLES` sets it by hand.
fn insert_latency(a: &str, strip: &str, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
    match msg.args.as_slice() {
        [] => {
            let console = cx.console();
            let path = match console.strip_path(strip) {
                Ok(p) => p,
                Err(e) => return vec![error_reply(a, &e.to_string())],
            };
            match console.insert_status(&path) {
                Some(crate::control::InsertLatencyStatus {
                    samples: Some(v),
                    error,
                    inverted,
                    ..
                }) => vec![latency_reply(&path, v, error, inverted)],
                Some(_) => vec![error_reply(
                    a,
                    &format!("{path}: latency unknown (measure it: /{path}/insert/measure)"),
                )],
                None => vec![error_reply(a, &format!("{path} has no hardware insert"))],
            }
        }
        [v] => match number(v) {
            Some(v) => start(a, strip, Some(f64::from(v)), cx),
            None => vec![error_reply(a, "wrong type: expected ,f SAMPLES")],
        },
        _ => vec![error_reply(a, "wrong type: expected ,f SAMPLES")],
    }
}

/// `/STRIP/insert/measure`: checks the strip and starts the measurement; the result (or the
/// refusal) is sent to the client when it is done.
fn measure(a: &str, strip: &str, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
    if !msg.args.is_empty() {
        return vec![error_reply(a, "wrong type: expected no arguments")];
    }
    start(a, strip, None, cx)
}

/// Measure (or with `set`, set by hand) the latency of the insert of `strip`; the answer
/// goes to the client when it is done.
fn start(a: &str, strip: &str, set: Option<f64>, cx: &mut ClientCx<'_>) -> Vec<OscPacket> {
    if let Err(e) = cx.check_write() {
        return vec![error_reply(a, &e.to_string())];
    }
    let console = cx.console().clone();
    let path = match console.strip_path(strip) {
        Ok(p) => p,
        Err(e) => return vec![error_reply(a, &e.to_string())],
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return vec![error_reply(a, "measuring is not available here")];
    };
    let later = cx.reply_later();
    let addr = a.to_string();
    rt.spawn(async move {
        let r = match set {
            Some(v) => console.set_insert_latency_manual(&path, v).await,
            None => console.measure_insert(&path).await,
        };
        let p = match r {
            Ok(m) => latency_reply(
                &m.strip,
                m.measurement.samples,
                m.measurement.error,
                m.measurement.inverted,
            ),
            Err(e) => error_reply(&addr, &e.to_string()),
        };
        later.send(&p).await;
    });
    vec![]
}

/// Outboard recall notes (`/ch/kick/insert/unit`, `.../setting`, `.../notes`); None when `a`
/// is not one of them.
fn outboard(a: &str, msg: &OscMessage, cx: &mut ClientCx<'_>) -> Option<Vec<OscPacket>> {
    let reply = |args: Vec<OscType>| {
        vec![OscPacket::Message(OscMessage {
            addr: a.into(),
            args,
        })]
    };
    let strs: Vec<&str> = msg
        .args
        .iter()
        .map(|x| match x {
            OscType::String(s) => Some(s.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let (strip, what) = a.rsplit_once("/insert/")?;
    if !matches!(what, "unit" | "setting" | "notes") {
        return None;
    }
    let strip = &strip[1.min(strip.len())..];
    if strs.len() != msg.args.len() {
        return Some(vec![error_reply(a, "wrong type: expected strings")]);
    }
    let console = cx.console().clone();
    let notes = match console.outboard(strip) {
        Ok(n) => n,
        Err(e) => return Some(vec![error_reply(a, &e.to_string())]),
    };
    let write = |cx: &mut ClientCx<'_>| cx.check_write().map_err(|e| e.to_string());
    let r = match (what, strs.as_slice()) {
        ("unit", []) => return Some(reply(vec![OscType::String(notes.unit)])),
        ("unit", [name]) => write(cx).and_then(|()| {
            console
                .set_outboard_unit(strip, name)
                .map_err(|e| e.to_string())
        }),
        ("setting", [knob]) => {
            let v = notes.settings.get(*knob).cloned().unwrap_or_default();
            return Some(reply(vec![
                OscType::String((*knob).into()),
                OscType::String(v),
            ]));
        }
        ("setting", [knob, value]) => write(cx).and_then(|()| {
            console
                .set_outboard_setting(strip, knob, value)
                .map_err(|e| e.to_string())
        }),
        ("notes", []) => {
            let line = crate::control::status::outboard_line(strip, &notes);
            return Some(reply(vec![OscType::String(line)]));
        }
        ("unit" | "setting" | "notes", _) => Err("wrong number of arguments".into()),
        _ => return None,
    };
    Some(match r {
        Ok(()) => vec![],
        Err(e) => vec![error_reply(a, &e)],
    })
}
