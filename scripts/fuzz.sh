#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each, or the
# first argument in seconds) from the corpus kept in fuzz/corpus. The test
# command (scripts/test.sh) runs it for a minute per target. It needs a
# nightly toolchain and cargo-fuzz, and installs them when missing.
# The kept corpus is read only; new inputs go to a temp dir (add the useful
# ones to fuzz/corpus by hand). Crashes land in fuzz/artifacts/<target> and
# fail the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)..." >&2
    rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --version 0.13.2 --locked >/dev/null
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
    echo "== $target (${seconds}s)"
    mkdir -p "$scratch/$target"
    cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- -max_total_time="$seconds" 2>&1 | grep -E "^Done|ERROR|panicked" || true
    if compgen -G "artifacts/$target/crash-*" >/dev/null; then
        echo "fuzz: $target found a crash in fuzz/artifacts/$target" >&2
        exit 1
    fi
done
