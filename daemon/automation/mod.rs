//! Mix automation (issue 7), built up in steps. What exists so far:
//! - [`lane`]: one parameter's breakpoints, read with the interpolation its taper calls for
//!   (dB-linear gains, logarithmic frequencies, held toggles), written pass by pass with guard
//!   points and one level of undo, and thinned after a pass.
//! - [`mode`]: the modes (off/read/touch/latch/write/trim); the console keeps one per
//!   parameter ([`crate::control::ConsoleHandle::set_automation`]), persisted with the state,
//!   set from OSC `/PATH/automation` and the MCU's and MIDI maps' automation buttons.
//!
//! - [`playback`]: what the engine plays ([`Playback`]); the engine reads it sample-accurately
//!   (`crate::engine::lanes`).
//! - [`file`]: lane files and state directories as `render --automation` sources.
//!
//! Still to come: what the modes do (recording from surfaces).

pub mod file;
pub mod lane;
pub mod mode;
pub mod playback;

pub use lane::{Interp, Lane, Point};
pub use mode::Mode;
pub use playback::{PlayLane, Playback};
