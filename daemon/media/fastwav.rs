//! The fast path for plain PCM and float WAV files: parse the RIFF chunks, read the `data`
//! chunk in large blocks and convert it straight into planar `f32`, with no per-packet decoder.
//!
//! It takes only files it can read exactly as symphonia would (the same sample conversions,
//! bit for bit): `fmt ` tag 1 (integer PCM, 16, 24 or 32 bits), 3 (float, 32 or 64 bits) or
//! `WAVE_FORMAT_EXTENSIBLE` with one of those sub-formats and every container bit valid; one or
//! two channels; a `data` chunk whose declared size is a whole number of frames and lies wholly
//! inside the file. Anything else (8-bit, odd layouts, a truncated or streaming-written file, a
//! damaged header) returns `Ok(None)` and the caller decodes with symphonia, which also gives
//! the precise error messages for broken files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::MediaError;

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xfffe;
/// Bytes read (and converted) per step: large enough that the system calls cost nothing,
/// small enough to stay in cache between the read and the conversion.
const READ_BLOCK: usize = 1 << 18;

/// How the samples of the `data` chunk are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    I16,
    I24,
    I32,
    F32,
    F64,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::I16 => 2,
            Encoding::I24 => 3,
            Encoding::I32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }

    /// One little-endian sample (`b.len() == self.bytes()`) as f32, converted exactly as
    /// symphonia converts it.
    #[inline(always)]
    fn get(self, b: &[u8]) -> f32 {
        match self {
            Encoding::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
            Encoding::I24 => {
                // Sign-extend the 24-bit value through the top of an i32.
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            }
            Encoding::I32 => {
                (f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0) as f32
            }
            Encoding::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

/// The parsed `fmt ` chunk.
struct Format {
    channels: usize,
    rate: u32,
    encoding: Encoding,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The encoding a `fmt ` chunk describes, if the fast path takes it.
fn parse_fmt(b: &[u8]) -> Option<Format> {
    let mut tag = u16_at(b, 0)?;
    let channels = usize::from(u16_at(b, 2)?);
    let rate = u32_at(b, 4)?;
    let block_align = usize::from(u16_at(b, 12)?);
    let bits = u16_at(b, 14)?;
    if tag == WAVE_FORMAT_EXTENSIBLE {
        // cbSize (16), valid bits (18), channel mask (20), sub-format GUID (24: its first two
        // bytes are the plain format tag).
        let valid = u16_at(b, 18)?;
        if valid != bits {
            return None;
        }
        tag = u16_at(b, 24)?;
    }
    let encoding = match (tag, bits) {
        (WAVE_FORMAT_PCM, 16) => Encoding::I16,
        (WAVE_FORMAT_PCM, 24) => Encoding::I24,
        (WAVE_FORMAT_PCM, 32) => Encoding::I32,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => Encoding::F32,
        (WAVE_FORMAT_IEEE_FLOAT, 64) => Encoding::F64,
        _ => return None,
    };
    if !(1..=2).contains(&channels) || rate == 0 || block_align != channels * encoding.bytes() {
        return None;
    }
    Some(Format {
        channels,
        rate,
        encoding,
    })
}

/// Planar samples and the file's sample rate.
type Planes = (Vec<Vec<f32>>, u32);

/// A file the fast path takes: open, positioned at the first sample of its `data` chunk.
struct Probed {
    file: File,
    fmt: Format,
    /// Byte offset of the first sample in the file.
    data_at: u64,
    frames: usize,
}

/// Open `path` and walk its chunks to `data`; `None` when the fast path does not take it.
fn probe(path: &Path) -> Result<Option<Probed>, MediaError> {
    let io_err = |source: std::io::Error| MediaError::Open {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut head = [0u8; 12];
    if file.read_exact(&mut head).is_err() || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut pos: u64 = 12;
    let mut format: Option<Format> = None;
    // Walk the chunks up to `data`.
    let data_len = loop {
        let mut hdr = [0u8; 8];
        if file.read_exact(&mut hdr).is_err() {
            return Ok(None);
        }
        let id = [hdr[0], hdr[1], hdr[2], hdr[3]];
        let len = u64::from(u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]));
        pos += 8;
        match &id {
            b"fmt " => {
                if !(16..=256).contains(&len) {
                    return Ok(None);
                }
                let mut b = vec![0u8; len as usize];
                if file.read_exact(&mut b).is_err() {
                    return Ok(None);
                }
                format = parse_fmt(&b);
                if format.is_none() {
                    return Ok(None);
                }
                // Chunks are padded to an even length.
                let pad = len & 1;
                if pad == 1 && file.seek(SeekFrom::Current(1)).is_err() {
                    return Ok(None);
                }
                pos += len + pad;
            }
            b"data" => break len,
            _ => {
                pos += len + (len & 1);
                if pos >= file_len || file.seek(SeekFrom::Start(pos)).is_err() {
                    return Ok(None);
                }
            }
        }
    };
    let Some(fmt) = format else {
        return Ok(None);
    };
    let frame_bytes = fmt.channels * fmt.encoding.bytes();
    // A streaming writer's placeholder size, a truncated file or a partial last frame: let
    // symphonia decide what to do (and say what is wrong).
    if data_len % frame_bytes as u64 != 0 || pos + data_len > file_len {
        return Ok(None);
    }
    let Ok(frames) = usize::try_from(data_len / frame_bytes as u64) else {
        return Ok(None);
    };
    Ok(Some(Probed {
        file,
        fmt,
        data_at: pos,
        frames,
    }))
}

/// Read `path` through the fast path: planar `f32` planes and the file's rate, or `None` when
/// the file is not one the fast path takes (see the module docs).
///
/// # Errors
/// Only when the file cannot be opened or read (the same errors symphonia would give).
pub(super) fn read(path: &Path) -> Result<Option<Planes>, MediaError> {
    let Some(Probed {
        mut file,
        fmt,
        frames,
        ..
    }) = probe(path)?
    else {
        return Ok(None);
    };
    let frame_bytes = fmt.channels * fmt.encoding.bytes();
    let read_err = |e: std::io::Error| MediaError::Decode {
        path: path.to_owned(),
        msg: e.to_string(),
    };
    let mut planes: Vec<Vec<f32>> = (0..fmt.channels).map(|_| new_plane(frames)).collect();
    if let ([plane], Encoding::F32) = (&mut planes[..], fmt.encoding) {
        // Mono 32-bit float: the file holds the plane itself; read it in place.
        // SAFETY: the bytes of an initialised `[f32]` form a valid `[u8]` of 4x the length
        // (u8 has alignment 1 and no invalid values), borrowed exclusively for this block.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(plane.as_mut_ptr().cast::<u8>(), plane.len() * 4)
        };
        file.read_exact(bytes).map_err(read_err)?;
        if cfg!(target_endian = "big") {
            for x in plane.iter_mut() {
                *x = f32::from_bits(u32::from_le(x.to_bits()));
            }
        }
        return Ok(Some((planes, fmt.rate)));
    }
    let block_frames = (READ_BLOCK / frame_bytes).max(1);
    let mut raw = vec![0u8; block_frames * frame_bytes];
    let mut done = 0;
    while done < frames {
        let n = block_frames.min(frames - done);
        let buf = &mut raw[..n * frame_bytes];
        file.read_exact(buf).map_err(read_err)?;
        let mut outs: Vec<&mut [f32]> = planes.iter_mut().map(|p| &mut p[done..done + n]).collect();
        convert(fmt.encoding, buf, &mut outs);
        done += n;
    }
    Ok(Some((planes, fmt.rate)))
}

/// A zeroed plane of `frames` samples. A large one asks the kernel for huge pages first
/// (`MADV_HUGEPAGE`, a hint): filling a stem otherwise costs one page fault per 4 KiB.
fn new_plane(frames: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(frames);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = frames * 4;
        if bytes >= 2 * HUGE {
            // Only whole pages inside the allocation are advised.
            let start = v.as_mut_ptr() as usize;
            let first = start.next_multiple_of(4096);
            let last = (start + bytes) & !4095;
            if last > first {
                // SAFETY: the range lies inside this vector's own allocation; madvise with
                // MADV_HUGEPAGE changes only how the kernel backs it, never its contents.
                unsafe {
                    libc::madvise(
                        first as *mut libc::c_void,
                        last - first,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    v.resize(frames, 0.0);
    v
}

/// Convert the interleaved frames of `raw` into `outs` (1 or 2 planes of the same length).
fn convert(enc: Encoding, raw: &[u8], outs: &mut [&mut [f32]]) {
    // One match per block, so each loop is specialised to its encoding.
    macro_rules! run {
        ($e:expr) => {{
            let (e, w) = ($e, $e.bytes());
            match outs {
                [m] => {
                    for (o, b) in m.iter_mut().zip(raw.chunks_exact(w)) {
                        *o = e.get(b);
                    }
                }
                [l, r] => {
                    for ((l, r), f) in l.iter_mut().zip(r.iter_mut()).zip(raw.chunks_exact(2 * w)) {
                        *l = e.get(&f[..w]);
                        *r = e.get(&f[w..]);
                    }
                }
                _ => {}
            }
        }};
    }
    match enc {
        Encoding::I16 => run!(Encoding::I16),
        Encoding::I24 => run!(Encoding::I24),
        Encoding::I32 => run!(Encoding::I32),
        Encoding::F32 => run!(Encoding::F32),
        Encoding::F64 => run!(Encoding::F64),
    }
}

/// A mono 32-bit float WAV file's samples, mapped read-only into memory straight from the
/// file (no copy, no up-front read): see [`super::map_stem`].
pub struct MappedPlane {
    /// Start of the mapping (page-aligned) and its length in bytes.
    base: *mut libc::c_void,
    map_len: usize,
    /// Offset of the first sample from `base`, and the number of samples.
    offset: usize,
    frames: usize,
}

// SAFETY: the mapping is private and read-only and owned by this value alone; reading it from
// several threads at once is as safe as reading a shared `&[f32]`.
unsafe impl Send for MappedPlane {}
// SAFETY: as above: only shared reads ever happen through `&MappedPlane`.
unsafe impl Sync for MappedPlane {}

impl MappedPlane {
    /// The samples.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `base + offset` lies inside the live mapping, is 4-byte aligned (checked in
        // `map`) and is followed by `frames` little-endian f32s of the data chunk; f32 has no
        // invalid bit patterns. (Truncating the file while it is mapped makes the kernel raise
        // SIGBUS on access, which is why only the offline render maps its stems.)
        unsafe {
            std::slice::from_raw_parts(
                self.base.cast::<u8>().add(self.offset).cast::<f32>(),
                self.frames,
            )
        }
    }
}

impl Drop for MappedPlane {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly what `mmap` returned, unmapped once, here.
        unsafe {
            libc::munmap(self.base, self.map_len);
        }
    }
}

impl std::fmt::Debug for MappedPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedPlane({} frames)", self.frames)
    }
}

/// Map `path` when it is a mono 32-bit float WAV the fast path takes, on a little-endian
/// machine, with its samples 4-byte aligned in the file. Returns the plane and the file's
/// rate, or `None` (read it instead).
///
/// # Errors
/// Only when the file cannot be opened.
pub(super) fn map(path: &Path) -> Result<Option<(MappedPlane, u32)>, MediaError> {
    use std::os::fd::AsRawFd;
    let Some(p) = probe(path)? else {
        return Ok(None);
    };
    let ok = cfg!(target_endian = "little")
        && p.fmt.channels == 1
        && p.fmt.encoding == Encoding::F32
        && p.data_at % 4 == 0
        && p.frames > 0;
    if !ok {
        return Ok(None);
    }
    let Ok(offset) = usize::try_from(p.data_at) else {
        return Ok(None);
    };
    let map_len = offset + p.frames * 4;
    // SAFETY: a fresh private read-only mapping of an open file descriptor; the kernel picks
    // the address. Failure is checked below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            p.file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Ok(None);
    }
    // The render reads each stem once from start to end.
    // SAFETY: advice on the mapping just made; it never changes its contents.
    unsafe {
        libc::madvise(base, map_len, libc::MADV_SEQUENTIAL);
    }
    Ok(Some((
        MappedPlane {
            base,
            map_len,
            offset,
            frames: p.frames,
        },
        p.fmt.rate,
    )))
}
