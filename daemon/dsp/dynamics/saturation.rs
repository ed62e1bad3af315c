//! Strip saturation: a smooth, odd-symmetric (odd harmonics only) soft clipper with drive and
//! dry/wet mix.
//!
//! The shaper is the rational curve `s(u) = u·(27 + u²)/(27 + 9u²)` for `|u| ≤ 3` and
//! `s(u) = ±1` beyond. It is tanh-like (within 2.5 % of tanh on |u| ≤ 3), monotonic
//! (`s'(u) = 9(u² − 9)²/(27 + 9u²)² ≥ 0`), has slope 1 at 0 and slope 0 where it meets the
//! clip at `|u| = 3` (so the curve is C¹), and costs one division instead of a libm `tanh`.
//!
//! With drive `d = 10^(drive_db/20)` the wet signal is `wet = s(d·x)/d`: unity gain for small
//! signals whatever the drive, so more drive means more saturation, not more level. Output:
//! `out = x + mix·(wet − x)`.
//!
//! **Bound.** `|wet| ≤ 1/d ≤ 1` for any input, so `|out| ≤ (1 − mix)·|x| + mix/d`; with
//! `mix = 1` the output never exceeds `1/d` (0 dBFS at most).
//!
//! Drive and mix glide (raised cosine, 20 ms); on/off is a glide of the effective mix to 0,
//! and at effective mix 0 the processor returns without touching the samples (bit-exact).
//! No oversampling: at high drive, harmonics above Nyquist alias.

use crate::dsp::util::{SmoothedGain, db_to_gain};

/// Frames per inner chunk (the size of the scratch buffers).
const CHUNK: usize = 4096;
/// Drive and mix glide time.
const GLIDE_MS: f32 = 20.0;
/// |u| beyond which the shaper is flat at ±1.
const CLIP_U: f32 = 3.0;

/// The shaper on an already driven sample, divided by the drive: `s(d·x)/d`.
#[inline(always)]
fn shape(x: f32, d: f32) -> f32 {
    let u = (d * x).clamp(-CLIP_U, CLIP_U);
    let u2 = u * u;
    u * (27.0 + u2) / (d * (27.0 + 9.0 * u2))
}

/// Soft saturation with drive and dry/wet mix (see the module docs). Disabled by default.
#[derive(Debug, Clone)]
pub struct Saturation {
    /// Mix requested by `set`, kept so `set_enabled(true)` can restore it.
    mix: f32,
    /// True when switched in.
    enabled: bool,
    /// Linear drive d, gliding.
    drive: SmoothedGain,
    /// Effective mix (mix when enabled, 0 when not), gliding.
    wet: SmoothedGain,
    /// Per-frame drive and mix of the current chunk while gliding (allocated in `new`).
    scratch_drive: Vec<f32>,
    scratch_wet: Vec<f32>,
}

impl Saturation {
    /// A disabled saturator with drive 0 dB and mix 1. Allocates its scratch buffers.
    pub fn new(sample_rate: f32) -> Self {
        Self {
            mix: 1.0,
            enabled: false,
            drive: SmoothedGain::new(1.0, GLIDE_MS, sample_rate),
            wet: SmoothedGain::new(0.0, GLIDE_MS, sample_rate),
            scratch_drive: crate::dsp::util::zeroed(CHUNK),
            scratch_wet: crate::dsp::util::zeroed(CHUNK),
        }
    }

    /// Set drive (0..48 dB) and mix (0 = dry .. 1 = wet); values outside are clamped. Both
    /// glide over 20 ms. Real-time safe.
    pub fn set(&mut self, drive_db: f32, mix: f32) {
        let drive_db = if drive_db.is_finite() {
            drive_db.clamp(0.0, 48.0)
        } else {
            0.0
        };
        self.drive.set_target(db_to_gain(drive_db));
        self.mix = if mix.is_nan() {
            0.0
        } else {
            mix.clamp(0.0, 1.0)
        };
        self.update_wet();
    }

    /// Switch in or out by gliding the effective mix (no click).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        self.update_wet();
    }

    /// True if switched in.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Jump the glides to their targets (for stream restarts, not audible changes).
    pub fn reset(&mut self) {
        self.drive.reset(self.drive.target());
        self.wet.reset(self.wet.target());
    }

    fn update_wet(&mut self) {
        self.wet
            .set_target(if self.enabled { self.mix } else { 0.0 });
    }

    /// Saturate 1 or more equal-length channels in place. Real-time safe.
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, the only feature `process_avx2` is built with.
            unsafe { self.process_avx2(chans) };
            return;
        }
        self.process_impl(chans);
    }

    /// [`Self::process`] compiled for AVX2 (wider vectors; the same arithmetic and result).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn process_avx2(&mut self, chans: &mut [&mut [f32]]) {
        self.process_impl(chans);
    }

    #[inline(always)]
    fn process_impl(&mut self, chans: &mut [&mut [f32]]) {
        let Some(frames) = chans.iter().map(|c| c.len()).min() else {
            return;
        };
        if !self.drive.is_smoothing() && !self.wet.is_smoothing() {
            let (d, m) = (self.drive.current(), self.wet.current());
            if m == 0.0 {
                return;
            }
            for ch in chans.iter_mut() {
                for s in ch[..frames].iter_mut() {
                    let x = *s;
                    *s = x + m * (shape(x, d) - x);
                }
            }
            return;
        }
        let mut start = 0;
        while start < frames {
            let end = (start + CHUNK).min(frames);
            let n = end - start;
            let (ds, ms) = (&mut self.scratch_drive[..n], &mut self.scratch_wet[..n]);
            self.drive.fill(ds);
            self.wet.fill(ms);
            for ch in chans.iter_mut() {
                for ((s, &d), &m) in ch[start..end].iter_mut().zip(ds.iter()).zip(ms.iter()) {
                    let x = *s;
                    *s = x + m * (shape(x, d) - x);
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn sat(drive_db: f32, mix: f32) -> Saturation {
        let mut s = Saturation::new(SR);
        s.set(drive_db, mix);
        s.set_enabled(true);
        s.reset();
        s
    }

    #[test]
    fn mix_zero_is_bit_transparent() {
        let x = sine(997.0, 0.99, 9600);
        let mut s = sat(24.0, 0.0);
        assert_eq!(run_mono(&x, 256, |ch| s.process(ch)), x);
        // Also after gliding there from a wet setting.
        let mut s = sat(24.0, 0.7);
        let _ = run_mono(&x, 256, |ch| s.process(ch));
        s.set(24.0, 0.0);
        let _ = run_mono(&x, 256, |ch| s.process(ch)); // 200 ms > 20 ms glide
        assert_eq!(run_mono(&x, 256, |ch| s.process(ch)), x);
        // And switched off, whatever the mix.
        let mut s = sat(24.0, 1.0);
        s.set_enabled(false);
        s.reset();
        assert_eq!(run_mono(&x, 256, |ch| s.process(ch)), x);
    }

    #[test]
    fn small_signals_pass_at_unity() {
        // s(u)/u = 1 - 8u²/27 + O(u⁴): at -60 dBFS and 24 dB drive, u = 0.016 -> -0.0007 dB.
        for drive in [0.0, 12.0, 24.0] {
            let x = sine(1000.0, amp(-60.0), 4800);
            let mut s = sat(drive, 1.0);
            let y = run_mono(&x, 256, |ch| s.process(ch));
            let g = gain_db(&y, &x);
            assert!(g.abs() < 0.01, "drive {drive}: gain {g} dB");
        }
    }

    #[test]
    fn loud_sine_gains_odd_harmonics_only() {
        // 1 kHz, 4800 samples = 100 whole cycles: 1, 2, 3 kHz are exact DFT bins.
        let x = sine(1000.0, 0.9, 4800);
        let mut s = sat(12.0, 1.0);
        let y = run_mono(&x, 256, |ch| s.process(ch));
        let h1 = dft_mag(&y, 1000.0);
        let h2 = 20.0 * (dft_mag(&y, 2000.0) / h1).log10();
        let h3 = 20.0 * (dft_mag(&y, 3000.0) / h1).log10();
        println!("H3 {h3:.1} dB, H2 {h2:.1} dB re fundamental");
        assert!(h3 > -60.0, "third harmonic {h3} dB");
        // An odd-symmetric curve makes no even harmonics (float noise only).
        assert!(h2 < -100.0, "second harmonic {h2} dB");
        // The dry signal has no harmonics: the measurement itself is clean.
        assert!(dft_mag(&x, 3000.0) / 0.9 < 1e-5);
    }

    #[test]
    fn output_never_exceeds_the_documented_bound() {
        for (drive_db, mix) in [(0.0f32, 1.0f32), (6.0, 1.0), (20.0, 1.0), (6.0, 0.5)] {
            let x = sine(441.0, 8.0, 9600); // +18 dBFS
            let mut s = sat(drive_db, mix);
            let y = run_mono(&x, 256, |ch| s.process(ch));
            let d = 10f32.powf(drive_db / 20.0);
            for (&o, &i) in y.iter().zip(&x) {
                let bound = (1.0 - mix) * i.abs() + mix / d;
                assert!(
                    o.abs() <= bound * (1.0 + 1e-6),
                    "drive {drive_db} mix {mix}: {o} > {bound}"
                );
            }
            // With full mix the clip level 1/d is actually reached.
            if mix == 1.0 {
                let peak = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(
                    (peak * d - 1.0).abs() < 1e-5,
                    "peak {peak} vs 1/d {}",
                    1.0 / d
                );
            }
        }
    }

    #[test]
    fn drive_changes_glide() {
        let x = sine(1000.0, 0.5, 19_200);
        let mut s = sat(0.0, 1.0);
        let mut y = x.clone();
        for (k, blk) in y.chunks_mut(4800).enumerate() {
            if k == 2 {
                s.set(30.0, 1.0);
            }
            s.process(&mut [blk]);
        }
        // Compare each sample with the static curves at the two drives: during the glide the
        // output lies between them, and no sample jumps past both.
        let lo = |x: f32| shape(x, 1.0);
        let hi = |x: f32| shape(x, 10f32.powf(1.5));
        let mut between = 0;
        for i in 9600..9600 + 960 {
            let (a, b) = (lo(x[i]), hi(x[i]));
            assert!(
                y[i].abs() <= a.abs().max(b.abs()) + 1e-6
                    && y[i].abs() >= a.abs().min(b.abs()) - 1e-6
            );
            if (y[i] - a).abs() > 1e-3 && (y[i] - b).abs() > 1e-3 {
                between += 1;
            }
        }
        assert!(between > 500, "only {between} samples in the glide");
    }

    #[test]
    fn robust_on_hostile_input_without_allocating() {
        let mut s = sat(18.0, 0.8);
        assert_robust(|ch| s.process(ch), |x| x.max(1.0));
    }
}
