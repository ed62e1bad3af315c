//! Measurements for the console's meters and the render report: per-channel sample peak (with
//! hold and decay for display) and 300 ms RMS ([`PeakRms`]), and programme loudness per
//! ITU-R BS.1770-4 / EBU R128 ([`Loudness`], a wrapper around the `ebur128` crate).

use crate::dsp::dynamics::fastmath::fast_log2;
use crate::dsp::util::ms_to_samples;
use ebur128::{EbuR128, Mode};

/// How long a display peak holds before it starts to fall.
const PEAK_HOLD_MS: f32 = 1000.0;
/// How fast a display peak falls after its hold, in dB per second.
const PEAK_DECAY_DB_PER_S: f32 = 20.0;
/// RMS integration window.
const RMS_WINDOW_MS: f32 = 300.0;

/// Converts a linear amplitude to dBFS; silence gives `-inf`.
#[inline]
fn amp_db(x: f64) -> f64 {
    if x <= 0.0 {
        f64::NEG_INFINITY
    } else {
        20.0 * x.log10()
    }
}

/// `scale * log10(x)` for a display value: the fast logarithm for positive normal `x`, the
/// exact one otherwise (0 gives `-inf`).
#[inline]
fn quick_db(x: f32, scale: f32) -> f32 {
    if x.is_normal() && x > 0.0 {
        scale * std::f32::consts::LOG10_2 * fast_log2(x)
    } else {
        (f64::from(scale) * f64::from(x).log10()) as f32
    }
}

#[derive(Debug, Clone)]
struct ChannelMeter {
    /// Display peak (linear), held then decaying.
    display: f32,
    hold_left: usize,
    /// Largest |x| since the last `take_max_peak_db`.
    max_since_take: f32,
    /// Squares of the last `window` samples.
    squares: Vec<f32>,
    pos: usize,
    sum: f64,
}

/// `display` and `hold_left` after `k` samples that trigger nothing: the hold counts down,
/// then every further sample multiplies by `decay`.
#[inline]
fn advance(display: f32, hold_left: usize, k: usize, decay: f32) -> (f32, usize) {
    if k <= hold_left {
        (display, hold_left - k)
    } else {
        let d = (k - hold_left).min(i32::MAX as usize) as i32;
        (display * decay.powi(d), 0)
    }
}

/// Sum of `x` as f64 in four independent lanes (so the compiler can vectorise it).
fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rest: f64 = chunks.remainder().iter().map(|&v| f64::from(v)).sum();
    for c in chunks {
        for k in 0..4 {
            acc[k] += f64::from(c[k]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}

impl ChannelMeter {
    /// The per-sample display rule, sample by sample (the reference behaviour).
    fn peak_per_sample(&mut self, input: &[f32], hold: usize, decay: f32) {
        for &x in input {
            let a = x.abs();
            if a >= self.display {
                self.display = a;
                self.hold_left = hold;
            } else if self.hold_left > 0 {
                self.hold_left -= 1;
            } else {
                self.display *= decay;
            }
            if a > self.max_since_take {
                self.max_since_take = a;
            }
        }
    }

    /// Peak metering of one block (see [`PeakRms::process`]).
    #[inline(always)]
    fn peak(&mut self, input: &[f32], hold: usize, decay: f32) {
        let n = input.len();
        if n == 0 {
            return;
        }
        // |x| as bits orders like the values; a NaN shows up as the largest pattern.
        let max_bits = input
            .iter()
            .fold(0u32, |m, &x| m.max(x.to_bits() & 0x7fff_ffff));
        let bm = f32::from_bits(max_bits);
        if max_bits > f32::INFINITY.to_bits() || hold < n {
            // NaN in the block (ignored sample by sample) or a tiny hold: the plain rule.
            return self.peak_per_sample(input, hold, decay);
        }
        if bm > self.max_since_take {
            self.max_since_take = bm;
        }
        let (end_display, end_hold) = advance(self.display, self.hold_left, n, decay);
        if bm < end_display {
            // The display never drops below `end_display` in this block: nothing triggers.
            (self.display, self.hold_left) = (end_display, end_hold);
            return;
        }
        // The last sample at the block maximum triggers if it reaches the display then; any
        // earlier trigger is overridden by it, and with the hold longer than the block no later
        // sample (all below the maximum) can trigger again.
        let p = input.iter().rposition(|&x| x.abs() == bm).unwrap_or(n - 1);
        let (at_p, _) = advance(self.display, self.hold_left, p, decay);
        if bm >= at_p {
            (self.display, self.hold_left) = advance(bm, hold, n - 1 - p, decay);
        } else {
            // Only a later, smaller sample might trigger after more decay: the plain rule.
            let mx = self.max_since_take;
            self.peak_per_sample(input, hold, decay);
            self.max_since_take = mx;
        }
    }

    /// Push the squares of one block into the RMS window and update the running sum.
    #[inline(always)]
    fn squares_in(&mut self, input: &[f32], window: usize) {
        let mut rest = input;
        while !rest.is_empty() {
            let len = rest.len().min(window - self.pos);
            let (now, later) = rest.split_at(len);
            let slot = &mut self.squares[self.pos..self.pos + len];
            // Sum of (new - old) in four f64 lanes.
            let mut acc = [0.0f64; 4];
            let mut sc = slot.chunks_exact_mut(4);
            let mut xc = now.chunks_exact(4);
            for (o, x) in (&mut sc).zip(&mut xc) {
                for k in 0..4 {
                    let sq = x[k] * x[k];
                    acc[k] += f64::from(sq) - f64::from(o[k]);
                    o[k] = sq;
                }
            }
            let mut tail = 0.0f64;
            for (o, &x) in sc.into_remainder().iter_mut().zip(xc.remainder()) {
                let sq = x * x;
                tail += f64::from(sq) - f64::from(*o);
                *o = sq;
            }
            self.sum += (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail;
            self.pos += len;
            if self.pos == window {
                self.pos = 0;
                // Re-sum once per window so rounding never accumulates (bounded work).
                self.sum = sum_f64(&self.squares);
            }
            rest = later;
        }
    }
}

/// Per-channel sample-peak and RMS meter, in dBFS.
///
/// - Peak: the largest |sample| seen; for display it holds for 1 s, then falls at 20 dB/s.
/// - RMS: over a sliding 300 ms window (silence before the first sample).
/// - [`PeakRms::take_max_peak_db`]: the largest |sample| since the previous take, for readers
///   that poll less often than blocks arrive.
#[derive(Debug, Clone)]
pub struct PeakRms {
    chans: Vec<ChannelMeter>,
    hold: usize,
    decay: f32,
    window: usize,
}

impl PeakRms {
    /// A meter for `channels` channels at `sample_rate` (allocates the RMS windows).
    pub fn new(sample_rate: f32, channels: usize) -> Self {
        let sample_rate = if sample_rate.is_finite() && sample_rate > 0.0 {
            sample_rate
        } else {
            48_000.0
        };
        let window = ms_to_samples(RMS_WINDOW_MS, sample_rate).max(1);
        let ch = ChannelMeter {
            display: 0.0,
            hold_left: 0,
            max_since_take: 0.0,
            squares: vec![0.0; window],
            pos: 0,
            sum: 0.0,
        };
        Self {
            chans: vec![ch; channels],
            hold: ms_to_samples(PEAK_HOLD_MS, sample_rate),
            decay: 10f32.powf(-PEAK_DECAY_DB_PER_S / 20.0 / sample_rate),
            window,
        }
    }

    /// Number of channels metered.
    pub fn channels(&self) -> usize {
        self.chans.len()
    }

    /// Meter one block. Extra input channels are ignored; missing ones are left as they were.
    ///
    /// Works block-wise (vectorised maximum and sums of squares); the display peak follows
    /// exactly the per-sample rule "a sample at or above the display resets it and restarts
    /// the hold; otherwise the hold counts down, then the display decays", with a per-sample
    /// fallback for the rare blocks where the block-wise shortcut cannot decide.
    pub fn process(&mut self, chans: &[&[f32]]) {
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
    fn process_avx2(&mut self, chans: &[&[f32]]) {
        self.process_impl(chans);
    }

    #[inline(always)]
    fn process_impl(&mut self, chans: &[&[f32]]) {
        let (window, hold, decay) = (self.window, self.hold, self.decay);
        for (m, input) in self.chans.iter_mut().zip(chans) {
            m.peak(input, hold, decay);
            m.squares_in(input, window);
        }
    }
    /// Display peak of channel `ch` in dBFS (`-inf` for silence or an unknown channel).
    /// Called after every block, so it uses the fast logarithm (error < 1e-4 dB).
    pub fn peak_db(&self, ch: usize) -> f32 {
        self.chans
            .get(ch)
            .map_or(f32::NEG_INFINITY, |m| quick_db(m.display, 20.0))
    }

    /// RMS of channel `ch` over the last 300 ms, in dBFS (`-inf` for silence).
    pub fn rms_db(&self, ch: usize) -> f32 {
        self.chans.get(ch).map_or(f32::NEG_INFINITY, |m| {
            let ms = (m.sum / self.window as f64).max(0.0);
            if ms > f64::from(f32::MIN_POSITIVE) && ms < f64::from(f32::MAX) {
                quick_db(ms as f32, 10.0)
            } else {
                (10.0 * ms.log10()) as f32
            }
        })
    }

    /// Largest sample peak of channel `ch` since the previous call, in dBFS; resets it.
    pub fn take_max_peak_db(&mut self, ch: usize) -> f32 {
        self.chans.get_mut(ch).map_or(f32::NEG_INFINITY, |m| {
            let p = m.max_since_take;
            m.max_since_take = 0.0;
            amp_db(p as f64) as f32
        })
    }

    /// Forget everything measured so far.
    pub fn reset(&mut self) {
        for m in &mut self.chans {
            m.display = 0.0;
            m.hold_left = 0;
            m.max_since_take = 0.0;
            m.squares.fill(0.0);
            m.pos = 0;
            m.sum = 0.0;
        }
    }
}

/// Why a [`Loudness`] meter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoudnessError {
    /// `ebur128` refused the configuration.
    #[error("cannot measure loudness of {channels} channel(s) at {sample_rate} Hz: {source}")]
    Config {
        /// Requested channel count.
        channels: u32,
        /// Requested sample rate.
        sample_rate: u32,
        /// The library's error.
        source: ebur128::Error,
    },
}

/// Programme loudness per ITU-R BS.1770-4 / EBU R128 (Tech 3341 momentary 400 ms and
/// short-term 3 s windows, gated integrated loudness; Tech 3342 loudness range), plus true
/// peak (4x oversampled below 96 kHz) and sample peak over everything measured.
///
/// Uses the `ebur128` crate in histogram mode, so memory stays bounded however long the
/// programme runs. Values with no measurement yet read `-inf` (LRA reads 0).
pub struct Loudness {
    inner: EbuR128,
    channels: usize,
}

impl std::fmt::Debug for Loudness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loudness")
            .field("channels", &self.channels)
            .field("rate", &self.inner.rate())
            .finish()
    }
}

impl Loudness {
    fn mode() -> Mode {
        Mode::M
            | Mode::S
            | Mode::I
            | Mode::LRA
            | Mode::TRUE_PEAK
            | Mode::SAMPLE_PEAK
            | Mode::HISTOGRAM
    }

    /// A meter for `channels` channels at `sample_rate`, or why not (channels must be 1..=64,
    /// rate 16 Hz..2.8 MHz). Allocates.
    pub fn try_new(sample_rate: u32, channels: u32) -> Result<Self, LoudnessError> {
        let inner = EbuR128::new(channels, sample_rate, Self::mode()).map_err(|source| {
            LoudnessError::Config {
                channels,
                sample_rate,
                source,
            }
        })?;
        Ok(Self {
            inner,
            channels: channels as usize,
        })
    }

    /// A meter for `channels` channels at `sample_rate`. Out-of-range values are clamped into
    /// what the library accepts (1..=64 channels, 8 kHz..384 kHz); use [`Loudness::try_new`]
    /// to be told instead. Allocates.
    pub fn new(sample_rate: u32, channels: u32) -> Self {
        let channels = channels.clamp(1, 64);
        let sample_rate = sample_rate.clamp(8_000, 384_000);
        match Self::try_new(sample_rate, channels) {
            Ok(l) => l,
            // Unreachable with the clamps above; fall back to a plain stereo 48 kHz meter.
            Err(_) => Self {
                inner: EbuR128::new(2, 48_000, Self::mode())
                    .expect("ebur128 accepts stereo at 48 kHz"),
                channels: 2,
            },
        }
    }

    /// Measure one block (planar, one slice per channel, all the same length).
    ///
    /// Does not allocate: in histogram mode `ebur128` only filters into buffers made in `new`
    /// and bumps histogram counters (checked against ebur128 0.1.11). It runs the K-weighting
    /// filters and the 4x true-peak interpolator, so it is not free; it is meant for the
    /// offline render and a meter thread, not for the audio thread. A block whose channel
    /// count or lengths don't match is ignored (returns `false`).
    pub fn process(&mut self, chans: &[&[f32]]) -> bool {
        if chans.len() != self.channels {
            return false;
        }
        self.inner.add_frames_planar_f32(chans).is_ok()
    }

    /// Momentary loudness (last 400 ms), LUFS.
    pub fn momentary_lufs(&self) -> f64 {
        self.inner.loudness_momentary().unwrap_or(f64::NEG_INFINITY)
    }

    /// Short-term loudness (last 3 s), LUFS.
    pub fn short_term_lufs(&self) -> f64 {
        self.inner.loudness_shortterm().unwrap_or(f64::NEG_INFINITY)
    }

    /// Integrated (gated) loudness of everything measured, LUFS.
    pub fn integrated_lufs(&self) -> f64 {
        self.inner.loudness_global().unwrap_or(f64::NEG_INFINITY)
    }

    /// Loudness range (EBU Tech 3342), LU.
    pub fn loudness_range_lu(&self) -> f64 {
        self.inner.loudness_range().unwrap_or(0.0)
    }

    /// Largest true peak over all channels, dBTP.
    pub fn true_peak_dbtp(&self) -> f64 {
        let p = (0..self.channels as u32)
            .filter_map(|c| self.inner.true_peak(c).ok())
            .fold(0.0f64, f64::max);
        amp_db(p)
    }

    /// Largest sample peak over all channels, dBFS.
    pub fn sample_peak_dbfs(&self) -> f64 {
        let p = (0..self.channels as u32)
            .filter_map(|c| self.inner.sample_peak(c).ok())
            .fold(0.0f64, f64::max);
        amp_db(p)
    }

    /// Forget everything measured so far.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(freq: f64, sr: f64, amp: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / sr).sin()) as f32)
            .collect()
    }

    fn measure_stereo(sig: &[f32], sr: u32, block: usize) -> Loudness {
        let mut l = Loudness::new(sr, 2);
        for b in sig.chunks(block) {
            assert!(l.process(&[b, b]));
        }
        l
    }

    #[test]
    fn tech3341_cases_1_and_2_integrated() {
        // A stereo 1 kHz sine at -23 / -33 dBFS peak in both channels measures -23 / -33 LUFS
        // (EBU Tech 3341, cases 1 and 2), 20 s long.
        let sr = 48_000u32;
        for level_db in [-23.0f64, -33.0] {
            let amp = 10f64.powf(level_db / 20.0);
            let s = sine(1000.0, sr as f64, amp, 20 * sr as usize);
            let m = measure_stereo(&s, sr, 1024);
            let i = m.integrated_lufs();
            eprintln!(
                "1 kHz at {level_db} dBFS: I {i:.3} LUFS, M {:.3}, S {:.3}, LRA {:.3} LU, TP {:.3} dBTP, SP {:.3} dBFS",
                m.momentary_lufs(),
                m.short_term_lufs(),
                m.loudness_range_lu(),
                m.true_peak_dbtp(),
                m.sample_peak_dbfs()
            );
            assert!((i - level_db).abs() <= 0.1, "integrated {i}");
            assert!((m.momentary_lufs() - level_db).abs() <= 0.1);
            assert!((m.short_term_lufs() - level_db).abs() <= 0.1);
            // A steady tone has no loudness range.
            assert!(m.loudness_range_lu().abs() <= 0.1);
            // 1 kHz at 48 kHz hits its crest on a sample: sample peak = true peak = level.
            assert!((m.sample_peak_dbfs() - level_db).abs() < 0.01);
            assert!((m.true_peak_dbtp() - level_db).abs() < 0.2);
        }
    }

    #[test]
    fn integrated_gates_out_silence_and_lra_of_two_levels() {
        // Tech 3341 case 3 style: -36 / -23 / -36 dBFS tones of 10 / 60 / 10 s -> -23 LUFS.
        // Tech 3342 case 1 style: 20 s at -20 then 20 s at -30 LUFS -> LRA 10 LU.
        let sr = 48_000u32;
        let n = sr as usize;
        let tone = |db: f64, secs: usize| sine(1000.0, sr as f64, 10f64.powf(db / 20.0), secs * n);
        let mut s = tone(-36.0, 10);
        s.extend(tone(-23.0, 60));
        s.extend(tone(-36.0, 10));
        s.extend(vec![0.0; 5 * n]); // silence is gated out too
        let m = measure_stereo(&s, sr, 4096);
        let i = m.integrated_lufs();
        eprintln!("case-3 style integrated: {i:.3} LUFS");
        assert!((i + 23.0).abs() <= 0.1, "{i}");

        let mut s = tone(-20.0, 20);
        s.extend(tone(-30.0, 20));
        let m = measure_stereo(&s, sr, 4096);
        let lra = m.loudness_range_lu();
        eprintln!("Tech 3342 case-1 style LRA: {lra:.3} LU");
        assert!((lra - 10.0).abs() <= 1.0, "{lra}");
    }

    #[test]
    fn loudness_true_peak_sees_inter_sample_peak() {
        // fs/4 sine at 45 degrees: samples at 0.707 A, true peak A (-6.02 dBTP for A = 0.5).
        let sr = 48_000u32;
        let s: Vec<f32> = (0..sr as usize)
            .map(|i| (0.5 * (PI / 2.0 * i as f64 + PI / 4.0).sin()) as f32)
            .collect();
        let m = measure_stereo(&s, sr, 512);
        let (tp, sp) = (m.true_peak_dbtp(), m.sample_peak_dbfs());
        eprintln!("fs/4 45 deg: sample peak {sp:.3} dBFS, true peak {tp:.3} dBTP");
        assert!((sp - (-9.03)).abs() < 0.01);
        assert!(tp - (-6.02) <= 0.2 && -6.02 - tp <= 0.4);
        // Wrong channel count is refused, not measured.
        let mut l = Loudness::new(sr, 2);
        assert!(!l.process(&[&s]));
        assert!(Loudness::try_new(sr, 0).is_err());
    }

    #[test]
    fn peak_rms_of_full_scale_sine() {
        let sr = 48_000.0;
        let s = sine(1000.0, sr as f64, 1.0, sr as usize);
        let mut m = PeakRms::new(sr, 2);
        let half: Vec<f32> = s.iter().map(|x| x * 0.5).collect();
        for (a, b) in s.chunks(480).zip(half.chunks(480)) {
            m.process(&[a, b]);
        }
        let (p, r) = (m.peak_db(0), m.rms_db(0));
        eprintln!(
            "full-scale sine: peak {p:.4} dBFS, RMS {r:.4} dBFS; half: {:.4} / {:.4}",
            m.peak_db(1),
            m.rms_db(1)
        );
        assert!(p.abs() <= 0.05, "{p}");
        assert!((r - -3.0103).abs() <= 0.05, "{r}");
        assert!((m.peak_db(1) - -6.0206).abs() <= 0.05);
        assert!((m.rms_db(1) - -9.0309).abs() <= 0.05);
        assert!(m.take_max_peak_db(0).abs() <= 0.05);
        // Taken: next take only sees what came after.
        m.process(&[&[0.25; 10], &[0.0; 10]]);
        assert!((m.take_max_peak_db(0) - -12.041).abs() < 0.01);
    }

    #[test]
    fn peak_holds_then_falls_and_rms_window_is_300ms() {
        let sr = 48_000.0;
        let mut m = PeakRms::new(sr, 1);
        m.process(&[&[0.5; 480]]); // -6.02 dBFS
        let silence = vec![0.0f32; 4800];
        // After 1 s (hold) plus 1 s of fall at 20 dB/s: -26.02 dBFS.
        for _ in 0..20 {
            m.process(&[&silence]);
        }
        let p = m.peak_db(0);
        eprintln!("peak after 1 s hold + 1 s fall: {p:.3} dBFS");
        assert!((p - -26.02).abs() < 0.1, "{p}");
        // RMS: a DC of 0.5 for 150 ms then silence -> half the 300 ms window: -6.02 - 3.01.
        let mut m = PeakRms::new(sr, 1);
        m.process(&[&vec![0.5; 7200]]);
        m.process(&[&vec![0.0; 7200]]);
        let r = m.rms_db(0);
        assert!((r - -9.03).abs() < 0.01, "{r}");
        // And 300 ms of silence later it reads silence exactly.
        m.process(&[&vec![0.0; 14_400]]);
        assert_eq!(m.rms_db(0), f32::NEG_INFINITY);
    }
    #[test]
    fn blockwise_meter_follows_the_per_sample_rule() {
        // Bursts of noise with decays and silences between, in blocks of many sizes; the
        // reference is the rule written out sample by sample, and the RMS is the mean square
        // of the last 300 ms computed directly.
        let sr = 8_000.0; // short hold (1 s = 8000 samples) so decays happen often
        let n = 60_000;
        let mut seed = 99u32;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let w = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let env = [1.0, 0.3, 0.0, 0.6, 0.05][(i / 7000) % 5];
                w * env * (1.0 + (i as f32 * 0.001).sin())
            })
            .collect();
        let mut m = PeakRms::new(sr, 1);
        let (hold, decay) = (8000usize, 10f32.powf(-20.0 / 20.0 / sr));
        let (mut disp, mut left) = (0.0f32, 0usize);
        let sizes = [64usize, 1, 7, 300, 4096, 33, 2];
        let (mut pos, mut i, mut worst) = (0, 0, 0.0f32);
        while pos < n {
            let len = sizes[i % sizes.len()].min(n - pos);
            let blk = &x[pos..pos + len];
            m.process(&[blk]);
            for &v in blk {
                let a = v.abs();
                if a >= disp {
                    disp = a;
                    left = hold;
                } else if left > 0 {
                    left -= 1;
                } else {
                    disp *= decay;
                }
            }
            pos += len;
            i += 1;
            let want = 20.0 * disp.log10();
            let got = m.peak_db(0);
            worst = worst.max((got - want).abs());
            assert!((got - want).abs() < 1e-3, "block {i}: peak {got} vs {want}");
            let w = m.window;
            let lo = pos.saturating_sub(w);
            let ms = x[lo..pos]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / w as f64;
            let want_rms = (10.0 * ms.log10()) as f32;
            let got_rms = m.rms_db(0);
            assert!(
                got_rms == want_rms || (got_rms - want_rms).abs() < 1e-3,
                "block {i}: rms {got_rms} vs {want_rms}"
            );
        }
        println!("block-wise peak: worst {worst:.2e} dB over {i} blocks");
    }
}
