//! The engine's frame clock: which engine frame plays at which instant.
//!
//! The audio backend stamps every block with the instant its first frame belongs to (JACK's
//! filtered cycle start, the null clock's schedule, the cpal callback time) and the engine's
//! running frame count ([`crate::engine::Engine::begin_block`]). The control plane reads the
//! latest stamp to turn a wall-clock instant (an OSC bundle's time tag) into the absolute
//! frame at which a change must land, so that the engine can apply it sample-accurately
//! inside its block.
//!
//! One writer (the audio thread), any number of readers; a sequence lock made of atomics, so
//! the writer never waits and readers retry on a torn read.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

/// A stamp older than this means the audio has stopped (JACK away, backend stopped): the
/// clock then answers nothing rather than extrapolate.
const STALE: Duration = Duration::from_secs(1);

/// The latest (frame, instant) pair of the running engine.
#[derive(Debug)]
pub struct FrameClock {
    /// Instants are kept as signed nanoseconds from this one.
    base: Instant,
    /// Even: stable; odd: a write is under way.
    seq: AtomicU64,
    frame: AtomicU64,
    nanos: AtomicI64,
    /// 0 until the first stamp.
    rate: AtomicU32,
}

impl Default for FrameClock {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            seq: AtomicU64::new(0),
            frame: AtomicU64::new(0),
            nanos: AtomicI64::new(0),
            rate: AtomicU32::new(0),
        }
    }

    /// Frame `frame` plays at `at`, at `rate` frames per second. Audio thread; wait-free.
    pub fn stamp(&self, frame: u64, at: Instant, rate: u32) {
        let ns = if at >= self.base {
            (at - self.base).as_nanos() as i64
        } else {
            -((self.base - at).as_nanos() as i64)
        };
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.frame.store(frame, Ordering::Relaxed);
        self.nanos.store(ns, Ordering::Relaxed);
        self.rate.store(rate, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The latest stamp: (frame, nanoseconds from `base`, rate); None before the first.
    fn read(&self) -> Option<(u64, i64, u32)> {
        for _ in 0..64 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = (
                self.frame.load(Ordering::Relaxed),
                self.nanos.load(Ordering::Relaxed),
                self.rate.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (v.2 != 0).then_some(v);
            }
        }
        None
    }

    /// The engine frame that plays at `t`, extrapolated from the latest stamp (rounded to
    /// the nearest frame; instants before the stamp give earlier frames, never below 0).
    /// None when no block has been stamped in the last second (audio stopped or not started).
    pub fn frame_at(&self, t: Instant) -> Option<u64> {
        let (frame, ns, rate) = self.read()?;
        let stamped = if ns >= 0 {
            self.base + Duration::from_nanos(ns as u64)
        } else {
            self.base - Duration::from_nanos(ns.unsigned_abs())
        };
        if Instant::now().saturating_duration_since(stamped) > STALE {
            return None;
        }
        let rate = f64::from(rate);
        let frames = if t >= stamped {
            (t - stamped).as_secs_f64() * rate
        } else {
            -((stamped - t).as_secs_f64() * rate)
        };
        let f = frame as f64 + frames.round();
        Some(if f <= 0.0 { 0 } else { f as u64 })
    }

    /// The sample rate of the latest stamp (0 before the first).
    pub fn rate(&self) -> u32 {
        self.read().map_or(0, |v| v.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_rate_from_the_latest_stamp() {
        let c = FrameClock::new();
        let t0 = Instant::now();
        assert_eq!(c.frame_at(t0), None, "no stamp yet");
        c.stamp(48_000, t0, 48_000);
        // 250 ms later at 48 kHz: 12 000 frames on; 1 ms earlier: 48 frames back.
        assert_eq!(c.frame_at(t0 + Duration::from_millis(250)), Some(60_000));
        assert_eq!(c.frame_at(t0 - Duration::from_millis(1)), Some(47_952));
        // 10.4 µs is 0.4992 frame at 48 kHz: rounds to the stamp's frame; 11 µs rounds up.
        assert_eq!(c.frame_at(t0 + Duration::from_nanos(10_400)), Some(48_000));
        assert_eq!(c.frame_at(t0 + Duration::from_micros(11)), Some(48_001));
        assert_eq!(
            c.frame_at(t0 - Duration::from_secs(5)),
            Some(0),
            "clamped at 0"
        );
        // A new stamp at another rate re-anchors.
        c.stamp(1000, t0 + Duration::from_millis(10), 44_100);
        assert_eq!(c.rate(), 44_100);
        assert_eq!(
            c.frame_at(t0 + Duration::from_millis(110)),
            Some(1000 + 4410)
        );
    }

    #[test]
    fn a_stale_stamp_answers_nothing() {
        let c = FrameClock::new();
        let old = Instant::now() - Duration::from_secs(2);
        c.stamp(0, old, 48_000);
        assert_eq!(c.frame_at(Instant::now()), None);
        c.stamp(96_000, Instant::now(), 48_000);
        assert!(c.frame_at(Instant::now()).is_some_and(|f| f >= 96_000));
    }

    #[test]
    fn readers_never_see_a_torn_stamp() {
        // The writer keeps frame = nanos-derived value consistent; a torn read would mix
        // the frame of one stamp with the instant of another.
        let c = std::sync::Arc::new(FrameClock::new());
        let w = c.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let t0 = c.base;
        let writer = std::thread::spawn(move || {
            let mut k = 0u64;
            while !s2.load(Ordering::Relaxed) {
                // frame k*64 at k*64 µs (rate 1 MHz keeps the arithmetic exact).
                w.stamp(k * 64, t0 + Duration::from_micros(k * 64), 1_000_000);
                k += 1;
            }
        });
        for _ in 0..100_000 {
            if let Some((frame, ns, _)) = c.read() {
                assert_eq!(
                    frame as i64 * 1000,
                    ns,
                    "frame and instant from different stamps"
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
}
