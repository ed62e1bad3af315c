//! The offline bounce (`faderbridge render`): runs the live engine block by block over a
//! session's file sources, faster than real time, writes a stereo WAV atomically and measures
//! it (sample peak, true peak, integrated loudness, loudness range).
//!
//! The engine's constant latency (the master limiter's look-ahead) is compensated: sample `n`
//! of the output is sample `n` of the stems.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::dsp::util::DenormalGuard;
use crate::engine::{BuildError, Engine, StemData};
use crate::media::{self, AtomicWavWriter, MediaError, WavFormat};
use crate::meter::Loudness;
use crate::params::ParamTree;
use crate::session::{self, SessionError, model::Session, model::Source};

/// Frames per engine block in a render (or the session's block if that is larger).
const RENDER_BLOCK: usize = 4096;
/// Frames per chunk handed from the engine to the measuring/writing thread.
const SINK_CHUNK: usize = 16_384;
/// Chunks that may wait for that thread before the engine waits for it.
const SINK_QUEUE: usize = 4;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub out: PathBuf,
    /// Start of the range, in seconds (default 0).
    pub start_s: Option<f64>,
    /// End of the range, in seconds (default: the longest stem plus the effects' tail).
    pub end_s: Option<f64>,
    pub format: WavFormat,
    /// Show a progress bar (only honoured when stderr is a terminal).
    pub progress: bool,
    /// Automation to play: a lane file or a daemon's state directory
    /// ([`crate::automation::file::load`]).
    pub automation: Option<PathBuf>,
}

/// What `render` prints when done.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderReport {
    pub frames: u64,
    pub sample_rate: u32,
    pub sample_peak_dbfs: f64,
    pub true_peak_dbtp: f64,
    pub integrated_lufs: f64,
    pub loudness_range_lu: f64,
    /// Audio seconds rendered per wall-clock second.
    pub speed: f64,
}

impl RenderReport {
    /// Length in seconds.
    pub fn length_s(&self) -> f64 {
        self.frames as f64 / self.sample_rate as f64
    }
}

impl std::fmt::Display for RenderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.length_s();
        writeln!(
            f,
            "length:          {}:{:06.3} ({} frames at {} Hz)",
            (secs / 60.0).floor(),
            secs % 60.0,
            self.frames,
            self.sample_rate
        )?;
        writeln!(f, "sample peak:     {:.2} dBFS", self.sample_peak_dbfs)?;
        writeln!(f, "true peak:       {:.2} dBTP", self.true_peak_dbtp)?;
        writeln!(f, "integrated:      {:.1} LUFS", self.integrated_lufs)?;
        writeln!(f, "loudness range:  {:.1} LU", self.loudness_range_lu)?;
        write!(f, "speed:           {:.1}x real time", self.speed)
    }
}

/// Why a render failed. Every variant but `Write` is the user's input.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{file}: channel {channel}: {source}")]
    Stem {
        file: PathBuf,
        channel: String,
        source: MediaError,
    },
    #[error("{file}: {source}")]
    Build { file: PathBuf, source: BuildError },
    #[error("{0}")]
    Automation(SessionError),
    #[error("{0}: the range is empty (end must be after start)")]
    Range(PathBuf),
    #[error("writing the mix: {0}")]
    Write(MediaError),
}

impl RenderError {
    /// True when the failure is the input's fault (exit code 2), false for I/O trouble.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, RenderError::Write(_))
    }
}

/// Load every file source of `session` at its sample rate, in parallel: mono float WAVs at
/// that rate are mapped ([`media::map_stem`]), the others decoded.
///
/// # Errors
/// The first stem that can't be read, with its channel name.
pub fn load_stems(session: &Session) -> Result<HashMap<usize, StemData>, RenderError> {
    let rate = session.engine.sample_rate;
    let jobs: Vec<(usize, &Path)> = session
        .channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.source {
            Source::File(p) => Some((i, p.as_path())),
            _ => None,
        })
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<&[(usize, &Path)]> = jobs.chunks(jobs.len().div_ceil(workers).max(1)).collect();
    let results: Vec<Result<Vec<(usize, StemData)>, RenderError>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&(i, path)| {
                            media::map_stem(path, rate)
                                .map(|planes| (i, Arc::new(planes)))
                                .map_err(|source| RenderError::Stem {
                                    file: session.file.clone(),
                                    channel: session.channels[i].name.clone(),
                                    source,
                                })
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("stem decoder thread panicked"))
            .collect()
    });
    let mut stems = HashMap::new();
    for r in results {
        stems.extend(r?);
    }
    Ok(stems)
}

/// Length of the session's material in frames: the longest stem plus the effects' tail
/// (the longest reverb decay, or enough echoes of the delays to fall 60 dB), capped at 30 s.
pub fn natural_length(session: &Session, stems: &HashMap<usize, StemData>) -> u64 {
    let sr = session.engine.sample_rate as f64;
    let longest = stems
        .values()
        .map(|s| s.iter().map(|p| p.len()).max().unwrap_or(0))
        .max()
        .unwrap_or(0) as u64;
    let mut tail_s: f64 = 0.0;
    for b in &session.buses {
        if let Some(r) = b.reverb {
            tail_s = tail_s.max(r.decay_s as f64 + r.predelay_ms as f64 / 1000.0);
        }
        if let Some(d) = b.delay {
            let fb = (d.feedback as f64).clamp(0.01, 0.95);
            let repeats = (-60.0 / (20.0 * fb.log10())).ceil();
            tail_s = tail_s.max(repeats * d.time_ms as f64 / 1000.0);
        }
    }
    longest + (tail_s.min(30.0) * sr).round() as u64
}

/// Render `session_path` as `opts` says.
///
/// # Errors
/// A bad session, an unreadable stem, or a failure writing the output. On any error no output
/// file is left behind (and an existing one is untouched).
pub fn render(session_path: &Path, opts: &RenderOptions) -> Result<RenderReport, RenderError> {
    let session = session::load(session_path)?;
    let stems = load_stems(&session)?;
    let tree = ParamTree::build(&session);
    let rate = session.engine.sample_rate;
    // Offline there is no period to keep short: large blocks spread each block's fixed costs
    // (the filters' pipeline fill, parameter checks, the strip threads' hand-over) over more
    // frames. Every processor works per sample, so the mix does not depend on the block size
    // (the compressor's detector pairs samples within a block: that moves its gain by float
    // rounding, ~1e-7 relative).
    let block = session.engine.block.max(RENDER_BLOCK);
    let mut engine = Engine::build(&session, &tree, &stems, rate as f32, block).map_err(|e| {
        RenderError::Build {
            file: session.file.clone(),
            source: e,
        }
    })?;

    let start = (opts.start_s.unwrap_or(0.0).max(0.0) * rate as f64).round() as u64;
    let end = match opts.end_s {
        Some(e) => (e.max(0.0) * rate as f64).round() as u64,
        None => natural_length(&session, &stems),
    };
    if end <= start {
        return Err(RenderError::Range(session.file.clone()));
    }
    let frames = end - start;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Nobody reads the strips' meters during a render.
    engine.set_strip_meters(false);
    let latency = engine.latency() as u64;
    engine.locate(start);
    if let Some(path) = &opts.automation {
        // A state's values first (the mix as it was left), then the lanes over them, read
        // at the start without a glide.
        let auto =
            crate::automation::file::load(path, &tree, rate).map_err(RenderError::Automation)?;
        for &(id, v) in &auto.values {
            engine.apply(tree.get(id).addr, v);
        }
        engine.settle();
        engine.set_playback(Box::new(auto.playback(&tree)));
    }

    let mut writer =
        AtomicWavWriter::create(&opts.out, rate, 2, opts.format).map_err(RenderError::Write)?;
    let mut loudness = Loudness::new(rate, 2);
    let bar = (opts.progress && std::io::stderr().is_terminal() && frames > rate as u64 * 10).then(
        || {
            let bar = indicatif::ProgressBar::new(frames);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% {elapsed_precise} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        },
    );

    let began = Instant::now();
    // The engine runs on this thread; measuring the loudness (true peak oversamples 4x) and
    // writing run on a second one, a few chunks behind, so the two overlap on two cores.
    // Chunks travel in a bounded queue and their buffers come back to be refilled.
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<[Vec<f32>; 2]>(SINK_QUEUE);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<[Vec<f32>; 2]>();
    let (loudness, writer) = std::thread::scope(|s| {
        let sink = s.spawn(
            move || -> Result<(Loudness, AtomicWavWriter), RenderError> {
                for [l, r] in full_rx {
                    loudness.process(&[&l, &r]);
                    writer.write_planar(&[&l, &r]).map_err(RenderError::Write)?;
                    // The engine may have finished already; then the buffers just drop.
                    let _ = empty_tx.send([l, r]);
                }
                Ok((loudness, writer))
            },
        );
        let _ftz = DenormalGuard::new();
        let mut to_skip = latency;
        let mut written: u64 = 0;
        let new_chunk = || [0, 1].map(|_| Vec::with_capacity(SINK_CHUNK + block));
        let mut chunk = new_chunk();
        // Feed the engine until `frames` frames have come out past its latency.
        engine.render_offline(block, threads, |outs| {
            let skip = to_skip.min(block as u64) as usize;
            to_skip -= skip as u64;
            let take = ((block - skip) as u64).min(frames - written) as usize;
            if take == 0 {
                return true;
            }
            for (c, side) in chunk.iter_mut().zip(outs) {
                c.extend_from_slice(&side[skip..skip + take]);
            }
            written += take as u64;
            if chunk[0].len() >= SINK_CHUNK || written == frames {
                let next = match empty_rx.try_recv() {
                    Ok(mut c) => {
                        c.iter_mut().for_each(Vec::clear);
                        c
                    }
                    Err(_) => new_chunk(),
                };
                if full_tx.send(std::mem::replace(&mut chunk, next)).is_err() {
                    return false; // the sink failed; its error is reported below
                }
                if let Some(bar) = &bar {
                    bar.set_position(written);
                }
            }
            written < frames
        });
        drop(full_tx);
        sink.join().expect("render writer thread panicked")
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    writer.finish().map_err(RenderError::Write)?;
    let elapsed = began.elapsed().as_secs_f64().max(1e-9);
    Ok(RenderReport {
        frames,
        sample_rate: rate,
        sample_peak_dbfs: loudness.sample_peak_dbfs(),
        true_peak_dbtp: loudness.true_peak_dbtp(),
        integrated_lufs: loudness.integrated_lufs(),
        loudness_range_lu: loudness.loudness_range_lu(),
        speed: frames as f64 / rate as f64 / elapsed,
    })
}
