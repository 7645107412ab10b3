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
cargo test --workspace --locked
