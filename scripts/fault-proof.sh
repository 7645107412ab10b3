#!/usr/bin/env bash
# Proves that the fault and security tests (issue 9) catch what they guard.
#
# Each scripts/fault-proof/NN-name.patch takes one fix out of the code: its
# "Guards:" line says what the fix does, its "Test:" lines name the tests
# that must notice. For every patch this script applies it to a scratch
# worktree of HEAD, builds, runs the named tests, and expects each of them
# to FAIL. Before that, the same tests must pass on the unpatched tree, or
# a failure would prove nothing.
#
# Writes docs/fault-proof.md (or the path given by --out) and exits non-zero
# if a patch no longer applies or builds, or a named test does not fail.
# Takes about 20 minutes on 2 cores. Not part of the test command: it builds
# the workspace once per patch.
#
#   ./scripts/fault-proof.sh [--out FILE] [patch-name-filter]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

out=docs/fault-proof.md
filter=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *) filter="$1"; shift ;;
    esac
done

./scripts/setup.sh
# A missing PHP or broker must fail a test, not skip it: a skipped test
# would "pass" the baseline and "pass" under the patch.
export CI=true
# Its own target dir: the mutated `rr` binary must never replace the one the
# ordinary test run uses.
export CARGO_TARGET_DIR="${FAULT_PROOF_TARGET:-$root/target/fault-proof}"

work=$(mktemp -d /tmp/rr-fault-proof.XXXXXX)
# Workers that drop to server.user must be able to read the scripts.
chmod 755 "$work"
cleanup() {
    git -C "$root" worktree remove --force "$work" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
git worktree add --quiet --detach "$work" HEAD
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "fault-proof: uncommitted changes are not part of the proof (it runs on HEAD)" >&2
fi

patches=()
for p in scripts/fault-proof/*.patch; do
    case "$p" in *"$filter"*) patches+=("$p") ;; esac
done
[ ${#patches[@]} -gt 0 ] || { echo "fault-proof: no patch matches '$filter'" >&2; exit 2; }

tests_of() { sed -n 's/^Test: //p' "$1"; }
guards_of() { sed -n 's/^Guards: //p' "$1"; }

# Runs the named tests in the worktree; prints the names that failed.
run_tests() {
    local log
    log=$(mktemp)
    (cd "$work" && cargo test -p rr --test e2e -- --exact --test-threads 2 "$@") >"$log" 2>&1 || true
    sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log"
    # A misspelt name would run nothing and prove nothing.
    if ! grep -q "^running $# tests\?$" "$log" || ! grep -q '^test result:' "$log"; then
        echo "fault-proof: the run of $# named tests did not finish:" >&2
        tail -20 "$log" >&2
        echo "__did_not_run__"
    fi
    rm -f "$log"
}

mapfile -t all_tests < <(for p in "${patches[@]}"; do tests_of "$p"; done | sort -u)
echo "== baseline: ${#all_tests[@]} tests on the unpatched tree"
(cd "$work" && cargo test -q -p rr --test e2e --no-run)
started=$(date +%s)
baseline_failed=$(run_tests "${all_tests[@]}")
if [ -n "$baseline_failed" ]; then
    echo "fault-proof: these fail without any patch, so they prove nothing:" >&2
    echo "$baseline_failed" >&2
    exit 1
fi

rows=()
bad=0
for p in "${patches[@]}"; do
    name=$(basename "$p" .patch)
    mapfile -t tests < <(tests_of "$p")
    git -C "$work" checkout --quiet -- .
    echo "== $name: $(guards_of "$p")"
    verdict=""
    if ! git -C "$work" apply "$root/$p"; then
        verdict="❌ patch no longer applies"
    elif ! (cd "$work" && cargo test -q -p rr --test e2e --no-run) >/dev/null 2>&1; then
        verdict="❌ patched tree does not build"
    else
        failed=$(run_tests "${tests[@]}")
        missed=()
        for t in "${tests[@]}"; do
            grep -qxF "$t" <<<"$failed" || missed+=("$t")
        done
        if grep -qx "__did_not_run__" <<<"$failed"; then
            verdict="❌ tests did not run"
        elif [ ${#missed[@]} -eq 0 ]; then
            verdict="✅ fails"
        else
            verdict="❌ still passes: ${missed[*]}"
        fi
    fi
    echo "   $verdict"
    case "$verdict" in ✅*) ;; *) bad=$((bad + 1)) ;; esac
    test_cells=$(printf '`%s`<br>' "${tests[@]}")
    rows+=("| \`$name\` | $(guards_of "$p") | ${test_cells%<br>} | $verdict |")
done
git -C "$work" checkout --quiet -- .
took=$(( $(date +%s) - started ))

mkdir -p "$(dirname "$out")"
{
    echo "# Fault proof: each fault test fails without its fix"
    echo
    echo "Written by \`./scripts/fault-proof.sh\`. Each patch in \`scripts/fault-proof/\` takes one fix out of rr; the tests it names must then fail (and must pass on the unpatched tree, checked first). Commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), ${took} s."
    echo
    echo "| patch | the fix it removes | tests | result |"
    echo "|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$out"
echo "fault-proof: ${#patches[@]} patches, $bad not caught; wrote $out"
[ "$bad" -eq 0 ]
