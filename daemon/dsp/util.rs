//! Small shared pieces of DSP: decibel conversions, the gain smoother every gain goes through,
//! and the denormal guard the audio thread runs under.

/// Decibels to linear amplitude. `-inf` (and anything below -400 dB) gives exactly 0.
#[inline]
pub fn db_to_gain(db: f32) -> f32 {
    if db <= -400.0 {
        0.0
    } else {
        10f32.powf(db * 0.05)
    }
}

/// Linear amplitude to decibels; 0 gives `-inf`.
#[inline]
pub fn gain_to_db(gain: f32) -> f32 {
    if gain <= 0.0 {
        f32::NEG_INFINITY
    } else {
        20.0 * gain.log10()
    }
}

/// Milliseconds to a whole number of samples (rounded).
#[inline]
pub fn ms_to_samples(ms: f32, sample_rate: f32) -> usize {
    (ms.max(0.0) * 0.001 * sample_rate).round() as usize
}

/// `n` zeros, every memory page of them written here. Buffers the audio thread will use are
/// built with this on the control plane: a fresh allocation (the allocator maps big ones
/// straight from the kernel, untouched) would otherwise take a page fault, and the zeroing
/// of the page, at the audio thread's first write to each page.
pub fn zeroed(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    // One write per 4 KiB page; volatile so it is not folded away as a store of what
    // calloc already promises.
    for i in (0..n).step_by(1024) {
        // SAFETY: `i < n`, inside the vector.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(i), 0.0) };
    }
    v
}

/// One-pole coefficient that reaches 1 - 1/e of a step in `time_ms`.
#[inline]
pub fn one_pole_coeff(time_ms: f32, sample_rate: f32) -> f32 {
    if time_ms <= 0.0 {
        0.0
    } else {
        (-1.0 / (time_ms * 0.001 * sample_rate)).exp()
    }
}

/// A gain that glides to its target over a fixed time with a raised-cosine (S-shaped) curve,
/// so its slope is zero at both ends: a jump from 0 to 1 adds no step to the signal beyond what
/// the signal itself has. A new target during a glide starts a new glide from where it is.
///
/// Automation drives it with straight ramps instead ([`SmoothedGain::ramp_to`]): exactly `n`
/// samples from where it is to a target, so a lane read at grid points is followed sample by
/// sample.
#[derive(Debug, Clone)]
pub struct SmoothedGain {
    current: f32,
    start: f32,
    target: f32,
    /// Samples of the current move done so far / total.
    pos: u32,
    len: u32,
    /// Length of a glide ([`SmoothedGain::set_target`]).
    glide: u32,
    /// The current move is a straight ramp ([`SmoothedGain::ramp_to`]).
    linear: bool,
}

impl SmoothedGain {
    /// A smoother resting at `value`, gliding over `time_ms` on each change.
    pub fn new(value: f32, time_ms: f32, sample_rate: f32) -> Self {
        let len = ms_to_samples(time_ms, sample_rate).max(1) as u32;
        Self {
            current: value,
            start: value,
            target: value,
            pos: len,
            len,
            glide: len,
            linear: false,
        }
    }

    /// Set the value to glide to.
    #[inline]
    pub fn set_target(&mut self, target: f32) {
        if target == self.target {
            return;
        }
        self.start = self.current;
        self.target = target;
        self.pos = 0;
        self.len = self.glide;
        self.linear = false;
    }

    /// Move in a straight line from the value now to `target`, reaching it exactly at the
    /// `n`th sample from now (`n == 0`, or a target equal to the value now: jump at once).
    /// Replaces any glide in progress.
    #[inline]
    pub fn ramp_to(&mut self, target: f32, n: u32) {
        if n == 0 || target == self.current {
            self.current = target;
            self.start = target;
            self.target = target;
            self.pos = self.len;
            return;
        }
        self.start = self.current;
        self.target = target;
        self.pos = 0;
        self.len = n;
        self.linear = true;
    }

    /// Jump to `value` at once (for initial state, not for audible changes).
    pub fn reset(&mut self, value: f32) {
        self.current = value;
        self.start = value;
        self.target = value;
        self.pos = self.len;
    }

    /// The value the smoother is gliding to.
    #[inline]
    pub fn target(&self) -> f32 {
        self.target
    }

    /// The value now.
    #[inline]
    pub fn current(&self) -> f32 {
        self.current
    }

    /// True while a glide is in progress.
    #[inline]
    pub fn is_smoothing(&self) -> bool {
        self.pos < self.len
    }

    /// Advance one sample and return the gain for it.
    #[inline]
    pub fn next_value(&mut self) -> f32 {
        if self.pos < self.len {
            self.pos += 1;
            if self.linear {
                self.current = if self.pos == self.len {
                    self.target
                } else {
                    let t = self.pos as f32 / self.len as f32;
                    self.start + (self.target - self.start) * t
                };
            } else {
                let t = self.pos as f32 / self.len as f32;
                let shape = 0.5 - 0.5 * (std::f32::consts::PI * t).cos();
                self.current = self.start + (self.target - self.start) * shape;
            }
        }
        self.current
    }

    /// Multiply `buf` by the gliding gain, in place.
    #[inline]
    pub fn apply(&mut self, buf: &mut [f32]) {
        if !self.is_smoothing() {
            let g = self.current;
            if g != 1.0 {
                buf.iter_mut().for_each(|s| *s *= g);
            }
            return;
        }
        for s in buf.iter_mut() {
            *s *= self.next_value();
        }
    }

    /// Fill `out` with the per-sample gains of the next `out.len()` samples.
    #[inline]
    pub fn fill(&mut self, out: &mut [f32]) {
        if !self.is_smoothing() {
            out.fill(self.current);
            return;
        }
        for g in out.iter_mut() {
            *g = self.next_value();
        }
    }
}

/// While alive, the current thread flushes denormals to zero (FTZ and DAZ on x86's MXCSR,
/// FZ on aarch64's FPCR). Restores the previous mode on drop. The audio thread of every backend
/// and the offline renderer hold one around all processing.
pub struct DenormalGuard {
    #[allow(dead_code)]
    saved: usize,
}

impl DenormalGuard {
    /// Turn flush-to-zero on for this thread.
    pub fn new() -> Self {
        Self {
            saved: arch::enable_ftz(),
        }
    }
}

impl Default for DenormalGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DenormalGuard {
    fn drop(&mut self) {
        arch::restore(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use std::arch::asm;
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

    pub fn enable_ftz() -> usize {
        let mut csr: u32 = 0;
        // SAFETY: reading and writing MXCSR only changes this thread's float rounding/flush
        // mode; the pointer is to a live local.
        unsafe {
            asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            let new = csr | FTZ_DAZ;
            asm!("ldmxcsr [{}]", in(reg) &new, options(nostack));
        }
        csr as usize
    }

    pub fn restore(saved: usize) {
        let csr = saved as u32;
        // SAFETY: as above, restoring a value read from MXCSR earlier.
        unsafe { asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack)) };
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use std::arch::asm;
    const FZ: usize = 1 << 24;

    pub fn enable_ftz() -> usize {
        let fpcr: usize;
        // SAFETY: FPCR holds only this thread's floating-point control bits.
        unsafe {
            asm!("mrs {}, fpcr", out(reg) fpcr);
            asm!("msr fpcr, {}", in(reg) fpcr | FZ);
        }
        fpcr
    }

    pub fn restore(saved: usize) {
        // SAFETY: restoring a value read from FPCR earlier.
        unsafe { asm!("msr fpcr, {}", in(reg) saved) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub fn enable_ftz() -> usize {
        0
    }
    pub fn restore(_saved: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_round_trip() {
        for db in [-60.0f32, -6.0, 0.0, 6.0, 10.0] {
            assert!((gain_to_db(db_to_gain(db)) - db).abs() < 1e-4);
        }
        assert!((db_to_gain(-6.0206) - 0.5).abs() < 1e-4);
        assert_eq!(db_to_gain(f32::NEG_INFINITY), 0.0);
        assert_eq!(gain_to_db(0.0), f32::NEG_INFINITY);
    }

    #[test]
    fn smoother_reaches_target_in_time_with_zero_end_slopes() {
        let sr = 48000.0;
        let mut s = SmoothedGain::new(0.0, 10.0, sr);
        s.set_target(1.0);
        let vals: Vec<f32> = (0..480).map(|_| s.next_value()).collect();
        assert_eq!(*vals.last().unwrap(), 1.0);
        assert!(!s.is_smoothing());
        // First and last steps are far smaller than the mean step (1/480).
        let mean = 1.0 / 480.0;
        assert!(vals[0] < mean * 0.01, "first step {}", vals[0]);
        assert!(1.0 - vals[478] < mean * 0.01);
        // Largest step is pi/2 times the mean for a raised cosine.
        let max_step = vals.windows(2).map(|w| w[1] - w[0]).fold(0.0f32, f32::max);
        assert!((max_step / mean - std::f32::consts::FRAC_PI_2).abs() < 0.01);
    }

    #[test]
    fn a_ramp_is_straight_and_exactly_n_samples_long() {
        let mut s = SmoothedGain::new(0.25, 10.0, 48000.0);
        s.ramp_to(0.75, 32);
        let vals: Vec<f32> = (0..40).map(|_| s.next_value()).collect();
        for (i, v) in vals.iter().enumerate().take(32) {
            let want = 0.25 + 0.5 * (i + 1) as f32 / 32.0;
            assert!((v - want).abs() < 1e-7, "sample {i}: {v} vs {want}");
        }
        assert_eq!(vals[31], 0.75, "lands on the target at the 32nd sample");
        assert!(vals[32..].iter().all(|&v| v == 0.75), "then rests");
        assert!(!s.is_smoothing());
        // A glide after a ramp has the glide's own length again (480 samples at 48 kHz).
        s.set_target(0.0);
        let n = std::iter::from_fn(|| s.is_smoothing().then(|| s.next_value())).count();
        assert_eq!(n, 480);
        // A ramp to where it is, or over no samples, is a jump.
        s.ramp_to(0.5, 0);
        assert_eq!((s.current(), s.is_smoothing()), (0.5, false));
    }

    #[test]
    fn denormal_guard_flushes() {
        let _g = DenormalGuard::new();
        let tiny = std::hint::black_box(1e-39f32); // subnormal
        let y = std::hint::black_box(tiny * 0.5);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        assert_eq!(y, 0.0);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = y;
    }
}
