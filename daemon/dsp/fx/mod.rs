//! The aux-bus effects (SPEC §3 `fx:`): [`Reverb`] (a feedback-delay-network room reverb) and
//! [`StereoDelay`] (feedback echo with ping-pong and loop filters). Both are 100% wet, stereo
//! in, stereo out; they allocate in `new` only and their `process` is real-time safe.

mod delay;
mod line;
mod reverb;

#[cfg(test)]
mod analysis;

pub use delay::StereoDelay;
pub use reverb::{
    DEFAULT_DAMPING, DEFAULT_DECAY_S, DEFAULT_PREDELAY_MS, DEFAULT_SIZE, MAX_PREDELAY_MS, Reverb,
};
