#!/usr/bin/env bash
# Install the tools the interop test suite (tests/interop) needs: curl, lftp, wget, pytest.
# Idempotent; meant for Debian/Ubuntu, run as root (CI runs it on a fresh machine).
set -euo pipefail

need=()
for tool in curl lftp wget; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        need+=("$tool")
    fi
done

if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: missing ${need[*]} and not root; install them and rerun" >&2
        exit 1
    fi
    echo "install-test-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
else
    echo "install-test-deps: curl, lftp and wget already present"
fi

if ! python3 -m pytest --version >/dev/null 2>&1; then
    echo "install-test-deps: installing pytest"
    python3 -m pip install pytest
else
    echo "install-test-deps: pytest already present"
fi

# Summary of what the suite will use.
curl --version | head -n 1
lftp --version | head -n 1
wget --version | head -n 1
python3 -m pytest --version
