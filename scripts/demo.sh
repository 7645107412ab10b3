#!/usr/bin/env bash
# Runs the design document's ticker example: two PHP workers, one tick a
# second, each tick printed by PHP and appended to examples/ticker/ticks.log.
# Stop with Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p rr
exec ./target/release/rr serve -c examples/ticker/.rr.yaml "$@"
