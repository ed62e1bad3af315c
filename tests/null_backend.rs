//! The null backend keeps real time: frames processed over 10 s of wall clock are within 1 %
//! of the sample rate times the elapsed time, the engine really ran (its transport advanced
//! as far), a structural swap lands glitch-free, and stop returns within 1 s.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faderbridge::audio::{AudioConfig, BackendKind, EngineFactory, RunningAudio};
use faderbridge::engine::{Engine, MeterBank};
use faderbridge::params::ParamTree;
use faderbridge::session;

const YAML: &str = "version: 1
channels:
  - { name: a, source: { input: 1 }, fader_db: -3 }
  - { name: b, source: { input: 2 }, pan: 0.3 }
buses:
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.2 } } }
";

fn factory(banks: Arc<Mutex<Vec<Arc<MeterBank>>>>, yaml: &'static str) -> EngineFactory {
    Arc::new(move |rate, block| {
        let s = session::parse_str(yaml, Path::new("/nonexistent/null.yaml"))
            .map_err(|e| e.to_string())?;
        let tree = ParamTree::build(&s);
        let mut e = Engine::build(&s, &tree, &HashMap::new(), rate as f32, block)
            .map_err(|e| e.to_string())?;
        let _handle = e.handle();
        banks
            .lock()
            .map_err(|e| e.to_string())?
            .push(e.meter_bank());
        Ok(Box::new(e))
    })
}

#[test]
fn null_clock_keeps_real_time_over_10_seconds() {
    let banks = Arc::new(Mutex::new(Vec::new()));
    let cfg = AudioConfig {
        sample_rate: 48000,
        block: 64,
        ..AudioConfig::default()
    };
    let audio = RunningAudio::start(BackendKind::Null, cfg, factory(banks.clone(), YAML))
        .expect("null starts");
    let st = audio.stats();
    assert_eq!(
        (st.backend, st.connected, st.sample_rate, st.block),
        ("null", true, 48000, 64)
    );
    // Let it settle, then measure over 10 s of wall clock.
    std::thread::sleep(Duration::from_millis(200));
    let (t0, f0) = (Instant::now(), audio.stats().frames);
    std::thread::sleep(Duration::from_secs(10));
    let (t1, f1) = (Instant::now(), audio.stats().frames);
    let expect = (t1 - t0).as_secs_f64() * 48000.0;
    let got = (f1 - f0) as f64;
    let drift = got / expect - 1.0;
    eprintln!(
        "null clock: {got} frames in {:.3} s = {:+.4} % vs real time; stats {:?}",
        (t1 - t0).as_secs_f64(),
        drift * 100.0,
        audio.stats()
    );
    assert!(drift.abs() < 0.01, "drift {:.3} %", drift * 100.0);
    // The engine itself advanced: its transport (published with the meters) matches.
    let pos = banks.lock().expect("banks")[0].read().position;
    let total = audio.stats().frames;
    assert!(
        pos <= total && total - pos <= 64,
        "position {pos} vs frames {total}"
    );

    // Swap a structurally different engine in; the clock keeps running through it.
    let f = factory(
        banks.clone(),
        "version: 1\nchannels:\n  - { name: solo, source: { input: 1 } }\n",
    );
    audio.swap_engine(f(48000, 64).expect("builds"));
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let p = banks.lock().expect("banks")[1].read().position;
        if p > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the swapped engine never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    audio.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}
