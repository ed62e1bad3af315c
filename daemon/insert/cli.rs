//! `faderbridge measure-insert SESSION STRIP`: measure (or `--set`) a channel's hardware
//! insert latency on JACK and store it in the state directory.

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
}

impl MeasureInsertError {
    /// Bad input or a refused measurement (exit 2), as opposed to a runtime failure (no JACK
    /// server, the state directory unwritable: exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            MeasureInsertError::Session(_) | MeasureInsertError::Strip(_) => true,
            MeasureInsertError::Run { source, .. } => !matches!(
                source,
                RunError::Server { .. } | RunError::Jack(_) | RunError::Stalled
            ),
            MeasureInsertError::State(_) => false,
        }
    }
}

/// The channel's insert, or why there is none.
///
/// # Errors
/// An unknown strip, a bus or the master (inserts are only in channel strips so far), a
/// channel without `insert:`.
pub fn find_insert<'a>(s: &'a Session, strip: &str) -> Result<&'a Insert, String> {
    let by_pos = strip
        .parse::<usize>()
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| s.channels.get(i));
    let ch = s.channels.iter().find(|c| c.name == strip).or(by_pos);
    match ch {
        Some(c) => c.insert.as_ref().ok_or_else(|| {
            format!(
                "channel {} has no insert (add `insert: {{ send: N, return: M }}` to it in the session)",
                c.name
            )
        }),
        None if strip == "master" || s.buses.iter().any(|b| b.name == strip) => Err(format!(
            "{strip} is {}: the session model has hardware inserts on channels only (SPEC §3), so there is nothing to measure",
            if strip == "master" { "the master" } else { "a bus" }
        )),
        None => Err(format!(
            "no channel named {strip}; the session has: {}",
            s.channels
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Run `measure-insert`; the report line(s) to print.
///
/// # Errors
/// See [`MeasureInsertError`]; on any error nothing is stored.
pub fn measure_insert(o: &MeasureInsertOptions) -> Result<String, MeasureInsertError> {
    let session = crate::session::load(&o.session)?;
    let insert = find_insert(&session, &o.strip).map_err(MeasureInsertError::Strip)?;
    let name = session
        .channels
        .iter()
        .find(|c| c.insert.as_ref().is_some_and(|i| std::ptr::eq(i, insert)))
        .map_or(o.strip.clone(), |c| c.name.clone());
    let server = o.jack_server.as_deref();
    let fail = |source| MeasureInsertError::Run {
        strip: name.clone(),
        source,
    };
    let (entry, report) = match o.set {
        Some(v) => {
            if !(v.is_finite() && (0.0..=10_000_000.0).contains(&v)) {
                return Err(MeasureInsertError::Strip(format!(
                    "--set {v}: expected a latency in samples, 0 or more"
                )));
            }
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
            let m = r.measurement;
            let e = InsertMeasurement {
                backend: backend_key("jack", server),
                rate: r.rate,
                block: r.block,
                samples: m.samples,
                error: m.error,
                inverted: m.inverted,
                manual: false,
            };
            let line = format!(
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
            );
            (e, line)
        }
    };
    let dir = o.state_dir.clone().unwrap_or_else(StateDir::default_dir);
    store(&dir, &name, entry)?;
    let mut report = report;
    if let InsertLatency::Samples(n) = insert.latency {
        report.push_str(&format!(
            "\n  note: the session fixes this insert's latency at {n} samples; the stored value is used with `latency: auto`"
        ));
    }
    Ok(report)
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
