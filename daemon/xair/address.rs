//! The X-Air address space over our parameter tree (SPEC §6): which console address names
//! which parameter, through which [`Conv`].
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

use std::collections::HashMap;

use super::convert::{Conv, XVal};
use crate::params::{Key, ParamSpec, ParamTree, Target};

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
    /// In this `…/eq/on` (whose value depends on every band of the strip).
    EqOn { addr: String, bands: Vec<String> },
}

/// The X-Air address space of one parameter tree (rebuild it when the tree is reloaded).
#[derive(Debug, Clone, Default)]
pub struct XairMap {
    by_addr: HashMap<String, Binding>,
    by_path: HashMap<String, Vec<Mirror>>,
    /// Every address, in console order (strips, then controls): the snapshot order.
    order: Vec<String>,
}

/// The per-strip address families shared by channels, buses and `/lr`: X-Air suffix, our
/// suffix, conversion. `{B}` is an EQ band number 1..4.
const EQ_BAND: &[(&str, &str, Conv)] = &[
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

const DYN: &[(&str, &str, Conv)] = &[
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
const CHANNEL: &[(&str, &str, Conv)] = &[
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
const BUS: &[(&str, &str, Conv)] = &[
    ("mix/fader", "fader_db", Conv::Fader),
    ("mix/on", "mute", Conv::OnInverted),
];

/// The strip names of a tree, in session order: channels and buses.
fn strip_names(tree: &ParamTree) -> (Vec<String>, Vec<String>) {
    let mut ch: Vec<(u16, String)> = Vec::new();
    let mut bus: Vec<(u16, String)> = Vec::new();
    for p in tree.params() {
        if p.addr.key != Key::FaderDb {
            continue;
        }
        let name = |prefix: &str| {
            p.path
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("/fader_db"))
                .map(str::to_owned)
        };
        match p.addr.target {
            Target::Channel(i) => ch.extend(name("ch/").map(|n| (i, n))),
            Target::Bus(i) => bus.extend(name("bus/").map(|n| (i, n))),
            Target::Master => {}
        }
    }
    ch.sort();
    bus.sort();
    (
        ch.into_iter().map(|(_, n)| n).collect(),
        bus.into_iter().map(|(_, n)| n).collect(),
    )
}

struct Builder<'t> {
    tree: &'t ParamTree,
    map: XairMap,
}

impl Builder<'_> {
    fn insert(&mut self, addr: String, binding: Binding) {
        match &binding {
            Binding::Param { path, conv, .. } => {
                self.map
                    .by_path
                    .entry(path.clone())
                    .or_default()
                    .push(Mirror::Value {
                        addr: addr.clone(),
                        conv: *conv,
                    });
            }
            Binding::EqOn { bands } => {
                for b in bands {
                    self.map
                        .by_path
                        .entry(b.clone())
                        .or_default()
                        .push(Mirror::EqOn {
                            addr: addr.clone(),
                            bands: bands.clone(),
                        });
                }
            }
            Binding::Name(_) | Binding::Fixed(_) => {}
        }
        self.map.order.push(addr.clone());
        self.map.by_addr.insert(addr, binding);
    }

    /// Bind `xprefix/xsuffix` to `prefix/suffix` when the tree has that parameter.
    fn bind(&mut self, xprefix: &str, prefix: &str, xsuffix: &str, suffix: &str, conv: Conv) {
        let path = format!("{prefix}/{suffix}");
        if let Some(id) = self.tree.resolve(&path) {
            let p = self.tree.get(id);
            let binding = Binding::Param {
                path: p.path.clone(),
                conv,
                spec: p.spec,
            };
            self.insert(format!("{xprefix}/{xsuffix}"), binding);
        }
    }

    fn table(&mut self, xprefix: &str, prefix: &str, table: &[(&str, &str, Conv)]) {
        for &(xs, s, conv) in table {
            self.bind(xprefix, prefix, xs, s, conv);
        }
    }

    /// `eq/on` and `eq/B/*`, when the strip has an EQ.
    fn eq(&mut self, xprefix: &str, prefix: &str) {
        let bands: Vec<String> = (1..=XAIR_EQ_BANDS)
            .filter_map(|b| self.tree.resolve(&format!("{prefix}/eq/{b}/on")))
            .map(|id| self.tree.get(id).path.clone())
            .collect();
        if bands.is_empty() {
            return;
        }
        self.insert(format!("{xprefix}/eq/on"), Binding::EqOn { bands });
        for b in 1..=XAIR_EQ_BANDS {
            for &(xs, s, conv) in EQ_BAND {
                self.bind(
                    xprefix,
                    prefix,
                    &format!("eq/{b}/{xs}"),
                    &format!("eq/{b}/{s}"),
                    conv,
                );
            }
        }
    }
}

impl XairMap {
    /// The address space of `tree`.
    pub fn build(tree: &ParamTree) -> Self {
        let (channels, buses) = strip_names(tree);
        let buses: Vec<String> = buses.into_iter().take(XAIR_BUSES).collect();
        let mut b = Builder {
            tree,
            map: XairMap::default(),
        };
        for (i, name) in channels.iter().take(XAIR_CHANNELS).enumerate() {
            let xp = format!("/ch/{:02}", i + 1);
            let p = format!("ch/{name}");
            b.insert(format!("{xp}/config/name"), Binding::Name(name.clone()));
            b.table(&xp, &p, CHANNEL);
            for (bi, bus) in buses.iter().enumerate() {
                let addr = format!("{xp}/mix/{:02}/level", bi + 1);
                match tree.resolve(&format!("{p}/sends/{bus}/level_db")) {
                    Some(id) => b.insert(
                        addr,
                        Binding::Param {
                            path: tree.get(id).path.clone(),
                            conv: Conv::Fader,
                            spec: tree.get(id).spec,
                        },
                    ),
                    None => b.insert(addr, Binding::Fixed(XVal::Float(0.0))),
                }
            }
            b.eq(&xp, &p);
            b.table(&xp, &p, DYN);
        }
        for (i, name) in buses.iter().enumerate() {
            let xp = format!("/bus/{}", i + 1);
            let p = format!("bus/{name}");
            b.insert(format!("{xp}/config/name"), Binding::Name(name.clone()));
            b.table(&xp, &p, BUS);
            b.eq(&xp, &p);
            b.table(&xp, &p, DYN);
        }
        b.insert(
            "/lr/config/name".into(),
            Binding::Fixed(XVal::Str("LR".into())),
        );
        b.bind("/lr", "master", "mix/fader", "fader_db", Conv::Fader);
        b.insert("/lr/mix/on".into(), Binding::Fixed(XVal::Int(1)));
        b.eq("/lr", "master");
        b.table("/lr", "master", DYN);
        b.map
    }

    /// What `addr` (`/ch/01/mix/fader`) names, if the console has it.
    pub fn binding(&self, addr: &str) -> Option<&Binding> {
        self.by_addr.get(addr)
    }

    /// Where a change of our parameter `path` (canonical) shows on the console.
    pub fn mirrors(&self, path: &str) -> &[Mirror] {
        self.by_path.get(path).map_or(&[], Vec::as_slice)
    }

    /// Every address, in console order.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True for an empty address space.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
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

    fn param(map: &XairMap, addr: &str) -> (String, Conv) {
        match map.binding(addr) {
            Some(Binding::Param { path, conv, .. }) => (path.clone(), *conv),
            other => panic!("{addr}: {other:?}"),
        }
    }

    #[test]
    fn strips_are_numbered_in_session_order() {
        let map = XairMap::build(&tree());
        assert_eq!(param(&map, "/ch/01/mix/fader").0, "ch/kick/fader_db");
        assert_eq!(param(&map, "/ch/02/mix/fader").0, "ch/snare/fader_db");
        assert_eq!(param(&map, "/bus/1/mix/fader").0, "bus/drums/fader_db");
        assert_eq!(param(&map, "/bus/2/mix/on").0, "bus/verb/mute");
        assert_eq!(param(&map, "/lr/mix/fader").0, "master/fader_db");
        assert_eq!(
            map.binding("/ch/01/config/name"),
            Some(&Binding::Name("kick".into()))
        );
        assert_eq!(
            map.binding("/bus/2/config/name"),
            Some(&Binding::Name("verb".into()))
        );
        assert!(map.binding("/ch/03/mix/fader").is_none(), "only 2 channels");
        assert!(map.binding("/bus/3/mix/fader").is_none(), "only 2 buses");
        assert!(
            map.binding("/ch/1/mix/fader").is_none(),
            "the console pads to 2 digits"
        );
    }

    #[test]
    fn every_family_is_bound_to_the_documented_parameter() {
        let map = XairMap::build(&tree());
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
            assert_eq!(param(&map, addr), (path.to_string(), conv), "{addr}");
        }
        // A channel's send to a group bus is not a send in our model.
        assert_eq!(
            map.binding("/ch/01/mix/01/level"),
            Some(&Binding::Fixed(XVal::Float(0.0)))
        );
        assert_eq!(
            map.binding("/lr/mix/on"),
            Some(&Binding::Fixed(XVal::Int(1)))
        );
        // Gates and preamps are channel-only.
        assert!(map.binding("/bus/1/gate/on").is_none());
        match map.binding("/ch/01/eq/on") {
            Some(Binding::EqOn { bands }) => assert_eq!(
                bands,
                &(1..=4)
                    .map(|b| format!("ch/kick/eq/{b}/on"))
                    .collect::<Vec<_>>()
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_bound_parameter_mirrors_back_to_its_address() {
        let t = tree();
        let map = XairMap::build(&t);
        let mut n = 0;
        for addr in map.addresses() {
            match map.binding(addr).unwrap() {
                Binding::Param { path, conv, .. } => {
                    assert!(t.resolve(path).is_some(), "{path}");
                    assert!(
                        map.mirrors(path).contains(&Mirror::Value {
                            addr: addr.to_string(),
                            conv: *conv
                        }),
                        "{addr} <- {path}"
                    );
                    n += 1;
                }
                Binding::EqOn { bands } => {
                    for b in bands {
                        assert!(
                            map.mirrors(b)
                                .iter()
                                .any(|m| matches!(m, Mirror::EqOn { addr: a, .. } if a == addr))
                        );
                    }
                }
                _ => {}
            }
        }
        // Per channel: 3 mix + 6 gate + 3 preamp + 16 eq + 7 dyn = 35, + 1 aux send on each;
        // per bus: 2 mix + 16 eq + 7 dyn = 25; lr: fader + 16 eq + 7 dyn = 24.
        assert_eq!(n, 2 * 36 + 2 * 25 + 24);
        assert!(map.mirrors("ch/kick/solo").is_empty());
    }
}
