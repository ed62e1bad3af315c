//! The daemon (`faderbridge run`): wires the session, the console (control plane), the audio
//! backend and the status socket together, and owns the process lifecycle.
//!
//! 1. Load the session (or write the bundled demo into the state directory and load that),
//!    decode its file sources, build the parameter tree.
//! 2. Start the console, restoring the saved state over the session's values.
//! 3. Start the audio backend with an engine factory: every engine it builds (at start, when
//!    JACK comes back, on a rate change) is attached to the console and given the console's
//!    current values before it plays, so nothing is lost across rebuilds.
//! 4. Start the surfaces ([`surfaces::SurfaceSet`]: OSC, X-Air, MCU, MIDI maps). Bind and
//!    serve the status socket, then tell systemd READY (and ping its watchdog), feed backend
//!    stats to the console. READY means the engine runs and the control plane answers; on
//!    JACK the session's port connections are still being made at that moment (see
//!    [`crate::audio::jack`]). `FADERBRIDGE_LOG=debug` logs each start-up step's time.
//! 5. SIGHUP re-reads the session: errors are logged as `FILE:LINE:COL` and the running
//!    config stays; a valid file's differences are swapped in without stopping audio, and
//!    surfaces that were added, removed or changed are started and stopped (unchanged ones
//!    and their clients run on).
//!    SIGTERM/SIGINT stop cleanly: the state is flushed, the backend closed, within a second.
//!
//! It must not touch: DSP (that's the engine's) or parameter validation (the console's).

mod measure;
mod surfaces;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioConfig, BackendKind, EngineFactory, RunningAudio};
use crate::control::{Console, ConsoleHandle, EngineStats};
use crate::engine::{Engine, InsertSetup, StemData};
use crate::media;
use crate::params::ParamTree;
use crate::session::{self, model::Session, model::Source};
use crate::state::StateDir;

/// The daemon's JACK client name.
const CLIENT_NAME: &str = "faderbridge";

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
    /// The backend part of the insert latency key ([`crate::insert::backend_key`]).
    insert_backend: String,
}

impl Live {
    /// The hardware inserts' setup for an engine at `rate`/`block`: the latency of each
    /// insert (the session's fixed value, else the one in `stored` for this backend, rate and
    /// block under the strip's key: the channel's name, `bus/NAME`, `master`; else unknown),
    /// gear patched in (the null backend holds them bypassed). `stored` is the console's
    /// ([`ConsoleHandle::insert_measurements`]: the state file's, plus live measurements).
    fn insert_setup(
        &self,
        stored: &crate::insert::Measurements,
        rate: u32,
        block: usize,
    ) -> InsertSetup {
        let s = &self.session;
        if s.channels.iter().all(|c| c.insert.is_none())
            && s.buses.iter().all(|b| b.insert.is_none())
            && s.master.insert.is_none()
        {
            return InsertSetup {
                outboard: true,
                ..InsertSetup::default()
            };
        }
        let lat = |ins: Option<&crate::session::model::Insert>, key: &str| {
            let ins = ins?;
            let l = crate::insert::effective_latency(
                ins,
                stored,
                key,
                &self.insert_backend,
                rate,
                block as u32,
            );
            if l.is_none() {
                tracing::warn!(
                    "{key}: no insert latency stored for {} at {rate} Hz / {block} frames \
                     (run `faderbridge measure-insert`); bypass uses no delay",
                    self.insert_backend
                );
            }
            l
        };
        InsertSetup {
            latency: s
                .channels
                .iter()
                .map(|c| lat(c.insert.as_ref(), &c.name))
                .collect(),
            bus_latency: s
                .buses
                .iter()
                .map(|b| lat(b.insert.as_ref(), &format!("bus/{}", b.name)))
                .collect(),
            master_latency: lat(s.master.insert.as_ref(), "master"),
            outboard: true,
        }
    }
}

impl Live {
    /// Where each insert's latency comes from, for the status (see
    /// [`Live::insert_setup`]).
    fn insert_status(
        &self,
        stored: &crate::insert::Measurements,
        rate: u32,
        block: usize,
    ) -> std::collections::BTreeMap<String, crate::control::InsertLatencyStatus> {
        use crate::session::model::InsertLatency;
        let s = &self.session;
        // (status path, key of the stored measurements, insert)
        let chans = s
            .channels
            .iter()
            .map(|c| (format!("ch/{}", c.name), c.name.clone(), &c.insert));
        let buses = s.buses.iter().map(|b| {
            let p = format!("bus/{}", b.name);
            (p.clone(), p, &b.insert)
        });
        let master =
            std::iter::once(("master".to_string(), "master".to_string(), &s.master.insert));
        chans
            .chain(buses)
            .chain(master)
            .filter_map(|(path, key, ins)| {
                let ins = ins.as_ref()?;
                let m = crate::insert::stored_in(
                    stored,
                    &key,
                    &self.insert_backend,
                    rate,
                    block as u32,
                );
                let s = match (ins.latency, m) {
                    (InsertLatency::Samples(n), _) => crate::control::InsertLatencyStatus {
                        samples: Some(f64::from(n)),
                        source: "session".into(),
                        error: 0.0,
                        inverted: false,
                    },
                    (InsertLatency::Auto, Some(m)) => crate::control::InsertLatencyStatus {
                        samples: Some(m.samples),
                        source: if m.manual { "manual" } else { "measured" }.into(),
                        error: m.error,
                        inverted: m.inverted,
                    },
                    (InsertLatency::Auto, None) => crate::control::InsertLatencyStatus {
                        samples: None,
                        source: "unknown".into(),
                        error: 0.0,
                        inverted: false,
                    },
                };
                Some((path, s))
            })
            .collect()
    }

    /// The stems of the current session at `rate`, decoding what isn't cached (files in
    /// parallel, one thread per core: decoding is most of a demo start's time).
    fn stems_at(&mut self, rate: u32) -> Result<HashMap<usize, StemData>, String> {
        let mut missing: Vec<(PathBuf, &str)> = Vec::new();
        for ch in &self.session.channels {
            if let Source::File(path) = &ch.source
                && !self.cache.contains_key(&(path.clone(), rate))
                && !missing.iter().any(|(p, _)| p == path)
            {
                missing.push((path.clone(), &ch.name));
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(missing.len());
        let mut decoded: Vec<(usize, Result<StemData, String>)> = std::thread::scope(|sc| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    sc.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((path, name)) = missing.get(k) else {
                                break done;
                            };
                            let r = media::read_stem(path, rate)
                                .map(|stem| -> StemData {
                                    Arc::new(stem.channels.into_iter().map(Into::into).collect())
                                })
                                .map_err(|e| {
                                    format!("{}: channel {name}: {e}", self.session.file.display())
                                });
                            done.push((k, r));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        if decoded.len() < missing.len() {
            return Err("decoding a file source failed (a decoder thread panicked)".into());
        }
        // The first failure in session order is the one reported.
        decoded.sort_by_key(|(k, _)| *k);
        for (k, r) in decoded {
            self.cache.insert((missing[k].0.clone(), rate), r?);
        }
        let mut out = HashMap::new();
        for (i, ch) in self.session.channels.iter().enumerate() {
            if let Source::File(path) = &ch.source
                && let Some(d) = self.cache.get(&(path.clone(), rate))
            {
                out.insert(i, d.clone());
            }
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
    let stored = console.insert_measurements();
    let inserts = live.insert_setup(&stored, rate, block);
    console.set_insert_status(live.insert_status(&stored, rate, block));
    let mut engine = Engine::build_with(&live.session, &tree, &stems, rate as f32, block, &inserts)
        .map_err(|e| e.to_string())?;
    // Attach first: a change arriving while we copy the values is queued, and applies after.
    let handle = engine.handle();
    console.set_engine_latency(engine.latency() as u32);
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
    // Start-up steps at debug level (`FADERBRIDGE_LOG=debug`): where the time to READY goes.
    let step = |what: &str| {
        tracing::debug!(
            "startup: {what} at {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    };
    // Signals first: a SIGTERM during startup must stop the daemon cleanly, not kill it.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let state_path = opts.state_dir.clone().unwrap_or_else(StateDir::default_dir);
    let state = StateDir::open(&state_path).map_err(|e| ServiceError::State {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    // The JACK client opens (15-50 ms) while the session is read.
    let preopen = matches!(opts.backend, BackendKind::Jack | BackendKind::Auto).then(|| {
        crate::audio::jack::PreOpen::start(&AudioConfig {
            client_name: CLIENT_NAME.into(),
            jack_server: opts.jack_server.clone(),
            ..AudioConfig::default()
        })
    });
    let file = session_path(&opts, &state_path)?;
    step("state directory open, session file found");
    let session = session::load(&file)?;
    let tree = ParamTree::build(&session);
    step("session parsed and validated, parameter tree built");
    let settings = session.engine;
    let insert_backend = match opts.backend {
        BackendKind::Jack | BackendKind::Auto => {
            crate::insert::backend_key("jack", opts.jack_server.as_deref())
        }
        BackendKind::Cpal => "cpal".to_string(),
        BackendKind::Null => "null".to_string(),
    };
    let live = Arc::new(Mutex::new(Live {
        session,
        cache: HashMap::new(),
        insert_backend,
    }));
    // Decode the stems once up front so a bad stem is a clear startup error.
    live.lock()
        .expect("fresh lock")
        .stems_at(settings.sample_rate)
        .map_err(ServiceError::Stem)?;
    step("file sources decoded");

    let (console, handle) = Console::new(tree, Some(state));
    apply_automation_settings(&handle, &live.lock().expect("fresh lock").session);
    let console_task = tokio::spawn(console.run(shutdown.clone()));
    step("console started, saved state restored");

    let factory: EngineFactory = {
        let live = live.clone();
        let handle = handle.clone();
        Arc::new(move |rate, block| build_engine(&live, &handle, rate, block, 0))
    };
    let cfg = AudioConfig {
        client_name: CLIENT_NAME.into(),
        sample_rate: settings.sample_rate,
        block: settings.block,
        device: opts.device.clone(),
        jack_server: opts.jack_server.clone(),
        swap_fade_ms: swap_fade_ms(std::env::var("FADERBRIDGE_SWAP_FADE_MS").ok().as_deref()),
    };
    surfaces::request_jack_midi(&live.lock().expect("session lock").session.surfaces);
    let audio = Arc::new(RunningAudio::start_preopened(
        opts.backend,
        cfg,
        factory,
        preopen,
    )?);
    step("audio backend running");
    // Live insert latency measurements (OSC, status socket) on JACK.
    let measure_task = measure::start(
        live.clone(),
        handle.clone(),
        audio.clone(),
        opts.jack_server.clone(),
        shutdown.clone(),
    );

    let sock = state_path.join("status.sock");
    // Bound before READY, so the control plane answers when systemd hears READY.
    let status_task = match crate::control::bind_status(&sock).await {
        Ok(listener) => {
            let (h, t, p) = (handle.clone(), shutdown.clone(), sock.clone());
            tokio::spawn(async move { crate::control::serve_status_on(h, listener, &p, t).await })
        }
        Err(e) => {
            tracing::error!("status socket: {e}");
            tokio::spawn(async {})
        }
    };

    // Every surface on its own task(s); one that can't start is logged and skipped.
    let session_surfaces = live.lock().expect("session lock").session.surfaces.clone();
    let mut surface_set = surfaces::SurfaceSet::start(
        &session_surfaces,
        &handle,
        &shutdown,
        audio.stats().sample_rate,
    )
    .await;
    step("status socket and surfaces started");

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
                if reload(&file, &live, &handle, &audio) {
                    let new = live.lock().expect("session lock").session.surfaces.clone();
                    let (stopped, started) = surface_set.reload(&new).await;
                    if stopped + started > 0 {
                        tracing::info!("reload: surfaces: {stopped} stopped, {started} started");
                    }
                }
                notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
    let _ = stats_task.await;
    let _ = measure_task.await;
    let _ = status_task.await;
    surface_set.join().await;
    // The console flushes its state on the way out.
    let _ = console_task.await;
    match Arc::try_unwrap(audio) {
        Ok(audio) => audio.stop(),
        Err(_) => tracing::warn!("audio backend still referenced at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-read the session; keep the running config on any error. True when the new
/// session was swapped in.
fn reload(
    file: &Path,
    live: &Arc<Mutex<Live>>,
    handle: &ConsoleHandle,
    audio: &RunningAudio,
) -> bool {
    let new = match session::load(file) {
        Ok(s) => s,
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("reload: {line}");
            }
            tracing::error!("reload failed: keeping the running session");
            return false;
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
            return false;
        }
        old
    };
    let summary = handle.reload(ParamTree::build(
        &live.lock().expect("session lock").session,
    ));
    apply_automation_settings(handle, &live.lock().expect("session lock").session);
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
            true
        }
        Err(e) => {
            tracing::error!("reload: {e}; keeping the running session");
            let mut l = live.lock().expect("session lock");
            l.session = old;
            let tree = ParamTree::build(&l.session);
            drop(l);
            handle.reload(tree);
            false
        }
    }
}

/// The crossfade of engine swaps (reloads, rebuilds): `FADERBRIDGE_SWAP_FADE_MS` (0 to 1000;
/// 0 cuts hard once the new engine is warmed up, for comparison), else the default.
fn swap_fade_ms(env: Option<&str>) -> f32 {
    let Some(v) = env else {
        return crate::audio::SWAP_FADE_MS;
    };
    match v.trim().parse::<f32>() {
        Ok(ms) if (0.0..=1000.0).contains(&ms) => {
            tracing::info!("engine swaps crossfade over {ms} ms (FADERBRIDGE_SWAP_FADE_MS)");
            ms
        }
        _ => {
            tracing::warn!(
                "FADERBRIDGE_SWAP_FADE_MS=`{v}` is not a number of milliseconds in 0..=1000; \
                 using {} ms",
                crate::audio::SWAP_FADE_MS
            );
            crate::audio::SWAP_FADE_MS
        }
    }
}

fn notify(states: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}

/// The session's `automation:` settings, on the console.
fn apply_automation_settings(handle: &ConsoleHandle, session: &crate::session::model::Session) {
    let a = session.automation;
    handle.set_automation_config(crate::control::AutomationConfig {
        glide_ms: a.glide_ms,
        read_touch: if a.read_touch_overrides {
            crate::control::ReadTouch::Override
        } else {
            crate::control::ReadTouch::Ignore
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insert::InsertMeasurement;
    use crate::state::tests::TestDir;

    #[test]
    fn the_swap_fade_comes_from_the_environment_within_range() {
        assert_eq!(swap_fade_ms(None), crate::audio::SWAP_FADE_MS);
        assert_eq!(swap_fade_ms(Some("0")), 0.0);
        assert_eq!(swap_fade_ms(Some(" 45.5 ")), 45.5);
        for bad in ["-1", "1001", "NaN", "fast", ""] {
            assert_eq!(swap_fade_ms(Some(bad)), crate::audio::SWAP_FADE_MS, "{bad}");
        }
    }

    /// The insert measurements saved in the state directory `dir`.
    fn stored_measurements(dir: &Path) -> crate::insert::Measurements {
        StateDir::open(dir)
            .and_then(|s| s.load())
            .expect("load")
            .expect("saved")
            .insert_measurements
    }

    /// The engine factory takes each insert's latency from the state, for the running backend,
    /// rate and period only; a fixed `latency: N` wins; nothing stored: unknown.
    #[test]
    fn live_engines_take_the_stored_insert_latency() {
        let d = TestDir::new("service-insert");
        let m = |backend: &str, block, samples| InsertMeasurement {
            backend: backend.into(),
            rate: 48000,
            block,
            samples,
            error: 0.01,
            inverted: false,
            manual: false,
        };
        crate::insert::cli::store(&d.0, "kick", m("jack", 256, 492.6)).expect("store");
        crate::insert::cli::store(&d.0, "kick", m("jack:studio", 256, 700.0)).expect("store");
        crate::insert::cli::store(&d.0, "snare", m("jack", 256, 300.0)).expect("store");
        let stored = stored_measurements(&d.0);
        let session = session::parse_str(
            "version: 1\nchannels:\n  - { name: kick, source: { input: 1 }, insert: { send: 3, return: 3 } }\n  - { name: snare, source: { input: 2 }, insert: { send: 4, return: 4, latency: 64 } }\n  - { name: hat, source: { input: 5 } }\n",
            Path::new("/nonexistent/t.yaml"),
        )
        .expect("session");
        let mut live = Live {
            session,
            cache: HashMap::new(),
            insert_backend: "jack".into(),
        };
        let s = live.insert_setup(&stored, 48000, 256);
        assert!(s.outboard);
        assert_eq!(s.latency, vec![Some(492.6), Some(64.0), None]);
        assert_eq!(
            live.insert_setup(&stored, 48000, 128).latency,
            vec![None, Some(64.0), None]
        );
        live.insert_backend = "jack:studio".into();
        assert_eq!(
            live.insert_setup(&stored, 48000, 256).latency,
            vec![Some(700.0), Some(64.0), None]
        );
        // Built into an engine: rounded to samples.
        let tree = ParamTree::build(&live.session);
        let s = live.insert_setup(&stored, 48000, 256);
        let e = Engine::build_with(&live.session, &tree, &HashMap::new(), 48000.0, 256, &s)
            .expect("build");
        assert_eq!(e.insert_latencies(), vec![Some(700), Some(64), None]);
    }

    /// Bus and master inserts: their latencies are stored under `bus/NAME` and `master`
    /// (what `measure-insert SESSION bus/NAME` and `... master` store).
    #[test]
    fn bus_and_master_insert_latencies_are_keyed_by_strip() {
        let d = TestDir::new("service-bus-insert");
        let m = |samples| InsertMeasurement {
            backend: "jack".into(),
            rate: 48000,
            block: 256,
            samples,
            error: 0.0,
            inverted: false,
            manual: true,
        };
        crate::insert::cli::store(&d.0, "bus/drums", m(410.0)).expect("store");
        crate::insert::cli::store(&d.0, "master", m(128.4)).expect("store");
        // A channel named like the bus does not take the bus's value.
        crate::insert::cli::store(&d.0, "drums", m(999.0)).expect("store");
        let stored = stored_measurements(&d.0);
        let session = session::parse_str(
            "version: 1
channels:
  - { name: kick, source: { input: 1 }, output: drums }
buses:
  - { name: drums, kind: group, insert: { send: 3, return: 3 } }
  - { name: fx, kind: aux }
master:
  insert: { send: 5, return: 5 }
",
            Path::new("/nonexistent/t.yaml"),
        )
        .expect("session");
        let live = Live {
            session,
            cache: HashMap::new(),
            insert_backend: "jack".into(),
        };
        let s = live.insert_setup(&stored, 48000, 256);
        assert_eq!(s.latency, vec![None]);
        assert_eq!(s.bus_latency, vec![Some(410.0), None]);
        assert_eq!(s.master_latency, Some(128.4));
        let tree = ParamTree::build(&live.session);
        let e = Engine::build_with(&live.session, &tree, &HashMap::new(), 48000.0, 256, &s)
            .expect("build");
        assert_eq!(e.bus_insert_latencies(), vec![Some(410), None]);
        assert_eq!(e.master_insert_latency(), Some(128));
        // kick reaches the master through the bus: 410, then the master insert's 128.
        assert_eq!(e.compensation(), 538);
        // The strip names measure-insert accepts.
        let s = &live.session;
        let key = |strip: &str| crate::insert::cli::find_insert(s, strip).map(|(k, _)| k);
        assert_eq!(key("bus/drums"), Ok("bus/drums".to_string()));
        assert_eq!(key("drums"), Ok("bus/drums".to_string()));
        assert_eq!(key("master"), Ok("master".to_string()));
        assert!(key("fx").is_err_and(|e| e.contains("bus fx has no insert")));
        assert!(key("kick").is_err_and(|e| e.contains("channel kick has no insert")));
    }
}
