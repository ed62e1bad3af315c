//! The live daemon's performance report (issue 3): `cargo bench --bench daemon`.
//!
//! 1. `capacity`: for each channel count N (`FB_BENCH_CHANNELS`, default 32,64,96,128,160) it
//!    starts a private `jackd -R -P 70 -n UNIQUE -d dummy -r 48000 -p 64`, a feeder client
//!    playing white noise on one port, and the release daemon (`faderbridge run --backend
//!    jack`) on a generated session of N full strips (trim, polarity, delay, HPF, LPF, gate,
//!    4 EQ bands, compressor, saturation, pan, fader, 2 sends, a quarter of them through a
//!    group; reverb and delay aux buses; master EQ, glue comp and limiter), every strip fed by
//!    the noise. After a 2 s settle it runs `FB_BENCH_SECS` (default 60) seconds and reads,
//!    through the daemon's status socket, the smoothed and peak DSP load and JACK's xrun count,
//!    and from `/proc/PID/status` the resident memory (VmRSS, VmHWM). jackd's own log says who
//!    each xrun belongs to: "client = faderbridge was not finished" (our process callback was
//!    late), "JackTimedDriver::Process XRun" (the dummy driver's own thread woke up late,
//!    before any client ran), other clients. It prints the largest N with zero xruns.
//! 2. `ready`: time from spawning the daemon to its sd_notify `READY=1`, received on a Unix
//!    datagram socket the bench binds and passes as `NOTIFY_SOCKET`: the bundled demo on the
//!    null backend (first start, which writes the demo's stems, then 5 more), a 64-channel
//!    session on the null backend, and N full strips on a private jackd for N in
//!    `FB_BENCH_READY_CHANNELS` (default 32,64,96), `FB_BENCH_READY_TAKES` starts each (default
//!    5): READY, and the time until the feeder's port is connected to all N strips (the
//!    daemon makes its connections after READY), and the daemon's memory (VmRSS, RssAnon,
//!    RssShmem, PSS). The capacity runs print their JACK start's READY time too.
//!
//! `cargo bench --bench daemon -- ready` runs only the ready times. `FB_BENCH_BIN` runs
//! another build of the daemon (to compare before and after a change). Under `cargo test`
//! (no `--bench` argument) it does nothing: it takes minutes and wants a quiet machine.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faderbridge::audio::jack::{client_lock, open_client};
use faderbridge::control::query_status;

#[path = "../tests/common/full_strip.rs"]
mod full_strip;
#[path = "../tests/common/jackd.rs"]
mod jackd;
use full_strip::FULL_STRIP;
use jackd::{Jackd, XrunCauses};

const RATE: u32 = 48000;
const PERIOD: u32 = 64;
const FEEDER: &str = "fbfeed";

/// The daemon under test: this build's, or `FB_BENCH_BIN` (to compare with another build).
fn bin() -> String {
    std::env::var("FB_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_faderbridge").into())
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: signalling a child process of ours by its PID.
    unsafe { libc::kill(pid as i32, sig) };
}

/// SIGTERM, then SIGKILL after 3 s.
fn stop(child: &mut Child) {
    kill(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------

/// A private jackd (`FB_BENCH_JACKD_OPTS`, default `-R -P 70`) with its log in `dir`.
fn start_jackd(name: &str, dir: &Path) -> Jackd {
    let opts = std::env::var("FB_BENCH_JACKD_OPTS").unwrap_or_else(|_| "-R -P 70".into());
    Jackd::start_with(
        name,
        jackd::Options {
            server: opts.split_whitespace().map(String::from).collect(),
            rate: RATE,
            period: PERIOD,
            log: Some(dir.join("jackd.log")),
        },
    )
}

/// A JACK client playing white noise (0.25 peak) on `fbfeed:noise`.
struct Noise {
    port: jack::Port<jack::AudioOut>,
    state: u32,
}

impl jack::ProcessHandler for Noise {
    fn process(&mut self, _: &jack::Client, ps: &jack::ProcessScope) -> jack::Control {
        for s in self.port.as_mut_slice(ps) {
            self.state = self.state.wrapping_mul(1664525).wrapping_add(1013904223);
            *s = 0.25 * ((self.state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0);
        }
        jack::Control::Continue
    }
}

struct Feeder {
    client: Option<jack::AsyncClient<(), Noise>>,
    port: jack::Port<jack::Unowned>,
}

impl Feeder {
    fn start(server: &str) -> Feeder {
        let c = open_client(FEEDER, Some(server)).expect("feeder connects");
        let port = c
            .register_port("noise", jack::AudioOut::default())
            .expect("port");
        let unowned = port.clone_unowned();
        let c = c
            .activate_async((), Noise { port, state: 1 })
            .expect("activate feeder");
        Feeder {
            client: Some(c),
            port: unowned,
        }
    }

    /// How many ports the noise feeds now.
    fn fans(&self) -> usize {
        self.port.connected_count().unwrap_or(0)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _g = client_lock();
        self.client.take();
    }
}

// ---------------------------------------------------------------------------------------------

/// N full strips, each fed by `fbfeed:noise` (the daemon makes the connections).
fn session_text(n: usize) -> String {
    let mut s =
        format!("version: 1\nengine: {{ sample_rate: {RATE}, block: {PERIOD} }}\nchannels:\n");
    for i in 0..n {
        let out = if i % 4 == 0 { "drums" } else { "master" };
        s += &format!(
            "  - name: ch{i}\n    source: {{ input: \"{FEEDER}:noise\" }}\n    output: {out}\n{FULL_STRIP}\n"
        );
    }
    s += "buses:
  - { name: drums, kind: group, eq: [ { type: bell, freq: 200, gain_db: 2 } ], comp: { threshold_db: -12, ratio: 2 } }
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 2.0, predelay_ms: 20, damping: 0.5 } } }
  - { name: echo, kind: aux, fx: { delay: { time_ms: 180, feedback: 0.4, ping_pong: true } } }
master:
  eq: [ { type: high_shelf, freq: 12000, gain_db: 1.0, q: 0.7 } ]
  comp: { threshold_db: -12, ratio: 2, attack_ms: 30, release_ms: 200 }
  limiter: { ceiling_dbtp: -1.0 }
";
    s
}

/// A process's memory in MiB. RssShmem is JACK's shared segment (`/dev/shm/jack-*`, mapped
/// by libjack and shared with jackd and every other client); PSS divides shared pages among
/// the processes mapping them.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: f64,
    hwm: f64,
    anon: f64,
    shmem: f64,
    pss: f64,
    pss_shmem: f64,
}

/// The release daemon, with `NOTIFY_SOCKET` pointing at a socket of ours.
struct Daemon {
    child: Child,
    state: PathBuf,
    /// From spawn to `READY=1`.
    ready: Duration,
    spawned: Instant,
}

impl Daemon {
    fn start(session: Option<&Path>, backend: &str, jack: Option<&str>, state: &Path) -> Daemon {
        std::fs::create_dir_all(state).expect("state dir");
        let sock_path = state.join("notify.sock");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).expect("notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let log = std::fs::File::create(state.join("daemon.log")).expect("daemon log");
        let mut cmd = Command::new(bin());
        cmd.arg("run");
        if let Some(s) = session {
            cmd.arg(s);
        }
        cmd.args(["--backend", backend, "--state-dir"])
            .arg(state)
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(j) = jack {
            cmd.args(["--jack-server", j]);
        }
        die_with_parent(&mut cmd);
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn the daemon");
        let mut buf = [0u8; 4096];
        let ready = loop {
            if let Ok(n) = sock.recv(&mut buf)
                && String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
            {
                break t0.elapsed();
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "the daemon exited ({st}) before READY; log {}",
                    state.join("daemon.log").display()
                );
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no READY in 30 s");
        };
        Daemon {
            child,
            state: state.into(),
            ready,
            spawned: t0,
        }
    }

    /// Its memory now, from `/proc/PID/status` and `/proc/PID/smaps_rollup`.
    fn memory(&self) -> Mem {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let mib = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        Mem {
            rss: mib(&status, "VmRSS:"),
            hwm: mib(&status, "VmHWM:"),
            anon: mib(&status, "RssAnon:"),
            shmem: mib(&status, "RssShmem:"),
            pss: mib(&rollup, "Pss:"),
            pss_shmem: mib(&rollup, "Pss_Shmem:"),
        }
    }

    /// (load %, peak load %, xruns) from `faderbridge status`'s socket.
    fn engine(&self) -> (f32, f32, u64) {
        match query_status(&self.state.join("status.sock")) {
            Ok(r) => (r.engine.dsp_load, r.engine.dsp_load_peak, r.engine.xruns),
            Err(e) => panic!("status: {e}"),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------------

struct Capacity {
    n: usize,
    ready_ms: f64,
    xruns: u64,
    causes: XrunCauses,
    load_avg: f32,
    load_max: f32,
    peak_max: f32,
    mem: Mem,
}

fn capacity(n: usize, secs: u64, root: &Path) -> Capacity {
    let dir = root.join(format!("ch{n}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let session = dir.join("session.yaml");
    std::fs::write(&session, session_text(n)).expect("session");
    let name = format!("fbbench-cap-{n}");
    let jackd = start_jackd(&name, &dir);
    let feeder = Feeder::start(jackd.name());
    let daemon = Daemon::start(
        Some(&session),
        "jack",
        Some(jackd.name()),
        &dir.join("state"),
    );
    // Settle: the daemon's ports get connected, the first cycles run.
    std::thread::sleep(Duration::from_secs(2));
    let (_, _, x0) = daemon.engine();
    let c0 = jackd.xrun_causes();
    let start = Instant::now();
    let (mut sum, mut count, mut load_max, mut peak_max) = (0.0f32, 0u32, 0.0f32, 0.0f32);
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        let (load, peak, _) = daemon.engine();
        sum += load;
        count += 1;
        load_max = load_max.max(load);
        peak_max = peak_max.max(peak);
    }
    let (_, _, x1) = daemon.engine();
    let causes = jackd.xrun_causes() - c0;
    let mem = daemon.memory();
    let ready_ms = daemon.ready.as_secs_f64() * 1000.0;
    drop(daemon);
    drop(feeder);
    drop(jackd);
    Capacity {
        n,
        ready_ms,
        xruns: x1 - x0,
        causes,
        load_avg: sum / count.max(1) as f32,
        load_max,
        peak_max,
        mem,
    }
}

fn ready_times(root: &Path) {
    let dir = root.join("ready");
    let demo_state = dir.join("demo");
    let _ = std::fs::remove_dir_all(&demo_state);
    let first = Daemon::start(None, "null", None, &demo_state);
    let first_ms = first.ready.as_secs_f64() * 1000.0;
    drop(first);
    let mut again = Vec::new();
    for _ in 0..5 {
        let d = Daemon::start(None, "null", None, &demo_state);
        again.push(d.ready.as_secs_f64() * 1000.0);
    }
    let session = dir.join("ch64.yaml");
    std::fs::write(&session, session_text(64)).expect("session");
    let mut null64 = Vec::new();
    for k in 0..5 {
        let d = Daemon::start(
            Some(&session),
            "null",
            None,
            &dir.join(format!("null64-{k}")),
        );
        null64.push(d.ready.as_secs_f64() * 1000.0);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("ready: demo, null backend, first start (writes the demo stems) {first_ms:7.1} ms");
    println!(
        "ready: demo, null backend, later starts   median {:7.1} ms (max {:.1})",
        med(&mut again),
        again.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "ready: 64 full strips, null backend       median {:7.1} ms (max {:.1})",
        med(&mut null64),
        null64.last().copied().unwrap_or(f64::NAN)
    );
    let counts: Vec<usize> = std::env::var("FB_BENCH_READY_CHANNELS")
        .unwrap_or_else(|_| "32,64,96".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let takes: usize = std::env::var("FB_BENCH_READY_TAKES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for n in counts {
        let ndir = dir.join(format!("jack{n}"));
        std::fs::create_dir_all(&ndir).expect("dir");
        let session = ndir.join("session.yaml");
        std::fs::write(&session, session_text(n)).expect("session");
        let jackd = start_jackd(&format!("fbbench-ready-{n}"), &ndir);
        let feeder = Feeder::start(jackd.name());
        let (mut ready, mut linked, mut mem) = (Vec::new(), Vec::new(), None);
        for k in 0..takes {
            let d = Daemon::start(
                Some(&session),
                "jack",
                Some(jackd.name()),
                &ndir.join(format!("state{k}")),
            );
            ready.push(d.ready.as_secs_f64() * 1000.0);
            // The session's connections (the noise into every strip) may follow READY.
            let deadline = Instant::now() + Duration::from_secs(30);
            while feeder.fans() < n {
                assert!(
                    Instant::now() < deadline,
                    "{n} connections not made in 30 s"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            linked.push(d.spawned.elapsed().as_secs_f64() * 1000.0);
            mem.get_or_insert_with(|| d.memory());
            drop(d);
            let deadline = Instant::now() + Duration::from_secs(5);
            while feeder.fans() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let (rmin, rmax) = (
            ready.iter().copied().fold(f64::INFINITY, f64::min),
            ready.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "ready: {n:3} full strips, JACK dummy       median {:7.1} ms (min {rmin:.1}, max \
             {rmax:.1}); all {n} connections made: median {:.1} ms",
            med(&mut ready),
            med(&mut linked)
        );
        if let Some(m) = mem {
            println!(
                "memory: {n:3} full strips on JACK: VmRSS {:.1} MiB (VmHWM {:.1}) = RssAnon {:.1} \
                 + RssShmem {:.1} (JACK's segment) + file; PSS {:.1} MiB, of which shared {:.1}",
                m.rss, m.hwm, m.anon, m.shmem, m.pss, m.pss_shmem
            );
        }
        drop(feeder);
        drop(jackd);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("daemon bench: skipped (run it with `cargo bench --bench daemon`)");
        return;
    }
    let filter: Option<&str> = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let want = |name: &str| filter.is_none_or(|f| name.contains(f));
    let root = std::env::temp_dir().join(format!("fb-bench-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("temp dir");

    if want("ready") {
        ready_times(&root);
    }
    if want("capacity") {
        let secs: u64 = std::env::var("FB_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let counts: Vec<usize> = std::env::var("FB_BENCH_CHANNELS")
            .unwrap_or_else(|_| "32,64,96,128,160".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        println!(
            "capacity: jackd dummy {RATE} Hz / {PERIOD} frames, {secs} s per run after a 2 s settle"
        );
        println!(
            "capacity: {:>4} {:>9} {:>6} {:>18} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9}",
            "N",
            "ready ms",
            "xruns",
            "(driver/fb/other)",
            "load avg",
            "load max",
            "peak",
            "RSS MiB",
            "HWM MiB",
            "anon MiB"
        );
        let mut results: HashMap<usize, Capacity> = HashMap::new();
        for &n in &counts {
            let r = capacity(n, secs, &root);
            println!(
                "capacity: {:>4} {:>9.1} {:>6} {:>18} {:>8.1}% {:>8.1}% {:>8.1}% {:>8.1} {:>8.1} {:>9.1}",
                r.n,
                r.ready_ms,
                r.xruns,
                format!(
                    "{}/{}/{}",
                    r.causes.driver, r.causes.faderbridge, r.causes.other
                ),
                r.load_avg,
                r.load_max,
                r.peak_max,
                r.mem.rss,
                r.mem.hwm,
                r.mem.anon
            );
            results.insert(n, r);
        }
        let best = counts
            .iter()
            .filter(|n| results[n].xruns == 0)
            .max()
            .map(|n| &results[n]);
        match best {
            Some(r) => println!(
                "capacity: largest N without an xrun in {secs} s: {} (DSP load avg {:.1} %, max {:.1} %)",
                r.n, r.load_avg, r.load_max
            ),
            None => println!("capacity: every N had xruns in {secs} s"),
        }
        let fb = counts
            .iter()
            .filter(|n| results[n].causes.faderbridge == 0 && results[n].peak_max < 100.0)
            .max()
            .map(|n| &results[n]);
        if let Some(r) = fb {
            println!(
                "capacity: largest N where faderbridge itself was never late: {} (DSP load avg {:.1} %)",
                r.n, r.load_avg
            );
        }
        if let Some(r) = results.get(&64) {
            println!(
                "capacity: memory at 64 channels: VmRSS {:.1} MiB, VmHWM {:.1} MiB, of which \
                 JACK's shared segment (RssShmem) {:.1} MiB; private (RssAnon) {:.1} MiB; \
                 PSS {:.1} MiB (shared part {:.1})",
                r.mem.rss, r.mem.hwm, r.mem.shmem, r.mem.anon, r.mem.pss, r.mem.pss_shmem
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
