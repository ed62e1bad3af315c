//! The hardware insert of a channel, a bus or the master (SPEC §3 `insert:`, issue 8): at the
//! strip's insert point (its `position:`, see [`super::strip`] and [`super::bus`]) the
//! signal × send gain goes out of the insert's send port(s) and the strip continues with
//!
//! ```text
//! out = d + wet_eff × (±return_gain × ret − d),   wet_eff = wet × (1 − bypass)
//! ```
//!
//! where `ret` is the gear's return and `d` the strip's own signal delayed by the insert's
//! round-trip latency (rounded to samples; 0 when unknown). So `wet = 1` is the return alone,
//! `wet = 0` the dry signal in step with the return, and bypass replaces the gear by a delay of
//! the same length: nothing shifts in time when it is toggled. Gains, wet and the polarity
//! (a sign of the return gain) glide over [`super::GAIN_GLIDE_MS`]; bypass crossfades over the
//! same time (raised cosine), so toggling it is click-free. The send keeps sending while
//! bypassed (the gear stays fed and the return stays warm).
//!
//! Without outboard gear (offline renders, the null backend) the insert is held bypassed: the
//! strip goes through the latency delay only.
//!
//! While the daemon measures the insert's latency ([`Key::InsertHold`], not a parameter) the
//! insert is held the same way and its send glides to silence (same glide), so only the
//! measurement's probe reaches the gear and the probe's return never reaches the mix; the
//! parameters keep their values and everything comes back (crossfaded) on release.
//!
//! Built on the control plane (allocates); `apply` and `process` never allocate.

use crate::dsp::util::{SmoothedGain, db_to_gain};
use crate::params::Key;

use super::GAIN_GLIDE_MS;

/// Longest latency delay, in seconds of audio (a bigger stored value is capped).
pub const MAX_LATENCY_S: f32 = 2.0;

pub(super) struct InsertRt {
    nch: usize,
    send: SmoothedGain,
    /// Return gain with the polarity's sign.
    ret: SmoothedGain,
    ret_db: f32,
    invert: bool,
    wet: SmoothedGain,
    /// 0 = gear in, 1 = bypassed (delay only).
    byp: SmoothedGain,
    /// The `bypass` parameter.
    bypass: bool,
    /// False without outboard gear: held bypassed whatever the parameter says.
    outboard: bool,
    /// Held for a latency measurement ([`Key::InsertHold`]): bypassed, send silent.
    hold: bool,
    /// The send's gain from the hold (1, or 0 while held).
    hold_send: SmoothedGain,
    /// Latency delay lines (one per channel, `latency` samples each) and the write position.
    delay: [Vec<f32>; 2],
    wpos: usize,
    latency: usize,
    /// The send signal of the last sub-block (the engine copies it to its outputs).
    pub send_buf: [Vec<f32>; 2],
    /// Engine output indices of the send (L, R; equal for mono).
    pub send_out: [usize; 2],
    /// Engine input indices of the return (L, R; equal for mono).
    pub ret_in: [usize; 2],
    g_send: Vec<f32>,
    g_ret: Vec<f32>,
    g_wet: Vec<f32>,
    g_hold: Vec<f32>,
}

impl InsertRt {
    /// An insert for `nch` channels with a latency of `latency` samples (capped at
    /// [`MAX_LATENCY_S`]), parameters at their defaults (send/return 0 dB, wet 1, not
    /// inverted, in circuit). Allocates.
    pub fn new(
        nch: usize,
        latency: usize,
        sample_rate: f32,
        max_block: usize,
        send_out: [usize; 2],
        ret_in: [usize; 2],
    ) -> Self {
        let g = |v: f32| SmoothedGain::new(v, GAIN_GLIDE_MS, sample_rate);
        let latency = latency.min((MAX_LATENCY_S * sample_rate) as usize);
        Self {
            nch: nch.clamp(1, 2),
            send: g(1.0),
            ret: g(1.0),
            ret_db: 0.0,
            invert: false,
            wet: g(1.0),
            byp: g(0.0),
            bypass: false,
            outboard: true,
            hold: false,
            hold_send: g(1.0),
            delay: [
                crate::dsp::util::zeroed(latency),
                crate::dsp::util::zeroed(latency),
            ],
            wpos: 0,
            latency,
            send_buf: [
                crate::dsp::util::zeroed(max_block),
                crate::dsp::util::zeroed(max_block),
            ],
            send_out,
            ret_in,
            g_send: crate::dsp::util::zeroed(max_block),
            g_ret: crate::dsp::util::zeroed(max_block),
            g_wet: crate::dsp::util::zeroed(max_block),
            g_hold: crate::dsp::util::zeroed(max_block),
        }
    }

    /// The latency delay in samples.
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// Declare whether outboard gear is there (false: held bypassed, at once). Control plane.
    pub fn set_outboard(&mut self, on: bool) {
        self.outboard = on;
        if !on {
            self.byp.reset(1.0);
        }
    }

    /// Apply one parameter; false for a key that is not an insert's.
    pub fn apply(&mut self, key: Key, v: f32) -> bool {
        match key {
            Key::InsertSendDb => self.send.set_target(db_to_gain(v)),
            Key::InsertReturnDb => {
                self.ret_db = v;
                self.update_ret();
            }
            Key::InsertInvert => {
                self.invert = v >= 0.5;
                self.update_ret();
            }
            Key::InsertWet => self.wet.set_target(v.clamp(0.0, 1.0)),
            Key::InsertBypass => {
                self.bypass = v >= 0.5;
                self.update_bypass();
            }
            Key::InsertHold => {
                self.hold = v >= 0.5;
                self.hold_send.set_target(if self.hold { 0.0 } else { 1.0 });
                self.update_bypass();
            }
            _ => return false,
        }
        true
    }

    /// Straight ramps for automation (gains and wet); other keys as [`Self::apply`].
    pub fn ramp(&mut self, key: Key, v: f32, n: u32) -> bool {
        match key {
            Key::InsertSendDb => self.send.ramp_to(db_to_gain(v), n),
            Key::InsertReturnDb => {
                self.ret_db = v;
                let sign = if self.invert { -1.0 } else { 1.0 };
                self.ret.ramp_to(sign * db_to_gain(v), n);
            }
            Key::InsertWet => self.wet.ramp_to(v.clamp(0.0, 1.0), n),
            _ => return self.apply(key, v),
        }
        true
    }

    fn update_bypass(&mut self) {
        let b = self.bypass || self.hold || !self.outboard;
        self.byp.set_target(if b { 1.0 } else { 0.0 });
    }

    fn update_ret(&mut self) {
        let sign = if self.invert { -1.0 } else { 1.0 };
        self.ret.set_target(sign * db_to_gain(self.ret_db));
    }

    /// Jump every glide to its target.
    pub fn snap(&mut self) {
        for g in [
            &mut self.send,
            &mut self.ret,
            &mut self.wet,
            &mut self.byp,
            &mut self.hold_send,
        ] {
            let t = g.target();
            g.reset(t);
        }
    }

    /// Process one sub-block in place: `chans` (1 or 2 slices of `n` frames) is the strip's
    /// signal at the insert point; `ret` the gear's return per channel (None: silence).
    /// Writes the send into [`Self::send_buf`]. Real-time safe.
    pub fn process(&mut self, chans: &mut [&mut [f32]], ret: [Option<&[f32]>; 2]) {
        let n = chans.first().map_or(0, |c| c.len());
        let nch = self.nch.min(chans.len());
        let (gs, gr, gw) = (
            &mut self.g_send[..n],
            &mut self.g_ret[..n],
            &mut self.g_wet[..n],
        );
        self.send.fill(gs);
        if self.hold || self.hold_send.is_smoothing() {
            let gh = &mut self.g_hold[..n];
            self.hold_send.fill(gh);
            for (s, h) in gs.iter_mut().zip(gh.iter()) {
                *s *= h;
            }
        }
        self.ret.fill(gr);
        // The effective wet: wet × (1 − bypass), per sample.
        if self.wet.is_smoothing() || self.byp.is_smoothing() {
            for w in gw.iter_mut() {
                *w = self.wet.next_value() * (1.0 - self.byp.next_value());
            }
        } else {
            gw.fill(self.wet.current() * (1.0 - self.byp.current()));
        }
        let lat = self.latency;
        let mut wpos = self.wpos;
        for (c, x) in chans.iter_mut().enumerate().take(nch) {
            let send = &mut self.send_buf[c][..n];
            let line = &mut self.delay[c];
            let r = ret[c];
            wpos = self.wpos;
            for i in 0..n {
                let s = x[i];
                send[i] = s * gs[i];
                let d = if lat == 0 {
                    s
                } else {
                    let d = line[wpos];
                    line[wpos] = s;
                    wpos += 1;
                    if wpos == lat {
                        wpos = 0;
                    }
                    d
                };
                let back = r.map_or(0.0, |r| r[i]) * gr[i];
                x[i] = d + gw[i] * (back - d);
            }
        }
        self.wpos = wpos;
    }
}

/// The common latency compensation of a channel strip (issue 8 point 3, planned by
/// [`super::latcomp`]): a plain delay after its dynamics (and a pre-fader insert), ahead of the
/// pre-fader send tap; with inserts on channels only it is `Lmax − L_own`. Built on the control
/// plane (allocates); `process` never allocates.
pub(super) struct CompDelay {
    line: [Vec<f32>; 2],
    wpos: usize,
}

impl CompDelay {
    /// A delay of `len >= 1` samples for up to two channels. Allocates.
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        Self {
            line: [crate::dsp::util::zeroed(len), crate::dsp::util::zeroed(len)],
            wpos: 0,
        }
    }

    /// The delay in samples.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.line[0].len()
    }

    /// Delay `chans` (1 or 2 slices of equal length) in place. Real-time safe.
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let mut wpos = self.wpos;
        for (x, line) in chans.iter_mut().zip(self.line.iter_mut()) {
            wpos = delay_through(line, self.wpos, x);
        }
        self.wpos = wpos;
    }
}

/// Delay `x` in place by `line.len()` samples through the circular `line`, starting at
/// position `wpos`; returns the position after. Real-time safe.
#[inline]
fn delay_through(line: &mut [f32], mut wpos: usize, x: &mut [f32]) -> usize {
    let len = line.len();
    for s in x.iter_mut() {
        std::mem::swap(&mut line[wpos], s);
        wpos += 1;
        if wpos == len {
            wpos = 0;
        }
    }
    wpos
}

/// The delay line of one graph edge (a channel's main output or send, see [`super::latcomp`]):
/// delays the edge's contribution (gains applied) by `len` samples before it is summed.
/// `len` may change at run time (a send switched between pre- and post-fader on a channel
/// with a post-fader insert): the line is cleared then. Built on the control plane
/// (allocates); `process` never allocates.
pub(super) struct EdgeDelay {
    line: [Vec<f32>; 2],
    wpos: usize,
    len: usize,
}

impl EdgeDelay {
    /// A line for up to `cap >= 1` samples, delaying by `len <= cap`. Allocates.
    pub fn new(cap: usize, len: usize) -> Self {
        let cap = cap.max(1);
        Self {
            line: [crate::dsp::util::zeroed(cap), crate::dsp::util::zeroed(cap)],
            wpos: 0,
            len: len.min(cap),
        }
    }

    /// The delay now (samples).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Change the delay (clears the line). Real-time safe.
    pub fn set_len(&mut self, len: usize) {
        let len = len.min(self.line[0].len());
        if len != self.len {
            self.len = len;
            self.line.iter_mut().for_each(|l| l.fill(0.0));
            self.wpos = 0;
        }
    }

    /// Delay `l` and `r` in place by [`Self::len`]. Real-time safe.
    pub fn process(&mut self, l: &mut [f32], r: &mut [f32]) {
        let len = self.len;
        if len == 0 {
            return;
        }
        let mut wpos = self.wpos;
        for (x, line) in [l, r].into_iter().zip(self.line.iter_mut()) {
            wpos = delay_through(&mut line[..len], self.wpos, x);
        }
        self.wpos = wpos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f32 = 48000.0;

    fn sine(n: usize, f: f32, a: f32) -> Vec<f32> {
        (0..n)
            .map(|i| a * (2.0 * std::f32::consts::PI * f * i as f32 / SR).sin())
            .collect()
    }

    /// Run `x` through `ins` in blocks of 64 with return `r(x)`.
    fn run(ins: &mut InsertRt, x: &[f32], ret: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut out = x.to_vec();
        let mut send = vec![0.0; x.len()];
        for (k, chunk) in out.chunks_mut(64).enumerate() {
            let off = k * 64;
            let m = chunk.len();
            let r = &ret[off..off + m];
            ins.process(&mut [chunk], [Some(r), Some(r)]);
            send[off..off + m].copy_from_slice(&ins.send_buf[0][..m]);
        }
        (out, send)
    }

    #[test]
    fn send_gain_wet_and_polarity_follow_the_formula() {
        let x = sine(4096, 1000.0, 0.5);
        let ret = sine(4096, 440.0, 0.25);
        let lat = 37;
        let mut ins = InsertRt::new(1, lat, SR, 64, [0, 0], [0, 0]);
        for (k, v) in [
            (Key::InsertSendDb, -6.0),
            (Key::InsertReturnDb, 3.0),
            (Key::InsertWet, 0.3),
            (Key::InsertInvert, 1.0),
        ] {
            assert!(ins.apply(k, v));
        }
        ins.snap();
        let (out, send) = run(&mut ins, &x, &ret);
        let gs = 10f32.powf(-6.0 / 20.0);
        let gr = -(10f32.powf(3.0 / 20.0));
        for i in 0..x.len() {
            assert!((send[i] - x[i] * gs).abs() < 1e-6, "send at {i}");
            let d = if i >= lat { x[i - lat] } else { 0.0 };
            let want = 0.7 * d + 0.3 * gr * ret[i];
            assert!(
                (out[i] - want).abs() < 1e-5,
                "out at {i}: {} vs {want}",
                out[i]
            );
        }
    }

    #[test]
    fn bypass_is_the_latency_delay_and_crossfades_in_10_ms() {
        let x = sine(9600, 500.0, 0.5);
        let lat = 100;
        // A "gear" that is a plain delay of `lat` samples at unity: bypass must be seamless.
        let ret: Vec<f32> = (0..x.len())
            .map(|i| if i >= lat { x[i - lat] } else { 0.0 })
            .collect();
        let mut ins = InsertRt::new(1, lat, SR, 64, [0, 0], [0, 0]);
        ins.snap();
        let mut out = x.clone();
        let (mut chunks, mut off) = (out.chunks_mut(64), 0);
        // Toggle bypass at sample 3200 (a block start), back at 6400.
        for chunk in &mut chunks {
            if off == 3200 {
                ins.apply(Key::InsertBypass, 1.0);
            }
            if off == 6400 {
                ins.apply(Key::InsertBypass, 0.0);
            }
            let m = chunk.len();
            let r = &ret[off..off + m];
            ins.process(&mut [chunk], [Some(r), None]);
            off += m;
        }
        for i in lat..x.len() {
            assert!(
                (out[i] - ret[i]).abs() < 1e-6,
                "seamless at {i}: {} vs {}",
                out[i],
                ret[i]
            );
        }

        // A return at half level: the crossfade follows the raised cosine over 480 samples.
        let half: Vec<f32> = ret.iter().map(|v| 0.5 * v).collect();
        let mut ins = InsertRt::new(1, lat, SR, 64, [0, 0], [0, 0]);
        ins.snap();
        let mut out = x.clone();
        let glide = 480;
        let mut off = 0;
        for chunk in out.chunks_mut(64) {
            if off == 3200 {
                ins.apply(Key::InsertBypass, 1.0);
            }
            let m = chunk.len();
            let r = &half[off..off + m];
            ins.process(&mut [chunk], [Some(r), None]);
            off += m;
        }
        for i in lat..x.len() {
            let b = if i < 3200 {
                0.0
            } else if i >= 3200 + glide {
                1.0
            } else {
                let t = (i - 3200 + 1) as f32 / glide as f32;
                0.5 - 0.5 * (std::f32::consts::PI * t).cos()
            };
            let d = x[i - lat];
            let want = d + (1.0 - b) * (half[i] - d);
            assert!((out[i] - want).abs() < 1e-5, "at {i}: {} vs {want}", out[i]);
        }
    }

    /// A measurement's hold: bypassed (the latency delay) and the send silent after the 10 ms
    /// glide, whatever the parameters; released, the gear and the send come back as they were.
    #[test]
    fn a_hold_bypasses_and_silences_the_send_then_restores_both() {
        let x = sine(9600, 500.0, 0.5);
        let ret = sine(9600, 440.0, 0.25);
        let lat = 100;
        let mut ins = InsertRt::new(1, lat, SR, 64, [0, 0], [0, 0]);
        ins.apply(Key::InsertSendDb, -6.0);
        ins.snap();
        let gs = 10f32.powf(-6.0 / 20.0);
        let glide = 480;
        let (mut out, mut send) = (x.clone(), vec![0.0; x.len()]);
        let mut off = 0;
        for chunk in out.chunks_mut(64) {
            if off == 3200 {
                assert!(ins.apply(Key::InsertHold, 1.0));
            }
            if off == 6400 {
                assert!(ins.apply(Key::InsertHold, 0.0));
            }
            let m = chunk.len();
            ins.process(&mut [chunk], [Some(&ret[off..off + m]), None]);
            send[off..off + m].copy_from_slice(&ins.send_buf[0][..m]);
            off += m;
        }
        for i in lat..x.len() {
            let d = x[i - lat];
            let held = (3200 + glide..6400).contains(&i);
            let free = i < 3200 || i >= 6400 + glide;
            if held {
                assert_eq!(send[i], 0.0, "send silent at {i}");
                assert!((out[i] - d).abs() < 1e-6, "delay only at {i}");
            }
            if free {
                assert!((send[i] - gs * x[i]).abs() < 1e-6, "send at {i}");
                assert!((out[i] - ret[i]).abs() < 1e-6, "gear at {i}");
            }
        }
        // The crossfade back follows the bypass glide (raised cosine from 1 to 0).
        for i in 6400..6400 + glide {
            let t = (i - 6400 + 1) as f32 / glide as f32;
            let b = 0.5 + 0.5 * (std::f32::consts::PI * t).cos();
            let d = x[i - lat];
            let want = d + (1.0 - b) * (ret[i] - d);
            assert!((out[i] - want).abs() < 1e-5, "at {i}: {} vs {want}", out[i]);
        }
        // A bypass set while held stays after the release.
        ins.apply(Key::InsertHold, 1.0);
        ins.apply(Key::InsertBypass, 1.0);
        ins.apply(Key::InsertHold, 0.0);
        ins.snap();
        let (o, s) = run(&mut ins, &x[..640], &ret[..640]);
        for i in lat..640 {
            assert!((o[i] - x[i - lat]).abs() < 1e-6, "still bypassed at {i}");
            assert!((s[i] - gs * x[i]).abs() < 1e-6, "send back at {i}");
        }
    }

    #[test]
    fn without_outboard_it_stays_bypassed() {
        let x = sine(2048, 300.0, 0.5);
        let lat = 64;
        let mut ins = InsertRt::new(1, lat, SR, 64, [0, 0], [0, 0]);
        ins.set_outboard(false);
        ins.apply(Key::InsertBypass, 0.0);
        ins.snap();
        let zero = vec![0.0; x.len()];
        let (out, _) = run(&mut ins, &x, &zero);
        for i in 0..x.len() {
            let want = if i >= lat { x[i - lat] } else { 0.0 };
            assert_eq!(out[i], want, "at {i}");
        }
    }

    #[test]
    fn compensation_delays_each_channel_by_its_length() {
        let l = sine(1000, 300.0, 0.5);
        let r = sine(1000, 700.0, 0.4);
        let mut c = CompDelay::new(37);
        assert_eq!(c.len(), 37);
        let (mut ol, mut or) = (l.clone(), r.clone());
        for (a, b) in ol.chunks_mut(64).zip(or.chunks_mut(64)) {
            c.process(&mut [a, b]);
        }
        for i in 0..l.len() {
            let (wl, wr) = if i >= 37 {
                (l[i - 37], r[i - 37])
            } else {
                (0.0, 0.0)
            };
            assert_eq!((ol[i], or[i]), (wl, wr), "at {i}");
        }
    }

    #[test]
    fn stereo_channels_use_their_own_lines() {
        let l = sine(1024, 300.0, 0.5);
        let r = sine(1024, 700.0, 0.4);
        let lat = 10;
        let mut ins = InsertRt::new(2, lat, SR, 64, [0, 1], [0, 1]);
        ins.apply(Key::InsertBypass, 1.0);
        ins.snap();
        let (mut ol, mut or) = (l.clone(), r.clone());
        for (a, b) in ol.chunks_mut(64).zip(or.chunks_mut(64)) {
            ins.process(&mut [a, b], [None, None]);
        }
        for i in lat..l.len() {
            assert_eq!(ol[i], l[i - lat]);
            assert_eq!(or[i], r[i - lat]);
        }
    }
}
