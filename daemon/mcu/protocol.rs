//! The bytes of the Mackie Control protocol (SPEC §8): note and controller numbers, SysEx
//! layouts, the handshake's challenge response, V-Pot ring and meter encodings.
//!
//! Sources of the facts (no code taken): the Logic Control / Mackie Control manuals' MIDI
//! implementation tables as documented by several open projects, and the behaviour of hosts
//! that speak it (Ardour, Logic).

/// SysEx header after `F0`: Mackie's manufacturer id.
pub const MACKIE_ID: [u8; 3] = [0x00, 0x00, 0x66];
/// Device family bytes of the SysEx header.
pub const DEVICE_MCU: u8 = 0x14;
pub const DEVICE_MCU_XT: u8 = 0x15;
pub const DEVICE_LOGIC_CONTROL: u8 = 0x10;
pub const DEVICE_LOGIC_CONTROL_XT: u8 = 0x11;

/// SysEx commands (the byte after the device family).
pub mod sysex {
    pub const DEVICE_QUERY: u8 = 0x00;
    pub const HOST_CONNECTION_QUERY: u8 = 0x01;
    pub const HOST_CONNECTION_REPLY: u8 = 0x02;
    pub const CONNECTION_CONFIRMATION: u8 = 0x03;
    pub const CONNECTION_ERROR: u8 = 0x04;
    pub const LCD: u8 = 0x12;
    pub const VERSION_REQUEST: u8 = 0x13;
    pub const METER_MODE: u8 = 0x20;
    /// X-Touch: scribble strip colours, one byte per strip.
    pub const XTOUCH_COLOURS: u8 = 0x72;
}

/// Note numbers of buttons and LEDs (a button sends note on 127 when pressed, 0 when
/// released; the host lights an LED with 127, flashes it with 1, clears it with 0).
pub mod note {
    pub const REC: u8 = 0x00;
    pub const SOLO: u8 = 0x08;
    pub const MUTE: u8 = 0x10;
    pub const SELECT: u8 = 0x18;
    pub const VPOT_PUSH: u8 = 0x20;
    pub const ASSIGN_TRACK: u8 = 0x28;
    pub const ASSIGN_SEND: u8 = 0x29;
    pub const ASSIGN_PAN: u8 = 0x2A;
    pub const ASSIGN_PLUGIN: u8 = 0x2B;
    pub const ASSIGN_EQ: u8 = 0x2C;
    pub const ASSIGN_INSTRUMENT: u8 = 0x2D;
    pub const BANK_LEFT: u8 = 0x2E;
    pub const BANK_RIGHT: u8 = 0x2F;
    pub const CHANNEL_LEFT: u8 = 0x30;
    pub const CHANNEL_RIGHT: u8 = 0x31;
    pub const FLIP: u8 = 0x32;
    pub const NAME_VALUE: u8 = 0x34;
    pub const AUTO_READ: u8 = 0x4A;
    pub const AUTO_WRITE: u8 = 0x4B;
    pub const AUTO_TRIM: u8 = 0x4C;
    pub const AUTO_TOUCH: u8 = 0x4D;
    pub const AUTO_LATCH: u8 = 0x4E;
    pub const REWIND: u8 = 0x5B;
    pub const FAST_FORWARD: u8 = 0x5C;
    pub const STOP: u8 = 0x5D;
    pub const PLAY: u8 = 0x5E;
    pub const RECORD: u8 = 0x5F;
    /// Fader touch of strip 1; strips 2..8 follow.
    pub const FADER_TOUCH: u8 = 0x68;
    pub const MASTER_TOUCH: u8 = 0x70;
    pub const SMPTE_LED: u8 = 0x71;
    pub const BEATS_LED: u8 = 0x72;
    pub const RUDE_SOLO: u8 = 0x73;
}

/// Controller numbers.
pub mod cc {
    /// V-Pot rotation of strip 1 (device → host); strips 2..8 follow.
    pub const VPOT: u8 = 0x10;
    /// V-Pot LED ring of strip 1 (host → device); strips 2..8 follow.
    pub const RING: u8 = 0x30;
    pub const JOG: u8 = 0x3C;
    /// Rightmost digit of the timecode display; the next nine digits to the left follow.
    pub const TIMECODE: u8 = 0x40;
    /// Two-digit assignment display: right digit, then left.
    pub const ASSIGNMENT: u8 = 0x4A;
}

/// Pitch-bend channel of the master fader on the main unit.
pub const MASTER_FADER_CHANNEL: u8 = 8;
/// Characters per LCD line on a unit (8 strips × 7).
pub const LCD_LINE: usize = 56;
/// Characters per strip on the LCD.
pub const LCD_CELL: usize = 7;

/// `F0 00 00 66 <device> <cmd> <data..> F7`.
pub fn sysex_msg(device: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 7);
    v.push(0xF0);
    v.extend_from_slice(&MACKIE_ID);
    v.push(device);
    v.push(cmd);
    v.extend(data.iter().map(|b| b & 0x7F));
    v.push(0xF7);
    v
}

/// The payload of a Mackie SysEx (`00 00 66 <device> <cmd> <data..>` without F0/F7) split
/// into (device, cmd, data), if it is one.
pub fn parse_sysex(payload: &[u8]) -> Option<(u8, u8, &[u8])> {
    if payload.len() < 5 || payload[..3] != MACKIE_ID {
        return None;
    }
    Some((payload[3], payload[4], &payload[5..]))
}

/// The host's answer to a device's 4-byte connection challenge (the formula Logic uses).
pub fn challenge_response(l: [u8; 4]) -> [u8; 4] {
    let [l1, l2, l3, l4] = l.map(i32::from);
    [
        0x7F & (l1 + (l2 ^ 0x0A) - l4),
        0x7F & ((l3 >> 4) ^ (l1 + l4)),
        0x7F & ((l4 - (l3 << 2)) ^ (l1 | l2)),
        0x7F & (l2 - l3 + (0xF0 ^ (l4 << 4))),
    ]
    .map(|x| x as u8)
}

/// Display mode of a V-Pot LED ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    /// One LED at the position (pan).
    Dot,
    /// From the centre to the position (EQ gain, boost/cut).
    BoostCut,
    /// From the left end to the position (levels).
    Wrap,
    /// Symmetric around the centre (width).
    Spread,
}

/// Ring CC value for a position `n` in 0..1 (11 LEDs; `None` = all off).
pub fn ring_value(mode: RingMode, n: Option<f32>) -> u8 {
    let m = match mode {
        RingMode::Dot => 0,
        RingMode::BoostCut => 1,
        RingMode::Wrap => 2,
        RingMode::Spread => 3,
    };
    let pos = match n {
        None => 0,
        Some(n) => match mode {
            // Spread: 1 = centre LED only .. 6 = all.
            RingMode::Spread => 1 + (n.clamp(0.0, 1.0) * 5.0).round() as u8,
            _ => 1 + (n.clamp(0.0, 1.0) * 10.0).round() as u8,
        },
    };
    (m << 4) | pos
}

/// The meter level (0..=12 LEDs) for a level in dBFS.
pub fn meter_level(db: f32) -> u8 {
    // Segment thresholds of the MCU meter, bottom to top.
    const STEPS: [f32; 12] = [
        -60.0, -50.0, -40.0, -30.0, -20.0, -14.0, -10.0, -8.0, -6.0, -4.0, -2.0, 0.0,
    ];
    STEPS.iter().filter(|t| db >= **t).count() as u8
}

/// The channel-pressure value that shows `level` (0..=12) on `strip` (0..=7).
pub fn meter_value(strip: u8, level: u8) -> u8 {
    ((strip & 7) << 4) | level.min(12)
}

/// A timecode/BBT digit as the display's controller value (ASCII digits and letters as the
/// display knows them; `dot` lights the decimal point).
pub fn display_char(c: char, dot: bool) -> u8 {
    let base = match c {
        '0'..='9' => c as u8,
        'A'..='Z' => c as u8 - b'A' + 1,
        'a'..='z' => c as u8 - b'a' + 1,
        '-' => b'-',
        _ => b' ',
    };
    base | if dot { 0x40 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysex_frames_and_parses() {
        let m = sysex_msg(DEVICE_MCU, sysex::DEVICE_QUERY, &[]);
        assert_eq!(m, vec![0xF0, 0x00, 0x00, 0x66, 0x14, 0x00, 0xF7]);
        assert_eq!(
            parse_sysex(&m[1..m.len() - 1]),
            Some((DEVICE_MCU, 0, &[][..]))
        );
        assert_eq!(parse_sysex(&[0x00, 0x20, 0x32, 0x14, 0x00]), None);
    }

    #[test]
    fn challenge_response_follows_the_formula() {
        // Worked by hand: l = 01 02 03 04.
        // r1 = (1 + (2^10) - 4) & 7F = (1 + 8 - 4) = 5
        // r2 = ((3>>4) ^ (1+4)) & 7F = 0 ^ 5 = 5
        // r3 = (4 - (3<<2) ^ (1|2)) & 7F = ((4-12) ^ 3) & 7F = (-8 ^ 3) & 7F = -5 & 7F = 0x7B
        // r4 = (2 - 3 + (0xF0 ^ (4<<4))) & 7F = (-1 + (0xF0 ^ 0x40)) & 7F = (0xAF) & 7F = 0x2F
        assert_eq!(challenge_response([1, 2, 3, 4]), [0x05, 0x05, 0x7B, 0x2F]);
    }

    #[test]
    fn ring_and_meter_encodings() {
        assert_eq!(ring_value(RingMode::Dot, Some(0.5)), 0x06);
        assert_eq!(ring_value(RingMode::Dot, Some(0.0)), 0x01);
        assert_eq!(ring_value(RingMode::BoostCut, Some(1.0)), 0x1B);
        assert_eq!(ring_value(RingMode::Wrap, None), 0x20);
        assert_eq!(ring_value(RingMode::Spread, Some(1.0)), 0x36);
        assert_eq!(meter_level(f32::NEG_INFINITY), 0);
        assert_eq!(meter_level(-61.0), 0);
        assert_eq!(meter_level(-20.0), 5);
        assert_eq!(meter_level(0.5), 12);
        assert_eq!(meter_value(3, 12), 0x3C);
        assert_eq!(display_char('7', true), 0x77);
        assert_eq!(display_char('A', false), 0x01);
    }
}
