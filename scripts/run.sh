#!/usr/bin/env bash
# The main job: build faderbridge and run the console daemon on the bundled demo session
# (JACK when a server answers, else the null backend), until Ctrl-C / SIGTERM.
# Extra arguments go to `faderbridge run` (e.g. a session file, --backend jack).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --bins
exec target/release/faderbridge run "$@"
