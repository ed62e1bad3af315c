//! The engine of one mapping file: MIDI messages in → console changes; console changes out →
//! feedback messages for the device. Pure protocol logic over a [`ConsoleHandle`]; the task
//! in [`super::run`] feeds it from a port and sends what it queues.
//!
//! - Values: [`Transform::value`] maps control travel (0..1) onto a parameter through its
//!   taper (or linearly), range, inversion and curve; [`Transform::travel`] is its inverse,
//!   used for feedback, soft takeover and relative encoders.
//! - Soft takeover: an absolute control without feedback ([`Takeover::Pickup`]) does nothing
//!   until it reaches or crosses the parameter's current position; a change from anywhere else
//!   (or a bank move) drops it again. `jump` sets at once; `scale` moves the parameter towards
//!   the control in proportion until they meet.
//! - Echo: a change this surface made is not sent back (a fader or ring never fights its own
//!   move); the LED of a toggle button is set after its press, since the device cannot know
//!   the parameter's new state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{
    Action, Control, Encoding, Layer, MidiMap, Mode, STRIP, Source, Takeover, Target, Transform,
};
use crate::control::{Change, ConsoleHandle, ModeChange, Origin, Transport};
use crate::mcu::AutoMode;
use crate::midi::MidiEvent;
use crate::params::{ParamSpec, ParamTree};

impl Transform {
    fn finite_linear(&self, spec: &ParamSpec) -> Option<(f32, f32)> {
        if self.param_taper {
            return None;
        }
        let (a, b) = self.range.unwrap_or((spec.min, spec.max));
        (a.is_finite() && b.is_finite()).then_some((a, b))
    }

    /// Control travel (0..1) → parameter value.
    pub fn value(&self, spec: &ParamSpec, travel: f32) -> f32 {
        let mut t = if travel.is_nan() {
            0.0
        } else {
            travel.clamp(0.0, 1.0)
        };
        if self.invert {
            t = 1.0 - t;
        }
        t = t.powf(self.curve);
        if let Some((a, b)) = self.finite_linear(spec) {
            return spec.sanitize(a + t * (b - a));
        }
        match self.range {
            None => spec.from_normalized(t),
            Some((a, b)) => {
                let (na, nb) = (spec.to_normalized(a), spec.to_normalized(b));
                spec.from_normalized(na + t * (nb - na))
            }
        }
    }

    /// Parameter value → the control travel (0..1) that gives it (clamped to the range).
    pub fn travel(&self, spec: &ParamSpec, value: f32) -> f32 {
        let t = if let Some((a, b)) = self.finite_linear(spec) {
            (value - a) / (b - a)
        } else {
            match self.range {
                None => spec.to_normalized(value),
                Some((a, b)) => {
                    let (na, nb) = (spec.to_normalized(a), spec.to_normalized(b));
                    (spec.to_normalized(value) - na) / (nb - na)
                }
            }
        };
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let t = t.powf(1.0 / self.curve);
        if self.invert { 1.0 - t } else { t }
    }
}

/// Signed ticks of a relative encoder's 7-bit value.
pub fn decode_ticks(enc: Encoding, v: u8) -> i32 {
    let v = i32::from(v & 0x7F);
    match enc {
        Encoding::TwosComplement => {
            if v >= 64 {
                v - 128
            } else {
                v
            }
        }
        Encoding::SignMagnitude => {
            if v & 0x40 != 0 {
                -(v & 0x3F)
            } else {
                v & 0x3F
            }
        }
        Encoding::BinaryOffset => v - 64,
        Encoding::Inc => 1,
        Encoding::Dec => -1,
    }
}

/// One incoming value, in the forms every mode may want.
#[derive(Debug, Clone, Copy)]
struct Input {
    /// Absolute position 0..1.
    travel: f32,
    /// The 7-bit data byte (relative encoders).
    byte: u8,
    /// Button down.
    press: bool,
    /// Smallest step of the source (1/127, 1/16383).
    resolution: f32,
}

#[derive(Debug, Clone, Default)]
struct CtlState {
    /// Last travel the control reported.
    last: Option<f32>,
    /// Soft takeover: the control has caught the parameter.
    picked: bool,
    last_tick: Option<Instant>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Nrpn {
    number: u16,
    selected: bool,
    data_msb: u8,
    data_lsb: u8,
}

/// Where a feedback message goes, to drop repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FbKey {
    Cc(u8, u8),
    Note(u8, u8),
    Poly(u8, u8),
    Bend(u8),
    Nrpn(u8, u16),
}

/// The engine of one map on one device.
pub struct MapEngine {
    console: ConsoleHandle,
    origin: Origin,
    map: Arc<MidiMap>,
    tree: Arc<ParamTree>,
    /// Strip offset of the bank (0, bank_size, ...).
    bank: u32,
    shift: bool,
    state: Vec<CtlState>,
    /// The canonical path and spec each control drives in the current bank.
    resolved: Vec<Option<(String, &'static ParamSpec)>>,
    /// Last value of every controller, per channel (14-bit pairs combine them).
    cc_last: HashMap<(u8, u8), u8>,
    nrpn: [Nrpn; 16],
    sent: HashMap<FbKey, u16>,
    out: Vec<MidiEvent>,
}

impl MapEngine {
    pub fn new(console: ConsoleHandle, origin: Origin, map: Arc<MidiMap>) -> Self {
        let tree = console.tree();
        let mut e = MapEngine {
            console,
            origin,
            state: vec![CtlState::default(); map.controls.len()],
            resolved: Vec::new(),
            map,
            tree,
            bank: 0,
            shift: false,
            cc_last: HashMap::new(),
            nrpn: [Nrpn::default(); 16],
            sent: HashMap::new(),
            out: Vec::new(),
        };
        e.resolve();
        e
    }

    pub fn map(&self) -> &Arc<MidiMap> {
        &self.map
    }

    /// The strip offset of the current bank.
    pub fn bank(&self) -> u32 {
        self.bank
    }

    pub fn shift(&self) -> bool {
        self.shift
    }

    /// The automation mode of a strip (`ch/kick`), as the console keeps it: its fader's
    /// (asked by the fader's path, which the console resolves directly).
    pub fn auto_mode(&self, prefix: &str) -> AutoMode {
        self.console
            .automation(&format!("{prefix}/fader_db"))
            .unwrap_or_default()
    }

    /// Take the messages queued for the device.
    pub fn take_out(&mut self) -> Vec<MidiEvent> {
        std::mem::take(&mut self.out)
    }

    /// Swap in a new map (hot reload): state restarts, the bank stays, feedback is resent.
    pub fn set_map(&mut self, map: Arc<MidiMap>) {
        self.state = vec![CtlState::default(); map.controls.len()];
        self.map = map;
        self.shift = false;
        self.resolve();
        self.refresh();
    }

    /// The session was reloaded: resolve paths again and resend feedback.
    pub fn set_tree(&mut self, tree: Arc<ParamTree>) {
        self.tree = tree;
        let max = self.tree.channel_names().len() as u32;
        if self.bank >= max.max(1) {
            self.bank = 0;
        }
        self.resolve();
        self.refresh();
    }

    /// The device (re)connected: send the map's setup messages and every feedback value.
    pub fn connected(&mut self) {
        for m in &self.map.on_connect {
            let mut p = crate::midi::Parser::new();
            self.out.extend(p.parse(m));
        }
        self.sent.clear();
        self.refresh();
    }

    fn resolve(&mut self) {
        let bank = self.bank;
        self.resolved = self
            .map
            .controls
            .iter()
            .map(|c| match &c.target {
                Target::Param { path, .. } => {
                    let p = path.replace(STRIP, &(bank + c.strip).to_string());
                    let id = self.tree.resolve(&p)?;
                    let param = self.tree.get(id);
                    Some((param.path.clone(), param.spec))
                }
                Target::Action(_) => None,
            })
            .collect();
    }

    fn layer_active(&self, l: Layer) -> bool {
        match l {
            Layer::Base => !self.shift,
            Layer::Shift => self.shift,
        }
    }

    // ---- MIDI in --------------------------------------------------------------------------

    /// One message from the device.
    pub fn on_midi(&mut self, ev: MidiEvent, now: Instant) {
        match ev {
            MidiEvent::ControlChange {
                channel,
                controller,
                value,
            } => self.on_cc(channel, controller, value, now),
            MidiEvent::NoteOn {
                channel,
                note,
                velocity,
            } => self.button(channel, Source::Note(note), velocity, now),
            MidiEvent::NoteOff { channel, note, .. } => {
                self.button(channel, Source::Note(note), 0, now)
            }
            MidiEvent::PolyPressure {
                channel,
                note,
                pressure,
            } => self.button(channel, Source::Poly(note), pressure, now),
            MidiEvent::PitchBend { channel, value } => {
                let inp = Input {
                    travel: f32::from(value) / 16383.0,
                    byte: (value >> 7) as u8,
                    press: value > 0,
                    resolution: 1.0 / 16383.0,
                };
                self.dispatch(channel, |s| s == Source::PitchBend, inp, now);
            }
            MidiEvent::ProgramChange { channel, program } => {
                let idx = self.matching(channel, |s| s == Source::Program);
                for i in idx {
                    if let Target::Action(Action::ProgramScenes(names)) =
                        &self.map.controls[i].target
                    {
                        let name = names
                            .get(usize::from(program))
                            .cloned()
                            .unwrap_or_else(|| (u32::from(program) + 1).to_string());
                        if let Err(e) = self.console.scene_recall_sync(&name) {
                            tracing::warn!("MIDI map {}: program {program}: {e}", self.map.name);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn button(&mut self, channel: u8, source: Source, v: u8, now: Instant) {
        let inp = Input {
            travel: f32::from(v) / 127.0,
            byte: v,
            press: v > 0,
            resolution: 1.0 / 127.0,
        };
        self.dispatch(channel, |s| s == source, inp, now);
    }

    fn on_cc(&mut self, ch: u8, cc: u8, v: u8, now: Instant) {
        self.cc_last.insert((ch, cc), v);
        let n = &mut self.nrpn[usize::from(ch & 15)];
        match cc {
            99 => {
                n.number = (u16::from(v) << 7) | (n.number & 0x7F);
                n.selected = true;
            }
            98 => {
                n.number = (n.number & !0x7F) | u16::from(v);
                n.selected = true;
            }
            6 | 38 if n.selected => {
                if cc == 6 {
                    n.data_msb = v;
                } else {
                    n.data_lsb = v;
                }
                let (num, msb, lsb) = (n.number, n.data_msb, n.data_lsb);
                if cc == 6 {
                    let inp = Input {
                        travel: f32::from(msb) / 127.0,
                        byte: msb,
                        press: msb > 0,
                        resolution: 1.0 / 127.0,
                    };
                    self.dispatch(ch, |s| s == Source::Nrpn(num), inp, now);
                }
                let full = (u16::from(msb) << 7) | u16::from(lsb);
                let inp = Input {
                    travel: f32::from(full) / 16383.0,
                    byte: msb,
                    press: full > 0,
                    resolution: 1.0 / 16383.0,
                };
                self.dispatch(ch, |s| s == Source::Nrpn14(num), inp, now);
            }
            _ => {}
        }
        // 14-bit pairs: the MSB with the last LSB, the LSB with the last MSB.
        let (msb_cc, lsb_cc) = if cc < 32 {
            (cc, cc + 32)
        } else if cc < 64 {
            (cc - 32, cc)
        } else {
            (255, 255)
        };
        if msb_cc != 255 {
            let msb = *self.cc_last.get(&(ch, msb_cc)).unwrap_or(&0);
            let lsb = *self.cc_last.get(&(ch, lsb_cc)).unwrap_or(&0);
            let full = (u16::from(msb) << 7) | u16::from(lsb);
            let inp = Input {
                travel: f32::from(full) / 16383.0,
                byte: msb,
                press: full > 0,
                resolution: 1.0 / 16383.0,
            };
            self.dispatch(ch, |s| s == Source::Cc14(msb_cc), inp, now);
        }
        let inp = Input {
            travel: f32::from(v) / 127.0,
            byte: v,
            press: v > 0,
            resolution: 1.0 / 127.0,
        };
        self.dispatch(ch, |s| s == Source::Cc(cc), inp, now);
    }

    /// Controls listening to a message on `channel`: the shift layer's while shift is held
    /// (falling back to the base layer where the shift layer maps nothing), else the base's.
    fn matching(&self, channel: u8, is: impl Fn(Source) -> bool) -> Vec<usize> {
        let hits = |layer: Layer| -> Vec<usize> {
            self.map
                .controls
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.layer == layer && is(c.source) && c.channel.is_none_or(|ch| ch == channel)
                })
                .map(|(i, _)| i)
                .collect()
        };
        if self.shift {
            let s = hits(Layer::Shift);
            if !s.is_empty() {
                return s;
            }
        }
        hits(Layer::Base)
    }

    fn dispatch(&mut self, channel: u8, is: impl Fn(Source) -> bool, inp: Input, now: Instant) {
        for i in self.matching(channel, is) {
            self.apply(i, inp, now);
        }
    }

    fn apply(&mut self, i: usize, inp: Input, now: Instant) {
        let c = self.map.controls[i].clone();
        match &c.target {
            Target::Action(a) => self.action(&c, a, inp.press),
            Target::Param { xf, takeover, .. } => {
                let Some((path, spec)) = self.resolved[i].clone() else {
                    return;
                };
                let Ok(current) = self.console.get_sync(&path) else {
                    return;
                };
                let new = match c.mode {
                    Mode::Absolute => {
                        let takeover = if c.feedback {
                            Takeover::Jump
                        } else {
                            *takeover
                        };
                        self.absolute(i, xf, spec, current, inp, takeover)
                    }
                    Mode::Relative {
                        encoding,
                        step,
                        accel,
                        accel_ms,
                    } => {
                        let ticks = match encoding {
                            Encoding::Inc | Encoding::Dec if !inp.press => 0,
                            e => decode_ticks(e, inp.byte),
                        };
                        if ticks == 0 {
                            return;
                        }
                        let st = &mut self.state[i];
                        let fast = st.last_tick.is_some_and(|t| {
                            now.saturating_duration_since(t)
                                < Duration::from_millis(u64::from(accel_ms))
                        });
                        st.last_tick = Some(now);
                        let k = if fast { accel } else { 1.0 };
                        let t = xf.travel(spec, current) + ticks as f32 * step * k;
                        Some(xf.value(spec, t.clamp(0.0, 1.0)))
                    }
                    Mode::Toggle => {
                        if !inp.press {
                            return;
                        }
                        let on = xf.travel(spec, current) >= 0.5;
                        Some(xf.value(spec, if on { 0.0 } else { 1.0 }))
                    }
                    Mode::Momentary => Some(xf.value(spec, if inp.press { 1.0 } else { 0.0 })),
                };
                let Some(v) = new else { return };
                match self.console.set_sync(&path, v, self.origin) {
                    Ok(stored) => {
                        if matches!(c.mode, Mode::Toggle | Mode::Momentary) && c.feedback {
                            self.feedback(i, stored);
                        }
                    }
                    Err(e) => tracing::debug!("MIDI map {}: {path}: {e}", self.map.name),
                }
            }
        }
    }

    /// An absolute move with soft takeover: the value to set, if any.
    fn absolute(
        &mut self,
        i: usize,
        xf: &Transform,
        spec: &ParamSpec,
        current: f32,
        inp: Input,
        tk: Takeover,
    ) -> Option<f32> {
        let t = inp.travel;
        let st = &mut self.state[i];
        let last = st.last.replace(t);
        if tk == Takeover::Jump || st.picked {
            return Some(xf.value(spec, t));
        }
        let cur = xf.travel(spec, current);
        // Within one step of the parameter, or crossed it since the last report: caught.
        let tol = inp.resolution.max(0.5 / 127.0);
        let crossed = last.is_some_and(|l| (l - cur).signum() != (t - cur).signum());
        if (t - cur).abs() <= tol || crossed {
            st.picked = true;
            return Some(xf.value(spec, t));
        }
        match (tk, last) {
            (Takeover::Scale, Some(l)) if t != l => {
                let p = if t > l {
                    cur + (t - l) * (1.0 - cur) / (1.0 - l)
                } else {
                    cur - (l - t) * cur / l
                };
                Some(xf.value(spec, p.clamp(0.0, 1.0)))
            }
            _ => None,
        }
    }

    fn action(&mut self, c: &Control, a: &Action, press: bool) {
        match a {
            Action::Shift => {
                if self.shift != press {
                    self.shift = press;
                    self.refresh();
                }
            }
            _ if !press => {}
            Action::BankUp => {
                let n = self.tree.channel_names().len() as u32;
                if self.bank + self.map.bank_size < n {
                    self.bank += self.map.bank_size;
                    self.bank_moved();
                }
            }
            Action::BankDown => {
                if self.bank > 0 {
                    self.bank = self.bank.saturating_sub(self.map.bank_size);
                    self.bank_moved();
                }
            }
            Action::Play => self.transport(Transport::Play),
            Action::Stop => self.transport(Transport::Stop),
            Action::Scene(name) => {
                if let Err(e) = self.console.scene_recall_sync(name) {
                    tracing::warn!("MIDI map {}: {e}", self.map.name);
                }
            }
            Action::ProgramScenes(_) => {}
            Action::Automation(mode) => {
                let idx = (self.bank + c.strip - 1) as usize;
                if let Some(name) = self.tree.channel_names().get(idx) {
                    let prefix = format!("ch/{name}");
                    // Pressing the lit mode again turns automation off.
                    let new = if self.auto_mode(&prefix) == *mode {
                        AutoMode::Off
                    } else {
                        *mode
                    };
                    // The console keeps the mode for every surface (OSC queries it).
                    if let Err(e) = self.console.set_automation(&prefix, new) {
                        tracing::debug!("MIDI map {}: automation for {prefix}: {e}", self.map.name);
                    }
                    self.auto_leds(None);
                }
            }
        }
    }

    fn transport(&self, t: Transport) {
        if let Err(e) = self.console.transport(t) {
            tracing::warn!("MIDI map {}: {e}", self.map.name);
        }
    }

    fn bank_moved(&mut self) {
        tracing::debug!(
            "MIDI map {}: bank at strip {}",
            self.map.name,
            self.bank + 1
        );
        for s in &mut self.state {
            s.picked = false;
        }
        self.resolve();
        self.refresh();
    }

    // ---- console changes out --------------------------------------------------------------

    /// A change from the console: feedback for it, and soft takeover drops the controls on
    /// that parameter. Own changes are not echoed.
    pub fn on_change(&mut self, c: &Change) {
        if c.origin == self.origin {
            return;
        }
        for i in 0..self.map.controls.len() {
            let hit = self.resolved[i]
                .as_ref()
                .is_some_and(|(p, _)| **p == *c.path);
            if hit {
                self.state[i].picked = false;
                if self.layer_active(self.map.controls[i].layer) {
                    self.feedback(i, c.value);
                }
            }
        }
    }

    /// An automation mode set in the console (from any surface, this one included): the
    /// automation LEDs of that strip follow.
    pub fn on_mode_change(&mut self, c: &ModeChange) {
        self.auto_leds(Some(&c.path));
    }

    /// Set the LEDs of the active automation buttons from the console's modes (a strip's
    /// mode is its fader's); with `path`, only those of the strip whose fader that is.
    fn auto_leds(&mut self, path: Option<&str>) {
        for i in 0..self.map.controls.len() {
            let c = &self.map.controls[i];
            let Target::Action(Action::Automation(m)) = c.target else {
                continue;
            };
            if !c.feedback || !self.layer_active(c.layer) {
                continue;
            }
            let idx = (self.bank + c.strip - 1) as usize;
            let Some(prefix) = self
                .tree
                .channel_names()
                .get(idx)
                .map(|n| format!("ch/{n}"))
            else {
                continue;
            };
            // The LED shows the strip's fader's mode; other parameters' changes leave it.
            if path.is_some_and(|p| p != format!("{prefix}/fader_db")) {
                continue;
            }
            let on = m != AutoMode::Off && self.auto_mode(&prefix) == m;
            self.led(i, on);
        }
    }

    /// Resend the feedback of every active control (changed values only).
    pub fn refresh(&mut self) {
        for i in 0..self.map.controls.len() {
            let c = &self.map.controls[i];
            if !c.feedback || !self.layer_active(c.layer) {
                continue;
            }
            match (&c.target, &self.resolved[i]) {
                (Target::Param { .. }, Some((path, _))) => {
                    if let Ok(v) = self.console.get_sync(path) {
                        self.feedback(i, v);
                    }
                }
                (Target::Param { .. }, None) => self.led(i, false),
                (Target::Action(Action::Shift), _) => self.led(i, self.shift),
                _ => {}
            }
        }
        self.auto_leds(None);
    }

    fn feedback(&mut self, i: usize, value: f32) {
        let c = &self.map.controls[i];
        if !c.feedback {
            return;
        }
        let Some((_, spec)) = self.resolved[i] else {
            return;
        };
        let Target::Param { xf, .. } = &c.target else {
            return;
        };
        let t = xf.travel(spec, value);
        match c.mode {
            Mode::Toggle | Mode::Momentary => self.led(i, t >= 0.5),
            Mode::Absolute | Mode::Relative { .. } => self.position(i, t),
        }
    }

    fn chan(c: &Control) -> u8 {
        c.channel.unwrap_or(0)
    }

    fn led(&mut self, i: usize, on: bool) {
        let c = &self.map.controls[i];
        let v = if on { c.on } else { c.off };
        let ch = Self::chan(c);
        let (key, ev) = match c.source {
            Source::Note(n) => {
                let n = c.led.unwrap_or(n);
                (
                    FbKey::Note(ch, n),
                    MidiEvent::NoteOn {
                        channel: ch,
                        note: n,
                        velocity: v,
                    },
                )
            }
            Source::Poly(n) => {
                let n = c.led.unwrap_or(n);
                (
                    FbKey::Poly(ch, n),
                    MidiEvent::PolyPressure {
                        channel: ch,
                        note: n,
                        pressure: v,
                    },
                )
            }
            Source::Cc(n) => {
                let n = c.led.unwrap_or(n);
                (
                    FbKey::Cc(ch, n),
                    MidiEvent::ControlChange {
                        channel: ch,
                        controller: n,
                        value: v,
                    },
                )
            }
            _ => return,
        };
        self.emit(key, u16::from(v), vec![ev]);
    }

    /// A position (0..1) in the source's own format: motor faders, rings.
    fn position(&mut self, i: usize, t: f32) {
        let c = &self.map.controls[i];
        let ch = Self::chan(c);
        let v7 = (t * 127.0).round() as u8;
        let v14 = (t * 16383.0).round() as u16;
        let cc = |n: u8, v: u8| MidiEvent::ControlChange {
            channel: ch,
            controller: n,
            value: v,
        };
        let (key, val, evs) = match c.source {
            Source::Cc(n) => {
                let n = c.led.unwrap_or(n);
                (FbKey::Cc(ch, n), u16::from(v7), vec![cc(n, v7)])
            }
            Source::Cc14(n) => (
                FbKey::Cc(ch, n),
                v14,
                vec![cc(n, (v14 >> 7) as u8), cc(n + 32, (v14 & 0x7F) as u8)],
            ),
            Source::Nrpn(n) => (
                FbKey::Nrpn(ch, n),
                u16::from(v7),
                vec![cc(99, (n >> 7) as u8), cc(98, (n & 0x7F) as u8), cc(6, v7)],
            ),
            Source::Nrpn14(n) => (
                FbKey::Nrpn(ch, n),
                v14,
                vec![
                    cc(99, (n >> 7) as u8),
                    cc(98, (n & 0x7F) as u8),
                    cc(6, (v14 >> 7) as u8),
                    cc(38, (v14 & 0x7F) as u8),
                ],
            ),
            Source::PitchBend => (
                FbKey::Bend(ch),
                v14,
                vec![MidiEvent::PitchBend {
                    channel: ch,
                    value: v14,
                }],
            ),
            Source::Note(n) => {
                let n = c.led.unwrap_or(n);
                (
                    FbKey::Note(ch, n),
                    u16::from(v7),
                    vec![MidiEvent::NoteOn {
                        channel: ch,
                        note: n,
                        velocity: v7,
                    }],
                )
            }
            Source::Poly(n) => {
                let n = c.led.unwrap_or(n);
                (
                    FbKey::Poly(ch, n),
                    u16::from(v7),
                    vec![MidiEvent::PolyPressure {
                        channel: ch,
                        note: n,
                        pressure: v7,
                    }],
                )
            }
            Source::Program => return,
        };
        self.emit(key, val, evs);
    }

    fn emit(&mut self, key: FbKey, val: u16, evs: Vec<MidiEvent>) {
        if self.sent.get(&key) == Some(&val) {
            return;
        }
        self.sent.insert(key, val);
        self.out.extend(evs);
    }
}

#[cfg(test)]
mod tests;
