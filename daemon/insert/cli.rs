//! `faderbridge measure-insert SESSION STRIP`: measure (or `--set`) the latency of a hardware
//! insert (a channel's, a bus's or the master's) on JACK and store it in the state directory,
//! keyed by the channel's name, `bus/NAME` or `master`. A stereo insert is measured through
//! its first (left) send and return.
//!
//! When a daemon answers on the state directory's status socket, the measurement is asked of
//! it (`{"cmd":"measure-insert","strip":...}`, with `"set":SAMPLES` for `--set`): the daemon
//! measures on its own JACK server while it plays (or takes the value), stores the result in
//! its live state and applies it (`crate::service`'s `measure` module). Otherwise the command
//! measures itself, as its own JACK client, and writes the state file.

use std::path::{Path, PathBuf};

use super::jack::{self as run, RunError};
use super::{InsertMeasurement, backend_key, record};
use crate::session::model::{Insert, InsertLatency, Session};
use crate::state::{STATE_VERSION, SavedState, StateDir, StateError};

/// What `measure-insert` was asked.
#[derive(Debug, Clone)]
pub struct MeasureInsertOptions {
    pub session: PathBuf,
    pub strip: String,
    /// JACK server name (`None`: the default server).
    pub jack_server: Option<String>,
    /// State directory (`None`: [`StateDir::default_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Store this many samples by hand instead of measuring.
    pub set: Option<f64>,
}

/// Why `measure-insert` failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum MeasureInsertError {
    #[error("{0}")]
    Session(#[from] crate::session::SessionError),
    #[error("{0}")]
    Strip(String),
    #[error("{strip}: {source}")]
    Run { strip: String, source: RunError },
    #[error("{0}")]
    State(#[from] StateError),
    /// The running daemon refused or failed the measurement.
    #[error("the daemon says: {0}")]
    Daemon(String),
    /// The daemon's socket answered, but not as expected.
    #[error("status socket {path}: {why}")]
    Socket { path: PathBuf, why: String },
}

impl MeasureInsertError {
    /// Bad input or a refused measurement (exit 2), as opposed to a runtime failure (no JACK
    /// server, the state directory unwritable: exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            MeasureInsertError::Session(_) | MeasureInsertError::Strip(_) => true,
            MeasureInsertError::Run { source, .. } => !matches!(
                source,
                RunError::Server { .. }
                    | RunError::Jack(_)
                    | RunError::Stalled
                    | RunError::Cancelled
            ),
            MeasureInsertError::State(_) | MeasureInsertError::Socket { .. } => false,
            MeasureInsertError::Daemon(_) => true,
        }
    }
}

/// The strip's insert and the key its latency is stored under (the channel's name,
/// `bus/NAME`, `master`), or why there is none. `strip` is a channel's name or 1-based
/// position, `bus/NAME` (or a bus's bare name when no channel has it) or `master`.
///
/// # Errors
/// An unknown strip, a strip without `insert:`.
pub fn find_insert<'a>(s: &'a Session, strip: &str) -> Result<(String, &'a Insert), String> {
    let none = |what: String| {
        format!(
            "{what} has no insert (add `insert: {{ send: N, return: M }}` to it in the session)"
        )
    };
    if strip == "master" {
        return s
            .master
            .insert
            .as_ref()
            .map(|i| ("master".to_string(), i))
            .ok_or_else(|| none("the master".into()));
    }
    let by_pos = strip
        .parse::<usize>()
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| s.channels.get(i));
    let ch = s.channels.iter().find(|c| c.name == strip).or(by_pos);
    if let Some(c) = ch {
        return c
            .insert
            .as_ref()
            .map(|i| (c.name.clone(), i))
            .ok_or_else(|| none(format!("channel {}", c.name)));
    }
    let bus_name = strip.strip_prefix("bus/").unwrap_or(strip);
    if let Some(b) = s.buses.iter().find(|b| b.name == bus_name) {
        return b
            .insert
            .as_ref()
            .map(|i| (format!("bus/{}", b.name), i))
            .ok_or_else(|| none(format!("bus {}", b.name)));
    }
    let names: Vec<String> = s
        .channels
        .iter()
        .map(|c| c.name.clone())
        .chain(s.buses.iter().map(|b| format!("bus/{}", b.name)))
        .chain(std::iter::once("master".to_string()))
        .collect();
    Err(format!(
        "no strip named {strip}; the session has: {}",
        names.join(", ")
    ))
}

/// Run `measure-insert`; the report line(s) to print.
///
/// # Errors
/// See [`MeasureInsertError`]; on any error nothing is stored.
pub fn measure_insert(o: &MeasureInsertOptions) -> Result<String, MeasureInsertError> {
    let session = crate::session::load(&o.session)?;
    let (name, insert) = find_insert(&session, &o.strip).map_err(MeasureInsertError::Strip)?;
    let server = o.jack_server.as_deref();
    let fail = |source| MeasureInsertError::Run {
        strip: name.clone(),
        source,
    };
    let dir = o.state_dir.clone().unwrap_or_else(StateDir::default_dir);
    if let Some(v) = o.set
        && !(v.is_finite() && (0.0..=10_000_000.0).contains(&v))
    {
        return Err(MeasureInsertError::Strip(format!(
            "--set {v}: expected a latency in samples, 0 or more"
        )));
    }
    if let Some(r) = measure_on_daemon(&dir.join("status.sock"), &name, o.set) {
        return r;
    }
    let (entry, report) = match o.set {
        Some(v) => {
            let (rate, block) = run::server_format(server).map_err(fail)?;
            let e = InsertMeasurement {
                backend: backend_key("jack", server),
                rate,
                block,
                samples: v,
                error: 0.0,
                inverted: false,
                manual: true,
            };
            let line = format!(
                "{name}: {v:.2} samples ({:.3} ms) at {rate} Hz / {block} frames, set by hand",
                ms(v, rate)
            );
            (e, line)
        }
        None => {
            let r = run::measure(&insert.send, &insert.ret, server).map_err(fail)?;
            (
                entry_of(&r, backend_key("jack", server)),
                report_of(&name, &r),
            )
        }
    };
    store(&dir, &name, entry)?;
    let mut report = report;
    report.push_str(&fixed_note(insert));
    Ok(report)
}

/// The stored entry for a measurement run on `backend` ([`backend_key`]).
pub fn entry_of(r: &run::RunResult, backend: String) -> InsertMeasurement {
    let m = r.measurement;
    InsertMeasurement {
        backend,
        rate: r.rate,
        block: r.block,
        samples: m.samples,
        error: m.error,
        inverted: m.inverted,
        manual: false,
    }
}

/// The report of a measurement of `name`'s insert: `kick: 493.02 samples (10.271 ms) at
/// 48000 Hz / 256 frames, error 0.01, polarity normal`, then the return level and SNR.
pub fn report_of(name: &str, r: &run::RunResult) -> String {
    let m = r.measurement;
    format!(
        "{name}: {:.2} samples ({:.3} ms) at {} Hz / {} frames, error {:.2}, polarity {}\n  \
         return level {:+.1} dB, signal-to-noise {:.1} dB; JACK's port latencies add up to {} samples",
        m.samples,
        ms(m.samples, r.rate),
        r.rate,
        r.block,
        m.error,
        if m.inverted { "inverted" } else { "normal" },
        m.level_db,
        m.snr_db,
        r.jack_reported
    )
}

/// A note for the report when the session fixes the insert's latency (empty otherwise).
pub fn fixed_note(insert: &Insert) -> String {
    match insert.latency {
        InsertLatency::Samples(n) => format!(
            "\n  note: the session fixes this insert's latency at {n} samples; the stored value is used with `latency: auto`"
        ),
        InsertLatency::Auto => String::new(),
    }
}

/// How long the command waits for the daemon's answer: every attempt of
/// [`run::measure`] with its budget.
const DAEMON_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Ask the daemon answering at `sock` to measure `strip` (or to store `set` by hand): its
/// report, or why it refused; `None` when no daemon answers there (measure here then).
pub fn measure_on_daemon(
    sock: &Path,
    strip: &str,
    set: Option<f64>,
) -> Option<Result<String, MeasureInsertError>> {
    use std::io::{BufRead, BufReader, Write};
    let s = std::os::unix::net::UnixStream::connect(sock).ok()?;
    let fail = |why: String| MeasureInsertError::Socket {
        path: sock.to_path_buf(),
        why,
    };
    let ask = || -> Result<String, MeasureInsertError> {
        let mut w = &s;
        s.set_read_timeout(Some(DAEMON_WAIT))
            .map_err(|e| fail(e.to_string()))?;
        let mut req = serde_json::json!({ "cmd": "measure-insert", "strip": strip });
        if let Some(v) = set {
            req["set"] = v.into();
        }
        writeln!(w, "{req}").map_err(|e| fail(e.to_string()))?;
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .map_err(|e| fail(format!("no answer: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| fail(format!("bad answer {:?}: {e}", line.trim())))?;
        if let Some(e) = v.get("error") {
            return Err(MeasureInsertError::Daemon(
                e.as_str().unwrap_or_default().to_string(),
            ));
        }
        let report = v["report"]
            .as_str()
            .ok_or_else(|| fail(format!("bad answer {:?}", line.trim())))?;
        Ok(format!(
            "{report}\n  {} by the running daemon (status socket {}): stored and applied, engine/latency_samples {}",
            if set.is_some() { "set" } else { "measured" },
            sock.display(),
            v["latency_samples"]
        ))
    };
    Some(ask())
}

fn ms(samples: f64, rate: u32) -> f64 {
    samples * 1000.0 / f64::from(rate.max(1))
}

/// Add `entry` for `strip` to the saved state in `dir` (atomically).
///
/// # Errors
/// The directory or file cannot be read or written.
pub fn store(dir: &Path, strip: &str, entry: InsertMeasurement) -> Result<(), StateError> {
    let sd = StateDir::open(dir)?;
    let mut s = sd.load()?.unwrap_or(SavedState {
        version: STATE_VERSION,
        ..Default::default()
    });
    record(&mut s, strip, entry);
    sd.save(&s)
}
