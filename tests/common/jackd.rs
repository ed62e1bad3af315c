//! A private `jackd -d dummy` for the JACK tests and benches (one starter for all of them).
//!
//! The server runs under the name the caller gives (`-n`), so it never meets a user's server
//! or another test's. Use a name that is fixed per test or bench run, not one made from the
//! process id: JACK's server registry has 8 slots, and the slot of a server that was killed
//! (not stopped) is only reclaimed by a later server of the same name. [`Jackd::start`]
//! returns once a client can connect (polled with a deadline, no fixed sleep); dropping it
//! sends SIGTERM to its PID (so it leaves the registry) and SIGKILL after 3 s. The server also
//! gets SIGKILL if the process that started it dies (`PR_SET_PDEATHSIG`).
//!
//! Include it with `#[path = "common/jackd.rs"] mod jackd;` (tests) or
//! `#[path = "../tests/common/jackd.rs"] mod jackd;` (benches).

#![allow(dead_code)] // each test binary uses part of it

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer its first client.
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// How to run the server beyond `-n NAME -d dummy`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server options before `-d` (`-R`, `-P 70`, `-p 512`).
    pub server: Vec<String>,
    pub rate: u32,
    pub period: u32,
    /// Where its stdout and stderr go; `None`: `$TMPDIR/faderbridge-jackd-NAME.log`.
    pub log: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server: Vec::new(),
            rate: 48000,
            period: 64,
            log: None,
        }
    }
}

/// xrun lines in a server's log, by whom jackd blames.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XrunCauses {
    /// "JackTimedDriver::Process XRun": the dummy driver's thread woke up late.
    pub driver: usize,
    /// "client = faderbridge was not finished".
    pub faderbridge: usize,
    /// Another client was not finished.
    pub other: usize,
}

impl std::ops::Sub for XrunCauses {
    type Output = XrunCauses;
    fn sub(self, o: XrunCauses) -> XrunCauses {
        XrunCauses {
            driver: self.driver - o.driver,
            faderbridge: self.faderbridge - o.faderbridge,
            other: self.other - o.other,
        }
    }
}

/// A running private jackd (stopped on drop).
pub struct Jackd {
    name: String,
    opts: Options,
    log: PathBuf,
    child: Option<Child>,
}

impl Jackd {
    /// `jackd -n NAME -d dummy -r 48000 -p 64`, answering when this returns.
    pub fn start(name: &str) -> Jackd {
        Jackd::start_with(name, Options::default())
    }

    /// `jackd -n NAME -d dummy -r 48000 -p PERIOD`, answering when this returns.
    pub fn start_period(name: &str, period: u32) -> Jackd {
        Jackd::start_with(
            name,
            Options {
                period,
                ..Options::default()
            },
        )
    }

    pub fn start_with(name: &str, opts: Options) -> Jackd {
        let log = opts
            .log
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("faderbridge-jackd-{name}.log")));
        // A fresh log per start; a respawn appends to it.
        let _ = std::fs::remove_file(&log);
        let mut j = Jackd {
            name: name.to_string(),
            opts,
            log,
            child: None,
        };
        j.spawn();
        j
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the server (again, after [`Jackd::kill`]) and wait until it answers. The log is
    /// appended to.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "jackd -n {} already runs", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("jackd log {}: {e}", self.log.display()));
        let mut cmd = Command::new("jackd");
        cmd.args(&self.opts.server)
            .args(["-n", &self.name, "-d", "dummy", "-r"])
            .arg(self.opts.rate.to_string())
            .arg("-p")
            .arg(self.opts.period.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log));
        // SAFETY: prctl is async-signal-safe; the server dies with the process that started
        // it even when that one is killed before any destructor runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("jackd is installed (jackd2)");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(c) = faderbridge::audio::jack::open_client("probe", Some(&self.name)) {
                let _g = faderbridge::audio::jack::client_lock();
                drop(c);
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "jackd -n {} exited ({st}) before answering; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "jackd -n {} did not answer within {START_DEADLINE:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// SIGKILL: the server vanishes without unregistering (what a restart test wants).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 3 s.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            signal(c, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// xrun lines in the server's log so far.
    pub fn xrun_causes(&self) -> XrunCauses {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let mut c = XrunCauses::default();
        for l in String::from_utf8_lossy(&log).lines() {
            if l.contains("JackTimedDriver::Process XRun") {
                c.driver += 1;
            } else if l.contains("client = faderbridge was not finished") {
                c.faderbridge += 1;
            } else if l.contains("was not finished") {
                c.other += 1;
            }
        }
        c
    }
}

impl Drop for Jackd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(c: &Child, sig: i32) {
    // SAFETY: signalling our own child by its PID (not yet reaped, so the PID is still ours).
    unsafe { libc::kill(c.id() as i32, sig) };
}
