//! The shipped tablet layouts (`mappings/tablet/`): the Open Stage Control session parses as
//! JSON, the TouchOSC layout is a valid zlib stream of well-formed XML, and every OSC address
//! either binds is a parameter of the demo session's tree (or its `/touch`), a meter address
//! the native dialect sends for that session, or a subscription command.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use faderbridge::params::ParamTree;
use faderbridge::session;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/tablet")
}

/// The demo session as the daemon runs it (written with its stems, then loaded).
fn demo_tree() -> (ParamTree, usize, usize) {
    static DEMO: OnceLock<PathBuf> = OnceLock::new();
    let file = DEMO.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("fb-layouts-{}", std::process::id()));
        faderbridge::demo::ensure(&d).expect("demo written")
    });
    let s = session::load(file).expect("demo session loads");
    (ParamTree::build(&s), s.channels.len(), s.buses.len())
}

/// Why `addr` is not something faderbridge's native dialect answers for the demo session.
fn check(addr: &str, tree: &ParamTree, channels: usize, buses: usize) -> Result<(), String> {
    if ["/subscribe", "/meters/subscribe"].contains(&addr) {
        return Ok(());
    }
    if addr == "/meters/master" {
        return Ok(());
    }
    let strip = |rest: &str, n: usize| {
        rest.parse::<usize>()
            .ok()
            .filter(|i| (1..=n).contains(i))
            .map(|_| ())
            .ok_or(format!("{addr}: no such strip"))
    };
    if let Some(rest) = addr.strip_prefix("/meters/ch/") {
        return strip(rest, channels);
    }
    if let Some(rest) = addr.strip_prefix("/meters/bus/") {
        return strip(rest, buses);
    }
    let path = addr.strip_suffix("/touch").unwrap_or(addr);
    tree.resolve(path)
        .map(|_| ())
        .ok_or(format!("{addr}: not in the demo session's tree"))
}

fn json_addresses(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                if (k == "address" || k == "touchAddress")
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_string());
                }
                json_addresses(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_addresses(v, out)),
        _ => {}
    }
}

#[test]
fn open_stage_control_session_binds_only_existing_addresses() {
    let text = std::fs::read_to_string(dir().join("faderbridge-8ch.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["type"], "session");
    assert_eq!(v["content"]["type"], "root");
    let mut addrs = Vec::new();
    json_addresses(&v, &mut addrs);
    let (tree, ch, bus) = demo_tree();
    // 8 strips × (meter, fader, touch, mute, pan) + master meter, fader, touch.
    assert_eq!(addrs.len(), 8 * 5 + 3, "{addrs:?}");
    for a in &addrs {
        check(a, &tree, ch, bus).unwrap();
    }
    for i in 1..=8 {
        for want in [format!("/ch/{i}/fader_db"), format!("/ch/{i}/mute")] {
            assert!(addrs.contains(&want), "no {want}");
        }
    }
    // The fader law in the session's range: 0.75 of the travel is 0 dB.
    let fader = &v["content"]["widgets"][1];
    assert_eq!(fader["range"]["75%"], 0);
    assert_eq!(fader["range"]["max"], 10);
}

/// Inflate a zlib stream made of stored blocks (what `generate.py` writes), checking its
/// Adler-32.
fn inflate_stored(z: &[u8]) -> Result<Vec<u8>, String> {
    if z.len() < 6 || (u16::from(z[0]) << 8 | u16::from(z[1])) % 31 != 0 || z[0] & 0x0f != 8 {
        return Err("not a zlib stream".into());
    }
    let mut at = 2;
    let mut out = Vec::new();
    loop {
        let head = *z.get(at).ok_or("truncated")?;
        if (head >> 1) & 3 != 0 {
            return Err("compressed block: regenerate with generate.py (stored blocks)".into());
        }
        let len = u16::from_le_bytes([z[at + 1], z[at + 2]]);
        let nlen = u16::from_le_bytes([z[at + 3], z[at + 4]]);
        if len != !nlen {
            return Err("bad stored block length".into());
        }
        at += 5;
        out.extend_from_slice(z.get(at..at + len as usize).ok_or("truncated block")?);
        at += len as usize;
        if head & 1 == 1 {
            break;
        }
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &out {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let want = u32::from_be_bytes(z.get(at..at + 4).ok_or("no checksum")?.try_into().unwrap());
    if (b << 16 | a) != want {
        return Err("Adler-32 mismatch".into());
    }
    Ok(out)
}

/// Check tags nest properly (CDATA sections skipped); returns the element count.
fn well_formed(xml: &str) -> Result<usize, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    let mut count = 0;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let end = r.find("]]>").ok_or("unterminated CDATA")?;
            rest = &r[end + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or(""));
            count += 1;
        }
    }
    if stack.is_empty() {
        Ok(count)
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[test]
fn touchosc_layout_binds_only_existing_addresses() {
    let z = std::fs::read(dir().join("faderbridge-8ch.tosc")).unwrap();
    let xml = String::from_utf8(inflate_stored(&z).unwrap()).expect("UTF-8 XML");
    assert!(xml.contains("<lexml version='3'>"));
    assert!(well_formed(&xml).unwrap() > 100);
    // Every OSC path: the CONSTANT partial inside each <path>.
    let mut addrs = Vec::new();
    for part in xml.split("<path>").skip(1) {
        let body = &part[..part.find("</path>").unwrap()];
        let v = body.split("<![CDATA[").nth(1).unwrap();
        addrs.push(v[..v.find("]]>").unwrap()].to_string());
    }
    let (tree, ch, bus) = demo_tree();
    assert_eq!(addrs.len(), 8 * 5 + 3, "{addrs:?}");
    for a in &addrs {
        check(a, &tree, ch, bus).unwrap();
    }
    // The script renews both subscriptions.
    for a in ["'/subscribe'", "'/meters/subscribe'"] {
        assert!(xml.contains(a), "no {a} in the script");
    }
}
