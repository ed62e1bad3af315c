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
struct LaneCoeffs {
    e1: V,
    d2: V,
    d3: V,
    ma: V,
    mb: V,
    mc: V,
}

/// Per-lane states of one channel.
#[derive(Clone, Copy, Default)]
struct LaneState {
    ic1: V,
    ic2: V,
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

/// The steady sections gathered from a series of filters, [`LANES`] per group.
struct Gathered {
    coeffs: [LaneCoeffs; GROUPS],
    states: [[LaneState; MAX_CHANNELS]; GROUPS],
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

impl Gathered {
    fn new() -> Self {
        Self {
            coeffs: [IDENTITY_LANES; GROUPS],
            states: [[LaneState::default(); MAX_CHANNELS]; GROUPS],
            len: 0,
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

    let mut g = Gathered::new();
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
}
