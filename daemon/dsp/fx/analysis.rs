//! Test-only measurements for the effects: Schroeder energy decay and T20 RT60, normalized
//! echo density, correlation, an octave band-pass, a click index and a small noise source.
//! Written from the textbook definitions, independent of the code under test.

/// RT60 from the T20 method: Schroeder backward integration of `energy` (squared samples),
/// least-squares line through the energy decay curve between -5 and -25 dB, times 3.
pub(crate) fn t20_rt60(energy: &[f64], sr: f32) -> f64 {
    let mut edc = vec![0.0f64; energy.len()];
    let mut acc = 0.0;
    for i in (0..energy.len()).rev() {
        acc += energy[i];
        edc[i] = acc;
    }
    let total = edc[0];
    let db: Vec<f64> = edc.iter().map(|e| 10.0 * (e / total).log10()).collect();
    let start = db
        .iter()
        .position(|&d| d <= -5.0)
        .expect("never reached -5 dB");
    let end = db
        .iter()
        .position(|&d| d <= -25.0)
        .expect("never reached -25 dB");
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    let n = (end - start + 1) as f64;
    for (i, d) in db.iter().enumerate().take(end + 1).skip(start) {
        let t = i as f64 / sr as f64;
        sx += t;
        sy += d;
        sxx += t * t;
        sxy += t * d;
    }
    let slope = (n * sxy - sx * sy) / (n * sxx - sx * sx); // dB per second
    -60.0 / slope
}

/// Mean normalized echo density (fraction of samples above the window's standard deviation,
/// divided by that fraction for Gaussian noise, erfc(1/sqrt 2) = 0.3173) over 20 ms windows
/// (hop 1 ms) from `t0` to `t1` seconds into `h`. Gaussian-like diffuse tails give ~1, a
/// sparse comb of isolated echoes gives ~0.
pub(crate) fn normalized_echo_density(h: &[f32], sr: f32, t0: f32, t1: f32) -> f64 {
    let win = (0.02 * sr) as usize;
    let hop = (0.001 * sr) as usize;
    let gauss = 0.317_310_507_862_914_f64;
    let mut sum = 0.0;
    let mut count = 0;
    let mut start = (t0 * sr) as usize;
    while start + win <= ((t1 * sr) as usize).min(h.len()) {
        let w = &h[start..start + win];
        let sd = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / win as f64).sqrt();
        let above = w.iter().filter(|v| (v.abs() as f64) > sd).count();
        sum += above as f64 / win as f64 / gauss;
        count += 1;
        start += hop;
    }
    sum / count as f64
}

/// Pearson correlation coefficient of two equally long signals.
pub(crate) fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64 - ma, *y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

/// Two cascaded RBJ-cookbook band-passes (0 dB peak, Q = sqrt 2, about one octave) at `fc`.
pub(crate) fn bandpass(x: &[f32], sr: f32, fc: f32) -> Vec<f32> {
    let w0 = 2.0 * std::f64::consts::PI * fc as f64 / sr as f64;
    let alpha = w0.sin() / (2.0 * std::f64::consts::SQRT_2);
    let a0 = 1.0 + alpha;
    let (b0, b2) = (alpha / a0, -alpha / a0);
    let (a1, a2) = (-2.0 * w0.cos() / a0, (1.0 - alpha) / a0);
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for _ in 0..2 {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in y.iter_mut() {
            let out = b0 * *v + b2 * x2 - a1 * y1 - a2 * y2;
            x2 = x1;
            x1 = *v;
            y2 = y1;
            y1 = out;
            *v = out;
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Largest `|x[n+1] - 2 x[n] + x[n-1]|` divided by the RMS of the 20 ms around `n`: about
/// `w^2 sqrt 2` for a sine of `w` rad/sample, about 1 or more at a step or a click.
pub(crate) fn click_index(x: &[f32]) -> f32 {
    let half = 480;
    let mut prefix = vec![0.0f64; x.len() + 1];
    for (i, v) in x.iter().enumerate() {
        prefix[i + 1] = prefix[i] + (*v as f64).powi(2);
    }
    let mut worst = 0.0f64;
    for n in half..x.len().saturating_sub(half) {
        let d2 = (x[n + 1] - 2.0 * x[n] + x[n - 1]).abs() as f64;
        let rms = ((prefix[n + half] - prefix[n - half]) / (2 * half) as f64).sqrt();
        if rms > 1e-9 {
            worst = worst.max(d2 / rms);
        }
    }
    worst as f32
}

/// xorshift64* noise source.
pub(crate) struct Rng(pub u64);

impl Rng {
    /// Uniform in [-1, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}
