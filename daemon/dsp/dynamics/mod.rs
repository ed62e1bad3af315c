//! Dynamics processors of a channel strip (SPEC §3 `gate`, `comp`, `saturation`), also used on
//! buses and the master (compressor). Built by the engine's strip graph; `process` runs on the
//! audio thread.
//!
//! - [`Gate`]: peak-triggered gate with hysteresis, hold, attack/release ramps and a range floor.
//! - [`Compressor`]: feed-forward log-domain compressor with quadratic soft knee (Giannoulis,
//!   Massberg, Reiss, JAES 2012), stereo-linked.
//! - [`Saturation`]: rational tanh-like soft clipper, unity small-signal gain, dry/wet mix.
//!
//! All three are disabled after `new` (SPEC §3: a key left out means off), allocate only in
//! `new`, and switch in and out with a crossfade. Channels are `chans: &mut [&mut [f32]]`
//! (1 = mono, 2 = stereo), processed in place.

mod compressor;
pub(crate) mod fastmath;
mod gate;
mod saturation;

pub use compressor::Compressor;
pub use gate::{Gate, GateTicker, HYSTERESIS_DB, MIN_HOLD_MS};
pub use saturation::Saturation;

/// Signals and measurements shared by the tests of this module.
#[cfg(test)]
mod testkit {
    /// The allocation guard the no-allocation tests rely on. NOTE for integration: a binary
    /// may have only one `#[global_allocator]`; if another module's tests declare one too,
    /// keep a single `AllocDisabler` for the crate.
    #[global_allocator]
    static ALLOC: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

    pub const SR: f32 = 48_000.0;

    /// `n` samples of a sine with peak amplitude `amp`.
    pub fn sine(freq: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                amp * (std::f64::consts::TAU * freq as f64 * i as f64 / SR as f64).sin() as f32
            })
            .collect()
    }

    /// Peak dBFS to amplitude (written out here, independent of the code under test).
    pub fn amp(db: f64) -> f32 {
        10f64.powf(db / 20.0) as f32
    }

    /// RMS of a slice.
    pub fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Gain in dB of `out` relative to `inp` over a range, by RMS.
    pub fn gain_db(out: &[f32], inp: &[f32]) -> f64 {
        20.0 * (rms(out) / rms(inp)).log10()
    }

    /// Magnitude of the DFT of `x` at `freq` (an exact bin when `x` holds whole cycles),
    /// scaled so a sine of amplitude A gives A.
    pub fn dft_mag(x: &[f32], freq: f64) -> f64 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in x.iter().enumerate() {
            let ph = std::f64::consts::TAU * freq * i as f64 / SR as f64;
            re += v as f64 * ph.cos();
            im -= v as f64 * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    /// Run a mono signal through `f` in blocks of `block` frames, returning the output.
    pub fn run_mono(input: &[f32], block: usize, mut f: impl FnMut(&mut [&mut [f32]])) -> Vec<f32> {
        let mut out = input.to_vec();
        for chunk in out.chunks_mut(block) {
            f(&mut [chunk]);
        }
        out
    }

    /// Per-sample gain in dB (out/in), `None` where the input is too small to divide by.
    pub fn sample_gain_db(out: &[f32], inp: &[f32], min_abs: f32) -> Vec<Option<f64>> {
        out.iter()
            .zip(inp)
            .map(|(&o, &i)| {
                (i.abs() >= min_abs).then(|| 20.0 * (o as f64 / i as f64).abs().log10())
            })
            .collect()
    }

    /// Signals every processor must survive: silence, a full-scale square, denormal noise,
    /// and a 4096-frame block (the maximum size).
    pub fn hostile_signals() -> Vec<(&'static str, Vec<f32>)> {
        let square: Vec<f32> = (0..9600)
            .map(|i| if (i / 24) % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let denormal: Vec<f32> = (0..9600)
            .map(|i| {
                f32::from_bits(1 + (i as u32 * 7919) % 0x007f_ffff)
                    * if i % 2 == 0 { 1.0 } else { -1.0 }
            })
            .collect();
        vec![
            ("silence", vec![0.0; 9600]),
            ("square", square),
            ("denormal", denormal),
        ]
    }

    /// Feed each hostile signal (stereo, in blocks of 4096, 1 and 7 frames) to `p` under the
    /// allocation guard and check every output sample is finite and `|y| <= bound(|x|)`.
    pub fn assert_robust(mut p: impl FnMut(&mut [&mut [f32]]), bound: impl Fn(f32) -> f32) {
        for (name, sig) in hostile_signals() {
            let mut l = sig.clone();
            let mut r = sig.clone();
            assert_no_alloc::assert_no_alloc(|| {
                let mut pos = 0;
                for blk in [4096usize, 1, 7].iter().cycle() {
                    if pos >= l.len() {
                        break;
                    }
                    let end = (pos + blk).min(l.len());
                    p(&mut [&mut l[pos..end], &mut r[pos..end]]);
                    pos = end;
                }
            });
            for (i, (&y, &x)) in l.iter().chain(&r).zip(sig.iter().chain(&sig)).enumerate() {
                assert!(y.is_finite(), "{name}: sample {i} is {y}");
                assert!(
                    y.abs() <= bound(x.abs()),
                    "{name}: sample {i}: |{y}| > bound for {x}"
                );
            }
        }
    }

    /// Rough cost of each processor on a stereo 512-frame block (run with `--ignored
    /// --nocapture`); also checks the guard above really catches an allocation.
    #[test]
    #[ignore]
    fn bench_ns_per_frame() {
        use super::{Compressor, Gate, Saturation};
        let mut l = sine(440.0, 0.5, 512);
        let mut r = sine(660.0, 0.5, 512);
        let mut c = Compressor::new(SR);
        c.set(-30.0, 4.0, 6.0, 10.0, 120.0, 3.0);
        c.set_enabled(true);
        let mut g = Gate::new(SR);
        g.set(-50.0, 60.0, 0.5, 50.0, 150.0);
        g.set_enabled(true);
        let mut s = Saturation::new(SR);
        s.set(12.0, 0.5);
        s.set_enabled(true);
        let iters = 20_000;
        let mut time = |name: &str, f: &mut dyn FnMut(&mut [&mut [f32]])| {
            let t0 = std::time::Instant::now();
            for _ in 0..iters {
                f(&mut [&mut l, &mut r]);
            }
            let ns = t0.elapsed().as_nanos() as f64 / (iters * 512) as f64;
            println!("{name}: {ns:.2} ns/frame (stereo)");
        };
        time("gate", &mut |ch| g.process(ch));
        time("compressor", &mut |ch| c.process(ch));
        time("saturation", &mut |ch| s.process(ch));
    }
}
