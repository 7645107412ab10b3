#!/usr/bin/env bash
# Measures rr side by side in one run and rewrites BENCHMARKS.md and the plots
# in docs/benchmarks/: the worker round trip through our pool against the
# bare-pipe limit (1, 2 and 8 workers x 16 B, 4 KiB, 64 KiB), start-up,
# memory, ticker lateness at 10 ms over 60 s, schedule drift at 100 ms over
# 60 s, and HTTP (rr vs nginx + php-fpm, with wrk). Takes about 6 minutes.
# A RoadRunner binary in RR_BENCH_ROADRUNNER is measured beside rr.
# Extra arguments go to rr-bench (e.g. --quick, --only exec).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The HTTP section's peers and load tool (Debian packages); not needed by tests.
bench_missing=()
command -v nginx >/dev/null 2>&1 || bench_missing+=(nginx)
command -v php-fpm8.2 >/dev/null 2>&1 || bench_missing+=(php8.2-fpm)
command -v wrk >/dev/null 2>&1 || bench_missing+=(wrk)
if [ ${#bench_missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${bench_missing[@]}" >/dev/null
fi
cargo build --release -p rr -p rr-bench
exec ./target/release/rr-bench "$@"
