//! The master section's peak control: [`TruePeakDetector`] (4x oversampled true-peak estimate,
//! ITU-R BS.1770-4 Annex 2 style) and [`Limiter`] (stereo-linked, look-ahead, true-peak-aware
//! brickwall limiter that keeps the master under its ceiling in dBTP).

use crate::dsp::util::{SmoothedGain, db_to_gain, gain_to_db, ms_to_samples};

/// Taps of each fractional phase of the interpolator (12 x 4 phases = 48 taps, as in
/// BS.1770-4 Annex 2; the integer phase is the input sample itself).
const PHASE_TAPS: usize = 12;
/// Oversampling factor.
const FACTOR: usize = 4;
/// Kaiser window shape; gives roughly 40 dB of image rejection for this length.
const KAISER_BETA: f64 = 3.6;

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Kaiser-windowed sinc interpolation kernel at offset `t` input samples, zero beyond +/- half.
fn kernel(t: f64, half: f64) -> f64 {
    if t.abs() >= half {
        return 0.0;
    }
    let sinc = if t == 0.0 {
        1.0
    } else {
        let x = std::f64::consts::PI * t;
        x.sin() / x
    };
    let r = t / half;
    let w = bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA);
    sinc * w
}

/// True-peak estimator: upsamples by 4 with a polyphase windowed-sinc FIR (12 taps per phase)
/// and reports, per input sample, the largest magnitude among the 4 points of the
/// oversampled signal for that sample's period.
///
/// The kernel is a Nyquist filter: the integer phase reproduces the input sample exactly, so the
/// reading is never below the sample peak. Its output for the input sample at index `n` covers
/// the instants `n - latency() + {0, 1/4, 2/4, 3/4}`.
#[derive(Debug, Clone)]
pub struct TruePeakDetector {
    /// Coefficients of the three fractional phases; `coeffs[k-1][i]` weighs `x[n - i]`.
    coeffs: [[f32; PHASE_TAPS]; FACTOR - 1],
    /// The last `PHASE_TAPS` inputs, written twice so a contiguous window is always available.
    hist: [f32; 2 * PHASE_TAPS],
    /// Where the newest sample lives (in `0..PHASE_TAPS`).
    pos: usize,
}

impl Default for TruePeakDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl TruePeakDetector {
    /// Latency in input samples: the reading for sample `n` describes sample `n - LATENCY`.
    const LATENCY: usize = PHASE_TAPS / 2;

    /// A detector with empty history.
    pub fn new() -> Self {
        let half = (PHASE_TAPS / 2) as f64;
        let mut coeffs = [[0.0f32; PHASE_TAPS]; FACTOR - 1];
        for (k, phase) in coeffs.iter_mut().enumerate() {
            let frac = (k + 1) as f64 / FACTOR as f64;
            // Output instant n - half + frac; tap i is x[n - i] at offset (i - half + frac).
            let raw: Vec<f64> = (0..PHASE_TAPS)
                .map(|i| kernel(i as f64 - half + frac, half))
                .collect();
            // Normalize each phase to unity gain at DC so a constant reads as itself.
            let dc: f64 = raw.iter().sum();
            for (c, r) in phase.iter_mut().zip(&raw) {
                *c = (r / dc) as f32;
            }
        }
        Self {
            coeffs,
            hist: [0.0; 2 * PHASE_TAPS],
            pos: 0,
        }
    }

    /// Feed one input sample; returns the largest absolute value of the 4 oversampled points
    /// for the sample `latency()` samples ago (linear, not dB).
    #[inline]
    pub fn process_sample(&mut self, x: f32) -> f32 {
        self.pos = if self.pos == 0 {
            PHASE_TAPS - 1
        } else {
            self.pos - 1
        };
        self.hist[self.pos] = x;
        self.hist[self.pos + PHASE_TAPS] = x;
        // window[i] = x[n - i]
        let window = &self.hist[self.pos..self.pos + PHASE_TAPS];
        let mut peak = window[Self::LATENCY].abs();
        for phase in &self.coeffs {
            let y: f32 = phase.iter().zip(window).map(|(c, s)| c * s).sum();
            peak = peak.max(y.abs());
        }
        peak
    }

    /// Delay, in input samples, between a sample and the reading that describes it.
    pub fn latency(&self) -> usize {
        Self::LATENCY
    }

    /// Forget all history (as if fed silence forever).
    pub fn reset(&mut self) {
        self.hist = [0.0; 2 * PHASE_TAPS];
        self.pos = 0;
    }
}

/// Extra samples the gain stays fully down on each side of a peak, so the neighbours that shape
/// the inter-sample peak see the same gain as the peak itself.
const PLATEAU: usize = 8;
/// Nominal look-ahead.
const LOOKAHEAD_MS: f32 = 1.5;
/// Internal safety margin below the ceiling, covering the difference between this detector and
/// other true-peak meters and the spectral spread of the gain changes themselves.
const MARGIN_DB: f32 = 0.25;
/// Time to cross-fade between bypass and limiting when toggled.
const TOGGLE_MS: f32 = 10.0;

/// A sliding-window minimum over a fixed number of samples (monotonic queue in a fixed ring).
#[derive(Debug, Clone)]
struct SlidingMin {
    idx: Vec<u64>,
    val: Vec<f32>,
    head: usize,
    len: usize,
    window: u64,
    n: u64,
}

impl SlidingMin {
    fn new(window: usize) -> Self {
        let cap = window + 1;
        Self {
            idx: vec![0; cap],
            val: crate::dsp::util::zeroed(cap),
            head: 0,
            len: 0,
            window: window as u64,
            n: 0,
        }
    }

    fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.n = 0;
    }

    /// Push one value; returns the minimum of the last `window` values.
    #[inline]
    fn push(&mut self, v: f32) -> f32 {
        let cap = self.idx.len();
        // Drop the front entry if it left the window.
        if self.len > 0 && self.idx[self.head] + self.window <= self.n {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        // Drop entries from the back that can never be the minimum again.
        while self.len > 0 {
            let back = (self.head + self.len - 1) % cap;
            if self.val[back] >= v {
                self.len -= 1;
            } else {
                break;
            }
        }
        let slot = (self.head + self.len) % cap;
        self.idx[slot] = self.n;
        self.val[slot] = v;
        self.len += 1;
        self.n += 1;
        self.val[self.head]
    }
}

/// Stereo-linked look-ahead brickwall limiter whose output stays under its ceiling in true peak.
///
/// Per sample: the true peak of every channel's input ([`TruePeakDetector`]) gives the gain
/// that peak needs (`min(1, ceiling / peak)`, with a small safety margin); the minimum of that
/// over a window is held, released exponentially, and averaged over the attack window (a
/// moving average), so the gain has fully arrived, flat, a few samples before the delayed
/// peak leaves. The audio is delayed by a constant look-ahead ([`Limiter::latency_samples`])
/// whether enabled or not; disabled, it passes the delayed audio bit for bit.
#[derive(Debug, Clone)]
pub struct Limiter {
    channels: usize,
    detectors: Vec<TruePeakDetector>,
    /// Per channel audio delay lines of `delay` samples.
    delay_lines: Vec<Vec<f32>>,
    delay_pos: usize,
    delay: usize,
    hold: SlidingMin,
    /// Moving average of the released gain over `avg_len` samples.
    avg_ring: Vec<f32>,
    avg_pos: usize,
    avg_sum: f64,
    /// Released (held) gain.
    env: f32,
    release_coeff: f32,
    threshold: f32,
    ceiling_dbtp: f32,
    release_ms: f32,
    sample_rate: f32,
    enabled: bool,
    /// 0 = bypass, 1 = limiting; glides on toggle.
    mix: SmoothedGain,
    gr_db: f32,
}

impl Limiter {
    /// A limiter for `channels` channels at `sample_rate`, ceiling -1 dBTP, release 50 ms,
    /// disabled.
    pub fn new(sample_rate: f32, channels: usize) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate
        } else {
            48_000.0
        };
        let channels = channels.max(1);
        let det_latency = TruePeakDetector::new().latency();
        // Attack window must be at least a few samples long even at very low rates.
        let delay = ms_to_samples(LOOKAHEAD_MS, sample_rate).max(det_latency + PLATEAU + 8);
        // Gain for the peak described at index n is fully down from n + avg_len - 1 to
        // n + hold_len - 1; the audio sits in the middle of that plateau.
        let avg_len = delay - det_latency - PLATEAU + 1;
        let hold_len = avg_len + 2 * PLATEAU;
        let mut lim = Self {
            channels,
            detectors: vec![TruePeakDetector::new(); channels],
            delay_lines: (0..channels)
                .map(|_| crate::dsp::util::zeroed(delay))
                .collect(),
            delay_pos: 0,
            delay,
            hold: SlidingMin::new(hold_len),
            avg_ring: vec![1.0; avg_len],
            avg_pos: 0,
            avg_sum: avg_len as f64,
            env: 1.0,
            release_coeff: 0.0,
            threshold: 1.0,
            ceiling_dbtp: -1.0,
            release_ms: 50.0,
            sample_rate,
            enabled: false,
            mix: SmoothedGain::new(0.0, TOGGLE_MS, sample_rate),
            gr_db: 0.0,
        };
        lim.set(-1.0, 50.0);
        lim
    }

    /// Set the ceiling (dBTP, clamped to -30..0) and release time (ms, clamped to 1..2000).
    pub fn set(&mut self, ceiling_dbtp: f32, release_ms: f32) {
        let ceiling = if ceiling_dbtp.is_finite() {
            ceiling_dbtp.clamp(-30.0, 0.0)
        } else {
            -1.0
        };
        let release = if release_ms.is_finite() {
            release_ms.clamp(1.0, 2000.0)
        } else {
            50.0
        };
        self.ceiling_dbtp = ceiling;
        self.release_ms = release;
        self.threshold = db_to_gain(ceiling - MARGIN_DB);
        // Time constant: the gain recovers 1 - 1/e of the way in `release` ms.
        self.release_coeff = (-1.0 / (release * 0.001 * self.sample_rate)).exp();
    }

    /// The ceiling in dBTP.
    pub fn ceiling_dbtp(&self) -> f32 {
        self.ceiling_dbtp
    }

    /// Turn limiting on or off (a short cross-fade; the latency does not change).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        self.mix.set_target(if on { 1.0 } else { 0.0 });
    }

    /// Whether limiting is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Limit `chans` in place. Channels beyond the count given to `new` pass through undelayed
    /// (the engine never passes more).
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let nch = chans.len().min(self.channels);
        if nch == 0 {
            return;
        }
        let frames = chans[..nch].iter().map(|c| c.len()).min().unwrap_or(0);
        let avg_len = self.avg_ring.len();
        let inv_avg = 1.0 / avg_len as f64;
        // The smallest gain applied, converted to dB once per block (the logarithm is
        // monotonic, so this is the largest reduction).
        let mut min_applied = 1.0f32;
        for i in 0..frames {
            // 1. Gain the (stereo-linked) true peak needs.
            let mut peak = 0.0f32;
            for (ch, det) in chans[..nch].iter().zip(self.detectors.iter_mut()) {
                peak = peak.max(det.process_sample(ch[i]));
            }
            let need = if peak > self.threshold {
                self.threshold / peak
            } else {
                1.0
            };
            // 2. Hold the minimum over the look-ahead window, 3. release exponentially.
            let held = self.hold.push(need);
            self.env = if held <= self.env {
                held
            } else {
                held + (self.env - held) * self.release_coeff
            };
            // 4. Moving average: the gain glides down over the attack window.
            self.avg_sum += self.env as f64 - self.avg_ring[self.avg_pos] as f64;
            self.avg_ring[self.avg_pos] = self.env;
            self.avg_pos += 1;
            if self.avg_pos == avg_len {
                self.avg_pos = 0;
                // Re-sum once per window so rounding never accumulates.
                self.avg_sum = self.avg_ring.iter().map(|&g| g as f64).sum();
            }
            let gain = ((self.avg_sum * inv_avg) as f32).min(1.0);
            let m = self.mix.next_value();
            let applied = (1.0 - m) + m * gain;
            min_applied = min_applied.min(applied);
            // 5. Delay the audio by the look-ahead and apply.
            for (ch, line) in chans[..nch].iter_mut().zip(self.delay_lines.iter_mut()) {
                let delayed = line[self.delay_pos];
                line[self.delay_pos] = ch[i];
                ch[i] = delayed * applied;
            }
            self.delay_pos += 1;
            if self.delay_pos == self.delay {
                self.delay_pos = 0;
            }
        }
        self.gr_db = (-gain_to_db(min_applied)).max(0.0);
    }

    /// Constant look-ahead delay in samples (about 1.5 ms), the same enabled or not.
    pub fn latency_samples(&self) -> usize {
        self.delay
    }

    /// Largest gain reduction applied during the last `process` call, in dB (>= 0).
    pub fn gain_reduction_db(&self) -> f32 {
        self.gr_db
    }

    /// Clear all state (delay lines, detectors, gain) without changing the settings.
    pub fn reset(&mut self) {
        for d in &mut self.detectors {
            d.reset();
        }
        for l in &mut self.delay_lines {
            l.fill(0.0);
        }
        self.delay_pos = 0;
        self.hold.reset();
        self.avg_ring.fill(1.0);
        self.avg_pos = 0;
        self.avg_sum = self.avg_ring.len() as f64;
        self.env = 1.0;
        self.mix.reset(if self.enabled { 1.0 } else { 0.0 });
        self.gr_db = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebur128::{EbuR128, Mode};
    use std::f64::consts::PI;

    /// Reads `signal` through a fresh detector and returns its maximum reading in dB.
    fn detector_peak_db(signal: &[f32]) -> f32 {
        let mut d = TruePeakDetector::new();
        let mut m = 0.0f32;
        for &x in signal {
            m = m.max(d.process_sample(x));
        }
        for _ in 0..d.latency() {
            m = m.max(d.process_sample(0.0));
        }
        gain_to_db(m)
    }

    /// A sine of `n` samples with 10 ms (480-sample) raised-cosine fades at both ends, so the
    /// switch-on transient adds no overshoot of its own; the middle is a steady sine.
    fn sine(freq_over_fs: f64, phase_deg: f64, amp: f64, n: usize) -> Vec<f32> {
        let fade = 480.min(n / 4);
        (0..n)
            .map(|i| {
                let edge = i.min(n - 1 - i);
                let env = if edge < fade {
                    0.5 - 0.5 * (PI * edge as f64 / fade as f64).cos()
                } else {
                    1.0
                };
                let ph = 2.0 * PI * freq_over_fs * i as f64 + phase_deg.to_radians();
                (amp * env * ph.sin()) as f32
            })
            .collect()
    }

    #[test]
    fn true_peak_of_tech3341_style_sines() {
        // (frequency / fs, phase) pairs whose samples miss the crest; true peak is the amplitude.
        // Amplitude 0.5 = -6.02 dBTP, as in Tech 3341 cases 15-18.
        let amp = 0.5f64;
        let analytic = 20.0 * amp.log10() as f32;
        let cases = [(0.25, 45.0), (1.0 / 6.0, 60.0), (0.125, 67.5), (0.25, 0.0)];
        for (f, ph) in cases {
            let s = sine(f, ph, amp, 48_000);
            let sample_peak = gain_to_db(s.iter().fold(0.0f32, |m, x| m.max(x.abs())));
            let tp = detector_peak_db(&s);
            eprintln!(
                "f={f:.4} fs ph={ph}: sample peak {sample_peak:.3} dB, TP {tp:.3} dBTP (analytic {analytic:.3})"
            );
            assert!(
                tp - analytic <= 0.2 && analytic - tp <= 0.4,
                "f={f} ph={ph}: measured {tp} vs {analytic}"
            );
        }
        // The fs/4 45-degree case really has samples 3 dB under the crest.
        let s = sine(0.25, 45.0, amp, 100);
        let sp = s.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((gain_to_db(sp) - (analytic - 3.01)).abs() < 0.01);
    }

    #[test]
    fn true_peak_sweep_within_tolerance() {
        // Sines from 100 Hz to 0.3 fs at several phases: within +0.2/-0.4 dB of amplitude.
        let amp = 0.7f64;
        let analytic = 20.0 * amp.log10() as f32;
        let mut worst_lo = 0.0f32;
        let mut worst_hi = 0.0f32;
        for fi in 0..30 {
            let f = 100.0 / 48_000.0 + fi as f64 * 0.01;
            if f > 0.3 {
                break;
            }
            for ph in [0.0, 13.0, 37.0, 71.0] {
                let s = sine(f, ph, amp, 4_800);
                let err = detector_peak_db(&s) - analytic;
                worst_lo = worst_lo.min(err);
                worst_hi = worst_hi.max(err);
            }
        }
        eprintln!("sweep error range {worst_lo:.3} .. {worst_hi:.3} dB");
        assert!(worst_hi <= 0.2 && worst_lo >= -0.4, "{worst_lo} {worst_hi}");
    }

    #[test]
    fn true_peak_of_constant_and_latency() {
        let mut d = TruePeakDetector::new();
        let out: Vec<f32> = (0..20)
            .map(|i| d.process_sample(if i == 3 { 1.0 } else { 0.0 }))
            .collect();
        // An impulse at 3 first shows up (its own sample, phase 0) at 3 + latency.
        let first = out.iter().position(|&v| v >= 0.999).unwrap_or(usize::MAX);
        assert_eq!(first, 3 + d.latency());
        let mut d = TruePeakDetector::new();
        let mut last = 0.0;
        for _ in 0..100 {
            last = d.process_sample(0.3);
        }
        assert!((last - 0.3).abs() < 1e-5, "DC reads {last}");
    }

    /// Deterministic xorshift noise in -1..1.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        }
    }

    /// A loud stereo drum-like stem: pink-ish noise bursts (snare/hat) and decaying sine kicks,
    /// driven so peaks reach about +14 dBFS.
    fn drum_stem(sr: f32, seconds: f32, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let n = (sr * seconds) as usize;
        let mut rng = Noise(seed);
        let mut l = vec![0.0f32; n];
        let mut r = vec![0.0f32; n];
        let beat = (sr * 0.25) as usize; // one step every 250 ms
        // Pink-ish noise: sum of three one-pole low-passed white noises plus some white.
        let (mut p1, mut p2, mut p3) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let pos = i % beat;
            let step = i / beat;
            let w = rng.next();
            p1 = 0.997 * p1 + 0.03 * w;
            p2 = 0.96 * p2 + 0.15 * w;
            p3 = 0.6 * p3 + 0.4 * w;
            let pink = p1 + p2 + p3 + 0.2 * w;
            let t = pos as f32 / sr;
            let kick = if step.is_multiple_of(2) {
                // Pitch drops from 120 Hz to 50 Hz.
                let f = 50.0 + 70.0 * (-t * 30.0).exp();
                (2.0 * std::f32::consts::PI * f * t).sin() * (-t * 8.0).exp() * 4.0
            } else {
                0.0
            };
            let snare = if step % 4 == 1 || step % 4 == 3 {
                pink * (-t * 20.0).exp() * 4.5
            } else {
                0.0
            };
            let hat = (rng.next() * 1.5) * (-t * 60.0).exp();
            l[i] = kick + snare + hat;
            r[i] = kick * 0.9 + snare * 1.1 - hat;
        }
        (l, r)
    }

    fn ebur_true_peak_db(l: &[f32], r: &[f32], sr: u32) -> f64 {
        let mut m = EbuR128::new(2, sr, Mode::TRUE_PEAK).expect("ebur128");
        m.add_frames_planar_f32(&[l, r]).expect("frames");
        let p = m
            .true_peak(0)
            .unwrap_or(0.0)
            .max(m.true_peak(1).unwrap_or(0.0));
        20.0 * p.log10()
    }

    fn run_limiter(lim: &mut Limiter, l: &mut [f32], r: &mut [f32], block: usize) {
        for (bl, br) in l.chunks_mut(block).zip(r.chunks_mut(block)) {
            lim.process(&mut [bl, br]);
        }
    }

    #[test]
    fn limiter_output_never_exceeds_ceiling_in_true_peak() {
        let sr = 48_000u32;
        for (seed, block) in [
            (0x1234_5678_9abc_def1u64, 256usize),
            (0xdead_beef_cafe_f00d, 97),
        ] {
            let (mut l, mut r) = drum_stem(sr as f32, 6.0, seed);
            let in_tp = ebur_true_peak_db(&l, &r, sr);
            let mut lim = Limiter::new(sr as f32, 2);
            lim.set(-1.0, 60.0);
            lim.set_enabled(true);
            lim.reset(); // start fully enabled, no toggle fade
            run_limiter(&mut lim, &mut l, &mut r, block);
            let out_tp = ebur_true_peak_db(&l, &r, sr);
            let out_sp = l.iter().chain(&r).fold(0.0f32, |m, x| m.max(x.abs()));
            eprintln!(
                "drum stem: input {in_tp:.2} dBTP, output {out_tp:.3} dBTP (sample peak {:.3} dBFS)",
                gain_to_db(out_sp)
            );
            assert!(in_tp > 11.0, "stem not driven hard enough: {in_tp}");
            assert!(
                out_tp <= -1.0,
                "output true peak {out_tp} dBTP over the -1 dBTP ceiling"
            );
            // And it is limiting, not just attenuating everything: the loud parts sit near it.
            assert!(out_tp > -2.0, "output true peak {out_tp} suspiciously low");
        }
    }

    #[test]
    fn limiter_holds_ceiling_on_white_noise_bursts() {
        // Full-band content (up to Nyquist) is the hardest case for inter-sample peaks.
        let sr = 48_000u32;
        let mut rng = Noise(0x9e37_79b9_7f4a_7c15);
        let n = 4 * sr as usize;
        let mut l = vec![0.0f32; n];
        let mut r = vec![0.0f32; n];
        for i in 0..n {
            if (i / 3000).is_multiple_of(2) {
                l[i] = rng.next() * 6.0;
                r[i] = rng.next() * 6.0;
            }
        }
        let in_tp = ebur_true_peak_db(&l, &r, sr);
        let mut lim = Limiter::new(sr as f32, 2);
        lim.set(-1.0, 20.0);
        lim.set_enabled(true);
        lim.reset();
        run_limiter(&mut lim, &mut l, &mut r, 256);
        let out_tp = ebur_true_peak_db(&l, &r, sr);
        eprintln!("white bursts: input {in_tp:.2} dBTP, output {out_tp:.3} dBTP");
        assert!(in_tp > 13.0);
        assert!(out_tp <= -1.0 && out_tp > -2.0, "{out_tp}");
    }

    #[test]
    fn limiter_leaves_quiet_material_untouched_after_delay() {
        let sr = 48_000.0;
        let (mut l, mut r) = drum_stem(sr, 3.0, 42);
        // Scale so the stem's true peak sits at -3 dBTP (2 dB under the -1 dBTP ceiling).
        let tp = ebur_true_peak_db(&l, &r, sr as u32);
        let g = db_to_gain(-3.0 - tp as f32);
        l.iter_mut().chain(r.iter_mut()).for_each(|x| *x *= g);
        let (l0, r0) = (l.clone(), r.clone());
        let mut lim = Limiter::new(sr, 2);
        lim.set(-1.0, 50.0);
        lim.set_enabled(true);
        lim.reset();
        run_limiter(&mut lim, &mut l, &mut r, 128);
        let d = lim.latency_samples();
        assert_eq!(d, 72); // 1.5 ms at 48 kHz
        let mut worst = 0.0f32;
        for (out, inp) in [(&l, &l0), (&r, &r0)] {
            for i in d..out.len() {
                let a = inp[i - d];
                if a.abs() > 1e-4 {
                    worst = worst.max(gain_to_db(out[i] / a).abs());
                } else {
                    assert!((out[i] - a).abs() < 1e-6);
                }
            }
        }
        eprintln!("quiet material: worst deviation {worst:.6} dB");
        assert!(worst <= 0.01, "changed by {worst} dB");
        assert!(lim.gain_reduction_db() == 0.0);
    }

    #[test]
    fn disabled_limiter_is_pure_delay_of_same_latency() {
        let sr = 44_100.0;
        let (mut l, mut r) = drum_stem(sr, 1.0, 7);
        let (l0, r0) = (l.clone(), r.clone());
        let mut lim = Limiter::new(sr, 2);
        let d = lim.latency_samples();
        run_limiter(&mut lim, &mut l, &mut r, 64);
        for i in 0..l.len() {
            let (el, er) = if i >= d {
                (l0[i - d], r0[i - d])
            } else {
                (0.0, 0.0)
            };
            assert_eq!((l[i], r[i]), (el, er), "sample {i}");
        }
        lim.set_enabled(true);
        assert_eq!(lim.latency_samples(), d);
        assert_eq!(d, ms_to_samples(1.5, sr));
    }

    #[test]
    fn limiter_gain_reduction_matches_overload() {
        // A 100 Hz sine at +6 dBFS (its true peak equals its sample peak to within 0.01 dB)
        // against a -1 dBTP ceiling needs about 7 dB (+ the internal margin) of reduction.
        let sr = 48_000.0;
        let n = 48_000;
        let mut l: Vec<f32> = sine(100.0 / 48_000.0, 0.0, 2.0, n);
        let mut r = l.clone();
        let mut lim = Limiter::new(sr, 2);
        lim.set(-1.0, 100.0);
        lim.set_enabled(true);
        lim.reset();
        run_limiter(&mut lim, &mut l, &mut r, 512);
        let gr = lim.gain_reduction_db();
        eprintln!("+6 dBFS sine: gain reduction {gr:.3} dB");
        let expected = 6.02 + 1.0;
        assert!(gr >= expected && gr <= expected + 0.5, "{gr}");
        let tail_peak = l[n / 2..].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(gain_to_db(tail_peak) <= -1.0 && gain_to_db(tail_peak) > -1.6);
    }
}
