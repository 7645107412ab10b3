#!/usr/bin/env bash
# The soak (issue 9): mixed load on one real rr (HTTP from 4 keep-alive
# clients with job pushes, the ticker at 100 ms, a jobs pipeline), `rr reset`
# every 30 s and a random PHP worker SIGKILLed every 3-7 s, for 600 s (or the
# first argument in seconds); loopback only. Writes RELIABILITY.md and fails
# on any unexpected error. Not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p rr -p rr-bench
exec ./target/release/rr-bench --only soak --soak-seconds "${1:-600}"
