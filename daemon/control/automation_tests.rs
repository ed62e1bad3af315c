//! The modes' semantics, each against a table of expected lane values after a scripted pass:
//! a real engine (processed block by block by the test, so positions are exact) drives the
//! console's transport position; surfaces set and touch through the console's API.

use std::collections::HashMap;
use std::path::Path;

use super::super::*;
use crate::automation::{Mode, Point};
use crate::engine::Engine;
use crate::session;

const SESSION: &str = r#"
version: 1
engine: { sample_rate: 48000, block: 480 }
channels:
  - name: kick
    source: { input: 1 }
    sends: [ { bus: fx, level_db: -12 } ]
buses:
  - { name: fx, kind: aux }
master:
  outputs: [1, 2]
"#;

const FADER: &str = "ch/kick/fader_db";
/// 10 ms blocks at 48 kHz.
const BLOCK: usize = 480;

struct Rig {
    h: ConsoleHandle,
    _c: Console,
    engine: Engine,
    ui: Origin,
}

impl Rig {
    fn new() -> Rig {
        let s = session::parse_str(SESSION, Path::new("/nonexistent/a.yaml")).expect("session");
        let (c, h) = Console::new(ParamTree::build(&s), None);
        let mut engine =
            Engine::build(&s, &h.tree(), &HashMap::new(), 48000.0, BLOCK).expect("engine");
        h.attach_engine(engine.handle(), engine.meter_bank());
        h.set_engine_stats(EngineStats {
            sample_rate: 48000,
            ..EngineStats::default()
        });
        let ui = h.register_surface("test");
        let mut rig = Rig {
            h,
            _c: c,
            engine,
            ui,
        };
        // Stopped at 0, ready for a pass.
        rig.h.transport(Transport::Stop).expect("stop");
        rig.block(BLOCK);
        rig
    }

    fn block(&mut self, n: usize) {
        let (mut l, mut r) = (vec![0.0; n], vec![0.0; n]);
        let mut outs: [&mut [f32]; 2] = [&mut l, &mut r];
        self.engine.process(n, &[], &mut outs);
        self.h.shared.lock().auto_tick(&self.h.shared);
    }

    /// Play on to transport frame `to` (ticking the console every block).
    fn to(&mut self, to: u64) {
        while self.engine.position() < to {
            let n = (to - self.engine.position()).min(BLOCK as u64) as usize;
            self.block(n);
        }
        assert_eq!(self.engine.position(), to);
    }

    fn play(&mut self) {
        self.h.transport(Transport::Play).expect("play");
    }

    fn stop(&mut self) {
        self.h.transport(Transport::Stop).expect("stop");
        self.block(BLOCK);
    }

    fn set(&self, v: f32) {
        self.h.set_sync(FADER, v, self.ui).expect("set");
    }

    fn touch(&self, on: bool) {
        self.h.touch_sync(FADER, on, self.ui).expect("touch");
    }

    fn lane_at(&self, frame: u64) -> f32 {
        let mut l = crate::automation::Lane::new(crate::automation::Interp::Linear);
        l.points = self.h.lane(FADER).expect("lane");
        l.value_at(frame).expect("a lane")
    }

    /// Every (frame, expected dB) of `table` read back from the lane within 0.06 dB (the
    /// thinning tolerance is 0.05 dB).
    fn check(&self, what: &str, table: &[(u64, f32)]) {
        for &(f, want) in table {
            let got = self.lane_at(f);
            assert!(
                (got - want).abs() < 0.06,
                "{what}: lane at frame {f} is {got} dB, expected {want} dB; lane {:?}",
                self.h.lane(FADER)
            );
        }
    }

    /// The scripted ride of the touch and latch tables: a flat -10 dB lane, `mode`, play from
    /// 0; touch at 48000, -5 dB there, -3 dB at 72000, release at 96000.
    fn ride(&mut self, mode: Mode) {
        self.flat(-10.0);
        self.h.set_automation(FADER, mode).expect("mode");
        self.play();
        self.to(48_000);
        self.touch(true);
        self.set(-5.0);
        self.to(72_000);
        self.set(-3.0);
        self.to(96_000);
        self.touch(false);
    }

    fn flat(&self, db: f32) {
        let pts = vec![
            Point {
                frame: 0,
                value: db,
            },
            Point {
                frame: 480_000,
                value: db,
            },
        ];
        self.h.set_lane(FADER, pts).expect("lane");
    }
}

#[test]
fn touch_writes_while_touched_then_glides_back_to_the_old_curve() {
    let mut r = Rig::new();
    r.ride(Mode::Touch);
    r.to(150_000);
    r.stop();
    // Glide 250 ms = 12000 frames from -3 dB at 96000 to the old -10 dB at 108000.
    r.check(
        "touch",
        &[
            (24_000, -10.0),
            (47_900, -10.0),
            (60_000, -5.0),
            (71_000, -5.0),
            (84_000, -3.0),
            (95_000, -3.0),
            (102_000, -6.5),
            (108_000, -10.0),
            (130_000, -10.0),
            (300_000, -10.0),
        ],
    );
    assert_eq!(r.h.automation(FADER), Ok(Mode::Touch));
    // Thinning: a held value needs two points, not one per 10 ms tick.
    let n = r.h.lane(FADER).expect("lane").len();
    assert!(n <= 16, "{n} points: {:?}", r.h.lane(FADER));
}

#[test]
fn latch_holds_the_last_value_until_the_transport_stops() {
    let mut r = Rig::new();
    r.ride(Mode::Latch);
    r.to(144_000);
    r.stop();
    r.check(
        "latch",
        &[
            (24_000, -10.0),
            (60_000, -5.0),
            (84_000, -3.0),
            (120_000, -3.0),
            (143_000, -3.0),
            (150_000, -10.0),
            (300_000, -10.0),
        ],
    );
}

#[test]
fn write_overwrites_from_play_to_stop_then_turns_into_touch() {
    let mut r = Rig::new();
    r.flat(-10.0);
    r.h.set_automation(FADER, Mode::Write).expect("mode");
    r.h.set_sync(FADER, -8.0, Origin::Internal).expect("set");
    r.play();
    r.to(48_000);
    // No touch: a MIDI-map-like surface; the move touches implicitly.
    r.set(-5.0);
    r.to(72_000);
    r.set(-3.0);
    r.to(144_000);
    r.stop();
    r.check(
        "write",
        &[
            (100, -8.0),
            (24_000, -8.0),
            (47_000, -8.0),
            (60_000, -5.0),
            (100_000, -3.0),
            (143_000, -3.0),
            (150_000, -10.0),
            (300_000, -10.0),
        ],
    );
    assert_eq!(
        r.h.automation(FADER),
        Ok(Mode::Touch),
        "write turns into touch"
    );
}

#[test]
fn trim_writes_the_offset_on_top_of_the_old_curve_and_undo_puts_it_back() {
    let mut r = Rig::new();
    // A fade from -20 dB to -10 dB over 4 s.
    let fade = vec![
        Point {
            frame: 0,
            value: -20.0,
        },
        Point {
            frame: 192_000,
            value: -10.0,
        },
    ];
    let old = |f: u64| -20.0 + 10.0 * f as f32 / 192_000.0;
    r.h.set_lane(FADER, fade).expect("lane");
    r.h.set_automation(FADER, Mode::Trim).expect("mode");
    r.play();
    r.to(48_000);
    // The fader shows the lane (-17.5 dB); the ride adds +3 dB.
    assert!((r.h.get_sync(FADER).expect("get") - old(48_000)).abs() < 1e-3);
    r.touch(true);
    r.set(old(48_000) + 3.0);
    r.to(72_000);
    // While trimming, the parameter plays the old curve plus the offset.
    let heard = r.h.get_sync(FADER).expect("get");
    assert!((heard - (old(72_000) + 3.0)).abs() < 0.01, "{heard}");
    r.to(96_000);
    r.touch(false);
    r.to(150_000);
    r.stop();
    r.check(
        "trim",
        &[
            (24_000, old(24_000)),
            (60_000, old(60_000) + 3.0),
            (84_000, old(84_000) + 3.0),
            (95_000, old(95_000) + 3.0),
            (120_000, old(120_000)),
            (180_000, old(180_000)),
        ],
    );
    assert_eq!(r.h.automation_undo(), 1);
    r.check(
        "after undo",
        &[(60_000, old(60_000)), (84_000, old(84_000))],
    );
    assert_eq!(r.h.automation_undo(), 0, "one level of undo");
}

#[test]
fn read_shows_the_lane_on_surfaces_and_a_touch_overrides_it_then_it_glides_back() {
    let mut r = Rig::new();
    let ramp = vec![
        Point {
            frame: 0,
            value: -30.0,
        },
        Point {
            frame: 96_000,
            value: -10.0,
        },
    ];
    r.h.set_lane(FADER, ramp).expect("lane");
    // The fader where the lane starts, so engaging it needs no glide.
    r.h.set_sync(FADER, -30.0, Origin::Internal).expect("set");
    r.h.set_automation(FADER, Mode::Read).expect("mode");
    let mut rx = r.h.subscribe();
    r.play();
    r.to(48_000);
    // Every tick showed the lane's value at its position, tagged as automation.
    let shown: Vec<f32> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter(|c| &*c.path == FADER && c.origin == Origin::Automation)
        .map(|c| c.value)
        .collect();
    assert!(shown.len() >= 90, "{} values shown", shown.len());
    assert!((shown[shown.len() - 1] - (-20.0)).abs() < 1e-3, "{shown:?}");
    assert!(shown.windows(2).all(|w| w[1] > w[0]), "a rising ramp");
    // A touch overrides: the surface's value stays.
    r.touch(true);
    r.set(-3.0);
    r.to(60_000);
    assert_eq!(r.h.get_sync(FADER), Ok(-3.0));
    // Released at 60000: back on the lane over 12000 frames, halfway at 66000.
    r.touch(false);
    r.to(66_000);
    let lane = -30.0 + 20.0 * 66_000.0 / 96_000.0;
    let mid = r.h.get_sync(FADER).expect("get");
    assert!((mid - (-3.0 + (lane - -3.0) * 0.5)).abs() < 0.05, "{mid}");
    r.to(80_000);
    let lane = -30.0 + 20.0 * 80_000.0 / 96_000.0;
    assert!((r.h.get_sync(FADER).expect("get") - lane).abs() < 1e-3);
    // Nothing was written in read mode.
    assert_eq!(r.h.lane(FADER).expect("lane").len(), 2);
}

#[test]
fn read_can_refuse_surface_moves() {
    let mut r = Rig::new();
    r.flat(-10.0);
    r.h.set_automation_config(AutomationConfig {
        read_touch: ReadTouch::Ignore,
        ..AutomationConfig::default()
    });
    r.h.set_automation(FADER, Mode::Read).expect("mode");
    r.play();
    r.to(4_800);
    assert_eq!(r.h.set_sync(FADER, -3.0, r.ui), Ok(-10.0));
    assert_eq!(r.h.get_sync(FADER), Ok(-10.0));
}

#[test]
fn an_implicit_touch_ends_a_second_after_the_last_move() {
    let mut r = Rig::new();
    r.flat(-10.0);
    r.h.set_automation(FADER, Mode::Touch).expect("mode");
    r.play();
    r.to(4_800);
    r.set(-6.0);
    assert_eq!(r.h.is_touched(FADER), Ok(true));
    // Expire it now instead of waiting a second.
    {
        let mut g = r.h.shared.lock();
        for t in g.auto.implicit.values_mut() {
            *t = StdInstant::now();
        }
    }
    r.to(9_600);
    assert_eq!(r.h.is_touched(FADER), Ok(false));
    r.to(48_000);
    r.stop();
    // Released at the next tick (5280): the pass glides back to the old curve over 12000
    // frames.
    r.check(
        "implicit",
        &[
            (2_000, -10.0),
            (5_000, -6.0),
            (11_280, -8.0),
            (40_000, -10.0),
        ],
    );
}

#[test]
fn lanes_are_saved_with_the_state_and_restored() {
    let dir = crate::state::tests::TestDir::new("auto-lanes");
    let sd = crate::state::StateDir::open(&dir.0).expect("state dir");
    let s = session::parse_str(SESSION, Path::new("/nonexistent/a.yaml")).expect("session");
    let (c, h) = Console::new(ParamTree::build(&s), Some(sd.clone()));
    h.set_engine_stats(EngineStats {
        sample_rate: 48000,
        ..EngineStats::default()
    });
    let pts = vec![
        Point {
            frame: 10,
            value: f32::NEG_INFINITY,
        },
        Point {
            frame: 48_000,
            value: -6.0,
        },
    ];
    h.set_lane(FADER, pts.clone()).expect("lane");
    h.set_automation(FADER, Mode::Read).expect("mode");
    let saved = c.shared.lock().saved_state();
    sd.save(&saved).expect("save");
    let (_c2, h2) = Console::new(ParamTree::build(&s), Some(sd));
    assert_eq!(h2.lane(FADER).expect("lane"), pts);
    assert_eq!(h2.lane_rate(), 48_000);
    // A backend at 96 kHz counts the same times in twice the frames.
    h2.set_engine_stats(EngineStats {
        sample_rate: 96000,
        ..EngineStats::default()
    });
    assert_eq!(h2.lane(FADER).expect("lane")[1].frame, 96_000);
}

#[test]
fn a_rate_change_that_merges_two_points_keeps_the_later_one() {
    let s = session::parse_str(SESSION, Path::new("/nonexistent/a.yaml")).expect("session");
    let (_c, h) = Console::new(ParamTree::build(&s), None);
    let stats = |sample_rate| EngineStats {
        sample_rate,
        ..EngineStats::default()
    };
    h.set_engine_stats(stats(48000));
    let p = |frame, value| Point { frame, value };
    h.set_lane(FADER, vec![p(101, -10.0), p(102, -3.0), p(48_000, -6.0)])
        .expect("lane");
    // At 24 kHz, 101 and 102 both round to frame 51 (50.5 rounds away from zero); the later
    // point (as a lane file's rule keeps it) survives.
    h.set_engine_stats(stats(24000));
    assert_eq!(
        h.lane(FADER).expect("lane"),
        vec![p(51, -3.0), p(24_000, -6.0)]
    );
}

#[test]
fn a_slow_ride_is_thinned_at_least_fivefold_within_tolerance() {
    let mut r = Rig::new();
    r.h.set_automation(FADER, Mode::Touch).expect("mode");
    r.play();
    r.to(4_800);
    r.touch(true);
    // 10 s of a slow ride: a 0.2 Hz sine of ±6 dB around -12 dB, one move per 10 ms block.
    let ride =
        |f: u64| -12.0 + 6.0 * (2.0 * std::f64::consts::PI * 0.2 * f as f64 / 48_000.0).sin();
    let mut moves = Vec::new();
    let mut f = 4_800;
    while f < 4_800 + 480_000 {
        let v = ride(f) as f32;
        r.set(v);
        moves.push((f, v));
        f += BLOCK as u64;
        r.to(f);
    }
    r.touch(false);
    r.to(f + 24_000);
    r.stop();
    let n = r.h.lane(FADER).expect("lane").len();
    assert!(
        n * 5 <= moves.len(),
        "{n} points kept of {} moves",
        moves.len()
    );
    for &(f, v) in &moves {
        let got = r.lane_at(f);
        assert!((got - v).abs() <= 0.05 + 1e-4, "at {f}: {got} vs {v}");
    }
    eprintln!("slow ride: {} moves kept as {n} points", moves.len());
}
