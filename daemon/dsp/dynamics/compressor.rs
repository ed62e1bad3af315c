//! The strip/bus/master compressor: feed-forward, log-domain, after Giannoulis, Massberg and
//! Reiss, "Digital Dynamic Range Compressor Design — A Tutorial and Analysis" (JAES 2012).
//!
//! Signal flow per sample (stereo-linked: one gain for all channels):
//! 1. Level: `x = 20·log10(max_c |in_c|)` (sample peak, dBFS).
//! 2. Gain computer (quadratic soft knee of width `W = knee_db` around threshold `T`, ratio
//!    `R`), written as gain *reduction* `g ≥ 0` dB:
//!    - `2(x−T) < −W`: `g = 0`
//!    - `2|x−T| ≤ W`: `g = (1 − 1/R)·(x − T + W/2)² / (2W)`
//!    - `2(x−T) > W`: `g = (1 − 1/R)·(x − T)`
//! 3. Detector on `g` in dB, in two stages (the paper's decoupled smooth peak detector with
//!    its release moved to the first stage, so each time constant acts alone):
//!    - release stage: `r[n] = max(g[n], αR·r[n−1] + (1−αR)·g[n])` (instant rise, smooth
//!      exponential fall),
//!    - attack stage: `y[n] = αA·y[n−1] + (1−αA)·r[n]` while `r[n] > y[n−1]`, else `y[n] = r[n]`.
//!
//!    with `α = exp(−1/(τ·fs))`.
//! 4. Output gain `10^((makeup − y)/20)`; makeup glides (raised cosine, 20 ms).
//!
//! **Meaning of the times.** For a step in the gain-computer output, the applied gain
//! reduction `y` (in dB) reaches `1 − 1/e` (63.2 %) of the step's final value after exactly
//! `attack_ms` (increasing reduction) and falls to `1/e` of its starting value after exactly
//! `release_ms` (decreasing reduction). Because stage 1 rises instantly and stage 2 falls
//! instantly, the two constants do not add up as they would in a plain cascade. On a sine the
//! level reaches its peak within a quarter period, so measured times are within a fraction of
//! a millisecond of the constants. The peak-holding first stage also removes the waveform
//! ripple that a single branching filter would follow, so the static curve holds for sines
//! (the threshold refers to the sine's peak level).
//!
//! **Parameter changes** never jump the gain: threshold, ratio and knee move the gain-computer
//! output, which reaches the gain only through the detector (so it glides with the
//! attack/release times; `attack_ms = 0` means instantaneous and is the one way to get a step),
//! makeup glides over 20 ms, and on/off crossfades over 10 ms.

use super::fastmath::{fast_db_to_gain, fast_gain_to_db};
use crate::dsp::util::{SmoothedGain, db_to_gain, one_pole_coeff};

/// Frames processed per inner chunk (the size of the scratch gain buffer).
const CHUNK: usize = 4096;
/// Makeup-gain glide time.
const MAKEUP_GLIDE_MS: f32 = 20.0;
/// On/off crossfade time.
const ENABLE_FADE_MS: f32 = 10.0;
/// Detector values below this (dB) snap to 0 so the state never decays into subnormals.
const DETECTOR_FLOOR_DB: f32 = 1e-6;

/// Feed-forward stereo-linked compressor (see the module docs for the exact law).
///
/// Disabled by default; while disabled (after its fade-out) it is bit-transparent and costs
/// nothing.
#[derive(Debug, Clone)]
pub struct Compressor {
    sample_rate: f32,
    /// Threshold T, dBFS (sample peak).
    threshold_db: f32,
    /// Knee width W, dB.
    knee_db: f32,
    /// 1 − 1/R: the fraction of the overshoot that is removed above the knee.
    slope: f32,
    /// Linear level where the knee starts (T − W/2); below it the gain computer gives 0
    /// without a logarithm.
    knee_start_lin: f32,
    /// Attack-stage coefficient αA.
    alpha_attack: f32,
    /// Release-stage coefficient αR.
    alpha_release: f32,
    /// Release stage state r (dB of reduction).
    release_state: f32,
    /// Attack stage state y (dB of reduction): the applied reduction.
    reduction_db: f32,
    /// Linear makeup gain, gliding.
    makeup: SmoothedGain,
    /// 0 = bypassed .. 1 = fully in: crossfade between dry and compressed.
    enable: SmoothedGain,
    /// Per-frame gains of the current chunk (allocated in `new`).
    scratch: Vec<f32>,
}

impl Compressor {
    /// A disabled compressor with threshold 0 dBFS, ratio 1 (transparent), knee 0, attack
    /// 10 ms, release 100 ms, makeup 0 dB. Allocates its scratch buffer.
    pub fn new(sample_rate: f32) -> Self {
        let mut c = Self {
            sample_rate,
            threshold_db: 0.0,
            knee_db: 0.0,
            slope: 0.0,
            knee_start_lin: 1.0,
            alpha_attack: 0.0,
            alpha_release: 0.0,
            release_state: 0.0,
            reduction_db: 0.0,
            makeup: SmoothedGain::new(1.0, MAKEUP_GLIDE_MS, sample_rate),
            enable: SmoothedGain::new(0.0, ENABLE_FADE_MS, sample_rate),
            scratch: crate::dsp::util::zeroed(CHUNK),
        };
        c.set(0.0, 1.0, 0.0, 10.0, 100.0, 0.0);
        c
    }

    /// Set all parameters. Ranges (values outside are clamped): threshold −90..+20 dBFS,
    /// ratio 1..1000 (1 = no compression), knee 0..48 dB, attack 0..2000 ms (0 = instant),
    /// release 1..10000 ms, makeup −40..+48 dB. Real-time safe (no allocation); changes glide
    /// as described in the module docs.
    pub fn set(
        &mut self,
        threshold_db: f32,
        ratio: f32,
        knee_db: f32,
        attack_ms: f32,
        release_ms: f32,
        makeup_db: f32,
    ) {
        let finite = |v: f32, d: f32| if v.is_finite() { v } else { d };
        self.threshold_db = finite(threshold_db, 0.0).clamp(-90.0, 20.0);
        let ratio = if ratio.is_nan() {
            1.0
        } else {
            ratio.clamp(1.0, 1000.0)
        };
        self.slope = 1.0 - 1.0 / ratio;
        self.knee_db = finite(knee_db, 0.0).clamp(0.0, 48.0);
        self.knee_start_lin = db_to_gain(self.threshold_db - 0.5 * self.knee_db);
        self.alpha_attack =
            one_pole_coeff(finite(attack_ms, 10.0).clamp(0.0, 2000.0), self.sample_rate);
        self.alpha_release = one_pole_coeff(
            finite(release_ms, 100.0).clamp(1.0, 10_000.0),
            self.sample_rate,
        );
        self.makeup
            .set_target(db_to_gain(finite(makeup_db, 0.0).clamp(-40.0, 48.0)));
    }

    /// Turn the compressor in or out with a 10 ms crossfade (no click).
    pub fn set_enabled(&mut self, on: bool) {
        self.enable.set_target(if on { 1.0 } else { 0.0 });
    }

    /// True if enabled (or fading in).
    pub fn is_enabled(&self) -> bool {
        self.enable.target() > 0.0
    }

    /// The applied gain reduction in dB (≥ 0), excluding makeup and before the on/off
    /// crossfade; 0 while disabled.
    pub fn gain_reduction_db(&self) -> f32 {
        self.reduction_db
    }

    /// Clear the detector (no reduction) and jump the glides to their targets. For use when
    /// the stream restarts, not for audible changes.
    pub fn reset(&mut self) {
        self.release_state = 0.0;
        self.reduction_db = 0.0;
        self.makeup.reset(self.makeup.target());
        self.enable.reset(self.enable.target());
    }

    /// The static gain computer: reduction in dB (≥ 0) for an input level in dBFS.
    #[inline]
    pub fn static_reduction_db(&self, level_db: f32) -> f32 {
        reduction_db(level_db, self.threshold_db, self.knee_db, self.slope)
    }

    /// Compress 1 or more equal-length channels in place with one linked gain.
    /// Real-time safe.
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let Some(frames) = chans.iter().map(|c| c.len()).min() else {
            return;
        };
        if self.enable.target() == 0.0 && !self.enable.is_smoothing() {
            // Fully out: bit-transparent; forget the detector so re-enabling starts clean.
            self.release_state = 0.0;
            self.reduction_db = 0.0;
            return;
        }
        let mut start = 0;
        while start < frames {
            let end = (start + CHUNK).min(frames);
            self.process_chunk(chans, start, end);
            start = end;
        }
    }

    fn process_chunk(&mut self, chans: &mut [&mut [f32]], start: usize, end: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, the only feature `process_chunk_avx2` is built with.
            unsafe { self.process_chunk_avx2(chans, start, end) };
            return;
        }
        self.process_chunk_impl(chans, start, end);
    }

    /// [`Self::process_chunk_impl`] compiled for AVX2: its vector passes run 8 lanes wide.
    /// The arithmetic per sample is the same (no fused multiply-add), so is the result.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn process_chunk_avx2(&mut self, chans: &mut [&mut [f32]], start: usize, end: usize) {
        self.process_chunk_impl(chans, start, end);
    }

    #[inline(always)]
    fn process_chunk_impl(&mut self, chans: &mut [&mut [f32]], start: usize, end: usize) {
        let n = end - start;
        let gains = &mut self.scratch[..n];
        // 1. Linked sample peak.
        gains.copy_from_slice(&chans[0][start..end]);
        gains.iter_mut().for_each(|g| *g = g.abs());
        for ch in chans.iter().skip(1) {
            for (g, &s) in gains.iter_mut().zip(&ch[start..end]) {
                *g = g.max(s.abs());
            }
        }
        // 2. Gain computer (a branch-free pass the compiler vectorises), skipped when the
        // whole chunk stays below the knee. `>` also rejects NaN, so a NaN input cannot
        // poison the detector.
        let knee_start = self.knee_start_lin;
        let (t, w, slope) = (self.threshold_db, self.knee_db, self.slope);
        // The peaks are >= 0 (or NaN), so their bit patterns order like the values: an integer
        // maximum that vectorises. A NaN maximum compares false below, as a NaN peak should.
        let max_peak = f32::from_bits(gains.iter().fold(0u32, |m, &p| m.max(p.to_bits())));
        let mut r = self.release_state;
        let mut y = self.reduction_db;
        if max_peak > knee_start {
            let inv_2w = if w > 0.0 { 0.5 / w } else { 0.0 };
            for g in gains.iter_mut() {
                let peak = *g;
                let red = reduction_fast(fast_gain_to_db(peak), t, w, inv_2w, slope);
                *g = if peak > knee_start { red } else { 0.0 };
            }
        } else if r == 0.0 && y == 0.0 {
            // At rest and staying so: unity gain.
            return self.finish_chunk(chans, start, end, true);
        } else {
            gains.fill(0.0);
        }
        // 3. Detector: the only serial part (see the module docs for the law). With r and
        // y >= 0, `max`/`min` select exactly the documented branches. Two samples per step:
        // each stage is `v -> max(a, b·v + c)` (release) or `min(a, b·v + c)` (attack) with
        // b >= 0, and two such maps compose into one of the same form, so the loop-carried
        // chain is one multiply-add and one compare per *two* samples; the first sample of
        // the pair comes off the chain. Exact in real arithmetic; in floats the composed
        // form rounds differently by about 1e-7 relative (far below 1e-4 dB).
        let (aa, ar) = (self.alpha_attack, self.alpha_release);
        let (ca, cr) = (1.0 - aa, 1.0 - ar);
        let (aa2, ar2) = (aa * aa, ar * ar);
        let max = |a: f32, b: f32| if a > b { a } else { b };
        let min = |a: f32, b: f32| if a < b { a } else { b };
        let mut pairs = gains.chunks_exact_mut(2);
        for p in &mut pairs {
            let (t0, t1) = (p[0], p[1]);
            let (c0, c1) = (cr * t0, cr * t1);
            // Release: r0 = max(t0, ar·r + c0), r1 = max(t1, ar·r0 + c1) = max(a, ar²·r + c).
            let (a, c) = (max(t1, ar * t0 + c1), ar * c0 + c1);
            let r0 = max(t0, ar * r + c0);
            let r1 = max(a, ar2 * r + c);
            // Attack: y0 = min(r0, aa·y + e0), y1 = min(r1, aa·y0 + e1) = min(a, aa²·y + c).
            let (e0, e1) = (ca * r0, ca * r1);
            let (a, c) = (min(aa * r0 + e1, r1), aa * e0 + e1);
            let y0 = min(aa * y + e0, r0);
            let y1 = min(aa2 * y + c, a);
            (p[0], p[1]) = (y0, y1);
            (r, y) = (r1, y1);
        }
        for g in pairs.into_remainder() {
            let target = *g;
            r = max(target, ar * r + cr * target);
            y = min(aa * y + ca * r, r);
            *g = y;
        }
        if y < DETECTOR_FLOOR_DB {
            y = 0.0;
            if r < DETECTOR_FLOOR_DB {
                r = 0.0;
            }
        }
        self.release_state = r;
        self.reduction_db = y;
        // Reduction to linear gain (another vectorised pass; 0 dB gives exactly 1).
        gains.iter_mut().for_each(|g| *g = fast_db_to_gain(-*g));
        self.finish_chunk(chans, start, end, false);
    }

    /// Apply makeup and the on/off crossfade to the chunk's gains and the gains to `chans`;
    /// `unity`: the compressor's own gain is 1 throughout (`scratch` is not read).
    #[inline(always)]
    fn finish_chunk(&mut self, chans: &mut [&mut [f32]], start: usize, end: usize, unity: bool) {
        let gains = &mut self.scratch[..end - start];
        if unity && !self.makeup.is_smoothing() && !self.enable.is_smoothing() {
            let total = 1.0 + self.enable.current() * (self.makeup.current() - 1.0);
            if total != 1.0 {
                for ch in chans.iter_mut() {
                    ch[start..end].iter_mut().for_each(|s| *s *= total);
                }
            }
            return;
        }
        if unity {
            gains.fill(1.0);
        }
        // 4. Makeup and on/off crossfade: total = 1 + e·(g·makeup − 1).
        if self.makeup.is_smoothing() || self.enable.is_smoothing() {
            for g in gains.iter_mut() {
                let m = self.makeup.next_value();
                let e = self.enable.next_value();
                *g = 1.0 + e * (*g * m - 1.0);
            }
        } else {
            let m = self.makeup.current();
            let e = self.enable.current();
            if e == 1.0 {
                if m != 1.0 {
                    gains.iter_mut().for_each(|g| *g *= m);
                }
            } else {
                gains.iter_mut().for_each(|g| *g = 1.0 + e * (*g * m - 1.0));
            }
        }
        for ch in chans.iter_mut() {
            for (s, &g) in ch[start..end].iter_mut().zip(gains.iter()) {
                *s *= g;
            }
        }
    }
}

/// Gain computer: reduction (dB, >= 0) for level `x` dBFS, threshold `t`, knee width `w`,
/// slope `1 - 1/R`.
#[inline]
fn reduction_db(x: f32, t: f32, w: f32, slope: f32) -> f32 {
    let inv_2w = if w > 0.0 { 0.5 / w } else { 0.0 };
    reduction_fast(x, t, w, inv_2w, slope)
}

/// [`reduction_db`] without branches (`inv_2w = 1/(2w)`, or 0 when `w = 0`): below the knee
/// `k = max(x - T + W/2, 0)` is 0, inside it gives the quadratic, above it the line.
#[inline(always)]
fn reduction_fast(x: f32, t: f32, w: f32, inv_2w: f32, slope: f32) -> f32 {
    let over = x - t;
    let k = (over + 0.5 * w).max(0.0);
    let v = if 2.0 * over < w { k * k * inv_2w } else { over };
    slope * v
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// Textbook gain computer (GMR 2012, eq. 4), output level in dB, written out independently.
    fn textbook_out_db(x: f64, t: f64, r: f64, w: f64) -> f64 {
        if 2.0 * (x - t) < -w {
            x
        } else if 2.0 * (x - t).abs() <= w {
            x + (1.0 / r - 1.0) * (x - t + w / 2.0).powi(2) / (2.0 * w)
        } else {
            t + (x - t) / r
        }
    }

    fn comp(t: f32, r: f32, w: f32, a: f32, rel: f32, mk: f32) -> Compressor {
        let mut c = Compressor::new(SR);
        c.set(t, r, w, a, rel, mk);
        c.set_enabled(true);
        c.reset();
        c
    }

    /// Steady output level of a 1 kHz sine at `level_db` peak, measured over the last 100 ms
    /// of 1 s, as dB relative to the input level plus the input level.
    fn steady_out_db(c: &mut Compressor, level_db: f64) -> f64 {
        let x = sine(1000.0, amp(level_db), 48_000);
        let y = run_mono(&x, 256, |ch| c.process(ch));
        level_db + gain_db(&y[43_200..], &x[43_200..])
    }

    #[test]
    fn static_curve_matches_gain_computer() {
        let (t, r, w) = (-18.0, 4.0, 6.0);
        let mut worst = 0.0f64;
        let mut report = String::new();
        for level in [-30.0, -22.0, -20.0, -18.0, -16.5, -15.0, -12.0, -6.0, 0.0] {
            let mut c = comp(t as f32, r as f32, w as f32, 10.0, 120.0, 0.0);
            let got = steady_out_db(&mut c, level);
            let want = textbook_out_db(level, t, r, w);
            let err = got - want;
            report += &format!("{level}: out {got:.3} want {want:.3} err {err:+.3}\n");
            worst = worst.max(err.abs());
        }
        println!("{report}worst {worst:.4} dB");
        assert!(worst < 0.25, "{report}");
    }

    #[test]
    fn ratio_one_is_bit_transparent() {
        let mut c = comp(-40.0, 1.0, 6.0, 10.0, 120.0, 0.0);
        let x = sine(1000.0, 0.9, 9600);
        let y = run_mono(&x, 512, |ch| c.process(ch));
        assert_eq!(x, y);
        assert_eq!(c.gain_reduction_db(), 0.0);
    }

    #[test]
    fn makeup_adds_gain_and_meter_excludes_it() {
        let mut c = comp(-18.0, 4.0, 0.0, 10.0, 120.0, 6.0);
        // Below threshold: pure makeup.
        assert!((steady_out_db(&mut c, -30.0) - (-24.0)).abs() < 0.01);
        // -6 dBFS: 12 dB over, ratio 4 -> 9 dB of reduction, +6 makeup.
        let got = steady_out_db(&mut c, -6.0);
        assert!((got - (-9.0)).abs() < 0.25, "got {got}");
        assert!(
            (c.gain_reduction_db() - 9.0).abs() < 0.25,
            "meter {}",
            c.gain_reduction_db()
        );
    }

    /// Attack: time from a -40 -> -6 dBFS step until the reduction reaches 1-1/e of its final
    /// value; release: from the step back until it falls to 1/e of its starting value.
    #[test]
    fn attack_and_release_times_are_the_documented_time_constants() {
        let (attack_ms, release_ms) = (10.0f64, 120.0f64);
        let mut c = comp(-18.0, 4.0, 6.0, attack_ms as f32, release_ms as f32, 0.0);
        let n0 = 24_000; // quiet lead-in
        let n1 = 24_000; // loud part (500 ms)
        let n2 = 48_000; // quiet tail
        let mut x = sine(1000.0, amp(-40.0), n0 + n1 + n2);
        let loud = sine(1000.0, amp(-6.0), n0 + n1);
        x[n0..n0 + n1].copy_from_slice(&loud[n0..]);
        let y = run_mono(&x, 64, |ch| c.process(ch));
        let reduction: Vec<Option<f64>> = sample_gain_db(&y, &x, 1e-3)
            .into_iter()
            .map(|g| g.map(|g| -g))
            .collect();
        let final_gr = reduction[n0 + n1 - 48..n0 + n1]
            .iter()
            .flatten()
            .cloned()
            .fold(0.0, f64::max);
        assert!((final_gr - 9.0).abs() < 0.25, "final reduction {final_gr}");
        let attack_at = (n0..n0 + n1)
            .find(|&i| reduction[i].is_some_and(|g| g >= (1.0 - (-1.0f64).exp()) * final_gr))
            .expect("reduction never reached 63%");
        let release_at = (n0 + n1..x.len())
            .find(|&i| reduction[i].is_some_and(|g| g <= final_gr * (-1.0f64).exp()))
            .expect("reduction never fell to 37%");
        let attack = (attack_at - n0) as f64 * 1000.0 / SR as f64;
        let release = (release_at - n0 - n1) as f64 * 1000.0 / SR as f64;
        println!("attack {attack:.2} ms, release {release:.2} ms, final GR {final_gr:.3} dB");
        assert!(
            (attack - attack_ms).abs() < 0.2 * attack_ms,
            "attack {attack}"
        );
        assert!(
            (release - release_ms).abs() < 0.2 * release_ms,
            "release {release}"
        );
        // Tighter than the brief asks: the design makes both within 1 ms.
        assert!((attack - attack_ms).abs() < 1.0 && (release - release_ms).abs() < 1.0);
    }

    #[test]
    fn stereo_is_linked_to_the_louder_channel() {
        let mut c = comp(-18.0, 4.0, 0.0, 1.0, 50.0, 0.0);
        let mut l = sine(1000.0, amp(-6.0), 48_000);
        let mut r = sine(500.0, amp(-30.0), 48_000);
        let (l0, r0) = (l.clone(), r.clone());
        for (a, b) in l.chunks_mut(256).zip(r.chunks_mut(256)) {
            c.process(&mut [a, b]);
        }
        let gl = gain_db(&l[43_200..], &l0[43_200..]);
        let gr = gain_db(&r[43_200..], &r0[43_200..]);
        assert!((gl - -9.0).abs() < 0.25, "left {gl}");
        assert!((gl - gr).abs() < 0.05, "left {gl} right {gr}");
    }

    /// Largest change of the applied gain between neighbouring samples, in dB.
    fn max_gain_step_db(y: &[f32], x: &[f32]) -> f64 {
        let g = sample_gain_db(y, x, 0.05);
        g.windows(2)
            .filter_map(|w| Some((w[1]? - w[0]?).abs()))
            .fold(0.0, f64::max)
    }

    #[test]
    fn parameter_changes_and_switching_do_not_jump_the_gain() {
        let x = sine(1000.0, amp(-6.0), 96_000);
        let mut c = comp(-6.0, 4.0, 0.0, 10.0, 120.0, 0.0);
        let mut y = x.clone();
        for (k, blk) in y.chunks_mut(4800).enumerate() {
            match k {
                4 => c.set(-30.0, 4.0, 0.0, 10.0, 120.0, 0.0), // +18 dB of reduction
                8 => c.set(-30.0, 4.0, 0.0, 10.0, 120.0, 12.0), // +12 dB makeup
                10 => c.set(-6.0, 4.0, 0.0, 10.0, 120.0, 12.0), // reduction back to 0
                14 => c.set_enabled(false),
                16 => c.set_enabled(true),
                _ => {}
            }
            c.process(&mut [blk]);
        }
        // The changes are large (18 dB, 12 dB); a jump would show as a step of that size. The
        // attack glide moves at most 18 dB·(1-αA) ≈ 0.04 dB per sample.
        let step = max_gain_step_db(&y, &x);
        println!("max gain step {step:.4} dB");
        assert!(step < 0.1, "gain jumped by {step} dB in one sample");
        // And the changes did happen: (-6 - -30)·(1 - 1/4) = 18 dB of reduction by block 7.
        let g = gain_db(&y[7 * 4800 + 2400..8 * 4800], &x[7 * 4800 + 2400..8 * 4800]);
        assert!((g - -18.0).abs() < 0.3, "gain after threshold change {g}");
    }

    #[test]
    fn disabled_by_default_and_bit_transparent() {
        let mut c = Compressor::new(SR);
        c.set(-40.0, 10.0, 0.0, 1.0, 10.0, 12.0);
        let x = sine(1000.0, 0.9, 4800);
        let y = run_mono(&x, 480, |ch| c.process(ch));
        assert_eq!(x, y);
    }

    #[test]
    fn robust_on_hostile_input_without_allocating() {
        let mut c = comp(-30.0, 8.0, 6.0, 1.0, 50.0, 6.0);
        // Makeup 6 dB bounds the gain at 2 (reduction only lowers it).
        assert_robust(|ch| c.process(ch), |x| 2.0 * x + 1e-30);
        // After the hostile signals end in denormal noise, the detector has settled to 0.
        let mut z = vec![0.0f32; 48_000];
        c.process(&mut [&mut z]);
        assert_eq!(c.gain_reduction_db(), 0.0);
    }
}
