#!/usr/bin/env bash
# The test command: install what is missing, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --all-targets
cargo test --all-targets 2>&1
