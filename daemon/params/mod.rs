//! The parameter tree (SPEC §4): every controllable value of a session, one path each
//! (`ch/kick/eq/2/gain_db`), with its [`ParamSpec`] and the engine address it drives.
//!
//! The tree is built from a validated [`Session`]; its current values start as the session's.
//! Surfaces, automation and state files name parameters by path; the engine receives
//! [`ParamChange`]s keyed by [`Addr`]. Strips may be named by 1-based position (`ch/1/...`).

pub mod spec;

use std::collections::HashMap;

pub use spec::{ParamSpec, Taper, Unit};

use crate::session::model::{Color, Comp, EqBand, EqType, Gate, PassFilter, Session, Slope};

/// Which strip a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Index into `Session::channels`.
    Channel(u16),
    /// Index into `Session::buses`.
    Bus(u16),
    Master,
}

/// Which control of a strip. Band numbers are 0-based here (paths say 1..=4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    TrimDb,
    Invert,
    DelayMs,
    Pan,
    FaderDb,
    Mute,
    Solo,
    SoloSafe,
    HpfOn,
    HpfFreq,
    HpfSlope,
    LpfOn,
    LpfFreq,
    LpfSlope,
    GateOn,
    GateThreshold,
    GateRange,
    GateAttack,
    GateHold,
    GateRelease,
    EqOn(u8),
    EqType(u8),
    EqFreq(u8),
    EqGain(u8),
    EqQ(u8),
    CompOn,
    CompThreshold,
    CompRatio,
    CompKnee,
    CompAttack,
    CompRelease,
    CompMakeup,
    SatOn,
    SatDrive,
    SatMix,
    /// Hardware insert (`ch/NAME/insert/...`, `bus/NAME/insert/...`, `master/insert/...`).
    InsertSendDb,
    InsertReturnDb,
    InsertWet,
    InsertInvert,
    InsertBypass,
    /// Not a parameter of the tree: hold the insert for a latency measurement (1) or release
    /// it (0), sent by [`crate::control::ConsoleHandle::hold_insert`]. Held, the insert is
    /// bypassed (its latency delay) and its send is silent, whatever its parameters say.
    InsertHold,
    /// Send to the bus with this index in `Session::buses`.
    SendLevel(u16),
    SendPre(u16),
    ReverbDecay,
    ReverbPredelay,
    ReverbDamping,
    ReverbSize,
    DelayTime,
    DelayFeedback,
    DelayPingPong,
    DelayLowcut,
    DelayHighcut,
    LimiterOn,
    LimiterCeiling,
    LimiterRelease,
    /// Transport commands (not parameters of the tree; sent with `Target::Master` by
    /// [`crate::control::ConsoleHandle::transport`]): play (1) / stop (0) the file sources.
    TransportPlay,
    /// Move the transport to this many seconds (file sources play from there).
    TransportLocate,
}

/// The engine address of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    pub target: Target,
    pub key: Key,
}

/// A new value for one parameter, as the engine receives it. `frame` is the absolute engine
/// frame at which it takes effect ([`crate::engine::Engine::next_frame`],
/// [`crate::engine::EngineHandle::frame_at`]); 0, or any frame already played, means at the
/// start of the next block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamChange {
    pub addr: Addr,
    pub value: f32,
    pub frame: u64,
}

/// Index of a parameter in its [`ParamTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u32);

/// One entry of the tree.
#[derive(Debug, Clone)]
pub struct Param {
    /// Canonical path, by name: `ch/kick/fader_db`.
    pub path: String,
    pub spec: &'static ParamSpec,
    pub addr: Addr,
    /// The value the session file gave (or the spec default).
    pub initial: f32,
}

/// Every parameter of a session.
#[derive(Debug, Clone, Default)]
pub struct ParamTree {
    params: Vec<Param>,
    by_path: HashMap<String, ParamId>,
    by_addr: HashMap<Addr, ParamId>,
    /// Strip names in order, to resolve `ch/1/...` to `ch/kick/...`.
    channel_names: Vec<String>,
    bus_names: Vec<String>,
    /// Strip colours (for surfaces that show one), in the same order as the names.
    channel_colors: Vec<Option<Color>>,
    bus_colors: Vec<Option<Color>>,
}

fn b(v: bool) -> f32 {
    if v { 1.0 } else { 0.0 }
}

fn slope_value(s: Slope) -> f32 {
    match s {
        Slope::Db12 => 0.0,
        Slope::Db24 => 1.0,
    }
}

/// The value of an EQ type in `eq/N/type`.
pub fn eq_type_value(t: EqType) -> f32 {
    match t {
        EqType::Bell => 0.0,
        EqType::LowShelf => 1.0,
        EqType::HighShelf => 2.0,
        EqType::Notch => 3.0,
    }
}

/// The EQ type of an `eq/N/type` value.
pub fn eq_type_from_value(v: f32) -> EqType {
    match v.round() as i32 {
        1 => EqType::LowShelf,
        2 => EqType::HighShelf,
        3 => EqType::Notch,
        _ => EqType::Bell,
    }
}

struct Builder<'t> {
    tree: &'t mut ParamTree,
    prefix: String,
    target: Target,
}

impl Builder<'_> {
    fn add(&mut self, sub: &str, group: &'static [ParamSpec], key_name: &str, key: Key, v: f32) {
        let spec = spec::get(group, key_name);
        let path = if sub.is_empty() {
            format!("{}/{}", self.prefix, key_name)
        } else {
            format!("{}/{}/{}", self.prefix, sub, key_name)
        };
        let addr = Addr {
            target: self.target,
            key,
        };
        let id = ParamId(self.tree.params.len() as u32);
        self.tree.by_path.insert(path.clone(), id);
        self.tree.by_addr.insert(addr, id);
        self.tree.params.push(Param {
            path,
            spec,
            addr,
            initial: spec.sanitize(v),
        });
    }

    fn pass(&mut self, sub: &str, group: &'static [ParamSpec], f: Option<&PassFilter>, hp: bool) {
        let (on, freq, slope) = if hp {
            (Key::HpfOn, Key::HpfFreq, Key::HpfSlope)
        } else {
            (Key::LpfOn, Key::LpfFreq, Key::LpfSlope)
        };
        let d = |k| spec::get(group, k).default;
        self.add(sub, group, "on", on, b(f.is_some()));
        self.add(sub, group, "freq", freq, f.map_or(d("freq"), |f| f.freq));
        self.add(
            sub,
            group,
            "slope",
            slope,
            f.map_or(d("slope"), |f| slope_value(f.slope)),
        );
    }

    fn gate(&mut self, g: Option<&Gate>) {
        let d = |k| spec::get(spec::GATE, k).default;
        let gr = spec::GATE;
        self.add("gate", gr, "on", Key::GateOn, b(g.is_some()));
        let v = |f: fn(&Gate) -> f32, k| g.map_or(d(k), f);
        self.add(
            "gate",
            gr,
            "threshold_db",
            Key::GateThreshold,
            v(|g| g.threshold_db, "threshold_db"),
        );
        self.add(
            "gate",
            gr,
            "range_db",
            Key::GateRange,
            v(|g| g.range_db, "range_db"),
        );
        self.add(
            "gate",
            gr,
            "attack_ms",
            Key::GateAttack,
            v(|g| g.attack_ms, "attack_ms"),
        );
        self.add(
            "gate",
            gr,
            "hold_ms",
            Key::GateHold,
            v(|g| g.hold_ms, "hold_ms"),
        );
        self.add(
            "gate",
            gr,
            "release_ms",
            Key::GateRelease,
            v(|g| g.release_ms, "release_ms"),
        );
    }

    /// `.../insert/...` of a strip with `insert:` (channels, buses, the master).
    fn insert(&mut self, ins: Option<&crate::session::model::Insert>) {
        if ins.is_none() {
            return;
        }
        let g = spec::INSERT;
        let d = |k| spec::get(g, k).default;
        self.add("insert", g, "send_db", Key::InsertSendDb, d("send_db"));
        self.add(
            "insert",
            g,
            "return_db",
            Key::InsertReturnDb,
            d("return_db"),
        );
        self.add("insert", g, "wet", Key::InsertWet, d("wet"));
        self.add("insert", g, "invert", Key::InsertInvert, d("invert"));
        self.add("insert", g, "bypass", Key::InsertBypass, d("bypass"));
    }

    fn eq(&mut self, bands: &[EqBand]) {
        let g = spec::EQ_BAND;
        for i in 0..spec::EQ_BANDS {
            let band = bands.get(i);
            let sub = format!("eq/{}", i + 1);
            let n = i as u8;
            let d = |k| spec::get(g, k).default;
            self.add(&sub, g, "on", Key::EqOn(n), b(band.is_some()));
            let t = band.map_or(d("type"), |b| eq_type_value(b.kind));
            self.add(&sub, g, "type", Key::EqType(n), t);
            let f = band.map_or(spec::EQ_DEFAULT_FREQS[i], |b| b.freq);
            self.add(&sub, g, "freq", Key::EqFreq(n), f);
            self.add(
                &sub,
                g,
                "gain_db",
                Key::EqGain(n),
                band.map_or(d("gain_db"), |b| b.gain_db),
            );
            self.add(&sub, g, "q", Key::EqQ(n), band.map_or(d("q"), |b| b.q));
        }
    }

    fn comp(&mut self, c: Option<&Comp>) {
        let g = spec::COMP;
        let d = |k| spec::get(g, k).default;
        let v = |f: fn(&Comp) -> f32, k| c.map_or(d(k), f);
        self.add("comp", g, "on", Key::CompOn, b(c.is_some()));
        self.add(
            "comp",
            g,
            "threshold_db",
            Key::CompThreshold,
            v(|c| c.threshold_db, "threshold_db"),
        );
        self.add("comp", g, "ratio", Key::CompRatio, v(|c| c.ratio, "ratio"));
        self.add(
            "comp",
            g,
            "knee_db",
            Key::CompKnee,
            v(|c| c.knee_db, "knee_db"),
        );
        self.add(
            "comp",
            g,
            "attack_ms",
            Key::CompAttack,
            v(|c| c.attack_ms, "attack_ms"),
        );
        self.add(
            "comp",
            g,
            "release_ms",
            Key::CompRelease,
            v(|c| c.release_ms, "release_ms"),
        );
        self.add(
            "comp",
            g,
            "makeup_db",
            Key::CompMakeup,
            v(|c| c.makeup_db, "makeup_db"),
        );
    }
}

impl ParamTree {
    /// Build the tree of `session`, initial values taken from it.
    pub fn build(session: &Session) -> Self {
        let mut tree = ParamTree {
            channel_names: session.channels.iter().map(|c| c.name.clone()).collect(),
            bus_names: session.buses.iter().map(|b| b.name.clone()).collect(),
            channel_colors: session.channels.iter().map(|c| c.color).collect(),
            bus_colors: session.buses.iter().map(|b| b.color).collect(),
            ..Default::default()
        };
        let aux: Vec<(usize, &str)> = session
            .buses
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind == crate::session::model::BusKind::Aux)
            .map(|(i, b)| (i, b.name.as_str()))
            .collect();

        for (ci, ch) in session.channels.iter().enumerate() {
            let mut bld = Builder {
                tree: &mut tree,
                prefix: format!("ch/{}", ch.name),
                target: Target::Channel(ci as u16),
            };
            let s = spec::STRIP;
            bld.add("", s, "trim_db", Key::TrimDb, ch.trim_db);
            bld.add("", s, "invert", Key::Invert, b(ch.invert));
            bld.add("", s, "delay_ms", Key::DelayMs, ch.delay_ms);
            bld.pass("hpf", spec::HPF, ch.hpf.as_ref(), true);
            bld.pass("lpf", spec::LPF, ch.lpf.as_ref(), false);
            bld.gate(ch.gate.as_ref());
            bld.eq(&ch.eq);
            bld.comp(ch.comp.as_ref());
            let sat = spec::SATURATION;
            let d = |k| spec::get(sat, k).default;
            let st = ch.saturation.as_ref();
            bld.add("saturation", sat, "on", Key::SatOn, b(st.is_some()));
            bld.add(
                "saturation",
                sat,
                "drive_db",
                Key::SatDrive,
                st.map_or(d("drive_db"), |s| s.drive_db),
            );
            bld.add(
                "saturation",
                sat,
                "mix",
                Key::SatMix,
                st.map_or(d("mix"), |s| s.mix),
            );
            bld.insert(ch.insert.as_ref());
            bld.add("", s, "pan", Key::Pan, ch.pan);
            bld.add("", s, "fader_db", Key::FaderDb, ch.fader_db);
            bld.add("", s, "mute", Key::Mute, b(ch.mute));
            bld.add("", s, "solo", Key::Solo, b(ch.solo));
            bld.add("", s, "solo_safe", Key::SoloSafe, b(ch.solo_safe));
            for &(bi, bname) in &aux {
                let send = ch.sends.iter().find(|s| s.bus_index == bi);
                let sub = format!("sends/{bname}");
                let lvl = send.map_or(f32::NEG_INFINITY, |s| s.level_db);
                bld.add(&sub, spec::SEND, "level_db", Key::SendLevel(bi as u16), lvl);
                let pre = send.is_some_and(|s| s.pre_fader);
                bld.add(
                    &sub,
                    spec::SEND,
                    "pre_fader",
                    Key::SendPre(bi as u16),
                    b(pre),
                );
            }
        }

        for (bi, bus) in session.buses.iter().enumerate() {
            let mut bld = Builder {
                tree: &mut tree,
                prefix: format!("bus/{}", bus.name),
                target: Target::Bus(bi as u16),
            };
            bld.eq(&bus.eq);
            bld.comp(bus.comp.as_ref());
            if let Some(r) = &bus.reverb {
                let g = spec::REVERB;
                bld.add("fx/reverb", g, "decay_s", Key::ReverbDecay, r.decay_s);
                bld.add(
                    "fx/reverb",
                    g,
                    "predelay_ms",
                    Key::ReverbPredelay,
                    r.predelay_ms,
                );
                bld.add("fx/reverb", g, "damping", Key::ReverbDamping, r.damping);
                bld.add("fx/reverb", g, "size", Key::ReverbSize, r.size);
            }
            if let Some(d) = &bus.delay {
                let g = spec::DELAY;
                bld.add("fx/delay", g, "time_ms", Key::DelayTime, d.time_ms);
                bld.add("fx/delay", g, "feedback", Key::DelayFeedback, d.feedback);
                bld.add(
                    "fx/delay",
                    g,
                    "ping_pong",
                    Key::DelayPingPong,
                    b(d.ping_pong),
                );
                bld.add("fx/delay", g, "lowcut_hz", Key::DelayLowcut, d.lowcut_hz);
                bld.add("fx/delay", g, "highcut_hz", Key::DelayHighcut, d.highcut_hz);
            }
            bld.insert(bus.insert.as_ref());
            let g = spec::BUS;
            bld.add("", g, "pan", Key::Pan, bus.pan);
            bld.add("", g, "fader_db", Key::FaderDb, bus.fader_db);
            bld.add("", g, "mute", Key::Mute, b(bus.mute));
        }

        let m = &session.master;
        let mut bld = Builder {
            tree: &mut tree,
            prefix: "master".into(),
            target: Target::Master,
        };
        bld.eq(&m.eq);
        bld.comp(m.comp.as_ref());
        let g = spec::LIMITER;
        let d = |k| spec::get(g, k).default;
        let l = m.limiter.as_ref();
        bld.add("limiter", g, "on", Key::LimiterOn, b(l.is_some()));
        bld.add(
            "limiter",
            g,
            "ceiling_dbtp",
            Key::LimiterCeiling,
            l.map_or(d("ceiling_dbtp"), |l| l.ceiling_dbtp),
        );
        bld.add(
            "limiter",
            g,
            "release_ms",
            Key::LimiterRelease,
            l.map_or(d("release_ms"), |l| l.release_ms),
        );
        bld.insert(m.insert.as_ref());
        bld.add("", spec::MASTER, "fader_db", Key::FaderDb, m.fader_db);
        tree
    }

    /// Channel names in session order (`ch/1` is the first).
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    /// Channel colours in session order.
    pub fn channel_colors(&self) -> &[Option<Color>] {
        &self.channel_colors
    }

    /// Bus colours in session order.
    pub fn bus_colors(&self) -> &[Option<Color>] {
        &self.bus_colors
    }

    /// Bus names in session order (`bus/1` is the first).
    pub fn bus_names(&self) -> &[String] {
        &self.bus_names
    }

    /// All parameters, in tree order (strips, then buses, then master).
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True for a tree without parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The parameter with this id.
    pub fn get(&self, id: ParamId) -> &Param {
        &self.params[id.0 as usize]
    }

    /// Resolve a path: by name (`ch/kick/fader_db`) or by 1-based position (`ch/1/fader_db`,
    /// `bus/2/mute`). Leading `/` is ignored.
    pub fn resolve(&self, path: &str) -> Option<ParamId> {
        let path = path.strip_prefix('/').unwrap_or(path);
        if let Some(id) = self.by_path.get(path) {
            return Some(*id);
        }
        let (kind, rest) = path.split_once('/')?;
        let (strip, tail) = rest.split_once('/')?;
        let n: usize = strip.parse().ok()?;
        let names = match kind {
            "ch" => &self.channel_names,
            "bus" => &self.bus_names,
            _ => return None,
        };
        let name = names.get(n.checked_sub(1)?)?;
        self.by_path.get(&format!("{kind}/{name}/{tail}")).copied()
    }

    /// The id of the parameter at an engine address.
    pub fn by_addr(&self, addr: Addr) -> Option<ParamId> {
        self.by_addr.get(&addr).copied()
    }

    /// The initial change set: every parameter at its session value, in tree order.
    pub fn initial_changes(&self) -> impl Iterator<Item = ParamChange> + '_ {
        self.params.iter().map(|p| ParamChange {
            addr: p.addr,
            value: p.initial,
            frame: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::model::*;

    fn session() -> Session {
        let ch = |name: &str| Channel {
            name: name.into(),
            source: Source::None,
            trim_db: 0.0,
            invert: false,
            delay_ms: 0.0,
            hpf: Some(PassFilter {
                freq: 40.0,
                slope: Slope::Db24,
            }),
            lpf: None,
            gate: None,
            eq: vec![EqBand {
                kind: EqType::LowShelf,
                freq: 60.0,
                gain_db: 3.0,
                q: 0.7,
            }],
            comp: None,
            saturation: None,
            insert: None,
            pan: -0.25,
            fader_db: -3.0,
            mute: false,
            solo: false,
            solo_safe: false,
            sends: vec![Send {
                bus: "verb".into(),
                bus_index: 0,
                level_db: -12.0,
                pre_fader: true,
            }],
            output: Output::Master,
            color: None,
        };
        Session {
            file: "s.yaml".into(),
            engine: EngineSettings::default(),
            channels: vec![ch("kick"), ch("snare")],
            buses: vec![Bus {
                name: "verb".into(),
                kind: BusKind::Aux,
                eq: vec![],
                comp: None,
                reverb: Some(Reverb {
                    decay_s: 1.8,
                    predelay_ms: 20.0,
                    damping: 0.5,
                    size: 0.7,
                }),
                delay: None,
                pan: 0.0,
                fader_db: 0.0,
                mute: false,
                output: Output::Master,
                outputs: vec![],
                insert: None,
                color: None,
            }],
            master: Master {
                eq: vec![],
                comp: None,
                limiter: None,
                fader_db: 0.0,
                outputs: vec![],
                insert: None,
            },
            surfaces: vec![],
            automation: Default::default(),
        }
    }

    #[test]
    fn paths_follow_the_session_file() {
        let t = ParamTree::build(&session());
        let v = |p: &str| t.get(t.resolve(p).unwrap_or_else(|| panic!("{p}"))).initial;
        assert_eq!(v("ch/kick/fader_db"), -3.0);
        assert_eq!(v("ch/kick/pan"), -0.25);
        assert_eq!(v("ch/kick/hpf/on"), 1.0);
        assert_eq!(v("ch/kick/hpf/slope"), 1.0);
        assert_eq!(v("ch/kick/eq/1/gain_db"), 3.0);
        assert_eq!(v("ch/kick/eq/1/type"), 1.0);
        assert_eq!(v("ch/kick/eq/2/on"), 0.0);
        assert_eq!(v("ch/kick/eq/2/freq"), 500.0);
        assert_eq!(v("ch/kick/sends/verb/level_db"), -12.0);
        assert_eq!(v("ch/kick/sends/verb/pre_fader"), 1.0);
        assert_eq!(v("bus/verb/fx/reverb/decay_s"), 1.8);
        assert_eq!(v("master/limiter/ceiling_dbtp"), -1.0);
        assert_eq!(v("/ch/2/fader_db"), -3.0);
        assert_eq!(t.resolve("ch/2/fader_db"), t.resolve("ch/snare/fader_db"));
        assert_eq!(t.resolve("bus/1/fader_db"), t.resolve("bus/verb/fader_db"));
        assert!(t.resolve("ch/3/fader_db").is_none());
        assert!(t.resolve("ch/0/fader_db").is_none());
        assert!(t.resolve("ch/kick/nonsense").is_none());
    }

    #[test]
    fn every_path_is_unique_and_addressable() {
        let t = ParamTree::build(&session());
        for (i, p) in t.params().iter().enumerate() {
            assert_eq!(t.resolve(&p.path), Some(ParamId(i as u32)), "{}", p.path);
            assert_eq!(t.by_addr(p.addr), Some(ParamId(i as u32)), "{}", p.path);
        }
        // 2 channels x (8 strip + 3 hpf + 3 lpf + 6 gate + 20 eq + 7 comp + 3 sat + 2 send)
        // + bus (20 eq + 7 comp + 4 reverb + 3) + master (20 eq + 7 comp + 3 limiter + 1).
        assert_eq!(t.len(), 2 * 52 + 34 + 31);
    }
}
