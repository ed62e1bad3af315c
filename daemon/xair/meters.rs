//! `/meters/1` as the console sends it: one OSC blob whose content is a little-endian int32
//! count followed by that many little-endian int16 levels in 1/256 dB.
//!
//! The 40 levels of `/meters/1` ("all channels") are, in order: 16 mono channels, 5 stereo
//! pairs of aux and FX returns, 6 buses, 4 FX sends (all pre-fader), the main L/R (post-fader)
//! and the monitor L/R. From our meters: channel `i` → slot `i` (the louder side's peak),
//! bus `j` → slot `26 + j`, master L/R → slots 36, 37; the returns, FX sends and monitor
//! slots have no counterpart in our model and read as silence. Silence (`-inf`) and anything
//! below -128 dB is written as -128 dB (`i16::MIN`), the console's floor.

use rosc::{OscMessage, OscType};

use crate::engine::Meters;

/// The address a `/meters/1` subscription is answered on by default.
pub const METERS_1: &str = "/meters/1";
/// Number of levels in `/meters/1`.
pub const METERS_1_LEN: usize = 40;
/// First bus slot of `/meters/1`.
pub const METERS_1_BUS: usize = 26;
/// Main L slot of `/meters/1` (main R follows).
pub const METERS_1_MAIN: usize = 36;

/// dB → the console's 1/256 dB int16 (clamped to -128..+127.996 dB; NaN and -inf are -128).
pub fn db_to_level(db: f32) -> i16 {
    if db.is_nan() {
        return i16::MIN;
    }
    (db * 256.0)
        .round()
        .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// The 40 levels of `/meters/1` (see the module doc).
pub fn meters_1_levels(m: &Meters) -> [i16; METERS_1_LEN] {
    let mut out = [i16::MIN; METERS_1_LEN];
    let peak = |p: [f32; 2]| p[0].max(p[1]);
    for (slot, ch) in out.iter_mut().zip(m.channels.iter().take(16)) {
        *slot = db_to_level(peak(ch.peak_db));
    }
    for (slot, bus) in out[METERS_1_BUS..METERS_1_BUS + 6]
        .iter_mut()
        .zip(m.buses.iter())
    {
        *slot = db_to_level(peak(bus.peak_db));
    }
    out[METERS_1_MAIN] = db_to_level(m.master.peak_db[0]);
    out[METERS_1_MAIN + 1] = db_to_level(m.master.peak_db[1]);
    out
}

/// The blob content: int32 LE count, then the int16 LE levels.
pub fn blob(levels: &[i16]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 2 * levels.len());
    b.extend_from_slice(&(levels.len() as i32).to_le_bytes());
    for l in levels {
        b.extend_from_slice(&l.to_le_bytes());
    }
    b
}

/// The `/meters/1` message (sent on `addr`, the address the subscriber asked for).
pub fn meters_1_message(addr: &str, m: &Meters) -> OscMessage {
    OscMessage {
        addr: addr.to_string(),
        args: vec![OscType::Blob(blob(&meters_1_levels(m)))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StripMeters;

    fn strip(l: f32, r: f32) -> StripMeters {
        StripMeters {
            peak_db: [l, r],
            rms_db: [l - 3.0, r - 3.0],
            gate_gr_db: 0.0,
            comp_gr_db: 0.0,
        }
    }

    #[test]
    fn levels_are_256ths_of_a_db() {
        assert_eq!(db_to_level(0.0), 0);
        assert_eq!(db_to_level(-6.0), -1536);
        assert_eq!(db_to_level(-0.5), -128);
        assert_eq!(db_to_level(3.25), 832);
        assert_eq!(db_to_level(-128.0), i16::MIN);
        assert_eq!(db_to_level(f32::NEG_INFINITY), i16::MIN);
        assert_eq!(db_to_level(f32::NAN), i16::MIN);
        assert_eq!(db_to_level(200.0), i16::MAX);
    }

    #[test]
    fn blob_layout_is_count_then_little_endian_levels() {
        let m = Meters {
            channels: vec![strip(-6.0, -12.0), strip(-20.0, -10.0)],
            buses: vec![strip(-3.0, -3.0)],
            master: strip(-1.0, -2.0),
            limiter_gr_db: 0.0,
            position: 0,
            playing: true,
            frame: 0,
            loudness: Default::default(),
        };
        let msg = meters_1_message(METERS_1, &m);
        assert_eq!(msg.addr, "/meters/1");
        let OscType::Blob(b) = &msg.args[0] else {
            panic!("not a blob: {:?}", msg.args)
        };
        assert_eq!(b.len(), 4 + 2 * 40);
        assert_eq!(&b[0..4], &[40, 0, 0, 0], "count 40, little-endian");
        let level = |i: usize| i16::from_le_bytes([b[4 + 2 * i], b[5 + 2 * i]]);
        // -6 dB = -1536 = 0xFA00 → bytes 00 FA.
        assert_eq!(&b[4..6], &[0x00, 0xFA]);
        assert_eq!(level(0), -1536, "louder side of channel 1");
        assert_eq!(level(1), -2560, "channel 2: -10 dB");
        assert_eq!(level(2), i16::MIN, "absent channel 3 is silent");
        assert_eq!(level(METERS_1_BUS), -768, "bus 1: -3 dB");
        assert_eq!(level(METERS_1_MAIN), -256, "main L -1 dB");
        assert_eq!(level(METERS_1_MAIN + 1), -512, "main R -2 dB");
        for i in 16..26 {
            assert_eq!(level(i), i16::MIN, "return slot {i}");
        }
        assert_eq!(level(39), i16::MIN, "monitor R");
        // Round trip through rosc's encoder and decoder: the blob survives byte for byte.
        let bytes = rosc::encoder::encode(&rosc::OscPacket::Message(msg.clone())).unwrap();
        let (_, back) = rosc::decoder::decode_udp(&bytes).unwrap();
        assert_eq!(back, rosc::OscPacket::Message(msg));
    }
}
