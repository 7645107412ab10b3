#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the PHP SDK self-test, and all
# Rust tests (unit, property, and end-to-end with real PHP workers).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

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
# One closing line for the whole run: cargo's own last line is the last
# crate's doc-tests, often "0 passed".
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "total: %d passed, %d failed\n", passed, failed }' "$log"
