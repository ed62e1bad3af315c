//! Fused processing of a series of SVF sections (the strip's HPF/LPF pair, its four EQ
//! bands): [`process_series`].
//!
//! One section on its own is latency-bound: every sample waits for the previous sample's
//! state update. When every filter of the series is steady (fully on or fully off, no glide,
//! no ramp, no fade), up to [`LANES`] sections run together as a *wavefront*: lane `k` of a
//! small vector holds section `k`, and at step `t` it processes sample `t - k`, taking its
//! input from lane `k - 1`'s output of the previous step. The lanes are independent within a
//! step, so the compiler vectorises them and the sections' feedback chains overlap. Each lane
//! performs exactly the operations of the scalar `tick`, in the same order, so the result is
//! bit-identical to running the sections one after the other; while anything is in
//! transition the filters simply run one by one through their own `process`.

use super::{EqBand, MAX_CHANNELS, PassFilter, SvfCoeffs, SvfState, frames_of};

/// Sections run side by side in one wavefront.
pub const LANES: usize = 4;

/// Most sections gathered at once (two pass filters of two sections, four EQ bands).
const MAX_SECTIONS: usize = 8;

type V = [f32; LANES];

/// Coefficients of up to [`LANES`] sections, one per lane (unused lanes: identity).
#[derive(Clone, Copy)]
pub(super) struct LaneCoeffs {
    pub(super) e1: V,
    pub(super) d2: V,
    pub(super) d3: V,
    pub(super) ma: V,
    pub(super) mb: V,
    pub(super) mc: V,
}

/// Per-lane states of one channel.
#[derive(Clone, Copy, Default)]
pub(super) struct LaneState {
    pub(super) ic1: V,
    pub(super) ic2: V,
    /// Output of each lane at the previous step (the next lane's input).
    out: V,
}

/// One step of every lane: the scalar `tick`, lane-wise. Lanes where `active` is false keep
/// their state (their output is computed but never used).
#[inline(always)]
fn step<const MASKED: bool>(c: &LaneCoeffs, s: &mut LaneState, v0: &V, active: &[bool; LANES]) {
    let mut y = [0.0f32; LANES];
    let mut n1 = [0.0f32; LANES];
    let mut n2 = [0.0f32; LANES];
    for k in 0..LANES {
        let (s1, s2, x) = (s.ic1[k], s.ic2[k], v0[k]);
        y[k] = c.ma[k] * x + (c.mb[k] * s1 + c.mc[k] * s2);
        let v3 = x - s2;
        n1[k] = c.e1[k] * s1 + c.d2[k] * v3;
        n2[k] = (s2 - c.d3[k] * s2) + (c.d2[k] * s1 + c.d3[k] * x);
    }
    if MASKED {
        for k in 0..LANES {
            if active[k] {
                s.ic1[k] = n1[k];
                s.ic2[k] = n2[k];
            }
        }
    } else {
        s.ic1 = n1;
        s.ic2 = n2;
    }
    s.out = y;
}

/// The lane inputs at a step: the new sample in lane 0, the previous outputs shifted up.
#[inline(always)]
fn inputs(x: f32, out: &V) -> V {
    let mut v = [0.0f32; LANES];
    v[0] = x;
    v[1..].copy_from_slice(&out[..LANES - 1]);
    v
}

/// Which lanes hold a real sample at step `t` of `n` samples: lane `k` processes `t - k`.
#[inline(always)]
fn active_at(t: usize, n: usize) -> [bool; LANES] {
    std::array::from_fn(|k| k <= t && t < n + k)
}

/// Run `depth` (1..=LANES) sections over the channels `xs` in place.
fn run_wavefront<const NCH: usize>(
    c: &LaneCoeffs,
    st: &mut [LaneState; NCH],
    xs: &mut [&mut [f32]; NCH],
    depth: usize,
) {
    let n = xs[0].len();
    let d = depth - 1;
    let total = n + d;
    let masked_step = |t: usize, st: &mut [LaneState; NCH], xs: &mut [&mut [f32]; NCH]| {
        let act = active_at(t, n);
        for ch in 0..NCH {
            let x = if t < n { xs[ch][t] } else { 0.0 };
            let v = inputs(x, &st[ch].out);
            step::<true>(c, &mut st[ch], &v, &act);
            if t >= d {
                xs[ch][t - d] = st[ch].out[d];
            }
        }
    };
    let main_lo = d.min(n);
    let main_hi = n.max(main_lo);
    for t in 0..main_lo {
        masked_step(t, st, xs);
    }
    let all = [true; LANES];
    for t in main_lo..main_hi {
        for ch in 0..NCH {
            let v = inputs(xs[ch][t], &st[ch].out);
            step::<false>(c, &mut st[ch], &v, &all);
            xs[ch][t - d] = st[ch].out[d];
        }
    }
    for t in main_hi..total {
        masked_step(t, st, xs);
    }
}

/// The steady sections gathered from a series of filters, [`LANES`] per group, `G` groups
/// (the fused path needs one per stage, so it copies no more than that).
struct Gathered<const G: usize> {
    coeffs: [LaneCoeffs; G],
    states: [[LaneState; MAX_CHANNELS]; G],
    /// Lane of the first section (the lanes before it stay identity).
    first: usize,
    /// One past the lane of the last section.
    len: usize,
}

/// Groups of [`LANES`] sections.
const GROUPS: usize = MAX_SECTIONS / LANES;

/// Lane coefficients of the identity section (`g = 0`: see `SvfCoeffs::identity`).
const IDENTITY_LANES: LaneCoeffs = LaneCoeffs {
    e1: [1.0; LANES],
    d2: [0.0; LANES],
    d3: [0.0; LANES],
    ma: [1.0; LANES],
    mb: [0.0; LANES],
    mc: [0.0; LANES],
};

impl<const G: usize> Gathered<G> {
    fn new() -> Self {
        Self::starting_at(0)
    }

    /// Sections pushed from lane `first` on.
    fn starting_at(first: usize) -> Self {
        Self {
            coeffs: [IDENTITY_LANES; G],
            states: [[LaneState::default(); MAX_CHANNELS]; G],
            first,
            len: first,
        }
    }

    fn push(&mut self, c: &SvfCoeffs, s: &[SvfState; MAX_CHANNELS]) {
        let (g, k) = (self.len / LANES, self.len % LANES);
        let l = &mut self.coeffs[g];
        (l.e1[k], l.d2[k], l.d3[k]) = (c.e1, c.d2, c.d3);
        (l.ma[k], l.mb[k], l.mc[k]) = (c.ma, c.mb, c.mc);
        for (st, s) in self.states[g].iter_mut().zip(s) {
            st.ic1[k] = s.ic1;
            st.ic2[k] = s.ic2;
        }
        self.len += 1;
    }

    /// The states of section `i`, in push order.
    fn pop(&self, i: usize) -> [SvfState; MAX_CHANNELS] {
        let i = self.first + i;
        let (g, k) = (i / LANES, i % LANES);
        std::array::from_fn(|ch| SvfState {
            ic1: self.states[g][ch].ic1[k],
            ic2: self.states[g][ch].ic2[k],
        })
    }
}

/// Run `pass` then `bands` in series over the first `channels` channels of `chans`, exactly
/// as calling each filter's `process` in that order would (bit for bit), but with the steady
/// sections fused into wavefronts of [`LANES`] sections. All filters must have the same
/// channel count. Real-time safe.
pub fn process_series(pass: &mut [PassFilter], bands: &mut [EqBand], chans: &mut [&mut [f32]]) {
    let steady = pass.iter().all(PassFilter::is_steady) && bands.iter().all(EqBand::is_steady);
    let sections: usize = pass.iter().map(PassFilter::steady_sections).sum::<usize>()
        + bands.iter().map(EqBand::steady_sections).sum::<usize>();
    let channels = pass
        .iter()
        .map(|p| p.channels)
        .chain(bands.iter().map(|b| b.channels))
        .next()
        .unwrap_or(1);
    let same_channels =
        pass.iter().all(|p| p.channels == channels) && bands.iter().all(|b| b.channels == channels);
    let n = chans.len().min(channels);
    if !steady || sections <= 1 || sections > MAX_SECTIONS || !same_channels || n == 0 {
        pass.iter_mut().for_each(|p| p.process(chans));
        bands.iter_mut().for_each(|b| b.process(chans));
        return;
    }
    // Off filters still settle their parameters (they touch no audio).
    pass.iter_mut()
        .filter(|p| !p.is_active())
        .for_each(|p| p.process(chans));
    bands
        .iter_mut()
        .filter(|b| !b.is_active())
        .for_each(|b| b.process(chans));

    let mut g = Gathered::<GROUPS>::new();
    for p in pass.iter().filter(|p| p.is_active()) {
        g.push(&p.sec1.c, &p.s1);
        if p.second_on {
            g.push(&p.sec2.c, &p.s2);
        }
    }
    for b in bands.iter().filter(|b| b.is_active()) {
        g.push(&b.sec.c, &b.states);
    }

    let frames = frames_of(chans);
    for grp in 0..g.len.div_ceil(LANES) {
        let depth = (g.len - grp * LANES).min(LANES);
        let (c, st) = (&g.coeffs[grp], &mut g.states[grp]);
        if n >= 2 {
            let (a, b) = chans.split_at_mut(1);
            let mut xs = [&mut a[0][..frames], &mut b[0][..frames]];
            run_wavefront::<2>(c, st, &mut xs, depth);
        } else {
            let mut one = [st[0]];
            run_wavefront::<1>(c, &mut one, &mut [&mut chans[0][..frames]], depth);
            st[0] = one[0];
        }
    }

    // Write the states back in the same order.
    let mut i = 0;
    for p in pass.iter_mut().filter(|p| p.is_active()) {
        p.s1 = g.pop(i);
        i += 1;
        if p.second_on {
            p.s2 = g.pop(i);
            i += 1;
        }
    }
    for b in bands.iter_mut().filter(|b| b.is_active()) {
        b.states = g.pop(i);
        i += 1;
    }
}

/// A per-frame gain placed between the stages of [`try_process_fused`] (the strip's gate).
/// It is copied into the loop and copied back afterwards, so its state stays in registers.
pub trait FrameGain: Copy {
    /// The gain for the next frame, whose peak over the channels is `peak`.
    fn gain(&mut self, peak: f32) -> f32;
}

/// A [`FrameGain`] of exactly 1 (multiplying by it changes nothing).
#[derive(Debug, Clone, Copy)]
pub struct UnityGain;

impl FrameGain for UnityGain {
    #[inline(always)]
    fn gain(&mut self, _peak: f32) -> f32 {
        1.0
    }
}

/// Like [`process_series`] for `pass`, then a linked per-sample gain, then `bands`, all in
/// one wavefront loop: at each step the pass sections, the gain and the EQ sections work on
/// different samples, so their feedback chains overlap. `gain` is called once per frame, in
/// order, with the frame's peak over the channels (`max |x|`, after the pass filters) and
/// returns the gain for that frame (the strip's gate); every channel is multiplied by it.
/// Each stage sits in the last lanes of its vector (identity sections before it pass the
/// input through exactly), so every lane index in the loop is a constant.
///
/// Applies only when every filter is steady, `chans` has exactly the filters' channel count
/// and both stages have 1..=[`LANES`] active sections; otherwise it returns false without
/// touching anything, and the caller runs the stages one by one. The result is bit-identical
/// to `process_series(pass)`, the gain, `process_series(bands)`. Real-time safe.
pub fn try_process_fused(
    pass: &mut [PassFilter],
    bands: &mut [EqBand],
    chans: &mut [&mut [f32]],
    gain: &mut impl FrameGain,
) -> bool {
    let steady = pass.iter().all(PassFilter::is_steady) && bands.iter().all(EqBand::is_steady);
    let dp: usize = pass.iter().map(PassFilter::steady_sections).sum();
    let de: usize = bands.iter().map(EqBand::steady_sections).sum();
    let n = chans.len();
    let channels_ok = pass.iter().all(|p| p.channels == n) && bands.iter().all(|b| b.channels == n);
    if !steady || !channels_ok || !(1..=LANES).contains(&dp) || !(1..=LANES).contains(&de) {
        return false;
    }
    if !(1..=MAX_CHANNELS).contains(&n) {
        return false;
    }
    pass.iter_mut()
        .filter(|p| !p.is_active())
        .for_each(|p| p.process(chans));
    bands
        .iter_mut()
        .filter(|b| !b.is_active())
        .for_each(|b| b.process(chans));
    let (mut gp, mut ge) = (
        Gathered::<1>::starting_at(LANES - dp),
        Gathered::<1>::starting_at(LANES - de),
    );
    for p in pass.iter().filter(|p| p.is_active()) {
        gp.push(&p.sec1.c, &p.s1);
        if p.second_on {
            gp.push(&p.sec2.c, &p.s2);
        }
    }
    for b in bands.iter().filter(|b| b.is_active()) {
        ge.push(&b.sec.c, &b.states);
    }
    let frames = frames_of(chans);
    {
        let (c1, c2) = (&gp.coeffs[0], &ge.coeffs[0]);
        let (s1, s2) = (&mut gp.states[0], &mut ge.states[0]);
        if n == 2 {
            let (a, b) = chans.split_at_mut(1);
            let mut xs = [&mut a[0][..frames], &mut b[0][..frames]];
            run_fused_best::<2, _>([c1, c2], [s1, s2], &mut xs, gain);
        } else {
            let mut one = [[s1[0]], [s2[0]]];
            let [o1, o2] = &mut one;
            run_fused_best::<1, _>([c1, c2], [o1, o2], &mut [&mut chans[0][..frames]], gain);
            (s1[0], s2[0]) = (one[0][0], one[1][0]);
        }
    }
    let mut i = 0;
    for p in pass.iter_mut().filter(|p| p.is_active()) {
        p.s1 = gp.pop(i);
        i += 1;
        if p.second_on {
            p.s2 = gp.pop(i);
            i += 1;
        }
    }
    for (i, b) in bands.iter_mut().filter(|b| b.is_active()).enumerate() {
        b.states = ge.pop(i);
    }
    true
}

/// The fastest fused loop this CPU runs: the 8-lane AVX2 one where available (bit-identical),
/// else the portable [`run_fused`].
#[inline]
fn run_fused_best<const NCH: usize, G: FrameGain>(
    c: [&LaneCoeffs; 2],
    st: [&mut [LaneState; NCH]; 2],
    xs: &mut [&mut [f32]; NCH],
    gain: &mut G,
) {
    #[cfg(target_arch = "x86_64")]
    if super::wide::available() {
        // SAFETY: `available` checked that this CPU has AVX2, the only requirement of the
        // target feature `wide::run_fused` is compiled with.
        unsafe { super::wide::run_fused(c, st, xs, gain) };
        return;
    }
    run_fused(c, st, xs, gain);
}

/// The fused loop of [`try_process_fused`] (both stages [`LANES`] deep): stage 1 takes frame
/// `s` at step `s`; the gain handles frame `s - (LANES - 1)`; stage 2 lane `k` handles frame
/// `s - LANES - k`; the result of frame `s - DELAY` is written back.
fn run_fused<const NCH: usize, G: FrameGain>(
    c: [&LaneCoeffs; 2],
    st: [&mut [LaneState; NCH]; 2],
    xs: &mut [&mut [f32]; NCH],
    gain: &mut G,
) {
    let n = xs[0].len();
    let [st1, st2] = st;
    let mut f = Fused {
        c,
        st1: *st1,
        st2: *st2,
        z: [0.0; NCH],
        gain: *gain,
        n,
    };
    let main_lo = DELAY.min(n);
    let main_hi = n.max(main_lo);
    for s in 0..main_lo {
        f.step::<true>(s, xs);
    }
    for s in main_lo..main_hi {
        f.step::<false>(s, xs);
    }
    for s in main_hi..n + DELAY {
        f.step::<true>(s, xs);
    }
    *st1 = f.st1;
    *st2 = f.st2;
    *gain = f.gain;
}

/// Frames between input and output of [`run_fused`].
const DELAY: usize = 2 * LANES - 1;

/// The state of [`run_fused`]'s loop.
struct Fused<'a, const NCH: usize, G> {
    c: [&'a LaneCoeffs; 2],
    st1: [LaneState; NCH],
    st2: [LaneState; NCH],
    /// The gated frame waiting to enter stage 2.
    z: [f32; NCH],
    gain: G,
    n: usize,
}

impl<const NCH: usize, G: FrameGain> Fused<'_, NCH, G> {
    /// Step `s`; without `MASKED` every lane and the gain have a real frame.
    // Channel loops index several parallel arrays; the constant bounds unroll them.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn step<const MASKED: bool>(&mut self, s: usize, xs: &mut [&mut [f32]; NCH]) {
        let n = self.n;
        // Stage 2 on the frame gated at the previous step.
        let act2: [bool; LANES] = if MASKED {
            std::array::from_fn(|k| s >= LANES + k && s - LANES - k < n)
        } else {
            [true; LANES]
        };
        for ch in 0..NCH {
            let v = inputs(self.z[ch], &self.st2[ch].out);
            step::<MASKED>(self.c[1], &mut self.st2[ch], &v, &act2);
        }
        // Stage 1 on frame s.
        let act1 = if MASKED {
            active_at(s, n)
        } else {
            [true; LANES]
        };
        for ch in 0..NCH {
            let x = if !MASKED || s < n { xs[ch][s] } else { 0.0 };
            let v = inputs(x, &self.st1[ch].out);
            step::<MASKED>(self.c[0], &mut self.st1[ch], &v, &act1);
        }
        // The gain on stage 1's output.
        if !MASKED || (s + 1 >= LANES && s + 1 - LANES < n) {
            let y: [f32; NCH] = std::array::from_fn(|ch| self.st1[ch].out[LANES - 1]);
            let mut peak = y[0].abs();
            for v in &y[1..] {
                peak = peak.max(v.abs());
            }
            let g = self.gain.gain(peak);
            for ch in 0..NCH {
                self.z[ch] = y[ch] * g;
            }
        }
        if !MASKED || s >= DELAY {
            for ch in 0..NCH {
                xs[ch][s - DELAY] = self.st2[ch].out[LANES - 1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EqKind, PassKind, Slope, eq_prototype_magnitude_db};
    use super::*;
    use std::f64::consts::PI;

    const SR: f32 = 48000.0;

    /// A strip's filters: HPF, LPF and four bands.
    struct Set {
        pass: [PassFilter; 2],
        bands: [EqBand; 4],
    }

    fn set(ch: usize) -> Set {
        let mut s = Set {
            pass: [
                PassFilter::new(SR, ch, PassKind::HighPass),
                PassFilter::new(SR, ch, PassKind::LowPass),
            ],
            bands: std::array::from_fn(|_| EqBand::new(SR, ch)),
        };
        s.pass[0].set(60.0, Slope::Db24);
        s.pass[0].set_enabled(true);
        let cfg = [
            (EqKind::LowShelf, 80.0, 2.0, 0.7),
            (EqKind::Bell, 400.0, -3.0, 1.4),
            (EqKind::Bell, 2500.0, 2.0, 1.0),
            (EqKind::HighShelf, 9000.0, 1.5, 0.7),
        ];
        for (b, (k, f, g, q)) in s.bands.iter_mut().zip(cfg) {
            b.set(k, f, g, q);
            b.set_enabled(true);
        }
        s.pass.iter_mut().for_each(PassFilter::snap);
        s.bands.iter_mut().for_each(EqBand::snap);
        s
    }

    fn noise(seed: u32, n: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    }

    /// Changes made before block `i` of the run (enable, glide, slope, type, off).
    fn change(s: &mut Set, i: usize) {
        match i {
            3 => s.pass[1].set_enabled(true),
            9 => s.bands[1].set(EqKind::Bell, 900.0, 6.0, 2.0),
            20 => s.pass[0].set(120.0, Slope::Db12),
            30 => s.bands[2].set(EqKind::Notch, 3000.0, 0.0, 4.0),
            40 => s.bands[0].set_enabled(false),
            50 => {
                s.pass[1].set_enabled(false);
                s.bands[3].set_enabled(false);
            }
            60 => s.pass[0].set(80.0, Slope::Db24),
            _ => {}
        }
    }

    #[test]
    fn fused_series_is_bit_identical_to_one_by_one() {
        let sizes = [64usize, 1, 2, 3, 5, 64, 17, 300, 4, 64, 1000];
        for ch in [1usize, 2] {
            let n = 48000;
            let src: Vec<Vec<f32>> = (0..ch).map(|c| noise(c as u32 + 3, n)).collect();
            let (mut a, mut b) = (set(ch), set(ch));
            let mut ya = src.clone();
            let mut yb = src.clone();
            let (mut pos, mut i, mut steady) = (0, 0, 0);
            while pos < n {
                let len = sizes[i % sizes.len()].min(n - pos);
                change(&mut a, i);
                change(&mut b, i);
                let fused = a.pass.iter().all(PassFilter::is_steady)
                    && a.bands.iter().all(EqBand::is_steady);
                steady += usize::from(fused);
                let r = pos..pos + len;
                {
                    let (l, rest) = ya.split_at_mut(1);
                    let mut c: Vec<&mut [f32]> = vec![&mut l[0][r.clone()]];
                    c.extend(rest.iter_mut().map(|x| &mut x[r.clone()]));
                    process_series(&mut a.pass, &mut a.bands, &mut c);
                }
                {
                    let (l, rest) = yb.split_at_mut(1);
                    let mut c: Vec<&mut [f32]> = vec![&mut l[0][r.clone()]];
                    c.extend(rest.iter_mut().map(|x| &mut x[r.clone()]));
                    b.pass.iter_mut().for_each(|p| p.process(&mut c));
                    b.bands.iter_mut().for_each(|x| x.process(&mut c));
                }
                pos += len;
                i += 1;
            }
            assert!(
                steady > i / 2,
                "fused path used in only {steady} of {i} blocks"
            );
            assert_ne!(ya, src, "the filters did something");
            for (c, (fa, fb)) in ya.iter().zip(&yb).enumerate() {
                let diff = fa
                    .iter()
                    .zip(fb)
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(diff, None, "{ch} channel(s), channel {c}: first difference");
            }
        }
    }

    /// The AVX2 loop against the portable one, on the strip's filters and a gate, over blocks
    /// of every length around the pipeline depths: same output bits, same states after.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_fused_loop_is_bit_identical_to_the_portable_one() {
        use crate::dsp::dynamics::Gate;
        if !super::super::wide::available() {
            eprintln!("no AVX2 here: nothing to compare");
            return;
        }
        fn run<const NCH: usize>(wide: bool, src: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<u32>) {
            let mut s = set(NCH);
            s.bands[1].set_enabled(false); // a 3-band EQ stage: one identity lane
            s.bands[1].snap();
            let mut gate = Gate::new(SR);
            gate.set(-30.0, 40.0, 0.5, 10.0, 20.0);
            gate.set_enabled(true);
            gate.reset();
            let (mut gp, mut ge) = (
                Gathered::<1>::starting_at(LANES - 2),
                Gathered::<1>::starting_at(LANES - 3),
            );
            gp.push(&s.pass[0].sec1.c, &s.pass[0].s1);
            gp.push(&s.pass[0].sec2.c, &s.pass[0].s2);
            for b in s.bands.iter().filter(|b| b.is_active()) {
                ge.push(&b.sec.c, &b.states);
            }
            let mut y = src.to_vec();
            let mut t = gate.ticker();
            let (mut pos, mut i) = (0, 0);
            let sizes = [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 64, 300, 5];
            while pos < y[0].len() {
                let len = sizes[i % sizes.len()].min(y[0].len() - pos);
                let mut it = y.iter_mut();
                let mut xs: [&mut [f32]; NCH] =
                    std::array::from_fn(|_| &mut it.next().unwrap()[pos..pos + len]);
                let (c, st) = ([&gp.coeffs[0], &ge.coeffs[0]], {
                    let [a] = &mut gp.states;
                    let [b] = &mut ge.states;
                    let (a, b): (&mut [LaneState; NCH], &mut [LaneState; NCH]) = (
                        (&mut a[..NCH]).try_into().unwrap(),
                        (&mut b[..NCH]).try_into().unwrap(),
                    );
                    [a, b]
                });
                if wide {
                    // SAFETY: `wide::available()` said this CPU has AVX2.
                    unsafe { super::super::wide::run_fused(c, st, &mut xs, &mut t) };
                } else {
                    run_fused(c, st, &mut xs, &mut t);
                }
                pos += len;
                i += 1;
            }
            gate.finish(t);
            let mut bits: Vec<u32> = gp.states[0][..NCH]
                .iter()
                .chain(&ge.states[0][..NCH])
                .flat_map(|l| l.ic1.iter().chain(&l.ic2).map(|v| v.to_bits()))
                .collect();
            bits.push(gate.gain_reduction_db().to_bits());
            (y, bits)
        }
        fn check<const NCH: usize>() {
            let n = 20_000;
            // Bursts and near-silence so the gate opens, holds and closes.
            let src: Vec<Vec<f32>> = (0..NCH)
                .map(|c| {
                    noise(c as u32 + 11, n)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v * if (i / 2500) % 2 == 0 { 1.0 } else { 1e-3 })
                        .collect()
                })
                .collect();
            let (yw, sw) = run::<NCH>(true, &src);
            let (yp, sp) = run::<NCH>(false, &src);
            assert_ne!(yw, src, "the filters did something");
            for (c, (a, b)) in yw.iter().zip(&yp).enumerate() {
                let diff = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(
                    diff, None,
                    "{NCH} channel(s), channel {c}: first difference"
                );
            }
            assert_eq!(sw, sp, "{NCH} channel(s): states after the run");
        }
        check::<1>();
        check::<2>();
    }

    /// Level change in dB of a steady sine through the whole series (RMS after settling).
    fn series_db(s: &mut Set, f: f64) -> f64 {
        let n = 48000;
        let x: Vec<f32> = (0..n)
            .map(|i| (0.5 * (2.0 * PI * f * i as f64 / f64::from(SR)).sin()) as f32)
            .collect();
        let mut y = x.clone();
        for c in y.chunks_mut(64) {
            process_series(&mut s.pass, &mut s.bands, &mut [c]);
        }
        let win = 24000..n;
        let rms = |v: &[f32]| (v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>()).sqrt();
        20.0 * (rms(&y[win.clone()]) / rms(&x[win])).log10()
    }

    #[test]
    fn fused_series_has_the_product_response() {
        // HPF 60 Hz 24 dB/oct plus four bands: the response in dB is the sum of the prewarped
        // Butterworth magnitude and the four RBJ prototypes.
        let sr = f64::from(SR);
        let bw = |f: f64| {
            let r = (PI * 60.0 / sr).tan() / (PI * f / sr).tan();
            -10.0 * (1.0 + r.powi(8)).log10()
        };
        let mut worst = 0.0f64;
        for f in [
            40.0, 70.0, 100.0, 250.0, 400.0, 1000.0, 2500.0, 6000.0, 9000.0, 15000.0,
        ] {
            let want = bw(f)
                + eq_prototype_magnitude_db(EqKind::LowShelf, f, 80.0, 2.0, 0.7, sr)
                + eq_prototype_magnitude_db(EqKind::Bell, f, 400.0, -3.0, 1.4, sr)
                + eq_prototype_magnitude_db(EqKind::Bell, f, 2500.0, 2.0, 1.0, sr)
                + eq_prototype_magnitude_db(EqKind::HighShelf, f, 9000.0, 1.5, 0.7, sr);
            let got = series_db(&mut set(1), f);
            assert!((got - want).abs() < 0.1, "{f} Hz: {got:.3} vs {want:.3}");
            worst = worst.max((got - want).abs());
        }
        println!("fused series worst error {worst:.4} dB");
    }
    #[test]
    fn fused_with_gate_is_bit_identical_to_the_stages() {
        use crate::dsp::dynamics::Gate;
        let sizes = [64usize, 1, 2, 3, 5, 64, 17, 300, 4, 64, 1000];
        for ch in [1usize, 2] {
            let n = 48000;
            // Bursts and near-silence so the gate opens, holds and closes.
            let src: Vec<Vec<f32>> = (0..ch)
                .map(|c| {
                    noise(c as u32 + 5, n)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v * if (i / 3000) % 2 == 0 { 1.0 } else { 1e-4 })
                        .collect()
                })
                .collect();
            let mk = || {
                let mut g = Gate::new(SR);
                g.set(-50.0, 30.0, 0.5, 10.0, 20.0);
                g.set_enabled(true);
                g.reset();
                (set(ch), g)
            };
            let ((mut a, mut ga), (mut b, mut gb)) = (mk(), mk());
            let (mut ya, mut yb) = (src.clone(), src.clone());
            let (mut pos, mut i, mut fused) = (0, 0, 0);
            while pos < n {
                let len = sizes[i % sizes.len()].min(n - pos);
                change(&mut a, i);
                change(&mut b, i);
                let r = pos..pos + len;
                {
                    let (l, rest) = ya.split_at_mut(1);
                    let mut c: Vec<&mut [f32]> = vec![&mut l[0][r.clone()]];
                    c.extend(rest.iter_mut().map(|x| &mut x[r.clone()]));
                    let mut t = ga.ticker();
                    if try_process_fused(&mut a.pass, &mut a.bands, &mut c, &mut t) {
                        ga.finish(t);
                        fused += 1;
                    } else {
                        process_series(&mut a.pass, &mut [], &mut c);
                        ga.process(&mut c);
                        process_series(&mut [], &mut a.bands, &mut c);
                    }
                }
                {
                    let (l, rest) = yb.split_at_mut(1);
                    let mut c: Vec<&mut [f32]> = vec![&mut l[0][r.clone()]];
                    c.extend(rest.iter_mut().map(|x| &mut x[r.clone()]));
                    b.pass.iter_mut().for_each(|p| p.process(&mut c));
                    gb.process(&mut c);
                    b.bands.iter_mut().for_each(|x| x.process(&mut c));
                }
                pos += len;
                i += 1;
            }
            assert!(
                fused > i / 2,
                "fused path used in only {fused} of {i} blocks"
            );
            // The gate really worked: it attenuated the quiet parts by its 30 dB range.
            assert!(ga.gain_reduction_db() > 29.0 || ga.gain_reduction_db() == 0.0);
            let quiet = 9000 + 2000..9000 + 2900;
            let g_in: f32 = src[0][quiet.clone()].iter().map(|v| v.abs()).sum();
            let g_out: f32 = yb[0][quiet].iter().map(|v| v.abs()).sum();
            assert!(g_out < 0.1 * g_in, "gate closed: {g_out} vs {g_in}");
            for (c, (fa, fb)) in ya.iter().zip(&yb).enumerate() {
                let diff = fa
                    .iter()
                    .zip(fb)
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(diff, None, "{ch} channel(s), channel {c}: first difference");
            }
        }
    }
}
