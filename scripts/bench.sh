#!/usr/bin/env bash
# Measures rr side by side in one run and rewrites BENCHMARKS.md and the plots
# in docs/benchmarks/: the worker round trip through our pool against the
# bare-pipe limit (1, 2 and 8 workers x 16 B, 4 KiB, 64 KiB), start-up,
# memory, and ticker lateness at 10 ms over 60 s. Takes about 4 minutes.
# A RoadRunner binary in RR_BENCH_ROADRUNNER is measured beside rr.
# Extra arguments go to rr-bench (e.g. --quick, --only exec).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p rr -p rr-bench
exec ./target/release/rr-bench "$@"
