//! The `faderbridge` command: parses arguments, dispatches to the library and maps errors to
//! exit codes (0 ok, 1 runtime failure, 2 bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "faderbridge", version, about = "A headless mixing console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a session file; exit 0 if it is valid, 2 with FILE:LINE:COL messages if not.
    Check {
        /// The session file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
