//! Live insert latency measurement (issue 8 point 2): `/STRIP/insert/measure` over OSC,
//! `{"cmd":"measure-insert","strip":"kick"}` on the status socket (and so
//! `faderbridge measure-insert` while the daemon runs) end here, through
//! [`ConsoleHandle::measure_insert`].
//!
//! # How
//! The probe is played by a second JACK client of this process on the daemon's own server,
//! exactly as `faderbridge measure-insert` does with the daemon stopped
//! ([`crate::insert::jack::measure`]): its `send` is connected to the port the insert sends
//! to (the gear's input) and the port the insert returns from (the gear's output) to its
//! `return`. The same code and the same connections give the same number as the command,
//! including the period JACK adds when the gear is itself a JACK client. Playing the probe
//! from the engine's own ports instead would have put probe generation and recording into
//! the audio thread's engine for a feature used once per patch; a client of its own keeps
//! the engine unchanged apart from the hold below.
//!
//! While it measures, the engine keeps playing and keeps its timing: the console holds the
//! insert ([`ConsoleHandle::hold_insert`]): bypassed (its latency delay, crossfaded as a
//! bypass is) and its send silenced, so only the probe reaches the gear (JACK sums the
//! engine's send and the probe at the gear's input) and the probe's return never reaches the
//! mix. The insert's parameters are not touched: nothing is announced or saved. The hold is
//! released when the measurement ends, however it ends.
//!
//! A result is stored in the console's live state ([`ConsoleHandle::record_insert_measurement`],
//! keyed by backend, rate and period like the command's, so the console's next save keeps
//! it), then an engine with the new latency is built and swapped in
//! ([`crate::audio::RunningAudio::swap_engine`]): `engine/latency_samples` follows. A refused
//! measurement stores nothing and the running engine stays.
//!
//! One measurement runs at a time; a request while one runs is refused at once. Stopping the
//! daemon cancels a running one (its JACK client goes within about 20 ms).
//!
//! A value set by hand (`measure-insert --set` while the daemon runs, the socket's
//! `"set":SAMPLES`) takes the same way without the measurement: stored (`manual`) for the
//! running backend, rate and period, and applied. On any backend: on `cpal` and `null`,
//! where nothing can be measured, it is the only way to a delay other than the session's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Live, build_engine};
use crate::audio::RunningAudio;
use crate::control::ConsoleHandle;
use crate::control::{ENGINE_LATENCY, InsertMeasureRequest, InsertMeasured};
use crate::insert::{cli, jack as run};

/// Requests waiting for the service loop (it answers each at once).
const QUEUE: usize = 16;
/// Time for a hold to take effect beyond the engine's queue (two periods are added): the
/// bypass and send glides ([`crate::engine::GAIN_GLIDE_MS`]) and some margin. Not critical:
/// the probe's first period (0.68 s at 48 kHz) only settles the gear and is not analysed.
const HOLD_SETTLE: Duration = Duration::from_millis(40);

#[derive(Clone)]
struct Measurer {
    live: Arc<Mutex<Live>>,
    handle: ConsoleHandle,
    audio: Arc<RunningAudio>,
    server: Option<String>,
    /// The strip being measured.
    busy: Arc<Mutex<Option<String>>>,
    /// The daemon stops: a running measurement is cancelled.
    shutdown: CancellationToken,
}

/// Serve [`ConsoleHandle::measure_insert`] until `shutdown`.
pub(super) fn start(
    live: Arc<Mutex<Live>>,
    handle: ConsoleHandle,
    audio: Arc<RunningAudio>,
    server: Option<String>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<InsertMeasureRequest>(QUEUE);
    handle.set_insert_measurer(tx);
    let m = Measurer {
        live,
        handle,
        audio,
        server,
        busy: Arc::new(Mutex::new(None)),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(async move {
        loop {
            let req = tokio::select! {
                () = shutdown.cancelled() => break,
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let running = {
                let mut busy = m.busy();
                let running = busy.clone();
                if running.is_none() {
                    *busy = Some(req.strip.clone());
                }
                running
            };
            if let Some(other) = running {
                let _ = req.reply.send(Err(format!(
                    "{}: a measurement of {other} is running (one at a time); try again when it has finished",
                    req.strip
                )));
                continue;
            }
            let m = m.clone();
            tokio::spawn(async move {
                let r = match req.set {
                    Some(v) => m.set_manual(&req.strip, v).await,
                    None => m.measure(&req.strip).await,
                };
                // Free before answering: the client may ask again at once.
                *m.busy() = None;
                if let Err(e) = &r {
                    tracing::warn!("insert measurement refused: {e}");
                }
                let _ = req.reply.send(r);
            });
        }
    })
}

impl Measurer {
    fn busy(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Measure the insert of `strip` (canonical path), store and apply the result.
    async fn measure(&self, strip: &str) -> Result<InsertMeasured, String> {
        let stats = self.audio.stats();
        if stats.backend != "jack" {
            return Err(format!(
                "{strip}: measuring an insert needs the JACK backend; this daemon runs on {} (no outboard gear)",
                stats.backend
            ));
        }
        let (key, insert, backend) = self.insert_of(strip)?;
        self.handle
            .hold_insert(strip, true)
            .map_err(|e| e.to_string())?;
        let period = Duration::from_secs_f64(
            f64::from(stats.block.max(1) as u32) / f64::from(stats.sample_rate.max(1)),
        );
        tokio::time::sleep(HOLD_SETTLE + 2 * period).await;
        let server = self.server.clone();
        let ins = insert.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = {
            let (cancel, token) = (cancel.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                token.cancelled().await;
                cancel.store(true, Ordering::Relaxed);
            })
        };
        let r = tokio::task::spawn_blocking(move || {
            run::measure_until(&ins.send, &ins.ret, server.as_deref(), &cancel)
        })
        .await;
        stop.abort();
        let released = self.handle.hold_insert(strip, false);
        let r = match r {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("{key}: {e}")),
            Err(e) => return Err(format!("{key}: the measurement failed: {e}")),
        };
        if let Err(e) = released {
            tracing::warn!("{strip}: releasing the insert after measuring: {e}");
        }
        let entry = cli::entry_of(&r, backend);
        let mut report = cli::report_of(&key, &r);
        report.push_str(&cli::fixed_note(&insert));
        let (level_db, snr_db) = (r.measurement.level_db, r.measurement.snr_db);
        self.store_and_apply(strip, key, entry, report, level_db, snr_db)
            .await
    }

    /// Store `samples` for the insert of `strip` by hand, for the running backend, rate and
    /// period, and apply it.
    async fn set_manual(&self, strip: &str, samples: f64) -> Result<InsertMeasured, String> {
        let stats = self.audio.stats();
        let (key, insert, backend) = self.insert_of(strip)?;
        let (rate, block) = (stats.sample_rate, stats.block as u32);
        let entry = crate::insert::InsertMeasurement {
            backend,
            rate,
            block,
            samples,
            error: 0.0,
            inverted: false,
            manual: true,
        };
        let mut report = format!(
            "{key}: {samples:.2} samples ({:.3} ms) at {rate} Hz / {block} frames, set by hand",
            samples * 1000.0 / f64::from(rate.max(1))
        );
        report.push_str(&cli::fixed_note(&insert));
        self.store_and_apply(strip, key, entry, report, 0.0, 0.0)
            .await
    }

    /// The strip's insert in the running session, the key of its measurements and the
    /// backend part of their key.
    fn insert_of(
        &self,
        strip: &str,
    ) -> Result<(String, crate::session::model::Insert, String), String> {
        let live = self.live.lock().map_err(|_| "session lock poisoned")?;
        // `ch/kick` → `kick`; `bus/drums` and `master` as they are (find_insert's keys).
        let name = strip.strip_prefix("ch/").unwrap_or(strip);
        let (key, insert) = cli::find_insert(&live.session, name)?;
        Ok((key, insert.clone(), live.insert_backend.clone()))
    }

    /// Store `entry` in the console's live state and swap in an engine built with it.
    async fn store_and_apply(
        &self,
        strip: &str,
        key: String,
        entry: crate::insert::InsertMeasurement,
        mut report: String,
        level_db: f64,
        snr_db: f64,
    ) -> Result<InsertMeasured, String> {
        self.handle.record_insert_measurement(&key, entry.clone());
        // Apply: an engine built with the new latency, swapped in where the running one is.
        let (live, handle, audio) = (self.live.clone(), self.handle.clone(), self.audio.clone());
        let built = tokio::task::spawn_blocking(move || {
            let s = audio.stats();
            let position = handle.meters().position;
            let e = build_engine(&live, &handle, s.sample_rate, s.block.max(1), position)?;
            audio.swap_engine(e);
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        if let Err(e) = built {
            // Stored all the same: the next engine built (a reload, a restart) uses it.
            tracing::error!("{strip}: measured, but the engine with the new latency: {e}");
            report.push_str(&format!(
                "\n  stored, but not applied yet (the engine could not be rebuilt: {e})"
            ));
        }
        let latency_samples = self.handle.get_sync(ENGINE_LATENCY).unwrap_or(0.0) as u32;
        tracing::info!("{}", report.replace('\n', ";"));
        Ok(InsertMeasured {
            strip: strip.to_string(),
            key,
            measurement: entry,
            level_db,
            snr_db,
            latency_samples,
            report,
        })
    }
}
