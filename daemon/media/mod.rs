//! Media I/O: reading stems (WAV or FLAC, decoded with symphonia and resampled with rubato to
//! the session rate; plain PCM/float WAV files take a direct reader, `fastwav`, that gives the
//! same samples without the per-packet decoder) and writing the bounce as a WAV file atomically (see [`AtomicWavWriter`]).
//!
//! Nothing here is real-time code: every function may allocate and block on the file system.

mod fastwav;
mod wav;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

pub use fastwav::MappedPlane;
pub use wav::{AtomicWavWriter, WavFormat};

/// One channel of a stem at the session rate: decoded into memory, or (offline renders only,
/// see [`map_stem`]) mapped straight from the file.
#[derive(Debug)]
pub enum Plane {
    /// Decoded samples.
    Owned(Vec<f32>),
    /// A mono 32-bit float WAV file's data chunk, mapped read-only.
    Mapped(MappedPlane),
}

impl std::ops::Deref for Plane {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Plane::Owned(v) => v,
            Plane::Mapped(m) => m.as_slice(),
        }
    }
}

impl From<Vec<f32>> for Plane {
    fn from(v: Vec<f32>) -> Self {
        Plane::Owned(v)
    }
}

/// A decoded file source: planar `f32` samples at the rate asked of [`read_stem`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stem {
    /// One vector per channel (1 = mono, 2 = stereo), all the same length, already at the
    /// requested sample rate.
    pub channels: Vec<Vec<f32>>,
    /// The sample rate the file was stored at (before any resampling).
    pub source_rate: u32,
}

impl Stem {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }
}

/// What went wrong reading or writing a media file. Every variant names the file.
#[derive(thiserror::Error, Debug)]
pub enum MediaError {
    /// The file could not be opened (missing, permissions, ...).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not in a container format we can read.
    #[error("{}: not a WAV or FLAC file ({msg})", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Details from the demuxer.
        msg: String,
    },
    /// The container holds audio in a codec we cannot decode.
    #[error("{}: unsupported codec ({msg})", path.display())]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// Details from the decoder registry.
        msg: String,
    },
    /// The file holds no audio track.
    #[error("{}: no audio track", path.display())]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },
    /// Stems must be mono or stereo.
    #[error("{}: {channels} channels, but a stem must be mono or stereo", path.display())]
    TooManyChannels {
        /// The file.
        path: PathBuf,
        /// How many channels the file has.
        channels: usize,
    },
    /// The audio data is malformed, truncated in a way we cannot recover from, or unreadable.
    #[error("cannot decode {}: {msg}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        msg: String,
    },
    /// The resampler could not be built or failed.
    #[error("cannot resample {} from {from} Hz to {to} Hz: {msg}", path.display())]
    Resample {
        /// The file.
        path: PathBuf,
        /// The file's rate.
        from: u32,
        /// The requested rate.
        to: u32,
        /// What rubato said.
        msg: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The output file (the final name, not the temporary one).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The writer was used wrongly (channel count mismatch, ragged buffers, file too large).
    #[error("cannot write {}: {msg}", path.display())]
    InvalidWrite {
        /// The output file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// A sample format name that is not `f32`, `s24` or `s16`.
    #[error("unknown WAV format {0:?}: expected f32, s24 or s16")]
    UnknownFormat(String),
}

/// Decode a WAV (8/16/24/32-bit integer or 32/64-bit float PCM) or FLAC file into planar `f32`,
/// resampled to `sample_rate` when the file's rate differs.
///
/// Resampling uses rubato's asynchronous sinc resampler (256-tap Blackman-Harris windowed sinc,
/// cubic interpolation between 128x oversampled filter points) at a fixed ratio; the
/// resampler's latency is removed so an event at source sample `n` lands at output sample
/// `n * sample_rate / source_rate`, and the output length is `round(len * sample_rate /
/// source_rate)`.
///
/// May allocate and block (file I/O); call it off the audio thread.
pub fn read_stem(path: &Path, sample_rate: u32) -> Result<Stem, MediaError> {
    // Plain PCM/float WAV: read and convert directly; everything else through symphonia.
    let (channels, source_rate) = match fastwav::read(path)? {
        Some(decoded) => decoded,
        None => decode(path)?,
    };
    if sample_rate == 0 {
        return Err(MediaError::Resample {
            path: path.to_owned(),
            from: source_rate,
            to: sample_rate,
            msg: "target sample rate is 0".into(),
        });
    }
    let channels = if source_rate == sample_rate {
        channels
    } else {
        resample(path, channels, source_rate, sample_rate)?
    };
    Ok(Stem {
        channels,
        source_rate,
    })
}

/// For offline renders: a stem whose file is a mono 32-bit float WAV at `sample_rate` is
/// mapped into memory (no read and no copy up front: the kernel brings the pages in as the
/// render reaches them, usually straight from its cache); any other is read with
/// [`read_stem`]. The samples are the same either way.
///
/// Not for the live daemon: a stem file truncated while it is mapped stops the process
/// (SIGBUS) when a mapped page past the new end is read.
pub fn map_stem(path: &Path, sample_rate: u32) -> Result<Vec<Plane>, MediaError> {
    if let Some((plane, rate)) = fastwav::map(path)?
        && rate == sample_rate
    {
        return Ok(vec![Plane::Mapped(plane)]);
    }
    Ok(read_stem(path, sample_rate)?
        .channels
        .into_iter()
        .map(Plane::from)
        .collect())
}

/// Decode the whole file into planar `f32` at its own rate. Returns the planes and the rate.
fn decode(path: &Path) -> Result<(Vec<Vec<f32>>, u32), MediaError> {
    let p = || path.to_owned();
    let file = File::open(path).map_err(|source| MediaError::Open { path: p(), source })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymError::IoError(source) => MediaError::Open { path: p(), source },
            other => MediaError::UnsupportedFormat {
                path: p(),
                msg: other.to_string(),
            },
        })?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| MediaError::NoAudioTrack { path: p() })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|c| c.audio())
        .ok_or_else(|| MediaError::NoAudioTrack { path: p() })?
        .clone();
    if let Some(ch) = &params.channels {
        check_channels(path, ch.count())?;
    }
    let mut rate = params.sample_rate;
    let declared_frames = track.num_frames;

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| MediaError::UnsupportedCodec {
            path: p(),
            msg: e.to_string(),
        })?;

    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymError::ResetRequired) => break,
            // A file cut short mid-packet: keep what was decoded.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                return Err(MediaError::Decode {
                    path: p(),
                    msg: e.to_string(),
                });
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).map_err(|e| MediaError::Decode {
            path: p(),
            msg: e.to_string(),
        })?;
        let n_ch = buf.spec().channels().count();
        check_channels(path, n_ch)?;
        if rate.is_none() {
            rate = Some(buf.spec().rate());
        }
        if planes.is_empty() {
            planes = vec![Vec::new(); n_ch];
        } else if planes.len() != n_ch {
            return Err(MediaError::Decode {
                path: p(),
                msg: format!("channel count changed from {} to {n_ch}", planes.len()),
            });
        }
        buf.copy_to_vecs_planar::<f32>(&mut scratch);
        for (plane, new) in planes.iter_mut().zip(&scratch) {
            plane.extend_from_slice(new);
        }
    }
    let rate = rate.filter(|&r| r > 0).ok_or_else(|| MediaError::Decode {
        path: p(),
        msg: "unknown sample rate".into(),
    })?;
    let decoded = planes.first().map_or(0, Vec::len) as u64;
    if let Some(declared) = declared_frames
        && decoded < declared
    {
        // A corrupt frame the demuxer skipped, or a file cut short: never pass on a stem
        // that is silently shorter (and, for a skipped frame, shifted in time).
        return Err(MediaError::Decode {
            path: p(),
            msg: format!("decoded only {decoded} of {declared} frames (file truncated or corrupt)"),
        });
    }
    if planes.is_empty() {
        // No packets at all: an empty file. Keep its channel count if the header knew it.
        let n = params.channels.as_ref().map_or(1, |c| c.count().max(1));
        planes = vec![Vec::new(); n];
    }
    Ok((planes, rate))
}

fn check_channels(path: &Path, n: usize) -> Result<(), MediaError> {
    if n > 2 {
        return Err(MediaError::TooManyChannels {
            path: path.to_owned(),
            channels: n,
        });
    }
    if n == 0 {
        return Err(MediaError::Decode {
            path: path.to_owned(),
            msg: "the file declares 0 channels".into(),
        });
    }
    Ok(())
}

/// Output length for `len` input frames: `round(len * to / from)`, in integers.
fn resampled_len(len: usize, from: u32, to: u32) -> usize {
    let num = len as u128 * to as u128;
    ((num + from as u128 / 2) / from as u128) as usize
}

/// The rubato resampler used for stems: asynchronous sinc (256 taps, Blackman-Harris window,
/// cubic interpolation of a 128x oversampled table) at the fixed ratio `to / from`.
fn make_resampler(from: u32, to: u32, n_ch: usize) -> Result<Async<f32>, String> {
    let params = SincInterpolationParameters::default();
    Async::<f32>::new_sinc(
        to as f64 / from as f64,
        1.0,
        &params,
        1024,
        n_ch,
        FixedAsync::Input,
    )
    .map_err(|e| e.to_string())
}

/// Run `input` (planar) through a fresh resampler with `process_all` (which trims the
/// resampler's own integer estimate of its delay) and return planar output.
fn run_resampler(planes: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>, String> {
    let n_ch = planes.len();
    let len = planes.first().map_or(0, Vec::len);
    let mut rs = make_resampler(from, to, n_ch)?;
    let input = SequentialSliceOfVecs::new(planes, n_ch, len).map_err(|e| e.to_string())?;
    let data = rs
        .process_all(&input, len, None)
        .map_err(|e| e.to_string())?
        .take_data();
    let mut out = vec![Vec::with_capacity(data.len() / n_ch); n_ch];
    for frame in data.chunks_exact(n_ch) {
        for (plane, &s) in out.iter_mut().zip(frame) {
            plane.push(s);
        }
    }
    Ok(out)
}

/// The time error `e` (in output samples) left by `process_all`: its output frame `k` holds
/// the input at time `(k + e) / ratio`. `process_all` trims a whole number of frames, while the
/// sinc filter's true group delay is fractional, so `e` is a fraction of a sample (about
/// +0.69 at 44.1 -> 48 kHz). Measured, not assumed: a sine well inside the passband goes
/// through the resampler and its phase is fitted by least squares (exact for a linear-phase
/// filter, whatever the number of cycles).
fn residual_delay(from: u32, to: u32) -> Result<f64, String> {
    let f = from.min(to) as f64 / 48.0;
    let len = (from as usize / 5).max(8192);
    let w_in = 2.0 * std::f64::consts::PI * f / from as f64;
    let probe: Vec<f32> = (0..len).map(|i| (w_in * i as f64).sin() as f32).collect();
    let y = run_resampler(&[probe], from, to)?.remove(0);
    // Fit y[k] = a sin(w k) + b cos(w k) away from both ends, then y = A sin(w (k + e)).
    let w = 2.0 * std::f64::consts::PI * f / to as f64;
    let (lo, hi) = (y.len() / 4, y.len() * 3 / 4);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in y.iter().enumerate().take(hi).skip(lo) {
        let (s, c) = (w * k as f64).sin_cos();
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += v as f64 * s;
        yc += v as f64 * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    Ok(b.atan2(a) / w)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Resample planar audio with a high-quality sinc resampler, latency removed to a small
/// fraction of a sample, exact length `round(len * to / from)`.
///
/// Alignment: with `P` zeros prepended, output frame `k` holds input time
/// `(k + e - P * ratio) / ratio`, so dropping `S = P * ratio - e` leading frames aligns the
/// output exactly when `S` is an integer. `P * ratio` steps through all multiples of
/// `1 / (from / gcd)` (mod 1) as `P` runs over one period, so the best `P` leaves at most
/// `gcd / (2 * from)` of a sample (0.0034 at 44.1 -> 48 kHz).
fn resample(
    path: &Path,
    planes: Vec<Vec<f32>>,
    from: u32,
    to: u32,
) -> Result<Vec<Vec<f32>>, MediaError> {
    let err = |msg: String| MediaError::Resample {
        path: path.to_owned(),
        from,
        to,
        msg,
    };
    let n_ch = planes.len();
    let len = planes.first().map_or(0, Vec::len);
    let out_len = resampled_len(len, from, to);
    if len == 0 {
        return Ok(vec![Vec::new(); n_ch]);
    }
    let e = residual_delay(from, to).map_err(err)?;
    let ratio = to as f64 / from as f64;
    let period = from as u64 / gcd(from as u64, to as u64);
    let p_min = (e / ratio).ceil().max(0.0) as u64;
    let (mut best_p, mut best_s, mut best_frac) = (p_min as usize, 0usize, f64::MAX);
    for p in p_min..p_min + period {
        let s = p as f64 * ratio - e;
        let frac = (s - s.round()).abs();
        if s.round() >= 0.0 && frac < best_frac {
            (best_p, best_s, best_frac) = (p as usize, s.round() as usize, frac);
        }
    }
    // Zeros before (alignment) and after (so the filter tail and the last frames come out).
    let tail = 512 + (256.0 / ratio.min(1.0)) as usize;
    let padded: Vec<Vec<f32>> = planes
        .into_iter()
        .map(|pl| {
            let mut v = vec![0.0; best_p];
            v.extend_from_slice(&pl);
            v.resize(best_p + len + tail, 0.0);
            v
        })
        .collect();
    let out = run_resampler(&padded, from, to).map_err(err)?;
    Ok(out
        .into_iter()
        .map(|pl| {
            let mut v: Vec<f32> = pl.into_iter().skip(best_s).take(out_len).collect();
            v.resize(out_len, 0.0);
            v
        })
        .collect())
}
