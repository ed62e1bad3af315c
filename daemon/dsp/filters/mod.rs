//! Channel-strip filters: the parametric EQ band ([`EqBand`]: bell, low shelf, high shelf,
//! notch) and the pass filters ([`PassFilter`]: HPF/LPF, 12 or 24 dB/oct Butterworth).
//!
//! Every response is built from one linear trapezoidal state-variable filter (Andrew Simper's
//! "SVF linear trap" topology, Cytomic), which stays stable and well-behaved when its
//! coefficients change quickly. The analog targets are the RBJ Audio EQ Cookbook prototypes
//! (bell, shelves with the RBJ "Q", notch); the trapezoidal integrator is the bilinear
//! transform, so the digital response equals the analog prototype at the prewarped frequency
//! `tan(pi f / fs) / tan(pi f0 / fs)` (see [`eq_prototype_magnitude_db`]).
//!
//! Parameters glide: frequency in the log domain, gain in dB, Q in the log domain, each with a
//! one-pole of [`GLIDE_MS`]; coefficients are recomputed every [`SUB_BLOCK`] samples only while
//! a glide is in progress. Switching on/off crossfades with the dry signal over [`FADE_MS`]
//! (raised cosine); a band that is off and faded out costs one branch per block.

use super::util::SmoothedGain;

mod cascade;
#[cfg(target_arch = "x86_64")]
mod wide;

pub use cascade::{FrameGain, LANES, UnityGain, process_series, try_process_fused};

/// Samples between coefficient updates while parameters glide.
pub const SUB_BLOCK: usize = 16;
/// Time constant of the parameter glide (one-pole), in milliseconds.
pub const GLIDE_MS: f32 = 12.0;
/// Length of the on/off (and type-change) crossfade, in milliseconds.
pub const FADE_MS: f32 = 10.0;
/// Most channels one filter instance keeps state for.
pub const MAX_CHANNELS: usize = 2;

/// Lowest frequency a filter accepts, in Hz.
pub const MIN_FREQ_HZ: f32 = 10.0;
/// Highest frequency as a fraction of the sample rate.
const MAX_FREQ_FRACTION: f32 = 0.49;
/// Range of EQ gain, in dB (symmetric).
pub const MAX_GAIN_DB: f32 = 40.0;
/// Range of EQ Q.
pub const MIN_Q: f32 = 0.05;
/// Highest EQ Q.
pub const MAX_Q: f32 = 50.0;

/// Glide is over when every parameter is this close to its target (log2 Hz, dB, ln Q, blend).
const EPS_LOG_FREQ: f32 = 1e-4;
const EPS_GAIN_DB: f32 = 1e-3;
const EPS_LOG_Q: f32 = 1e-4;
const EPS_BLEND: f32 = 1e-4;

/// Butterworth damping (k = 1/Q) of the single 2nd-order section of a 12 dB/oct filter.
const K_BW2: f64 = std::f64::consts::SQRT_2;
/// Butterworth damping of the two sections of a 24 dB/oct filter: 2 cos(pi/8), 2 cos(3 pi/8)
/// (Q = 0.5412 and 1.3066).
const K_BW4_A: f64 = 1.847_759_065_022_573_5;
const K_BW4_B: f64 = 0.765_366_864_730_179_6;

/// Response type of a parametric EQ band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EqKind {
    /// Peaking filter: `gain_db` at `freq`, bandwidth set by `q` (RBJ peakingEQ).
    Bell,
    /// Low shelf: `gain_db` below `freq`, `q` shapes the transition (RBJ lowShelf).
    LowShelf,
    /// High shelf: `gain_db` above `freq` (RBJ highShelf).
    HighShelf,
    /// Notch: zero at `freq`, width set by `q`; `gain_db` is ignored.
    Notch,
}

impl EqKind {
    /// The session-file name of the type: `bell`, `low_shelf`, `high_shelf`, `notch`.
    pub fn name(self) -> &'static str {
        match self {
            EqKind::Bell => "bell",
            EqKind::LowShelf => "low_shelf",
            EqKind::HighShelf => "high_shelf",
            EqKind::Notch => "notch",
        }
    }

    /// The type for a session-file name (see [`EqKind::name`]); `None` if unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "bell" => Some(EqKind::Bell),
            "low_shelf" => Some(EqKind::LowShelf),
            "high_shelf" => Some(EqKind::HighShelf),
            "notch" => Some(EqKind::Notch),
            _ => None,
        }
    }
}

/// Which side a [`PassFilter`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// Removes lows (HPF).
    HighPass,
    /// Removes highs (LPF).
    LowPass,
}

/// Steepness of a [`PassFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slope {
    /// 2nd-order Butterworth.
    Db12,
    /// 4th-order Butterworth (two cascaded 2nd-order sections).
    Db24,
}

impl Slope {
    /// The slope for a session-file value in dB/oct (12 or 24); `None` for anything else.
    pub fn from_db_per_oct(db: u32) -> Option<Self> {
        match db {
            12 => Some(Slope::Db12),
            24 => Some(Slope::Db24),
            _ => None,
        }
    }
}

/// Magnitude in dB of the analog prototype of a band, evaluated at the bilinear-prewarped
/// frequency (the independent expectation the tests compare against).
///
/// The prototypes are the RBJ cookbook's, with `A = 10^(gain_db/40)` and `s = j W`,
/// `W = tan(pi f / fs) / tan(pi f0 / fs)`:
/// bell `(s^2 + s A/Q + 1) / (s^2 + s/(A Q) + 1)`,
/// low shelf `A (s^2 + s sqrt(A)/Q + A) / (A s^2 + s sqrt(A)/Q + 1)`,
/// high shelf `A (A s^2 + s sqrt(A)/Q + 1) / (s^2 + s sqrt(A)/Q + A)`,
/// notch `(s^2 + 1) / (s^2 + s/Q + 1)`.
pub fn eq_prototype_magnitude_db(
    kind: EqKind,
    f: f64,
    f0: f64,
    gain_db: f64,
    q: f64,
    sample_rate: f64,
) -> f64 {
    use std::f64::consts::PI;
    let w = (PI * f / sample_rate).tan() / (PI * f0 / sample_rate).tan();
    // |a s^2 + b s + c|^2 at s = jW.
    let mag2 = |a: f64, b: f64, c: f64| {
        let re = c - a * w * w;
        let im = b * w;
        re * re + im * im
    };
    let a = 10f64.powf(gain_db / 40.0);
    let sa = a.sqrt();
    let (num, den, scale) = match kind {
        EqKind::Bell => (mag2(1.0, a / q, 1.0), mag2(1.0, 1.0 / (a * q), 1.0), 1.0),
        EqKind::LowShelf => (mag2(1.0, sa / q, a), mag2(a, sa / q, 1.0), a),
        EqKind::HighShelf => (mag2(a, sa / q, 1.0), mag2(1.0, sa / q, a), a),
        EqKind::Notch => (mag2(1.0, 0.0, 1.0), mag2(1.0, 1.0 / q, 1.0), 1.0),
    };
    10.0 * (num / den).log10() + 20.0 * scale.log10()
}

// ---------------------------------------------------------------------------------------------
// The state-variable filter core.

/// Coefficients of one SVF section, in the state-space form the per-sample code uses.
///
/// The linear trapezoidal SVF has integrator gains `a1 = 1/(1 + g(g + k))`, `a2 = g a1`,
/// `a3 = g a2` (from `g = tan(pi f/fs)` and damping `k`) and the output mix
/// `m0 * input + m1 * band + m2 * low`. With `v3 = v0 - ic2`, band `v1 = a1 ic1 + a2 v3` and
/// low `v2 = ic2 + a2 ic1 + a3 v3`, the states update as `ic1' = 2 v1 - ic1`,
/// `ic2' = 2 v2 - ic2`. Expanded, one sample is
/// - `y = ma v0 + mb ic1 + mc ic2` (the mix folded through `a1..a3`),
/// - `ic1' = e1 ic1 + d2 v3` with `e1 = 2 a1 - 1`, `d2 = 2 a2`,
/// - `ic2' = (ic2 - d3 ic2) + (d2 ic1 + d3 v0)` with `d3 = 2 a3`,
///
/// which keeps the integrator form of `ic2` (accurate at low frequencies) while every
/// loop-carried dependency is at most three operations deep.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SvfCoeffs {
    e1: f32,
    d2: f32,
    d3: f32,
    ma: f32,
    mb: f32,
    mc: f32,
    /// `a1..a3`, kept to fold a new mix through them.
    a: [f64; 3],
    /// The raw mix `m0, m1, m2`.
    m: [f64; 3],
}

impl SvfCoeffs {
    fn new(g: f64, k: f64, m0: f64, m1: f64, m2: f64) -> Self {
        let a1 = 1.0 / (1.0 + g * (g + k));
        let a2 = g * a1;
        let a3 = g * a2;
        let a = [a1, a2, a3];
        let [ma, mb, mc] = fold_mix(&a, &[m0, m1, m2]);
        Self {
            e1: (2.0 * a1 - 1.0) as f32,
            d2: (2.0 * a2) as f32,
            d3: (2.0 * a3) as f32,
            ma,
            mb,
            mc,
            a,
            m: [m0, m1, m2],
        }
    }

    /// The identity (output = input): `g = 0`, so the states never move, and the mix passes
    /// the input.
    fn identity() -> Self {
        Self {
            e1: 1.0,
            d2: 0.0,
            d3: 0.0,
            ma: 1.0,
            mb: 0.0,
            mc: 0.0,
            a: [1.0, 0.0, 0.0],
            m: [1.0, 0.0, 0.0],
        }
    }

    /// An EQ band. Each mix is chosen so the section's transfer function equals the RBJ analog
    /// prototype (see [`eq_prototype_magnitude_db`]); the shelves move the SVF's own corner by
    /// `sqrt(A)` so that their mid-point sits at `freq`.
    fn eq(kind: EqKind, freq: f64, gain_db: f64, q: f64, sample_rate: f64) -> Self {
        let g = (std::f64::consts::PI * freq / sample_rate).tan();
        let a = 10f64.powf(gain_db / 40.0);
        let k = 1.0 / q;
        match kind {
            EqKind::Bell => {
                let k = k / a;
                Self::new(g, k, 1.0, k * (a * a - 1.0), 0.0)
            }
            EqKind::LowShelf => Self::new(g / a.sqrt(), k, 1.0, k * (a - 1.0), a * a - 1.0),
            EqKind::HighShelf => Self::new(g * a.sqrt(), k, a * a, k * (1.0 - a) * a, 1.0 - a * a),
            EqKind::Notch => Self::new(g, k, 1.0, -k, 0.0),
        }
    }

    /// A pass section with damping `k`, blended by `blend` (0..1) from the identity to the
    /// full high- or low-pass response.
    fn pass(kind: PassKind, freq: f64, k: f64, blend: f64, sample_rate: f64) -> Self {
        let g = (std::f64::consts::PI * freq / sample_rate).tan();
        match kind {
            PassKind::HighPass => Self::new(g, k, 1.0, -k * blend, -blend),
            PassKind::LowPass => Self::new(g, k, 1.0 - blend, 0.0, blend),
        }
    }
}

/// The mix `m0 v0 + m1 v1 + m2 v2` as coefficients of `v0, ic1, ic2` (see [`SvfCoeffs`]).
fn fold_mix(a: &[f64; 3], m: &[f64; 3]) -> [f32; 3] {
    let [a1, a2, a3] = *a;
    let [m0, m1, m2] = *m;
    let ma = m0 + m1 * a2 + m2 * a3;
    let mb = m1 * a1 + m2 * a2;
    let mc = m2 - m1 * a2 - m2 * a3;
    [ma as f32, mb as f32, mc as f32]
}

/// The two integrator states of one SVF section for one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SvfState {
    ic1: f32,
    ic2: f32,
}

/// One sample through one section (see [`SvfCoeffs`] for the algebra). The cascade code in
/// [`cascade`] performs exactly these operations in the same order, lane by lane, so both
/// give bit-identical results.
#[inline(always)]
fn tick(c: &SvfCoeffs, ic1: &mut f32, ic2: &mut f32, v0: f32) -> f32 {
    let (s1, s2) = (*ic1, *ic2);
    let y = c.ma * v0 + (c.mb * s1 + c.mc * s2);
    let v3 = v0 - s2;
    *ic1 = c.e1 * s1 + c.d2 * v3;
    *ic2 = (s2 - c.d3 * s2) + (c.d2 * s1 + c.d3 * v0);
    y
}

/// Advance the output mix one sample along its ramp.
#[inline(always)]
fn step_mix(c: &mut SvfCoeffs, dm: &[f32; 3]) {
    c.ma += dm[0];
    c.mb += dm[1];
    c.mc += dm[2];
}

/// Run one section over a mono buffer in place; with `RAMP` the output mix moves by `dm`
/// every sample.
#[inline]
fn run_mono<const RAMP: bool>(c: &mut SvfCoeffs, dm: &[f32; 3], s: &mut SvfState, x: &mut [f32]) {
    let mut k = *c;
    let (mut ic1, mut ic2) = (s.ic1, s.ic2);
    for v in x.iter_mut() {
        if RAMP {
            step_mix(&mut k, dm);
        }
        *v = tick(&k, &mut ic1, &mut ic2, *v);
    }
    *c = k;
    s.ic1 = ic1;
    s.ic2 = ic2;
}

/// Run one section over two channels at once (independent states, same arithmetic as
/// [`run_mono`]; interleaving the two dependency chains roughly halves the cost per channel).
#[inline]
fn run_stereo<const RAMP: bool>(
    c: &mut SvfCoeffs,
    dm: &[f32; 3],
    s: &mut [SvfState; 2],
    l: &mut [f32],
    r: &mut [f32],
) {
    let mut k = *c;
    let (mut l1, mut l2) = (s[0].ic1, s[0].ic2);
    let (mut r1, mut r2) = (s[1].ic1, s[1].ic2);
    for (a, b) in l.iter_mut().zip(r.iter_mut()) {
        if RAMP {
            step_mix(&mut k, dm);
        }
        *a = tick(&k, &mut l1, &mut l2, *a);
        *b = tick(&k, &mut r1, &mut r2, *b);
    }
    *c = k;
    s[0] = SvfState { ic1: l1, ic2: l2 };
    s[1] = SvfState { ic1: r1, ic2: r2 };
}

/// One SVF section's coefficients in use, plus the ramp of its output mix: when coefficients
/// change during a glide, the integrator gains switch at once (the states integrate, so the
/// output stays continuous) while the output mix moves linearly over one sub-block, so a mix
/// change never steps the output.
#[derive(Debug, Clone, Copy)]
struct Section {
    c: SvfCoeffs,
    to: SvfCoeffs,
    dm: [f32; 3],
}

impl Section {
    fn new(c: SvfCoeffs) -> Self {
        Self {
            c,
            to: c,
            dm: [0.0; 3],
        }
    }

    /// Use `c` from now on.
    fn set_now(&mut self, c: SvfCoeffs) {
        *self = Self::new(c);
    }

    /// Move to `c` over the next [`SUB_BLOCK`] samples: the state update switches at once,
    /// the raw mix moves linearly from the old one to the new one (folded through the new
    /// integrator gains, so the ramp is linear in the folded coefficients too).
    fn ramp_to(&mut self, c: SvfCoeffs) {
        let n = SUB_BLOCK as f32;
        let [ma, mb, mc] = fold_mix(&c.a, &self.c.m);
        self.dm = [(c.ma - ma) / n, (c.mb - mb) / n, (c.mc - mc) / n];
        self.c = SvfCoeffs { ma, mb, mc, ..c };
        self.to = c;
    }

    /// The ramp is over: land exactly on its target.
    fn end_ramp(&mut self) {
        self.set_now(self.to);
    }

    /// Run over the first `n` channels of `chans`, frames `lo..hi`, ramping the mix if `ramp`.
    #[inline]
    fn run(
        &mut self,
        states: &mut [SvfState; MAX_CHANNELS],
        chans: &mut [&mut [f32]],
        n: usize,
        lo: usize,
        hi: usize,
        ramp: bool,
    ) {
        let dm = self.dm;
        if n == 2 {
            let (first, rest) = chans.split_at_mut(1);
            let (l, r) = (&mut first[0][lo..hi], &mut rest[0][lo..hi]);
            if ramp {
                run_stereo::<true>(&mut self.c, &dm, states, l, r);
            } else {
                run_stereo::<false>(&mut self.c, &dm, states, l, r);
            }
        } else if n == 1 {
            let x = &mut chans[0][lo..hi];
            if ramp {
                run_mono::<true>(&mut self.c, &dm, &mut states[0], x);
            } else {
                run_mono::<false>(&mut self.c, &dm, &mut states[0], x);
            }
        }
    }
}

/// Frames in a multichannel buffer (the shortest channel, so slicing never panics).
fn frames_of(chans: &[&mut [f32]]) -> usize {
    chans.iter().map(|c| c.len()).min().unwrap_or(0)
}

/// One one-pole glide step; returns true while `cur` is still away from `target`.
#[inline]
fn glide(cur: &mut f32, target: f32, coeff: f32, eps: f32) -> bool {
    if (target - *cur).abs() < eps {
        *cur = target;
        false
    } else {
        *cur += (target - *cur) * (1.0 - coeff);
        if (target - *cur).abs() < eps {
            *cur = target;
            false
        } else {
            true
        }
    }
}

/// The wet/dry crossfade behind `set_enabled`, shared by both filter types.
#[derive(Debug, Clone)]
struct WetFade {
    gain: SmoothedGain,
    /// Scratch for the per-sample wet gains of one sub-block.
    w: [f32; SUB_BLOCK],
    /// Scratch for the dry signal of one sub-block, per channel.
    dry: [[f32; SUB_BLOCK]; MAX_CHANNELS],
}

impl WetFade {
    fn new(sample_rate: f32) -> Self {
        Self {
            gain: SmoothedGain::new(0.0, FADE_MS, sample_rate),
            w: [0.0; SUB_BLOCK],
            dry: [[0.0; SUB_BLOCK]; MAX_CHANNELS],
        }
    }

    /// Fully faded out and staying so: the filter can be skipped.
    fn is_off(&self) -> bool {
        !self.gain.is_smoothing() && self.gain.current() == 0.0
    }

    /// Fully wet and staying so: no mixing needed.
    fn is_full(&self) -> bool {
        !self.gain.is_smoothing() && self.gain.current() == 1.0
    }

    /// Keep the dry copy of frames `lo..hi` (at most [`SUB_BLOCK`]) and the wet gains.
    fn begin(&mut self, chans: &[&mut [f32]], n: usize, lo: usize, hi: usize) {
        let len = hi - lo;
        self.gain.fill(&mut self.w[..len]);
        for (d, c) in self.dry.iter_mut().zip(chans.iter()).take(n) {
            d[..len].copy_from_slice(&c[lo..hi]);
        }
    }

    /// Blend the processed frames `lo..hi` with the dry copy.
    fn finish(&self, chans: &mut [&mut [f32]], n: usize, lo: usize, hi: usize) {
        let len = hi - lo;
        for (d, c) in self.dry.iter().zip(chans.iter_mut()).take(n) {
            for ((y, &x), &w) in c[lo..hi].iter_mut().zip(&d[..len]).zip(&self.w[..len]) {
                *y = x + w * (*y - x);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EQ band.

/// The gliding parameters of a band: log2 of the frequency, gain in dB, ln of Q.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EqParams {
    log_freq: f32,
    gain_db: f32,
    log_q: f32,
}

/// One parametric EQ band (bell, low shelf, high shelf or notch), for up to
/// [`MAX_CHANNELS`] channels. Parameter changes glide; on/off and type changes crossfade.
#[derive(Debug, Clone)]
pub struct EqBand {
    sample_rate: f32,
    channels: usize,
    kind: EqKind,
    /// A type change waiting for the fade-out to finish.
    pending_kind: Option<EqKind>,
    enabled: bool,
    cur: EqParams,
    target: EqParams,
    gliding: bool,
    /// Samples left in the current coefficient ramp (0 = none).
    ramp_left: usize,
    /// One-pole coefficient per sub-block.
    glide_coeff: f32,
    sec: Section,
    states: [SvfState; MAX_CHANNELS],
    fade: WetFade,
}

impl EqBand {
    /// A band for `channels` channels (1 or 2; clamped), disabled, bell at 1 kHz, 0 dB, Q 0.7.
    pub fn new(sample_rate: f32, channels: usize) -> Self {
        let p = EqParams {
            log_freq: 1000f32.log2(),
            gain_db: 0.0,
            log_q: 0.7f32.ln(),
        };
        let mut band = Self {
            sample_rate,
            channels: channels.clamp(1, MAX_CHANNELS),
            kind: EqKind::Bell,
            pending_kind: None,
            enabled: false,
            cur: p,
            target: p,
            gliding: false,
            ramp_left: 0,
            glide_coeff: glide_coeff(sample_rate),
            sec: Section::new(SvfCoeffs::identity()),
            states: [SvfState::default(); MAX_CHANNELS],
            fade: WetFade::new(sample_rate),
        };
        band.update_coeffs(false);
        band
    }

    /// Set the targets the band glides to. Frequency is clamped to 10 Hz .. 0.49 fs, gain to
    /// +-40 dB, Q to 0.05 .. 50; a non-finite value leaves that parameter unchanged. A type
    /// change fades the band out, switches, and fades it back in.
    pub fn set(&mut self, kind: EqKind, freq_hz: f32, gain_db: f32, q: f32) {
        if freq_hz.is_finite() {
            let f = freq_hz.clamp(MIN_FREQ_HZ, MAX_FREQ_FRACTION * self.sample_rate);
            self.target.log_freq = f.log2();
        }
        if gain_db.is_finite() {
            self.target.gain_db = gain_db.clamp(-MAX_GAIN_DB, MAX_GAIN_DB);
        }
        if q.is_finite() {
            self.target.log_q = q.clamp(MIN_Q, MAX_Q).ln();
        }
        if kind != self.kind || self.pending_kind.is_some() {
            if kind == self.kind {
                // Switched back before the fade-out finished.
                self.pending_kind = None;
                self.fade.gain.set_target(self.wet_target());
            } else if self.fade.is_off() {
                // Silent: switch at once.
                self.kind = kind;
                self.pending_kind = None;
                self.update_coeffs(false);
            } else {
                self.pending_kind = Some(kind);
                self.fade.gain.set_target(0.0);
            }
        }
        if self.target != self.cur {
            self.gliding = true;
        }
    }

    /// Switch the band in or out with a short crossfade (click-free).
    pub fn set_enabled(&mut self, on: bool) {
        if on && !self.enabled && self.fade.is_off() {
            // Coming back from silence: start from rest, at the target settings.
            self.states = [SvfState::default(); MAX_CHANNELS];
            if let Some(k) = self.pending_kind.take() {
                self.kind = k;
            }
            self.cur = self.target;
            self.gliding = false;
            self.update_coeffs(false);
        }
        self.enabled = on;
        if self.pending_kind.is_none() {
            self.fade.gain.set_target(self.wet_target());
        }
    }

    /// Jump to the targets now (type, parameters and on/off state), for initial state.
    pub fn snap(&mut self) {
        if let Some(k) = self.pending_kind.take() {
            self.kind = k;
        }
        self.cur = self.target;
        self.gliding = false;
        self.update_coeffs(false);
        self.fade.gain.reset(self.wet_target());
    }

    /// True if switched on (it may still be fading in).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True while the band affects the signal (on, or fading in or out).
    pub fn is_active(&self) -> bool {
        !self.fade.is_off()
    }

    /// True when nothing is in transition: fully on with no glide, ramp or fade, or fully
    /// off (then `process` only settles parameters). See [`process_series`].
    fn is_steady(&self) -> bool {
        self.fade.is_off()
            || (self.fade.is_full()
                && !self.gliding
                && self.ramp_left == 0
                && self.pending_kind.is_none())
    }

    /// SVF sections that touch the audio now.
    fn steady_sections(&self) -> usize {
        usize::from(self.is_active())
    }

    /// The response type in effect (after any pending type change).
    pub fn kind(&self) -> EqKind {
        self.pending_kind.unwrap_or(self.kind)
    }

    /// Filter `chans` in place (first `channels` channels; any further ones are left alone).
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let n = chans.len().min(self.channels);
        let frames = frames_of(chans);
        if self.fade.is_off() {
            // Off and silent: settle parameters and any type change without computing audio.
            if let Some(k) = self.pending_kind.take() {
                self.kind = k;
            }
            if self.gliding || self.ramp_left > 0 {
                self.cur = self.target;
                self.gliding = false;
                self.update_coeffs(false);
            }
            return;
        }
        let mut pos = 0;
        while pos < frames {
            if self.gliding && self.ramp_left == 0 {
                self.glide_step();
            }
            let full = self.fade.is_full();
            let ramp = self.ramp_left > 0;
            let mut len = frames - pos;
            if ramp {
                len = len.min(self.ramp_left);
            }
            if !full {
                len = len.min(SUB_BLOCK);
            }
            let hi = pos + len;
            if full {
                self.sec.run(&mut self.states, chans, n, pos, hi, ramp);
            } else {
                self.fade.begin(chans, n, pos, hi);
                self.sec.run(&mut self.states, chans, n, pos, hi, ramp);
                self.fade.finish(chans, n, pos, hi);
                if let Some(k) = self.pending_kind
                    && self.fade.is_off()
                {
                    // Faded out: switch type, start from rest, fade back in.
                    self.kind = k;
                    self.pending_kind = None;
                    self.cur = self.target;
                    self.gliding = false;
                    self.update_coeffs(false);
                    self.states = [SvfState::default(); MAX_CHANNELS];
                    self.fade.gain.set_target(self.wet_target());
                }
                if self.fade.is_off() {
                    // Disabled and faded out: the rest of the buffer is dry.
                    return;
                }
            }
            if ramp && self.ramp_left > 0 {
                self.ramp_left -= len;
                if self.ramp_left == 0 {
                    self.sec.end_ramp();
                }
            }
            pos = hi;
        }
    }

    fn wet_target(&self) -> f32 {
        if self.enabled { 1.0 } else { 0.0 }
    }

    fn glide_step(&mut self) {
        let c = self.glide_coeff;
        let (cur, t) = (&mut self.cur, &self.target);
        let a = glide(&mut cur.log_freq, t.log_freq, c, EPS_LOG_FREQ);
        let b = glide(&mut cur.gain_db, t.gain_db, c, EPS_GAIN_DB);
        let d = glide(&mut cur.log_q, t.log_q, c, EPS_LOG_Q);
        self.gliding = a || b || d;
        self.update_coeffs(true);
    }

    /// Coefficients for the current parameters: ramped over the next sub-block, or at once.
    fn update_coeffs(&mut self, ramp: bool) {
        let c = SvfCoeffs::eq(
            self.kind,
            f64::from(self.cur.log_freq).exp2(),
            f64::from(self.cur.gain_db),
            f64::from(self.cur.log_q).exp(),
            f64::from(self.sample_rate),
        );
        if ramp {
            self.sec.ramp_to(c);
            self.ramp_left = SUB_BLOCK;
        } else {
            self.sec.set_now(c);
            self.ramp_left = 0;
        }
    }
}

/// The one-pole glide coefficient applied once per sub-block.
fn glide_coeff(sample_rate: f32) -> f32 {
    (-(SUB_BLOCK as f32) / (GLIDE_MS * 0.001 * sample_rate.max(1.0))).exp()
}

// ---------------------------------------------------------------------------------------------
// Pass filter.

/// A high- or low-pass Butterworth filter (-3 dB at the set frequency), 12 dB/oct (one SVF
/// section) or 24 dB/oct (two sections), for up to [`MAX_CHANNELS`] channels. Frequency glides
/// in the log domain; a slope change morphs smoothly (the second section blends in or out
/// while the first one's damping moves between the two Butterworth values).
#[derive(Debug, Clone)]
pub struct PassFilter {
    sample_rate: f32,
    channels: usize,
    kind: PassKind,
    enabled: bool,
    /// log2 of the frequency.
    cur_log_freq: f32,
    target_log_freq: f32,
    /// 0 = 12 dB/oct, 1 = 24 dB/oct.
    cur_blend: f32,
    target_blend: f32,
    gliding: bool,
    /// Samples left in the current coefficient ramp (0 = none).
    ramp_left: usize,
    glide_coeff: f32,
    sec1: Section,
    sec2: Section,
    /// Whether the second section runs (24 dB/oct or morphing).
    second_on: bool,
    s1: [SvfState; MAX_CHANNELS],
    s2: [SvfState; MAX_CHANNELS],
    fade: WetFade,
}

impl PassFilter {
    /// A disabled filter at 12 dB/oct, 80 Hz (HPF) or 12 kHz (LPF), for `channels` channels
    /// (1 or 2; clamped).
    pub fn new(sample_rate: f32, channels: usize, kind: PassKind) -> Self {
        let f: f32 = match kind {
            PassKind::HighPass => 80.0,
            PassKind::LowPass => 12000.0f32.min(0.45 * sample_rate),
        };
        let mut pf = Self {
            sample_rate,
            channels: channels.clamp(1, MAX_CHANNELS),
            kind,
            enabled: false,
            cur_log_freq: f.log2(),
            target_log_freq: f.log2(),
            cur_blend: 0.0,
            target_blend: 0.0,
            gliding: false,
            ramp_left: 0,
            glide_coeff: glide_coeff(sample_rate),
            sec1: Section::new(SvfCoeffs::identity()),
            sec2: Section::new(SvfCoeffs::identity()),
            second_on: false,
            s1: [SvfState::default(); MAX_CHANNELS],
            s2: [SvfState::default(); MAX_CHANNELS],
            fade: WetFade::new(sample_rate),
        };
        pf.update_coeffs(false);
        pf
    }

    /// Set the cutoff (-3 dB point; clamped to 10 Hz .. 0.49 fs, non-finite ignored) and the
    /// slope the filter glides to.
    pub fn set(&mut self, freq_hz: f32, slope: Slope) {
        if freq_hz.is_finite() {
            let f = freq_hz.clamp(MIN_FREQ_HZ, MAX_FREQ_FRACTION * self.sample_rate);
            self.target_log_freq = f.log2();
        }
        self.target_blend = match slope {
            Slope::Db12 => 0.0,
            Slope::Db24 => 1.0,
        };
        if self.target_blend > 0.0 && !self.second_on {
            self.second_on = true;
            self.s2 = [SvfState::default(); MAX_CHANNELS];
        }
        if self.target_log_freq != self.cur_log_freq || self.target_blend != self.cur_blend {
            self.gliding = true;
        }
    }

    /// Switch the filter in or out with a short crossfade (click-free).
    pub fn set_enabled(&mut self, on: bool) {
        if on && !self.enabled && self.fade.is_off() {
            // Coming back from silence: start from rest, at the target settings.
            self.s1 = [SvfState::default(); MAX_CHANNELS];
            self.s2 = [SvfState::default(); MAX_CHANNELS];
            self.settle();
        }
        self.enabled = on;
        self.fade.gain.set_target(if on { 1.0 } else { 0.0 });
    }

    /// Jump to the targets now (frequency, slope, on/off state), for initial state.
    pub fn snap(&mut self) {
        self.settle();
        self.fade.gain.reset(if self.enabled { 1.0 } else { 0.0 });
    }

    /// True if switched on (it may still be fading in).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True while the filter affects the signal (on, or fading in or out).
    pub fn is_active(&self) -> bool {
        !self.fade.is_off()
    }

    /// True when nothing is in transition (see [`EqBand::is_steady`]).
    fn is_steady(&self) -> bool {
        self.fade.is_off() || (self.fade.is_full() && !self.gliding && self.ramp_left == 0)
    }

    /// SVF sections that touch the audio now.
    fn steady_sections(&self) -> usize {
        if self.is_active() {
            1 + usize::from(self.second_on)
        } else {
            0
        }
    }

    /// Which side the filter removes.
    pub fn kind(&self) -> PassKind {
        self.kind
    }

    /// Filter `chans` in place (first `channels` channels; any further ones are left alone).
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        let n = chans.len().min(self.channels);
        let frames = frames_of(chans);
        if self.fade.is_off() {
            if self.gliding || self.ramp_left > 0 {
                self.settle();
            }
            return;
        }
        let mut pos = 0;
        while pos < frames {
            if self.gliding && self.ramp_left == 0 {
                self.glide_step();
            }
            let full = self.fade.is_full();
            let ramp = self.ramp_left > 0;
            let mut len = frames - pos;
            if ramp {
                len = len.min(self.ramp_left);
            }
            if !full {
                len = len.min(SUB_BLOCK);
            }
            let hi = pos + len;
            if !full {
                self.fade.begin(chans, n, pos, hi);
            }
            self.sec1.run(&mut self.s1, chans, n, pos, hi, ramp);
            if self.second_on {
                self.sec2.run(&mut self.s2, chans, n, pos, hi, ramp);
            }
            if !full {
                self.fade.finish(chans, n, pos, hi);
                if self.fade.is_off() {
                    return;
                }
            }
            if ramp {
                self.ramp_left -= len;
                if self.ramp_left == 0 {
                    self.sec1.end_ramp();
                    self.sec2.end_ramp();
                    if !self.gliding && self.cur_blend == 0.0 {
                        self.second_on = false;
                    }
                }
            }
            pos = hi;
        }
    }

    fn settle(&mut self) {
        self.cur_log_freq = self.target_log_freq;
        self.cur_blend = self.target_blend;
        self.gliding = false;
        self.second_on = self.cur_blend > 0.0;
        self.update_coeffs(false);
    }

    fn glide_step(&mut self) {
        let c = self.glide_coeff;
        let a = glide(
            &mut self.cur_log_freq,
            self.target_log_freq,
            c,
            EPS_LOG_FREQ,
        );
        let b = glide(&mut self.cur_blend, self.target_blend, c, EPS_BLEND);
        self.gliding = a || b;
        self.update_coeffs(true);
    }

    /// Coefficients for the current parameters: ramped over the next sub-block, or at once.
    fn update_coeffs(&mut self, ramp: bool) {
        let f = f64::from(self.cur_log_freq).exp2();
        let b = f64::from(self.cur_blend);
        let sr = f64::from(self.sample_rate);
        let c1 = SvfCoeffs::pass(self.kind, f, K_BW2 + b * (K_BW4_A - K_BW2), 1.0, sr);
        let c2 = SvfCoeffs::pass(self.kind, f, K_BW4_B, b, sr);
        if ramp {
            self.sec1.ramp_to(c1);
            self.sec2.ramp_to(c2);
            self.ramp_left = SUB_BLOCK;
        } else {
            self.sec1.set_now(c1);
            self.sec2.set_now(c2);
            self.ramp_left = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const SR: f32 = 48000.0;

    /// A sine of `amp` at `f` Hz, `n` samples.
    fn sine(f: f64, sr: f32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (amp as f64 * (2.0 * PI * f * i as f64 / sr as f64).sin()) as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Feed `x` through `proc` in blocks of varying size (so block boundaries move around).
    fn run_blocks(x: &mut [f32], mut proc: impl FnMut(&mut [&mut [f32]])) {
        let sizes = [256usize, 37, 512, 1, 100, 4096];
        let mut pos = 0;
        let mut i = 0;
        while pos < x.len() {
            let len = sizes[i % sizes.len()].min(x.len() - pos);
            proc(&mut [&mut x[pos..pos + len]]);
            pos += len;
            i += 1;
        }
    }

    /// Level change in dB of a sine at `f` through `proc`, measured by RMS over a whole number
    /// of periods after `settle_s` seconds.
    fn measure_db(f: f64, sr: f32, settle_s: f64, proc: impl FnMut(&mut [&mut [f32]])) -> f64 {
        let settle = (settle_s * sr as f64) as usize;
        let periods = ((0.25 * f).ceil()).max(4.0);
        let win = (periods * sr as f64 / f).round() as usize;
        let input = sine(f, sr, settle + win, 0.5);
        let mut out = input.clone();
        run_blocks(&mut out, proc);
        20.0 * (rms(&out[settle..]) / rms(&input[settle..])).log10()
    }

    const TEST_FREQS: [f64; 16] = [
        30.0, 50.0, 80.0, 125.0, 200.0, 315.0, 500.0, 800.0, 1000.0, 1250.0, 2000.0, 3150.0,
        5000.0, 8000.0, 12500.0, 16000.0,
    ];

    fn band(kind: EqKind, f0: f32, gain: f32, q: f32, sr: f32) -> EqBand {
        let mut b = EqBand::new(sr, 1);
        b.set(kind, f0, gain, q);
        b.set_enabled(true);
        b.snap();
        b
    }

    #[test]
    fn every_eq_type_matches_its_prototype() {
        let cases: [(EqKind, f32, f32, f32, f32); 10] = [
            (EqKind::Bell, 1000.0, 6.0, 1.4, 48000.0),
            (EqKind::Bell, 250.0, -9.0, 2.0, 48000.0),
            (EqKind::Bell, 8000.0, 6.0, 0.7, 44100.0),
            (EqKind::Bell, 60.0, -9.0, 4.0, 48000.0),
            (EqKind::LowShelf, 200.0, 6.0, 0.7, 48000.0),
            (EqKind::LowShelf, 80.0, -9.0, 1.0, 44100.0),
            (EqKind::HighShelf, 5000.0, -6.0, 0.7, 48000.0),
            (EqKind::HighShelf, 10000.0, 9.0, 1.2, 96000.0),
            (EqKind::Notch, 1000.0, 0.0, 2.0, 48000.0),
            (EqKind::Notch, 100.0, 0.0, 8.0, 48000.0),
        ];
        let mut worst = (0.0f64, String::new());
        let mut checked = 0;
        for (kind, f0, gain, q, sr) in cases {
            for f in TEST_FREQS {
                let want = eq_prototype_magnitude_db(
                    kind,
                    f,
                    f64::from(f0),
                    f64::from(gain),
                    f64::from(q),
                    f64::from(sr),
                );
                if want < -40.0 {
                    continue;
                }
                let mut b = band(kind, f0, gain, q, sr);
                let got = measure_db(f, sr, 0.5, |c| b.process(c));
                let err = (got - want).abs();
                assert!(
                    err < 0.1,
                    "{kind:?} f0={f0} g={gain} q={q} sr={sr} at {f} Hz: got {got:.3} want {want:.3}"
                );
                checked += 1;
                if err > worst.0 {
                    worst = (err, format!("{kind:?} f0={f0} at {f} Hz"));
                }
            }
        }
        assert!(checked > 150, "only {checked} points checked");
        println!(
            "EQ worst error {:.6} dB ({}) over {checked} points",
            worst.0, worst.1
        );
    }

    #[test]
    fn prototype_has_the_textbook_values() {
        // Independent spot checks of the reference itself: a bell reaches its gain at f0, a
        // shelf is half its gain at f0 and its full gain far away, a notch is -3 dB at the
        // band edges f0 * (sqrt(1 + 1/(4Q^2)) +- 1/(2Q)) in the prewarped domain.
        let sr = 48000.0;
        let bell = eq_prototype_magnitude_db(EqKind::Bell, 1000.0, 1000.0, 6.0, 1.0, sr);
        assert!((bell - 6.0).abs() < 1e-9);
        let ls = eq_prototype_magnitude_db(EqKind::LowShelf, 1000.0, 1000.0, 6.0, 0.7, sr);
        assert!((ls - 3.0).abs() < 1e-9);
        let ls_far = eq_prototype_magnitude_db(EqKind::LowShelf, 10.0, 1000.0, 6.0, 0.7, sr);
        assert!((ls_far - 6.0).abs() < 0.01);
        let hs_far = eq_prototype_magnitude_db(EqKind::HighShelf, 20000.0, 100.0, -8.0, 0.7, sr);
        assert!((hs_far + 8.0).abs() < 0.01);
        let q = 2.0f64;
        let edge = (1.0 + 1.0 / (4.0 * q * q)).sqrt() + 1.0 / (2.0 * q);
        let w0 = (PI * 1000.0 / sr).tan();
        let f_edge = (w0 * edge).atan() * sr / PI;
        let n = eq_prototype_magnitude_db(EqKind::Notch, f_edge, 1000.0, 0.0, q, sr);
        assert!((n + 10.0 * 2f64.log10()).abs() < 1e-9, "notch edge {n}");
    }

    /// Butterworth magnitude in dB with `sections` 2nd-order sections (order 2 * `sections`),
    /// at the prewarped frequency: `1 / sqrt(1 + r^(2 order))`.
    fn butterworth_db(kind: PassKind, f: f64, f0: f64, sections: i32, sr: f64) -> f64 {
        let w = (PI * f / sr).tan() / (PI * f0 / sr).tan();
        let r = match kind {
            PassKind::HighPass => 1.0 / w,
            PassKind::LowPass => w,
        };
        -10.0 * (1.0 + r.powi(4 * sections)).log10()
    }

    fn pass(kind: PassKind, f0: f32, slope: Slope, sr: f32) -> PassFilter {
        let mut p = PassFilter::new(sr, 1, kind);
        p.set(f0, slope);
        p.set_enabled(true);
        p.snap();
        p
    }

    #[test]
    fn pass_filters_are_butterworth() {
        let f0 = 1000.0;
        // -3 dB at cutoff for every kind and slope.
        for kind in [PassKind::HighPass, PassKind::LowPass] {
            for slope in [Slope::Db12, Slope::Db24] {
                let mut p = pass(kind, f0, slope, SR);
                let got = measure_db(1000.0, SR, 0.3, |c| p.process(c));
                assert!(
                    (got + 3.0103).abs() < 0.05,
                    "{kind:?} {slope:?} at f0: {got}"
                );
            }
        }
        // 12 dB/oct one octave past the cutoff: analog 1/sqrt(1+(f0/f)^4) = -12.30 dB.
        let analog = -10.0 * (1.0f64 + 16.0).log10();
        let mut p = pass(PassKind::HighPass, f0, Slope::Db12, SR);
        let hp = measure_db(500.0, SR, 0.3, |c| p.process(c));
        assert!((hp - analog).abs() < 0.15, "HPF12 at 500 Hz: {hp}");
        let mut p = pass(PassKind::LowPass, f0, Slope::Db12, SR);
        let lp = measure_db(2000.0, SR, 0.3, |c| p.process(c));
        assert!((lp - analog).abs() < 0.15, "LPF12 at 2 kHz: {lp}");
        // 24 dB/oct HPF one octave below: about -24 dB.
        let mut p = pass(PassKind::HighPass, f0, Slope::Db24, SR);
        let hp24 = measure_db(500.0, SR, 0.3, |c| p.process(c));
        assert!((hp24 + 24.0).abs() < 1.0, "HPF24 at 500 Hz: {hp24}");
        println!("HPF12 -1 oct {hp:.3} dB, LPF12 +1 oct {lp:.3} dB, HPF24 -1 oct {hp24:.3} dB");

        // The whole curve against the prewarped Butterworth formula.
        let mut worst = 0.0f64;
        for (kind, f0, slope, order) in [
            (PassKind::HighPass, 80.0, Slope::Db12, 1),
            (PassKind::HighPass, 120.0, Slope::Db24, 2),
            (PassKind::LowPass, 8000.0, Slope::Db12, 1),
            (PassKind::LowPass, 16000.0, Slope::Db24, 2),
        ] {
            for f in TEST_FREQS {
                let want = butterworth_db(kind, f, f64::from(f0), order, f64::from(SR));
                if want < -60.0 {
                    continue;
                }
                let mut p = pass(kind, f0, slope, SR);
                let got = measure_db(f, SR, 0.5, |c| p.process(c));
                let err = (got - want).abs();
                assert!(err < 0.1, "{kind:?} {f0} {slope:?} at {f}: {got} vs {want}");
                worst = worst.max(err);
            }
        }
        println!("pass filter worst error {worst:.6} dB");
    }

    #[test]
    fn fast_sweep_stays_bounded_and_settles() {
        let amp = 0.5f32;
        let mut b = band(EqKind::Bell, 100.0, 12.0, 1.0, SR);
        let n = (0.8 * SR) as usize;
        let mut x = sine(1000.0, SR, n, amp);
        let start = (0.2 * SR) as usize;
        b.process(&mut [&mut x[..start]]);
        // 100 Hz -> 10 kHz in 5 ms: a new target every 16 samples.
        let steps = (0.005 * SR) as usize / 16;
        let mut pos = start;
        for i in 0..steps {
            let f = 100.0 * 100f32.powf((i + 1) as f32 / steps as f32);
            b.set(EqKind::Bell, f, 12.0, 1.0);
            b.process(&mut [&mut x[pos..pos + 16]]);
            pos += 16;
        }
        b.process(&mut [&mut x[pos..]]);
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        println!("sweep peak {:.3} x input peak", peak / amp);
        assert!(peak < 4.0 * amp, "peak {peak}");
        // Settled: the 1 kHz level matches the 10 kHz bell.
        let tail = &x[n - 4800..];
        let got = 20.0 * (rms(tail) / (f64::from(amp) / 2f64.sqrt())).log10();
        let want = eq_prototype_magnitude_db(EqKind::Bell, 1000.0, 10000.0, 12.0, 1.0, 48000.0);
        assert!((got - want).abs() < 0.1, "settled {got} vs {want}");
        // The glide is not a jump: just after the sweep the response is still on its way.
        let mut b2 = band(EqKind::Bell, 100.0, 12.0, 1.0, SR);
        b2.set(EqKind::Bell, 10000.0, 12.0, 1.0);
        let mut imp = vec![0.0f32; 64];
        imp[0] = 1.0;
        b2.process(&mut [&mut imp]);
        assert!(b2.gliding, "still gliding after 64 samples");
    }

    #[test]
    fn random_parameter_jumps_stay_bounded() {
        // Hard snaps (no glide) every 16 samples on noise: the SVF must not blow up.
        let mut seed = 12345u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        };
        let kinds = [
            EqKind::Bell,
            EqKind::LowShelf,
            EqKind::HighShelf,
            EqKind::Notch,
        ];
        let mut b = band(EqKind::Bell, 1000.0, 0.0, 1.0, SR);
        let mut peak = 0.0f32;
        for _ in 0..3000 {
            let kind = kinds[(rnd() * 4.0) as usize % 4];
            let f = 20.0 * 1000f32.powf(rnd());
            let g = -12.0 + 24.0 * rnd();
            let q = 0.3 * 30f32.powf(rnd());
            b.set(kind, f, g, q);
            b.snap();
            let mut x: Vec<f32> = (0..16).map(|_| rnd() - 0.5).collect();
            b.process(&mut [&mut x]);
            peak = x.iter().fold(peak, |m, v| m.max(v.abs()));
        }
        // Max steady gain is 12 dB (4x) on a +-0.5 signal; allow transient overshoot only.
        assert!(peak.is_finite() && peak < 20.0, "peak {peak}");
    }

    /// Largest sample-to-sample step in `x`.
    fn max_step(x: &[f32]) -> f32 {
        x.windows(2).fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()))
    }

    /// Run a steady sine through `proc`, calling `toggle` after 0.3 s; return the largest step
    /// during the 0.1 s around the toggle and the largest steady step before and after it.
    fn toggle_steps(
        f: f64,
        mut proc: impl FnMut(&mut [&mut [f32]]),
        mut toggle: impl FnMut(),
    ) -> (f32, f32) {
        let n = (0.8 * SR) as usize;
        let mut x = sine(f, SR, n, 0.5);
        let t = (0.3 * SR) as usize;
        let (a, b) = x.split_at_mut(t);
        run_blocks(a, &mut proc);
        toggle();
        run_blocks(b, &mut proc);
        let around = max_step(&x[t - 2400..t + 2400]);
        let before = max_step(&x[t - 4800..t - 2400]);
        let after = max_step(&x[n - 4800..]);
        (around, before.max(after))
    }

    #[test]
    fn switching_on_and_off_adds_no_click() {
        let tol = 0.005; // 1% of the 0.5 peak
        let mut worst = 0.0f32;
        for (kind, f0, gain, q, f) in [
            (EqKind::Bell, 1000.0, 12.0, 1.0, 1000.0),
            (EqKind::Bell, 1000.0, -12.0, 1.0, 1000.0),
            (EqKind::LowShelf, 200.0, 9.0, 0.7, 100.0),
            (EqKind::HighShelf, 2000.0, 9.0, 0.7, 5000.0),
            (EqKind::Notch, 1000.0, 0.0, 1.0, 1200.0),
        ] {
            for on in [true, false] {
                let b = std::cell::RefCell::new(EqBand::new(SR, 1));
                b.borrow_mut().set(kind, f0, gain, q);
                b.borrow_mut().set_enabled(!on);
                b.borrow_mut().snap();
                let (around, steady) = toggle_steps(
                    f,
                    |c| b.borrow_mut().process(c),
                    || b.borrow_mut().set_enabled(on),
                );
                assert!(
                    around <= steady + tol,
                    "{kind:?} on={on}: step {around} vs steady {steady}"
                );
                worst = worst.max(around - steady);
            }
        }
        for kind in [PassKind::HighPass, PassKind::LowPass] {
            for on in [true, false] {
                let p = std::cell::RefCell::new(PassFilter::new(SR, 1, kind));
                p.borrow_mut().set(1000.0, Slope::Db24);
                p.borrow_mut().set_enabled(!on);
                p.borrow_mut().snap();
                let (around, steady) = toggle_steps(
                    700.0,
                    |c| p.borrow_mut().process(c),
                    || p.borrow_mut().set_enabled(on),
                );
                assert!(
                    around <= steady + tol,
                    "{kind:?} on={on}: {around} vs {steady}"
                );
                worst = worst.max(around - steady);
            }
        }
        println!("on/off worst extra step {worst:.5}");
    }

    #[test]
    fn type_and_slope_changes_add_no_click() {
        let b = std::cell::RefCell::new(band(EqKind::Bell, 1000.0, 9.0, 1.0, SR));
        let (around, steady) = toggle_steps(
            800.0,
            |c| b.borrow_mut().process(c),
            || b.borrow_mut().set(EqKind::HighShelf, 1000.0, 9.0, 1.0),
        );
        assert!(
            around <= steady + 0.005,
            "type change step {around} vs {steady}"
        );
        assert_eq!(b.borrow().kind, EqKind::HighShelf);
        // Settled on the new type.
        let mut bb = b.into_inner();
        let got = measure_db(3000.0, SR, 0.2, |c| bb.process(c));
        let want = eq_prototype_magnitude_db(EqKind::HighShelf, 3000.0, 1000.0, 9.0, 1.0, 48e3);
        assert!((got - want).abs() < 0.1, "{got} vs {want}");

        // 12 -> 24 dB/oct while running, then back.
        for (from, to, order) in [(Slope::Db12, Slope::Db24, 2), (Slope::Db24, Slope::Db12, 1)] {
            let p = std::cell::RefCell::new(pass(PassKind::HighPass, 200.0, from, SR));
            let (around, steady) = toggle_steps(
                150.0,
                |c| p.borrow_mut().process(c),
                || p.borrow_mut().set(200.0, to),
            );
            assert!(
                around <= steady + 0.005,
                "slope {to:?}: {around} vs {steady}"
            );
            let mut pp = p.into_inner();
            let got = measure_db(100.0, SR, 0.2, |c| pp.process(c));
            let want = butterworth_db(PassKind::HighPass, 100.0, 200.0, order, 48e3);
            assert!((got - want).abs() < 0.1, "{to:?}: {got} vs {want}");
        }
    }

    #[test]
    fn settings_made_while_off_apply_when_switched_on() {
        // Type, frequency and slope changed while off (no process call in between), then on:
        // after the fade-in the response is the new one straight away, with no glide.
        let mut b = EqBand::new(SR, 1);
        b.set(EqKind::Bell, 200.0, 6.0, 1.0);
        b.snap();
        b.set(EqKind::Notch, 2000.0, 0.0, 1.0);
        b.set_enabled(true);
        let got = measure_db(1500.0, SR, 0.02, |c| b.process(c));
        let want = eq_prototype_magnitude_db(EqKind::Notch, 1500.0, 2000.0, 0.0, 1.0, 48e3);
        assert!((got - want).abs() < 0.1, "notch {got} vs {want}");
        let mut p = PassFilter::new(SR, 1, PassKind::LowPass);
        p.set(8000.0, Slope::Db12);
        p.snap();
        p.set(1000.0, Slope::Db24);
        p.set_enabled(true);
        let got = measure_db(1500.0, SR, 0.02, |c| p.process(c));
        let want = butterworth_db(PassKind::LowPass, 1500.0, 1000.0, 2, 48e3);
        assert!((got - want).abs() < 0.1, "LPF {got} vs {want}");
    }

    #[test]
    fn disabled_is_exact_passthrough() {
        let mut b = EqBand::new(SR, 2);
        b.set(EqKind::Bell, 500.0, 12.0, 2.0);
        let mut p = PassFilter::new(SR, 2, PassKind::HighPass);
        p.set(500.0, Slope::Db24);
        let l0 = sine(440.0, SR, 1000, 0.7);
        let r0 = sine(97.0, SR, 1000, 0.3);
        let (mut l, mut r) = (l0.clone(), r0.clone());
        b.process(&mut [&mut l, &mut r]);
        p.process(&mut [&mut l, &mut r]);
        assert_eq!(l, l0);
        assert_eq!(r, r0);
        assert!(!b.is_active() && !p.is_active());
        // Fading out ends in exact passthrough too.
        let mut b = band(EqKind::Bell, 500.0, 12.0, 2.0, SR);
        b.set_enabled(false);
        let mut x = sine(440.0, SR, 2000, 0.7);
        b.process(&mut [&mut x]);
        let x0 = sine(440.0, SR, 2000, 0.7);
        let fade = crate::dsp::util::ms_to_samples(FADE_MS, SR);
        assert_ne!(x[..fade], x0[..fade]);
        assert_eq!(x[fade..], x0[fade..]);
    }

    #[test]
    fn stereo_equals_two_mono_instances() {
        let n = 20000;
        let l0: Vec<f32> = sine(440.0, SR, n, 0.5)
            .iter()
            .zip(sine(3100.0, SR, n, 0.3))
            .map(|(a, b)| a + b)
            .collect();
        let mut seed = 7u32;
        let r0: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let (mut sl, mut sr) = (l0.clone(), r0.clone());
        let (mut ml, mut mr) = (l0.clone(), r0.clone());
        let mut st = (
            EqBand::new(SR, 2),
            PassFilter::new(SR, 2, PassKind::LowPass),
        );
        let mut mono_l = (
            EqBand::new(SR, 1),
            PassFilter::new(SR, 1, PassKind::LowPass),
        );
        let mut mono_r = (
            EqBand::new(SR, 1),
            PassFilter::new(SR, 1, PassKind::LowPass),
        );
        let mut pos = 0;
        let mut block = 0;
        while pos < n {
            let len = [300usize, 17, 1024][block % 3].min(n - pos);
            // Changes mid-stream: enable, glide, type change, slope change.
            for (b, p) in [&mut st, &mut mono_l, &mut mono_r] {
                match block {
                    1 => {
                        b.set(EqKind::Bell, 800.0, 6.0, 1.0);
                        b.set_enabled(true);
                        p.set(5000.0, Slope::Db12);
                        p.set_enabled(true);
                    }
                    5 => b.set(EqKind::Bell, 3000.0, -6.0, 2.0),
                    9 => {
                        b.set(EqKind::LowShelf, 300.0, 4.0, 0.7);
                        p.set(2000.0, Slope::Db24);
                    }
                    _ => {}
                }
            }
            let r = pos..pos + len;
            st.0.process(&mut [&mut sl[r.clone()], &mut sr[r.clone()]]);
            st.1.process(&mut [&mut sl[r.clone()], &mut sr[r.clone()]]);
            mono_l.0.process(&mut [&mut ml[r.clone()]]);
            mono_l.1.process(&mut [&mut ml[r.clone()]]);
            mono_r.0.process(&mut [&mut mr[r.clone()]]);
            mono_r.1.process(&mut [&mut mr[r.clone()]]);
            pos += len;
            block += 1;
        }
        assert_ne!(sl, l0, "the filters did something");
        assert_eq!(sl, ml);
        assert_eq!(sr, mr);
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let n = 12000;
        let x0 = sine(700.0, SR, n, 0.5);
        let render = |block: usize| {
            let mut b = band(EqKind::Bell, 200.0, 6.0, 1.0, SR);
            b.set(EqKind::Bell, 4000.0, -3.0, 3.0);
            let mut x = x0.clone();
            for c in x.chunks_mut(block) {
                b.process(&mut [c]);
            }
            x
        };
        let a = render(4096);
        assert_eq!(a, render(1));
        assert_eq!(a, render(31));
    }

    #[test]
    fn gain_glides_add_no_click() {
        // At the centre of a bell the phase stays 0, so a gain glide only scales the sine: each
        // step must stay within what a sine of the local envelope can step.
        let f = 1000.0;
        let mut worst = f32::NEG_INFINITY;
        for (from, to) in [((0.0, 1.0), (12.0, 1.0)), ((12.0, 1.0), (-12.0, 1.0))] {
            let mut b = band(EqKind::Bell, 1000.0, from.0, from.1, SR);
            let n = (0.5 * SR) as usize;
            let t = (0.2 * SR) as usize;
            let mut x = sine(f, SR, n, 0.5);
            let (a, rest) = x.split_at_mut(t);
            run_blocks(a, |c| b.process(c));
            b.set(EqKind::Bell, 1000.0, to.0, to.1);
            run_blocks(rest, |c| b.process(c));
            let excess = step_excess(&x, f, t - 2400, t + 9600);
            assert!(excess < 0.001, "{from:?} -> {to:?}: step excess {excess}");
            worst = worst.max(excess);
        }
        println!("gain glide: worst step excess {worst:.5}");
    }

    /// Largest amount by which a step of `x[lo..hi]` exceeds what a sine at `f` with the local
    /// envelope (peak within one period around it) can step: `2 A sin(pi f / fs)`.
    fn step_excess(x: &[f32], f: f64, lo: usize, hi: usize) -> f32 {
        let per_step = 2.0 * (PI * f / f64::from(SR)).sin() as f32;
        let w = (f64::from(SR) / f) as usize;
        (lo..hi)
            .map(|i| {
                let env = x[i - w..i + w].iter().fold(0.0f32, |m, v| m.max(v.abs()));
                (x[i + 1] - x[i]).abs() - per_step * env
            })
            .fold(f32::NEG_INFINITY, f32::max)
    }

    #[test]
    fn frequency_glide_adds_no_click() {
        // A bell sweeping across a steady sine changes its level and phase quickly, so the
        // output steps a little beyond a pure sine's. The reference is the same glide computed
        // afresh every sample (no sub-blocks): the sub-block updates must add nothing audible.
        let f = 1000.0;
        let (f_from, f_to, gain, q) = (300.0f32, 3000.0f32, 9.0, 2.0);
        let n = (0.6 * SR) as usize;
        let t = (0.2 * SR) as usize;
        let mut x = sine(f, SR, n, 0.5);
        let mut b = band(EqKind::Bell, f_from, gain, q, SR);
        let (a, rest) = x.split_at_mut(t);
        run_blocks(a, |c| b.process(c));
        b.set(EqKind::Bell, f_to, gain, q);
        run_blocks(rest, |c| b.process(c));

        let mut y = sine(f, SR, n, 0.5);
        let c_sample = glide_coeff(SR).powf(1.0 / SUB_BLOCK as f32);
        let (mut lf, mut ic1, mut ic2) = (f_from.log2(), 0.0f32, 0.0f32);
        for (i, v) in y.iter_mut().enumerate() {
            if i >= t {
                lf += (f_to.log2() - lf) * (1.0 - c_sample);
            }
            let c = SvfCoeffs::eq(
                EqKind::Bell,
                f64::from(lf).exp2(),
                f64::from(gain),
                f64::from(q),
                f64::from(SR),
            );
            *v = tick(&c, &mut ic1, &mut ic2, *v);
        }

        let got = step_excess(&x, f, t - 2400, t + 9600);
        let reference = step_excess(&y, f, t - 2400, t + 9600);
        let peak = x[t..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // The sweep really passed the sine (level rose towards +9 dB on the way).
        assert!(peak > 0.5 * 2.0, "peak {peak}");
        assert!(
            got < reference + 0.001,
            "step excess {got} vs per-sample {reference}"
        );
        println!("frequency glide: step excess {got:.5} (per-sample glide {reference:.5})");
    }

    #[test]
    #[ignore = "timing; run with --ignored --nocapture"]
    fn bench_ns_per_sample() {
        let n = 48000 * 4;
        let mut l = sine(440.0, SR, n, 0.5);
        let mut r = sine(550.0, SR, n, 0.5);
        let mut b = band(EqKind::Bell, 1000.0, 6.0, 1.0, SR);
        let mut b2 = EqBand::new(SR, 2);
        b2.set(EqKind::Bell, 1000.0, 6.0, 1.0);
        b2.set_enabled(true);
        b2.snap();
        let t = std::time::Instant::now();
        for (a, c) in l.chunks_mut(256).zip(r.chunks_mut(256)) {
            b2.process(&mut [a, c]);
        }
        let stereo = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for a in l.chunks_mut(256) {
            b.process(&mut [a]);
        }
        let mono = t.elapsed().as_nanos() as f64 / n as f64;
        let mut g = EqBand::new(SR, 2);
        g.set(EqKind::Bell, 100.0, 6.0, 1.0);
        g.set_enabled(true);
        g.snap();
        let t = std::time::Instant::now();
        for (i, (a, c)) in l.chunks_mut(256).zip(r.chunks_mut(256)).enumerate() {
            g.set(
                EqKind::Bell,
                if i % 2 == 0 { 100.0 } else { 10000.0 },
                6.0,
                1.0,
            );
            g.process(&mut [a, c]);
        }
        let gliding = t.elapsed().as_nanos() as f64 / n as f64;
        let mut p = PassFilter::new(SR, 2, PassKind::HighPass);
        p.set(100.0, Slope::Db24);
        p.set_enabled(true);
        p.snap();
        let t = std::time::Instant::now();
        for (a, c) in l.chunks_mut(256).zip(r.chunks_mut(256)) {
            p.process(&mut [a, c]);
        }
        let hp24 = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "ns/frame: band mono {mono:.2}, band stereo {stereo:.2}, band stereo gliding \
             {gliding:.2}, HPF24 stereo {hp24:.2}"
        );
    }
}
