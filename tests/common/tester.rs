//! The test side of the live JACK tests: a JACK client that plays a signal into the daemon and
//! records what comes back, and an engine started on `RunningAudio` with the JACK backend.
//!
//! [`Tester`] has `N` outputs and `M` inputs. Each cycle it asks its signal (a closure of JACK's
//! frame time) for one value per output and frame, and pushes a [`Frame`] (the frame time, what
//! it played, what its inputs heard) through an rtrb ring to the test thread, which collects
//! them with [`Tester::record`] (polled with a deadline). Connections are made by full port
//! name once the client runs. A player alone is a `Tester<1, 0>`, a recorder alone a
//! `Tester<0, 1>`: two clients where a test needs the graph player → daemon → recorder without
//! a cycle (one client both playing and recording closes one, and JACK adds a period).
//!
//! Include it with `#[path = "common/tester.rs"] mod tester;`.

#![allow(dead_code)] // each test binary uses part of it

use std::time::{Duration, Instant};

use faderbridge::audio::jack::{client_lock, open_client};
use faderbridge::audio::{AudioConfig, BackendKind, EngineFactory, RunningAudio};
use jack::{AudioIn, AudioOut, Client, Control, Port, ProcessHandler, ProcessScope};

/// How long [`Tester::record`] may take at the most.
pub const RECORD_DEADLINE: Duration = Duration::from_secs(30);
/// Frames the ring holds (10 s at 48 kHz): far more than the test thread leaves in it.
const RING: usize = 48000 * 10;

/// One frame as the tester saw it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<const N: usize, const M: usize> {
    /// JACK's frame time of the sample.
    pub time: u32,
    /// What each output played.
    pub played: [f32; N],
    /// What each input heard.
    pub heard: [f32; M],
}

/// What a tester plays: one value per output for the frame at a JACK frame time (called once
/// per frame, in order, on the audio thread).
pub type Signal<const N: usize> = Box<dyn FnMut(i64) -> [f32; N] + Send>;

/// Deterministic noise: a linear congruential generator (`s·1664525 + 1013904223`), the top
/// 24 bits of the state as a value in [-1, 1) times `amp`.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    state: u32,
    amp: f32,
}

impl Noise {
    pub fn new(seed: u32, amp: f32) -> Noise {
        Noise { state: seed, amp }
    }

    pub fn next_sample(&mut self) -> f32 {
        self.state = self
            .state
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        self.amp * ((self.state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
    }

    /// The noise as the signal of a one-output tester.
    pub fn signal(mut self) -> Signal<1> {
        Box::new(move |_| [self.next_sample()])
    }
}

/// Silence: the signal of a tester without outputs (a recorder).
pub fn no_signal() -> Signal<0> {
    Box::new(|_| [])
}

pub struct TesterProc<const N: usize, const M: usize> {
    outs: [Port<AudioOut>; N],
    ins: [Port<AudioIn>; M],
    signal: Signal<N>,
    tx: rtrb::Producer<Frame<N, M>>,
}

impl<const N: usize, const M: usize> ProcessHandler for TesterProc<N, M> {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        let f0 = ps.last_frame_time();
        let mut outs = self.outs.each_mut().map(|p| p.as_mut_slice(ps));
        let ins = self.ins.each_ref().map(|p| p.as_slice(ps));
        for i in 0..ps.n_frames() as usize {
            let played = (self.signal)(i64::from(f0) + i as i64);
            for (o, v) in outs.iter_mut().zip(played) {
                o[i] = v;
            }
            if M > 0 {
                let heard = ins.map(|s| s[i]);
                let time = f0.wrapping_add(i as u32);
                let _ = self.tx.push(Frame {
                    time,
                    played,
                    heard,
                });
            }
        }
        Control::Continue
    }
}

/// The tester client, running until dropped.
pub struct Tester<const N: usize, const M: usize> {
    client: Option<jack::AsyncClient<(), TesterProc<N, M>>>,
    rx: rtrb::Consumer<Frame<N, M>>,
}

impl<const N: usize, const M: usize> Drop for Tester<N, M> {
    fn drop(&mut self) {
        let _g = client_lock();
        self.client.take();
    }
}

impl<const N: usize, const M: usize> Tester<N, M> {
    /// The client `name` on `server` with outputs `outs` and inputs `ins` (port names), playing
    /// `signal`, and then the connections `connect` (full port names, source → destination).
    pub fn start(
        server: &str,
        name: &str,
        outs: [&str; N],
        ins: [&str; M],
        signal: Signal<N>,
        connect: &[(&str, &str)],
    ) -> Tester<N, M> {
        let c = open_client(name, Some(server)).unwrap_or_else(|e| panic!("{name} client: {e}"));
        let outs = outs.map(|p| {
            c.register_port(p, AudioOut::default())
                .unwrap_or_else(|e| panic!("{name}:{p}: {e}"))
        });
        let ins = ins.map(|p| {
            c.register_port(p, AudioIn::default())
                .unwrap_or_else(|e| panic!("{name}:{p}: {e}"))
        });
        let (tx, rx) = rtrb::RingBuffer::new(RING);
        let p = TesterProc {
            outs,
            ins,
            signal,
            tx,
        };
        let a = c
            .activate_async((), p)
            .unwrap_or_else(|e| panic!("activate {name}: {e}"));
        let cl = a.as_client();
        for (s, d) in connect {
            cl.connect_ports_by_name(s, d)
                .unwrap_or_else(|e| panic!("connect {s} -> {d}: {e}"));
        }
        Tester {
            client: Some(a),
            rx,
        }
    }

    fn drain(&mut self) -> Vec<Frame<N, M>> {
        let mut v = Vec::new();
        while let Ok(x) = self.rx.pop() {
            v.push(x);
        }
        v
    }

    /// Record at least `frames` frames from now on (what came before is dropped), polling with
    /// a deadline.
    pub fn record(&mut self, frames: usize) -> Vec<Frame<N, M>> {
        self.record_then(frames, usize::MAX, || {})
    }

    /// [`Tester::record`], calling `act` once `at` frames are recorded.
    pub fn record_then(
        &mut self,
        frames: usize,
        at: usize,
        mut act: impl FnMut(),
    ) -> Vec<Frame<N, M>> {
        self.drain();
        let mut v = Vec::new();
        let mut acted = false;
        let deadline = Instant::now() + RECORD_DEADLINE;
        while v.len() < frames {
            assert!(
                Instant::now() < deadline,
                "recorded only {} frames",
                v.len()
            );
            std::thread::sleep(Duration::from_millis(10));
            v.extend(self.drain());
            if !acted && v.len() >= at {
                act();
                acted = true;
            }
        }
        v
    }
}

/// What output `k` played, frame by frame.
pub fn played<const N: usize, const M: usize>(rec: &[Frame<N, M>], k: usize) -> Vec<f32> {
    rec.iter().map(|f| f.played[k]).collect()
}

/// What input `k` heard, frame by frame.
pub fn heard<const N: usize, const M: usize>(rec: &[Frame<N, M>], k: usize) -> Vec<f32> {
    rec.iter().map(|f| f.heard[k]).collect()
}

/// The first place where JACK's frame time jumps in a recording (a skipped cycle): the index
/// of the frame before the gap and how many frames are missing.
pub fn skipped<const N: usize, const M: usize>(rec: &[Frame<N, M>]) -> Option<(usize, u32)> {
    rec.windows(2)
        .position(|w| w[1].time != w[0].time.wrapping_add(1))
        .map(|i| (i, rec[i + 1].time.wrapping_sub(rec[i].time).wrapping_sub(1)))
}

/// Start `factory`'s engine on `RunningAudio` with the JACK backend on `server` (client name
/// `faderbridge`) and wait until the session's ports are linked.
pub fn start_engine(server: &str, factory: EngineFactory) -> RunningAudio {
    let cfg = AudioConfig {
        client_name: "faderbridge".into(),
        jack_server: Some(server.into()),
        ..AudioConfig::default()
    };
    let audio = RunningAudio::start(BackendKind::Jack, cfg, factory).expect("start");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audio.stats().linked {
        assert!(
            Instant::now() < deadline,
            "the session's ports never linked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    audio
}
