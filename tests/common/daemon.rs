//! The daemon (`faderbridge run`) as a child process with a status-socket client, for the
//! surface tests.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(5);

/// The daemon with a status-socket client.
pub struct Daemon {
    child: Child,
    sock: BufReader<UnixStream>,
}

impl Daemon {
    /// Start `faderbridge run` on `session` (written into `dir`) with `backend_args`
    /// (`["--backend", "null"]`), and connect to its status socket.
    pub fn start(dir: &Path, session: &str, backend_args: &[&str]) -> Daemon {
        Daemon::start_env(dir, session, backend_args, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(
        dir: &Path,
        session: &str,
        backend_args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let file = dir.join("s.yaml");
        std::fs::write(&file, session).unwrap();
        let state = dir.join("state");
        let child = Command::new(env!("CARGO_BIN_EXE_faderbridge"))
            .arg("run")
            .arg(&file)
            .args(backend_args)
            .arg("--state-dir")
            .arg(&state)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let sock = loop {
            if let Ok(s) = UnixStream::connect(state.join("status.sock")) {
                break BufReader::new(s);
            }
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        };
        Daemon { child, sock }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `sig` (`libc::SIGHUP`...) to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child process (not yet reaped).
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn request(&mut self, line: &str) -> serde_json::Value {
        self.sock.get_mut().write_all(line.as_bytes()).unwrap();
        self.sock.get_mut().write_all(b"\n").unwrap();
        let mut reply = String::new();
        self.sock.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply}: {e}"))
    }

    pub fn get(&mut self, path: &str) -> f64 {
        let v = self.request(&format!(r#"{{"cmd":"get","path":"{path}"}}"#));
        match &v["value"] {
            serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            x => x.as_f64().unwrap_or_else(|| panic!("no value in {v}")),
        }
    }

    pub fn set(&mut self, path: &str, value: f64) {
        let v = self.request(&format!(
            r#"{{"cmd":"set","path":"{path}","value":{value}}}"#
        ));
        assert!(v.get("error").is_none(), "set {path}: {v}");
    }

    /// The transport as `status` shows it: (playing, position in seconds).
    pub fn transport(&mut self) -> (bool, f64) {
        let v = self.request(r#"{"cmd":"status"}"#);
        let t = &v["transport"];
        (
            t["playing"]
                .as_bool()
                .unwrap_or_else(|| panic!("no transport in {v}")),
            t["position_s"]
                .as_f64()
                .unwrap_or_else(|| panic!("no position in {v}")),
        )
    }

    /// Poll the transport (every 2 ms) until `f` holds; returns what satisfied it.
    pub fn wait_transport(&mut self, what: &str, f: impl Fn(bool, f64) -> bool) -> (bool, f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (p, s) = self.transport();
            if f(p, s) {
                return (p, s);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: transport stuck at playing={p}, {s:.4} s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Poll the console until `path` satisfies `f` (the device's bytes take a moment).
    pub fn wait_value(&mut self, path: &str, f: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.get(path);
            if f(v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} stuck at {v}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
