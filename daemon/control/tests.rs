//! Tests of the console: the control API, fan-out, touch, scenes, reload, engine forwarding,
//! persistence and the status socket.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::Instant;

use super::*;
use crate::engine::Engine;
use crate::session;
use crate::state::tests::TestDir;

const SESSION: &str = r#"
version: 1
engine: { sample_rate: 48000, block: 64 }
channels:
  - name: kick
    source: { input: 1 }
    fader_db: -3.0
    sends: [ { bus: verb, level_db: -12 } ]
  - name: snare
    source: { input: 2 }
buses:
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.8, predelay_ms: 20, damping: 0.5 } } }
master:
  outputs: [1, 2]
"#;

fn tree_of(yaml: &str) -> ParamTree {
    let s = session::parse_str(yaml, Path::new("/nonexistent/t.yaml"))
        .unwrap_or_else(|e| panic!("test session:\n{e}"));
    ParamTree::build(&s)
}

fn console() -> (Console, ConsoleHandle) {
    Console::new(tree_of(SESSION), None)
}

fn drain(rx: &mut broadcast::Receiver<Change>) -> Vec<Change> {
    let mut v = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => v.push(c),
            Err(TryRecvError::Empty) => return v,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn set_stores_and_get_reads_back() {
    let (_c, h) = console();
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(-3.0), "session value");
    assert_eq!(h.get("ch/snare/fader_db").await, Ok(0.0), "spec default");
    let ui = h.register_surface("test");
    assert_eq!(h.set("ch/kick/fader_db", -6.5, ui).await, Ok(-6.5));
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(-6.5));
    // By position and with a leading slash.
    assert_eq!(h.set("/ch/2/pan", 0.25, ui).await, Ok(0.25));
    assert_eq!(h.get("ch/snare/pan").await, Ok(0.25));
    // Stepped values are rounded.
    assert_eq!(h.set("ch/kick/mute", 0.7, ui).await, Ok(1.0));
    assert_eq!(h.get("ch/kick/mute").await, Ok(1.0));
    // -inf is a valid fader value.
    assert_eq!(
        h.set("ch/kick/fader_db", f32::NEG_INFINITY, ui).await,
        Ok(f32::NEG_INFINITY)
    );
    let snap = h.snapshot().await;
    assert_eq!(snap.len(), h.tree().len());
    let m: HashMap<&str, f32> = snap.iter().map(|(p, v)| (&**p, *v)).collect();
    assert_eq!(m["ch/kick/fader_db"], f32::NEG_INFINITY);
    assert_eq!(m["ch/snare/pan"], 0.25);
}

#[tokio::test]
async fn invalid_sets_are_errors_that_change_nothing() {
    let (_c, h) = console();
    let ui = h.register_surface("test");
    let mut rx = h.subscribe();
    let e = h
        .set("ch/kick/fader_db", 11.0, ui)
        .await
        .expect_err("above +10");
    assert_eq!(
        e.to_string(),
        "ch/kick/fader_db: 11 is out of range -inf..10"
    );
    let e = h.set("ch/kick/pan", -1.5, ui).await.expect_err("pan");
    assert_eq!(e.to_string(), "ch/kick/pan: -1.5 is out of range -1..1");
    let e = h
        .set("ch/kick/fader_db", f32::NAN, ui)
        .await
        .expect_err("NaN");
    assert!(matches!(e, ControlError::NotANumber { .. }), "{e}");
    let e = h
        .set("ch/tom/fader_db", 0.0, ui)
        .await
        .expect_err("unknown");
    assert_eq!(e.to_string(), "ch/tom/fader_db: no such parameter");
    let e = h
        .set_normalized("ch/kick/fader_db", 1.2, ui)
        .await
        .expect_err("n>1");
    assert!(e.to_string().contains("0..1"), "{e}");
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(-3.0));
    assert_eq!(h.get("ch/kick/pan").await, Ok(0.0));
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn normalized_sets_follow_the_fader_law() {
    let (_c, h) = console();
    let ui = h.register_surface("test");
    // X32 law: 1 = +10, 0.75 = 0, 0.5 = -10, 0.25 = -30, 0 = -inf (SPEC §6).
    for (n, want) in [
        (1.0, 10.0),
        (0.75, 0.0),
        (0.5, -10.0),
        (0.25, -30.0),
        (0.0, f32::NEG_INFINITY),
    ] {
        let got = h
            .set_normalized("ch/kick/fader_db", n, ui)
            .await
            .expect("set");
        assert!(
            got == want || (got - want).abs() < 1e-4,
            "{n}: {got} vs {want}"
        );
        assert_eq!(h.get("ch/kick/fader_db").await, Ok(got));
    }
    h.set("ch/kick/fader_db", -10.0, ui).await.expect("set");
    let n = h.get_normalized("ch/kick/fader_db").await.expect("get");
    assert!((n - 0.5).abs() < 1e-6, "{n}");
    // Pan is linear: 0.25 of the travel is -0.5.
    assert_eq!(h.set_normalized("ch/kick/pan", 0.25, ui).await, Ok(-0.5));
}

#[tokio::test]
async fn engine_stats_are_read_only_parameters() {
    let (_c, h) = console();
    h.set_engine_stats(EngineStats {
        backend: "null".into(),
        sample_rate: 48000,
        block: 64,
        dsp_load: 12.5,
        dsp_load_peak: 31.0,
        xruns: 3,
    });
    assert_eq!(h.get("engine/dsp_load").await, Ok(12.5));
    assert_eq!(h.get("/engine/dsp_load_peak").await, Ok(31.0));
    assert_eq!(h.get("engine/xruns").await, Ok(3.0));
    let e = h
        .set("engine/xruns", 0.0, Origin::Internal)
        .await
        .expect_err("read-only");
    assert_eq!(e.to_string(), "engine/xruns: read-only");
    assert_eq!(h.get("engine/xruns").await, Ok(3.0));
    // The engine's added latency: fed by the engine factory, kept across stats updates.
    assert_eq!(h.get("engine/latency_samples").await, Ok(0.0));
    h.set_engine_latency(565);
    h.set_engine_stats(EngineStats::default());
    assert_eq!(h.get("/engine/latency_samples").await, Ok(565.0));
    let e = h
        .set("engine/latency_samples", 0.0, Origin::Internal)
        .await
        .expect_err("read-only");
    assert_eq!(e.to_string(), "engine/latency_samples: read-only");
}

#[tokio::test]
async fn fan_out_reaches_everyone_and_each_surface_can_drop_its_own_echo() {
    let (_c, h) = console();
    let a = h.register_surface("osc");
    let b = h.register_surface("mcu");
    assert_ne!(a, b);
    assert!(matches!(a, Origin::Surface(_)) && matches!(b, Origin::Surface(_)));
    let mut rx_a = h.subscribe();
    let mut rx_b = h.subscribe();
    h.set("ch/1/fader_db", -12.0, a).await.expect("set");
    h.set("ch/kick/fader_db", -12.0, b)
        .await
        .expect("same value");
    h.set("ch/snare/mute", 1.0, b).await.expect("set");
    let for_a: Vec<Change> = drain(&mut rx_a)
        .into_iter()
        .filter(|c| c.origin != a)
        .collect();
    let for_b: Vec<Change> = drain(&mut rx_b)
        .into_iter()
        .filter(|c| c.origin != b)
        .collect();
    // A sees only B's mute; B sees only A's fader (canonical path); the repeated value was
    // not broadcast at all.
    assert_eq!(for_a.len(), 1, "{for_a:?}");
    assert_eq!(&*for_a[0].path, "ch/snare/mute");
    assert_eq!(for_a[0].value, 1.0);
    assert_eq!(for_b.len(), 1, "{for_b:?}");
    assert_eq!(&*for_b[0].path, "ch/kick/fader_db");
    assert_eq!(for_b[0].value, -12.0);
    assert_eq!(Some(for_b[0].id), h.tree().resolve("ch/kick/fader_db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setters_leave_the_last_broadcast_equal_to_the_stored_value() {
    let (_c, h) = console();
    let mut rx = h.subscribe();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let me = h.register_surface("writer");
            for i in 0..200 {
                let v = -60.0 + (t * 200 + i) as f32 * 0.01;
                h.set("ch/kick/fader_db", v, me).await.expect("set");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let all = drain(&mut rx);
    assert!(all.len() >= 200, "{}", all.len());
    let last = all.last().expect("changes").value;
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(last));
}

#[tokio::test]
async fn automation_does_not_drive_a_touched_control() {
    let (_c, h) = console();
    let mcu = h.register_surface("mcu");
    let osc = h.register_surface("osc");
    let mut touches = h.subscribe_touch();
    h.touch("ch/kick/fader_db", true, mcu).await.expect("touch");
    h.touch("ch/kick/fader_db", true, osc).await.expect("touch");
    assert_eq!(h.is_touched("ch/kick/fader_db"), Ok(true));
    // Held: automation gets the current value back and nothing changes.
    assert_eq!(
        h.set("ch/kick/fader_db", -20.0, Origin::Automation).await,
        Ok(-3.0)
    );
    // The surface moving it still applies.
    assert_eq!(h.set("ch/kick/fader_db", -4.0, mcu).await, Ok(-4.0));
    h.touch("ch/kick/fader_db", false, mcu)
        .await
        .expect("release");
    assert_eq!(
        h.is_touched("ch/kick/fader_db"),
        Ok(true),
        "osc still holds it"
    );
    assert_eq!(
        h.set("ch/kick/fader_db", -20.0, Origin::Automation).await,
        Ok(-4.0)
    );
    h.unregister_surface(osc);
    assert_eq!(h.is_touched("ch/kick/fader_db"), Ok(false));
    assert_eq!(
        h.set("ch/kick/fader_db", -20.0, Origin::Automation).await,
        Ok(-20.0)
    );
    let mut seen = Vec::new();
    while let Ok(t) = touches.try_recv() {
        seen.push((t.touched, t.origin));
    }
    assert_eq!(
        seen,
        vec![(true, mcu), (true, osc), (false, mcu), (false, osc)]
    );
    assert!(h.touch("ch/tom/fader_db", true, mcu).await.is_err());
}

#[tokio::test]
async fn scenes_save_recall_list_delete() {
    let (_c, h) = console();
    let ui = h.register_surface("ui");
    h.set("ch/kick/fader_db", -10.0, ui).await.expect("set");
    h.set("ch/snare/mute", 1.0, ui).await.expect("set");
    h.scene_save("verse").await.expect("save");
    h.set("ch/kick/fader_db", 2.0, ui).await.expect("set");
    h.set("ch/snare/mute", 0.0, ui).await.expect("set");
    h.set("ch/snare/pan", 0.5, ui).await.expect("set");
    h.scene_save("chorus").await.expect("save");
    assert_eq!(h.scene_list().await, vec!["chorus", "verse"]);

    let mut rx = h.subscribe();
    h.scene_recall("verse").await.expect("recall");
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(-10.0));
    assert_eq!(h.get("ch/snare/mute").await, Ok(1.0));
    assert_eq!(h.get("ch/snare/pan").await, Ok(0.0));
    let changes = drain(&mut rx);
    // Exactly the three values that differ, all tagged as a scene recall.
    let mut paths: Vec<&str> = changes.iter().map(|c| &*c.path).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        vec!["ch/kick/fader_db", "ch/snare/mute", "ch/snare/pan"]
    );
    assert!(changes.iter().all(|c| c.origin == Origin::Scene));

    h.scene_delete("verse").await.expect("delete");
    assert_eq!(h.scene_list().await, vec!["chorus"]);
    assert!(matches!(
        h.scene_recall("verse").await,
        Err(ControlError::UnknownScene { .. })
    ));
    assert!(h.scene_delete("verse").await.is_err());
    assert!(matches!(
        h.scene_save("  ").await,
        Err(ControlError::BadSceneName { .. })
    ));
    assert!(h.scene_save("a\nb").await.is_err());
}

#[tokio::test]
async fn reload_carries_values_by_path() {
    let (_c, h) = console();
    let ui = h.register_surface("ui");
    h.set("ch/kick/fader_db", -6.0, ui).await.expect("set");
    h.set("ch/snare/fader_db", -9.0, ui).await.expect("set");
    h.touch("ch/kick/pan", true, ui).await.expect("touch");
    let mut tree_rx = h.subscribe_tree();
    let mut rx = h.subscribe();
    // The session now: kick's file value changed, snare removed, hat added.
    let new = tree_of(
        r#"
version: 1
channels:
  - { name: hat, source: { input: 3 }, fader_db: -7.5 }
  - { name: kick, source: { input: 1 }, fader_db: -20.0 }
master: { outputs: [1, 2] }
"#,
    );
    let summary = h.reload(new);
    assert!(tree_rx.has_changed().expect("watch"));
    assert_eq!(tree_rx.borrow_and_update().len(), h.tree().len());
    assert_eq!(h.get("ch/kick/fader_db").await, Ok(-6.0), "carried over");
    assert_eq!(h.get("ch/hat/fader_db").await, Ok(-7.5), "session value");
    assert_eq!(h.get("ch/1/fader_db").await, Ok(-7.5), "positions follow");
    assert!(h.get("ch/snare/fader_db").await.is_err());
    assert!(h.get("bus/verb/fader_db").await.is_err());
    assert_eq!(h.is_touched("ch/kick/pan"), Ok(true));
    assert!(summary.added.iter().any(|p| p == "ch/hat/fader_db"));
    assert!(summary.removed.iter().any(|p| p == "ch/snare/fader_db"));
    assert!(
        summary
            .removed
            .iter()
            .any(|p| p == "ch/kick/sends/verb/level_db")
    );
    assert_eq!(summary.kept + summary.added.len(), h.tree().len());
    // The added parameters were announced.
    let added = drain(&mut rx);
    assert_eq!(added.len(), summary.added.len());
    assert!(added.iter().all(|c| c.origin == Origin::Internal));
}

// --- engine forwarding ------------------------------------------------------------------

const DRY: &str = r#"
version: 1
engine: { sample_rate: 48000, block: 64 }
channels:
  - { name: kick, source: { input: 1 }, fader_db: 0.0 }
master: { outputs: [1, 2] }
"#;

/// Run `blocks` blocks of DC `level` into the kick input; the last master-L sample.
fn run_dc(engine: &mut Engine, blocks: usize, level: f32) -> f32 {
    let input = vec![level; 64];
    let (mut l, mut r) = (vec![0.0; 64], vec![0.0; 64]);
    for _ in 0..blocks {
        let mut outs: [&mut [f32]; 2] = [&mut l, &mut r];
        engine.process(64, &[&input], &mut outs);
    }
    l[63]
}

fn build(tree: &ParamTree) -> Engine {
    let s = session::parse_str(DRY, Path::new("/nonexistent/t.yaml")).expect("session");
    Engine::build(&s, tree, &HashMap::new(), 48000.0, 64).expect("engine")
}

#[tokio::test]
async fn changes_reach_the_engine() {
    let (_c, h) = Console::new(tree_of(DRY), None);
    let mut engine = build(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    // Mono at centre: constant-power pan, -3 dB per side.
    let pan = std::f32::consts::FRAC_1_SQRT_2;
    let before = run_dc(&mut engine, 20, 0.5);
    assert!((before - 0.5 * pan).abs() < 1e-4, "{before}");
    h.set("ch/kick/fader_db", -6.0, Origin::Internal)
        .await
        .expect("set");
    // 20 blocks = 26.7 ms, well past the 10 ms glide.
    let after = run_dc(&mut engine, 20, 0.5);
    let want = 0.5 * pan * 10f32.powf(-6.0 / 20.0);
    assert!((after - want).abs() < 1e-4, "{after} vs {want}");
    // Meters are read back from the engine's bank: the strip's meter sees DC 0.5 (-6.02 dB)
    // and the position is the 40 blocks processed.
    let m = h.meters();
    assert!(
        (m.channels[0].peak_db[0] - 20.0 * 0.5f32.log10()).abs() < 0.01,
        "{m:?}"
    );
    assert_eq!(m.position, 40 * 64);
    h.set("ch/kick/mute", 1.0, Origin::Internal)
        .await
        .expect("set");
    assert!(run_dc(&mut engine, 20, 0.5).abs() < 1e-6);
}

#[tokio::test]
async fn a_new_engine_gets_every_current_value_on_attach() {
    let (_c, h) = Console::new(tree_of(DRY), None);
    h.set("ch/kick/fader_db", -12.0, Origin::Internal)
        .await
        .expect("set");
    h.set("ch/kick/pan", 1.0, Origin::Internal)
        .await
        .expect("set");
    // Built from the tree: session values (0 dB, centre); attach queues the difference.
    let mut engine = build(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    let input = vec![0.5; 64];
    let (mut l, mut r) = (vec![0.0; 64], vec![0.0; 64]);
    for _ in 0..20 {
        let mut outs: [&mut [f32]; 2] = [&mut l, &mut r];
        engine.process(64, &[&input], &mut outs);
    }
    let want = 0.5 * 10f32.powf(-12.0 / 20.0);
    assert!(
        l[63].abs() < 1e-6,
        "hard right: left is silent, got {}",
        l[63]
    );
    assert!((r[63] - want).abs() < 1e-4, "{} vs {want}", r[63]);
    // The alternative: apply the current values before the engine starts.
    let mut e2 = build(&h.tree());
    for c in h.current_changes() {
        assert!(e2.apply(c.addr, c.value));
    }
    assert_eq!(h.values_for_build()["ch/kick/fader_db"], -12.0);
}

#[tokio::test]
async fn a_full_engine_queue_is_drained_by_the_task() {
    let (c, h) = Console::new(tree_of(DRY), None);
    let mut engine = build(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    // Overfill the queue (capacity 4096) without the engine running.
    for i in 0..5000 {
        let v = -40.0 + (i % 2) as f32;
        h.set("ch/kick/fader_db", v, Origin::Internal)
            .await
            .expect("set");
    }
    h.set("ch/kick/fader_db", -6.0, Origin::Internal)
        .await
        .expect("set");
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    // Process until the backlog has been drained into the engine and applied.
    let want = 0.5 * std::f32::consts::FRAC_1_SQRT_2 * 10f32.powf(-6.0 / 20.0);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = 0.0;
    while Instant::now() < deadline {
        got = run_dc(&mut engine, 20, 0.5);
        if (got - want).abs() < 1e-4 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    stop.cancel();
    task.await.expect("task");
}

#[tokio::test]
async fn the_task_publishes_meters_at_display_rate() {
    let (c, h) = Console::new(tree_of(DRY), None);
    let mut engine = build(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    run_dc(&mut engine, 10, 0.25);
    let mut rx = h.subscribe_meters();
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), rx.changed())
        .await
        .expect("a snapshot within 1 s")
        .expect("watch");
    let m = rx.borrow_and_update().clone();
    assert_eq!(m.position, 640);
    assert!(
        (m.channels[0].peak_db[0] - 20.0 * 0.25f32.log10()).abs() < 0.01,
        "{m:?}"
    );
    // Later snapshots follow at about METER_PERIOD (33 ms): count them over ~200 ms.
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(200) {
        if tokio::time::timeout(Duration::from_millis(100), rx.changed())
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let rate = f64::from(n) / secs;
    assert!(
        (15.0..=45.0).contains(&rate),
        "{n} snapshots in {secs:.3} s"
    );
    stop.cancel();
    task.await.expect("task");
}

// --- persistence --------------------------------------------------------------------------

#[tokio::test]
async fn state_is_restored_on_start_and_flushed_on_shutdown() {
    let d = TestDir::new("console-restore");
    let dir = StateDir::open(&d.0).expect("open");
    let (c, h) = Console::new(tree_of(SESSION), Some(dir.clone()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    h.set("ch/kick/fader_db", f32::NEG_INFINITY, Origin::Internal)
        .await
        .expect("set");
    h.set("ch/snare/pan", -0.75, Origin::Internal)
        .await
        .expect("set");
    h.scene_save("intro").await.expect("scene");
    h.set_insert_latency("kick", 133);
    stop.cancel();
    task.await.expect("task");
    let saved = dir.load().expect("load").expect("present");
    assert_eq!(saved.params["ch/kick/fader_db"], f32::NEG_INFINITY);
    assert_eq!(saved.params["ch/snare/pan"], -0.75);
    assert_eq!(saved.params.len(), h.tree().len());

    // A new console over a session without snare: kick restored, snare's value ignored.
    let (_c2, h2) = Console::new(
        tree_of(
            r#"
version: 1
channels: [ { name: kick, source: { input: 1 }, fader_db: 4.0 } ]
master: { outputs: [1, 2] }
"#,
        ),
        Some(dir.clone()),
    );
    assert_eq!(h2.get("ch/kick/fader_db").await, Ok(f32::NEG_INFINITY));
    assert_eq!(h2.scene_list().await, vec!["intro"]);
    assert_eq!(h2.insert_latency("kick"), Some(133));
    assert!(h2.get("ch/snare/pan").await.is_err());
}

#[tokio::test]
async fn automation_modes_persist_and_follow_reloads() {
    use crate::automation::Mode;
    let d = TestDir::new("console-automation");
    let dir = StateDir::open(&d.0).expect("open");
    let (c, h) = Console::new(tree_of(SESSION), Some(dir.clone()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    assert_eq!(h.set_automation("ch/kick/fader_db", Mode::Write), Ok(1));
    // A strip by position: every one of its parameters.
    let snare_params = h
        .tree()
        .params()
        .iter()
        .filter(|p| p.path.starts_with("ch/snare/"))
        .count();
    assert_eq!(h.set_automation("ch/2", Mode::Trim), Ok(snare_params));
    assert!(h.set_automation("ch/nobody", Mode::Read).is_err());
    assert!(h.automation("ch/kick/nothing").is_err());
    stop.cancel();
    task.await.expect("task");
    let saved = dir.load().expect("load").expect("present");
    assert_eq!(saved.automation["ch/kick/fader_db"], Mode::Write);
    assert_eq!(saved.automation["ch/snare/pan"], Mode::Trim);
    assert_eq!(
        saved.automation.len(),
        1 + snare_params,
        "off is not stored"
    );

    // Restored on start; a reload keeps the modes of parameters that still exist.
    let (_c2, h2) = Console::new(tree_of(SESSION), Some(dir.clone()));
    assert_eq!(h2.automation("ch/kick/fader_db"), Ok(Mode::Write));
    assert_eq!(h2.automation("ch/snare"), Ok(Mode::Trim));
    assert_eq!(h2.automation("ch/kick/pan"), Ok(Mode::Off));
    h2.reload(tree_of(
        r#"
version: 1
channels: [ { name: kick, source: { input: 1 } } ]
master: { outputs: [1, 2] }
"#,
    ));
    assert_eq!(h2.automation("ch/kick/fader_db"), Ok(Mode::Write));
    assert!(h2.automation("ch/snare/pan").is_err());
}

#[tokio::test]
async fn a_corrupt_state_file_falls_back_to_the_session() {
    for (tag, bytes) in [
        ("garbage", b"{\"fnv1a64\":\"zz".to_vec()),
        ("truncated", {
            let mut s = SavedState {
                version: STATE_VERSION,
                ..Default::default()
            };
            s.params.insert("ch/kick/fader_db".into(), -30.0);
            let b = crate::state::encode(&s).expect("encode");
            b[..b.len() - 3].to_vec()
        }),
    ] {
        let d = TestDir::new(tag);
        let dir = StateDir::open(&d.0).expect("open");
        std::fs::write(dir.file(), &bytes).expect("write");
        let (_c, h) = Console::new(tree_of(SESSION), Some(dir.clone()));
        assert_eq!(h.get("ch/kick/fader_db").await, Ok(-3.0), "{tag}");
        assert!(!dir.file().exists(), "{tag}");
        let aside: Vec<_> = std::fs::read_dir(&d.0)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_written_a_bounded_number_of_times_and_lands_within_a_second() {
    let d = TestDir::new("debounce");
    let dir = StateDir::open(&d.0).expect("open");
    let (c, h) = Console::new(tree_of(SESSION), Some(dir.clone()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    // 1000 changes spread over about a second (pacing, not synchronisation).
    let start = Instant::now();
    let mut last = 0.0;
    for i in 0..1000 {
        last = -50.0 + i as f32 * 0.05;
        h.set("ch/kick/fader_db", last, Origin::Internal)
            .await
            .expect("set");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let burst = start.elapsed();
    let t_last = Instant::now();
    // Poll the file until the last value is on disk.
    let landed = loop {
        if let Ok(Some(s)) = dir.load()
            && s.params.get("ch/kick/fader_db") == Some(&last)
        {
            break t_last.elapsed();
        }
        assert!(
            t_last.elapsed() < Duration::from_secs(1),
            "last value not on disk within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // Stop (joining any write in flight), then count. Nothing changed after the last value
    // landed, so shutdown adds no write beyond the bound.
    stop.cancel();
    task.await.expect("task");
    let writes = dir.writes();
    // At most one write per SAVE_INTERVAL during the burst, plus the first and the last.
    let bound = (burst.as_secs_f64() / SAVE_INTERVAL.as_secs_f64()).ceil() as u64 + 2;
    eprintln!(
        "burst {:.0} ms, {writes} writes (bound {bound}), last value on disk after {:.0} ms",
        burst.as_secs_f64() * 1e3,
        landed.as_secs_f64() * 1e3
    );
    assert!(writes >= 1 && writes <= bound, "{writes} writes > {bound}");
    assert_eq!(
        dir.load().expect("load").expect("file").params["ch/kick/fader_db"],
        last
    );
}

// --- status -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_socket_round_trip() {
    let d = TestDir::new("status");
    let dir = StateDir::open(&d.0).expect("open");
    let (_c, h) = Console::new(tree_of(DRY), None);
    let mut engine = build(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    h.set("ch/kick/fader_db", -6.0, Origin::Internal)
        .await
        .expect("set");
    run_dc(&mut engine, 20, 0.5);
    let osc = h.register_surface("osc 127.0.0.1:9000");
    h.set_surface_info(osc, "2 clients");
    h.set_engine_stats(EngineStats {
        backend: "null".into(),
        sample_rate: 48000,
        block: 64,
        dsp_load: 7.25,
        dsp_load_peak: 9.5,
        xruns: 2,
    });
    // A stale socket file from a dead daemon is replaced.
    let sock = dir.status_socket();
    std::fs::write(&sock, b"stale").expect("stale");
    let stop = CancellationToken::new();
    let server = {
        let (h, sock, stop) = (h.clone(), sock.clone(), stop.clone());
        tokio::spawn(async move { serve_status(h, &sock, stop).await })
    };
    // Poll until the server answers (bind happens asynchronously).
    let deadline = Instant::now() + Duration::from_secs(2);
    let report = loop {
        let s = sock.clone();
        match tokio::task::spawn_blocking(move || query_status(&s))
            .await
            .expect("join")
        {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    assert_eq!(report.strips.len(), 2, "{report:?}");
    let kick = &report.strips[0];
    assert_eq!(
        (kick.kind, kick.name.as_str()),
        (StripKind::Channel, "kick")
    );
    assert_eq!(kick.fader_db, -6.0);
    assert!(!kick.mute);
    // DC 0.5 in: the strip's peak meter reads the input level (-6.02 dBFS).
    assert!(
        (kick.peak_db[0] - 20.0 * 0.5f32.log10()).abs() < 0.1,
        "{kick:?}"
    );
    assert_eq!(report.strips[1].kind, StripKind::Master);
    assert_eq!(report.engine.xruns, 2);
    assert_eq!(report.engine.dsp_load, 7.25);
    assert_eq!(report.surfaces[0].info, "2 clients");
    assert_eq!(report, h.status().await.clone_with_uptime(report.uptime_s));
    let text = report.to_string();
    assert!(
        text.contains("DSP load 7.2%") || text.contains("DSP load 7.3%"),
        "{text}"
    );
    assert!(text.contains("xruns 2"), "{text}");
    assert!(text.contains("kick"), "{text}");
    assert!(text.contains("-6.0"), "{text}");
    assert!(text.contains("osc 127.0.0.1:9000 (2 clients)"), "{text}");

    // A second server on the same socket refuses to start.
    let e = serve_status(h.clone(), &sock, stop.clone())
        .await
        .expect_err("busy");
    assert!(matches!(e, StatusError::AlreadyRunning { .. }), "{e}");
    stop.cancel();
    server.await.expect("join").expect("serve");
    assert!(!sock.exists(), "socket removed on shutdown");
    assert!(matches!(
        query_status(&sock),
        Err(StatusError::Connect { .. })
    ));
}

impl StatusReport {
    fn clone_with_uptime(mut self, t: f64) -> Self {
        self.uptime_s = t;
        self
    }
}

#[tokio::test]
async fn status_get_and_bad_requests_over_the_socket() {
    let d = TestDir::new("status-get");
    let (_c, h) = console();
    let sock = d.0.join("s.sock");
    let stop = CancellationToken::new();
    let server = {
        let (h, sock, stop) = (h.clone(), sock.clone(), stop.clone());
        tokio::spawn(async move { serve_status(h, &sock, stop).await })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let stream = loop {
        match tokio::net::UnixStream::connect(&sock).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::task::yield_now().await;
            }
        }
    };
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (rd, mut wr) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(rd).lines();
    wr.write_all(
        b"{\"cmd\":\"get\",\"path\":\"ch/kick/fader_db\"}\n{\"cmd\":\"nope\"}\nnot json\n",
    )
    .await
    .expect("write");
    let a = lines.next_line().await.expect("read").expect("line");
    assert_eq!(a, r#"{"path":"ch/kick/fader_db","value":-3.0}"#);
    let b = lines.next_line().await.expect("read").expect("line");
    assert_eq!(b, r#"{"error":"unknown command \"nope\""}"#);
    let c = lines.next_line().await.expect("read").expect("line");
    assert!(c.starts_with(r#"{"error":"bad request"#), "{c}");
    stop.cancel();
    server.await.expect("join").expect("serve");
}

// --- live loudness -------------------------------------------------------------------------

const STEREO: &str = r#"
version: 1
engine: { sample_rate: 48000, block: 64 }
channels:
  - { name: keys, source: { input: [1, 2] }, fader_db: 0.0 }
master: { outputs: [1, 2] }
"#;

/// Peak amplitude of the EBU Tech 3341 test tone: -23 dBFS.
fn amp_db(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Feeds a 1 kHz sine of peak `amp` to both inputs of the stereo channel, block by block,
/// continuing the phase from `*at`; drains the loudness tap every 100 blocks (133 ms) like
/// the console's meter tick would.
fn run_sine(h: &ConsoleHandle, engine: &mut Engine, seconds: f64, amp: f64, at: &mut u64) {
    const N: usize = 64;
    let blocks = (seconds * 48000.0 / N as f64).round() as usize;
    let mut x = vec![0.0f32; N];
    let (mut l, mut r) = (vec![0.0; N], vec![0.0; N]);
    for b in 0..blocks {
        for v in x.iter_mut() {
            let t = *at as f64 / 48000.0;
            *v = (amp * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32;
            *at += 1;
        }
        let mut outs: [&mut [f32]; 2] = [&mut l, &mut r];
        engine.process(N, &[&x, &x], &mut outs);
        if b % 100 == 99 {
            let _ = h.meters();
        }
    }
}

fn near(what: &str, got: f32, want: f64, tol: f64) {
    assert!(
        (f64::from(got) - want).abs() <= tol,
        "{what}: {got} vs {want} ±{tol}"
    );
}

fn build_stereo(tree: &ParamTree) -> Engine {
    let s = session::parse_str(STEREO, Path::new("/nonexistent/t.yaml")).expect("session");
    Engine::build(&s, tree, &HashMap::new(), 48000.0, 64).expect("engine")
}

#[tokio::test]
async fn master_loudness_of_the_ebu_test_tone_is_minus_23() {
    let (_c, h) = Console::new(tree_of(STEREO), None);
    // Nothing measured yet.
    let m = h.meters();
    assert_eq!(m.loudness.momentary_lufs, f32::NEG_INFINITY);
    assert_eq!(m.loudness.integrated_lufs, f32::NEG_INFINITY);
    let mut engine = build_stereo(&h.tree());
    h.attach_engine(engine.handle(), engine.meter_bank());
    h.attach_loudness(engine.loudness_tap());
    let mut at = 0;
    // EBU Tech 3341 case 1: a stereo 1 kHz sine at -23 dBFS reads -23.0 LUFS M, S and I; its
    // true peak is its amplitude, -23 dBTP.
    run_sine(&h, &mut engine, 4.0, amp_db(-23.0), &mut at);
    let l = h.meters().loudness;
    near("momentary", l.momentary_lufs, -23.0, 0.3);
    near("short-term", l.short_term_lufs, -23.0, 0.3);
    near("integrated", l.integrated_lufs, -23.0, 0.3);
    near("true peak", l.true_peak_dbtp, -23.0, 0.3);
    assert_eq!(l.dropped_frames, 0);
    // The status report carries them.
    let s = h.status().await;
    near("status integrated", s.loudness.integrated_lufs, -23.0, 0.3);
    assert!(s.to_string().contains("master loudness M -23."), "{s}");

    // Locating to 0 restarts the measurement. The level drops to -33 dBFS half a second
    // before (so the master's look-ahead no longer holds the louder tone), then 2 s more:
    // integrated reads -33 LUFS and the true peak -33 dBTP. Without the reset, integrated
    // would be the gated mean of both parts (about -24.7 LUFS) and the true peak -23.
    run_sine(&h, &mut engine, 0.5, amp_db(-33.0), &mut at);
    h.transport(Transport::Locate(0.0)).expect("locate");
    run_sine(&h, &mut engine, 2.0, amp_db(-33.0), &mut at);
    let l = h.meters().loudness;
    near("integrated after locate 0", l.integrated_lufs, -33.0, 0.3);
    near("true peak after locate 0", l.true_peak_dbtp, -33.0, 0.3);
    near("momentary after locate 0", l.momentary_lufs, -33.0, 0.3);

    // A locate elsewhere keeps counting; an explicit reset restarts.
    run_sine(&h, &mut engine, 1.0, amp_db(-23.0), &mut at);
    h.transport(Transport::Locate(5.0)).expect("locate");
    run_sine(&h, &mut engine, 0.5, amp_db(-28.0), &mut at);
    near(
        "true peak kept",
        h.meters().loudness.true_peak_dbtp,
        -23.0,
        0.3,
    );
    h.reset_loudness();
    run_sine(&h, &mut engine, 1.0, amp_db(-28.0), &mut at);
    let l = h.meters().loudness;
    near("integrated after reset", l.integrated_lufs, -28.0, 0.3);
    near("true peak after reset", l.true_peak_dbtp, -28.0, 0.3);
}

#[tokio::test]
async fn a_swapped_in_engine_keeps_feeding_the_loudness_meter() {
    let (_c, h) = Console::new(tree_of(STEREO), None);
    let mut a = build_stereo(&h.tree());
    h.attach_engine(a.handle(), a.meter_bank());
    h.attach_loudness(a.loudness_tap());
    let mut at = 0;
    run_sine(&h, &mut a, 2.0, amp_db(-23.0), &mut at);
    // The new engine at the same rate carries the measurement on: 1 s later the 3 s
    // short-term window spans both engines and reads -23. Had it restarted, the window
    // would hold 1 s of tone and 2 s of nothing: -23 + 10·log10(1/3) = -27.8 LUFS.
    let mut b = build_stereo(&h.tree());
    h.attach_engine(b.handle(), b.meter_bank());
    h.attach_loudness(b.loudness_tap());
    drop(a);
    run_sine(&h, &mut b, 1.0, amp_db(-23.0), &mut at);
    let l = h.meters().loudness;
    near("short-term across the swap", l.short_term_lufs, -23.0, 0.3);
    near("integrated across the swap", l.integrated_lufs, -23.0, 0.3);
    assert_eq!(l.dropped_frames, 0);
}

#[tokio::test]
async fn an_undrained_tap_drops_frames_and_counts_them() {
    let (_c, h) = Console::new(tree_of(STEREO), None);
    let mut engine = build_stereo(&h.tree());
    let tap = engine.loudness_tap();
    // The ring holds TAP_SECONDS (1 s = 48000 frames); 2 s without a drain drop the rest.
    let x = vec![0.1f32; 64];
    let (mut l, mut r) = (vec![0.0; 64], vec![0.0; 64]);
    for _ in 0..1500 {
        let mut outs: [&mut [f32]; 2] = [&mut l, &mut r];
        engine.process(64, &[&x, &x], &mut outs);
    }
    assert_eq!(tap.dropped(), 1500 * 64 - 48000);
}

#[tokio::test]
async fn outboard_notes_persist_and_scenes_restore_them() {
    let dir = crate::state::tests::TestDir::new("outboard");
    let sd = StateDir::open(&dir.0).expect("state dir");
    let (c, h) = Console::new(tree_of(SESSION), Some(sd.clone()));
    h.set_outboard_unit("ch/kick", "LA-2A").expect("unit");
    h.set_outboard_setting("ch/1", "peak reduction", "45")
        .expect("knob");
    h.scene_save("a").await.expect("save");
    h.set_outboard_unit("ch/kick", "").expect("forget");
    assert_eq!(h.outboard("ch/kick"), Ok(Outboard::default()));
    h.scene_recall("a").await.expect("recall");
    let want = Outboard {
        unit: "LA-2A".into(),
        settings: [("peak reduction".to_string(), "45".to_string())].into(),
    };
    assert_eq!(h.outboard("ch/kick").as_ref(), Ok(&want));
    assert!(matches!(
        h.set_outboard_setting("ch/kick", "x", &"9".repeat(65)),
        Err(ControlError::BadText { .. })
    ));
    assert!(matches!(
        h.outboard("ch/nope"),
        Err(ControlError::UnknownPath { .. })
    ));
    let saved = c.shared.lock().saved_state();
    sd.save(&saved).expect("save state");
    let (_c2, h2) = Console::new(tree_of(SESSION), Some(sd));
    assert_eq!(h2.outboard("ch/kick"), Ok(want));
}

/// Bus and master inserts carry recall notes too, under `bus/NAME` and `master`, and their
/// parameters are in the tree.
#[tokio::test]
async fn bus_and_master_inserts_have_outboard_notes_and_parameters() {
    let yaml = "version: 1\nchannels: [ { name: kick, source: { input: 1 }, output: drums } ]\nbuses:\n  - { name: drums, kind: group, insert: { send: 3, return: 3 } }\nmaster:\n  insert: { send: 5, return: 5, position: post_fader }\n";
    let tree = tree_of(yaml);
    for p in [
        "bus/drums/insert/send_db",
        "bus/drums/insert/return_db",
        "bus/drums/insert/wet",
        "bus/drums/insert/invert",
        "bus/drums/insert/bypass",
        "master/insert/send_db",
        "master/insert/bypass",
    ] {
        assert!(tree.resolve(p).is_some(), "{p}");
    }
    let (_c, h) = Console::new(tree, None);
    h.set_outboard_unit("bus/drums", "SSL G bus")
        .expect("bus unit");
    h.set_outboard_setting("master", "ratio", "2:1")
        .expect("master knob");
    assert_eq!(h.outboard("bus/1").map(|o| o.unit), Ok("SSL G bus".into()));
    assert_eq!(
        h.outboard("master").map(|o| o.settings),
        Ok([("ratio".to_string(), "2:1".to_string())].into())
    );
    let ui = h.register_surface("test");
    assert_eq!(h.set("master/insert/wet", 0.5, ui).await, Ok(0.5));
    assert_eq!(h.get("master/insert/wet").await, Ok(0.5));
    assert_eq!(h.get("bus/drums/insert/bypass").await, Ok(0.0));
}

/// A measurement's hold reaches a bus's and the master's inserts as it does a channel's: their
/// sends fall silent and the signal goes on through their latency delays.
#[tokio::test]
async fn a_hold_silences_bus_and_master_insert_sends() {
    let yaml = "version: 1\nchannels: [ { name: kick, source: { input: 1 }, output: drums } ]\nbuses:\n  - { name: drums, kind: group, insert: { send: 3, return: 3 } }\nmaster:\n  insert: { send: 5, return: 5 }\n";
    let s = session::parse_str(yaml, Path::new("/nonexistent/t.yaml")).expect("session");
    let (_c, h) = Console::new(ParamTree::build(&s), None);
    assert_eq!(h.strip_path("drums"), Ok("bus/drums".to_string()));
    let setup = crate::engine::InsertSetup {
        latency: vec![None],
        bus_latency: vec![Some(32.0)],
        master_latency: Some(16.0),
        outboard: true,
    };
    let mut e =
        Engine::build_with(&s, &h.tree(), &HashMap::new(), 48000.0, 64, &setup).expect("engine");
    h.attach_engine(e.handle(), e.meter_bank());
    let port = |e: &Engine, name: &str| {
        e.output_ports()
            .iter()
            .position(|p| p.name == name)
            .expect("port")
    };
    let (bus_send, master_send) = (
        port(&e, "drums_insert_send_L"),
        port(&e, "master_insert_send_L"),
    );
    // DC 0.5 into kick (mono, centre: 0.5/sqrt 2 each side), silent returns; (master L, the
    // bus's send L, the master's send L) after 20 blocks (26.7 ms: past the 10 ms glides).
    let run = |e: &mut Engine| {
        let input = vec![0.5f32; 64];
        let silent = vec![0.0f32; 64];
        let ins: Vec<&[f32]> = (0..e.input_ports().len())
            .map(|i| if i == 0 { &input[..] } else { &silent[..] })
            .collect();
        let mut bufs = vec![vec![0.0f32; 64]; e.output_ports().len()];
        for _ in 0..20 {
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            e.process(64, &ins, &mut outs);
        }
        (bufs[0][63], bufs[bus_send][63], bufs[master_send][63])
    };
    let side = 0.5 * std::f32::consts::FRAC_1_SQRT_2;
    let (main, bus, master) = run(&mut e);
    assert!(main.abs() < 1e-6, "gear in, silent returns: {main}");
    assert!((bus - side).abs() < 1e-6, "bus send: {bus}");
    assert!(
        master.abs() < 1e-6,
        "the master gets the bus's silent return: {master}"
    );
    h.hold_insert("bus/drums", true)
        .expect("hold the bus insert");
    h.hold_insert("master", true)
        .expect("hold the master insert");
    let (main, bus, master) = run(&mut e);
    assert_eq!(bus, 0.0, "held: the bus's send is silent");
    assert_eq!(master, 0.0, "held: the master's send is silent");
    assert!(
        (main - side).abs() < 1e-4,
        "held: the dry signal through both delays, {main}"
    );
    h.hold_insert("bus/drums", false).expect("release");
    h.hold_insert("master", false).expect("release");
    let (main, bus, _) = run(&mut e);
    assert!(main.abs() < 1e-6, "released: gear in again, {main}");
    assert!((bus - side).abs() < 1e-6, "released: bus send back, {bus}");
}

/// A measurement's hold reaches the engine (and every engine attached while it lasts) without
/// touching the insert's parameters: nothing stored, broadcast or marked for saving.
#[tokio::test]
async fn a_held_insert_is_bypassed_with_its_send_silent_and_nothing_is_stored() {
    const INS: &str = "version: 1\nchannels:\n  - { name: kick, source: { input: 1 }, insert: { send: 3, return: 3 } }\n  - { name: snare, source: { input: 2 } }\n";
    let s = session::parse_str(INS, Path::new("/nonexistent/t.yaml")).expect("session");
    let (_c, h) = Console::new(ParamTree::build(&s), None);
    let setup = crate::engine::InsertSetup {
        latency: vec![Some(64.0), None],
        outboard: true,
        ..Default::default()
    };
    let build = |tree: &ParamTree| {
        Engine::build_with(&s, tree, &HashMap::new(), 48000.0, 64, &setup).expect("engine")
    };
    let port = |e: &Engine, name: &str| {
        e.output_ports()
            .iter()
            .position(|p| p.name == name)
            .expect("port")
    };
    // DC 0.5 into kick, a silent return: (master L, the insert's send) after `blocks`.
    let run = |e: &mut Engine, blocks: usize| {
        let send_at = port(e, "kick_insert_send");
        let n_in = e.input_ports().len();
        let input = vec![0.5f32; 64];
        let silent = vec![0.0f32; 64];
        let ins: Vec<&[f32]> = (0..n_in)
            .map(|i| if i == 0 { &input[..] } else { &silent[..] })
            .collect();
        let mut bufs = vec![vec![0.0f32; 64]; e.output_ports().len()];
        for _ in 0..blocks {
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            e.process(64, &ins, &mut outs);
        }
        (bufs[0][63], bufs[send_at][63])
    };
    let mut e = build(&h.tree());
    h.attach_engine(e.handle(), e.meter_bank());
    let pan = std::f32::consts::FRAC_1_SQRT_2;
    let (main, send) = run(&mut e, 20);
    assert!(main.abs() < 1e-6, "gear in, silent return: {main}");
    assert!((send - 0.5).abs() < 1e-6, "send: {send}");

    let mut changes = h.subscribe();
    let generation = h.shared.lock().generation;
    assert!(h.strip_path("kick").is_ok_and(|p| p == "ch/kick"));
    assert!(h.strip_path("2").is_ok_and(|p| p == "ch/snare"));
    assert!(h.strip_path("/ch/1/").is_ok_and(|p| p == "ch/kick"));
    assert!(h.strip_path("nope").is_err());
    assert!(matches!(
        h.hold_insert("ch/snare", true),
        Err(ControlError::Insert(m)) if m.contains("no hardware insert")
    ));
    h.hold_insert("ch/kick", true).expect("hold");
    // 20 blocks = 26.7 ms: past the 10 ms glides.
    let (main, send) = run(&mut e, 20);
    assert!(
        (main - 0.5 * pan).abs() < 1e-4,
        "held: the delayed dry signal, {main}"
    );
    assert_eq!(send, 0.0, "held: the send is silent");
    // An engine attached while held is held too.
    let mut e2 = build(&h.tree());
    h.attach_engine(e2.handle(), e2.meter_bank());
    let (main, send) = run(&mut e2, 20);
    assert!((main - 0.5 * pan).abs() < 1e-4, "new engine held: {main}");
    assert_eq!(send, 0.0);
    h.hold_insert("ch/kick", false).expect("release");
    let (main, send) = run(&mut e2, 20);
    assert!(main.abs() < 1e-6, "released: gear in again, {main}");
    assert!((send - 0.5).abs() < 1e-6, "released: send back, {send}");
    assert!(drain(&mut changes).is_empty(), "nothing announced");
    assert_eq!(h.shared.lock().generation, generation, "nothing to save");
    assert_eq!(h.get("ch/kick/insert/bypass").await, Ok(0.0));

    // A measurement recorded live is kept and saved.
    let m = crate::insert::InsertMeasurement {
        backend: "jack".into(),
        rate: 48000,
        block: 64,
        samples: 100.5,
        error: 0.01,
        inverted: true,
        manual: false,
    };
    h.record_insert_measurement("kick", m.clone());
    assert_eq!(h.insert_measurements()["kick"], vec![m]);
    assert!(h.shared.lock().generation > generation, "marked for saving");
    // Nobody measures in a bare console.
    assert!(matches!(
        h.measure_insert("ch/kick").await,
        Err(ControlError::Insert(e)) if e.contains("by the running daemon")
    ));
}
