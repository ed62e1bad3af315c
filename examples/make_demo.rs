//! make-demo: writes the demo session's stems (see `faderbridge::demo`).
//!
//! Run: `cargo run --release --example make-demo -- [OUT_DIR]` (default `examples/demo/stems`).

use std::path::{Path, PathBuf};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/stems"));
    println!(
        "writing stems to {} (100 BPM, 30 s, 48 kHz / 24-bit)",
        dir.display()
    );
    match faderbridge::demo::generate(&dir) {
        Ok(stems) => {
            for (name, peak) in stems {
                println!("  {name:<8} {peak:6.1} dBFS peak");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
