#!/usr/bin/env bash
# Browser form-upload test: headless Chromium submits a multipart form (text fields + two files)
# to tests/php/http_form_upload.php served by `rr serve`; see tests/browser/form_upload.php.
#
#   tests/browser/form_upload.sh            # uses $RR_BIN, else builds `cargo build -p rr`
#
# Needs php 8.1+ and Debian's chromium (apt-get install -y chromium). Without chromium the
# test is skipped: it prints "0 passed, 0 failed, 1 skipped" and exits 0 (unless REQUIRE_BROWSER=1).
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    echo "skipped: no chromium at $chromium (apt-get install -y chromium)"
    if [[ "${REQUIRE_BROWSER:-0}" == "1" ]]; then exit 2; fi
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi

if [[ -z "${RR_BIN:-}" ]]; then
    cargo build -q -p rr
    RR_BIN="${CARGO_TARGET_DIR:-target}/debug/rr"
fi
RR_BIN="$(realpath "$RR_BIN")" CHROMIUM="$chromium" exec php tests/browser/form_upload.php
