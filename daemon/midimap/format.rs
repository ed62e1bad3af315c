//! The mapping file (`mappings/<device>.yaml`): its shape as serde reads it (unknown keys
//! rejected), and the validation that turns it into a [`MidiMap`] with every problem reported
//! at `FILE:LINE:COL`: unknown parameter paths (with the closest valid ones suggested), bad
//! values, and two controls of one layer listening to the same message.
//!
//! Parameter paths are checked against the *shape* of the parameter tree (SPEC §4), not a
//! session: the strip segment (`{strip}`, a name or a 1-based number) and a send's bus name
//! may be anything; the rest must name a parameter that exists. At run time the paths are
//! resolved against the session's tree; those naming strips it lacks simply do nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use crate::mcu::AutoMode;
use crate::session::{Diagnostic, SessionError};

/// The placeholder that the bank offset resolves: `ch/{strip}/fader_db`.
pub const STRIP: &str = "{strip}";

/// Strips one bank step moves by default.
pub const DEFAULT_BANK_SIZE: u32 = 8;

/// Relative-encoder travel per tick by default (a hundredth of the control's travel).
pub const DEFAULT_STEP: f32 = 0.01;

/// Two encoder ticks closer than this count as fast turning (for acceleration).
pub const DEFAULT_ACCEL_MS: u32 = 60;

// ---- stage one: the file's shape --------------------------------------------------------

/// One number or a list of numbers: `cc: 7`, `cc: [0, 1, 2]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NumList(pub Vec<i64>);

impl<'de> Deserialize<'de> for NumList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NumList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a list of numbers")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumList, E> {
                Ok(NumList(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumList, E> {
                Ok(NumList(vec![i64::try_from(v).unwrap_or(i64::MAX)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NumList, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<i64>()? {
                    v.push(x);
                }
                Ok(NumList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A MIDI channel as written: `1`..`16` or `omni`.
#[derive(Debug, Clone, PartialEq)]
pub enum RawChannel {
    Num(i64),
    Word(String),
}

impl<'de> Deserialize<'de> for RawChannel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawChannel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a MIDI channel 1..16 or omni")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawChannel, E> {
                Ok(RawChannel::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawChannel, E> {
                Ok(RawChannel::Num(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawChannel, E> {
                Ok(RawChannel::Word(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    /// Shown in logs and `faderbridge status`.
    name: String,
    /// What the device's MIDI port is called (informative; the session names the port).
    #[serde(default)]
    device: Option<String>,
    /// Default channel of every control (default omni).
    #[serde(default)]
    channel: Option<Spanned<RawChannel>>,
    /// Strips one bank step moves (default 8).
    #[serde(default)]
    bank_size: Option<Spanned<i64>>,
    /// Default soft takeover of absolute controls: pickup (default), jump or scale.
    #[serde(default)]
    takeover: Option<Spanned<String>>,
    /// Raw MIDI messages sent whenever the device connects (mode switches, LED modes).
    #[serde(default)]
    on_connect: Vec<Spanned<NumList>>,
    controls: Vec<RawControl>,
}

/// One control (or a row of them when a source lists several numbers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    /// A label, for the reader and the logs.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cc: Option<Spanned<NumList>>,
    #[serde(default)]
    cc14: Option<Spanned<NumList>>,
    #[serde(default)]
    nrpn: Option<Spanned<NumList>>,
    #[serde(default)]
    nrpn14: Option<Spanned<NumList>>,
    #[serde(default)]
    note: Option<Spanned<NumList>>,
    #[serde(default)]
    poly: Option<Spanned<NumList>>,
    /// Pitch bend on these channels (one control per channel).
    #[serde(default)]
    pitchbend: Option<Spanned<NumList>>,
    /// Program change: recalls a scene.
    #[serde(default)]
    program: Option<Spanned<bool>>,
    #[serde(default)]
    channel: Option<Spanned<RawChannel>>,
    /// The strip `{strip}` means for the first number of the source (default 1); the
    /// following numbers take the following strips.
    #[serde(default)]
    strip: Option<Spanned<i64>>,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default)]
    action: Option<Spanned<String>>,
    /// `action: scene`: the scene's name.
    #[serde(default)]
    scene: Option<Spanned<String>>,
    /// `program: true`: scene names by program number (default: the number, 1-based).
    #[serde(default)]
    scenes: Option<Vec<String>>,
    /// `action: automation`: the mode.
    #[serde(default)]
    mode: Option<Spanned<String>>,
    /// toggle | momentary (buttons).
    #[serde(default)]
    button: Option<Spanned<String>>,
    #[serde(default)]
    range: Option<Spanned<Vec<f64>>>,
    /// param (default: the parameter's own taper) | linear.
    #[serde(default)]
    taper: Option<Spanned<String>>,
    #[serde(default)]
    invert: Option<bool>,
    /// Exponent on the control's travel (1 = none; 2 = finer at the bottom).
    #[serde(default)]
    curve: Option<Spanned<f64>>,
    /// absolute (default) | twos_complement | sign_magnitude | binary_offset | inc | dec.
    #[serde(default)]
    encoder: Option<Spanned<String>>,
    /// Travel per encoder tick (0..1 of the control's travel).
    #[serde(default)]
    step: Option<Spanned<f64>>,
    /// Encoder acceleration: ticks closer than `accel_ms` count this many times more.
    #[serde(default)]
    accel: Option<Spanned<f64>>,
    #[serde(default)]
    accel_ms: Option<Spanned<i64>>,
    #[serde(default)]
    takeover: Option<Spanned<String>>,
    /// Send the value back to the device (LEDs, motor faders, rings).
    #[serde(default)]
    feedback: Option<bool>,
    /// Feedback goes to these numbers instead of the source's (devices whose LED ids differ).
    #[serde(default)]
    led: Option<Spanned<NumList>>,
    /// LED on value (default 127) and off value (default 0).
    #[serde(default)]
    on: Option<Spanned<i64>>,
    #[serde(default)]
    off: Option<Spanned<i64>>,
    /// base (default) | shift: the control works only while shift is (not) held.
    #[serde(default)]
    layer: Option<Spanned<String>>,
}

// ---- stage two: the validated map --------------------------------------------------------

/// A validated mapping file.
#[derive(Debug, Clone, PartialEq)]
pub struct MidiMap {
    pub name: String,
    pub device: Option<String>,
    pub bank_size: u32,
    pub on_connect: Vec<Vec<u8>>,
    pub controls: Vec<Control>,
}

/// Which message a control listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Cc(u8),
    /// MSB controller number; the LSB is this + 32.
    Cc14(u8),
    Nrpn(u16),
    Nrpn14(u16),
    Note(u8),
    /// Polyphonic key pressure on this key (FaderPort buttons).
    Poly(u8),
    PitchBend,
    Program,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cc(n) => write!(f, "cc {n}"),
            Source::Cc14(n) => write!(f, "cc14 {n}/{}", n + 32),
            Source::Nrpn(n) => write!(f, "nrpn {n}"),
            Source::Nrpn14(n) => write!(f, "nrpn14 {n}"),
            Source::Note(n) => write!(f, "note {n}"),
            Source::Poly(n) => write!(f, "poly {n}"),
            Source::PitchBend => f.write_str("pitch bend"),
            Source::Program => f.write_str("program change"),
        }
    }
}

/// Which controls work: the base layer, or the shift layer while a shift button is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Base,
    Shift,
}

/// How a relative encoder writes a signed tick count into a 7-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 1..63 up, 127..65 down (127 = -1).
    TwosComplement,
    /// Bit 6 = down, bits 0-5 = ticks (the MCU V-Pot form).
    SignMagnitude,
    /// 64 = no change, 65 = +1, 63 = -1.
    BinaryOffset,
    /// Every press is one tick up.
    Inc,
    /// Every press is one tick down.
    Dec,
}

/// How a value from the device becomes a parameter change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// The control's position is the value (faders, knobs).
    Absolute,
    Relative {
        encoding: Encoding,
        /// Travel per tick (0..1).
        step: f32,
        /// Multiplier for fast ticks (1 = no acceleration).
        accel: f32,
        accel_ms: u32,
    },
    /// Each press flips the parameter between its two ends.
    Toggle,
    /// Pressed = the top of the range, released = the bottom.
    Momentary,
}

/// Soft takeover of a control that does not show the parameter's value (no motor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// Nothing happens until the control passes the parameter's value.
    Pickup,
    /// The parameter jumps to the control.
    Jump,
    /// The parameter moves towards the control proportionally until they meet.
    Scale,
}

/// Travel (0..1) → parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Range in the parameter's units (None: the parameter's whole range).
    pub range: Option<(f32, f32)>,
    /// True: through the parameter's taper (a fader CC maps like a console fader); false:
    /// linear in the parameter's units.
    pub param_taper: bool,
    pub invert: bool,
    /// Exponent on the travel.
    pub curve: f32,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            range: None,
            param_taper: true,
            invert: false,
            curve: 1.0,
        }
    }
}

/// What pressing a button does when it does not set a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    BankUp,
    BankDown,
    Play,
    Stop,
    /// Held: the shift layer is active.
    Shift,
    Scene(String),
    /// Program change number → scene name (empty: the 1-based number).
    ProgramScenes(Vec<String>),
    /// Set the automation mode of the control's strip.
    Automation(AutoMode),
}

/// What a control drives.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A parameter path, `{strip}` still in it.
    Param {
        path: String,
        xf: Transform,
        takeover: Takeover,
    },
    Action(Action),
}

/// One control of a map, after a source list was expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub source: Source,
    /// 0-based; None = omni.
    pub channel: Option<u8>,
    pub layer: Layer,
    /// 1-based strip within the bank that `{strip}` means.
    pub strip: u32,
    pub target: Target,
    pub mode: Mode,
    pub feedback: bool,
    /// Feedback goes to this number (note, CC or key) instead of the source's.
    pub led: Option<u8>,
    pub on: u8,
    pub off: u8,
    /// Where the control was declared (for logs and conflicts).
    pub line: usize,
    pub col: usize,
}

// ---- loading ------------------------------------------------------------------------------

/// Read, parse and validate a mapping file.
///
/// # Errors
/// Every problem found, as `FILE:LINE:COL: message` diagnostics.
pub fn load(path: &Path) -> Result<MidiMap, SessionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| one(path, 1, 1, format!("cannot read the mapping file: {e}")))?;
    parse_str(&text, path)
}

/// Whether YAML text looks like a mapping file (a top-level `controls:` key) rather than a
/// session (which has none).
pub fn looks_like_map(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("controls:"))
}

/// Whether the file at `path` is a mapping file (see [`looks_like_map`]); false when it
/// cannot be read (the session loader then reports why).
pub fn is_map_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| looks_like_map(&t))
}

fn one(file: &Path, line: usize, col: usize, message: impl Into<String>) -> SessionError {
    SessionError {
        errors: vec![Diagnostic {
            file: file.to_path_buf(),
            line: line.max(1),
            col: col.max(1),
            message: message.into(),
        }],
    }
}

/// Parse and validate mapping text; `file` names it in messages.
///
/// # Errors
/// A YAML or shape error (one diagnostic), or every rule the text breaks.
pub fn parse_str(text: &str, file: &Path) -> Result<MidiMap, SessionError> {
    let options = serde_saphyr::options! {
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    let raw: RawMap = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| crate::session::yaml_error(&e, file))?;
    let mut v = Validator {
        file,
        errors: Vec::new(),
    };
    let map = v.map(&raw);
    if v.errors.is_empty() {
        Ok(map)
    } else {
        let mut errors = v.errors;
        errors.sort_by_key(|d| (d.line, d.col));
        errors.dedup();
        Err(SessionError { errors })
    }
}

struct Validator<'f> {
    file: &'f Path,
    errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn err(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(Diagnostic::at(self.file, at, message));
    }

    fn channel(&mut self, c: &Spanned<RawChannel>) -> Option<Option<u8>> {
        match &c.value {
            RawChannel::Num(n) if (1..=16).contains(n) => Some(Some((*n - 1) as u8)),
            RawChannel::Word(w) if w == "omni" => Some(None),
            RawChannel::Num(n) => {
                self.err(
                    &c.referenced,
                    format!("channel: {n} is not a MIDI channel (1..16 or omni)"),
                );
                None
            }
            RawChannel::Word(w) => {
                self.err(
                    &c.referenced,
                    format!("channel: {w:?} is not a MIDI channel (1..16 or omni)"),
                );
                None
            }
        }
    }

    fn word<T: Copy>(&mut self, key: &str, v: &Spanned<String>, words: &[(&str, T)]) -> Option<T> {
        if let Some((_, t)) = words.iter().find(|(w, _)| *w == v.value) {
            return Some(*t);
        }
        let list: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
        self.err(
            &v.referenced,
            format!("{key}: {:?} is not one of {}", v.value, list.join(", ")),
        );
        None
    }

    fn map(&mut self, raw: &RawMap) -> MidiMap {
        let channel = raw
            .channel
            .as_ref()
            .and_then(|c| self.channel(c))
            .unwrap_or(None);
        let bank_size = match &raw.bank_size {
            None => DEFAULT_BANK_SIZE,
            Some(b) if (1..=128).contains(&b.value) => b.value as u32,
            Some(b) => {
                self.err(
                    &b.referenced,
                    format!("bank_size: {} is out of range 1..128", b.value),
                );
                DEFAULT_BANK_SIZE
            }
        };
        let takeover_words = [
            ("pickup", Takeover::Pickup),
            ("jump", Takeover::Jump),
            ("scale", Takeover::Scale),
        ];
        let takeover = raw
            .takeover
            .as_ref()
            .and_then(|t| self.word("takeover", t, &takeover_words))
            .unwrap_or(Takeover::Pickup);
        let mut on_connect = Vec::new();
        for m in &raw.on_connect {
            if m.value.0.is_empty()
                || m.value.0.iter().any(|b| !(0..=255).contains(b))
                || !(0x80..=0xFF).contains(&m.value.0[0])
            {
                self.err(&m.referenced, "on_connect: a message is a list of bytes starting with a status byte (0x80..0xFF)");
            } else {
                on_connect.push(m.value.0.iter().map(|b| *b as u8).collect());
            }
        }
        let mut controls = Vec::new();
        let mut seen: HashMap<(Layer, SourceKey), (usize, usize, String)> = HashMap::new();
        for rc in &raw.controls {
            for c in self.control(rc, channel, takeover) {
                self.conflicts(&c, &mut seen);
                controls.push(c);
            }
        }
        MidiMap {
            name: raw.name.clone(),
            device: raw.device.clone(),
            bank_size,
            on_connect,
            controls,
        }
    }

    /// Report a control listening to what an earlier one of its layer listens to.
    fn conflicts(
        &mut self,
        c: &Control,
        seen: &mut HashMap<(Layer, SourceKey), (usize, usize, String)>,
    ) {
        let keys = source_keys(c);
        for k in keys {
            // Omni overlaps every channel: check the key on all channels when either is omni.
            let clash = seen
                .iter()
                .find(|((l, s), _)| *l == c.layer && s.overlaps(&k))
                .map(|(_, v)| v.clone());
            if let Some((line, col, what)) = clash {
                self.errors.push(Diagnostic {
                    file: self.file.to_path_buf(),
                    line: c.line,
                    col: c.col,
                    message: format!(
                        "{what} is also used at line {line}, column {col} (in the same layer)"
                    ),
                });
                return;
            }
            seen.insert((c.layer, k), (c.line, c.col, describe(c)));
        }
    }

    fn control(
        &mut self,
        rc: &RawControl,
        channel: Option<u8>,
        takeover: Takeover,
    ) -> Vec<Control> {
        // The source: exactly one.
        let sources: Vec<(&str, &Spanned<NumList>)> = [
            ("cc", &rc.cc),
            ("cc14", &rc.cc14),
            ("nrpn", &rc.nrpn),
            ("nrpn14", &rc.nrpn14),
            ("note", &rc.note),
            ("poly", &rc.poly),
            ("pitchbend", &rc.pitchbend),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let n_sources = sources.len() + usize::from(rc.program.is_some());
        let at = sources
            .first()
            .map(|(_, v)| v.referenced)
            .or(rc.program.as_ref().map(|p| p.referenced))
            .or(rc.target.as_ref().map(|t| t.referenced))
            .or(rc.action.as_ref().map(|t| t.referenced));
        let Some(at) = at else {
            // Nothing to point at but the file's start; serde gives no span for the entry.
            self.errors.push(Diagnostic {
                file: self.file.to_path_buf(),
                line: 1,
                col: 1,
                message: format!(
                    "control {}: no source (cc, cc14, nrpn, nrpn14, note, poly, pitchbend or program)",
                    rc.name.as_deref().unwrap_or("?")
                ),
            });
            return vec![];
        };
        if n_sources == 0 {
            self.err(
                &at,
                "no source: give one of cc, cc14, nrpn, nrpn14, note, poly, pitchbend, program",
            );
            return vec![];
        }
        if n_sources > 1 {
            self.err(&at, "more than one source in one control (cc, cc14, nrpn, nrpn14, note, poly, pitchbend, program)");
            return vec![];
        }
        let (line, col) = crate::session::line_col(&at);
        let channel = match &rc.channel {
            Some(c) => match self.channel(c) {
                Some(c) => c,
                None => return vec![],
            },
            None => channel,
        };
        // The numbers, each checked against its range.
        let mut list: Vec<(Source, Option<u8>)> = Vec::new();
        if let Some(p) = &rc.program {
            if !p.value {
                self.err(
                    &p.referenced,
                    "program: false maps nothing (leave the control out)",
                );
                return vec![];
            }
            list.push((Source::Program, channel));
        }
        if let Some((key, nums)) = sources.first() {
            if nums.value.0.is_empty() {
                self.err(&nums.referenced, format!("{key}: an empty list"));
                return vec![];
            }
            for &n in &nums.value.0 {
                let (max, s) = match *key {
                    "cc" => (119, Source::Cc(n.clamp(0, 127) as u8)),
                    "cc14" => (31, Source::Cc14(n.clamp(0, 127) as u8)),
                    "nrpn" => (16383, Source::Nrpn(n.clamp(0, 16383) as u16)),
                    "nrpn14" => (16383, Source::Nrpn14(n.clamp(0, 16383) as u16)),
                    "note" => (127, Source::Note(n.clamp(0, 127) as u8)),
                    "poly" => (127, Source::Poly(n.clamp(0, 127) as u8)),
                    _ => (16, Source::PitchBend),
                };
                let min = i64::from(*key == "pitchbend");
                if n < min || n > max {
                    let what = match *key {
                        "cc" => "a controller number 0..119 (120..127 are channel mode messages)",
                        "cc14" => "an MSB controller number 0..31 (its LSB is the number + 32)",
                        "pitchbend" => "a MIDI channel 1..16 (pitchbend lists channels)",
                        "nrpn" | "nrpn14" => "an NRPN number 0..16383",
                        _ => "a note number 0..127",
                    };
                    self.err(&nums.referenced, format!("{key}: {n} is not {what}"));
                    return vec![];
                }
                let ch = if *key == "pitchbend" {
                    Some((n - 1) as u8)
                } else {
                    channel
                };
                list.push((s, ch));
            }
        }
        let layer = match &rc.layer {
            None => Layer::Base,
            Some(l) => match self.word(
                "layer",
                l,
                &[("base", Layer::Base), ("shift", Layer::Shift)],
            ) {
                Some(l) => l,
                None => return vec![],
            },
        };
        let strip = match &rc.strip {
            None => 1,
            Some(s) if (1..=1024).contains(&s.value) => s.value as u32,
            Some(s) => {
                self.err(
                    &s.referenced,
                    format!("strip: {} is out of range 1..1024", s.value),
                );
                return vec![];
            }
        };
        let is_button = matches!(list[0].0, Source::Note(_) | Source::Poly(_));
        let program = matches!(list[0].0, Source::Program);

        // The target.
        let mut target = match (&rc.target, &rc.action, program) {
            (Some(_), Some(a), _) => {
                self.err(
                    &a.referenced,
                    "a control has a target or an action, not both",
                );
                return vec![];
            }
            (Some(t), None, false) => match self.path(t) {
                Some(path) => Target::Param {
                    path,
                    xf: Transform::default(),
                    takeover,
                },
                None => return vec![],
            },
            (Some(t), None, true) => {
                self.err(
                    &t.referenced,
                    "program change recalls scenes; it takes no target",
                );
                return vec![];
            }
            (None, _, true) => {
                Target::Action(Action::ProgramScenes(rc.scenes.clone().unwrap_or_default()))
            }
            (None, Some(a), false) => match self.action(a, rc) {
                Some(a) => Target::Action(a),
                None => return vec![],
            },
            (None, None, false) => {
                self.err(&at, "no target: give target (a parameter path) or action");
                return vec![];
            }
        };

        // The mode.
        let relative = match &rc.encoder {
            None => None,
            Some(e) => match self.word(
                "encoder",
                e,
                &[
                    ("absolute", None),
                    ("twos_complement", Some(Encoding::TwosComplement)),
                    ("sign_magnitude", Some(Encoding::SignMagnitude)),
                    ("binary_offset", Some(Encoding::BinaryOffset)),
                    ("inc", Some(Encoding::Inc)),
                    ("dec", Some(Encoding::Dec)),
                ],
            ) {
                Some(r) => r,
                None => return vec![],
            },
        };
        let button = match &rc.button {
            None => None,
            Some(b) => match self.word(
                "button",
                b,
                &[("toggle", Mode::Toggle), ("momentary", Mode::Momentary)],
            ) {
                Some(m) => Some(m),
                None => return vec![],
            },
        };
        let param_spec = match &target {
            Target::Param { path, .. } => spec_of(path),
            Target::Action(_) => None,
        };
        let mode = if let Some(enc) = relative {
            if let (Some(_), Some(b)) = (button, &rc.button) {
                self.err(&b.referenced, "an encoder is not a button");
                return vec![];
            }
            let step = match &rc.step {
                None => DEFAULT_STEP,
                Some(s) if s.value > 0.0 && s.value <= 1.0 => s.value as f32,
                Some(s) => {
                    self.err(
                        &s.referenced,
                        format!("step: {} is out of range (0, 1] (travel per tick)", s.value),
                    );
                    return vec![];
                }
            };
            let accel = match &rc.accel {
                None => 1.0,
                Some(a) if (1.0..=100.0).contains(&a.value) => a.value as f32,
                Some(a) => {
                    self.err(
                        &a.referenced,
                        format!("accel: {} is out of range 1..100", a.value),
                    );
                    return vec![];
                }
            };
            let accel_ms = match &rc.accel_ms {
                None => DEFAULT_ACCEL_MS,
                Some(a) if (1..=2000).contains(&a.value) => a.value as u32,
                Some(a) => {
                    self.err(
                        &a.referenced,
                        format!("accel_ms: {} is out of range 1..2000", a.value),
                    );
                    return vec![];
                }
            };
            Mode::Relative {
                encoding: enc,
                step,
                accel,
                accel_ms,
            }
        } else if let Some(b) = button {
            b
        } else if matches!(target, Target::Action(_)) {
            Mode::Momentary
        } else if is_button || param_spec.is_some_and(|s| s.unit == crate::params::Unit::Bool) {
            Mode::Toggle
        } else {
            Mode::Absolute
        };
        if let (Target::Action(_), Some(e)) = (&target, &rc.encoder) {
            self.err(&e.referenced, "actions are buttons; encoder does not apply");
            return vec![];
        }

        // The transform.
        if let Target::Param {
            xf, takeover: tk, ..
        } = &mut target
        {
            if let Some(r) = &rc.range {
                match r.value.as_slice() {
                    [a, b] if !a.is_nan() && !b.is_nan() && a != b => {
                        if let Some(s) = param_spec
                            && (!s.contains(*a as f32) || !s.contains(*b as f32))
                        {
                            self.err(
                                &r.referenced,
                                format!(
                                    "range: [{a}, {b}] leaves the parameter's range {}",
                                    s.range_text()
                                ),
                            );
                            return vec![];
                        }
                        xf.range = Some((*a as f32, *b as f32));
                    }
                    _ => {
                        self.err(
                            &r.referenced,
                            "range: two different numbers [bottom, top] in the parameter's units",
                        );
                        return vec![];
                    }
                }
            }
            if let Some(t) = &rc.taper {
                match self.word("taper", t, &[("param", true), ("linear", false)]) {
                    Some(p) => xf.param_taper = p,
                    None => return vec![],
                }
            }
            xf.invert = rc.invert.unwrap_or(false);
            if let Some(c) = &rc.curve {
                if !(0.1..=10.0).contains(&c.value) {
                    self.err(
                        &c.referenced,
                        format!("curve: {} is out of range 0.1..10", c.value),
                    );
                    return vec![];
                }
                xf.curve = c.value as f32;
            }
            if let Some(t) = &rc.takeover {
                match self.word(
                    "takeover",
                    t,
                    &[
                        ("pickup", Takeover::Pickup),
                        ("jump", Takeover::Jump),
                        ("scale", Takeover::Scale),
                    ],
                ) {
                    Some(t) => *tk = t,
                    None => return vec![],
                }
            }
        } else {
            for (k, present) in [
                ("range", rc.range.as_ref().map(|r| r.referenced)),
                ("curve", rc.curve.as_ref().map(|r| r.referenced)),
                ("taper", rc.taper.as_ref().map(|r| r.referenced)),
                ("takeover", rc.takeover.as_ref().map(|r| r.referenced)),
            ] {
                if let Some(at) = present {
                    self.err(&at, format!("{k}: only for parameter targets"));
                    return vec![];
                }
            }
        }
        let byte = |v: &mut Self, x: &Option<Spanned<i64>>, key: &str, d: u8| -> Option<u8> {
            match x {
                None => Some(d),
                Some(s) if (0..=127).contains(&s.value) => Some(s.value as u8),
                Some(s) => {
                    v.err(
                        &s.referenced,
                        format!("{key}: {} is out of range 0..127", s.value),
                    );
                    None
                }
            }
        };
        let Some(on) = byte(self, &rc.on, "on", 127) else {
            return vec![];
        };
        let Some(off) = byte(self, &rc.off, "off", 0) else {
            return vec![];
        };
        let leds = match &rc.led {
            None => None,
            Some(l) => {
                if l.value.0.len() != list.len() || l.value.0.iter().any(|n| !(0..=127).contains(n))
                {
                    self.err(
                        &l.referenced,
                        format!("led: {} numbers 0..127, one per source number", list.len()),
                    );
                    return vec![];
                }
                Some(l.value.0.clone())
            }
        };
        // Buttons and motorless controls: LEDs by default for buttons, values only when asked.
        let feedback = rc.feedback.unwrap_or(
            matches!(mode, Mode::Toggle | Mode::Momentary) && !matches!(list[0].0, Source::Program),
        );
        list.iter()
            .enumerate()
            .map(|(i, (source, ch))| Control {
                source: *source,
                channel: *ch,
                layer,
                strip: strip + i as u32,
                target: target.clone(),
                mode,
                feedback,
                led: leds.as_ref().map(|l| l[i] as u8),
                on,
                off,
                line,
                col,
            })
            .collect()
    }

    fn action(&mut self, a: &Spanned<String>, rc: &RawControl) -> Option<Action> {
        Some(match a.value.as_str() {
            "bank_up" => Action::BankUp,
            "bank_down" => Action::BankDown,
            "play" => Action::Play,
            "stop" => Action::Stop,
            "shift" => Action::Shift,
            "scene" => match &rc.scene {
                Some(s) if !s.value.trim().is_empty() => Action::Scene(s.value.clone()),
                Some(s) => {
                    self.err(&s.referenced, "scene: empty name");
                    return None;
                }
                None => {
                    self.err(&a.referenced, "action: scene needs scene: NAME");
                    return None;
                }
            },
            "automation" => {
                let Some(m) = &rc.mode else {
                    self.err(
                        &a.referenced,
                        "action: automation needs mode: off|read|touch|latch|write|trim",
                    );
                    return None;
                };
                Action::Automation(self.word("mode", m, &AutoMode::ALL.map(|m| (m.name(), m)))?)
            }
            other => {
                self.err(
                    &a.referenced,
                    format!("action: {other:?} is not one of bank_up, bank_down, play, stop, shift, scene, automation"),
                );
                return None;
            }
        })
    }

    /// A parameter path: its shape must be one of the tree's.
    fn path(&mut self, t: &Spanned<String>) -> Option<String> {
        let p = t.value.trim().trim_start_matches('/');
        let shape = shape_of(p);
        if shapes().contains(&shape) {
            return Some(p.to_string());
        }
        let near = suggestions(p);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(" or "))
        };
        self.err(
            &t.referenced,
            format!("target: {p:?} is not a parameter path{hint}"),
        );
        None
    }
}

/// What a control listens to, for conflicts: channel (None = omni) and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey {
    channel: Option<u8>,
    kind: u8,
    number: u16,
}

impl SourceKey {
    fn overlaps(&self, o: &SourceKey) -> bool {
        self.kind == o.kind
            && self.number == o.number
            && (self.channel.is_none() || o.channel.is_none() || self.channel == o.channel)
    }
}

/// The raw messages a control consumes (a 14-bit pair is two controllers).
fn source_keys(c: &Control) -> Vec<SourceKey> {
    let k = |kind, number| SourceKey {
        channel: c.channel,
        kind,
        number,
    };
    match c.source {
        Source::Cc(n) => vec![k(0, n.into())],
        Source::Cc14(n) => vec![k(0, n.into()), k(0, u16::from(n) + 32)],
        Source::Nrpn(n) | Source::Nrpn14(n) => vec![k(1, n)],
        Source::Note(n) => vec![k(2, n.into())],
        Source::Poly(n) => vec![k(3, n.into())],
        Source::PitchBend => vec![k(4, 0)],
        Source::Program => vec![k(5, 0)],
    }
}

fn describe(c: &Control) -> String {
    match c.channel {
        Some(ch) => format!("{} on channel {}", c.source, ch + 1),
        None => format!("{} (omni)", c.source),
    }
}

// ---- parameter path shapes ----------------------------------------------------------------

/// A path with its strip segment (and a send's bus) replaced by `*`: `ch/*/sends/*/level_db`.
fn shape_of(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() >= 3 && matches!(parts[0], "ch" | "bus") {
        parts[1] = "*";
        if parts.len() >= 4 && parts[2] == "sends" {
            parts[3] = "*";
        }
    }
    parts.join("/")
}

/// Every shape of the parameter tree with its spec, from a session that has one of each kind
/// of strip and every optional processor (so every path a session can have).
fn reference() -> &'static HashMap<String, &'static crate::params::ParamSpec> {
    static SPECS: OnceLock<HashMap<String, &'static crate::params::ParamSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        const ALL: &str = "version: 1\nchannels:\n  - { name: c, source: { input: 1 }, sends: [ { bus: r, level_db: -10 } ] }\nbuses:\n  - { name: r, kind: aux, fx: { reverb: { decay_s: 1.0 } } }\n  - { name: d, kind: aux, fx: { delay: { time_ms: 100 } } }\n  - { name: g, kind: group }\n";
        let s = crate::session::parse_str(ALL, Path::new("/nonexistent/shapes.yaml"))
            .expect("the reference session of path shapes is valid");
        crate::params::ParamTree::build(&s)
            .params()
            .iter()
            .map(|p| (shape_of(&p.path), p.spec))
            .collect()
    })
}

fn shapes() -> &'static BTreeSet<String> {
    static SHAPES: OnceLock<BTreeSet<String>> = OnceLock::new();
    SHAPES.get_or_init(|| reference().keys().cloned().collect())
}

/// The parameter spec a path template names (by its shape), if any.
pub fn spec_of(path: &str) -> Option<&'static crate::params::ParamSpec> {
    reference()
        .get(&shape_of(path.trim_start_matches('/')))
        .copied()
}

/// Up to three valid paths closest to `path` (edit distance on the shape), written with the
/// user's strip and bus segments.
pub fn suggestions(path: &str) -> Vec<String> {
    let shape = shape_of(path);
    let parts: Vec<&str> = path.split('/').collect();
    // Edit distance, plus a penalty for another kind of strip (ch vs bus vs master).
    let head = shape.split('/').next().unwrap_or("");
    let mut scored: Vec<(usize, &String)> = shapes()
        .iter()
        .map(|s| {
            let other = s.split('/').next().unwrap_or("") != head;
            (levenshtein(&shape, s) + 2 * usize::from(other), s)
        })
        .collect();
    scored.sort();
    let limit = (shape.len() / 3).max(3);
    let best = scored.first().map_or(0, |(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| *d <= limit && *d <= best + 1)
        .take(3)
        .map(|(_, s)| {
            let mut out: Vec<String> = s.split('/').map(str::to_string).collect();
            if out.len() >= 3 && out[1] == "*" {
                out[1] = if parts.len() >= 2 && matches!(parts[0], "ch" | "bus") {
                    parts[1].to_string()
                } else {
                    STRIP.to_string()
                };
            }
            if out.len() >= 4 && out[2] == "sends" && out[3] == "*" {
                out[3] = if parts.len() >= 4 && parts[2] == "sends" {
                    parts[3].to_string()
                } else {
                    "BUS".to_string()
                };
            }
            out.join("/")
        })
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MidiMap, String> {
        parse_str(text, Path::new("m.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn rows_expand_to_strips() {
        let m = parse("name: t\nchannel: 1\ncontrols:\n  - { cc: [0, 1, 2], target: \"ch/{strip}/fader_db\" }\n  - { note: [10, 11], target: \"ch/{strip}/mute\", strip: 4 }\n").unwrap();
        assert_eq!(m.controls.len(), 5);
        assert_eq!(m.controls[2].source, Source::Cc(2));
        assert_eq!(m.controls[2].strip, 3);
        assert_eq!(m.controls[2].mode, Mode::Absolute);
        assert!(!m.controls[2].feedback);
        assert_eq!(m.controls[4].source, Source::Note(11));
        assert_eq!(m.controls[4].strip, 5);
        assert_eq!(m.controls[4].mode, Mode::Toggle);
        assert!(m.controls[4].feedback);
        assert_eq!(m.controls[0].channel, Some(0));
    }

    #[test]
    fn unknown_paths_get_suggestions_at_their_location() {
        let e = parse("name: t\ncontrols:\n  - { cc: 7, target: \"ch/{strip}/fadr_db\" }\n")
            .unwrap_err();
        assert_eq!(
            e,
            "m.yaml:3:22: target: \"ch/{strip}/fadr_db\" is not a parameter path; did you mean ch/{strip}/fader_db?"
        );
        let e =
            parse("name: t\ncontrols:\n  - { cc: 7, target: ch/kick/eq/2/gain }\n").unwrap_err();
        assert!(e.contains("did you mean ch/kick/eq/2/gain_db"), "{e}");
        assert!(parse("name: t\ncontrols:\n  - { cc: 7, target: ch/kick/sends/verb/level_db }\n  - { cc: 8, target: bus/2/fx/reverb/decay_s }\n  - { cc: 9, target: master/limiter/ceiling_dbtp }\n").is_ok());
    }

    #[test]
    fn conflicts_name_both_places() {
        let e = parse("name: t\ncontrols:\n  - { cc: 7, channel: 1, target: ch/1/fader_db }\n  - { cc: 7, target: ch/2/fader_db }\n  - { cc: 7, channel: 2, target: ch/3/fader_db, layer: shift }\n  - { cc14: 0, channel: 3, target: ch/3/pan }\n  - { cc: 32, channel: 3, target: ch/4/pan }\n").unwrap_err();
        assert_eq!(
            e,
            "m.yaml:4:11: cc 7 on channel 1 is also used at line 3, column 11 (in the same layer)\n\
             m.yaml:7:11: cc14 0/32 on channel 3 is also used at line 6, column 13 (in the same layer)"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        let e = parse("name: t\ncontrols:\n  - { cc: 7, target: ch/1/fader_db, bogus: 1 }\n")
            .unwrap_err();
        assert!(e.starts_with("m.yaml:3:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = parse("name: t\ncontrols:\n  - { cc: 7, target: ch/1/fader_db, encoder: twos }\n")
            .unwrap_err();
        assert!(
            e.starts_with("m.yaml:3:46: encoder: \"twos\" is not one of absolute,"),
            "{e}"
        );
        let e = parse("name: t\ncontrols:\n  - { cc: 120, target: ch/1/fader_db }\n").unwrap_err();
        assert!(
            e.starts_with("m.yaml:3:11: cc: 120 is not a controller number"),
            "{e}"
        );
        let e =
            parse("name: t\ncontrols:\n  - { cc: 1, target: ch/1/fader_db, range: [-20, 20] }\n")
                .unwrap_err();
        assert!(
            e.contains("range: [-20, 20] leaves the parameter's range -inf..10"),
            "{e}"
        );
    }
}
