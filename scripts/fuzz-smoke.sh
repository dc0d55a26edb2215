#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a few seconds each; fails if any finds a crash.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 20)
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them, so no nightly toolchain is required. Crashes are written to fuzz/artifacts/<target>/;
# reproduce one with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`.
# New corpus entries land in fuzz/corpus/<target>/ (git ignores all but the seed-* files).
set -euo pipefail

secs="${1:-20}"
case "$secs" in
    '' | *[!0-9]*)
        echo "usage: $0 [seconds-per-target]" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
. "$root/scripts/fuzz-flags.sh"
targets=$(cargo fuzz list)
failed=()
for target in $targets; do
    echo "fuzz-smoke: $target for ${secs}s" >&2
    # Build first so the time limit is spent fuzzing, not compiling.
    cargo fuzz build "$target"
    if ! cargo fuzz run "$target" -- -max_total_time="$secs" -print_final_stats=1 $(extra_flags "$target"); then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz-smoke: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-smoke: all targets ran ${secs}s without a crash" >&2
