//! Starting the session's control surfaces as tasks of the daemon, and swapping them on a
//! reload.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control::ConsoleHandle;
use crate::mcu::{self, McuConfig, Profile};
use crate::midimap::{self, MidiMapConfig};
use crate::mtc::{self, MtcConfig};
use crate::session::model::Surface;

/// Ask for the JACK MIDI ports of every `jack:` surface port, so that the JACK backend
/// registers them when it connects. Call before starting the audio backend.
pub fn request_jack_midi(surfaces: &[Surface]) {
    for s in surfaces {
        let ports: Vec<&String> = match s {
            Surface::Mcu {
                midi, extenders, ..
            } => std::iter::once(midi).chain(extenders).collect(),
            Surface::MidiMap { midi, .. } | Surface::Mtc { midi } => vec![midi],
            _ => vec![],
        };
        for p in ports {
            if let Ok(crate::midi::PortSpec::Jack(name)) = p.parse() {
                crate::audio::jack_midi::link(&name);
            }
        }
    }
}

/// The session's running surfaces, each under its own cancellation token (a child of the
/// daemon's), so that a reload stops the surfaces that went away or changed and starts the
/// new ones, while unchanged ones (and their clients' subscriptions) run on.
pub struct SurfaceSet {
    console: ConsoleHandle,
    shutdown: CancellationToken,
    sample_rate: u32,
    running: Vec<Running>,
}

struct Running {
    surface: Surface,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl SurfaceSet {
    /// Start every surface of `surfaces` that this build knows. Surfaces whose
    /// configuration cannot be used (an address that cannot be bound, a bad profile) are
    /// logged and skipped; the console runs on.
    pub async fn start(
        surfaces: &[Surface],
        console: &ConsoleHandle,
        shutdown: &CancellationToken,
        sample_rate: u32,
    ) -> SurfaceSet {
        let mut set = SurfaceSet {
            console: console.clone(),
            shutdown: shutdown.clone(),
            sample_rate,
            running: Vec::new(),
        };
        for s in surfaces {
            set.start_one(s).await;
        }
        set
    }

    /// Apply a reloaded session's surface list: stop (and wait for) every running surface
    /// not in `surfaces` with the same settings, then start the new ones. Returns how many
    /// were (stopped, started).
    pub async fn reload(&mut self, surfaces: &[Surface]) -> (usize, usize) {
        let (keep, gone): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| surfaces.contains(&r.surface));
        self.running = keep;
        let stopped = gone.len();
        for r in gone {
            r.token.cancel();
            for t in r.tasks {
                let _ = t.await;
            }
            tracing::info!("reload: stopped the {} surface", describe(&r.surface));
        }
        let mut started = 0;
        for s in surfaces {
            if !self.running.iter().any(|r| &r.surface == s) {
                started += usize::from(self.start_one(s).await);
            }
        }
        if stopped + started > 0 {
            request_jack_midi(surfaces);
        }
        (stopped, started)
    }

    /// Wait for every surface task (after the daemon's shutdown token was cancelled).
    pub async fn join(self) {
        for r in self.running {
            r.token.cancel();
            for t in r.tasks {
                let _ = t.await;
            }
        }
    }

    /// Start one surface; false when it could not be started (logged).
    async fn start_one(&mut self, s: &Surface) -> bool {
        let token = self.shutdown.child_token();
        let tasks = match s {
            Surface::Osc(_) | Surface::Xair(_) => {
                let Some((net, dialect)) = crate::osc::dialect_for(s) else {
                    return false;
                };
                match crate::osc::spawn(net.clone(), dialect, self.console.clone(), token.clone())
                    .await
                {
                    Ok((addr, task)) => {
                        tracing::info!("{} surface listening on {addr} (UDP)", describe(s));
                        vec![task]
                    }
                    Err(e) => {
                        tracing::error!("{} surface on {}: {e}", describe(s), net.listen);
                        return false;
                    }
                }
            }
            Surface::Mcu {
                midi,
                extenders,
                profile,
            } => match mcu_config(midi, extenders, profile, self.sample_rate) {
                Ok(cfg) => vec![tokio::spawn(mcu::run(
                    self.console.clone(),
                    cfg,
                    token.clone(),
                ))],
                Err(e) => {
                    tracing::error!("MCU surface {midi}: {e}");
                    return false;
                }
            },
            Surface::MidiMap { map, midi } => match midi.parse() {
                Ok(port) => {
                    let cfg = MidiMapConfig {
                        map: map.clone(),
                        port,
                    };
                    vec![tokio::spawn(midimap::run(
                        self.console.clone(),
                        cfg,
                        token.clone(),
                    ))]
                }
                Err(e) => {
                    tracing::error!("MIDI map surface: {e}");
                    return false;
                }
            },
            Surface::Mtc { midi } => match midi.parse() {
                Ok(port) => {
                    let cfg = MtcConfig {
                        port,
                        sample_rate: self.sample_rate,
                    };
                    vec![tokio::spawn(mtc::run(
                        self.console.clone(),
                        cfg,
                        token.clone(),
                    ))]
                }
                Err(e) => {
                    tracing::error!("MTC surface: {e}");
                    return false;
                }
            },
        };
        self.running.push(Running {
            surface: s.clone(),
            token,
            tasks,
        });
        true
    }
}

/// The surface's kind, for log lines.
fn describe(s: &Surface) -> &'static str {
    match s {
        Surface::Osc(_) => "osc",
        Surface::Xair(_) => "xair",
        Surface::Mcu { .. } => "mcu",
        Surface::MidiMap { .. } => "midi_map",
        Surface::Mtc { .. } => "mtc",
    }
}

fn mcu_config(
    midi: &str,
    extenders: &[String],
    profile: &str,
    sample_rate: u32,
) -> Result<McuConfig, String> {
    let profile = load_profile(profile)?;
    let ports: Result<Vec<crate::midi::PortSpec>, _> = std::iter::once(midi)
        .chain(extenders.iter().map(String::as_str))
        .map(str::parse)
        .collect();
    let mut ports = ports.map_err(|e| e.to_string())?.into_iter();
    Ok(McuConfig {
        main: ports.next().ok_or("no MIDI port")?,
        extenders: ports.collect(),
        profile,
        sample_rate,
    })
}

fn load_profile(name: &str) -> Result<Profile, String> {
    if let Some(p) = Profile::builtin(name) {
        return Ok(p);
    }
    let text = std::fs::read_to_string(name).map_err(|e| format!("profile {name}: {e}"))?;
    Profile::parse(&text, name)
}
