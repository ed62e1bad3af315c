//! Value conversions between the X-Air wire format and our parameter values.
//!
//! The X-Air console sends every continuous value as a float 0..1 and every switch or choice as
//! an int; each address has its own mapping of that float onto the real unit (the console's
//! parameter table: `linf [lo, hi]`, `logf [lo, hi]`, `enum {…}` or the fader `level` law).
//! [`Conv`] is one such mapping, applied in both directions:
//!
//! - [`Conv::to_ours`]: an incoming X-Air argument → a value in our unit. Out-of-range input is
//!   clamped to 0..1 (floats) or to the list (enums) first, as the console does; the result is
//!   then clamped by the caller to our parameter's range ([`crate::params::ParamSpec::sanitize`]).
//! - [`Conv::to_xair`]: our value → the X-Air argument. Where our range is wider than the
//!   console's (EQ gain ±24 against ±15, Q 0.1..20 against 0.3..10, ...), the value shown to the
//!   console is clamped to the console's range; the table in the module doc of
//!   [`super::address`] lists every such case.
//!
//! Facts used (public X-Air / X32 OSC parameter tables): fader `level` law with 0.75 = 0 dB
//! (the same four segments as [`crate::params::spec::fader_pos_to_db`]); EQ frequency
//! `logf [20, 20000]`, gain `linf [-15, 15]`, Q `logf [10, 0.3]` (reversed: 0 = Q 10, 1 = Q 0.3),
//! band type `enum {LCut, LShv, PEQ, VEQ, HShv, HCut}`; compressor ratio
//! `enum {1.1, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10, 20, 100}`; pan `linf [-100, 100]`.

use rosc::OscType;

use crate::params::spec::{fader_db_to_pos, fader_pos_to_db};

/// The X-Air EQ band types, in wire order (`/ch/NN/eq/B/type` int).
pub const XAIR_EQ_TYPES: [&str; 6] = ["LCut", "LShv", "PEQ", "VEQ", "HShv", "HCut"];

/// The X-Air compressor ratios, in wire order (`/ch/NN/dyn/ratio` int).
pub const XAIR_RATIOS: [f32; 12] = [
    1.1, 1.3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 100.0,
];

/// A value as the console puts it on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum XVal {
    Int(i32),
    Float(f32),
    Str(String),
}

impl XVal {
    /// The OSC argument.
    pub fn to_osc(&self) -> OscType {
        match self {
            XVal::Int(i) => OscType::Int(*i),
            XVal::Float(f) => OscType::Float(*f),
            XVal::Str(s) => OscType::String(s.clone()),
        }
    }

    /// A numeric reading of an OSC argument: ints, floats, doubles, longs and bools are
    /// accepted (clients differ in which they send for switches). NaN and infinities are not.
    pub fn number(arg: &OscType) -> Option<f32> {
        let v = match arg {
            OscType::Int(i) => *i as f32,
            OscType::Float(f) => *f,
            OscType::Double(d) => *d as f32,
            OscType::Long(l) => *l as f32,
            OscType::Bool(b) => f32::from(u8::from(*b)),
            _ => return None,
        };
        v.is_finite().then_some(v)
    }
}

/// Why an incoming X-Air argument was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvError {
    #[error("expected a number, got {got}")]
    NotANumber { got: String },
}

/// One mapping between an X-Air value and ours (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Conv {
    /// Float 0..1 on the console's four-segment fader law ↔ dB (`-inf` at 0).
    Fader,
    /// Int 1 = on ↔ our mute 0 (`mix/on` is "not muted").
    OnInverted,
    /// Int 0/1 ↔ 0/1.
    Switch,
    /// Float 0..1 ↔ pan -1..+1 (the console's `linf [-100, 100]`, scaled to ours).
    Pan,
    /// Float 0..1 ↔ `lo + x (hi - lo)`.
    Lin { lo: f32, hi: f32 },
    /// Float 0..1 ↔ `lo (hi/lo)^x`; `hi < lo` for reversed ranges (EQ Q).
    Log { lo: f32, hi: f32 },
    /// Int index of [`XAIR_EQ_TYPES`] ↔ our `eq/N/type` (bell, low_shelf, high_shelf, notch).
    EqType,
    /// Int index of [`XAIR_RATIOS`] ↔ ratio n:1.
    Ratio,
}

impl Conv {
    /// An incoming X-Air argument → our value (not yet clamped to our parameter's range).
    ///
    /// # Errors
    /// [`ConvError::NotANumber`] for strings, blobs, NaN and infinities.
    pub fn to_ours(self, arg: &OscType) -> Result<f32, ConvError> {
        let v = XVal::number(arg).ok_or_else(|| ConvError::NotANumber {
            got: format!("{arg:?}"),
        })?;
        Ok(self.number_to_ours(v))
    }

    /// [`Conv::to_ours`] on an already numeric argument.
    pub fn number_to_ours(self, v: f32) -> f32 {
        let x = v.clamp(0.0, 1.0);
        match self {
            Conv::Fader => fader_pos_to_db(x),
            Conv::OnInverted => {
                if v >= 0.5 {
                    0.0
                } else {
                    1.0
                }
            }
            Conv::Switch => {
                if v >= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Conv::Pan => 2.0 * x - 1.0,
            Conv::Lin { lo, hi } => lo + x * (hi - lo),
            Conv::Log { lo, hi } => lo * (hi / lo).powf(x),
            Conv::EqType => eq_type_to_ours(enum_index(v, XAIR_EQ_TYPES.len())),
            Conv::Ratio => XAIR_RATIOS[enum_index(v, XAIR_RATIOS.len())],
        }
    }

    /// Our value → the X-Air argument (clamped to the console's range).
    pub fn to_xair(self, v: f32) -> XVal {
        match self {
            Conv::Fader => XVal::Float(fader_db_to_pos(v)),
            Conv::OnInverted => XVal::Int(i32::from(v < 0.5)),
            Conv::Switch => XVal::Int(i32::from(v >= 0.5)),
            Conv::Pan => XVal::Float(((v.clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0)),
            Conv::Lin { lo, hi } => {
                let x = (v - lo) / (hi - lo);
                XVal::Float(if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) })
            }
            Conv::Log { lo, hi } => {
                let (a, b) = (lo.min(hi), lo.max(hi));
                let v = if v.is_nan() { a } else { v.clamp(a, b) };
                XVal::Float(((v / lo).ln() / (hi / lo).ln()).clamp(0.0, 1.0))
            }
            Conv::EqType => XVal::Int(eq_type_to_xair(v)),
            Conv::Ratio => XVal::Int(nearest_ratio(v) as i32),
        }
    }
}

/// A float or int enum argument → a valid index (rounded, clamped).
fn enum_index(v: f32, len: usize) -> usize {
    (v.round().max(0.0) as usize).min(len - 1)
}

/// X-Air band type index → ours. The console's cut filters have no counterpart in our EQ
/// bands (our HPF/LPF are separate processors): LCut becomes a low shelf, HCut a high shelf;
/// VEQ (the console's "vintage" bell) becomes a bell.
fn eq_type_to_ours(i: usize) -> f32 {
    match i {
        0 | 1 => 1.0, // LCut, LShv → low_shelf
        4 | 5 => 2.0, // HShv, HCut → high_shelf
        _ => 0.0,     // PEQ, VEQ → bell
    }
}

/// Our band type → X-Air index. Our notch has no console counterpart: it is shown as PEQ.
fn eq_type_to_xair(v: f32) -> i32 {
    match v.round() as i32 {
        1 => 1, // low_shelf → LShv
        2 => 4, // high_shelf → HShv
        _ => 2, // bell, notch → PEQ
    }
}

/// Index of the console ratio nearest to `r` (nearest on a log scale, as ratios are heard).
fn nearest_ratio(r: f32) -> usize {
    let r = if r.is_nan() { 1.0 } else { r.max(1.0) };
    let mut best = 0;
    for (i, &c) in XAIR_RATIOS.iter().enumerate() {
        if (c.ln() - r.ln()).abs() < (XAIR_RATIOS[best].ln() - r.ln()).abs() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: XVal) -> f32 {
        match x {
            XVal::Float(f) => f,
            other => panic!("expected a float, got {other:?}"),
        }
    }

    fn i(x: XVal) -> i32 {
        match x {
            XVal::Int(i) => i,
            other => panic!("expected an int, got {other:?}"),
        }
    }

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn fader_law_both_directions_at_the_documented_points() {
        // DESIGN.md / the console's level law: 1.0 = +10, 0.75 = 0, 0.5 = -10, 0.25 = -30,
        // 0.0625 = -60, 0 = -inf.
        let table = [
            (1.0, 10.0),
            (0.75, 0.0),
            (0.5, -10.0),
            (0.25, -30.0),
            (0.0625, -60.0),
        ];
        for (x, db) in table {
            let ours = Conv::Fader.to_ours(&OscType::Float(x)).unwrap();
            assert!(close(ours, db, 1e-4), "{x} -> {ours} dB, want {db}");
            let back = f(Conv::Fader.to_xair(db));
            assert!(close(back, x, 1e-6), "{db} dB -> {back}, want {x}");
        }
        assert_eq!(
            Conv::Fader.to_ours(&OscType::Float(0.0)).unwrap(),
            f32::NEG_INFINITY
        );
        assert_eq!(f(Conv::Fader.to_xair(f32::NEG_INFINITY)), 0.0);
        // Segment interiors: 0.875 = +5, 0.375 = -20, 0.125 = -50, 0.03125 = -75.
        for (x, db) in [
            (0.875, 5.0),
            (0.375, -20.0),
            (0.125, -50.0),
            (0.03125, -75.0),
        ] {
            let ours = Conv::Fader.number_to_ours(x);
            assert!(close(ours, db, 1e-4), "{x} -> {ours}");
            assert!(close(f(Conv::Fader.to_xair(db)), x, 1e-6));
        }
        // Out-of-range input clamps like the console: 1.5 is +10 dB, -1 is -inf.
        assert_eq!(Conv::Fader.number_to_ours(1.5), 10.0);
        assert_eq!(Conv::Fader.number_to_ours(-1.0), f32::NEG_INFINITY);
    }

    #[test]
    fn mix_on_is_inverted_mute() {
        assert_eq!(Conv::OnInverted.to_ours(&OscType::Int(1)).unwrap(), 0.0);
        assert_eq!(Conv::OnInverted.to_ours(&OscType::Int(0)).unwrap(), 1.0);
        // Some clients send floats for switches.
        assert_eq!(Conv::OnInverted.to_ours(&OscType::Float(1.0)).unwrap(), 0.0);
        assert_eq!(Conv::OnInverted.to_ours(&OscType::Float(0.0)).unwrap(), 1.0);
        assert_eq!(i(Conv::OnInverted.to_xair(1.0)), 0, "muted -> off");
        assert_eq!(i(Conv::OnInverted.to_xair(0.0)), 1, "unmuted -> on");
        assert_eq!(i(Conv::Switch.to_xair(1.0)), 1);
        assert_eq!(Conv::Switch.to_ours(&OscType::Int(0)).unwrap(), 0.0);
    }

    #[test]
    fn pan_maps_half_to_centre() {
        for (x, pan) in [
            (0.0, -1.0),
            (0.25, -0.5),
            (0.5, 0.0),
            (0.75, 0.5),
            (1.0, 1.0),
        ] {
            assert!(close(Conv::Pan.number_to_ours(x), pan, 1e-6));
            assert!(close(f(Conv::Pan.to_xair(pan)), x, 1e-6));
        }
    }

    #[test]
    fn eq_values_match_the_console_tables() {
        let freq = Conv::Log {
            lo: 20.0,
            hi: 20000.0,
        };
        // logf [20, 20000]: 0 = 20 Hz, 1/3 = 200 Hz, 2/3 = 2 kHz, 1 = 20 kHz, 0.5 = 632.5 Hz.
        for (x, hz) in [
            (0.0, 20.0),
            (1.0 / 3.0, 200.0),
            (0.5, 632.456),
            (2.0 / 3.0, 2000.0),
            (1.0, 20000.0),
        ] {
            let ours = freq.number_to_ours(x);
            assert!(close(ours, hz, hz * 1e-4), "{x} -> {ours} Hz, want {hz}");
            assert!(close(f(freq.to_xair(hz)), x, 1e-5));
        }
        let gain = Conv::Lin {
            lo: -15.0,
            hi: 15.0,
        };
        for (x, db) in [(0.0, -15.0), (0.25, -7.5), (0.5, 0.0), (1.0, 15.0)] {
            assert!(close(gain.number_to_ours(x), db, 1e-5));
            assert!(close(f(gain.to_xair(db)), x, 1e-6));
        }
        // Our gain range is ±24: the console sees it clamped to ±15.
        assert_eq!(f(gain.to_xair(24.0)), 1.0);
        assert_eq!(f(gain.to_xair(-20.0)), 0.0);
        // Q logf [10, 0.3]: 0 = 10, 1 = 0.3, 0.5 = sqrt(3) = 1.732.
        let q = Conv::Log { lo: 10.0, hi: 0.3 };
        for (x, qv) in [(0.0, 10.0), (0.5, 3.0f32.sqrt()), (1.0, 0.3)] {
            let ours = q.number_to_ours(x);
            assert!(close(ours, qv, 1e-4), "{x} -> Q {ours}, want {qv}");
            assert!(close(f(q.to_xair(qv)), x, 1e-5));
        }
        // Q outside the console's range is shown at its ends.
        assert_eq!(f(q.to_xair(20.0)), 0.0);
        assert_eq!(f(q.to_xair(0.1)), 1.0);
    }

    #[test]
    fn eq_type_enumeration() {
        // LCut LShv PEQ VEQ HShv HCut → low_shelf low_shelf bell bell high_shelf high_shelf.
        let ours: Vec<f32> = (0..6)
            .map(|n| Conv::EqType.to_ours(&OscType::Int(n)).unwrap())
            .collect();
        assert_eq!(ours, [1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
        // bell low_shelf high_shelf notch → PEQ LShv HShv PEQ.
        let back: Vec<i32> = (0..4).map(|n| i(Conv::EqType.to_xair(n as f32))).collect();
        assert_eq!(back, [2, 1, 4, 2]);
        assert_eq!(XAIR_EQ_TYPES[2], "PEQ");
        // The types with a counterpart round-trip exactly.
        for n in [1, 2, 4] {
            let v = Conv::EqType.to_ours(&OscType::Int(n)).unwrap();
            assert_eq!(i(Conv::EqType.to_xair(v)), n);
        }
        // Out-of-list indices clamp.
        assert_eq!(Conv::EqType.to_ours(&OscType::Int(99)).unwrap(), 2.0);
        assert_eq!(Conv::EqType.to_ours(&OscType::Int(-3)).unwrap(), 1.0);
    }

    #[test]
    fn ratio_enumeration_and_nearest_match() {
        for (n, &r) in XAIR_RATIOS.iter().enumerate() {
            assert_eq!(Conv::Ratio.to_ours(&OscType::Int(n as i32)).unwrap(), r);
            assert_eq!(i(Conv::Ratio.to_xair(r)), n as i32);
        }
        assert_eq!(Conv::Ratio.to_ours(&OscType::Int(6)).unwrap(), 4.0);
        // Ours between console steps: nearest on a log scale.
        assert_eq!(i(Conv::Ratio.to_xair(1.0)), 0, "1:1 -> 1.1");
        assert_eq!(
            i(Conv::Ratio.to_xair(6.0)),
            8,
            "6 -> 7.0 (ln distance 0.154 vs 0.182 to 5.0)"
        );
        assert_eq!(i(Conv::Ratio.to_xair(50.0)), 11, "50 -> 100");
        assert_eq!(i(Conv::Ratio.to_xair(40.0)), 10, "40 -> 20");
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        for arg in [
            OscType::String("x".into()),
            OscType::Float(f32::NAN),
            OscType::Float(f32::INFINITY),
            OscType::Blob(vec![1, 2]),
            OscType::Nil,
        ] {
            assert!(Conv::Fader.to_ours(&arg).is_err(), "{arg:?}");
        }
    }
}
