//! The analysis against simulated gear: a known delay (integer or fractional, by a windowed
//! sinc), gain, polarity, noise and colour applied to the probe in the time domain.

use super::*;

/// What the simulated gear does to the send.
#[derive(Clone, Copy)]
struct Gear {
    /// Delay in samples (the fractional part by a 129-tap windowed sinc centred on it).
    delay: f64,
    gain_db: f64,
    invert: bool,
    /// Noise RMS relative to the return's RMS, in dB (`None`: no noise).
    noise_db: Option<f64>,
    colour: Colour,
}

#[derive(Clone, Copy, PartialEq)]
enum Colour {
    None,
    /// `[0.25, 0.5, 0.25]`: a linear-phase lowpass, group delay exactly 1 sample.
    Fir121,
    /// `y = x - x[-1] + 0.995 y[-1]`: a DC-blocking high-pass (corner about 38 Hz).
    DcBlock,
    /// `y = (1-a) x + a y[-1]` with its corner at 8 kHz (48 kHz rate): group delay
    /// `a / (1 - a)` at DC, less above.
    OnePole8k,
}

impl Gear {
    fn new(delay: f64) -> Gear {
        Gear {
            delay,
            gain_db: 0.0,
            invert: false,
            noise_db: None,
            colour: Colour::None,
        }
    }
}

/// The recording of the return when `gear` is patched in (same length as the probe).
fn record(p: &Probe, g: Gear) -> Vec<f32> {
    let len = p.len();
    let x: Vec<f64> = (0..len).map(|i| f64::from(p.sample(i))).collect();
    // Fractional delay: a Blackman-windowed sinc of 129 taps, centred on 64 + frac.
    let whole = g.delay.floor() as usize;
    let frac = g.delay - g.delay.floor();
    let taps = 129usize;
    let c = 64.0 + frac;
    let fir: Vec<f64> = (0..taps)
        .map(|m| {
            let t = m as f64 - c;
            let sinc = if t.abs() < 1e-12 {
                1.0
            } else {
                (PI * t).sin() / (PI * t)
            };
            let u = (m as f64 - frac) / (taps - 1) as f64; // window follows the centre
            let u = u.clamp(0.0, 1.0);
            let w = 0.42 - 0.5 * (2.0 * PI * u).cos() + 0.08 * (4.0 * PI * u).cos();
            sinc * w
        })
        .collect();
    let sum: f64 = fir.iter().sum();
    let fir: Vec<f64> = fir.iter().map(|v| v / sum).collect();
    let shift = whole as isize - 64; // the FIR's own 64 samples are part of the delay
    let gain = 10f64.powf(g.gain_db / 20.0) * if g.invert { -1.0 } else { 1.0 };
    let mut y = vec![0.0f64; len];
    for (n, out) in y.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (m, &h) in fir.iter().enumerate() {
            let i = n as isize - shift - m as isize;
            if i >= 0 && (i as usize) < len {
                acc += h * x[i as usize];
            }
        }
        *out = acc * gain;
    }
    match g.colour {
        Colour::None => {}
        Colour::Fir121 => {
            let src = y.clone();
            for n in 0..len {
                let at = |k: usize| if n >= k { src[n - k] } else { 0.0 };
                y[n] = 0.25 * at(0) + 0.5 * at(1) + 0.25 * at(2);
            }
        }
        Colour::DcBlock => {
            let (mut x1, mut y1) = (0.0, 0.0);
            for v in y.iter_mut() {
                let o = *v - x1 + 0.995 * y1;
                x1 = *v;
                y1 = o;
                *v = o;
            }
        }
        Colour::OnePole8k => {
            let a = (-2.0 * PI * 8000.0 / 48000.0).exp();
            let mut y1 = 0.0;
            for v in y.iter_mut() {
                y1 = (1.0 - a) * *v + a * y1;
                *v = y1;
            }
        }
    }
    if let Some(db) = g.noise_db {
        let r = (y.iter().map(|v| v * v).sum::<f64>() / len as f64).sqrt();
        let sigma = r * 10f64.powf(db / 20.0);
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut uni = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for v in y.iter_mut() {
            // Irwin-Hall: 12 uniforms, unit variance.
            let z: f64 = (0..12).map(|_| uni()).sum::<f64>() - 6.0;
            *v += sigma * z;
        }
    }
    y.iter().map(|&v| v as f32).collect()
}

fn measure(g: Gear) -> Result<Measurement, MeasureError> {
    Probe::new(48000).analyse(&record(&Probe::new(48000), g))
}

fn assert_near(m: &Measurement, want: f64, tol: f64, what: &str) {
    eprintln!(
        "{what}: measured {:.6} (want {want}, off {:+.6}), error {:.5}, level {:.2} dB, snr {:.1} dB, inverted {}",
        m.samples,
        m.samples - want,
        m.error,
        m.level_db,
        m.snr_db,
        m.inverted
    );
    assert!(
        (m.samples - want).abs() <= tol,
        "{what}: measured {} samples, want {want} ± {tol}",
        m.samples
    );
}

#[test]
fn fft_round_trip_and_a_known_bin() {
    let n = 64;
    let mut x: Vec<C> = (0..n)
        .map(|i| C::new((2.0 * PI * 5.0 * i as f64 / n as f64).cos(), 0.0))
        .collect();
    let orig = x.clone();
    fft(&mut x, false);
    // A cosine at bin 5: n/2 at bins 5 and n-5, nothing elsewhere.
    for (k, c) in x.iter().enumerate() {
        let want = if k == 5 || k == n - 5 {
            n as f64 / 2.0
        } else {
            0.0
        };
        assert!(
            (c.re - want).abs() < 1e-9 && c.im.abs() < 1e-9,
            "bin {k}: {c:?}"
        );
    }
    fft(&mut x, true);
    for (a, b) in x.iter().zip(&orig) {
        assert!((a.re / n as f64 - b.re).abs() < 1e-12);
    }
}

#[test]
fn the_probe_peaks_at_minus_6_dbfs_and_starts_faded() {
    let p = Probe::new(48000);
    let peak = (0..PERIOD)
        .map(|i| p.sample(PERIOD + i).abs())
        .fold(0.0f32, f32::max);
    assert!((peak - PROBE_PEAK).abs() < 1e-6, "peak {peak}");
    assert_eq!(p.sample(0), 0.0);
    // Periodic after the fade.
    assert_eq!(p.sample(PERIOD + 1000), p.sample(2 * PERIOD + 1000));
    // Crest factor of a Schroeder multisine: well under 2 (6 dB).
    let crest = f64::from(peak) / p.send_rms();
    assert!(crest < 2.0, "crest factor {crest}");
}

#[test]
fn integer_delay() {
    let m = measure(Gear::new(237.0)).expect("measure");
    assert_near(&m, 237.0, 0.001, "237");
    assert!(!m.inverted);
    assert!(m.level_db.abs() < 0.1, "level {}", m.level_db);
}

#[test]
fn fractional_delay() {
    for d in [237.5, 237.25, 1000.9] {
        let m = measure(Gear::new(d)).expect("measure");
        assert_near(&m, d, 0.001, &format!("{d}"));
    }
}

#[test]
fn inverted_with_gain() {
    let mut g = Gear::new(237.5);
    g.invert = true;
    g.gain_db = -3.0;
    let m = measure(g).expect("measure");
    assert_near(&m, 237.5, 0.001, "inverted -3 dB");
    assert!(m.inverted);
    assert!((m.level_db + 3.0).abs() < 0.1, "level {}", m.level_db);
}

#[test]
fn noise_at_minus_40_db() {
    let mut g = Gear::new(237.5);
    g.noise_db = Some(-40.0);
    let m = measure(g).expect("measure");
    assert_near(&m, 237.5, 0.001, "noise -40 dB");
    assert!(m.error < 0.01, "error {}", m.error);
    // -40 dB of noise on one period, averaged over 3: about 44.8 dB.
    assert!((m.snr_db - 44.8).abs() < 2.0, "snr {}", m.snr_db);
}

#[test]
fn coloured_gear() {
    let mut g = Gear::new(237.0);
    g.colour = Colour::Fir121;
    assert_near(&measure(g).expect("fir"), 238.0, 0.001, "fir 1-2-1");
    g.colour = Colour::DcBlock;
    g.invert = true;
    let m = measure(g).expect("dc block");
    assert_near(&m, 237.0, 0.1, "dc block");
    assert!(m.inverted);
    // A one-pole lowpass at 8 kHz: group delay a/(1-a) = 0.54 samples at DC, falling with
    // frequency; the energy-weighted figure lies between 0 and that.
    g.colour = Colour::OnePole8k;
    g.invert = false;
    let m = measure(g).expect("one pole");
    let a = (-2.0 * PI * 8000.0 / 48000.0).exp();
    let gd0 = a / (1.0 - a);
    eprintln!(
        "one pole: measured {:.4}, group delay at DC {gd0:.3}",
        m.samples
    );
    assert!(
        m.samples > 237.0 && m.samples < 237.0 + gd0,
        "one pole: {}",
        m.samples
    );
}

#[test]
fn refuses_silence_clipping_and_noise() {
    let p = Probe::new(48000);
    let silent = vec![0.0f32; p.len()];
    assert!(matches!(
        p.analyse(&silent),
        Err(MeasureError::NoReturn { .. })
    ));
    let mut g = Gear::new(100.0);
    g.gain_db = -60.0;
    assert!(matches!(
        p.analyse(&record(&p, g)),
        Err(MeasureError::NoReturn { .. })
    ));
    g.gain_db = 7.0; // the -6 dBFS peak comes back at +1 dBFS
    let e = p.analyse(&record(&p, g)).expect_err("clips");
    assert!(matches!(e, MeasureError::Clipped { .. }), "{e}");
    g.gain_db = 0.0;
    g.noise_db = Some(-10.0);
    let e = p.analyse(&record(&p, g)).expect_err("noisy");
    assert!(matches!(e, MeasureError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("signal-to-noise"), "{e}");
    assert!(matches!(
        p.analyse(&silent[..100]),
        Err(MeasureError::TooShort { .. })
    ));
}

#[test]
fn refuses_a_recording_that_changes_between_periods() {
    // The delay jumps by 40 samples after the second period (a dropout, a buffer slip).
    let p = Probe::new(48000);
    let a = record(&p, Gear::new(237.0));
    let b = record(&p, Gear::new(277.0));
    let mut rec = a.clone();
    rec[3 * PERIOD..].copy_from_slice(&b[3 * PERIOD..]);
    let e = p.analyse(&rec).expect_err("inconsistent");
    assert!(matches!(e, MeasureError::Inconsistent { .. }), "{e}");
}

#[test]
fn refuses_two_equal_arrivals() {
    let p = Probe::new(48000);
    let a = record(&p, Gear::new(237.0));
    let b = record(&p, Gear::new(900.0));
    let rec: Vec<f32> = a.iter().zip(&b).map(|(x, y)| 0.5 * (x + y)).collect();
    let e = p.analyse(&rec).expect_err("ambiguous");
    assert!(e.to_string().contains("two arrivals"), "{e}");
}

#[test]
fn other_rates() {
    for rate in [44100, 96000] {
        let p = Probe::new(rate);
        let m = p.analyse(&record(&p, Gear::new(3000.5))).expect("measure");
        assert_near(&m, 3000.5, 0.001, &format!("{rate} Hz"));
    }
}
