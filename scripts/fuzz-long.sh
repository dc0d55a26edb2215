#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for RUNS executions each (default 1,000,000) and prints one
# line per target: its executions, seconds, executions per second and coverage. Fails if any target
# finds a crash (reproduce it as scripts/fuzz-smoke.sh explains).
#
# Usage: scripts/fuzz-long.sh [RUNS] [TARGET...]
set -euo pipefail

runs="${1:-1000000}"
shift || true
case "$runs" in
    '' | *[!0-9]*)
        echo "usage: $0 [runs] [target...]" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
. "$root/scripts/fuzz-flags.sh"
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi
failed=()
for target in "${targets[@]}"; do
    cargo fuzz build "$target" >/dev/null 2>&1 || cargo fuzz build "$target"
    log="$(mktemp)"
    start=$(date +%s)
    if cargo fuzz run "$target" -- -runs="$runs" -print_final_stats=1 $(extra_flags "$target") >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$target")
    fi
    secs=$(($(date +%s) - start))
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
    echo "fuzz-long: $target $status: ${done_line:-no summary} (${secs}s wall, $cov)"
    if [ "$status" = CRASH ]; then
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2 || tail -20 "$log" >&2
    fi
    rm -f "$log"
done
if ((${#failed[@]})); then
    echo "fuzz-long: crashes in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
