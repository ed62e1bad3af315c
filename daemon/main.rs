//! The `faderbridge` command: parses arguments, dispatches to the library and maps errors to
//! exit codes (0 ok, 1 runtime failure, 2 bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use faderbridge::audio::BackendKind;
use faderbridge::media::WavFormat;
use faderbridge::render::{self, RenderOptions};

#[derive(Parser)]
#[command(name = "faderbridge", version, about = "A headless mixing console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the console daemon on a session (the bundled demo when none is given).
    Run {
        /// The session file.
        session: Option<PathBuf>,
        /// Audio backend: JACK when a server answers (auto), JACK, cpal, or an internal clock.
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
        /// Where live state, scenes and the status socket live.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// JACK server name (default: $JACK_DEFAULT_SERVER or the default server).
        #[arg(long)]
        jack_server: Option<String>,
        /// cpal: a substring of the audio device's name.
        #[arg(long)]
        device: Option<String>,
    },
    /// Ask a running daemon for its strips, meters, load, xruns and surfaces.
    Status {
        /// The running daemon's state directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// List the audio, MIDI and serial ports this machine has.
    Ports,
    /// MIDI learn: wait for the next control moved on a mapped device, bind it to PATH and
    /// append the entry to that device's mapping file (comments kept).
    Learn {
        /// The parameter path (`ch/kick/fader_db`, `ch/1/mute`).
        path: String,
        /// Seconds to wait for a control.
        #[arg(long, default_value = "30")]
        timeout: f32,
        /// The running daemon's state directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Bounce a session offline to a stereo WAV, with exactly the live engine.
    Render {
        /// The session file.
        session: PathBuf,
        /// The WAV file to write (replaced atomically when the render succeeds).
        #[arg(short, long)]
        output: PathBuf,
        /// Start of the range, in seconds.
        #[arg(long)]
        start: Option<f64>,
        /// End of the range, in seconds (default: longest stem plus the effects' tail).
        #[arg(long)]
        end: Option<f64>,
        /// Sample format: f32, s24 or s16 (integer formats are TPDF-dithered).
        #[arg(long, default_value = "f32")]
        format: WavFormat,
        /// Play automation: a lane file (README, "Automation lanes") or a daemon's state
        /// directory (its lanes not in mode off, from its parameter values).
        #[arg(long, value_name = "PATH")]
        automation: Option<PathBuf>,
    },
    /// Measure the round-trip latency of a hardware insert on JACK (or store one
    /// given by hand) and keep it in the state directory; exit 2 when refused. When a daemon
    /// runs on that state directory, it measures (while playing), stores and applies it.
    MeasureInsert {
        /// The session file.
        session: PathBuf,
        /// The strip whose `insert:` to measure: a channel (name or 1-based position),
        /// `bus/NAME` or `master`.
        strip: String,
        /// JACK server name (default: $JACK_DEFAULT_SERVER or the default server).
        #[arg(long)]
        jack_server: Option<String>,
        /// Where the result is stored (the daemon's state directory).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Store this latency in samples instead of measuring (overrides a measurement).
        #[arg(long, value_name = "SAMPLES")]
        set: Option<f64>,
    },
    /// Validate a session or a MIDI mapping file; exit 0 if it is valid, 2 with
    /// FILE:LINE:COL messages if not.
    Check {
        /// The session file or mapping file (told apart by a top-level `controls:` list).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            session,
            backend,
            state_dir,
            jack_server,
            device,
        } => {
            // FADERBRIDGE_LOG=debug (or trace, warn, error) changes the level; info by default.
            let level = std::env::var("FADERBRIDGE_LOG")
                .ok()
                .and_then(|l| l.parse::<tracing::Level>().ok())
                .unwrap_or(tracing::Level::INFO);
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_max_level(level)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let opts = faderbridge::service::RunOptions {
                session,
                backend,
                state_dir,
                jack_server,
                device,
            };
            let token = tokio_util::sync::CancellationToken::new();
            match faderbridge::service::run(opts, token) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
                }
            }
        }
        Command::Status { state_dir } => {
            let dir = state_dir.unwrap_or_else(faderbridge::state::StateDir::default_dir);
            match faderbridge::control::query_status(&dir.join("status.sock")) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Learn {
            path,
            timeout,
            state_dir,
        } => {
            let dir = state_dir.unwrap_or_else(faderbridge::state::StateDir::default_dir);
            match learn(&dir.join("status.sock"), &path, timeout) {
                Ok(v) => {
                    println!(
                        "{}: {}",
                        v["map"].as_str().unwrap_or("?"),
                        v["entry"].as_str().unwrap_or("?").trim()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Ports => {
            print!("{}", faderbridge::audio::list_ports());
            ExitCode::SUCCESS
        }
        Command::Render {
            session,
            output,
            start,
            end,
            format,
            automation,
        } => {
            let opts = RenderOptions {
                out: output.clone(),
                start_s: start,
                end_s: end,
                format,
                progress: true,
                automation,
            };
            match render::render(&session, &opts) {
                Ok(report) => {
                    println!("wrote {}", output.display());
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
                }
            }
        }
        Command::MeasureInsert {
            session,
            strip,
            jack_server,
            state_dir,
            set,
        } => {
            // Thrown-away attempts (xruns) are warnings; FADERBRIDGE_LOG=debug shows more.
            let level = std::env::var("FADERBRIDGE_LOG")
                .ok()
                .and_then(|l| l.parse::<tracing::Level>().ok())
                .unwrap_or(tracing::Level::WARN);
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_max_level(level)
                .with_target(false)
                .init();
            let opts = faderbridge::insert::cli::MeasureInsertOptions {
                session,
                strip,
                jack_server,
                state_dir,
                set,
            };
            match faderbridge::insert::cli::measure_insert(&opts) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
                }
            }
        }
        Command::Check { file } if faderbridge::midimap::format::is_map_file(&file) => {
            match faderbridge::midimap::load(&file) {
                Ok(m) => {
                    println!(
                        "{}: ok (mapping file \"{}\", {} controls)",
                        file.display(),
                        m.name,
                        m.controls.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Check { file } => match faderbridge::session::load(&file) {
            Ok(s) => {
                println!(
                    "{}: ok ({} channels, {} buses)",
                    file.display(),
                    s.channels.len(),
                    s.buses.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Ask the daemon at `sock` to learn `path`; the reply once a control moved (or the error).
fn learn(sock: &std::path::Path, path: &str, timeout: f32) -> Result<serde_json::Value, String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| format!("no faderbridge daemon answers at {}: {e}", sock.display()))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs_f32(
        timeout.max(0.0) + 5.0,
    )))
    .map_err(|e| e.to_string())?;
    let req = serde_json::json!({ "cmd": "learn", "path": path, "timeout": timeout });
    writeln!(s, "{req}").map_err(|e| e.to_string())?;
    eprintln!("move a control of a mapped MIDI device (waiting {timeout} s)...");
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("no answer from the daemon: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("bad answer {line:?}: {e}"))?;
    match v.get("error") {
        Some(e) => Err(format!("learn {path}: {}", e.as_str().unwrap_or("?"))),
        None => Ok(v),
    }
}
