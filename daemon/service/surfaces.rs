//! Starting the session's control surfaces as tasks of the daemon.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::ConsoleHandle;
use crate::mcu::{self, McuConfig, Profile};
use crate::midimap::{self, MidiMapConfig};
use crate::session::model::Surface;

/// Ask for the JACK MIDI ports of every `jack:` surface port, so that the JACK backend
/// registers them when it connects. Call before starting the audio backend.
pub fn request_jack_midi(surfaces: &[Surface]) {
    for s in surfaces {
        let ports: Vec<&String> = match s {
            Surface::Mcu {
                midi, extenders, ..
            } => std::iter::once(midi).chain(extenders).collect(),
            Surface::MidiMap { midi, .. } => vec![midi],
            _ => vec![],
        };
        for p in ports {
            if let Ok(crate::midi::PortSpec::Jack(name)) = p.parse() {
                crate::audio::jack_midi::link(&name);
            }
        }
    }
}

/// Start every surface of `surfaces` that this build knows; each runs until `cancel`.
/// Surfaces whose configuration cannot be used are logged and skipped (the console runs on).
pub fn start(
    surfaces: &[Surface],
    console: &ConsoleHandle,
    cancel: &CancellationToken,
    sample_rate: u32,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for s in surfaces {
        if let Surface::Mcu {
            midi,
            extenders,
            profile,
        } = s
        {
            let profile = match load_profile(profile) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("MCU surface {midi}: {e}");
                    continue;
                }
            };
            let ports: Result<Vec<_>, _> = std::iter::once(midi)
                .chain(extenders)
                .map(|m| m.parse())
                .collect();
            let ports = match ports {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("MCU surface: {e}");
                    continue;
                }
            };
            let mut ports = ports.into_iter();
            let cfg = McuConfig {
                main: ports.next().expect("main port"),
                extenders: ports.collect(),
                profile,
                sample_rate,
            };
            tasks.push(tokio::spawn(mcu::run(console.clone(), cfg, cancel.clone())));
        }
        if let Surface::MidiMap { map, midi } = s {
            let port = match midi.parse() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("MIDI map surface: {e}");
                    continue;
                }
            };
            let cfg = MidiMapConfig {
                map: map.clone(),
                port,
            };
            tasks.push(tokio::spawn(midimap::run(
                console.clone(),
                cfg,
                cancel.clone(),
            )));
        }
    }
    tasks
}

fn load_profile(name: &str) -> Result<Profile, String> {
    if let Some(p) = Profile::builtin(name) {
        return Ok(p);
    }
    let text = std::fs::read_to_string(name).map_err(|e| format!("profile {name}: {e}"))?;
    Profile::parse(&text, name)
}
