#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the PHP SDK self-test, all
# Rust tests (unit, property, and end-to-end with real PHP workers), and every
# fuzz target for a minute from the kept corpus (RR_FUZZ_SECONDS changes the
# minute; 0 skips fuzzing, which CI never does).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

if [ "${CI:-}" = "true" ]; then
    # A one-shot build gains nothing from incremental state, which is as big
    # as the build itself; CI's disk has run full before.
    export CARGO_INCREMENTAL=0
fi
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== PHP SDK self-test"
php tests/php/sdk_selftest.php
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
fuzz_seconds="${RR_FUZZ_SECONDS:-60}"
if [ "${CI:-}" = "true" ] && [ "$fuzz_seconds" -lt 60 ]; then
    echo "test: CI fuzzes every target for at least 60 s (RR_FUZZ_SECONDS=$fuzz_seconds ignored)" >&2
    fuzz_seconds=60
fi
if [ "$fuzz_seconds" -gt 0 ]; then
    echo "== fuzz (${fuzz_seconds}s per target)"
    ./scripts/fuzz.sh "$fuzz_seconds"
fi
# One closing line for the whole run: cargo's own last line is the last
# crate's doc-tests, often "0 passed".
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "total: %d passed, %d failed\n", passed, failed }' "$log"
