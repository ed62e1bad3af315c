//! The map engine against a real console: every expectation is computed independently of the
//! engine (the fader law of DESIGN.md, the encoders' byte formats, the takeover rules).

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::control::Console;
use crate::midimap::format::parse_str;
use crate::session;

const SESSION: &str = "version: 1\nchannels:\n  - { name: a, source: { input: 1 } }\n  - { name: b, source: { input: 2 } }\n  - { name: c, source: { input: 3 } }\n  - { name: d, source: { input: 4 } }\n  - { name: e, source: { input: 5 }, eq: [ { type: bell, freq: 1000, gain_db: 0, q: 1 } ] }\nmaster: { outputs: [1, 2] }\n";

fn rig(map: &str) -> (Console, ConsoleHandle, MapEngine) {
    let s = session::parse_str(SESSION, Path::new("/nonexistent/t.yaml")).unwrap();
    let (c, h) = Console::new(ParamTree::build(&s), None);
    let m = parse_str(map, Path::new("m.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let o = h.register_surface("test-map");
    let e = MapEngine::new(h.clone(), o, Arc::new(m));
    (c, h, e)
}

fn cc(ch: u8, n: u8, v: u8) -> MidiEvent {
    MidiEvent::ControlChange {
        channel: ch,
        controller: n,
        value: v,
    }
}

fn note(n: u8, v: u8) -> MidiEvent {
    MidiEvent::NoteOn {
        channel: 0,
        note: n,
        velocity: v,
    }
}

/// The X32 fader law (DESIGN.md), written out again: travel → dB.
fn law(f: f64) -> f64 {
    if f >= 0.5 {
        40.0 * f - 30.0
    } else if f >= 0.25 {
        80.0 * f - 50.0
    } else if f >= 0.0625 {
        160.0 * f - 70.0
    } else if f > 0.0 {
        480.0 * f - 90.0
    } else {
        f64::NEG_INFINITY
    }
}

fn get(h: &ConsoleHandle, p: &str) -> f64 {
    f64::from(h.get_sync(p).unwrap())
}

#[test]
fn cc_on_fader_follows_the_fader_law() {
    let (_c, h, mut e) =
        rig("name: t\ncontrols:\n  - { cc: 7, target: ch/a/fader_db, takeover: jump }\n");
    let now = Instant::now();
    for v in [0u8, 1, 8, 20, 32, 64, 95, 96, 100, 127] {
        e.on_midi(cc(0, 7, v), now);
        let want = law(f64::from(v) / 127.0);
        let got = get(&h, "ch/a/fader_db");
        if want.is_infinite() {
            assert!(got.is_infinite() && got < 0.0, "cc {v}: {got}");
        } else {
            assert!(
                (got - want).abs() < 1e-3,
                "cc {v}: {got} dB, law says {want}"
            );
        }
    }
}

#[test]
fn resolution_7_bit_14_bit_and_nrpn() {
    let (_c, h, mut e) = rig(
        "name: t\ntakeover: jump\ncontrols:\n  - { cc: 7, target: ch/a/fader_db }\n  - { cc14: 1, target: ch/b/fader_db }\n  - { nrpn14: 300, target: ch/c/fader_db }\n  - { nrpn: 301, target: ch/d/fader_db }\n",
    );
    let now = Instant::now();
    // A 14-bit position between two 7-bit steps: 0.6 of the travel.
    let v14: u16 = 9830;
    let (msb, lsb) = ((v14 >> 7) as u8, (v14 & 0x7F) as u8);
    e.on_midi(cc(0, 1, msb), now);
    e.on_midi(cc(0, 33, lsb), now);
    for (cmd, n, v) in [
        (99, 0, 300u16 >> 7),
        (98, 0, 300 & 0x7F),
        (6, 0, u16::from(msb)),
        (38, 0, u16::from(lsb)),
    ] {
        let _ = n;
        e.on_midi(cc(0, cmd, v as u8), now);
    }
    let want = law(f64::from(v14) / 16383.0);
    // One 14-bit step near 0.6 travel is 40/16383 dB.
    let step14 = 40.0 / 16383.0;
    for p in ["ch/b/fader_db", "ch/c/fader_db"] {
        let got = get(&h, p);
        assert!((got - want).abs() <= step14, "{p}: {got} vs {want}");
    }
    // 7-bit: the nearest of 128 steps, ten times coarser.
    e.on_midi(cc(0, 7, msb), now);
    let got7 = get(&h, "ch/a/fader_db");
    assert!((got7 - law(f64::from(msb) / 127.0)).abs() < 1e-3);
    assert!(
        (got7 - want).abs() > step14,
        "7-bit lands off the 14-bit value: {got7} vs {want}"
    );
    e.on_midi(cc(0, 99, 2), now);
    e.on_midi(cc(0, 98, 45), now);
    e.on_midi(cc(0, 6, 127), now);
    assert_eq!(
        get(&h, "ch/d/fader_db"),
        10.0,
        "NRPN 301 at the top: +10 dB"
    );
}

#[test]
fn transforms_range_invert_curve_linear() {
    let (_c, h, mut e) = rig(
        "name: t\ntakeover: jump\ncontrols:\n  - { cc: 1, target: ch/e/eq/1/freq }\n  - { cc: 2, target: ch/a/fader_db, range: [-40, 0], taper: linear }\n  - { cc: 3, target: ch/b/pan, invert: true }\n  - { cc: 4, target: ch/c/pan, curve: 2 }\n",
    );
    let now = Instant::now();
    e.on_midi(cc(0, 1, 64), now);
    // Log taper 20..20000 Hz (the EQ band's range): 20 * 1000^(64/127).
    let want = 20.0 * 1000f64.powf(64.0 / 127.0);
    assert!(
        (get(&h, "ch/e/eq/1/freq") / want - 1.0).abs() < 1e-3,
        "{}",
        get(&h, "ch/e/eq/1/freq")
    );
    e.on_midi(cc(0, 2, 32), now);
    assert!((get(&h, "ch/a/fader_db") - (-40.0 + 40.0 * 32.0 / 127.0)).abs() < 1e-3);
    e.on_midi(cc(0, 3, 127), now);
    assert_eq!(get(&h, "ch/b/pan"), -1.0, "inverted: top is left");
    e.on_midi(cc(0, 4, 64), now);
    let t = (64.0f64 / 127.0).powi(2);
    assert!((get(&h, "ch/c/pan") - (-1.0 + 2.0 * t)).abs() < 1e-4);
}

#[test]
fn encoder_formats_and_acceleration() {
    assert_eq!(decode_ticks(Encoding::TwosComplement, 1), 1);
    assert_eq!(decode_ticks(Encoding::TwosComplement, 127), -1);
    assert_eq!(decode_ticks(Encoding::TwosComplement, 65), -63);
    assert_eq!(decode_ticks(Encoding::SignMagnitude, 0x43), -3);
    assert_eq!(decode_ticks(Encoding::SignMagnitude, 0x05), 5);
    assert_eq!(decode_ticks(Encoding::BinaryOffset, 64), 0);
    assert_eq!(decode_ticks(Encoding::BinaryOffset, 66), 2);
    assert_eq!(decode_ticks(Encoding::BinaryOffset, 61), -3);
    let (_c, h, mut e) = rig(
        "name: t\ncontrols:\n  - { cc: 10, target: ch/a/pan, encoder: twos_complement, step: 0.05 }\n  - { cc: 11, target: ch/b/pan, encoder: binary_offset, step: 0.01, accel: 4, accel_ms: 50 }\n  - { note: 1, target: ch/c/pan, encoder: inc, step: 0.1 }\n  - { note: 2, target: ch/c/pan, encoder: dec, step: 0.1 }\n",
    );
    let t0 = Instant::now();
    // Pan -1..1 linear: 0.05 of travel is 0.1 of pan.
    e.on_midi(cc(0, 10, 2), t0);
    assert!((get(&h, "ch/a/pan") - 0.2).abs() < 1e-5);
    e.on_midi(cc(0, 10, 127), t0 + Duration::from_secs(1));
    assert!((get(&h, "ch/a/pan") - 0.1).abs() < 1e-5);
    // Slow ticks: 0.01 each (0.02 of pan); a fast one counts four times.
    e.on_midi(cc(0, 11, 65), t0);
    assert!((get(&h, "ch/b/pan") - 0.02).abs() < 1e-5);
    e.on_midi(cc(0, 11, 65), t0 + Duration::from_millis(200));
    assert!((get(&h, "ch/b/pan") - 0.04).abs() < 1e-5);
    e.on_midi(cc(0, 11, 65), t0 + Duration::from_millis(220));
    assert!(
        (get(&h, "ch/b/pan") - 0.12).abs() < 1e-5,
        "{}",
        get(&h, "ch/b/pan")
    );
    e.on_midi(note(1, 127), t0);
    e.on_midi(note(1, 0), t0);
    e.on_midi(note(1, 127), t0);
    e.on_midi(note(2, 127), t0);
    assert!((get(&h, "ch/c/pan") - 0.2).abs() < 1e-5, "two up, one down");
}

#[test]
fn pickup_waits_for_the_crossing_then_tracks() {
    let (_c, h, mut e) = rig("name: t\ncontrols:\n  - { cc: 7, target: ch/a/pan }\n");
    let now = Instant::now();
    let other = h.register_surface("other");
    h.set_sync("ch/a/pan", 0.0, other).unwrap(); // travel 0.5 ≈ cc 63.5
    for v in [100u8, 90, 80, 70] {
        e.on_midi(cc(0, 7, v), now);
        assert_eq!(
            get(&h, "ch/a/pan"),
            0.0,
            "cc {v} above the value: no change"
        );
    }
    e.on_midi(cc(0, 7, 60), now); // crossed 63.5 between 70 and 60
    let want = -1.0 + 2.0 * 60.0 / 127.0;
    assert!((get(&h, "ch/a/pan") - want).abs() < 1e-5);
    e.on_midi(cc(0, 7, 90), now);
    assert!(
        (get(&h, "ch/a/pan") - (-1.0 + 2.0 * 90.0 / 127.0)).abs() < 1e-5,
        "tracking"
    );
    // Someone else moves it: pickup again.
    h.set_sync("ch/a/pan", -1.0, other).unwrap();
    let c = Change {
        path: "ch/a/pan".into(),
        id: h.tree().resolve("ch/a/pan").unwrap(),
        value: -1.0,
        origin: other,
    };
    e.on_change(&c);
    e.on_midi(cc(0, 7, 95), now);
    assert_eq!(get(&h, "ch/a/pan"), -1.0);
    e.on_midi(cc(0, 7, 0), now);
    assert_eq!(get(&h, "ch/a/pan"), -1.0, "reached the value: picked up");
    e.on_midi(cc(0, 7, 10), now);
    assert!((get(&h, "ch/a/pan") - (-1.0 + 20.0 / 127.0)).abs() < 1e-5);
}

#[test]
fn scale_takeover_meets_the_control_at_the_end() {
    let (_c, h, mut e) =
        rig("name: t\ncontrols:\n  - { cc: 7, target: ch/a/pan, takeover: scale }\n");
    let now = Instant::now();
    let other = h.register_surface("other");
    h.set_sync("ch/a/pan", 0.0, other).unwrap(); // travel 0.5
    e.on_midi(cc(0, 7, 0), now); // first report: nothing known yet to scale from
    assert_eq!(get(&h, "ch/a/pan"), 0.0);
    // Control at 0, parameter at 0.5: moving up to 63.5/127 would halve the remaining gap.
    e.on_midi(cc(0, 7, 32), now);
    let t1 = 0.5 + (32.0 / 127.0) * 0.5 / 1.0;
    let p1 = -1.0 + 2.0 * t1;
    assert!(
        (get(&h, "ch/a/pan") - p1).abs() < 1e-4,
        "{} vs {p1}",
        get(&h, "ch/a/pan")
    );
    e.on_midi(cc(0, 7, 127), now);
    assert_eq!(get(&h, "ch/a/pan"), 1.0, "they meet at the top");
}

#[test]
fn banks_shift_toggle_and_feedback() {
    let (_c, h, mut e) = rig(
        "name: t\nbank_size: 2\nchannel: 1\ncontrols:\n  - { note: [10, 11], target: \"ch/{strip}/mute\" }\n  - { note: [10, 11], target: \"ch/{strip}/solo\", layer: shift }\n  - { note: 20, action: bank_up }\n  - { note: 21, action: bank_down }\n  - { note: 22, action: shift }\n  - { cc: [0, 1], target: \"ch/{strip}/fader_db\", feedback: true }\n",
    );
    let now = Instant::now();
    e.connected();
    let out = e.take_out();
    // LEDs off for both mutes, motor faders at 0 dB (travel 0.75 → 95).
    assert!(
        out.contains(&note(10, 0)) && out.contains(&cc(0, 0, 95)),
        "{out:?}"
    );
    e.on_midi(note(11, 127), now);
    assert_eq!(get(&h, "ch/b/mute"), 1.0);
    assert_eq!(
        e.take_out(),
        vec![note(11, 127)],
        "toggle LED follows the press"
    );
    e.on_midi(note(11, 0), now);
    assert_eq!(get(&h, "ch/b/mute"), 1.0, "release does not toggle");
    e.on_midi(note(20, 127), now);
    assert_eq!(e.bank(), 2);
    e.on_midi(note(10, 127), now);
    assert_eq!(
        get(&h, "ch/c/mute"),
        1.0,
        "{{strip}} 1 is channel 3 in bank 2"
    );
    e.on_midi(note(20, 127), now);
    assert_eq!(e.bank(), 4);
    e.on_midi(note(20, 127), now);
    assert_eq!(e.bank(), 4, "no bank past the last channel");
    e.on_midi(note(21, 127), now);
    e.on_midi(note(21, 127), now);
    assert_eq!(e.bank(), 0);
    e.take_out();
    e.on_midi(note(22, 127), now);
    e.on_midi(note(10, 127), now);
    assert_eq!(get(&h, "ch/a/solo"), 1.0, "shift layer");
    assert_eq!(get(&h, "ch/a/mute"), 0.0);
    e.on_midi(note(22, 0), now);
    // Feedback: an OSC-like change from elsewhere moves the motor; an own move is not echoed.
    e.take_out();
    let other = h.register_surface("other");
    h.set_sync("ch/a/fader_db", -10.0, other).unwrap();
    e.on_change(&Change {
        path: "ch/a/fader_db".into(),
        id: h.tree().resolve("ch/a/fader_db").unwrap(),
        value: -10.0,
        origin: other,
    });
    assert_eq!(
        e.take_out(),
        vec![cc(0, 0, 64)],
        "-10 dB is travel 0.5 → 63.5 → 64"
    );
    e.on_midi(cc(0, 0, 100), now);
    let own = Change {
        path: "ch/a/fader_db".into(),
        id: h.tree().resolve("ch/a/fader_db").unwrap(),
        value: h.get_sync("ch/a/fader_db").unwrap(),
        origin: e.origin,
    };
    e.on_change(&own);
    assert!(e.take_out().is_empty(), "own move is not echoed");
}

#[test]
fn program_change_scenes_transport_and_automation_buttons() {
    let (_c, h, mut e) = rig(
        "name: t\ncontrols:\n  - { program: true, scenes: [quiet, loud] }\n  - { note: 1, action: scene, scene: loud }\n  - { note: 2, action: play }\n  - { note: 3, action: stop }\n  - { note: [4, 5], action: automation, mode: touch, feedback: true }\n",
    );
    let now = Instant::now();
    // An engine behind the console, so that the transport has something to start and stop.
    let s = session::parse_str(SESSION, Path::new("/nonexistent/t.yaml")).unwrap();
    let mut engine = crate::engine::Engine::build(
        &s,
        &h.tree(),
        &std::collections::HashMap::new(),
        48000.0,
        64,
    )
    .expect("engine");
    h.attach_engine(engine.handle(), engine.meter_bank());
    let ui = h.register_surface("ui");
    h.set_sync("ch/a/fader_db", -20.0, ui).unwrap();
    h.scene_save_sync("quiet").unwrap();
    h.set_sync("ch/a/fader_db", 5.0, ui).unwrap();
    h.scene_save_sync("loud").unwrap();
    e.on_midi(
        MidiEvent::ProgramChange {
            channel: 3,
            program: 0,
        },
        now,
    );
    assert_eq!(get(&h, "ch/a/fader_db"), -20.0, "program 0 → scenes[0]");
    e.on_midi(note(1, 127), now);
    assert_eq!(get(&h, "ch/a/fader_db"), 5.0, "scene button");
    e.on_midi(note(3, 127), now);
    assert!(!h.playing(), "stop");
    e.on_midi(note(2, 127), now);
    assert!(h.playing(), "play");
    e.connected();
    e.take_out();
    e.on_midi(note(5, 127), now);
    assert_eq!(e.auto_mode("ch/b"), AutoMode::Touch);
    assert_eq!(e.take_out(), vec![note(5, 127)], "the strip's TOUCH LED");
    e.on_midi(note(5, 127), now);
    assert_eq!(
        e.auto_mode("ch/b"),
        AutoMode::Off,
        "pressing the lit mode turns it off"
    );
    assert_eq!(e.take_out(), vec![note(5, 0)]);
}
