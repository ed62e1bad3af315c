//! Plays the probe ([`super::measure::Probe`]) through a hardware insert on a JACK server and
//! records the return, for `faderbridge measure-insert`. Opens its own client
//! (`faderbridge-measure`, ports `send` and `return`), connects `send` to the insert's send
//! and the insert's return to `return`, starts playing once both are connected, and records
//! the return sample by sample in the same cycles as it plays (so index `i` of the recording
//! lines up with sample `i` of the probe, and the measured delay is the whole round trip as
//! the engine will see it: interface buffers and converters, or for a JACK client as gear the
//! period JACK adds on a feedback path).
//!
//! The process callback only copies into a buffer allocated (and touched) before activation.
//! A run with an xrun, or with the period or rate changed under it, is thrown away and
//! repeated (up to [`ATTEMPTS`] times): after an xrun a real interface may come back with its
//! capture and playback streams at another offset, so such a run could look consistent and
//! still be wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ::jack::{
    AudioIn, AudioOut, Client, Control, Frames, LatencyType, NotificationHandler, Port, PortFlags,
    ProcessHandler, ProcessScope,
};

use super::measure::{MeasureError, Measurement, Probe};
use crate::audio::jack::{client_lock, open_client};
use crate::session::model::PortRef;

/// Runs tried before giving up on xruns.
pub const ATTEMPTS: usize = 5;
/// The measuring client's name.
pub const CLIENT_NAME: &str = "faderbridge-measure";

/// Why a measurement run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No JACK server (runtime: a retry once it runs helps).
    #[error("cannot open a JACK client{}: {why}", server_text(.server))]
    Server { server: Option<String>, why: String },
    /// The insert names a port that is not there (or of the wrong direction).
    #[error("{0}")]
    Port(String),
    /// JACK refused something while running.
    #[error("JACK: {0}")]
    Jack(String),
    /// The analysis refused the recording.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// Every attempt had an xrun or a period/rate change.
    #[error(
        "every one of {ATTEMPTS} attempts was disturbed (xruns or a period/rate change); nothing measured"
    )]
    Disturbed,
    /// The process callback stopped running.
    #[error("the JACK server stopped processing during the measurement")]
    Stalled,
    /// Stopped from outside ([`measure_until`]: the daemon is shutting down).
    #[error("the measurement was cancelled")]
    Cancelled,
}

fn server_text(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" on server \"{s}\""))
        .unwrap_or_default()
}

/// A finished measurement and the server's format it holds for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunResult {
    pub rate: u32,
    /// Period (buffer size) in frames.
    pub block: u32,
    pub measurement: Measurement,
    /// What JACK itself reports for the two ports' latencies (playback latency of the send
    /// target plus capture latency of the return source, maxima): for comparison only.
    pub jack_reported: u32,
}

/// The server's sample rate and period (for storing a manual value).
///
/// # Errors
/// No server answers.
pub fn server_format(server: Option<&str>) -> Result<(u32, u32), RunError> {
    let c = open(server)?;
    let f = (c.sample_rate(), c.buffer_size());
    let _g = client_lock();
    drop(c);
    Ok(f)
}

fn open(server: Option<&str>) -> Result<Client, RunError> {
    open_client(CLIENT_NAME, server).map_err(|e| RunError::Server {
        server: server.map(str::to_string),
        why: e.to_string(),
    })
}

/// The JACK port a session reference names: a name as is; interface number `n` as the
/// `n`-th physical playback port (`capture == false`, a send) or capture port (a return).
///
/// # Errors
/// The port does not exist, has the wrong direction, or there are fewer physical ports.
pub fn resolve(client: &Client, r: &PortRef, capture: bool) -> Result<String, RunError> {
    let what = if capture { "return" } else { "send" };
    // Our `send` output feeds a port that takes input, and the reverse for the return.
    let dir = if capture {
        PortFlags::IS_OUTPUT
    } else {
        PortFlags::IS_INPUT
    };
    match r {
        PortRef::Number(n) => {
            let ports = client.ports(None, Some("audio"), PortFlags::IS_PHYSICAL | dir);
            let i = (*n as usize).checked_sub(1);
            i.and_then(|i| ports.get(i).cloned()).ok_or_else(|| {
                RunError::Port(format!(
                    "insert {what} {n}: the server has {} physical {} ports",
                    ports.len(),
                    if capture { "capture" } else { "playback" }
                ))
            })
        }
        PortRef::Name(name) => {
            if name.contains('\0') {
                return Err(RunError::Port(format!("insert {what} {name:?}: bad name")));
            }
            let p = client.port_by_name(name).ok_or_else(|| {
                RunError::Port(format!(
                    "insert {what} port \"{name}\" does not exist on the JACK server (is the gear's client running?)"
                ))
            })?;
            if !p.flags().contains(dir) {
                return Err(RunError::Port(format!(
                    "insert {what} port \"{name}\" is an {} port; the {what} needs an {} port",
                    if capture { "input" } else { "output" },
                    if capture { "output" } else { "input" },
                )));
            }
            Ok(name.clone())
        }
    }
}

struct Player {
    probe: Arc<Probe>,
    send: Port<AudioOut>,
    ret: Port<AudioIn>,
    rec: Vec<f32>,
    pos: usize,
    go: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    /// Cycles run (to tell a stalled server).
    cycles: Arc<AtomicU32>,
    disturbed: Arc<AtomicBool>,
    /// The period the run started with (JACK also calls `buffer_size` on activation).
    block: Frames,
}

impl ProcessHandler for Player {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        self.cycles.fetch_add(1, Ordering::Relaxed);
        let out = self.send.as_mut_slice(ps);
        let inp = self.ret.as_slice(ps);
        let len = self.rec.len();
        if !self.go.load(Ordering::Acquire) || self.pos >= len {
            out.fill(0.0);
            return Control::Continue;
        }
        for (i, (o, &x)) in out.iter_mut().zip(inp).enumerate() {
            let k = self.pos + i;
            if k < len {
                *o = self.probe.sample(k);
                self.rec[k] = x;
            } else {
                *o = 0.0;
            }
        }
        self.pos += out.len();
        if self.pos >= len {
            self.done.store(true, Ordering::Release);
        }
        Control::Continue
    }

    fn buffer_size(&mut self, _: &Client, size: Frames) -> Control {
        if size != self.block {
            self.disturbed.store(true, Ordering::Relaxed);
        }
        Control::Continue
    }
}

struct Watch {
    disturbed: Arc<AtomicBool>,
    xruns: Arc<AtomicU32>,
    /// The rate the run started with (JACK also calls `sample_rate` on activation).
    rate: Frames,
}

impl NotificationHandler for Watch {
    fn xrun(&mut self, _: &Client) -> Control {
        self.xruns.fetch_add(1, Ordering::Relaxed);
        self.disturbed.store(true, Ordering::Relaxed);
        Control::Continue
    }
    fn sample_rate(&mut self, _: &Client, rate: Frames) -> Control {
        if rate != self.rate {
            self.disturbed.store(true, Ordering::Relaxed);
        }
        Control::Continue
    }
}

/// Measure the round trip from `send` to `ret` on `server` (`None`: the default server).
/// Blocks for about `4 × 32768` samples per attempt (2.7 s at 48 kHz).
///
/// # Errors
/// See [`RunError`]; nothing is changed on the server after it returns (its ports go away).
pub fn measure(send: &PortRef, ret: &PortRef, server: Option<&str>) -> Result<RunResult, RunError> {
    measure_until(send, ret, server, &AtomicBool::new(false))
}

/// [`measure`], stopped (within about 20 ms, [`RunError::Cancelled`]) once `cancel` is set.
///
/// # Errors
/// As [`measure`].
pub fn measure_until(
    send: &PortRef,
    ret: &PortRef,
    server: Option<&str>,
    cancel: &AtomicBool,
) -> Result<RunResult, RunError> {
    for attempt in 1..=ATTEMPTS {
        match run_once(send, ret, server, cancel)? {
            Some(r) => return Ok(r),
            None => tracing::warn!("measurement attempt {attempt} of {ATTEMPTS} thrown away"),
        }
    }
    Err(RunError::Disturbed)
}

/// One attempt; `Ok(None)` when it was disturbed.
fn run_once(
    send: &PortRef,
    ret: &PortRef,
    server: Option<&str>,
    cancel: &AtomicBool,
) -> Result<Option<RunResult>, RunError> {
    let client = open(server)?;
    let guard = Closer(Some(client));
    let client = guard.0.as_ref().expect("open");
    let send_to = resolve(client, send, false)?;
    let ret_from = resolve(client, ret, true)?;
    let jack_reported = {
        let lat = |name: &str, t| {
            client
                .port_by_name(name)
                .map_or(0, |p| p.get_latency_range(t).1)
        };
        lat(&send_to, LatencyType::Playback) + lat(&ret_from, LatencyType::Capture)
    };
    let rate = client.sample_rate();
    let block = client.buffer_size();
    let jerr = |e: ::jack::Error| RunError::Jack(e.to_string());
    let out = client
        .register_port("send", AudioOut::default())
        .map_err(jerr)?;
    let inp = client
        .register_port("return", AudioIn::default())
        .map_err(jerr)?;
    let probe = Arc::new(Probe::new(rate));
    let len = probe.len();
    let go = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU32::new(0));
    let disturbed = Arc::new(AtomicBool::new(false));
    let player = Player {
        probe: probe.clone(),
        send: out,
        ret: inp,
        // Written through now (not zero pages from calloc), so the process callback does
        // not take a page fault per 4 KiB as it records.
        rec: vec![-0.0; len],
        pos: 0,
        go: go.clone(),
        done: done.clone(),
        cycles: cycles.clone(),
        disturbed: disturbed.clone(),
        block,
    };
    let xruns = Arc::new(AtomicU32::new(0));
    let watch = Watch {
        disturbed: disturbed.clone(),
        xruns: xruns.clone(),
        rate,
    };
    let mut guard = guard;
    let client = guard.0.take().expect("open");
    let active = client.activate_async(watch, player).map_err(jerr)?;
    let deactivate = |a: ::jack::AsyncClient<Watch, Player>| {
        let r = a.deactivate();
        match r {
            Ok((c, _, p)) => {
                let _g = client_lock();
                drop(c);
                Ok(p)
            }
            Err(e) => Err(RunError::Jack(e.to_string())),
        }
    };
    let me = active.as_client();
    // JACK may have given the client another name (another measurement runs); use its own.
    let own = me.name().to_string();
    let connected = me
        .connect_ports_by_name(&format!("{own}:send"), &send_to)
        .and_then(|()| me.connect_ports_by_name(&ret_from, &format!("{own}:return")));
    if let Err(e) = connected {
        let _ = deactivate(active);
        return Err(RunError::Port(format!(
            "cannot connect to the insert ({send_to} / {ret_from}): {e}"
        )));
    }
    disturbed.store(false, Ordering::Relaxed);
    xruns.store(0, Ordering::Relaxed);
    go.store(true, Ordering::Release);
    let budget = Duration::from_secs_f64(2.0 * len as f64 / f64::from(rate.max(1)) + 5.0);
    let start = Instant::now();
    let mut last = (cycles.load(Ordering::Relaxed), Instant::now());
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
        if cancel.load(Ordering::Relaxed) {
            let _ = deactivate(active);
            return Err(RunError::Cancelled);
        }
        let c = cycles.load(Ordering::Relaxed);
        if c != last.0 {
            last = (c, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(3) || start.elapsed() > budget {
            let _ = deactivate(active);
            return Err(RunError::Stalled);
        }
    }
    let player = deactivate(active)?;
    if disturbed.load(Ordering::Relaxed) {
        let x = xruns.load(Ordering::Relaxed);
        tracing::warn!(
            "measurement disturbed: {}",
            if x > 0 {
                format!("{x} xruns")
            } else {
                "the period or rate changed".to_string()
            }
        );
        return Ok(None);
    }
    let measurement = probe.analyse(&player.rec)?;
    Ok(Some(RunResult {
        rate,
        block,
        measurement,
        jack_reported,
    }))
}

/// Closes a client that has not been activated yet, under [`client_lock`].
struct Closer(Option<Client>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _g = client_lock();
            drop(c);
        }
    }
}
