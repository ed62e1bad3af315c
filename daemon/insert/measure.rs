//! The round-trip latency measurement of a hardware insert: the probe signal and its analysis.
//! Pure math, no JACK: [`crate::insert::jack`] plays [`Probe::sample`] out of the send, records
//! the return sample-synchronously, and hands the recording to [`Probe::analyse`].
//!
//! # Method
//! The probe is a periodic multisine: every FFT bin of a [`PERIOD`]-sample period from 40 Hz
//! to 0.42 × the sample rate (at most 20 kHz) at equal amplitude, with Schroeder phases (a
//! crest factor near 1.7, so the probe plays at -6 dBFS peak, about -11 dBFS RMS). Played for
//! `1 + ANALYSED` periods, the first period lets the gear and the return settle (latency and
//! the gear's own ringing); each later period of the recording is then one full period of the
//! steady-state response, and its spectrum divided by the probe's is the transfer function
//! `H(f)` of the whole round trip at every bin, without windowing or leakage.
//!
//! - **Coarse:** the impulse response (inverse FFT of `H`) peaks at the delay; its sign is the
//!   polarity. A parabola through the peak and its neighbours refines it to about 0.1 sample.
//! - **Fine:** with that delay removed, the phase of `H` is nearly flat; a straight line fitted
//!   to it over the band (weighted by `|H|²`, bins 30 dB below the strongest left out) gives
//!   the rest from its slope. For a pure delay this is exact; for coloured gear it is the
//!   gear's group delay averaged over the band by its energy, which is the alignment that
//!   best nulls it against a dry path.
//! - **Error:** the analysed periods are measured one by one; the standard error of their mean
//!   (in samples) is the error figure. Noise between periods, dropouts and a drifting
//!   clock all show up there.
//!
//! The measurable latency is below one period minus the fade-in ([`Probe::max_latency`]):
//! about 0.67 s at 48 kHz.

use std::f64::consts::PI;

/// Samples per probe period (a power of two, the FFT length).
pub const PERIOD: usize = 32768;
/// Periods analysed after the settling one.
pub const ANALYSED: usize = 3;
/// Peak level of the probe (-6 dBFS).
pub const PROBE_PEAK: f32 = 0.5;
/// A return sample at or above this is clipped.
pub const CLIP_LEVEL: f32 = 0.998;
/// A return this far below the send (dB) means nothing came back.
pub const NO_RETURN_DB: f64 = -50.0;
/// Below this signal-to-noise ratio (dB, return vs. its variation between periods) the
/// result is refused.
pub const MIN_SNR_DB: f64 = 20.0;
/// Above this error (samples) the result is refused.
pub const MAX_ERROR: f64 = 0.5;
/// Samples of fade-in at the very start, so the gear does not get a click.
const FADE: usize = 256;

/// Why a measurement is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeasureError {
    #[error(
        "nothing comes back: the return is {} (is the gear on, and the return patched?)",
        level_text(*.level_db)
    )]
    NoReturn { level_db: f64 },
    #[error(
        "the return clips (peak {peak:.3} of full scale): lower the gear's output or the return gain and measure again"
    )]
    Clipped { peak: f32 },
    #[error("inconsistent result ({why}); check the patching and measure again")]
    Inconsistent { why: String },
    #[error("the recording is too short: {got} samples, {need} needed")]
    TooShort { got: usize, need: usize },
}

/// A measured round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Latency in samples (sub-sample).
    pub samples: f64,
    /// Standard error of `samples` over the analysed periods, in samples.
    pub error: f64,
    /// The return is inverted relative to the send.
    pub inverted: bool,
    /// Return level relative to the send (dB, RMS over the band): the gear's gain.
    pub level_db: f64,
    /// Return signal over its variation between periods (dB; capped at 200).
    pub snr_db: f64,
}

/// The probe signal for one sample rate, with what the analysis needs to know about it.
#[derive(Debug, Clone)]
pub struct Probe {
    rate: u32,
    signal: Vec<f32>,
    /// The played signal's spectrum on the probe's bins (index `k - lo`).
    spectrum: Vec<C>,
    lo: usize,
    hi: usize,
    send_rms: f64,
}

impl Probe {
    /// The probe for `rate` Hz.
    pub fn new(rate: u32) -> Probe {
        let n = PERIOD;
        let r = f64::from(rate.max(1000));
        let lo = ((40.0 * n as f64 / r).ceil() as usize).max(1);
        let hi = (((0.42 * r).min(20000.0) * n as f64 / r).floor() as usize).min(n / 2 - 1);
        let k_count = (hi - lo + 1) as f64;
        let mut buf = vec![C::ZERO; n];
        for k in lo..=hi {
            let i = (k - lo + 1) as f64;
            let phi = -PI * i * (i - 1.0) / k_count;
            buf[k] = C::polar(1.0, phi);
            buf[n - k] = buf[k].conj();
        }
        fft(&mut buf, true);
        let peak = buf.iter().map(|c| c.re.abs()).fold(0.0, f64::max);
        let scale = f64::from(PROBE_PEAK) / peak;
        let signal: Vec<f32> = buf.iter().map(|c| (c.re * scale) as f32).collect();
        let mut spec: Vec<C> = signal.iter().map(|&s| C::new(f64::from(s), 0.0)).collect();
        fft(&mut spec, false);
        let send_rms = rms(&signal);
        Probe {
            rate,
            signal,
            spectrum: spec[lo..=hi].to_vec(),
            lo,
            hi,
            send_rms,
        }
    }

    /// The sample rate the probe was made for.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// RMS level of the probe (full scale = 1).
    pub fn send_rms(&self) -> f64 {
        self.send_rms
    }

    /// Samples to play and record: the settling period and the analysed ones.
    pub fn len(&self) -> usize {
        PERIOD * (1 + ANALYSED)
    }

    /// Always false (the probe has a fixed length).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The longest round trip it can measure, in samples.
    pub fn max_latency(&self) -> usize {
        PERIOD - FADE - 1
    }

    /// The `i`-th sample to play (faded in at the start; real-time safe).
    #[inline]
    pub fn sample(&self, i: usize) -> f32 {
        let s = self.signal[i % PERIOD];
        if i < FADE {
            s * (i as f32 / FADE as f32)
        } else {
            s
        }
    }

    /// Analyse a recording of the return, sample-synchronous with [`Probe::sample`] (its
    /// sample `i` recorded in the same cycle and frame as sample `i` was played).
    ///
    /// # Errors
    /// See [`MeasureError`]: too short, nothing comes back, clipped, too noisy, ambiguous or
    /// not repeatable.
    pub fn analyse(&self, rec: &[f32]) -> Result<Measurement, MeasureError> {
        let need = self.len();
        if rec.len() < need {
            return Err(MeasureError::TooShort {
                got: rec.len(),
                need,
            });
        }
        let rec = &rec[..need];
        let peak = rec.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
        if peak >= CLIP_LEVEL || rec.iter().any(|x| !x.is_finite()) {
            return Err(MeasureError::Clipped { peak });
        }
        let n = PERIOD;
        let bins = self.hi - self.lo + 1;
        // Transfer function of each analysed period, on the probe's bins.
        let mut per: Vec<Vec<C>> = Vec::with_capacity(ANALYSED);
        let mut buf = vec![C::ZERO; n];
        for j in 1..=ANALYSED {
            for (b, &x) in buf.iter_mut().zip(&rec[j * n..(j + 1) * n]) {
                *b = C::new(f64::from(x), 0.0);
            }
            fft(&mut buf, false);
            per.push(
                (0..bins)
                    .map(|i| buf[self.lo + i].div(self.spectrum[i]))
                    .collect(),
            );
        }
        let mean: Vec<C> = (0..bins)
            .map(|i| {
                per.iter()
                    .fold(C::ZERO, |a, h| a.add(h[i]))
                    .scale(1.0 / ANALYSED as f64)
            })
            .collect();
        let power: f64 = mean.iter().map(|c| c.norm2()).sum::<f64>() / bins as f64;
        let level_db = 10.0 * power.max(1e-30).log10();
        if level_db < NO_RETURN_DB {
            return Err(MeasureError::NoReturn { level_db });
        }
        let noise: f64 = (0..bins)
            .map(|i| per.iter().map(|h| h[i].sub(mean[i]).norm2()).sum::<f64>())
            .sum::<f64>()
            / ((ANALYSED - 1) as f64 * bins as f64);
        // The mean's noise is a third of one period's.
        let snr_db = (10.0 * (power / (noise / ANALYSED as f64).max(1e-300)).log10()).min(200.0);
        if snr_db < MIN_SNR_DB {
            return Err(MeasureError::Inconsistent {
                why: format!("signal-to-noise ratio {snr_db:.1} dB, {MIN_SNR_DB} dB needed"),
            });
        }

        // Coarse: the impulse response's peak.
        buf.iter_mut().for_each(|b| *b = C::ZERO);
        for (i, &h) in mean.iter().enumerate() {
            buf[self.lo + i] = h;
            buf[n - self.lo - i] = h.conj();
        }
        fft(&mut buf, true);
        let ir: Vec<f64> = buf.iter().map(|c| c.re / n as f64).collect();
        let (d0, top) = ir
            .iter()
            .enumerate()
            .fold((0, 0.0f64), |(bi, bv), (i, &v)| {
                if v.abs() > bv { (i, v.abs()) } else { (bi, bv) }
            });
        let inverted = ir[d0] < 0.0;
        // A second arrival of similar strength (away from the main lobe) makes it ambiguous.
        let second = ir
            .iter()
            .enumerate()
            .filter(|(i, _)| circ_dist(*i, d0, n) > 16)
            .fold(0.0f64, |m, (_, v)| m.max(v.abs()));
        if second > 0.8 * top {
            return Err(MeasureError::Inconsistent {
                why: format!(
                    "two arrivals of similar strength ({:.1} dB apart)",
                    20.0 * (top / second).log10()
                ),
            });
        }
        if d0 > self.max_latency() {
            return Err(MeasureError::Inconsistent {
                why: format!(
                    "the peak is at {d0} samples, beyond the measurable {} (or before the send)",
                    self.max_latency()
                ),
            });
        }
        let sgn = if inverted { -1.0 } else { 1.0 };
        let (ym, y0, yp) = (
            sgn * ir[(d0 + n - 1) % n],
            sgn * ir[d0],
            sgn * ir[(d0 + 1) % n],
        );
        let den = ym - 2.0 * y0 + yp;
        let para = if den.abs() > 1e-300 {
            (0.5 * (ym - yp) / den).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        let coarse = d0 as f64 + para;

        // Fine: the phase slope with the coarse delay removed.
        let fine = |h: &[C]| self.phase_delay(h, coarse, sgn);
        let samples = fine(&mean).ok_or_else(|| MeasureError::Inconsistent {
            why: "no usable phase".into(),
        })?;
        let each: Vec<f64> = per.iter().map(|h| fine(h).unwrap_or(f64::NAN)).collect();
        let m = each.iter().sum::<f64>() / ANALYSED as f64;
        let var = each.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (ANALYSED - 1) as f64;
        let error = (var / ANALYSED as f64).sqrt();
        if !error.is_finite() || error > MAX_ERROR {
            return Err(MeasureError::Inconsistent {
                why: format!(
                    "the periods disagree: {}",
                    each.iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(Measurement {
            samples,
            error,
            inverted,
            level_db,
            snr_db,
        })
    }

    /// The delay (samples) from a straight line through the phase of `h` after removing
    /// `coarse` samples of delay and the polarity `sgn`.
    fn phase_delay(&self, h: &[C], coarse: f64, sgn: f64) -> Option<f64> {
        let n = PERIOD as f64;
        let top = h.iter().map(|c| c.norm2()).fold(0.0, f64::max);
        let floor = top * 1e-3; // -30 dB
        let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut prev: Option<f64> = None;
        for (i, &c) in h.iter().enumerate() {
            let w = c.norm2();
            if w < floor {
                continue;
            }
            let omega = 2.0 * PI * (self.lo + i) as f64 / n;
            let g = c.scale(sgn).mul(C::polar(1.0, omega * coarse));
            let mut ph = g.im.atan2(g.re);
            if let Some(p) = prev {
                ph += 2.0 * PI * ((p - ph) / (2.0 * PI)).round();
            }
            prev = Some(ph);
            sw += w;
            swx += w * omega;
            swy += w * ph;
            swxx += w * omega * omega;
            swxy += w * omega * ph;
        }
        let det = sw * swxx - swx * swx;
        if sw <= 0.0 || det <= 0.0 {
            return None;
        }
        let slope = (sw * swxy - swx * swy) / det;
        Some(coarse - slope)
    }
}

fn level_text(db: f64) -> String {
    if db < -150.0 {
        "silent".into()
    } else {
        format!("{:.1} dB below the send", -db)
    }
}

fn circ_dist(a: usize, b: usize, n: usize) -> usize {
    let d = a.abs_diff(b);
    d.min(n - d)
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// A complex number (just what the FFT and the fit need).
#[derive(Debug, Clone, Copy, PartialEq)]
struct C {
    re: f64,
    im: f64,
}

impl C {
    const ZERO: C = C { re: 0.0, im: 0.0 };
    fn new(re: f64, im: f64) -> C {
        C { re, im }
    }
    fn polar(r: f64, phi: f64) -> C {
        C::new(r * phi.cos(), r * phi.sin())
    }
    fn conj(self) -> C {
        C::new(self.re, -self.im)
    }
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
    fn mul(self, o: C) -> C {
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn scale(self, s: f64) -> C {
        C::new(self.re * s, self.im * s)
    }
    fn norm2(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
    fn div(self, o: C) -> C {
        self.mul(o.conj()).scale(1.0 / o.norm2())
    }
}

/// In-place radix-2 FFT (`inverse`: the unscaled inverse). `x.len()` is a power of two.
fn fft(x: &mut [C], inverse: bool) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            x.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let w = C::polar(1.0, sign * 2.0 * PI / len as f64);
        for start in (0..n).step_by(len) {
            let mut wk = C::new(1.0, 0.0);
            for k in 0..len / 2 {
                let a = x[start + k];
                let b = x[start + k + len / 2].mul(wk);
                x[start + k] = a.add(b);
                x[start + k + len / 2] = a.sub(b);
                wk = wk.mul(w);
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests;
