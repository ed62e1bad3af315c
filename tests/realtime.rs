//! The real-time rule, enforced: thousands of blocks with every processor of every strip, bus
//! and the master active, while parameters change through the queue, under an allocation
//! guard that aborts the test on any heap allocation, reallocation or free in `process`.

use assert_no_alloc::{AllocDisabler, assert_no_alloc};

mod common;
use common::full_strip::FULL_STRIP;
use common::*;

#[cfg(debug_assertions)]
#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

fn session() -> String {
    let mut s = String::from("version: 1\nchannels:\n");
    for i in 0..8 {
        let out = if i < 4 { "drums" } else { "master" };
        let src = if i % 2 == 0 {
            format!("{{ input: {} }}", i + 1)
        } else {
            format!("{{ input: [{}, {}] }}", i + 1, i + 2)
        };
        s += &format!("  - name: ch{i}\n    source: {src}\n    output: {out}\n{FULL_STRIP}\n");
    }
    s += "buses:
  - { name: drums, kind: group, eq: [ { type: bell, freq: 200, gain_db: 2 } ], comp: { threshold_db: -12, ratio: 2 } }
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 2.0, predelay_ms: 20, damping: 0.5 } } }
  - { name: echo, kind: aux, fx: { delay: { time_ms: 180, feedback: 0.4, ping_pong: true } } }
  - { name: cue, kind: aux, outputs: [3, 4] }
master:
  eq: [ { type: high_shelf, freq: 12000, gain_db: 1.0, q: 0.7 } ]
  comp: { threshold_db: -12, ratio: 2, attack_ms: 30, release_ms: 200 }
  limiter: { ceiling_dbtp: -1.0 }
";
    s
}

#[test]
fn process_never_allocates_with_everything_active_and_parameters_moving() {
    let mut rig = Rig::new(&session());
    let frames = BLOCK * 3000; // 4 s
    let inputs: Vec<Vec<f32>> = (0..10)
        .map(|i| sine(55.0 * (i + 1) as f32, 0.5, frames))
        .collect();
    let n_out = rig.engine.output_ports().len();
    let mut out = vec![vec![0.0f32; BLOCK]; n_out];
    let paths = [
        "ch/ch0/fader_db",
        "ch/ch1/eq/2/freq",
        "ch/ch2/comp/threshold_db",
        "ch/ch3/pan",
        "ch/ch4/hpf/freq",
        "bus/verb/fx/reverb/decay_s",
        "bus/echo/fx/delay/time_ms",
        "master/limiter/ceiling_dbtp",
        "ch/ch5/solo",
        "ch/ch6/mute",
        "ch/ch7/sends/verb/level_db",
    ];
    let ids: Vec<_> = paths
        .iter()
        .map(|p| rig.tree.resolve(p).expect(p))
        .collect();
    // The master's loudness tap runs too; drained (off the guard) only every 1000 blocks, so
    // the 1 s ring also overflows: of 1000 blocks = 64000 frames, 48000 fit, 16000 drop,
    // three times in the 3000 blocks.
    let mut loudness = faderbridge::engine::LoudnessMeter::new();
    loudness.attach(rig.engine.loudness_tap());
    let mut peak = 0.0f32;
    for b in 0..frames / BLOCK {
        if b % 1000 == 0 {
            loudness.drain();
        }
        // Every block, queue a change with a frame offset inside the block.
        let id = ids[b % ids.len()];
        let p = rig.tree.get(id);
        let phase = (b as f32 * 0.01).sin() * 0.5 + 0.5;
        let value = p.spec.from_normalized(phase);
        let addr = p.addr;
        rig.handle
            .send(faderbridge::params::ParamChange {
                addr,
                value,
                frame: rig.engine.next_frame() + (b % BLOCK) as u64,
            })
            .expect("queue");
        let ins: Vec<&[f32]> = inputs
            .iter()
            .map(|i| &i[b * BLOCK..(b + 1) * BLOCK])
            .collect();
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[..]).collect();
        let engine = &mut rig.engine;
        assert_no_alloc(|| engine.process(BLOCK, &ins, &mut outs));
        peak = out[..2]
            .iter()
            .flat_map(|o| o.iter())
            .fold(peak, |m, &v| m.max(v.abs()));
        assert!(out.iter().all(|o| o.iter().all(|v| v.is_finite())));
    }
    // Sound came out, and the limiter held it under its highest ceiling.
    assert!(peak > 0.01, "peak {peak}");
    // The ceiling moves between -20 and 0 dBTP during the run.
    assert!(peak <= 1.0 + 1e-3, "peak {peak}");
    // Meters are readable afterwards (outside the guard: they return owned data).
    let m = rig.engine.meters();
    assert_eq!(m.channels.len(), 8);
    assert!(m.channels[0].peak_db[0] > -60.0);
    let l = loudness.read();
    assert_eq!(l.dropped_frames, 3 * (1000 * BLOCK as u64 - SR as u64));
    assert!(
        l.integrated_lufs.is_finite() && l.integrated_lufs < 0.0,
        "{l:?}"
    );
}

/// 256 mono inputs (four times the old 64-input cap), each a tone of its own frequency panned
/// hard left at its own level: every tone reaches master L at exactly its level (pan law 1.0
/// at hard left, unity fader), none leaks to R, and `process` never allocates, with calls of
/// 200 frames so each is split into sub-blocks at non-zero offsets (max block 64).
#[test]
fn every_one_of_256_inputs_reaches_the_master_without_allocating() {
    const CH: usize = 256;
    let mut yaml = String::from("version: 1\nchannels:\n");
    for i in 0..CH {
        yaml += &format!(
            "  - {{ name: in{i}, source: {{ input: {} }}, pan: -1 }}\n",
            i + 1
        );
    }
    let mut rig = Rig::new(&yaml);
    assert_eq!(rig.engine.input_ports().len(), CH);
    // Multiples of 10 Hz: whole periods in a 0.1 s window, so the single-bin DFTs of
    // different tones are orthogonal. Levels 1..2 mV (sum peak < 0.5: the limiter stays out).
    let freq = |i: usize| 50.0 + 70.0 * i as f32;
    let amp = |i: usize| 0.001 + 0.001 * i as f32 / CH as f32;
    let frames = 24000;
    let inputs: Vec<Vec<f32>> = (0..CH).map(|i| sine(freq(i), amp(i), frames)).collect();
    let mut out = [vec![0.0f32; frames], vec![0.0f32; frames]];
    let call = 200;
    let mut pos = 0;
    while pos < frames {
        let n = call.min(frames - pos);
        let ins: Vec<&[f32]> = inputs.iter().map(|x| &x[pos..pos + n]).collect();
        let [l, r] = &mut out;
        let mut outs: Vec<&mut [f32]> = vec![&mut l[pos..pos + n], &mut r[pos..pos + n]];
        let engine = &mut rig.engine;
        assert_no_alloc(|| engine.process(n, &ins, &mut outs));
        pos += n;
    }
    let win = &out[0][frames - 4800..];
    let right = &out[1][frames - 4800..];
    let mut worst = 0.0f64;
    for i in 0..CH {
        let got = tone_amp(win, freq(i));
        let err_db = (db(got) - db(amp(i) as f64)).abs();
        worst = worst.max(err_db);
        assert!(
            err_db < 0.01,
            "input {i} ({} Hz): {got:.6} at master L, expected {}",
            freq(i),
            amp(i)
        );
    }
    assert!(
        rms(right) < 1e-6,
        "hard left leaked to R: rms {}",
        rms(right)
    );
    eprintln!("256 inputs at master L: worst level error {worst:.5} dB");
}
