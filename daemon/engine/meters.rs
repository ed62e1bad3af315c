//! The engine's meters leave the audio thread through a [`MeterBank`]: a fixed array of atomic
//! slots the engine overwrites after every block (wait-free, relaxed stores) and any number of
//! readers copy out at display rate. The audio thread never waits for a reader.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::loudness::MasterLoudness;
use super::strip::StripMeters;

/// Slots per strip: peak L/R, RMS L/R, gate GR, comp GR.
const PER_STRIP: usize = 6;

/// Meters of the whole console, read back from the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meters {
    pub channels: Vec<StripMeters>,
    pub buses: Vec<StripMeters>,
    pub master: StripMeters,
    pub limiter_gr_db: f32,
    /// Transport position (samples) when these were published.
    pub position: u64,
    /// Whether the engine's transport was playing then.
    pub playing: bool,
    /// The absolute engine frame (`Engine::next_frame` count) at which `position` holds: the
    /// frame after the last one processed.
    pub frame: u64,
    /// The master's loudness. The bank does not hold it (it is measured off the audio thread,
    /// see [`super::LoudnessMeter`]): [`MeterBank::read`] leaves it at `-inf`, the console
    /// fills it in.
    pub loudness: MasterLoudness,
}

/// Shared meter storage (see the module doc).
#[derive(Debug)]
pub struct MeterBank {
    channels: usize,
    buses: usize,
    slots: Box<[AtomicU32]>,
    position: AtomicU64,
    playing: std::sync::atomic::AtomicBool,
    frame: AtomicU64,
    /// Odd while the audio thread writes position/frame/playing (a seqlock: one writer).
    seq: AtomicU64,
}

impl MeterBank {
    /// Storage for `channels` strips and `buses` buses (plus master). Allocates.
    pub fn new(channels: usize, buses: usize) -> Self {
        let n = (channels + buses + 1) * PER_STRIP + 1;
        Self {
            channels,
            buses,
            slots: (0..n)
                .map(|_| AtomicU32::new(f32::NEG_INFINITY.to_bits()))
                .collect(),
            position: AtomicU64::new(0),
            playing: std::sync::atomic::AtomicBool::new(true),
            frame: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        }
    }

    fn put(&self, strip: usize, m: &StripMeters) {
        let base = strip * PER_STRIP;
        let v = [
            m.peak_db[0],
            m.peak_db[1],
            m.rms_db[0],
            m.rms_db[1],
            m.gate_gr_db,
            m.comp_gr_db,
        ];
        for (slot, v) in self.slots[base..base + PER_STRIP].iter().zip(v) {
            slot.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    fn get(&self, strip: usize) -> StripMeters {
        let base = strip * PER_STRIP;
        let v = |i: usize| f32::from_bits(self.slots[base + i].load(Ordering::Relaxed));
        StripMeters {
            peak_db: [v(0), v(1)],
            rms_db: [v(2), v(3)],
            gate_gr_db: v(4),
            comp_gr_db: v(5),
        }
    }

    /// Publish a channel's meters (audio thread).
    pub(super) fn put_channel(&self, i: usize, m: &StripMeters) {
        self.put(i, m);
    }

    /// Publish a bus's meters (audio thread).
    pub(super) fn put_bus(&self, i: usize, m: &StripMeters) {
        self.put(self.channels + i, m);
    }

    /// Publish the master's meters, the position and the transport state (audio thread).
    pub(super) fn put_master(
        &self,
        m: &StripMeters,
        limiter_gr_db: f32,
        position: u64,
        playing: bool,
        frame: u64,
    ) {
        self.put(self.channels + self.buses, m);
        let last = self.slots.len() - 1;
        self.slots[last].store(limiter_gr_db.to_bits(), Ordering::Relaxed);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.position.store(position, Ordering::Relaxed);
        self.playing.store(playing, Ordering::Relaxed);
        self.frame.store(frame, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The transport as last published, consistently: (position, engine frame, playing).
    /// Never waits for the audio thread for long: a read torn by a write is retried.
    pub fn transport(&self) -> (u64, u64, bool) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let p = self.position.load(Ordering::Relaxed);
            let f = self.frame.load(Ordering::Relaxed);
            let on = self.playing.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            let s2 = self.seq.load(Ordering::Relaxed);
            if s1 == s2 && s1.is_multiple_of(2) {
                return (p, f, on);
            }
            std::hint::spin_loop();
        }
    }

    /// Copy every meter out (control plane; allocates).
    pub fn read(&self) -> Meters {
        let last = self.slots.len() - 1;
        Meters {
            channels: (0..self.channels).map(|i| self.get(i)).collect(),
            buses: (0..self.buses)
                .map(|i| self.get(self.channels + i))
                .collect(),
            master: self.get(self.channels + self.buses),
            limiter_gr_db: f32::from_bits(self.slots[last].load(Ordering::Relaxed)),
            position: self.position.load(Ordering::Relaxed),
            playing: self.playing.load(Ordering::Relaxed),
            frame: self.frame.load(Ordering::Relaxed),
            loudness: MasterLoudness::default(),
        }
    }
}
