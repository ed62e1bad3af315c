//! Live audio backends: JACK, cpal (ALSA/CoreAudio) and `null` (an internal clock paced to
//! real time), behind one interface, [`RunningAudio`]. This folder owns the audio threads, the
//! glitch-free engine swap, DSP load and xrun accounting, and JACK reconnection. It does not
//! own the console state: engines come from the caller's [`EngineFactory`].
//!
//! # Engines and their handles
//! A backend asks the caller's factory for an engine when it starts, when JACK comes back after
//! a server loss, when the sample rate changes and when JACK's period grows past the engine's
//! max block. **The factory is the one place that learns about every new engine**: it must take
//! the engine's [`EngineHandle`](crate::engine::EngineHandle) (`engine.handle()`) and
//! [`MeterBank`](crate::engine::MeterBank) before returning it, and store them where the
//! control plane finds them. Done under the same lock that reads the state the engine is built
//! from, no change is lost: changes before the build are in the state, changes after it go to
//! the new queue and apply when the engine starts. [`RunningAudio::swap_engine`] is for engines
//! the caller built itself (a reload), whose handle it therefore already has.
//!
//! # Threads
//! - the audio thread (JACK's process thread, the null clock thread, cpal's callback thread)
//!   only processes: no allocation, lock, logging or system call besides the clock reads that
//!   measure load;
//! - a supervisor thread per backend drops retired engines, rebuilds on rate changes and
//!   reconnects lost servers or devices with backoff (100 ms doubling to 1 s).
//!
//! # Swaps
//! A new engine is never cut in: [`xfade`] runs it beside the old one, output discarded, until
//! its pipeline is full (its latency), then crossfades the two over [`SWAP_FADE_MS`] and
//! retires the old one. Shared by the three backends.

mod cpal;
pub mod jack;
pub mod jack_midi;
mod load;
mod null;
mod rt;
mod swap;
pub mod xfade;

pub use xfade::FADE_MS as SWAP_FADE_MS;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::engine::Engine;

/// Which backend to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// JACK if a server answers (never starting one), else `null`.
    Auto,
    /// A JACK server (waits for it, and follows it through restarts).
    Jack,
    /// A sound card through cpal (ALSA on Linux, CoreAudio on macOS).
    Cpal,
    /// An internal clock paced to real time; no sound card needed, output discarded.
    Null,
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "jack" => Ok(Self::Jack),
            "cpal" => Ok(Self::Cpal),
            "null" => Ok(Self::Null),
            other => Err(format!(
                "unknown backend `{other}` (expected auto, jack, cpal or null)"
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Jack => "jack",
            Self::Cpal => "cpal",
            Self::Null => "null",
        })
    }
}

/// How to open the backend.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// JACK client name (`faderbridge`); JACK ports are `<client_name>:<engine port>`.
    pub client_name: String,
    /// Sample rate for null and cpal (JACK dictates its own).
    pub sample_rate: u32,
    /// Period (frames) for null and cpal (JACK dictates its own).
    pub block: usize,
    /// cpal: a substring of the device name (case-insensitive); `None` = the default device.
    pub device: Option<String>,
    /// JACK server name; `None` = the default server (`$JACK_DEFAULT_SERVER` or `default`).
    pub jack_server: Option<String>,
    /// Length of the crossfade of an engine swap, in milliseconds (default [`SWAP_FADE_MS`];
    /// 0: a hard cut once the new engine is warmed up). See [`xfade`].
    pub swap_fade_ms: f32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            client_name: "faderbridge".into(),
            sample_rate: 48000,
            block: 64,
            device: None,
            jack_server: None,
            swap_fade_ms: SWAP_FADE_MS,
        }
    }
}

/// Builds a fresh engine for a sample rate and max block. Called off the audio thread, on
/// start, when JACK comes back, on a sample-rate change and when JACK's period outgrows the
/// engine. It must take the new engine's handle and meter bank (see the module docs).
pub type EngineFactory =
    Arc<dyn Fn(u32, usize) -> Result<Box<Engine>, String> + Send + Sync + 'static>;

/// Errors starting a backend.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The engine factory refused (bad session, unsupported block size...).
    #[error("building the engine for {rate} Hz / {block} frames: {message}")]
    Factory {
        rate: u32,
        block: usize,
        message: String,
    },
    /// JACK refused something other than "no server" (port registration, activation).
    #[error("JACK: {0}")]
    Jack(String),
    /// The sound card could not be opened.
    #[error("audio device: {0}")]
    Device(String),
    /// A backend thread could not be started.
    #[error("starting the {what} thread: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
}

/// A snapshot of the backend's state; read lock-free.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStats {
    /// `"jack"`, `"cpal"` or `"null"`.
    pub backend: &'static str,
    /// The server / device is there and audio runs.
    pub connected: bool,
    /// Current sample rate.
    pub sample_rate: u32,
    /// Current period (frames per callback).
    pub block: usize,
    /// Time spent processing as a percentage of the period, smoothed (~300 ms).
    pub dsp_load: f32,
    /// Highest recent load (%), decaying (time constant 2 s).
    pub dsp_load_peak: f32,
    /// Xruns (JACK's count; null: periods finished after their deadline; cpal: stream errors).
    pub xruns: u64,
    /// Successful reconnections after a lost server or device.
    pub reconnects: u64,
    /// Frames processed since start (all connections together).
    pub frames: u64,
    /// The session's port connections have been made (JACK makes them just after the
    /// backend starts and after each reconnection, on its supervisor thread; the other
    /// backends have none). Failed ones were logged and are left unconnected.
    pub linked: bool,
}

/// The atomics behind [`AudioStats`], written by the audio and supervisor threads.
pub(crate) struct Shared {
    backend: &'static str,
    connected: AtomicBool,
    sample_rate: AtomicU32,
    block: AtomicUsize,
    load: AtomicU32,
    load_peak: AtomicU32,
    xruns: AtomicU64,
    reconnects: AtomicU64,
    frames: AtomicU64,
    linked: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn new(backend: &'static str) -> Arc<Self> {
        Arc::new(Self {
            backend,
            connected: AtomicBool::new(false),
            sample_rate: AtomicU32::new(0),
            block: AtomicUsize::new(0),
            load: AtomicU32::new(0),
            load_peak: AtomicU32::new(0),
            xruns: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            linked: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        })
    }

    fn stats(&self) -> AudioStats {
        AudioStats {
            backend: self.backend,
            connected: self.connected.load(Ordering::Relaxed),
            sample_rate: self.sample_rate.load(Ordering::Relaxed),
            block: self.block.load(Ordering::Relaxed),
            dsp_load: f32::from_bits(self.load.load(Ordering::Relaxed)),
            dsp_load_peak: f32::from_bits(self.load_peak.load(Ordering::Relaxed)),
            xruns: self.xruns.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            linked: self.linked.load(Ordering::Acquire),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Reconnection backoff: 100 ms, doubling, at most 1 s.
pub(crate) struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
        d
    }
    fn reset(&mut self) {
        *self = Self::new();
    }
}

/// Sleep up to `d` in short steps, returning early when the backend is stopping.
pub(crate) fn nap(shared: &Shared, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !shared.stopping() {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

enum Backend {
    Jack(jack::JackBackend),
    Cpal(cpal::CpalBackend),
    Null(null::NullBackend),
}

/// A running backend: audio flows until [`RunningAudio::stop`] (or drop).
pub struct RunningAudio {
    backend: Option<Backend>,
    shared: Arc<Shared>,
}

impl RunningAudio {
    /// Start `kind`. `Auto` tries JACK without starting a server and falls back to `null`,
    /// saying which in one `info` line. `Jack` with no server running starts anyway, logs a
    /// warning and connects when a server appears. May allocate and block briefly.
    ///
    /// # Errors
    /// The factory's refusal on the first build, JACK registration/activation failures, a
    /// sound card that cannot be opened (cpal), a thread that cannot be spawned.
    pub fn start(
        kind: BackendKind,
        cfg: AudioConfig,
        factory: EngineFactory,
    ) -> Result<Self, AudioError> {
        Self::start_preopened(kind, cfg, factory, None)
    }

    /// [`RunningAudio::start`] with a JACK client opened ahead ([`jack::PreOpen`], for the
    /// same `cfg`): the JACK and auto backends use it instead of opening one; the others
    /// close it.
    ///
    /// # Errors
    /// As [`RunningAudio::start`].
    pub fn start_preopened(
        kind: BackendKind,
        cfg: AudioConfig,
        factory: EngineFactory,
        pre: Option<jack::PreOpen>,
    ) -> Result<Self, AudioError> {
        let pre = match kind {
            BackendKind::Jack | BackendKind::Auto => pre.and_then(jack::PreOpen::take),
            BackendKind::Null | BackendKind::Cpal => {
                drop(pre);
                None
            }
        };
        let backend = match kind {
            BackendKind::Null => Backend::Null(null::NullBackend::start(&cfg, factory)?),
            BackendKind::Cpal => Backend::Cpal(cpal::CpalBackend::start(&cfg, factory)?),
            BackendKind::Jack => match jack::JackBackend::start(&cfg, factory, true, pre)? {
                Some(j) => Backend::Jack(j),
                None => return Err(AudioError::Jack("no JACK backend".into())),
            },
            BackendKind::Auto => match jack::JackBackend::start(&cfg, factory.clone(), false, pre)?
            {
                Some(j) => {
                    tracing::info!(
                        "audio backend: JACK (server `{}` answered; {} Hz, {} frames)",
                        cfg.jack_server.as_deref().unwrap_or("default"),
                        j.shared().sample_rate.load(Ordering::Relaxed),
                        j.shared().block.load(Ordering::Relaxed)
                    );
                    Backend::Jack(j)
                }
                None => {
                    tracing::info!(
                        "audio backend: null (no JACK server answered; internal clock at {} Hz, {} frames, output discarded)",
                        cfg.sample_rate,
                        cfg.block
                    );
                    Backend::Null(null::NullBackend::start(&cfg, factory)?)
                }
            },
        };
        let shared = match &backend {
            Backend::Jack(j) => j.shared(),
            Backend::Cpal(c) => c.shared(),
            Backend::Null(n) => n.shared(),
        };
        Ok(Self {
            backend: Some(backend),
            shared,
        })
    }

    /// Swap a structurally different engine in without a click: it warms up beside the
    /// running one and the two crossfade (see [`xfade`]). The retired engine is dropped on the
    /// supervisor thread. On JACK, ports the new engine
    /// names are registered (and connected) first, and ports it no longer has are removed
    /// once the swap is done; while JACK is away the engine is dropped (the factory builds
    /// the next one on reconnection). May allocate and block briefly; control plane only.
    pub fn swap_engine(&self, engine: Box<Engine>) {
        match &self.backend {
            Some(Backend::Jack(j)) => j.swap_engine(engine),
            Some(Backend::Cpal(c)) => c.swap_engine(engine),
            Some(Backend::Null(n)) => n.swap_engine(engine),
            None => {}
        }
    }

    /// The backend's state (lock-free).
    pub fn stats(&self) -> AudioStats {
        self.shared.stats()
    }

    /// Stop audio and join every backend thread (within about 100 ms; at most 1 s).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        match self.backend.take() {
            Some(Backend::Jack(j)) => j.stop(),
            Some(Backend::Cpal(c)) => c.stop(),
            Some(Backend::Null(n)) => n.stop(),
            None => {}
        }
    }
}

impl Drop for RunningAudio {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What `faderbridge ports` prints: JACK ports (when a server runs), cpal devices with their
/// channel counts, and serial ports (`/dev/ttyUSB*`, `/dev/ttyACM*`, `/dev/faderbridge/*`).
/// May block briefly while devices are probed.
pub fn list_ports() -> String {
    let mut out = String::new();
    out += &jack::list_ports(None);
    out += &cpal::list_devices();
    out += &list_serial();
    out
}

fn list_serial() -> String {
    let mut found: Vec<String> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/dev") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ttyUSB") || name.starts_with("ttyACM") {
                found.push(format!("/dev/{name}"));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/dev/faderbridge") {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|t| format!(" -> {}", t.display()))
                .unwrap_or_default();
            found.push(format!("{}{target}", e.path().display()));
        }
    }
    found.sort();
    let mut s = String::from("Serial ports:\n");
    if found.is_empty() {
        s += "  (none)\n";
    }
    for f in found {
        s += &format!("  {f}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_kind_parses_and_prints() {
        for (s, k) in [
            ("auto", BackendKind::Auto),
            ("JACK", BackendKind::Jack),
            ("cpal", BackendKind::Cpal),
            ("null", BackendKind::Null),
        ] {
            let parsed: BackendKind = s.parse().expect("parses");
            assert_eq!(parsed, k);
            assert_eq!(parsed.to_string(), s.to_ascii_lowercase());
        }
        assert!("alsa".parse::<BackendKind>().is_err());
    }

    #[test]
    fn backoff_doubles_to_one_second() {
        let mut b = Backoff::new();
        let ms: Vec<u128> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next().as_millis(), 100);
    }
}
