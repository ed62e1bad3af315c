#!/usr/bin/env bash
# Render the demo: build faderbridge, generate the demo stems if needed, and bounce the demo
# session to examples/demo/mix.wav with its loudness report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --bins --examples
if [ ! -f examples/demo/stems/kick.wav ]; then
  target/release/examples/make-demo examples/demo/stems
fi
target/release/faderbridge check examples/demo/session.yaml
target/release/faderbridge render examples/demo/session.yaml -o examples/demo/mix.wav "$@"
