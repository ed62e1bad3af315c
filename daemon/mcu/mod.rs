//! The Mackie Control host (SPEC §8): MCU, X-Touch, extenders, and FaderPort / iCON devices
//! in MCU mode, over any MIDI transport ([`crate::midi`]).
//!
//! - [`protocol`]: the protocol's bytes.
//! - [`profile`]: device quirks, from `mappings/mcu/*.yaml`.
//! - [`host`]: the state machine: MIDI and console changes in, bytes out.
//! - [`run`]: the task that connects ports, the console and the host.

pub mod host;
pub mod profile;
pub mod protocol;

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use host::{AutoMode, McuHost, VpotMode};
pub use profile::Profile;

use crate::control::ConsoleHandle;
use crate::midi::{MidiPort, PortEvent, PortSpec};

/// How often held-back motor moves are flushed and value lines expire.
const TICK: Duration = Duration::from_millis(5);

/// One MCU surface: a main unit and its extenders.
#[derive(Debug, Clone)]
pub struct McuConfig {
    pub main: PortSpec,
    pub extenders: Vec<PortSpec>,
    pub profile: Profile,
    /// Sample rate, for the timecode display.
    pub sample_rate: u32,
}

/// Run the surface until `cancel`: open the ports, answer the handshake, keep the device and
/// the console in sync.
pub async fn run(console: ConsoleHandle, cfg: McuConfig, cancel: CancellationToken) {
    let origin = console.register_surface("mcu");
    console.set_surface_info(origin, &format!("{} on {}", cfg.profile.name, cfg.main));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, PortEvent)>();
    let mut senders = Vec::new();
    let specs: Vec<PortSpec> = std::iter::once(cfg.main.clone())
        .chain(cfg.extenders.iter().cloned())
        .collect();
    for (unit, spec) in specs.iter().enumerate() {
        let mut port = match MidiPort::open(spec.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("MCU: {e}");
                console.unregister_surface(origin);
                return;
            }
        };
        senders.push(port.sender());
        let tx = tx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = port.recv() => match ev {
                        Some(ev) => if tx.send((unit, ev)).is_err() { break },
                        None => break,
                    },
                }
            }
            // Dropping the port joins its thread (a few ms): keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(port)).await;
        });
    }
    drop(tx);
    let mut host = McuHost::new(console.clone(), origin, cfg.profile.clone(), specs.len());
    let mut changes = console.subscribe();
    let mut modes = console.subscribe_automation();
    let mut meters = console.subscribe_meters();
    let mut tree = console.subscribe_tree();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = rx.recv() => {
                let Some((unit, ev)) = ev else { break };
                let now = Instant::now().into_std();
                match ev {
                    PortEvent::Connected { device } => {
                        tracing::info!("MCU unit {} connected ({device})", unit + 1);
                        host.connected(unit, now);
                    }
                    PortEvent::Disconnected { why } => {
                        tracing::info!("MCU unit {} disconnected ({why})", unit + 1);
                        host.disconnected(unit);
                    }
                    PortEvent::Midi(m) => host.on_midi(unit, m, now),
                }
            }
            c = changes.recv() => match c {
                Ok(c) => host.on_change(&c, Instant::now().into_std()),
                Err(broadcast::error::RecvError::Lagged(_)) => host.refresh(Instant::now().into_std()),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            m = modes.recv() => match m {
                Ok(m) => host.on_mode_change(&m),
                Err(broadcast::error::RecvError::Lagged(_)) => host.refresh(Instant::now().into_std()),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            r = meters.changed() => {
                if r.is_err() { break }
                let m = meters.borrow_and_update().clone();
                host.on_meters(&m, cfg.sample_rate);
            }
            r = tree.changed() => {
                if r.is_err() { break }
                let t = tree.borrow_and_update().clone();
                host.rebuild(&t);
                host.refresh(Instant::now().into_std());
            }
            _ = tick.tick() => host.tick(Instant::now().into_std()),
        }
        for out in host.take_out() {
            if let Some(s) = senders.get(out.unit) {
                s.send_bytes(out.bytes);
            }
        }
    }
    console.unregister_surface(origin);
}
