//! The JACK backend: one JACK port per engine port (`faderbridge:kick_in`,
//! `faderbridge:master_L`), connected as the session says (`PortRef::Number(n)` to
//! `system:capture_n` / `system:playback_n`, `PortRef::Name` as given; a missing target is a
//! warning, so PipeWire's JACK and servers without `system:*` ports work). It follows period
//! and sample-rate changes, counts xruns, reports the engine's latency on its ports (see
//! `latency_cb`: the main path's ports only; a hardware insert's send and return sit outside
//! it), and when the server goes away keeps running and reconnects with backoff, rebuilding
//! the engine through the factory. Engine swaps crossfade ([`super::xfade`]): a port both
//! engines have carries the mix of the two, ports are removed once the old engine is gone.
//!
//! JACK's process thread is the audio thread (real-time if the server runs with `-R`, the
//! default; a warning says so when it is not). A supervisor thread owns the connection.
//!
//! Start-up cost is JACK round trips (2-10 ms each on a busy machine): the client open, one
//! per port registered, the activation, one per connection. [`JackBackend::start`] opens,
//! builds the engine, registers every audio and MIDI port in one pass before activating, and
//! activates; it returns then, with the engine running. The session's connections are made
//! right after by the supervisor thread (`AudioStats::linked` turns true when they are done,
//! after every reconnection too), the way Ardour's or jack_mixer's ports appear connected a
//! moment after the program is up. Timings go to the debug log.

use super::jack_midi::{MidiBook, MidiPorts};
use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::jack::jack_sys as sys;
use ::jack::{
    AsyncClient, AudioIn, AudioOut, Client, ClientOptions, Control, Frames, LatencyType,
    NotificationHandler, Port, PortFlags, ProcessHandler, ProcessScope, Unowned,
};

use super::load::LoadMeter;
use super::swap::{self, SwapTx};
use super::xfade::{Deck, Out, Render, Voice};
use super::{AudioConfig, AudioError, Backoff, EngineFactory, Shared, nap, rt};
use crate::dsp::util::DenormalGuard;
use crate::engine::{Engine, PortLatency};
use crate::session::model::PortRef;

/// Serialises client opens and closes: libjack's per-process state is set up by the first
/// open and torn down by the last close, and a close of a client whose server died racing an
/// open crashes inside libjack. (The `jack` crate has its own lock, which `open_client` with
/// a server name cannot take; this one is always taken first.)
static CLIENT_LOCK: Mutex<()> = Mutex::new(());

/// Hold this while dropping a JACK client (`Client` or `AsyncClient`) that other threads of
/// the process might be opening clients alongside; [`open_client`] takes it too.
pub fn client_lock() -> std::sync::MutexGuard<'static, ()> {
    CLIENT_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
static LOGGER: Once = Once::new();

unsafe extern "C" fn jack_error_msg(msg: *const libc::c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: libjack passes a NUL-terminated message valid for the call.
    let s = unsafe { std::ffi::CStr::from_ptr(msg) };
    tracing::debug!(target: "faderbridge::audio::libjack", "{}", s.to_string_lossy());
}

/// Open a JACK client on `server` (`None` = the default server), never starting a server.
/// Unlike `jack::Client::new`, this passes the server name to `jack_client_open` per client,
/// so one process can talk to several servers (tests run their own). libjack's own messages
/// go to `tracing` at debug level. May block briefly.
///
/// # Errors
/// No server answered, or the JACK library is missing.
pub fn open_client(name: &str, server: Option<&str>) -> Result<Client, ::jack::Error> {
    LOGGER.call_once(|| {
        ::jack::set_logger(::jack::LoggerType::Custom {
            info: jack_error_msg,
            error: jack_error_msg,
        })
    });
    let Some(server) = server else {
        let _g = client_lock();
        return Client::new(name, ClientOptions::NO_START_SERVER).map(|(c, _)| c);
    };
    let lib = sys::library().map_err(|e| ::jack::Error::LibraryError(e.to_string()))?;
    type OpenFn = unsafe extern "C" fn(
        *const libc::c_char,
        sys::jack_options_t,
        *mut sys::jack_status_t,
        ...
    ) -> *mut sys::jack_client_t;
    // SAFETY: jack_client_open's C signature is exactly `OpenFn` (variadic: with
    // JackServerName the next argument is the server name as `const char *`).
    let open: OpenFn = unsafe {
        let sym = lib
            .get::<OpenFn>(b"jack_client_open\0")
            .map_err(|e| ::jack::Error::LibraryError(e.to_string()))?;
        *sym
    };
    let cname = CString::new(name)
        .map_err(|_| ::jack::Error::ClientError(::jack::ClientStatus::INVALID_OPTION))?;
    let csrv = CString::new(server)
        .map_err(|_| ::jack::Error::ClientError(::jack::ClientStatus::INVALID_OPTION))?;
    let mut status: sys::jack_status_t = 0;
    let _g = client_lock();
    // SAFETY: both strings outlive the call; `status` is a live out-pointer.
    let raw = unsafe {
        open(
            cname.as_ptr(),
            sys::JackNoStartServer | sys::JackServerName,
            &mut status,
            csrv.as_ptr(),
        )
    };
    if raw.is_null() {
        return Err(::jack::Error::ClientError(
            ::jack::ClientStatus::from_bits_truncate(status),
        ));
    }
    // SAFETY: a live client just opened; the `Client` closes it on drop.
    Ok(unsafe { Client::from_raw(raw) })
}

/// `system:capture_n` / `system:playback_n` for numbered refs, the name itself otherwise.
fn target_name(r: &PortRef, capture: bool) -> String {
    match r {
        PortRef::Number(n) if capture => format!("system:capture_{n}"),
        PortRef::Number(n) => format!("system:playback_{n}"),
        PortRef::Name(s) => s.clone(),
    }
}

/// What the audio thread runs: an engine and the JACK ports it reads and writes.
struct Graph {
    engine: Box<Engine>,
    ins: Vec<Port<Unowned>>,
    outs: Vec<Port<Unowned>>,
    in_refs: Vec<&'static [f32]>,
    out_refs: Vec<&'static mut [f32]>,
    /// One buffer of the engine's max block per output: what the engine writes during a
    /// swap, before it is mixed into the ports (or thrown away during the warm-up).
    scratch: Vec<Vec<f32>>,
}

/// An output port's buffer for this cycle.
///
/// # Safety
/// Call from the process callback only, with the cycle's frame count; the slice must not
/// outlive the cycle, and no other slice of the same port may be alive.
unsafe fn out_buf(p: &Port<Unowned>, n: usize) -> &'static mut [f32] {
    // SAFETY: per the caller: our own registered port; JACK's buffer holds `n` frames.
    unsafe { std::slice::from_raw_parts_mut(p.buffer(n as Frames) as *mut f32, n) }
}

impl Voice for Graph {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// The JACK graph runs into its port buffers; ports are the same JACK port (and buffer) in
/// every graph that names them, so a swap's mix adds up per port.
impl Render<()> for Graph {
    fn clear(&mut self, _: &mut (), n: usize) {
        for p in &self.outs {
            // SAFETY: process callback, this cycle's `n`, no other slice alive.
            unsafe { out_buf(p, n) }.fill(0.0);
        }
    }

    fn render(&mut self, _: &mut (), n: usize, out: Out) {
        if out == Out::Direct {
            self.process(n as Frames);
            return;
        }
        // Into the scratch buffers, in chunks of their length.
        let chunk = self.scratch.first().map_or(n, Vec::len).max(1);
        let mut done = 0;
        while done < n {
            let m = (n - done).min(chunk);
            for p in &self.ins {
                // SAFETY: as in `process`; the refs are cleared below.
                let s: &'static [f32] =
                    unsafe { std::slice::from_raw_parts(p.buffer(n as Frames) as *const f32, n) };
                self.in_refs.push(&s[done..done + m]);
            }
            for b in &mut self.scratch {
                // SAFETY: points into `self.scratch`, not resized while the refs live;
                // cleared before the next use of the buffers.
                self.out_refs
                    .push(unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr(), m) });
            }
            self.engine.process(m, &self.in_refs, &mut self.out_refs);
            self.in_refs.clear();
            self.out_refs.clear();
            if let Out::Mix(g) = out {
                for (p, b) in self.outs.iter().zip(&self.scratch) {
                    // SAFETY: process callback, this cycle's `n`, no other slice alive.
                    let dst = &mut unsafe { out_buf(p, n) }[done..done + m];
                    for (f, (d, v)) in dst.iter_mut().zip(&b[..m]).enumerate() {
                        *d += v * g.at(done + f);
                    }
                }
            }
            done += m;
        }
    }
}

impl Graph {
    /// One JACK period. Real-time safe.
    #[inline]
    fn process(&mut self, n: Frames) {
        for p in &self.ins {
            // SAFETY: our own registered port; JACK's buffer holds `n` frames for this cycle.
            // The 'static lifetime is a lie confined to this call: the refs are cleared below.
            let s: &'static [f32] =
                unsafe { std::slice::from_raw_parts(p.buffer(n) as *const f32, n as usize) };
            self.in_refs.push(s);
        }
        for p in &self.outs {
            // SAFETY: as above; every output port has its own buffer, so no two slices alias.
            let s: &'static mut [f32] =
                unsafe { std::slice::from_raw_parts_mut(p.buffer(n) as *mut f32, n as usize) };
            self.out_refs.push(s);
        }
        self.engine
            .process(n as usize, &self.in_refs, &mut self.out_refs);
        self.in_refs.clear();
        self.out_refs.clear();
    }
}

#[derive(Default)]
struct Flags {
    shutdown: AtomicBool,
    rebuild: AtomicBool,
    /// Scheduling of the process thread, seen on its first cycle: 0 unknown, 1 real-time,
    /// 2 not (the supervisor logs it once).
    realtime: std::sync::atomic::AtomicU8,
}

struct Processor {
    /// The running graph (two during a swap's crossfade).
    deck: Deck<Graph>,
    midi: MidiPorts,
    shared: Arc<Shared>,
    flags: Arc<Flags>,
    load: LoadMeter,
    /// Engine frames processed so far (the engine's absolute frame count; kept here so it
    /// runs on across engine swaps).
    frames: u64,
    /// The JACK transport as last seen: rolling, and the frame it should show next cycle.
    transport: Option<(bool, u64)>,
}

impl Processor {
    /// Follow the JACK transport (a DAW, `jack_transport`): when it starts or stops, so does
    /// the engine's transport, at its position; when it is relocated, the engine seeks
    /// there. While nobody touches it the engine's own transport (OSC, MCU) runs freely.
    /// Real-time safe (jack_transport_query).
    fn follow_transport(&mut self, client: &Client, n: Frames) {
        let Ok(q) = client.transport().query() else {
            return;
        };
        let rolling = matches!(q.state, ::jack::TransportState::Rolling);
        let frame = u64::from(q.pos.frame());
        let (play, seek) = match self.transport {
            // Joining a rolling transport: play along from its position.
            None if rolling => (Some(true), Some(frame)),
            None => (None, None),
            Some((was, expect)) => (
                (was != rolling).then_some(rolling),
                (frame != expect || (rolling && !was)).then_some(frame),
            ),
        };
        if play.is_some() || seek.is_some() {
            // Every running engine: both of them during a swap.
            self.deck.each_engine(|e| {
                if let Some(p) = play {
                    e.set_playing(p);
                }
                if let Some(f) = seek {
                    e.seek(f);
                }
            });
        }
        let next = if rolling { frame + u64::from(n) } else { frame };
        self.transport = Some((rolling, next));
    }
}

/// The instant the current cycle's first frame belongs to: JACK's own filtered cycle start
/// (jack_get_cycle_times), moved into [`Instant`]'s domain through the time elapsed since.
/// `now` when the server cannot say.
fn cycle_start(client: &Client, ps: &ProcessScope, now: Instant) -> Instant {
    match ps.cycle_times() {
        Ok(t) => {
            let since = client.time().saturating_sub(t.current_usecs);
            now.checked_sub(Duration::from_micros(since)).unwrap_or(now)
        }
        Err(_) => now,
    }
}

impl ProcessHandler for Processor {
    fn process(&mut self, client: &Client, ps: &ProcessScope) -> Control {
        let t0 = Instant::now();
        let _ftz = DenormalGuard::new();
        if self.flags.realtime.load(Ordering::Relaxed) == 0 {
            // First cycle only: one scheduler query and the thread's name (`fb-audio`, so
            // `top -H` and the tests can find it), not part of the steady-state path.
            rt::name_this_thread(c"fb-audio");
            let v = if rt::is_realtime() { 1 } else { 2 };
            self.flags.realtime.store(v, Ordering::Relaxed);
        }
        self.deck.poll();
        let n = ps.n_frames();
        self.midi.process(ps);
        self.follow_transport(client, n);
        let rate = self.shared.sample_rate.load(Ordering::Relaxed);
        let at = cycle_start(client, ps, t0);
        self.deck
            .process(&mut (), n as usize, self.frames, at, rate);
        self.frames += u64::from(n);
        self.load
            .update(&self.shared, t0.elapsed(), n as usize, rate);
        Control::Continue
    }

    fn buffer_size(&mut self, _: &Client, size: Frames) -> Control {
        self.shared.block.store(size as usize, Ordering::Relaxed);
        if size as usize > self.deck.current().engine.max_block() {
            self.flags.rebuild.store(true, Ordering::Relaxed);
        }
        Control::Continue
    }
}

struct Notifier {
    shared: Arc<Shared>,
    flags: Arc<Flags>,
}

impl NotificationHandler for Notifier {
    unsafe fn shutdown(&mut self, _: ::jack::ClientStatus, _: &str) {
        // Async-signal-safe: two atomic stores.
        self.shared.connected.store(false, Ordering::Relaxed);
        self.flags.shutdown.store(true, Ordering::Relaxed);
    }

    fn sample_rate(&mut self, _: &Client, srate: Frames) -> Control {
        let old = self.shared.sample_rate.swap(srate, Ordering::Relaxed);
        if old != srate {
            self.flags.rebuild.store(true, Ordering::Relaxed);
        }
        Control::Continue
    }

    fn xrun(&mut self, _: &Client) -> Control {
        self.shared.xruns.fetch_add(1, Ordering::Relaxed);
        Control::Continue
    }
}

/// A graph's input and output ports, each with its place on the engine's signal path.
type PortLists = (
    Vec<(Port<Unowned>, PortLatency)>,
    Vec<(Port<Unowned>, PortLatency)>,
);

/// Read by JACK's latency callback (on its notification thread).
struct LatencyCtx {
    ports: Mutex<PortLists>,
}

/// Capture: every output reports the main inputs' capture latency range plus its own
/// distance from them ([`PortLatency`]: the engine's latency for the main outputs; for an
/// insert send, its strip's input time). Playback: every input reports the main outputs'
/// playback latency range plus its distance to them (the engine's latency; for an insert
/// return, that less its strip's input time and the insert's latency). Insert returns and sends never feed the ranges: the gear between them would
/// close a loop, and each recomputation would add the engine's latency again.
unsafe extern "C" fn latency_cb(mode: sys::jack_latency_callback_mode_t, arg: *mut c_void) {
    // SAFETY: `arg` is the `LatencyCtx` boxed in the connection, which outlives the client.
    let ctx = unsafe { &*(arg as *const LatencyCtx) };
    let Ok(ports) = ctx.ports.try_lock() else {
        return;
    };
    let (ins, outs) = (&ports.0, &ports.1);
    let (kind, from, to) = if mode == sys::JackCaptureLatency {
        (LatencyType::Capture, ins, outs)
    } else {
        (LatencyType::Playback, outs, ins)
    };
    let (lo, hi) = main_range(from.iter().map(|(p, l)| (l, || p.get_latency_range(kind))));
    for (p, l) in to {
        let extra = u32::try_from(l.samples).unwrap_or(u32::MAX);
        p.set_latency_range(kind, (lo.saturating_add(extra), hi.saturating_add(extra)));
    }
}

/// The latency range over the main (non-insert) ports of `from` (each given with a way to
/// read its range): the least minimum and the greatest maximum; (0, 0) without any.
fn main_range<'a, F: Fn() -> (u32, u32)>(
    from: impl Iterator<Item = (&'a PortLatency, F)>,
) -> (u32, u32) {
    let (mut lo, mut hi, mut any) = (u32::MAX, 0, false);
    for (l, range) in from {
        if l.insert {
            continue;
        }
        let (a, b) = range();
        lo = lo.min(a);
        hi = hi.max(b);
        any = true;
    }
    if any { (lo, hi.max(lo)) } else { (0, 0) }
}

/// A registered port and where it should be / is connected.
struct Entry {
    port: Port<Unowned>,
    want: Option<PortRef>,
    have: Option<PortRef>,
}

/// The connection's ports by name; kept across engine swaps so unchanged ports stay connected.
#[derive(Default)]
struct PortBook {
    ins: HashMap<String, Entry>,
    outs: HashMap<String, Entry>,
    current: (Vec<String>, Vec<String>),
    /// The current engine's [`Engine::port_latencies`], in `current`'s order.
    paths: (Vec<PortLatency>, Vec<PortLatency>),
}

impl PortBook {
    /// Register the engine's ports that are new and build its graph. May allocate.
    fn prepare(&mut self, client: &Client, engine: Box<Engine>) -> Result<Box<Graph>, String> {
        let mut ins = Vec::new();
        for p in engine.input_ports() {
            if !self.ins.contains_key(&p.name) {
                let port = client
                    .register_port(&p.name, AudioIn::default())
                    .map_err(|e| format!("registering input port {}: {e}", p.name))?;
                self.ins.insert(
                    p.name.clone(),
                    Entry {
                        port: port.clone_unowned(),
                        want: None,
                        have: None,
                    },
                );
            }
            let e = self.ins.get_mut(&p.name).ok_or("port vanished")?;
            e.want = Some(p.source.clone());
            ins.push(e.port.clone());
        }
        let mut outs = Vec::new();
        for p in engine.output_ports() {
            if !self.outs.contains_key(&p.name) {
                let port = client
                    .register_port(&p.name, AudioOut::default())
                    .map_err(|e| format!("registering output port {}: {e}", p.name))?;
                self.outs.insert(
                    p.name.clone(),
                    Entry {
                        port: port.clone_unowned(),
                        want: None,
                        have: None,
                    },
                );
            }
            let e = self.outs.get_mut(&p.name).ok_or("port vanished")?;
            e.want = p.dest.clone();
            outs.push(e.port.clone());
        }
        self.current = (
            engine
                .input_ports()
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            engine
                .output_ports()
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        );
        self.paths = engine.port_latencies();
        let (ni, no) = (ins.len(), outs.len());
        let scratch = (0..no)
            .map(|_| crate::dsp::util::zeroed(engine.max_block()))
            .collect();
        Ok(Box::new(Graph {
            engine,
            ins,
            outs,
            in_refs: Vec::with_capacity(ni),
            out_refs: Vec::with_capacity(no),
            scratch,
        }))
    }

    /// Make every current port's connection match the session. Client must be active.
    /// Returns how many connections were made.
    fn connect(&mut self, client: &Client) -> usize {
        let mut failed = Vec::new();
        let mut made = 0;
        for (capture, map) in [(true, &mut self.ins), (false, &mut self.outs)] {
            for e in map.values_mut() {
                if e.want == e.have {
                    continue;
                }
                if e.have.is_some() {
                    let _ = client.disconnect(&e.port);
                }
                e.have = e.want.clone();
                let Some(want) = &e.want else { continue };
                let Ok(ours) = e.port.name() else { continue };
                let theirs = target_name(want, capture);
                let (src, dst) = if capture {
                    (theirs.as_str(), ours.as_str())
                } else {
                    (ours.as_str(), theirs.as_str())
                };
                match client.connect_ports_by_name(src, dst) {
                    Ok(()) | Err(::jack::Error::PortAlreadyConnected(..)) => made += 1,
                    Err(_) => failed.push(format!("{src} -> {dst}")),
                }
            }
        }
        if !failed.is_empty() {
            failed.sort();
            tracing::warn!(
                "JACK: {} connection(s) could not be made (missing ports?), left unconnected: {}",
                failed.len(),
                failed.join(", ")
            );
        }
        made
    }

    /// Unregister ports no engine uses any more (call only when no swap is pending).
    fn prune(&mut self, client: &Client) {
        let (ci, co) = &self.current;
        for (map, cur) in [(&mut self.ins, ci), (&mut self.outs, co)] {
            let stale: Vec<String> = map.keys().filter(|k| !cur.contains(k)).cloned().collect();
            for k in stale {
                if let Some(e) = map.remove(&k) {
                    let _ = client.unregister_port(e.port);
                }
            }
        }
    }

    fn current_ports(&self) -> PortLists {
        let pick = |map: &HashMap<String, Entry>, names: &[String], paths: &[PortLatency]| {
            names
                .iter()
                .zip(paths)
                .filter_map(|(n, l)| map.get(n).map(|e| (e.port.clone(), *l)))
                .collect()
        };
        (
            pick(&self.ins, &self.current.0, &self.paths.0),
            pick(&self.outs, &self.current.1, &self.paths.1),
        )
    }
}

/// A live connection to a server. Field order matters: the client closes before the latency
/// context it points to is freed.
struct Conn {
    client: AsyncClient<Notifier, Processor>,
    latency: Box<LatencyCtx>,
    midi: MidiBook,
    swap: SwapTx<Box<Graph>>,
    book: PortBook,
    flags: Arc<Flags>,
    pruned: bool,
    rt_logged: bool,
    /// The session's port connections were made after activation.
    linked: bool,
}

impl Conn {
    /// Make the session's port connections of a fresh connection (one server round trip
    /// each, so this runs on the supervisor thread after the backend reported itself
    /// started), then have JACK recompute latencies and publish `linked`.
    fn link(&mut self, shared: &Shared) {
        let t0 = Instant::now();
        let client = self.client.as_client();
        let n = self.book.connect(client);
        // SAFETY: a live, active client.
        unsafe { sys::jack_recompute_total_latencies(client.raw()) };
        self.linked = true;
        shared.linked.store(true, Ordering::Release);
        tracing::debug!(
            "JACK: {n} port connection(s) made in {} ms",
            t0.elapsed().as_millis()
        );
    }

    /// Hand `engine` to the audio thread: register and connect its ports, update the latency
    /// report. May allocate and block.
    fn install(&mut self, engine: Box<Engine>) {
        let client = self.client.as_client();
        let graph = match self.book.prepare(client, engine) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("JACK: {e}; keeping the running engine");
                return;
            }
        };
        self.swap.collect();
        if self.swap.send(graph).is_err() {
            tracing::warn!("engine swap queue is full; this engine was dropped");
            return;
        }
        self.book.connect(client);
        self.pruned = false;
        if let Ok(mut p) = self.latency.ports.lock() {
            *p = self.book.current_ports();
        }
        // SAFETY: a live, active client.
        unsafe { sys::jack_recompute_total_latencies(client.raw()) };
    }

    /// Drop retired engines; once every swap has finished (the old engine faded out and
    /// collected), drop the ports no engine uses any more.
    fn housekeep(&mut self) {
        self.midi.housekeep(self.client.as_client());
        if !self.rt_logged {
            match self.flags.realtime.load(Ordering::Relaxed) {
                1 => tracing::info!("JACK's process thread runs with real-time priority"),
                2 => tracing::warn!(
                    "JACK's process thread is NOT real-time (start jackd with -R and give its \
                     user an rtprio limit); audio may drop out under load"
                ),
                _ => {}
            }
            self.rt_logged = self.flags.realtime.load(Ordering::Relaxed) != 0;
        }
        self.swap.collect();
        if !self.pruned && !self.swap.busy() {
            self.book.prune(self.client.as_client());
            self.pruned = true;
        }
    }
}

enum ConnectError {
    NoServer,
    Factory(AudioError),
    Other(String),
}

/// A JACK client opened on a thread of its own while the daemon reads its session (the open
/// maps and locks jackd's shared segment: 15-50 ms). [`crate::audio::RunningAudio::start_preopened`]
/// takes it over; dropped unused, it is closed.
pub struct PreOpen(Option<JoinHandle<Option<Client>>>);

impl PreOpen {
    /// Start opening `cfg.client_name` on `cfg.jack_server` (never starting a server).
    pub fn start(cfg: &AudioConfig) -> PreOpen {
        let (name, server) = (cfg.client_name.clone(), cfg.jack_server.clone());
        let h = std::thread::Builder::new()
            .name("faderbridge-jack-open".into())
            .spawn(move || open_client(&name, server.as_deref()).ok());
        PreOpen(h.ok())
    }

    /// The client, once open; `None` when no server answered.
    pub(crate) fn take(mut self) -> Option<Client> {
        let t0 = Instant::now();
        let c = self.0.take().and_then(|h| h.join().ok().flatten());
        tracing::debug!(
            "JACK start: waited {:.1} ms for the client opened ahead ({})",
            t0.elapsed().as_secs_f64() * 1000.0,
            if c.is_some() { "open" } else { "no server" }
        );
        c
    }
}

impl Drop for PreOpen {
    fn drop(&mut self) {
        if let Some(h) = self.0.take()
            && let Ok(Some(c)) = h.join()
        {
            let _g = client_lock();
            drop(c);
        }
    }
}

/// Open (or take `pre`, a client opened ahead), build the engine, register its ports,
/// activate. Connections are left to [`Conn::link`].
fn connect(
    cfg: &AudioConfig,
    factory: &EngineFactory,
    shared: &Arc<Shared>,
    pre: Option<Client>,
) -> Result<Conn, ConnectError> {
    let t0 = Instant::now();
    let client = match pre {
        Some(c) => c,
        None => open_client(&cfg.client_name, cfg.jack_server.as_deref())
            .map_err(|_| ConnectError::NoServer)?,
    };
    let t_open = t0.elapsed();
    let rate = client.sample_rate();
    let block = client.buffer_size() as usize;
    let engine = factory(rate, block).map_err(|message| {
        ConnectError::Factory(AudioError::Factory {
            rate,
            block,
            message,
        })
    })?;
    shared.sample_rate.store(rate, Ordering::Relaxed);
    shared.block.store(block, Ordering::Relaxed);
    let t_build = t0.elapsed();

    let latency = Box::new(LatencyCtx {
        ports: Mutex::new((Vec::new(), Vec::new())),
    });
    // SAFETY: the context is boxed (stable address) and outlives the client (see `Conn`).
    let rc = unsafe {
        sys::jack_set_latency_callback(
            client.raw(),
            Some(latency_cb),
            &*latency as *const LatencyCtx as *mut c_void,
        )
    };
    if rc != 0 {
        tracing::warn!("JACK: could not set the latency callback; latency is not reported");
    }
    let mut book = PortBook::default();
    let graph = book.prepare(&client, engine).map_err(ConnectError::Other)?;
    let (midi, midi_book) = MidiPorts::register(&client);
    let t_register = t0.elapsed();
    // The latency callback may run as soon as the client is active.
    if let Ok(mut p) = latency.ports.lock() {
        *p = book.current_ports();
    }
    let (swap_tx, swap_rx) = swap::pair();
    let flags = Arc::new(Flags::default());
    let processor = Processor {
        deck: Deck::new(graph, swap_rx, cfg.swap_fade_ms),
        midi,
        shared: shared.clone(),
        flags: flags.clone(),
        load: LoadMeter::new(),
        frames: 0,
        transport: None,
    };
    let notifier = Notifier {
        shared: shared.clone(),
        flags: flags.clone(),
    };
    let active = client
        .activate_async(notifier, processor)
        .map_err(|e| ConnectError::Other(format!("activating the client: {e}")))?;
    let t_active = t0.elapsed();
    tracing::debug!(
        "JACK start: client open {} ms (0: opened ahead), engine built {} ms, {} audio ports registered {} ms, \
         active {} ms (from the open call; connections follow on the supervisor thread)",
        t_open.as_millis(),
        t_build.as_millis(),
        book.ins.len() + book.outs.len(),
        t_register.as_millis(),
        t_active.as_millis()
    );
    shared.linked.store(false, Ordering::Release);
    shared.connected.store(true, Ordering::Relaxed);
    Ok(Conn {
        client: active,
        latency,
        midi: midi_book,
        swap: swap_tx,
        book,
        flags,
        pruned: true,
        rt_logged: false,
        linked: false,
    })
}

/// The running JACK backend.
pub(crate) struct JackBackend {
    shared: Arc<Shared>,
    conn: Arc<Mutex<Option<Conn>>>,
    supervisor: Option<JoinHandle<()>>,
}

impl JackBackend {
    /// Connect (once, synchronously: ports registered, client active) and start the
    /// supervisor, which then makes the session's connections. Without a server: `wait`
    /// starts anyway and keeps trying; otherwise `Ok(None)`. May allocate and block.
    /// `pre` is a client already open on the server (see [`PreOpen`]).
    pub(crate) fn start(
        cfg: &AudioConfig,
        factory: EngineFactory,
        wait: bool,
        pre: Option<Client>,
    ) -> Result<Option<Self>, AudioError> {
        let shared = Shared::new("jack");
        shared.linked.store(false, Ordering::Release);
        let first = match connect(cfg, &factory, &shared, pre) {
            Ok(c) => Some(c),
            Err(ConnectError::NoServer) if !wait => return Ok(None),
            Err(ConnectError::NoServer) => {
                tracing::warn!(
                    "JACK server `{}` is not running; waiting for it",
                    cfg.jack_server.as_deref().unwrap_or("default")
                );
                None
            }
            Err(ConnectError::Factory(e)) => return Err(e),
            Err(ConnectError::Other(e)) => return Err(AudioError::Jack(e)),
        };
        if let Some(c) = &first {
            let name = c.client.as_client().name().to_string();
            if name != cfg.client_name {
                tracing::warn!(
                    "JACK client name `{}` was taken; running as `{name}`",
                    cfg.client_name
                );
            }
        }
        let conn = Arc::new(Mutex::new(first));
        let supervisor = {
            let (shared, conn, cfg) = (shared.clone(), conn.clone(), cfg.clone());
            std::thread::Builder::new()
                .name("faderbridge-jack".into())
                .spawn(move || supervise(shared, conn, cfg, factory))
                .map_err(|source| AudioError::Thread {
                    what: "JACK supervisor",
                    source,
                })?
        };
        Ok(Some(Self {
            shared,
            conn,
            supervisor: Some(supervisor),
        }))
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub(crate) fn swap_engine(&self, engine: Box<Engine>) {
        let Ok(mut guard) = self.conn.lock() else {
            return;
        };
        match guard.as_mut() {
            Some(c) if !c.flags.shutdown.load(Ordering::Relaxed) => {
                let rate = self.shared.sample_rate.load(Ordering::Relaxed);
                if engine.sample_rate() as u32 != rate {
                    tracing::warn!(
                        "swapped-in engine runs at {} Hz but JACK at {rate} Hz",
                        engine.sample_rate()
                    );
                }
                c.install(engine);
            }
            _ => tracing::info!(
                "JACK is away: the new engine is dropped; the factory builds one on reconnection"
            ),
        }
    }

    pub(crate) fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }
}

/// Abandon a connection whose server died. Deactivating or closing such a client crashed
/// inside libjack (jackd2 1.9.21) when other clients of the process had come and gone, so the
/// zombie client is deliberately leaked: its engine and buffers stay allocated (one engine per
/// server loss). The port book, swap ring and latency context it points to are leaked with
/// it, so no callback can touch freed memory.
fn abandon(conn: Conn) {
    tracing::debug!("abandoning the dead JACK client (leaked on purpose)");
    std::mem::forget(conn);
}

fn supervise(
    shared: Arc<Shared>,
    conn: Arc<Mutex<Option<Conn>>>,
    cfg: AudioConfig,
    factory: EngineFactory,
) {
    let mut backoff = Backoff::new();
    let mut next_try = Instant::now();
    while !shared.stopping() {
        // Phase 1, under the lock: notice a lost server, a needed rebuild, housekeeping.
        let mut rebuild: Option<(u32, usize)> = None;
        let mut need_connect = false;
        if let Ok(mut guard) = conn.lock() {
            match guard.as_mut() {
                Some(c) if c.flags.shutdown.load(Ordering::Relaxed) => {
                    c.midi.lost();
                    if let Some(dead) = guard.take() {
                        abandon(dead);
                    }
                    shared.connected.store(false, Ordering::Relaxed);
                    shared.linked.store(false, Ordering::Release);
                    tracing::warn!("JACK server went away; audio continues when it returns");
                    backoff.reset();
                    next_try = Instant::now() + backoff.next();
                }
                Some(c) => {
                    if !c.linked {
                        c.link(&shared);
                    }
                    if c.flags.rebuild.swap(false, Ordering::Relaxed) {
                        let client = c.client.as_client();
                        rebuild = Some((client.sample_rate(), client.buffer_size() as usize));
                    }
                    c.housekeep();
                }
                None => need_connect = Instant::now() >= next_try,
            }
        }
        // Phase 2, without the lock (the factory may take the caller's locks).
        if let Some((rate, block)) = rebuild {
            match factory(rate, block) {
                Ok(engine) => {
                    tracing::info!("JACK now runs {rate} Hz / {block} frames: engine rebuilt");
                    shared.sample_rate.store(rate, Ordering::Relaxed);
                    if let Ok(mut guard) = conn.lock()
                        && let Some(c) = guard.as_mut()
                    {
                        c.install(engine);
                    }
                }
                Err(e) => tracing::error!(
                    "rebuilding the engine for {rate} Hz / {block} frames failed: {e}; keeping the old one"
                ),
            }
        }
        if need_connect {
            match connect(&cfg, &factory, &shared, None) {
                Ok(c) => {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        "JACK server is back: reconnected ({} Hz, {} frames)",
                        shared.sample_rate.load(Ordering::Relaxed),
                        shared.block.load(Ordering::Relaxed)
                    );
                    backoff.reset();
                    if let Ok(mut guard) = conn.lock() {
                        *guard = Some(c);
                    }
                }
                Err(e) => {
                    match e {
                        ConnectError::NoServer => {}
                        ConnectError::Factory(e) => tracing::error!("{e}"),
                        ConnectError::Other(e) => tracing::error!("JACK: {e}"),
                    }
                    next_try = Instant::now() + backoff.next();
                }
            }
        }
        nap(&shared, Duration::from_millis(10));
    }
    let last = conn.lock().ok().and_then(|mut g| g.take());
    if let Some(c) = last {
        if c.flags.shutdown.load(Ordering::Relaxed) {
            abandon(c);
        } else {
            let _g = client_lock();
            drop(c);
        }
    }
    shared.connected.store(false, Ordering::Relaxed);
}

/// The JACK part of `faderbridge ports`.
pub(crate) fn list_ports(server: Option<&str>) -> String {
    let Ok(client) = open_client("faderbridge-ports", server) else {
        return "JACK: no server running\n".into();
    };
    let s = describe_ports(&client, server);
    let _g = client_lock();
    drop(client);
    s
}

fn describe_ports(client: &Client, server: Option<&str>) -> String {
    let mut s = format!(
        "JACK ports (server `{}`, {} Hz, {} frames; `out` ports are sources):\n",
        server.unwrap_or("default"),
        client.sample_rate(),
        client.buffer_size()
    );
    let names = client.ports(None, None, PortFlags::empty());
    if names.is_empty() {
        s += "  (none)\n";
    }
    for name in names {
        let (dir, ty) = match client.port_by_name(&name) {
            Some(p) => (
                if p.flags().contains(PortFlags::IS_OUTPUT) {
                    "out"
                } else {
                    "in "
                },
                p.port_type().unwrap_or_default(),
            ),
            None => ("?  ", String::new()),
        };
        s += &format!("  {dir}  {name}  [{ty}]\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_refs_map_to_system_ports() {
        assert_eq!(target_name(&PortRef::Number(3), true), "system:capture_3");
        assert_eq!(target_name(&PortRef::Number(2), false), "system:playback_2");
        assert_eq!(
            target_name(&PortRef::Name("outboard:in".into()), false),
            "outboard:in"
        );
    }
}
