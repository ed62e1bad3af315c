//! The demo session: synthesizes the stems of `examples/demo/session.yaml` (also bundled in
//! the binary, so `faderbridge run` with no session has something to play).
//!
//! Twelve bars of a song at 100 BPM in A minor (30 s at 48 kHz, 24-bit WAV), eleven stems
//! sharing one chord progression, each peaking between -6 and -12 dBFS like a real recording,
//! some with the flaws a mix engineer fixes (a boxy kick, a ringing snare, uneven bass notes,
//! rumble on the vocal, drum bleed on the toms). Deterministic: fixed seeds.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

const SR: f64 = 48_000.0;
const BPM: f64 = 100.0;
const LEN_S: f64 = 30.0;
/// The progression, one chord per bar (12 bars of 2.4 s = 28.8 s, then the last chord rings).
const PROG: [&str; 12] = [
    "Am", "F", "C", "G", "Am", "F", "C", "G", "Dm", "F", "G", "Am",
];

/// Bass root (MIDI) and a close-voiced triad around middle C for each chord.
fn chord(name: &str) -> (i32, [i32; 3]) {
    match name {
        "Am" => (33, [57, 60, 64]),
        "F" => (29, [57, 60, 65]),
        "C" => (36, [55, 60, 64]),
        "G" => (31, [55, 59, 62]),
        "Dm" => (38, [57, 62, 65]),
        _ => (40, [56, 59, 64]), // E
    }
}

fn hz(midi: f64) -> f64 {
    440.0 * 2f64.powf((midi - 69.0) / 12.0)
}

/// Sample index of a sixteenth note within a bar.
fn at(bar: usize, six: f64) -> usize {
    ((bar as f64 * 16.0 + six) * 60.0 / BPM / 4.0 * SR) as usize
}

fn sixteenths(n: f64) -> f64 {
    n * 60.0 / BPM / 4.0
}

/// xorshift64* noise, one generator per stem.
struct Rng(u64);
impl Rng {
    fn uni(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn bi(&mut self) -> f64 {
        2.0 * self.uni() - 1.0
    }
}

/// RBJ biquad (transposed direct form II).
#[derive(Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}
impl Biquad {
    fn new(kind: char, f: f64, q: f64) -> Self {
        let w = TAU * f / SR;
        let (s, c) = w.sin_cos();
        let al = s / (2.0 * q);
        let b = match kind {
            'l' => [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0],
            'h' => [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0],
            _ => [al, 0.0, -al], // band-pass, 0 dB peak
        };
        let a0 = 1.0 + al;
        Biquad {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [-2.0 * c / a0, (1.0 - al) / a0],
            z: [0.0; 2],
        }
    }
    /// Retune keeping the state (for gliding formants).
    fn retune(&mut self, kind: char, f: f64, q: f64) {
        let z = self.z;
        *self = Biquad::new(kind, f, q);
        self.z = z;
    }
    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// Band-limited sawtooth (PolyBLEP); `ph` in [0, 1), `dt` = f / SR.
fn saw(ph: f64, dt: f64) -> f64 {
    let mut y = 2.0 * ph - 1.0;
    if ph < dt {
        let t = ph / dt;
        y -= t + t - t * t - 1.0;
    } else if ph > 1.0 - dt {
        let t = (ph - 1.0) / dt;
        y -= t * t + t + t + 1.0;
    }
    y
}

/// Attack/release envelope for a note of `len` seconds at time `t`.
fn ar(t: f64, len: f64, attack: f64, release: f64) -> f64 {
    let a = (t / attack).min(1.0);
    let r = if t > len {
        (1.0 - (t - len) / release).max(0.0)
    } else {
        1.0
    };
    a * r
}

type Track = Vec<f64>;

fn track() -> Track {
    vec![0.0; (LEN_S * SR) as usize]
}

/// Add `len_s` seconds of `f(t)` to `tr` from sample `start`.
fn render(tr: &mut Track, start: usize, len_s: f64, mut f: impl FnMut(f64) -> f64) {
    let n = (len_s * SR) as usize;
    for i in 0..n.min(tr.len().saturating_sub(start)) {
        tr[start + i] += f(i as f64 / SR);
    }
}

// ---------------------------------------------------------------- drums

fn kick(rng: &mut Rng) -> Track {
    let mut tr = track();
    for bar in 2..12 {
        let pattern: &[(f64, f64)] = match bar {
            11 => &[(0.0, 1.0)],
            b if b % 2 == 0 => &[(0.0, 1.0), (8.0, 0.9), (10.0, 0.6)],
            _ => &[(0.0, 1.0), (7.0, 0.7), (8.0, 0.9)],
        };
        for &(six, vel) in pattern {
            let mut ph = 0.0;
            let mut box_ph = 0.0;
            render(&mut tr, at(bar, six), 0.5, |t| {
                let f = 47.0 + 120.0 * (-t / 0.03).exp();
                ph += f / SR;
                box_ph += 330.0 / SR;
                let body = (TAU * ph).sin() * (-t / 0.3).exp();
                let click = rng.bi() * (-t / 0.002).exp() * 0.4;
                // The boxy 330 Hz resonance of the shell: an EQ cut target.
                let boxy = (TAU * box_ph).sin() * (-t / 0.07).exp() * 0.22;
                vel * (1.4 * (body + click + boxy)).tanh()
            });
        }
    }
    tr
}

fn snare(rng: &mut Rng) -> Track {
    let mut tr = track();
    for bar in 2..11 {
        let mut hits = vec![(4.0, 1.0), (12.0, 0.95)];
        if bar % 2 == 1 {
            hits.push((15.0, 0.25)); // ghost note
        }
        if bar % 4 == 3 {
            hits.push((14.0, 0.35));
        }
        for (six, vel) in hits {
            let mut bp = Biquad::new('b', 3500.0, 0.6);
            let mut hp = Biquad::new('h', 1200.0, 0.7);
            let v = vel * (0.9 + 0.1 * rng.uni());
            render(&mut tr, at(bar, six), 0.6, |t| {
                let tone =
                    ((TAU * 185.0 * t).sin() + 0.5 * (TAU * 330.0 * t).sin()) * (-t / 0.07).exp();
                let noise = hp.run(bp.run(rng.bi())) * (-t / 0.16).exp() * 2.2;
                // An undamped head ringing at 900 Hz: a notch target.
                let ring = (TAU * 900.0 * t).sin() * (-t / 0.25).exp() * 0.12;
                v * (0.6 * tone + noise + ring)
            });
        }
    }
    tr
}

fn hats(rng: &mut Rng) -> Track {
    let mut tr = track();
    for bar in 2..11 {
        for eighth in 0..8 {
            let open = eighth == 7 && bar % 2 == 1;
            let vel = if eighth % 2 == 1 { 1.0 } else { 0.6 } * (0.85 + 0.15 * rng.uni());
            let decay = if open { 0.28 } else { 0.035 };
            let mut hp = Biquad::new('h', 7000.0, 0.7);
            let mut bp = Biquad::new('b', 10_000.0, 1.0);
            render(&mut tr, at(bar, eighth as f64 * 2.0), decay * 6.0, |t| {
                let x = hp.run(rng.bi());
                vel * (x + 0.5 * bp.run(x)) * (-t / decay).exp()
            });
        }
    }
    tr
}

fn shaker(rng: &mut Rng) -> Track {
    let mut tr = track();
    let accents = [0.5, 0.25, 0.9, 0.3];
    for bar in 4..11 {
        for six in 0..16 {
            let swing = if six % 2 == 1 { 0.18 } else { 0.0 };
            let vel = accents[six % 4] * (0.8 + 0.2 * rng.uni());
            let mut bp = Biquad::new('b', 6500.0, 1.5);
            render(&mut tr, at(bar, six as f64 + swing), 0.12, |t| {
                vel * bp.run(rng.bi()) * (t / 0.008).min(1.0) * (-t / 0.035).exp()
            });
        }
    }
    tr
}

/// Tom fills, recorded with the kick and snare bleeding into the tom mics (a gate's job).
fn toms(rng: &mut Rng, kick: &Track, snare: &Track) -> Track {
    let mut tr = track();
    for bar in [5usize, 9] {
        for (i, f0) in [190.0, 150.0, 150.0, 110.0].into_iter().enumerate() {
            let mut ph = 0.0;
            render(&mut tr, at(bar, 12.0 + i as f64), 0.8, |t| {
                ph += f0 * (1.0 + 0.4 * (-t / 0.04).exp()) / SR;
                ((TAU * ph).sin() + 0.3 * rng.bi() * (-t / 0.01).exp()) * (-t / 0.3).exp()
            });
        }
    }
    for ((t, k), s) in tr.iter_mut().zip(kick).zip(snare) {
        *t += 0.035 * k + 0.05 * s;
    }
    tr
}

// ---------------------------------------------------------------- tonal parts

/// Eighth-note bass with uneven dynamics (a compressor's job).
fn bass(rng: &mut Rng) -> Track {
    let mut tr = track();
    for bar in 2..12 {
        let (root, _) = chord(PROG[bar]);
        let next = chord(PROG[(bar + 1).min(11)]).0;
        let notes = if bar == 11 { 1 } else { 8 };
        for e in 0..notes {
            let midi = match e {
                3 | 6 => root + 12,
                7 if next != root => next + if next > root { -1 } else { 1 },
                _ => root,
            };
            let len = if bar == 11 {
                2.2
            } else {
                sixteenths(2.0) * 0.85
            };
            let vel = [1.0, 0.55, 0.8, 0.45, 0.9, 0.5, 0.75, 0.6][e] * (0.85 + 0.3 * rng.uni());
            let f = hz(midi as f64);
            let (mut ph, mut lp) = (0.0, 0.0);
            render(&mut tr, at(bar, e as f64 * 2.0), len + 0.03, |t| {
                ph = (ph + f / SR) % 1.0;
                let x = 0.7 * saw(ph, f / SR) + 0.6 * (TAU * ph).sin();
                let cut = 250.0 + 2200.0 * vel * (-t / 0.09).exp();
                lp += (1.0 - (-TAU * cut / SR).exp()) * (x - lp);
                vel * lp * ar(t, len, 0.003, 0.03)
            });
        }
    }
    tr
}

/// Detuned-saw pad, stereo (the left and right voices detune differently).
fn pad() -> [Track; 2] {
    let mut out = [track(), track()];
    for (ch, tr) in out.iter_mut().enumerate() {
        let cents: [f64; 3] = if ch == 0 {
            [-11.0, 0.0, 6.0]
        } else {
            [-6.0, 0.0, 11.0]
        };
        for (bar, name) in PROG.iter().enumerate() {
            let len = if bar == 11 { 3.0 } else { sixteenths(16.0) };
            for &n in &chord(name).1 {
                for (k, c) in cents.iter().enumerate() {
                    let f = hz(n as f64 + c / 100.0);
                    let mut ph = (0.37 * k as f64 + 0.21 * ch as f64 + n as f64 * 0.13) % 1.0;
                    let mut lp = Biquad::new('l', 1600.0, 0.7);
                    render(tr, at(bar, 0.0), len + 1.2, |t| {
                        ph = (ph + f / SR) % 1.0;
                        lp.run(saw(ph, f / SR)) * ar(t, len, 0.6, 1.2)
                    });
                }
            }
        }
    }
    out
}

/// FM electric piano: held chords in the intro, off-beat stabs after.
fn keys(rng: &mut Rng) -> Track {
    let mut tr = track();
    let mut note = |tr: &mut Track, start: usize, midi: i32, len: f64, vel: f64| {
        let f = hz(midi as f64);
        let detune = 1.0 + 0.0008 * rng.bi();
        render(tr, start, len + 0.3, |t| {
            let index = 2.2 * vel * (-t / 0.25).exp() + 0.3;
            let tine = 0.4 * vel * (TAU * 14.0 * f * t).sin() * (-t / 0.012).exp();
            let m = (TAU * f * detune * t).sin() * index + tine;
            vel * (TAU * f * t + m).sin() * (-t / 1.2).exp() * ar(t, len, 0.002, 0.3)
        });
    };
    for (bar, name) in PROG.iter().enumerate() {
        let (_, triad) = chord(name);
        if bar < 2 || bar == 11 {
            for n in triad {
                note(&mut tr, at(bar, 0.0), n, 2.2, 0.8);
            }
            continue;
        }
        for beat in 0..4 {
            for n in triad {
                note(&mut tr, at(bar, beat as f64 * 4.0 + 2.0), n + 12, 0.18, 0.6);
            }
        }
    }
    tr
}

/// Karplus-Strong plucked guitar arpeggios, tuned with a first-order allpass.
fn guitar(rng: &mut Rng) -> Track {
    let mut tr = track();
    let order = [0usize, 1, 2, 3, 2, 1, 3, 2];
    for (bar, name) in PROG.iter().enumerate().skip(4) {
        let (_, triad) = chord(name);
        let tones = [triad[0] - 12, triad[1] - 12, triad[2] - 12, triad[0]];
        let count = if bar == 11 { 1 } else { 8 };
        for (e, &o) in order.iter().enumerate().take(count) {
            let period = SR / hz(tones[o] as f64);
            let n = (period - 0.6).floor() as usize;
            let d = period - 0.5 - n as f64;
            let c = (1.0 - d) / (1.0 + d);
            let mut line: Vec<f64> = (0..n).map(|_| rng.bi()).collect();
            for i in 1..n {
                line[i] = 0.5 * (line[i] + line[i - 1]); // a softer pick
            }
            let mean = line.iter().sum::<f64>() / n as f64;
            line.iter_mut().for_each(|x| *x -= mean); // no DC left ringing in the loop
            let (mut i, mut prev, mut ap_x, mut ap_y) = (0, 0.0, 0.0, 0.0);
            let vel = if e % 2 == 0 { 1.0 } else { 0.75 };
            render(&mut tr, at(bar, e as f64 * 2.0), 1.5, |_| {
                let x = line[i];
                let avg = 0.996 * 0.5 * (x + prev);
                prev = x;
                let y = c * avg + ap_x - c * ap_y;
                ap_x = avg;
                ap_y = y;
                line[i] = y;
                i = (i + 1) % n;
                vel * x
            });
        }
    }
    tr
}

/// (bar, start sixteenth, length in sixteenths, MIDI note)
#[rustfmt::skip]
const LEAD: [(usize, f64, f64, i32); 16] = [
    (8, 0.0, 4.0, 69), (8, 4.0, 4.0, 74), (8, 8.0, 8.0, 77),
    (9, 0.0, 4.0, 76), (9, 4.0, 4.0, 74), (9, 8.0, 6.0, 72), (9, 14.0, 2.0, 74),
    (10, 0.0, 6.0, 71), (10, 6.0, 2.0, 72), (10, 8.0, 4.0, 74), (10, 12.0, 4.0, 76),
    (11, 0.0, 16.0, 76),
    (6, 8.0, 4.0, 72), (6, 12.0, 4.0, 76), (7, 0.0, 8.0, 74), (7, 8.0, 8.0, 71),
];

/// Saw/square lead with delayed vibrato through a resonant low-pass.
fn lead() -> Track {
    let mut tr = track();
    for &(bar, six, len, midi) in &LEAD {
        let len = sixteenths(len) * 0.95;
        let (mut ph, mut lp) = (0.0, Biquad::new('l', 2600.0, 1.3));
        render(&mut tr, at(bar, six), len + 0.08, |t| {
            let vib = 0.2 * ((t - 0.2).max(0.0) * 4.0).min(1.0) * (TAU * 5.5 * t).sin();
            let dt = hz(midi as f64 + vib) / SR;
            ph = (ph + dt) % 1.0;
            let sq = saw(ph, dt) - saw((ph + 0.5) % 1.0, dt);
            lp.run(0.6 * saw(ph, dt) + 0.4 * sq) * ar(t, len, 0.01, 0.07)
        });
    }
    tr
}

/// (bar, start sixteenth, length in sixteenths, MIDI note, vowel)
#[rustfmt::skip]
const VOCAL: [(usize, f64, f64, i32, char); 10] = [
    (2, 0.0, 6.0, 64, 'a'), (2, 6.0, 10.0, 62, 'o'),
    (3, 0.0, 16.0, 60, 'a'),
    (4, 0.0, 6.0, 64, 'e'), (4, 6.0, 4.0, 67, 'a'), (4, 10.0, 6.0, 64, 'o'),
    (5, 0.0, 16.0, 65, 'a'),
    (6, 0.0, 8.0, 64, 'u'), (6, 8.0, 8.0, 67, 'a'),
    (7, 0.0, 16.0, 62, 'o'),
];

fn formants(v: char) -> [f64; 3] {
    match v {
        'a' => [800.0, 1150.0, 2900.0],
        'o' => [450.0, 800.0, 2830.0],
        'e' => [300.0, 2250.0, 3000.0],
        _ => [325.0, 700.0, 2530.0], // u
    }
}

/// A formant-synth "voice" (glottal saw plus breath through three vowel resonators),
/// recorded with low-frequency rumble on the mic (a high-pass filter's job).
fn vocal(rng: &mut Rng) -> Track {
    let mut tr = track();
    for &(bar, six, len, midi, vowel) in &VOCAL {
        let len = sixteenths(len) * 0.92;
        let target = formants(vowel);
        let mut cur = formants('u');
        let bw = [80.0, 90.0, 120.0];
        let mut res: Vec<Biquad> = (0..3)
            .map(|k| Biquad::new('b', cur[k], cur[k] / bw[k]))
            .collect();
        let mut ph = 0.0;
        render(&mut tr, at(bar, six), len + 0.2, |t| {
            let vib = 0.3 * ((t - 0.25).max(0.0) * 3.0).min(1.0) * (TAU * 5.0 * t).sin();
            let dt = hz(midi as f64 + vib) / SR;
            ph = (ph + dt) % 1.0;
            let src = -saw(ph, dt) + 0.08 * rng.bi();
            let mut y = 0.0;
            for k in 0..3 {
                cur[k] += (target[k] - cur[k]) * 0.002;
                if ((t * SR) as usize).is_multiple_of(32) {
                    res[k].retune('b', cur[k], cur[k] / bw[k]);
                }
                y += res[k].run(src) * [1.0, 0.6, 0.3][k];
            }
            y * ar(t, len, 0.08, 0.18)
        });
    }
    let peak = tr.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut lp = Biquad::new('l', 35.0, 0.7);
    for x in tr.iter_mut() {
        *x += peak * 4.0 * lp.run(rng.bi()); // rumble about -25 dB under the voice
    }
    tr
}

// ---------------------------------------------------------------- output

/// Scale to the given sample peak and write a 24-bit WAV.
fn write(dir: &Path, name: &str, chans: &[Track], peak_db: f64) -> Result<(), String> {
    let peak = chans
        .iter()
        .flat_map(|c| c.iter())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    let gain = 10f64.powf(peak_db / 20.0) / peak.max(1e-12);
    // Short fades so no stem starts or ends with a click.
    let fade = (0.005 * SR) as usize;
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: SR as u32,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let path = dir.join(format!("{name}.wav"));
    let err = |e: hound::Error| format!("{}: {e}", path.display());
    let mut w = hound::WavWriter::create(&path, spec).map_err(err)?;
    let n = chans[0].len();
    for i in 0..n {
        let edge = (i.min(n - 1 - i) as f64 / fade as f64).min(1.0);
        for c in chans {
            let v = (c[i] * gain * edge * 8_388_608.0).round();
            w.write_sample(v.clamp(-8_388_608.0, 8_388_607.0) as i32)
                .map_err(err)?;
        }
    }
    w.finalize().map_err(err)?;
    Ok(())
}

/// The demo session file, as shipped in `examples/demo/session.yaml`.
pub const SESSION_YAML: &str = include_str!("../../examples/demo/session.yaml");

/// Names of the stems [`generate`] writes (`NAME.wav`).
pub const STEMS: [&str; 11] = [
    "kick", "snare", "toms", "hats", "shaker", "bass", "pad", "keys", "guitar", "lead", "vocal",
];

/// Write every demo stem into `dir` (created if missing). Returns each stem's name and peak.
///
/// # Errors
/// The folder or a file can't be written.
pub fn generate(dir: &Path) -> Result<Vec<(&'static str, f64)>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let rng = |seed: u64| Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let k = kick(&mut rng(1));
    let s = snare(&mut rng(2));
    let t = toms(&mut rng(3), &k, &s);
    let [pl, pr] = pad();
    let stems: Vec<(&'static str, Vec<Track>, f64)> = vec![
        ("kick", vec![k], -6.0),
        ("snare", vec![s], -7.0),
        ("toms", vec![t], -9.0),
        ("hats", vec![hats(&mut rng(4))], -12.0),
        ("shaker", vec![shaker(&mut rng(5))], -12.0),
        ("bass", vec![bass(&mut rng(6))], -7.0),
        ("pad", vec![pl, pr], -10.0),
        ("keys", vec![keys(&mut rng(7))], -9.0),
        ("guitar", vec![guitar(&mut rng(8))], -10.0),
        ("lead", vec![lead()], -9.0),
        ("vocal", vec![vocal(&mut rng(9))], -8.0),
    ];
    let mut out = Vec::new();
    for (name, chans, peak) in &stems {
        write(dir, name, chans, *peak)?;
        out.push((*name, *peak));
    }
    Ok(out)
}

/// Write the demo session and its stems into `dir` unless they are there already; returns the
/// session file's path.
///
/// # Errors
/// The folder or a file can't be written.
pub fn ensure(dir: &Path) -> Result<PathBuf, String> {
    let session = dir.join("session.yaml");
    let stems = dir.join("stems");
    if !STEMS
        .iter()
        .all(|s| stems.join(format!("{s}.wav")).exists())
    {
        generate(&stems)?;
    }
    if std::fs::read_to_string(&session).ok().as_deref() != Some(SESSION_YAML) {
        std::fs::write(&session, SESSION_YAML)
            .map_err(|e| format!("cannot write {}: {e}", session.display()))?;
    }
    Ok(session)
}
