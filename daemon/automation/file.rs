//! Where `render --automation PATH` gets its lanes: a lane file (YAML, documented in the
//! README under "Automation lanes") or a daemon's state directory (its lanes, modes and
//! parameter values, so a mix ridden live bounces identically).
//!
//! # Lane file
//! ```yaml
//! version: 1
//! sample_rate: 48000          # optional: the rate `frame:` values count at
//! lanes:
//!   ch/kick/fader_db:
//!     mode: read              # optional (read); `off` ignores the lane
//!     points: [[0.0, -10.0], [2.5, 0.0]]     # [seconds, value]
//!   ch/2/pan:
//!     points:
//!       - { frame: 0, value: -0.5 }
//!       - { frame: 96000, value: 0.5 }
//! ```
//! Paths are resolved like every parameter path (`ch/1/...` works); values are in the
//! parameter's unit (`-inf` for a closed gain, `true`/`false` for toggles) and inside its
//! range; times increase strictly, one point per frame at the render's rate. Every problem is
//! reported as `FILE:LINE:COL: message`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, NonFiniteFloatPolicy, Spanned};

use super::{Interp, Mode, PlayLane, Playback, Point};
use crate::params::{ParamId, ParamTree};
use crate::session::raw::{Scalar, fmt_f64};
use crate::session::{Diagnostic, SessionError};
use crate::state::{SavedState, StateDir};

/// Lanes (and starting values) ready for a render at a given rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Values to start from (a state directory's parameters), applied before the lanes.
    pub values: Vec<(ParamId, f32)>,
    /// The lanes to play, frames at the render's rate, ordered and one per frame.
    pub lanes: Vec<(ParamId, Vec<Point>)>,
}

impl Loaded {
    /// The lanes as the engine plays them.
    pub fn playback(&self, tree: &ParamTree) -> Playback {
        Playback {
            lanes: self
                .lanes
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(id, points)| {
                    let p = tree.get(*id);
                    PlayLane::new(p.addr, Interp::for_spec(p.spec), points.as_slice())
                })
                .collect(),
        }
    }
}

/// Load `path`: a state directory (see [`from_state`]) or a lane file (see [`parse_str`]), for
/// the parameters of `tree` and a render at `rate` Hz.
///
/// # Errors
/// Unreadable input, or every problem found, as `FILE:LINE:COL: message`.
pub fn load(path: &Path, tree: &ParamTree, rate: u32) -> Result<Loaded, SessionError> {
    if path.is_dir() {
        let dir = StateDir::open(path).map_err(|e| one(path, e.to_string()))?;
        let file = dir.file();
        return match dir.load() {
            Ok(Some(state)) => from_state(&state, &file, tree, rate),
            Ok(None) => Err(one(
                &file,
                "no usable saved state in this state directory".into(),
            )),
            Err(e) => Err(one(&file, e.to_string())),
        };
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| one(path, format!("cannot read the lane file: {e}")))?;
    parse_str(&text, path, tree, rate)
}

fn one(file: &Path, message: String) -> SessionError {
    SessionError {
        errors: vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message,
        }],
    }
}

/// Convert frame `f` counted at `from` Hz to `to` Hz (rounded).
fn convert(f: u64, from: u32, to: u32) -> u64 {
    if from == to || from == 0 {
        return f;
    }
    (f as f64 * f64::from(to) / f64::from(from)).round() as u64
}

/// A daemon's saved state as a render's automation: every lane whose mode is not off, at
/// `rate` (frames converted from the state's `lane_rate`), and every saved parameter value.
/// `file` names the state file in messages.
///
/// # Errors
/// A lane or a value for a parameter `tree` does not have, or a NaN point.
pub fn from_state(
    state: &SavedState,
    file: &Path,
    tree: &ParamTree,
    rate: u32,
) -> Result<Loaded, SessionError> {
    let mut errors = Vec::new();
    let mut bad = |message: String| {
        errors.push(Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message,
        })
    };
    let mut out = Loaded::default();
    for (path, &v) in &state.params {
        match tree.resolve(path) {
            Some(id) => out.values.push((id, tree.get(id).spec.sanitize(v))),
            None => bad(format!(
                "the state has a value for `{path}`, which this session does not have"
            )),
        }
    }
    let from = if state.lane_rate == 0 {
        rate
    } else {
        state.lane_rate
    };
    for (path, points) in &state.lanes {
        let mode = state.automation.get(path).copied().unwrap_or_default();
        if mode == Mode::Off || points.is_empty() {
            continue;
        }
        let Some(id) = tree.resolve(path) else {
            bad(format!(
                "the state has a lane for `{path}`, which this session does not have"
            ));
            continue;
        };
        if points.iter().any(|p| p.value.is_nan()) {
            bad(format!("the lane of `{path}` has a NaN point"));
            continue;
        }
        let mut pts: Vec<Point> = points
            .iter()
            .map(|p| Point {
                frame: convert(p.frame, from, rate),
                value: p.value,
            })
            .collect();
        // Two points landing on one frame at this rate: the later one stands.
        crate::automation::lane::one_per_frame(&mut pts);
        out.lanes.push((id, pts));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(SessionError { errors })
    }
}

// ---- the lane file ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<Scalar>,
    #[serde(default)]
    sample_rate: Option<Spanned<Scalar>>,
    lanes: Spanned<RawLanes>,
}

/// The `lanes:` mapping, in file order, keys with their locations.
struct RawLanes(Vec<(Spanned<String>, RawLane)>);

impl<'de> Deserialize<'de> for RawLanes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLanes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of parameter paths to lanes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawLanes, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_entry()? {
                    v.push(e);
                }
                Ok(RawLanes(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLane {
    #[serde(default)]
    mode: Option<Spanned<String>>,
    points: Spanned<Vec<Spanned<RawPoint>>>,
}

/// `[seconds, value]`, `{time: seconds, value: v}` or `{frame: n, value: v}`.
struct RawPoint {
    time: Option<Scalar>,
    frame: Option<Scalar>,
    value: Option<Scalar>,
}

impl<'de> Deserialize<'de> for RawPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a point: [seconds, value], {time, value} or {frame, value}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawPoint, A::Error> {
                let time: Scalar = a
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: Scalar = a
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if a.next_element::<Scalar>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(RawPoint {
                    time: Some(time),
                    frame: None,
                    value: Some(value),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawPoint, A::Error> {
                let mut p = RawPoint {
                    time: None,
                    frame: None,
                    value: None,
                };
                while let Some(k) = a.next_key::<String>()? {
                    let slot = match k.as_str() {
                        "time" => &mut p.time,
                        "frame" => &mut p.frame,
                        "value" => &mut p.value,
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["time", "frame", "value"],
                            ));
                        }
                    };
                    *slot = Some(a.next_value()?);
                }
                Ok(p)
            }
        }
        d.deserialize_any(V)
    }
}

struct Ctx<'a> {
    file: &'a Path,
    errors: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, at: &Location, message: impl Into<String>) {
        self.errors.push(Diagnostic::at(self.file, at, message));
    }

    /// A finite number >= 0 (seconds, frames, rates), or an error at `at`.
    fn non_negative(&mut self, what: &str, v: &Scalar, at: &Location) -> Option<f64> {
        let x = match v {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(f) => *f,
            other => {
                self.err(at, format!("{what}: expected a number, found {other}"));
                return None;
            }
        };
        if !x.is_finite() || x < 0.0 {
            self.err(at, format!("{what}: {} is not a number >= 0", fmt_f64(x)));
            return None;
        }
        Some(x)
    }
}

/// Parse a lane file's text (`file` names it in messages) for the parameters of `tree` and a
/// render at `rate` Hz.
///
/// # Errors
/// A YAML or shape error (one diagnostic), or every problem in the lanes: an unknown path or
/// mode, a value that is not a number, NaN or outside the parameter's range, times that do
/// not increase.
pub fn parse_str(
    text: &str,
    file: &Path,
    tree: &ParamTree,
    rate: u32,
) -> Result<Loaded, SessionError> {
    let options = serde_saphyr::options! {
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    let raw: RawFile = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| crate::session::yaml_error(&e, file))?;
    let mut cx = Ctx {
        file,
        errors: Vec::new(),
    };
    match raw.version.value {
        Scalar::Int(1) => {}
        ref other => cx.err(
            &raw.version.referenced,
            format!("version: expected 1, found {other}"),
        ),
    }
    let file_rate = match &raw.sample_rate {
        Some(s) => match cx.non_negative("sample_rate", &s.value, &s.referenced) {
            Some(r) if r >= 1.0 && r.fract() == 0.0 && r <= f64::from(u32::MAX) => r as u32,
            Some(r) => {
                cx.err(
                    &s.referenced,
                    format!("sample_rate: {} is not a whole number of Hz", fmt_f64(r)),
                );
                rate
            }
            None => rate,
        },
        None => rate,
    };
    let mut out = Loaded::default();
    let mut seen: BTreeMap<ParamId, String> = BTreeMap::new();
    for (key, lane) in &raw.lanes.value.0 {
        let path = key.value.as_str();
        let id = tree.resolve(path);
        let Some(id) = id else {
            cx.err(&key.referenced, format!("unknown parameter `{path}`"));
            continue;
        };
        if let Some(first) = seen.insert(id, path.to_string()) {
            cx.err(
                &key.referenced,
                format!("`{path}` names the same parameter as `{first}`: one lane each"),
            );
            continue;
        }
        let mode = match &lane.mode {
            Some(m) => match m.value.parse::<Mode>() {
                Ok(m) => m,
                Err(e) => {
                    cx.err(&m.referenced, format!("{path}: {e}"));
                    continue;
                }
            },
            None => Mode::Read,
        };
        let spec = tree.get(id).spec;
        if lane.points.value.is_empty() {
            cx.err(&lane.points.referenced, format!("{path}: no points"));
            continue;
        }
        let mut points: Vec<Point> = Vec::with_capacity(lane.points.value.len());
        let mut ok = true;
        for p in &lane.points.value {
            let at = &p.referenced;
            let frame = match (&p.value.time, &p.value.frame) {
                (Some(t), None) => cx
                    .non_negative(&format!("{path}: time"), t, at)
                    .map(|s| (s * f64::from(rate)).round() as u64),
                (None, Some(f)) => match cx.non_negative(&format!("{path}: frame"), f, at) {
                    Some(x) if x.fract() == 0.0 => Some(convert(x as u64, file_rate, rate)),
                    Some(x) => {
                        cx.err(
                            at,
                            format!("{path}: frame {} is not a whole number", fmt_f64(x)),
                        );
                        None
                    }
                    None => None,
                },
                _ => {
                    cx.err(at, format!("{path}: a point has either a time or a frame"));
                    None
                }
            };
            let value = match &p.value.value {
                None => {
                    cx.err(at, format!("{path}: a point without a value"));
                    None
                }
                Some(v) => {
                    let x = match v {
                        Scalar::Int(i) => Some(*i as f64),
                        Scalar::Float(f) => Some(*f),
                        Scalar::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                        Scalar::Str(s) if s == "-inf" => Some(f64::NEG_INFINITY),
                        other => {
                            cx.err(at, format!("{path}: expected a number, found {other}"));
                            None
                        }
                    };
                    match x {
                        Some(x) if x.is_nan() => {
                            cx.err(at, format!("{path}: .nan is not a number"));
                            None
                        }
                        Some(x)
                            if !spec.contains(x as f32)
                                || ((x as f32).is_infinite() && x.is_finite()) =>
                        {
                            cx.err(
                                at,
                                format!(
                                    "{path}: {} is out of range {}",
                                    fmt_f64(x),
                                    spec.range_text()
                                ),
                            );
                            None
                        }
                        Some(x) => Some(x as f32),
                        None => None,
                    }
                }
            };
            let (Some(frame), Some(value)) = (frame, value) else {
                ok = false;
                continue;
            };
            if let Some(prev) = points.last()
                && frame <= prev.frame
            {
                cx.err(
                    at,
                    format!(
                        "{path}: this point (frame {frame} at {rate} Hz) is not after the one \
                         before it (frame {}): times must increase",
                        prev.frame
                    ),
                );
                ok = false;
                continue;
            }
            points.push(Point { frame, value });
        }
        if ok && mode != Mode::Off {
            out.lanes.push((id, points));
        }
    }
    if cx.errors.is_empty() {
        Ok(out)
    } else {
        cx.errors.sort_by_key(|d| (d.line, d.col));
        Err(SessionError { errors: cx.errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session;

    fn tree() -> ParamTree {
        let s = session::parse_str(
            "version: 1\nchannels:\n  - { name: kick, source: { input: 1 } }\n  - { name: bass, source: { input: 2 } }\n",
            Path::new("s.yaml"),
        )
        .expect("session");
        ParamTree::build(&s)
    }

    fn parse(text: &str) -> Result<Loaded, String> {
        parse_str(text, Path::new("a.yaml"), &tree(), 48000).map_err(|e| e.to_string())
    }

    #[test]
    fn every_point_form_reads_to_frames_at_the_render_rate() {
        let t = tree();
        let got = parse(
            "version: 1
sample_rate: 96000
lanes:
  ch/kick/fader_db:
    points: [[0.0, -inf], [0.5, -10], [2.5, 0.0]]
  ch/2/pan:
    mode: touch
    points:
      - { frame: 0, value: -0.5 }
      - { frame: 96001, value: 0.5 }
      - { time: 3, value: 1 }
  ch/kick/mute:
    mode: off
    points: [[0, true]]
  ch/bass/mute:
    points: [[0, false], [1.25, true]]
",
        )
        .expect("valid");
        let pts = |v: &[(u64, f32)]| -> Vec<Point> {
            v.iter()
                .map(|&(frame, value)| Point { frame, value })
                .collect()
        };
        assert_eq!(
            got.lanes,
            vec![
                (
                    t.resolve("ch/kick/fader_db").unwrap(),
                    pts(&[(0, f32::NEG_INFINITY), (24000, -10.0), (120_000, 0.0)])
                ),
                // 96001 frames at 96 kHz = 48000.5 frames at 48 kHz, rounded.
                (
                    t.resolve("ch/bass/pan").unwrap(),
                    pts(&[(0, -0.5), (48001, 0.5), (144_000, 1.0)])
                ),
                // The lane in mode off is left out.
                (
                    t.resolve("ch/bass/mute").unwrap(),
                    pts(&[(0, 0.0), (60000, 1.0)])
                ),
            ]
        );
        assert!(got.values.is_empty());
        let play = got.playback(&t);
        assert_eq!(play.lanes.len(), 3);
        assert_eq!(play.lanes[0].interp, Interp::Linear);
        assert_eq!(play.lanes[2].interp, Interp::Step);
    }

    #[test]
    fn problems_are_reported_at_their_line_and_column() {
        let e = parse(
            "version: 1
lanes:
  ch/nope/fader_db:
    points: [[0, 0]]
  ch/kick/fader_db:
    points: [[0, 0], [1, 20]]
  ch/kick/pan:
    points: [[1, 0], [0.5, 0.2]]
  ch/bass/pan:
    points: [[0, .nan]]
  ch/bass/fader_db:
    mode: sometimes
    points: [[0, 0]]
",
        )
        .unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(
            lines[0].starts_with("a.yaml:3:3: unknown parameter `ch/nope/fader_db`"),
            "{e}"
        );
        assert!(lines[1].starts_with("a.yaml:6:22: ch/kick/fader_db: 20 is out of range"));
        assert!(
            lines[2].starts_with("a.yaml:8:22: ch/kick/pan: this point"),
            "{e}"
        );
        assert!(lines[2].contains("times must increase"));
        assert!(lines[3].starts_with("a.yaml:10:14: ch/bass/pan: .nan is not a number"));
        assert!(lines[4].starts_with("a.yaml:12:11: ch/bass/fader_db: unknown automation mode"));
        // Shape errors come from the YAML reader, with their place too.
        let e = parse("version: 1\nlanes:\n  ch/kick/pan:\n    pointz: []\n").unwrap_err();
        assert!(e.starts_with("a.yaml:4:5: "), "{e}");
        let e = parse("version: 2\nlanes: {}\n").unwrap_err();
        assert_eq!(e, "a.yaml:1:10: version: expected 1, found 2");
    }

    #[test]
    fn the_readme_example_is_a_valid_lane_file() {
        let readme = include_str!("../../README.md");
        let at = readme.find("### Automation lanes").expect("README section");
        let text = &readme[at..];
        let start = text.find("```yaml\n").expect("example") + 8;
        let end = start + text[start..].find("```").expect("end of example");
        let got = parse_str(&text[start..end], Path::new("README.md"), &tree(), 48000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.lanes.len(), 3);
    }

    #[test]
    fn a_state_plays_its_lanes_not_in_mode_off_from_its_values() {
        let t = tree();
        let p = |frame, value| Point { frame, value };
        let state = SavedState {
            version: 1,
            params: BTreeMap::from([("ch/kick/fader_db".into(), -3.0)]),
            automation: BTreeMap::from([("ch/kick/pan".into(), Mode::Read)]),
            lanes: BTreeMap::from([
                ("ch/kick/pan".into(), vec![p(0, -1.0), p(44100, 1.0)]),
                ("ch/bass/pan".into(), vec![p(0, 0.5)]),
            ]),
            lane_rate: 44100,
            ..Default::default()
        };
        let got = from_state(&state, Path::new("state.json"), &t, 48000).unwrap();
        assert_eq!(got.values, [(t.resolve("ch/kick/fader_db").unwrap(), -3.0)]);
        // 1 s at 44.1 kHz is 48000 frames at 48 kHz; the bass lane has no mode: off.
        assert_eq!(
            got.lanes,
            [(
                t.resolve("ch/kick/pan").unwrap(),
                vec![p(0, -1.0), p(48000, 1.0)]
            )]
        );
        let mut bad = state.clone();
        bad.automation.insert("ch/snare/mute".into(), Mode::Read);
        bad.lanes.insert("ch/snare/mute".into(), vec![p(0, 1.0)]);
        let e = from_state(&bad, Path::new("state.json"), &t, 48000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`ch/snare/mute`, which this session does not have"),
            "{e}"
        );
    }
}
