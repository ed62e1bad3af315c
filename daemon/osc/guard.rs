//! The network guard of an OSC surface: who may talk to it (CIDR `allow` list), who may only
//! look (`read_only`), how fast one client may send (a token bucket per client), and counters
//! of everything dropped, with log lines limited to one per kind every few seconds.
//!
//! Pure logic, no sockets: the server asks [`Guard::admit`] about every datagram and TCP
//! connection before it looks at the bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::session::model::NetSurface;

/// One address range: `192.168.1.0/24`, `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// A range the session validator should have rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range like 192.168.1.0/24")]
pub struct BadCidr(pub String);

impl Cidr {
    /// Parse `ADDR/BITS` (a bare address means the one host).
    ///
    /// # Errors
    /// Not an address, or more bits than the address has.
    pub fn parse(s: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr { net, bits })
    }

    /// True when `ip` is inside the range. IPv4-mapped IPv6 sources (`::ffff:a.b.c.d`, what a
    /// socket bound to `[::]` reports) match IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(&n.octets(), &a.octets(), u32::from(self.bits))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(&n.octets(), &a.octets(), u32::from(self.bits))
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4; others unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// A client's message budget: `rate` messages a second, bursts up to one second's worth.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate,
            rate,
            last: now,
        }
    }

    /// Take one token; false when the client is over its rate.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the guard decided about a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Outside `allow`: drop.
    Denied,
    /// Queries and subscriptions only.
    ReadOnly,
    Full,
}

/// Why a packet was dropped (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Source outside the allow list.
    Disallowed,
    /// Larger than `max_packet`.
    Oversize,
    /// Not valid OSC (see [`super::decode`]).
    Malformed,
    /// Over the client's message rate.
    Limited,
    /// A set from a read-only client.
    ReadOnly,
    /// More clients than the server keeps state for.
    TooManyClients,
}

const DROP_KINDS: usize = 6;

impl Dropped {
    fn index(self) -> usize {
        self as usize
    }

    /// The counter's name in status lines.
    pub fn name(self) -> &'static str {
        match self {
            Dropped::Disallowed => "disallowed",
            Dropped::Oversize => "oversize",
            Dropped::Malformed => "malformed",
            Dropped::Limited => "rate-limited",
            Dropped::ReadOnly => "read-only",
            Dropped::TooManyClients => "too-many-clients",
        }
    }

    const ALL: [Dropped; DROP_KINDS] = [
        Dropped::Disallowed,
        Dropped::Oversize,
        Dropped::Malformed,
        Dropped::Limited,
        Dropped::ReadOnly,
        Dropped::TooManyClients,
    ];
}

/// Minimum time between two log lines of one drop kind.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Allow/read-only lists, counters and the log limiter of one surface.
#[derive(Debug)]
pub struct Guard {
    /// Which surface this guards (log lines).
    name: String,
    allow: Vec<Cidr>,
    read_only: Vec<Cidr>,
    counts: [AtomicU64; DROP_KINDS],
    /// Per drop kind: when the last log line was written and how many drops it did not show.
    logged: std::sync::Mutex<[(Option<Instant>, u64); DROP_KINDS]>,
}

impl Guard {
    /// The guard of `net` (ranges that do not parse were rejected by the session validator;
    /// any that slip through are logged and ignored, which only ever narrows access).
    pub fn new(name: &str, net: &NetSurface) -> Self {
        let parse = |list: &[String]| {
            list.iter()
                .filter_map(|s| match Cidr::parse(s) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!("{name}: {e}; ignored");
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        Self {
            name: name.to_string(),
            allow: parse(&net.allow),
            read_only: parse(&net.read_only),
            counts: Default::default(),
            logged: std::sync::Mutex::new([(None, 0); DROP_KINDS]),
        }
    }

    /// What `ip` may do.
    pub fn access(&self, ip: IpAddr) -> Access {
        if !self.allow.iter().any(|c| c.contains(ip)) {
            Access::Denied
        } else if self.read_only.iter().any(|c| c.contains(ip)) {
            Access::ReadOnly
        } else {
            Access::Full
        }
    }

    /// Count a drop and log it (at most one line per kind every [`LOG_INTERVAL`], saying how
    /// many were not logged in between).
    pub fn reject(&self, kind: Dropped, from: std::net::SocketAddr, why: &dyn std::fmt::Display) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let (last, quiet) = &mut logged[kind.index()];
        if last.is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL) {
            let more = if *quiet > 0 {
                format!(" ({quiet} more since the last report)")
            } else {
                String::new()
            };
            tracing::warn!(
                "{}: dropped a {} packet from {from}: {why}{more}",
                self.name,
                kind.name()
            );
            *last = Some(now);
            *quiet = 0;
        } else {
            *quiet += 1;
        }
    }

    /// How many packets of `kind` were dropped so far.
    pub fn count(&self, kind: Dropped) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// `dropped: 3 disallowed, 1 malformed` (empty when nothing was dropped).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = Dropped::ALL
            .iter()
            .filter(|k| self.count(**k) > 0)
            .map(|k| format!("{} {}", self.count(*k), k.name()))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("dropped: {}", parts.join(", "))
        }
    }
}

/// Loopback addresses, for tests and defaults.
pub const LOCALHOST_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// `::1`.
pub const LOCALHOST_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matches_exactly_its_prefix() {
        let c = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(c.contains(ip("192.168.1.0")));
        assert!(c.contains(ip("192.168.1.255")));
        assert!(!c.contains(ip("192.168.2.1")));
        let c = Cidr::parse("10.0.0.0/9").unwrap();
        assert!(c.contains(ip("10.127.255.255")));
        assert!(!c.contains(ip("10.128.0.0")));
        let host = Cidr::parse("127.0.0.1/32").unwrap();
        assert!(host.contains(LOCALHOST_V4));
        assert!(!host.contains(ip("127.0.0.2")));
        // A socket bound to [::] reports IPv4 peers as mapped addresses.
        assert!(host.contains(ip("::ffff:127.0.0.1")));
        assert!(!host.contains(LOCALHOST_V6));
        assert!(Cidr::parse("::1/128").unwrap().contains(LOCALHOST_V6));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().bits, 32);
        for bad in ["1.2.3.4/33", "::1/129", "nope/8", "1.2.3/8", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_bucket_allows_its_rate_and_a_one_second_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 100);
        // 0.5 s later: 50 more.
        let t1 = t0 + Duration::from_millis(500);
        let more = (0..1000).filter(|_| b.take(t1)).count();
        assert_eq!(more, 50);
    }

    #[test]
    fn access_reads_allow_then_read_only() {
        let net = NetSurface {
            listen: "127.0.0.1:0".into(),
            allow: vec!["127.0.0.0/8".into()],
            read_only: vec!["127.0.0.9/32".into()],
            rate_limit: 10,
            max_packet: 1024,
            feedback_hz: 30.0,
        };
        let g = Guard::new("osc", &net);
        assert_eq!(g.access(ip("127.0.0.1")), Access::Full);
        assert_eq!(g.access(ip("127.0.0.9")), Access::ReadOnly);
        assert_eq!(g.access(ip("192.168.0.1")), Access::Denied);
        let from = "192.168.0.1:5".parse().unwrap();
        for _ in 0..3 {
            g.reject(Dropped::Disallowed, from, &"test");
        }
        assert_eq!(g.count(Dropped::Disallowed), 3);
        assert_eq!(g.summary(), "dropped: 3 disallowed");
    }
}
