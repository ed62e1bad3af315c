//! Atomic WAV writing: [`AtomicWavWriter`] writes to a temporary file beside the target and
//! renames it into place on [`AtomicWavWriter::finish`], so a reader never sees a half-written
//! file. Integer formats are TPDF-dithered.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::MediaError;

/// Sample format of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// 32-bit IEEE float (no dither, no clipping: values above full scale are kept).
    F32,
    /// 24-bit signed integer, TPDF dithered.
    S24,
    /// 16-bit signed integer, TPDF dithered.
    S16,
}

impl WavFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            WavFormat::F32 => 4,
            WavFormat::S24 => 3,
            WavFormat::S16 => 2,
        }
    }
}

impl FromStr for WavFormat {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(WavFormat::F32),
            "s24" => Ok(WavFormat::S24),
            "s16" => Ok(WavFormat::S16),
            other => Err(MediaError::UnknownFormat(other.to_owned())),
        }
    }
}

/// Deterministic fast RNG for dither (xorshift64*).
struct Rng(u64);

impl Rng {
    /// Uniform in [0, 1).
    #[inline]
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Triangular in (-1, 1): the sum of two independent uniforms, centred.
    #[inline]
    fn tpdf(&mut self) -> f64 {
        self.next_f64() - self.next_f64()
    }
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;

/// Writes a WAV file atomically.
///
/// The samples go to a temporary file beside the target (`.NAME.tmp-PID`, same directory so
/// the rename is atomic); [`finish`](Self::finish) patches the header, flushes, fsyncs the file,
/// renames it onto the target and fsyncs the directory. Dropping the writer without `finish`
/// (an error, a panic, a cancelled render) deletes the temporary file, so the target is either
/// the complete new file or untouched. (A process killed by a signal runs no destructors: the
/// caller must catch ctrl-c and drop the writer, and the stray temp file matches `*.wav.tmp*`.)
///
/// Integer formats get TPDF dither (triangular, ±1 LSB peak) from a fixed-seed RNG, so the
/// output is deterministic, then are rounded and clipped to the format's range.
pub struct AtomicWavWriter {
    path: PathBuf,
    tmp_path: PathBuf,
    /// `None` once finished (or after a failure in `finish`).
    out: Option<BufWriter<File>>,
    sample_rate: u32,
    channels: u16,
    format: WavFormat,
    frames: u64,
    rng: Rng,
    scratch: Vec<u8>,
}

impl AtomicWavWriter {
    /// Create the temporary file and write a provisional header. May allocate.
    pub fn create(
        path: &Path,
        sample_rate: u32,
        channels: u16,
        format: WavFormat,
    ) -> Result<Self, MediaError> {
        let invalid = |msg: String| MediaError::InvalidWrite {
            path: path.to_owned(),
            msg,
        };
        if channels == 0 {
            return Err(invalid("0 channels".into()));
        }
        if sample_rate == 0 {
            return Err(invalid("sample rate 0".into()));
        }
        let name = path
            .file_name()
            .ok_or_else(|| invalid("not a file name".into()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp_path = path.with_file_name(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(|source| MediaError::Write {
                path: path.to_owned(),
                source,
            })?;
        let mut w = AtomicWavWriter {
            path: path.to_owned(),
            tmp_path,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            sample_rate,
            channels,
            format,
            frames: 0,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            scratch: Vec::new(),
        };
        let header = w.header(sample_rate, 0);
        w.write_bytes(&header)?;
        Ok(w)
    }

    /// The header for `frames` frames. Float files carry a `fact` chunk (required for
    /// non-PCM WAV).
    fn header(&self, sample_rate: u32, frames: u64) -> Vec<u8> {
        let bps = self.format.bytes() as u32;
        let block_align = bps * self.channels as u32;
        let data_len = (frames * block_align as u64) as u32;
        let mut h = Vec::with_capacity(58);
        let is_float = self.format == WavFormat::F32;
        let fmt_len: u32 = if is_float { 18 } else { 16 };
        let fact_len: u32 = if is_float { 12 } else { 0 };
        // RIFF chunks are word aligned: an odd data chunk is followed by one pad byte.
        let riff_len = 4 + (8 + fmt_len) + fact_len + 8 + data_len + (data_len & 1);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&riff_len.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&fmt_len.to_le_bytes());
        let tag = if is_float {
            WAVE_FORMAT_IEEE_FLOAT
        } else {
            WAVE_FORMAT_PCM
        };
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&sample_rate.to_le_bytes());
        h.extend_from_slice(&(sample_rate * block_align).to_le_bytes());
        h.extend_from_slice(&(block_align as u16).to_le_bytes());
        h.extend_from_slice(&((bps * 8) as u16).to_le_bytes());
        if is_float {
            h.extend_from_slice(&0u16.to_le_bytes()); // cbSize
            h.extend_from_slice(b"fact");
            h.extend_from_slice(&4u32.to_le_bytes());
            h.extend_from_slice(&(frames as u32).to_le_bytes());
        }
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), MediaError> {
        let out = self.out.as_mut().ok_or_else(|| MediaError::InvalidWrite {
            path: self.path.clone(),
            msg: "writer already finished".into(),
        })?;
        out.write_all(bytes).map_err(|source| MediaError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Append frames given as one slice per channel (all the same length). May allocate.
    pub fn write_planar(&mut self, chans: &[&[f32]]) -> Result<(), MediaError> {
        let invalid = |msg: String| MediaError::InvalidWrite {
            path: self.path.clone(),
            msg,
        };
        if chans.len() != self.channels as usize {
            return Err(invalid(format!(
                "got {} channels, the file has {}",
                chans.len(),
                self.channels
            )));
        }
        let n = chans[0].len();
        if chans.iter().any(|c| c.len() != n) {
            return Err(invalid("channel buffers differ in length".into()));
        }
        let block = self.format.bytes() * self.channels as usize;
        let new_frames = self.frames + n as u64;
        if new_frames * block as u64 > (u32::MAX - 64) as u64 {
            return Err(invalid(
                "output exceeds the 4 GiB limit of a WAV file".into(),
            ));
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.reserve(n * block);
        for i in 0..n {
            for c in chans {
                let x = c[i];
                match self.format {
                    WavFormat::F32 => buf.extend_from_slice(&x.to_le_bytes()),
                    WavFormat::S24 => {
                        let q = quantize(x, 8_388_608.0, &mut self.rng);
                        buf.extend_from_slice(&q.to_le_bytes()[..3]);
                    }
                    WavFormat::S16 => {
                        let q = quantize(x, 32_768.0, &mut self.rng) as i16;
                        buf.extend_from_slice(&q.to_le_bytes());
                    }
                }
            }
        }
        let res = self.write_bytes(&buf);
        self.scratch = buf;
        res?;
        self.frames = new_frames;
        Ok(())
    }

    /// Finish the header, flush, fsync, rename onto the target and fsync the directory.
    pub fn finish(mut self) -> Result<(), MediaError> {
        let wr = |source| MediaError::Write {
            path: self.path.clone(),
            source,
        };
        let header = self.header(self.sample_rate, self.frames);
        let mut out = self.out.take().ok_or_else(|| MediaError::InvalidWrite {
            path: self.path.clone(),
            msg: "writer already finished".into(),
        })?;
        // On any error below, `self` still owns `tmp_path` and Drop removes it.
        let data_len = self.frames * (self.format.bytes() * self.channels as usize) as u64;
        if data_len % 2 == 1 {
            out.write_all(&[0]).map_err(wr)?;
        }
        out.seek(SeekFrom::Start(0)).map_err(wr)?;
        out.write_all(&header).map_err(wr)?;
        let file = out.into_inner().map_err(|e| wr(e.into_error()))?;
        file.sync_all().map_err(wr)?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.path).map_err(wr)?;
        // Renamed: nothing left for Drop to remove.
        self.tmp_path = PathBuf::new();
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        // Persist the rename. Opening a directory for fsync is not possible everywhere;
        // where it is not, the rename is still atomic, only its durability is up to the OS.
        if let Ok(d) = File::open(&dir) {
            d.sync_all().map_err(wr)?;
        }
        Ok(())
    }
}

/// `round(x * scale + tpdf)` clipped to `[-scale, scale - 1]`.
#[inline]
fn quantize(x: f32, scale: f64, rng: &mut Rng) -> i32 {
    let v = (x as f64 * scale + rng.tpdf()).round();
    let v = if v.is_nan() { 0.0 } else { v };
    v.clamp(-scale, scale - 1.0) as i32
}

impl Drop for AtomicWavWriter {
    fn drop(&mut self) {
        // Close the file first, then remove the temp file (a no-op after a successful finish).
        self.out = None;
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}
