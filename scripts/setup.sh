#!/usr/bin/env bash
# Installs what rr's demo and tests need and a fresh machine may lack:
# php-cli (Debian package). Safe to run again; does nothing when all is there.
set -euo pipefail

need_php() { ! command -v php >/dev/null 2>&1; }

if need_php; then
    echo "setup: installing php-cli from Debian packages..." >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq php-cli >/dev/null
fi
if need_php; then
    echo "setup: php is still missing after installing php-cli" >&2
    exit 1
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
