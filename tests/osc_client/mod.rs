//! Helpers for OSC end-to-end tests and the OSC load benchmark: start the real daemon on a
//! session with an `osc` surface, and talk to it over real UDP sockets.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faderbridge"))
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-osc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running daemon, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Daemon {
    /// Start `faderbridge run` on `session` (which must contain `{PORT}` where the osc
    /// surface's port goes) with `args` (backend and the like); waits until the OSC surface
    /// answers a query.
    pub fn start(tag: &str, session: &str, args: &[&str]) -> Daemon {
        Daemon::start_in(tempdir(tag), session, args)
    }

    /// [`Daemon::start`] in `dir` as it is (a state directory `dir/state` already there is
    /// the daemon's).
    pub fn start_in(dir: PathBuf, session: &str, args: &[&str]) -> Daemon {
        let port = free_port();
        let file = dir.join("s.yaml");
        std::fs::write(&file, session.replace("{PORT}", &port.to_string())).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg(&file)
            .args(args)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the daemon dies with the test process even when
        // that is killed before the guard's drop runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn daemon");
        let d = Daemon { child, port, dir };
        d.wait_ready();
        d
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_ready(&self) {
        let c = Client::new(self.addr());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            c.send("/engine/xruns", vec![]);
            if c.recv_within(Duration::from_millis(100)).is_some() {
                return;
            }
        }
        panic!("daemon did not answer OSC on {}", self.addr());
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// What `faderbridge status` prints for this daemon.
    pub fn status_text(&self) -> String {
        let out = std::process::Command::new(bin())
            .arg("status")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .output()
            .expect("faderbridge status");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One OSC client: its own UDP socket.
pub struct Client {
    pub sock: UdpSocket,
    pub to: SocketAddr,
}

pub fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    })
}

pub fn encode(p: &OscPacket) -> Vec<u8> {
    rosc::encoder::encode(p).unwrap()
}

/// Every message of a packet, bundles flattened.
pub fn flatten(p: OscPacket, out: &mut Vec<OscMessage>) {
    match p {
        OscPacket::Message(m) => out.push(m),
        OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| flatten(p, out)),
    }
}

impl Client {
    pub fn new(to: SocketAddr) -> Client {
        Client::bound("127.0.0.1", to)
    }

    /// A client whose socket is bound to `ip` (127.0.0.2 for a source outside 127.0.0.1/32).
    pub fn bound(ip: &str, to: SocketAddr) -> Client {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Client { sock, to }
    }

    pub fn send(&self, addr: &str, args: Vec<OscType>) {
        self.send_packet(&msg(addr, args));
    }

    pub fn send_packet(&self, p: &OscPacket) {
        self.sock.send_to(&encode(p), self.to).unwrap();
    }

    pub fn send_raw(&self, b: &[u8]) {
        self.sock.send_to(b, self.to).unwrap();
    }

    /// The messages of the next datagram within `limit`.
    pub fn recv_within(&self, limit: Duration) -> Option<Vec<OscMessage>> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let left = deadline - Instant::now();
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let (_, p) = rosc::decoder::decode_udp(&buf[..n]).expect("daemon sent bad OSC");
                let mut out = Vec::new();
                flatten(p, &mut out);
                return Some(out);
            }
        }
        None
    }

    /// Every message received during `d`, with its arrival time.
    pub fn collect(&self, d: Duration) -> Vec<(Instant, OscMessage)> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while Instant::now() < end {
            if let Some(ms) = self.recv_within(end - Instant::now()) {
                let t = Instant::now();
                out.extend(ms.into_iter().map(|m| (t, m)));
            }
        }
        out
    }

    /// Wait for a message with address `addr` (others are skipped) within `limit`.
    pub fn wait_for(&self, addr: &str, limit: Duration) -> Option<OscMessage> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(ms) = self.recv_within(end - Instant::now())
                && let Some(m) = ms.into_iter().find(|m| m.addr == addr)
            {
                return Some(m);
            }
        }
        None
    }

    /// Drop whatever is waiting (snapshots and the like) until `quiet` passes with nothing.
    pub fn drain(&self, quiet: Duration) -> usize {
        let mut n = 0;
        while let Some(ms) = self.recv_within(quiet) {
            n += ms.len();
        }
        n
    }

    /// Query a parameter: the value of the reply (panics on `/error` or silence).
    pub fn query(&self, path: &str) -> f32 {
        self.send(path, vec![]);
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Some(ms) = self.recv_within(end - Instant::now()) {
                for m in ms {
                    if m.addr == path {
                        return float(&m);
                    }
                    assert_ne!(m.addr, "/error", "query {path}: {:?}", m.args);
                }
            }
        }
        panic!("no reply to a query of {path}");
    }

    /// Subscribe and swallow the snapshot; returns how many messages it had.
    pub fn subscribe(&self, secs: i32) -> usize {
        self.send("/subscribe", vec![OscType::Int(secs)]);
        self.drain(Duration::from_millis(150))
    }
}

pub fn float(m: &OscMessage) -> f32 {
    match m.args.first() {
        Some(OscType::Float(f)) => *f,
        other => panic!("{}: expected a float, got {other:?}", m.addr),
    }
}
