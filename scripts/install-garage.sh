#!/usr/bin/env bash
# Install Garage 2.5.0 (the S3 engine the S3 interop tests run against: tests/interop/test_s3.py)
# with cargo, unless a garage binary reporting 2.5.0 is already in PATH or ~/.cargo/bin.
# Idempotent. The build is trimmed for CI (sqlite only, no lmdb/k2v/metrics, opt-level 1):
# about 950 CPU-seconds, so 8 to 16 minutes on a fresh 2-core machine.
#
# `garage --version` prints e.g. `garage cargo:2.5.0 [features: bundled-libs, sqlite]`
# (`git:v2.5.0...` for builds from a git checkout); any 2.5.0 counts.
set -euo pipefail

WANT=2.5.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

# Prints the path of the first garage (PATH first, then cargo's bin directory) that reports $WANT.
find_garage() {
    local cand ver
    for cand in "$(command -v garage 2>/dev/null || true)" "$CARGO_BIN/garage"; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        ver="$("$cand" --version 2>/dev/null || true)"
        # 2.5.0 as a whole version: not 2.5.01, 12.5.0 or 2.5.0.1
        if printf '%s\n' "$ver" | grep -Eq "(^|[^0-9.])v?${WANT//./\\.}([^0-9.]|\$)"; then
            echo "$cand"
            return 0
        fi
        echo "install-garage: $cand reports '${ver:-nothing}', not $WANT" >&2
    done
    return 1
}

if found="$(find_garage)"; then
    echo "install-garage: $found already reports $("$found" --version 2>/dev/null); nothing to do"
    exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-garage: cargo not found; install a Rust toolchain (rustup) and rerun" >&2
    exit 1
fi

echo "install-garage: building garage $WANT with cargo install (sqlite only, opt-level 1; 8-16 min on 2 cores)"
set -x
CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install garage --locked --version "$WANT" \
    --no-default-features --features bundled-libs,sqlite
set +x

if ! found="$(find_garage)"; then
    echo "install-garage: cargo install finished but no garage reporting $WANT was found" >&2
    exit 1
fi
echo "install-garage: installed $found: $("$found" --version 2>/dev/null)"
case ":$PATH:" in
*":$CARGO_BIN:"*) ;;
*) echo "install-garage: note: $CARGO_BIN is not in PATH; the test scripts look there too" ;;
esac
