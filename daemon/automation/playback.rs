//! What the engine plays: the automation lanes that drive parameters right now, handed to the
//! audio thread as one immutable set ([`Playback`]).
//!
//! The console builds a new set whenever what plays changes (a lane written, a mode changed,
//! a control touched or released) and sends it to the engine boxed
//! (`EngineHandle::send_playback`); the engine swaps it in at a block start and hands the old
//! box back, so nothing is allocated or freed on the audio thread. `render` gives the engine
//! its set directly (`Engine::set_playback`).
//!
//! # What the engine does with a set
//! - Lane frames are transport positions (`Engine::position`), at the engine's sample rate.
//! - While the transport plays, each lane drives its parameter sample-accurately: gains and
//!   pans follow the lane per sample, other parameters are set per small sub-block (their own
//!   glides smooth the steps). Which frames a lane is read at depends only on the transport
//!   position, never on the block size, so a live run and a render of the same lanes produce
//!   the same samples.
//! - A lane absent from the set does not drive its parameter (mode off, a write pass in
//!   progress, a touched control): the parameter takes queued changes as usual.
//! - A lane new in a set with `glide_in > 0` (a touch released in touch mode) moves from the
//!   parameter's value at that moment to the lane over `glide_in` frames, in the lane's
//!   interpolation domain.
//! - A lane new in a set with `glide_in == 0`, and every lane after a locate, takes the
//!   parameter there with its own smoothing; lanes the previous set played too carry on
//!   where their parameters are (touching one control does not pause the others' rides).
//! - The engine side of all this is `crate::engine::lanes` (when a lane is read, what a
//!   reading does); [`crate::engine::Engine::playback`] shows the set playing.

use std::sync::Arc;

use super::{Interp, Point};
use crate::params::Addr;

/// One lane as the engine plays it.
#[derive(Debug, Clone)]
pub struct PlayLane {
    /// The parameter it drives.
    pub addr: Addr,
    /// How values between points are found (from the parameter's taper).
    pub interp: Interp,
    /// Breakpoints, ordered by frame, at most one per frame; never empty.
    pub points: Arc<[Point]>,
    /// Frames over which a lane that starts driving moves to its curve from the parameter's
    /// value `glide_from` (0: at once, with the parameter's own smoothing).
    pub glide_in: u32,
    /// The parameter's value when the lane starts driving (used with `glide_in`).
    pub glide_from: f32,
}

impl PlayLane {
    /// A lane of `points` (ordered by frame, at most one per frame, not empty) driving `addr`
    /// from the start, with no glide in.
    pub fn new(addr: Addr, interp: Interp, points: impl Into<Arc<[Point]>>) -> Self {
        PlayLane {
            addr,
            interp,
            points: points.into(),
            glide_in: 0,
            glide_from: 0.0,
        }
    }

    /// [`PlayLane::new`] from `(frame, value)` pairs.
    pub fn from_pairs(addr: Addr, interp: Interp, pairs: &[(u64, f32)]) -> Self {
        let points: Vec<Point> = pairs
            .iter()
            .map(|&(frame, value)| Point { frame, value })
            .collect();
        Self::new(addr, interp, points)
    }
}

/// Every lane that drives a parameter now (at most one per parameter).
#[derive(Debug, Clone, Default)]
pub struct Playback {
    pub lanes: Vec<PlayLane>,
}

impl Playback {
    /// True when no lane drives anything.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }
}
