//! Building blocks shared by the effects: a power-of-two ring-buffer delay line (integer and
//! allpass-interpolated reads), a crossfading tap for click-free changes of an integer delay, a
//! Schroeder allpass diffuser and a TPT state-variable filter for the delay's loop filters.

use std::f32::consts::PI;

/// A ring buffer of past samples. `read*` before `write` in the same sample gives
/// `x[n - d]` for the `d` asked; reading after `write` gives `x[n - d + 1]`.
#[derive(Debug, Clone)]
pub(crate) struct DelayLine {
    buf: Vec<f32>,
    mask: usize,
    /// Index the next `write` goes to.
    w: usize,
}

impl DelayLine {
    /// A line that can delay by at least `max_delay` samples (plus room for the 4-point read).
    /// Allocates.
    pub(crate) fn new(max_delay: usize) -> Self {
        let cap = (max_delay + 4).next_power_of_two();
        Self {
            buf: crate::dsp::util::zeroed(cap),
            mask: cap - 1,
            w: 0,
        }
    }

    /// Zero the contents.
    pub(crate) fn clear(&mut self) {
        self.buf.fill(0.0);
        self.w = 0;
    }

    /// Largest delay `read` may be asked for (before a write).
    pub(crate) fn max_delay(&self) -> usize {
        self.buf.len() - 3
    }

    /// Store the current sample.
    #[inline]
    pub(crate) fn write(&mut self, x: f32) {
        self.buf[self.w] = x;
        self.w = (self.w + 1) & self.mask;
    }

    /// The sample written `d` writes ago (`d >= 1`; `d = 1` is the most recent).
    #[inline]
    pub(crate) fn read(&self, d: usize) -> f32 {
        self.buf[self.w.wrapping_sub(d) & self.mask]
    }

    /// Fractional delay `d >= 1.5` by first-order allpass interpolation: flat magnitude at
    /// every frequency (so it adds no loss and no gain inside a feedback loop), low-frequency
    /// delay exactly `d`. The fraction is kept in [0.5, 1.5) so the allpass coefficient stays
    /// in [-0.2, 1/3], far from the unit circle. `state` is the interpolator's previous
    /// output, owned by the caller (one per read position).
    #[inline]
    pub(crate) fn read_allpass(&self, d: f32, state: &mut f32) -> f32 {
        let i = (d - 0.5) as usize;
        let f = d - i as f32;
        let eta = (1.0 - f) / (1.0 + f);
        let u0 = self.buf[self.w.wrapping_sub(i) & self.mask];
        let u1 = self.buf[self.w.wrapping_sub(i + 1) & self.mask];
        let y = eta * (u0 - *state) + u1;
        *state = y;
        y
    }
}

/// An integer delay whose changes crossfade (raised cosine) from the old tap to the new one
/// instead of jumping. A change asked during a fade waits until that fade ends (only the
/// latest such request is kept).
#[derive(Debug, Clone)]
pub(crate) struct XfadeTap {
    cur: usize,
    next: usize,
    pending: Option<usize>,
    pos: u32,
    len: u32,
}

impl XfadeTap {
    /// A tap resting at `delay`, fading over `fade_len` samples on each change.
    pub(crate) fn new(delay: usize, fade_len: u32) -> Self {
        let len = fade_len.max(1);
        Self {
            cur: delay,
            next: delay,
            pending: None,
            pos: len,
            len,
        }
    }

    /// Ask for a new delay.
    pub(crate) fn set(&mut self, delay: usize) {
        if self.pos < self.len {
            self.pending = if delay == self.next {
                None
            } else {
                Some(delay)
            };
        } else if delay != self.cur {
            self.next = delay;
            self.pos = 0;
        }
    }

    /// Jump to `delay` with no fade.
    pub(crate) fn snap(&mut self, delay: usize) {
        self.cur = delay;
        self.next = delay;
        self.pending = None;
        self.pos = self.len;
    }

    /// The delay the tap is at or fading to (the latest request).
    pub(crate) fn target(&self) -> usize {
        self.pending.unwrap_or(self.next)
    }

    /// Advance one sample: `(old delay, new delay, weight of the new one)`.
    #[inline]
    pub(crate) fn step(&mut self) -> (usize, usize, f32) {
        if self.pos >= self.len {
            return (self.cur, self.cur, 0.0);
        }
        self.pos += 1;
        let t = self.pos as f32 / self.len as f32;
        let w = 0.5 - 0.5 * (PI * t).cos();
        let out = (self.cur, self.next, w);
        if self.pos >= self.len {
            self.cur = self.next;
            if let Some(p) = self.pending.take()
                && p != self.cur
            {
                self.next = p;
                self.pos = 0;
            }
        }
        out
    }
}

/// Schroeder allpass `H(z) = (-g + z^-D) / (1 - g z^-D)`: flat magnitude, smeared phase.
#[derive(Debug, Clone)]
pub(crate) struct Allpass {
    line: DelayLine,
    d: usize,
    g: f32,
}

impl Allpass {
    /// An allpass of `d >= 1` samples and coefficient `|g| < 1`. Allocates.
    pub(crate) fn new(d: usize, g: f32) -> Self {
        Self {
            line: DelayLine::new(d),
            d: d.max(1),
            g,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.line.clear();
    }

    #[inline]
    pub(crate) fn process(&mut self, x: f32) -> f32 {
        let delayed = self.line.read(self.d);
        let v = x + self.g * delayed;
        self.line.write(v);
        delayed - self.g * v
    }
}

/// Coefficients of a 2nd-order TPT state-variable filter (Butterworth, Q = 1/sqrt 2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SvfCoeffs {
    a1: f32,
    a2: f32,
    a3: f32,
}

const SVF_K: f32 = std::f32::consts::SQRT_2;

impl SvfCoeffs {
    /// Cutoff `fc` (clamped below Nyquist) at `sr`.
    pub(crate) fn new(fc: f32, sr: f32) -> Self {
        let fc = fc.clamp(1.0, 0.49 * sr);
        let g = (PI * fc / sr).tan();
        let a1 = 1.0 / (1.0 + g * (g + SVF_K));
        let a2 = g * a1;
        Self { a1, a2, a3: g * a2 }
    }
}

/// State of one state-variable filter; `process` returns `(lowpass, highpass)`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Svf {
    ic1: f32,
    ic2: f32,
}

impl Svf {
    #[inline]
    pub(crate) fn process(&mut self, c: &SvfCoeffs, x: f32) -> (f32, f32) {
        let v3 = x - self.ic2;
        let v1 = c.a1 * self.ic1 + c.a2 * v3;
        let v2 = self.ic2 + c.a2 * self.ic1 + c.a3 * v3;
        self.ic1 = 2.0 * v1 - self.ic1;
        self.ic2 = 2.0 * v2 - self.ic2;
        (v2, x - SVF_K * v1 - v2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_read_delays_exactly() {
        let mut l = DelayLine::new(100);
        let mut out = Vec::new();
        for n in 0..200 {
            out.push(l.read(37));
            l.write(if n == 10 { 1.0 } else { 0.0 });
        }
        let pos = out.iter().position(|&v| v == 1.0);
        assert_eq!(pos, Some(47));
    }

    #[test]
    fn allpass_read_delays_a_sine_by_the_fraction_and_keeps_energy() {
        // A 300 Hz sine read at 13.37 samples matches sin(w (n - 13.37)) (allpass phase delay
        // at w = 0.039 rad/sample deviates from d by well under 0.01 sample).
        let w = 2.0 * PI * 300.0 / 48000.0;
        let d = 13.37f32;
        let mut l = DelayLine::new(64);
        let mut st = 0.0;
        let mut worst = 0.0f32;
        for n in 0..4000 {
            let y = l.read_allpass(d, &mut st);
            l.write((w * n as f32).sin());
            if n > 1000 {
                worst = worst.max((y - (w * (n as f32 - d)).sin()).abs());
            }
        }
        assert!(worst < 2e-3, "error {worst}");
        // White noise keeps its energy (|H| = 1 at every frequency), for several fractions.
        for d in [2.0f32, 2.5, 3.1, 3.9] {
            let mut l = DelayLine::new(16);
            let mut st = 0.0;
            let mut x = 0x9E37_79B9u32;
            let (mut ein, mut eout) = (0.0f64, 0.0f64);
            for n in 0..200_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let v = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
                let y = l.read_allpass(d, &mut st);
                l.write(v);
                if n >= 100 {
                    ein += (v as f64).powi(2);
                    eout += (y as f64).powi(2);
                }
            }
            assert!((eout / ein - 1.0).abs() < 0.01, "d {d}: {}", eout / ein);
        }
    }

    #[test]
    fn allpass_preserves_energy() {
        let mut ap = Allpass::new(113, 0.6);
        let mut e_out = 0.0f64;
        for n in 0..50_000 {
            let y = ap.process(if n == 0 { 1.0 } else { 0.0 });
            e_out += (y as f64).powi(2);
        }
        assert!((e_out - 1.0).abs() < 1e-4, "energy {e_out}");
    }

    #[test]
    fn svf_butterworth_is_minus_3db_at_cutoff() {
        let sr = 48000.0;
        let fc = 1000.0;
        let c = SvfCoeffs::new(fc, sr);
        let mut lp = Svf::default();
        let mut hp = Svf::default();
        let rms = |f: f32, sel: usize, s: &mut Svf| {
            *s = Svf::default();
            let w = 2.0 * PI * f / sr;
            let mut acc = 0.0f64;
            for n in 0..96_000 {
                let (l, h) = s.process(&c, (w * n as f32).sin());
                if n >= 48_000 {
                    acc += ([l, h][sel] as f64).powi(2);
                }
            }
            (acc / 48_000.0 * 2.0).sqrt()
        };
        let at_fc = 20.0 * rms(fc, 0, &mut lp).log10();
        assert!((at_fc + 3.01).abs() < 0.1, "lp at fc {at_fc} dB");
        let hp_fc = 20.0 * rms(fc, 1, &mut hp).log10();
        assert!((hp_fc + 3.01).abs() < 0.1, "hp at fc {hp_fc} dB");
        // One octave below, 12 dB/oct Butterworth: |H| = 1/sqrt(1 + 2^4) -> -12.3 dB.
        let hp_oct = 20.0 * rms(fc / 2.0, 1, &mut hp).log10();
        assert!(
            (hp_oct + 12.30).abs() < 0.2,
            "hp an octave down {hp_oct} dB"
        );
    }

    #[test]
    fn xfade_tap_moves_with_s_shaped_weight_and_queues_changes() {
        let mut t = XfadeTap::new(100, 10);
        t.set(200);
        t.set(300); // queued until the first fade ends
        let ws: Vec<(usize, usize, f32)> = (0..25).map(|_| t.step()).collect();
        assert_eq!((ws[0].0, ws[0].1), (100, 200));
        assert!(ws[0].2 < 0.05);
        assert_eq!(ws[9], (100, 200, 1.0));
        assert_eq!((ws[10].0, ws[10].1), (200, 300));
        assert_eq!(ws[24], (300, 300, 0.0));
    }
}
