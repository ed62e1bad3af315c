#!/usr/bin/env bash
# The test command: install what is missing, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# One build of every target in the test profile (no separate dev build, no incremental cache
# unless the caller asks for one): this keeps a fresh clone's target directory small.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --all-targets --no-run
cargo test --all-targets 2>&1
