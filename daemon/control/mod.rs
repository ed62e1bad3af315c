//! The control plane: the [`Console`], the one owner of the console's live state (every
//! parameter's current value, touches, scenes, measured insert latencies), and the one API
//! every surface (OSC, X-Air, MCU, MIDI maps, the status socket) talks through
//! ([`ConsoleHandle`]). It forwards changes to the engine's wait-free queue, fans every change
//! out to all subscribers tagged with its [`Origin`], reads meters back at display rate and
//! persists the state through [`crate::state`]. It never touches the audio thread: the engine
//! only sees [`ParamChange`]s in its queue.
//!
//! # Concurrency
//! The state lives behind one `std::sync::Mutex`, held only for short, non-blocking sections
//! (no I/O, no `.await`); the audio thread never takes it. Changes are broadcast while the
//! lock is held, so every subscriber sees changes in the order they were stored and the last
//! [`Change`] for a path always carries its current value. The [`Console::run`] task does the
//! slow work: debounced state writes (on a blocking thread), meter snapshots at ~30 Hz (with
//! the master's loudness, measured there from the engine's tap, see
//! [`ConsoleHandle::attach_loudness`]) and draining changes that did not fit into a full
//! engine queue.
//!
//! # Engine lifecycle
//! 1. `Console::new(tree, state)` restores saved values over the session's.
//! 2. Build the engine from `handle.tree()` (the session's values), then call
//!    [`ConsoleHandle::attach_engine`]: it queues every current value that differs from the
//!    session's, so the engine ends up with all current values (gains glide there in
//!    [`crate::engine::GAIN_GLIDE_MS`]). To start the engine exactly on the current values
//!    instead, apply [`ConsoleHandle::current_changes`] with `Engine::apply` before handing it
//!    to the audio thread (the queued copies are then no-ops).
//! 3. On reload, [`ConsoleHandle::reload`] swaps the tree (values carry over by path) and
//!    detaches the engine (its addresses may no longer match); build the new engine from the
//!    new tree and attach it. Changes made in between are kept and sent on attach.
//!
//! # Rules
//! - Values are validated: unknown paths, NaN and out-of-range values are errors that name the
//!   range; stepped values are rounded. A set to the current value stores nothing and
//!   broadcasts nothing.
//! - A control touched by any surface is never driven by [`Origin::Automation`]: such sets are
//!   ignored and return the current value. Surfaces and scene recalls still apply.
//! - `engine/dsp_load`, `engine/dsp_load_peak` and `engine/xruns` are read-only parameters
//!   fed by [`ConsoleHandle::set_engine_stats`]; `engine/latency_samples` (the engine's added
//!   latency: limiter look-ahead plus insert compensation) is read-only too, fed by
//!   [`ConsoleHandle::set_engine_latency`] whenever an engine is built.
//! - Insert latencies: the stored measurements live here (loaded with the state, added to by
//!   [`ConsoleHandle::record_insert_measurement`], read by the engine factory through
//!   [`ConsoleHandle::insert_measurements`]); [`ConsoleHandle::measure_insert`] hands a
//!   measurement to the daemon; [`ConsoleHandle::hold_insert`] holds an insert for it with an
//!   engine message that is not a parameter (nothing stored, broadcast or saved).
//! - Persistence: every stored change marks the state dirty; the writer saves at most every
//!   [`SAVE_INTERVAL`] and normally within [`SAVE_INTERVAL`] plus the write time after a
//!   change (SPEC §9 asks for 1 s), and once more on shutdown.

mod automation;
pub mod status;

pub use automation::{
    AutomationConfig, IMPLICIT_TOUCH, ReadTouch, TICK as AUTOMATION_TICK, thin_tolerance,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant as StdInstant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::automation::Mode;
use crate::engine::{EngineHandle, LoudnessMeter, LoudnessTap, MeterBank, Meters};
use crate::params::{Addr, Key, ParamChange, ParamId, ParamTree, Target};
use crate::state::{Outboard, STATE_VERSION, SavedState, StateDir};

pub use status::{
    InsertLatencyStatus, LoudnessStatus, StatusError, StatusReport, StripKind, StripStatus,
    SurfaceStatus, bind_status, query_status, serve_status, serve_status_on,
};

/// Minimum time between two state writes.
pub const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// Delay between the first change after a write and the next write (lets a burst coalesce).
pub const SAVE_COALESCE: Duration = Duration::from_millis(20);
/// Period of the meter snapshot published to [`ConsoleHandle::subscribe_meters`].
pub const METER_PERIOD: Duration = Duration::from_millis(33);
/// Capacity of the change broadcast; a subscriber that falls further behind gets
/// `RecvError::Lagged` and should resynchronise with [`ConsoleHandle::snapshot`].
pub const CHANGE_CAPACITY: usize = 8192;

/// Read-only engine parameters, readable through [`ConsoleHandle::get`].
pub const ENGINE_DSP_LOAD: &str = "engine/dsp_load";
/// Peak DSP load (percent of the period) since the engine started.
pub const ENGINE_DSP_LOAD_PEAK: &str = "engine/dsp_load_peak";
/// Xrun count.
pub const ENGINE_XRUNS: &str = "engine/xruns";
/// The engine's total added latency in samples ([`crate::engine::Engine::latency`]).
pub const ENGINE_LATENCY: &str = "engine/latency_samples";

/// Who caused a change. Surfaces get their id from [`ConsoleHandle::register_surface`] and
/// drop changes carrying their own origin (so a fader never fights its own echo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// The daemon itself (restores, reloads).
    Internal,
    /// A scene recall.
    Scene,
    /// Automation playback.
    Automation,
    /// A registered surface.
    Surface(u32),
}

/// One stored change, as broadcast to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Canonical path (`ch/kick/fader_db`), whatever form the setter used.
    pub path: Arc<str>,
    /// Id in the current tree (ids change on reload; paths do not).
    pub id: ParamId,
    /// The stored value.
    pub value: f32,
    pub origin: Origin,
}

/// A touch or release of a control, as broadcast to touch subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub path: Arc<str>,
    pub id: ParamId,
    /// True when `origin` touched the control, false when it released it.
    pub touched: bool,
    pub origin: Origin,
}

/// An automation mode set, as broadcast to [`ConsoleHandle::subscribe_automation`]: one per
/// parameter whose mode changed (a strip-wide set sends one for each of its parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeChange {
    /// Canonical parameter path.
    pub path: Arc<str>,
    pub mode: Mode,
}

/// Statistics the audio backend reports (fed by the daemon's `run`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Backend name (`jack`, `cpal`, `null`).
    pub backend: String,
    pub sample_rate: u32,
    /// Frames per period.
    pub block: u32,
    /// Smoothed DSP load, percent of the period.
    pub dsp_load: f32,
    /// Peak DSP load, percent of the period.
    pub dsp_load_peak: f32,
    pub xruns: u64,
}

/// Errors of the control API. Messages are one line, fit for an OSC `/error` reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: no such parameter")]
    UnknownPath { path: String },
    #[error("{path}: the value is not a number")]
    NotANumber { path: String },
    #[error("{path}: {value} is out of range {range}")]
    OutOfRange {
        path: String,
        value: f32,
        range: String,
    },
    #[error("{path}: read-only")]
    ReadOnly { path: String },
    #[error("no scene named {name:?}")]
    UnknownScene { name: String },
    #[error("bad scene name {name:?}: {why}")]
    BadSceneName { name: String, why: &'static str },
    #[error("{what}: {why}")]
    BadText { what: String, why: &'static str },
    #[error("transport: {0}")]
    Transport(&'static str),
    /// A refused or failed insert latency measurement (the message says why).
    #[error("{0}")]
    Insert(String),
}

/// A request for a live insert latency measurement ([`ConsoleHandle::measure_insert`]), for
/// whoever measures ([`ConsoleHandle::set_insert_measurer`]: the daemon).
#[derive(Debug)]
pub struct InsertMeasureRequest {
    /// Canonical strip path (`ch/kick`).
    pub strip: String,
    /// Store this latency (samples) by hand instead of measuring.
    pub set: Option<f64>,
    pub reply: tokio::sync::oneshot::Sender<Result<InsertMeasured, String>>,
}

/// A live insert latency measurement, stored and applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertMeasured {
    /// Canonical strip path (`ch/kick`).
    pub strip: String,
    /// The key of the stored measurements (the channel's name).
    pub key: String,
    /// What was stored (samples, error, polarity, keyed by backend, rate and period).
    pub measurement: crate::insert::InsertMeasurement,
    /// Return level relative to the send (dB).
    pub level_db: f64,
    /// Signal-to-noise ratio of the return (dB).
    pub snr_db: f64,
    /// `engine/latency_samples` of the engine built with the new latency.
    pub latency_samples: u32,
    /// The report, as `faderbridge measure-insert` prints it.
    pub report: String,
}

/// A transport command (SPEC §5 `/transport/...`): it drives the playback of file sources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transport {
    Play,
    Stop,
    /// Move to this many seconds from the start (wrapped into the loop of file sources).
    Locate(f32),
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadSummary {
    /// Parameters that kept their value.
    pub kept: usize,
    /// Paths new in this tree (they take the session's values).
    pub added: Vec<String>,
    /// Paths gone from the tree.
    pub removed: Vec<String>,
}

struct EngineLink {
    handle: EngineHandle,
    meters: Arc<MeterBank>,
    /// Changes that did not fit into the engine queue: latest value per parameter.
    backlog: BTreeMap<ParamId, f32>,
    /// The newest automation set, when the engine's ring had no room for it.
    playback_wait: Option<Box<crate::automation::Playback>>,
}

impl EngineLink {
    /// Forward a change, for the engine frame that plays at `at` (None: the next block).
    /// A change that does not fit waits in the backlog and loses its timing.
    fn send(&mut self, tree: &ParamTree, id: ParamId, value: f32, at: Option<StdInstant>) {
        if self.backlog.is_empty() {
            let c = ParamChange {
                addr: tree.get(id).addr,
                value,
                frame: at.and_then(|t| self.handle.frame_at(t)).unwrap_or(0),
            };
            if self.handle.send(c).is_ok() {
                return;
            }
        }
        self.backlog.insert(id, value);
    }

    /// Hand the engine the lanes to play (a full ring keeps the newest set for the next
    /// [`EngineLink::drain`]).
    fn send_playback(&mut self, playback: crate::automation::Playback) {
        self.playback_wait = self.handle.send_playback(Box::new(playback)).err();
    }

    fn drain(&mut self, tree: &ParamTree) {
        if let Some(p) = self.playback_wait.take() {
            self.playback_wait = self.handle.send_playback(p).err();
        } else {
            self.handle.collect();
        }
        while let Some((id, value)) = self.backlog.pop_first() {
            let c = ParamChange {
                addr: tree.get(id).addr,
                value,
                frame: 0,
            };
            if self.handle.send(c).is_err() {
                self.backlog.insert(id, value);
                break;
            }
        }
    }
}

struct SurfaceEntry {
    name: String,
    info: String,
}

struct Inner {
    tree: Arc<ParamTree>,
    /// Canonical path of each parameter, by id.
    paths: Vec<Arc<str>>,
    values: Vec<f32>,
    /// Who is touching what (several surfaces may touch one control).
    touched: HashMap<ParamId, HashSet<Origin>>,
    scenes: BTreeMap<String, BTreeMap<String, f32>>,
    insert_latency: BTreeMap<String, u32>,
    /// Stored insert latencies (measured or manual): loaded with the state, added to by live
    /// measurements ([`ConsoleHandle::record_insert_measurement`]), read by the engine factory.
    insert_measurements: crate::insert::Measurements,
    /// The latency each insert of the running engine has ([`ConsoleHandle::set_insert_status`]).
    insert_status: BTreeMap<String, status::InsertLatencyStatus>,
    /// Strips (canonical paths) whose insert is held for a measurement
    /// ([`ConsoleHandle::hold_insert`]); every engine attached is told.
    held_inserts: std::collections::BTreeSet<String>,
    /// Where [`ConsoleHandle::measure_insert`] sends its requests (the daemon; None: nobody
    /// measures).
    measurer: Option<tokio::sync::mpsc::Sender<InsertMeasureRequest>>,
    /// Outboard recall notes by canonical strip path (`ch/kick`).
    outboard: BTreeMap<String, Outboard>,
    /// The outboard notes saved with each scene.
    scene_outboard: BTreeMap<String, BTreeMap<String, Outboard>>,
    engine: Option<EngineLink>,
    stats: EngineStats,
    /// The latency (samples) of the last engine built ([`ConsoleHandle::set_engine_latency`]).
    engine_latency: u32,
    surfaces: BTreeMap<u32, SurfaceEntry>,
    /// Bumped by every change that must be persisted.
    generation: u64,
    /// The transport plays (every engine starts playing; a new one is told if not).
    playing: bool,
    /// When the last transport command was sent to the engine.
    transport_cmd_at: Option<Instant>,
    /// Automation modes other than off, by canonical parameter path.
    automation: BTreeMap<Arc<str>, Mode>,
    /// Lanes, passes, what plays ([`automation`]).
    auto: automation::AutoState,
}

struct Shared {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
    touches: broadcast::Sender<Touch>,
    modes: broadcast::Sender<ModeChange>,
    dirty: Notify,
    tree_tx: watch::Sender<Arc<ParamTree>>,
    meters_tx: watch::Sender<Arc<Meters>>,
    /// The master's live loudness, fed by the running engine's tap. Its own lock: draining it
    /// runs the loudness filters, too long for the state lock.
    loudness: Mutex<LoudnessMeter>,
    next_surface: AtomicU32,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every section is a few
        // assignments); keep going rather than poisoning every surface.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn loudness(&self) -> MutexGuard<'_, LoudnessMeter> {
        self.loudness.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Meters of `bank` with the master's loudness filled in (drains the loudness tap).
    fn read_meters(&self, bank: Option<Arc<MeterBank>>) -> Meters {
        let mut m = bank.map_or_else(Meters::default, |b| b.read());
        m.loudness = self.loudness().read();
        m
    }
}

/// The console: owns the live state; run it with [`Console::run`].
pub struct Console {
    shared: Arc<Shared>,
    state: Option<StateDir>,
}

/// The API every surface uses. Cheap to clone; `Send + Sync`. No method blocks for longer
/// than a short critical section; none may be called from the audio thread.
#[derive(Clone)]
pub struct ConsoleHandle {
    shared: Arc<Shared>,
}

fn paths_of(tree: &ParamTree) -> Vec<Arc<str>> {
    tree.params()
        .iter()
        .map(|p| Arc::<str>::from(p.path.as_str()))
        .collect()
}

/// Free text for outboard notes: at most `max` characters, no control characters.
fn check_text(what: &str, text: &str, max: usize) -> Result<(), ControlError> {
    let bad = |why| {
        Err(ControlError::BadText {
            what: format!("{what} {text:?}"),
            why,
        })
    };
    if text.chars().count() > max {
        return bad("too long");
    }
    if text.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    Ok(())
}

fn check_scene_name(name: &str) -> Result<(), ControlError> {
    let bad = |why| {
        Err(ControlError::BadSceneName {
            name: name.to_string(),
            why,
        })
    };
    if name.trim().is_empty() {
        return bad("empty");
    }
    if name.chars().count() > 64 {
        return bad("longer than 64 characters");
    }
    if name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    Ok(())
}

impl Inner {
    fn mark_dirty(&mut self, shared_dirty: &Notify) {
        self.generation += 1;
        shared_dirty.notify_one();
    }

    fn resolve(&self, path: &str) -> Result<ParamId, ControlError> {
        self.tree
            .resolve(path)
            .ok_or_else(|| ControlError::UnknownPath {
                path: path.to_string(),
            })
    }

    /// Validate, store, forward (to play at `at`, or at once), broadcast. Returns the stored
    /// value.
    fn set(
        &mut self,
        sh: &Shared,
        path: &str,
        value: f32,
        origin: Origin,
        at: Option<StdInstant>,
    ) -> Result<f32, ControlError> {
        if is_engine_param(path) {
            return Err(ControlError::ReadOnly {
                path: path.to_string(),
            });
        }
        let id = self.resolve(path)?;
        let spec = self.tree.get(id).spec;
        if value.is_nan() {
            return Err(ControlError::NotANumber {
                path: self.paths[id.0 as usize].to_string(),
            });
        }
        if !spec.contains(value) {
            return Err(ControlError::OutOfRange {
                path: self.paths[id.0 as usize].to_string(),
                value,
                range: spec.range_text(),
            });
        }
        Ok(self.store_at(sh, id, spec.sanitize(value), origin, at))
    }

    /// Store an already valid value.
    fn store(&mut self, sh: &Shared, id: ParamId, v: f32, origin: Origin) -> f32 {
        self.store_at(sh, id, v, origin, None)
    }

    /// [`Inner::store`] with the engine change timed for `at`.
    fn store_at(
        &mut self,
        sh: &Shared,
        id: ParamId,
        v: f32,
        origin: Origin,
        at: Option<StdInstant>,
    ) -> f32 {
        let mut v = v;
        if matches!(origin, Origin::Surface(_)) {
            match self.auto_surface_set(sh, id, v, origin) {
                Some(w) => v = w,
                None => return self.values[id.0 as usize],
            }
        }
        self.store_raw(sh, id, v, origin, at)
    }

    /// [`Inner::store_at`] without the automation hook (passes, implicit touches).
    fn store_raw(
        &mut self,
        sh: &Shared,
        id: ParamId,
        v: f32,
        origin: Origin,
        at: Option<StdInstant>,
    ) -> f32 {
        let i = id.0 as usize;
        if origin == Origin::Automation && self.touched.get(&id).is_some_and(|s| !s.is_empty()) {
            return self.values[i];
        }
        if self.values[i].to_bits() == v.to_bits() {
            return v;
        }
        self.values[i] = v;
        if let Some(e) = self.engine.as_mut() {
            e.send(&self.tree, id, v, at);
        }
        self.mark_dirty(&sh.dirty);
        // No receivers is not an error: nobody is listening yet.
        let _ = sh.changes.send(Change {
            path: self.paths[i].clone(),
            id,
            value: v,
            origin,
        });
        v
    }

    fn saved_state(&self) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            params: self
                .paths
                .iter()
                .zip(&self.values)
                .map(|(p, v)| (p.to_string(), *v))
                .collect(),
            scenes: self.scenes.clone(),
            insert_latency: self.insert_latency.clone(),
            insert_measurements: self.insert_measurements.clone(),
            outboard: self.outboard.clone(),
            scene_outboard: self.scene_outboard.clone(),
            automation: self
                .automation
                .iter()
                .map(|(p, m)| (p.to_string(), *m))
                .collect(),
            lanes: self.auto.saved(),
            lane_rate: self.auto.rate,
        }
    }

    /// The canonical path of a strip (`ch/1` → `ch/kick`, `master`).
    fn strip_key(&self, strip: &str) -> Result<String, ControlError> {
        let strip = strip.trim_matches('/');
        self.tree
            .resolve(&format!("{strip}/fader_db"))
            .and_then(|id| {
                self.paths[id.0 as usize]
                    .strip_suffix("/fader_db")
                    .map(str::to_string)
            })
            .ok_or_else(|| ControlError::UnknownPath {
                path: strip.to_string(),
            })
    }

    /// The canonical paths `path` names: one parameter, or every parameter of a strip
    /// (`ch/kick`, `ch/1`, `bus/drums`, `master`).
    fn automation_targets(&self, path: &str) -> Result<Vec<Arc<str>>, ControlError> {
        let path = path.trim_matches('/');
        if let Some(id) = self.tree.resolve(path) {
            return Ok(vec![self.paths[id.0 as usize].clone()]);
        }
        let unknown = || ControlError::UnknownPath {
            path: path.to_string(),
        };
        let id = self
            .tree
            .resolve(&format!("{path}/fader_db"))
            .ok_or_else(unknown)?;
        let prefix = self.paths[id.0 as usize]
            .strip_suffix("fader_db")
            .ok_or_else(unknown)?
            .to_string();
        Ok(self
            .paths
            .iter()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

fn transport_change(cmd: Transport) -> ParamChange {
    let (key, value) = match cmd {
        Transport::Play => (Key::TransportPlay, 1.0),
        Transport::Stop => (Key::TransportPlay, 0.0),
        Transport::Locate(s) => (Key::TransportLocate, s),
    };
    ParamChange {
        addr: Addr {
            target: Target::Master,
            key,
        },
        value,
        frame: 0,
    }
}

/// The engine message that holds (or releases) the insert of `strip` (canonical path), None
/// when the strip has no insert in `tree`.
fn hold_change(tree: &ParamTree, strip: &str, on: bool) -> Option<ParamChange> {
    let id = tree.resolve(&format!("{strip}/insert/bypass"))?;
    Some(ParamChange {
        addr: Addr {
            target: tree.get(id).addr.target,
            key: Key::InsertHold,
        },
        value: if on { 1.0 } else { 0.0 },
        frame: 0,
    })
}

fn is_engine_param(path: &str) -> bool {
    let p = path.strip_prefix('/').unwrap_or(path);
    matches!(
        p,
        ENGINE_DSP_LOAD | ENGINE_DSP_LOAD_PEAK | ENGINE_XRUNS | ENGINE_LATENCY
    )
}

impl Console {
    /// A console over `tree`, restoring the saved state from `state` (if any) over the
    /// session's values: parameters by path (unknown paths are ignored, with one log line;
    /// out-of-range values are clamped), scenes and insert latencies. An unreadable state
    /// file is logged and the session's values are used.
    pub fn new(tree: ParamTree, state: Option<StateDir>) -> (Console, ConsoleHandle) {
        let tree = Arc::new(tree);
        let paths = paths_of(&tree);
        let mut values: Vec<f32> = tree.params().iter().map(|p| p.initial).collect();
        let mut scenes = BTreeMap::new();
        let mut insert_latency = BTreeMap::new();
        let mut insert_measurements = BTreeMap::new();
        let mut outboard = BTreeMap::new();
        let mut scene_outboard = BTreeMap::new();
        let mut automation = BTreeMap::new();
        let mut auto = automation::AutoState::default();
        if let Some(dir) = &state {
            match dir.load() {
                Ok(Some(saved)) => {
                    let mut restored = 0usize;
                    let mut unknown = Vec::new();
                    for (path, v) in &saved.params {
                        match tree.resolve(path) {
                            Some(id) if !v.is_nan() => {
                                values[id.0 as usize] = tree.get(id).spec.sanitize(*v);
                                restored += 1;
                            }
                            _ => unknown.push(path.as_str()),
                        }
                    }
                    tracing::info!(
                        "restored {restored} parameter values, {} scenes from {}",
                        saved.scenes.len(),
                        dir.file().display()
                    );
                    if !unknown.is_empty() {
                        let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
                        tracing::info!(
                            "ignored {} saved values for parameters the session no longer has ({}{})",
                            unknown.len(),
                            shown.join(", "),
                            if unknown.len() > 5 { ", ..." } else { "" }
                        );
                    }
                    scenes = saved.scenes;
                    insert_latency = saved.insert_latency;
                    insert_measurements = saved.insert_measurements;
                    outboard = saved.outboard;
                    scene_outboard = saved.scene_outboard;
                    auto =
                        automation::AutoState::restore(saved.lanes, saved.lane_rate, &tree, &paths);
                    automation = saved
                        .automation
                        .into_iter()
                        .filter(|(_, m)| *m != Mode::Off)
                        .filter_map(|(p, m)| {
                            let id = tree.resolve(&p)?;
                            Some((paths[id.0 as usize].clone(), m))
                        })
                        .collect();
                }
                Ok(None) => {}
                Err(e) => tracing::error!("{e}; starting from the session's values"),
            }
        }
        let (changes, _) = broadcast::channel(CHANGE_CAPACITY);
        let (touches, _) = broadcast::channel(1024);
        let (modes, _) = broadcast::channel(4096);
        let (tree_tx, _) = watch::channel(tree.clone());
        let (meters_tx, _) = watch::channel(Arc::new(Meters::default()));
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                tree,
                paths,
                values,
                touched: HashMap::new(),
                scenes,
                insert_latency,
                insert_measurements,
                held_inserts: std::collections::BTreeSet::new(),
                insert_status: BTreeMap::new(),
                measurer: None,
                outboard,
                scene_outboard,
                engine: None,
                stats: EngineStats::default(),
                engine_latency: 0,
                surfaces: BTreeMap::new(),
                generation: 0,
                playing: true,
                transport_cmd_at: None,
                automation,
                auto,
            }),
            changes,
            touches,
            modes,
            dirty: Notify::new(),
            tree_tx,
            meters_tx,
            loudness: Mutex::new(LoudnessMeter::new()),
            next_surface: AtomicU32::new(1),
            started: Instant::now(),
        });
        let handle = ConsoleHandle {
            shared: shared.clone(),
        };
        (Console { shared, state }, handle)
    }

    /// A handle to this console.
    pub fn handle(&self) -> ConsoleHandle {
        ConsoleHandle {
            shared: self.shared.clone(),
        }
    }

    /// Same as [`ConsoleHandle::attach_engine`].
    pub fn attach_engine(&mut self, handle: EngineHandle, meters: Arc<MeterBank>) {
        self.handle().attach_engine(handle, meters);
    }

    /// The console task: debounced state writes, meter snapshots at display rate, draining
    /// the engine backlog. On `shutdown` it writes the state one last time (if anything
    /// changed since the last write) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let sh = self.shared;
        let mut meter_tick = tokio::time::interval(METER_PERIOD);
        meter_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut auto_tick = tokio::time::interval(automation::TICK);
        auto_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut saved_gen = 0u64;
        let mut last_save: Option<Instant> = None;
        let mut next_save: Option<Instant> = None;
        loop {
            let save_due = async {
                match next_save {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sh.dirty.notified() => {
                    if next_save.is_none() && self.state.is_some() {
                        let now = Instant::now();
                        let earliest = last_save.map_or(now, |t| t + SAVE_INTERVAL);
                        next_save = Some(earliest.max(now + SAVE_COALESCE));
                    }
                }
                () = save_due => {
                    let started = Instant::now();
                    next_save = None;
                    let stale = sh.lock().generation != saved_gen;
                    if let Some(dir) = self.state.as_ref().filter(|_| stale) {
                        match save(&sh, dir).await {
                            Ok(g) => saved_gen = saved_gen.max(g),
                            Err(()) => next_save = Some(started + Duration::from_secs(1)),
                        }
                    }
                    last_save = Some(started);
                    if next_save.is_none() && sh.lock().generation != saved_gen {
                        next_save = Some(started + SAVE_INTERVAL);
                    }
                }
                _ = auto_tick.tick() => {
                    sh.lock().auto_tick(&sh);
                }
                _ = meter_tick.tick() => {
                    let bank = {
                        let mut g = sh.lock();
                        let inner = &mut *g;
                        inner.engine.as_mut().map(|e| {
                            e.drain(&inner.tree);
                            e.meters.clone()
                        })
                    };
                    if bank.is_some() {
                        let m = sh.read_meters(bank);
                        {
                            // The engine's transport also follows JACK's: take its state
                            // once no command of ours is still on its way to the engine.
                            let mut g = sh.lock();
                            let settled = g
                                .transport_cmd_at
                                .is_none_or(|t| t.elapsed() > Duration::from_millis(200));
                            if settled && g.playing != m.playing {
                                g.playing = m.playing;
                                g.auto_transport(&sh, m.playing);
                            }
                        }
                        sh.meters_tx.send_replace(Arc::new(m));
                    }
                }
            }
        }
        if let Some(dir) = &self.state
            && sh.lock().generation != saved_gen
        {
            let _ = save(&sh, dir).await;
        }
    }
}

/// Write the current state; returns the generation written.
async fn save(sh: &Shared, dir: &StateDir) -> Result<u64, ()> {
    let (generation, s) = {
        let g = sh.lock();
        (g.generation, g.saved_state())
    };
    let dir = dir.clone();
    match tokio::task::spawn_blocking(move || dir.save(&s)).await {
        Ok(Ok(())) => Ok(generation),
        Ok(Err(e)) => {
            tracing::warn!("{e}; retrying in 1 s");
            Err(())
        }
        Err(e) => {
            tracing::warn!("state writer failed: {e}; retrying in 1 s");
            Err(())
        }
    }
}

impl ConsoleHandle {
    /// Register a surface; its changes carry the returned `Origin::Surface(id)`.
    pub fn register_surface(&self, name: &str) -> Origin {
        let id = self.shared.next_surface.fetch_add(1, Ordering::Relaxed);
        self.shared.lock().surfaces.insert(
            id,
            SurfaceEntry {
                name: name.to_string(),
                info: String::new(),
            },
        );
        Origin::Surface(id)
    }

    /// Forget a surface (and release everything it touched).
    pub fn unregister_surface(&self, origin: Origin) {
        if let Origin::Surface(id) = origin {
            self.shared.lock().surfaces.remove(&id);
        }
        let touched: Vec<String> = {
            let g = self.shared.lock();
            g.touched
                .iter()
                .filter(|(_, s)| s.contains(&origin))
                .map(|(id, _)| g.paths[id.0 as usize].to_string())
                .collect()
        };
        for p in touched {
            let _ = self.touch_sync(&p, false, origin);
        }
    }

    /// A one-line description of a surface's state for `faderbridge status`
    /// (`2 clients`, `X-Touch online`).
    pub fn set_surface_info(&self, origin: Origin, info: &str) {
        if let Origin::Surface(id) = origin
            && let Some(s) = self.shared.lock().surfaces.get_mut(&id)
        {
            s.info = info.to_string();
        }
    }

    /// Set a parameter (by canonical path or `ch/N/...`): validates, stores, forwards to the
    /// engine and broadcasts. Returns the stored value (stepped values rounded; for
    /// automation on a touched control, the unchanged current value).
    ///
    /// # Errors
    /// Unknown path, NaN, a value outside the range (the message says the range), or a
    /// read-only engine parameter.
    pub async fn set(&self, path: &str, value: f32, origin: Origin) -> Result<f32, ControlError> {
        self.set_sync(path, value, origin)
    }

    /// [`ConsoleHandle::set`] for threads outside the runtime (MIDI callbacks). Never call it
    /// from the audio thread.
    ///
    /// # Errors
    /// As [`ConsoleHandle::set`].
    pub fn set_sync(&self, path: &str, value: f32, origin: Origin) -> Result<f32, ControlError> {
        self.shared
            .lock()
            .set(&self.shared, path, value, origin, None)
    }

    /// [`ConsoleHandle::set_sync`] timed: the engine applies the change at the frame that
    /// plays at `at` (sample-accurately inside its block), or at the next block start when
    /// that frame has passed or no running backend stamps the engine's frames. The stored
    /// value and the feedback to other surfaces change at once. Hand the change over a few
    /// milliseconds ahead of `at` ([`ConsoleHandle::frame_clock_running`]).
    ///
    /// # Errors
    /// As [`ConsoleHandle::set`].
    pub fn set_sync_at(
        &self,
        path: &str,
        value: f32,
        origin: Origin,
        at: StdInstant,
    ) -> Result<f32, ControlError> {
        self.shared
            .lock()
            .set(&self.shared, path, value, origin, Some(at))
    }

    /// True while an engine is attached whose blocks a running backend stamps: only then
    /// can [`ConsoleHandle::set_sync_at`] place a change on its frame.
    pub fn frame_clock_running(&self) -> bool {
        self.shared
            .lock()
            .engine
            .as_ref()
            .is_some_and(|e| e.handle.frame_at(StdInstant::now()).is_some())
    }

    /// Set from 0..1 control travel through the parameter's taper (the fader law for faders).
    ///
    /// # Errors
    /// As [`ConsoleHandle::set`]; `n` outside 0..1 is out of range.
    pub async fn set_normalized(
        &self,
        path: &str,
        n: f32,
        origin: Origin,
    ) -> Result<f32, ControlError> {
        let mut g = self.shared.lock();
        if is_engine_param(path) {
            return Err(ControlError::ReadOnly {
                path: path.to_string(),
            });
        }
        let id = g.resolve(path)?;
        let p = g.paths[id.0 as usize].to_string();
        if n.is_nan() {
            return Err(ControlError::NotANumber { path: p });
        }
        if !(0.0..=1.0).contains(&n) {
            return Err(ControlError::OutOfRange {
                path: p,
                value: n,
                range: "0..1 (normalized)".into(),
            });
        }
        let spec = g.tree.get(id).spec;
        Ok(g.store(&self.shared, id, spec.from_normalized(n), origin))
    }

    /// The current value of a parameter, or of a read-only engine parameter.
    ///
    /// # Errors
    /// Unknown path.
    pub async fn get(&self, path: &str) -> Result<f32, ControlError> {
        self.get_sync(path)
    }

    /// [`ConsoleHandle::get`] for threads outside the runtime.
    ///
    /// # Errors
    /// Unknown path.
    pub fn get_sync(&self, path: &str) -> Result<f32, ControlError> {
        let g = self.shared.lock();
        let p = path.strip_prefix('/').unwrap_or(path);
        match p {
            ENGINE_DSP_LOAD => return Ok(g.stats.dsp_load),
            ENGINE_DSP_LOAD_PEAK => return Ok(g.stats.dsp_load_peak),
            ENGINE_XRUNS => return Ok(g.stats.xruns as f32),
            ENGINE_LATENCY => return Ok(g.engine_latency as f32),
            _ => {}
        }
        let id = g.resolve(path)?;
        Ok(g.values[id.0 as usize])
    }

    /// The current value as 0..1 control travel through the taper.
    ///
    /// # Errors
    /// Unknown path (engine parameters have no taper).
    pub async fn get_normalized(&self, path: &str) -> Result<f32, ControlError> {
        let g = self.shared.lock();
        let id = g.resolve(path)?;
        Ok(g.tree.get(id).spec.to_normalized(g.values[id.0 as usize]))
    }

    /// Touch (`true`) or release a control. While any surface touches it, automation does not
    /// drive it. Touch changes are broadcast to [`ConsoleHandle::subscribe_touch`].
    ///
    /// # Errors
    /// Unknown path.
    pub async fn touch(
        &self,
        path: &str,
        touched: bool,
        origin: Origin,
    ) -> Result<(), ControlError> {
        self.touch_sync(path, touched, origin)
    }

    /// [`ConsoleHandle::touch`] for code outside the runtime or in synchronous handlers.
    ///
    /// # Errors
    /// Unknown path.
    pub fn touch_sync(
        &self,
        path: &str,
        touched: bool,
        origin: Origin,
    ) -> Result<(), ControlError> {
        let mut g = self.shared.lock();
        let id = g.resolve(path)?;
        // An explicit touch or release replaces an implicit touch of the same surface.
        let was_implicit = g.auto.take_implicit(id, origin);
        if !g.touch_change(&self.shared, id, touched, origin) && touched && was_implicit {
            // Already touched (implicitly): now explicitly; say so again.
            g.announce_touch(&self.shared, id, true, origin);
        }
        Ok(())
    }

    /// True while any surface touches the control.
    ///
    /// # Errors
    /// Unknown path.
    pub fn is_touched(&self, path: &str) -> Result<bool, ControlError> {
        let g = self.shared.lock();
        let id = g.resolve(path)?;
        Ok(g.touched.get(&id).is_some_and(|s| !s.is_empty()))
    }

    /// Every stored change, in order, from now on. Each surface drops changes whose origin
    /// is its own.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// Every touch and release, from now on.
    pub fn subscribe_touch(&self) -> broadcast::Receiver<Touch> {
        self.shared.touches.subscribe()
    }

    /// Every automation mode change, from now on (surfaces light their mode LEDs from it).
    pub fn subscribe_automation(&self) -> broadcast::Receiver<ModeChange> {
        self.shared.modes.subscribe()
    }

    /// The current tree; changes on reload (surfaces resend snapshots / OSCQuery trees).
    pub fn subscribe_tree(&self) -> watch::Receiver<Arc<ParamTree>> {
        self.shared.tree_tx.subscribe()
    }

    /// Meter snapshots, published by [`Console::run`] every [`METER_PERIOD`] while an engine
    /// is attached.
    pub fn subscribe_meters(&self) -> watch::Receiver<Arc<Meters>> {
        self.shared.meters_tx.subscribe()
    }

    /// Every parameter's canonical path and value, in tree order (the read-only engine
    /// parameters are not included; read them with [`ConsoleHandle::get`]).
    pub async fn snapshot(&self) -> Vec<(Arc<str>, f32)> {
        let g = self.shared.lock();
        g.paths
            .iter()
            .cloned()
            .zip(g.values.iter().copied())
            .collect()
    }

    /// The current parameter tree (its `initial` values are the session's, not the current
    /// ones).
    pub fn tree(&self) -> Arc<ParamTree> {
        self.shared.lock().tree.clone()
    }

    /// The engine's meters now (read from its meter bank), or empty meters without an engine.
    pub fn meters(&self) -> Meters {
        let bank = self.shared.lock().engine.as_ref().map(|e| e.meters.clone());
        self.shared.read_meters(bank)
    }

    /// Measure the master's loudness from `tap` (made by `Engine::loudness_tap`) from now on:
    /// call it with every engine built, next to [`ConsoleHandle::attach_engine`]. An engine
    /// at the same sample rate carries the measurement on (integrated loudness keeps
    /// counting); a new rate starts afresh. Allocates.
    pub fn attach_loudness(&self, tap: LoudnessTap) {
        self.shared.loudness().attach(tap);
    }

    /// Restart the master's loudness measurement: integrated loudness and true peak count
    /// from now on. A transport locate to 0 does this too.
    pub fn reset_loudness(&self) {
        self.shared.loudness().reset();
    }

    /// Attach a freshly built engine (built from [`ConsoleHandle::tree`]): replaces any
    /// previous one and queues every current value that differs from the tree's session
    /// value (see the module doc). Allocates.
    pub fn attach_engine(&self, handle: EngineHandle, meters: Arc<MeterBank>) {
        let mut g = self.shared.lock();
        let inner = &mut *g;
        let mut link = EngineLink {
            handle,
            meters,
            backlog: BTreeMap::new(),
            playback_wait: None,
        };
        let mut sent = 0usize;
        for (i, (p, v)) in inner.tree.params().iter().zip(&inner.values).enumerate() {
            if p.initial.to_bits() != v.to_bits() {
                link.send(&inner.tree, ParamId(i as u32), *v, None);
                sent += 1;
            }
        }
        tracing::debug!("engine attached; {sent} values differ from the session and were queued");
        if !inner.playing {
            let _ = link.handle.send(transport_change(Transport::Stop));
        }
        for strip in &inner.held_inserts {
            if let Some(c) = hold_change(&inner.tree, strip, true) {
                let _ = link.handle.send(c);
            }
        }
        inner.engine = Some(link);
        inner.auto.forget_engaged();
        inner.auto.lanes_changed = true;
        inner.refresh_playback();
    }

    /// Play, stop or locate the transport of the running engine (file sources; live inputs
    /// always flow). Not persisted: a restarted daemon plays from the start.
    ///
    /// # Errors
    /// A negative or non-finite locate, no engine running, or its queue full.
    pub fn transport(&self, cmd: Transport) -> Result<(), ControlError> {
        self.transport_at(cmd, None)
    }

    /// [`ConsoleHandle::transport`] at the engine frame that plays at `at` (see
    /// [`ConsoleHandle::set_sync_at`]).
    ///
    /// # Errors
    /// As [`ConsoleHandle::transport`].
    pub fn transport_at(&self, cmd: Transport, at: Option<StdInstant>) -> Result<(), ControlError> {
        if let Transport::Locate(s) = cmd
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(ControlError::OutOfRange {
                path: "transport/locate".into(),
                value: s,
                range: "0..".into(),
            });
        }
        let mut g = self.shared.lock();
        let link = g
            .engine
            .as_mut()
            .ok_or(ControlError::Transport("no engine is running"))?;
        let mut change = transport_change(cmd);
        change.frame = at.and_then(|t| link.handle.frame_at(t)).unwrap_or(0);
        link.handle
            .send(change)
            .map_err(|_| ControlError::Transport("the engine's queue is full; try again"))?;
        let was = g.playing;
        match cmd {
            Transport::Play => g.playing = true,
            Transport::Stop => g.playing = false,
            Transport::Locate(s) => g.auto_locate(&self.shared, s),
        }
        if g.playing != was {
            let playing = g.playing;
            g.auto_transport(&self.shared, playing);
        }
        g.transport_cmd_at = Some(Instant::now());
        drop(g);
        if matches!(cmd, Transport::Locate(s) if s == 0.0) {
            self.reset_loudness();
        }
        Ok(())
    }

    /// Set the automation mode of a parameter (`ch/kick/fader_db`) or of every parameter of
    /// a strip (`ch/kick`, `ch/1`, `bus/drums`, `master`). Persisted with the state. Returns
    /// how many parameters it set.
    ///
    /// # Errors
    /// A path that names neither a parameter nor a strip.
    pub fn set_automation(&self, path: &str, mode: Mode) -> Result<usize, ControlError> {
        let mut g = self.shared.lock();
        let targets = g.automation_targets(path)?;
        for p in &targets {
            let old = match mode {
                Mode::Off => g.automation.remove(p),
                m => g.automation.insert(p.clone(), m),
            };
            if old.unwrap_or_default() != mode {
                let _ = self.shared.modes.send(ModeChange {
                    path: p.clone(),
                    mode,
                });
                if let Some(id) = g.tree.resolve(p) {
                    g.auto_mode_changed(&self.shared, id);
                }
            }
        }
        g.refresh_playback();
        g.mark_dirty(&self.shared.dirty);
        Ok(targets.len())
    }

    /// The automation mode of a parameter; of a strip, the mode its fader has.
    ///
    /// # Errors
    /// A path that names neither a parameter nor a strip.
    pub fn automation(&self, path: &str) -> Result<Mode, ControlError> {
        let g = self.shared.lock();
        let targets = g.automation_targets(path)?;
        let p = targets
            .iter()
            .find(|p| p.ends_with("/fader_db"))
            .or(targets.first());
        Ok(p.and_then(|p| g.automation.get(p))
            .copied()
            .unwrap_or_default())
    }

    /// The automation lane of a parameter: its points (transport frames at
    /// [`ConsoleHandle::lane_rate`]), empty when it has none.
    ///
    /// # Errors
    /// An unknown path.
    pub fn lane(&self, path: &str) -> Result<Vec<crate::automation::Point>, ControlError> {
        let g = self.shared.lock();
        let id = g.resolve(path)?;
        Ok(g.auto
            .lanes
            .get(&g.paths[id.0 as usize])
            .map(|s| s.lane.points.clone())
            .unwrap_or_default())
    }

    /// Replace a parameter's lane (an import; values are clamped into the range, points
    /// sorted, NaN dropped). An empty list removes the lane.
    ///
    /// # Errors
    /// An unknown path.
    pub fn set_lane(
        &self,
        path: &str,
        points: Vec<crate::automation::Point>,
    ) -> Result<(), ControlError> {
        let mut g = self.shared.lock();
        let id = g.resolve(path)?;
        let spec = g.tree.get(id).spec;
        let p = g.paths[id.0 as usize].clone();
        let points = automation::clean_points(points, spec);
        if points.is_empty() {
            g.auto.lanes.remove(&p);
        } else {
            let mut lane = crate::automation::Lane::new(crate::automation::Interp::for_spec(spec));
            lane.points = points;
            g.auto.lanes.insert(p, automation::LaneSlot::new(lane));
        }
        g.auto.lanes_changed = true;
        g.mark_dirty(&self.shared.dirty);
        g.refresh_playback();
        Ok(())
    }

    /// The sample rate lane frames count at (0 until a backend reported one).
    pub fn lane_rate(&self) -> u32 {
        self.shared.lock().auto.rate
    }

    /// Put back the lanes the last write pass changed; returns how many.
    pub fn automation_undo(&self) -> usize {
        self.shared.lock().auto_undo(&self.shared)
    }

    /// Change the automation settings (glide time, what a touch does in read mode).
    pub fn set_automation_config(&self, cfg: AutomationConfig) {
        self.shared.lock().auto.config = cfg;
    }

    /// The transport position heard now (samples) and whether it plays.
    pub fn position(&self) -> (u64, bool) {
        self.shared.lock().position_now()
    }

    /// True while the transport plays.
    pub fn playing(&self) -> bool {
        self.shared.lock().playing
    }

    /// Detach the engine (no more changes are forwarded until the next attach).
    pub fn detach_engine(&self) {
        self.shared.lock().engine = None;
    }

    /// Every current value as an engine change, for `Engine::apply` on a freshly built engine
    /// before it starts (so it starts exactly on the current values).
    pub fn current_changes(&self) -> Vec<ParamChange> {
        let g = self.shared.lock();
        g.tree
            .params()
            .iter()
            .zip(&g.values)
            .map(|(p, v)| ParamChange {
                addr: p.addr,
                value: *v,
                frame: 0,
            })
            .collect()
    }

    /// Every current value by canonical path.
    pub fn values_for_build(&self) -> HashMap<String, f32> {
        let g = self.shared.lock();
        g.paths
            .iter()
            .zip(&g.values)
            .map(|(p, v)| (p.to_string(), *v))
            .collect()
    }

    /// Swap in the tree of a re-read session: parameters that still exist (same canonical
    /// path) keep their current value (clamped to the new range) and their touches; new ones
    /// take the session's values, and are broadcast with [`Origin::Internal`]. The engine is
    /// detached: attach the one built from the new tree.
    pub fn reload(&self, tree: ParamTree) -> ReloadSummary {
        let tree = Arc::new(tree);
        let mut g = self.shared.lock();
        let old_tree = g.tree.clone();
        let paths = paths_of(&tree);
        let mut summary = ReloadSummary::default();
        let mut values = Vec::with_capacity(tree.len());
        let mut added_ids = Vec::new();
        for (i, p) in tree.params().iter().enumerate() {
            let old = old_tree
                .resolve(&p.path)
                .filter(|id| old_tree.get(*id).path == p.path);
            match old {
                Some(oid) => {
                    values.push(p.spec.sanitize(g.values[oid.0 as usize]));
                    summary.kept += 1;
                }
                None => {
                    values.push(p.initial);
                    summary.added.push(p.path.clone());
                    added_ids.push(i);
                }
            }
        }
        summary.removed = old_tree
            .params()
            .iter()
            .filter(|p| {
                tree.resolve(&p.path)
                    .is_none_or(|id| tree.get(id).path != p.path)
            })
            .map(|p| p.path.clone())
            .collect();
        let mut touched = HashMap::new();
        for (id, who) in g.touched.drain() {
            if let Some(nid) = tree.resolve(&old_tree.get(id).path) {
                touched.insert(nid, who);
            }
        }
        g.touched = touched;
        g.tree = tree.clone();
        // Automation modes stay with the parameters that still exist.
        let automation = std::mem::take(&mut g.automation)
            .into_iter()
            .filter_map(|(p, m)| tree.resolve(&p).map(|id| (paths[id.0 as usize].clone(), m)))
            .collect();
        g.automation = automation;
        g.auto.forget_ids();
        let lanes = std::mem::take(&mut g.auto.lanes)
            .into_iter()
            .filter_map(|(p, l)| tree.resolve(&p).map(|id| (paths[id.0 as usize].clone(), l)))
            .collect();
        g.auto.lanes = lanes;
        g.paths = paths;
        g.values = values;
        g.engine = None;
        g.mark_dirty(&self.shared.dirty);
        for i in added_ids {
            let _ = self.shared.changes.send(Change {
                path: g.paths[i].clone(),
                id: ParamId(i as u32),
                value: g.values[i],
                origin: Origin::Internal,
            });
        }
        self.shared.tree_tx.send_replace(tree);
        tracing::info!(
            "reloaded: {} parameters kept, {} added, {} removed",
            summary.kept,
            summary.added.len(),
            summary.removed.len()
        );
        summary
    }

    /// Save the current values as scene `name` (replacing a scene of that name).
    ///
    /// # Errors
    /// An empty name, one longer than 64 characters or with control characters.
    pub async fn scene_save(&self, name: &str) -> Result<(), ControlError> {
        self.scene_save_sync(name)
    }

    /// [`ConsoleHandle::scene_save`] for synchronous handlers (OSC dialects).
    ///
    /// # Errors
    /// As [`ConsoleHandle::scene_save`].
    pub fn scene_save_sync(&self, name: &str) -> Result<(), ControlError> {
        check_scene_name(name)?;
        let mut g = self.shared.lock();
        let scene: BTreeMap<String, f32> = g
            .paths
            .iter()
            .zip(&g.values)
            .map(|(p, v)| (p.to_string(), *v))
            .collect();
        g.scenes.insert(name.to_string(), scene);
        let notes = g.outboard.clone();
        g.scene_outboard.insert(name.to_string(), notes);
        g.mark_dirty(&self.shared.dirty);
        Ok(())
    }

    /// Recall scene `name`: every parameter it holds is set with [`Origin::Scene`] (engine
    /// gains glide, so no clicks). Parameters the scene does not know keep their value;
    /// scene entries for parameters the session no longer has are skipped.
    ///
    /// # Errors
    /// No such scene.
    pub async fn scene_recall(&self, name: &str) -> Result<(), ControlError> {
        self.scene_recall_sync(name)
    }

    /// [`ConsoleHandle::scene_recall`] for synchronous handlers (OSC dialects).
    ///
    /// # Errors
    /// As [`ConsoleHandle::scene_recall`].
    pub fn scene_recall_sync(&self, name: &str) -> Result<(), ControlError> {
        let mut g = self.shared.lock();
        let scene = g
            .scenes
            .get(name)
            .cloned()
            .ok_or_else(|| ControlError::UnknownScene {
                name: name.to_string(),
            })?;
        if let Some(notes) = g.scene_outboard.get(name).cloned() {
            g.outboard = notes;
            g.mark_dirty(&self.shared.dirty);
        }
        let mut skipped = 0usize;
        for (path, v) in &scene {
            match g.tree.resolve(path) {
                Some(id) if !v.is_nan() => {
                    let v = g.tree.get(id).spec.sanitize(*v);
                    g.store(&self.shared, id, v, Origin::Scene);
                }
                _ => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::info!(
                "scene {name:?}: skipped {skipped} values for parameters the session no longer has"
            );
        }
        Ok(())
    }

    /// Scene names, sorted.
    pub async fn scene_list(&self) -> Vec<String> {
        self.shared.lock().scenes.keys().cloned().collect()
    }

    /// Delete scene `name`.
    ///
    /// # Errors
    /// No such scene.
    pub async fn scene_delete(&self, name: &str) -> Result<(), ControlError> {
        let mut g = self.shared.lock();
        g.scene_outboard.remove(name);
        if g.scenes.remove(name).is_none() {
            return Err(ControlError::UnknownScene {
                name: name.to_string(),
            });
        }
        g.mark_dirty(&self.shared.dirty);
        Ok(())
    }

    /// Set the outboard unit of a strip's insert (`ch/kick`, `ch/1`, `bus/drums`, `master`);
    /// an empty name forgets the strip's notes. Saved with the state and with scenes.
    ///
    /// # Errors
    /// An unknown strip; a name over 64 characters or with control characters.
    pub fn set_outboard_unit(&self, strip: &str, unit: &str) -> Result<(), ControlError> {
        check_text("unit", unit, 64)?;
        let mut g = self.shared.lock();
        let key = g.strip_key(strip)?;
        if unit.is_empty() {
            g.outboard.remove(&key);
        } else {
            g.outboard.entry(key).or_default().unit = unit.to_string();
        }
        g.mark_dirty(&self.shared.dirty);
        Ok(())
    }

    /// Note how a knob of a strip's outboard unit is set (`input` → `24`); an empty setting
    /// removes the knob. At most 32 knobs per strip.
    ///
    /// # Errors
    /// An unknown strip; a knob name over 32 characters, a setting over 64, control
    /// characters, or a 33rd knob.
    pub fn set_outboard_setting(
        &self,
        strip: &str,
        knob: &str,
        setting: &str,
    ) -> Result<(), ControlError> {
        check_text("knob", knob, 32)?;
        if knob.is_empty() {
            return Err(ControlError::BadText {
                what: "knob".into(),
                why: "empty",
            });
        }
        check_text("setting", setting, 64)?;
        let mut g = self.shared.lock();
        let key = g.strip_key(strip)?;
        let notes = g.outboard.entry(key).or_default();
        if setting.is_empty() {
            notes.settings.remove(knob);
        } else {
            if !notes.settings.contains_key(knob) && notes.settings.len() >= 32 {
                return Err(ControlError::BadText {
                    what: knob.into(),
                    why: "a strip notes at most 32 knobs",
                });
            }
            notes.settings.insert(knob.to_string(), setting.to_string());
        }
        g.mark_dirty(&self.shared.dirty);
        Ok(())
    }

    /// A strip's outboard notes (empty when none).
    ///
    /// # Errors
    /// An unknown strip.
    pub fn outboard(&self, strip: &str) -> Result<Outboard, ControlError> {
        let g = self.shared.lock();
        let key = g.strip_key(strip)?;
        Ok(g.outboard.get(&key).cloned().unwrap_or_default())
    }

    /// The canonical path of a strip: `ch/kick` for `ch/kick`, `ch/1`, `/ch/kick/`; a bare
    /// name or number (`kick`, `1`, as `measure-insert` takes it) is a channel, else a bus;
    /// `master`.
    ///
    /// # Errors
    /// No such strip.
    pub fn strip_path(&self, strip: &str) -> Result<String, ControlError> {
        let g = self.shared.lock();
        let s = strip.trim_matches('/');
        if !s.contains('/') && s != "master" {
            for kind in ["ch", "bus"] {
                if let Ok(p) = g.strip_key(&format!("{kind}/{s}")) {
                    return Ok(p);
                }
            }
        }
        g.strip_key(s)
    }

    /// Hold (`true`) or release the hardware insert of `strip` (canonical path) for a latency
    /// measurement: the engine bypasses it (its latency delay, crossfaded) and silences its
    /// send, leaving its parameters alone (nothing stored, announced or saved). Engines
    /// attached while it is held are held too.
    ///
    /// # Errors
    /// The strip has no insert; the engine's queue is full.
    pub fn hold_insert(&self, strip: &str, on: bool) -> Result<(), ControlError> {
        let mut g = self.shared.lock();
        let c = hold_change(&g.tree, strip, on)
            .ok_or_else(|| ControlError::Insert(format!("{strip} has no hardware insert")))?;
        if !on {
            g.held_inserts.remove(strip);
        }
        if let Some(e) = g.engine.as_mut()
            && e.handle.send(c).is_err()
        {
            return Err(ControlError::Insert(format!(
                "{strip}: the engine's queue is full; try again"
            )));
        }
        if on {
            g.held_inserts.insert(strip.to_string());
        }
        Ok(())
    }

    /// Store a measured (or manual) insert latency for `key` (the channel's name) in the live
    /// state: saved with the state, used by the next engine built. Replaces the entry for the
    /// same backend, rate and period.
    pub fn record_insert_measurement(&self, key: &str, m: crate::insert::InsertMeasurement) {
        let mut g = self.shared.lock();
        crate::insert::record_into(&mut g.insert_measurements, key, m);
        g.mark_dirty(&self.shared.dirty);
    }

    /// Record the latency each hardware insert of the engine just built runs with, by strip
    /// (`ch/kick`), for the status; the engine factory calls it.
    pub fn set_insert_status(&self, inserts: BTreeMap<String, status::InsertLatencyStatus>) {
        self.shared.lock().insert_status = inserts;
    }

    /// The latency the insert of `strip` (canonical path) runs with in the current engine;
    /// None when it has no insert or no engine was built.
    pub fn insert_status(&self, strip: &str) -> Option<status::InsertLatencyStatus> {
        self.shared.lock().insert_status.get(strip).cloned()
    }

    /// The stored insert latencies (as loaded, plus live measurements).
    pub fn insert_measurements(&self) -> crate::insert::Measurements {
        self.shared.lock().insert_measurements.clone()
    }

    /// Let `tx` serve [`ConsoleHandle::measure_insert`] (the daemon does, on JACK).
    pub fn set_insert_measurer(&self, tx: tokio::sync::mpsc::Sender<InsertMeasureRequest>) {
        self.shared.lock().measurer = Some(tx);
    }

    /// Measure the round-trip latency of the hardware insert of `strip` (`ch/kick`, `ch/3`,
    /// `kick`) on the running daemon, store it and apply it; waits until done (a few
    /// seconds).
    ///
    /// # Errors
    /// An unknown strip, nobody to measure (no daemon, or not on JACK), another measurement
    /// running, or the measurement refused (the message says why; nothing is stored).
    pub async fn measure_insert(&self, strip: &str) -> Result<InsertMeasured, ControlError> {
        self.insert_latency_request(strip, None).await
    }

    /// Store `samples` by hand as the round-trip latency of the hardware insert of `strip`
    /// for the running backend, rate and period (as `measure-insert --set`), and apply it.
    ///
    /// # Errors
    /// As [`ConsoleHandle::measure_insert`]; a negative or non-finite value.
    pub async fn set_insert_latency_manual(
        &self,
        strip: &str,
        samples: f64,
    ) -> Result<InsertMeasured, ControlError> {
        if !(samples.is_finite() && (0.0..=10_000_000.0).contains(&samples)) {
            return Err(ControlError::Insert(format!(
                "{samples}: expected a latency in samples, 0 or more"
            )));
        }
        self.insert_latency_request(strip, Some(samples)).await
    }

    async fn insert_latency_request(
        &self,
        strip: &str,
        set: Option<f64>,
    ) -> Result<InsertMeasured, ControlError> {
        let strip = self.strip_path(strip)?;
        let tx = self.shared.lock().measurer.clone().ok_or_else(|| {
            ControlError::Insert(
                "an insert's latency is measured (or set) by the running daemon; nothing measures here"
                    .into(),
            )
        })?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ControlError::Insert("the measurement service stopped".into());
        tx.send(InsertMeasureRequest { strip, set, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(ControlError::Insert)
    }

    /// Record the measured round-trip latency (samples) of a strip's hardware insert.
    pub fn set_insert_latency(&self, strip: &str, samples: u32) {
        let mut g = self.shared.lock();
        if g.insert_latency.get(strip) != Some(&samples) {
            g.insert_latency.insert(strip.to_string(), samples);
            g.mark_dirty(&self.shared.dirty);
        }
    }

    /// The measured insert latency of a strip, if any.
    pub fn insert_latency(&self, strip: &str) -> Option<u32> {
        self.shared.lock().insert_latency.get(strip).copied()
    }

    /// Store the backend's statistics (read back through `engine/*` and the status).
    pub fn set_engine_stats(&self, s: EngineStats) {
        let mut g = self.shared.lock();
        g.auto.set_rate(s.sample_rate);
        g.stats = s;
    }

    /// Store the engine's total added latency in samples (read back as
    /// `engine/latency_samples`); the engine factory calls it for every engine it builds.
    pub fn set_engine_latency(&self, samples: u32) {
        self.shared.lock().engine_latency = samples;
    }

    /// The last statistics stored.
    pub fn engine_stats(&self) -> EngineStats {
        self.shared.lock().stats.clone()
    }

    /// Strips, meters, engine statistics and surfaces, for `faderbridge status`.
    pub async fn status(&self) -> StatusReport {
        let meters = self.meters();
        let g = self.shared.lock();
        let mut report = status::build_report(
            &g.tree,
            &g.values,
            &meters,
            g.engine.is_some(),
            g.stats.clone(),
            g.surfaces
                .iter()
                .map(|(id, s)| SurfaceStatus {
                    id: *id,
                    name: s.name.clone(),
                    info: s.info.clone(),
                })
                .collect(),
            g.scenes.keys().cloned().collect(),
            self.shared.started.elapsed().as_secs_f64(),
            g.stats.sample_rate,
        );
        report.outboard = g.outboard.clone();
        report.latency_samples = g.engine_latency as u64;
        report.inserts = g.insert_status.clone();
        report
    }
}

#[cfg(test)]
mod tests;
