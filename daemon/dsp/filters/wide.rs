//! The fused loop of [`super::cascade::try_process_fused`] on x86-64 CPUs with AVX2: both
//! stages in one 8-lane vector (stage 1 in lanes 0..4, stage 2 in lanes 4..8), chosen at run
//! time ([`available`]); elsewhere the portable loop runs.
//!
//! Why: the portable loop keeps each stage in its own 4-lane vector and hands stage 1's output
//! to stage 2 through the gain in the very next step, so every step waits for the gain, and
//! the two stages' twelve coefficient vectors and six state vectors do not fit in SSE's
//! sixteen registers. Here one step is one 8-lane section update; lane 4 (the first stage-2
//! section) takes the gated frame computed *two* steps earlier, so the per-frame gain is off
//! the step's critical path and overlaps the next vector update.
//!
//! Lane `k` processes frame `s - LAG[k]` at step `s`. Every lane performs exactly the
//! operations of the scalar `tick`, in the same order (no fused multiply-add), and the gain
//! sees the frames in order, so the result is bit-identical to the portable loop and to the
//! stages run one by one.

use std::arch::x86_64::{
    __m256, __m256i, _mm_cvtss_f32, _mm_shuffle_ps, _mm256_add_ps, _mm256_and_si256,
    _mm256_blend_ps, _mm256_blendv_ps, _mm256_castps256_ps128, _mm256_castsi256_ps,
    _mm256_cmpgt_epi32, _mm256_extractf128_ps, _mm256_mul_ps, _mm256_permutevar8x32_ps,
    _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setr_ps, _mm256_sub_epi32, _mm256_sub_ps,
};

use super::cascade::{FrameGain, LANES, LaneCoeffs, LaneState};

/// Frame lag of each lane: stage 1 in lanes 0..4, the gain at lag 3, stage 2 from lag 5.
const LAG: [i32; 8] = [0, 1, 2, 3, 5, 6, 7, 8];
/// Lag of the frame the gain handles (stage 1's last lane).
const GAIN_LAG: usize = 3;
/// Lag of the frame that leaves stage 2's last lane.
const OUT_LAG: usize = 8;

/// True if this CPU runs [`run_fused`] (checked once, then cached by `std`).
#[inline]
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Lanes `lo` then `hi` as one vector.
#[target_feature(enable = "avx2")]
#[inline]
fn join(lo: &[f32; LANES], hi: &[f32; LANES]) -> __m256 {
    _mm256_setr_ps(lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3])
}

/// The vector's lanes 0..4 and 4..8.
#[target_feature(enable = "avx2")]
#[inline]
fn split(v: __m256) -> ([f32; LANES], [f32; LANES]) {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let get = |h| {
        [
            _mm_cvtss_f32(h),
            _mm_cvtss_f32(_mm_shuffle_ps::<0x55>(h, h)),
            _mm_cvtss_f32(_mm_shuffle_ps::<0xAA>(h, h)),
            _mm_cvtss_f32(_mm_shuffle_ps::<0xFF>(h, h)),
        ]
    };
    (get(lo), get(hi))
}

/// Lane 3 of `v`.
#[target_feature(enable = "avx2")]
#[inline]
fn lane3(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    _mm_cvtss_f32(_mm_shuffle_ps::<0xFF>(lo, lo))
}

/// Lane 7 of `v`.
#[target_feature(enable = "avx2")]
#[inline]
fn lane7(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps::<1>(v);
    _mm_cvtss_f32(_mm_shuffle_ps::<0xFF>(hi, hi))
}

/// Coefficients of both stages, lane-joined.
struct Coeffs {
    e1: __m256,
    d2: __m256,
    d3: __m256,
    ma: __m256,
    mb: __m256,
    mc: __m256,
}

/// One channel's section states and the lanes' outputs of the previous step.
#[derive(Clone, Copy)]
struct Chan {
    ic1: __m256,
    ic2: __m256,
    out: __m256,
    /// Gated frames waiting for stage 2: `z[0]` from the previous step, `z[1]` from the one
    /// before (the one lane 4 takes now).
    z: [f32; 2],
}

/// [`super::cascade::try_process_fused`]'s loop (both stages [`LANES`] deep, identity sections
/// in the leading lanes of a shorter stage). Same contract as the portable `run_fused`.
#[target_feature(enable = "avx2")]
pub(super) fn run_fused<const NCH: usize, G: FrameGain>(
    c: [&LaneCoeffs; 2],
    st: [&mut [LaneState; NCH]; 2],
    xs: &mut [&mut [f32]; NCH],
    gain: &mut G,
) {
    let n = xs[0].len();
    let [st1, st2] = st;
    let k = Coeffs {
        e1: join(&c[0].e1, &c[1].e1),
        d2: join(&c[0].d2, &c[1].d2),
        d3: join(&c[0].d3, &c[1].d3),
        ma: join(&c[0].ma, &c[1].ma),
        mb: join(&c[0].mb, &c[1].mb),
        mc: join(&c[0].mc, &c[1].mc),
    };
    let zero = _mm256_setr_ps(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut ch: [Chan; NCH] = std::array::from_fn(|i| Chan {
        ic1: join(&st1[i].ic1, &st2[i].ic1),
        ic2: join(&st1[i].ic2, &st2[i].ic2),
        out: zero,
        z: [0.0; 2],
    });
    let mut g = *gain;
    let shift = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    let lag = _mm256_setr_epi32(
        LAG[0], LAG[1], LAG[2], LAG[3], LAG[4], LAG[5], LAG[6], LAG[7],
    );
    let n_vec = _mm256_set1_epi32(n as i32);
    let minus_one = _mm256_set1_epi32(-1);

    let lo = OUT_LAG.min(n);
    let hi = n.max(lo);
    for s in 0..lo {
        step::<true, NCH, G>(&k, &mut ch, &mut g, xs, s, n, shift, lag, n_vec, minus_one);
    }
    for s in lo..hi {
        step::<false, NCH, G>(&k, &mut ch, &mut g, xs, s, n, shift, lag, n_vec, minus_one);
    }
    for s in hi..n + OUT_LAG {
        step::<true, NCH, G>(&k, &mut ch, &mut g, xs, s, n, shift, lag, n_vec, minus_one);
    }
    for i in 0..NCH {
        (st1[i].ic1, st2[i].ic1) = split(ch[i].ic1);
        (st1[i].ic2, st2[i].ic2) = split(ch[i].ic2);
    }
    *gain = g;
}

/// Step `s` of [`run_fused`]; without `MASKED` every lane and the gain have a real frame.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn step<const MASKED: bool, const NCH: usize, G: FrameGain>(
    k: &Coeffs,
    ch: &mut [Chan; NCH],
    gain: &mut G,
    xs: &mut [&mut [f32]; NCH],
    s: usize,
    n: usize,
    shift: __m256i,
    lag: __m256i,
    n_vec: __m256i,
    minus_one: __m256i,
) {
    // Lanes holding a real frame: 0 <= s - LAG[k] < n.
    let active = if MASKED {
        let d = _mm256_sub_epi32(_mm256_set1_epi32(s as i32), lag);
        let ok = _mm256_and_si256(
            _mm256_cmpgt_epi32(d, minus_one),
            _mm256_cmpgt_epi32(n_vec, d),
        );
        _mm256_castsi256_ps(ok)
    } else {
        _mm256_castsi256_ps(minus_one)
    };
    for (c, x) in ch.iter_mut().zip(xs.iter()) {
        let x0 = if !MASKED || s < n { x[s] } else { 0.0 };
        // The inputs: the new frame in lane 0, the gated frame in lane 4, each other lane
        // the previous lane's output of the previous step.
        let fresh = _mm256_setr_ps(x0, 0.0, 0.0, 0.0, c.z[1], 0.0, 0.0, 0.0);
        let v = _mm256_blend_ps::<0b0001_0001>(_mm256_permutevar8x32_ps(c.out, shift), fresh);
        let (s1, s2) = (c.ic1, c.ic2);
        let y = _mm256_add_ps(
            _mm256_mul_ps(k.ma, v),
            _mm256_add_ps(_mm256_mul_ps(k.mb, s1), _mm256_mul_ps(k.mc, s2)),
        );
        let v3 = _mm256_sub_ps(v, s2);
        let n1 = _mm256_add_ps(_mm256_mul_ps(k.e1, s1), _mm256_mul_ps(k.d2, v3));
        let n2 = _mm256_add_ps(
            _mm256_sub_ps(s2, _mm256_mul_ps(k.d3, s2)),
            _mm256_add_ps(_mm256_mul_ps(k.d2, s1), _mm256_mul_ps(k.d3, v)),
        );
        if MASKED {
            c.ic1 = _mm256_blendv_ps(s1, n1, active);
            c.ic2 = _mm256_blendv_ps(s2, n2, active);
        } else {
            c.ic1 = n1;
            c.ic2 = n2;
        }
        c.out = y;
        c.z[1] = c.z[0];
    }
    // The gain on stage 1's output (frame s - GAIN_LAG).
    if !MASKED || (s >= GAIN_LAG && s - GAIN_LAG < n) {
        let y: [f32; NCH] = std::array::from_fn(|i| lane3(ch[i].out));
        let mut peak = y[0].abs();
        for v in &y[1..] {
            peak = peak.max(v.abs());
        }
        let g = gain.gain(peak);
        for (c, y) in ch.iter_mut().zip(y) {
            c.z[0] = y * g;
        }
    }
    if !MASKED || s >= OUT_LAG {
        for (c, x) in ch.iter().zip(xs.iter_mut()) {
            x[s - OUT_LAG] = lane7(c.out);
        }
    }
}
