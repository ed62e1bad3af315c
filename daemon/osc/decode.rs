//! Safe decoding of one UDP datagram into the OSC messages it carries, in order, each with
//! the time tag it is due at.
//!
//! A structural pre-scan runs before `rosc` sees the bytes: it bounds bundle nesting
//! ([`MAX_BUNDLE_DEPTH`]) and array nesting ([`MAX_ARRAY_DEPTH`]) — both would otherwise recurse
//! once per level in the decoder or in `Drop` — counts messages ([`MAX_MESSAGES`]), checks
//! element sizes against the packet and accepts only known type tags. After decoding, every
//! float must be finite and nothing may trail the packet. Every failure is a
//! [`DecodeError`]; nothing here panics on any input (see the proptest in `tests/osc.rs` and
//! the unit tests below).

use rosc::{OscMessage, OscPacket, OscTime, OscType};

/// Deepest bundle nesting accepted (1: a bundle of messages).
pub const MAX_BUNDLE_DEPTH: usize = 4;
/// Deepest array nesting in a type tag string (`[[f]]` is 2).
pub const MAX_ARRAY_DEPTH: usize = 2;
/// Most messages one packet may carry.
pub const MAX_MESSAGES: usize = 256;

/// The OSC time tag meaning "now".
pub const IMMEDIATELY: OscTime = OscTime {
    seconds: 0,
    fractional: 1,
};

/// One message and when it is due ([`IMMEDIATELY`] outside bundles).
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub time: OscTime,
    pub msg: OscMessage,
}

/// Why a datagram is not acceptable OSC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty packet")]
    Empty,
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("neither a message (/...) nor a bundle (#bundle)")]
    NotOsc,
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("bad type tags {0:?}")]
    BadTypeTags(String),
    #[error("bundles nested deeper than {MAX_BUNDLE_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_MESSAGES} messages in one packet")]
    TooMany,
    #[error("{0}: a value is NaN or infinite")]
    NotFinite(String),
    #[error("{0} bytes after the end of the packet")]
    Trailing(usize),
    #[error("{0}")]
    Invalid(String),
}

/// Decode a datagram: every message it carries, in order (bundles flattened; a nested
/// bundle's messages are due at the later of its and its parent's time tag).
///
/// # Errors
/// See [`DecodeError`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Timed>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut count = 0usize;
    let bare = scan(bytes, 0, &mut count)?;
    if bare {
        // A message without a type tag string (older clients' queries): the address only.
        let addr = read_str(bytes, 0)?.0.to_string();
        return Ok(vec![Timed {
            time: IMMEDIATELY,
            msg: OscMessage { addr, args: vec![] },
        }]);
    }
    let (rest, packet) =
        rosc::decoder::decode_udp(bytes).map_err(|e| DecodeError::Invalid(format!("{e:?}")))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    let mut out = Vec::new();
    flatten(packet, IMMEDIATELY, &mut out)?;
    Ok(out)
}

fn later(a: OscTime, b: OscTime) -> OscTime {
    if (a.seconds, a.fractional) >= (b.seconds, b.fractional) {
        a
    } else {
        b
    }
}

fn flatten(p: OscPacket, time: OscTime, out: &mut Vec<Timed>) -> Result<(), DecodeError> {
    match p {
        OscPacket::Message(msg) => {
            if !msg.args.iter().all(finite) {
                return Err(DecodeError::NotFinite(msg.addr));
            }
            out.push(Timed { time, msg });
        }
        OscPacket::Bundle(b) => {
            let t = if b.timetag == IMMEDIATELY {
                time
            } else {
                later(b.timetag, time)
            };
            for p in b.content {
                flatten(p, t, out)?;
            }
        }
    }
    Ok(())
}

fn finite(a: &OscType) -> bool {
    match a {
        OscType::Float(f) => f.is_finite(),
        OscType::Double(d) => d.is_finite(),
        OscType::Inf => false,
        OscType::Array(a) => a.content.iter().all(finite),
        _ => true,
    }
}

/// The padded OSC string at `at`: (text, offset after the padding).
fn read_str(b: &[u8], at: usize) -> Result<(&str, usize), DecodeError> {
    let tail = b.get(at..).ok_or(DecodeError::Truncated("string"))?;
    let nul = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or(DecodeError::Truncated("string without terminator"))?;
    let s = std::str::from_utf8(&tail[..nul]).map_err(|_| DecodeError::NotUtf8)?;
    let end = at + (nul + 4) / 4 * 4;
    if end > b.len() {
        return Err(DecodeError::Truncated("string padding"));
    }
    Ok((s, end))
}

/// Check the structure; returns true for a bare message (address only, no type tags).
fn scan(b: &[u8], depth: usize, count: &mut usize) -> Result<bool, DecodeError> {
    if b.starts_with(b"#bundle\0") {
        if depth + 1 > MAX_BUNDLE_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        if b.len() < 16 {
            return Err(DecodeError::Truncated("bundle time tag"));
        }
        let mut at = 16;
        while at < b.len() {
            let size = b
                .get(at..at + 4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
                .ok_or(DecodeError::Truncated("bundle element size"))?;
            at += 4;
            if size == 0 || size % 4 != 0 || size > b.len() - at {
                return Err(DecodeError::Truncated("bundle element"));
            }
            if scan(&b[at..at + size], depth + 1, count)? {
                // A bare message inside a bundle: rosc cannot decode it; refuse.
                return Err(DecodeError::BadTypeTags(String::new()));
            }
            at += size;
        }
        return Ok(false);
    }
    if b.first() != Some(&b'/') {
        return Err(DecodeError::NotOsc);
    }
    *count += 1;
    if *count > MAX_MESSAGES {
        return Err(DecodeError::TooMany);
    }
    let (_, at) = read_str(b, 0)?;
    if at == b.len() {
        return Ok(true);
    }
    let (tags, _) = read_str(b, at)?;
    let Some(tags_body) = tags.strip_prefix(',') else {
        return Err(DecodeError::BadTypeTags(tags.to_string()));
    };
    let mut arrays = 0usize;
    for c in tags_body.chars() {
        match c {
            'i' | 'f' | 's' | 'b' | 'h' | 'd' | 't' | 'T' | 'F' | 'N' | 'c' | 'r' | 'm' => {}
            '[' => {
                arrays += 1;
                if arrays > MAX_ARRAY_DEPTH {
                    return Err(DecodeError::BadTypeTags(tags.to_string()));
                }
            }
            ']' if arrays > 0 => arrays -= 1,
            // 'I' (infinitum) is refused with the other infinities.
            _ => return Err(DecodeError::BadTypeTags(tags.to_string())),
        }
    }
    if arrays != 0 {
        return Err(DecodeError::BadTypeTags(tags.to_string()));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosc::{OscBundle, encoder};

    fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
        OscPacket::Message(OscMessage {
            addr: addr.into(),
            args,
        })
    }

    #[test]
    fn a_message_and_a_bundle_decode_in_order() {
        let m = encoder::encode(&msg("/ch/1/fader_db", vec![OscType::Float(-6.0)])).unwrap();
        let got = decode(&m).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg.args, vec![OscType::Float(-6.0)]);
        let t = OscTime {
            seconds: 5,
            fractional: 0,
        };
        let b = OscPacket::Bundle(OscBundle {
            timetag: t,
            content: vec![msg("/a", vec![1.into()]), msg("/b", vec![2.into()])],
        });
        let got = decode(&encoder::encode(&b).unwrap()).unwrap();
        let addrs: Vec<&str> = got.iter().map(|t| t.msg.addr.as_str()).collect();
        assert_eq!(addrs, ["/a", "/b"]);
        assert!(got.iter().all(|g| g.time == t));
    }

    #[test]
    fn bare_address_is_a_query() {
        let got = decode(b"/xinfo\0\0").unwrap();
        assert_eq!(got[0].msg.addr, "/xinfo");
        assert!(got[0].msg.args.is_empty());
    }

    #[test]
    fn deep_bundles_and_arrays_are_refused() {
        let mut p = msg("/a", vec![]);
        for _ in 0..MAX_BUNDLE_DEPTH {
            p = OscPacket::Bundle(OscBundle {
                timetag: IMMEDIATELY,
                content: vec![p],
            });
        }
        assert!(decode(&encoder::encode(&p).unwrap()).is_ok());
        let p = OscPacket::Bundle(OscBundle {
            timetag: IMMEDIATELY,
            content: vec![p],
        });
        assert_eq!(
            decode(&encoder::encode(&p).unwrap()),
            Err(DecodeError::TooDeep)
        );
        // 10 000 nested arrays in the type tags: refused before anything recurses.
        let mut raw = b"/a\0\0,".to_vec();
        raw.extend(std::iter::repeat_n(b'[', 10_000));
        raw.extend(std::iter::repeat_n(b']', 10_000));
        raw.extend([0u8; 4]);
        while !raw.len().is_multiple_of(4) {
            raw.push(0);
        }
        assert!(matches!(decode(&raw), Err(DecodeError::BadTypeTags(_))));
    }

    #[test]
    fn non_finite_values_are_refused() {
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let m = encoder::encode(&msg("/a", vec![OscType::Float(v)])).unwrap();
            assert!(matches!(decode(&m), Err(DecodeError::NotFinite(_))));
        }
        let m = encoder::encode(&msg("/a", vec![OscType::Double(f64::NAN)])).unwrap();
        assert!(matches!(decode(&m), Err(DecodeError::NotFinite(_))));
    }

    #[test]
    fn every_truncation_of_a_good_packet_is_an_error_not_a_panic() {
        let b = OscPacket::Bundle(OscBundle {
            timetag: IMMEDIATELY,
            content: vec![
                msg("/ch/kick/fader_db", vec![OscType::Float(-3.0)]),
                msg("/scene/save", vec![OscType::String("verse".into())]),
            ],
        });
        let full = encoder::encode(&b).unwrap();
        let first = encoder::encode(&msg("/ch/kick/fader_db", vec![OscType::Float(-3.0)]))
            .unwrap()
            .len();
        for n in 0..full.len() {
            // Cuts at a 4-byte boundary inside an element are caught by the size check.
            let r = decode(&full[..n]);
            // Cut between elements it is a shorter bundle, which is valid OSC.
            let boundary = match &r {
                Ok(v) if n == 16 => v.is_empty(),
                Ok(v) if n == 16 + 4 + first => v.len() == 1,
                _ => false,
            };
            assert!(r.is_err() || boundary, "a packet cut at {n} decoded: {r:?}");
        }
    }
}
