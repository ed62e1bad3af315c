//! One automation lane: time-stamped points of one parameter, read with the interpolation its
//! taper calls for, written pass by pass (with guard points, so the curve outside a pass is
//! untouched, and one level of undo), and thinned after a pass.

use serde::{Deserialize, Serialize};

use crate::params::{ParamSpec, Taper};

/// Frames between a written range and the guard point that pins the old curve next to it
/// (about 1.3 ms at 48 kHz: the parameter's own smoothing covers the step).
pub const GUARD_FRAMES: u64 = 64;

/// Gains below this read as -inf, and -inf is this for interpolation (dB).
const GAIN_FLOOR_DB: f32 = -144.0;

/// One breakpoint: the parameter's value (in its own unit) at an engine frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub frame: u64,
    /// May be `-inf` (a closed fader); stored as the string `"-inf"` in JSON.
    #[serde(with = "crate::state::jnum")]
    pub value: f32,
}

/// How values between two points are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interp {
    /// Straight line in the value (pan, mix, dB gains: a fade is linear in dB).
    Linear,
    /// Straight line in the logarithm of the value (frequencies, times, ratios).
    Log,
    /// Hold each value until the next point (mutes, EQ types, anything discrete).
    Step,
}

impl Interp {
    /// The interpolation the parameter's taper calls for.
    pub fn for_spec(spec: &ParamSpec) -> Interp {
        match spec.taper {
            Taper::Linear | Taper::Fader => Interp::Linear,
            Taper::Log if spec.min > 0.0 => Interp::Log,
            Taper::Log => Interp::Linear,
            Taper::Stepped => Interp::Step,
        }
    }

    /// A value in the domain the lane is linear in.
    fn value_to_domain(self, v: f32) -> f64 {
        match self {
            Interp::Log => f64::from(v.max(f32::MIN_POSITIVE)).ln(),
            Interp::Linear | Interp::Step => f64::from(v.max(GAIN_FLOOR_DB)),
        }
    }

    fn domain_to_value(self, d: f64) -> f32 {
        match self {
            Interp::Log => d.exp() as f32,
            Interp::Linear | Interp::Step => d as f32,
        }
    }
}

impl Interp {
    /// The value a fraction `t` (0..=1) of the way from `a` to `b`, in this interpolation's
    /// domain (dB-linear, logarithmic); a step holds `a` until `t` reaches 1.
    pub fn mix(self, a: f32, b: f32, t: f64) -> f32 {
        if self == Interp::Step {
            return if t >= 1.0 { b } else { a };
        }
        let (da, db) = (self.value_to_domain(a), self.value_to_domain(b));
        let v = self.domain_to_value(da + (db - da) * t);
        if self == Interp::Linear && v <= GAIN_FLOOR_DB && a.min(b) <= GAIN_FLOOR_DB {
            // A fade to or from -inf ends closed, not at the floor.
            return a.min(b);
        }
        v
    }
}

/// Order `points` by frame, keeping one point per frame: of several on one frame, the one
/// that came last in `points` (the sort is stable).
pub fn one_per_frame(points: &mut Vec<Point>) {
    points.sort_by_key(|p| p.frame);
    points.reverse();
    points.dedup_by_key(|p| p.frame);
    points.reverse();
}

/// The value at `frame` of the points `p` (ordered by frame) read with `interp`: the first
/// point's value before it, the last one's after it, interpolated in between; None without
/// points. [`Lane::value_at`] for points held elsewhere (the engine's shared slices).
pub fn value_in(interp: Interp, p: &[Point], frame: u64) -> Option<f32> {
    let first = p.first()?;
    let i = p.partition_point(|q| q.frame <= frame);
    if i == 0 {
        return Some(first.value);
    }
    let a = p[i - 1];
    let Some(&b) = p.get(i) else {
        return Some(a.value);
    };
    if interp == Interp::Step || b.frame <= a.frame {
        return Some(a.value);
    }
    let t = (frame - a.frame) as f64 / (b.frame - a.frame) as f64;
    Some(interp.mix(a.value, b.value, t))
}

/// The points of one parameter, ordered by frame (at most one per frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    pub interp: Interp,
    pub points: Vec<Point>,
    /// The points before the last written pass ([`Lane::undo`]).
    #[serde(skip)]
    before_pass: Option<Vec<Point>>,
}

impl Lane {
    pub fn new(interp: Interp) -> Lane {
        Lane {
            interp,
            points: Vec::new(),
            before_pass: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The lane's value at `frame`: the first point's value before it, the last one's after
    /// it, interpolated in between; None for an empty lane.
    pub fn value_at(&self, frame: u64) -> Option<f32> {
        value_in(self.interp, &self.points, frame)
    }

    /// Replace the range `start..=end` with `written` (points inside the range, any order),
    /// pinning the old curve at `start - GUARD_FRAMES` and `end + GUARD_FRAMES` so that
    /// nothing outside the range changes. The lane as it was is kept for [`Lane::undo`].
    pub fn write_pass(&mut self, start: u64, end: u64, written: &[Point]) {
        let (start, end) = (start.min(end), start.max(end));
        self.before_pass = Some(self.points.clone());
        let lead = start.checked_sub(GUARD_FRAMES);
        let trail = end + GUARD_FRAMES;
        let pin_lead = lead.and_then(|f| self.value_at(f).map(|v| Point { frame: f, value: v }));
        let pin_trail = self.value_at(trail).map(|v| Point {
            frame: trail,
            value: v,
        });
        let lo = lead.map_or(start, |f| f.min(start));
        self.points.retain(|p| p.frame < lo || p.frame > trail);
        let mut add: Vec<Point> = written
            .iter()
            .copied()
            .filter(|p| (start..=end).contains(&p.frame) && !p.value.is_nan())
            .collect();
        add.extend(pin_lead);
        // Past the lane's old end there is nothing to protect: the pass's last value holds.
        if self.points.iter().any(|p| p.frame > trail) {
            add.extend(pin_trail);
        }
        self.points.extend(add);
        one_per_frame(&mut self.points);
    }

    /// Put the lane back as it was before the last [`Lane::write_pass`]; false when there
    /// is nothing to undo.
    pub fn undo(&mut self) -> bool {
        match self.before_pass.take() {
            Some(p) => {
                self.points = p;
                true
            }
            None => false,
        }
    }

    /// Drop points the curve does not need: afterwards the lane differs from the one before
    /// by at most `tolerance` (in the lane's domain: dB for gains, natural log for
    /// frequencies, the unit otherwise) at every original point. Step lanes only lose points
    /// that repeat the previous value. Ramer-Douglas-Peucker with vertical distance.
    pub fn thin(&mut self, tolerance: f64) {
        let n = self.points.len();
        if n < 3 {
            return;
        }
        if self.interp == Interp::Step {
            self.points
                .dedup_by(|b, a| a.value.to_bits() == b.value.to_bits());
            return;
        }
        let d: Vec<f64> = self
            .points
            .iter()
            .map(|p| self.interp.value_to_domain(p.value))
            .collect();
        let mut keep = vec![false; n];
        keep[0] = true;
        keep[n - 1] = true;
        let mut stack = vec![(0usize, n - 1)];
        while let Some((a, b)) = stack.pop() {
            if b <= a + 1 {
                continue;
            }
            let (fa, fb) = (self.points[a].frame as f64, self.points[b].frame as f64);
            let mut worst = (0.0f64, a);
            for i in a + 1..b {
                let t = if fb > fa {
                    (self.points[i].frame as f64 - fa) / (fb - fa)
                } else {
                    0.0
                };
                let e = (d[a] + (d[b] - d[a]) * t - d[i]).abs();
                if e > worst.0 {
                    worst = (e, i);
                }
            }
            if worst.0 > tolerance {
                keep[worst.1] = true;
                stack.push((a, worst.1));
                stack.push((worst.1, b));
            }
        }
        let mut k = keep.iter();
        self.points.retain(|_| *k.next().unwrap_or(&true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(interp: Interp, pts: &[(u64, f32)]) -> Lane {
        let mut l = Lane::new(interp);
        l.points = pts
            .iter()
            .map(|&(frame, value)| Point { frame, value })
            .collect();
        l
    }

    #[test]
    fn interpolation_follows_the_taper() {
        // A fade is linear in dB: half way from -20 to 0 dB is -10 dB.
        let g = lane(Interp::Linear, &[(1000, -20.0), (3000, 0.0)]);
        assert_eq!(g.value_at(2000), Some(-10.0));
        assert_eq!(g.value_at(0), Some(-20.0), "before the first point");
        assert_eq!(g.value_at(9000), Some(0.0), "after the last point");
        // Frequencies sweep logarithmically: half way from 100 Hz to 10 kHz is 1 kHz.
        let f = lane(Interp::Log, &[(0, 100.0), (1000, 10_000.0)]);
        let mid = f.value_at(500).unwrap();
        assert!((mid - 1000.0).abs() < 0.05, "{mid}");
        // A quarter of the way: 10^(2 + 0.5) = 316.2 Hz.
        assert!((f.value_at(250).unwrap() - 316.227_77).abs() < 0.02);
        // Toggles hold until the next point.
        let m = lane(Interp::Step, &[(0, 0.0), (100, 1.0)]);
        assert_eq!(m.value_at(99), Some(0.0));
        assert_eq!(m.value_at(100), Some(1.0));
        // A fade from -inf: closed at its start, -inf never leaks past the floor elsewhere.
        let z = lane(Interp::Linear, &[(0, f32::NEG_INFINITY), (1000, 0.0)]);
        assert_eq!(z.value_at(0), Some(f32::NEG_INFINITY));
        assert!((z.value_at(500).unwrap() - (-72.0)).abs() < 1e-3);
        assert_eq!(Lane::new(Interp::Linear).value_at(5), None);
    }

    #[test]
    fn the_taper_picks_the_interpolation() {
        use crate::params::spec;
        let by_key = |table: &'static [ParamSpec], k: &str| {
            table
                .iter()
                .find(|s| s.key == k)
                .unwrap_or_else(|| panic!("no spec {k}"))
        };
        assert_eq!(
            Interp::for_spec(by_key(spec::STRIP, "fader_db")),
            Interp::Linear
        );
        assert_eq!(Interp::for_spec(by_key(spec::EQ_BAND, "freq")), Interp::Log);
        assert_eq!(
            Interp::for_spec(by_key(spec::EQ_BAND, "type")),
            Interp::Step
        );
        assert_eq!(Interp::for_spec(by_key(spec::STRIP, "mute")), Interp::Step);
        assert_eq!(Interp::for_spec(by_key(spec::STRIP, "pan")), Interp::Linear);
    }

    #[test]
    fn a_pass_leaves_the_curve_outside_its_range_untouched_and_can_be_undone() {
        // An old ramp from -30 dB to 0 dB over 0..10000.
        let mut l = lane(Interp::Linear, &[(0, -30.0), (10_000, 0.0)]);
        let old = l.clone();
        let written: Vec<Point> = (4000..=6000)
            .step_by(100)
            .map(|f| Point {
                frame: f,
                value: -6.0,
            })
            .collect();
        l.write_pass(4000, 6000, &written);
        // Outside [start - guard, end + guard] the lane reads exactly as before.
        for f in (0..4000 - GUARD_FRAMES)
            .chain(6000 + GUARD_FRAMES..12_000)
            .step_by(37)
        {
            let (a, b) = (l.value_at(f).unwrap(), old.value_at(f).unwrap());
            assert!((a - b).abs() < 1e-4, "frame {f}: {a} vs {b}");
        }
        // Inside, the pass.
        for f in (4000..=6000).step_by(50) {
            assert_eq!(l.value_at(f), Some(-6.0), "frame {f}");
        }
        assert!(l.undo());
        assert_eq!(l.points, old.points);
        assert!(!l.undo(), "one level");
    }

    #[test]
    fn a_pass_past_the_end_holds_its_last_value() {
        let mut l = lane(Interp::Linear, &[(0, -10.0)]);
        l.write_pass(
            1000,
            2000,
            &[
                Point {
                    frame: 1000,
                    value: -10.0,
                },
                Point {
                    frame: 2000,
                    value: -3.0,
                },
            ],
        );
        assert_eq!(l.value_at(500), Some(-10.0));
        assert_eq!(l.value_at(5000), Some(-3.0), "no guard drags it back");
    }

    #[test]
    fn thinning_a_slow_ride_keeps_the_curve_with_far_fewer_points() {
        // A 10 s ride sampled at 100 Hz (what a writing pass records): a slow ±6 dB swell
        // at 0.2 Hz on a -10 dB fader, then a 2 s fade out to -40 dB.
        let rate = 48_000u64;
        let step = rate / 100;
        let mut ride = Vec::new();
        for k in 0..1000u64 {
            let t = k as f64 / 100.0;
            let db = if t < 8.0 {
                -10.0 + 6.0 * (2.0 * std::f64::consts::PI * 0.2 * t).sin()
            } else {
                -10.0 - 15.0 * (t - 8.0)
            };
            ride.push(Point {
                frame: k * step,
                value: db as f32,
            });
        }
        let mut l = Lane::new(Interp::Linear);
        l.points = ride.clone();
        let tol = 0.05; // dB
        l.thin(tol);
        eprintln!("thinned {} points to {}", ride.len(), l.points.len());
        assert!(
            l.points.len() * 5 <= ride.len(),
            "{} points left of {}",
            l.points.len(),
            ride.len()
        );
        for p in &ride {
            let v = l.value_at(p.frame).unwrap();
            assert!(
                f64::from((v - p.value).abs()) <= tol + 1e-6,
                "frame {}: {v} vs {}",
                p.frame,
                p.value
            );
        }
        // End points are kept exactly.
        assert_eq!(l.points.first(), ride.first());
        assert_eq!(l.points.last(), ride.last());
    }

    #[test]
    fn thinning_a_step_lane_only_drops_repeats() {
        let mut l = lane(
            Interp::Step,
            &[(0, 0.0), (10, 0.0), (20, 1.0), (30, 1.0), (40, 0.0)],
        );
        l.thin(0.5);
        let frames: Vec<u64> = l.points.iter().map(|p| p.frame).collect();
        assert_eq!(frames, [0, 20, 40]);
    }
}
