//! Stage one of loading a session: the file's shape, as serde reads it. Every key is declared
//! here (`deny_unknown_fields`), every value that the validator may reject is kept with its
//! source location ([`Spanned`]), and nothing is checked beyond YAML types. Ranges, names,
//! references and defaults belong to [`super::validate`].

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A scalar as written, kept loose so the validator can explain what is wrong with it
/// (`"abc"` where a number belongs, `-inf` where the range stops at -24, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Null,
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{}", fmt_f64(*v)),
            Scalar::Bool(v) => write!(f, "{v}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Null => f.write_str("null"),
        }
    }
}

/// A float as users write it: `12`, `0.5`, `-inf`, `.nan`.
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v == f64::INFINITY {
        "inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{v}")
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a single value (number or text)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A numeric value with its location.
pub type Num = Spanned<Scalar>;

/// A true/false value with its location.
pub type Flag = Spanned<Scalar>;

/// One port (`3`, `"outboard:in"`) or a list of them (`[3, 4]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Ports {
    One(Scalar),
    Many(Vec<Spanned<Scalar>>),
}

struct PortsVisitor;

impl<'de> Visitor<'de> for PortsVisitor {
    type Value = Ports;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a port number or name, or a list of them")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Ports, E> {
        ScalarVisitor.visit_bool(v).map(Ports::One)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ports, E> {
        ScalarVisitor.visit_i64(v).map(Ports::One)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ports, E> {
        ScalarVisitor.visit_u64(v).map(Ports::One)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Ports, E> {
        ScalarVisitor.visit_i128(v).map(Ports::One)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Ports, E> {
        ScalarVisitor.visit_u128(v).map(Ports::One)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ports, E> {
        ScalarVisitor.visit_f64(v).map(Ports::One)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Ports, E> {
        ScalarVisitor.visit_str(v).map(Ports::One)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Ports, E> {
        ScalarVisitor.visit_string(v).map(Ports::One)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Ports, E> {
        Ok(Ports::One(Scalar::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Ports, E> {
        Ok(Ports::One(Scalar::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ports, A::Error> {
        let mut v = Vec::new();
        while let Some(p) = seq.next_element::<Spanned<Scalar>>()? {
            v.push(p);
        }
        Ok(Ports::Many(v))
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PortsVisitor)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub version: Spanned<Scalar>,
    pub engine: Option<RawEngine>,
    pub channels: Option<Vec<Spanned<RawChannel>>>,
    pub buses: Option<Vec<Spanned<RawBus>>>,
    pub master: Option<RawMaster>,
    pub surfaces: Option<Vec<Spanned<RawSurface>>>,
    pub automation: Option<RawAutomation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutomation {
    pub glide_ms: Option<Num>,
    pub read_touch: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub sample_rate: Option<Num>,
    pub block: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub file: Option<Spanned<String>>,
    pub input: Option<Spanned<Ports>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPass {
    pub freq: Option<Num>,
    pub slope: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub threshold_db: Option<Num>,
    pub range_db: Option<Num>,
    pub attack_ms: Option<Num>,
    pub hold_ms: Option<Num>,
    pub release_ms: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBand {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub freq: Option<Num>,
    pub gain_db: Option<Num>,
    pub q: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComp {
    pub threshold_db: Option<Num>,
    pub ratio: Option<Num>,
    pub knee_db: Option<Num>,
    pub attack_ms: Option<Num>,
    pub release_ms: Option<Num>,
    pub makeup_db: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSaturation {
    pub drive_db: Option<Num>,
    pub mix: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInsert {
    pub send: Spanned<Scalar>,
    #[serde(rename = "return")]
    pub ret: Spanned<Scalar>,
    pub latency: Option<Spanned<Scalar>>,
    pub position: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSend {
    pub bus: Spanned<String>,
    pub level_db: Option<Num>,
    pub pre_fader: Option<Flag>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub name: Spanned<String>,
    pub source: Option<Spanned<RawSource>>,
    pub trim_db: Option<Num>,
    pub invert: Option<Flag>,
    pub delay_ms: Option<Num>,
    pub hpf: Option<RawPass>,
    pub lpf: Option<RawPass>,
    pub gate: Option<RawGate>,
    pub eq: Option<Vec<Spanned<RawBand>>>,
    pub comp: Option<RawComp>,
    pub saturation: Option<RawSaturation>,
    pub insert: Option<RawInsert>,
    pub pan: Option<Num>,
    pub fader_db: Option<Num>,
    pub mute: Option<Flag>,
    pub solo: Option<Flag>,
    pub solo_safe: Option<Flag>,
    pub sends: Option<Vec<Spanned<RawSend>>>,
    pub output: Option<Spanned<String>>,
    pub color: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawBusKind {
    Group,
    Aux,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReverb {
    pub decay_s: Option<Num>,
    pub predelay_ms: Option<Num>,
    pub damping: Option<Num>,
    pub size: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelay {
    pub time_ms: Option<Num>,
    pub feedback: Option<Num>,
    pub ping_pong: Option<Flag>,
    pub lowcut_hz: Option<Num>,
    pub highcut_hz: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFx {
    pub reverb: Option<RawReverb>,
    pub delay: Option<RawDelay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    pub name: Spanned<String>,
    pub kind: RawBusKind,
    pub eq: Option<Vec<Spanned<RawBand>>>,
    pub comp: Option<RawComp>,
    pub fx: Option<RawFx>,
    pub pan: Option<Num>,
    pub fader_db: Option<Num>,
    pub mute: Option<Flag>,
    pub output: Option<Spanned<String>>,
    pub outputs: Option<Spanned<Ports>>,
    pub insert: Option<RawInsert>,
    pub color: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimiter {
    pub ceiling_dbtp: Option<Num>,
    pub release_ms: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaster {
    pub eq: Option<Vec<Spanned<RawBand>>>,
    pub comp: Option<RawComp>,
    pub limiter: Option<RawLimiter>,
    pub fader_db: Option<Num>,
    pub outputs: Option<Spanned<Ports>>,
    pub insert: Option<RawInsert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSurfaceKind {
    Osc,
    Xair,
    Mcu,
    MidiMap,
    Mtc,
}

/// One surface; which keys apply depends on `kind`, checked by the validator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSurface {
    pub kind: RawSurfaceKind,
    pub listen: Option<Spanned<String>>,
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub read_only: Option<Spanned<Vec<Spanned<String>>>>,
    pub rate_limit: Option<Num>,
    pub max_packet: Option<Num>,
    pub feedback_hz: Option<Num>,
    pub midi: Option<Spanned<String>>,
    pub extenders: Option<Spanned<Vec<Spanned<String>>>>,
    pub profile: Option<Spanned<String>>,
    pub map: Option<Spanned<String>>,
}
