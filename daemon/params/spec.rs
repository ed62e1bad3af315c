//! The declaration of every kind of parameter: key, unit, range, default, taper. Each group
//! lists the parameters of one processor in the order they appear in the session file. The
//! session validator, the parameter tree, OSC, MIDI maps and OSCQuery all read these tables;
//! nothing else lists parameters by hand.

/// What a value measures; shown to users and carried by OSCQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Db,
    Hz,
    Ms,
    Seconds,
    /// Compression ratio, `n:1`.
    Ratio,
    /// -1 (left) .. +1 (right).
    Pan,
    /// A plain 0..1 amount (mix, damping, size, feedback).
    Amount,
    /// On/off.
    Bool,
    /// One of a fixed list of names; the value is the index.
    Choice(&'static [&'static str]),
    /// Plain number without unit (engine settings).
    Number,
}

/// How 0..1 control travel (a fader, a knob, a MIDI CC) maps onto the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taper {
    Linear,
    /// Logarithmic (frequencies, times, ratios).
    Log,
    /// The console fader law: X32-style four segments, 0.75 = 0 dB, 0 = -inf.
    Fader,
    /// Discrete values (bools, choices).
    Stepped,
}

/// One kind of parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// The last element of the path and the session-file key (`fader_db`).
    pub key: &'static str,
    pub unit: Unit,
    /// Inclusive range. `min` may be `-inf` for gains that can be fully closed.
    pub min: f32,
    pub max: f32,
    pub default: f32,
    pub taper: Taper,
    pub description: &'static str,
}

impl ParamSpec {
    const fn new(
        key: &'static str,
        unit: Unit,
        min: f32,
        max: f32,
        default: f32,
        taper: Taper,
        description: &'static str,
    ) -> Self {
        Self {
            key,
            unit,
            min,
            max,
            default,
            taper,
            description,
        }
    }

    const fn toggle(key: &'static str, default: bool, description: &'static str) -> Self {
        Self::new(
            key,
            Unit::Bool,
            0.0,
            1.0,
            if default { 1.0 } else { 0.0 },
            Taper::Stepped,
            description,
        )
    }

    /// True when `v` is inside the range (NaN never is).
    pub fn contains(&self, v: f32) -> bool {
        v >= self.min && v <= self.max
    }

    /// Snap a value to what the parameter can hold: clamp to range, round stepped values.
    /// NaN becomes the default.
    pub fn sanitize(&self, v: f32) -> f32 {
        if v.is_nan() {
            return self.default;
        }
        let v = v.clamp(self.min, self.max);
        match self.taper {
            Taper::Stepped => v.round(),
            _ => v,
        }
    }

    /// The range as users read it: `-inf..10`, `20..20000`.
    pub fn range_text(&self) -> String {
        format!("{}..{}", fmt_num(self.min), fmt_num(self.max))
    }

    /// Value → 0..1 control travel, through the taper.
    pub fn to_normalized(&self, v: f32) -> f32 {
        let v = self.sanitize(v);
        let n = match self.taper {
            Taper::Linear | Taper::Stepped => {
                if self.max > self.min {
                    (v - self.min) / (self.max - self.min)
                } else {
                    0.0
                }
            }
            Taper::Log => {
                let (lo, hi) = (self.min.max(1e-6).ln(), self.max.ln());
                (v.max(1e-6).ln() - lo) / (hi - lo)
            }
            Taper::Fader => fader_db_to_pos(v),
        };
        n.clamp(0.0, 1.0)
    }

    /// 0..1 control travel → value, through the taper.
    pub fn from_normalized(&self, n: f32) -> f32 {
        let n = if n.is_nan() { 0.0 } else { n.clamp(0.0, 1.0) };
        let v = match self.taper {
            Taper::Linear | Taper::Stepped => self.min + n * (self.max - self.min),
            Taper::Log => {
                let (lo, hi) = (self.min.max(1e-6).ln(), self.max.ln());
                (lo + n * (hi - lo)).exp()
            }
            Taper::Fader => fader_pos_to_db(n),
        };
        self.sanitize(v)
    }

    /// The name of a choice value (`bell`), or None for other units.
    pub fn choice_name(&self, v: f32) -> Option<&'static str> {
        match self.unit {
            Unit::Choice(names) => names.get(v.round().max(0.0) as usize).copied(),
            _ => None,
        }
    }
}

fn fmt_num(v: f32) -> String {
    if v == f32::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{v}")
    }
}

/// Fader travel (0..1) → dB, the X32/X-Air four-segment law: 0.75 = 0 dB, 1 = +10 dB,
/// 0.5 = -10 dB, 0.25 = -30 dB, 0 = -inf.
pub fn fader_pos_to_db(f: f32) -> f32 {
    let f = f.clamp(0.0, 1.0);
    if f >= 0.5 {
        40.0 * f - 30.0
    } else if f >= 0.25 {
        80.0 * f - 50.0
    } else if f >= 0.0625 {
        160.0 * f - 70.0
    } else if f > 0.0 {
        480.0 * f - 90.0
    } else {
        f32::NEG_INFINITY
    }
}

/// dB → fader travel (0..1), inverse of [`fader_pos_to_db`]; -90 dB and below is 0.
pub fn fader_db_to_pos(db: f32) -> f32 {
    if db.is_nan() || db <= -90.0 {
        0.0
    } else if db >= -10.0 {
        ((db + 30.0) / 40.0).min(1.0)
    } else if db >= -30.0 {
        (db + 50.0) / 80.0
    } else if db >= -60.0 {
        (db + 70.0) / 160.0
    } else {
        (db + 90.0) / 480.0
    }
}

const NEG_INF: f32 = f32::NEG_INFINITY;

/// The EQ band types in `eq/N/type` order.
pub const EQ_TYPES: &[&str] = &["bell", "low_shelf", "high_shelf", "notch"];
/// Filter slopes in `hpf/slope` order: the value is the index; the file writes 12 or 24.
pub const SLOPES: &[&str] = &["12", "24"];

/// `ch/NAME/...`: the strip itself.
pub const STRIP: &[ParamSpec] = &[
    ParamSpec::new(
        "trim_db",
        Unit::Db,
        -24.0,
        24.0,
        0.0,
        Taper::Linear,
        "input trim",
    ),
    ParamSpec::toggle("invert", false, "polarity invert"),
    ParamSpec::new(
        "delay_ms",
        Unit::Ms,
        0.0,
        100.0,
        0.0,
        Taper::Linear,
        "time alignment delay",
    ),
    ParamSpec::new(
        "pan",
        Unit::Pan,
        -1.0,
        1.0,
        0.0,
        Taper::Linear,
        "pan (balance for stereo sources)",
    ),
    ParamSpec::new(
        "fader_db",
        Unit::Db,
        NEG_INF,
        10.0,
        0.0,
        Taper::Fader,
        "fader",
    ),
    ParamSpec::toggle("mute", false, "mute"),
    ParamSpec::toggle("solo", false, "solo in place"),
    ParamSpec::toggle("solo_safe", false, "stays audible while others are soloed"),
];

/// `.../hpf/...`
pub const HPF: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "high-pass filter on"),
    ParamSpec::new(
        "freq",
        Unit::Hz,
        10.0,
        20000.0,
        80.0,
        Taper::Log,
        "high-pass cutoff (-3 dB)",
    ),
    ParamSpec::new(
        "slope",
        Unit::Choice(SLOPES),
        0.0,
        1.0,
        0.0,
        Taper::Stepped,
        "slope, 12 or 24 dB/oct",
    ),
];

/// `.../lpf/...`
pub const LPF: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "low-pass filter on"),
    ParamSpec::new(
        "freq",
        Unit::Hz,
        10.0,
        20000.0,
        18000.0,
        Taper::Log,
        "low-pass cutoff (-3 dB)",
    ),
    ParamSpec::new(
        "slope",
        Unit::Choice(SLOPES),
        0.0,
        1.0,
        0.0,
        Taper::Stepped,
        "slope, 12 or 24 dB/oct",
    ),
];

/// `.../gate/...`
pub const GATE: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "gate on"),
    ParamSpec::new(
        "threshold_db",
        Unit::Db,
        -90.0,
        0.0,
        -50.0,
        Taper::Linear,
        "gate threshold",
    ),
    ParamSpec::new(
        "range_db",
        Unit::Db,
        0.0,
        90.0,
        60.0,
        Taper::Linear,
        "attenuation when closed",
    ),
    ParamSpec::new(
        "attack_ms",
        Unit::Ms,
        0.01,
        100.0,
        0.5,
        Taper::Log,
        "opening time",
    ),
    ParamSpec::new(
        "hold_ms",
        Unit::Ms,
        0.0,
        2000.0,
        50.0,
        Taper::Linear,
        "time held open after the signal falls",
    ),
    ParamSpec::new(
        "release_ms",
        Unit::Ms,
        1.0,
        5000.0,
        150.0,
        Taper::Log,
        "closing time",
    ),
];

/// `.../eq/N/...` (N = 1..=4)
pub const EQ_BAND: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "band on"),
    ParamSpec::new(
        "type",
        Unit::Choice(EQ_TYPES),
        0.0,
        3.0,
        0.0,
        Taper::Stepped,
        "bell, low_shelf, high_shelf or notch",
    ),
    ParamSpec::new(
        "freq",
        Unit::Hz,
        20.0,
        20000.0,
        1000.0,
        Taper::Log,
        "centre or corner frequency",
    ),
    ParamSpec::new(
        "gain_db",
        Unit::Db,
        -24.0,
        24.0,
        0.0,
        Taper::Linear,
        "boost or cut",
    ),
    ParamSpec::new(
        "q",
        Unit::Number,
        0.1,
        20.0,
        0.7,
        Taper::Log,
        "bandwidth (Q)",
    ),
];

/// Default centre frequencies of bands 1..=4 when the file leaves a band out.
pub const EQ_DEFAULT_FREQS: [f32; 4] = [100.0, 500.0, 2000.0, 8000.0];
/// How many EQ bands a strip has.
pub const EQ_BANDS: usize = 4;

/// `.../comp/...`
pub const COMP: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "compressor on"),
    ParamSpec::new(
        "threshold_db",
        Unit::Db,
        -60.0,
        0.0,
        -18.0,
        Taper::Linear,
        "threshold",
    ),
    ParamSpec::new(
        "ratio",
        Unit::Ratio,
        1.0,
        100.0,
        4.0,
        Taper::Log,
        "ratio n:1",
    ),
    ParamSpec::new(
        "knee_db",
        Unit::Db,
        0.0,
        24.0,
        6.0,
        Taper::Linear,
        "soft knee width",
    ),
    ParamSpec::new(
        "attack_ms",
        Unit::Ms,
        0.05,
        500.0,
        10.0,
        Taper::Log,
        "attack time",
    ),
    ParamSpec::new(
        "release_ms",
        Unit::Ms,
        5.0,
        5000.0,
        120.0,
        Taper::Log,
        "release time",
    ),
    ParamSpec::new(
        "makeup_db",
        Unit::Db,
        -12.0,
        24.0,
        0.0,
        Taper::Linear,
        "makeup gain",
    ),
];

/// `.../saturation/...`
pub const SATURATION: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "saturation on"),
    ParamSpec::new(
        "drive_db",
        Unit::Db,
        0.0,
        36.0,
        6.0,
        Taper::Linear,
        "drive into the waveshaper",
    ),
    ParamSpec::new("mix", Unit::Amount, 0.0, 1.0, 0.5, Taper::Linear, "dry/wet"),
];

/// `ch/NAME/insert/...`, `bus/NAME/insert/...`, `master/insert/...`: a hardware insert (only on
/// strips with `insert:`). The send and return gains and the wet amount glide like every gain;
/// polarity and bypass crossfade over the same time.
pub const INSERT: &[ParamSpec] = &[
    ParamSpec::new(
        "send_db",
        Unit::Db,
        NEG_INF,
        10.0,
        0.0,
        Taper::Fader,
        "level sent to the outboard gear",
    ),
    ParamSpec::new(
        "return_db",
        Unit::Db,
        NEG_INF,
        10.0,
        0.0,
        Taper::Fader,
        "level of the gear's return",
    ),
    ParamSpec::new(
        "wet",
        Unit::Amount,
        0.0,
        1.0,
        1.0,
        Taper::Linear,
        "return (1) against the dry signal (0)",
    ),
    ParamSpec::toggle("invert", false, "return polarity invert"),
    ParamSpec::toggle(
        "bypass",
        false,
        "replace the gear by a delay of its round-trip latency",
    ),
];

/// `ch/NAME/sends/BUS/...`
pub const SEND: &[ParamSpec] = &[
    ParamSpec::new(
        "level_db",
        Unit::Db,
        NEG_INF,
        10.0,
        NEG_INF,
        Taper::Fader,
        "send level",
    ),
    ParamSpec::toggle("pre_fader", false, "taken before the fader (and mute)"),
];

/// `bus/NAME/...`: a bus's own controls.
pub const BUS: &[ParamSpec] = &[
    ParamSpec::new("pan", Unit::Pan, -1.0, 1.0, 0.0, Taper::Linear, "balance"),
    ParamSpec::new(
        "fader_db",
        Unit::Db,
        NEG_INF,
        10.0,
        0.0,
        Taper::Fader,
        "fader",
    ),
    ParamSpec::toggle("mute", false, "mute"),
];

/// `bus/NAME/fx/reverb/...`
pub const REVERB: &[ParamSpec] = &[
    ParamSpec::new(
        "decay_s",
        Unit::Seconds,
        0.1,
        20.0,
        1.8,
        Taper::Log,
        "RT60 decay time",
    ),
    ParamSpec::new(
        "predelay_ms",
        Unit::Ms,
        0.0,
        250.0,
        20.0,
        Taper::Linear,
        "pre-delay",
    ),
    ParamSpec::new(
        "damping",
        Unit::Amount,
        0.0,
        1.0,
        0.5,
        Taper::Linear,
        "high-frequency damping",
    ),
    ParamSpec::new(
        "size",
        Unit::Amount,
        0.0,
        1.0,
        0.5,
        Taper::Linear,
        "room size",
    ),
];

/// `bus/NAME/fx/delay/...`
pub const DELAY: &[ParamSpec] = &[
    ParamSpec::new(
        "time_ms",
        Unit::Ms,
        1.0,
        2000.0,
        250.0,
        Taper::Log,
        "delay time",
    ),
    ParamSpec::new(
        "feedback",
        Unit::Amount,
        0.0,
        0.95,
        0.3,
        Taper::Linear,
        "feedback",
    ),
    ParamSpec::toggle("ping_pong", false, "echoes alternate left and right"),
    ParamSpec::new(
        "lowcut_hz",
        Unit::Hz,
        20.0,
        2000.0,
        100.0,
        Taper::Log,
        "low cut in the feedback loop",
    ),
    ParamSpec::new(
        "highcut_hz",
        Unit::Hz,
        1000.0,
        20000.0,
        8000.0,
        Taper::Log,
        "high cut in the feedback loop",
    ),
];

/// `master/limiter/...`
pub const LIMITER: &[ParamSpec] = &[
    ParamSpec::toggle("on", false, "true-peak limiter on"),
    ParamSpec::new(
        "ceiling_dbtp",
        Unit::Db,
        -20.0,
        0.0,
        -1.0,
        Taper::Linear,
        "ceiling in dBTP",
    ),
    ParamSpec::new(
        "release_ms",
        Unit::Ms,
        1.0,
        1000.0,
        50.0,
        Taper::Log,
        "release time",
    ),
];

/// `master/...`
pub const MASTER: &[ParamSpec] = &[ParamSpec::new(
    "fader_db",
    Unit::Db,
    NEG_INF,
    10.0,
    0.0,
    Taper::Fader,
    "master fader",
)];

/// `engine:` settings (not live parameters; validated from the file).
pub const ENGINE: &[ParamSpec] = &[
    ParamSpec::new(
        "sample_rate",
        Unit::Hz,
        8000.0,
        384000.0,
        48000.0,
        Taper::Stepped,
        "sample rate",
    ),
    ParamSpec::new(
        "block",
        Unit::Number,
        1.0,
        4096.0,
        64.0,
        Taper::Stepped,
        "frames per block",
    ),
];

/// `automation:` settings (not live parameters; validated from the file).
pub const AUTOMATION: &[ParamSpec] = &[ParamSpec::new(
    "glide_ms",
    Unit::Ms,
    0.0,
    10_000.0,
    250.0,
    Taper::Linear,
    "time a lane takes to glide back to its curve after a touch is released",
)];

/// Settings of a network surface (`kind: osc` / `kind: xair`; not live parameters).
pub const NET_SURFACE: &[ParamSpec] = &[
    ParamSpec::new(
        "rate_limit",
        Unit::Number,
        1.0,
        1_000_000.0,
        5000.0,
        Taper::Stepped,
        "messages per second accepted from one client (excess is dropped and counted)",
    ),
    ParamSpec::new(
        "max_packet",
        Unit::Number,
        64.0,
        65507.0,
        8192.0,
        Taper::Stepped,
        "largest UDP packet accepted, in bytes",
    ),
    ParamSpec::new(
        "feedback_hz",
        Unit::Number,
        1.0,
        1000.0,
        30.0,
        Taper::Stepped,
        "most feedback updates per second per address",
    ),
];

/// The spec of `key` in `group`. Panics only on a programming error (a key not in the table).
pub fn get(group: &'static [ParamSpec], key: &str) -> &'static ParamSpec {
    group
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("parameter key {key} not declared"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fader_law_matches_the_x32_table() {
        // DESIGN.md: 0.75 = 0 dB, 1 = +10, 0.5 = -10, 0.25 = -30, 0 = -inf.
        for (f, db) in [
            (1.0, 10.0),
            (0.75, 0.0),
            (0.5, -10.0),
            (0.25, -30.0),
            (0.0625, -60.0),
        ] {
            assert!(
                (fader_pos_to_db(f) - db).abs() < 1e-4,
                "{f} -> {}",
                fader_pos_to_db(f)
            );
            assert!((fader_db_to_pos(db) - f).abs() < 1e-6);
        }
        assert_eq!(fader_pos_to_db(0.0), f32::NEG_INFINITY);
        assert_eq!(fader_db_to_pos(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn log_taper_puts_geometric_mean_at_centre() {
        let freq = get(EQ_BAND, "freq");
        let mid = freq.from_normalized(0.5);
        assert!((mid - (20.0f32 * 20000.0).sqrt()).abs() < 0.5, "{mid}");
        assert!((freq.to_normalized(mid) - 0.5).abs() < 1e-5);
    }

    #[test]
    fn sanitize_clamps_and_steps() {
        let t = get(EQ_BAND, "type");
        assert_eq!(t.sanitize(2.4), 2.0);
        assert_eq!(t.sanitize(9.0), 3.0);
        assert_eq!(t.choice_name(3.0), Some("notch"));
        let f = get(STRIP, "fader_db");
        assert_eq!(f.sanitize(20.0), 10.0);
        assert!(f.contains(f32::NEG_INFINITY));
        assert!(!f.contains(f32::NAN));
        assert_eq!(f.range_text(), "-inf..10");
    }
}
