//! Unit tests of the dialect: every address family through [`Xair::incoming`] against a plain
//! value store, with expectations computed from the console's documented tables.

use std::collections::HashMap;

use rosc::{OscMessage, OscType};

use super::address::tests::tree;
use super::*;

/// A value store holding every parameter of the test tree.
struct Store {
    values: HashMap<String, f32>,
    read_only: bool,
    sets: usize,
}

impl Store {
    fn new() -> Self {
        let t = tree();
        Self {
            values: t
                .params()
                .iter()
                .map(|p| (p.path.clone(), p.initial))
                .collect(),
            read_only: false,
            sets: 0,
        }
    }
}

impl Values for Store {
    fn get(&self, path: &str) -> Option<f32> {
        self.values.get(path).copied()
    }

    fn set(&mut self, path: &str, value: f32) -> Result<f32, String> {
        if self.read_only {
            return Err("read-only client".into());
        }
        let slot = self
            .values
            .get_mut(path)
            .ok_or_else(|| format!("{path}: no such parameter"))?;
        *slot = value;
        self.sets += 1;
        Ok(value)
    }
}

fn info() -> ServerInfo {
    ServerInfo {
        ip: "192.168.1.20".into(),
        name: "faderbridge".into(),
    }
}

/// The dialect and the tree it serves.
struct Rig {
    x: Xair,
    t: crate::params::ParamTree,
}

impl Rig {
    fn incoming(&self, msg: &OscMessage, st: &mut Store) -> Response {
        self.x.incoming(&self.t, msg, st, &info())
    }
}

fn xair() -> Rig {
    Rig { x: Xair, t: tree() }
}

fn m(addr: &str, args: Vec<OscType>) -> OscMessage {
    OscMessage {
        addr: addr.into(),
        args,
    }
}

/// Query `addr` and return its single argument.
fn query(x: &Rig, st: &mut Store, addr: &str) -> OscType {
    let r = x.incoming(&m(addr, vec![]), st);
    assert_eq!(r.error, None, "{addr}");
    assert_eq!(r.replies.len(), 1, "{addr}");
    assert_eq!(r.replies[0].addr, addr);
    assert_eq!(r.replies[0].args.len(), 1, "{addr}");
    r.replies[0].args[0].clone()
}

fn float(a: &OscType) -> f32 {
    match a {
        OscType::Float(f) => *f,
        other => panic!("expected a float, got {other:?}"),
    }
}

fn int(a: &OscType) -> i32 {
    match a {
        OscType::Int(i) => *i,
        other => panic!("expected an int, got {other:?}"),
    }
}

#[test]
fn info_replies_have_the_consoles_shape() {
    let x = xair();
    let mut st = Store::new();
    let strs = |addr: &str, st: &mut Store| -> Vec<String> {
        let r = x.incoming(&m(addr, vec![]), st);
        assert_eq!(r.replies.len(), 1);
        assert_eq!(r.replies[0].addr, addr);
        r.replies[0]
            .args
            .iter()
            .map(|a| match a {
                OscType::String(s) => s.clone(),
                other => panic!("{addr}: non-string argument {other:?}"),
            })
            .collect()
    };
    assert_eq!(
        strs("/xinfo", &mut st),
        ["192.168.1.20", "faderbridge", "XR18", "1.17"]
    );
    assert_eq!(
        strs("/info", &mut st),
        ["V0.04", "faderbridge", "XR18", "1.17"]
    );
    assert_eq!(
        strs("/status", &mut st),
        ["active", "192.168.1.20", "faderbridge"]
    );
    assert_eq!(st.sets, 0);
}

#[test]
fn queries_answer_the_session_values_in_console_format() {
    let x = xair();
    let mut st = Store::new();
    let cases: &[(&str, f32)] = &[
        // fader -3 dB: (−3 + 30) / 40.
        ("/ch/01/mix/fader", 27.0 / 40.0),
        // pan -0.25 → (−0.25 + 1) / 2.
        ("/ch/01/mix/pan", 0.375),
        // send -12 dB: (−12 + 50) / 80.
        ("/ch/01/mix/02/level", 38.0 / 80.0),
        // eq band 1 at 60 Hz: log(60/20) / log(1000).
        ("/ch/01/eq/1/f", (3.0f32).ln() / (1000.0f32).ln()),
        // +3 dB on ±15: (3 + 15) / 30.
        ("/ch/01/eq/1/g", 0.6),
        // Q 0.7 on logf [10, 0.3]: ln(0.07) / ln(0.03).
        ("/ch/01/eq/1/q", (0.07f32).ln() / (0.03f32).ln()),
        // comp threshold -18 on -60..0.
        ("/ch/01/dyn/thr", 42.0 / 60.0),
        // makeup 2 dB on 0..24.
        ("/ch/01/dyn/mgain", 2.0 / 24.0),
        // knee 3 dB on 0..5.
        ("/ch/01/dyn/knee", 0.6),
        // gate threshold -50 on -80..0.
        ("/ch/01/gate/thr", 30.0 / 80.0),
        // gate hold 50 ms on logf [0.02, 2000]: ln(2500) / ln(100000).
        ("/ch/01/gate/hold", (2500.0f32).ln() / (100000.0f32).ln()),
        // HPF 40 Hz on logf [20, 400]: ln 2 / ln 20.
        ("/ch/01/preamp/hpf", (2.0f32).ln() / (20.0f32).ln()),
        // master -1 dB.
        ("/lr/mix/fader", 29.0 / 40.0),
        // group bus send: no send in our model.
        ("/ch/01/mix/01/level", 0.0),
    ];
    for &(addr, want) in cases {
        let got = float(&query(&x, &mut st, addr));
        assert!((got - want).abs() < 1e-5, "{addr}: {got}, want {want}");
    }
    let ints: &[(&str, i32)] = &[
        ("/ch/01/mix/on", 1),
        ("/ch/02/mix/on", 0), // snare is muted
        ("/ch/01/eq/1/type", 1),
        ("/ch/01/eq/2/type", 2),
        ("/ch/01/eq/on", 1),
        ("/ch/02/eq/on", 0),
        ("/ch/01/dyn/on", 1),
        ("/ch/01/dyn/ratio", 6), // 4:1
        ("/ch/02/dyn/on", 0),
        ("/ch/01/gate/on", 1),
        ("/ch/01/preamp/hpon", 1),
        ("/ch/02/preamp/hpon", 0),
        ("/ch/01/preamp/invert", 0),
        ("/lr/mix/on", 1),
    ];
    for &(addr, want) in ints {
        assert_eq!(int(&query(&x, &mut st, addr)), want, "{addr}");
    }
    assert_eq!(
        query(&x, &mut st, "/ch/01/config/name"),
        OscType::String("kick".into())
    );
    assert_eq!(
        query(&x, &mut st, "/bus/2/config/name"),
        OscType::String("verb".into())
    );
    assert_eq!(
        query(&x, &mut st, "/lr/config/name"),
        OscType::String("LR".into())
    );
}

/// One set through the dialect: what is stored, and what the console shows afterwards.
struct Case {
    addr: &'static str,
    sent: OscType,
    path: &'static str,
    /// Our stored value (from the console's table, clamped to our range).
    ours: f32,
    /// The value a query shows afterwards.
    shown: OscType,
}

fn f(addr: &'static str, sent: f32, path: &'static str, ours: f32, shown: f32) -> Case {
    Case {
        addr,
        sent: OscType::Float(sent),
        path,
        ours,
        shown: OscType::Float(shown),
    }
}

fn i(addr: &'static str, sent: i32, path: &'static str, ours: f32, shown: i32) -> Case {
    Case {
        addr,
        sent: OscType::Int(sent),
        path,
        ours,
        shown: OscType::Int(shown),
    }
}

#[test]
fn every_family_round_trips_through_our_values() {
    let x = xair();
    let cases = [
        // Fader law at the documented points, both directions.
        f("/ch/01/mix/fader", 1.0, "ch/kick/fader_db", 10.0, 1.0),
        f("/ch/01/mix/fader", 0.75, "ch/kick/fader_db", 0.0, 0.75),
        f("/ch/01/mix/fader", 0.5, "ch/kick/fader_db", -10.0, 0.5),
        f("/ch/01/mix/fader", 0.25, "ch/kick/fader_db", -30.0, 0.25),
        f(
            "/ch/01/mix/fader",
            0.0,
            "ch/kick/fader_db",
            f32::NEG_INFINITY,
            0.0,
        ),
        // Mute inversion.
        i("/ch/01/mix/on", 0, "ch/kick/mute", 1.0, 0),
        i("/ch/02/mix/on", 1, "ch/snare/mute", 0.0, 1),
        f("/ch/01/mix/pan", 0.25, "ch/kick/pan", -0.5, 0.25),
        f("/ch/01/mix/pan", 1.0, "ch/kick/pan", 1.0, 1.0),
        // Sends use the fader law.
        f(
            "/ch/01/mix/02/level",
            0.5,
            "ch/kick/sends/verb/level_db",
            -10.0,
            0.5,
        ),
        f(
            "/ch/01/mix/02/level",
            0.0625,
            "ch/kick/sends/verb/level_db",
            -60.0,
            0.0625,
        ),
        // EQ.
        i("/ch/01/eq/1/type", 4, "ch/kick/eq/1/type", 2.0, 4), // HShv
        i("/ch/01/eq/1/type", 2, "ch/kick/eq/1/type", 0.0, 2), // PEQ
        i("/ch/01/eq/1/type", 0, "ch/kick/eq/1/type", 1.0, 1), // LCut → low shelf → LShv
        i("/ch/01/eq/1/type", 3, "ch/kick/eq/1/type", 0.0, 2), // VEQ → bell → PEQ
        f("/ch/01/eq/2/f", 0.5, "ch/kick/eq/2/freq", 632.455_5, 0.5),
        f(
            "/ch/01/eq/2/f",
            2.0 / 3.0,
            "ch/kick/eq/2/freq",
            2000.0,
            2.0 / 3.0,
        ),
        f("/ch/01/eq/2/g", 0.75, "ch/kick/eq/2/gain_db", 7.5, 0.75),
        f("/ch/01/eq/2/g", 0.0, "ch/kick/eq/2/gain_db", -15.0, 0.0),
        f("/ch/01/eq/2/q", 0.5, "ch/kick/eq/2/q", 1.732_050_8, 0.5),
        f("/ch/01/eq/2/q", 1.0, "ch/kick/eq/2/q", 0.3, 1.0),
        // Compressor.
        i("/ch/02/dyn/on", 1, "ch/snare/comp/on", 1.0, 1),
        f(
            "/ch/01/dyn/thr",
            0.5,
            "ch/kick/comp/threshold_db",
            -30.0,
            0.5,
        ),
        i("/ch/01/dyn/ratio", 0, "ch/kick/comp/ratio", 1.1, 0),
        i("/ch/01/dyn/ratio", 9, "ch/kick/comp/ratio", 10.0, 9),
        i("/ch/01/dyn/ratio", 11, "ch/kick/comp/ratio", 100.0, 11),
        f(
            "/ch/01/dyn/attack",
            0.5,
            "ch/kick/comp/attack_ms",
            60.0,
            0.5,
        ),
        // 0 ms is below our 0.05 ms minimum: stored 0.05, shown 0.05 / 120.
        f(
            "/ch/01/dyn/attack",
            0.0,
            "ch/kick/comp/attack_ms",
            0.05,
            0.05 / 120.0,
        ),
        // logf [5, 4000] at 0.5: 5 · 800^0.5.
        f(
            "/ch/01/dyn/release",
            0.5,
            "ch/kick/comp/release_ms",
            141.421_36,
            0.5,
        ),
        f("/ch/01/dyn/knee", 0.4, "ch/kick/comp/knee_db", 2.0, 0.4),
        f(
            "/ch/01/dyn/mgain",
            0.25,
            "ch/kick/comp/makeup_db",
            6.0,
            0.25,
        ),
        // Gate.
        i("/ch/02/gate/on", 1, "ch/snare/gate/on", 1.0, 1),
        f(
            "/ch/01/gate/thr",
            0.5,
            "ch/kick/gate/threshold_db",
            -40.0,
            0.5,
        ),
        f("/ch/01/gate/range", 0.0, "ch/kick/gate/range_db", 3.0, 0.0),
        f("/ch/01/gate/range", 1.0, "ch/kick/gate/range_db", 60.0, 1.0),
        // 0.9 → 108 ms, above our 100 ms maximum: stored 100, shown 100 / 120.
        f(
            "/ch/01/gate/attack",
            0.9,
            "ch/kick/gate/attack_ms",
            100.0,
            100.0 / 120.0,
        ),
        f(
            "/ch/01/gate/attack",
            0.25,
            "ch/kick/gate/attack_ms",
            30.0,
            0.25,
        ),
        // logf [0.02, 2000] at 0.5: 0.02 · 100000^0.5.
        f(
            "/ch/01/gate/hold",
            0.5,
            "ch/kick/gate/hold_ms",
            6.324_555,
            0.5,
        ),
        f(
            "/ch/01/gate/release",
            1.0,
            "ch/kick/gate/release_ms",
            4000.0,
            1.0,
        ),
        // Preamp.
        i("/ch/02/preamp/hpon", 1, "ch/snare/hpf/on", 1.0, 1),
        // logf [20, 400] at 0.5: 20 · 20^0.5.
        f("/ch/01/preamp/hpf", 0.5, "ch/kick/hpf/freq", 89.442_72, 0.5),
        i("/ch/01/preamp/invert", 1, "ch/kick/invert", 1.0, 1),
        // Buses and main.
        f("/bus/2/mix/fader", 0.5, "bus/verb/fader_db", -10.0, 0.5),
        i("/bus/1/mix/on", 0, "bus/drums/mute", 1.0, 0),
        f(
            "/bus/1/dyn/thr",
            0.25,
            "bus/drums/comp/threshold_db",
            -45.0,
            0.25,
        ),
        f("/lr/mix/fader", 0.625, "master/fader_db", -5.0, 0.625),
        f("/lr/eq/3/g", 1.0, "master/eq/3/gain_db", 15.0, 1.0),
    ];
    for c in &cases {
        let mut st = Store::new();
        let r = x.incoming(&m(c.addr, vec![c.sent.clone()]), &mut st);
        assert_eq!(r.error, None, "{}", c.addr);
        let stored = st.values[c.path];
        let tol = (c.ours.abs() * 1e-5).max(1e-5);
        assert!(
            stored == c.ours || (stored - c.ours).abs() <= tol,
            "{} {:?}: stored {stored}, want {}",
            c.addr,
            c.sent,
            c.ours
        );
        let shown = query(&x, &mut st, c.addr);
        match (&shown, &c.shown) {
            (OscType::Float(a), OscType::Float(b)) => {
                assert!((a - b).abs() <= 1e-5, "{}: shows {a}, want {b}", c.addr)
            }
            (a, b) => assert_eq!(a, b, "{}", c.addr),
        }
        // A set answers only when the console must correct what the client shows.
        if shown == c.sent
            || matches!((&shown, &c.sent), (OscType::Float(a), OscType::Float(b)) if (a - b).abs() <= 1e-4)
        {
            assert!(r.replies.is_empty(), "{}: {:?}", c.addr, r.replies);
        } else {
            assert_eq!(r.replies.len(), 1, "{}", c.addr);
            assert_eq!(r.replies[0].args[0], shown, "{}", c.addr);
        }
    }
}

#[test]
fn eq_switch_sets_every_band_and_reads_any() {
    let x = xair();
    let mut st = Store::new();
    let r = x.incoming(&m("/ch/02/eq/on", vec![OscType::Int(1)]), &mut st);
    assert!(r.changed);
    for b in 1..=4 {
        assert_eq!(st.values[&format!("ch/snare/eq/{b}/on")], 1.0);
    }
    assert_eq!(int(&query(&x, &mut st, "/ch/02/eq/on")), 1);
    x.incoming(&m("/ch/02/eq/on", vec![OscType::Int(0)]), &mut st);
    assert_eq!(int(&query(&x, &mut st, "/ch/02/eq/on")), 0);
    // Feedback of one band: the switch reads 1 while any band is on.
    st.values.insert("ch/snare/eq/3/on".into(), 1.0);
    let fb = x.x.feedback(&x.t, "ch/snare/eq/3/on", 1.0, None);
    assert_eq!(fb, Some(m("/ch/02/eq/on", vec![OscType::Int(1)])));
    st.values.insert("ch/snare/eq/3/on".into(), 0.0);
    let fb = x.x.feedback(&x.t, "ch/snare/eq/3/on", 0.0, Some(&st));
    assert_eq!(fb, Some(m("/ch/02/eq/on", vec![OscType::Int(0)])));
    // Without the other bands' values, a band turned off says nothing.
    assert_eq!(x.x.feedback(&x.t, "ch/snare/eq/3/on", 0.0, None), None);
    // With another band on, the switch stays on.
    st.values.insert("ch/snare/eq/1/on".into(), 1.0);
    let fb = x.x.feedback(&x.t, "ch/snare/eq/3/on", 0.0, Some(&st));
    assert_eq!(fb, Some(m("/ch/02/eq/on", vec![OscType::Int(1)])));
}

#[test]
fn read_only_addresses_answer_their_value_and_change_nothing() {
    let x = xair();
    let mut st = Store::new();
    for (addr, sent, shown) in [
        (
            "/ch/01/config/name",
            OscType::String("bass".into()),
            OscType::String("kick".into()),
        ),
        ("/lr/mix/on", OscType::Int(0), OscType::Int(1)),
        (
            "/ch/01/mix/01/level",
            OscType::Float(0.5),
            OscType::Float(0.0),
        ),
    ] {
        let r = x.incoming(&m(addr, vec![sent]), &mut st);
        assert_eq!(r.replies, [m(addr, vec![shown])], "{addr}");
        assert!(!r.changed);
        assert!(r.error.is_some_and(|e| e.contains("read-only")));
    }
    assert_eq!(st.sets, 0);
}

#[test]
fn bad_input_changes_nothing_and_says_why() {
    let x = xair();
    let mut st = Store::new();
    let before = st.values.clone();
    for msg in [
        m("/ch/01/mix/fader", vec![OscType::String("loud".into())]),
        m("/ch/01/mix/fader", vec![OscType::Float(f32::NAN)]),
        m("/ch/01/mix/on", vec![OscType::Blob(vec![0; 8])]),
        m("/ch/17/mix/fader", vec![OscType::Float(0.5)]),
        m("/ch/01/mix/fader/extra", vec![]),
        m("/nonsense", vec![]),
        m("/meters", vec![OscType::String("/meters/4".into())]),
        m("/meters", vec![]),
        m("/batchsubscribe", vec![OscType::Int(1)]),
        m("/ch/02/eq/on", vec![OscType::Float(f32::INFINITY)]),
    ] {
        let r = x.incoming(&msg, &mut st);
        assert!(r.error.is_some(), "{msg:?}");
        assert!(r.replies.is_empty(), "{msg:?}");
        assert!(!r.changed);
    }
    assert_eq!(st.values, before);
    // A client the store refuses (read-only) gets an error and no reply.
    st.read_only = true;
    let r = x.incoming(&m("/ch/01/mix/fader", vec![OscType::Float(0.5)]), &mut st);
    assert!(r.error.is_some_and(|e| e.contains("read-only")));
    assert_eq!(st.values, before);
}

#[test]
fn subscriptions_are_actions_for_the_server() {
    let x = xair();
    let mut st = Store::new();
    let act = |msg: OscMessage, st: &mut Store| x.incoming(&msg, st).action;
    assert_eq!(act(m("/xremote", vec![]), &mut st), Some(Action::XRemote));
    assert_eq!(
        act(m("/xremotenfb", vec![]), &mut st),
        Some(Action::XRemote)
    );
    assert_eq!(
        act(
            m("/meters", vec![OscType::String("/meters/1".into())]),
            &mut st
        ),
        Some(Action::Meters {
            reply: "/meters/1".into()
        })
    );
    assert_eq!(
        act(
            m(
                "/batchsubscribe",
                vec![
                    OscType::String("meters/1".into()),
                    OscType::String("/meters/1".into()),
                    OscType::Int(0),
                    OscType::Int(0),
                    OscType::Int(0),
                ]
            ),
            &mut st
        ),
        Some(Action::Meters {
            reply: "/meters/1".into()
        })
    );
    assert_eq!(act(m("/renew", vec![]), &mut st), Some(Action::RenewMeters));
    assert_eq!(
        act(m("/unsubscribe", vec![]), &mut st),
        Some(Action::Unsubscribe)
    );
}

#[test]
fn feedback_shows_changes_at_their_console_address() {
    let x = xair();
    let fb = |path: &str, v: f32| x.x.feedback(&x.t, path, v, None);
    assert_eq!(
        fb("ch/kick/fader_db", 0.0),
        Some(m("/ch/01/mix/fader", vec![OscType::Float(0.75)]))
    );
    assert_eq!(
        fb("ch/snare/mute", 1.0),
        Some(m("/ch/02/mix/on", vec![OscType::Int(0)]))
    );
    assert_eq!(
        fb("master/fader_db", -10.0),
        Some(m("/lr/mix/fader", vec![OscType::Float(0.5)]))
    );
    assert_eq!(
        fb("ch/kick/sends/verb/level_db", -30.0),
        Some(m("/ch/01/mix/02/level", vec![OscType::Float(0.25)]))
    );
    assert_eq!(
        fb("ch/kick/eq/2/gain_db", 7.5),
        Some(m("/ch/01/eq/2/g", vec![OscType::Float(0.75)]))
    );
    assert_eq!(
        fb("bus/drums/comp/ratio", 4.0),
        Some(m("/bus/1/dyn/ratio", vec![OscType::Int(6)]))
    );
    assert_eq!(fb("ch/kick/solo", 1.0), None);
    assert_eq!(fb("bus/verb/fx/reverb/decay_s", 2.0), None);
}

#[test]
fn snapshot_lists_every_address_once_with_its_value() {
    let x = xair();
    let mut st = Store::new();
    let snap = x.x.snapshot(&x.t, &st);
    assert_eq!(snap.len(), super::address::addresses(&x.t).len());
    let mut seen = std::collections::HashSet::new();
    for msg in &snap {
        assert!(seen.insert(msg.addr.clone()), "{} twice", msg.addr);
        assert_eq!(msg.args.len(), 1);
        assert_eq!(query(&x, &mut st, &msg.addr), msg.args[0], "{}", msg.addr);
    }
    assert_eq!(
        snap[0],
        m("/ch/01/config/name", vec![OscType::String("kick".into())])
    );
}

#[test]
fn stereo_links_read_unlinked() {
    let x = xair();
    let mut st = Store::new();
    let r = x.incoming(&m("/config/chlink", vec![]), &mut st);
    assert_eq!(r.replies, [m("/config/chlink", vec![OscType::Int(0); 8])]);
    let r = x.incoming(&m("/config/buslink", vec![]), &mut st);
    assert_eq!(r.replies, [m("/config/buslink", vec![OscType::Int(0); 3])]);
    assert_eq!(int(&query(&x, &mut st, "/config/chlink/15-16")), 0);
    assert_eq!(int(&query(&x, &mut st, "/config/buslink/5-6")), 0);
    for bad in [
        "/config/chlink/2-3",
        "/config/chlink/17-18",
        "/config/buslink/7-8",
    ] {
        let r = x.incoming(&m(bad, vec![]), &mut st);
        assert!(r.replies.is_empty() && r.error.is_some(), "{bad}");
    }
}
