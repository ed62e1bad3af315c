//! DSP load accounting on the audio thread: time spent processing over the period's length,
//! smoothed, with a decaying peak, published through atomics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;

/// Smoothing time constant of the reported load.
const SMOOTH_S: f32 = 0.3;
/// Decay time constant of the reported peak.
const PEAK_DECAY_S: f32 = 2.0;

/// Per-thread load meter. Real-time safe.
pub(crate) struct LoadMeter {
    smoothed: f32,
    peak: f32,
}

impl LoadMeter {
    pub(crate) fn new() -> Self {
        Self {
            smoothed: 0.0,
            peak: 0.0,
        }
    }

    /// Account one period of `frames` at `rate` that took `busy` to process, and publish the
    /// smoothed load and peak (percent). Also counts the frames.
    pub(crate) fn update(&mut self, shared: &Shared, busy: Duration, frames: usize, rate: u32) {
        if frames == 0 || rate == 0 {
            return;
        }
        let period = frames as f32 / rate as f32;
        let load = 100.0 * busy.as_secs_f32() / period;
        let a = 1.0 - (-period / SMOOTH_S).exp();
        self.smoothed += a * (load - self.smoothed);
        self.peak = load.max(self.peak * (-period / PEAK_DECAY_S).exp());
        shared
            .load
            .store(self.smoothed.to_bits(), Ordering::Relaxed);
        shared
            .load_peak
            .store(self.peak.to_bits(), Ordering::Relaxed);
        shared.frames.fetch_add(frames as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_load_converges_and_peak_decays() {
        let shared = Shared::new("null");
        let mut m = LoadMeter::new();
        // 64 frames at 48 kHz = 1.3333 ms; 0.4 ms busy = 30 %.
        for _ in 0..2000 {
            m.update(&shared, Duration::from_micros(400), 64, 48000);
        }
        let s = shared.stats();
        assert!((s.dsp_load - 30.0).abs() < 0.1, "{}", s.dsp_load);
        // One spike of a full period: peak 100 %, average barely moves.
        m.update(&shared, Duration::from_nanos(1_333_333), 64, 48000);
        let s = shared.stats();
        assert!((s.dsp_load_peak - 100.0).abs() < 0.1, "{}", s.dsp_load_peak);
        assert!(s.dsp_load < 31.0);
        // 2 s later (one time constant) the peak has fallen to 30 + 70/e... bounded below by
        // the running load: max(load, 100 * e^-1) = 36.8 %.
        for _ in 0..1500 {
            m.update(&shared, Duration::from_micros(400), 64, 48000);
        }
        let s = shared.stats();
        let expect = 100.0 * (-1.0f32).exp();
        assert!(
            (s.dsp_load_peak - expect).abs() < 0.5,
            "{}",
            s.dsp_load_peak
        );
        assert_eq!(s.frames, 64 * 3501);
    }
}
