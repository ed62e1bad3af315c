//! The real-time halves of group/aux buses and of the master bus. A bus processes its stereo
//! input in place; the engine then sums it into its destination.
//!
//! Aux bus: effects (100% wet) → EQ → compressor → fader → balance → mute.
//! Group bus: EQ → compressor → fader → balance → mute.
//! Master: EQ → compressor → fader → true-peak limiter.
//!
//! A stereo hardware insert ([`super::insert`]) sits where its `position:` says: `pre_eq`
//! ahead of the EQ (after a bus's effects), `post_dynamics` after the compressor (the
//! default), `post_fader` after the fader and mute, ahead of the balance (the master: ahead of
//! the limiter).

use crate::dsp::dynamics::Compressor;
use crate::dsp::fx::{Reverb, StereoDelay};
use crate::dsp::master::Limiter;
use crate::dsp::util::{SmoothedGain, db_to_gain};
use crate::meter::PeakRms;
use crate::params::{Key, spec};
use crate::session::model::{Bus, InsertPosition, Output};

use super::eqset::EqSet;
use super::insert::InsertRt;
use super::strip::StripMeters;
use super::{GAIN_GLIDE_MS, pan_gains};

/// Longest delay-effect time, in ms (the spec's maximum, with headroom for gliding).
const MAX_DELAY_MS: f32 = 2100.0;

pub(super) struct BusStrip {
    pub output: Output,
    reverb: Option<(Reverb, [f32; 4])>,
    delay: Option<(StereoDelay, [f32; 5])>,
    fx_out: [Vec<f32>; 2],
    fx_tmp: [Vec<f32>; 2],
    eq: EqSet,
    comp: Compressor,
    comp_p: [f32; 6],
    fader: SmoothedGain,
    bal_l: SmoothedGain,
    bal_r: SmoothedGain,
    mute: SmoothedGain,
    meter: PeakRms,
    g: [Vec<f32>; 3],
    /// The hardware insert, and where it sits.
    pub insert: Option<InsertRt>,
    pub insert_pos: InsertPosition,
}

/// Run a bus's or the master's insert over `chans` at `at` if it sits there.
fn insert_at(
    ins: &mut Option<InsertRt>,
    pos: InsertPosition,
    at: InsertPosition,
    chans: &mut [&mut [f32]],
    inputs: super::Inputs<'_>,
) {
    if pos != at {
        return;
    }
    if let Some(ins) = ins.as_mut() {
        let n = chans[0].len();
        let ret = [inputs.get(ins.ret_in[0], n), inputs.get(ins.ret_in[1], n)];
        ins.process(chans, ret);
    }
}

/// The insert keys, handed to the insert (false without one).
fn insert_key(ins: &mut Option<InsertRt>, key: Key, v: f32, ramp: Option<u32>) -> Option<bool> {
    match key {
        Key::InsertSendDb
        | Key::InsertReturnDb
        | Key::InsertWet
        | Key::InsertInvert
        | Key::InsertBypass
        | Key::InsertHold => Some(ins.as_mut().is_some_and(|i| match ramp {
            Some(n) => i.ramp(key, v, n),
            None => i.apply(key, v),
        })),
        _ => None,
    }
}

pub(super) fn comp_defaults() -> [f32; 6] {
    [
        "threshold_db",
        "ratio",
        "knee_db",
        "attack_ms",
        "release_ms",
        "makeup_db",
    ]
    .map(|k| spec::get(spec::COMP, k).default)
}

impl BusStrip {
    /// Build a bus (allocates every buffer and effect line).
    pub fn new(bus: &Bus, sample_rate: f32, max_block: usize) -> Self {
        let sr = sample_rate;
        let g = |v: f32| SmoothedGain::new(v, GAIN_GLIDE_MS, sr);
        let d = |group: &'static [spec::ParamSpec], k| spec::get(group, k).default;
        let z = || {
            [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ]
        };
        Self {
            output: bus.output,
            reverb: bus.reverb.map(|_| {
                let r = spec::REVERB;
                (
                    Reverb::new(sr),
                    [
                        d(r, "decay_s"),
                        d(r, "predelay_ms"),
                        d(r, "damping"),
                        d(r, "size"),
                    ],
                )
            }),
            delay: bus.delay.map(|_| {
                let dl = spec::DELAY;
                (
                    StereoDelay::new(sr, MAX_DELAY_MS),
                    [
                        d(dl, "time_ms"),
                        d(dl, "feedback"),
                        d(dl, "ping_pong"),
                        d(dl, "lowcut_hz"),
                        d(dl, "highcut_hz"),
                    ],
                )
            }),
            fx_out: z(),
            fx_tmp: z(),
            eq: EqSet::new(sr, 2),
            comp: Compressor::new(sr),
            comp_p: comp_defaults(),
            fader: g(1.0),
            bal_l: g(1.0),
            bal_r: g(1.0),
            mute: g(1.0),
            meter: PeakRms::new(sr, 2),
            g: [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ],
            insert: None,
            insert_pos: bus.insert.as_ref().map(|i| i.position).unwrap_or_default(),
        }
    }

    /// Apply one parameter value. Returns false for a key this bus doesn't have.
    pub fn apply(&mut self, key: Key, v: f32) -> bool {
        if let Some(ok) = insert_key(&mut self.insert, key, v, None) {
            return ok;
        }
        match key {
            Key::EqOn(_) | Key::EqType(_) | Key::EqFreq(_) | Key::EqGain(_) | Key::EqQ(_) => {
                self.eq.apply(key, v)
            }
            Key::CompOn => self.comp.set_enabled(v >= 0.5),
            Key::CompThreshold
            | Key::CompRatio
            | Key::CompKnee
            | Key::CompAttack
            | Key::CompRelease
            | Key::CompMakeup => super::set_comp_param(&mut self.comp, &mut self.comp_p, key, v),
            Key::ReverbDecay | Key::ReverbPredelay | Key::ReverbDamping | Key::ReverbSize => {
                let Some((r, p)) = &mut self.reverb else {
                    return false;
                };
                let i = match key {
                    Key::ReverbDecay => 0,
                    Key::ReverbPredelay => 1,
                    Key::ReverbDamping => 2,
                    _ => 3,
                };
                p[i] = v;
                r.set(p[0], p[1], p[2], p[3]);
            }
            Key::DelayTime
            | Key::DelayFeedback
            | Key::DelayPingPong
            | Key::DelayLowcut
            | Key::DelayHighcut => {
                let Some((dl, p)) = &mut self.delay else {
                    return false;
                };
                let i = match key {
                    Key::DelayTime => 0,
                    Key::DelayFeedback => 1,
                    Key::DelayPingPong => 2,
                    Key::DelayLowcut => 3,
                    _ => 4,
                };
                p[i] = v;
                dl.set(p[0], p[1], p[2] >= 0.5, p[3], p[4]);
            }
            Key::Pan => {
                let (l, r) = pan_gains(2, v);
                self.bal_l.set_target(l);
                self.bal_r.set_target(r);
            }
            Key::FaderDb => self.fader.set_target(db_to_gain(v)),
            Key::Mute => self.mute.set_target(if v >= 0.5 { 0.0 } else { 1.0 }),
            _ => return false,
        }
        true
    }

    /// Move the fader or the balance in a straight line to `v` over `n` samples (automation);
    /// other keys as [`Self::apply`].
    pub fn ramp(&mut self, key: Key, v: f32, n: u32) -> bool {
        if let Some(ok) = insert_key(&mut self.insert, key, v, Some(n)) {
            return ok;
        }
        match key {
            Key::Pan => {
                let (l, r) = pan_gains(2, v);
                self.bal_l.ramp_to(l, n);
                self.bal_r.ramp_to(r, n);
            }
            Key::FaderDb => self.fader.ramp_to(db_to_gain(v), n),
            _ => return self.apply(key, v),
        }
        true
    }

    pub fn snap(&mut self) {
        for g in [
            &mut self.fader,
            &mut self.bal_l,
            &mut self.bal_r,
            &mut self.mute,
        ] {
            let t = g.target();
            g.reset(t);
        }
        self.eq.snap();
        self.comp.reset();
        if let Some(i) = self.insert.as_mut() {
            i.snap();
        }
    }

    pub fn meters(&self) -> StripMeters {
        StripMeters {
            peak_db: [self.meter.peak_db(0), self.meter.peak_db(1)],
            rms_db: [self.meter.rms_db(0), self.meter.rms_db(1)],
            gate_gr_db: 0.0,
            comp_gr_db: self.comp.gain_reduction_db(),
        }
    }

    /// Process `n` frames of `io` (the bus's summed input) in place into its output; an
    /// insert's return comes from `inputs`.
    pub fn process(&mut self, n: usize, io: &mut [Vec<f32>; 2], inputs: super::Inputs<'_>) {
        use InsertPosition::{PostDynamics, PostFader, PreEq};
        let pos = self.insert_pos;
        let [l, r] = io;
        let (l, r) = (&mut l[..n], &mut r[..n]);
        // Effects: 100% wet returns, summed when a bus has both.
        if self.reverb.is_some() || self.delay.is_some() {
            let [ol, or] = &mut self.fx_out;
            let (ol, or) = (&mut ol[..n], &mut or[..n]);
            ol.fill(0.0);
            or.fill(0.0);
            let [tl, tr] = &mut self.fx_tmp;
            let (tl, tr) = (&mut tl[..n], &mut tr[..n]);
            if let Some((rv, _)) = &mut self.reverb {
                rv.process(l, r, tl, tr);
                ol.iter_mut().zip(tl.iter()).for_each(|(o, t)| *o += t);
                or.iter_mut().zip(tr.iter()).for_each(|(o, t)| *o += t);
            }
            if let Some((dl, _)) = &mut self.delay {
                dl.process(l, r, tl, tr);
                ol.iter_mut().zip(tl.iter()).for_each(|(o, t)| *o += t);
                or.iter_mut().zip(tr.iter()).for_each(|(o, t)| *o += t);
            }
            l.copy_from_slice(ol);
            r.copy_from_slice(or);
        }
        let mut chans: [&mut [f32]; 2] = [l, r];
        insert_at(&mut self.insert, pos, PreEq, &mut chans, inputs);
        self.eq.process(&mut chans);
        self.comp.process(&mut chans);
        insert_at(&mut self.insert, pos, PostDynamics, &mut chans, inputs);
        let [gf, gl, gr] = &mut self.g;
        let (gf, gl, gr) = (&mut gf[..n], &mut gl[..n], &mut gr[..n]);
        self.fader.fill(gf);
        self.bal_l.fill(gl);
        self.bal_r.fill(gr);
        let [l, r] = chans;
        if self.mute.is_smoothing() || self.mute.current() != 1.0 {
            let gm = &mut self.fx_tmp[0][..n];
            self.mute.fill(gm);
            gf.iter_mut().zip(gm.iter()).for_each(|(f, m)| *f *= m);
        }
        if self.insert.is_some() && pos == PostFader {
            for i in 0..n {
                l[i] *= gf[i];
                r[i] *= gf[i];
            }
            let mut chans: [&mut [f32]; 2] = [l, r];
            insert_at(&mut self.insert, pos, PostFader, &mut chans, inputs);
            let [l, r] = chans;
            for i in 0..n {
                l[i] *= gl[i];
                r[i] *= gr[i];
            }
            self.meter.process(&[&*l, &*r]);
            return;
        }
        for i in 0..n {
            l[i] *= gf[i] * gl[i];
            r[i] *= gf[i] * gr[i];
        }
        self.meter.process(&[&*l, &*r]);
    }
}

/// The master bus.
pub(super) struct MasterStrip {
    eq: EqSet,
    comp: Compressor,
    comp_p: [f32; 6],
    fader: SmoothedGain,
    limiter: Limiter,
    limiter_p: [f32; 2],
    meter: PeakRms,
    /// The hardware insert, and where it sits.
    pub insert: Option<InsertRt>,
    pub insert_pos: InsertPosition,
}

impl MasterStrip {
    pub fn new(sample_rate: f32, insert_pos: InsertPosition) -> Self {
        let l = spec::LIMITER;
        Self {
            eq: EqSet::new(sample_rate, 2),
            comp: Compressor::new(sample_rate),
            comp_p: comp_defaults(),
            fader: SmoothedGain::new(1.0, GAIN_GLIDE_MS, sample_rate),
            limiter: Limiter::new(sample_rate, 2),
            limiter_p: [
                spec::get(l, "ceiling_dbtp").default,
                spec::get(l, "release_ms").default,
            ],
            meter: PeakRms::new(sample_rate, 2),
            insert: None,
            insert_pos,
        }
    }

    /// Samples of delay the master adds (the limiter's look-ahead), constant.
    pub fn latency(&self) -> usize {
        self.limiter.latency_samples()
    }

    pub fn apply(&mut self, key: Key, v: f32) -> bool {
        if let Some(ok) = insert_key(&mut self.insert, key, v, None) {
            return ok;
        }
        match key {
            Key::EqOn(_) | Key::EqType(_) | Key::EqFreq(_) | Key::EqGain(_) | Key::EqQ(_) => {
                self.eq.apply(key, v)
            }
            Key::CompOn => self.comp.set_enabled(v >= 0.5),
            Key::CompThreshold
            | Key::CompRatio
            | Key::CompKnee
            | Key::CompAttack
            | Key::CompRelease
            | Key::CompMakeup => super::set_comp_param(&mut self.comp, &mut self.comp_p, key, v),
            Key::FaderDb => self.fader.set_target(db_to_gain(v)),
            Key::LimiterOn => self.limiter.set_enabled(v >= 0.5),
            Key::LimiterCeiling | Key::LimiterRelease => {
                self.limiter_p[usize::from(key == Key::LimiterRelease)] = v;
                self.limiter.set(self.limiter_p[0], self.limiter_p[1]);
            }
            _ => return false,
        }
        true
    }

    /// Move the fader in a straight line to `v` over `n` samples (automation); other keys as
    /// [`Self::apply`].
    pub fn ramp(&mut self, key: Key, v: f32, n: u32) -> bool {
        if let Some(ok) = insert_key(&mut self.insert, key, v, Some(n)) {
            return ok;
        }
        match key {
            Key::FaderDb => self.fader.ramp_to(db_to_gain(v), n),
            _ => return self.apply(key, v),
        }
        true
    }

    pub fn snap(&mut self) {
        let t = self.fader.target();
        self.fader.reset(t);
        self.eq.snap();
        self.comp.reset();
        self.limiter.reset();
        if let Some(i) = self.insert.as_mut() {
            i.snap();
        }
    }

    pub fn meters(&self) -> (StripMeters, f32) {
        (
            StripMeters {
                peak_db: [self.meter.peak_db(0), self.meter.peak_db(1)],
                rms_db: [self.meter.rms_db(0), self.meter.rms_db(1)],
                gate_gr_db: 0.0,
                comp_gr_db: self.comp.gain_reduction_db(),
            },
            self.limiter.gain_reduction_db(),
        )
    }

    /// Process the master's summed input in place; an insert's return comes from `inputs`.
    pub fn process(&mut self, l: &mut [f32], r: &mut [f32], inputs: super::Inputs<'_>) {
        use InsertPosition::{PostDynamics, PostFader, PreEq};
        let pos = self.insert_pos;
        let mut chans: [&mut [f32]; 2] = [l, r];
        insert_at(&mut self.insert, pos, PreEq, &mut chans, inputs);
        self.eq.process(&mut chans);
        self.comp.process(&mut chans);
        insert_at(&mut self.insert, pos, PostDynamics, &mut chans, inputs);
        if self.fader.is_smoothing() {
            let [l, r] = &mut chans;
            for (a, b) in l.iter_mut().zip(r.iter_mut()) {
                let g = self.fader.next_value();
                *a *= g;
                *b *= g;
            }
        } else {
            let g = self.fader.current();
            if g != 1.0 {
                chans
                    .iter_mut()
                    .for_each(|c| c.iter_mut().for_each(|s| *s *= g));
            }
        }
        insert_at(&mut self.insert, pos, PostFader, &mut chans, inputs);
        self.limiter.process(&mut chans);
        let [l, r] = chans;
        self.meter.process(&[&*l, &*r]);
    }
}
