//! Generic MIDI controllers (`kind: midi_map` surfaces): any controller drives any parameter
//! through a mapping file (`mappings/<device>.yaml`), with no code.
//!
//! - [`format`]: the mapping file: its YAML shape, validation with `FILE:LINE:COL` errors,
//!   path suggestions and conflict checks (`faderbridge check`).
//! - [`engine`]: one map on one device: sources, transforms, relative encoders, banks and
//!   the shift layer, soft takeover, feedback. Pure logic over the console.
//! - [`learn`]: MIDI learn: the next control of a device bound to a path, appended to its map.
//! - [`watch`]: hot reload: the mapping file's folder is watched, changes are debounced.
//! - [`run`]: the surface task: port, console, engine and watcher together.
//!
//! It talks to the console only ([`ConsoleHandle`]); it never touches the engine or DSP.

pub mod engine;
pub mod format;
pub mod learn;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use engine::MapEngine;
pub use format::{MidiMap, load};

use crate::control::ConsoleHandle;
use crate::midi::{MidiPort, PortEvent, PortSpec};

/// One `midi_map` surface.
#[derive(Debug, Clone)]
pub struct MidiMapConfig {
    /// The mapping file (watched for changes).
    pub map: PathBuf,
    pub port: PortSpec,
}

/// Run the surface until `cancel`: load the map, open the port, keep device and console in
/// sync, and reload the map when its file changes (a broken edit keeps the previous map).
pub async fn run(console: ConsoleHandle, cfg: MidiMapConfig, cancel: CancellationToken) {
    let map = match format::load(&cfg.map) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!("MIDI map surface {}: {e}", cfg.port);
            return;
        }
    };
    let mut text = std::fs::read_to_string(&cfg.map).unwrap_or_default();
    let origin = console.register_surface("midi_map");
    let info = |m: &MidiMap| format!("{} ({}) on {}", m.name, cfg.map.display(), cfg.port);
    console.set_surface_info(origin, &info(&map));
    let mut port = match MidiPort::open(cfg.port.clone()) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("MIDI map: {e}");
            console.unregister_surface(origin);
            return;
        }
    };
    let (watcher, mut reloads) = match watch::watch(&cfg.map) {
        Ok((w, r)) => (Some(w), Some(r)),
        Err(e) => {
            tracing::warn!("MIDI map {}: no hot reload ({e})", cfg.map.display());
            (None, None)
        }
    };
    let mut engine = MapEngine::new(console.clone(), origin, map);
    let mut changes = console.subscribe();
    let mut modes = console.subscribe_automation();
    let mut tree = console.subscribe_tree();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = port.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    PortEvent::Connected { device } => {
                        tracing::info!("MIDI map {}: connected ({device})", engine.map().name);
                        engine.connected();
                    }
                    PortEvent::Disconnected { why } => {
                        tracing::info!("MIDI map {}: disconnected ({why})", engine.map().name);
                    }
                    PortEvent::Midi(m) => {
                        if learn::is_pending()
                            && let Some(new_text) = learn::offer(&m, &cfg.map)
                        {
                            match format::parse_str(&new_text, &cfg.map) {
                                Ok(new) => {
                                    text = new_text;
                                    engine.set_map(Arc::new(new));
                                }
                                Err(e) => tracing::error!("MIDI learn: {e}"),
                            }
                        } else {
                            engine.on_midi(m, std::time::Instant::now());
                        }
                    }
                }
            }
            c = changes.recv() => match c {
                Ok(c) => engine.on_change(&c),
                Err(broadcast::error::RecvError::Lagged(_)) => engine.refresh(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            m = modes.recv() => match m {
                Ok(m) => engine.on_mode_change(&m),
                Err(broadcast::error::RecvError::Lagged(_)) => engine.refresh(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            r = tree.changed() => {
                if r.is_err() { break }
                let t = tree.borrow_and_update().clone();
                engine.set_tree(t);
            }
            Some(()) = async { match reloads.as_mut() { Some(r) => r.recv().await, None => None } } => {
                let new_text = std::fs::read_to_string(&cfg.map).unwrap_or_default();
                if new_text == text {
                    continue;
                }
                match format::parse_str(&new_text, &cfg.map) {
                    Ok(m) => {
                        text = new_text;
                        tracing::info!("MIDI map {}: reloaded {}", m.name, cfg.map.display());
                        console.set_surface_info(origin, &info(&m));
                        engine.set_map(Arc::new(m));
                    }
                    Err(e) => {
                        tracing::error!("MIDI map {}: the edit is not valid, keeping the previous map:\n{e}", cfg.map.display());
                    }
                }
            }
        }
        let out = engine.take_out();
        if !out.is_empty() {
            let mut bytes = Vec::new();
            for ev in &out {
                let _ = ev.encode(&mut bytes);
            }
            port.send_bytes(bytes);
        }
    }
    drop(watcher);
    console.unregister_surface(origin);
    // Dropping the port joins its thread (a few ms): keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(port)).await;
}
