//! The MCU host as a state machine: MIDI from the units and changes from the console in,
//! bytes for the units out. No I/O here: [`super::run`] drives it.
//!
//! # How it stays in sync without loops
//! Everything the device shows (motor positions, LEDs, rings, LCD characters, meters) is
//! computed from the console's current values by [`McuHost::refresh`] and compared with what
//! was last sent to that unit; only differences go out. A unit that (re)connects has its
//! caches cleared, so the next refresh sends everything. Changes this host made itself come
//! back from the console tagged with its own [`Origin`] and are ignored (the device already
//! shows them: a moved fader is echoed at once with the exact position received).
//! The automation mode LEDs are read from the console's modes as well (no copy here), and
//! refreshed when the console broadcasts a mode change ([`McuHost::on_mode_change`]).
//!
//! # Motors
//! A touched fader is never driven. When released, it is driven once to the current value.
//! Other changes are sent at most every [`MOTOR_INTERVAL`] per fader (latest value wins), and
//! a position equal to the last one sent is not resent.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::profile::Profile;
use super::protocol::{
    self as p, LCD_CELL, MASTER_FADER_CHANNEL, RingMode, cc, note, parse_sysex, sysex, sysex_msg,
};
use crate::control::{Change, ConsoleHandle, ModeChange, Origin, Transport};
use crate::engine::Meters;
use crate::midi::MidiEvent;
use crate::params::{ParamTree, Unit};
use crate::session::model::Color;

/// Shortest time between two motor updates of one fader.
pub const MOTOR_INTERVAL: Duration = Duration::from_millis(10);
/// How long line 2 of the LCD shows the value being moved after the last move.
pub const VALUE_HOLD: Duration = Duration::from_millis(1500);
/// Shortest time between two LCD updates of one unit (text changes are coalesced; on DIN MIDI
/// every byte costs 320 µs and the motors come first).
pub const LCD_INTERVAL: Duration = Duration::from_millis(40);
/// How far REWIND / FAST FWD move the play position per press, in seconds.
pub const SHUTTLE_S: f64 = 5.0;
/// Control travel (0..1) per V-Pot tick.
pub const VPOT_STEP: f32 = 0.01;

/// Bytes for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub unit: usize,
    pub bytes: Vec<u8>,
}

/// What the V-Pots control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpotMode {
    Pan,
    /// Send level to the n-th send bus.
    Send(usize),
    /// Gain of EQ band n (0-based).
    EqGain(u8),
    /// Frequency of EQ band n (0-based).
    EqFreq(u8),
}

/// Automation mode of a strip as set from the MCU's buttons: the console's own
/// [`crate::automation::Mode`], under the name the surfaces have used for it.
pub use crate::automation::Mode as AutoMode;

/// One strip the MCU can show: a channel or a bus.
#[derive(Debug, Clone)]
struct StripRef {
    /// `ch/kick` or `bus/drums`.
    prefix: String,
    name: String,
    /// Index into `Meters::channels` or `Meters::buses`.
    meter: MeterRef,
    /// X-Touch colour code (0 off, 1 red, 2 green, 3 yellow, 4 blue, 5 magenta, 6 cyan,
    /// 7 white).
    colour: u8,
}

/// The scribble-strip colour of a strip: its session colour, else white for channels and
/// cyan for buses.
fn colour_code(c: Option<Color>, bus: bool) -> u8 {
    match c {
        Some(Color::Red) => 1,
        Some(Color::Green) => 2,
        Some(Color::Yellow) => 3,
        Some(Color::Blue) => 4,
        Some(Color::Magenta) => 5,
        Some(Color::Cyan) => 6,
        Some(Color::White) => 7,
        None if bus => 6,
        None => 7,
    }
}

#[derive(Debug, Clone, Copy)]
enum MeterRef {
    Channel(usize),
    Bus(usize),
}

#[derive(Debug, Clone, Default)]
struct Fader {
    touched: bool,
    sent: Option<u16>,
    pending: Option<u16>,
    last_sent: Option<Instant>,
}

#[derive(Debug, Clone)]
struct UnitState {
    device_id: u8,
    connected: bool,
    faders: Vec<Fader>,
    /// Main unit only.
    master: Fader,
    rings: Vec<Option<u8>>,
    leds: HashMap<u8, u8>,
    meters: Vec<u8>,
    /// LCD characters last sent (2 lines); `None` until first sent.
    lcd: Option<Vec<u8>>,
    /// When the LCD was last written, and whether it may be out of date since.
    lcd_sent_at: Option<Instant>,
    lcd_dirty: bool,
    colours: Option<Vec<u8>>,
    timecode: [Option<u8>; 10],
    /// Line 2 shows this instead of the default until the instant.
    value_line: Vec<Option<(String, Instant)>>,
}

impl UnitState {
    fn new(device_id: u8, strips: usize, lcd_width: usize) -> Self {
        let _ = lcd_width;
        UnitState {
            device_id,
            connected: false,
            faders: vec![Fader::default(); strips],
            master: Fader::default(),
            rings: vec![None; strips],
            leds: HashMap::new(),
            meters: vec![0; strips],
            lcd: None,
            lcd_sent_at: None,
            lcd_dirty: false,
            colours: None,
            timecode: [None; 10],
            value_line: vec![None; strips],
        }
    }

    /// Forget everything sent: the next refresh resends the full state.
    fn forget(&mut self) {
        let n = self.faders.len();
        for f in &mut self.faders {
            f.sent = None;
            f.pending = None;
            f.last_sent = None;
        }
        self.master.sent = None;
        self.master.pending = None;
        self.master.last_sent = None;
        self.rings = vec![None; n];
        self.leds.clear();
        self.meters = vec![0; n];
        self.lcd = None;
        self.lcd_sent_at = None;
        self.colours = None;
        self.timecode = [None; 10];
    }
}

/// The MCU host for one main unit and its extenders.
pub struct McuHost {
    console: ConsoleHandle,
    origin: Origin,
    profile: Profile,
    units: Vec<UnitState>,
    strips: Vec<StripRef>,
    /// Bus names that channels send to, in bus order.
    send_buses: Vec<String>,
    bank: usize,
    mode: VpotMode,
    flip: bool,
    selected: BTreeSet<String>,
    armed: BTreeSet<String>,
    /// Play position from the last meter snapshot, in seconds.
    position_s: f64,
    out: Vec<Out>,
}

fn pitch_bend(channel: u8, value: u16) -> Vec<u8> {
    vec![
        0xE0 | (channel & 0x0F),
        (value & 0x7F) as u8,
        ((value >> 7) & 0x7F) as u8,
    ]
}

/// A value as the 7 characters of an LCD cell.
pub fn format_value(unit: Unit, key: &str, v: f32) -> String {
    match unit {
        Unit::Pan => {
            let pct = (v * 100.0).round() as i32;
            match pct {
                0 => "C".into(),
                p if p < 0 => format!("L{}", -p),
                p => format!("R{p}"),
            }
        }
        Unit::Bool => if v >= 0.5 { "on" } else { "off" }.into(),
        Unit::Hz if v >= 1000.0 => format!("{:.2}k", v / 1000.0),
        Unit::Hz => format!("{v:.0}"),
        Unit::Db if v == f32::NEG_INFINITY => "-inf".into(),
        Unit::Db if key.ends_with("fader_db") || key.ends_with("level_db") => {
            format!("{v:+.1}")
        }
        _ => format!("{v:.1}"),
    }
}

/// `text` fitted into one LCD cell: at most 6 characters and a space, ASCII only.
fn cell(text: &str) -> [u8; LCD_CELL] {
    let mut c = [b' '; LCD_CELL];
    for (slot, ch) in c.iter_mut().take(LCD_CELL - 1).zip(text.chars()) {
        *slot = if ch.is_ascii() && !ch.is_ascii_control() {
            ch as u8
        } else {
            b'?'
        };
    }
    c
}

impl McuHost {
    /// A host for `units` units (the first is the main unit, the rest extenders in order).
    pub fn new(console: ConsoleHandle, origin: Origin, profile: Profile, units: usize) -> Self {
        let mut h = McuHost {
            console,
            origin,
            units: (0..units.max(1))
                .map(|i| {
                    let id = if i == 0 {
                        profile.device_id
                    } else {
                        profile.extender_id
                    };
                    UnitState::new(id, profile.strips, profile.lcd_width)
                })
                .collect(),
            profile,
            strips: Vec::new(),
            send_buses: Vec::new(),
            bank: 0,
            mode: VpotMode::Pan,
            flip: false,
            selected: BTreeSet::new(),
            armed: BTreeSet::new(),
            position_s: 0.0,
            out: Vec::new(),
        };
        h.rebuild(&h.console.tree());
        h
    }

    /// Take the bytes produced so far.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// The first strip shown (0-based).
    pub fn bank(&self) -> usize {
        self.bank
    }

    pub fn mode(&self) -> VpotMode {
        self.mode
    }

    /// The automation mode of a strip (`ch/kick`), as the console keeps it: its fader's
    /// (asked by the fader's path, which the console resolves directly).
    pub fn auto_mode(&self, prefix: &str) -> AutoMode {
        self.console
            .automation(&format!("{prefix}/fader_db"))
            .unwrap_or_default()
    }

    /// Re-read the strip list (after a reload).
    pub fn rebuild(&mut self, tree: &Arc<ParamTree>) {
        let mut strips: Vec<StripRef> = tree
            .channel_names()
            .iter()
            .enumerate()
            .map(|(i, n)| StripRef {
                prefix: format!("ch/{n}"),
                name: n.clone(),
                meter: MeterRef::Channel(i),
                colour: colour_code(tree.channel_colors().get(i).copied().flatten(), false),
            })
            .collect();
        strips.extend(tree.bus_names().iter().enumerate().map(|(i, n)| StripRef {
            prefix: format!("bus/{n}"),
            name: n.clone(),
            meter: MeterRef::Bus(i),
            colour: colour_code(tree.bus_colors().get(i).copied().flatten(), true),
        }));
        self.send_buses = tree
            .bus_names()
            .iter()
            .filter(|b| {
                tree.channel_names().iter().any(|c| {
                    tree.resolve(&format!("ch/{c}/sends/{b}/level_db"))
                        .is_some()
                })
            })
            .cloned()
            .collect();
        self.strips = strips;
        self.bank = self.bank.min(self.max_bank());
        if let VpotMode::Send(i) = self.mode
            && i >= self.send_buses.len()
        {
            self.mode = VpotMode::Pan;
        }
    }

    fn slots(&self) -> usize {
        self.units.len() * self.profile.strips
    }

    fn max_bank(&self) -> usize {
        self.strips.len().saturating_sub(self.slots())
    }

    /// The strip shown on (unit, slot).
    fn strip_at(&self, unit: usize, slot: usize) -> Option<&StripRef> {
        self.strips
            .get(self.bank + unit * self.profile.strips + slot)
    }

    fn fader_path(&self, s: &StripRef) -> String {
        format!("{}/fader_db", s.prefix)
    }

    /// The parameter the V-Pot of a strip controls in the current mode (None: nothing there).
    fn vpot_path(&self, s: &StripRef) -> Option<String> {
        let path = match self.mode {
            VpotMode::Pan => format!("{}/pan", s.prefix),
            VpotMode::Send(i) => format!("{}/sends/{}/level_db", s.prefix, self.send_buses.get(i)?),
            VpotMode::EqGain(b) => format!("{}/eq/{}/gain_db", s.prefix, b + 1),
            VpotMode::EqFreq(b) => format!("{}/eq/{}/freq", s.prefix, b + 1),
        };
        self.console.tree().resolve(&path).map(|_| path)
    }

    /// (path the fader moves, path the V-Pot turns), after flip.
    fn controls(&self, s: &StripRef) -> (Option<String>, Option<String>) {
        let f = Some(self.fader_path(s));
        let v = self.vpot_path(s);
        if self.flip { (v, f) } else { (f, v) }
    }

    fn ring_mode(&self) -> RingMode {
        match (self.flip, self.mode) {
            (true, _) => RingMode::Wrap,
            (_, VpotMode::Pan) => RingMode::Dot,
            (_, VpotMode::Send(_)) => RingMode::Wrap,
            (_, VpotMode::EqGain(_)) => RingMode::BoostCut,
            (_, VpotMode::EqFreq(_)) => RingMode::Wrap,
        }
    }

    fn normalized(&self, path: &str) -> Option<f32> {
        let tree = self.console.tree();
        let id = tree.resolve(path)?;
        let v = self.console.get_sync(path).ok()?;
        Some(tree.get(id).spec.to_normalized(v))
    }

    fn set_normalized(&self, path: &str, n: f32) -> Option<f32> {
        let tree = self.console.tree();
        let id = tree.resolve(path)?;
        let v = tree.get(id).spec.from_normalized(n.clamp(0.0, 1.0));
        self.console.set_sync(path, v, self.origin).ok()
    }

    fn value_text(&self, path: &str) -> String {
        let tree = self.console.tree();
        match (tree.resolve(path), self.console.get_sync(path)) {
            (Some(id), Ok(v)) => {
                let spec = tree.get(id).spec;
                format_value(spec.unit, path, v)
            }
            _ => String::new(),
        }
    }

    fn to_pos(&self, n: f32) -> u16 {
        (n.clamp(0.0, 1.0) * f32::from(self.profile.fader_max)).round() as u16
    }

    // ---- connection ---------------------------------------------------------------------

    /// A unit's port connected: query it and send everything.
    pub fn connected(&mut self, unit: usize, now: Instant) {
        let Some(u) = self.units.get_mut(unit) else {
            return;
        };
        u.connected = true;
        u.forget();
        let id = u.device_id;
        self.out.push(Out {
            unit,
            bytes: sysex_msg(id, sysex::DEVICE_QUERY, &[]),
        });
        self.refresh(now);
    }

    pub fn disconnected(&mut self, unit: usize) {
        if let Some(u) = self.units.get_mut(unit) {
            u.connected = false;
            // Whatever it had touched is released.
            for (slot, f) in u.faders.iter_mut().enumerate() {
                if std::mem::take(&mut f.touched) {
                    let _ = slot;
                }
            }
            u.master.touched = false;
        }
        self.release_all_touches(unit);
    }

    fn release_all_touches(&mut self, unit: usize) {
        for slot in 0..self.profile.strips {
            if let Some(s) = self.strip_at(unit, slot).cloned()
                && let (Some(f), _) = self.controls(&s)
            {
                let _ = self.console.touch_sync(&f, false, self.origin);
            }
        }
        if unit == 0 {
            let _ = self
                .console
                .touch_sync("master/fader_db", false, self.origin);
        }
    }

    // ---- input --------------------------------------------------------------------------

    /// One MIDI message from a unit.
    pub fn on_midi(&mut self, unit: usize, ev: MidiEvent, now: Instant) {
        if unit >= self.units.len() {
            return;
        }
        match ev {
            MidiEvent::SysEx(payload) => self.on_sysex(unit, &payload, now),
            MidiEvent::PitchBend { channel, value } => self.on_fader(unit, channel, value, now),
            MidiEvent::NoteOn { note, velocity, .. } => {
                self.on_button(unit, note, velocity > 0, now)
            }
            MidiEvent::NoteOff { note, .. } => self.on_button(unit, note, false, now),
            MidiEvent::ControlChange {
                controller, value, ..
            } => {
                let strips = self.profile.strips as u8;
                if (cc::VPOT..cc::VPOT + strips).contains(&controller) {
                    let ticks = i32::from(value & 0x3F);
                    let ticks = if value & 0x40 != 0 { -ticks } else { ticks };
                    self.on_vpot(unit, usize::from(controller - cc::VPOT), ticks, now);
                }
            }
            _ => {}
        }
    }

    fn on_sysex(&mut self, unit: usize, payload: &[u8], now: Instant) {
        let Some((_device, cmd, data)) = parse_sysex(payload) else {
            return;
        };
        let id = self.units[unit].device_id;
        match cmd {
            sysex::HOST_CONNECTION_QUERY if data.len() >= 11 => {
                let serial = &data[..7];
                let challenge = [data[7], data[8], data[9], data[10]];
                let mut reply = serial.to_vec();
                reply.extend_from_slice(&p::challenge_response(challenge));
                self.out.push(Out {
                    unit,
                    bytes: sysex_msg(id, sysex::HOST_CONNECTION_REPLY, &reply),
                });
            }
            sysex::CONNECTION_CONFIRMATION => {
                tracing::info!("MCU unit {}: connection confirmed", unit + 1);
                self.units[unit].forget();
                self.refresh(now);
            }
            sysex::CONNECTION_ERROR => {
                tracing::warn!("MCU unit {}: the device refused the connection", unit + 1);
            }
            _ => {}
        }
    }

    fn on_fader(&mut self, unit: usize, channel: u8, value: u16, now: Instant) {
        let n = f32::from(value) / f32::from(self.profile.fader_max);
        if channel == MASTER_FADER_CHANNEL && unit == 0 {
            self.set_normalized("master/fader_db", n);
            let u = &mut self.units[0];
            u.master.sent = Some(value);
            u.master.last_sent = Some(now);
            self.out.push(Out {
                unit,
                bytes: pitch_bend(channel, value),
            });
            return;
        }
        let slot = usize::from(channel);
        if slot >= self.profile.strips {
            return;
        }
        let Some(s) = self.strip_at(unit, slot).cloned() else {
            return;
        };
        let (Some(path), _) = self.controls(&s) else {
            return;
        };
        self.set_normalized(&path, n);
        // Echo the exact position: the motor returns to the last position it received.
        let f = &mut self.units[unit].faders[slot];
        f.sent = Some(value);
        f.pending = None;
        f.last_sent = Some(now);
        self.out.push(Out {
            unit,
            bytes: pitch_bend(channel, value),
        });
        let text = self.value_text(&path);
        self.units[unit].value_line[slot] = Some((text, now + VALUE_HOLD));
        self.refresh(now);
    }

    fn on_vpot(&mut self, unit: usize, slot: usize, ticks: i32, now: Instant) {
        let Some(s) = self.strip_at(unit, slot).cloned() else {
            return;
        };
        let (_, Some(path)) = self.controls(&s) else {
            return;
        };
        let Some(n) = self.normalized(&path) else {
            return;
        };
        self.set_normalized(&path, n + ticks as f32 * VPOT_STEP);
        let text = self.value_text(&path);
        self.units[unit].value_line[slot] = Some((text, now + VALUE_HOLD));
        self.refresh(now);
    }

    fn toggle(&self, path: &str) {
        if let Ok(v) = self.console.get_sync(path) {
            let _ = self
                .console
                .set_sync(path, if v >= 0.5 { 0.0 } else { 1.0 }, self.origin);
        }
    }

    fn on_button(&mut self, unit: usize, n: u8, pressed: bool, now: Instant) {
        let strips = self.profile.strips as u8;
        let slot_of = |base: u8| {
            (base..base + strips)
                .contains(&n)
                .then(|| usize::from(n - base))
        };
        // Fader touch: press and release both matter.
        if let Some(slot) = slot_of(note::FADER_TOUCH) {
            self.on_touch(unit, slot, pressed, now);
            return;
        }
        if n == note::MASTER_TOUCH && unit == 0 {
            self.units[0].master.touched = pressed;
            let _ = self
                .console
                .touch_sync("master/fader_db", pressed, self.origin);
            if !pressed {
                self.refresh(now);
            }
            return;
        }
        if !pressed {
            return;
        }
        let strip = |h: &Self, slot: usize| h.strip_at(unit, slot).cloned();
        if let Some(slot) = slot_of(note::MUTE) {
            if let Some(s) = strip(self, slot) {
                self.toggle(&format!("{}/mute", s.prefix));
            }
        } else if let Some(slot) = slot_of(note::SOLO) {
            if let Some(s) = strip(self, slot) {
                self.toggle(&format!("{}/solo", s.prefix));
            }
        } else if let Some(slot) = slot_of(note::REC) {
            if let Some(s) = strip(self, slot)
                && !self.armed.remove(&s.prefix)
            {
                self.armed.insert(s.prefix);
            }
        } else if let Some(slot) = slot_of(note::SELECT) {
            if let Some(s) = strip(self, slot)
                && !self.selected.remove(&s.prefix)
            {
                self.selected.insert(s.prefix);
            }
        } else if let Some(slot) = slot_of(note::VPOT_PUSH) {
            // Push: back to the parameter's default (pan centre, 0 dB, ...).
            if let Some(s) = strip(self, slot)
                && let (_, Some(path)) = self.controls(&s)
            {
                let tree = self.console.tree();
                if let Some(id) = tree.resolve(&path) {
                    let d = tree.get(id).spec.default;
                    let _ = self.console.set_sync(&path, d, self.origin);
                    let text = self.value_text(&path);
                    self.units[unit].value_line[slot] = Some((text, now + VALUE_HOLD));
                }
            }
        } else {
            let step = self.slots();
            match n {
                note::BANK_LEFT => self.bank = self.bank.saturating_sub(step),
                note::BANK_RIGHT => self.bank = (self.bank + step).min(self.max_bank()),
                note::CHANNEL_LEFT => self.bank = self.bank.saturating_sub(1),
                note::CHANNEL_RIGHT => self.bank = (self.bank + 1).min(self.max_bank()),
                note::FLIP => self.flip = !self.flip,
                note::PLAY => self.transport(Transport::Play),
                note::STOP => self.transport(Transport::Stop),
                note::REWIND => {
                    let to = (self.position_s - SHUTTLE_S).max(0.0);
                    self.transport(Transport::Locate(to as f32));
                }
                note::FAST_FORWARD => {
                    let to = self.position_s + SHUTTLE_S;
                    self.transport(Transport::Locate(to as f32));
                }
                note::ASSIGN_PAN => self.mode = VpotMode::Pan,
                note::ASSIGN_SEND => {
                    if !self.send_buses.is_empty() {
                        self.mode = match self.mode {
                            VpotMode::Send(i) => VpotMode::Send((i + 1) % self.send_buses.len()),
                            _ => VpotMode::Send(0),
                        };
                    }
                }
                // EQ: band 1 gain, band 1 freq, band 2 gain, ... (PLUG-IN goes straight to
                // the frequency of the current band).
                note::ASSIGN_EQ => {
                    self.mode = match self.mode {
                        VpotMode::EqGain(b) => VpotMode::EqFreq(b),
                        VpotMode::EqFreq(b) => VpotMode::EqGain((b + 1) % 4),
                        _ => VpotMode::EqGain(0),
                    };
                }
                note::ASSIGN_PLUGIN => {
                    self.mode = match self.mode {
                        VpotMode::EqGain(b) | VpotMode::EqFreq(b) => VpotMode::EqFreq(b),
                        _ => VpotMode::EqFreq(0),
                    };
                }
                note::AUTO_READ
                | note::AUTO_WRITE
                | note::AUTO_TRIM
                | note::AUTO_TOUCH
                | note::AUTO_LATCH => {
                    let mode = match n {
                        note::AUTO_READ => AutoMode::Read,
                        note::AUTO_WRITE => AutoMode::Write,
                        note::AUTO_TRIM => AutoMode::Trim,
                        note::AUTO_TOUCH => AutoMode::Touch,
                        _ => AutoMode::Latch,
                    };
                    for s in self.selected.clone() {
                        // Pressing the lit mode again turns automation off.
                        let next = if self.auto_mode(&s) == mode {
                            AutoMode::Off
                        } else {
                            mode
                        };
                        // The console keeps the mode for every surface (OSC queries it).
                        if let Err(e) = self.console.set_automation(&s, next) {
                            tracing::debug!("MCU automation mode for {s}: {e}");
                        }
                    }
                }
                _ => return,
            }
        }
        self.refresh(now);
    }

    fn transport(&mut self, cmd: Transport) {
        if let Err(e) = self.console.transport(cmd) {
            tracing::info!("MCU transport: {e}");
        }
        if let Transport::Locate(s) = cmd {
            self.position_s = f64::from(s);
        }
    }

    fn transport_leds(&mut self) {
        if !self.units[0].connected {
            return;
        }
        let playing = self.console.playing();
        self.led(0, note::PLAY, if playing { 0x7F } else { 0 });
        self.led(0, note::STOP, if playing { 0 } else { 0x7F });
    }

    fn on_touch(&mut self, unit: usize, slot: usize, touched: bool, now: Instant) {
        if slot >= self.units[unit].faders.len() {
            return;
        }
        self.units[unit].faders[slot].touched = touched;
        if let Some(s) = self.strip_at(unit, slot).cloned()
            && let (Some(path), _) = self.controls(&s)
        {
            let _ = self.console.touch_sync(&path, touched, self.origin);
            if touched {
                let text = self.value_text(&path);
                self.units[unit].value_line[slot] = Some((text, now + VALUE_HOLD));
            }
        }
        if !touched {
            // Drive once to the current value (it may have changed meanwhile).
            self.units[unit].faders[slot].last_sent = None;
        }
        self.refresh(now);
    }

    /// A change stored in the console.
    pub fn on_change(&mut self, c: &Change, now: Instant) {
        if c.origin == self.origin {
            return;
        }
        self.refresh(now);
    }

    /// An automation mode set in the console (from any surface, this one included): the
    /// mode LEDs show the selected strip's mode (its fader's).
    pub fn on_mode_change(&mut self, c: &ModeChange) {
        // The LEDs show the fader's mode: a strip-wide set sends one change per parameter,
        // and only the fader's matters here.
        let shown = self.selected.iter().next().is_some_and(|s| {
            c.path
                .strip_prefix(s.as_str())
                .is_some_and(|r| r == "/fader_db")
        });
        if shown {
            self.auto_leds();
        }
    }

    /// The Read/Write/Trim/Touch/Latch LEDs: the mode of the first selected strip.
    fn auto_leds(&mut self) {
        if !self.units[0].connected {
            return;
        }
        let on = |b: bool| if b { 0x7F } else { 0x00 };
        let am = self
            .selected
            .iter()
            .next()
            .map_or(AutoMode::Off, |s| self.auto_mode(s));
        for (n, mode) in [
            (note::AUTO_READ, AutoMode::Read),
            (note::AUTO_WRITE, AutoMode::Write),
            (note::AUTO_TRIM, AutoMode::Trim),
            (note::AUTO_TOUCH, AutoMode::Touch),
            (note::AUTO_LATCH, AutoMode::Latch),
        ] {
            self.led(0, n, on(am == mode));
        }
    }

    /// Meters from the engine: channel pressure per visible strip, timecode from position.
    pub fn on_meters(&mut self, m: &Meters, sample_rate: u32) {
        for unit in 0..self.units.len() {
            if !self.units[unit].connected {
                continue;
            }
            for slot in 0..self.profile.strips {
                let level = match self.strip_at(unit, slot).map(|s| s.meter) {
                    Some(MeterRef::Channel(i)) => m.channels.get(i),
                    Some(MeterRef::Bus(i)) => m.buses.get(i),
                    None => None,
                }
                .map_or(0, |sm| p::meter_level(sm.peak_db[0].max(sm.peak_db[1])));
                // The device lets meters fall by itself; resend any lit level.
                if level > 0 || self.units[unit].meters[slot] > 0 {
                    self.out.push(Out {
                        unit,
                        bytes: vec![0xD0, p::meter_value(slot as u8, level)],
                    });
                }
                self.units[unit].meters[slot] = level;
            }
        }
        self.timecode(m.position, sample_rate);
        if sample_rate > 0 {
            self.position_s = m.position as f64 / f64::from(sample_rate);
        }
        self.transport_leds();
    }

    /// Position on the main unit's display: hours (3), minutes, seconds, milliseconds (3).
    fn timecode(&mut self, position: u64, sample_rate: u32) {
        if !self.units[0].connected || sample_rate == 0 {
            return;
        }
        let ms = position * 1000 / u64::from(sample_rate);
        let text = format!(
            "{:>3}{:02}{:02}{:03}",
            (ms / 3_600_000) % 1000,
            (ms / 60_000) % 60,
            (ms / 1000) % 60,
            ms % 1000
        );
        let chars: Vec<char> = text.chars().collect();
        for (i, ch) in chars.iter().rev().enumerate().take(10) {
            // Dots after hours, minutes and seconds.
            let dot = matches!(i, 3 | 5 | 7);
            let v = p::display_char(*ch, dot);
            if self.units[0].timecode[i] != Some(v) {
                self.units[0].timecode[i] = Some(v);
                self.out.push(Out {
                    unit: 0,
                    bytes: vec![0xB0, cc::TIMECODE + i as u8, v],
                });
            }
        }
    }

    /// Flush motor updates held back by the rate limit and expire value lines.
    pub fn tick(&mut self, now: Instant) {
        let mut any = false;
        for u in &self.units {
            any |= u.faders.iter().any(|f| f.pending.is_some()) || u.master.pending.is_some();
            any |= u
                .value_line
                .iter()
                .any(|v| v.as_ref().is_some_and(|(_, until)| *until <= now));
            any |= u.lcd_dirty
                && u.lcd_sent_at
                    .is_none_or(|t| now.duration_since(t) >= LCD_INTERVAL);
        }
        if any {
            self.refresh(now);
        }
    }

    // ---- output -------------------------------------------------------------------------

    /// Send whatever differs between the console's state and what the units show.
    pub fn refresh(&mut self, now: Instant) {
        for unit in 0..self.units.len() {
            if self.units[unit].connected {
                self.refresh_unit(unit, now);
            }
        }
    }

    fn drive(&mut self, unit: usize, slot: Option<usize>, channel: u8, pos: u16, now: Instant) {
        let f = match slot {
            Some(s) => &mut self.units[unit].faders[s],
            None => &mut self.units[unit].master,
        };
        if f.touched {
            return;
        }
        if f.sent == Some(pos) {
            f.pending = None;
            return;
        }
        if f.last_sent
            .is_some_and(|t| now.duration_since(t) < MOTOR_INTERVAL)
        {
            f.pending = Some(pos);
            return;
        }
        f.sent = Some(pos);
        f.pending = None;
        f.last_sent = Some(now);
        self.out.push(Out {
            unit,
            bytes: pitch_bend(channel, pos),
        });
    }

    fn led(&mut self, unit: usize, n: u8, vel: u8) {
        if self.units[unit].leds.get(&n) != Some(&vel) {
            self.units[unit].leds.insert(n, vel);
            self.out.push(Out {
                unit,
                bytes: vec![0x90, n, vel],
            });
        }
    }

    fn refresh_unit(&mut self, unit: usize, now: Instant) {
        let strips = self.profile.strips;
        let on = |b: bool| if b { 0x7F } else { 0x00 };
        let blink = if self.profile.flashing { 0x01 } else { 0x7F };
        let ring_mode = self.ring_mode();
        let mut names = Vec::with_capacity(strips);
        let mut values = Vec::with_capacity(strips);
        for slot in 0..strips {
            let s = self.strip_at(unit, slot).cloned();
            let (fpath, vpath) = match &s {
                Some(s) => self.controls(s),
                None => (None, None),
            };
            // Motor.
            let pos = fpath
                .as_deref()
                .and_then(|p| self.normalized(p))
                .map_or(0, |n| self.to_pos(n));
            self.drive(unit, Some(slot), slot as u8, pos, now);
            // Ring.
            let ring = p::ring_value(ring_mode, vpath.as_deref().and_then(|p| self.normalized(p)));
            if self.units[unit].rings[slot] != Some(ring) {
                self.units[unit].rings[slot] = Some(ring);
                self.out.push(Out {
                    unit,
                    bytes: vec![0xB0, cc::RING + slot as u8, ring],
                });
            }
            // Buttons.
            let val = |h: &Self, key: &str| {
                s.as_ref()
                    .and_then(|s| h.console.get_sync(&format!("{}/{key}", s.prefix)).ok())
                    .is_some_and(|v| v >= 0.5)
            };
            let mute = val(self, "mute");
            let solo = val(self, "solo");
            let sel = s
                .as_ref()
                .is_some_and(|s| self.selected.contains(&s.prefix));
            let rec = s.as_ref().is_some_and(|s| self.armed.contains(&s.prefix));
            self.led(unit, note::MUTE + slot as u8, on(mute));
            self.led(unit, note::SOLO + slot as u8, on(solo));
            self.led(unit, note::SELECT + slot as u8, on(sel));
            self.led(unit, note::REC + slot as u8, on(rec));
            // LCD text.
            names.push(cell(s.as_ref().map_or("", |s| s.name.as_str())));
            let held = match &self.units[unit].value_line[slot] {
                Some((t, until)) if *until > now => Some(t.clone()),
                _ => None,
            };
            if held.is_none() {
                self.units[unit].value_line[slot] = None;
            }
            let text = held.unwrap_or_else(|| match &vpath {
                Some(p) => self.value_text(p),
                None => String::new(),
            });
            values.push(cell(&text));
        }
        if unit == 0 {
            let pos = self
                .normalized("master/fader_db")
                .map_or(0, |n| self.to_pos(n));
            self.drive(0, None, MASTER_FADER_CHANNEL, pos, now);
            let m = self.mode;
            self.led(0, note::ASSIGN_PAN, on(m == VpotMode::Pan));
            self.led(0, note::ASSIGN_SEND, on(matches!(m, VpotMode::Send(_))));
            self.led(0, note::ASSIGN_EQ, on(matches!(m, VpotMode::EqGain(_))));
            self.led(0, note::ASSIGN_PLUGIN, on(matches!(m, VpotMode::EqFreq(_))));
            self.led(0, note::FLIP, if self.flip { blink } else { 0 });
            self.transport_leds();
            self.auto_leds();
        }
        let u = &mut self.units[unit];
        if u.lcd_sent_at
            .is_none_or(|t| now.duration_since(t) >= LCD_INTERVAL)
        {
            u.lcd_dirty = false;
            let before = self.out.len();
            self.send_lcd(unit, &names, &values);
            if self.out.len() > before {
                self.units[unit].lcd_sent_at = Some(now);
            }
        } else {
            u.lcd_dirty = true;
        }
        if self.profile.colour {
            let colours: Vec<u8> = (0..strips)
                .map(|slot| self.strip_at(unit, slot).map_or(0, |s| s.colour))
                .collect();
            if self.units[unit].colours.as_ref() != Some(&colours) {
                let id = self.units[unit].device_id;
                self.out.push(Out {
                    unit,
                    bytes: sysex_msg(id, sysex::XTOUCH_COLOURS, &colours),
                });
                self.units[unit].colours = Some(colours);
            }
        }
    }

    /// Send the characters of the LCD that changed, as runs.
    fn send_lcd(&mut self, unit: usize, names: &[[u8; LCD_CELL]], values: &[[u8; LCD_CELL]]) {
        let width = self.profile.lcd_width;
        if width == 0 {
            return;
        }
        let mut want = vec![b' '; width * 2];
        for (i, c) in names.iter().enumerate() {
            for (j, ch) in c.iter().enumerate() {
                if let Some(x) = want
                    .get_mut(i * LCD_CELL + j)
                    .filter(|_| i * LCD_CELL + j < width)
                {
                    *x = *ch;
                }
            }
        }
        for (i, c) in values.iter().enumerate() {
            for (j, ch) in c.iter().enumerate() {
                let k = i * LCD_CELL + j;
                if k < width {
                    want[width + k] = *ch;
                }
            }
        }
        let id = self.units[unit].device_id;
        let sent = self.units[unit].lcd.take();
        let differs = |i: usize| sent.as_ref().is_none_or(|s: &Vec<u8>| s[i] != want[i]);
        // Runs of changed characters; runs separated by fewer unchanged characters than a
        // SysEx header costs are sent as one (fewer bytes, and the text changes at once).
        const GAP: usize = 7;
        let mut i = 0;
        while i < want.len() {
            if !differs(i) {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i;
            while i < want.len() && i - end <= GAP {
                if differs(i) {
                    end = i + 1;
                }
                i += 1;
            }
            let mut data = vec![start as u8];
            data.extend_from_slice(&want[start..end]);
            self.out.push(Out {
                unit,
                bytes: sysex_msg(id, sysex::LCD, &data),
            });
            i = end;
        }
        self.units[unit].lcd = Some(want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_a_cell() {
        assert_eq!(format_value(Unit::Pan, "ch/a/pan", 0.0), "C");
        assert_eq!(format_value(Unit::Pan, "ch/a/pan", -0.25), "L25");
        assert_eq!(format_value(Unit::Pan, "ch/a/pan", 1.0), "R100");
        assert_eq!(format_value(Unit::Db, "ch/a/fader_db", -6.0), "-6.0");
        assert_eq!(format_value(Unit::Db, "ch/a/fader_db", 3.0), "+3.0");
        assert_eq!(
            format_value(Unit::Db, "ch/a/fader_db", f32::NEG_INFINITY),
            "-inf"
        );
        assert_eq!(format_value(Unit::Hz, "ch/a/eq/1/freq", 2500.0), "2.50k");
        assert_eq!(&cell("snare_top"), b"snare_ ");
        assert_eq!(&cell("é"), b"?      ");
    }
}
