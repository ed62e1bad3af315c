//! The mix engine: a compiled graph of channel strips, buses and the master, processed block
//! by block. The live backends and the offline renderer run this same code; only where blocks
//! come from differs.
//!
//! - [`Engine::build`] runs on the control plane: it allocates every buffer and processor.
//! - [`Engine::process`] runs on the audio thread: it drains parameter changes from a wait-free
//!   queue ([`EngineHandle`] is the sending side), processes, and never allocates, locks or
//!   makes a system call.
//! - Structural changes (channels, buses, routing) build a new `Engine` and swap it in whole.
//!
//! Order inside a block: every channel strip mixes into the inputs of its destination and of
//! its sends' buses; buses run in dependency order (a bus feeding another runs first) and sum
//! into their destination; the master runs last.
//!
//! Automation ([`lanes`]): the lanes of a [`Playback`] drive their parameters from inside
//! `process`, read at transport positions (a 32-frame grid and every breakpoint) so a live run
//! and a render of the same lanes produce the same samples; gains and pans follow them per
//! sample. Sets arrive through [`EngineHandle::send_playback`] without allocation or locks on
//! the audio thread; without a set the only cost is one test per sub-block.

mod bus;
pub mod clock;
mod eqset;
pub mod insert;
pub mod lanes;
pub mod latcomp;
mod loudness;
mod meters;
mod strip;

use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::automation::Playback;
use crate::dsp::dynamics::Compressor;
use crate::dsp::filters::Slope;
use crate::params::{Addr, Key, ParamChange, ParamTree, Target};
use crate::session::model::{BusKind, Output, PortRef, Session, Source};

use bus::{BusStrip, MasterStrip};
use lanes::{Move, PlaySet};
pub use loudness::{LoudnessMeter, LoudnessTap, MasterLoudness, TAP_SECONDS};
pub use meters::{MeterBank, Meters};
use strip::ChannelStrip;
pub use strip::{SourceRt, StemData, StripMeters};

/// Glide time of every gain (fader, pan, mute, sends, trim).
pub const GAIN_GLIDE_MS: f32 = 10.0;

/// Blocks the helper thread of [`Engine::render_offline`] may run ahead of the main thread.
pub const OFFLINE_AHEAD: usize = 3;

/// Capacity of the parameter queue: changes beyond it wait on the sender's side.
pub const QUEUE_CAPACITY: usize = 4096;
/// Automation sets ([`EngineHandle::send_playback`]) that may wait for the engine.
pub const PLAYBACK_RING: usize = 4;
/// Most changes the engine holds for later blocks (timed OSC bundles are handed over a few
/// milliseconds ahead, so this is far more than a client can fill); beyond it a change
/// applies at once.
pub const PENDING_CAPACITY: usize = 1024;

/// Pan gains (L, R). Mono sources: constant power, -3 dB each side at centre. Stereo sources
/// (and buses): balance, unity at centre, the far side falling with the same sine law.
pub fn pan_gains(channels: usize, pan: f32) -> (f32, f32) {
    let p = pan.clamp(-1.0, 1.0);
    let theta = (p + 1.0) * std::f32::consts::FRAC_PI_4;
    let (l, r) = (theta.cos(), theta.sin());
    if channels >= 2 {
        // The near side stays at exactly unity; the far side follows the sine law.
        let s = std::f32::consts::SQRT_2;
        if p > 0.0 {
            ((l * s).min(1.0), 1.0)
        } else if p < 0.0 {
            (1.0, (r * s).min(1.0))
        } else {
            (1.0, 1.0)
        }
    } else {
        (l, r)
    }
}

pub(crate) fn slope_of(v: f32) -> Slope {
    if v >= 0.5 { Slope::Db24 } else { Slope::Db12 }
}

pub(crate) fn set_comp_param(comp: &mut Compressor, p: &mut [f32; 6], key: Key, v: f32) {
    let i = match key {
        Key::CompThreshold => 0,
        Key::CompRatio => 1,
        Key::CompKnee => 2,
        Key::CompAttack => 3,
        Key::CompRelease => 4,
        Key::CompMakeup => 5,
        _ => return,
    };
    p[i] = v;
    comp.set(p[0], p[1], p[2], p[3], p[4], p[5]);
}

/// The engine inputs of one sub-block: every input slice (one per [`Engine::input_ports`]
/// entry, any count) and the frame offset of the sub-block inside them. Passing the offset
/// down instead of re-slicing keeps the audio thread free of per-input arrays, so the number
/// of inputs has no cap.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    slices: &'a [&'a [f32]],
    offset: usize,
}

impl<'a> Inputs<'a> {
    /// Frames `offset..offset + n` of input `idx`, or `None` when the input is missing or
    /// shorter than that.
    fn get(&self, idx: usize, n: usize) -> Option<&'a [f32]> {
        self.slices.get(idx)?.get(self.offset..self.offset + n)
    }
}

/// Fill a strip's buffers from its source for the block starting at transport sample `pos`.
fn fill_source(src: &SourceRt, pos: u64, inputs: Inputs<'_>, bufs: [&mut [f32]; 2], nch: usize) {
    let n = bufs[0].len();
    for (c, buf) in bufs.into_iter().enumerate().take(nch) {
        match src {
            SourceRt::File(data) => {
                let chan = &data[c.min(data.len() - 1)];
                let start = (pos as usize).min(chan.len());
                let end = (start + n).min(chan.len());
                let got = end - start;
                buf[..got].copy_from_slice(&chan[start..end]);
                buf[got..].fill(0.0);
            }
            SourceRt::Input(idx) => match inputs.get(idx[c], n) {
                Some(input) => buf.copy_from_slice(input),
                None => buf.fill(0.0),
            },
            SourceRt::Silence => buf.fill(0.0),
        }
    }
}

/// Run `strips` over `n` frames at transport `pos`, mixing into frames `off..off + n` of
/// `master_in` and `bus_inputs`.
fn run_strips(
    strips: &mut [ChannelStrip],
    n: usize,
    pos: u64,
    inputs: Inputs<'_>,
    master_in: &mut [Vec<f32>; 2],
    bus_inputs: &mut [[Vec<f32>; 2]],
    off: usize,
) {
    let end = off + n;
    for ch in strips {
        // A bus destination's buffers are taken out so the strip can also write sends.
        let bus = match ch.output {
            Output::Bus(b) => Some(b),
            Output::Master => None,
        };
        let mut taken = bus.map(|b| std::mem::take(&mut bus_inputs[b]));
        let [l, r] = match taken.as_mut() {
            Some(t) => t,
            None => &mut *master_in,
        };
        ch.process(
            n,
            pos,
            inputs,
            [&mut l[off..end], &mut r[off..end]],
            bus_inputs,
            off,
        );
        if let (Some(b), Some(t)) = (bus, taken) {
            bus_inputs[b] = t;
        }
    }
}

/// Move a channel strip's parameter as a lane reading says (`solo_active`: the console's solo
/// state, for a mute's gates).
fn drive_strip(ch: &mut ChannelStrip, key: Key, v: f32, m: Move, solo_active: bool) {
    match m {
        Move::Set => {
            ch.apply(key, v);
            if key == Key::Mute {
                ch.update_gates(solo_active);
            }
        }
        Move::Ramp(n) => {
            ch.ramp(key, v, n);
        }
    }
}

/// The same for a bus.
fn drive_bus(b: &mut BusStrip, key: Key, v: f32, m: Move) {
    match m {
        Move::Set => b.apply(key, v),
        Move::Ramp(n) => b.ramp(key, v, n),
    };
}

/// The same for the master.
fn drive_master(b: &mut MasterStrip, key: Key, v: f32, m: Move) {
    match m {
        Move::Set => b.apply(key, v),
        Move::Ramp(n) => b.ramp(key, v, n),
    };
}

/// Fill `tx`'s ring with `fill` and empty it again through `rx`, on the control plane, before
/// either end goes to the audio thread: every page of the ring is then written (a fresh ring
/// is untouched memory, and the audio thread's first write to each page would fault).
pub(crate) fn prefault_ring<T: Copy>(
    tx: &mut rtrb::Producer<T>,
    rx: &mut rtrb::Consumer<T>,
    fill: T,
) {
    while tx.push(fill).is_ok() {}
    while rx.pop().is_ok() {}
}

/// The engine's queue of held changes, its memory written (see [`prefault_ring`]).
fn prefaulted_queue() -> VecDeque<ParamChange> {
    let mut q = VecDeque::with_capacity(PENDING_CAPACITY);
    q.resize(PENDING_CAPACITY, DUMMY_CHANGE);
    q.clear();
    q
}

/// A change that is only ever used to fill memory.
const DUMMY_CHANGE: ParamChange = ParamChange {
    addr: Addr {
        target: Target::Master,
        key: Key::FaderDb,
    },
    value: 0.0,
    frame: 0,
};

/// Errors building an engine.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("channel {channel}: stem has {got} channels; only mono and stereo stems are supported")]
    StemChannels { channel: String, got: usize },
    #[error("channel {channel}: its file source was not loaded")]
    StemMissing { channel: String },
    #[error("block size {0} is out of range 1..=8192")]
    Block(usize),
}

/// The sending side of an engine's parameter queue and of its automation sets (control
/// plane).
pub struct EngineHandle {
    producer: rtrb::Producer<ParamChange>,
    clock: Arc<clock::FrameClock>,
    play_tx: rtrb::Producer<Box<PlaySet>>,
    play_back: rtrb::Consumer<Box<PlaySet>>,
    /// The parameters the last set sent drives (lanes not among them are new: they glide in).
    playing: HashSet<Addr>,
}

impl EngineHandle {
    /// The engine frame that plays at `t` (for [`ParamChange::frame`]); None while the
    /// engine is not being run by a backend that stamps its blocks.
    pub fn frame_at(&self, t: Instant) -> Option<u64> {
        self.clock.frame_at(t)
    }

    /// Queue a change (applied at its frame, or at the next block start when that frame
    /// has passed). A full queue gives the change back.
    ///
    /// # Errors
    /// The change, when the queue is full.
    pub fn send(&mut self, change: ParamChange) -> Result<(), ParamChange> {
        self.producer
            .push(change)
            .map_err(|rtrb::PushError::Full(c)| c)
    }

    /// Hand the engine a new automation set; it plays from the start of a coming block (see
    /// [`crate::automation::playback`]). Lanes of parameters the previous set did not drive
    /// are new (their `glide_in` applies). Frees the sets the engine has given back first.
    /// Allocates (control plane).
    ///
    /// # Errors
    /// The set, when [`PLAYBACK_RING`] sets already wait for the engine.
    pub fn send_playback(&mut self, play: Box<Playback>) -> Result<(), Box<Playback>> {
        self.collect();
        let addrs: HashSet<Addr> = play.lanes.iter().map(|l| l.addr).collect();
        let prev = &self.playing;
        let set = PlaySet::new(play, |l| !prev.contains(&l.addr));
        match self.play_tx.push(set) {
            Ok(()) => {
                self.playing = addrs;
                Ok(())
            }
            Err(rtrb::PushError::Full(set)) => Err((*set).into_playback()),
        }
    }

    /// Free the automation sets the engine has replaced; returns how many. (Also done by
    /// every [`EngineHandle::send_playback`].)
    pub fn collect(&mut self) -> usize {
        let mut n = 0;
        while let Ok(old) = self.play_back.pop() {
            drop(old);
            n += 1;
        }
        n
    }
}

/// An input the engine reads: one per channel input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPort {
    /// Port name (`kick_in`, `keys_in_L`).
    pub name: String,
    /// The interface input (or JACK port) the session connects it to.
    pub source: PortRef,
}

/// Where an engine output goes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPort {
    /// Port name (`master_L`, `cue_R`).
    pub name: String,
    /// The interface output the session routes it to, if any.
    pub dest: Option<PortRef>,
}

/// Where a port sits on the engine's signal path, for the latency a backend reports
/// ([`Engine::port_latencies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLatency {
    /// A hardware insert's send or return: outside the main path (inputs → outputs), so the
    /// latency reported through the main path must not run through it (the gear between a
    /// send and its return would close a loop).
    pub insert: bool,
    /// An input: samples from it to the main outputs. An output: samples from the main inputs
    /// to it.
    pub samples: usize,
}

/// How the hardware inserts run in an engine ([`Engine::build_with`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InsertSetup {
    /// Round-trip latency (samples) of each channel's insert, indexed like
    /// `Session::channels`; `None` or a missing entry: unknown (a delay of 0).
    pub latency: Vec<Option<f64>>,
    /// The same for each bus's insert, indexed like `Session::buses`.
    pub bus_latency: Vec<Option<f64>>,
    /// The same for the master's insert.
    pub master_latency: Option<f64>,
    /// True when outboard gear is patched in (a live backend with ports); false holds every
    /// insert bypassed (its latency delay only).
    pub outboard: bool,
}

impl InsertSetup {
    /// No gear (offline renders): every insert bypassed, delayed by the session's fixed
    /// `latency: N` (a measured `auto` latency is unknown here: 0).
    pub fn offline(session: &Session) -> Self {
        let fixed = |i: Option<&crate::session::model::Insert>| match i?.latency {
            crate::session::model::InsertLatency::Samples(n) => Some(f64::from(n)),
            crate::session::model::InsertLatency::Auto => None,
        };
        Self {
            latency: session
                .channels
                .iter()
                .map(|c| fixed(c.insert.as_ref()))
                .collect(),
            bus_latency: session
                .buses
                .iter()
                .map(|b| fixed(b.insert.as_ref()))
                .collect(),
            master_latency: fixed(session.master.insert.as_ref()),
            outboard: false,
        }
    }
}

/// The ports of a hardware insert: the send is the next output after `n` (N → N, N+1 for a
/// stereo channel; a JACK port name is used for both sides).
fn insert_port(r: &PortRef, side: usize) -> PortRef {
    match r {
        PortRef::Number(n) => PortRef::Number(n + side as u32),
        PortRef::Name(_) => r.clone(),
    }
}

/// A latency in samples from a setup entry (unknown, negative or not finite: 0).
fn latency_samples(l: Option<f64>) -> usize {
    l.filter(|l| l.is_finite() && *l > 0.0)
        .map_or(0, |l| l.round() as usize)
}

/// Add the ports of an insert on strip `name` with `nch` channels and build its processor.
#[allow(clippy::too_many_arguments)]
fn add_insert(
    name: &str,
    ins: &crate::session::model::Insert,
    nch: usize,
    latency: Option<f64>,
    outboard: bool,
    sample_rate: f32,
    max_block: usize,
    outputs: &mut Vec<OutputPort>,
    input_ports: &mut Vec<InputPort>,
) -> insert::InsertRt {
    let (first_out, first_in) = (outputs.len(), input_ports.len());
    for side in 0..nch {
        let sfx = match (nch, side) {
            (1, _) => "",
            (_, 0) => "_L",
            _ => "_R",
        };
        outputs.push(OutputPort {
            name: format!("{name}_insert_send{sfx}"),
            dest: Some(insert_port(&ins.send, side)),
        });
        input_ports.push(InputPort {
            name: format!("{name}_insert_return{sfx}"),
            source: insert_port(&ins.ret, side),
        });
    }
    let last = nch - 1;
    let mut rt = insert::InsertRt::new(
        nch,
        latency_samples(latency),
        sample_rate,
        max_block,
        [first_out, first_out + last],
        [first_in, first_in + last],
    );
    rt.set_outboard(outboard);
    rt
}

/// Copy an insert's send of the last sub-block (`n` frames) to the engine outputs at `offset`.
fn write_send(
    ins: Option<&insert::InsertRt>,
    nch: usize,
    n: usize,
    outputs: &mut [&mut [f32]],
    offset: usize,
) {
    let Some(ins) = ins else { return };
    for (c, &o) in ins.send_out.iter().enumerate().take(nch) {
        if let Some(out) = outputs.get_mut(o) {
            out[offset..offset + n].copy_from_slice(&ins.send_buf[c][..n]);
        }
    }
}

/// The compiled mix graph.
pub struct Engine {
    sample_rate: f32,
    max_block: usize,
    channels: Vec<ChannelStrip>,
    buses: Vec<BusStrip>,
    /// Bus indices in processing order (sources before destinations).
    bus_order: Vec<usize>,
    /// Summed stereo input of each bus.
    bus_inputs: Vec<[Vec<f32>; 2]>,
    master_in: [Vec<f32>; 2],
    master: MasterStrip,
    outputs: Vec<OutputPort>,
    /// For each bus with direct outputs, its first engine output index.
    bus_out_index: Vec<Option<usize>>,
    input_ports: Vec<InputPort>,
    solo_active: bool,
    /// Transport position (samples) of the next block.
    position: u64,
    consumer: Option<rtrb::Consumer<ParamChange>>,
    /// Changes taken from the queue whose frame lies in a later block, ordered by frame
    /// (equal frames in arrival order). Capacity [`PENDING_CAPACITY`], never grown.
    pending: VecDeque<ParamChange>,
    /// Absolute engine frame of the next block's first frame ([`Engine::begin_block`]).
    block_frame: u64,
    clock: Arc<clock::FrameClock>,
    meter_bank: Arc<MeterBank>,
    /// Copies the master's output to the live loudness meter ([`Engine::loudness_tap`]).
    loudness: Option<loudness::LoudnessTx>,
    /// Transport loop length (live playback of file sources).
    loop_len: Option<u64>,
    /// False while the transport is stopped: file sources are silent and the position holds.
    playing: bool,
    /// The automation lanes playing (None: no automation; costs one test per sub-block).
    play: Option<Box<PlaySet>>,
    /// New sets from [`EngineHandle::send_playback`], and the way back for replaced ones.
    play_rx: Option<rtrb::Consumer<Box<PlaySet>>>,
    play_ret: Option<rtrb::Producer<Box<PlaySet>>>,
    /// The gain glide ([`GAIN_GLIDE_MS`]) in frames: lane segments shorter are steps.
    glide_frames: u64,
    /// The inserts' latency from input to master output ([`latcomp::Plan::latency`]).
    comp_latency: usize,
    /// Each bus's aligned input time and the master's (samples, [`latcomp::Plan`]): where
    /// their inserts' sends sit on the signal path ([`Engine::port_latencies`]).
    bus_input_times: Vec<usize>,
    master_input_time: usize,
}

impl Engine {
    /// Build the graph of `session` at `sample_rate` for blocks of up to `max_block` frames.
    /// `stems[i]` is the decoded audio of channel `i` when its source is a file. Every
    /// parameter starts at the session's value with no glide. Allocates; control plane only.
    ///
    /// # Errors
    /// A file source without audio, a stem with more than two channels, a bad block size.
    ///
    /// Hardware inserts run without gear (bypassed, see [`InsertSetup::offline`]); the live
    /// daemon uses [`Engine::build_with`].
    pub fn build(
        session: &Session,
        tree: &ParamTree,
        stems: &HashMap<usize, StemData>,
        sample_rate: f32,
        max_block: usize,
    ) -> Result<Self, BuildError> {
        let setup = InsertSetup::offline(session);
        Self::build_with(session, tree, stems, sample_rate, max_block, &setup)
    }

    /// [`Engine::build`] with the hardware inserts set up as `inserts` says: every channel
    /// with `insert:` gets an output `<name>_insert_send` and an input `<name>_insert_return`
    /// (`_L`/`_R` for stereo channels), after all other outputs and inputs; then every bus
    /// with `insert:` (`<bus>_insert_send_L`/`_R`, ...), then the master
    /// (`master_insert_send_L`, ...). Every summing point gets its inputs aligned
    /// ([`latcomp`]).
    ///
    /// # Errors
    /// As [`Engine::build`].
    pub fn build_with(
        session: &Session,
        tree: &ParamTree,
        stems: &HashMap<usize, StemData>,
        sample_rate: f32,
        max_block: usize,
        inserts: &InsertSetup,
    ) -> Result<Self, BuildError> {
        if max_block == 0 || max_block > 8192 {
            return Err(BuildError::Block(max_block));
        }
        let mut input_ports: Vec<InputPort> = Vec::new();
        let aux: Vec<usize> = session
            .buses
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind == BusKind::Aux)
            .map(|(i, _)| i)
            .collect();
        let mut channels = Vec::with_capacity(session.channels.len());
        for (i, ch) in session.channels.iter().enumerate() {
            let (src, nch) = match &ch.source {
                Source::File(_) => {
                    let data = stems.get(&i).ok_or_else(|| BuildError::StemMissing {
                        channel: ch.name.clone(),
                    })?;
                    if data.is_empty() || data.len() > 2 {
                        return Err(BuildError::StemChannels {
                            channel: ch.name.clone(),
                            got: data.len(),
                        });
                    }
                    (SourceRt::File(data.clone()), data.len())
                }
                Source::Input(ports) => {
                    let first = input_ports.len();
                    let stereo = ports.len() >= 2;
                    for (k, p) in ports.iter().take(2).enumerate() {
                        let name = match (stereo, k) {
                            (false, _) => format!("{}_in", ch.name),
                            (true, 0) => format!("{}_in_L", ch.name),
                            (true, _) => format!("{}_in_R", ch.name),
                        };
                        input_ports.push(InputPort {
                            name,
                            source: p.clone(),
                        });
                    }
                    let second = if stereo { first + 1 } else { first };
                    (SourceRt::Input([first, second]), if stereo { 2 } else { 1 })
                }
                Source::None => (SourceRt::Silence, 1),
            };
            channels.push(ChannelStrip::new(
                ch,
                nch,
                src,
                &aux,
                sample_rate,
                max_block,
            ));
        }

        let buses: Vec<BusStrip> = session
            .buses
            .iter()
            .map(|b| BusStrip::new(b, sample_rate, max_block))
            .collect();
        let bus_order = bus_order(session);

        let mut outputs = vec![
            OutputPort {
                name: "master_L".into(),
                dest: session.master.outputs.first().cloned(),
            },
            OutputPort {
                name: "master_R".into(),
                dest: session.master.outputs.get(1).cloned(),
            },
        ];
        let mut bus_out_index = vec![None; session.buses.len()];
        for (i, b) in session.buses.iter().enumerate() {
            if !b.outputs.is_empty() {
                bus_out_index[i] = Some(outputs.len());
                for (side, k) in ["L", "R"].iter().zip(0..) {
                    outputs.push(OutputPort {
                        name: format!("{}_{side}", b.name),
                        dest: b.outputs.get(k).or(b.outputs.first()).cloned(),
                    });
                }
            }
        }

        // Hardware inserts: their ports come after every other output and input (channels,
        // then buses, then the master).
        for (i, ch) in session.channels.iter().enumerate() {
            let Some(ins) = &ch.insert else { continue };
            let strip = &mut channels[i];
            let lat = inserts.latency.get(i).copied().flatten();
            strip.insert = Some(add_insert(
                &ch.name,
                ins,
                strip.nch,
                lat,
                inserts.outboard,
                sample_rate,
                max_block,
                &mut outputs,
                &mut input_ports,
            ));
        }
        let mut buses = buses;
        for (i, b) in session.buses.iter().enumerate() {
            let Some(ins) = &b.insert else { continue };
            let lat = inserts.bus_latency.get(i).copied().flatten();
            buses[i].insert = Some(add_insert(
                &b.name,
                ins,
                2,
                lat,
                inserts.outboard,
                sample_rate,
                max_block,
                &mut outputs,
                &mut input_ports,
            ));
        }
        let master_pos = session
            .master
            .insert
            .as_ref()
            .map(|i| i.position)
            .unwrap_or_default();
        let mut master = MasterStrip::new(sample_rate, master_pos);
        if let Some(ins) = &session.master.insert {
            master.insert = Some(add_insert(
                "master",
                ins,
                2,
                inserts.master_latency,
                inserts.outboard,
                sample_rate,
                max_block,
                &mut outputs,
                &mut input_ports,
            ));
        }

        // Latency compensation of the whole graph ([`latcomp`]).
        let lat_of = |i: Option<&insert::InsertRt>| i.map_or(0, insert::InsertRt::latency);
        let chan_nodes: Vec<latcomp::ChanNode> = channels
            .iter()
            .map(|c| latcomp::ChanNode {
                latency: lat_of(c.insert.as_ref()),
                post_fader: c.insert.is_some()
                    && c.insert_pos == crate::session::model::InsertPosition::PostFader,
                output: c.output,
                sends: c.sends.iter().map(|s| s.bus).collect(),
            })
            .collect();
        let bus_nodes: Vec<latcomp::BusNode> = session
            .buses
            .iter()
            .zip(&buses)
            .map(|(b, rt)| latcomp::BusNode {
                latency: lat_of(rt.insert.as_ref()),
                output: b.output,
                terminal: !b.outputs.is_empty(),
            })
            .collect();
        let plan = latcomp::plan(
            &chan_nodes,
            &bus_nodes,
            &bus_order,
            lat_of(master.insert.as_ref()),
        );
        for (i, strip) in channels.iter_mut().enumerate() {
            if plan.common[i] > 0 {
                strip.latcomp = Some(insert::CompDelay::new(plan.common[i]));
            }
            if plan.main_extra[i] > 0 {
                let e = plan.main_extra[i];
                strip.main_extra = Some(insert::EdgeDelay::new(e, e));
            }
            for (send, x) in strip.sends.iter_mut().zip(&plan.send_extra[i]) {
                if x.post > 0 || x.pre > 0 {
                    let len = if send.pre_fader { x.pre } else { x.post };
                    send.extra = Some(insert::EdgeDelay::new(x.post.max(x.pre), len));
                    send.extra_len = [x.post, x.pre];
                }
            }
            strip.finish_build(max_block);
        }
        let comp_latency = plan.latency();
        let (bus_input_times, master_input_time) = (plan.bus_input.clone(), plan.master_input);

        let z = || {
            [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ]
        };
        let mut engine = Engine {
            sample_rate,
            max_block,
            channels,
            buses,
            bus_order,
            bus_inputs: (0..session.buses.len()).map(|_| z()).collect(),
            master_in: z(),
            master,
            outputs,
            bus_out_index,
            input_ports,
            solo_active: false,
            position: 0,
            consumer: None,
            pending: prefaulted_queue(),
            block_frame: 0,
            clock: Arc::new(clock::FrameClock::new()),
            meter_bank: Arc::new(MeterBank::new(session.channels.len(), session.buses.len())),
            loudness: None,
            loop_len: None,
            playing: true,
            play: None,
            play_rx: None,
            play_ret: None,
            glide_frames: crate::dsp::util::ms_to_samples(GAIN_GLIDE_MS, sample_rate) as u64,
            comp_latency,
            bus_input_times,
            master_input_time,
        };
        for change in tree.initial_changes() {
            engine.apply(change.addr, change.value);
        }
        engine.update_solo();
        engine.snap();
        Ok(engine)
    }

    /// Offline rendering: process consecutive blocks of `block` frames (capped at
    /// [`Engine::max_block`]) from the current position, with no live inputs, handing every
    /// block's outputs (one slice per [`Engine::output_ports`] entry) to `sink`, until `sink`
    /// returns false.
    ///
    /// With `threads >= 2` (and at least two strips) the second half of the channel strips
    /// runs on a helper thread for the whole run, up to [`OFFLINE_AHEAD`] blocks ahead of the
    /// rest: a strip depends on nothing but its source, so it can run ahead of the buses and
    /// the master, and the helper never waits for them. The main thread runs the first half,
    /// adds the helper's sums in, and runs the buses and the master. The two halves' sums are
    /// added at the end, so the mix differs from the one-thread order by float rounding only.
    /// The strips' meters are published once, at the end.
    ///
    /// A looping or stopped transport, or a parameter queue (see [`Engine::handle`]), makes
    /// this a plain loop over [`Engine::process`] on the calling thread. Allocates and spawns
    /// a thread: never for the audio thread.
    pub fn render_offline(
        &mut self,
        block: usize,
        threads: usize,
        mut sink: impl FnMut(&[&[f32]]) -> bool,
    ) {
        let block = block.clamp(1, self.max_block);
        let mut out_bufs: Vec<Vec<f32>> = (0..self.outputs.len())
            .map(|_| crate::dsp::util::zeroed(block))
            .collect();
        let plain = threads < 2
            || self.channels.len() < 2
            || self.loop_len.is_some()
            || !self.playing
            || self.consumer.is_some()
            // A solo lane changes every strip's gates: the strips must stay together.
            || self.play.as_ref().is_some_and(|p| {
                p.lanes()
                    .iter()
                    .any(|l| matches!(l.addr.key, Key::Solo | Key::SoloSafe))
            });
        if plain {
            loop {
                let mut outs: Vec<&mut [f32]> = out_bufs.iter_mut().map(|b| &mut b[..]).collect();
                self.process(block, &[], &mut outs);
                let outs: Vec<&[f32]> = out_bufs.iter().map(|b| &b[..]).collect();
                if !sink(&outs) {
                    return;
                }
            }
        }
        // The strips leave the engine for the run, so the main thread can borrow the rest.
        let mut channels = std::mem::take(&mut self.channels);
        let half = channels.len() / 2;
        let (mine, theirs) = channels.split_at_mut(half);
        type Sums = ([Vec<f32>; 2], Vec<[Vec<f32>; 2]>);
        let z = || {
            [
                crate::dsp::util::zeroed(block),
                crate::dsp::util::zeroed(block),
            ]
        };
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Sums>(OFFLINE_AHEAD);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Sums>();
        for _ in 0..OFFLINE_AHEAD {
            let sums = (z(), (0..self.bus_inputs.len()).map(|_| z()).collect());
            let _ = free_tx.send(sums);
        }
        let start = self.position;
        let no_inputs = Inputs {
            slices: &[],
            offset: 0,
        };
        // Automation: both threads read every lane at the same key frames (so both split
        // their blocks where the one-thread loop does) and each drives its own parameters:
        // the helper its strips, this thread the rest.
        let mut lanes = self.play.take().filter(|p| !p.is_empty());
        let mut helper_lanes = lanes.clone();
        let glide = self.glide_frames;
        let solo_active = self.solo_active;
        std::thread::scope(|s| {
            s.spawn(move || {
                let _ftz = crate::dsp::util::DenormalGuard::new();
                let mut pos = start;
                // Ends when the main thread drops its end of either queue.
                while let Ok((mut main, mut bus)) = free_rx.recv() {
                    for side in main.iter_mut().chain(bus.iter_mut().flatten()) {
                        side.fill(0.0);
                    }
                    let mut done = 0;
                    while done < block {
                        let mut n = block - done;
                        if let Some(set) = helper_lanes.as_deref_mut() {
                            if set.due(pos, true) {
                                set.read(pos, true, glide, &mut |a, v, m| {
                                    if let Target::Channel(i) = a.target
                                        && let Some(ch) = (i as usize)
                                            .checked_sub(half)
                                            .and_then(|k| theirs.get_mut(k))
                                    {
                                        drive_strip(ch, a.key, v, m, solo_active);
                                    }
                                });
                            }
                            n = n.min(usize::try_from(set.next_key() - pos).unwrap_or(n));
                        }
                        run_strips(theirs, n, pos, no_inputs, &mut main, &mut bus, done);
                        pos += n as u64;
                        done += n;
                    }
                    if full_tx.send((main, bus)).is_err() {
                        break;
                    }
                }
            });
            // Owned by this closure, so a panic in `sink` drops them too and the helper ends
            // instead of the scope waiting for it forever.
            let (free_tx, full_rx) = (free_tx, full_rx);
            let add = |d: &mut [Vec<f32>; 2], s: &[Vec<f32>; 2], off: usize, n: usize| {
                for (d, s) in d.iter_mut().zip(s) {
                    d[..n]
                        .iter_mut()
                        .zip(&s[off..off + n])
                        .for_each(|(d, s)| *d += s);
                }
            };
            while let Ok(theirs) = full_rx.recv() {
                let mut outs: Vec<&mut [f32]> = out_bufs.iter_mut().map(|b| &mut b[..]).collect();
                let mut done = 0;
                while done < block {
                    let mut n = block - done;
                    let pos = self.position;
                    if let Some(set) = lanes.as_deref_mut() {
                        if set.due(pos, true) {
                            set.read(pos, true, glide, &mut |a, v, m| match a.target {
                                Target::Channel(i) => {
                                    if let Some(ch) = mine.get_mut(i as usize) {
                                        drive_strip(ch, a.key, v, m, solo_active);
                                    }
                                }
                                Target::Bus(i) => {
                                    if let Some(b) = self.buses.get_mut(i as usize) {
                                        drive_bus(b, a.key, v, m);
                                    }
                                }
                                Target::Master => drive_master(&mut self.master, a.key, v, m),
                            });
                        }
                        n = n.min(usize::try_from(set.next_key() - pos).unwrap_or(n));
                    }
                    for side in self
                        .master_in
                        .iter_mut()
                        .chain(self.bus_inputs.iter_mut().flatten())
                    {
                        side[..n].fill(0.0);
                    }
                    run_strips(
                        mine,
                        n,
                        pos,
                        no_inputs,
                        &mut self.master_in,
                        &mut self.bus_inputs,
                        0,
                    );
                    add(&mut self.master_in, &theirs.0, done, n);
                    for (d, s) in self.bus_inputs.iter_mut().zip(&theirs.1) {
                        add(d, s, done, n);
                    }
                    self.mix_down(n, no_inputs, &mut outs, done);
                    done += n;
                }
                let _ = free_tx.send(theirs);
                let outs: Vec<&[f32]> = out_bufs.iter().map(|b| &b[..]).collect();
                if !sink(&outs) {
                    break;
                }
            }
            // Dropping both ends stops the helper, whether it waits for a buffer or not.
            drop(free_tx);
            drop(full_rx);
        });
        self.play = lanes;
        self.channels = channels;
        self.publish_meters(self.block_frame);
    }

    /// Switch the channel strips' peak/RMS meters on (the default) or off. An offline render
    /// reads no strip meter, and the meters cost about a twentieth of a strip; the audio is
    /// the same either way. Real-time safe.
    pub fn set_strip_meters(&mut self, on: bool) {
        self.channels.iter_mut().for_each(|c| c.metering = on);
    }

    /// Create the parameter queue: the engine keeps the receiving end, the caller gets the
    /// sending end. Calling it again replaces the queue. Allocates.
    pub fn handle(&mut self) -> EngineHandle {
        let (mut producer, mut consumer) = rtrb::RingBuffer::new(QUEUE_CAPACITY);
        prefault_ring(&mut producer, &mut consumer, DUMMY_CHANGE);
        self.consumer = Some(consumer);
        self.pending.clear();
        let (play_tx, play_rx) = rtrb::RingBuffer::new(PLAYBACK_RING);
        // Room for every set that can be swapped in between two sends (see `take_playback`).
        let (play_ret, play_back) = rtrb::RingBuffer::new(PLAYBACK_RING + 1);
        self.play_rx = Some(play_rx);
        self.play_ret = Some(play_ret);
        EngineHandle {
            producer,
            clock: self.clock.clone(),
            play_tx,
            play_back,
            playing: self
                .play
                .as_ref()
                .map(|p| p.lanes().iter().map(|l| l.addr).collect())
                .unwrap_or_default(),
        }
    }

    /// Play `play` from now on (offline, or before the engine starts): every lane's
    /// parameter is set to the lane's value at the current position at once, with no glide
    /// (this snaps every glide of the engine, like [`Engine::settle`]). Allocates; control
    /// plane only (the audio thread gets sets through [`EngineHandle::send_playback`]).
    pub fn set_playback(&mut self, play: Box<Playback>) {
        let mut set = PlaySet::new(play, |_| false);
        set.relocate();
        let (pos, playing, glide) = (self.position, self.playing, self.glide_frames);
        set.read(pos, playing, glide, &mut |a, v, m| self.drive(a, v, m));
        self.snap();
        set.release_holds();
        self.play = Some(set);
    }

    /// The automation set playing now (None: none was given).
    pub fn playback(&self) -> Option<&Playback> {
        self.play.as_deref().map(PlaySet::playback)
    }

    /// Swap in the newest automation set waiting, handing replaced ones back. Real-time
    /// safe: a set is only taken while the way back has room for the one it replaces.
    fn take_playback(&mut self) {
        let (Some(rx), Some(ret)) = (self.play_rx.as_mut(), self.play_ret.as_mut()) else {
            return;
        };
        while ret.slots() > 0 {
            let Ok(set) = rx.pop() else { break };
            if let Some(old) = self.play.replace(set) {
                // Cannot fail: there was a free slot.
                let _ = ret.push(old);
            }
        }
    }

    /// Move a parameter as a lane reading says.
    fn drive(&mut self, addr: Addr, v: f32, m: Move) {
        match (m, addr.target) {
            (Move::Set, _) => {
                self.apply(addr, v);
            }
            (Move::Ramp(n), Target::Channel(i)) => {
                if let Some(ch) = self.channels.get_mut(i as usize) {
                    ch.ramp(addr.key, v, n);
                }
            }
            (Move::Ramp(n), Target::Bus(i)) => {
                if let Some(b) = self.buses.get_mut(i as usize) {
                    b.ramp(addr.key, v, n);
                }
            }
            (Move::Ramp(n), Target::Master) => {
                self.master.ramp(addr.key, v, n);
            }
        }
    }

    /// Read the lanes due at the transport position (if any); returns how many frames may
    /// run before the next reading (`usize::MAX`: no limit). Real-time safe.
    #[inline]
    fn drive_lanes(&mut self) -> usize {
        let Some(set) = self.play.as_deref() else {
            return usize::MAX;
        };
        if set.is_empty() {
            return usize::MAX;
        }
        let (pos, playing, glide) = (self.position, self.playing, self.glide_frames);
        if set.due(pos, playing) {
            // Out of the engine while it drives the engine (moving a box: no allocation).
            if let Some(mut set) = self.play.take() {
                set.read(pos, playing, glide, &mut |a, v, m| self.drive(a, v, m));
                self.play = Some(set);
            }
        }
        match (&self.play, playing) {
            (Some(set), true) => usize::try_from(set.next_key() - pos).unwrap_or(usize::MAX),
            _ => usize::MAX,
        }
    }

    fn relocate_lanes(&mut self) {
        if let Some(set) = self.play.as_mut() {
            set.relocate();
        }
    }

    /// Create the loudness tap: from now on every processed block of the master's final
    /// output (after limiter and fader) is copied into a wait-free ring whose reading end is
    /// returned (give it to a [`LoudnessMeter`]). Calling it again replaces the tap.
    /// Allocates; control plane only.
    pub fn loudness_tap(&mut self) -> LoudnessTap {
        let (tx, rx) = loudness::tap(self.sample_rate);
        self.loudness = Some(tx);
        rx
    }

    /// The sample rate the engine was built for.
    pub fn sample_rate(&self) -> f32 {
        self.sample_rate
    }

    /// The largest block `process` takes in one call (longer calls are split).
    pub fn max_block(&self) -> usize {
        self.max_block
    }

    /// The inputs the engine reads, one per channel input (`kick_in`, `keys_in_L`), in the
    /// order `process` expects them.
    pub fn input_ports(&self) -> &[InputPort] {
        &self.input_ports
    }

    /// The engine's outputs, in the order `process` writes them: master L/R first, then the
    /// L/R of every bus with direct outputs, then the sends of the hardware inserts of the
    /// channels, the buses and the master (see [`Engine::build_with`]).
    pub fn output_ports(&self) -> &[OutputPort] {
        &self.outputs
    }

    /// Hold every hardware insert bypassed (false: no outboard gear, as on the null backend)
    /// or let the `bypass` parameters decide (true). Control plane, before the engine runs.
    pub fn set_outboard(&mut self, on: bool) {
        let chans = self.channels.iter_mut().map(|c| &mut c.insert);
        let buses = self.buses.iter_mut().map(|b| &mut b.insert);
        for i in chans
            .chain(buses)
            .chain(std::iter::once(&mut self.master.insert))
        {
            if let Some(i) = i.as_mut() {
                i.set_outboard(on);
            }
        }
    }

    /// The latency delay (samples) of each bus's hardware insert (None: no insert).
    pub fn bus_insert_latencies(&self) -> Vec<Option<usize>> {
        self.buses
            .iter()
            .map(|b| b.insert.as_ref().map(insert::InsertRt::latency))
            .collect()
    }

    /// The latency delay (samples) of the master's hardware insert (None: no insert).
    pub fn master_insert_latency(&self) -> Option<usize> {
        self.master.insert.as_ref().map(insert::InsertRt::latency)
    }

    /// The latency delay (samples) of each channel's hardware insert (None: no insert).
    pub fn insert_latencies(&self) -> Vec<Option<usize>> {
        self.channels
            .iter()
            .map(|c| c.insert.as_ref().map(insert::InsertRt::latency))
            .collect()
    }

    /// Constant delay (samples) from input to master output: the limiter's look-ahead plus
    /// the inserts' latency with its compensation ([`Engine::compensation`]).
    pub fn latency(&self) -> usize {
        self.master.latency() + self.comp_latency
    }

    /// Each input's and each output's place on the signal path (in [`Engine::input_ports`] and
    /// [`Engine::output_ports`] order): the main inputs and outputs are [`Engine::latency`]
    /// apart; an insert's send carries the signal of its strip's input time (0 for a channel:
    /// the latency compensation comes after the insert point; a bus's or the master's aligned
    /// input time otherwise); its return reaches the outputs `latency()` minus that time minus
    /// the insert's latency later. Allocates.
    pub fn port_latencies(&self) -> (Vec<PortLatency>, Vec<PortLatency>) {
        let total = self.latency();
        let main = PortLatency {
            insert: false,
            samples: total,
        };
        let mut ins = vec![main; self.input_ports.len()];
        let mut outs = vec![main; self.outputs.len()];
        let chans = self.channels.iter().map(|c| (c.insert.as_ref(), 0));
        let buses = self
            .buses
            .iter()
            .zip(&self.bus_input_times)
            .map(|(b, &t)| (b.insert.as_ref(), t));
        let master = std::iter::once((self.master.insert.as_ref(), self.master_input_time));
        for (rt, at) in chans.chain(buses).chain(master) {
            let Some(rt) = rt else { continue };
            for &o in &rt.send_out {
                if let Some(p) = outs.get_mut(o) {
                    *p = PortLatency {
                        insert: true,
                        samples: at,
                    };
                }
            }
            for &i in &rt.ret_in {
                if let Some(p) = ins.get_mut(i) {
                    *p = PortLatency {
                        insert: true,
                        samples: total.saturating_sub(at + rt.latency()),
                    };
                }
            }
        }
        (ins, outs)
    }

    /// The inserts' part of [`Engine::latency`] (samples): the time at which the master takes
    /// its aligned inputs plus the master insert's latency ([`latcomp::Plan::latency`]; with
    /// inserts on channels only, the largest of their latencies; 0 without insert latencies).
    pub fn compensation(&self) -> usize {
        self.comp_latency
    }

    /// Transport position (samples) of the next block.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Move the transport (file sources play from there; automation lanes are read there).
    pub fn locate(&mut self, sample: u64) {
        self.move_to(sample);
    }

    /// Start (true) or stop the transport: while stopped, file sources are silent and the
    /// position holds (live inputs keep flowing).
    pub fn set_playing(&mut self, playing: bool) {
        self.playing = playing;
    }

    /// Move the transport to `sample`, wrapped into the loop of live file sources.
    /// Real-time safe.
    pub fn seek(&mut self, sample: u64) {
        let to = match self.loop_len {
            Some(l) if l > 0 => sample % l,
            _ => sample,
        };
        self.move_to(to);
    }

    /// Put the transport at `to`; the lanes are re-read when that moves it.
    fn move_to(&mut self, to: u64) {
        if to != self.position {
            self.position = to;
            self.relocate_lanes();
        }
    }

    /// True while the transport plays.
    pub fn playing(&self) -> bool {
        self.playing
    }

    /// Apply one parameter value now. Real-time safe. Returns false when the address names
    /// nothing in this graph.
    pub fn apply(&mut self, addr: Addr, value: f32) -> bool {
        match addr.key {
            Key::TransportPlay => {
                self.playing = value >= 0.5;
                return true;
            }
            Key::TransportLocate => {
                let s = (f64::from(value.max(0.0)) * f64::from(self.sample_rate)).round();
                let mut to = s as u64;
                if let Some(l) = self.loop_len {
                    to %= l;
                }
                self.move_to(to);
                return true;
            }
            _ => {}
        }
        let ok = match addr.target {
            Target::Channel(i) => match self.channels.get_mut(i as usize) {
                Some(ch) => ch.apply(addr.key, value),
                None => false,
            },
            Target::Bus(i) => match self.buses.get_mut(i as usize) {
                Some(b) => b.apply(addr.key, value),
                None => false,
            },
            Target::Master => self.master.apply(addr.key, value),
        };
        if matches!(addr.key, Key::Mute | Key::Solo | Key::SoloSafe) {
            self.update_solo();
        }
        ok
    }

    fn update_solo(&mut self) {
        self.solo_active = self.channels.iter().any(|c| c.solo);
        let solo = self.solo_active;
        self.channels.iter_mut().for_each(|c| c.update_gates(solo));
    }

    /// Jump every glide to its target: for an engine just built and given the console's
    /// current values (control plane, before the engine starts playing).
    pub fn settle(&mut self) {
        self.snap();
    }

    /// Loop the transport over `[0, len)` samples (the live daemon loops its file sources);
    /// `None` plays straight on (render).
    pub fn set_loop(&mut self, len: Option<u64>) {
        self.loop_len = len.filter(|&l| l > 0);
        if let Some(l) = self.loop_len {
            self.move_to(self.position % l);
        }
    }

    /// Length of the longest file source, in samples (0 without file sources).
    pub fn file_length(&self) -> u64 {
        self.channels
            .iter()
            .filter_map(|c| match &c.source {
                SourceRt::File(d) => d.iter().map(|v| v.len() as u64).max(),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn snap(&mut self) {
        self.channels.iter_mut().for_each(ChannelStrip::snap);
        self.buses.iter_mut().for_each(BusStrip::snap);
        self.master.snap();
    }

    /// Meters after the last block (control plane: allocates).
    pub fn meters(&self) -> Meters {
        self.meter_bank.read()
    }

    /// The shared meter storage this engine publishes into after every block; readers on
    /// other threads copy it out at display rate.
    pub fn meter_bank(&self) -> Arc<MeterBank> {
        self.meter_bank.clone()
    }

    /// Publish every meter and the transport; `frame` is the absolute engine frame at which
    /// the current position holds.
    fn publish_meters(&self, frame: u64) {
        let bank = &self.meter_bank;
        for (i, c) in self.channels.iter().enumerate() {
            bank.put_channel(i, &c.meters());
        }
        for (i, b) in self.buses.iter().enumerate() {
            bank.put_bus(i, &b.meters());
        }
        let (m, gr) = self.master.meters();
        bank.put_master(&m, gr, self.position, self.playing, frame);
    }

    /// The backend's stamp for the next block: its first frame is engine frame `frame`
    /// (a running count kept by the backend across engine swaps) and plays at `at`, at
    /// `rate` Hz. Feeds the [`clock::FrameClock`] that timed changes are scheduled by.
    /// Without stamps (offline) the engine counts its own frames from 0. Real-time safe.
    pub fn begin_block(&mut self, frame: u64, at: Instant, rate: u32) {
        self.block_frame = frame;
        self.clock.stamp(frame, at, rate);
    }

    /// Absolute engine frame of the next block's first frame.
    pub fn next_frame(&self) -> u64 {
        self.block_frame
    }

    /// Take every queued change: those due by `due` are applied, later ones are held in
    /// `pending` in frame order (a full `pending` applies them at once). Real-time safe.
    fn take_queue(&mut self, due: u64) {
        while let Some(c) = self.consumer.as_mut().and_then(|q| q.pop().ok()) {
            if c.frame <= due || self.pending.len() == self.pending.capacity() {
                self.apply(c.addr, c.value);
                continue;
            }
            // After every held change of the same or an earlier frame.
            let at = self.pending.partition_point(|p| p.frame <= c.frame);
            self.pending.insert(at, c);
        }
    }

    /// Process `frames` frames: read `inputs` (one slice per [`Engine::input_ports`] entry,
    /// any number of them; missing or short ones are silence) and write every [`Engine::output_ports`] entry into
    /// `outputs` (slices of at least `frames`; extra slices are left alone). Queued
    /// parameter changes are applied at their frames (sample-accurately inside the block;
    /// frames already past apply at the block start), then the automation lanes due (see
    /// [`lanes`]), which win over queued changes of the parameters they drive. Advances the
    /// transport.
    /// Real-time safe.
    pub fn process(&mut self, frames: usize, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let start = self.block_frame;
        self.take_queue(start);
        self.take_playback();
        let mut done = 0;
        while done < frames {
            // Apply every change due at or before this frame, then run until the next one.
            let mut until = frames.min(done + self.max_block);
            if let Some(l) = self.loop_len {
                // Split at the loop point so the wrap is sample-exact.
                let left = (l - self.position.min(l - 1)) as usize;
                until = until.min(done + left);
            }
            let now = start + done as u64;
            while let Some(next) = self.pending.front() {
                if next.frame > now {
                    let ahead = next.frame - start;
                    if ahead < until as u64 {
                        until = ahead as usize;
                    }
                    break;
                }
                let c = *next;
                self.pending.pop_front();
                self.apply(c.addr, c.value);
            }
            // Automation: read the lanes due here, run no further than the next reading.
            until = until.min(done.saturating_add(self.drive_lanes()));
            let n = until - done;
            let sub = Inputs {
                slices: inputs,
                offset: done,
            };
            self.run(n, sub, outputs, done);
            done = until;
        }
        self.block_frame = start + frames as u64;
    }

    /// One sub-block of `n <= max_block` frames, written at `offset` into `outputs`.
    fn run(&mut self, n: usize, inputs: Inputs<'_>, outputs: &mut [&mut [f32]], offset: usize) {
        for b in &mut self.bus_inputs {
            b[0][..n].fill(0.0);
            b[1][..n].fill(0.0);
        }
        self.master_in[0][..n].fill(0.0);
        self.master_in[1][..n].fill(0.0);

        // A stopped transport reads past every stem's end: silence.
        let pos = if self.playing {
            self.position
        } else {
            u64::MAX
        };
        run_strips(
            &mut self.channels,
            n,
            pos,
            inputs,
            &mut self.master_in,
            &mut self.bus_inputs,
            0,
        );
        // The hardware inserts' sends.
        for ch in &self.channels {
            write_send(ch.insert.as_ref(), ch.nch, n, outputs, offset);
        }

        self.mix_down(n, inputs, outputs, offset);
    }

    /// The second half of a sub-block, once every strip has mixed into `bus_inputs` and
    /// `master_in`: the buses in order, the master, the outputs (at `offset`), the loudness
    /// tap, the transport and the meters. Touches no channel strip but for their meters.
    fn mix_down(
        &mut self,
        n: usize,
        inputs: Inputs<'_>,
        outputs: &mut [&mut [f32]],
        offset: usize,
    ) {
        for &bi in &self.bus_order {
            let mut io = std::mem::take(&mut self.bus_inputs[bi]);
            let bus = &mut self.buses[bi];
            bus.process(n, &mut io, inputs);
            write_send(bus.insert.as_ref(), 2, n, outputs, offset);
            if let Some(first) = self.bus_out_index[bi] {
                for (k, side) in io.iter().enumerate() {
                    if let Some(out) = outputs.get_mut(first + k) {
                        out[offset..offset + n].copy_from_slice(&side[..n]);
                    }
                }
            } else {
                let dest = match bus.output {
                    Output::Master => &mut self.master_in,
                    Output::Bus(d) => &mut self.bus_inputs[d],
                };
                for (d, s) in dest.iter_mut().zip(io.iter()) {
                    d[..n].iter_mut().zip(&s[..n]).for_each(|(d, s)| *d += s);
                }
            }
            self.bus_inputs[bi] = io;
        }

        let [l, r] = &mut self.master_in;
        self.master.process(&mut l[..n], &mut r[..n], inputs);
        write_send(self.master.insert.as_ref(), 2, n, outputs, offset);
        for (k, side) in self.master_in.iter().enumerate() {
            if let Some(out) = outputs.get_mut(k) {
                out[offset..offset + n].copy_from_slice(&side[..n]);
            }
        }
        if let Some(tap) = self.loudness.as_mut() {
            tap.push(&self.master_in[0][..n], &self.master_in[1][..n]);
        }
        if self.playing {
            self.position += n as u64;
            if let Some(l) = self.loop_len
                && self.position >= l
            {
                self.position -= l;
                self.relocate_lanes();
            }
        }
        self.publish_meters(self.block_frame + (offset + n) as u64);
    }
}

/// Bus indices ordered so every bus runs before the bus it feeds (the session validator has
/// already rejected cycles).
fn bus_order(session: &Session) -> Vec<usize> {
    let n = session.buses.len();
    let mut depth = vec![0usize; n];
    // Depth = number of hops to master; deeper buses run first.
    for (i, d) in depth.iter_mut().enumerate() {
        let mut cur = i;
        let mut hops = 0;
        while let Output::Bus(next) = session.buses[cur].output {
            if !session.buses[cur].outputs.is_empty() || hops > n {
                break;
            }
            cur = next;
            hops += 1;
        }
        *d = hops;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(depth[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_law_is_constant_power_for_mono() {
        let (l, r) = pan_gains(1, 0.0);
        assert!((l - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((r - l).abs() < 1e-6);
        for p in [-1.0, -0.5, 0.25, 1.0] {
            let (l, r) = pan_gains(1, p);
            assert!((l * l + r * r - 1.0).abs() < 1e-5);
        }
        assert!(pan_gains(1, -1.0).1.abs() < 1e-6);
    }

    /// Main ports are the engine's latency apart; an insert's send is 0 from the main inputs,
    /// its return `latency − its insert latency` from the outputs (the limiter's look-ahead
    /// is 1.5 ms = 72 samples at 48 kHz).
    #[test]
    fn port_latencies_keep_insert_ports_off_the_main_path() {
        let yaml = "version: 1\nchannels:\n  - { name: a, source: { input: 1 }, insert: { send: 3, return: 3, latency: 300 } }\n  - { name: b, source: { input: [2, 3] }, insert: { send: 5, return: 5, latency: 100 } }\n";
        let s = crate::session::parse_str(yaml, std::path::Path::new("/nonexistent/p.yaml"))
            .expect("session");
        let tree = ParamTree::build(&s);
        let e = Engine::build(&s, &tree, &HashMap::new(), 48000.0, 64).expect("build");
        let lat = 72 + 300;
        assert_eq!(e.latency(), lat);
        let main = |samples| PortLatency {
            insert: false,
            samples,
        };
        let ins = |samples| PortLatency {
            insert: true,
            samples,
        };
        let (i, o) = e.port_latencies();
        // a_in, b_in_L, b_in_R, a_insert_return, b_insert_return_L/_R
        assert_eq!(
            i,
            [
                main(lat),
                main(lat),
                main(lat),
                ins(lat - 300),
                ins(lat - 100),
                ins(lat - 100)
            ]
        );
        // master_L/R, a_insert_send, b_insert_send_L/_R
        assert_eq!(o, [main(lat), main(lat), ins(0), ins(0), ins(0)]);
    }

    /// Bus and master insert ports sit at their strips' aligned input times. Channel `a`
    /// (insert 300) feeds group `g` (insert 500); `b` goes straight to the master (insert
    /// 100). The master takes its inputs at 300 + 500 = 800, so `g` takes its own at 300 and
    /// the engine's latency is 72 + 800 + 100 = 972.
    #[test]
    fn bus_and_master_insert_ports_sit_at_their_input_times() {
        let yaml = "version: 1
channels:
  - { name: a, source: { input: 1 }, output: g, insert: { send: 3, return: 3, latency: 300 } }
  - { name: b, source: { input: 2 } }
buses:
  - { name: g, kind: group, insert: { send: 5, return: 5, latency: 500 } }
master:
  insert: { send: 7, return: 7, latency: 100 }
";
        let s = crate::session::parse_str(yaml, std::path::Path::new("/nonexistent/p.yaml"))
            .expect("session");
        let tree = ParamTree::build(&s);
        let e = Engine::build(&s, &tree, &HashMap::new(), 48000.0, 64).expect("build");
        assert_eq!(e.latency(), 972);
        let (i, o) = e.port_latencies();
        let by_name = |names: Vec<&str>, lats: &[PortLatency]| -> HashMap<String, PortLatency> {
            names
                .into_iter()
                .map(String::from)
                .zip(lats.iter().copied())
                .collect()
        };
        let ins = by_name(
            e.input_ports().iter().map(|p| p.name.as_str()).collect(),
            &i,
        );
        let outs = by_name(
            e.output_ports().iter().map(|p| p.name.as_str()).collect(),
            &o,
        );
        let at = |insert, samples| PortLatency { insert, samples };
        let want_in = [
            ("a_in", at(false, 972)),
            ("b_in", at(false, 972)),
            ("a_insert_return", at(true, 972 - 300)),
            ("g_insert_return_L", at(true, 972 - 300 - 500)),
            ("g_insert_return_R", at(true, 972 - 300 - 500)),
            ("master_insert_return_L", at(true, 972 - 800 - 100)),
            ("master_insert_return_R", at(true, 972 - 800 - 100)),
        ];
        let want_out = [
            ("master_L", at(false, 972)),
            ("a_insert_send", at(true, 0)),
            ("g_insert_send_L", at(true, 300)),
            ("g_insert_send_R", at(true, 300)),
            ("master_insert_send_L", at(true, 800)),
            ("master_insert_send_R", at(true, 800)),
        ];
        for (name, want) in want_in {
            assert_eq!(
                ins.get(name),
                Some(&want),
                "input {name} of {:?}",
                ins.keys()
            );
        }
        for (name, want) in want_out {
            assert_eq!(
                outs.get(name),
                Some(&want),
                "output {name} of {:?}",
                outs.keys()
            );
        }
    }

    #[test]
    fn balance_is_unity_at_centre() {
        assert_eq!(pan_gains(2, 0.0), (1.0, 1.0));
        let (l, r) = pan_gains(2, 1.0);
        assert!(l.abs() < 1e-6 && r == 1.0);
        let (l, r) = pan_gains(2, -0.5);
        assert_eq!(l, 1.0);
        // sqrt2 * sin(pi/8)
        assert!((r - 2f32.sqrt() * (std::f32::consts::PI / 8.0).sin()).abs() < 1e-6);
    }
}
