//! Mix automation (issue 7), built up in steps. What exists so far:
//! - [`lane`]: one parameter's breakpoints, read with the interpolation its taper calls for
//!   (dB-linear gains, logarithmic frequencies, held toggles), written pass by pass with guard
//!   points and one level of undo, and thinned after a pass.
//!
//! Still to come: the modes (read/touch/latch/write/trim) on the control plane, recording
//! from surfaces, sample-accurate playback in the engine, storage with the state and
//! `render --automation`.

pub mod lane;

pub use lane::{Interp, Lane, Point};
