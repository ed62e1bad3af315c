//! Benchmarks of the mix engine (run: `cargo bench --bench engine`).
//!
//! 1. `strip`: the cost of one full channel strip (HPF, gate, 4 EQ bands, compressor,
//!    saturation, pan, fader, 2 sends) in ns per channel-sample at 64-frame blocks, measured on
//!    32 such strips so the buses' and master's share is amortised (and reported alone).
//! 2. `render`: offline render of 32 one-minute mono stems through that strip, in x real time.
//!    The stems are kept in `$FB_BENCH_DIR` (default `target/bench-stems`) so
//!    `benches/compare-ffmpeg.sh` can run ffmpeg on the same material.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use faderbridge::dsp::util::DenormalGuard;
use faderbridge::engine::Engine;
use faderbridge::params::ParamTree;
use faderbridge::render::{self, RenderOptions};
use faderbridge::session;

const BLOCK: usize = 64;

/// CPU time used by this thread, in ns. On a shared machine this excludes the time the thread
/// spent descheduled, so it is a steadier measure of the cost on one core than wall time.
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Wall and thread-CPU time of `f`, in ns.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (Instant::now(), thread_cpu_ns());
    f();
    (t.elapsed().as_nanos() as f64, (thread_cpu_ns() - c) as f64)
}
const SR: f32 = 48000.0;

fn strip(i: usize, source: &str) -> String {
    format!(
        "  - name: ch{i}
    source: {source}
    hpf: {{ freq: 60, slope: 24 }}
    gate: {{ threshold_db: -60, range_db: 30, attack_ms: 0.5, hold_ms: 20, release_ms: 100 }}
    eq:
      - {{ type: low_shelf, freq: 80, gain_db: 2, q: 0.7 }}
      - {{ type: bell, freq: 400, gain_db: -3, q: 1.4 }}
      - {{ type: bell, freq: 2500, gain_db: 2, q: 1.0 }}
      - {{ type: high_shelf, freq: 9000, gain_db: 1.5, q: 0.7 }}
    comp: {{ threshold_db: -20, ratio: 3, knee_db: 6, attack_ms: 10, release_ms: 120 }}
    saturation: {{ drive_db: 4, mix: 0.3 }}
    pan: {pan}
    fader_db: -12
    sends: [ {{ bus: a1, level_db: -12 }}, {{ bus: a2, level_db: -18, pre_fader: true }} ]
",
        pan = ((i % 7) as f32 - 3.0) / 4.0
    )
}

fn session_text(n: usize, file_sources: bool, master: bool) -> String {
    let mut s = String::from("version: 1\nengine: { sample_rate: 48000, block: 64 }\nchannels:\n");
    for i in 0..n {
        let src = if file_sources {
            format!("{{ file: s{i}.wav }}")
        } else {
            format!("{{ input: {} }}", i + 1)
        };
        s += &strip(i, &src);
    }
    s += "buses:\n  - { name: a1, kind: aux }\n  - { name: a2, kind: aux }\n";
    if master {
        s += "master: { comp: { threshold_db: -12, ratio: 2 }, limiter: { ceiling_dbtp: -1 } }\n";
    }
    s
}

fn noise(seed: u32, n: usize, amp: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    let mut lp = 0.0f32;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let w = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
            lp += 0.2 * (w - lp);
            // Noise with a slow tremolo so gate and compressor work.
            amp * lp * (1.0 + (i as f32 * 0.0003 * (1 + seed % 5) as f32).sin()) * 0.5
        })
        .collect()
}

/// ns per frame of `engine.process` over `seconds` of audio: (wall, thread CPU).
fn time_engine(n_ch: usize, seconds: f32) -> (f64, f64) {
    let text = session_text(n_ch, false, false);
    let s = session::parse_str(&text, Path::new("bench.yaml")).expect("bench session");
    let tree = ParamTree::build(&s);
    let mut e = Engine::build(&s, &tree, &HashMap::new(), SR, BLOCK).expect("build");
    let inputs: Vec<Vec<f32>> = (0..n_ch).map(|i| noise(i as u32 + 1, 48000, 0.5)).collect();
    let mut out = vec![vec![0.0f32; BLOCK]; e.output_ports().len()];
    let blocks = (seconds * SR) as usize / BLOCK;
    let _ftz = DenormalGuard::new();
    let run = |e: &mut Engine, out: &mut Vec<Vec<f32>>, blocks: usize| {
        for b in 0..blocks {
            let off = (b * BLOCK) % (48000 - BLOCK);
            let ins: Vec<&[f32]> = inputs.iter().map(|i| &i[off..off + BLOCK]).collect();
            let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
            e.process(BLOCK, &ins, &mut outs);
        }
    };
    run(&mut e, &mut out, blocks / 10); // warm up
    // The fastest of several takes: a shared VM's neighbours only ever add time,
    // so the minimum is the best estimate of the code's own cost.
    let takes = std::env::var("FB_BENCH_TAKES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let frames = (blocks * BLOCK) as f64;
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..takes {
        let (wall, cpu) = timed(|| run(&mut e, &mut out, blocks));
        best = (best.0.min(wall / frames), best.1.min(cpu / frames));
    }
    best
}

/// ns per sample of one processor on 64-frame mono blocks.
fn time_part(name: &str, mut f: impl FnMut(&mut [&mut [f32]])) {
    let src = noise(7, 48000, 0.5);
    let mut buf = vec![0.0f32; BLOCK];
    let blocks = 48000 * 20 / BLOCK;
    let _ftz = DenormalGuard::new();
    let (wall, cpu) = timed(|| {
        for b in 0..blocks {
            let off = (b * BLOCK) % (48000 - BLOCK);
            buf.copy_from_slice(&src[off..off + BLOCK]);
            f(&mut [&mut buf[..]]);
        }
    });
    let n = (blocks * BLOCK) as f64;
    println!(
        "parts: {name:<28} {:6.2} ns/sample (wall {:6.2})",
        cpu / n,
        wall / n
    );
}

fn parts() {
    use faderbridge::dsp::dynamics::{Compressor, Gate, Saturation};
    use faderbridge::dsp::filters::{
        EqBand, EqKind, PassFilter, PassKind, Slope, process_series, try_process_fused,
    };
    use faderbridge::meter::PeakRms;
    let mut hpf = PassFilter::new(SR, 1, PassKind::HighPass);
    hpf.set(60.0, Slope::Db24);
    hpf.set_enabled(true);
    hpf.snap();
    time_part("hpf 24 dB/oct", |c| hpf.process(c));
    let mut eq: Vec<EqBand> = (0..4).map(|_| EqBand::new(SR, 1)).collect();
    for (i, b) in eq.iter_mut().enumerate() {
        b.set(EqKind::Bell, 100.0 * 4f32.powi(i as i32), 3.0, 1.0);
        b.set_enabled(true);
        b.snap();
    }
    time_part("eq 4 bands", |c| eq.iter_mut().for_each(|b| b.process(c)));
    let mut pass = [hpf.clone(), PassFilter::new(SR, 1, PassKind::LowPass)];
    time_part("hpf 24 dB/oct fused", |c| {
        process_series(&mut pass, &mut [], c)
    });
    time_part("eq 4 bands fused", |c| process_series(&mut [], &mut eq, c));
    let mut gate = Gate::new(SR);
    gate.set(-60.0, 30.0, 0.5, 20.0, 100.0);
    gate.set_enabled(true);
    gate.reset();
    time_part("gate", |c| gate.process(c));
    time_part("hpf + gate + eq fused", |c| {
        let mut t = gate.ticker();
        assert!(try_process_fused(&mut pass, &mut eq, c, &mut t));
        gate.finish(t);
    });
    time_part("hpf + eq fused (no gate)", |c| {
        assert!(try_process_fused(
            &mut pass,
            &mut eq,
            c,
            &mut faderbridge::dsp::filters::UnityGain
        ));
    });
    let mut comp = Compressor::new(SR);
    comp.set(-20.0, 3.0, 6.0, 10.0, 120.0, 0.0);
    comp.set_enabled(true);
    comp.reset();
    time_part("compressor", |c| comp.process(c));
    let mut sat = Saturation::new(SR);
    sat.set(4.0, 0.3);
    sat.set_enabled(true);
    sat.reset();
    time_part("saturation", |c| sat.process(c));
    let mut meter = PeakRms::new(SR, 1);
    time_part("peak/rms meter", |c| meter.process(&[&*c[0]]));
}

fn write_stems(dir: &Path, n: usize, seconds: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let path = dir.join(format!("s{i}.wav"));
        if path.exists() {
            continue;
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in noise(i as u32 + 1, seconds * 48000, 0.5) {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects one benchmark.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    if want("strip") {
        // Thread CPU time first, wall time in brackets.
        let one = time_engine(1, 10.0);
        let many = time_engine(32, 10.0);
        let empty = time_engine(0, 10.0);
        println!(
            "strip: 1 full strip          {:8.1} ns/frame (incl. buses; wall {:.1})",
            one.1, one.0
        );
        println!(
            "strip: 32 full strips        {:8.1} ns/frame = {:.1} ns per channel-sample \
             (wall {:.1} = {:.1})",
            many.1,
            (many.1 - empty.1) / 32.0,
            many.0,
            (many.0 - empty.0) / 32.0
        );
        println!(
            "strip: buses alone          {:8.1} ns/frame (wall {:.1})",
            empty.1, empty.0
        );
    }
    if want("parts") {
        parts();
    }
    if want("render") {
        let dir: PathBuf = std::env::var_os("FB_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/bench-stems"));
        write_stems(&dir, 32, 60);
        let session_path = dir.join("session.yaml");
        std::fs::write(&session_path, session_text(32, true, true)).unwrap();
        let out = dir.join("mix.wav");
        let opts = RenderOptions {
            out: out.clone(),
            start_s: None,
            end_s: None,
            format: faderbridge::media::WavFormat::F32,
            progress: false,
            automation: None,
        };
        let t = Instant::now();
        let report = render::render(&session_path, &opts).expect("render");
        let wall = t.elapsed().as_secs_f64();
        println!(
            "render: 32 stems x 60 s      {:8.2} s wall (incl. decoding) = {:.1}x real time; engine+write {:.1}x",
            wall,
            report.length_s() / wall,
            report.speed
        );
    }
}
