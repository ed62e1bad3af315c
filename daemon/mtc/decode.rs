//! MIDI Time Code as bytes and times: frame rates, drop-frame counting, full-frame SysEx and
//! the assembly of quarter frames. Pure: no clock, no I/O.
//!
//! # Messages
//! - Full frame (a locate): `F0 7F <dev> 01 01 hh mm ss ff F7`; the rate is in bits 5-6 of
//!   `hh` (0: 24, 1: 25, 2: 29.97 drop-frame, 3: 30 fps), the hours in bits 0-4.
//! - Quarter frame (running): `F1 0nnn dddd`, piece `nnn` 0..7 carrying one nibble: frames
//!   low/high, seconds low/high, minutes low/high, hours low, hours high + rate. Forward, the
//!   pieces come 0, 1, ..., 7, one every quarter of a frame; the time they spell is the
//!   frame in which piece 0 was sent, so a cycle spans two frames. Backward they come 7, 6,
//!   ..., 0.
//!
//! # Drop frame
//! 29.97 fps runs at 30000/1001 frames per second and labels frames as if there were 30 a
//! second; to keep the labels near the clock, frame numbers 0 and 1 are skipped at the
//! start of every minute except minutes 0, 10, 20, ... So 00:00:59;29 is followed by
//! 00:01:00;02, and a label's frame count is `30 × seconds + frames − 2 × (minutes −
//! minutes / 10)`, counting minutes from zero hour.

use std::fmt;

/// The four MTC frame rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Fps24,
    Fps25,
    /// 29.97 fps (30000/1001) drop-frame.
    Df2997,
    Fps30,
}

impl Rate {
    /// The rate from its two-bit MTC code.
    pub fn from_code(code: u8) -> Rate {
        match code & 3 {
            0 => Rate::Fps24,
            1 => Rate::Fps25,
            2 => Rate::Df2997,
            _ => Rate::Fps30,
        }
    }

    /// Frames per second of real time.
    pub fn fps(self) -> f64 {
        match self {
            Rate::Fps24 => 24.0,
            Rate::Fps25 => 25.0,
            Rate::Df2997 => 30000.0 / 1001.0,
            Rate::Fps30 => 30.0,
        }
    }

    /// Frame labels per second (30 for drop-frame).
    pub fn labels(self) -> u8 {
        match self {
            Rate::Fps24 => 24,
            Rate::Fps25 => 25,
            Rate::Df2997 | Rate::Fps30 => 30,
        }
    }

    /// One frame's duration in seconds.
    pub fn frame_s(self) -> f64 {
        1.0 / self.fps()
    }
}

/// A time code label `hh:mm:ss:ff` at a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timecode {
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
    pub frames: u8,
    pub rate: Rate,
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.rate == Rate::Df2997 { ';' } else { ':' };
        write!(
            f,
            "{:02}:{:02}:{:02}{sep}{:02}",
            self.hours, self.minutes, self.seconds, self.frames
        )
    }
}

impl Timecode {
    /// A label, if it exists at its rate (fields in range; no dropped drop-frame label).
    pub fn new(hours: u8, minutes: u8, seconds: u8, frames: u8, rate: Rate) -> Option<Timecode> {
        let tc = Timecode {
            hours,
            minutes,
            seconds,
            frames,
            rate,
        };
        let dropped =
            rate == Rate::Df2997 && seconds == 0 && frames < 2 && !minutes.is_multiple_of(10);
        (hours < 24 && minutes < 60 && seconds < 60 && frames < rate.labels() && !dropped)
            .then_some(tc)
    }

    /// Frames since 00:00:00:00 (drop-frame labels skipped, see the module doc).
    pub fn frame_count(&self) -> u64 {
        let minutes = u64::from(self.hours) * 60 + u64::from(self.minutes);
        let labels = (minutes * 60 + u64::from(self.seconds)) * u64::from(self.rate.labels())
            + u64::from(self.frames);
        match self.rate {
            Rate::Df2997 => labels - 2 * (minutes - minutes / 10),
            _ => labels,
        }
    }

    /// Seconds since 00:00:00:00 at the rate's real speed.
    pub fn seconds(&self) -> f64 {
        self.frame_count() as f64 / self.rate.fps()
    }

    /// The label of the `n`-th frame (wrapping at 24 hours).
    pub fn from_frame_count(n: u64, rate: Rate) -> Timecode {
        let labels = u64::from(rate.labels());
        let n = match rate {
            Rate::Df2997 => {
                // 17982 frames per 10 minutes; 1798 per dropping minute.
                let (tens, rest) = (n / 17982, n % 17982);
                let skipped = if rest < 1800 { 0 } else { (rest - 2) / 1798 };
                n + 18 * tens + 2 * skipped
            }
            _ => n,
        };
        let per_day = 24 * 3600 * labels;
        let n = n % per_day;
        Timecode {
            hours: (n / (3600 * labels)) as u8,
            minutes: (n / (60 * labels) % 60) as u8,
            seconds: (n / labels % 60) as u8,
            frames: (n % labels) as u8,
            rate,
        }
    }

    /// The label `n` frames later (or earlier, negative; clamped at zero).
    pub fn add_frames(&self, n: i64) -> Timecode {
        let f = (self.frame_count() as i64 + n).max(0) as u64;
        Timecode::from_frame_count(f, self.rate)
    }
}

/// A full-frame message's time, from the SysEx payload (the bytes between `F0` and `F7`);
/// `None` for other SysEx and for labels that do not exist.
pub fn full_frame(payload: &[u8]) -> Option<Timecode> {
    match payload {
        [0x7F, _dev, 0x01, 0x01, hh, mm, ss, ff] => Timecode::new(
            hh & 0x1F,
            *mm & 0x3F,
            *ss & 0x3F,
            *ff & 0x1F,
            Rate::from_code(hh >> 5),
        ),
        _ => None,
    }
}

/// The full-frame SysEx payload for a time (device id 0x7F: all devices).
pub fn full_frame_payload(tc: &Timecode) -> Vec<u8> {
    let code = match tc.rate {
        Rate::Fps24 => 0,
        Rate::Fps25 => 1,
        Rate::Df2997 => 2,
        Rate::Fps30 => 3,
    };
    vec![
        0x7F,
        0x7F,
        0x01,
        0x01,
        (code << 5) | tc.hours,
        tc.minutes,
        tc.seconds,
        tc.frames,
    ]
}

/// The eight quarter-frame data bytes (`0nnn dddd`, piece 0 first) spelling a time.
pub fn quarter_frames(tc: &Timecode) -> [u8; 8] {
    let code = full_frame_payload(tc)[4] >> 5;
    let nib = [
        tc.frames & 0x0F,
        tc.frames >> 4,
        tc.seconds & 0x0F,
        tc.seconds >> 4,
        tc.minutes & 0x0F,
        tc.minutes >> 4,
        tc.hours & 0x0F,
        (tc.hours >> 4) | (code << 1),
    ];
    let mut out = [0u8; 8];
    for (i, n) in nib.iter().enumerate() {
        out[i] = ((i as u8) << 4) | (n & 0x0F);
    }
    out
}

/// Which way the quarter frames run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A complete cycle of eight quarter frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// The time the pieces spell: the frame in which piece 0 was sent.
    pub time: Timecode,
    pub direction: Direction,
}

/// Assembles quarter frames into times.
#[derive(Debug, Clone, Default)]
pub struct QuarterFrames {
    nibbles: [u8; 8],
    /// Pieces received in order since the cycle began (bit n: piece n).
    have: u8,
    last: Option<u8>,
    direction: Option<Direction>,
}

impl QuarterFrames {
    /// One quarter-frame data byte. Returns the time when it completes a cycle: forward at
    /// piece 7, backward at piece 0, with all eight pieces received in order.
    pub fn push(&mut self, data: u8) -> Option<Cycle> {
        let piece = (data >> 4) & 7;
        let dir = match self.last {
            Some(l) if piece == (l + 1) % 8 => Some(Direction::Forward),
            Some(l) if piece == (l + 7) % 8 => Some(Direction::Backward),
            _ => None,
        };
        if dir.is_none() || (self.direction.is_some() && dir != self.direction) {
            // A jump or a turn: start over from this piece.
            self.have = 0;
        }
        self.direction = dir;
        self.last = Some(piece);
        self.nibbles[usize::from(piece)] = data & 0x0F;
        self.have |= 1 << piece;
        let end = match dir {
            Some(Direction::Forward) => piece == 7,
            Some(Direction::Backward) => piece == 0,
            None => false,
        };
        if !end {
            return None;
        }
        let full = self.have == 0xFF;
        self.have = 0;
        let n = &self.nibbles;
        let time = Timecode::new(
            (n[6] | (n[7] & 1) << 4) & 0x1F,
            n[4] | (n[5] & 3) << 4,
            n[2] | (n[3] & 3) << 4,
            n[0] | (n[1] & 1) << 4,
            Rate::from_code(n[7] >> 1),
        );
        match (full, time, dir) {
            (true, Some(time), Some(direction)) => Some(Cycle { time, direction }),
            _ => None,
        }
    }

    /// The direction of the last pieces, if they ran in order.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// Forget the pieces so far.
    pub fn reset(&mut self) {
        *self = QuarterFrames::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(h: u8, m: u8, s: u8, f: u8, r: Rate) -> Timecode {
        Timecode::new(h, m, s, f, r).unwrap_or_else(|| panic!("{h}:{m}:{s}:{f} at {r:?}"))
    }

    /// Drop-frame labels against frame counts worked by hand: 30 labels a second, less two
    /// at each minute not divisible by ten (1798 frames in such a minute, 17982 per ten).
    #[test]
    fn drop_frame_labels_count_as_worked_by_hand() {
        let df = Rate::Df2997;
        let table: [((u8, u8, u8, u8), u64); 10] = [
            ((0, 0, 0, 0), 0),
            ((0, 0, 59, 29), 1799),
            ((0, 1, 0, 2), 1800),
            ((0, 1, 59, 29), 1800 + 1798 - 1),
            ((0, 2, 0, 2), 1800 + 1798),
            ((0, 9, 59, 29), 17981),
            ((0, 10, 0, 0), 17982),
            ((0, 10, 0, 1), 17983),
            ((0, 11, 0, 2), 17982 + 1800),
            ((1, 0, 0, 0), 6 * 17982),
        ];
        for ((h, m, s, f), n) in table {
            let t = tc(h, m, s, f, df);
            assert_eq!(t.frame_count(), n, "{t}");
            assert_eq!(Timecode::from_frame_count(n, df), t, "frame {n}");
        }
        // 00:01:00;02 is frame 1800, 1800 / 29.97 s (30000/1001 fps: 60.06 s exactly).
        let t = tc(0, 1, 0, 2, df);
        assert!((t.seconds() - 1800.0 * 1001.0 / 30000.0).abs() < 1e-9);
        assert!((t.seconds() - 1800.0 / 29.97).abs() < 1e-4);
        // One hour of drop-frame labels is 3.6 ms short of an hour of real time.
        let h = tc(1, 0, 0, 0, df).seconds();
        assert!((h - 107892.0 * 1.001 / 30.0).abs() < 1e-9);
        assert!((h - 3600.0).abs() < 0.004, "{h}");
        // The dropped labels do not exist; minute 10's do.
        assert_eq!(Timecode::new(0, 1, 0, 0, df), None);
        assert_eq!(Timecode::new(0, 1, 0, 1, df), None);
        assert!(Timecode::new(0, 20, 0, 0, df).is_some());
        // Every frame of 20 minutes round-trips, and the labels step by one frame.
        for n in 0..2 * 17982 + 5 {
            let t = Timecode::from_frame_count(n, df);
            assert_eq!(t.frame_count(), n, "{t}");
            assert!(Timecode::new(t.hours, t.minutes, t.seconds, t.frames, df).is_some());
        }
    }

    #[test]
    fn non_drop_rates_count_plainly() {
        let table = [
            (Rate::Fps24, (0, 0, 10, 0), 240, 10.0),
            (Rate::Fps25, (0, 0, 10, 0), 250, 10.0),
            (Rate::Fps25, (0, 0, 20, 12), 512, 20.48),
            (
                Rate::Fps30,
                (1, 2, 3, 4),
                (3723 * 30 + 4),
                3723.0 + 4.0 / 30.0,
            ),
            (
                Rate::Fps24,
                (23, 59, 59, 23),
                86400 * 24 - 1,
                86400.0 - 1.0 / 24.0,
            ),
        ];
        for (r, (h, m, s, f), n, secs) in table {
            let t = tc(h, m, s, f, r);
            assert_eq!(t.frame_count(), n, "{t}");
            assert!((t.seconds() - secs).abs() < 1e-9, "{t}: {}", t.seconds());
            assert_eq!(Timecode::from_frame_count(n, r), t);
        }
        assert_eq!(Timecode::new(0, 0, 0, 25, Rate::Fps25), None);
        assert_eq!(Timecode::new(24, 0, 0, 0, Rate::Fps25), None);
        assert_eq!(
            tc(0, 0, 59, 24, Rate::Fps25).add_frames(2),
            tc(0, 1, 0, 1, Rate::Fps25)
        );
    }

    #[test]
    fn full_frames_decode_with_their_rate() {
        // 00:00:10:00 at 25 fps: hh = 0b0_01_00000.
        assert_eq!(
            full_frame(&[0x7F, 0x7F, 0x01, 0x01, 0x20, 0, 10, 0]),
            Some(tc(0, 0, 10, 0, Rate::Fps25))
        );
        // 01:02:03;04 drop-frame (code 2), device 0x10.
        assert_eq!(
            full_frame(&[0x7F, 0x10, 0x01, 0x01, 0x41, 2, 3, 4]),
            Some(tc(1, 2, 3, 4, Rate::Df2997))
        );
        // 30 fps (code 3) at hour 23.
        assert_eq!(
            full_frame(&[0x7F, 0x7F, 0x01, 0x01, 0x60 | 23, 59, 59, 29]),
            Some(tc(23, 59, 59, 29, Rate::Fps30))
        );
        // Other SysEx, user bits (01 02), short, and a label that does not exist.
        assert_eq!(full_frame(&[0x7F, 0x7F, 0x01, 0x02, 0, 0, 0, 0]), None);
        assert_eq!(full_frame(&[0x7E, 0x7F, 0x01, 0x01, 0, 0, 0, 0]), None);
        assert_eq!(full_frame(&[0x7F, 0x7F, 0x01, 0x01, 0, 0]), None);
        assert_eq!(full_frame(&[0x7F, 0x7F, 0x01, 0x01, 0x20, 0, 0, 25]), None);
        for t in [
            tc(0, 0, 10, 0, Rate::Fps25),
            tc(13, 14, 15, 16, Rate::Df2997),
        ] {
            assert_eq!(full_frame(&full_frame_payload(&t)), Some(t));
        }
    }

    #[test]
    fn quarter_frames_assemble_both_ways() {
        let t = tc(0, 0, 20, 0, Rate::Fps25);
        // 00:00:20:00 @25: frames 0/0, seconds 4/1 (20 = 0x14), rate 1 → piece 7 = 0x72.
        assert_eq!(
            quarter_frames(&t),
            [0x00, 0x10, 0x24, 0x31, 0x40, 0x50, 0x60, 0x72]
        );
        let mut q = QuarterFrames::default();
        // Starting mid-cycle gives nothing until a whole cycle was seen.
        for d in &quarter_frames(&t)[3..] {
            assert_eq!(q.push(*d), None);
        }
        let next = t.add_frames(2);
        let qf = quarter_frames(&next);
        for d in &qf[..7] {
            assert_eq!(q.push(*d), None);
        }
        assert_eq!(
            q.push(qf[7]),
            Some(Cycle {
                time: next,
                direction: Direction::Forward
            })
        );
        // Backward: 7 down to 0 spells the time at piece 0.
        let mut q = QuarterFrames::default();
        let back = tc(1, 2, 3, 4, Rate::Df2997);
        let qb = quarter_frames(&back);
        let mut got = None;
        for d in qb.iter().rev() {
            got = q.push(*d);
        }
        assert_eq!(
            got,
            Some(Cycle {
                time: back,
                direction: Direction::Backward
            })
        );
        // A missing piece spoils the cycle.
        let mut q = QuarterFrames::default();
        for d in qf.iter().chain(&qf).filter(|d| **d >> 4 != 3) {
            assert_eq!(q.push(*d), None);
        }
    }
}
