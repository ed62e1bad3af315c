//! OSCQuery (the Vidvox proposal) on the OSC surface's port number, over TCP: a minimal
//! HTTP/1.1 server answering
//! - `GET /` → the whole tree: nested `CONTENTS`, each parameter with `FULL_PATH`, `TYPE`
//!   (`"f"`), `RANGE` (`[{MIN, MAX}]`; `MIN` left out when the range is open to `-inf`),
//!   `VALUE` (`[v]`, `[null]` for `-inf`), `ACCESS` (3 read/write; 1 for the engine's
//!   read-only statistics), `DESCRIPTION` and `UNIT`;
//! - `GET /?HOST_INFO` → name, OSC port and transport, supported extensions;
//! - `GET /ch/kick/fader_db` → that node (a container or a parameter);
//!   `GET /ch/kick/fader_db?VALUE` → `{"VALUE": [v]}` (any attribute likewise).
//!
//! One request per connection (`Connection: close`), requests up to 8 KiB, at most
//! [`MAX_CONNECTIONS`] at once (WebSockets included), 5 s to send the request; the surface's
//! `allow` list applies. A WebSocket upgrade on any path serves `LISTEN`/`IGNORE`
//! ([`super::ws`]). No mDNS advertisement yet.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::guard::{Access, Dropped, Guard};
use crate::control::{
    ConsoleHandle, ENGINE_DSP_LOAD, ENGINE_DSP_LOAD_PEAK, ENGINE_LATENCY, ENGINE_XRUNS,
};
use crate::params::spec::Unit;
use crate::params::{Param, ParamTree};

/// Most HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
const MAX_REQUEST: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The OSCQuery side of a native OSC surface.
pub struct QueryServer {
    pub(crate) console: ConsoleHandle,
    pub(crate) guard: Arc<Guard>,
    /// The UDP port the OSC server listens on (HOST_INFO).
    pub(crate) osc_port: u16,
}

impl QueryServer {
    /// Accept connections until `shutdown`.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = listener.accept() => {
                    let (stream, peer) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::debug!("oscquery accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if me.guard.access(peer.ip()) == Access::Denied {
                        me.guard.reject(Dropped::Disallowed, peer, &"OSCQuery connection not in allow");
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    let me = me.clone();
                    let token = shutdown.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let upgraded = tokio::time::timeout(READ_TIMEOUT * 2, me.serve(stream)).await;
                        if let Ok(Ok(Some(ws))) = upgraded {
                            super::ws::serve(ws, me.console.clone(), token).await;
                        }
                    });
                }
            }
        }
    }

    /// Answer one request; a WebSocket upgrade returns the stream for [`super::ws::serve`].
    async fn serve(&self, mut stream: TcpStream) -> std::io::Result<Option<TcpStream>> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if buf.len() > MAX_REQUEST {
                respond(&mut stream, 431, "text/plain", "request too large\n").await?;
                return Ok(None);
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let line = head.lines().next().unwrap_or("");
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method != "GET" {
            respond(&mut stream, 405, "text/plain", "only GET\n").await?;
            return Ok(None);
        }
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if let (true, Some(key)) = (upgrade, header("sec-websocket-key")) {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                super::ws::accept_key(&key)
            );
            stream.write_all(head.as_bytes()).await?;
            return Ok(Some(stream));
        }
        let (status, body) = self.answer(target);
        let text = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        respond(&mut stream, status, "application/json", &text).await?;
        Ok(None)
    }

    /// The status and JSON answer for a request target (`/ch/kick?VALUE`).
    pub fn answer(&self, target: &str) -> (u16, Value) {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        if query == Some("HOST_INFO") {
            return (200, self.host_info());
        }
        let tree = self.console.tree();
        let root = build_tree(&tree, &self.console);
        let mut node = &root;
        for part in path.split('/').filter(|s| !s.is_empty()) {
            match node.get("CONTENTS").and_then(|c| c.get(part)) {
                Some(n) => node = n,
                None => return (404, json!({ "error": format!("no node {path}") })),
            }
        }
        match query {
            None | Some("") => (200, node.clone()),
            Some(attr) => match node.get(attr) {
                Some(v) => (200, json!({ attr: v })),
                None => (204, Value::Null),
            },
        }
    }

    fn host_info(&self) -> Value {
        json!({
            "NAME": "faderbridge",
            "OSC_PORT": self.osc_port,
            "OSC_TRANSPORT": "UDP",
            "EXTENSIONS": {
                "ACCESS": true, "VALUE": true, "RANGE": true, "DESCRIPTION": true,
                "UNIT": true, "TYPE": true, "FULL_PATH": true, "CONTENTS": true,
                "TAGS": false, "CLIPMODE": false, "CRITICAL": false, "OVERLOADS": false,
                "LISTEN": true, "PATH_CHANGED": false,
            }
        })
    }
}

async fn respond(s: &mut TcpStream, status: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let body = if status == 204 { "" } else { body };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

/// The OSCQuery unit string of a parameter unit.
fn unit(u: Unit) -> Option<&'static str> {
    match u {
        Unit::Db => Some("dB"),
        Unit::Hz => Some("Hz"),
        Unit::Ms => Some("ms"),
        Unit::Seconds => Some("s"),
        Unit::Ratio => Some("ratio"),
        Unit::Pan => Some("pan"),
        Unit::Amount => Some("amount"),
        Unit::Bool => Some("boolean"),
        Unit::Choice(_) => Some("choice"),
        Unit::Number => None,
    }
}

fn num(v: f32) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn leaf(p: &Param, value: f32) -> Value {
    let s = p.spec;
    let mut range = Map::new();
    if s.min.is_finite() {
        range.insert("MIN".into(), json!(s.min));
    }
    range.insert("MAX".into(), json!(s.max));
    if let Unit::Choice(names) = s.unit {
        range.insert("VALS".into(), json!((0..names.len()).collect::<Vec<_>>()));
    }
    let mut desc = s.description.to_string();
    if let Unit::Choice(names) = s.unit {
        desc = format!("{desc} ({})", names.join(", "));
    }
    let mut n = json!({
        "FULL_PATH": format!("/{}", p.path),
        "TYPE": "f",
        "RANGE": [Value::Object(range)],
        "VALUE": [num(value)],
        "ACCESS": 3,
        "DESCRIPTION": desc,
    });
    if let Some(u) = unit(s.unit) {
        n["UNIT"] = json!([u]);
    }
    n
}

fn insert(root: &mut Value, path: &str, node: Value) {
    let mut cur = root;
    let mut full = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        full.push('/');
        full.push_str(part);
        let contents = cur
            .as_object_mut()
            .map(|o| o.entry("CONTENTS").or_insert_with(|| json!({})));
        let Some(contents) = contents else { return };
        if i + 1 == parts.len() {
            contents[*part] = node;
            return;
        }
        if contents.get(*part).is_none() {
            contents[*part] = json!({ "FULL_PATH": full.clone(), "ACCESS": 0 });
        }
        cur = &mut contents[*part];
    }
}

/// The whole parameter tree as OSCQuery JSON, with current values.
pub fn build_tree(tree: &ParamTree, console: &ConsoleHandle) -> Value {
    let mut root = json!({ "FULL_PATH": "/", "ACCESS": 0, "DESCRIPTION": "faderbridge" });
    for p in tree.params() {
        let v = console.get_sync(&p.path).unwrap_or(p.initial);
        insert(&mut root, &p.path, leaf(p, v));
    }
    let stats = [
        (ENGINE_DSP_LOAD, "DSP load, percent of the period", "%"),
        (
            ENGINE_DSP_LOAD_PEAK,
            "peak DSP load since start, percent of the period",
            "%",
        ),
        (ENGINE_XRUNS, "xruns since start", "count"),
        (
            ENGINE_LATENCY,
            "added latency: limiter look-ahead plus insert compensation",
            "samples",
        ),
    ];
    for (path, desc, u) in stats {
        let v = console.get_sync(path).unwrap_or(0.0);
        let node = json!({
            "FULL_PATH": format!("/{path}"),
            "TYPE": "f",
            "VALUE": [num(v)],
            "ACCESS": 1,
            "DESCRIPTION": desc,
            "UNIT": [u],
        });
        insert(&mut root, path, node);
    }
    root
}
