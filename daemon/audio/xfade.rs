//! Click-free engine swaps, shared by the three live backends. When a new engine arrives (a
//! reload, a rebuild), the running one keeps playing beside it:
//!
//! 1. **Warm-up**: the new engine runs with its output discarded until its pipeline is full:
//!    at least [`Engine::latency`] frames (the insert latency delays, the latency
//!    compensation, the limiter's look-ahead), at most [`WARM_MAX_S`], in whole periods.
//! 2. **Crossfade** over [`FADE_MS`] (the backend's setting): an equal-gain raised cosine,
//!    `g_new = 0.5 − 0.5·cos(π·(k+1)/len)`, `g_old = 1 − g_new`. Both engines carry the same
//!    material, so their gains sum to 1 at every sample. Outputs are matched by port: a port
//!    both engines write crossfades, a port only the new one has fades in, one only the old
//!    one has fades out (each backend adds both engines' outputs × their gains into the
//!    port's buffer, so a shared port gets the sum).
//! 3. The fade ends after one more period at the end gains (the old engine silent, so ports
//!    only it wrote are left holding zeros); the old engine goes to the retire ring and is
//!    dropped by the backend's supervisor, off the audio thread.
//!
//! During the overlap both engines get the same inputs, the same block stamps
//! ([`Engine::begin_block`]) and the same transport: on arrival the new engine takes the
//! running one's position and play state (the position it was built with is stale by the
//! build time); the backend's transport moves (JACK's transport) go to both; and after every
//! period the old engine follows the new one, which is the one the console talks to (its
//! queue carries the console's play/stop/locate). The DSP load is about double meanwhile.
//!
//! What the console sees: it attached the new engine's handle, meters and loudness tap when
//! the engine was built, so it reads the new engine as soon as that one runs, from the start
//! of the warm-up (it plays the same material in step by then; its meters and loudness
//! include the few milliseconds of warm-up). A swap arriving while one is under way waits
//! until that one has ended (the newest of several waiting is taken, the others are retired
//! unused). The old engine gets no parameter changes any more: the fade is short.
//!
//! Real-time safe: nothing here allocates, locks or blocks; the scratch buffers the backends
//! render into during the overlap are allocated with their graphs on the control plane.

use std::time::Instant;

use super::swap::SwapRx;
use crate::engine::Engine;

/// The crossfade's length by default (milliseconds).
pub const FADE_MS: f32 = 30.0;

/// The longest warm-up (seconds): a bigger engine latency starts the fade with the new
/// engine's pipeline partly empty. (Insert latencies are capped at 2 s.)
pub const WARM_MAX_S: f32 = 2.5;

/// A point of the crossfade: gain of frame `i` of the current call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gain {
    /// Fade position (frames since the fade started) of the call's first frame.
    at: usize,
    /// Fade length (frames); 0: a hard cut.
    len: usize,
    /// True for the incoming engine.
    rising: bool,
}

impl Gain {
    /// The gain of frame `i` of the call. Real-time safe.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> f32 {
        let k = self.at + i;
        let r = if k + 1 >= self.len {
            1.0
        } else {
            let t = (k + 1) as f64 / self.len as f64;
            (0.5 - 0.5 * (std::f64::consts::PI * t).cos()) as f32
        };
        if self.rising { r } else { 1.0 - r }
    }
}

/// Where a voice's output goes in one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Out {
    /// To its ports as it is (no swap under way; or the running engine during a warm-up).
    Direct,
    /// Nowhere (the incoming engine warming up).
    Discard,
    /// Added to its ports × the gain (its ports were cleared first).
    Mix(Gain),
}

/// A backend's graph: an engine with the buffers it reads and writes.
pub(crate) trait Voice {
    fn engine(&mut self) -> &mut Engine;
}

/// How a [`Voice`] runs: `Io` is what the backend hands over per call (JACK: nothing, its
/// ports are in the graph; cpal: the device buffers).
pub(crate) trait Render<Io: ?Sized>: Voice {
    /// Zero this voice's output ports for the call (before any voice adds into them).
    fn clear(&mut self, io: &mut Io, frames: usize);
    /// Run the engine for `frames` frames, its outputs going as `out` says.
    fn render(&mut self, io: &mut Io, frames: usize, out: Out);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    /// Frames of warm-up left.
    Warm(usize),
    /// Frames faded so far.
    Fade(usize),
}

/// The running graph, the incoming one during a swap, and the swap queue (audio thread).
pub(crate) struct Deck<G> {
    cur: Box<G>,
    next: Option<Box<G>>,
    phase: Phase,
    rx: SwapRx<Box<G>>,
    fade_ms: f32,
    /// The current swap's fade length (frames).
    fade_len: usize,
}

impl<G> Deck<G> {
    /// `fade_ms`: the crossfade's length (0: a hard cut after the warm-up).
    pub(crate) fn new(graph: Box<G>, rx: SwapRx<Box<G>>, fade_ms: f32) -> Self {
        Self {
            cur: graph,
            next: None,
            phase: Phase::Idle,
            rx,
            fade_ms: fade_ms.max(0.0),
            fade_len: 0,
        }
    }

    /// The graph that was running before the swap under way (or the only one).
    pub(crate) fn current(&self) -> &G {
        &self.cur
    }

    /// The graph being faded in, if a swap is under way.
    #[cfg(test)]
    pub(crate) fn incoming(&self) -> Option<&G> {
        self.next.as_deref()
    }
}

impl<G: Voice> Deck<G> {
    /// Every running engine (the incoming one first), for the backend's transport moves.
    pub(crate) fn each_engine(&mut self, mut f: impl FnMut(&mut Engine)) {
        if let Some(n) = self.next.as_mut() {
            f(n.engine());
        }
        f(self.cur.engine());
    }

    /// Take a waiting graph when no swap is under way. Call at the start of every period,
    /// before the backend's transport moves. Real-time safe.
    pub(crate) fn poll(&mut self) {
        if self.phase != Phase::Idle {
            return;
        }
        let Some(mut next) = self.rx.take() else {
            return;
        };
        let (pos, playing) = {
            let e = self.cur.engine();
            (e.position(), e.playing())
        };
        let e = next.engine();
        e.set_playing(playing);
        e.seek(pos);
        let rate = e.sample_rate();
        let warm = e.latency().min((WARM_MAX_S * rate) as usize);
        self.fade_len = (self.fade_ms * 0.001 * rate).round() as usize;
        self.next = Some(next);
        self.phase = Phase::Warm(warm);
    }

    /// One period (or chunk) of `frames` frames whose first frame is engine frame `frame`,
    /// playing at `at`, at `rate` Hz. Real-time safe.
    pub(crate) fn process<Io: ?Sized>(
        &mut self,
        io: &mut Io,
        frames: usize,
        frame: u64,
        at: Instant,
        rate: u32,
    ) where
        G: Render<Io>,
    {
        if self.phase == Phase::Warm(0) {
            self.phase = Phase::Fade(0);
        }
        self.each_engine(|e| e.begin_block(frame, at, rate));
        let (cur, phase) = (&mut self.cur, self.phase);
        let Some(next) = self.next.as_mut() else {
            cur.render(io, frames, Out::Direct);
            return;
        };
        match phase {
            Phase::Idle => cur.render(io, frames, Out::Direct),
            Phase::Warm(left) => {
                // Ports only the new engine has stay silent.
                next.clear(io, frames);
                cur.render(io, frames, Out::Direct);
                next.render(io, frames, Out::Discard);
                self.phase = Phase::Warm(left.saturating_sub(frames));
            }
            Phase::Fade(done) => {
                let g = |rising| {
                    Out::Mix(Gain {
                        at: done,
                        len: self.fade_len,
                        rising,
                    })
                };
                next.clear(io, frames);
                cur.clear(io, frames);
                cur.render(io, frames, g(false));
                next.render(io, frames, g(true));
                self.phase = Phase::Fade(done.saturating_add(frames));
            }
        }
        // The old engine follows the new one's transport (the console drives that one).
        let (pos, playing) = {
            let e = next.engine();
            (e.position(), e.playing())
        };
        let old = cur.engine();
        if old.playing() != playing {
            old.set_playing(playing);
        }
        if old.position() != pos {
            old.seek(pos);
        }
        // A whole period at the end gains: the fade is over.
        if let Phase::Fade(done) = phase
            && done >= self.fade_len
            && self.rx.can_retire()
            && let Some(next) = self.next.take()
        {
            let old = std::mem::replace(&mut self.cur, next);
            if let Err(old) = self.rx.retire(old) {
                // Cannot happen (checked above); never drop an engine here.
                std::mem::forget(old);
            }
            self.phase = Phase::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::swap;
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    /// A voice writing a constant into some of the test's ports, over a real engine (for the
    /// transport and the latency), counting what it was asked to do.
    struct TestVoice {
        engine: Box<Engine>,
        ports: Vec<usize>,
        value: f32,
        direct: usize,
        discarded: usize,
        mixed: usize,
    }

    struct TestIo {
        outs: Vec<Vec<f32>>,
    }

    impl Voice for TestVoice {
        fn engine(&mut self) -> &mut Engine {
            &mut self.engine
        }
    }

    impl Render<TestIo> for TestVoice {
        fn clear(&mut self, io: &mut TestIo, frames: usize) {
            for &p in &self.ports {
                io.outs[p][..frames].fill(0.0);
            }
        }
        fn render(&mut self, io: &mut TestIo, frames: usize, out: Out) {
            let mut sink = [0.0f32; 64];
            let mut outs: [&mut [f32]; 1] = [&mut sink[..frames]];
            self.engine.process(frames, &[], &mut outs);
            for &p in &self.ports {
                let o = &mut io.outs[p][..frames];
                match out {
                    Out::Direct => o.fill(self.value),
                    Out::Discard => {}
                    Out::Mix(g) => o
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v += self.value * g.at(i)),
                }
            }
            match out {
                Out::Direct => self.direct += frames,
                Out::Discard => self.discarded += frames,
                Out::Mix(_) => self.mixed += frames,
            }
        }
    }

    const RATE: u32 = 48000;
    const PERIOD: usize = 64;

    fn engine(insert_latency: u32) -> Box<Engine> {
        let yaml = format!(
            "version: 1\nchannels:\n  - {{ name: a, source: {{ input: 1 }}, insert: {{ send: 3, return: 3, latency: {insert_latency} }} }}\n"
        );
        let s = crate::session::parse_str(&yaml, Path::new("/nonexistent/xfade.yaml"))
            .expect("session");
        let tree = crate::params::ParamTree::build(&s);
        Box::new(Engine::build(&s, &tree, &HashMap::new(), RATE as f32, PERIOD).expect("build"))
    }

    fn voice(insert_latency: u32, ports: &[usize]) -> Box<TestVoice> {
        Box::new(TestVoice {
            engine: engine(insert_latency),
            ports: ports.to_vec(),
            value: 1.0,
            direct: 0,
            discarded: 0,
            mixed: 0,
        })
    }

    /// Run `periods` periods, recording the three ports.
    fn run(deck: &mut Deck<TestVoice>, periods: usize, rec: &mut [Vec<f32>; 3], frame: &mut u64) {
        let mut io = TestIo {
            outs: vec![vec![7.0; PERIOD]; 3],
        };
        let at = Instant::now();
        for _ in 0..periods {
            // Stale buffers (JACK does not clear output ports): whatever no voice writes
            // shows up as 7.
            io.outs.iter_mut().for_each(|o| o.fill(7.0));
            assert_no_alloc::assert_no_alloc(|| {
                deck.poll();
                deck.process(&mut io, PERIOD, *frame, at, RATE);
            });
            *frame += PERIOD as u64;
            for (r, o) in rec.iter_mut().zip(&io.outs) {
                r.extend_from_slice(o);
            }
        }
    }

    #[test]
    fn gains_are_complementary_raised_cosines() {
        let len = 1440;
        for k in 0..len + 10 {
            let up = Gain {
                at: k,
                len,
                rising: true,
            }
            .at(0);
            let down = Gain {
                at: 0,
                len,
                rising: false,
            }
            .at(k);
            assert!((up + down - 1.0).abs() <= 1e-7, "sum at {k}: {}", up + down);
            let t = ((k + 1) as f64 / len as f64).min(1.0);
            let want = 0.5 - 0.5 * (std::f64::consts::PI * t).cos();
            assert!((f64::from(up) - want).abs() < 1e-6, "{k}");
        }
        // The first sample already moves; the last is the end value.
        let g = |k| {
            Gain {
                at: k,
                len,
                rising: true,
            }
            .at(0)
        };
        assert!(g(0) > 0.0 && g(0) < 1e-5);
        assert_eq!(g(len - 1), 1.0);
        // A hard cut: the new engine at once.
        let cut = Gain {
            at: 0,
            len: 0,
            rising: true,
        };
        assert_eq!(cut.at(0), 1.0);
    }

    /// Old engine on ports 0 and 1, new on 0 and 2, both writing 1.0: port 0 stays at exactly
    /// 1 throughout (gains sum to 1), port 1 fades out, port 2 fades in; the warm-up lasts
    /// the new engine's latency (rounded up to periods); the old engine retires once.
    #[test]
    fn a_swap_warms_up_crossfades_by_port_and_retires_once() {
        let (mut tx, rx) = swap::pair::<Box<TestVoice>>();
        let mut deck = Deck::new(voice(100, &[0, 1]), rx, FADE_MS);
        let mut rec: [Vec<f32>; 3] = Default::default();
        let mut frame = 0;
        run(&mut deck, 10, &mut rec, &mut frame);
        let new = voice(500, &[0, 2]);
        let latency = new.engine.latency();
        let fade = (FADE_MS * 0.001 * RATE as f32).round() as usize;
        assert!(latency > 500 && latency < 600, "{latency}");
        tx.send(new).map_err(|_| "room").expect("room");
        let swap_at = rec[0].len();
        run(&mut deck, 80, &mut rec, &mut frame);
        assert!(deck.incoming().is_none(), "the swap finished");
        assert_eq!(tx.collect(), 1, "the old engine retired once");
        assert!(!tx.busy());
        assert_eq!(tx.collect(), 0);

        let warm = latency.div_ceil(PERIOD) * PERIOD;
        let cur = deck.current();
        assert_eq!(cur.discarded, warm, "warm-up: the latency in whole periods");
        // The fade, then one period at the end gains.
        let fade_periods = fade.div_ceil(PERIOD) + 1;
        assert_eq!(cur.mixed, fade_periods * PERIOD);
        assert_eq!(cur.direct, 80 * PERIOD - warm - fade_periods * PERIOD);

        // Port 0: exactly 1 (to float rounding) at every sample, before, during, after.
        for (i, v) in rec[0].iter().enumerate() {
            assert!((v - 1.0).abs() <= 1e-6, "port 0 at {i}: {v}");
        }
        let fade_at = swap_at + warm;
        let g = |k: usize| {
            Gain {
                at: k,
                len: fade,
                rising: true,
            }
            .at(0)
        };
        let end = fade_at + fade_periods * PERIOD;
        let overlap = rec[1][swap_at..end].iter().zip(&rec[2][swap_at..end]);
        for (i, (&p1, &p2)) in (swap_at..).zip(overlap) {
            // Port 1 (old only): 1 until the fade, then falling to 0 (and held at 0).
            let want1 = if i < fade_at {
                1.0
            } else {
                1.0 - g(i - fade_at)
            };
            assert!((p1 - want1).abs() <= 1e-6, "port 1 at {i}: {p1}");
            // Port 2 (new only): silent (cleared) during the warm-up, then rising to 1.
            let want2 = if i < fade_at { 0.0 } else { g(i - fade_at) };
            assert!((p2 - want2).abs() <= 1e-6, "port 2 at {i}: {p2}");
        }
        assert!(
            rec[2][fade_at + fade_periods * PERIOD..]
                .iter()
                .all(|&v| v == 1.0)
        );
        // Before the swap nothing wrote port 2 (stale 7s), the old engine owned port 1.
        assert!(rec[2][..swap_at].iter().all(|&v| v == 7.0));
        // After the swap nobody writes port 1 any more (the backend prunes it).
        assert!(
            rec[1][fade_at + fade_periods * PERIOD..]
                .iter()
                .all(|&v| v == 7.0)
        );
    }

    /// The new engine takes the old one's transport on arrival; the old one follows the new
    /// one's transport during the overlap; swaps arriving during one wait, and of several
    /// waiting only the newest runs.
    #[test]
    fn transport_stays_in_step_and_later_swaps_wait() {
        let (mut tx, rx) = swap::pair::<Box<TestVoice>>();
        let mut old = voice(0, &[0]);
        old.engine.locate(12_345);
        let mut deck = Deck::new(old, rx, FADE_MS);
        let mut rec: [Vec<f32>; 3] = Default::default();
        let mut frame = 0;
        run(&mut deck, 4, &mut rec, &mut frame);
        let pos = 12_345 + 4 * PERIOD as u64;
        let mut new = voice(0, &[0]);
        new.engine.locate(99); // built with a stale position
        new.engine.set_playing(false);
        tx.send(new).map_err(|_| "room").expect("room");
        run(&mut deck, 1, &mut rec, &mut frame);
        let inc = deck.incoming().expect("swap under way");
        assert_eq!(inc.engine.position(), pos + PERIOD as u64);
        assert!(inc.engine.playing());
        // The console stops and relocates the new engine: the old one follows.
        deck.next.as_mut().expect("swap").engine.set_playing(false);
        deck.next.as_mut().expect("swap").engine.locate(500);
        // Two more swaps arrive during this one.
        tx.send(voice(0, &[1])).map_err(|_| "room").expect("room");
        tx.send(voice(0, &[2])).map_err(|_| "room").expect("room");
        run(&mut deck, 1, &mut rec, &mut frame);
        assert_eq!(deck.cur.engine.position(), 500);
        assert!(!deck.cur.engine.playing());
        assert_eq!(deck.incoming().expect("same swap").ports, vec![0]);
        run(&mut deck, 80, &mut rec, &mut frame);
        // The first swap ended, then the newest ran (ports [2]); [1] was retired unused.
        assert!(deck.incoming().is_none());
        assert_eq!(deck.current().ports, vec![2]);
        assert_eq!(tx.collect(), 3);
        assert!(!tx.busy());
    }
}
