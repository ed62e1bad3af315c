//! Tests of the state file: format, round trips, corruption handling, atomic replacement.

use super::*;
use std::ffi::OsString;
use std::sync::atomic::AtomicUsize;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TestDir(pub PathBuf);

impl TestDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "fb-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temp dir");
        TestDir(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sample() -> SavedState {
    let mut params = BTreeMap::new();
    params.insert("ch/kick/fader_db".to_string(), -6.3);
    params.insert("ch/kick/sends/verb/level_db".to_string(), f32::NEG_INFINITY);
    params.insert("ch/kick/pan".to_string(), -0.25);
    params.insert("ch/kick/eq/2/freq".to_string(), 1234.567);
    params.insert("master/fader_db".to_string(), 0.0);
    let mut scene = BTreeMap::new();
    scene.insert("ch/kick/fader_db".to_string(), f32::NEG_INFINITY);
    scene.insert("ch/kick/mute".to_string(), 1.0);
    let mut scenes = BTreeMap::new();
    scenes.insert("verse".to_string(), scene);
    scenes.insert("empty".to_string(), BTreeMap::new());
    let mut insert_latency = BTreeMap::new();
    insert_latency.insert("kick".to_string(), 137);
    SavedState {
        version: STATE_VERSION,
        params,
        scenes,
        insert_latency,
        automation: BTreeMap::from([(
            "ch/kick/fader_db".to_string(),
            crate::automation::Mode::Touch,
        )]),
        lanes: BTreeMap::from([(
            "ch/kick/fader_db".to_string(),
            vec![
                crate::automation::Point {
                    frame: 0,
                    value: f32::NEG_INFINITY,
                },
                crate::automation::Point {
                    frame: 48_000,
                    value: -3.5,
                },
            ],
        )]),
        lane_rate: 48_000,
        insert_measurements: BTreeMap::from([(
            "kick".to_string(),
            vec![crate::insert::InsertMeasurement {
                backend: "jack".into(),
                rate: 48_000,
                block: 256,
                samples: 493.017_5,
                error: 0.003,
                inverted: true,
                manual: false,
            }],
        )]),
        outboard: BTreeMap::from([(
            "ch/kick".to_string(),
            Outboard {
                unit: "1176".into(),
                settings: BTreeMap::from([("input".to_string(), "24".to_string())]),
            },
        )]),
        scene_outboard: BTreeMap::from([(
            "verse".to_string(),
            BTreeMap::from([("ch/kick".to_string(), Outboard::default())]),
        )]),
    }
}

fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.json.corrupt-"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn save_then_load_round_trips_including_neg_inf() {
    let d = TestDir::new("roundtrip");
    let sd = StateDir::open(&d.0).expect("open");
    assert_eq!(sd.load().expect("load"), None, "no file yet");
    let s = sample();
    sd.save(&s).expect("save");
    let back = sd.load().expect("load").expect("present");
    assert_eq!(back, s);
    assert_eq!(
        back.params["ch/kick/sends/verb/level_db"],
        f32::NEG_INFINITY
    );
    assert_eq!(back.scenes["verse"]["ch/kick/fader_db"], f32::NEG_INFINITY);
    assert_eq!(sd.writes(), 1);
    // A second save replaces the first, and leaves no temp file behind.
    let mut s2 = s.clone();
    s2.params.insert("ch/kick/fader_db".into(), 3.5);
    sd.save(&s2).expect("save");
    assert_eq!(sd.load().expect("load"), Some(s2));
    assert_eq!(sd.writes(), 2);
    assert!(!d.0.join(TEMP_FILE).exists());
}

#[test]
fn the_file_is_plain_json_with_inf_as_strings() {
    let bytes = encode(&sample()).expect("encode");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("plain JSON");
    assert_eq!(v["state"]["params"]["ch/kick/sends/verb/level_db"], "-inf");
    assert_eq!(v["state"]["params"]["ch/kick/pan"], -0.25);
    assert_eq!(v["state"]["insert_latency"]["kick"], 137);
    let sum = v["fnv1a64"].as_str().expect("checksum string");
    assert_eq!(sum.len(), 16);
}

#[test]
fn finite_f32_values_round_trip_bit_exactly() {
    // A deterministic spread of bit patterns over every exponent, plus edge values.
    let mut params = BTreeMap::new();
    let mut x: u32 = 0x1234_5678;
    let mut want = Vec::new();
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let v = f32::from_bits(x);
        if v.is_finite() {
            params.insert(format!("p{i}"), v);
            want.push((format!("p{i}"), v));
        }
    }
    for (i, v) in [
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        1e-45,
        -0.0,
        0.1,
        16_777_217.0,
    ]
    .into_iter()
    .enumerate()
    {
        params.insert(format!("edge{i}"), v);
        want.push((format!("edge{i}"), v));
    }
    let s = SavedState {
        version: STATE_VERSION,
        params,
        ..Default::default()
    };
    let back = decode(&encode(&s).expect("encode")).expect("decode");
    assert!(want.len() > 19_000);
    for (k, v) in want {
        assert_eq!(back.params[&k].to_bits(), v.to_bits(), "{k}: {v:e}");
    }
}

#[test]
fn every_truncation_is_detected() {
    let bytes = encode(&sample()).expect("encode");
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
    }
    assert!(decode(&bytes).is_ok());
}

#[test]
fn a_changed_digit_is_detected_although_the_json_parses() {
    let bytes = encode(&sample()).expect("encode");
    let text = String::from_utf8(bytes).expect("utf8");
    let bad = text.replacen("-6.3", "-6.4", 1);
    assert_ne!(bad, text);
    let v: Result<serde_json::Value, _> = serde_json::from_str(&bad);
    assert!(v.is_ok(), "the corrupted file is still valid JSON");
    let e = decode(bad.as_bytes()).expect_err("must be rejected");
    assert!(e.contains("checksum"), "{e}");
}

#[test]
fn truncated_and_garbage_files_are_set_aside() {
    for (tag, content) in [
        ("truncated", {
            let b = encode(&sample()).expect("encode");
            b[..b.len() / 2].to_vec()
        }),
        ("garbage", b"\x00\x01not json at all\xff".to_vec()),
        ("empty", Vec::new()),
        ("newer", {
            let mut s = sample();
            s.version = STATE_VERSION + 1;
            encode(&s).expect("encode")
        }),
    ] {
        let d = TestDir::new(tag);
        let sd = StateDir::open(&d.0).expect("open");
        fs::write(sd.file(), &content).expect("write");
        assert_eq!(sd.load().expect("load"), None, "{tag}");
        assert!(!sd.file().exists(), "{tag}: bad file still in place");
        let aside = corrupt_files(&d.0);
        assert_eq!(aside.len(), 1, "{tag}: {aside:?}");
        assert_eq!(fs::read(&aside[0]).expect("read"), content, "{tag}");
        // The next save works and loads.
        sd.save(&sample()).expect("save");
        assert_eq!(sd.load().expect("load"), Some(sample()), "{tag}");
    }
}

#[test]
fn two_corrupt_files_in_the_same_second_both_survive() {
    let d = TestDir::new("twice");
    let sd = StateDir::open(&d.0).expect("open");
    fs::write(sd.file(), b"one").expect("write");
    assert_eq!(sd.load().expect("load"), None);
    fs::write(sd.file(), b"two").expect("write");
    assert_eq!(sd.load().expect("load"), None);
    let aside = corrupt_files(&d.0);
    assert_eq!(aside.len(), 2, "{aside:?}");
    let mut contents: Vec<Vec<u8>> = aside.iter().map(|p| fs::read(p).expect("r")).collect();
    contents.sort();
    assert_eq!(contents, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn a_leftover_temp_file_is_ignored_and_removed() {
    let d = TestDir::new("leftover");
    let sd = StateDir::open(&d.0).expect("open");
    sd.save(&sample()).expect("save");
    // A save killed after writing part of its temp file.
    let partial = encode(&SavedState::default()).expect("encode");
    fs::write(d.0.join(TEMP_FILE), &partial[..10]).expect("write");
    assert_eq!(sd.load().expect("load"), Some(sample()));
    let sd2 = StateDir::open(&d.0).expect("reopen");
    assert!(!d.0.join(TEMP_FILE).exists());
    assert_eq!(sd2.load().expect("load"), Some(sample()));
}

#[test]
fn null_values_are_skipped_on_read() {
    let body = br#"{"version":1,"params":{"a":null,"b":-3,"c":"-inf"},"scenes":{}}"#;
    let mut f = Vec::new();
    f.extend_from_slice(ENVELOPE_HEAD.as_bytes());
    f.extend_from_slice(format!("{:016x}", fnv1a64(body)).as_bytes());
    f.extend_from_slice(ENVELOPE_MID.as_bytes());
    f.extend_from_slice(body);
    f.extend_from_slice(ENVELOPE_TAIL.as_bytes());
    let s = decode(&f).expect("decode");
    assert_eq!(s.params.len(), 2);
    assert_eq!(s.params["b"], -3.0);
    assert_eq!(s.params["c"], f32::NEG_INFINITY);
    assert!(s.insert_latency.is_empty());
    // A file from before keyed insert measurements loads with none.
    assert!(s.insert_measurements.is_empty());
}

#[test]
fn fnv1a64_matches_published_vectors() {
    // Reference values of the FNV-1a 64-bit hash (Fowler/Noll/Vo test suite).
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn default_dir_prefers_systemd_then_xdg_then_home() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    assert_eq!(
        default_dir_from(env(&[
            ("STATE_DIRECTORY", "/var/lib/faderbridge"),
            ("HOME", "/home/u")
        ])),
        PathBuf::from("/var/lib/faderbridge")
    );
    assert_eq!(
        default_dir_from(env(&[("XDG_STATE_HOME", "/x/state"), ("HOME", "/home/u")])),
        PathBuf::from("/x/state/faderbridge")
    );
    assert_eq!(
        default_dir_from(env(&[("XDG_STATE_HOME", "relative"), ("HOME", "/home/u")])),
        PathBuf::from("/home/u/.local/state/faderbridge")
    );
    assert_eq!(
        default_dir_from(env(&[])),
        PathBuf::from("faderbridge-state")
    );
}
