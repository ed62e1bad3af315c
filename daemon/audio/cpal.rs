//! The cpal backend: a sound card through ALSA (Linux) or CoreAudio (macOS). One output
//! stream runs the engine; when the engine reads inputs, an input stream on the same device
//! feeds it through a wait-free ring. Engine ports map to device channels by number
//! (`PortRef::Number(n)` = channel n); named JACK ports mean nothing here and stay silent.
//! On a stream error the backend marks itself disconnected and reopens the device with
//! backoff.
//!
//! Honest limits: only `f32` sample formats are opened (most ALSA `plughw`/`default` devices
//! and CoreAudio offer it); the period is asked for, not guaranteed; input and output clocks
//! are assumed locked (same device), with an underrun reading silence. This backend is
//! compile-checked here but untested on hardware (the test machine has no sound card).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ::cpal::{BufferSize, Device, Stream, StreamConfig};

use super::load::LoadMeter;
use super::swap::{self, SwapRx, SwapTx};
use super::xfade::{Deck, Out, Render, Voice};
use super::{AudioConfig, AudioError, Backoff, EngineFactory, Shared, nap, rt};
use crate::dsp::util::DenormalGuard;
use crate::engine::Engine;
use crate::session::model::PortRef;

/// Largest chunk processed at once (cpal may hand larger buffers; they are split).
const CHUNK: usize = 1024;

/// An engine with its planar output buffers and channel maps.
struct Graph {
    engine: Box<Engine>,
    /// Device input channel (0-based) of each engine input.
    in_map: Vec<Option<usize>>,
    /// Device output channel (0-based) of each engine output.
    out_map: Vec<Option<usize>>,
    /// What the engine writes, before it is added into the device buffer.
    outs: Vec<Vec<f32>>,
    in_refs: Vec<&'static [f32]>,
    out_refs: Vec<&'static mut [f32]>,
}

fn channel_of(r: &PortRef) -> Option<usize> {
    match r {
        PortRef::Number(n) if *n >= 1 => Some(*n as usize - 1),
        _ => None,
    }
}

impl Graph {
    /// May allocate.
    fn new(engine: Box<Engine>) -> Box<Self> {
        let in_map: Vec<_> = engine
            .input_ports()
            .iter()
            .map(|p| channel_of(&p.source))
            .collect();
        let out_map: Vec<_> = engine
            .output_ports()
            .iter()
            .map(|p| p.dest.as_ref().and_then(channel_of))
            .collect();
        let (ni, no) = (in_map.len(), out_map.len());
        Box::new(Self {
            engine,
            in_map,
            out_map,
            outs: (0..no).map(|_| crate::dsp::util::zeroed(CHUNK)).collect(),
            in_refs: Vec::with_capacity(ni),
            out_refs: Vec::with_capacity(no),
        })
    }
}

/// One chunk of a cpal callback: the interleaved device output (already zeroed) and the
/// device input, deinterleaved.
struct ChunkIo<'a> {
    /// The callback's interleaved output buffer (`out_ch` channels).
    data: &'a mut [f32],
    out_ch: usize,
    /// This chunk's first frame in `data`.
    offset: usize,
    /// One buffer per device input channel (this chunk's frames at the start).
    inputs: &'a [Vec<f32>],
    /// At least a chunk of zeros (engine inputs with no device channel).
    silence: &'a [f32],
}

impl Voice for Graph {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// Engine outputs are added into their device channels, so a swap's mix adds up per channel.
impl<'a> Render<ChunkIo<'a>> for Graph {
    fn clear(&mut self, _: &mut ChunkIo<'a>, _: usize) {
        // The callback zeroes the whole device buffer first; everything adds into it.
    }

    fn render(&mut self, io: &mut ChunkIo<'a>, n: usize, out: Out) {
        for m in &self.in_map {
            let src = match m {
                Some(c) if *c < io.inputs.len() => &io.inputs[*c][..n],
                _ => &io.silence[..n],
            };
            // SAFETY: the slices point into buffers that outlive this call and are not
            // written while the refs live; cleared before returning.
            self.in_refs
                .push(unsafe { std::slice::from_raw_parts(src.as_ptr(), n) });
        }
        for b in &mut self.outs {
            // SAFETY: points into `self.outs`, not resized while the refs live; cleared
            // before returning; distinct buffers.
            self.out_refs
                .push(unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr(), n) });
        }
        self.engine.process(n, &self.in_refs, &mut self.out_refs);
        self.in_refs.clear();
        self.out_refs.clear();
        if out == Out::Discard {
            return;
        }
        let oc = io.out_ch;
        for (k, m) in self.out_map.iter().enumerate() {
            let Some(c) = *m else { continue };
            if c >= oc {
                continue;
            }
            for f in 0..n {
                let g = match out {
                    Out::Mix(g) => g.at(f),
                    _ => 1.0,
                };
                io.data[(io.offset + f) * oc + c] += self.outs[k][f] * g;
            }
        }
    }
}

/// Fill interleaved `data` (`out_ch` channels) with the engines' output, reading interleaved
/// input frames (`in_ch` channels) from `input` into the planar `dev_in`. Real-time safe.
/// `frames_done` is the engine's running frame count (advanced here); `at` the instant of the
/// buffer's first frame, at `rate` Hz.
#[allow(clippy::too_many_arguments)]
fn process(
    deck: &mut Deck<Graph>,
    data: &mut [f32],
    out_ch: usize,
    input: Option<&mut rtrb::Consumer<f32>>,
    dev_in: &mut [Vec<f32>],
    silence: &[f32],
    frames_done: &mut u64,
    at: Instant,
    rate: u32,
) {
    data.fill(0.0);
    let in_ch = dev_in.len();
    let frames = data.len() / out_ch.max(1);
    let mut input = input;
    let mut done = 0;
    while done < frames {
        let n = (frames - done).min(CHUNK);
        // Deinterleave the input ring into the planar buffers (silence on underrun).
        for b in dev_in.iter_mut() {
            b[..n].fill(0.0);
        }
        if let Some(ring) = input.as_deref_mut()
            && in_ch > 0
        {
            let got = (ring.slots() / in_ch).min(n);
            if let Ok(chunk) = ring.read_chunk(got * in_ch) {
                let (a, b) = chunk.as_slices();
                for (i, &v) in a.iter().chain(b.iter()).enumerate() {
                    dev_in[i % in_ch][i / in_ch] = v;
                }
                chunk.commit_all();
            }
        }
        let chunk_at =
            at + Duration::from_nanos(done as u64 * 1_000_000_000 / u64::from(rate.max(1)));
        deck.poll();
        let mut io = ChunkIo {
            data: &mut *data,
            out_ch,
            offset: done,
            inputs: dev_in,
            silence,
        };
        deck.process(&mut io, n, *frames_done, chunk_at, rate);
        *frames_done += n as u64;
        done += n;
    }
}

/// The streams of one open device (dropped to close it).
struct Open {
    _output: Stream,
    _input: Option<Stream>,
    swap: SwapTx<Box<Graph>>,
    failed: Arc<AtomicBool>,
}

fn find_device(host: &::cpal::Host, want: Option<&str>, output: bool) -> Option<Device> {
    match want {
        None if output => host.default_output_device(),
        None => host.default_input_device(),
        Some(w) => {
            let w = w.to_ascii_lowercase();
            let devices = if output {
                host.output_devices().ok()?.collect::<Vec<_>>()
            } else {
                host.input_devices().ok()?.collect::<Vec<_>>()
            };
            devices
                .into_iter()
                .find(|d| d.to_string().to_ascii_lowercase().contains(&w))
        }
    }
}

fn open(cfg: &AudioConfig, engine: Box<Engine>, shared: &Arc<Shared>) -> Result<Open, AudioError> {
    let host = ::cpal::default_host();
    let dev = find_device(&host, cfg.device.as_deref(), true).ok_or_else(|| {
        AudioError::Device(format!(
            "no output device matching `{}`",
            cfg.device.as_deref().unwrap_or("(default)")
        ))
    })?;
    let out_default = dev
        .default_output_config()
        .map_err(|e| AudioError::Device(format!("{dev}: {e}")))?;
    let out_ch = out_default.channels() as usize;
    let config = |ch: usize| StreamConfig {
        channels: ch as u16,
        sample_rate: cfg.sample_rate,
        buffer_size: BufferSize::Fixed(cfg.block as u32),
    };
    let failed = Arc::new(AtomicBool::new(false));
    let want_input = !engine.input_ports().is_empty();

    // Input stream (optional) → ring → output callback.
    let (mut input, mut in_ch) = (None, 0);
    let mut ring_rx = None;
    if want_input {
        match find_device(&host, cfg.device.as_deref(), false) {
            Some(idev) => {
                let ch = idev
                    .default_input_config()
                    .map(|c| c.channels() as usize)
                    .unwrap_or(2);
                let (mut tx, rx) = rtrb::RingBuffer::<f32>::new(ch * cfg.block.max(64) * 8);
                let f = failed.clone();
                let s = idev
                    .build_input_stream(
                        config(ch),
                        move |data: &[f32], _: &::cpal::InputCallbackInfo| {
                            let n = data.len().min(tx.slots());
                            if let Ok(mut chunk) = tx.write_chunk(n) {
                                let (a, b) = chunk.as_mut_slices();
                                let (da, db) = data[..n].split_at(a.len());
                                a.copy_from_slice(da);
                                b.copy_from_slice(db);
                                chunk.commit_all();
                            }
                        },
                        move |_| f.store(true, Ordering::Relaxed),
                        None,
                    )
                    .map_err(|e| AudioError::Device(format!("{idev} input: {e}")))?;
                input = Some(s);
                in_ch = ch;
                ring_rx = Some(rx);
            }
            None => tracing::warn!("no input device; channel inputs are silent"),
        }
    }

    let (swap_tx, swap_rx): (SwapTx<Box<Graph>>, SwapRx<Box<Graph>>) = swap::pair();
    let mut deck = Deck::new(Graph::new(engine), swap_rx, cfg.swap_fade_ms);
    let mut dev_in: Vec<Vec<f32>> = (0..in_ch)
        .map(|_| crate::dsp::util::zeroed(CHUNK))
        .collect();
    let silence = crate::dsp::util::zeroed(CHUNK);
    let st = shared.clone();
    let f = failed.clone();
    let rate = cfg.sample_rate;
    let mut load = LoadMeter::new();
    let mut first = true;
    let mut frames_done: u64 = 0;
    let output = dev
        .build_output_stream(
            config(out_ch),
            move |data: &mut [f32], _: &::cpal::OutputCallbackInfo| {
                if first {
                    // Once, on cpal's audio thread: not the steady-state path.
                    first = false;
                    if !rt::is_realtime() {
                        rt::make_realtime("cpal audio", rt::RT_PRIORITY);
                    }
                }
                let t0 = Instant::now();
                let _ftz = DenormalGuard::new();
                process(
                    &mut deck,
                    data,
                    out_ch,
                    ring_rx.as_mut(),
                    &mut dev_in,
                    &silence,
                    &mut frames_done,
                    t0,
                    rate,
                );
                load.update(&st, t0.elapsed(), data.len() / out_ch.max(1), rate);
            },
            move |_| {
                f.store(true, Ordering::Relaxed);
            },
            None,
        )
        .map_err(|e| AudioError::Device(format!("{dev} output: {e}")))?;
    output
        .play()
        .map_err(|e| AudioError::Device(format!("{dev}: {e}")))?;
    if let Some(i) = &input {
        i.play()
            .map_err(|e| AudioError::Device(format!("{dev} input: {e}")))?;
    }
    tracing::info!("cpal: opened `{dev}` ({out_ch} out, {in_ch} in, {rate} Hz)");
    shared.sample_rate.store(rate, Ordering::Relaxed);
    shared.block.store(cfg.block, Ordering::Relaxed);
    shared.connected.store(true, Ordering::Relaxed);
    Ok(Open {
        _output: output,
        _input: input,
        swap: swap_tx,
        failed,
    })
}

/// Swaps asked for while the device is open go through the supervisor thread, which owns
/// the (not necessarily `Send`) streams.
type Inbox = Arc<Mutex<Vec<Box<Engine>>>>;

/// The running cpal backend.
pub(crate) struct CpalBackend {
    shared: Arc<Shared>,
    inbox: Inbox,
    supervisor: Option<JoinHandle<()>>,
}

impl CpalBackend {
    pub(crate) fn start(cfg: &AudioConfig, factory: EngineFactory) -> Result<Self, AudioError> {
        let shared = Shared::new("cpal");
        let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
        // Open once here so a wrong device name fails `start`.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), AudioError>>();
        let supervisor = {
            let (shared, inbox, cfg) = (shared.clone(), inbox.clone(), cfg.clone());
            std::thread::Builder::new()
                .name("faderbridge-cpal".into())
                .spawn(move || supervise(shared, inbox, cfg, factory, ready_tx))
                .map_err(|source| AudioError::Thread {
                    what: "cpal supervisor",
                    source,
                })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                shared,
                inbox,
                supervisor: Some(supervisor),
            }),
            Ok(Err(e)) => {
                let _ = supervisor.join();
                Err(e)
            }
            Err(_) => Err(AudioError::Device("the cpal thread ended".into())),
        }
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub(crate) fn swap_engine(&self, engine: Box<Engine>) {
        if let Ok(mut q) = self.inbox.lock() {
            q.push(engine);
        }
    }

    pub(crate) fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }
}

fn supervise(
    shared: Arc<Shared>,
    inbox: Inbox,
    cfg: AudioConfig,
    factory: EngineFactory,
    ready: std::sync::mpsc::Sender<Result<(), AudioError>>,
) {
    let build = |shared: &Arc<Shared>| -> Result<Open, AudioError> {
        let engine =
            factory(cfg.sample_rate, cfg.block).map_err(|message| AudioError::Factory {
                rate: cfg.sample_rate,
                block: cfg.block,
                message,
            })?;
        open(&cfg, engine, shared)
    };
    let mut dev = match build(&shared) {
        Ok(o) => {
            let _ = ready.send(Ok(()));
            Some(o)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut backoff = Backoff::new();
    let mut next_try = Instant::now();
    while !shared.stopping() {
        let lost = dev
            .as_ref()
            .is_some_and(|d| d.failed.load(Ordering::Relaxed));
        if lost {
            dev = None;
            shared.connected.store(false, Ordering::Relaxed);
            shared.xruns.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("audio device failed; reopening it");
            backoff.reset();
            next_try = Instant::now() + backoff.next();
        }
        match dev.as_mut() {
            Some(d) => {
                let new: Vec<Box<Engine>> = inbox
                    .lock()
                    .map(|mut q| std::mem::take(&mut *q))
                    .unwrap_or_default();
                for e in new {
                    if d.swap.send(Graph::new(e)).is_err() {
                        tracing::warn!("engine swap queue is full; this engine was dropped");
                    }
                }
                d.swap.collect();
            }
            None if Instant::now() >= next_try => match build(&shared) {
                Ok(o) => {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                    dev = Some(o);
                    if let Ok(mut q) = inbox.lock() {
                        q.clear();
                    }
                }
                Err(e) => {
                    tracing::debug!("reopening the audio device: {e}");
                    next_try = Instant::now() + backoff.next();
                }
            },
            None => {}
        }
        nap(&shared, Duration::from_millis(10));
    }
    drop(dev);
    shared.connected.store(false, Ordering::Relaxed);
}

/// The cpal part of `faderbridge ports`: devices with their channel counts.
pub(crate) fn list_devices() -> String {
    let host = ::cpal::default_host();
    let mut s = format!("Audio devices ({:?}):\n", host.id());
    let Ok(devices) = host.devices() else {
        return s + "  (cannot enumerate)\n";
    };
    let mut any = false;
    for d in devices {
        any = true;
        let max_ch = |cfgs: Option<Vec<::cpal::SupportedStreamConfigRange>>| {
            cfgs.unwrap_or_default()
                .iter()
                .map(|c| c.channels())
                .max()
                .unwrap_or(0)
        };
        let ins = max_ch(d.supported_input_configs().ok().map(|i| i.collect()));
        let outs = max_ch(d.supported_output_configs().ok().map(|i| i.collect()));
        s += &format!("  {d}  ({ins} in, {outs} out)\n");
    }
    if !any {
        s += "  (none)\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_numbers_are_one_based_channels() {
        assert_eq!(channel_of(&PortRef::Number(1)), Some(0));
        assert_eq!(channel_of(&PortRef::Number(4)), Some(3));
        assert_eq!(channel_of(&PortRef::Number(0)), None);
        assert_eq!(channel_of(&PortRef::Name("system:capture_1".into())), None);
    }
}
