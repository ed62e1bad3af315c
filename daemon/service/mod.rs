//! The daemon (`faderbridge run`): wires the session, the console (control plane), the audio
//! backend and the status socket together, and owns the process lifecycle.
//!
//! 1. Load the session (or write the bundled demo into the state directory and load that),
//!    decode its file sources, build the parameter tree.
//! 2. Start the console, restoring the saved state over the session's values.
//! 3. Start the audio backend with an engine factory: every engine it builds (at start, when
//!    JACK comes back, on a rate change) is attached to the console and given the console's
//!    current values before it plays, so nothing is lost across rebuilds.
//! 4. Start the OSC surfaces ([`crate::osc::start_surfaces`]; surfaces are read at start,
//!    a reload does not rebind them). Serve the status socket, tell systemd READY (and ping its watchdog), feed backend stats
//!    to the console.
//! 5. SIGHUP re-reads the session: errors are logged as `FILE:LINE:COL` and the running
//!    config stays; a valid file's differences are swapped in without stopping audio.
//!    SIGTERM/SIGINT stop cleanly: the state is flushed, the backend closed, within a second.
//!
//! It must not touch: DSP (that's the engine's) or parameter validation (the console's).

mod surfaces;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioConfig, BackendKind, EngineFactory, RunningAudio};
use crate::control::{Console, ConsoleHandle, EngineStats};
use crate::engine::{Engine, StemData};
use crate::media;
use crate::params::ParamTree;
use crate::session::{self, model::Session, model::Source};
use crate::state::StateDir;

/// What `faderbridge run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The session file; `None` runs the bundled demo.
    pub session: Option<PathBuf>,
    pub backend: BackendKind,
    /// Where state lives (SPEC §9); `None` = `$XDG_STATE_HOME/faderbridge`.
    pub state_dir: Option<PathBuf>,
    /// JACK server name (`None` = the default server).
    pub jack_server: Option<String>,
    /// cpal device name substring.
    pub device: Option<String>,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The session file is invalid (exit code 2).
    #[error("{0}")]
    Session(#[from] session::SessionError),
    #[error("{0}")]
    Stem(String),
    #[error("state directory {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("{0}")]
    Audio(#[from] crate::audio::AudioError),
    #[error("the demo session: {0}")]
    Demo(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ServiceError {
    /// True when the failure is the user's input (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ServiceError::Session(_) | ServiceError::Stem(_))
    }
}

/// The session as running now, with its decoded stems (shared by the engine factory and
/// reloads).
struct Live {
    session: Session,
    /// Decoded stems by file and rate: a reload or a rebuild reuses what is already decoded.
    cache: HashMap<(PathBuf, u32), StemData>,
}

impl Live {
    /// The stems of the current session at `rate`, decoding what isn't cached.
    fn stems_at(&mut self, rate: u32) -> Result<HashMap<usize, StemData>, String> {
        let mut out = HashMap::new();
        for (i, ch) in self.session.channels.iter().enumerate() {
            let Source::File(path) = &ch.source else {
                continue;
            };
            let key = (path.clone(), rate);
            let data = match self.cache.get(&key) {
                Some(d) => d.clone(),
                None => {
                    let stem = media::read_stem(path, rate).map_err(|e| {
                        format!("{}: channel {}: {e}", self.session.file.display(), ch.name)
                    })?;
                    let d: StemData = Arc::new(stem.channels.into_iter().map(Into::into).collect());
                    self.cache.insert(key, d.clone());
                    d
                }
            };
            out.insert(i, data);
        }
        // Keep only what the current session uses.
        let used: Vec<PathBuf> = self
            .session
            .channels
            .iter()
            .filter_map(|c| match &c.source {
                Source::File(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        self.cache.retain(|(p, _), _| used.contains(p));
        Ok(out)
    }
}

/// Build an engine for the live session at `rate`/`block`, attach it to the console and give
/// it the console's current values. Runs off the audio thread.
fn build_engine(
    live: &Mutex<Live>,
    console: &ConsoleHandle,
    rate: u32,
    block: usize,
    position: u64,
) -> Result<Box<Engine>, String> {
    let mut live = live
        .lock()
        .map_err(|_| "session lock poisoned".to_string())?;
    let stems = live.stems_at(rate)?;
    let tree = console.tree();
    let mut engine = Engine::build(&live.session, &tree, &stems, rate as f32, block)
        .map_err(|e| e.to_string())?;
    // Attach first: a change arriving while we copy the values is queued, and applies after.
    let handle = engine.handle();
    console.attach_engine(handle, engine.meter_bank());
    console.attach_loudness(engine.loudness_tap());
    for c in console.current_changes() {
        engine.apply(c.addr, c.value);
    }
    engine.settle();
    engine.locate(position);
    let len = engine.file_length();
    if len > 0 {
        // Live file sources loop (wrapping the position into the loop).
        engine.set_loop(Some(len));
    }
    Ok(Box::new(engine))
}

/// Resolve the session to run: the given file, or the bundled demo written into the state
/// directory.
fn session_path(opts: &RunOptions, state: &Path) -> Result<PathBuf, ServiceError> {
    match &opts.session {
        Some(p) => Ok(p.clone()),
        None => {
            let p = crate::demo::ensure(&state.join("demo")).map_err(ServiceError::Demo)?;
            tracing::info!(
                "no session given: running the bundled demo ({})",
                p.display()
            );
            Ok(p)
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT (or `shutdown` is cancelled).
///
/// # Errors
/// A bad session, an unusable state directory, or a backend that can't start.
pub fn run(opts: RunOptions, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("faderbridge-ctl")
        .build()?;
    rt.block_on(run_async(opts, shutdown))
}

async fn run_async(opts: RunOptions, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let started = Instant::now();
    // Signals first: a SIGTERM during startup must stop the daemon cleanly, not kill it.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let state_path = opts.state_dir.clone().unwrap_or_else(StateDir::default_dir);
    let state = StateDir::open(&state_path).map_err(|e| ServiceError::State {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    let file = session_path(&opts, &state_path)?;
    let session = session::load(&file)?;
    let tree = ParamTree::build(&session);
    let settings = session.engine;
    let live = Arc::new(Mutex::new(Live {
        session,
        cache: HashMap::new(),
    }));
    // Decode the stems once up front so a bad stem is a clear startup error.
    live.lock()
        .expect("fresh lock")
        .stems_at(settings.sample_rate)
        .map_err(ServiceError::Stem)?;

    let (console, handle) = Console::new(tree, Some(state));
    let console_task = tokio::spawn(console.run(shutdown.clone()));

    let factory: EngineFactory = {
        let live = live.clone();
        let handle = handle.clone();
        Arc::new(move |rate, block| build_engine(&live, &handle, rate, block, 0))
    };
    let cfg = AudioConfig {
        client_name: "faderbridge".into(),
        sample_rate: settings.sample_rate,
        block: settings.block,
        device: opts.device.clone(),
        jack_server: opts.jack_server.clone(),
    };
    surfaces::request_jack_midi(&live.lock().expect("session lock").session.surfaces);
    let audio = Arc::new(RunningAudio::start(opts.backend, cfg, factory)?);

    let sock = state_path.join("status.sock");
    let status_task = {
        let (h, t, p) = (handle.clone(), shutdown.clone(), sock.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::control::serve_status(h, &p, t).await {
                tracing::error!("status socket: {e}");
            }
        })
    };

    let surface_tasks = {
        let l = live.lock().expect("session lock");
        surfaces::start(
            &l.session.surfaces,
            &handle,
            &shutdown,
            audio.stats().sample_rate,
        )
    };
    // OSC surfaces (native and X-Air), each on its own task; one that can't bind is logged.
    let osc_surfaces = live.lock().expect("session lock").session.surfaces.clone();
    let osc_tasks = crate::osc::start_surfaces(&osc_surfaces, &handle, &shutdown).await;

    let stats = audio.stats();
    let (n_ch, n_bus) = {
        let l = live.lock().expect("session lock");
        (l.session.channels.len(), l.session.buses.len())
    };
    let ready_msg = format!(
        "{n_ch} channels, {n_bus} buses on {} at {} Hz / {} frames",
        stats.backend, stats.sample_rate, stats.block
    );
    tracing::info!(
        "ready in {} ms: {ready_msg}; status socket {}",
        started.elapsed().as_millis(),
        sock.display()
    );
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&ready_msg),
    ]);

    // Backend stats → console, and the systemd watchdog.
    let stats_task = {
        let (audio, handle, token) = (audio.clone(), handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            let watchdog = sd_notify::watchdog_enabled();
            let period = match watchdog {
                Some(w) => (w / 3).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => {
                        let s = audio.stats();
                        handle.set_engine_stats(EngineStats {
                            backend: s.backend.to_string(),
                            sample_rate: s.sample_rate,
                            block: s.block as u32,
                            dsp_load: s.dsp_load,
                            dsp_load_peak: s.dsp_load_peak,
                            xruns: s.xruns,
                        });
                        if watchdog.is_some() {
                            notify(&[sd_notify::NotifyState::Watchdog]);
                        }
                    }
                }
            }
        })
    };

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                reload(&file, &live, &handle, &audio);
                notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    let _ = stats_task.await;
    let _ = status_task.await;
    for t in surface_tasks.into_iter().chain(osc_tasks) {
        let _ = t.await;
    }
    // The console flushes its state on the way out.
    let _ = console_task.await;
    match Arc::try_unwrap(audio) {
        Ok(audio) => audio.stop(),
        Err(_) => tracing::warn!("audio backend still referenced at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-read the session; keep the running config on any error.
fn reload(file: &Path, live: &Arc<Mutex<Live>>, handle: &ConsoleHandle, audio: &RunningAudio) {
    let new = match session::load(file) {
        Ok(s) => s,
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("reload: {line}");
            }
            tracing::error!("reload failed: keeping the running session");
            return;
        }
    };
    let stats = audio.stats();
    // Decode the new session's stems before touching anything live.
    let old = {
        let mut l = live.lock().expect("session lock");
        let old = std::mem::replace(&mut l.session, new);
        if let Err(e) = l.stems_at(stats.sample_rate) {
            tracing::error!("reload: {e}; keeping the running session");
            l.session = old;
            return;
        }
        old
    };
    let summary = handle.reload(ParamTree::build(
        &live.lock().expect("session lock").session,
    ));
    let position = handle.meters().position;
    match build_engine(
        live,
        handle,
        stats.sample_rate,
        stats.block.max(1),
        position,
    ) {
        Ok(engine) => {
            audio.swap_engine(engine);
            tracing::info!(
                "reloaded {}: {} parameters kept, {} added, {} removed",
                file.display(),
                summary.kept,
                summary.added.len(),
                summary.removed.len()
            );
        }
        Err(e) => {
            tracing::error!("reload: {e}; keeping the running session");
            let mut l = live.lock().expect("session lock");
            l.session = old;
            let tree = ParamTree::build(&l.session);
            drop(l);
            handle.reload(tree);
        }
    }
}

fn notify(states: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}
