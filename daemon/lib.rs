//! faderbridge: a headless mixing console.
//!
//! # Layout
//! - [`dsp`]: the signal processors of a strip, a bus and the master (filters, dynamics,
//!   effects, limiter). Pure math, real-time safe after construction.
//! - [`meter`]: peak/RMS meters and loudness (BS.1770 / EBU R128) measurement.
//! - [`params`]: the one parameter tree (SPEC §4): every controllable value, its path, unit,
//!   range, default and taper, declared once.
//! - [`session`]: the session file (SPEC §3): parsing, validation with `FILE:LINE:COL` errors,
//!   and the validated model the engine is built from.
//! - [`engine`]: the mix engine: a compiled graph of strips, buses and the master, processed
//!   block by block, fed parameter changes through a wait-free queue.
//! - [`insert`]: hardware inserts: the round-trip latency measurement (`measure-insert`)
//!   and the stored latencies.
//! - [`media`]: reading stems (WAV/FLAC, resampled) and writing WAV files atomically.
//! - [`render`]: the offline bounce (`faderbridge render`).
//! - [`demo`]: the demo song's stems and session.
//! - [`audio`]: the audio backends (JACK, cpal, null) that drive the engine live.
//! - [`control`]: the console: the one owner of live state, which every surface talks to.
//! - [`automation`]: automation lanes (interpolation by taper, passes with guard points,
//!   undo, thinning); the rest of issue 7 builds on them.
//! - [`mcu`]: the Mackie Control host (MCU, X-Touch, extenders) on top of [`midi`].
//! - [`midi`]: MIDI byte-stream parsing and the transports (ALSA, JACK MIDI, serial).
//! - [`midimap`]: generic MIDI controllers driven by mapping files (`kind: midi_map`).
//! - [`mtc`]: MIDI Time Code chase (`kind: mtc`): the transport follows an MTC master.
//! - [`osc`]: OSC surfaces: the network server (guard, decoding, leases, coalescing,
//!   touch hold-back, OSCQuery) and the native dialect (SPEC §5); other dialects plug in.
//! - [`state`]: persistence of the live state (atomic files, scenes).
//! - [`service`]: the daemon (`faderbridge run`): lifecycle, signals, reload, systemd.
//! - [`xair`]: the X-Air OSC dialect (SPEC §6): the console's address space and value
//!   formats over the parameter tree, as pure protocol logic.
//!
//! # Lifecycle of a render
//! 1. [`session::load`] parses and validates the session file.
//! 2. [`media`] decodes every file source at the session's rate.
//! 3. [`engine::Engine::build`] compiles the graph (all buffers allocated here).
//! 4. [`engine::Engine::process`] runs block by block, exactly as the live backends call it.
//! 5. [`render`] writes the master to a temporary file, measures it and renames it into place.

pub mod audio;
pub mod automation;
pub mod control;
pub mod demo;
pub mod dsp;
pub mod engine;
pub mod insert;
pub mod mcu;
pub mod media;
pub mod meter;
pub mod midi;
pub mod midimap;
pub mod mtc;
pub mod osc;
pub mod params;
pub mod render;
pub mod service;
pub mod session;
pub mod state;
pub mod xair;
