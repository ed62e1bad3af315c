//! The real-time half of an input channel strip: source → trim → polarity → delay → HPF/LPF →
//! gate → EQ → compressor → saturation → insert ([`super::insert`]) →
//! latency compensation ([`super::insert::CompDelay`]) → fader → pan → mute → sends → output.
//!
//! The hardware insert sits where its `position:` says: `pre_eq` after the gate (before the
//! EQ), `post_dynamics` after the saturation (the default), `post_fader` after the fader and
//! before pan and mute (pre-fader sends are tapped ahead of it, post-fader sends behind it).
//! The latency compensation's common delay is always after the dynamics (and a pre-fader
//! insert), ahead of the pre-fader send tap; edges that need more (see [`super::latcomp`])
//! have their own [`EdgeDelay`] on the contribution they sum into their destination.
//!
//! Built on the control plane by [`ChannelStrip::new`] (allocates); `apply` and `process` run
//! on the audio thread and never allocate.

use std::sync::Arc;

use crate::dsp::delayline::AlignDelay;
use crate::dsp::dynamics::{Compressor, Gate, Saturation};
use crate::dsp::filters::{PassFilter, PassKind, UnityGain, process_series, try_process_fused};
use crate::dsp::util::{SmoothedGain, db_to_gain};
use crate::media::Plane;
use crate::meter::PeakRms;
use crate::params::{Key, spec};
use crate::session::model::{Channel, InsertPosition, Output};

use super::eqset::EqSet;
use super::insert::{CompDelay, EdgeDelay, InsertRt};
use super::{GAIN_GLIDE_MS, pan_gains};

/// The audio a file source plays: one plane per channel (1 or 2), at the engine's rate.
pub type StemData = Arc<Vec<Plane>>;

/// Where a strip's samples come from in each block.
#[derive(Debug, Clone)]
pub enum SourceRt {
    /// A decoded stem, played at the transport position.
    File(StemData),
    /// Engine input indices (see [`super::Engine::input_ports`]).
    Input([usize; 2]),
    /// Nothing connected: silence.
    Silence,
}

/// A send from this strip to an aux bus.
pub(super) struct SendRt {
    pub bus: usize,
    pub level: SmoothedGain,
    pub pre_fader: bool,
    /// Latency compensation of this send beyond the strip's common delay, and its lengths
    /// while post-fader and pre-fader (None: it needs none).
    pub extra: Option<EdgeDelay>,
    pub extra_len: [usize; 2],
}

/// Values read back for meters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StripMeters {
    pub peak_db: [f32; 2],
    pub rms_db: [f32; 2],
    pub gate_gr_db: f32,
    pub comp_gr_db: f32,
}

pub(super) struct ChannelStrip {
    pub nch: usize,
    pub source: SourceRt,
    pub output: Output,
    buf: [Vec<f32>; 2],
    trim_db: f32,
    invert: bool,
    input_gain: SmoothedGain,
    delay: AlignDelay,
    /// HPF and LPF, in that order.
    pass: [PassFilter; 2],
    hpf_freq: f32,
    hpf_slope: f32,
    lpf_freq: f32,
    lpf_slope: f32,
    gate: Gate,
    gate_p: [f32; 5],
    eq: EqSet,
    comp: Compressor,
    comp_p: [f32; 6],
    sat: Saturation,
    sat_p: [f32; 2],
    /// The hardware insert (channels with `insert:`), at the insert point.
    pub insert: Option<InsertRt>,
    /// Where the insert sits.
    pub insert_pos: InsertPosition,
    /// The latency compensation of the main output beyond `latcomp` (None: none needed).
    pub main_extra: Option<EdgeDelay>,
    /// True when the strip mixes through [`Self::mix_general`] (a post-fader insert or an
    /// edge delay line).
    general: bool,
    /// Scratch for an edge's delayed contribution.
    edge: [Vec<f32>; 2],
    /// The latency compensation after the insert point (None: this strip's path is already
    /// the slowest, or no channel has an insert latency).
    pub latcomp: Option<CompDelay>,
    fader: SmoothedGain,
    pan: f32,
    pan_l: SmoothedGain,
    pan_r: SmoothedGain,
    pub mute: bool,
    pub solo: bool,
    pub solo_safe: bool,
    /// Gain of the main output and post-fader sends: 0 while muted or muted by solo.
    main_gate: SmoothedGain,
    /// Gain of all sends: 0 while explicitly muted (solo leaves pre-fader sends alone).
    send_gate: SmoothedGain,
    pub sends: Vec<SendRt>,
    meter: PeakRms,
    /// False when nobody reads the meters (offline renders): the strip skips its meter.
    pub metering: bool,
    /// Per-sample gains of a sub-block (sized at build).
    gains: GainBufs,
}

/// The per-sample gains of a sub-block: fader, pan left and right, main gate, send gate, and
/// a scratch for a send's (or the trim's) level.
struct GainBufs {
    f: Vec<f32>,
    l: Vec<f32>,
    r: Vec<f32>,
    main: Vec<f32>,
    send: Vec<f32>,
    lvl: Vec<f32>,
}

/// A sub-block's gains as [`GainBufs::fill`] gives them: fader, pan L, pan R, main gate, send
/// gate, level scratch.
type Gains<'a> = (
    &'a mut [f32],
    &'a mut [f32],
    &'a mut [f32],
    &'a mut [f32],
    &'a mut [f32],
    &'a mut [f32],
);

impl GainBufs {
    fn new(max_block: usize) -> Self {
        let z = || crate::dsp::util::zeroed(max_block);
        Self {
            f: z(),
            l: z(),
            r: z(),
            main: z(),
            send: z(),
            lvl: z(),
        }
    }

    /// Fill the first `n` gains from the fader, the pan and the gates (in that order); the
    /// level scratch comes back as it is. Real-time safe.
    fn fill(&mut self, n: usize, from: [&mut SmoothedGain; 5]) -> Gains<'_> {
        let g = (
            &mut self.f[..n],
            &mut self.l[..n],
            &mut self.r[..n],
            &mut self.main[..n],
            &mut self.send[..n],
            &mut self.lvl[..n],
        );
        let [fader, pan_l, pan_r, main_gate, send_gate] = from;
        fader.fill(g.0);
        pan_l.fill(g.1);
        pan_r.fill(g.2);
        main_gate.fill(g.3);
        send_gate.fill(g.4);
        g
    }
}

/// Index of the HPF in `ChannelStrip::pass`.
const HPF: usize = 0;
/// Index of the LPF in `ChannelStrip::pass`.
const LPF: usize = 1;

fn spec_default(group: &'static [spec::ParamSpec], key: &str) -> f32 {
    spec::get(group, key).default
}

impl ChannelStrip {
    /// Build a strip for `ch` with `nch` channels and `aux` = indices of the aux buses it can
    /// send to. Parameters start at their spec defaults; the engine applies the session's
    /// values right after. Allocates.
    pub fn new(
        ch: &Channel,
        nch: usize,
        source: SourceRt,
        aux: &[usize],
        sample_rate: f32,
        max_block: usize,
    ) -> Self {
        let sr = sample_rate;
        let g = |v: f32| SmoothedGain::new(v, GAIN_GLIDE_MS, sr);
        let gate_p = [
            "threshold_db",
            "range_db",
            "attack_ms",
            "hold_ms",
            "release_ms",
        ]
        .map(|k| spec_default(spec::GATE, k));
        let comp_p = [
            "threshold_db",
            "ratio",
            "knee_db",
            "attack_ms",
            "release_ms",
            "makeup_db",
        ]
        .map(|k| spec_default(spec::COMP, k));
        let (pl, pr) = pan_gains(nch, 0.0);
        Self {
            nch,
            source,
            output: ch.output,
            buf: [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ],
            trim_db: 0.0,
            invert: false,
            input_gain: g(1.0),
            delay: AlignDelay::new(sr, nch, spec::get(spec::STRIP, "delay_ms").max),
            pass: [
                PassFilter::new(sr, nch, PassKind::HighPass),
                PassFilter::new(sr, nch, PassKind::LowPass),
            ],
            hpf_freq: spec_default(spec::HPF, "freq"),
            hpf_slope: 0.0,
            lpf_freq: spec_default(spec::LPF, "freq"),
            lpf_slope: 0.0,
            gate: Gate::new(sr),
            gate_p,
            eq: EqSet::new(sr, nch),
            comp: Compressor::new(sr),
            comp_p,
            sat: Saturation::new(sr),
            sat_p: [
                spec_default(spec::SATURATION, "drive_db"),
                spec_default(spec::SATURATION, "mix"),
            ],
            insert: None,
            insert_pos: ch.insert.as_ref().map(|i| i.position).unwrap_or_default(),
            main_extra: None,
            general: false,
            edge: [Vec::new(), Vec::new()],
            latcomp: None,
            fader: g(1.0),
            pan: 0.0,
            pan_l: g(pl),
            pan_r: g(pr),
            mute: false,
            solo: false,
            solo_safe: false,
            main_gate: g(1.0),
            send_gate: g(1.0),
            sends: aux
                .iter()
                .map(|&bus| SendRt {
                    bus,
                    level: g(0.0),
                    pre_fader: false,
                    extra: None,
                    extra_len: [0, 0],
                })
                .collect(),
            meter: PeakRms::new(sr, nch),
            metering: true,
            gains: GainBufs::new(max_block),
        }
    }

    /// Apply one parameter value. Returns false for a key a channel strip doesn't have.
    pub fn apply(&mut self, key: Key, v: f32) -> bool {
        match key {
            Key::TrimDb => {
                self.trim_db = v;
                self.update_input_gain();
            }
            Key::Invert => {
                self.invert = v >= 0.5;
                self.update_input_gain();
            }
            Key::DelayMs => self.delay.set_ms(v),
            Key::HpfOn => self.pass[HPF].set_enabled(v >= 0.5),
            Key::HpfFreq | Key::HpfSlope => {
                if key == Key::HpfFreq {
                    self.hpf_freq = v;
                } else {
                    self.hpf_slope = v;
                }
                self.pass[HPF].set(self.hpf_freq, super::slope_of(self.hpf_slope));
            }
            Key::LpfOn => self.pass[LPF].set_enabled(v >= 0.5),
            Key::LpfFreq | Key::LpfSlope => {
                if key == Key::LpfFreq {
                    self.lpf_freq = v;
                } else {
                    self.lpf_slope = v;
                }
                self.pass[LPF].set(self.lpf_freq, super::slope_of(self.lpf_slope));
            }
            Key::GateOn => self.gate.set_enabled(v >= 0.5),
            Key::GateThreshold
            | Key::GateRange
            | Key::GateAttack
            | Key::GateHold
            | Key::GateRelease => {
                let i = match key {
                    Key::GateThreshold => 0,
                    Key::GateRange => 1,
                    Key::GateAttack => 2,
                    Key::GateHold => 3,
                    _ => 4,
                };
                self.gate_p[i] = v;
                let p = self.gate_p;
                self.gate.set(p[0], p[1], p[2], p[3], p[4]);
            }
            Key::EqOn(_) | Key::EqType(_) | Key::EqFreq(_) | Key::EqGain(_) | Key::EqQ(_) => {
                self.eq.apply(key, v);
            }
            Key::CompOn => self.comp.set_enabled(v >= 0.5),
            Key::CompThreshold
            | Key::CompRatio
            | Key::CompKnee
            | Key::CompAttack
            | Key::CompRelease
            | Key::CompMakeup => {
                super::set_comp_param(&mut self.comp, &mut self.comp_p, key, v);
            }
            Key::SatOn => self.sat.set_enabled(v >= 0.5),
            Key::SatDrive | Key::SatMix => {
                self.sat_p[usize::from(key == Key::SatMix)] = v;
                self.sat.set(self.sat_p[0], self.sat_p[1]);
            }
            Key::InsertSendDb
            | Key::InsertReturnDb
            | Key::InsertWet
            | Key::InsertInvert
            | Key::InsertBypass
            | Key::InsertHold => {
                return self.insert.as_mut().is_some_and(|i| i.apply(key, v));
            }
            Key::Pan => {
                self.pan = v;
                let (l, r) = pan_gains(self.nch, v);
                self.pan_l.set_target(l);
                self.pan_r.set_target(r);
            }
            Key::FaderDb => self.fader.set_target(db_to_gain(v)),
            Key::Mute => self.mute = v >= 0.5,
            Key::Solo => self.solo = v >= 0.5,
            Key::SoloSafe => self.solo_safe = v >= 0.5,
            Key::SendLevel(bus) => match self.sends.iter_mut().find(|s| s.bus == bus as usize) {
                Some(s) => s.level.set_target(db_to_gain(v)),
                None => return false,
            },
            Key::SendPre(bus) => match self.sends.iter_mut().find(|s| s.bus == bus as usize) {
                Some(s) => s.pre_fader = v >= 0.5,
                None => return false,
            },
            _ => return false,
        }
        true
    }

    /// Move a gain or pan in a straight line to `v`, reaching it after `n` samples (an
    /// automation lane followed per sample); other keys are applied as by [`Self::apply`].
    pub fn ramp(&mut self, key: Key, v: f32, n: u32) -> bool {
        match key {
            Key::TrimDb => {
                self.trim_db = v;
                let sign = if self.invert { -1.0 } else { 1.0 };
                self.input_gain.ramp_to(sign * db_to_gain(v), n);
            }
            Key::Pan => {
                self.pan = v;
                let (l, r) = pan_gains(self.nch, v);
                self.pan_l.ramp_to(l, n);
                self.pan_r.ramp_to(r, n);
            }
            Key::FaderDb => self.fader.ramp_to(db_to_gain(v), n),
            Key::SendLevel(bus) => match self.sends.iter_mut().find(|s| s.bus == bus as usize) {
                Some(s) => s.level.ramp_to(db_to_gain(v), n),
                None => return false,
            },
            Key::InsertSendDb | Key::InsertReturnDb | Key::InsertWet => {
                return self.insert.as_mut().is_some_and(|i| i.ramp(key, v, n));
            }
            _ => return self.apply(key, v),
        }
        true
    }

    fn update_input_gain(&mut self) {
        let sign = if self.invert { -1.0 } else { 1.0 };
        self.input_gain.set_target(sign * db_to_gain(self.trim_db));
    }

    /// Decide the mixing path after the engine has set the insert and the edge delays
    /// (control plane; allocates the edge scratch when needed).
    pub fn finish_build(&mut self, max_block: usize) {
        let post = self.insert.is_some() && self.insert_pos == InsertPosition::PostFader;
        let extras = self.main_extra.is_some() || self.sends.iter().any(|s| s.extra.is_some());
        self.general = post || extras;
        if extras {
            self.edge = [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ];
        }
    }

    /// Update the mute gates from mute and the console's solo state.
    pub fn update_gates(&mut self, solo_active: bool) {
        let solo_muted = solo_active && !self.solo && !self.solo_safe;
        let main = !(self.mute || solo_muted);
        self.main_gate.set_target(if main { 1.0 } else { 0.0 });
        self.send_gate.set_target(if self.mute { 0.0 } else { 1.0 });
    }

    /// Jump every smoother and filter to its target (after the initial parameter set).
    pub fn snap(&mut self) {
        for g in [
            &mut self.input_gain,
            &mut self.fader,
            &mut self.pan_l,
            &mut self.pan_r,
            &mut self.main_gate,
            &mut self.send_gate,
        ] {
            let t = g.target();
            g.reset(t);
        }
        for s in &mut self.sends {
            let t = s.level.target();
            s.level.reset(t);
        }
        if let Some(i) = self.insert.as_mut() {
            i.snap();
        }
        self.delay.snap();
        self.pass.iter_mut().for_each(PassFilter::snap);
        self.eq.snap();
        self.gate.reset();
        self.comp.reset();
        self.sat.reset();
    }

    /// Meter values now.
    pub fn meters(&self) -> StripMeters {
        let mut m = StripMeters {
            gate_gr_db: self.gate.gain_reduction_db(),
            comp_gr_db: self.comp.gain_reduction_db(),
            ..Default::default()
        };
        for c in 0..self.nch.min(2) {
            m.peak_db[c] = self.meter.peak_db(c);
            m.rms_db[c] = self.meter.rms_db(c);
        }
        if self.nch == 1 {
            // Mono shows the same reading on both sides.
            m.peak_db[1] = m.peak_db[0];
            m.rms_db[1] = m.rms_db[0];
        }
        m
    }

    /// Process `n` frames starting at transport sample `pos` and mix the result into `main`
    /// (the stereo input of the strip's destination) and into frames `off..off + n` of
    /// `bus_inputs` (the stereo inputs of every bus, indexed like `Session::buses`, for
    /// sends).
    pub fn process(
        &mut self,
        n: usize,
        pos: u64,
        inputs: super::Inputs<'_>,
        main: [&mut [f32]; 2],
        bus_inputs: &mut [[Vec<f32>; 2]],
        off: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, the only feature `process_avx2` is built with.
            unsafe { self.process_avx2(n, pos, inputs, main, bus_inputs, off) };
            return;
        }
        self.process_impl(n, pos, inputs, main, bus_inputs, off);
    }

    /// [`Self::process`] compiled for AVX2: the gain and mixing loops run 8 lanes wide (the
    /// same arithmetic, so the same result; the processors dispatch on their own).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn process_avx2(
        &mut self,
        n: usize,
        pos: u64,
        inputs: super::Inputs<'_>,
        main: [&mut [f32]; 2],
        bus_inputs: &mut [[Vec<f32>; 2]],
        off: usize,
    ) {
        self.process_impl(n, pos, inputs, main, bus_inputs, off);
    }

    #[inline(always)]
    fn process_impl(
        &mut self,
        n: usize,
        pos: u64,
        inputs: super::Inputs<'_>,
        main: [&mut [f32]; 2],
        bus_inputs: &mut [[Vec<f32>; 2]],
        off: usize,
    ) {
        let nch = self.nch;
        // 1. Source.
        {
            let [b0, b1] = &mut self.buf;
            let bufs: [&mut [f32]; 2] = [&mut b0[..n], &mut b1[..n]];
            super::fill_source(&self.source, pos, inputs, bufs, nch);
        }
        let [b0, b1] = &mut self.buf;
        let mut chans: [&mut [f32]; 2] = [&mut b0[..n], &mut b1[..n]];
        let chans = &mut chans[..nch];

        // 2. Trim and polarity.
        if self.input_gain.is_smoothing() {
            let g = &mut self.gains.lvl[..n];
            self.input_gain.fill(g);
            for ch in chans.iter_mut() {
                ch.iter_mut().zip(g.iter()).for_each(|(s, g)| *s *= g);
            }
        } else {
            let g = self.input_gain.current();
            if g != 1.0 {
                for ch in chans.iter_mut() {
                    ch.iter_mut().for_each(|s| *s *= g);
                }
            }
        }
        // 3..8: delay, filters, gate, EQ, comp, saturation.
        self.delay.process(chans);
        // HPF/LPF, gate and EQ in one fused loop when nothing is in transition.
        let pre_eq = self.insert.is_some() && self.insert_pos == InsertPosition::PreEq;
        let fused = if pre_eq {
            false
        } else if self.gate.is_fully_on() {
            let mut t = self.gate.ticker();
            let ok = try_process_fused(&mut self.pass, self.eq.bands_mut(), chans, &mut t);
            if ok {
                self.gate.finish(t);
            }
            ok
        } else if self.gate.is_fully_off() {
            // Leaves the audio alone (it only forgets its state).
            self.gate.process(chans);
            try_process_fused(&mut self.pass, self.eq.bands_mut(), chans, &mut UnityGain)
        } else {
            false
        };
        if !fused {
            process_series(&mut self.pass, &mut [], chans);
            self.gate.process(chans);
            if pre_eq && let Some(ins) = self.insert.as_mut() {
                run_insert(ins, chans, inputs, n);
            }
            self.eq.process(chans);
        }
        self.comp.process(chans);
        self.sat.process(chans);
        // 9: insert point: the hardware insert, if any.
        if self.insert_pos == InsertPosition::PostDynamics
            && let Some(ins) = self.insert.as_mut()
        {
            run_insert(ins, chans, inputs, n);
        }
        if let Some(c) = self.latcomp.as_mut() {
            c.process(chans);
        }
        if self.metering {
            let ro: [&[f32]; 2] = [&*chans[0], &*chans[nch - 1]];
            self.meter.process(&ro[..nch]);
        }

        if self.general {
            self.mix_general(n, inputs, main, bus_inputs, off);
            return;
        }
        // 10. Fader, pan, mute. When nothing glides the gains are constants (the usual case);
        // the products are formed in the same order either way.
        let xl: &[f32] = &self.buf[0][..n];
        let xr: &[f32] = &self.buf[nch - 1][..n];
        let [ml, mr] = main;
        let at_rest = !self.fader.is_smoothing()
            && !self.pan_l.is_smoothing()
            && !self.pan_r.is_smoothing()
            && !self.main_gate.is_smoothing()
            && !self.send_gate.is_smoothing();
        if at_rest {
            let (f, l, r) = (
                self.fader.current(),
                self.pan_l.current(),
                self.pan_r.current(),
            );
            let (m, sg) = (self.main_gate.current(), self.send_gate.current());
            let g = f * m;
            if g != 0.0 {
                mix_into(ml, xl, g, l);
                mix_into(mr, xr, g, r);
            }
            for send in &mut self.sends {
                if send.level.is_smoothing() {
                    send.level.fill(&mut self.gains.lvl[..n]);
                    let glv = &self.gains.lvl[..n];
                    let [bl, br] = &mut bus_inputs[send.bus];
                    let (bl, br) = (&mut bl[off..off + n], &mut br[off..off + n]);
                    for i in 0..n {
                        let g = if send.pre_fader {
                            glv[i] * sg
                        } else {
                            glv[i] * f * m
                        };
                        bl[i] += xl[i] * g * l;
                        br[i] += xr[i] * g * r;
                    }
                    continue;
                }
                let lv = send.level.current();
                let g = if send.pre_fader { lv * sg } else { lv * f * m };
                if g == 0.0 {
                    continue;
                }
                let [bl, br] = &mut bus_inputs[send.bus];
                mix_into(&mut bl[off..off + n], xl, g, l);
                mix_into(&mut br[off..off + n], xr, g, r);
            }
            return;
        }

        let (gf, gl, gr, gm, gs, glv) = self.gains.fill(
            n,
            [
                &mut self.fader,
                &mut self.pan_l,
                &mut self.pan_r,
                &mut self.main_gate,
                &mut self.send_gate,
            ],
        );

        for i in 0..n {
            let g = gf[i] * gm[i];
            ml[i] += xl[i] * g * gl[i];
            mr[i] += xr[i] * g * gr[i];
        }

        // 11. Sends (stereo, following the pan; post-fader ones also follow the fader and the
        // solo state, pre-fader ones only the explicit mute).
        for send in &mut self.sends {
            if !send.level.is_smoothing() && send.level.current() == 0.0 {
                continue;
            }
            send.level.fill(glv);
            let [bl, br] = &mut bus_inputs[send.bus];
            let (bl, br) = (&mut bl[off..off + n], &mut br[off..off + n]);
            if send.pre_fader {
                for i in 0..n {
                    let g = glv[i] * gs[i];
                    bl[i] += xl[i] * g * gl[i];
                    br[i] += xr[i] * g * gr[i];
                }
            } else {
                for i in 0..n {
                    let g = glv[i] * gf[i] * gm[i];
                    bl[i] += xl[i] * g * gl[i];
                    br[i] += xr[i] * g * gr[i];
                }
            }
        }
    }
}

impl ChannelStrip {
    /// Fader, pan, mute and sends with a post-fader insert or edge delay lines (per-sample
    /// gains): pre-fader sends are tapped first, then (post-fader insert) the fader is
    /// applied and the insert runs, then the post-fader sends and the main output.
    fn mix_general(
        &mut self,
        n: usize,
        inputs: super::Inputs<'_>,
        main: [&mut [f32]; 2],
        bus_inputs: &mut [[Vec<f32>; 2]],
        off: usize,
    ) {
        let nch = self.nch;
        let (gf, gl, gr, gm, gs, glv) = self.gains.fill(
            n,
            [
                &mut self.fader,
                &mut self.pan_l,
                &mut self.pan_r,
                &mut self.main_gate,
                &mut self.send_gate,
            ],
        );
        let post_ins = self.insert.is_some() && self.insert_pos == InsertPosition::PostFader;
        let edge = &mut self.edge;
        // Pre-fader sends (ahead of a post-fader insert), then the rest after it.
        for pass in [true, false] {
            if !pass && post_ins {
                let [b0, b1] = &mut self.buf;
                let mut chans: [&mut [f32]; 2] = [&mut b0[..n], &mut b1[..n]];
                let chans = &mut chans[..nch];
                for ch in chans.iter_mut() {
                    ch.iter_mut().zip(gf.iter()).for_each(|(s, g)| *s *= g);
                }
                if let Some(ins) = self.insert.as_mut() {
                    run_insert(ins, chans, inputs, n);
                }
            }
            let xl: &[f32] = &self.buf[0][..n];
            let xr: &[f32] = &self.buf[nch - 1][..n];
            for send in &mut self.sends {
                if send.pre_fader != pass {
                    continue;
                }
                if let Some(e) = send.extra.as_mut() {
                    e.set_len(send.extra_len[usize::from(send.pre_fader)]);
                }
                // A silent send is skipped unless its delay line must keep flushing (else it
                // would replay its old contents when the send comes back).
                let line = send.extra.as_ref().is_some_and(|e| e.len() > 0);
                if !line && !send.level.is_smoothing() && send.level.current() == 0.0 {
                    continue;
                }
                send.level.fill(glv);
                if send.pre_fader {
                    glv.iter_mut().zip(gs.iter()).for_each(|(g, s)| *g *= s);
                } else if post_ins {
                    glv.iter_mut().zip(gm.iter()).for_each(|(g, m)| *g *= m);
                } else {
                    for i in 0..n {
                        glv[i] *= gf[i] * gm[i];
                    }
                }
                let [bl, br] = &mut bus_inputs[send.bus];
                let dest = [&mut bl[off..off + n], &mut br[off..off + n]];
                mix_edge(dest, [xl, xr], glv, [gl, gr], send.extra.as_mut(), edge);
            }
        }
        if !post_ins {
            gm.iter_mut().zip(gf.iter()).for_each(|(m, f)| *m *= f);
        }
        let xl: &[f32] = &self.buf[0][..n];
        let xr: &[f32] = &self.buf[nch - 1][..n];
        mix_edge(main, [xl, xr], gm, [gl, gr], self.main_extra.as_mut(), edge);
    }
}

/// Run a hardware insert over `chans` with its return from `inputs`.
fn run_insert(ins: &mut InsertRt, chans: &mut [&mut [f32]], inputs: super::Inputs<'_>, n: usize) {
    let ret = [inputs.get(ins.ret_in[0], n), inputs.get(ins.ret_in[1], n)];
    ins.process(chans, ret);
}

/// `dest += x × g × pan` per sample; through `extra` (delaying the contribution) when it has
/// a length, using `scratch`.
fn mix_edge(
    dest: [&mut [f32]; 2],
    x: [&[f32]; 2],
    g: &[f32],
    pan: [&[f32]; 2],
    extra: Option<&mut EdgeDelay>,
    scratch: &mut [Vec<f32>; 2],
) {
    let n = g.len();
    match extra.filter(|e| e.len() > 0) {
        None => {
            for ((d, x), p) in dest.into_iter().zip(x).zip(pan) {
                for i in 0..n {
                    d[i] += x[i] * g[i] * p[i];
                }
            }
        }
        Some(e) => {
            let [sl, sr] = scratch;
            let (sl, sr) = (&mut sl[..n], &mut sr[..n]);
            for (s, (x, p)) in [&mut *sl, &mut *sr].into_iter().zip(x.into_iter().zip(pan)) {
                for i in 0..n {
                    s[i] = x[i] * g[i] * p[i];
                }
            }
            e.process(sl, sr);
            for (d, s) in dest.into_iter().zip([&*sl, &*sr]) {
                d.iter_mut().zip(s.iter()).for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// `out += x * g * side`, multiplied in that order (as the per-sample path does).
#[inline]
fn mix_into(out: &mut [f32], x: &[f32], g: f32, side: f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += v * g * side;
    }
}
