//! Signal processors. Every type here allocates only in its constructor (or a method whose doc
//! says "may allocate"); `process*` methods are real-time safe: no allocation, no locks, no
//! system calls, bounded loops.
//!
//! - [`util`]: decibel conversions, parameter smoothing, denormal flushing.
//! - [`delayline`]: the time-alignment delay of a strip.
//! - [`filters`]: state-variable filters: pass filters (HPF/LPF 12/24 dB/oct) and EQ bands.
//! - [`dynamics`]: gate/expander, compressor, saturation.
//! - [`master`]: true-peak detection (4x oversampling) and the look-ahead limiter.
//! - [`fx`]: the aux-bus effects: reverb and stereo delay.

pub mod delayline;
pub mod dynamics;
pub mod filters;
pub mod fx;
pub mod master;
pub mod util;
