//! Helpers shared by the integration tests: building an engine from YAML, running it over known
//! signals and measuring what comes out.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use faderbridge::engine::{Engine, EngineHandle};
use faderbridge::params::{ParamChange, ParamTree};
use faderbridge::session;

pub mod full_strip;

pub const SR: f32 = 48000.0;
pub const BLOCK: usize = 64;

/// An engine built from a session text (sources must be interface inputs or absent).
pub struct Rig {
    pub engine: Engine,
    pub tree: ParamTree,
    pub handle: EngineHandle,
}

impl Rig {
    pub fn new(yaml: &str) -> Self {
        let s = session::parse_str(yaml, Path::new("/nonexistent/test-session.yaml"))
            .unwrap_or_else(|e| panic!("test session does not parse:\n{e}"));
        let tree = ParamTree::build(&s);
        let mut engine = Engine::build(&s, &tree, &HashMap::new(), SR, BLOCK).expect("build");
        let handle = engine.handle();
        Rig {
            engine,
            tree,
            handle,
        }
    }

    /// Queue `path = value` at `frame` of the next block.
    pub fn set_at(&mut self, path: &str, value: f32, frame: u32) {
        let at = self.engine.next_frame() + u64::from(frame);
        self.set_at_frame(path, value, at);
    }

    /// Queue `path = value` at absolute engine frame `frame`.
    pub fn set_at_frame(&mut self, path: &str, value: f32, frame: u64) {
        let id = self
            .tree
            .resolve(path)
            .unwrap_or_else(|| panic!("no parameter {path}"));
        let addr = self.tree.get(id).addr;
        self.handle
            .send(ParamChange { addr, value, frame })
            .expect("queue full");
    }

    pub fn set(&mut self, path: &str, value: f32) {
        self.set_at(path, value, 0);
    }

    /// Run `inputs` (one signal per engine input, all the same length) through the engine in
    /// blocks; returns every output port's signal.
    pub fn run(&mut self, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        let frames = inputs.first().map_or(0, |i| i.len());
        self.run_frames(inputs, frames)
    }

    pub fn run_frames(&mut self, inputs: &[&[f32]], frames: usize) -> Vec<Vec<f32>> {
        let n_out = self.engine.output_ports().len();
        let mut out = vec![vec![0.0f32; frames]; n_out];
        let mut pos = 0;
        while pos < frames {
            let n = BLOCK.min(frames - pos);
            let ins: Vec<&[f32]> = inputs.iter().map(|i| &i[pos..pos + n]).collect();
            let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[pos..pos + n]).collect();
            self.engine.process(n, &ins, &mut outs);
            pos += n;
        }
        out
    }
}

pub fn sine(freq: f32, amp: f32, frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| {
            amp * (2.0 * std::f64::consts::PI * freq as f64 * i as f64 / SR as f64).sin() as f32
        })
        .collect()
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Amplitude of the `freq` component of `x` (single-bin DFT, Goertzel-style).
pub fn tone_amp(x: &[f32], freq: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq as f64 / SR as f64;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        re += v as f64 * (w * i as f64).cos();
        im -= v as f64 * (w * i as f64).sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}
