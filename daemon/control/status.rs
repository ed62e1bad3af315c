//! The status report (`faderbridge status`) and the local status socket that serves it.
//!
//! Protocol: a Unix stream socket (`status.sock` in the state directory). The client writes
//! one JSON request per line and reads one JSON line back per request:
//! - `{"cmd":"status"}` → a [`StatusReport`];
//! - `{"cmd":"get","path":"ch/kick/fader_db"}` → `{"path":"...","value":-3.0}`;
//! - `{"cmd":"set","path":"ch/kick/fader_db","value":-6}` → the stored value, as for `get`
//!   (a local scripting hook: the change is acknowledged once the console has it);
//! - `{"cmd":"scene_save"|"scene_recall"|"scene_delete","name":"verse"}` → `{"ok":true}`;
//! - `{"cmd":"learn","path":"ch/kick/fader_db","timeout":30}` → waits for the next control
//!   of a mapped MIDI device, then `{"ok":true,"map":FILE,"entry":LINE}` ([`crate::midimap::learn`]);
//! - `{"cmd":"measure-insert","strip":"kick"}` (also `ch/kick`, `ch/1`, `1`) → measures the
//!   strip's hardware insert on the running daemon, stores and applies the result, then answers
//!   an [`crate::control::InsertMeasured`] (`strip`, `key`, `measurement` with `samples`,
//!   `error`, `inverted`, `backend`, `rate`, `block`; `level_db`, `snr_db`, `latency_samples`,
//!   `report`) after a few seconds; a refusal is `{"error":"..."}`. With `"set":SAMPLES` it
//!   stores that latency by hand instead (`manual`, as `measure-insert --set`) and applies it;
//! - anything else → `{"error":"..."}`.
//!
//! Values that may be infinite (gains, meters) are JSON numbers or the strings `"-inf"` /
//! `"inf"`, as in the state file ([`crate::state::jnum`]).

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{ConsoleHandle, EngineStats};
use crate::engine::Meters;
use crate::params::{Key, ParamTree, Target};

/// Longest request line the socket accepts.
const MAX_REQUEST: u64 = 64 * 1024;

/// Errors of the status socket.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no faderbridge daemon answers at {path}: {source} (is it running? is --state-dir the daemon's?)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another faderbridge daemon already answers at {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("status socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon answered something unexpected: {0}")]
    Protocol(String),
    #[error("the daemon says: {0}")]
    Daemon(String),
}

/// What kind of strip a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripKind {
    Channel,
    Bus,
    Master,
}

/// One strip of the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripStatus {
    pub kind: StripKind,
    pub name: String,
    #[serde(with = "crate::state::jnum")]
    pub fader_db: f32,
    pub mute: bool,
    pub solo: bool,
    /// Sample peak L/R, dBFS.
    #[serde(with = "crate::state::jnum::pair")]
    pub peak_db: [f32; 2],
    /// RMS L/R, dBFS.
    #[serde(with = "crate::state::jnum::pair")]
    pub rms_db: [f32; 2],
    /// Compressor gain reduction, dB (0 or negative).
    #[serde(with = "crate::state::jnum")]
    pub comp_gr_db: f32,
}

/// A registered surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurfaceStatus {
    pub id: u32,
    pub name: String,
    /// The surface's own one-line state (`2 clients`), may be empty.
    pub info: String,
}

/// The master's live loudness in a [`StatusReport`]; `-inf` means no measurement yet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoudnessStatus {
    /// Momentary loudness (400 ms), LUFS.
    #[serde(with = "crate::state::jnum")]
    pub momentary_lufs: f32,
    /// Short-term loudness (3 s), LUFS.
    #[serde(with = "crate::state::jnum")]
    pub short_term_lufs: f32,
    /// Integrated loudness since the last reset, LUFS.
    #[serde(with = "crate::state::jnum")]
    pub integrated_lufs: f32,
    /// Largest true peak since the last reset, dBTP.
    #[serde(with = "crate::state::jnum")]
    pub true_peak_dbtp: f32,
}

impl Default for LoudnessStatus {
    fn default() -> Self {
        Self::from(&crate::engine::MasterLoudness::default())
    }
}

impl From<&crate::engine::MasterLoudness> for LoudnessStatus {
    fn from(l: &crate::engine::MasterLoudness) -> Self {
        Self {
            momentary_lufs: l.momentary_lufs,
            short_term_lufs: l.short_term_lufs,
            integrated_lufs: l.integrated_lufs,
            true_peak_dbtp: l.true_peak_dbtp,
        }
    }
}

/// Everything `faderbridge status` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Channels, then buses, then the master.
    pub strips: Vec<StripStatus>,
    /// Master limiter gain reduction, dB.
    #[serde(with = "crate::state::jnum")]
    pub limiter_gr_db: f32,
    /// The master's live loudness (absent from older daemons: reads `-inf`).
    #[serde(default)]
    pub loudness: LoudnessStatus,
    pub engine: EngineStats,
    /// False while no engine runs (backend gone, reload in progress).
    pub engine_attached: bool,
    pub surfaces: Vec<SurfaceStatus>,
    pub scenes: Vec<String>,
    pub parameters: usize,
    pub uptime_s: f64,
    /// The engine's transport: playing, and its position in seconds (absent from older
    /// daemons).
    #[serde(default)]
    pub transport: TransportStatus,
    /// Outboard recall notes by strip (`ch/kick`).
    #[serde(default)]
    pub outboard: std::collections::BTreeMap<String, crate::state::Outboard>,
    /// The engine's added latency (`engine/latency_samples`: limiter look-ahead plus insert
    /// compensation), samples.
    #[serde(default)]
    pub latency_samples: u64,
    /// The latency each hardware insert runs with, by strip (`ch/kick`).
    #[serde(default)]
    pub inserts: std::collections::BTreeMap<String, InsertLatencyStatus>,
}

/// The latency a hardware insert runs with, and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertLatencyStatus {
    /// Round trip in samples as stored (None: unknown, the insert runs with no delay).
    pub samples: Option<f64>,
    /// `session` (a fixed `latency: N`), `measured`, `manual` (`measure-insert --set`) or
    /// `unknown` (nothing stored for this backend, rate and period).
    pub source: String,
    /// The measurement's error figure (samples; 0 unless measured).
    pub error: f64,
    /// The measurement found the return inverted.
    pub inverted: bool,
}

impl InsertLatencyStatus {
    /// `insert ch/kick: 493.02 samples, measured (error 0.01, polarity normal)`.
    pub fn line(&self, strip: &str) -> String {
        match (self.samples, self.source.as_str()) {
            (None, _) => format!(
                "insert {strip}: latency unknown (no delay; run `faderbridge measure-insert` or send /{strip}/insert/measure)"
            ),
            (Some(v), "measured") => format!(
                "insert {strip}: {v:.2} samples, measured (error {:.2}, polarity {})",
                self.error,
                if self.inverted { "inverted" } else { "normal" }
            ),
            (Some(v), "manual") => format!("insert {strip}: {v:.2} samples, set by hand"),
            (Some(v), source) => format!("insert {strip}: {v:.2} samples, from the {source}"),
        }
    }
}

/// The transport line of a [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransportStatus {
    pub playing: bool,
    pub position_s: f64,
}

/// Assemble a report from the console's state.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    tree: &ParamTree,
    values: &[f32],
    meters: &Meters,
    engine_attached: bool,
    engine: EngineStats,
    surfaces: Vec<SurfaceStatus>,
    scenes: Vec<String>,
    uptime_s: f64,
    sample_rate: u32,
) -> StatusReport {
    let mut strips: Vec<(Target, StripStatus)> = Vec::new();
    let value_of = |t: Target, k: Key| {
        tree.by_addr(crate::params::Addr { target: t, key: k })
            .map(|id| values[id.0 as usize])
    };
    for (i, p) in tree.params().iter().enumerate() {
        if p.addr.key != Key::FaderDb {
            continue;
        }
        let t = p.addr.target;
        let (kind, name, m) = match t {
            Target::Channel(c) => (
                StripKind::Channel,
                p.path.split('/').nth(1).unwrap_or("?").to_string(),
                meters.channels.get(c as usize).copied(),
            ),
            Target::Bus(b) => (
                StripKind::Bus,
                p.path.split('/').nth(1).unwrap_or("?").to_string(),
                meters.buses.get(b as usize).copied(),
            ),
            Target::Master => (StripKind::Master, "master".into(), Some(meters.master)),
        };
        let m = m.unwrap_or(crate::engine::StripMeters {
            peak_db: [f32::NEG_INFINITY; 2],
            rms_db: [f32::NEG_INFINITY; 2],
            gate_gr_db: 0.0,
            comp_gr_db: 0.0,
        });
        strips.push((
            t,
            StripStatus {
                kind,
                name,
                fader_db: values[i],
                mute: value_of(t, Key::Mute).is_some_and(|v| v >= 0.5),
                solo: value_of(t, Key::Solo).is_some_and(|v| v >= 0.5),
                peak_db: m.peak_db,
                rms_db: m.rms_db,
                comp_gr_db: m.comp_gr_db,
            },
        ));
    }
    let order = |t: &Target| match t {
        Target::Channel(i) => (0, *i),
        Target::Bus(i) => (1, *i),
        Target::Master => (2, 0),
    };
    strips.sort_by_key(|(t, _)| order(t));
    StatusReport {
        strips: strips.into_iter().map(|(_, s)| s).collect(),
        limiter_gr_db: meters.limiter_gr_db,
        loudness: LoudnessStatus::from(&meters.loudness),
        engine,
        engine_attached,
        surfaces,
        scenes,
        parameters: tree.len(),
        uptime_s,
        transport: TransportStatus {
            playing: meters.playing,
            position_s: meters.position as f64 / f64::from(sample_rate.max(1)),
        },
        outboard: Default::default(),
        latency_samples: 0,
        inserts: Default::default(),
    }
}

/// `outboard ch/kick: 1176 | attack 3, input 24` (the unit, then every knob).
pub fn outboard_line(strip: &str, o: &crate::state::Outboard) -> String {
    let knobs: Vec<String> = o.settings.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let unit = if o.unit.is_empty() { "?" } else { &o.unit };
    if knobs.is_empty() {
        format!("outboard {strip}: {unit}")
    } else {
        format!("outboard {strip}: {unit} | {}", knobs.join(", "))
    }
}

fn db(v: f32) -> String {
    if v == f32::NEG_INFINITY || v < -150.0 {
        "-inf".into()
    } else {
        format!("{v:.1}")
    }
}

fn duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.engine;
        if self.engine_attached {
            writeln!(
                f,
                "engine: {} {} Hz, {} frames | DSP load {:.1}% (peak {:.1}%) | xruns {} | up {}",
                if e.backend.is_empty() {
                    "?"
                } else {
                    &e.backend
                },
                e.sample_rate,
                e.block,
                e.dsp_load,
                e.dsp_load_peak,
                e.xruns,
                duration(self.uptime_s)
            )?;
            if self.latency_samples > 0 {
                writeln!(
                    f,
                    "latency: {} samples added (limiter look-ahead and insert compensation)",
                    self.latency_samples
                )?;
            }
            writeln!(
                f,
                "transport: {} at {:.2} s",
                if self.transport.playing {
                    "playing"
                } else {
                    "stopped"
                },
                self.transport.position_s
            )?;
        } else {
            writeln!(
                f,
                "engine: not running (xruns so far {}) | up {}",
                e.xruns,
                duration(self.uptime_s)
            )?;
        }
        writeln!(f)?;
        let w = self
            .strips
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        writeln!(
            f,
            "{:<4} {:<w$} {:>7} {:>4} {:>4} {:>13} {:>13} {:>6}",
            "", "strip", "fader", "mute", "solo", "peak L/R", "rms L/R", "gr"
        )?;
        for s in &self.strips {
            let kind = match s.kind {
                StripKind::Channel => "ch",
                StripKind::Bus => "bus",
                StripKind::Master => "",
            };
            let flag = |b: bool, t: &'static str| if b { t } else { "-" };
            let (mute, solo) = match s.kind {
                StripKind::Master => ("", ""),
                StripKind::Bus => (flag(s.mute, "M"), ""),
                StripKind::Channel => (flag(s.mute, "M"), flag(s.solo, "S")),
            };
            writeln!(
                f,
                "{kind:<4} {:<w$} {:>7} {mute:>4} {solo:>4} {:>6} {:>6} {:>6} {:>6} {:>6}",
                s.name,
                db(s.fader_db),
                db(s.peak_db[0]),
                db(s.peak_db[1]),
                db(s.rms_db[0]),
                db(s.rms_db[1]),
                db(s.comp_gr_db),
            )?;
        }
        writeln!(
            f,
            "master limiter gain reduction {} dB",
            db(self.limiter_gr_db)
        )?;
        let l = &self.loudness;
        writeln!(
            f,
            "master loudness M {} S {} I {} LUFS, true peak {} dBTP",
            db(l.momentary_lufs),
            db(l.short_term_lufs),
            db(l.integrated_lufs),
            db(l.true_peak_dbtp)
        )?;
        for (strip, i) in &self.inserts {
            writeln!(f, "{}", i.line(strip))?;
        }
        for (strip, o) in &self.outboard {
            writeln!(f, "{}", outboard_line(strip, o))?;
        }
        writeln!(f)?;
        if self.surfaces.is_empty() {
            writeln!(f, "surfaces: none")?;
        } else {
            writeln!(f, "surfaces:")?;
            for s in &self.surfaces {
                if s.info.is_empty() {
                    writeln!(f, "  #{} {}", s.id, s.name)?;
                } else {
                    writeln!(f, "  #{} {} ({})", s.id, s.name, s.info)?;
                }
            }
        }
        if !self.scenes.is_empty() {
            writeln!(f, "scenes: {}", self.scenes.join(", "))?;
        }
        write!(f, "{} parameters", self.parameters)
    }
}

#[derive(Deserialize)]
struct Request {
    cmd: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default, with = "crate::state::jnum::opt")]
    value: Option<f32>,
    #[serde(default)]
    name: Option<String>,
    /// `learn`: seconds to wait for a control (default 30).
    #[serde(default)]
    timeout: Option<f32>,
    /// `measure-insert`: the strip.
    #[serde(default)]
    strip: Option<String>,
    /// `measure-insert`: a latency set by hand instead of measuring.
    #[serde(default)]
    set: Option<f64>,
}

#[derive(Serialize)]
struct GetReply {
    path: String,
    #[serde(with = "crate::state::jnum")]
    value: f32,
}

async fn answer(handle: &ConsoleHandle, line: &[u8]) -> String {
    let err = |m: String| serde_json::json!({ "error": m }).to_string();
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return err(format!("bad request: {e}")),
    };
    match (req.cmd.as_str(), req.path) {
        ("status", _) => serde_json::to_string(&handle.status().await)
            .unwrap_or_else(|e| err(format!("cannot encode the status: {e}"))),
        ("get", Some(path)) => match handle.get(&path).await {
            Ok(value) => serde_json::to_string(&GetReply { path, value })
                .unwrap_or_else(|e| err(e.to_string())),
            Err(e) => err(e.to_string()),
        },
        ("get", None) => err("get needs a path".into()),
        ("set", Some(path)) => {
            let Some(v) = req.value else {
                return err("set needs a value".into());
            };
            match handle.set(&path, v, crate::control::Origin::Internal).await {
                Ok(value) => serde_json::to_string(&GetReply { path, value })
                    .unwrap_or_else(|e| err(e.to_string())),
                Err(e) => err(e.to_string()),
            }
        }
        ("set", None) => err("set needs a path".into()),
        (cmd @ ("scene_save" | "scene_recall" | "scene_delete"), _) => {
            let Some(name) = req.name else {
                return err(format!("{cmd} needs a name"));
            };
            let r = match cmd {
                "scene_save" => handle.scene_save(&name).await,
                "scene_recall" => handle.scene_recall(&name).await,
                _ => handle.scene_delete(&name).await,
            };
            match r {
                Ok(()) => serde_json::json!({ "ok": true }).to_string(),
                Err(e) => err(e.to_string()),
            }
        }
        ("learn", Some(path)) => {
            let secs = req.timeout.unwrap_or(30.0);
            if !(secs > 0.0 && secs <= 3600.0) {
                return err("learn: timeout must be 0..3600 seconds".into());
            }
            match crate::midimap::learn::learn(&path, Duration::from_secs_f32(secs)).await {
                Ok(l) => {
                    serde_json::json!({ "ok": true, "map": l.map, "entry": l.entry }).to_string()
                }
                Err(e) => err(e),
            }
        }
        ("learn", None) => err("learn needs a path".into()),
        ("measure-insert", _) => {
            let Some(strip) = req.strip else {
                return err("measure-insert needs a strip".into());
            };
            let r = match req.set {
                Some(v) => handle.set_insert_latency_manual(&strip, v).await,
                None => handle.measure_insert(&strip).await,
            };
            match r {
                Ok(m) => serde_json::to_string(&m).unwrap_or_else(|e| err(e.to_string())),
                Err(e) => err(e.to_string()),
            }
        }
        (other, _) => err(format!("unknown command {other:?}")),
    }
}

async fn serve_client(
    handle: ConsoleHandle,
    stream: tokio::net::UnixStream,
    shutdown: CancellationToken,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = tokio::io::BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut rd).take(MAX_REQUEST);
        let n = tokio::select! {
            () = shutdown.cancelled() => return,
            r = limited.read_until(b'\n', &mut line) => match r {
                Ok(n) => n,
                Err(_) => return,
            },
        };
        if n == 0 {
            return;
        }
        if !line.ends_with(b"\n") && n as u64 >= MAX_REQUEST {
            let _ = wr.write_all(b"{\"error\":\"request too long\"}\n").await;
            return;
        }
        let mut reply = answer(&handle, line.trim_ascii()).await;
        reply.push('\n');
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Serve the status socket at `path` until `shutdown`; removes a stale socket first and the
/// socket file when done.
///
/// # Errors
/// Another daemon already answers at `path`, or the socket cannot be bound.
pub async fn serve_status(
    handle: ConsoleHandle,
    path: &Path,
    shutdown: CancellationToken,
) -> Result<(), StatusError> {
    let listener = bind_status(path).await?;
    serve_status_on(handle, listener, path, shutdown).await;
    Ok(())
}

/// Bind the status socket at `path` (removing a stale one), so that it answers as soon as
/// [`serve_status_on`] runs: the daemon binds before it reports READY.
///
/// # Errors
/// Another daemon already answers at `path`, or the socket cannot be bound.
pub async fn bind_status(path: &Path) -> Result<tokio::net::UnixListener, StatusError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(StatusError::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| StatusError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(listener)
}

/// Serve a socket from [`bind_status`] until `shutdown`, then remove the socket file.
pub async fn serve_status_on(
    handle: ConsoleHandle,
    listener: tokio::net::UnixListener,
    path: &Path,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(handle.clone(), stream, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("status socket {}: {e}", path.display());
                    // Do not spin on a persistent error (e.g. out of file descriptors).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Ask the daemon whose status socket is `path` for its status (blocking, 2 s timeout).
///
/// # Errors
/// Nobody answers, the connection fails, or the answer is not a status report.
pub fn query_status(path: &Path) -> Result<StatusReport, StatusError> {
    let mut s =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| StatusError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    let io = |source| StatusError::Io {
        path: path.to_path_buf(),
        source,
    };
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    s.write_all(b"{\"cmd\":\"status\"}\n").map_err(io)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(io)?;
    if let Ok(r) = serde_json::from_str::<StatusReport>(&line) {
        return Ok(r);
    }
    match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(v) if v["error"].is_string() => Err(StatusError::Daemon(
            v["error"].as_str().unwrap_or_default().to_string(),
        )),
        _ => Err(StatusError::Protocol(
            line.trim().chars().take(200).collect(),
        )),
    }
}
