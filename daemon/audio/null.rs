//! The `null` backend: a clock thread paced to real time with absolute deadlines
//! (`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`), processing one period per deadline
//! with silent inputs and discarding the output. A period finished after the next deadline
//! counts as an xrun; falling more than [`RESYNC_PERIODS`] behind restarts the clock instead
//! of bursting to catch up.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::load::LoadMeter;
use super::swap::{self, SwapTx};
use super::xfade::{Deck, Out, Render, Voice};
use super::{AudioConfig, AudioError, EngineFactory, Shared, nap, rt};
use crate::dsp::util::DenormalGuard;
use crate::engine::Engine;

/// How far behind (periods) the clock may fall before it restarts from now.
pub(crate) const RESYNC_PERIODS: u64 = 8;

/// An engine with the output buffers it writes (the null backend has no ports).
struct Graph {
    engine: Box<Engine>,
    outs: Vec<Vec<f32>>,
    out_refs: Vec<&'static mut [f32]>,
}

impl Graph {
    /// May allocate. The null backend has no outboard gear: hardware inserts are held
    /// bypassed (their latency delay only).
    fn new(mut engine: Box<Engine>, block: usize) -> Box<Self> {
        engine.set_outboard(false);
        let n = engine.output_ports().len();
        Box::new(Self {
            engine,
            outs: (0..n).map(|_| crate::dsp::util::zeroed(block)).collect(),
            out_refs: Vec::with_capacity(n),
        })
    }

    /// One period. Real-time safe.
    fn run(&mut self, frames: usize) {
        let frames = frames.min(self.outs.first().map_or(frames, Vec::len));
        for o in &mut self.outs {
            // SAFETY: the 'static slices point into `self.outs`, which is neither moved nor
            // resized while they exist; they are cleared before this function returns.
            let s: &'static mut [f32] =
                unsafe { std::slice::from_raw_parts_mut(o.as_mut_ptr(), frames) };
            self.out_refs.push(s);
        }
        self.engine.process(frames, &[], &mut self.out_refs);
        self.out_refs.clear();
    }
}

impl Voice for Graph {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// The null backend's output is discarded: every engine just runs into its own buffers.
impl Render<()> for Graph {
    fn clear(&mut self, _: &mut (), _: usize) {}
    fn render(&mut self, _: &mut (), frames: usize, _: Out) {
        self.run(frames);
    }
}

/// The running null backend.
pub(crate) struct NullBackend {
    shared: Arc<Shared>,
    swap: Arc<Mutex<SwapTx<Box<Graph>>>>,
    block: usize,
    rate: u32,
    clock: Option<JoinHandle<()>>,
    janitor: Option<JoinHandle<()>>,
}

impl NullBackend {
    /// Build the engine and start the clock. May allocate.
    pub(crate) fn start(cfg: &AudioConfig, factory: EngineFactory) -> Result<Self, AudioError> {
        let (rate, block) = (cfg.sample_rate, cfg.block.max(1));
        let engine = factory(rate, block).map_err(|message| AudioError::Factory {
            rate,
            block,
            message,
        })?;
        let shared = Shared::new("null");
        shared.sample_rate.store(rate, Ordering::Relaxed);
        shared.block.store(block, Ordering::Relaxed);
        shared.connected.store(true, Ordering::Relaxed);
        let (tx, rx) = swap::pair();
        let deck = Deck::new(Graph::new(engine, block), rx, cfg.swap_fade_ms);
        let clock = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("faderbridge-null-clock".into())
                .spawn(move || clock_thread(shared, deck, rate, block))
                .map_err(|source| AudioError::Thread {
                    what: "null clock",
                    source,
                })?
        };
        let swap = Arc::new(Mutex::new(tx));
        let janitor = {
            let (shared, swap) = (shared.clone(), swap.clone());
            std::thread::Builder::new()
                .name("faderbridge-null-janitor".into())
                .spawn(move || {
                    while !shared.stopping() {
                        if let Ok(mut s) = swap.lock() {
                            s.collect();
                        }
                        nap(&shared, Duration::from_millis(50));
                    }
                })
                .map_err(|source| AudioError::Thread {
                    what: "null janitor",
                    source,
                })?
        };
        Ok(Self {
            shared,
            swap,
            block,
            rate,
            clock: Some(clock),
            janitor: Some(janitor),
        })
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub(crate) fn swap_engine(&self, engine: Box<Engine>) {
        if engine.sample_rate() as u32 != self.rate {
            tracing::warn!(
                "swapped-in engine runs at {} Hz but the null clock at {} Hz",
                engine.sample_rate(),
                self.rate
            );
        }
        let graph = Graph::new(engine, self.block);
        let Ok(mut tx) = self.swap.lock() else { return };
        tx.collect();
        if tx.send(graph).is_err() {
            tracing::warn!("engine swap queue is full; this engine was dropped");
        }
    }

    pub(crate) fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in [self.clock.take(), self.janitor.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        self.shared.connected.store(false, Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until_ns(t: u64) {
    let ts = libc::timespec {
        tv_sec: (t / 1_000_000_000) as libc::time_t,
        tv_nsec: (t % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
    // EINTR simply returns early and the caller re-checks the time.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// Time of period `k` after the clock's origin: `k * block / rate` seconds, computed exactly
/// (summing a rounded period would drift).
fn offset_ns(k: u64, block: usize, rate: u32) -> u64 {
    (k as u128 * block as u128 * 1_000_000_000 / rate.max(1) as u128) as u64
}

/// The audio thread of the null backend. The sleeps between periods are the clock itself.
fn clock_thread(shared: Arc<Shared>, mut deck: Deck<Graph>, rate: u32, block: usize) {
    rt::make_realtime("null clock", rt::RT_PRIORITY);
    let _ftz = DenormalGuard::new();
    let mut load = LoadMeter::new();
    let period_ns = |k: u64| offset_ns(k, block, rate);
    let mut origin = now_ns();
    let mut origin_at = Instant::now();
    let mut k: u64 = 0;
    // Engine frames processed so far, across engine swaps and resyncs.
    let mut frames: u64 = 0;
    while !shared.stopping() {
        let t0 = Instant::now();
        deck.poll();
        // Block k belongs to its place in the schedule, not to when the thread woke.
        let at = origin_at + Duration::from_nanos(period_ns(k));
        deck.process(&mut (), block, frames, at, rate);
        frames += block as u64;
        load.update(&shared, t0.elapsed(), block, rate);
        k += 1;
        let deadline = origin + period_ns(k);
        let now = now_ns();
        if now > deadline {
            shared.xruns.fetch_add(1, Ordering::Relaxed);
            if now - deadline > period_ns(RESYNC_PERIODS) {
                origin = now;
                origin_at = Instant::now();
                k = 0;
            }
            continue;
        }
        sleep_until_ns(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift() {
        // 6890 periods of 64 frames at 44.1 kHz = 9.99909297... s; a rounded period
        // (1451247 ns) summed would be 1.1 us short.
        let t = offset_ns(6890, 64, 44100);
        let exact = 6890.0 * 64.0 / 44100.0 * 1e9;
        assert!((t as f64 - exact).abs() < 1.0, "{t} vs {exact}");
        assert_eq!(offset_ns(750, 64, 48000), 1_000_000_000);
    }
}
