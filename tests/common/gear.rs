//! A JACK client "gear" standing in for outboard gear in the insert tests: `gear:in` →
//! a delay of `delay` samples → an optional fixed `[0.25, 0.5, 0.25]` filter (linear phase:
//! exactly one sample more) → gain (and polarity) → `gear:out`. Runs until dropped.
#![allow(dead_code)]

use faderbridge::audio::jack::{client_lock, open_client};
use jack::{AudioIn, AudioOut, Client, Control, Port, ProcessHandler, ProcessScope};

/// What the simulated gear does.
#[derive(Clone, Copy)]
pub struct GearSetup {
    /// Delay in samples (at least 1).
    pub delay: usize,
    pub gain_db: f32,
    pub invert: bool,
    /// `[0.25, 0.5, 0.25]` after the delay.
    pub filter: bool,
    /// Output silence (powered off).
    pub mute: bool,
}

impl GearSetup {
    /// A plain delay at unity gain.
    pub fn delay(delay: usize) -> GearSetup {
        GearSetup {
            delay,
            gain_db: 0.0,
            invert: false,
            filter: false,
            mute: false,
        }
    }
}

pub struct GearProc {
    inp: Port<AudioIn>,
    out: Port<AudioOut>,
    line: Vec<f32>,
    at: usize,
    gain: f32,
    filter: bool,
    x1: f32,
    x2: f32,
}

impl ProcessHandler for GearProc {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        let inp = self.inp.as_slice(ps);
        let out = self.out.as_mut_slice(ps);
        for (o, &x) in out.iter_mut().zip(inp) {
            let d = self.line[self.at];
            self.line[self.at] = x;
            self.at = (self.at + 1) % self.line.len();
            let y = if self.filter {
                let y = 0.25 * d + 0.5 * self.x1 + 0.25 * self.x2;
                self.x2 = self.x1;
                self.x1 = d;
                y
            } else {
                d
            };
            *o = y * self.gain;
        }
        Control::Continue
    }
}

/// The gear client, running until dropped.
pub struct Gear(Option<jack::AsyncClient<(), GearProc>>);

impl Gear {
    pub fn start(server: &str, g: GearSetup) -> Gear {
        Gear::start_named(server, "gear", g)
    }

    /// A gear client named `name` (ports `NAME:in`, `NAME:out`).
    pub fn start_named(server: &str, name: &str, g: GearSetup) -> Gear {
        let c = open_client(name, Some(server)).expect("gear client");
        assert_eq!(c.name(), name);
        let inp = c.register_port("in", AudioIn::default()).expect("in");
        let out = c.register_port("out", AudioOut::default()).expect("out");
        let gain = if g.mute {
            0.0
        } else {
            10f32.powf(g.gain_db / 20.0) * if g.invert { -1.0 } else { 1.0 }
        };
        let p = GearProc {
            inp,
            out,
            line: vec![0.0; g.delay],
            at: 0,
            gain,
            filter: g.filter,
            x1: 0.0,
            x2: 0.0,
        };
        Gear(Some(c.activate_async((), p).expect("activate gear")))
    }
}

impl Drop for Gear {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            let _g = client_lock();
            drop(a);
        }
    }
}
