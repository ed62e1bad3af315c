//! Automation playback on the audio thread: a [`Playback`] with the running state of each of
//! its lanes (`PlaySet`, allocated on the control side), read at transport positions only.
//!
//! # When a lane is read
//! Each lane has its own next *key frame*: the next multiple of [`LANE_GRID`] while its curve
//! moves, its next breakpoint, and the end of a glide it started. The engine splits its
//! blocks at the earliest key frame of all lanes and reads the lanes due there. Key frames
//! depend on nothing but the lanes and the transport position (a locate and a loop wrap
//! re-read every lane where the transport is; a new set starts its new lanes there), so the
//! values a run uses do not depend on its block size or on where its periods fall.
//!
//! # What a reading does
//! - Gains and pans (`per_sample`) follow a moving segment with straight per-sample ramps
//!   from key frame to key frame (`Move::Ramp`). A segment shorter than the gain glide
//!   (`GAIN_GLIDE_MS`) is a step: at the point that ends it the parameter is set
//!   (`Move::Set`) and glides there with its own smoothing, starting at that frame; ramps
//!   wait until the glide is over.
//! - Every other parameter is set to the lane's value at the key frame (when it changed); its
//!   own glides and gates smooth the steps.
//! - A re-read sets the parameter to the lane's value with its own smoothing (gains: no ramps
//!   until that glide is over), except for a lane new in its set with `glide_in > 0` while
//!   the transport plays: that one moves from `glide_from` to the lane over `glide_in`
//!   frames, in the lane's interpolation domain. Lanes carried over from the previous set are
//!   not re-read: they go on from where their parameters are.
//! - A stopped transport reads nothing but re-reads (the values hold).

use crate::automation::lane::value_in;
use crate::automation::{Interp, PlayLane, Playback};
use crate::params::{Addr, Key};

/// Frames between readings of a moving lane (in transport frames: key frames are multiples).
pub const LANE_GRID: u64 = 32;

/// How a reading moves its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Set it now; its own glide (or gate, or filter smoothing) takes it there.
    Set,
    /// A straight per-sample ramp that reaches the value after this many frames.
    Ramp(u32),
}

/// True for the parameters whose lanes are followed per sample (the gains a strip glides
/// through `SmoothedGain`: trim, fader, pan, send levels).
pub(crate) fn per_sample(key: Key) -> bool {
    matches!(
        key,
        Key::TrimDb | Key::Pan | Key::FaderDb | Key::SendLevel(_)
    )
}

fn grid_after(p: u64) -> u64 {
    (p / LANE_GRID + 1) * LANE_GRID
}

/// The running state of one lane.
#[derive(Debug, Clone)]
struct LaneRt {
    per_sample: bool,
    /// The value last set (non-per-sample lanes set only changes).
    last: Option<f32>,
    /// No ramps before this frame (a step's or a re-read's glide is running).
    hold_until: u64,
    /// A glide-in in progress: from, to (transport frames).
    glide: Option<(u64, u64)>,
    /// New in its set: `glide_in` applies at the first re-read.
    fresh: bool,
    /// This reading carries the lane over from the previous set.
    carried: bool,
    /// This lane's next key frame.
    next: u64,
}

/// A [`Playback`] as the engine plays it. Built (allocating) on the control side.
#[derive(Debug, Clone)]
pub(crate) struct PlaySet {
    play: Box<Playback>,
    rt: Vec<LaneRt>,
    next_key: u64,
    /// The transport moved: every lane is re-read at the next reading.
    reread: bool,
    /// Just swapped in: new lanes start, the others carry on from where their parameter is.
    start: bool,
}

impl PlaySet {
    /// The set for `play`; `is_new` says which lanes were not playing before (those glide in).
    pub fn new(play: Box<Playback>, is_new: impl Fn(&PlayLane) -> bool) -> Box<Self> {
        let rt = play
            .lanes
            .iter()
            .map(|l| LaneRt {
                per_sample: per_sample(l.addr.key),
                last: None,
                hold_until: 0,
                glide: None,
                fresh: is_new(l),
                carried: false,
                next: 0,
            })
            .collect();
        Box::new(PlaySet {
            play,
            rt,
            next_key: 0,
            reread: false,
            start: true,
        })
    }

    /// The lanes, back as the box they came in.
    pub fn into_playback(self) -> Box<Playback> {
        self.play
    }

    pub fn playback(&self) -> &Playback {
        &self.play
    }

    pub fn lanes(&self) -> &[PlayLane] {
        &self.play.lanes
    }

    pub fn is_empty(&self) -> bool {
        self.play.lanes.is_empty()
    }

    /// The transport moved: read every lane again at the next block.
    pub fn relocate(&mut self) {
        self.reread = true;
    }

    /// True when lanes must be read at transport position `pos`.
    #[inline]
    pub fn due(&self, pos: u64, playing: bool) -> bool {
        self.reread || self.start || (playing && pos == self.next_key)
    }

    /// The earliest key frame of all lanes (after a reading).
    #[inline]
    pub fn next_key(&self) -> u64 {
        self.next_key
    }

    /// Forget the glides re-reads started (after the engine snapped every parameter to its
    /// target, there is nothing to wait for).
    pub fn release_holds(&mut self) {
        self.rt.iter_mut().for_each(|r| r.hold_until = 0);
        self.next_key = self.rt.iter().map(|r| r.next).min().unwrap_or(u64::MAX);
    }

    /// Read the lanes due at `pos`, moving their parameters through `apply`; `glide` is the
    /// gain glide in frames. After a locate every lane is re-read (its parameter glides to
    /// it); in a set just swapped in, lanes new to the set start so (or glide in), while the
    /// lanes the previous set played too carry on from where their parameters are (no pause
    /// in a ride because another control was touched). Real-time safe.
    pub fn read(
        &mut self,
        pos: u64,
        playing: bool,
        glide: u64,
        apply: &mut impl FnMut(Addr, f32, Move),
    ) {
        let all = std::mem::take(&mut self.reread);
        let start = std::mem::take(&mut self.start);
        let mut next = u64::MAX;
        for (lane, rt) in self.play.lanes.iter().zip(&mut self.rt) {
            if all || (start && (rt.fresh || !playing)) {
                rt.next = rt.read(lane, pos, true, playing, glide, apply);
            } else if start || (playing && rt.next == pos) {
                rt.carried = start;
                rt.next = rt.read(lane, pos, false, playing, glide, apply);
            }
            next = next.min(rt.next);
        }
        self.next_key = next;
    }
}

/// True when the segment ending at point `i` moves and is followed continuously: the lane
/// interpolates, the values differ, and (for per-sample lanes) it is at least `glide` long.
fn moving(lane: &PlayLane, i: usize, glide: u64) -> bool {
    let p = &lane.points;
    i > 0
        && i < p.len()
        && lane.interp != Interp::Step
        && p[i].value != p[i - 1].value
        && p[i].frame - p[i - 1].frame >= glide.max(1)
}

/// True when point `k` ends a step (a held lane, or a segment shorter than `glide`).
fn ends_step(lane: &PlayLane, k: usize, glide: u64) -> bool {
    let p = &lane.points;
    k > 0 && (lane.interp == Interp::Step || p[k].frame - p[k - 1].frame < glide)
}

impl LaneRt {
    fn read(
        &mut self,
        lane: &PlayLane,
        p: u64,
        reread: bool,
        playing: bool,
        glide: u64,
        apply: &mut impl FnMut(Addr, f32, Move),
    ) -> u64 {
        let pts = &lane.points[..];
        let fresh = std::mem::replace(&mut self.fresh, false);
        let carried = std::mem::replace(&mut self.carried, false);
        if pts.is_empty() {
            return u64::MAX;
        }
        let interp = lane.interp;
        let at = |f: u64| value_in(interp, pts, f).unwrap_or(0.0);
        // The glide that per-sample lanes take as steps (0: every moving segment is ramped).
        let step_len = if self.per_sample { glide } else { 0 };
        if reread {
            self.glide = None;
            if fresh && lane.glide_in > 0 && playing {
                self.glide = Some((p, p + u64::from(lane.glide_in)));
            }
            if self.glide.is_none() {
                let i = pts.partition_point(|q| q.frame <= p);
                // Inside a step's short segment the value before the step holds.
                let v = if i == 0 || moving(lane, i, step_len) {
                    at(p)
                } else {
                    pts[i - 1].value
                };
                apply(lane.addr, v, Move::Set);
                self.last = Some(v);
                self.hold_until = if self.per_sample { p + glide } else { 0 };
                return self.next_after(lane, p, step_len);
            }
        }
        if let Some((s, e)) = self.glide {
            if p < e {
                let toward = |f: u64| {
                    let t = (f - s) as f64 / (e - s) as f64;
                    interp.mix(lane.glide_from, at(f), t)
                };
                let q = grid_after(p).min(e);
                if self.per_sample {
                    apply(lane.addr, toward(q), Move::Ramp((q - p) as u32));
                } else {
                    let v = toward(p);
                    if self.last != Some(v) {
                        apply(lane.addr, v, Move::Set);
                        self.last = Some(v);
                    }
                }
                return q;
            }
            self.glide = None;
        }
        if self.per_sample {
            let i = pts.partition_point(|q| q.frame <= p);
            let step_here = i > 0 && pts[i - 1].frame == p && ends_step(lane, i - 1, glide);
            if step_here || (carried && !moving(lane, i, glide)) {
                // A step (or a lane carried into a new set, where it holds: its value may be
                // new) glides there with the parameter's own smoothing.
                let v = if i == 0 {
                    pts[0].value
                } else {
                    pts[i - 1].value
                };
                apply(lane.addr, v, Move::Set);
                self.hold_until = p + glide;
            } else if p >= self.hold_until && moving(lane, i, glide) {
                let q = grid_after(p).min(pts[i].frame);
                apply(lane.addr, at(q), Move::Ramp((q - p) as u32));
            }
        } else {
            let v = at(p);
            if self.last != Some(v) {
                apply(lane.addr, v, Move::Set);
                self.last = Some(v);
            }
        }
        self.next_after(lane, p, step_len)
    }

    /// This lane's first key frame after `p`.
    fn next_after(&self, lane: &PlayLane, p: u64, step_len: u64) -> u64 {
        let pts = &lane.points;
        let i = pts.partition_point(|q| q.frame <= p);
        let mut n = pts.get(i).map_or(u64::MAX, |b| b.frame);
        if moving(lane, i, step_len) {
            n = n.min(grid_after(p));
        }
        if self.hold_until > p {
            n = n.min(self.hold_until);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Target;

    fn lane(key: Key, interp: Interp, pts: &[(u64, f32)]) -> PlayLane {
        let addr = Addr {
            target: Target::Channel(0),
            key,
        };
        PlayLane::from_pairs(addr, interp, pts)
    }

    /// Every reading (key, frame, value, move) of `set` over `0..end` with blocks of `block`.
    fn readings(set: &mut PlaySet, end: u64, block: u64) -> Vec<(Key, u64, f32, Move)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < end {
            let mut n = block.min(end - pos);
            if set.due(pos, true) {
                set.read(pos, true, 480, &mut |a, v, m| out.push((a.key, pos, v, m)));
            }
            n = n.min(set.next_key() - pos);
            pos += n;
        }
        out
    }

    #[test]
    fn readings_do_not_depend_on_the_block_size() {
        let play = Playback {
            lanes: vec![
                lane(
                    Key::FaderDb,
                    Interp::Linear,
                    &[(100, -20.0), (1000, 0.0), (1001, -6.0), (5000, -6.0)],
                ),
                lane(Key::EqFreq(0), Interp::Log, &[(0, 100.0), (3000, 1000.0)]),
                lane(Key::Mute, Interp::Step, &[(0, 0.0), (777, 1.0)]),
            ],
        };
        let a = readings(
            &mut PlaySet::new(Box::new(play.clone()), |_| false),
            6000,
            64,
        );
        let b = readings(&mut PlaySet::new(Box::new(play), |_| false), 6000, 4096);
        assert_eq!(a, b);
        // The fader ramps from grid point to grid point up to its point at 1000, steps at
        // 1001 (a 1-frame segment), then holds.
        let fader: Vec<_> = a
            .iter()
            .filter(|r| r.0 == Key::FaderDb && r.1 >= 960 && r.1 <= 5000)
            .collect();
        assert_eq!(
            fader.iter().map(|r| (r.1, r.3)).collect::<Vec<_>>(),
            [
                (960, Move::Ramp(32)),
                (992, Move::Ramp(8)),
                (1001, Move::Set)
            ],
        );
        assert_eq!(fader[2].2, -6.0);
        // The ramp's targets are the lane's values at the grid points (-20 dB at 100 to
        // 0 dB at 1000: 1/45 dB per frame).
        assert!((fader[0].2 - (-20.0 + 892.0 / 45.0)).abs() < 1e-4);
        // The mute is set at 0 and at its point, nowhere else.
        let mutes: Vec<_> = a.iter().filter(|r| r.0 == Key::Mute).collect();
        assert_eq!(
            mutes,
            [
                &(Key::Mute, 0, 0.0, Move::Set),
                &(Key::Mute, 777, 1.0, Move::Set)
            ]
        );
    }
}
