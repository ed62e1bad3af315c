//! The session file (SPEC §3): reading, parsing and validation, producing the validated
//! [`model::Session`] the engine is built from.
//!
//! Loading runs in two stages: `raw` is the file's shape as serde reads it (unknown keys and
//! wrong YAML types stop here, with serde-saphyr's location), then `validate` checks every
//! rule (ranges from [`crate::params::spec`], names, references, routing) and collects every
//! failure with the line and column of the offending value. The model ([`model`]) is owned by
//! the engine's contract and not changed here.

pub mod model;
pub(crate) mod raw;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{MessageFormatter, NonFiniteFloatPolicy, UserMessageFormatter};

/// One problem in a session file, at a 1-based line and column (character-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// One line, no trailing newline.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic for `file` at the YAML location `at`.
    pub(crate) fn at(file: &Path, at: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        let (line, col) = line_col(at);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a YAML location (an unknown one, 0, reads as 1).
pub(crate) fn line_col(at: &serde_saphyr::Location) -> (usize, usize) {
    (
        usize::try_from(at.line()).unwrap_or(usize::MAX).max(1),
        usize::try_from(at.column()).unwrap_or(usize::MAX).max(1),
    )
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A session file that could not be loaded: every problem found, ordered by position.
/// Displays as one `FILE:LINE:COL: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    /// Never empty.
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SessionError {}

impl SessionError {
    fn one(file: &Path, line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            errors: vec![Diagnostic {
                file: file.to_path_buf(),
                line: line.max(1),
                col: col.max(1),
                message: message.into(),
            }],
        }
    }
}

/// Read, parse and validate a session file.
///
/// # Errors
/// The file cannot be read, is not UTF-8 YAML of the session's shape, or breaks a rule of
/// SPEC §3; every problem found is listed.
pub fn load(path: &Path) -> Result<model::Session, SessionError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SessionError::one(path, 1, 1, format!("cannot read the session file: {e}")))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // Valid UTF-8 by construction; count lines and characters up to the bad byte.
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            let col = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(SessionError::one(
                path,
                line,
                col,
                "the session file is not UTF-8 text",
            ));
        }
    };
    parse_str(text, path)
}

/// Parse and validate session text. `file` names the file in messages, and relative paths
/// (stems, mapping files) are resolved against its folder; stem files must exist.
///
/// # Errors
/// A YAML or shape error (one diagnostic), or every rule of SPEC §3 the text breaks.
pub fn parse_str(text: &str, file: &Path) -> Result<model::Session, SessionError> {
    let options = serde_saphyr::options! {
        // NaN and infinities reach the validator, which names the parameter and its range.
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    let raw: raw::RawSession =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| parse_error(&e, file))?;
    validate::validate(&raw, file).map_err(|mut errors| {
        errors.sort_by_key(|d| (d.line, d.col));
        errors.dedup();
        SessionError { errors }
    })
}

/// One diagnostic for a serde-saphyr error of any YAML file of ours (sessions, mapping
/// files): its location and a one-line message.
pub(crate) fn yaml_error(e: &serde_saphyr::Error, file: &Path) -> SessionError {
    parse_error(e, file)
}

/// One diagnostic for a serde-saphyr error: its location and a one-line message.
fn parse_error(e: &serde_saphyr::Error, file: &Path) -> SessionError {
    let (line, col) = e.location().map_or((1, 1), |l| {
        (
            usize::try_from(l.line()).unwrap_or(usize::MAX),
            usize::try_from(l.column()).unwrap_or(usize::MAX),
        )
    });
    let raw = UserMessageFormatter.format_message(e.without_snippet());
    let mut msg: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // The parser's own words for "wrong kind of node", said the way a user reads the file.
    for (from, to) in [
        ("expected mapping start", "expected a mapping (key: value)"),
        ("expected sequence start", "expected a list"),
        (
            "unexpected end of file",
            "the session file is empty or ends early",
        ),
    ] {
        if msg == from {
            msg = to.to_owned();
        }
    }
    SessionError::one(file, line, col, msg)
}

#[cfg(test)]
mod tests {
    use super::model::*;
    use super::*;
    use crate::params::spec;

    /// A network surface with the default limits.
    fn net(listen: &str, allow: &[&str]) -> NetSurface {
        NetSurface {
            listen: listen.into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            read_only: vec![],
            rate_limit: 5000,
            max_packet: 8192,
            feedback_hz: 30.0,
        }
    }

    #[test]
    fn net_surface_limits_parse_and_are_checked() {
        let s = parse(
            "version: 1\nsurfaces:\n  - {kind: osc, listen: \"0.0.0.0:9000\", allow: [\"10.0.0.0/8\"], \
             read_only: [\"10.1.0.0/16\"], rate_limit: 200, max_packet: 1500, feedback_hz: 10}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.surfaces,
            vec![Surface::Osc(NetSurface {
                listen: "0.0.0.0:9000".into(),
                allow: vec!["10.0.0.0/8".into()],
                read_only: vec!["10.1.0.0/16".into()],
                rate_limit: 200,
                max_packet: 1500,
                feedback_hz: 10.0,
            })]
        );
        let e = parse(
            "version: 1\nsurfaces:\n  - {kind: osc, listen: \"0.0.0.0:9000\", read_only: [bad], \
             max_packet: 10, rate_limit: 2.5}\n  - {kind: mcu, midi: \"alsa:X\", feedback_hz: 5}\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "surfaces/1/read_only: \"bad\" is not an address range",
            "surfaces/1/max_packet: 10 is out of range 64..65507",
            "surfaces/1/rate_limit: 2.5 is not a whole number",
            "surfaces/2/feedback_hz: not used by kind mcu",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
    }

    /// SPEC §3's example, verbatim.
    const SPEC_EXAMPLE: &str = r#"version: 1
engine: { sample_rate: 48000, block: 64 }      # used by null/cpal/render; JACK dictates its own
channels:
  - name: kick                                  # unique; [a-z0-9_-]
    source: { file: stems/kick.wav }            # or { input: 3 } / { input: [3, 4] } (1-based interface inputs)
    trim_db: 0.0
    invert: false
    delay_ms: 0.0                               # time alignment
    hpf: { freq: 40, slope: 12 }                # slope 12|24 dB/oct; key absent = off
    lpf: { freq: 18000, slope: 12 }
    gate: { threshold_db: -50, range_db: 60, attack_ms: 0.5, hold_ms: 50, release_ms: 150 }
    eq:                                         # up to 4 bands; type bell|low_shelf|high_shelf|notch
      - { type: low_shelf, freq: 60, gain_db: 3.0, q: 0.7 }
      - { type: bell, freq: 400, gain_db: -4.0, q: 1.4 }
    comp: { threshold_db: -18, ratio: 4, knee_db: 6, attack_ms: 10, release_ms: 120, makeup_db: 0 }
    saturation: { drive_db: 6, mix: 0.5 }
    insert: { send: 9, return: 9, latency: auto }   # hardware insert: interface output/input numbers, or JACK port names ("outboard:in")
    pan: -0.25                                  # -1 left .. +1 right; stereo channels: balance
    fader_db: -3.0                              # "-inf" allowed; max +10
    mute: false
    solo: false
    sends: [ { bus: verb, level_db: -12, pre_fader: false } ]
    output: drums                               # a group bus, or master (default)
buses:
  - { name: drums, kind: group, comp: { threshold_db: -10, ratio: 2 }, output: master }
  - { name: verb, kind: aux, fx: { reverb: { decay_s: 1.8, predelay_ms: 20, damping: 0.5 } } }
  - { name: slap, kind: aux, fx: { delay: { time_ms: 120, feedback: 0.3 } } }
  - { name: cue, kind: aux, outputs: [3, 4] }   # a monitor mix to interface outputs
master:
  eq: [ { type: high_shelf, freq: 12000, gain_db: 1.0, q: 0.7 } ]
  comp: { threshold_db: -12, ratio: 2, attack_ms: 30, release_ms: 200 }
  limiter: { ceiling_dbtp: -1.0 }
  fader_db: 0.0
  outputs: [1, 2]
surfaces:
  - { kind: osc, listen: "127.0.0.1:9000", allow: ["127.0.0.0/8"] }
  - { kind: xair, listen: "0.0.0.0:10024", allow: ["192.168.1.0/24"] }
  - { kind: mcu, midi: "alsa:X-Touch", extenders: ["alsa:X-Touch-Ext"] }
  - { kind: midi_map, map: mappings/nanokontrol2.yaml, midi: "alsa:nanoKONTROL2" }
"#;

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("faderbridge-session-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("create temp dir");
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(text: &str) -> Result<Session, SessionError> {
        parse_str(text, Path::new("/nonexistent/s.yaml"))
    }

    /// The messages of a failed parse, as `LINE:COL: message`.
    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e
                .errors
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect(),
        }
    }

    fn default_of(group: &'static [spec::ParamSpec], key: &str) -> f32 {
        spec::get(group, key).default
    }

    #[test]
    fn spec_example_loads_field_by_field() {
        let dir = TempDir::new("spec");
        std::fs::create_dir_all(dir.0.join("stems")).expect("stems dir");
        std::fs::write(dir.0.join("stems/kick.wav"), b"").expect("kick.wav");
        let file = dir.0.join("session.yaml");
        std::fs::write(&file, SPEC_EXAMPLE).expect("write session");
        let s = load(&file).unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(s.file, file);
        assert_eq!(
            s.engine,
            EngineSettings {
                sample_rate: 48000,
                block: 64
            }
        );
        assert_eq!(s.channels.len(), 1);
        let k = &s.channels[0];
        assert_eq!(k.name, "kick");
        assert_eq!(k.source, Source::File(dir.0.join("stems/kick.wav")));
        assert_eq!(k.trim_db, 0.0);
        assert!(!k.invert);
        assert_eq!(k.delay_ms, 0.0);
        assert_eq!(
            k.hpf,
            Some(PassFilter {
                freq: 40.0,
                slope: Slope::Db12
            })
        );
        assert_eq!(
            k.lpf,
            Some(PassFilter {
                freq: 18000.0,
                slope: Slope::Db12
            })
        );
        assert_eq!(
            k.gate,
            Some(Gate {
                threshold_db: -50.0,
                range_db: 60.0,
                attack_ms: 0.5,
                hold_ms: 50.0,
                release_ms: 150.0
            })
        );
        assert_eq!(
            k.eq,
            vec![
                EqBand {
                    kind: EqType::LowShelf,
                    freq: 60.0,
                    gain_db: 3.0,
                    q: 0.7
                },
                EqBand {
                    kind: EqType::Bell,
                    freq: 400.0,
                    gain_db: -4.0,
                    q: 1.4
                },
            ]
        );
        assert_eq!(
            k.comp,
            Some(Comp {
                threshold_db: -18.0,
                ratio: 4.0,
                knee_db: 6.0,
                attack_ms: 10.0,
                release_ms: 120.0,
                makeup_db: 0.0
            })
        );
        assert_eq!(
            k.saturation,
            Some(Saturation {
                drive_db: 6.0,
                mix: 0.5
            })
        );
        assert_eq!(
            k.insert,
            Some(Insert {
                send: PortRef::Number(9),
                ret: PortRef::Number(9),
                latency: InsertLatency::Auto,
                position: InsertPosition::PostDynamics,
            })
        );
        assert_eq!(k.pan, -0.25);
        assert_eq!(k.fader_db, -3.0);
        assert!(!k.mute && !k.solo && !k.solo_safe);
        assert_eq!(
            k.sends,
            vec![Send {
                bus: "verb".into(),
                bus_index: 1,
                level_db: -12.0,
                pre_fader: false
            }]
        );
        assert_eq!(k.output, Output::Bus(0));

        let names: Vec<&str> = s.buses.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["drums", "verb", "slap", "cue"]);
        let drums = &s.buses[0];
        assert_eq!(drums.kind, BusKind::Group);
        assert_eq!(
            drums.comp,
            Some(Comp {
                threshold_db: -10.0,
                ratio: 2.0,
                knee_db: default_of(spec::COMP, "knee_db"),
                attack_ms: default_of(spec::COMP, "attack_ms"),
                release_ms: default_of(spec::COMP, "release_ms"),
                makeup_db: default_of(spec::COMP, "makeup_db"),
            })
        );
        assert_eq!(drums.output, Output::Master);
        assert!(drums.eq.is_empty() && drums.reverb.is_none() && drums.delay.is_none());
        assert!(drums.outputs.is_empty());
        assert_eq!((drums.pan, drums.fader_db, drums.mute), (0.0, 0.0, false));

        let verb = &s.buses[1];
        assert_eq!(verb.kind, BusKind::Aux);
        assert_eq!(
            verb.reverb,
            Some(Reverb {
                decay_s: 1.8,
                predelay_ms: 20.0,
                damping: 0.5,
                size: default_of(spec::REVERB, "size"),
            })
        );
        assert_eq!(verb.delay, None);
        assert_eq!(verb.output, Output::Master);

        let slap = &s.buses[2];
        assert_eq!(slap.kind, BusKind::Aux);
        assert_eq!(
            slap.delay,
            Some(Delay {
                time_ms: 120.0,
                feedback: 0.3,
                ping_pong: false,
                lowcut_hz: default_of(spec::DELAY, "lowcut_hz"),
                highcut_hz: default_of(spec::DELAY, "highcut_hz"),
            })
        );
        assert_eq!(slap.reverb, None);

        let cue = &s.buses[3];
        assert_eq!(cue.kind, BusKind::Aux);
        assert_eq!(cue.outputs, vec![PortRef::Number(3), PortRef::Number(4)]);
        assert!(cue.reverb.is_none() && cue.delay.is_none() && cue.comp.is_none());

        let m = &s.master;
        assert_eq!(
            m.eq,
            vec![EqBand {
                kind: EqType::HighShelf,
                freq: 12000.0,
                gain_db: 1.0,
                q: 0.7
            }]
        );
        assert_eq!(
            m.comp,
            Some(Comp {
                threshold_db: -12.0,
                ratio: 2.0,
                knee_db: default_of(spec::COMP, "knee_db"),
                attack_ms: 30.0,
                release_ms: 200.0,
                makeup_db: default_of(spec::COMP, "makeup_db"),
            })
        );
        assert_eq!(
            m.limiter,
            Some(Limiter {
                ceiling_dbtp: -1.0,
                release_ms: default_of(spec::LIMITER, "release_ms"),
            })
        );
        assert_eq!(m.fader_db, 0.0);
        assert_eq!(m.outputs, vec![PortRef::Number(1), PortRef::Number(2)]);

        assert_eq!(
            s.surfaces,
            vec![
                Surface::Osc(net("127.0.0.1:9000", &["127.0.0.0/8"])),
                Surface::Xair(net("0.0.0.0:10024", &["192.168.1.0/24"])),
                Surface::Mcu {
                    midi: "alsa:X-Touch".into(),
                    extenders: vec!["alsa:X-Touch-Ext".into()],
                    profile: "mcu-pro".into(),
                },
                Surface::MidiMap {
                    map: dir.0.join("mappings/nanokontrol2.yaml"),
                    midi: "alsa:nanoKONTROL2".into()
                },
            ]
        );
    }

    #[test]
    fn spec_example_without_the_stem_names_it() {
        let dir = TempDir::new("nostem");
        let file = dir.0.join("session.yaml");
        std::fs::write(&file, SPEC_EXAMPLE).expect("write session");
        let e = load(&file).expect_err("kick.wav is absent");
        assert_eq!(e.errors.len(), 1, "{e}");
        // `{ file: stems/kick.wav }` on line 5: the value starts at column 21.
        assert_eq!(
            e.to_string(),
            format!(
                "{}:5:21: ch/kick/source/file: missing stem file stems/kick.wav",
                file.display()
            )
        );
    }

    #[test]
    fn absent_keys_take_the_spec_defaults() {
        let s = parse(
            "version: 1\nchannels:\n  - name: a\n    hpf: {}\n    lpf: {}\n    gate: {}\n    \
             comp: {}\n    saturation: {}\n    eq: [{}, {}, {}, {}]\n    sends: [{bus: fx}]\n    \
             insert: {send: 1, return: \"hw:in\"}\nbuses:\n  - {name: fx, kind: aux, fx: {reverb: {}, delay: {}}}\n\
             master: {limiter: {}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // SPEC §3 defaults, stated in the SPEC text.
        assert_eq!(s.engine, EngineSettings::default());
        assert_eq!((s.engine.sample_rate, s.engine.block), (48000, 64));
        let c = &s.channels[0];
        assert_eq!(c.source, Source::None);
        assert_eq!(
            (c.pan, c.fader_db, c.trim_db, c.delay_ms),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert!(!c.invert && !c.mute && !c.solo && !c.solo_safe);
        assert_eq!(c.output, Output::Master);
        assert_eq!(
            s.master.outputs,
            vec![PortRef::Number(1), PortRef::Number(2)]
        );
        assert_eq!(s.master.fader_db, 0.0);
        // Present-but-empty processors: on, every field from the spec tables.
        let d = |g, k| default_of(g, k);
        assert_eq!(
            c.hpf,
            Some(PassFilter {
                freq: d(spec::HPF, "freq"),
                slope: Slope::Db12
            })
        );
        assert_eq!(
            c.lpf,
            Some(PassFilter {
                freq: d(spec::LPF, "freq"),
                slope: Slope::Db12
            })
        );
        let g = spec::GATE;
        assert_eq!(
            c.gate,
            Some(Gate {
                threshold_db: d(g, "threshold_db"),
                range_db: d(g, "range_db"),
                attack_ms: d(g, "attack_ms"),
                hold_ms: d(g, "hold_ms"),
                release_ms: d(g, "release_ms"),
            })
        );
        let k = spec::COMP;
        assert_eq!(
            c.comp,
            Some(Comp {
                threshold_db: d(k, "threshold_db"),
                ratio: d(k, "ratio"),
                knee_db: d(k, "knee_db"),
                attack_ms: d(k, "attack_ms"),
                release_ms: d(k, "release_ms"),
                makeup_db: d(k, "makeup_db"),
            })
        );
        assert_eq!(
            c.saturation,
            Some(Saturation {
                drive_db: d(spec::SATURATION, "drive_db"),
                mix: d(spec::SATURATION, "mix"),
            })
        );
        // Bands: bell, 0 dB, Q 0.7 (SPEC brief), frequencies from the per-band defaults.
        assert_eq!(c.eq.len(), 4);
        for (b, f) in c.eq.iter().zip(spec::EQ_DEFAULT_FREQS) {
            assert_eq!(
                *b,
                EqBand {
                    kind: EqType::Bell,
                    freq: f,
                    gain_db: 0.0,
                    q: 0.7
                }
            );
        }
        assert_eq!(
            c.sends,
            vec![Send {
                bus: "fx".into(),
                bus_index: 0,
                level_db: f32::NEG_INFINITY,
                pre_fader: false
            }]
        );
        assert_eq!(
            c.insert,
            Some(Insert {
                send: PortRef::Number(1),
                ret: PortRef::Name("hw:in".into()),
                latency: InsertLatency::Auto,
                position: InsertPosition::PostDynamics,
            })
        );
        let b = &s.buses[0];
        let r = spec::REVERB;
        assert_eq!(
            b.reverb,
            Some(Reverb {
                decay_s: d(r, "decay_s"),
                predelay_ms: d(r, "predelay_ms"),
                damping: d(r, "damping"),
                size: d(r, "size"),
            })
        );
        let y = spec::DELAY;
        assert_eq!(
            b.delay,
            Some(Delay {
                time_ms: d(y, "time_ms"),
                feedback: d(y, "feedback"),
                ping_pong: false,
                lowcut_hz: d(y, "lowcut_hz"),
                highcut_hz: d(y, "highcut_hz"),
            })
        );
        assert_eq!(
            s.master.limiter,
            Some(Limiter {
                ceiling_dbtp: d(spec::LIMITER, "ceiling_dbtp"),
                release_ms: d(spec::LIMITER, "release_ms"),
            })
        );
    }

    /// `LINE:COL` of the character right after the only occurrence of `marker` in `text`:
    /// an independent way to say where a value sits.
    fn after(text: &str, marker: &str) -> String {
        position(text, marker, marker.len())
    }

    /// `LINE:COL` of the start of the only occurrence of `marker` in `text`.
    fn at(text: &str, marker: &str) -> String {
        position(text, marker, 0)
    }

    fn position(text: &str, marker: &str, skip: usize) -> String {
        let hits: Vec<usize> = text.match_indices(marker).map(|(i, _)| i).collect();
        assert_eq!(hits.len(), 1, "marker {marker:?} must occur once");
        let before = &text[..hits[0] + skip];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{line}:{col}")
    }

    #[test]
    fn neg_inf_is_accepted_only_where_the_range_starts_at_neg_inf() {
        let s = parse(
            "version: 1\nchannels:\n  - {name: a, fader_db: -inf, sends: [{bus: v, level_db: \"-inf\"}]}\n  \
             - {name: b, fader_db: -.inf}\nbuses:\n  - {name: v, kind: aux, fader_db: \"-inf\"}\nmaster: {fader_db: -inf}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.channels[0].fader_db, f32::NEG_INFINITY);
        assert_eq!(s.channels[0].sends[0].level_db, f32::NEG_INFINITY);
        assert_eq!(s.channels[1].fader_db, f32::NEG_INFINITY);
        assert_eq!(s.buses[0].fader_db, f32::NEG_INFINITY);
        assert_eq!(s.master.fader_db, f32::NEG_INFINITY);

        let t = "version: 1\nchannels:\n  - {name: a, pan: -inf}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: ch/a/pan: -inf is not allowed here (range -1..1)",
                after(t, "pan: ")
            )]
        );
        let t = "version: 1\nmaster: {limiter: {ceiling_dbtp: -.inf}}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: master/limiter/ceiling_dbtp: -inf is not allowed here (range -20..0)",
                after(t, "dbtp: ")
            )]
        );
    }

    #[test]
    fn range_edges_are_inclusive_at_f32_precision() {
        // 0.95 is the top of delay feedback: written in the file as a decimal it must pass.
        let s = parse(
            "version: 1\nbuses:\n  - {name: d, kind: aux, fx: {delay: {feedback: 0.95, time_ms: 2000}}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = s.buses[0].delay.expect("delay on");
        assert_eq!((d.feedback, d.time_ms), (0.95, 2000.0));
        let t = "version: 1\nbuses:\n  - {name: d, kind: aux, fx: {delay: {feedback: 0.951}}}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: bus/d/fx/delay/feedback: 0.951 is out of range 0..0.95",
                after(t, "feedback: ")
            )]
        );
        // Too big for f32 is out of range, not infinity.
        let t = "version: 1\nchannels: [{name: a, pan: 1e300}]\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: ch/a/pan: {} is out of range -1..1",
                after(t, "pan: "),
                1e300f64
            )]
        );
    }

    #[test]
    fn every_semantic_error_is_collected_in_position_order() {
        let t = "version: 3\nchannels:\n  - {name: a, pan: 2, output: nowhere}\n  - {name: a, trim_db: 30}\n";
        assert_eq!(
            errors(t),
            [
                format!(
                    "{}: version 3 is not supported (this faderbridge reads version 1)",
                    after(t, "version: ")
                ),
                format!("{}: ch/a/pan: 2 is out of range -1..1", after(t, "pan: ")),
                format!(
                    "{}: ch/a/output: unknown bus \"nowhere\" (group buses: none)",
                    after(t, "output: ")
                ),
                format!(
                    "{}: duplicate channel name \"a\" (first at line 3)",
                    at(t, "a, trim_db")
                ),
                format!(
                    "{}: ch/a/trim_db: 30 is out of range -24..24",
                    after(t, "trim_db: ")
                ),
            ]
        );
    }

    #[test]
    fn port_errors_point_at_the_list_element() {
        let t = "version: 1\nchannels:\n  - name: a\n    source: {input: [1, 0]}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: ch/a/source/input: ports are numbered from 1, found 0",
                after(t, "[1, ")
            )]
        );
        let t = "version: 1\nmaster: {outputs: [1, 2.5]}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: master/outputs: expected a port number (1, 2, ...) or a JACK port name, found 2.5",
                after(t, "[1, ")
            )]
        );
        let t = "version: 1\nmaster: {outputs: [1]}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: master/outputs: 1 ports given, expected 2",
                after(t, "outputs: ")
            )]
        );
    }

    #[test]
    fn three_bus_cycle_is_reported_once_where_it_closes() {
        let t = "version: 1\nbuses:\n  - {name: a, kind: group, output: b}\n  - {name: b, kind: group, output: c}\n  \
                 - {name: c, kind: group, output: a}\n  - {name: d, kind: group, output: a}\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: bus/c/output: routing cycle: a -> b -> c -> a",
                after(t, "{name: c, kind: group, output: ")
            )]
        );
        // A chain without a cycle is fine, and resolves to indices.
        let s = parse(
            "version: 1\nbuses:\n  - {name: a, kind: group, output: b}\n  - {name: b, kind: group}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.buses[0].output, Output::Bus(1));
        assert_eq!(s.buses[1].output, Output::Master);
    }

    #[test]
    fn inserts_on_buses_and_the_master_with_their_position() {
        let s = parse_str(
            "version: 1\nchannels:\n  - { name: a, insert: { send: 9, return: 9, position: pre_eq } }\nbuses:\n  - { name: g, kind: group, insert: { send: 3, return: \"hw:in\", latency: 12, position: post_fader } }\n  - { name: x, kind: aux }\nmaster:\n  insert: { send: 5, return: 5 }\n",
            Path::new("/nonexistent/t.yaml"),
        )
        .expect("session");
        let pos = |i: &Option<Insert>| i.as_ref().map(|i| i.position);
        assert_eq!(pos(&s.channels[0].insert), Some(InsertPosition::PreEq));
        assert_eq!(
            s.buses[0].insert,
            Some(Insert {
                send: PortRef::Number(3),
                ret: PortRef::Name("hw:in".into()),
                latency: InsertLatency::Samples(12),
                position: InsertPosition::PostFader,
            })
        );
        assert_eq!(s.buses[1].insert, None);
        assert_eq!(pos(&s.master.insert), Some(InsertPosition::PostDynamics));
    }

    #[test]
    fn names_are_checked() {
        let t = "version: 1\nchannels: [{name: \"\"}, {name: \"3\"}, {name: ok_1-b}]\nbuses: [{name: Drums, kind: group}]\n";
        assert_eq!(
            errors(t),
            [
                format!("{}: channel name is empty", after(t, "channels: [{name: ")),
                format!(
                    "{}: channel name \"3\" is all digits, which reads as a strip position",
                    at(t, "\"3\"")
                ),
                format!(
                    "{}: bus name \"Drums\" may use only a-z, 0-9, _ and -",
                    after(t, "buses: [{name: ")
                ),
            ]
        );
        // A channel and a bus may share a name: their paths differ (ch/x, bus/x).
        assert!(
            parse("version: 1\nchannels: [{name: x}]\nbuses: [{name: x, kind: aux}]\n").is_ok()
        );
        let t = "version: 1\nbuses: [{name: x, kind: aux}, {name: x, kind: group}]\n";
        assert_eq!(
            errors(t),
            [format!(
                "{}: duplicate bus name \"x\" (first at line 2)",
                after(t, "}, {name: ")
            )]
        );
    }

    #[test]
    fn surfaces_are_checked_per_kind() {
        let t = "version: 1\nsurfaces:\n  - {kind: osc, midi: \"alsa:x\"}\n  - {kind: mcu, extenders: [\"jack:\"]}\n  \
                 - {kind: midi_map, midi: \"serial:/dev/ttyS0@fast\"}\n  - {kind: xair, allow: [\"10.0.0.1\"]}\n";
        let port_help = "is not a MIDI port; use alsa:NAME, jack:NAME or serial:/dev/ttyX@BAUD";
        assert_eq!(
            errors(t),
            [
                "3:5: surfaces/1: kind osc needs listen (an address:port like 127.0.0.1:9000)"
                    .to_owned(),
                format!(
                    "{}: surfaces/1/midi: not used by kind osc",
                    after(t, "osc, midi: ")
                ),
                "4:5: surfaces/2: kind mcu needs midi (a MIDI port like \"alsa:X-Touch\")"
                    .to_owned(),
                format!(
                    "{}: surfaces/2/extenders: \"jack:\" {port_help}",
                    after(t, "extenders: [")
                ),
                "5:5: surfaces/3: kind midi_map needs map (a mapping file)".to_owned(),
                format!(
                    "{}: surfaces/3/midi: \"serial:/dev/ttyS0@fast\" {port_help}",
                    after(t, "midi_map, midi: ")
                ),
                format!(
                    "{}: surfaces/4/allow: \"10.0.0.1\" is not an address range like 192.168.1.0/24",
                    after(t, "allow: [")
                ),
            ]
        );
        let s = parse(
            "version: 1\nsurfaces:\n  - {kind: xair}\n  - {kind: osc, listen: \"[::1]:9000\", allow: [\"::1/128\"]}\n  \
             - {kind: midi_map, map: /abs/m.yaml, midi: \"serial:/dev/ttyUSB0@31250\"}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.surfaces,
            vec![
                // SPEC §6: the X-Air dialect's own port by default.
                // Loopback only when `allow` is left out.
                Surface::Xair(net("0.0.0.0:10024", &DEFAULT_ALLOW)),
                Surface::Osc(net("[::1]:9000", &["::1/128"])),
                Surface::MidiMap {
                    map: PathBuf::from("/abs/m.yaml"),
                    midi: "serial:/dev/ttyUSB0@31250".into()
                },
            ]
        );
    }

    #[test]
    fn mtc_surfaces_need_a_midi_port() {
        let s = parse(
            "version: 1\nsurfaces:\n  - {kind: mtc, midi: \"serial:/dev/ttyUSB1@31250\"}\n  \
             - {kind: mtc, midi: \"jack:mtc in\"}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.surfaces,
            vec![
                Surface::Mtc {
                    midi: "serial:/dev/ttyUSB1@31250".into()
                },
                Surface::Mtc {
                    midi: "jack:mtc in".into()
                },
            ]
        );
        let t = "version: 1\nsurfaces:\n  - {kind: mtc, midi: \"usb:mtc\"}\n  - {kind: mtc}\n  \
                 - {kind: mtc, midi: \"alsa:x\", map: m.yaml}\n";
        assert_eq!(
            errors(t),
            [
                format!(
                    "{}: surfaces/1/midi: \"usb:mtc\" is not a MIDI port; use alsa:NAME, jack:NAME or serial:/dev/ttyX@BAUD",
                    at(t, "\"usb:mtc\"")
                ),
                "4:5: surfaces/2: kind mtc needs midi (a MIDI port like \"alsa:MTC\")".to_owned(),
                format!(
                    "{}: surfaces/3/map: not used by kind mtc",
                    after(t, "\"alsa:x\", map: ")
                ),
            ]
        );
    }

    #[test]
    fn display_is_one_line_per_error() {
        let t = "version: 1\nchannels: [{name: a, pan: 3, mute: true, trim_db: 99}]\n";
        let e = parse(t).expect_err("two faults");
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "/nonexistent/s.yaml:{}: ch/a/pan: 3 is out of range -1..1",
                    after(t, "pan: ")
                ),
                format!(
                    "/nonexistent/s.yaml:{}: ch/a/trim_db: 99 is out of range -24..24",
                    after(t, "trim_db: ")
                ),
            ]
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().ends_with("-24..24"));
    }

    #[test]
    fn parse_errors_are_one_short_line() {
        for (text, want) in [
            ("", "1:1: the session file is empty or ends early"),
            ("[1, 2]", "1:1: expected a mapping (key: value)"),
            (
                "version: 1\nversion: 1\n",
                "2:1: duplicate mapping key `version` is not allowed here",
            ),
            (
                "version: 1\n---\nversion: 1\n",
                "3:1: only single YAML document expected but multiple found",
            ),
            (
                "version: 1\nchannels:\n  - {name: a, gate: {threshold: -40}}\n",
                "3:22: unknown field `threshold`, expected one of threshold_db, range_db, attack_ms, hold_ms, release_ms",
            ),
        ] {
            assert_eq!(errors(text), [want], "{text:?}");
        }
    }

    /// A tiny deterministic generator (xorshift) for the fuzz test.
    struct Rng(u64);

    impl Rng {
        fn step(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.step() % n as u64) as usize
        }
    }

    #[test]
    fn no_input_panics() {
        let mut inputs: Vec<String> = vec![
            String::new(),
            "~".into(),
            "- 1\n- 2\n".into(),
            "version: 1\nchannels: ~\nbuses: ~\nsurfaces: ~\nmaster: ~\n".into(),
            "[".repeat(100_000),
            "{a: ".repeat(50_000),
            "- ".repeat(20_000),
            "version: 1\nchannels: [".to_owned() + &"[".repeat(10_000),
            "\u{0}\u{1}\u{7f}\u{feff}version: 1".into(),
            "version: &a [*a]".into(),
            "a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n".into(),
            "version: 1\nchannels: [{name: a, source: {input: [[1]]}}]\n".into(),
            "version: 1\nchannels: [{name: a, source: {input: {x: 1}}}]\n".into(),
            "version: 1\nchannels: [{name: a, source: {}}]\n".into(),
            "version: 99999999999999999999999999999999999999999\n".into(),
            "version: 1\nengine: {sample_rate: 1e400, block: -0}\n".into(),
            "version: 1\nchannels: [{name: a, insert: {send: -1, return: 1e10, latency: -5}}]\n"
                .into(),
        ];
        // Mutations of the SPEC example: cut, duplicate and replace characters at random.
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let base: Vec<char> = SPEC_EXAMPLE.chars().collect();
        let junk: Vec<char> = ":-[]{},&*!|>#'\"\t\n 0.9eE-inf".chars().collect();
        for _ in 0..400 {
            let mut t = base.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(t.len());
                match rng.below(3) {
                    0 => {
                        t.remove(at);
                    }
                    1 => t.insert(at, junk[rng.below(junk.len())]),
                    _ => t[at] = junk[rng.below(junk.len())],
                }
            }
            inputs.push(t.into_iter().collect());
        }
        let mut rejected = 0;
        for text in &inputs {
            let r = std::panic::catch_unwind(|| parse(text));
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    rejected += 1;
                    assert!(!e.errors.is_empty());
                    for d in &e.errors {
                        assert!(d.line >= 1 && d.col >= 1, "{d}");
                        assert!(!d.message.contains('\n'), "{d:?}");
                    }
                }
                Err(_) => panic!("panicked on {text:?}"),
            }
        }
        // Nearly every mutation breaks the file (and the stem is missing in any case); a few
        // may only touch a comment or a value's digits and leave a stem-less error.
        assert!(
            rejected + 2 >= inputs.len(),
            "{rejected} of {}",
            inputs.len()
        );
    }
}
