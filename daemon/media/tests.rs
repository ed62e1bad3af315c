//! Tests of the media module: WAV round trips, dither statistics, resampling accuracy, FLAC
//! decoding (against a FLAC file written here bit by bit) and error paths.

use super::*;
use std::f64::consts::PI;

/// A fresh empty directory for one test.
fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Deterministic uniform noise in [-1, 1) (independent of the writer's RNG).
fn lcg_noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn write_wav(path: &Path, rate: u32, chans: &[Vec<f32>], fmt: WavFormat) {
    let mut w = AtomicWavWriter::create(path, rate, chans.len() as u16, fmt).expect("create");
    // Write in uneven blocks to exercise appending.
    let len = chans[0].len();
    let mut pos = 0;
    let mut step = 1000;
    while pos < len {
        let end = (pos + step).min(len);
        let slices: Vec<&[f32]> = chans.iter().map(|c| &c[pos..end]).collect();
        w.write_planar(&slices).expect("write");
        pos = end;
        step = step * 3 / 2 + 7;
    }
    w.finish().expect("finish");
}

/// A WAV with an arbitrary header, built by hand (for formats the writer does not produce).
fn raw_wav(path: &Path, rate: u32, channels: u16, bits: u16, interleaved: &[i32]) {
    let bps = (bits / 8) as u32;
    let data_len = interleaved.len() as u32 * bps;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * bps * channels as u32).to_le_bytes());
    b.extend_from_slice(&(bps as u16 * channels).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for &s in interleaved {
        b.extend_from_slice(&s.to_le_bytes()[..bps as usize]);
    }
    std::fs::write(path, b).expect("write raw wav");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn f32_round_trip_is_bit_exact() {
    let dir = tmp_dir("f32");
    let path = dir.join("x.wav");
    // Includes values beyond full scale, which float WAV must keep.
    let l: Vec<f32> = lcg_noise(12_345, 1).iter().map(|x| x * 1.5).collect();
    let r = lcg_noise(12_345, 2);
    write_wav(&path, 48_000, &[l.clone(), r.clone()], WavFormat::F32);
    let stem = read_stem(&path, 48_000).expect("read");
    assert_eq!(stem.source_rate, 48_000);
    assert_eq!(stem.channels.len(), 2);
    assert_eq!(stem.channels[0].len(), l.len());
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same(&stem.channels[0], &l));
    assert!(same(&stem.channels[1], &r));
    assert_eq!(files_in(&dir), vec!["x.wav".to_string()]);
}

fn int_round_trip(fmt: WavFormat, bits: i32) -> f64 {
    let dir = tmp_dir(&format!("{fmt:?}"));
    let path = dir.join("x.wav");
    // Odd length and mono: the 24-bit data chunk has odd size and needs the pad byte.
    let x: Vec<f32> = lcg_noise(9_999, 3).iter().map(|v| v * 0.9).collect();
    write_wav(&path, 44_100, std::slice::from_ref(&x), fmt);
    let stem = read_stem(&path, 44_100).expect("read");
    assert_eq!(stem.channels.len(), 1);
    assert_eq!(stem.frames(), x.len());
    let lsb = 2f64.powi(1 - bits);
    let max_err = x
        .iter()
        .zip(&stem.channels[0])
        .map(|(a, b)| ((*a as f64 - *b as f64) / lsb).abs())
        .fold(0.0, f64::max);
    assert!(max_err <= 1.5, "{fmt:?}: max error {max_err} LSB");
    max_err
}

#[test]
fn s24_round_trip_within_1_5_lsb() {
    let e = int_round_trip(WavFormat::S24, 24);
    // Dither makes errors above 0.5 LSB happen (it would otherwise be plain rounding).
    assert!(e > 0.5, "max error {e} LSB: no dither?");
}

#[test]
fn s16_round_trip_within_1_5_lsb() {
    let e = int_round_trip(WavFormat::S16, 16);
    assert!(e > 0.5, "max error {e} LSB: no dither?");
}

#[test]
fn int_formats_clip_instead_of_wrapping() {
    let dir = tmp_dir("clip");
    let path = dir.join("x.wav");
    let x = vec![2.0f32, -2.0, 1.0, -1.0];
    write_wav(&path, 48_000, &[x], WavFormat::S16);
    let got = read_stem(&path, 48_000).expect("read").channels.remove(0);
    assert_eq!(got[0], 32_767.0 / 32_768.0);
    assert_eq!(got[1], -1.0);
    assert_eq!(got[2], 32_767.0 / 32_768.0);
    assert_eq!(got[3], -1.0);
}

#[test]
fn tpdf_dither_error_is_lsb_over_2_rms_without_dc() {
    // Silence plus a sine of 0.3 LSB: far below one step, so without dither it would vanish.
    // Total error of ±1 LSB TPDF dither + rounding: variance = 1/12 + 1/6 = 1/4 LSB², so the
    // RMS is 1/2 LSB, independent of the signal.
    let dir = tmp_dir("dither");
    let path = dir.join("x.wav");
    let lsb = 1.0 / 32_768.0;
    let n = 200_000;
    let x: Vec<f32> = (0..n)
        .map(|i| {
            if i < n / 2 {
                0.0
            } else {
                (0.3 * lsb * (2.0 * PI * 997.0 * i as f64 / 48_000.0).sin()) as f32
            }
        })
        .collect();
    write_wav(&path, 48_000, std::slice::from_ref(&x), WavFormat::S16);
    let y = read_stem(&path, 48_000).expect("read").channels.remove(0);
    for (name, range) in [("silence", 0..n / 2), ("tiny sine", n / 2..n)] {
        let err: Vec<f64> = range.map(|i| (y[i] as f64 - x[i] as f64) / lsb).collect();
        let mean = err.iter().sum::<f64>() / err.len() as f64;
        let rms = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
        eprintln!("{name}: error rms {rms:.4} LSB, mean {mean:+.5} LSB");
        assert!((rms - 0.5).abs() < 0.05, "{name}: rms {rms} LSB");
        assert!(mean.abs() < 0.01, "{name}: DC {mean} LSB");
    }
    // The tiny sine survives: correlate the output with it (dither decorrelates the error).
    let s = (n / 2..n).map(|i| y[i] as f64 * x[i] as f64).sum::<f64>()
        / (n / 2..n).map(|i| (x[i] as f64).powi(2)).sum::<f64>();
    assert!((s - 1.0).abs() < 0.05, "sine gain through dither {s}");
}

/// Times (fractional sample index) where the signal crosses zero upwards, found by linear
/// interpolation, within `range`.
fn rising_crossings(x: &[f32], range: std::ops::Range<usize>) -> Vec<f64> {
    let mut t = Vec::new();
    for i in range.start..range.end - 1 {
        let (a, b) = (x[i] as f64, x[i + 1] as f64);
        if a < 0.0 && b >= 0.0 {
            t.push(i as f64 + a / (a - b));
        }
    }
    t
}

/// Amplitude of the `freq` component over `range` (a whole number of cycles).
fn tone_amplitude(x: &[f32], rate: f64, freq: f64, range: std::ops::Range<usize>) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    let n = range.len() as f64;
    for i in range {
        let ph = 2.0 * PI * freq * i as f64 / rate;
        re += x[i] as f64 * ph.cos();
        im += x[i] as f64 * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / n
}

#[test]
fn resampling_44k1_to_48k_keeps_tone_length_and_timing() {
    let dir = tmp_dir("resample");
    let path = dir.join("x.wav");
    let n_in = 44_100 * 2 + 1;
    let amp = 0.5;
    let sine: Vec<f32> = (0..n_in)
        .map(|i| (amp * (2.0 * PI * 1000.0 * i as f64 / 44_100.0).sin()) as f32)
        .collect();
    // Right channel: silence with two clicks.
    let clicks = [10_000usize, 60_001];
    let mut click = vec![0.0f32; n_in];
    for &c in &clicks {
        click[c] = 0.8;
    }
    write_wav(&path, 44_100, &[sine, click], WavFormat::F32);
    let stem = read_stem(&path, 48_000).expect("read");
    assert_eq!(stem.source_rate, 44_100);
    // round(88201 * 48000 / 44100) = round(96001.088) = 96001
    assert_eq!(stem.frames(), 96_001);
    let (l, r) = (&stem.channels[0], &stem.channels[1]);

    // Amplitude within 0.1 dB over whole cycles (0.25 s .. 1.75 s).
    let a = tone_amplitude(l, 48_000.0, 1000.0, 12_000..84_000);
    let db = 20.0 * (a / amp).log10();
    eprintln!("1 kHz amplitude after resampling: {db:+.5} dB");
    assert!(db.abs() < 0.1, "amplitude off by {db} dB");

    // Frequency from the first and last upward zero crossing in the interior.
    let t = rising_crossings(l, 1_000..95_000);
    let f = (t.len() - 1) as f64 * 48_000.0 / (t[t.len() - 1] - t[0]);
    eprintln!(
        "frequency after resampling: {f:.6} Hz ({} cycles)",
        t.len() - 1
    );
    assert!((f - 1000.0).abs() < 0.001, "frequency {f}");
    // Phase: a sine starting at phase 0 at t=0 crosses zero upwards at k ms exactly, i.e. at
    // output sample 48k. Any residual resampler delay shows up here.
    let offset = t
        .iter()
        .map(|&ti| ti - 48.0 * (ti / 48.0).round())
        .sum::<f64>()
        / t.len() as f64;
    eprintln!("sine time offset: {offset:+.4} samples");
    assert!(offset.abs() < 0.02, "time offset {offset} samples");

    // Clicks land at n * 48000 / 44100 (±1 sample); sub-sample peak by parabolic fit.
    for &c in &clicks {
        let expect = c as f64 * 48_000.0 / 44_100.0;
        let lo = expect as usize - 50;
        let (k, _) = r[lo..lo + 100]
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        let k = lo + k;
        let (ym, y0, yp) = (r[k - 1] as f64, r[k] as f64, r[k + 1] as f64);
        let peak = k as f64 + 0.5 * (ym - yp) / (ym - 2.0 * y0 + yp);
        eprintln!("click at {c}: peak at {peak:.3}, expected {expect:.3}");
        // (±1 is the requirement; the parabolic peak estimate itself is good to ~0.1.)
        assert!(
            (peak - expect).abs() <= 0.25,
            "click {c} at {peak}, expected {expect}"
        );
    }
}

#[test]
fn other_ratios_are_aligned_and_keep_level() {
    // A 0.5-amplitude sine at 1/50 of the lower rate: after resampling, upward zero crossings
    // must sit on the ideal grid (time offset ~0) and the level must be unchanged.
    for (from, to) in [
        (48_000u32, 44_100u32),
        (96_000, 48_000),
        (22_050, 48_000),
        (32_000, 48_000),
    ] {
        let dir = tmp_dir(&format!("ratio{from}-{to}"));
        let path = dir.join("x.wav");
        let f = from.min(to) as f64 / 50.0;
        let n_in = from as usize;
        let x: Vec<f32> = (0..n_in)
            .map(|i| (0.5 * (2.0 * PI * f * i as f64 / from as f64).sin()) as f32)
            .collect();
        write_wav(&path, from, &[x], WavFormat::F32);
        let y = read_stem(&path, to).expect("read").channels.remove(0);
        assert_eq!(y.len(), to as usize, "{from}->{to} length");
        let per = to as f64 / f;
        let t = rising_crossings(&y, y.len() / 10..y.len() * 9 / 10);
        let offset = t
            .iter()
            .map(|&ti| ti - per * (ti / per).round())
            .sum::<f64>()
            / t.len() as f64;
        let cycles = (0.6 * f).floor();
        let start = (0.2 * to as f64) as usize;
        let a = tone_amplitude(
            &y,
            to as f64,
            f,
            start..start + (cycles * per).round() as usize,
        );
        let db = 20.0 * (a / 0.5).log10();
        eprintln!("{from}->{to}: offset {offset:+.4} samples, level {db:+.5} dB");
        assert!(offset.abs() < 0.02, "{from}->{to}: offset {offset}");
        assert!(db.abs() < 0.1, "{from}->{to}: level {db} dB");
    }
}

#[test]
fn downsampling_length_is_rounded() {
    let dir = tmp_dir("down");
    let path = dir.join("x.wav");
    let x = lcg_noise(10_007, 9);
    write_wav(&path, 96_000, &[x], WavFormat::F32);
    let stem = read_stem(&path, 44_100).expect("read");
    // 10007 * 44100 / 96000 = 4597.0656 -> 4597
    assert_eq!(stem.frames(), 4_597);
    assert_eq!(stem.source_rate, 96_000);
}

#[test]
fn reads_hound_24_bit_extensible_wav() {
    // hound writes 24-bit files as WAVE_FORMAT_EXTENSIBLE (the demo stems are made this way).
    let dir = tmp_dir("hound");
    let path = dir.join("x.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create");
    let vals = [0i32, 1, -1, 8_388_607, -8_388_608, 4_194_304];
    for v in vals {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
    let stem = read_stem(&path, 48_000).expect("read");
    assert_eq!(stem.channels.len(), 2);
    let got: Vec<f32> = (0..3)
        .flat_map(|i| [stem.channels[0][i], stem.channels[1][i]])
        .collect();
    for (g, v) in got.iter().zip(vals) {
        assert_eq!(*g, v as f32 / 8_388_608.0);
    }
}

#[test]
fn reads_32_bit_integer_wav() {
    let dir = tmp_dir("s32");
    let path = dir.join("x.wav");
    let vals = [0i32, 1 << 30, i32::MIN, i32::MAX, 12_345_678, -7];
    raw_wav(&path, 48_000, 1, 32, &vals);
    let got = read_stem(&path, 48_000).expect("read").channels.remove(0);
    assert_eq!(got.len(), vals.len());
    for (g, v) in got.iter().zip(vals) {
        let expect = v as f64 / 2f64.powi(31);
        assert!((*g as f64 - expect).abs() < 1e-7, "{g} vs {expect}");
    }
}

// ---- FLAC, written by hand: STREAMINFO + frames of VERBATIM subframes ----

struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn new() -> Self {
        BitWriter {
            bytes: Vec::new(),
            acc: 0,
            n: 0,
        }
    }
    /// Append the low `bits` bits of `v`, most significant first.
    fn put(&mut self, v: u64, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((v >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    fn align(&mut self) {
        while self.n != 0 {
            self.put(0, 1);
        }
    }
}

/// CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial 0, MSB first (FLAC frame header).
fn crc8(data: &[u8]) -> u8 {
    let mut c = 0u8;
    for &b in data {
        c ^= b;
        for _ in 0..8 {
            c = if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            };
        }
    }
    c
}

/// CRC-16, polynomial x^16 + x^15 + x^2 + 1 (0x8005), initial 0, MSB first (FLAC frame).
fn crc16(data: &[u8]) -> u16 {
    let mut c = 0u16;
    for &b in data {
        c ^= (b as u16) << 8;
        for _ in 0..8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x8005
            } else {
                c << 1
            };
        }
    }
    c
}

/// A 16-bit FLAC file with independent channels, VERBATIM subframes, fixed blocksize.
fn write_flac(path: &Path, rate: u32, chans: &[Vec<i16>], block: usize) {
    let n = chans[0].len();
    let mut out = b"fLaC".to_vec();
    // STREAMINFO, marked as the last metadata block.
    let mut si = BitWriter::new();
    si.put(block as u64, 16); // min block size
    si.put(block as u64, 16); // max block size
    si.put(0, 24); // min frame size: unknown
    si.put(0, 24); // max frame size: unknown
    si.put(rate as u64, 20);
    si.put(chans.len() as u64 - 1, 3);
    si.put(15, 5); // bits per sample - 1
    si.put(n as u64, 36);
    si.put(0, 64); // MD5 unknown (all zero)
    si.put(0, 64);
    out.push(0x80); // last block, type 0
    out.extend_from_slice(&(si.bytes.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&si.bytes);
    for (frame_no, start) in (0..n).step_by(block).enumerate() {
        assert!(frame_no < 128, "single-byte UTF-8 frame numbers only");
        let len = block.min(n - start);
        let mut f = BitWriter::new();
        f.put(0b11_1111_1111_1110, 14); // sync
        f.put(0, 1); // reserved
        f.put(0, 1); // fixed blocksize
        f.put(0b0111, 4); // block size: 16-bit (len - 1) at end of header
        f.put(0b0000, 4); // sample rate from STREAMINFO
        f.put(chans.len() as u64 - 1, 4); // independent channels
        f.put(0b100, 3); // 16 bits per sample
        f.put(0, 1); // reserved
        f.put(frame_no as u64, 8); // frame number, UTF-8 coded (one byte below 128)
        f.put(len as u64 - 1, 16);
        let crc = crc8(&f.bytes);
        f.put(crc as u64, 8);
        for ch in chans {
            f.put(0, 1); // padding
            f.put(0b000001, 6); // VERBATIM
            f.put(0, 1); // no wasted bits
            for &s in &ch[start..start + len] {
                f.put(s as u16 as u64, 16);
            }
        }
        f.align();
        let crc = crc16(&f.bytes);
        f.put(crc as u64, 16);
        out.extend_from_slice(&f.bytes);
    }
    std::fs::write(path, out).expect("write flac");
}

#[test]
fn crc_helpers_match_published_check_values() {
    // Check values of the catalogued CRC-8/SMBUS and CRC-16/UMTS (a.k.a. BUYPASS) on
    // "123456789", which are the FLAC header and frame CRCs.
    assert_eq!(crc8(b"123456789"), 0xF4);
    assert_eq!(crc16(b"123456789"), 0xFEE8);
}

#[test]
fn flac_reads_back_equal_to_its_pcm() {
    let dir = tmp_dir("flac");
    let path = dir.join("x.flac");
    let n = 10_000; // 2 full frames of 4096 and a short last one
    let to_i16 = |v: &[f32]| v.iter().map(|x| (x * 30_000.0) as i16).collect::<Vec<_>>();
    let l = to_i16(&lcg_noise(n, 4));
    let mut r = to_i16(&lcg_noise(n, 5));
    r[0] = i16::MIN;
    r[1] = i16::MAX;
    write_flac(&path, 44_100, &[l.clone(), r.clone()], 4096);
    let stem = read_stem(&path, 44_100).expect("read flac");
    assert_eq!(stem.source_rate, 44_100);
    assert_eq!(stem.channels.len(), 2);
    assert_eq!(stem.frames(), n);
    for (got, want) in stem.channels.iter().zip([&l, &r]) {
        for (g, w) in got.iter().zip(want.iter()) {
            assert_eq!(*g, *w as f32 / 32_768.0);
        }
    }
    // A corrupted frame CRC is detected, not silently decoded.
    let mut bytes = std::fs::read(&path).expect("read back");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let bad = dir.join("bad.flac");
    std::fs::write(&bad, bytes).expect("write");
    let err = read_stem(&bad, 44_100).unwrap_err();
    assert!(matches!(err, MediaError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("of 10000 frames"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = read_stem(Path::new("stems/definitely-missing.wav"), 48_000).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MediaError::Open { .. }), "{err:?}");
    assert!(
        msg.starts_with("cannot open stems/definitely-missing.wav: "),
        "{msg}"
    );
}

#[test]
fn truncated_wav_is_an_error() {
    let dir = tmp_dir("trunc");
    let path = dir.join("x.wav");
    write_wav(&path, 48_000, &[vec![0.1; 1000]], WavFormat::S16);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 600]).expect("truncate");
    let err = read_stem(&path, 48_000).unwrap_err();
    assert!(
        err.to_string().contains("decoded only 700 of 1000 frames"),
        "{err}"
    );
}

#[test]
fn three_channel_file_is_rejected() {
    let dir = tmp_dir("3ch");
    let path = dir.join("x.wav");
    raw_wav(&path, 48_000, 3, 16, &[0, 1, 2, 3, 4, 5]);
    let err = read_stem(&path, 48_000).unwrap_err();
    assert!(
        matches!(err, MediaError::TooManyChannels { channels: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("3 channels"), "{err}");
}

#[test]
fn garbage_file_is_unsupported() {
    let dir = tmp_dir("garbage");
    let path = dir.join("x.wav");
    std::fs::write(&path, b"this is not audio at all, just text").expect("write");
    let err = read_stem(&path, 48_000).unwrap_err();
    assert!(
        matches!(err, MediaError::UnsupportedFormat { .. }),
        "{err:?}"
    );
}

#[test]
fn dropped_writer_leaves_no_file() {
    let dir = tmp_dir("drop");
    let path = dir.join("out.wav");
    {
        let mut w = AtomicWavWriter::create(&path, 48_000, 2, WavFormat::S24).expect("create");
        w.write_planar(&[&[0.1; 100], &[0.2; 100]]).expect("write");
        // While writing, only the hidden temp file exists.
        let names = files_in(&dir);
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(".out.wav.tmp-"), "{names:?}");
    }
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
}

#[test]
fn dropped_writer_keeps_the_previous_file() {
    let dir = tmp_dir("keep");
    let path = dir.join("out.wav");
    write_wav(&path, 48_000, &[vec![0.25; 10]], WavFormat::F32);
    {
        let mut w = AtomicWavWriter::create(&path, 48_000, 1, WavFormat::F32).expect("create");
        w.write_planar(&[&[0.5; 100]]).expect("write");
    }
    let stem = read_stem(&path, 48_000).expect("read");
    assert_eq!(stem.channels[0], vec![0.25; 10]);
    assert_eq!(files_in(&dir), vec!["out.wav".to_string()]);
}

#[test]
fn writer_rejects_wrong_channel_count() {
    let dir = tmp_dir("wrongch");
    let path = dir.join("out.wav");
    let mut w = AtomicWavWriter::create(&path, 48_000, 2, WavFormat::S16).expect("create");
    let err = w.write_planar(&[&[0.0; 4]]).unwrap_err();
    assert!(err.to_string().contains("got 1 channels"), "{err}");
    let err = w.write_planar(&[&[0.0; 4], &[0.0; 3]]).unwrap_err();
    assert!(matches!(err, MediaError::InvalidWrite { .. }), "{err:?}");
}

#[test]
fn wav_format_parses() {
    assert_eq!("f32".parse::<WavFormat>().ok(), Some(WavFormat::F32));
    assert_eq!("s24".parse::<WavFormat>().ok(), Some(WavFormat::S24));
    assert_eq!("s16".parse::<WavFormat>().ok(), Some(WavFormat::S16));
    let err = "s32".parse::<WavFormat>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown WAV format \"s32\": expected f32, s24 or s16"
    );
}

#[test]
fn written_header_is_standard() {
    // Byte-level check of the 16-bit header against the canonical 44-byte PCM layout.
    let dir = tmp_dir("hdr");
    let path = dir.join("x.wav");
    write_wav(&path, 44_100, &[vec![0.0; 3], vec![0.0; 3]], WavFormat::S16);
    let b = std::fs::read(&path).expect("read");
    assert_eq!(b.len(), 44 + 12);
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), 36 + 12);
    assert_eq!(&b[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([b[20], b[21]]), 1); // PCM
    assert_eq!(u16::from_le_bytes([b[22], b[23]]), 2); // channels
    assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 44_100);
    assert_eq!(u32::from_le_bytes([b[28], b[29], b[30], b[31]]), 44_100 * 4);
    assert_eq!(u16::from_le_bytes([b[32], b[33]]), 4);
    assert_eq!(u16::from_le_bytes([b[34], b[35]]), 16);
    assert_eq!(&b[36..40], b"data");
    assert_eq!(u32::from_le_bytes([b[40], b[41], b[42], b[43]]), 12);
}

// ---- the direct WAV reader (fastwav) against symphonia ----

/// Bit patterns of planar samples, for exact comparison (NaN-safe).
fn bits(planes: &[Vec<f32>]) -> Vec<Vec<u32>> {
    planes
        .iter()
        .map(|p| p.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// `path` read by the fast path (which must take it) and by symphonia: same rate, same bits.
fn assert_fast_path_matches_symphonia(path: &Path) -> usize {
    let (fast, fast_rate) = fastwav::read(path)
        .expect("fast read")
        .unwrap_or_else(|| panic!("{}: the fast path declined", path.display()));
    let (slow, slow_rate) = decode(path).expect("symphonia decode");
    assert_eq!(fast_rate, slow_rate);
    assert_eq!(fast.len(), slow.len(), "channel count");
    assert_eq!(fast[0].len(), slow[0].len(), "frame count");
    assert!(
        bits(&fast) == bits(&slow),
        "{}: samples differ",
        path.display()
    );
    fast[0].len()
}

#[test]
fn fast_wav_reader_gives_symphonias_samples_bit_for_bit() {
    let dir = tmp_dir("fastwav");
    // 300 001 frames: several of the reader's 256 KiB blocks, and a partial last one.
    let n = 300_001;
    let (l, r) = (lcg_noise(n, 1), lcg_noise(n, 2));
    // Values at and beyond full scale, and an exact zero, for the integer conversions.
    let mut edge = lcg_noise(n, 3);
    edge[..5].copy_from_slice(&[1.0, -1.0, 0.0, 1.5, -2.0]);
    for (name, chans, fmt) in [
        ("f32-mono.wav", vec![l.clone()], WavFormat::F32),
        ("f32-stereo.wav", vec![l.clone(), r.clone()], WavFormat::F32),
        (
            "s16-stereo.wav",
            vec![edge.clone(), r.clone()],
            WavFormat::S16,
        ),
        ("s24-mono.wav", vec![edge.clone()], WavFormat::S24),
    ] {
        let path = dir.join(name);
        write_wav(&path, 44_100, &chans, fmt);
        assert_eq!(assert_fast_path_matches_symphonia(&path), n, "{name}");
    }
    // 24-bit WAVE_FORMAT_EXTENSIBLE (hound), 32-bit integer (by hand), with extreme values.
    let path = dir.join("hound24.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create");
    for (i, v) in lcg_noise(20_000, 4).iter().enumerate() {
        let s = match i {
            0 => 8_388_607,
            1 => -8_388_608,
            _ => (v * 8_388_607.0) as i32,
        };
        w.write_sample(s).expect("write");
    }
    w.finalize().expect("finalize");
    assert_eq!(assert_fast_path_matches_symphonia(&path), 10_000);
    let path = dir.join("s32.wav");
    let vals: Vec<i32> = lcg_noise(9_999, 5)
        .iter()
        .map(|v| (*v as f64 * 2_147_483_647.0) as i32)
        .chain([i32::MIN, i32::MAX, 0])
        .collect();
    raw_wav(&path, 96_000, 1, 32, &vals);
    assert_eq!(assert_fast_path_matches_symphonia(&path), 10_002);
}

#[test]
fn fast_wav_reader_skips_other_chunks_and_reads_f64() {
    // RIFF/WAVE with an odd-length JUNK chunk (padded) between `fmt ` and `data`, 64-bit
    // float stereo: the reader must walk the chunks and convert f64 -> f32 like symphonia.
    let dir = tmp_dir("fastwav-chunks");
    let path = dir.join("x.wav");
    let frames = 1_000usize;
    let vals: Vec<f64> = (0..2 * frames)
        .map(|i| ((i as f64) * 0.37).sin() * 1.25)
        .collect();
    let data_len = (vals.len() * 8) as u32;
    let junk = b"abcde"; // 5 bytes: one pad byte follows
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 24 + 8 + 6 + 8 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&48_000u32.to_le_bytes());
    b.extend_from_slice(&(48_000u32 * 16).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"JUNK");
    b.extend_from_slice(&(junk.len() as u32).to_le_bytes());
    b.extend_from_slice(junk);
    b.push(0);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for v in &vals {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, b).expect("write");
    assert_eq!(assert_fast_path_matches_symphonia(&path), frames);
    let (planes, _) = fastwav::read(&path).expect("read").expect("taken");
    for (k, v) in vals.iter().enumerate() {
        assert_eq!(planes[k % 2][k / 2], *v as f32);
    }
}

#[test]
fn fast_wav_reader_declines_what_it_does_not_take() {
    let dir = tmp_dir("fastwav-decline");
    // 8-bit PCM, a truncated file, and a 3-channel file go to symphonia (which reads the
    // first, and gives the precise errors for the others).
    let path = dir.join("u8.wav");
    raw_wav(&path, 48_000, 1, 8, &[0, 64, 128, 255]);
    assert!(fastwav::read(&path).expect("read").is_none());
    let path = dir.join("trunc.wav");
    write_wav(&path, 48_000, &[vec![0.1; 1000]], WavFormat::S16);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 600]).expect("truncate");
    assert!(fastwav::read(&path).expect("read").is_none());
    let path = dir.join("three.wav");
    raw_wav(&path, 48_000, 3, 16, &[0, 1, 2, 3, 4, 5]);
    assert!(fastwav::read(&path).expect("read").is_none());
    let path = dir.join("flac.wav");
    std::fs::write(&path, b"fLaC\0\0\0\0\0\0\0\0\0\0").expect("write");
    assert!(fastwav::read(&path).expect("read").is_none());
}

#[test]
fn mapped_stems_hold_the_same_samples_as_read_ones() {
    let dir = tmp_dir("map");
    let n = 100_003;
    // Mono float at the session rate (written by hound, as the bench stems are: its samples
    // start 4-byte aligned): mapped, and bit-identical to reading it.
    let path = dir.join("mono.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create");
    for v in lcg_noise(n, 7) {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
    let mapped = map_stem(&path, 48_000).expect("map");
    assert!(matches!(mapped[..], [Plane::Mapped(_)]), "not mapped");
    let read = read_stem(&path, 48_000).expect("read").channels;
    assert_eq!(bits(&[mapped[0].to_vec()]), bits(&read));
    // The same file at another session rate, a stereo file and a 24-bit one are decoded.
    // So are a float file whose samples start unaligned (this writer's 46-byte header).
    for (name, chans, fmt, rate) in [
        ("mono.wav", 1, WavFormat::F32, 44_100),
        ("unaligned.wav", 1, WavFormat::F32, 48_000),
        ("stereo.wav", 2, WavFormat::F32, 48_000),
        ("s24.wav", 1, WavFormat::S24, 48_000),
    ] {
        let path = dir.join(name);
        if !path.exists() {
            let planes: Vec<Vec<f32>> = (0..chans).map(|c| lcg_noise(n, c as u32)).collect();
            write_wav(&path, 48_000, &planes, fmt);
        }
        let got = map_stem(&path, rate).expect("map");
        assert!(got.iter().all(|p| matches!(p, Plane::Owned(_))), "{name}");
        let want = read_stem(&path, rate).expect("read").channels;
        let got: Vec<Vec<f32>> = got.iter().map(|p| p.to_vec()).collect();
        assert_eq!(bits(&got), bits(&want), "{name}");
    }
}
