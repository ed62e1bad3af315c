//! MIDI Time Code chase (`kind: mtc` surfaces): the console's transport follows a MIDI
//! Time Code master (a DAW, a video deck, a timecode generator) on any MIDI transport.
//!
//! - [`decode`]: rates, drop-frame counting, full frames and quarter-frame assembly. Pure.
//! - [`Chase`]: what the transport should do, given MTC and the daemon's position. Pure
//!   (times are passed in).
//! - [`run`]: the surface task: port, chase and console.
//!
//! # Behaviour
//! - A full frame locates the transport to its time (the master was located or is
//!   shuttling); it does not start or stop it.
//! - Quarter frames running forward start the transport once a whole cycle (two frames)
//!   was read, located to the MTC time. The time a cycle spells is the frame in which its
//!   piece 0 was sent; piece 7 arrives 7/4 of a frame later, so the current time at piece 7
//!   is that time + 1.75 frames (the assembly latency, compensated). At each cycle the
//!   daemon's position is compared with it and the transport relocated when they differ by
//!   more than [`MAX_DRIFT_FRAMES`].
//! - The MTC clock: messages reach the chase through a channel and a task, which a busy
//!   machine may delay; a cycle handled late looks like MTC running behind. So the MTC time
//!   is kept as a clock (the monotonic clock plus an offset) whose offset is the largest of
//!   the last [`CLOCK_WINDOW`] cycles' (the least delayed one), and a cycle only restarts
//!   the clock when it is more than [`JUMP_FRAMES`] away from it (the master jumped).
//! - When no quarter frame came for [`STOP_AFTER`], the transport stops.
//! - Quarter frames running backward (a master rewinding while playing) stop the
//!   transport and locate it to each cycle's time (the console does not play backward).

pub mod decode;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use decode::{Cycle, Direction, QuarterFrames, Rate, Timecode};

use crate::control::{ConsoleHandle, Transport};
use crate::midi::{MidiEvent, MidiPort, PortEvent, PortSpec};

/// The transport stops when no quarter frame came for this long (at 24 fps quarter frames
/// come every 10.4 ms: this is over a dozen of them).
pub const STOP_AFTER: Duration = Duration::from_millis(150);
/// The transport is relocated when its position and the MTC time differ by more than this
/// many frames.
pub const MAX_DRIFT_FRAMES: f64 = 1.0;
/// Where in its cycle piece 7 arrives, in frames after the time the cycle spells.
pub const PIECE7_LATENCY_FRAMES: f64 = 1.75;
/// How many cycles the MTC clock's offset is taken over (the least delayed one wins).
pub const CLOCK_WINDOW: usize = 8;
/// A cycle this many frames away from the MTC clock is a jump of the master: the clock
/// restarts from it.
pub const JUMP_FRAMES: f64 = 4.0;
/// How often the task looks for quarter frames that stopped.
const TICK: Duration = Duration::from_millis(10);

/// What the chase wants the transport to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    Play,
    Stop,
    /// Move to this many seconds.
    Locate(f64),
}

/// The running MTC time: `now − epoch + offset`, the offset being the largest of the last
/// cycles' (see the module doc).
#[derive(Debug, Clone)]
struct Clock {
    epoch: Instant,
    offsets: [f64; CLOCK_WINDOW],
    len: usize,
    next: usize,
}

impl Clock {
    fn new(t: f64, now: Instant) -> Clock {
        let mut c = Clock {
            epoch: now,
            offsets: [0.0; CLOCK_WINDOW],
            len: 0,
            next: 0,
        };
        c.push(t, now);
        c
    }

    fn since(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.epoch).as_secs_f64()
    }

    /// A cycle: MTC time `t` seen at `now`.
    fn push(&mut self, t: f64, now: Instant) {
        self.offsets[self.next] = t - self.since(now);
        self.next = (self.next + 1) % CLOCK_WINDOW;
        self.len = (self.len + 1).min(CLOCK_WINDOW);
    }

    fn time(&self, now: Instant) -> f64 {
        let offset = self.offsets[..self.len]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        self.since(now) + offset
    }
}

/// The chase's state machine.
#[derive(Debug, Default)]
pub struct Chase {
    qf: QuarterFrames,
    /// The transport was started by quarter frames and they still come.
    rolling: bool,
    last_qf: Option<Instant>,
    /// The MTC time (seconds) at an instant, when not rolling: the last locate.
    anchor: Option<(f64, Instant)>,
    /// The MTC clock while rolling.
    clock: Option<Clock>,
    rate: Option<Rate>,
}

impl Chase {
    pub fn new() -> Chase {
        Chase::default()
    }

    /// True while quarter frames run forward and the chase plays the transport.
    pub fn rolling(&self) -> bool {
        self.rolling
    }

    /// The frame rate of the last MTC message.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// The MTC time now (seconds): the last complete cycle's, run on by the clock while
    /// rolling.
    pub fn mtc_time(&self, now: Instant) -> Option<f64> {
        match (&self.clock, self.rolling) {
            (Some(c), true) => Some(c.time(now)),
            _ => self.anchor.map(|(t, _)| t),
        }
    }

    /// One MIDI message at `now`. `position_s` is the daemon's transport position and
    /// `playing` whether it plays; returns what to do with the transport, in order.
    pub fn on_midi(
        &mut self,
        ev: &MidiEvent,
        now: Instant,
        position_s: f64,
        playing: bool,
    ) -> Vec<Command> {
        match ev {
            MidiEvent::SysEx(p) => match decode::full_frame(p) {
                Some(tc) => {
                    self.rate = Some(tc.rate);
                    let t = tc.seconds();
                    self.anchor = Some((t, now));
                    self.clock = None;
                    self.qf.reset();
                    vec![Command::Locate(t)]
                }
                None => vec![],
            },
            MidiEvent::MtcQuarterFrame(d) => {
                self.last_qf = Some(now);
                match self.qf.push(*d) {
                    Some(c) => self.cycle(c, now, position_s, playing),
                    None => vec![],
                }
            }
            _ => vec![],
        }
    }

    fn cycle(&mut self, c: Cycle, now: Instant, position_s: f64, playing: bool) -> Vec<Command> {
        let rate = c.time.rate;
        self.rate = Some(rate);
        let frame = rate.frame_s();
        match c.direction {
            Direction::Forward => {
                let seen = c.time.seconds() + PIECE7_LATENCY_FRAMES * frame;
                match &mut self.clock {
                    Some(k)
                        if self.rolling && (seen - k.time(now)).abs() <= JUMP_FRAMES * frame =>
                    {
                        k.push(seen, now);
                    }
                    _ => self.clock = Some(Clock::new(seen, now)),
                }
                let t = self.clock.as_ref().map_or(seen, |k| k.time(now));
                self.anchor = Some((t, now));
                let mut out = Vec::new();
                if !self.rolling || !playing {
                    self.rolling = true;
                    out.push(Command::Locate(t));
                    out.push(Command::Play);
                } else if (position_s - t).abs() > MAX_DRIFT_FRAMES * frame {
                    out.push(Command::Locate(t));
                }
                out
            }
            Direction::Backward => {
                let t = c.time.seconds();
                self.anchor = Some((t, now));
                self.clock = None;
                let mut out = Vec::new();
                if std::mem::take(&mut self.rolling) || playing {
                    out.push(Command::Stop);
                }
                out.push(Command::Locate(t));
                out
            }
        }
    }

    /// Time passes: stop when quarter frames stopped coming for [`STOP_AFTER`].
    pub fn tick(&mut self, now: Instant) -> Option<Command> {
        let stale = self
            .last_qf
            .is_none_or(|t| now.saturating_duration_since(t) > STOP_AFTER);
        if self.rolling && stale {
            // Hold the MTC time where it stopped.
            if let Some(t) = self.mtc_time(now) {
                self.anchor = Some((t, now));
            }
            self.rolling = false;
            self.clock = None;
            self.qf.reset();
            return Some(Command::Stop);
        }
        None
    }
}

/// One `mtc` surface.
#[derive(Debug, Clone)]
pub struct MtcConfig {
    pub port: PortSpec,
    /// The engine's sample rate (positions are in samples).
    pub sample_rate: u32,
}

fn apply(console: &ConsoleHandle, cmd: Command) {
    let t = match cmd {
        Command::Play => Transport::Play,
        Command::Stop => Transport::Stop,
        Command::Locate(s) => Transport::Locate(s.max(0.0) as f32),
    };
    if let Err(e) = console.transport(t) {
        tracing::debug!("MTC chase: {e}");
    }
}

/// Run the chase until `cancel`.
pub async fn run(console: ConsoleHandle, cfg: MtcConfig, cancel: CancellationToken) {
    let origin = console.register_surface("mtc");
    console.set_surface_info(origin, &format!("MIDI Time Code chase on {}", cfg.port));
    let mut port = match MidiPort::open(cfg.port.clone()) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("MTC: {e}");
            console.unregister_surface(origin);
            return;
        }
    };
    let sr = f64::from(cfg.sample_rate.max(1));
    let mut chase = Chase::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = port.recv() => match ev {
                None => break,
                Some(PortEvent::Connected { device }) => {
                    tracing::info!("MTC chase: connected ({device})");
                }
                Some(PortEvent::Disconnected { why }) => {
                    tracing::info!("MTC chase: disconnected ({why})");
                }
                Some(PortEvent::Midi(m)) => {
                    if !matches!(m, MidiEvent::MtcQuarterFrame(_) | MidiEvent::SysEx(_)) {
                        continue;
                    }
                    let position_s = console.meters().position as f64 / sr;
                    let cmds = chase.on_midi(&m, Instant::now(), position_s, console.playing());
                    for c in cmds {
                        tracing::debug!("MTC chase: {c:?} (position {position_s:.3} s)");
                        apply(&console, c);
                    }
                }
            },
            _ = tick.tick() => {
                if let Some(c) = chase.tick(Instant::now()) {
                    tracing::debug!("MTC chase: quarter frames stopped; {c:?}");
                    apply(&console, c);
                }
            }
        }
    }
    console.unregister_surface(origin);
    // Dropping the port joins its thread (a few ms): keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(port)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Locates rounded to the microsecond (the expected times are decimal).
    fn us(cmds: Vec<Command>) -> Vec<Command> {
        cmds.into_iter()
            .map(|c| match c {
                Command::Locate(s) => Command::Locate((s * 1e6).round() / 1e6),
                c => c,
            })
            .collect()
    }

    /// Quarter frames for `frames` frames (a multiple of 2) from `start`, one every quarter
    /// frame from `t0`, fed to the chase with a transport that follows exactly; returns the
    /// commands with the index of the piece they came at.
    fn stream(
        chase: &mut Chase,
        start: Timecode,
        frames: u32,
        t0: Instant,
        pos: &mut f64,
    ) -> Vec<(usize, Command)> {
        let qf_dur = Duration::from_secs_f64(start.rate.frame_s() / 4.0);
        let mut out = Vec::new();
        let mut i = 0usize;
        let mut playing = false;
        for c in 0..frames / 2 {
            let tc = start.add_frames(2 * i64::from(c));
            for d in decode::quarter_frames(&tc) {
                let now = t0 + qf_dur * i as u32;
                for cmd in chase.on_midi(&MidiEvent::MtcQuarterFrame(d), now, *pos, playing) {
                    match cmd {
                        Command::Play => playing = true,
                        Command::Stop => playing = false,
                        Command::Locate(s) => *pos = s,
                    }
                    out.push((i, us(vec![cmd])[0]));
                }
                if playing {
                    *pos += qf_dur.as_secs_f64();
                }
                i += 1;
            }
        }
        out
    }

    #[test]
    fn quarter_frames_play_and_locate_once_then_stop_after_the_timeout() {
        let mut chase = Chase::new();
        let t0 = Instant::now();
        let start = Timecode::new(0, 0, 20, 0, Rate::Fps25).unwrap();
        let mut pos = 3.0;
        // ~1 s (24 frames) of 25 fps MTC: the first cycle (piece 7, the 8th message) locates
        // to 20 s + 1.75 frames (70 ms) and plays; a transport that keeps time needs nothing
        // more.
        let cmds = stream(&mut chase, start, 24, t0, &mut pos);
        assert_eq!(
            cmds,
            vec![(7, Command::Locate(20.07)), (7, Command::Play)],
            "{cmds:?}"
        );
        assert!(chase.rolling());
        // The last of 96 quarter frames came at 950 ms: nothing until 150 ms later.
        let last = t0 + 10 * MS * 95;
        assert_eq!(chase.tick(last + 100 * MS), None);
        assert_eq!(chase.tick(last + STOP_AFTER + MS), Some(Command::Stop));
        assert!(!chase.rolling());
        assert_eq!(chase.tick(last + 300 * MS), None, "stops once");
    }

    #[test]
    fn drift_beyond_a_frame_relocates() {
        let mut chase = Chase::new();
        let t0 = Instant::now();
        let tc = Timecode::new(0, 0, 20, 0, Rate::Fps25).unwrap();
        let qf = |chase: &mut Chase, tc: &Timecode, k: u32, pos: f64| {
            let mut out = Vec::new();
            for (j, d) in decode::quarter_frames(tc).into_iter().enumerate() {
                let now = t0 + 10 * MS * (8 * k + j as u32);
                out = chase.on_midi(&MidiEvent::MtcQuarterFrame(d), now, pos, true);
            }
            us(out)
        };
        assert_eq!(
            qf(&mut chase, &tc, 0, 0.0),
            vec![Command::Locate(20.07), Command::Play]
        );
        // Next cycle spells 20.08 s → 20.15 s now. The daemon 0.9 frame off: kept.
        let tc2 = tc.add_frames(2);
        assert_eq!(qf(&mut chase, &tc2, 1, 20.15 + 0.036), vec![]);
        // 1.1 frames (44 ms) behind: relocated to the MTC time.
        let tc3 = tc.add_frames(4);
        assert_eq!(
            qf(&mut chase, &tc3, 2, 20.23 - 0.044),
            vec![Command::Locate(20.23)]
        );
    }

    /// A cycle handled late (a busy machine) does not move the MTC clock back, so the
    /// transport is not relocated; a real jump of the master is followed.
    #[test]
    fn late_cycles_do_not_relocate_but_jumps_do() {
        let mut chase = Chase::new();
        let t0 = Instant::now();
        let start = Timecode::new(0, 0, 20, 0, Rate::Fps25).unwrap();
        // Cycle k's piece j is sent at 10 ms × (8k + j), standing for 20 s + that; piece 7
        // is handled `late` later. The transport's position is exactly the master's time.
        let cycle = |chase: &mut Chase, tc: &Timecode, k: u32, late: Duration| {
            let mut out = Vec::new();
            for (j, d) in decode::quarter_frames(tc).into_iter().enumerate() {
                let sent = 10 * MS * (8 * k + j as u32);
                let now = t0 + sent + if j == 7 { late } else { Duration::ZERO };
                let pos = 20.0 + (now - t0).as_secs_f64();
                out = chase.on_midi(&MidiEvent::MtcQuarterFrame(d), now, pos, k > 0);
            }
            us(out)
        };
        assert_eq!(
            cycle(&mut chase, &start, 0, Duration::ZERO),
            vec![Command::Locate(20.07), Command::Play]
        );
        for k in 1..4 {
            let tc = start.add_frames(2 * i64::from(k));
            assert_eq!(
                cycle(&mut chase, &tc, k, Duration::ZERO),
                vec![],
                "cycle {k}"
            );
        }
        // Cycle 4 handled 60 ms (1.5 frames) late: the clock still says where the master is.
        let tc = start.add_frames(8);
        assert_eq!(cycle(&mut chase, &tc, 4, 60 * MS), vec![]);
        let now = t0 + 10 * MS * 39 + 60 * MS;
        let mtc = chase.mtc_time(now).unwrap();
        assert!((mtc - (20.0 + 0.45)).abs() < 1e-9, "{mtc}");
        // The master jumps to 00:00:40:00: relocated to 40 s + 1.75 frames.
        let jump = Timecode::new(0, 0, 40, 0, Rate::Fps25).unwrap();
        assert_eq!(
            cycle(&mut chase, &jump, 5, Duration::ZERO),
            vec![Command::Locate(40.07)]
        );
    }

    #[test]
    fn full_frames_locate_and_backward_quarter_frames_stop() {
        let mut chase = Chase::new();
        let now = Instant::now();
        let ff = |tc: &Timecode| MidiEvent::SysEx(decode::full_frame_payload(tc));
        let tc = Timecode::new(0, 0, 10, 0, Rate::Fps25).unwrap();
        assert_eq!(
            us(chase.on_midi(&ff(&tc), now, 0.0, false)),
            vec![Command::Locate(10.0)]
        );
        let df = Timecode::new(0, 1, 0, 2, Rate::Df2997).unwrap();
        let cmds = chase.on_midi(&ff(&df), now, 0.0, false);
        assert_eq!(cmds.len(), 1);
        let Command::Locate(s) = cmds[0] else {
            panic!("{cmds:?}")
        };
        assert!((s - 60.06).abs() < 1e-9, "{s}");
        assert_eq!(chase.rate(), Some(Rate::Df2997));
        // Unrelated messages do nothing.
        let cc = MidiEvent::ControlChange {
            channel: 0,
            controller: 1,
            value: 2,
        };
        assert_eq!(chase.on_midi(&cc, now, 0.0, false), vec![]);
        // Backward quarter frames while playing: stop, then locate to the cycle's time.
        let back = Timecode::new(0, 0, 30, 10, Rate::Fps25).unwrap();
        let mut last = vec![];
        for d in decode::quarter_frames(&back).into_iter().rev() {
            last = chase.on_midi(&MidiEvent::MtcQuarterFrame(d), now, 31.0, true);
        }
        assert_eq!(us(last), vec![Command::Stop, Command::Locate(30.4)]);
        assert!(!chase.rolling());
    }
}
