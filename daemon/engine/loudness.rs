//! Live loudness of the master (SPEC §5 meter stream): the engine copies the master's final
//! stereo output (after the limiter and fader) into a wait-free ring ([`LoudnessTx`], made by
//! [`super::Engine::loudness_tap`]); a [`LoudnessMeter`] on the control plane drains the ring
//! into a [`crate::meter::Loudness`] (EBU R128: momentary, short-term, integrated, true peak).
//!
//! The audio thread only copies samples into the ring: when the ring is full (nobody drained
//! it for [`TAP_SECONDS`]) the frames that do not fit are dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::meter::Loudness;

/// Audio the ring holds between two drains, in seconds.
pub const TAP_SECONDS: f32 = 1.0;

/// Frames deinterleaved per call into the loudness meter.
const DRAIN_CHUNK: usize = 4096;

/// The engine's end of the tap (audio thread).
pub(crate) struct LoudnessTx {
    tx: Producer<f32>,
    dropped: Arc<AtomicU64>,
}

impl LoudnessTx {
    /// Copy one block of the master (`l`, `r` the same length). Wait-free: no allocation, no
    /// lock; frames that do not fit are dropped and counted.
    #[inline]
    pub(crate) fn push(&mut self, l: &[f32], r: &[f32]) {
        let want = l.len().min(r.len());
        let room = (self.tx.slots() / 2).min(want);
        if room > 0
            && let Ok(chunk) = self.tx.write_chunk_uninit(room * 2)
        {
            chunk.fill_from_iter(l[..room].iter().zip(&r[..room]).flat_map(|(a, b)| [*a, *b]));
        }
        if room < want {
            self.dropped
                .fetch_add((want - room) as u64, Ordering::Relaxed);
        }
    }
}

/// The control plane's end of one engine's tap: hand it to a [`LoudnessMeter`].
pub struct LoudnessTap {
    rx: Consumer<f32>,
    rate: u32,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for LoudnessTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessTap")
            .field("rate", &self.rate)
            .field("queued", &self.rx.slots())
            .finish()
    }
}

impl LoudnessTap {
    /// The sample rate of the engine feeding this tap.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Frames the engine dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A connected tap for an engine at `rate` (allocates [`TAP_SECONDS`] of stereo audio).
pub(crate) fn tap(rate: f32) -> (LoudnessTx, LoudnessTap) {
    let frames = ((rate.max(1.0) * TAP_SECONDS) as usize).max(1024);
    let (mut tx, mut rx) = RingBuffer::new(frames * 2);
    super::prefault_ring(&mut tx, &mut rx, 0.0f32);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        LoudnessTx {
            tx,
            dropped: dropped.clone(),
        },
        LoudnessTap {
            rx,
            rate: rate.round() as u32,
            dropped,
        },
    )
}

/// The master's loudness as published in [`super::Meters`]. Values with no measurement yet
/// read `-inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MasterLoudness {
    /// Momentary loudness (last 400 ms), LUFS.
    pub momentary_lufs: f32,
    /// Short-term loudness (last 3 s), LUFS.
    pub short_term_lufs: f32,
    /// Integrated (gated) loudness since the last reset, LUFS.
    pub integrated_lufs: f32,
    /// Largest true peak (4x oversampled) since the last reset, dBTP.
    pub true_peak_dbtp: f32,
    /// Frames the engine could not hand over (ring full) since the tap was attached.
    pub dropped_frames: u64,
}

impl Default for MasterLoudness {
    fn default() -> Self {
        Self {
            momentary_lufs: f32::NEG_INFINITY,
            short_term_lufs: f32::NEG_INFINITY,
            integrated_lufs: f32::NEG_INFINITY,
            true_peak_dbtp: f32::NEG_INFINITY,
            dropped_frames: 0,
        }
    }
}

/// Measures the master's loudness from the tap of the running engine (control plane). It
/// outlives engine swaps: attaching the tap of a new engine at the same rate keeps measuring
/// (the integrated value carries on); a new rate starts a fresh measurement.
#[derive(Debug, Default)]
pub struct LoudnessMeter {
    meter: Option<Loudness>,
    tap: Option<LoudnessTap>,
    scratch: [Vec<f32>; 2],
}

impl LoudnessMeter {
    /// An idle meter (no tap): reads `-inf` until a tap is attached and fed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Measure from `tap` from now on: whatever the previous tap still holds is measured
    /// first. Allocates.
    pub fn attach(&mut self, tap: LoudnessTap) {
        self.drain();
        let same_rate = self.tap.as_ref().is_some_and(|old| old.rate == tap.rate);
        if !same_rate || self.meter.is_none() {
            self.meter = Some(Loudness::new(tap.rate, 2));
        }
        self.tap = Some(tap);
    }

    /// Measure everything queued in the tap. Allocates scratch on first use.
    pub fn drain(&mut self) {
        let (Some(tap), Some(meter)) = (self.tap.as_mut(), self.meter.as_mut()) else {
            return;
        };
        loop {
            let frames = (tap.rx.slots() / 2).min(DRAIN_CHUNK);
            if frames == 0 {
                break;
            }
            let Ok(chunk) = tap.rx.read_chunk(frames * 2) else {
                break;
            };
            let (a, b) = chunk.as_slices();
            let [l, r] = &mut self.scratch;
            l.clear();
            r.clear();
            // Writes and reads are whole frames and the capacity is even, so both slices
            // hold whole frames.
            for pair in a.chunks_exact(2).chain(b.chunks_exact(2)) {
                l.push(pair[0]);
                r.push(pair[1]);
            }
            chunk.commit_all();
            meter.process(&[l, r]);
        }
    }

    /// Forget everything measured (integrated loudness and true peak start again).
    pub fn reset(&mut self) {
        self.drain();
        if let Some(m) = self.meter.as_mut() {
            m.reset();
        }
    }

    /// Drain the tap, then read the current values.
    pub fn read(&mut self) -> MasterLoudness {
        self.drain();
        let Some(m) = self.meter.as_ref() else {
            return MasterLoudness::default();
        };
        // NaN never leaves: it reads as no measurement.
        let v = |x: f64| {
            if x.is_nan() {
                f32::NEG_INFINITY
            } else {
                x as f32
            }
        };
        MasterLoudness {
            momentary_lufs: v(m.momentary_lufs()),
            short_term_lufs: v(m.short_term_lufs()),
            integrated_lufs: v(m.integrated_lufs()),
            true_peak_dbtp: v(m.true_peak_dbtp()),
            dropped_frames: self.tap.as_ref().map_or(0, LoudnessTap::dropped),
        }
    }
}
