//! The X-Air address space over our parameter tree (SPEC §6): which console address names
//! which parameter, through which [`Conv`] ([`binding`]), where a change of one of ours shows
//! on the console ([`mirror`]), and every address of a tree ([`addresses`]). Nothing is
//! cached: each call reads the tree it is given (lookups are a few string splits and one or
//! two [`ParamTree::resolve`] calls), so a reloaded tree is picked up at once.
//!
//! Strips are numbered as the console numbers them: channels `/ch/01`..`/ch/16` in session
//! order, buses (aux and group alike) `/bus/1`..`/bus/6` in session order, the master `/lr`.
//! Channels past the 16th and buses past the 6th have no X-Air address.
//!
//! | X-Air address (NN channel, N bus, MM send, B band) | our path | X-Air value → ours |
//! |---|---|---|
//! | `/ch/NN/mix/fader`, `/bus/N/mix/fader`, `/lr/mix/fader` | `…/fader_db` | fader law, 0.75 = 0 dB |
//! | `/ch/NN/mix/on`, `/bus/N/mix/on` | `…/mute` | int, 1 = not muted |
//! | `/ch/NN/mix/pan` | `ch/X/pan` | 0..1 → -1..+1 |
//! | `/ch/NN/mix/MM/level` | `ch/X/sends/BUS/level_db` | fader law |
//! | `/ch/NN/config/name`, `/bus/N/config/name` | the strip's name | string, read-only |
//! | `…/eq/on` | every `…/eq/B/on` | int; set switches all four bands, reads 1 if any is on |
//! | `…/eq/B/type` | `…/eq/B/type` | LCut,LShv → low_shelf; PEQ,VEQ → bell; HShv,HCut → high_shelf |
//! | `…/eq/B/f` | `…/eq/B/freq` | log 20..20000 Hz |
//! | `…/eq/B/g` | `…/eq/B/gain_db` | lin ±15 dB (ours ±24: shown clamped) |
//! | `…/eq/B/q` | `…/eq/B/q` | log 10..0.3 (ours 0.1..20: shown clamped) |
//! | `…/dyn/on` | `…/comp/on` | int |
//! | `…/dyn/thr` | `…/comp/threshold_db` | lin -60..0 dB |
//! | `…/dyn/ratio` | `…/comp/ratio` | enum 1.1..100 (ours 1..100: shown as the nearest step) |
//! | `…/dyn/attack` | `…/comp/attack_ms` | lin 0..120 ms (ours 0.05..500) |
//! | `…/dyn/release` | `…/comp/release_ms` | log 5..4000 ms (ours 5..5000) |
//! | `…/dyn/knee` | `…/comp/knee_db` | lin 0..5, read as dB (ours 0..24) |
//! | `…/dyn/mgain` | `…/comp/makeup_db` | lin 0..24 dB (ours -12..24) |
//! | `/ch/NN/gate/on` | `ch/X/gate/on` | int |
//! | `/ch/NN/gate/thr` | `…/gate/threshold_db` | lin -80..0 dB (ours -90..0) |
//! | `/ch/NN/gate/range` | `…/gate/range_db` | lin 3..60 dB (ours 0..90) |
//! | `/ch/NN/gate/attack` | `…/gate/attack_ms` | lin 0..120 ms (ours 0.01..100) |
//! | `/ch/NN/gate/hold` | `…/gate/hold_ms` | log 0.02..2000 ms (ours 0..2000) |
//! | `/ch/NN/gate/release` | `…/gate/release_ms` | log 5..4000 ms (ours 1..5000) |
//! | `/ch/NN/preamp/hpon` | `ch/X/hpf/on` | int |
//! | `/ch/NN/preamp/hpf` | `ch/X/hpf/freq` | log 20..400 Hz (ours 10..20000) |
//! | `/ch/NN/preamp/invert` | `ch/X/invert` | int |
//!
//! Where the ranges differ, a value coming from the console is clamped to our range by the
//! control plane, and a value of ours is shown to the console clamped to its range. The EQ,
//! dynamics addresses exist for buses and `/lr` too (both have EQ and compressor in our model);
//! `/ch/NN/gate/*` and `/ch/NN/preamp/*` only for channels.
//!
//! Addresses the console has but our model does not back are [`Binding::Fixed`]: they answer a
//! constant and ignore sets: `/lr/mix/on` (our master has no mute: always 1), `/lr/config/name`
//! (`"LR"`), and `/ch/NN/mix/MM/level` towards a group bus (channels reach a group through their
//! `output`, not a send: always 0.0, i.e. -inf).

use super::convert::{Conv, XVal};
use crate::params::{ParamSpec, ParamTree, Target};

/// How many channels the console addresses (`/ch/01..16`).
pub const XAIR_CHANNELS: usize = 16;
/// How many buses the console addresses (`/bus/1..6`).
pub const XAIR_BUSES: usize = 6;
/// How many EQ bands a channel has on the console and in our model.
pub const XAIR_EQ_BANDS: usize = 4;

/// What one X-Air address names.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// One of our parameters (canonical path), through a conversion; `spec` clamps what the
    /// console sends into our range.
    Param {
        path: String,
        conv: Conv,
        spec: &'static ParamSpec,
    },
    /// The console's EQ switch: the `on` of every band of a strip (canonical paths).
    EqOn { bands: Vec<String> },
    /// A strip's name: read-only, sets are answered with the current name.
    Name(String),
    /// An address our model does not back: answered with this value; sets change nothing.
    Fixed(XVal),
}

/// Where a change of one of our parameters shows on the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Mirror {
    /// At this address, through this conversion.
    Value { addr: String, conv: Conv },
    /// In this `…/eq/on`, whose value depends on every band of the strip (`bands`).
    EqOn { addr: String, bands: Vec<String> },
}

/// Per-strip address families: X-Air suffix, our suffix, conversion.
type Family = (&'static str, &'static str, Conv);

/// `eq/B/…` (B = 1..4).
const EQ_BAND: &[Family] = &[
    ("type", "type", Conv::EqType),
    (
        "f",
        "freq",
        Conv::Log {
            lo: 20.0,
            hi: 20000.0,
        },
    ),
    (
        "g",
        "gain_db",
        Conv::Lin {
            lo: -15.0,
            hi: 15.0,
        },
    ),
    ("q", "q", Conv::Log { lo: 10.0, hi: 0.3 }),
];

/// Compressor: channels, buses and the master.
const DYN: &[Family] = &[
    ("dyn/on", "comp/on", Conv::Switch),
    (
        "dyn/thr",
        "comp/threshold_db",
        Conv::Lin { lo: -60.0, hi: 0.0 },
    ),
    ("dyn/ratio", "comp/ratio", Conv::Ratio),
    (
        "dyn/attack",
        "comp/attack_ms",
        Conv::Lin { lo: 0.0, hi: 120.0 },
    ),
    (
        "dyn/release",
        "comp/release_ms",
        Conv::Log {
            lo: 5.0,
            hi: 4000.0,
        },
    ),
    ("dyn/knee", "comp/knee_db", Conv::Lin { lo: 0.0, hi: 5.0 }),
    (
        "dyn/mgain",
        "comp/makeup_db",
        Conv::Lin { lo: 0.0, hi: 24.0 },
    ),
];

/// Channel-only families.
const CHANNEL: &[Family] = &[
    ("mix/fader", "fader_db", Conv::Fader),
    ("mix/on", "mute", Conv::OnInverted),
    ("mix/pan", "pan", Conv::Pan),
    ("gate/on", "gate/on", Conv::Switch),
    (
        "gate/thr",
        "gate/threshold_db",
        Conv::Lin { lo: -80.0, hi: 0.0 },
    ),
    (
        "gate/range",
        "gate/range_db",
        Conv::Lin { lo: 3.0, hi: 60.0 },
    ),
    (
        "gate/attack",
        "gate/attack_ms",
        Conv::Lin { lo: 0.0, hi: 120.0 },
    ),
    (
        "gate/hold",
        "gate/hold_ms",
        Conv::Log {
            lo: 0.02,
            hi: 2000.0,
        },
    ),
    (
        "gate/release",
        "gate/release_ms",
        Conv::Log {
            lo: 5.0,
            hi: 4000.0,
        },
    ),
    ("preamp/hpon", "hpf/on", Conv::Switch),
    (
        "preamp/hpf",
        "hpf/freq",
        Conv::Log {
            lo: 20.0,
            hi: 400.0,
        },
    ),
    ("preamp/invert", "invert", Conv::Switch),
];

/// Bus-only families.
const BUS: &[Family] = &[
    ("mix/fader", "fader_db", Conv::Fader),
    ("mix/on", "mute", Conv::OnInverted),
];

/// Master-only families (our master has no mute: `/lr/mix/on` is fixed).
const MASTER: &[Family] = &[("mix/fader", "fader_db", Conv::Fader)];

/// Which kind of strip an X-Air prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Bus,
    Master,
}

fn families(kind: Kind) -> impl Iterator<Item = &'static Family> {
    let own = match kind {
        Kind::Channel => CHANNEL,
        Kind::Bus => BUS,
        Kind::Master => MASTER,
    };
    own.iter().chain(DYN)
}

/// Our path prefix (`ch/kick`, `bus/verb`, `master`) of the strip at 1-based position `n`.
fn strip_prefix(tree: &ParamTree, kind: Kind, n: usize) -> Option<String> {
    let probe = match kind {
        Kind::Channel => format!("ch/{n}/fader_db"),
        Kind::Bus => format!("bus/{n}/fader_db"),
        Kind::Master => return Some("master".into()),
    };
    let id = tree.resolve(&probe)?;
    tree.get(id)
        .path
        .strip_suffix("/fader_db")
        .map(str::to_owned)
}

/// A strip number as the console writes it (`01` for channels, `1` for buses) → 1..=max.
fn number(s: &str, digits: usize, max: usize) -> Option<usize> {
    if s.len() != digits || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: usize = s.parse().ok()?;
    (1..=max).contains(&n).then_some(n)
}

/// `/ch/NN/rest`, `/bus/N/rest`, `/lr/rest` → (kind, our prefix, rest).
fn split<'a>(tree: &ParamTree, addr: &'a str) -> Option<(Kind, String, &'a str)> {
    let (head, rest) = addr.strip_prefix('/')?.split_once('/')?;
    let (kind, n, rest) = match head {
        "lr" => return Some((Kind::Master, "master".into(), rest)),
        "ch" => {
            let (nn, rest) = rest.split_once('/')?;
            (Kind::Channel, number(nn, 2, XAIR_CHANNELS)?, rest)
        }
        "bus" => {
            let (n, rest) = rest.split_once('/')?;
            (Kind::Bus, number(n, 1, XAIR_BUSES)?, rest)
        }
        _ => return None,
    };
    Some((kind, strip_prefix(tree, kind, n)?, rest))
}

fn param(tree: &ParamTree, path: &str, conv: Conv) -> Option<Binding> {
    let p = tree.get(tree.resolve(path)?);
    Some(Binding::Param {
        path: p.path.clone(),
        conv,
        spec: p.spec,
    })
}

/// The canonical paths of a strip's EQ band switches.
fn eq_bands(tree: &ParamTree, prefix: &str) -> Vec<String> {
    (1..=XAIR_EQ_BANDS)
        .filter_map(|b| tree.resolve(&format!("{prefix}/eq/{b}/on")))
        .map(|id| tree.get(id).path.clone())
        .collect()
}

/// What the console address `addr` (`/ch/01/mix/fader`) names in `tree`; None when the console
/// has no such address or our session has no such strip.
pub fn binding(tree: &ParamTree, addr: &str) -> Option<Binding> {
    let (kind, prefix, rest) = split(tree, addr)?;
    match (kind, rest) {
        (Kind::Master, "config/name") => return Some(Binding::Fixed(XVal::Str("LR".into()))),
        (Kind::Master, "mix/on") => return Some(Binding::Fixed(XVal::Int(1))),
        (_, "config/name") => return Some(Binding::Name(prefix.split_once('/')?.1.to_owned())),
        _ => {}
    }
    if let Some(&(_, ours, conv)) = families(kind).find(|f| f.0 == rest) {
        return param(tree, &format!("{prefix}/{ours}"), conv);
    }
    if let Some(eq) = rest.strip_prefix("eq/") {
        if eq == "on" {
            let bands = eq_bands(tree, &prefix);
            return (!bands.is_empty()).then_some(Binding::EqOn { bands });
        }
        let (b, x) = eq.split_once('/')?;
        let b = number(b, 1, XAIR_EQ_BANDS)?;
        let &(_, ours, conv) = EQ_BAND.iter().find(|f| f.0 == x)?;
        return param(tree, &format!("{prefix}/eq/{b}/{ours}"), conv);
    }
    if kind == Kind::Channel {
        let (mm, tail) = rest.strip_prefix("mix/")?.split_once('/')?;
        if tail != "level" {
            return None;
        }
        let bus = strip_prefix(tree, Kind::Bus, number(mm, 2, XAIR_BUSES)?)?;
        let bus = bus.strip_prefix("bus/")?;
        return param(tree, &format!("{prefix}/sends/{bus}/level_db"), Conv::Fader)
            .or(Some(Binding::Fixed(XVal::Float(0.0))));
    }
    None
}

/// Where a change of our parameter `path` shows on the console; None when it has no X-Air
/// address (solo, saturation, effects, strips past the console's count, ...).
pub fn mirror(tree: &ParamTree, path: &str) -> Option<Mirror> {
    let p = tree.get(tree.resolve(path)?);
    let (kind, xprefix) = match p.addr.target {
        Target::Channel(i) if usize::from(i) < XAIR_CHANNELS => {
            (Kind::Channel, format!("/ch/{:02}", i + 1))
        }
        Target::Bus(i) if usize::from(i) < XAIR_BUSES => (Kind::Bus, format!("/bus/{}", i + 1)),
        Target::Master => (Kind::Master, "/lr".to_string()),
        _ => return None,
    };
    // `ch/kick/eq/1/q` → prefix `ch/kick`, suffix `eq/1/q` (names never contain `/`).
    let (prefix, suffix) = match kind {
        Kind::Master => ("master", p.path.strip_prefix("master/")?),
        _ => {
            let (k, rest) = p.path.split_once('/')?;
            let (name, suffix) = rest.split_once('/')?;
            (&p.path[..k.len() + 1 + name.len()], suffix)
        }
    };
    if let Some(&(x, _, conv)) = families(kind).find(|f| f.1 == suffix) {
        return Some(Mirror::Value {
            addr: format!("{xprefix}/{x}"),
            conv,
        });
    }
    if let Some(eq) = suffix.strip_prefix("eq/") {
        let (b, ours) = eq.split_once('/')?;
        if ours == "on" {
            return Some(Mirror::EqOn {
                addr: format!("{xprefix}/eq/on"),
                bands: eq_bands(tree, prefix),
            });
        }
        let &(x, _, conv) = EQ_BAND.iter().find(|f| f.1 == ours)?;
        return Some(Mirror::Value {
            addr: format!("{xprefix}/eq/{b}/{x}"),
            conv,
        });
    }
    if kind == Kind::Channel {
        let (bus, tail) = suffix.strip_prefix("sends/")?.split_once('/')?;
        if tail != "level_db" {
            return None;
        }
        let bus = tree.get(tree.resolve(&format!("bus/{bus}/fader_db"))?);
        if let Target::Bus(j) = bus.addr.target
            && usize::from(j) < XAIR_BUSES
        {
            return Some(Mirror::Value {
                addr: format!("{xprefix}/mix/{:02}/level", j + 1),
                conv: Conv::Fader,
            });
        }
    }
    None
}

/// Every console address `tree` backs, in console order: channels, buses, `/lr`; per strip
/// the name, the families, the sends, the EQ, the compressor.
pub fn addresses(tree: &ParamTree) -> Vec<String> {
    let count = |kind, max| {
        (1..=max)
            .take_while(|&n| strip_prefix(tree, kind, n).is_some())
            .count()
    };
    let (channels, buses) = (
        count(Kind::Channel, XAIR_CHANNELS),
        count(Kind::Bus, XAIR_BUSES),
    );
    let mut strips: Vec<(Kind, String)> = Vec::new();
    strips.extend((1..=channels).map(|n| (Kind::Channel, format!("/ch/{n:02}"))));
    strips.extend((1..=buses).map(|n| (Kind::Bus, format!("/bus/{n}"))));
    strips.push((Kind::Master, "/lr".into()));
    let mut out = Vec::new();
    for (kind, xp) in strips {
        out.push(format!("{xp}/config/name"));
        out.extend(
            families(kind)
                .filter(|f| f.0.starts_with("mix/"))
                .map(|f| format!("{xp}/{}", f.0)),
        );
        if kind == Kind::Master {
            out.push("/lr/mix/on".into());
        }
        if kind == Kind::Channel {
            out.extend((1..=buses).map(|m| format!("{xp}/mix/{m:02}/level")));
        }
        out.extend(
            families(kind)
                .filter(|f| !f.0.starts_with("mix/"))
                .map(|f| format!("{xp}/{}", f.0)),
        );
        out.push(format!("{xp}/eq/on"));
        for b in 1..=XAIR_EQ_BANDS {
            out.extend(EQ_BAND.iter().map(|f| format!("{xp}/eq/{b}/{}", f.0)));
        }
    }
    out.retain(|a| binding(tree, a).is_some());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    pub(crate) const SESSION: &str = r#"
version: 1
channels:
  - name: kick
    hpf: { freq: 40, slope: 12 }
    gate: { threshold_db: -50, range_db: 60, attack_ms: 0.5, hold_ms: 50, release_ms: 150 }
    eq:
      - { type: low_shelf, freq: 60, gain_db: 3.0, q: 0.7 }
      - { type: bell, freq: 400, gain_db: -4.0, q: 1.4 }
    comp: { threshold_db: -18, ratio: 4, knee_db: 3, attack_ms: 10, release_ms: 120, makeup_db: 2 }
    pan: -0.25
    fader_db: -3.0
    sends: [ { bus: verb, level_db: -12 } ]
    output: drums
  - name: snare
    fader_db: 0.0
    mute: true
buses:
  - { name: drums, kind: group, output: master }
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.8 } } }
master:
  fader_db: -1.0
"#;

    pub(crate) fn tree() -> ParamTree {
        let s = crate::session::parse_str(SESSION, Path::new("/nonexistent/x.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        ParamTree::build(&s)
    }

    fn bound(t: &ParamTree, addr: &str) -> (String, Conv) {
        match binding(t, addr) {
            Some(Binding::Param { path, conv, .. }) => (path, conv),
            other => panic!("{addr}: {other:?}"),
        }
    }

    #[test]
    fn strips_are_numbered_in_session_order() {
        let t = tree();
        assert_eq!(bound(&t, "/ch/01/mix/fader").0, "ch/kick/fader_db");
        assert_eq!(bound(&t, "/ch/02/mix/fader").0, "ch/snare/fader_db");
        assert_eq!(bound(&t, "/bus/1/mix/fader").0, "bus/drums/fader_db");
        assert_eq!(bound(&t, "/bus/2/mix/on").0, "bus/verb/mute");
        assert_eq!(bound(&t, "/lr/mix/fader").0, "master/fader_db");
        assert_eq!(
            binding(&t, "/ch/01/config/name"),
            Some(Binding::Name("kick".into()))
        );
        assert_eq!(
            binding(&t, "/bus/2/config/name"),
            Some(Binding::Name("verb".into()))
        );
        for addr in [
            "/ch/03/mix/fader",  // only 2 channels
            "/bus/3/mix/fader",  // only 2 buses
            "/ch/1/mix/fader",   // the console pads channels to 2 digits
            "/bus/01/mix/fader", // and not buses
            "/ch/00/mix/fader",
            "/ch/17/mix/fader",
            "/ch/01/mix/07/level", // FX sends: not ours
            "/ch/01/mix/02/pan",
            "/ch/01/eq/5/g",
            "/ch/01/eq/1/x",
            "/ch/01",
            "/ch/01/",
            "/ch//mix/fader",
            "ch/01/mix/fader",
            "/",
            "",
            "/lr/gate/on",
            "/bus/1/preamp/hpon",
            "/ch/+1/mix/fader",
        ] {
            assert_eq!(binding(&t, addr), None, "{addr}");
        }
    }

    #[test]
    fn every_family_is_bound_to_the_documented_parameter() {
        let t = tree();
        let cases = [
            ("/ch/01/mix/on", "ch/kick/mute", Conv::OnInverted),
            ("/ch/01/mix/pan", "ch/kick/pan", Conv::Pan),
            (
                "/ch/01/mix/02/level",
                "ch/kick/sends/verb/level_db",
                Conv::Fader,
            ),
            ("/ch/01/eq/2/type", "ch/kick/eq/2/type", Conv::EqType),
            ("/ch/01/eq/3/f", "ch/kick/eq/3/freq", EQ_BAND[1].2),
            ("/ch/01/eq/4/g", "ch/kick/eq/4/gain_db", EQ_BAND[2].2),
            ("/ch/01/eq/1/q", "ch/kick/eq/1/q", EQ_BAND[3].2),
            ("/ch/02/dyn/ratio", "ch/snare/comp/ratio", Conv::Ratio),
            ("/ch/01/dyn/mgain", "ch/kick/comp/makeup_db", DYN[6].2),
            ("/ch/01/gate/hold", "ch/kick/gate/hold_ms", CHANNEL[7].2),
            ("/ch/01/preamp/hpon", "ch/kick/hpf/on", Conv::Switch),
            ("/ch/01/preamp/hpf", "ch/kick/hpf/freq", CHANNEL[10].2),
            ("/ch/01/preamp/invert", "ch/kick/invert", Conv::Switch),
            ("/bus/1/dyn/thr", "bus/drums/comp/threshold_db", DYN[1].2),
            ("/lr/eq/1/g", "master/eq/1/gain_db", EQ_BAND[2].2),
        ];
        for (addr, path, conv) in cases {
            assert_eq!(bound(&t, addr), (path.to_string(), conv), "{addr}");
        }
        // A channel's send to a group bus is not a send in our model.
        assert_eq!(
            binding(&t, "/ch/01/mix/01/level"),
            Some(Binding::Fixed(XVal::Float(0.0)))
        );
        assert_eq!(
            binding(&t, "/lr/mix/on"),
            Some(Binding::Fixed(XVal::Int(1)))
        );
        match binding(&t, "/ch/01/eq/on") {
            Some(Binding::EqOn { bands }) => assert_eq!(
                bands,
                (1..=4)
                    .map(|b| format!("ch/kick/eq/{b}/on"))
                    .collect::<Vec<_>>()
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_bound_parameter_mirrors_back_to_its_address() {
        let t = tree();
        let all = addresses(&t);
        let mut n = 0;
        for addr in &all {
            match binding(&t, addr).unwrap() {
                Binding::Param { path, conv, .. } => {
                    assert_eq!(
                        mirror(&t, &path),
                        Some(Mirror::Value {
                            addr: addr.clone(),
                            conv
                        }),
                        "{addr} <- {path}"
                    );
                    // Positional and canonical paths mirror alike.
                    n += 1;
                }
                Binding::EqOn { bands } => {
                    for b in &bands {
                        assert_eq!(
                            mirror(&t, b),
                            Some(Mirror::EqOn {
                                addr: addr.clone(),
                                bands: bands.clone()
                            })
                        );
                    }
                }
                _ => {}
            }
        }
        // Per channel: 3 mix + 6 gate + 3 preamp + 16 eq + 7 dyn = 35, + 1 aux send each;
        // per bus: 2 mix + 16 eq + 7 dyn = 25; lr: fader + 16 eq + 7 dyn = 24.
        assert_eq!(n, 2 * 36 + 2 * 25 + 24);
        // Names (4), the group send (2), /lr/mix/on, the EQ switches (5) complete the list.
        assert_eq!(all.len(), n + 4 + 1 + 2 + 1 + 5);
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert_eq!(all[0], "/ch/01/config/name");
        assert_eq!(all.last().map(String::as_str), Some("/lr/eq/4/q"));
        for path in [
            "ch/kick/solo",
            "ch/kick/saturation/drive_db",
            "bus/verb/fx/reverb/decay_s",
            "ch/kick/sends/verb/pre_fader",
            "master/limiter/ceiling_dbtp",
            "nonsense",
        ] {
            assert_eq!(mirror(&t, path), None, "{path}");
        }
        assert_eq!(
            mirror(&t, "ch/2/fader_db"),
            Some(Mirror::Value {
                addr: "/ch/02/mix/fader".into(),
                conv: Conv::Fader
            })
        );
    }

    #[test]
    fn strips_past_the_consoles_count_have_no_address() {
        let mut yaml = String::from("version: 1\nchannels:\n");
        for n in 1..=18 {
            yaml.push_str(&format!("  - name: c{n}\n"));
        }
        yaml.push_str("buses:\n");
        for n in 1..=7 {
            yaml.push_str(&format!("  - {{ name: b{n}, kind: aux }}\n"));
        }
        let s = crate::session::parse_str(&yaml, Path::new("/nonexistent/x.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let t = ParamTree::build(&s);
        assert_eq!(bound(&t, "/ch/16/mix/fader").0, "ch/c16/fader_db");
        assert_eq!(bound(&t, "/bus/6/mix/fader").0, "bus/b6/fader_db");
        assert_eq!(
            bound(&t, "/ch/16/mix/06/level").0,
            "ch/c16/sends/b6/level_db"
        );
        assert_eq!(mirror(&t, "ch/c17/fader_db"), None);
        assert_eq!(mirror(&t, "bus/b7/fader_db"), None);
        assert_eq!(mirror(&t, "ch/c1/sends/b7/level_db"), None);
        let all = addresses(&t);
        assert!(all.iter().any(|a| a == "/ch/16/mix/06/level"));
        assert!(!all.iter().any(|a| a.starts_with("/ch/17")));
        assert!(!all.iter().any(|a| a.starts_with("/bus/7")));
    }
}
