//! The daemon end to end: the real binary (`faderbridge run --backend null`) driven through its
//! status socket. Clean stop on SIGTERM, state kept across SIGKILL, a truncated state file
//! survived, SIGHUP reloads (valid: a channel appears live; broken: the old config stays).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_faderbridge")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-daemon-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SESSION: &str = "version: 1
engine: { sample_rate: 48000, block: 64 }
channels:
  - { name: kick, source: { input: 1 }, fader_db: -3 }
  - { name: snare, source: { input: 2 } }
buses:
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.5 } } }
";

/// A running daemon, killed when dropped.
struct Daemon {
    child: Child,
    state: PathBuf,
}

impl Daemon {
    fn start(session: &Path, state: &Path) -> Daemon {
        let child = Command::new(bin())
            .arg("run")
            .arg(session)
            .args(["--backend", "null", "--state-dir"])
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let d = Daemon {
            child,
            state: state.to_path_buf(),
        };
        d.wait_ready();
        d
    }

    /// Poll the status socket until it answers (or fail after 20 s).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut c) = self.connect()
                && request(&mut c, r#"{"cmd":"status"}"#).contains("strips")
            {
                return;
            }
            std::thread::yield_now();
        }
        panic!("daemon did not become ready");
    }

    fn connect(&self) -> std::io::Result<BufReader<UnixStream>> {
        UnixStream::connect(self.state.join("status.sock")).map(BufReader::new)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for the process to exit; returns its status and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, t.elapsed());
            }
            assert!(t.elapsed() < limit, "daemon did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(c: &mut BufReader<UnixStream>, line: &str) -> String {
    c.get_mut().write_all(line.as_bytes()).unwrap();
    c.get_mut().write_all(b"\n").unwrap();
    let mut reply = String::new();
    c.read_line(&mut reply).unwrap();
    reply
}

fn get(c: &mut BufReader<UnixStream>, path: &str) -> serde_json::Value {
    let r = request(c, &format!(r#"{{"cmd":"get","path":"{path}"}}"#));
    serde_json::from_str(&r).unwrap_or_else(|e| panic!("{r}: {e}"))
}

fn value(v: &serde_json::Value) -> f64 {
    match &v["value"] {
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap_or_else(|| panic!("no value in {v}")),
    }
}

#[test]
fn sigterm_stops_cleanly_within_a_second_and_state_persists() {
    let dir = tempdir("term");
    let session = dir.join("s.yaml");
    std::fs::write(&session, SESSION).unwrap();
    let mut d = Daemon::start(&session, &dir.join("state"));
    let mut c = d.connect().unwrap();
    assert_eq!(
        value(&get(&mut c, "ch/kick/fader_db")),
        -3.0,
        "session value"
    );
    let r = request(
        &mut c,
        r#"{"cmd":"set","path":"ch/kick/fader_db","value":-7.5}"#,
    );
    assert!(r.contains("-7.5"), "{r}");
    let r = request(
        &mut c,
        r#"{"cmd":"set","path":"ch/kick/fader_db","value":42}"#,
    );
    assert!(r.contains("out of range -inf..10"), "{r}");
    d.signal(libc::SIGTERM);
    let (st, took) = d.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "exit {st:?}: {}", d.stderr());
    assert!(took < Duration::from_secs(1), "stopped in {took:?}");
    drop(d);
    let d = Daemon::start(&session, &dir.join("state"));
    let mut c = d.connect().unwrap();
    assert_eq!(
        value(&get(&mut c, "ch/kick/fader_db")),
        -7.5,
        "restored over the session"
    );
}

#[test]
fn sigkill_keeps_every_change_older_than_a_second_and_truncated_state_is_survived() {
    let dir = tempdir("kill");
    let session = dir.join("s.yaml");
    std::fs::write(&session, SESSION).unwrap();
    let state = dir.join("state");
    let mut d = Daemon::start(&session, &state);
    let mut c = d.connect().unwrap();
    // A burst of acknowledged changes with rising values for 1.6 s, then SIGKILL at once.
    let mut acks: Vec<(Instant, f64)> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1600) {
        // Rising with time, so the newest acknowledged value is also the largest.
        let v = -60.0 + 60.0 * start.elapsed().as_secs_f64() / 1.6;
        let r = request(
            &mut c,
            &format!(r#"{{"cmd":"set","path":"ch/snare/fader_db","value":{v}}}"#),
        );
        assert!(!r.contains("error"), "{r}");
        acks.push((Instant::now(), v));
    }
    let killed = Instant::now();
    d.signal(libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    drop(d);
    let must_have = acks
        .iter()
        .filter(|(t, _)| killed.duration_since(*t) > Duration::from_secs(1))
        .map(|&(_, v)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        must_have > -60.0,
        "the burst ran long enough: {} acks",
        acks.len()
    );

    let d = Daemon::start(&session, &state);
    let mut c = d.connect().unwrap();
    let restored = value(&get(&mut c, "ch/snare/fader_db"));
    assert!(
        restored >= must_have - 1e-6,
        "restored {restored} < {must_have} acknowledged more than 1 s before the kill ({} acks)",
        acks.len()
    );
    drop(c);
    drop(d);

    // Truncate the state file: the daemon starts from the session's values and sets the
    // broken file aside.
    let file = state.join("state.json");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let mut d = Daemon::start(&session, &state);
    let mut c = d.connect().unwrap();
    assert_eq!(
        value(&get(&mut c, "ch/snare/fader_db")),
        0.0,
        "session value after corruption"
    );
    let aside = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(aside, "the truncated file was set aside");
    d.signal(libc::SIGTERM);
    let (st, _) = d.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "exit {st:?}; stderr:\n{}", d.stderr());
}

#[test]
fn sighup_adds_a_channel_live_and_a_broken_reload_keeps_the_old_config() {
    let dir = tempdir("hup");
    let session = dir.join("s.yaml");
    std::fs::write(&session, SESSION).unwrap();
    let mut d = Daemon::start(&session, &dir.join("state"));
    let mut c = d.connect().unwrap();
    request(
        &mut c,
        r#"{"cmd":"set","path":"ch/kick/fader_db","value":-9}"#,
    );
    assert!(get(&mut c, "ch/vox/fader_db")["error"].is_string());

    // Valid: a third channel appears; the kick keeps its live value.
    let added = SESSION.replace(
        "buses:",
        "  - { name: vox, source: { input: 3 }, fader_db: -4 }\nbuses:",
    );
    std::fs::write(&session, &added).unwrap();
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get(&mut c, "ch/vox/fader_db");
        if v["value"].is_number() {
            assert_eq!(value(&v), -4.0);
            break;
        }
        assert!(Instant::now() < deadline, "channel never appeared: {v}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(value(&get(&mut c, "ch/kick/fader_db")), -9.0);

    // Broken: an unknown bus. The running config (three channels) stays.
    let broken = added.replace("fader_db: -4 }", "fader_db: -4, output: nowhere }");
    assert_ne!(broken, added);
    std::fs::write(&session, broken).unwrap();
    d.signal(libc::SIGHUP);
    // The daemon answers after handling the signal; the status still has three strips.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let s = request(&mut c, r#"{"cmd":"status"}"#);
        assert!(s.contains("\"vox\""), "old config kept: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(value(&get(&mut c, "ch/vox/fader_db")), -4.0);
    d.signal(libc::SIGTERM);
    let (st, _) = d.wait_exit(Duration::from_secs(5));
    let log = d.stderr();
    assert!(st.success());
    assert!(
        log.contains("s.yaml:"),
        "reload error names FILE:LINE:COL: {log}"
    );
    assert!(log.contains("keeping the running session"), "{log}");
}
