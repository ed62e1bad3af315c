//! Hardware inserts (SPEC §3 `insert:`, issue 8): outboard gear patched into a strip through
//! interface outputs and inputs (or JACK ports). This folder has the round-trip latency
//! measurement (`faderbridge measure-insert`) and where its results are kept; the processor
//! in the strip is [`crate::engine::insert`], given these latencies by the daemon's engine
//! factory.
//!
//! - [`measure`]: the probe signal and its analysis (pure, no JACK).
//! - [`cli`]: the `measure-insert` command (find the insert, measure or `--set`, store).
//! - [`jack`]: plays the probe through the insert on a JACK server and records the return.
//!   The running daemon uses the same run for `/STRIP/insert/measure` and the status socket's
//!   `measure-insert` (the service's `measure` module: the insert held bypassed with its send
//!   silent meanwhile, the result stored through the console and applied).
//! - this file: the stored results, keyed by strip, backend, sample rate and block size
//!   ([`InsertMeasurement`] in [`SavedState::insert_measurements`]), and [`latency_for`].

pub mod cli;
pub mod jack;
pub mod measure;

use serde::{Deserialize, Serialize};

use crate::session::model::{Insert, InsertLatency};
use crate::state::SavedState;

/// One stored insert latency: measured or set by hand, valid for one backend, sample rate and
/// block size (a change of any of them changes the round trip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertMeasurement {
    /// [`backend_key`]: `jack` or `jack:SERVER`.
    pub backend: String,
    /// Sample rate (Hz).
    pub rate: u32,
    /// Block (JACK period) size in frames.
    pub block: u32,
    /// Round-trip latency in samples (sub-sample).
    pub samples: f64,
    /// Standard error of `samples` (0 for a manual value).
    pub error: f64,
    /// The return comes back inverted.
    pub inverted: bool,
    /// Set by hand (`measure-insert --set`) rather than measured.
    pub manual: bool,
}

/// Stored measurements by strip key (the channel's name), as in
/// [`SavedState::insert_measurements`].
pub type Measurements = std::collections::BTreeMap<String, Vec<InsertMeasurement>>;

/// The backend part of the key: `jack` for the default server, `jack:NAME` for a named one.
pub fn backend_key(backend: &str, server: Option<&str>) -> String {
    match server {
        Some(s) if !s.is_empty() => format!("{backend}:{s}"),
        _ => backend.to_string(),
    }
}

/// Store `m` for `strip`, replacing what was stored for the same backend, rate and block
/// (a manual value replaces a measurement and the other way round: the latest wins).
pub fn record(state: &mut SavedState, strip: &str, m: InsertMeasurement) {
    record_into(&mut state.insert_measurements, strip, m);
}

/// [`record`] into the measurements map itself (the console keeps one live).
pub fn record_into(map: &mut Measurements, strip: &str, m: InsertMeasurement) {
    let list = map.entry(strip.to_string()).or_default();
    list.retain(|e| !(e.backend == m.backend && e.rate == m.rate && e.block == m.block));
    list.push(m);
    list.sort_by(|a, b| (&a.backend, a.rate, a.block).cmp(&(&b.backend, b.rate, b.block)));
}

/// The stored entry for `strip` on `backend` at `rate` / `block`, if any.
pub fn stored<'a>(
    state: &'a SavedState,
    strip: &str,
    backend: &str,
    rate: u32,
    block: u32,
) -> Option<&'a InsertMeasurement> {
    stored_in(&state.insert_measurements, strip, backend, rate, block)
}

/// [`stored`] in the measurements map itself.
pub fn stored_in<'a>(
    map: &'a Measurements,
    strip: &str,
    backend: &str,
    rate: u32,
    block: u32,
) -> Option<&'a InsertMeasurement> {
    map.get(strip)?
        .iter()
        .find(|e| e.backend == backend && e.rate == rate && e.block == block)
}

/// The round-trip latency (samples) stored for `strip` on `backend` at `rate` / `block`,
/// measured or manual; `None` when there is none for exactly these (measure again).
pub fn latency_for(
    state: &SavedState,
    strip: &str,
    backend: &str,
    rate: u32,
    block: u32,
) -> Option<f64> {
    stored(state, strip, backend, rate, block).map(|e| e.samples)
}

/// The latency the engine should compensate for a strip's insert: the session's fixed value
/// (`latency: N`) if it has one, else the one stored in `stored` (as [`latency_for`]).
pub fn effective_latency(
    insert: &Insert,
    stored: &Measurements,
    strip: &str,
    backend: &str,
    rate: u32,
    block: u32,
) -> Option<f64> {
    match insert.latency {
        InsertLatency::Samples(n) => Some(f64::from(n)),
        InsertLatency::Auto => stored_in(stored, strip, backend, rate, block).map(|e| e.samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::model::PortRef;

    fn entry(rate: u32, block: u32, samples: f64, manual: bool) -> InsertMeasurement {
        InsertMeasurement {
            backend: "jack".into(),
            rate,
            block,
            samples,
            error: 0.01,
            inverted: false,
            manual,
        }
    }

    #[test]
    fn keyed_by_backend_rate_and_block() {
        let mut s = SavedState::default();
        record(&mut s, "kick", entry(48000, 256, 493.0, false));
        record(&mut s, "kick", entry(48000, 128, 365.0, false));
        assert_eq!(latency_for(&s, "kick", "jack", 48000, 256), Some(493.0));
        assert_eq!(latency_for(&s, "kick", "jack", 48000, 128), Some(365.0));
        assert_eq!(latency_for(&s, "kick", "jack", 44100, 256), None);
        assert_eq!(latency_for(&s, "kick", "jack:other", 48000, 256), None);
        assert_eq!(latency_for(&s, "snare", "jack", 48000, 256), None);
        // A manual value replaces the measurement for its key only.
        record(&mut s, "kick", entry(48000, 256, 500.0, true));
        assert_eq!(latency_for(&s, "kick", "jack", 48000, 256), Some(500.0));
        assert!(
            stored(&s, "kick", "jack", 48000, 256)
                .expect("stored")
                .manual
        );
        assert_eq!(s.insert_measurements["kick"].len(), 2);
        // A fixed latency in the session wins.
        let ins = Insert {
            send: PortRef::Number(9),
            ret: PortRef::Number(9),
            latency: InsertLatency::Samples(77),
            position: Default::default(),
        };
        assert_eq!(
            effective_latency(&ins, &s.insert_measurements, "kick", "jack", 48000, 256),
            Some(77.0)
        );
        let auto = Insert {
            latency: InsertLatency::Auto,
            ..ins
        };
        assert_eq!(
            effective_latency(&auto, &s.insert_measurements, "kick", "jack", 48000, 256),
            Some(500.0)
        );
    }

    /// The daemon rewrites the state file on every change; the measurements `measure-insert`
    /// stored must survive that.
    #[tokio::test]
    async fn the_console_keeps_stored_measurements_across_its_saves() {
        use crate::control::{Console, Origin};
        use crate::state::StateDir;
        use crate::state::tests::TestDir;
        let d = TestDir::new("insert-console");
        let sd = StateDir::open(&d.0).expect("open");
        cli::store(&d.0, "kick", entry(48000, 256, 493.25, false)).expect("store");
        let s = crate::session::parse_str(
            "version: 1\nchannels: [{ name: kick, source: { input: 1 } }]\n",
            std::path::Path::new("/nonexistent/t.yaml"),
        )
        .expect("session");
        let (c, h) = Console::new(crate::params::ParamTree::build(&s), Some(sd.clone()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(c.run(stop.clone()));
        h.set("ch/kick/fader_db", -7.0, Origin::Internal)
            .await
            .expect("set");
        stop.cancel();
        task.await.expect("task");
        let saved = sd.load().expect("load").expect("saved");
        assert_eq!(saved.params["ch/kick/fader_db"], -7.0, "the console saved");
        assert_eq!(
            latency_for(&saved, "kick", "jack", 48000, 256),
            Some(493.25)
        );
    }

    #[test]
    fn backend_keys() {
        assert_eq!(backend_key("jack", None), "jack");
        assert_eq!(backend_key("jack", Some("")), "jack");
        assert_eq!(backend_key("jack", Some("studio")), "jack:studio");
    }
}
