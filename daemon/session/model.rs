//! The validated session: what the engine is built from. Produced only by
//! [`crate::session::load`] / [`crate::session::parse_str`], so every value here is in range, every
//! name is unique, every bus reference resolves and the bus graph has no cycle.
//!
//! Names of fields follow the session file (SPEC §3) and the parameter paths (SPEC §4).

use std::path::PathBuf;

/// A whole session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session file it was read from (for messages); relative stem paths are resolved
    /// against its folder already.
    pub file: PathBuf,
    pub engine: EngineSettings,
    pub channels: Vec<Channel>,
    /// Buses in file order. `Output::Bus(i)` indexes this list.
    pub buses: Vec<Bus>,
    pub master: Master,
    pub surfaces: Vec<Surface>,
    pub automation: AutomationSettings,
}

/// `automation:`: how lanes behave against surfaces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutomationSettings {
    /// Glide back to the lane after a touch is released (ms).
    pub glide_ms: f32,
    /// In read mode, a touch overrides the lane (true, `read_touch: override`) or surface
    /// moves are refused (`read_touch: ignore`).
    pub read_touch_overrides: bool,
}

impl Default for AutomationSettings {
    fn default() -> Self {
        Self {
            glide_ms: 250.0,
            read_touch_overrides: true,
        }
    }
}

/// `engine:`: used by the null and cpal backends and by `render`; JACK dictates its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    pub sample_rate: u32,
    pub block: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            sample_rate: 48000,
            block: 64,
        }
    }
}

/// An interface input/output: a 1-based number, or a JACK port name (`"outboard:in"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(u32),
    Name(String),
}

/// Where a channel's signal comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A stem file (absolute or resolved path). Mono or stereo by the file.
    File(PathBuf),
    /// One (mono) or two (stereo) interface inputs.
    Input(Vec<PortRef>),
    /// No source configured (silence); a channel may still be fed later by a reload.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slope {
    Db12,
    Db24,
}

/// `hpf:` / `lpf:`; absent = off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassFilter {
    pub freq: f32,
    pub slope: Slope,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    pub threshold_db: f32,
    pub range_db: f32,
    pub attack_ms: f32,
    pub hold_ms: f32,
    pub release_ms: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EqType {
    Bell,
    LowShelf,
    HighShelf,
    Notch,
}

/// One EQ band. A strip has up to 4, numbered 1..=4 in parameter paths in file order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EqBand {
    pub kind: EqType,
    pub freq: f32,
    pub gain_db: f32,
    pub q: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comp {
    pub threshold_db: f32,
    pub ratio: f32,
    pub knee_db: f32,
    pub attack_ms: f32,
    pub release_ms: f32,
    pub makeup_db: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    pub drive_db: f32,
    pub mix: f32,
}

/// How the round-trip latency of a hardware insert is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InsertLatency {
    /// Measured (`faderbridge measure-insert`) and kept in the state directory.
    Auto,
    /// Given in samples.
    Samples(u32),
}

/// Where a hardware insert sits in its strip (`position:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertPosition {
    /// Before the EQ: channels after trim, delay, HPF/LPF and gate; buses after their
    /// effects; the master at its input.
    PreEq,
    /// After the dynamics: channels after compressor and saturation, buses and the master
    /// after their compressor (the default).
    #[default]
    PostDynamics,
    /// After the fader, before the pan/balance (channels: after fader, before pan and mute;
    /// buses: after fader and mute, before balance; master: before the limiter).
    PostFader,
}

impl InsertPosition {
    /// Every position by its session-file name.
    pub const NAMES: [(&'static str, InsertPosition); 3] = [
        ("pre_eq", InsertPosition::PreEq),
        ("post_dynamics", InsertPosition::PostDynamics),
        ("post_fader", InsertPosition::PostFader),
    ];
}

/// `insert:`: a hardware insert (run by [`crate::engine::insert`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub send: PortRef,
    pub ret: PortRef,
    pub latency: InsertLatency,
    pub position: InsertPosition,
}

/// A send from a channel to an aux (or group) bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// The bus name as written.
    pub bus: String,
    /// Index into [`Session::buses`].
    pub bus_index: usize,
    /// `-inf` allowed.
    pub level_db: f32,
    pub pre_fader: bool,
}

/// Where a strip's or bus's main output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Master,
    /// Index into [`Session::buses`] (always a group or aux bus, never creating a cycle).
    Bus(usize),
}

/// An input channel strip.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub source: Source,
    pub trim_db: f32,
    pub invert: bool,
    pub delay_ms: f32,
    pub hpf: Option<PassFilter>,
    pub lpf: Option<PassFilter>,
    pub gate: Option<Gate>,
    /// 0 to 4 bands, in file order.
    pub eq: Vec<EqBand>,
    pub comp: Option<Comp>,
    pub saturation: Option<Saturation>,
    pub insert: Option<Insert>,
    /// -1 left .. +1 right; balance for stereo sources.
    pub pan: f32,
    /// `-inf` allowed; max +10.
    pub fader_db: f32,
    pub mute: bool,
    pub solo: bool,
    /// Stays audible while other strips are soloed.
    pub solo_safe: bool,
    pub sends: Vec<Send>,
    pub output: Output,
    /// Colour shown by surfaces that have one (X-Touch scribble strips).
    pub color: Option<Color>,
}

/// A strip colour, as colour scribble strips show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    White,
}

impl Color {
    /// Every colour by its session-file name.
    pub const NAMES: [(&'static str, Color); 7] = [
        ("red", Color::Red),
        ("green", Color::Green),
        ("yellow", Color::Yellow),
        ("blue", Color::Blue),
        ("magenta", Color::Magenta),
        ("cyan", Color::Cyan),
        ("white", Color::White),
    ];

    pub fn from_name(name: &str) -> Option<Color> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// Summing bus fed by channel outputs (`output: drums`), processed like a channel.
    Group,
    /// Fed by sends; hosts effects or feeds interface outputs (a cue mix).
    Aux,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reverb {
    pub decay_s: f32,
    pub predelay_ms: f32,
    pub damping: f32,
    pub size: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub time_ms: f32,
    pub feedback: f32,
    pub ping_pong: bool,
    pub lowcut_hz: f32,
    pub highcut_hz: f32,
}

/// A group or aux bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    pub name: String,
    pub kind: BusKind,
    pub eq: Vec<EqBand>,
    pub comp: Option<Comp>,
    pub reverb: Option<Reverb>,
    pub delay: Option<Delay>,
    pub pan: f32,
    pub fader_db: f32,
    pub mute: bool,
    /// Where the bus's stereo output is summed (master by default). Ignored when `outputs` is
    /// set: then the bus feeds those interface outputs instead (a cue mix).
    pub output: Output,
    /// Interface outputs (L, R) this bus feeds instead of `output`.
    pub outputs: Vec<PortRef>,
    /// A stereo hardware insert (send N, N+1; return M, M+1).
    pub insert: Option<Insert>,
    /// Colour shown by surfaces that have one.
    pub color: Option<Color>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limiter {
    pub ceiling_dbtp: f32,
    pub release_ms: f32,
}

/// The master bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    pub eq: Vec<EqBand>,
    pub comp: Option<Comp>,
    pub limiter: Option<Limiter>,
    pub fader_db: f32,
    /// Interface outputs (L, R); `[1, 2]` by default.
    pub outputs: Vec<PortRef>,
    /// A stereo hardware insert (send N, N+1; return M, M+1).
    pub insert: Option<Insert>,
}

/// Where a network surface listens and whom it lets in.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSurface {
    /// `address:port` (UDP; OSCQuery serves HTTP on the same TCP port).
    pub listen: String,
    /// Source ranges (CIDR) allowed to talk to it; when the file leaves `allow` out, loopback
    /// only (`127.0.0.0/8`, `::1/128`).
    pub allow: Vec<String>,
    /// Source ranges (CIDR) that may query and subscribe but not change anything.
    pub read_only: Vec<String>,
    /// Messages per second accepted from one client; the excess is dropped and counted.
    pub rate_limit: u32,
    /// Largest packet accepted, in bytes.
    pub max_packet: usize,
    /// Most feedback updates per second per address sent to one client.
    pub feedback_hz: f32,
}

/// Loopback only: what `allow` is when the file leaves it out.
pub const DEFAULT_ALLOW: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// A control surface (filled in by the surface subsystems; kept as read).
#[derive(Debug, Clone, PartialEq)]
pub enum Surface {
    /// Native OSC (SPEC §5).
    Osc(NetSurface),
    /// The X-Air dialect (SPEC §6).
    Xair(NetSurface),
    Mcu {
        midi: String,
        extenders: Vec<String>,
        /// A shipped device profile (`mcu-pro`, `xtouch`, ...) or a profile file (absolute,
        /// resolved against the session's folder).
        profile: String,
    },
    MidiMap {
        map: PathBuf,
        midi: String,
    },
    /// MIDI Time Code chase: the transport follows the MTC arriving on `midi`.
    Mtc {
        midi: String,
    },
}
