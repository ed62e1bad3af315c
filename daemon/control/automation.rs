//! The console's side of automation: what each mode does, recording passes from surfaces,
//! deciding which lanes the engine plays, and showing played values on every surface.
//!
//! # Modes (per parameter; see [`Mode`])
//! A lane *engages* (the engine plays it, sample-accurately, see
//! [`crate::automation::playback`]) when it has points and its mode says so:
//! - **off**: never.
//! - **read**: always; a surface touching the control overrides it while touched and the lane
//!   glides back on release ([`ReadTouch::Override`], the default), or surface moves are
//!   refused ([`ReadTouch::Ignore`]).
//! - **touch**: while untouched. A touch while the transport plays starts a *pass*: every move
//!   is written until release; the pass ends [`AutomationConfig::glide_ms`] after the release
//!   with the old curve, so the written curve glides back to it, and the lane glides back too.
//! - **latch**: like touch, but the pass goes on after release, holding the last value, until
//!   the transport stops.
//! - **write**: every write-mode parameter is written from play to stop (the lane does not play
//!   meanwhile); at stop the mode turns into touch.
//! - **trim** (gains: faders and send levels; other parameters behave as in touch): while
//!   touched during play, the move is an offset in dB: the parameter plays the old curve plus
//!   the offset (the surface's travel since the touch), and that sum is written.
//!
//! # Touch
//! Explicit touches come from MCU touch notes and OSC `.../touch`. A surface that moves a
//! control in touch, latch, trim or write mode without touching it first (a MIDI map, an OSC
//! client that sends no touch) touches it implicitly; the touch ends [`IMPLICIT_TOUCH`] after
//! its last move.
//!
//! # Recording
//! A pass records every move of the writing surface at the transport position it was heard at
//! (the engine's published position, advanced by its frame clock), and samples the value
//! every [`TICK`] besides, so held values are kept. At the end of the pass the points replace
//! the range with guard points ([`Lane::write_pass`]) and are thinned
//! ([`thin_tolerance`]). [`crate::control::ConsoleHandle::automation_undo`] puts back the lanes
//! of the last pass.
//!
//! # Display
//! Every [`TICK`] the console reads each engaged lane at the position and stores the value
//! with [`Origin::Automation`] (without forwarding it: the engine plays the lane itself), so
//! motor faders move and tablets update.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use crate::automation::{Interp, Lane, Mode, PlayLane, Playback, Point};
use crate::params::{ParamId, ParamSpec, Taper};

use super::{Inner, ModeChange, Origin, Shared};

/// Period of the automation tick: display of played lanes, sampling of passes, implicit touch
/// timeouts.
pub const TICK: Duration = Duration::from_millis(10);
/// An implicit touch (a move with no touch) ends this long after the last move.
pub const IMPLICIT_TOUCH: Duration = Duration::from_secs(1);

/// What a touch does to a control whose lane plays in read mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadTouch {
    /// The surface drives the control while it touches it; the lane glides back on release.
    #[default]
    Override,
    /// Surface moves are refused (the control keeps following the lane).
    Ignore,
}

/// Automation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutomationConfig {
    /// Time a lane takes to glide back to its curve after a touch is released (touch, read
    /// override, trim), and the length of the written glide at the end of a touch pass.
    pub glide_ms: f32,
    pub read_touch: ReadTouch,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            glide_ms: 250.0,
            read_touch: ReadTouch::Override,
        }
    }
}

/// The largest change thinning may make to a written curve, in the lane's domain: 0.05 dB
/// for gains, 0.2 % for log-tapered values (frequencies, times), a thousandth of the range
/// for the rest, nothing for stepped values.
pub fn thin_tolerance(spec: &ParamSpec) -> f64 {
    match Interp::for_spec(spec) {
        Interp::Step => 0.0,
        Interp::Log => 0.002,
        Interp::Linear if spec.taper == Taper::Fader => 0.05,
        Interp::Linear => {
            let span = f64::from(spec.max) - f64::from(spec.min);
            if span.is_finite() { span * 1e-3 } else { 0.05 }
        }
    }
}

/// True for the parameters trim writes offsets to: faders and send levels.
fn trims(spec: &ParamSpec) -> bool {
    spec.taper == Taper::Fader
}

/// A lane and the copy of its points the engine plays.
pub(super) struct LaneSlot {
    pub lane: Lane,
    pub shared: Arc<[Point]>,
}

impl LaneSlot {
    pub fn new(lane: Lane) -> LaneSlot {
        let shared = lane.points.clone().into();
        LaneSlot { lane, shared }
    }

    fn refresh(&mut self) {
        self.shared = self.lane.points.clone().into();
    }
}

/// A write pass in progress on one parameter.
struct Pass {
    start: u64,
    points: Vec<Point>,
    /// The surface writing (trim values are stored with its origin).
    origin: Origin,
    /// Trim: the surface's value when the touch began (the offset is the travel since).
    trim_from: Option<f32>,
    /// Trim: the offset now (dB).
    trim_offset: f32,
}

/// Where and from what value a lane engaged (for the glide back shown on surfaces).
#[derive(Clone, Copy)]
struct Engaged {
    pos: u64,
    from: f32,
    /// Engaged by a release while playing: it glides back (otherwise it takes over at once).
    glide: bool,
}

/// The console's automation state (in [`Inner`]).
#[derive(Default)]
pub(super) struct AutoState {
    /// Lanes with points, by canonical path (kept across reloads).
    pub lanes: BTreeMap<Arc<str>, LaneSlot>,
    /// Sample rate the lanes' frames count at (0 until known).
    pub rate: u32,
    pub config: AutomationConfig,
    passes: HashMap<ParamId, Pass>,
    /// Latch mode: touched during this play (the pass holds until stop).
    latched: HashSet<ParamId>,
    /// Implicit touches and when each ends.
    implicit: HashMap<(ParamId, Origin), StdInstant>,
    engaged: HashMap<ParamId, Engaged>,
    /// Released just now (their lanes glide back when they engage).
    releasing: HashSet<ParamId>,
    /// Paths written by the last pass (for undo).
    last_pass: Vec<Arc<str>>,
    /// A lane's points changed since the engine was last given the lanes.
    pub lanes_changed: bool,
}

impl AutoState {
    /// Lanes from the saved state, for the parameters `tree` still has.
    pub fn restore(
        lanes: BTreeMap<String, Vec<Point>>,
        rate: u32,
        tree: &crate::params::ParamTree,
        paths: &[Arc<str>],
    ) -> AutoState {
        let mut s = AutoState {
            rate,
            ..AutoState::default()
        };
        for (p, points) in lanes {
            let Some(id) = tree.resolve(&p) else { continue };
            let param = tree.get(id);
            let mut lane = Lane::new(Interp::for_spec(param.spec));
            lane.points = clean_points(points, param.spec);
            if !lane.points.is_empty() {
                s.lanes
                    .insert(paths[id.0 as usize].clone(), LaneSlot::new(lane));
            }
        }
        s
    }

    /// Every lane's points, for the saved state.
    pub fn saved(&self) -> BTreeMap<String, Vec<Point>> {
        self.lanes
            .iter()
            .map(|(p, s)| (p.to_string(), s.lane.points.clone()))
            .collect()
    }

    /// Forget everything tied to parameter ids (a reload renumbers them); lanes stay.
    pub fn forget_ids(&mut self) {
        self.passes.clear();
        self.latched.clear();
        self.implicit.clear();
        self.engaged.clear();
    }

    /// Forget which lanes the engine plays (a new engine plays none yet).
    pub fn forget_engaged(&mut self) {
        self.engaged.clear();
    }

    /// Drop an implicit touch of `origin` on `id` (an explicit touch or release replaces it);
    /// true if there was one.
    pub fn take_implicit(&mut self, id: ParamId, origin: Origin) -> bool {
        self.implicit.remove(&(id, origin)).is_some()
    }

    /// Count frames at `rate` from now on, converting the lanes' frames.
    pub fn set_rate(&mut self, rate: u32) {
        if rate == 0 || rate == self.rate {
            return;
        }
        if self.rate != 0 {
            let k = f64::from(rate) / f64::from(self.rate);
            for slot in self.lanes.values_mut() {
                for p in &mut slot.lane.points {
                    p.frame = (p.frame as f64 * k).round() as u64;
                }
                // Points that land on one frame: the later one stays, as in lane files.
                crate::automation::lane::one_per_frame(&mut slot.lane.points);
                slot.refresh();
            }
        }
        self.rate = rate;
    }
}

/// Points sorted by frame, one per frame, NaN dropped, values clamped into the range.
pub(super) fn clean_points(mut points: Vec<Point>, spec: &ParamSpec) -> Vec<Point> {
    points.retain(|p| !p.value.is_nan());
    for p in &mut points {
        p.value = spec.sanitize(p.value);
    }
    crate::automation::lane::one_per_frame(&mut points);
    points
}

impl Inner {
    fn mode_of(&self, id: ParamId) -> Mode {
        self.automation
            .get(&self.paths[id.0 as usize])
            .copied()
            .unwrap_or_default()
    }

    fn touched_now(&self, id: ParamId) -> bool {
        self.touched.get(&id).is_some_and(|s| !s.is_empty())
    }

    fn lane_of(&self, id: ParamId) -> Option<&LaneSlot> {
        self.auto.lanes.get(&self.paths[id.0 as usize])
    }

    /// The transport position heard now, and whether it plays: the engine's last published
    /// position advanced by its frame clock.
    pub(super) fn position_now(&self) -> (u64, bool) {
        let Some(e) = &self.engine else {
            return (0, false);
        };
        let (pos, frame, playing) = e.meters.transport();
        if !playing {
            return (pos, false);
        }
        let pos = match e.handle.frame_at(StdInstant::now()) {
            Some(now) => pos.saturating_add_signed(now as i64 - frame as i64),
            None => pos,
        };
        (pos, true)
    }

    /// True when the lane of `id` should play now.
    fn wants_engaged(&self, id: ParamId) -> bool {
        if self.lane_of(id).is_none_or(|s| s.lane.is_empty()) || self.auto.passes.contains_key(&id)
        {
            return false;
        }
        let touched = self.touched_now(id);
        match self.mode_of(id) {
            Mode::Off => false,
            Mode::Read => !touched || self.auto.config.read_touch == ReadTouch::Ignore,
            Mode::Touch | Mode::Trim | Mode::Write => !touched,
            Mode::Latch => !touched && !self.auto.latched.contains(&id),
        }
    }

    /// Work out which lanes play and hand the engine the new set when it changed.
    pub(super) fn refresh_playback(&mut self) {
        let (pos, _) = self.position_now();
        let glide = self.glide_frames();
        let mut now: Vec<ParamId> = Vec::new();
        for path in self.auto.lanes.keys() {
            if let Some(id) = self.tree.resolve(path)
                && self.wants_engaged(id)
            {
                now.push(id);
            }
        }
        let before: HashSet<ParamId> = self.auto.engaged.keys().copied().collect();
        let after: HashSet<ParamId> = now.iter().copied().collect();
        for id in before.difference(&after) {
            self.auto.engaged.remove(id);
            // The engine holds the lane's last value; give it the console's (they differ by
            // at most a tick's movement).
            let v = self.values[id.0 as usize];
            if let Some(e) = self.engine.as_mut() {
                e.send(&self.tree, *id, v, None);
            }
        }
        let playing = self.playing;
        for id in after.difference(&before) {
            let from = self.values[id.0 as usize];
            let glide = playing && self.auto.releasing.contains(id);
            self.auto.engaged.insert(*id, Engaged { pos, from, glide });
        }
        self.auto.releasing.clear();
        let changed = before != after;
        if changed || self.auto.lanes_changed {
            self.auto.lanes_changed = false;
            let lanes = now
                .iter()
                .filter_map(|id| {
                    let slot = self.lane_of(*id)?;
                    Some(PlayLane {
                        addr: self.tree.get(*id).addr,
                        interp: slot.lane.interp,
                        points: slot.shared.clone(),
                        glide_in: match self.auto.engaged.get(id) {
                            Some(e) if e.glide => glide,
                            _ => 0,
                        },
                        glide_from: self.auto.engaged.get(id).map_or(0.0, |e| e.from),
                    })
                })
                .collect();
            if let Some(e) = self.engine.as_mut() {
                e.send_playback(Playback { lanes });
            }
        }
    }

    fn glide_frames(&self) -> u32 {
        let rate = if self.auto.rate > 0 {
            self.auto.rate
        } else {
            48_000
        };
        (self.auto.config.glide_ms.max(0.0) * 1e-3 * rate as f32).round() as u32
    }

    /// `origin` touches (`touched`) or releases `id`: the touch set changes; when it did, the
    /// change is announced and passes start or end. Returns whether it changed.
    pub(super) fn touch_change(
        &mut self,
        sh: &Shared,
        id: ParamId,
        touched: bool,
        origin: Origin,
    ) -> bool {
        let changed = if touched {
            self.touched.entry(id).or_default().insert(origin)
        } else {
            let removed = self.touched.get_mut(&id).is_some_and(|s| s.remove(&origin));
            if self.touched.get(&id).is_some_and(HashSet::is_empty) {
                self.touched.remove(&id);
            }
            removed
        };
        if changed {
            self.announce_touch(sh, id, touched, origin);
        }
        changed
    }

    /// Broadcast a touch change and let automation act on it.
    pub(super) fn announce_touch(
        &mut self,
        sh: &Shared,
        id: ParamId,
        touched: bool,
        origin: Origin,
    ) {
        let _ = sh.touches.send(super::Touch {
            path: self.paths[id.0 as usize].clone(),
            id,
            touched,
            origin,
        });
        self.auto_touch(sh, id, touched, origin);
    }

    /// A surface touched (`touched`) or released a control: passes start and end.
    pub(super) fn auto_touch(&mut self, sh: &Shared, id: ParamId, touched: bool, origin: Origin) {
        let (pos, _) = self.position_now();
        let playing = self.playing;
        let mode = self.mode_of(id);
        if touched {
            if playing
                && matches!(mode, Mode::Touch | Mode::Latch | Mode::Trim)
                && !self.auto.passes.contains_key(&id)
            {
                self.start_pass(id, pos, origin);
                if mode == Mode::Latch {
                    self.auto.latched.insert(id);
                }
            }
        } else if !self.touched_now(id) {
            self.auto.releasing.insert(id);
            if matches!(mode, Mode::Touch | Mode::Trim) && self.auto.passes.contains_key(&id) {
                self.end_passes(sh, &[id], pos, true);
            }
        }
        self.refresh_playback();
    }

    fn start_pass(&mut self, id: ParamId, pos: u64, origin: Origin) {
        let v = self.values[id.0 as usize];
        let spec = self.tree.get(id).spec;
        let trim = self.mode_of(id) == Mode::Trim && trims(spec);
        self.auto.passes.insert(
            id,
            Pass {
                start: pos,
                points: vec![Point {
                    frame: pos,
                    value: v,
                }],
                origin,
                trim_from: trim.then_some(v),
                trim_offset: 0.0,
            },
        );
    }

    /// End the passes of `ids` at `pos` and write them into their lanes: with `glide`, the
    /// pass runs on [`AutomationConfig::glide_ms`] to the old curve; without, it holds its
    /// last value to `pos`.
    fn end_passes(&mut self, sh: &Shared, ids: &[ParamId], pos: u64, glide: bool) {
        let glide = if glide {
            u64::from(self.glide_frames())
        } else {
            0
        };
        let mut written = Vec::new();
        for id in ids {
            let Some(mut pass) = self.auto.passes.remove(id) else {
                continue;
            };
            let path = self.paths[id.0 as usize].clone();
            let param = self.tree.get(*id);
            let v = self.values[id.0 as usize];
            let end = pos.max(pass.start);
            pass.points.push(Point {
                frame: end,
                value: v,
            });
            let slot = self
                .auto
                .lanes
                .entry(path.clone())
                .or_insert_with(|| LaneSlot::new(Lane::new(Interp::for_spec(param.spec))));
            let mut last = end;
            if glide > 0
                && let Some(old) = slot.lane.value_at(end + glide)
            {
                last = end + glide;
                pass.points.push(Point {
                    frame: last,
                    value: old,
                });
            }
            slot.lane.write_pass(pass.start, last, &pass.points);
            slot.lane.thin(thin_tolerance(param.spec));
            slot.refresh();
            written.push(path);
        }
        if !written.is_empty() {
            self.auto.last_pass = written;
            self.auto.lanes_changed = true;
            self.mark_dirty(&sh.dirty);
        }
    }

    /// A surface stored `v`: implicit touches, and recording. Returns the value to store
    /// instead (trim: the old curve plus the offset), or None to refuse the move (read mode,
    /// [`ReadTouch::Ignore`]).
    pub(super) fn auto_surface_set(
        &mut self,
        sh: &Shared,
        id: ParamId,
        v: f32,
        origin: Origin,
    ) -> Option<f32> {
        let mode = self.mode_of(id);
        if mode == Mode::Off {
            return Some(v);
        }
        let has_lane = self.lane_of(id).is_some_and(|s| !s.lane.is_empty());
        if mode == Mode::Read && has_lane && self.auto.config.read_touch == ReadTouch::Ignore {
            return None;
        }
        let explicit = self.touched.get(&id).is_some_and(|s| {
            s.contains(&origin) && !self.auto.implicit.contains_key(&(id, origin))
        });
        if !explicit && (has_lane || mode != Mode::Read) {
            let first = self
                .auto
                .implicit
                .insert((id, origin), StdInstant::now() + IMPLICIT_TOUCH)
                .is_none();
            if first {
                self.touch_change(sh, id, true, origin);
            }
        }
        let (pos, _) = self.position_now();
        let spec = self.tree.get(id).spec;
        let base = self.lane_of(id).and_then(|s| s.lane.value_at(pos));
        let Some(pass) = self.auto.passes.get_mut(&id) else {
            return Some(v);
        };
        let out = match pass.trim_from {
            Some(from) => {
                pass.trim_offset = finite_diff(v, from);
                spec.sanitize(base.unwrap_or(from) + pass.trim_offset)
            }
            None => v,
        };
        pass.points.push(Point {
            frame: pos,
            value: out,
        });
        Some(out)
    }

    /// The automation tick: implicit touches that timed out, sampling and trim of passes,
    /// display of playing lanes.
    pub(super) fn auto_tick(&mut self, sh: &Shared) {
        let now = StdInstant::now();
        let expired: Vec<(ParamId, Origin)> = self
            .auto
            .implicit
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| *k)
            .collect();
        for (id, origin) in expired {
            self.auto.implicit.remove(&(id, origin));
            self.touch_change(sh, id, false, origin);
        }
        if self.auto.passes.is_empty() && self.auto.engaged.is_empty() {
            return;
        }
        let (pos, playing) = self.position_now();
        // Passes: trim follows the old curve; every pass samples its value.
        let ids: Vec<ParamId> = self.auto.passes.keys().copied().collect();
        for id in ids {
            let spec = self.tree.get(id).spec;
            let base = self.lane_of(id).and_then(|s| s.lane.value_at(pos));
            let Some(pass) = self.auto.passes.get(&id) else {
                continue;
            };
            let (origin, trim) = (pass.origin, pass.trim_from.map(|f| (f, pass.trim_offset)));
            if let Some((from, off)) = trim {
                let v = spec.sanitize(base.unwrap_or(from) + off);
                self.store_raw(sh, id, v, origin, None);
            }
            let v = self.values[id.0 as usize];
            if playing && let Some(pass) = self.auto.passes.get_mut(&id) {
                pass.points.push(Point {
                    frame: pos,
                    value: v,
                });
            }
        }
        // Display what the engine plays.
        let glide = u64::from(self.glide_frames());
        let shown: Vec<(ParamId, f32)> = self
            .auto
            .engaged
            .iter()
            .filter_map(|(id, e)| {
                let slot = self.lane_of(*id)?;
                let target = slot.lane.value_at(pos)?;
                let v = if e.glide && glide > 0 && pos < e.pos + glide && pos >= e.pos {
                    let t = (pos - e.pos) as f64 / glide as f64;
                    slot.lane.interp.mix(e.from, target, t)
                } else {
                    target
                };
                Some((*id, self.tree.get(*id).spec.sanitize(v)))
            })
            .collect();
        for (id, v) in shown {
            self.show(sh, id, v);
        }
    }

    /// Store a played value for display: broadcast with [`Origin::Automation`], not
    /// forwarded (the engine plays the lane), not a reason to write the state.
    fn show(&mut self, sh: &Shared, id: ParamId, v: f32) {
        let i = id.0 as usize;
        if self.values[i].to_bits() == v.to_bits() {
            return;
        }
        self.values[i] = v;
        let _ = sh.changes.send(super::Change {
            path: self.paths[i].clone(),
            id,
            value: v,
            origin: Origin::Automation,
        });
    }

    /// The transport started (`true`) or stopped: write passes start; every pass ends.
    pub(super) fn auto_transport(&mut self, sh: &Shared, playing: bool) {
        let (pos, _) = self.position_now();
        if playing {
            self.auto.latched.clear();
            let writers: Vec<ParamId> = self
                .automation
                .iter()
                .filter(|(_, m)| **m == Mode::Write)
                .filter_map(|(p, _)| self.tree.resolve(p))
                .collect();
            for id in writers {
                if !self.auto.passes.contains_key(&id) {
                    self.start_pass(id, pos, Origin::Internal);
                }
            }
        } else {
            let ids: Vec<ParamId> = self.auto.passes.keys().copied().collect();
            self.end_passes(sh, &ids, pos, false);
            self.auto.latched.clear();
            // Write turns into touch once its pass is written.
            let writers: Vec<Arc<str>> = self
                .automation
                .iter()
                .filter(|(_, m)| **m == Mode::Write)
                .map(|(p, _)| p.clone())
                .collect();
            for p in writers {
                self.automation.insert(p.clone(), Mode::Touch);
                let _ = sh.modes.send(ModeChange {
                    path: p,
                    mode: Mode::Touch,
                });
            }
            if !ids.is_empty() {
                self.mark_dirty(&sh.dirty);
            }
        }
        self.refresh_playback();
    }

    /// The transport moves to `seconds`: passes end where they are (holding), and write
    /// passes go on from the new position.
    pub(super) fn auto_locate(&mut self, sh: &Shared, seconds: f32) {
        if self.auto.passes.is_empty() {
            return;
        }
        let (pos, _) = self.position_now();
        let writers: Vec<(ParamId, Origin)> = self
            .auto
            .passes
            .iter()
            .filter(|(id, _)| self.mode_of(**id) == Mode::Write)
            .map(|(id, p)| (*id, p.origin))
            .collect();
        let ids: Vec<ParamId> = self.auto.passes.keys().copied().collect();
        self.end_passes(sh, &ids, pos, false);
        let rate = if self.auto.rate > 0 {
            self.auto.rate
        } else {
            48_000
        };
        let to = (f64::from(seconds) * f64::from(rate)).round() as u64;
        for (id, origin) in writers {
            self.start_pass(id, to, origin);
        }
    }

    /// The mode of `id` changed: a pass in progress ends (holding its last value).
    pub(super) fn auto_mode_changed(&mut self, sh: &Shared, id: ParamId) {
        if self.auto.passes.contains_key(&id) {
            let (pos, _) = self.position_now();
            self.end_passes(sh, &[id], pos, false);
        }
        self.auto.latched.remove(&id);
    }

    /// Put back the lanes of the last pass; returns how many lanes changed.
    pub(super) fn auto_undo(&mut self, sh: &Shared) -> usize {
        let paths = std::mem::take(&mut self.auto.last_pass);
        let mut n = 0;
        for p in &paths {
            if let Some(slot) = self.auto.lanes.get_mut(p)
                && slot.lane.undo()
            {
                slot.refresh();
                n += 1;
            }
        }
        self.auto.lanes.retain(|_, s| !s.lane.is_empty());
        if n > 0 {
            self.auto.lanes_changed = true;
            self.mark_dirty(&sh.dirty);
            self.refresh_playback();
        }
        n
    }
}

/// `a - b` in dB where either may be -inf (an offset from or to a closed fader is 0).
fn finite_diff(a: f32, b: f32) -> f32 {
    if a.is_finite() && b.is_finite() {
        a - b
    } else {
        0.0
    }
}

#[cfg(test)]
#[path = "automation_tests.rs"]
mod tests;
