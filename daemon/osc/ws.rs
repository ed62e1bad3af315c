//! OSCQuery value listening over WebSocket (RFC 6455, the minimum OSCQuery needs): the
//! handshake, masked client text frames carrying `{"COMMAND": "LISTEN"|"IGNORE", "DATA":
//! "/ch/kick/fader_db"}`, and unmasked binary frames to the client, each one OSC message
//! `/PATH ,f VALUE` for a change of a listened path (from anyone). Ping is answered, close
//! ends the connection; frames over [`MAX_FRAME`] bytes, fragmented or unmasked client frames
//! end it too.

use std::collections::HashSet;

use rosc::{OscMessage, OscPacket, OscType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::control::ConsoleHandle;

/// Largest client frame accepted.
pub const MAX_FRAME: usize = 4096;
/// Most paths one connection may listen to.
pub const MAX_LISTEN: usize = 4096;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// SHA-1 of `data` (for the handshake only).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend(bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The `Sec-WebSocket-Accept` value for a client's key.
pub fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{}{GUID}", key.trim()).as_bytes()))
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Read one client frame: (opcode, unmasked payload); None on a protocol error or EOF.
async fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.ok()?;
    let (fin, opcode, masked) = (head[0] & 0x80 != 0, head[0] & 0x0f, head[1] & 0x80 != 0);
    if !fin || !masked {
        return None;
    }
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.ok()?;
            usize::from(u16::from_be_bytes(b))
        }
        127 => return None,
        n => usize::from(n),
    };
    if len > MAX_FRAME {
        return None;
    }
    let mut mask = [0u8; 4];
    s.read_exact(&mut mask).await.ok()?;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((opcode, payload))
}

/// Serve one upgraded connection (the 101 response already sent) until it closes or
/// `shutdown`.
pub async fn serve(mut s: TcpStream, console: ConsoleHandle, shutdown: CancellationToken) {
    let mut changes = console.subscribe();
    let mut listening: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            f = read_frame(&mut s) => {
                let Some((opcode, payload)) = f else { break };
                match opcode {
                    0x1 => command(&payload, &mut listening, &console),
                    0x8 => {
                        let _ = s.write_all(&frame(0x8, &[])).await;
                        break;
                    }
                    0x9 if s.write_all(&frame(0xA, &payload)).await.is_err() => break,
                    _ => {}
                }
            }
            c = changes.recv() => match c {
                Ok(c) => {
                    let path = format!("/{}", c.path);
                    if !listening.contains(&path) {
                        continue;
                    }
                    let msg = OscPacket::Message(OscMessage {
                        addr: path,
                        args: vec![OscType::Float(c.value)],
                    });
                    let Ok(bytes) = rosc::encoder::encode(&msg) else { continue };
                    if s.write_all(&frame(0x2, &bytes)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// `{"COMMAND": "LISTEN"|"IGNORE", "DATA": "/path"}`; anything else is ignored.
fn command(payload: &[u8], listening: &mut HashSet<String>, console: &ConsoleHandle) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let (Some(cmd), Some(path)) = (v["COMMAND"].as_str(), v["DATA"].as_str()) else {
        return;
    };
    // Listen by canonical path (what changes carry), whatever form the client used.
    let tree = console.tree();
    let Some(id) = tree.resolve(path) else {
        return;
    };
    let canonical = format!("/{}", tree.get(id).path);
    match cmd {
        "LISTEN" if listening.len() < MAX_LISTEN => {
            listening.insert(canonical);
        }
        "IGNORE" => {
            listening.remove(&canonical);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_and_base64_match_published_vectors() {
        let hex: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        let hex: String = long.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
