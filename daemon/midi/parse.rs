//! The MIDI byte-stream parser and encoder every transport shares.
//!
//! A transport hands [`Parser::push`] whatever bytes it read, in chunks of any size; the
//! parser returns whole [`MidiEvent`]s. It follows the MIDI 1.0 stream rules:
//! - running status: data bytes after a complete channel message repeat its status;
//! - real-time bytes (`F8`..`FF`) may arrive anywhere, between the bytes of a message or
//!   inside SysEx, and are delivered at once without disturbing what they interrupted;
//! - SysEx (`F0 .. F7`) may be split over any number of reads; any other status byte ends it
//!   (the unterminated SysEx is dropped and counted);
//! - a stray data byte (no status to belong to) is skipped; a message cut short by a new status
//!   byte is dropped; both are counted in [`ParserStats`] and never cost sync: the next status
//!   byte starts afresh.

use std::fmt;

/// Largest SysEx payload kept; longer ones are dropped (and counted) but sync is kept.
pub const MAX_SYSEX: usize = 4096;

/// One MIDI message. Channels are 0-based (0..=15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MidiEvent {
    NoteOff {
        channel: u8,
        note: u8,
        velocity: u8,
    },
    NoteOn {
        channel: u8,
        note: u8,
        velocity: u8,
    },
    PolyPressure {
        channel: u8,
        note: u8,
        pressure: u8,
    },
    ControlChange {
        channel: u8,
        controller: u8,
        value: u8,
    },
    ProgramChange {
        channel: u8,
        program: u8,
    },
    ChannelPressure {
        channel: u8,
        pressure: u8,
    },
    /// 14-bit value, 0..=16383, centre 8192.
    PitchBend {
        channel: u8,
        value: u16,
    },
    /// The bytes between `F0` and `F7` (both excluded), all below 0x80.
    SysEx(Vec<u8>),
    MtcQuarterFrame(u8),
    /// 14-bit MIDI beats (sixteenth notes) since the start.
    SongPosition(u16),
    SongSelect(u8),
    TuneRequest,
    /// A real-time byte (`F8` clock, `FA` start, `FB` continue, `FC` stop, `FE` active
    /// sensing, `FF` reset; `F9`/`FD` are undefined and skipped).
    RealTime(u8),
}

/// What the parser had to skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Data bytes with no status to belong to.
    pub stray_bytes: u64,
    /// Messages cut short by a new status byte (SysEx included).
    pub truncated: u64,
    /// SysEx messages longer than [`MAX_SYSEX`].
    pub oversize_sysex: u64,
    /// Undefined status bytes (`F4`, `F5`, `F9`, `FD`) and `F7` outside SysEx.
    pub undefined: u64,
}

/// Number of data bytes that follow `status` (a status byte below `F0`, or system common).
fn data_len(status: u8) -> usize {
    match status & 0xF0 {
        0xC0 | 0xD0 => 1,
        0x80..=0xE0 => 2,
        _ => match status {
            0xF1 | 0xF3 => 1,
            0xF2 => 2,
            _ => 0,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for a status byte (after a system common or SysEx, or at the start).
    Idle,
    /// Collecting data bytes for `status` (channel voice or system common).
    Message { status: u8 },
    /// Inside SysEx (`discard` when it grew beyond [`MAX_SYSEX`]).
    SysEx { discard: bool },
}

/// The byte-stream parser. One per input port; keeps no reference to the bytes it is given.
#[derive(Debug, Clone)]
pub struct Parser {
    mode: Mode,
    data: [u8; 2],
    have: usize,
    sysex: Vec<u8>,
    stats: ParserStats,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            mode: Mode::Idle,
            data: [0; 2],
            have: 0,
            sysex: Vec::with_capacity(256),
            stats: ParserStats::default(),
        }
    }

    /// What was skipped so far.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Forget any partial message (the port was closed and reopened).
    pub fn reset(&mut self) {
        self.mode = Mode::Idle;
        self.have = 0;
        self.sysex.clear();
    }

    /// Feed `bytes`; `emit` gets every complete event, in stream order.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(MidiEvent)) {
        for &b in bytes {
            if let Some(ev) = self.byte(b) {
                emit(ev);
            }
        }
    }

    /// Feed `bytes` and collect the events (convenience for tests and tools).
    pub fn parse(&mut self, bytes: &[u8]) -> Vec<MidiEvent> {
        let mut out = Vec::new();
        self.push(bytes, |e| out.push(e));
        out
    }

    fn byte(&mut self, b: u8) -> Option<MidiEvent> {
        if b >= 0xF8 {
            // Real-time: delivered at once, nothing else changes.
            return if b == 0xF9 || b == 0xFD {
                self.stats.undefined += 1;
                None
            } else {
                Some(MidiEvent::RealTime(b))
            };
        }
        if b >= 0x80 {
            return self.status(b);
        }
        match self.mode {
            Mode::Idle => {
                self.stats.stray_bytes += 1;
                None
            }
            Mode::SysEx { discard } => {
                if !discard {
                    if self.sysex.len() < MAX_SYSEX {
                        self.sysex.push(b);
                    } else {
                        self.sysex.clear();
                        self.mode = Mode::SysEx { discard: true };
                    }
                }
                None
            }
            Mode::Message { status } => {
                self.data[self.have] = b;
                self.have += 1;
                if self.have < data_len(status) {
                    return None;
                }
                self.have = 0;
                if status >= 0xF0 {
                    // System common has no running status.
                    self.mode = Mode::Idle;
                }
                Some(event(status, self.data))
            }
        }
    }

    fn status(&mut self, b: u8) -> Option<MidiEvent> {
        // Whatever was in progress is cut short by this status byte.
        match self.mode {
            Mode::SysEx { discard } => {
                if b == 0xF7 {
                    self.mode = Mode::Idle;
                    if discard {
                        self.stats.oversize_sysex += 1;
                        return None;
                    }
                    let payload = std::mem::take(&mut self.sysex);
                    self.sysex = Vec::with_capacity(payload.capacity());
                    return Some(MidiEvent::SysEx(payload));
                }
                self.stats.truncated += 1;
                self.sysex.clear();
            }
            Mode::Message { .. } if self.have > 0 => self.stats.truncated += 1,
            Mode::Message { status } if status >= 0xF0 => self.stats.truncated += 1,
            _ => {}
        }
        self.have = 0;
        match b {
            0xF0 => {
                self.sysex.clear();
                self.mode = Mode::SysEx { discard: false };
                None
            }
            0xF6 => {
                self.mode = Mode::Idle;
                Some(MidiEvent::TuneRequest)
            }
            0xF4 | 0xF5 | 0xF7 => {
                self.stats.undefined += 1;
                self.mode = Mode::Idle;
                None
            }
            _ => {
                self.mode = Mode::Message { status: b };
                None
            }
        }
    }
}

fn event(status: u8, d: [u8; 2]) -> MidiEvent {
    let channel = status & 0x0F;
    match status & 0xF0 {
        0x80 => MidiEvent::NoteOff {
            channel,
            note: d[0],
            velocity: d[1],
        },
        0x90 => MidiEvent::NoteOn {
            channel,
            note: d[0],
            velocity: d[1],
        },
        0xA0 => MidiEvent::PolyPressure {
            channel,
            note: d[0],
            pressure: d[1],
        },
        0xB0 => MidiEvent::ControlChange {
            channel,
            controller: d[0],
            value: d[1],
        },
        0xC0 => MidiEvent::ProgramChange {
            channel,
            program: d[0],
        },
        0xD0 => MidiEvent::ChannelPressure {
            channel,
            pressure: d[0],
        },
        0xE0 => MidiEvent::PitchBend {
            channel,
            value: u16::from(d[0]) | (u16::from(d[1]) << 7),
        },
        _ => match status {
            0xF1 => MidiEvent::MtcQuarterFrame(d[0]),
            0xF2 => MidiEvent::SongPosition(u16::from(d[0]) | (u16::from(d[1]) << 7)),
            _ => MidiEvent::SongSelect(d[0]),
        },
    }
}

/// Why an event cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub &'static str);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for EncodeError {}

impl MidiEvent {
    /// Append the event's bytes (always with its status byte) to `out`. Values out of range
    /// (a channel above 15, a data byte above 127, SysEx bytes with the top bit set) are
    /// errors: nothing is appended.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let d7 = |v: u8| {
            if v < 0x80 {
                Ok(v)
            } else {
                Err(EncodeError("data byte above 127"))
            }
        };
        let st = |kind: u8, ch: u8| {
            if ch < 16 {
                Ok(kind | ch)
            } else {
                Err(EncodeError("channel above 16"))
            }
        };
        let d14 = |v: u16| {
            if v < 0x4000 {
                Ok([(v & 0x7F) as u8, (v >> 7) as u8])
            } else {
                Err(EncodeError("14-bit value above 16383"))
            }
        };
        let bytes: Vec<u8> = match *self {
            MidiEvent::NoteOff {
                channel,
                note,
                velocity,
            } => vec![st(0x80, channel)?, d7(note)?, d7(velocity)?],
            MidiEvent::NoteOn {
                channel,
                note,
                velocity,
            } => vec![st(0x90, channel)?, d7(note)?, d7(velocity)?],
            MidiEvent::PolyPressure {
                channel,
                note,
                pressure,
            } => vec![st(0xA0, channel)?, d7(note)?, d7(pressure)?],
            MidiEvent::ControlChange {
                channel,
                controller,
                value,
            } => vec![st(0xB0, channel)?, d7(controller)?, d7(value)?],
            MidiEvent::ProgramChange { channel, program } => {
                vec![st(0xC0, channel)?, d7(program)?]
            }
            MidiEvent::ChannelPressure { channel, pressure } => {
                vec![st(0xD0, channel)?, d7(pressure)?]
            }
            MidiEvent::PitchBend { channel, value } => {
                let [lo, hi] = d14(value)?;
                vec![st(0xE0, channel)?, lo, hi]
            }
            MidiEvent::SysEx(ref payload) => {
                if payload.iter().any(|b| *b >= 0x80) {
                    return Err(EncodeError("SysEx byte above 127"));
                }
                out.reserve(payload.len() + 2);
                out.push(0xF0);
                out.extend_from_slice(payload);
                out.push(0xF7);
                return Ok(());
            }
            MidiEvent::MtcQuarterFrame(v) => vec![0xF1, d7(v)?],
            MidiEvent::SongPosition(v) => {
                let [lo, hi] = d14(v)?;
                vec![0xF2, lo, hi]
            }
            MidiEvent::SongSelect(v) => vec![0xF3, d7(v)?],
            MidiEvent::TuneRequest => vec![0xF6],
            MidiEvent::RealTime(b) => {
                if b < 0xF8 || b == 0xF9 || b == 0xFD {
                    return Err(EncodeError("not a real-time status byte"));
                }
                vec![b]
            }
        };
        out.extend_from_slice(&bytes);
        Ok(())
    }

    /// The event's bytes (with its status byte).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(3);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Is this a channel voice message (the kind running status applies to)?
    pub fn is_channel(&self) -> bool {
        matches!(
            self,
            MidiEvent::NoteOff { .. }
                | MidiEvent::NoteOn { .. }
                | MidiEvent::PolyPressure { .. }
                | MidiEvent::ControlChange { .. }
                | MidiEvent::ProgramChange { .. }
                | MidiEvent::ChannelPressure { .. }
                | MidiEvent::PitchBend { .. }
        )
    }
}

/// Encode `events` the way a thrifty sender does: consecutive channel messages with the same
/// status byte omit it (running status). Used by transports for DIN MIDI, where every byte
/// costs 320 µs, and by the tests.
pub fn encode_running(events: &[MidiEvent], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut running: Option<u8> = None;
    for ev in events {
        let start = out.len();
        ev.encode(out)?;
        let status = out[start];
        if ev.is_channel() {
            if running == Some(status) {
                out.remove(start);
            }
            running = Some(status);
        } else if !matches!(ev, MidiEvent::RealTime(_)) {
            running = None;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_each_kind_from_known_bytes() {
        let mut p = Parser::new();
        let bytes = [
            0x90, 0x3C, 0x64, // note on C4 vel 100, ch 1
            0x81, 0x3C, 0x00, // note off ch 2
            0xB5, 0x07, 0x7F, // CC7 127 ch 6
            0xCF, 0x05, // program 5 ch 16
            0xD0, 0x45, // channel pressure
            0xE2, 0x00, 0x40, // pitch bend centre ch 3
            0xE2, 0x7F, 0x7F, // running status: full up
            0xF0, 0x00, 0x00, 0x66, 0x14, 0x00, 0xF7, // MCU device query
            0xF2, 0x10, 0x01, // song position 144
            0xF1, 0x23, 0xF3, 0x02, 0xF6, 0xFA, 0xF8,
        ];
        assert_eq!(
            p.parse(&bytes),
            vec![
                MidiEvent::NoteOn {
                    channel: 0,
                    note: 60,
                    velocity: 100
                },
                MidiEvent::NoteOff {
                    channel: 1,
                    note: 60,
                    velocity: 0
                },
                MidiEvent::ControlChange {
                    channel: 5,
                    controller: 7,
                    value: 127
                },
                MidiEvent::ProgramChange {
                    channel: 15,
                    program: 5
                },
                MidiEvent::ChannelPressure {
                    channel: 0,
                    pressure: 0x45
                },
                MidiEvent::PitchBend {
                    channel: 2,
                    value: 8192
                },
                MidiEvent::PitchBend {
                    channel: 2,
                    value: 16383
                },
                MidiEvent::SysEx(vec![0x00, 0x00, 0x66, 0x14, 0x00]),
                MidiEvent::SongPosition(0x10 | (1 << 7)),
                MidiEvent::MtcQuarterFrame(0x23),
                MidiEvent::SongSelect(2),
                MidiEvent::TuneRequest,
                MidiEvent::RealTime(0xFA),
                MidiEvent::RealTime(0xF8),
            ]
        );
        assert_eq!(p.stats(), ParserStats::default());
    }

    #[test]
    fn real_time_inside_a_message_and_inside_sysex() {
        let mut p = Parser::new();
        let ev = p.parse(&[
            0x90, 0xF8, 0x3C, 0xFE, 0x64, 0xF0, 0x01, 0xF8, 0x02, 0xF7, 0x3D,
        ]);
        assert_eq!(
            ev,
            vec![
                MidiEvent::RealTime(0xF8),
                MidiEvent::RealTime(0xFE),
                MidiEvent::NoteOn {
                    channel: 0,
                    note: 60,
                    velocity: 100
                },
                MidiEvent::RealTime(0xF8),
                MidiEvent::SysEx(vec![1, 2]),
            ]
        );
        // SysEx cleared running status: the trailing 0x3D is stray.
        assert_eq!(p.stats().stray_bytes, 1);
    }

    #[test]
    fn stray_and_truncated_bytes_are_skipped_and_counted() {
        let mut p = Parser::new();
        // Two stray data bytes, a note cut short by a CC, a SysEx cut short by a note on,
        // an EOX out of nowhere, then good messages.
        let ev = p.parse(&[
            0x12, 0x34, 0x90, 0x3C, 0xB0, 0x07, 0x40, 0xF0, 0x01, 0x02, 0x90, 0x40, 0x7F, 0xF7,
            0x41, 0x7F,
        ]);
        assert_eq!(
            ev,
            vec![
                MidiEvent::ControlChange {
                    channel: 0,
                    controller: 7,
                    value: 64
                },
                MidiEvent::NoteOn {
                    channel: 0,
                    note: 0x40,
                    velocity: 0x7F
                },
            ]
        );
        let s = p.stats();
        assert_eq!(s.stray_bytes, 2 + 2, "{s:?}"); // 0x41 0x7F after F7 lost the status too
        assert_eq!(s.truncated, 2, "{s:?}");
        assert_eq!(s.undefined, 1, "{s:?}");
    }

    #[test]
    fn oversize_sysex_is_dropped_and_sync_kept() {
        let mut p = Parser::new();
        let mut bytes = vec![0xF0];
        bytes.extend(std::iter::repeat_n(0x11, MAX_SYSEX + 10));
        bytes.extend([0xF7, 0x90, 1, 2]);
        let ev = p.parse(&bytes);
        assert_eq!(
            ev,
            vec![MidiEvent::NoteOn {
                channel: 0,
                note: 1,
                velocity: 2
            }]
        );
        assert_eq!(p.stats().oversize_sysex, 1);
        // A SysEx of exactly MAX_SYSEX bytes is kept.
        let mut bytes = vec![0xF0];
        bytes.extend(std::iter::repeat_n(0x22, MAX_SYSEX));
        bytes.push(0xF7);
        assert_eq!(
            p.parse(&bytes),
            vec![MidiEvent::SysEx(vec![0x22; MAX_SYSEX])]
        );
    }

    #[test]
    fn encoder_rejects_out_of_range_values() {
        let mut out = vec![];
        assert!(
            MidiEvent::NoteOn {
                channel: 16,
                note: 1,
                velocity: 1
            }
            .encode(&mut out)
            .is_err()
        );
        assert!(
            MidiEvent::PitchBend {
                channel: 0,
                value: 16384
            }
            .encode(&mut out)
            .is_err()
        );
        assert!(MidiEvent::SysEx(vec![0x80]).encode(&mut out).is_err());
        assert!(MidiEvent::RealTime(0xF9).encode(&mut out).is_err());
        assert!(out.is_empty());
    }

    fn arb_event() -> impl Strategy<Value = MidiEvent> {
        let ch = 0u8..16;
        let d = 0u8..128;
        prop_oneof![
            (ch.clone(), d.clone(), d.clone()).prop_map(|(channel, note, velocity)| {
                MidiEvent::NoteOn {
                    channel,
                    note,
                    velocity,
                }
            }),
            (ch.clone(), d.clone(), d.clone()).prop_map(|(channel, note, velocity)| {
                MidiEvent::NoteOff {
                    channel,
                    note,
                    velocity,
                }
            }),
            (ch.clone(), d.clone(), d.clone()).prop_map(|(channel, note, pressure)| {
                MidiEvent::PolyPressure {
                    channel,
                    note,
                    pressure,
                }
            }),
            (ch.clone(), d.clone(), d.clone()).prop_map(|(channel, controller, value)| {
                MidiEvent::ControlChange {
                    channel,
                    controller,
                    value,
                }
            }),
            (ch.clone(), d.clone())
                .prop_map(|(channel, program)| MidiEvent::ProgramChange { channel, program }),
            (ch.clone(), d.clone()).prop_map(|(channel, pressure)| {
                MidiEvent::ChannelPressure { channel, pressure }
            }),
            (ch, 0u16..16384).prop_map(|(channel, value)| MidiEvent::PitchBend { channel, value }),
            proptest::collection::vec(0u8..128, 0..64).prop_map(MidiEvent::SysEx),
            d.clone().prop_map(MidiEvent::MtcQuarterFrame),
            (0u16..16384).prop_map(MidiEvent::SongPosition),
            d.prop_map(MidiEvent::SongSelect),
            Just(MidiEvent::TuneRequest),
            prop::sample::select(vec![0xF8u8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF])
                .prop_map(MidiEvent::RealTime),
        ]
    }

    /// Feed `bytes` in chunks whose sizes cycle through `cuts`.
    fn parse_chunked(bytes: &[u8], cuts: &[usize]) -> (Vec<MidiEvent>, ParserStats) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].clamp(1, rest.len());
            p.push(&rest[..n], |e| out.push(e));
            rest = &rest[n..];
            i += 1;
        }
        (out, p.stats())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any event sequence, encoded with running status and cut into any chunks, decodes
        /// to itself with nothing skipped.
        #[test]
        fn round_trip_with_running_status_and_any_chunking(
            events in proptest::collection::vec(arb_event(), 0..40),
            cuts in proptest::collection::vec(1usize..9, 1..6),
        ) {
            let mut bytes = Vec::new();
            encode_running(&events, &mut bytes).unwrap();
            let (got, stats) = parse_chunked(&bytes, &cuts);
            prop_assert_eq!(got, events);
            prop_assert_eq!(stats, ParserStats::default());
        }

        /// Real-time bytes sprinkled anywhere (inside messages and SysEx) come out in order
        /// and leave every other event intact.
        #[test]
        fn real_time_bytes_anywhere(
            events in proptest::collection::vec(arb_event(), 0..30),
            inserts in proptest::collection::vec((any::<prop::sample::Index>(),
                prop::sample::select(vec![0xF8u8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF])), 0..20),
        ) {
            let events: Vec<_> = events.into_iter()
                .filter(|e| !matches!(e, MidiEvent::RealTime(_))).collect();
            let mut bytes = Vec::new();
            encode_running(&events, &mut bytes).unwrap();
            let mut positions: Vec<(usize, u8)> = inserts.iter()
                .map(|(i, b)| (i.index(bytes.len() + 1), *b)).collect();
            positions.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            for (i, b) in &positions {
                bytes.insert(*i, *b);
            }
            // No encoded non-real-time event contains a byte >= F8, so these are exactly the
            // inserted ones, in stream order.
            let rt_bytes: Vec<u8> = bytes.iter().copied().filter(|b| *b >= 0xF8).collect();
            let mut p = Parser::new();
            let got = p.parse(&bytes);
            let (rt, rest): (Vec<_>, Vec<_>) = got.into_iter()
                .partition(|e| matches!(e, MidiEvent::RealTime(_)));
            prop_assert_eq!(rest, events);
            prop_assert_eq!(rt, rt_bytes.into_iter().map(MidiEvent::RealTime).collect::<Vec<_>>());
            prop_assert_eq!(p.stats(), ParserStats::default());
        }

        /// Arbitrary garbage never panics, and a valid stream after it (starting with a status
        /// byte) decodes completely: sync is regained at the first status byte.
        #[test]
        fn garbage_then_valid_stream_resyncs(
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
            events in proptest::collection::vec(arb_event(), 1..30),
        ) {
            let events: Vec<_> = events.into_iter()
                .filter(|e| !matches!(e, MidiEvent::RealTime(_))).collect();
            let mut p = Parser::new();
            let _ = p.parse(&garbage);
            let mut bytes = Vec::new();
            encode_running(&events, &mut bytes).unwrap();
            let got: Vec<_> = p.parse(&bytes).into_iter()
                .filter(|e| !matches!(e, MidiEvent::RealTime(_))).collect();
            prop_assert_eq!(got, events);
        }
    }
}
