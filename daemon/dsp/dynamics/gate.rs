//! The channel gate: a peak-triggered gate with hold, i.e. an expander with an infinite ratio
//! and a floor of `range_db` attenuation.
//!
//! Per sample (stereo-linked: the trigger is the peak over all channels):
//! - **Trigger.** A closed gate opens when the sample peak reaches `threshold_db`. An open gate
//!   stays triggered while the peak stays at or above `threshold_db − 3 dB` ([`HYSTERESIS_DB`]),
//!   so a signal hovering at the threshold does not chatter.
//! - **Hold.** Every triggered sample restarts a `hold_ms` countdown; the gate starts to close
//!   only once the peak has stayed below the (hysteresis) threshold for `hold_ms`. The hold
//!   also bridges a waveform's own zero crossings, so it is never shorter than
//!   [`MIN_HOLD_MS`] (10 ms: half a period of 50 Hz); below that frequency the gate may start
//!   closing between the peaks of a signal that is above the threshold.
//! - **Attack.** Opening ramps the gain linearly in amplitude at one full scale (0 → 1) per
//!   `attack_ms`, so from the floor it reaches unity in `(1 − floor)·attack_ms`.
//! - **Release.** Closing ramps the gain linearly in dB, from 0 dB to `−range_db` in exactly
//!   `release_ms`, then stays at the floor.
//! - If `range_db` is lowered while closed, the gain rises to the new floor at 1 dB/ms.
//!
//! On/off crossfades the gain with unity over 10 ms.

use super::fastmath::fast_gain_to_db;
use crate::dsp::util::{SmoothedGain, db_to_gain, gain_to_db, ms_to_samples};

/// The gate closes this far below `threshold_db` (it opens at `threshold_db`).
pub const HYSTERESIS_DB: f32 = 3.0;
/// The shortest hold used, whatever `hold_ms` says: it keeps the gate from chattering on the
/// zero crossings of signals down to 50 Hz.
pub const MIN_HOLD_MS: f32 = 10.0;
/// Frames per inner chunk (the size of the scratch gain buffer).
const CHUNK: usize = 4096;
/// On/off crossfade time.
const ENABLE_FADE_MS: f32 = 10.0;
/// Rate at which the gain rises to a raised floor, dB per ms.
const FLOOR_RISE_DB_PER_MS: f32 = 1.0;

/// The gate's per-sample law with its state, copied out of a [`Gate`] so a fused loop can run
/// it sample by sample ([`Gate::ticker`], [`GateTicker::tick`], [`Gate::finish`]); the gate's
/// own `process` runs exactly the same code.
#[derive(Debug, Clone, Copy)]
pub struct GateTicker {
    open_lin: f32,
    close_lin: f32,
    floor: f32,
    open_step: f32,
    close_mul: f32,
    floor_rise_mul: f32,
    hold_len: u32,
    hold_left: u32,
    open: bool,
    gain: f32,
}

impl GateTicker {
    /// Advance one sample whose linked peak (max |x| over the channels) is `peak`; returns
    /// the gate's gain for that sample.
    #[inline(always)]
    pub fn tick(&mut self, peak: f32) -> f32 {
        let trigger = peak
            >= if self.open {
                self.close_lin
            } else {
                self.open_lin
            };
        if trigger {
            self.open = true;
            self.hold_left = self.hold_len;
        } else if self.hold_left > 0 {
            self.hold_left -= 1;
        } else {
            self.open = false;
        }
        let gain = self.gain;
        self.gain = if self.open {
            (gain + self.open_step).min(1.0)
        } else if gain > self.floor {
            (gain * self.close_mul).max(self.floor)
        } else if gain < self.floor {
            (gain * self.floor_rise_mul).min(self.floor)
        } else {
            gain
        };
        self.gain
    }
}

impl crate::dsp::filters::FrameGain for GateTicker {
    #[inline(always)]
    fn gain(&mut self, peak: f32) -> f32 {
        self.tick(peak)
    }
}

/// A noise gate with hold and a finite range (see the module docs for the exact behaviour).
#[derive(Debug, Clone)]
pub struct Gate {
    sample_rate: f32,
    /// Linear peak at which a closed gate opens.
    open_lin: f32,
    /// Linear peak above which an open gate stays triggered (threshold − hysteresis).
    close_lin: f32,
    /// Linear gain when fully closed (−range_db).
    floor: f32,
    /// Gain added per sample while opening (1 / attack samples).
    open_step: f32,
    /// Gain factor per sample while closing (floor^(1/release samples)).
    close_mul: f32,
    /// Gain factor per sample while rising to a raised floor.
    floor_rise_mul: f32,
    /// Hold length in samples.
    hold_len: u32,
    /// Samples of hold left.
    hold_left: u32,
    /// True while triggered or holding.
    open: bool,
    /// The gate's own gain (before the on/off crossfade), floor..1.
    gain: f32,
    /// 0 = bypassed .. 1 = in.
    enable: SmoothedGain,
    /// Per-frame gains of the current chunk (allocated in `new`).
    scratch: Vec<f32>,
}

impl Gate {
    /// A disabled gate with threshold −60 dBFS, range 60 dB, attack 0.5 ms, hold 50 ms,
    /// release 150 ms. Allocates its scratch buffer.
    pub fn new(sample_rate: f32) -> Self {
        let mut g = Self {
            sample_rate,
            open_lin: 0.0,
            close_lin: 0.0,
            floor: 1.0,
            open_step: 1.0,
            close_mul: 1.0,
            floor_rise_mul: db_to_gain(FLOOR_RISE_DB_PER_MS * 1000.0 / sample_rate),
            hold_len: 0,
            hold_left: 0,
            open: false,
            gain: 1.0,
            enable: SmoothedGain::new(0.0, ENABLE_FADE_MS, sample_rate),
            scratch: crate::dsp::util::zeroed(CHUNK),
        };
        g.set(-60.0, 60.0, 0.5, 50.0, 150.0);
        g
    }

    /// Set all parameters. Ranges (values outside are clamped): threshold −120..0 dBFS
    /// (sample peak), range 0..100 dB, attack 0..500 ms (0 = instant), hold 10..5000 ms,
    /// release 0..10000 ms (0 = instant). Real-time safe.
    pub fn set(
        &mut self,
        threshold_db: f32,
        range_db: f32,
        attack_ms: f32,
        hold_ms: f32,
        release_ms: f32,
    ) {
        let finite = |v: f32, d: f32| if v.is_finite() { v } else { d };
        let thr = finite(threshold_db, -60.0).clamp(-120.0, 0.0);
        self.open_lin = db_to_gain(thr);
        self.close_lin = db_to_gain(thr - HYSTERESIS_DB);
        let range = finite(range_db, 60.0).clamp(0.0, 100.0);
        self.floor = db_to_gain(-range);
        let attack = ms_to_samples(finite(attack_ms, 0.5).clamp(0.0, 500.0), self.sample_rate);
        self.open_step = 1.0 / attack.max(1) as f32;
        let release = ms_to_samples(
            finite(release_ms, 150.0).clamp(0.0, 10_000.0),
            self.sample_rate,
        );
        self.close_mul = db_to_gain(-range / release.max(1) as f32);
        self.hold_len = ms_to_samples(
            finite(hold_ms, 50.0).clamp(MIN_HOLD_MS, 5000.0),
            self.sample_rate,
        ) as u32;
        self.hold_left = self.hold_left.min(self.hold_len);
    }

    /// Turn the gate in or out with a 10 ms crossfade (no click).
    pub fn set_enabled(&mut self, on: bool) {
        self.enable.set_target(if on { 1.0 } else { 0.0 });
    }

    /// True if enabled (or fading in).
    pub fn is_enabled(&self) -> bool {
        self.enable.target() > 0.0
    }

    /// The attenuation applied now, in dB (≥ 0), including the on/off crossfade.
    pub fn gain_reduction_db(&self) -> f32 {
        let e = self.enable.current();
        let g = 1.0 + e * (self.gain - 1.0);
        // Read after every block: the fast logarithm (g is a normal float in floor..1).
        let db = if g.is_normal() {
            fast_gain_to_db(g)
        } else {
            gain_to_db(g)
        };
        (0.0 - db).max(0.0)
    }

    /// Open the gate and clear the hold; jump the on/off fade to its target. For stream
    /// restarts, not for audible changes.
    pub fn reset(&mut self) {
        self.gain = 1.0;
        self.open = false;
        self.hold_left = 0;
        self.enable.reset(self.enable.target());
    }

    /// True when the gate is fully in and not fading: its output is exactly the input times
    /// [`GateTicker::tick`]'s gains.
    pub fn is_fully_on(&self) -> bool {
        !self.enable.is_smoothing() && self.enable.current() == 1.0
    }

    /// True when the gate is fully out: `process` leaves the audio untouched.
    pub fn is_fully_off(&self) -> bool {
        self.enable.target() == 0.0 && !self.enable.is_smoothing()
    }

    /// The per-sample law and the current state (see [`GateTicker`]).
    pub fn ticker(&self) -> GateTicker {
        GateTicker {
            open_lin: self.open_lin,
            close_lin: self.close_lin,
            floor: self.floor,
            open_step: self.open_step,
            close_mul: self.close_mul,
            floor_rise_mul: self.floor_rise_mul,
            hold_len: self.hold_len,
            hold_left: self.hold_left,
            open: self.open,
            gain: self.gain,
        }
    }

    /// Take back the state a [`GateTicker`] advanced.
    pub fn finish(&mut self, t: GateTicker) {
        self.hold_left = t.hold_left;
        self.open = t.open;
        self.gain = t.gain;
    }

    /// Gate 1 or more equal-length channels in place with one linked gain. Real-time safe.
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let Some(frames) = chans.iter().map(|c| c.len()).min() else {
            return;
        };
        if self.enable.target() == 0.0 && !self.enable.is_smoothing() {
            // Fully out: bit-transparent; re-enabling starts open and closes if quiet.
            self.gain = 1.0;
            self.open = false;
            self.hold_left = 0;
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
        let n = end - start;
        let mut t = self.ticker();
        let gains = &mut self.scratch[..n];
        gains.copy_from_slice(&chans[0][start..end]);
        gains.iter_mut().for_each(|g| *g = g.abs());
        for ch in chans.iter().skip(1) {
            for (g, &s) in gains.iter_mut().zip(&ch[start..end]) {
                *g = g.max(s.abs());
            }
        }
        for g in gains.iter_mut() {
            *g = t.tick(*g);
        }
        (self.hold_left, self.open, self.gain) = (t.hold_left, t.open, t.gain);
        if self.enable.is_smoothing() || self.enable.current() != 1.0 {
            for g in gains.iter_mut() {
                let e = self.enable.next_value();
                *g = 1.0 + e * (*g - 1.0);
            }
        }
        for ch in chans.iter_mut() {
            for (s, &g) in ch[start..end].iter_mut().zip(gains.iter()) {
                *s *= g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn gate(t: f32, range: f32, a: f32, h: f32, r: f32) -> Gate {
        let mut g = Gate::new(SR);
        g.set(t, range, a, h, r);
        g.set_enabled(true);
        g.reset();
        g
    }

    #[test]
    fn below_threshold_is_attenuated_by_range() {
        let mut g = gate(-50.0, 60.0, 0.5, 50.0, 150.0);
        let x = sine(1000.0, amp(-70.0), 48_000);
        let y = run_mono(&x, 256, |ch| g.process(ch));
        let db = gain_db(&y[24_000..], &x[24_000..]);
        assert!((db - -60.0).abs() < 0.5, "gain {db}");
        assert!((g.gain_reduction_db() - 60.0).abs() < 0.5);
    }

    #[test]
    fn above_threshold_passes_at_unity() {
        let mut g = gate(-50.0, 60.0, 0.5, 50.0, 150.0);
        let x = sine(1000.0, amp(-30.0), 48_000);
        let y = run_mono(&x, 256, |ch| g.process(ch));
        let db = gain_db(&y[4800..], &x[4800..]);
        assert!(db.abs() < 0.1, "gain {db}");
    }

    /// Loud for 500 ms, then quiet: measure when the gain starts falling (hold) and when it
    /// reaches the floor (release, linear in dB), and the attack on the way back up.
    #[test]
    fn holds_then_closes_over_release_then_reopens_over_attack() {
        let (hold_ms, release_ms, attack_ms) = (50.0f64, 150.0f64, 2.0f64);
        let mut g = gate(
            -50.0,
            60.0,
            attack_ms as f32,
            hold_ms as f32,
            release_ms as f32,
        );
        let (n0, n1, n2) = (24_000usize, 24_000usize, 4800usize);
        let mut x = sine(1000.0, amp(-70.0), n0 + n1 + n2);
        let loud = sine(1000.0, amp(-30.0), n0 + n1 + n2);
        x[..n0].copy_from_slice(&loud[..n0]);
        x[n0 + n1..].copy_from_slice(&loud[n0 + n1..]);
        let y = run_mono(&x, 64, |ch| g.process(ch));
        let gains = sample_gain_db(&y, &x, amp(-76.0));
        let ms = |n: usize| n as f64 * 1000.0 / SR as f64;
        // Hold: the last sample above threshold is the last peak, <= 1 ms before the drop.
        let closing = (n0..n0 + n1)
            .find(|&i| gains[i].is_some_and(|d| d < -0.01))
            .unwrap();
        let hold = ms(closing - n0);
        // Release: the floor (-59.5 dB) is reached release_ms after closing started.
        let closed = (closing..n0 + n1)
            .find(|&i| gains[i].is_some_and(|d| d < -59.5))
            .unwrap();
        let release = ms(closed - closing);
        // Halfway through the release the gain is -30 dB (linear in dB).
        let mid = closing + (release_ms * SR as f64 / 2000.0) as usize;
        let mid_db = (mid - 24..mid + 24).filter_map(|i| gains[i]).sum::<f64>()
            / (mid - 24..mid + 24).filter(|&i| gains[i].is_some()).count() as f64;
        // Attack: from the first loud sample above threshold to unity.
        let trigger = (n0 + n1..x.len())
            .find(|&i| x[i].abs() >= amp(-50.0))
            .unwrap();
        let opened = (trigger..x.len())
            .find(|&i| gains[i].is_some_and(|d| d > -0.01))
            .unwrap();
        let attack = ms(opened - trigger);
        println!(
            "hold {hold:.2} ms, release {release:.2} ms, mid {mid_db:.2} dB, attack {attack:.2} ms"
        );
        assert!(hold > hold_ms - 1.0 && hold < hold_ms + 2.0, "hold {hold}");
        // Linear in dB: from -0.01 dB to -59.5 dB takes (59.49/60) of release_ms.
        let want = release_ms * (59.5 - 0.01) / 60.0;
        assert!(
            (release - want).abs() < 0.5,
            "release {release}, want {want}"
        );
        assert!((mid_db - -30.0).abs() < 1.0, "mid-release {mid_db}");
        assert!(
            attack <= attack_ms + 0.1 && attack > 0.5 * attack_ms,
            "attack {attack}"
        );
    }

    #[test]
    fn hysteresis_keeps_a_signal_between_the_thresholds_open() {
        // -51.5 dBFS: below the opening threshold (-50) but above the closing one (-53).
        let mut g = gate(-50.0, 60.0, 0.5, 0.0, 20.0);
        // hold 0 is raised to MIN_HOLD_MS, which bridges the 1 kHz zero crossings.
        let mut x = sine(1000.0, amp(-40.0), 24_000);
        let quiet = sine(1000.0, amp(-51.5), 48_000);
        x.extend_from_slice(&quiet[24_000..]);
        let y = run_mono(&x, 256, |ch| g.process(ch));
        let held = gain_db(&y[36_000..], &x[36_000..]);
        assert!(held.abs() < 0.5, "stayed open: {held}");
        // The same level reached from closed stays closed.
        let mut g2 = gate(-50.0, 60.0, 0.5, 0.0, 20.0);
        let y2 = run_mono(&quiet, 256, |ch| g2.process(ch));
        let shut = gain_db(&y2[24_000..], &quiet[24_000..]);
        assert!((shut - -60.0).abs() < 0.5, "stayed closed: {shut}");
    }

    #[test]
    fn disabled_by_default_and_switching_is_smooth() {
        let mut g = Gate::new(SR);
        g.set(-20.0, 80.0, 0.5, 10.0, 10.0);
        let x = sine(1000.0, amp(-40.0), 19_200);
        let mut y = x.clone();
        for (k, blk) in y.chunks_mut(4800).enumerate() {
            if k == 2 {
                g.set_enabled(true);
            }
            g.process(&mut [blk]);
        }
        assert_eq!(&y[..9600], &x[..9600]);
        // Fully closed after switching in: -80 dB.
        let shut = gain_db(&y[16_800..], &x[16_800..]);
        assert!((shut - -80.0).abs() < 0.5, "{shut}");
        // No sample-to-sample jump of the linear gain: the 10 ms raised-cosine crossfade moves
        // it by at most (pi/2)/480 = 0.0033 per sample (an instant switch would be ~1.0).
        let lin: Vec<Option<f64>> = x
            .iter()
            .zip(&y)
            .map(|(&i, &o)| (i.abs() > 0.005).then(|| o as f64 / i as f64))
            .collect();
        let worst = lin
            .windows(2)
            .filter_map(|w| Some((w[1]? - w[0]?).abs()))
            .fold(0.0, f64::max);
        println!("largest linear gain step {worst:.5}");
        assert!(worst < 0.01, "gain step {worst}");
    }

    #[test]
    fn robust_on_hostile_input_without_allocating() {
        let mut g = gate(-60.0, 80.0, 0.5, 5.0, 20.0);
        assert_robust(|ch| g.process(ch), |x| x);
    }
}
