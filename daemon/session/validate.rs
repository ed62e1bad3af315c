//! Stage two of loading a session: turns the raw file ([`super::raw`]) into the validated
//! [`model::Session`]. Every rule of SPEC §3 is checked here and every failure is collected
//! (not just the first) with the line and column of the offending value. Ranges and defaults
//! come from [`crate::params::spec`]; nothing here re-lists a number.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::Diagnostic;
use super::model::{
    AutomationSettings, Bus, BusKind, Channel, Color, Comp, DEFAULT_ALLOW, Delay, EngineSettings,
    EqBand, Gate, Insert, InsertLatency, InsertPosition, Limiter, Master, NetSurface, Output,
    PassFilter, PortRef, Reverb, Saturation, Send, Session, Slope, Source, Surface,
};
use super::raw::{
    Flag, Num, Ports, RawAutomation, RawBand, RawBus, RawBusKind, RawChannel, RawComp, RawDelay,
    RawEngine, RawGate, RawInsert, RawLimiter, RawMaster, RawPass, RawReverb, RawSaturation,
    RawSend, RawSession, RawSource, RawSurface, RawSurfaceKind, Scalar, fmt_f64,
};
use crate::params::eq_type_from_value;
use crate::params::spec::{self, ParamSpec};

/// The bus named by an `output:` value that is not `master`.
const MASTER: &str = "master";
/// What `outputs:` of the master is when the file leaves it out (model: `[1, 2]`).
const DEFAULT_MASTER_OUTPUTS: [u32; 2] = [1, 2];
/// The X-Air dialect's port (SPEC §6) when an `xair` surface has no `listen`.
const DEFAULT_XAIR_LISTEN: &str = "0.0.0.0:10024";

/// Validate a parsed file. `file` is the session file (messages; relative paths are resolved
/// against its folder).
pub(super) fn validate(raw: &RawSession, file: &Path) -> Result<Session, Vec<Diagnostic>> {
    let mut cx = Ctx {
        file,
        dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        errors: Vec::new(),
    };
    cx.version(&raw.version);
    let engine = cx.engine(raw.engine.as_ref());
    let automation = cx.automation(raw.automation.as_ref());

    let raw_buses: &[Spanned<RawBus>] = raw.buses.as_deref().unwrap_or_default();
    let index = cx.bus_index(raw_buses);
    let channels = cx.channels(raw.channels.as_deref().unwrap_or_default(), &index);
    let buses = cx.buses(raw_buses, &index);
    let master = cx.master(raw.master.as_ref());
    let surfaces = raw
        .surfaces
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| cx.surface(i, s))
        .collect();

    if cx.errors.is_empty() {
        Ok(Session {
            file: file.to_path_buf(),
            engine,
            channels,
            buses,
            master,
            surfaces,
            automation,
        })
    } else {
        Err(cx.errors)
    }
}

/// Names and kinds of the buses, for resolving `output:` and `sends:` before buses are built.
struct BusIndex {
    /// First bus of each name → its index.
    by_name: HashMap<String, usize>,
    kinds: Vec<BusKind>,
    names: Vec<String>,
}

impl BusIndex {
    fn list(&self, kind: BusKind) -> String {
        let names: Vec<&str> = self
            .names
            .iter()
            .zip(&self.kinds)
            .filter(|(_, k)| **k == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

struct Ctx<'a> {
    file: &'a Path,
    dir: PathBuf,
    errors: Vec<Diagnostic>,
}

fn kind_of(k: RawBusKind) -> BusKind {
    match k {
        RawBusKind::Group => BusKind::Group,
        RawBusKind::Aux => BusKind::Aux,
    }
}

impl Ctx<'_> {
    fn err(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(Diagnostic::at(self.file, at, message));
    }

    // ---- scalars -------------------------------------------------------------------------

    /// A number as written (`-inf` text accepted when `neg_inf` is true), or an error.
    fn as_number(&mut self, path: &str, v: &Num, neg_inf: bool) -> Option<f64> {
        let x = match &v.value {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(f) => *f,
            Scalar::Str(s) if s == "-inf" => f64::NEG_INFINITY,
            other => {
                let what = if neg_inf {
                    "a number or \"-inf\""
                } else {
                    "a number"
                };
                self.err(
                    &v.referenced,
                    format!("{path}: expected {what}, found {other}"),
                );
                return None;
            }
        };
        if x.is_nan() {
            self.err(&v.referenced, format!("{path}: .nan is not a number"));
            return None;
        }
        Some(x)
    }

    /// A number checked against `spec`'s range.
    fn ranged(&mut self, path: &str, spec: &ParamSpec, v: &Num) -> Option<f32> {
        let neg_inf_ok = spec.min == f32::NEG_INFINITY;
        let x = self.as_number(path, v, neg_inf_ok)?;
        let range = spec.range_text();
        if x == f64::NEG_INFINITY && !neg_inf_ok {
            self.err(
                &v.referenced,
                format!("{path}: -inf is not allowed here (range {range})"),
            );
            return None;
        }
        // Compare as f32, the precision the model keeps (0.95 is in 0..0.95).
        let xf = x as f32;
        if !spec.contains(xf) || (xf.is_infinite() && x.is_finite()) {
            self.err(
                &v.referenced,
                format!("{path}: {} is out of range {range}", fmt_f64(x)),
            );
            return None;
        }
        Some(xf)
    }

    /// `prefix/key` from `group`: the value written, or the spec's default when absent or
    /// invalid (an error is recorded for invalid).
    fn param(
        &mut self,
        prefix: &str,
        group: &'static [ParamSpec],
        key: &str,
        v: Option<&Num>,
    ) -> f32 {
        let spec = spec::get(group, key);
        match v {
            None => spec.default,
            Some(v) => self
                .ranged(&format!("{prefix}/{key}"), spec, v)
                .unwrap_or(spec.default),
        }
    }

    /// `prefix/key` toggle from `group`: the value written, else the spec's default.
    fn toggle(
        &mut self,
        prefix: &str,
        group: &'static [ParamSpec],
        key: &str,
        v: Option<&Flag>,
    ) -> bool {
        let default = spec::get(group, key).default != 0.0;
        match v.map(|f| (&f.value, &f.referenced)) {
            None => default,
            Some((Scalar::Bool(b), _)) => *b,
            Some((other, at)) => {
                self.err(
                    at,
                    format!("{prefix}/{key}: expected true or false, found {other}"),
                );
                default
            }
        }
    }

    /// A whole number in `spec`'s range.
    fn whole(&mut self, path: &str, spec: &ParamSpec, v: Option<&Num>) -> f32 {
        let Some(v) = v else { return spec.default };
        match self.ranged(path, spec, v) {
            Some(x) if x.fract() == 0.0 => x,
            Some(x) => {
                self.err(&v.referenced, format!("{path}: {x} is not a whole number"));
                spec.default
            }
            None => spec.default,
        }
    }

    fn port(&mut self, path: &str, v: &Scalar, at: &Location) -> Option<PortRef> {
        match v {
            Scalar::Int(n) if *n >= 1 => match u32::try_from(*n) {
                Ok(n) => Some(PortRef::Number(n)),
                Err(_) => {
                    self.err(at, format!("{path}: port {n} does not exist"));
                    None
                }
            },
            Scalar::Int(n) => {
                self.err(at, format!("{path}: ports are numbered from 1, found {n}"));
                None
            }
            Scalar::Str(s) if !s.trim().is_empty() => Some(PortRef::Name(s.clone())),
            Scalar::Str(_) => {
                self.err(at, format!("{path}: empty port name"));
                None
            }
            other => {
                self.err(
                    at,
                    format!(
                        "{path}: expected a port number (1, 2, ...) or a JACK port name, found {other}"
                    ),
                );
                None
            }
        }
    }

    /// A list of `min..=max` ports (a single port is a list of one).
    fn ports(
        &mut self,
        path: &str,
        v: &Spanned<Ports>,
        min: usize,
        max: usize,
    ) -> Option<Vec<PortRef>> {
        let items: Vec<(&Scalar, &Location)> = match &v.value {
            Ports::One(s) => vec![(s, &v.referenced)],
            Ports::Many(list) => list.iter().map(|p| (&p.value, &p.referenced)).collect(),
        };
        if items.len() < min || items.len() > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} or {max}")
            };
            self.err(
                &v.referenced,
                format!("{path}: {} ports given, expected {want}", items.len()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (s, at) in items {
            match self.port(path, s, at) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn name(&mut self, what: &str, v: &Spanned<String>) {
        let n = &v.value;
        if n.is_empty() {
            self.err(&v.referenced, format!("{what} name is empty"));
        } else if !n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            self.err(
                &v.referenced,
                format!("{what} name {n:?} may use only a-z, 0-9, _ and -"),
            );
        } else if n.bytes().all(|b| b.is_ascii_digit()) {
            self.err(
                &v.referenced,
                format!("{what} name {n:?} is all digits, which reads as a strip position"),
            );
        }
    }

    // ---- top level -----------------------------------------------------------------------

    fn version(&mut self, v: &Spanned<Scalar>) {
        match &v.value {
            Scalar::Int(1) => {}
            Scalar::Float(f) if *f == 1.0 => {}
            Scalar::Int(n) => self.err(
                &v.referenced,
                format!("version {n} is not supported (this faderbridge reads version 1)"),
            ),
            other => self.err(&v.referenced, format!("version: expected 1, found {other}")),
        }
    }

    fn automation(&mut self, raw: Option<&RawAutomation>) -> AutomationSettings {
        let Some(a) = raw else {
            return AutomationSettings::default();
        };
        let glide = spec::get(spec::AUTOMATION, "glide_ms");
        let glide_ms = match &a.glide_ms {
            Some(v) => self
                .ranged("automation/glide_ms", glide, v)
                .unwrap_or(glide.default),
            None => glide.default,
        };
        let read_touch_overrides = match &a.read_touch {
            None => true,
            Some(v) => match v.value.as_str() {
                "override" => true,
                "ignore" => false,
                other => {
                    self.err(
                        &v.referenced,
                        format!(
                            "automation/read_touch: {other:?} is not a choice; use override or ignore"
                        ),
                    );
                    true
                }
            },
        };
        AutomationSettings {
            glide_ms,
            read_touch_overrides,
        }
    }

    fn engine(&mut self, raw: Option<&RawEngine>) -> EngineSettings {
        let sr = spec::get(spec::ENGINE, "sample_rate");
        let block = spec::get(spec::ENGINE, "block");
        let (r, b) = match raw {
            Some(e) => (
                self.whole("engine/sample_rate", sr, e.sample_rate.as_ref()),
                self.whole("engine/block", block, e.block.as_ref()),
            ),
            None => (sr.default, block.default),
        };
        EngineSettings {
            sample_rate: r as u32,
            block: b as usize,
        }
    }

    // ---- processors ----------------------------------------------------------------------

    fn pass(&mut self, prefix: &str, group: &'static [ParamSpec], raw: &RawPass) -> PassFilter {
        let freq = self.param(prefix, group, "freq", raw.freq.as_ref());
        let slope_spec = spec::get(group, "slope");
        let mut idx = slope_spec.default as usize;
        if let Some(v) = &raw.slope {
            let path = format!("{prefix}/slope");
            if let Some(x) = self.as_number(&path, v, false) {
                let label = fmt_f64(x);
                match spec::SLOPES.iter().position(|s| *s == label) {
                    Some(i) => idx = i,
                    None => self.err(
                        &v.referenced,
                        format!(
                            "{path}: {label} dB/oct is not available; use {}",
                            spec::SLOPES.join(" or ")
                        ),
                    ),
                }
            }
        }
        // Slope index order is spec::SLOPES: "12", "24".
        let slope = if idx == 0 { Slope::Db12 } else { Slope::Db24 };
        PassFilter { freq, slope }
    }

    fn gate(&mut self, prefix: &str, g: &RawGate) -> Gate {
        let t = spec::GATE;
        Gate {
            threshold_db: self.param(prefix, t, "threshold_db", g.threshold_db.as_ref()),
            range_db: self.param(prefix, t, "range_db", g.range_db.as_ref()),
            attack_ms: self.param(prefix, t, "attack_ms", g.attack_ms.as_ref()),
            hold_ms: self.param(prefix, t, "hold_ms", g.hold_ms.as_ref()),
            release_ms: self.param(prefix, t, "release_ms", g.release_ms.as_ref()),
        }
    }

    fn comp(&mut self, prefix: &str, c: &RawComp) -> Comp {
        let t = spec::COMP;
        Comp {
            threshold_db: self.param(prefix, t, "threshold_db", c.threshold_db.as_ref()),
            ratio: self.param(prefix, t, "ratio", c.ratio.as_ref()),
            knee_db: self.param(prefix, t, "knee_db", c.knee_db.as_ref()),
            attack_ms: self.param(prefix, t, "attack_ms", c.attack_ms.as_ref()),
            release_ms: self.param(prefix, t, "release_ms", c.release_ms.as_ref()),
            makeup_db: self.param(prefix, t, "makeup_db", c.makeup_db.as_ref()),
        }
    }

    fn saturation(&mut self, prefix: &str, s: &RawSaturation) -> Saturation {
        let t = spec::SATURATION;
        Saturation {
            drive_db: self.param(prefix, t, "drive_db", s.drive_db.as_ref()),
            mix: self.param(prefix, t, "mix", s.mix.as_ref()),
        }
    }

    fn reverb(&mut self, prefix: &str, r: &RawReverb) -> Reverb {
        let t = spec::REVERB;
        Reverb {
            decay_s: self.param(prefix, t, "decay_s", r.decay_s.as_ref()),
            predelay_ms: self.param(prefix, t, "predelay_ms", r.predelay_ms.as_ref()),
            damping: self.param(prefix, t, "damping", r.damping.as_ref()),
            size: self.param(prefix, t, "size", r.size.as_ref()),
        }
    }

    fn delay(&mut self, prefix: &str, d: &RawDelay) -> Delay {
        let t = spec::DELAY;
        Delay {
            time_ms: self.param(prefix, t, "time_ms", d.time_ms.as_ref()),
            feedback: self.param(prefix, t, "feedback", d.feedback.as_ref()),
            ping_pong: self.toggle(prefix, t, "ping_pong", d.ping_pong.as_ref()),
            lowcut_hz: self.param(prefix, t, "lowcut_hz", d.lowcut_hz.as_ref()),
            highcut_hz: self.param(prefix, t, "highcut_hz", d.highcut_hz.as_ref()),
        }
    }

    fn limiter(&mut self, prefix: &str, l: &RawLimiter) -> Limiter {
        let t = spec::LIMITER;
        Limiter {
            ceiling_dbtp: self.param(prefix, t, "ceiling_dbtp", l.ceiling_dbtp.as_ref()),
            release_ms: self.param(prefix, t, "release_ms", l.release_ms.as_ref()),
        }
    }

    /// `eq:` of a strip: at most `spec::EQ_BANDS` bands.
    fn eq(&mut self, prefix: &str, bands: Option<&Vec<Spanned<RawBand>>>) -> Vec<EqBand> {
        let Some(bands) = bands else {
            return Vec::new();
        };
        if let Some(extra) = bands.get(spec::EQ_BANDS) {
            self.err(
                &extra.referenced,
                format!(
                    "{prefix}/eq: {} bands given, at most {} allowed",
                    bands.len(),
                    spec::EQ_BANDS
                ),
            );
        }
        bands
            .iter()
            .take(spec::EQ_BANDS)
            .enumerate()
            .map(|(i, b)| self.band(&format!("{prefix}/eq/{}", i + 1), i, &b.value))
            .collect()
    }

    fn band(&mut self, prefix: &str, i: usize, b: &RawBand) -> EqBand {
        let t = spec::EQ_BAND;
        let type_spec = spec::get(t, "type");
        let mut type_value = type_spec.default;
        if let Some(k) = &b.kind {
            match spec::EQ_TYPES.iter().position(|n| *n == k.value) {
                Some(idx) => type_value = idx as f32,
                None => self.err(
                    &k.referenced,
                    format!(
                        "{prefix}/type: unknown type {:?}, expected one of {}",
                        k.value,
                        spec::EQ_TYPES.join(", ")
                    ),
                ),
            }
        }
        let freq = match &b.freq {
            Some(v) => {
                let s = spec::get(t, "freq");
                self.ranged(&format!("{prefix}/freq"), s, v)
                    .unwrap_or(spec::EQ_DEFAULT_FREQS[i])
            }
            None => spec::EQ_DEFAULT_FREQS[i],
        };
        EqBand {
            kind: eq_type_from_value(type_value),
            freq,
            gain_db: self.param(prefix, t, "gain_db", b.gain_db.as_ref()),
            q: self.param(prefix, t, "q", b.q.as_ref()),
        }
    }

    fn insert(&mut self, prefix: &str, ins: &RawInsert) -> Option<Insert> {
        let send = self.port(
            &format!("{prefix}/send"),
            &ins.send.value,
            &ins.send.referenced,
        );
        let ret = self.port(
            &format!("{prefix}/return"),
            &ins.ret.value,
            &ins.ret.referenced,
        );
        let latency = match &ins.latency {
            None => Some(InsertLatency::Auto),
            Some(l) => match &l.value {
                Scalar::Str(s) if s == "auto" => Some(InsertLatency::Auto),
                Scalar::Int(n) if u32::try_from(*n).is_ok() => {
                    Some(InsertLatency::Samples(*n as u32))
                }
                other => {
                    self.err(
                        &l.referenced,
                        format!(
                            "{prefix}/latency: expected auto or a whole number of samples, found {other}"
                        ),
                    );
                    None
                }
            },
        };
        let position = match &ins.position {
            None => Some(InsertPosition::default()),
            Some(p) => {
                let found = InsertPosition::NAMES
                    .iter()
                    .find(|(n, _)| *n == p.value)
                    .map(|(_, v)| *v);
                if found.is_none() {
                    self.err(
                        &p.referenced,
                        format!(
                            "{prefix}/position: expected pre_eq, post_dynamics or post_fader, found {:?}",
                            p.value
                        ),
                    );
                }
                found
            }
        };
        Some(Insert {
            send: send?,
            ret: ret?,
            latency: latency?,
            position: position?,
        })
    }

    // ---- routing -------------------------------------------------------------------------

    fn bus_index(&mut self, buses: &[Spanned<RawBus>]) -> BusIndex {
        let mut index = BusIndex {
            by_name: HashMap::new(),
            kinds: Vec::new(),
            names: Vec::new(),
        };
        let mut first_line = HashMap::new();
        for (i, b) in buses.iter().enumerate() {
            let name = &b.value.name;
            self.name("bus", name);
            if name.value == MASTER {
                self.err(
                    &name.referenced,
                    "bus name \"master\" is taken by the master bus",
                );
            }
            if let Some(line) = first_line.get(&name.value) {
                self.err(
                    &name.referenced,
                    format!("duplicate bus name {:?} (first at line {line})", name.value),
                );
            } else {
                first_line.insert(name.value.clone(), name.referenced.line());
                index.by_name.insert(name.value.clone(), i);
            }
            index.kinds.push(kind_of(b.value.kind));
            index.names.push(name.value.clone());
        }
        index
    }

    /// `output:` of a channel or bus: master or a group bus.
    fn output(
        &mut self,
        path: &str,
        v: Option<&Spanned<String>>,
        index: &BusIndex,
        own: Option<usize>,
    ) -> Output {
        let Some(v) = v else {
            return Output::Master;
        };
        if v.value == MASTER {
            return Output::Master;
        }
        match index.by_name.get(&v.value) {
            None => {
                self.err(
                    &v.referenced,
                    format!(
                        "{path}: unknown bus {:?} (group buses: {})",
                        v.value,
                        index.list(BusKind::Group)
                    ),
                );
                Output::Master
            }
            Some(&i) if Some(i) == own => {
                self.err(
                    &v.referenced,
                    format!("{path}: a bus cannot output to itself"),
                );
                Output::Master
            }
            Some(&i) if index.kinds[i] == BusKind::Aux => {
                self.err(
                    &v.referenced,
                    format!(
                        "{path}: {:?} is an aux bus; outputs go to master or a group bus (feed aux buses with sends)",
                        v.value
                    ),
                );
                Output::Master
            }
            Some(&i) => Output::Bus(i),
        }
    }

    fn sends(
        &mut self,
        prefix: &str,
        raw: Option<&Vec<Spanned<RawSend>>>,
        index: &BusIndex,
    ) -> Vec<Send> {
        let mut out: Vec<Send> = Vec::new();
        for s in raw.map(Vec::as_slice).unwrap_or_default() {
            let s = &s.value;
            let bus = &s.bus;
            let send_prefix = format!("{prefix}/sends/{}", bus.value);
            let level_db = self.param(&send_prefix, spec::SEND, "level_db", s.level_db.as_ref());
            let pre_fader =
                self.toggle(&send_prefix, spec::SEND, "pre_fader", s.pre_fader.as_ref());
            let Some(&bus_index) = index.by_name.get(&bus.value) else {
                self.err(
                    &bus.referenced,
                    format!(
                        "{prefix}/sends: unknown bus {:?} (aux buses: {})",
                        bus.value,
                        index.list(BusKind::Aux)
                    ),
                );
                continue;
            };
            if index.kinds[bus_index] != BusKind::Aux {
                self.err(
                    &bus.referenced,
                    format!(
                        "{prefix}/sends: {:?} is a group bus; sends go to aux buses (route to a group with output: {})",
                        bus.value, bus.value
                    ),
                );
                continue;
            }
            if out.iter().any(|o| o.bus_index == bus_index) {
                self.err(
                    &bus.referenced,
                    format!("{prefix}/sends: a second send to {:?}", bus.value),
                );
                continue;
            }
            out.push(Send {
                bus: bus.value.clone(),
                bus_index,
                level_db,
                pre_fader,
            });
        }
        out
    }

    // ---- strips --------------------------------------------------------------------------

    fn channels(&mut self, raw: &[Spanned<RawChannel>], index: &BusIndex) -> Vec<Channel> {
        let mut first_line: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, c) in raw.iter().enumerate() {
            let name = &c.value.name;
            self.name("channel", name);
            if let Some(line) = first_line.get(name.value.as_str()) {
                self.err(
                    &name.referenced,
                    format!(
                        "duplicate channel name {:?} (first at line {line})",
                        name.value
                    ),
                );
            } else {
                first_line.insert(&name.value, name.referenced.line());
            }
            out.push(self.channel(i, &c.value, index));
        }
        out
    }

    fn channel(&mut self, i: usize, c: &RawChannel, index: &BusIndex) -> Channel {
        let prefix = if c.name.value.is_empty() {
            format!("ch/{}", i + 1)
        } else {
            format!("ch/{}", c.name.value)
        };
        let p = prefix.as_str();
        let t = spec::STRIP;
        Channel {
            name: c.name.value.clone(),
            source: c
                .source
                .as_ref()
                .map_or(Source::None, |s| self.source(p, s)),
            trim_db: self.param(p, t, "trim_db", c.trim_db.as_ref()),
            invert: self.toggle(p, t, "invert", c.invert.as_ref()),
            delay_ms: self.param(p, t, "delay_ms", c.delay_ms.as_ref()),
            hpf: c
                .hpf
                .as_ref()
                .map(|f| self.pass(&format!("{p}/hpf"), spec::HPF, f)),
            lpf: c
                .lpf
                .as_ref()
                .map(|f| self.pass(&format!("{p}/lpf"), spec::LPF, f)),
            gate: c.gate.as_ref().map(|g| self.gate(&format!("{p}/gate"), g)),
            eq: self.eq(p, c.eq.as_ref()),
            comp: c.comp.as_ref().map(|x| self.comp(&format!("{p}/comp"), x)),
            saturation: c
                .saturation
                .as_ref()
                .map(|s| self.saturation(&format!("{p}/saturation"), s)),
            insert: c
                .insert
                .as_ref()
                .and_then(|x| self.insert(&format!("{p}/insert"), x)),
            pan: self.param(p, t, "pan", c.pan.as_ref()),
            fader_db: self.param(p, t, "fader_db", c.fader_db.as_ref()),
            mute: self.toggle(p, t, "mute", c.mute.as_ref()),
            solo: self.toggle(p, t, "solo", c.solo.as_ref()),
            solo_safe: self.toggle(p, t, "solo_safe", c.solo_safe.as_ref()),
            sends: self.sends(p, c.sends.as_ref(), index),
            output: self.output(&format!("{p}/output"), c.output.as_ref(), index, None),
            color: self.color(p, c.color.as_ref()),
        }
    }

    /// `color:` of a strip.
    fn color(&mut self, prefix: &str, v: Option<&Spanned<String>>) -> Option<Color> {
        let v = v?;
        let c = Color::from_name(&v.value);
        if c.is_none() {
            let names: Vec<&str> = Color::NAMES.iter().map(|(n, _)| *n).collect();
            self.err(
                &v.referenced,
                format!(
                    "{prefix}/color: {:?} is not a colour; use one of {}",
                    v.value,
                    names.join(", ")
                ),
            );
        }
        c
    }

    fn source(&mut self, prefix: &str, s: &Spanned<RawSource>) -> Source {
        let path = format!("{prefix}/source");
        match (&s.value.file, &s.value.input) {
            (Some(_), Some(_)) => {
                self.err(
                    &s.referenced,
                    format!("{path}: give either file or input, not both"),
                );
                Source::None
            }
            (None, None) => {
                self.err(&s.referenced, format!("{path}: expected file or input"));
                Source::None
            }
            (Some(f), None) => {
                if f.value.trim().is_empty() {
                    self.err(&f.referenced, format!("{path}/file: empty path"));
                    return Source::None;
                }
                let resolved = self.dir.join(&f.value);
                match std::fs::metadata(&resolved) {
                    Ok(m) if m.is_dir() => {
                        self.err(
                            &f.referenced,
                            format!("{path}/file: {} is a folder, not a stem file", f.value),
                        );
                        Source::None
                    }
                    Ok(_) => Source::File(resolved),
                    Err(e) => {
                        let why = if e.kind() == std::io::ErrorKind::NotFound {
                            String::new()
                        } else {
                            format!(" ({e})")
                        };
                        self.err(
                            &f.referenced,
                            format!("{path}/file: missing stem file {}{why}", f.value),
                        );
                        Source::None
                    }
                }
            }
            (None, Some(ports)) => self
                .ports(&format!("{path}/input"), ports, 1, 2)
                .map_or(Source::None, Source::Input),
        }
    }

    fn buses(&mut self, raw: &[Spanned<RawBus>], index: &BusIndex) -> Vec<Bus> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, b) in raw.iter().enumerate() {
            out.push(self.bus(i, &b.value, index));
        }
        self.cycles(raw, &out);
        out
    }

    fn bus(&mut self, i: usize, b: &RawBus, index: &BusIndex) -> Bus {
        let prefix = if b.name.value.is_empty() {
            format!("bus/{}", i + 1)
        } else {
            format!("bus/{}", b.name.value)
        };
        let p = prefix.as_str();
        let t = spec::BUS;
        let outputs = match &b.outputs {
            Some(o) => self
                .ports(&format!("{p}/outputs"), o, 2, 2)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if let (Some(o), Some(_)) = (&b.output, &b.outputs) {
            self.err(
                &o.referenced,
                format!(
                    "{p}/output: give either output (a bus) or outputs (interface outputs), not both"
                ),
            );
        }
        let fx = b.fx.as_ref();
        Bus {
            name: b.name.value.clone(),
            kind: kind_of(b.kind),
            eq: self.eq(p, b.eq.as_ref()),
            comp: b.comp.as_ref().map(|c| self.comp(&format!("{p}/comp"), c)),
            reverb: fx
                .and_then(|f| f.reverb.as_ref())
                .map(|r| self.reverb(&format!("{p}/fx/reverb"), r)),
            delay: fx
                .and_then(|f| f.delay.as_ref())
                .map(|d| self.delay(&format!("{p}/fx/delay"), d)),
            pan: self.param(p, t, "pan", b.pan.as_ref()),
            fader_db: self.param(p, t, "fader_db", b.fader_db.as_ref()),
            mute: self.toggle(p, t, "mute", b.mute.as_ref()),
            output: self.output(&format!("{p}/output"), b.output.as_ref(), index, Some(i)),
            outputs,
            insert: b
                .insert
                .as_ref()
                .and_then(|x| self.insert(&format!("{p}/insert"), x)),
            color: self.color(p, b.color.as_ref()),
        }
    }

    /// Reports each cycle of bus outputs once, at the `output:` value that closes it.
    fn cycles(&mut self, raw: &[Spanned<RawBus>], buses: &[Bus]) {
        const NEW: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; buses.len()];
        for start in 0..buses.len() {
            let mut path: Vec<usize> = Vec::new();
            let mut cur = start;
            loop {
                if state[cur] == DONE {
                    break;
                }
                if state[cur] == ON_PATH {
                    let from = path.iter().position(|&b| b == cur).unwrap_or(0);
                    let mut names: Vec<&str> = path[from..]
                        .iter()
                        .map(|&b| buses[b].name.as_str())
                        .collect();
                    names.push(buses[cur].name.as_str());
                    let last = path[path.len() - 1];
                    if let Some(o) = &raw[last].value.output {
                        self.err(
                            &o.referenced,
                            format!(
                                "bus/{}/output: routing cycle: {}",
                                buses[last].name,
                                names.join(" -> ")
                            ),
                        );
                    }
                    break;
                }
                state[cur] = ON_PATH;
                path.push(cur);
                match buses[cur].output {
                    Output::Bus(next) if next != cur && buses[cur].outputs.is_empty() => cur = next,
                    _ => break,
                }
            }
            for b in path {
                state[b] = DONE;
            }
        }
    }

    fn master(&mut self, raw: Option<&RawMaster>) -> Master {
        let p = "master";
        let default_outputs = DEFAULT_MASTER_OUTPUTS.map(PortRef::Number).to_vec();
        let Some(m) = raw else {
            return Master {
                eq: Vec::new(),
                comp: None,
                limiter: None,
                fader_db: spec::get(spec::MASTER, "fader_db").default,
                outputs: default_outputs,
                insert: None,
            };
        };
        Master {
            eq: self.eq(p, m.eq.as_ref()),
            comp: m.comp.as_ref().map(|c| self.comp("master/comp", c)),
            limiter: m
                .limiter
                .as_ref()
                .map(|l| self.limiter("master/limiter", l)),
            fader_db: self.param(p, spec::MASTER, "fader_db", m.fader_db.as_ref()),
            outputs: match &m.outputs {
                Some(o) => self
                    .ports("master/outputs", o, 2, 2)
                    .unwrap_or(default_outputs),
                None => default_outputs,
            },
            insert: m
                .insert
                .as_ref()
                .and_then(|x| self.insert("master/insert", x)),
        }
    }

    // ---- surfaces ------------------------------------------------------------------------

    fn surface(&mut self, i: usize, s: &Spanned<RawSurface>) -> Option<Surface> {
        let r = &s.value;
        let kind = match r.kind {
            RawSurfaceKind::Osc => "osc",
            RawSurfaceKind::Xair => "xair",
            RawSurfaceKind::Mcu => "mcu",
            RawSurfaceKind::MidiMap => "midi_map",
            RawSurfaceKind::Mtc => "mtc",
        };
        let p = format!("surfaces/{}", i + 1);
        let (net, mcu, map, mtc) = (
            matches!(r.kind, RawSurfaceKind::Osc | RawSurfaceKind::Xair),
            r.kind == RawSurfaceKind::Mcu,
            r.kind == RawSurfaceKind::MidiMap,
            r.kind == RawSurfaceKind::Mtc,
        );
        let fields: [(&str, Option<&Location>, bool); 10] = [
            ("profile", r.profile.as_ref().map(|v| &v.referenced), mcu),
            ("listen", r.listen.as_ref().map(|v| &v.referenced), net),
            ("allow", r.allow.as_ref().map(|v| &v.referenced), net),
            (
                "read_only",
                r.read_only.as_ref().map(|v| &v.referenced),
                net,
            ),
            (
                "rate_limit",
                r.rate_limit.as_ref().map(|v| &v.referenced),
                net,
            ),
            (
                "max_packet",
                r.max_packet.as_ref().map(|v| &v.referenced),
                net,
            ),
            (
                "feedback_hz",
                r.feedback_hz.as_ref().map(|v| &v.referenced),
                net,
            ),
            (
                "midi",
                r.midi.as_ref().map(|v| &v.referenced),
                mcu || map || mtc,
            ),
            (
                "extenders",
                r.extenders.as_ref().map(|v| &v.referenced),
                mcu,
            ),
            ("map", r.map.as_ref().map(|v| &v.referenced), map),
        ];
        for (key, at, applies) in fields {
            if let (Some(at), false) = (at, applies) {
                self.err(at, format!("{p}/{key}: not used by kind {kind}"));
            }
        }
        let missing = |cx: &mut Self, key: &str| {
            cx.err(&s.referenced, format!("{p}: kind {kind} needs {key}"));
        };
        match r.kind {
            RawSurfaceKind::Osc | RawSurfaceKind::Xair => {
                let listen = match (&r.listen, r.kind) {
                    (Some(l), _) => {
                        if l.value.parse::<SocketAddr>().is_err() {
                            self.err(
                                &l.referenced,
                                format!(
                                    "{p}/listen: {:?} is not an address:port like 127.0.0.1:9000",
                                    l.value
                                ),
                            );
                        }
                        l.value.clone()
                    }
                    (None, RawSurfaceKind::Xair) => DEFAULT_XAIR_LISTEN.to_owned(),
                    (None, _) => {
                        missing(self, "listen (an address:port like 127.0.0.1:9000)");
                        String::new()
                    }
                };
                let allow = match &r.allow {
                    Some(list) => self.cidrs(&format!("{p}/allow"), &list.value),
                    None => DEFAULT_ALLOW.iter().map(|s| s.to_string()).collect(),
                };
                let read_only = match &r.read_only {
                    Some(list) => self.cidrs(&format!("{p}/read_only"), &list.value),
                    None => Vec::new(),
                };
                let g = spec::NET_SURFACE;
                let rate_limit = self.whole(
                    &format!("{p}/rate_limit"),
                    spec::get(g, "rate_limit"),
                    r.rate_limit.as_ref(),
                ) as u32;
                let max_packet = self.whole(
                    &format!("{p}/max_packet"),
                    spec::get(g, "max_packet"),
                    r.max_packet.as_ref(),
                ) as usize;
                let feedback_hz = self.param(&p, g, "feedback_hz", r.feedback_hz.as_ref());
                let net = NetSurface {
                    listen,
                    allow,
                    read_only,
                    rate_limit,
                    max_packet,
                    feedback_hz,
                };
                Some(if r.kind == RawSurfaceKind::Osc {
                    Surface::Osc(net)
                } else {
                    Surface::Xair(net)
                })
            }
            RawSurfaceKind::Mcu => {
                let midi = match &r.midi {
                    Some(m) => self.transport(&format!("{p}/midi"), m),
                    None => {
                        missing(self, "midi (a MIDI port like \"alsa:X-Touch\")");
                        String::new()
                    }
                };
                let extenders = r
                    .extenders
                    .as_ref()
                    .map(|v| v.value.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|e| self.transport(&format!("{p}/extenders"), e))
                    .collect();
                let profile = match &r.profile {
                    None => "mcu-pro".to_string(),
                    Some(v) => self.mcu_profile(&format!("{p}/profile"), v),
                };
                Some(Surface::Mcu {
                    midi,
                    extenders,
                    profile,
                })
            }
            RawSurfaceKind::MidiMap => {
                let midi = match &r.midi {
                    Some(m) => self.transport(&format!("{p}/midi"), m),
                    None => {
                        missing(self, "midi (a MIDI port like \"alsa:nanoKONTROL2\")");
                        String::new()
                    }
                };
                let map = match &r.map {
                    Some(m) if !m.value.trim().is_empty() => {
                        let file = self.dir.join(&m.value);
                        // A mapping file that is there must be valid (an absent one is
                        // logged when the daemon starts the surface, which then stays off).
                        if file.is_file()
                            && let Err(e) = crate::midimap::load(&file)
                        {
                            for d in e.errors {
                                self.err(&m.referenced, format!("{p}/map: {d}"));
                            }
                        }
                        file
                    }
                    Some(m) => {
                        self.err(&m.referenced, format!("{p}/map: empty path"));
                        PathBuf::new()
                    }
                    None => {
                        missing(self, "map (a mapping file)");
                        PathBuf::new()
                    }
                };
                Some(Surface::MidiMap { map, midi })
            }
            RawSurfaceKind::Mtc => {
                let midi = match &r.midi {
                    Some(m) => self.transport(&format!("{p}/midi"), m),
                    None => {
                        missing(self, "midi (a MIDI port like \"alsa:MTC\")");
                        String::new()
                    }
                };
                Some(Surface::Mtc { midi })
            }
        }
    }

    /// An MCU profile: a shipped name, or a YAML file that parses as a profile.
    fn mcu_profile(&mut self, path: &str, v: &Spanned<String>) -> String {
        use crate::mcu::Profile;
        if Profile::builtin(&v.value).is_some() {
            return v.value.clone();
        }
        if v.value.ends_with(".yaml") || v.value.ends_with(".yml") {
            let file = self.dir.join(&v.value);
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    if let Err(e) = Profile::parse(&text, &file.display().to_string()) {
                        self.err(&v.referenced, format!("{path}: {e}"));
                    }
                }
                Err(e) => self.err(
                    &v.referenced,
                    format!("{path}: cannot read {}: {e}", file.display()),
                ),
            }
            return file.display().to_string();
        }
        let names: Vec<&str> = Profile::builtin_names().collect();
        self.err(
            &v.referenced,
            format!(
                "{path}: no profile {:?}; use one of {} or a .yaml file",
                v.value,
                names.join(", ")
            ),
        );
        v.value.clone()
    }

    /// A list of address ranges (`192.168.1.0/24`).
    fn cidrs(&mut self, path: &str, list: &[Spanned<String>]) -> Vec<String> {
        let mut out = Vec::new();
        for a in list {
            if !is_cidr(&a.value) {
                self.err(
                    &a.referenced,
                    format!(
                        "{path}: {:?} is not an address range like 192.168.1.0/24",
                        a.value
                    ),
                );
            }
            out.push(a.value.clone());
        }
        out
    }

    /// A MIDI transport string (SPEC §7): `alsa:NAME`, `jack:NAME`, `serial:/dev/X@BAUD`.
    fn transport(&mut self, path: &str, v: &Spanned<String>) -> String {
        let s = v.value.as_str();
        let ok = if let Some(rest) = s.strip_prefix("serial:") {
            rest.rsplit_once('@').is_some_and(|(dev, baud)| {
                !dev.is_empty() && baud.parse::<u32>().is_ok_and(|b| b > 0)
            })
        } else {
            ["alsa:", "jack:"]
                .iter()
                .any(|pre| s.strip_prefix(pre).is_some_and(|n| !n.is_empty()))
        };
        if !ok {
            self.err(
                &v.referenced,
                format!(
                    "{path}: {s:?} is not a MIDI port; use alsa:NAME, jack:NAME or serial:/dev/ttyX@BAUD"
                ),
            );
        }
        v.value.clone()
    }
}

/// `192.168.1.0/24`, `::1/128`.
fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(bits)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) else {
        return false;
    };
    bits <= if addr.is_ipv4() { 32 } else { 128 }
}
