//! The UDP server of one OSC surface: one tokio task owns the socket and every client's
//! state, so no client state is shared or locked. Each turn of its loop handles one of:
//! a datagram (guard → decode → dialect), a stored change (feedback to subscribers), a meter
//! snapshot (to meter subscribers), a due bundle, the coalescing tick, or housekeeping.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rosc::{OscMessage, OscPacket, OscTime};
use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::decode::{self, IMMEDIATELY};
use super::guard::{Access, Dropped, Guard, TokenBucket};
use super::{ClientCx, ClientSubs, Dialect};
use crate::control::{Change, ConsoleHandle, Origin};
use crate::params::ParamTree;
use crate::session::model::NetSurface;

/// A client with no live subscription that sent nothing for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(10);
/// Most clients one surface keeps state for; packets from more are dropped and counted.
pub const MAX_CLIENTS: usize = 256;
/// Most messages waiting for a future time tag (all clients together).
pub const MAX_SCHEDULED: usize = 4096;
/// Furthest ahead a bundle may be scheduled.
pub const MAX_AHEAD: Duration = Duration::from_secs(60);
/// How far ahead of its time tag a bundle's change is handed to the console while the
/// engine's frame clock runs: the engine holds it and applies it on its exact frame, so it
/// must arrive before the block that contains that frame starts.
pub const SCHEDULE_LEAD: Duration = Duration::from_millis(20);
/// Period of the tick that flushes coalesced feedback and ends implicit touches.
pub const TICK: Duration = Duration::from_millis(5);

/// Seconds between 1900 (OSC time) and 1970 (Unix time).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

struct Client {
    origin: Origin,
    access: Access,
    bucket: TokenBucket,
    last_seen: Instant,
    subs: ClientSubs,
    /// When feedback for each OSC address was last sent.
    last_sent: HashMap<String, Instant>,
    /// Coalesced feedback waiting for its address's next slot: address → (control, message).
    pending: HashMap<String, (Arc<str>, OscMessage)>,
}

struct Scheduled {
    due: Instant,
    seq: u64,
    from: SocketAddr,
    msg: OscMessage,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// A bound OSC surface, ready to [`Server::run`].
pub struct Server {
    name: String,
    sock: Arc<UdpSocket>,
    net: NetSurface,
    dialect: Arc<dyn Dialect>,
    console: ConsoleHandle,
    guard: Arc<Guard>,
    /// The surface's own registration (status line with client count and drop counters).
    me: Origin,
    clients: HashMap<SocketAddr, Client>,
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    tree: Arc<ParamTree>,
    /// Minimum time between two feedback messages for one address to one client.
    interval: Duration,
}

/// Bind `net.listen` (UDP, and TCP for OSCQuery when the dialect serves it) and run the
/// surface until `shutdown`. Returns the bound UDP address and the task.
///
/// # Errors
/// The address does not parse or cannot be bound.
pub async fn spawn(
    net: NetSurface,
    dialect: Arc<dyn Dialect>,
    console: ConsoleHandle,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let server = Server::bind(net, dialect, console).await?;
    let addr = server.local_addr()?;
    let query = if server.dialect.oscquery() {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let q = super::query::QueryServer {
            console: server.console.clone(),
            guard: server.guard.clone(),
            osc_port: addr.port(),
        };
        Some(tokio::spawn(q.run(listener, shutdown.clone())))
    } else {
        None
    };
    // The task ends when both sockets are closed, so a surface restarted on the same port
    // (a reload) can bind again as soon as it has been awaited.
    let task = tokio::spawn(async move {
        server.run(shutdown).await;
        if let Some(q) = query {
            let _ = q.await;
        }
    });
    Ok((addr, task))
}

fn to_instant(t: OscTime, now: Instant) -> Result<Instant, &'static str> {
    if t == IMMEDIATELY || u64::from(t.seconds) < NTP_UNIX_OFFSET {
        return Ok(now);
    }
    let frac = (u64::from(t.fractional) * 1_000_000_000) >> 32;
    let at = UNIX_EPOCH + Duration::new(u64::from(t.seconds) - NTP_UNIX_OFFSET, frac as u32);
    match at.duration_since(SystemTime::now()) {
        Err(_) => Ok(now),
        Ok(d) if d > MAX_AHEAD => Err("time tag more than 60 s ahead"),
        Ok(d) => Ok(now + d),
    }
}

impl Server {
    /// Bind the UDP socket of `net.listen`.
    ///
    /// # Errors
    /// The address does not parse or cannot be bound.
    pub async fn bind(
        net: NetSurface,
        dialect: Arc<dyn Dialect>,
        console: ConsoleHandle,
    ) -> std::io::Result<Server> {
        let listen: SocketAddr = net.listen.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{:?} is not an address:port", net.listen),
            )
        })?;
        let sock = UdpSocket::bind(listen).await?;
        let bound = sock.local_addr()?;
        let name = format!("{} {bound}", dialect.name());
        let guard = Arc::new(Guard::new(&name, &net));
        let me = console.register_surface(&name);
        console.set_surface_info(me, "0 clients");
        let tree = console.tree();
        let interval = Duration::from_secs_f32(1.0 / net.feedback_hz.clamp(1.0, 1000.0));
        Ok(Server {
            name,
            sock: Arc::new(sock),
            net,
            dialect,
            console,
            guard,
            me,
            clients: HashMap::new(),
            scheduled: BinaryHeap::new(),
            seq: 0,
            tree,
            interval,
        })
    }

    /// The bound UDP address.
    ///
    /// # Errors
    /// As `UdpSocket::local_addr`.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Serve until `shutdown`; unregisters every client on the way out.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = self.console.subscribe();
        let mut meters = self.console.subscribe_meters();
        let mut trees = self.console.subscribe_tree();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut house = tokio::time::interval(Duration::from_secs(1));
        house.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            let timers = self.has_timers();
            let metering = self.clients.values().any(|c| c.subs.metering(now));
            let lead = self.lead();
            let next_due = self.scheduled.peek().map(|Reverse(s)| s.due - lead);
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let data = buf[..n].to_vec();
                        self.datagram(&data, from).await;
                    }
                    Err(e) => {
                        // ICMP port unreachable from a client that went away, and the like.
                        tracing::debug!("{}: receive: {e}", self.name);
                    }
                },
                r = changes.recv() => match r {
                    Ok(c) => self.change(&c).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("{}: fell {n} changes behind; resending snapshots", self.name);
                        self.resnapshot().await;
                    }
                    Err(RecvError::Closed) => break,
                },
                r = meters.changed(), if metering => {
                    if r.is_err() { break; }
                    let m = meters.borrow_and_update().clone();
                    self.send_meters(&m).await;
                }
                r = trees.changed() => {
                    if r.is_err() { break; }
                    self.tree = trees.borrow_and_update().clone();
                }
                () = sleep_until_opt(next_due) => self.run_scheduled().await,
                _ = tick.tick(), if timers => self.flush().await,
                _ = house.tick() => self.housekeeping(),
            }
        }
        for (_, c) in self.clients.drain() {
            self.console.unregister_surface(c.origin);
        }
        self.console.unregister_surface(self.me);
    }

    /// [`SCHEDULE_LEAD`] while the engine's frames can be targeted, else nothing (a
    /// change handed over early would then apply early).
    fn lead(&self) -> Duration {
        if self.scheduled.is_empty() || !self.console.frame_clock_running() {
            Duration::ZERO
        } else {
            SCHEDULE_LEAD
        }
    }

    fn has_timers(&self) -> bool {
        self.clients
            .values()
            .any(|c| !c.pending.is_empty() || !c.subs.implicit.is_empty())
    }

    async fn send(&self, to: SocketAddr, p: &OscPacket) {
        match rosc::encoder::encode(p) {
            Ok(bytes) => {
                if let Err(e) = self.sock.send_to(&bytes, to).await {
                    tracing::debug!("{}: send to {to}: {e}", self.name);
                }
            }
            Err(e) => tracing::warn!("{}: cannot encode a reply: {e:?}", self.name),
        }
    }

    async fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let access = self.guard.access(from.ip());
        if access == Access::Denied {
            self.guard
                .reject(Dropped::Disallowed, from, &"not in allow");
            return;
        }
        if data.len() > self.net.max_packet {
            let why = format!("{} bytes > max_packet {}", data.len(), self.net.max_packet);
            self.guard.reject(Dropped::Oversize, from, &why);
            return;
        }
        let msgs = match decode::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.guard.reject(Dropped::Malformed, from, &e);
                return;
            }
        };
        let now = Instant::now();
        let timed = msgs.iter().any(|t| t.time != decode::IMMEDIATELY);
        let lead = if timed && self.console.frame_clock_running() {
            SCHEDULE_LEAD
        } else {
            Duration::ZERO
        };
        for t in msgs {
            match to_instant(t.time, now) {
                Ok(due) if due <= now => self.message(&t.msg, from, access, true, None).await,
                Ok(due) if due <= now + lead => {
                    let at = Some(due.into_std());
                    self.message(&t.msg, from, access, true, at).await;
                }
                Ok(due) => {
                    if self.scheduled.len() >= MAX_SCHEDULED {
                        let p = super::error_reply(&t.msg.addr, "too many bundles waiting");
                        self.send(from, &p).await;
                        continue;
                    }
                    self.seq += 1;
                    self.scheduled.push(Reverse(Scheduled {
                        due,
                        seq: self.seq,
                        from,
                        msg: t.msg,
                    }));
                }
                Err(why) => {
                    let p = super::error_reply(&t.msg.addr, why);
                    self.send(from, &p).await;
                }
            }
        }
    }

    async fn run_scheduled(&mut self) {
        let now = Instant::now() + self.lead();
        while self.scheduled.peek().is_some_and(|Reverse(s)| s.due <= now) {
            let Some(Reverse(s)) = self.scheduled.pop() else {
                break;
            };
            // The allow list may not have changed, but the client's rights are rechecked.
            let access = self.guard.access(s.from.ip());
            if access != Access::Denied {
                let at = Some(s.due.into_std());
                self.message(&s.msg, s.from, access, false, at).await;
            }
        }
    }

    /// One admitted message from `from`; `count` charges it to the client's rate; `at` is
    /// the instant its changes must sound (a bundle's time tag), None for at once.
    async fn message(
        &mut self,
        msg: &OscMessage,
        from: SocketAddr,
        access: Access,
        count: bool,
        at: Option<std::time::Instant>,
    ) {
        let now = Instant::now();
        if !self.clients.contains_key(&from) {
            if self.clients.len() >= MAX_CLIENTS {
                self.guard
                    .reject(Dropped::TooManyClients, from, &"client table full");
                return;
            }
            let origin = self
                .console
                .register_surface(&format!("{} client {from}", self.dialect.name()));
            self.clients.insert(
                from,
                Client {
                    origin,
                    access,
                    bucket: TokenBucket::new(self.net.rate_limit, now.into_std()),
                    last_seen: now,
                    subs: ClientSubs::default(),
                    last_sent: HashMap::new(),
                    pending: HashMap::new(),
                },
            );
        }
        let Some(client) = self.clients.get_mut(&from) else {
            return;
        };
        if count && !client.bucket.take(now.into_std()) {
            let why = format!("over rate_limit {} msgs/s", self.net.rate_limit);
            self.guard.reject(Dropped::Limited, from, &why);
            return;
        }
        client.last_seen = now;
        client.access = access;
        let mut cx = ClientCx {
            addr: from,
            access,
            origin: client.origin,
            console: &self.console,
            tree: &self.tree,
            subs: &mut client.subs,
            guard: &self.guard,
            now,
            at,
            sock: &self.sock,
        };
        let replies = self.dialect.incoming(msg, &mut cx);
        let released = std::mem::take(&mut client.subs.released);
        let subscribed = client.subs.subscribed(now);
        for p in &replies {
            self.send(from, p).await;
        }
        if subscribed {
            for path in released {
                self.send_current(from, &path).await;
            }
        }
    }

    /// Send the current value of `path` to one client (after a touch ends).
    async fn send_current(&mut self, to: SocketAddr, path: &Arc<str>) {
        let Some(id) = self.tree.resolve(path) else {
            return;
        };
        let Ok(value) = self.console.get_sync(path) else {
            return;
        };
        let change = Change {
            path: path.clone(),
            id,
            value,
            origin: Origin::Internal,
        };
        if let Some(m) = self.dialect.feedback(&change, &self.tree) {
            let now = Instant::now();
            if let Some(c) = self.clients.get_mut(&to) {
                c.last_sent.insert(m.addr.clone(), now);
                c.pending.remove(&m.addr);
            }
            self.send(to, &OscPacket::Message(m)).await;
        }
    }

    /// A stored change: to every subscribed client except its origin, coalesced per address.
    async fn change(&mut self, change: &Change) {
        let now = Instant::now();
        if !self.clients.values().any(|c| c.subs.subscribed(now)) {
            return;
        }
        let Some(msg) = self.dialect.feedback(change, &self.tree) else {
            return;
        };
        let mut now_to = Vec::new();
        for (addr, c) in &mut self.clients {
            if c.origin == change.origin || !c.subs.subscribed(now) {
                continue;
            }
            if c.subs.holds(&change.path, now) {
                c.subs.held.insert(change.path.clone());
                c.pending.remove(&msg.addr);
                continue;
            }
            let free = c
                .last_sent
                .get(&msg.addr)
                .is_none_or(|t| now.duration_since(*t) >= self.interval);
            if free {
                c.last_sent.insert(msg.addr.clone(), now);
                c.pending.remove(&msg.addr);
                now_to.push(*addr);
            } else {
                c.pending
                    .insert(msg.addr.clone(), (change.path.clone(), msg.clone()));
            }
        }
        if !now_to.is_empty() {
            let p = OscPacket::Message(msg);
            match rosc::encoder::encode(&p) {
                Ok(bytes) => {
                    for to in now_to {
                        if let Err(e) = self.sock.send_to(&bytes, to).await {
                            tracing::debug!("{}: send to {to}: {e}", self.name);
                        }
                    }
                }
                Err(e) => tracing::warn!("{}: cannot encode feedback: {e:?}", self.name),
            }
        }
    }

    /// The tick: send coalesced feedback whose slot came, end implicit touches.
    async fn flush(&mut self) {
        let now = Instant::now();
        let mut out: Vec<(SocketAddr, OscMessage)> = Vec::new();
        let mut release: Vec<(SocketAddr, Arc<str>)> = Vec::new();
        for (addr, c) in &mut self.clients {
            let ended: Vec<Arc<str>> = c
                .subs
                .implicit
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(p, _)| p.clone())
                .collect();
            for p in ended {
                c.subs.implicit.remove(&p);
                if c.subs.held.remove(&p) && !c.subs.touched.contains(&p) {
                    release.push((*addr, p));
                }
            }
            if c.pending.is_empty() {
                continue;
            }
            if !c.subs.subscribed(now) {
                c.pending.clear();
                continue;
            }
            let due: Vec<String> = c
                .pending
                .keys()
                .filter(|a| {
                    c.last_sent
                        .get(*a)
                        .is_none_or(|t| now.duration_since(*t) >= self.interval)
                })
                .cloned()
                .collect();
            for a in due {
                if let Some((path, m)) = c.pending.remove(&a) {
                    if c.subs.holds(&path, now) {
                        c.subs.held.insert(path);
                        continue;
                    }
                    c.last_sent.insert(a, now);
                    out.push((*addr, m));
                }
            }
        }
        for (to, m) in out {
            self.send(to, &OscPacket::Message(m)).await;
        }
        for (to, p) in release {
            if self
                .clients
                .get(&to)
                .is_some_and(|c| c.subs.subscribed(now))
            {
                self.send_current(to, &p).await;
            }
        }
    }

    async fn resnapshot(&mut self) {
        let now = Instant::now();
        let to: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.subs.subscribed(now))
            .map(|(a, _)| *a)
            .collect();
        if to.is_empty() {
            return;
        }
        let packets = super::bundles(self.dialect.snapshot(&self.console, &self.tree));
        for a in to {
            for p in &packets {
                self.send(a, p).await;
            }
        }
    }

    async fn send_meters(&self, m: &crate::engine::Meters) {
        let now = Instant::now();
        let packets = self.dialect.meters(m, &self.tree);
        let encoded: Vec<Vec<u8>> = packets
            .iter()
            .filter_map(|p| rosc::encoder::encode(p).ok())
            .collect();
        for (a, c) in &self.clients {
            if c.subs.metering(now) {
                for b in &encoded {
                    let _ = self.sock.send_to(b, *a).await;
                }
            }
        }
    }

    /// Forget idle clients (unregistering them releases their touches); refresh the status.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        let gone: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                // Touches do not keep a silent client: unregistering releases them.
                !c.subs.subscribed(now)
                    && !c.subs.metering(now)
                    && now.duration_since(c.last_seen) >= IDLE
            })
            .map(|(a, _)| *a)
            .collect();
        for a in gone {
            if let Some(c) = self.clients.remove(&a) {
                self.console.unregister_surface(c.origin);
            }
        }
        let subs = self
            .clients
            .values()
            .filter(|c| c.subs.subscribed(now))
            .count();
        let summary = self.guard.summary();
        let info = format!(
            "{} clients, {subs} subscribed{}{summary}",
            self.clients.len(),
            if summary.is_empty() { "" } else { "; " }
        );
        self.console.set_surface_info(self.me, &info);
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_tags_before_1970_and_immediately_are_now() {
        let now = Instant::now();
        assert_eq!(to_instant(IMMEDIATELY, now), Ok(now));
        let t = OscTime {
            seconds: 5,
            fractional: 0,
        };
        assert_eq!(to_instant(t, now), Ok(now));
        let far = OscTime::try_from(SystemTime::now() + Duration::from_secs(3600)).unwrap();
        assert!(to_instant(far, now).is_err());
        let soon = OscTime::try_from(SystemTime::now() + Duration::from_millis(500)).unwrap();
        let at = to_instant(soon, now).unwrap();
        let d = at.duration_since(now);
        assert!(
            d > Duration::from_millis(400) && d <= Duration::from_millis(500),
            "{d:?}"
        );
    }
}
