#!/usr/bin/env bash
# Install what the end-to-end benchmark (`cargo run -p xtask --release -- bench`) compares Ferry
# with: vsftpd and Pure-FTPd (scripts/install-peer-servers.sh), curl and lftp
# (scripts/install-test-deps.sh), and ProFTPD. Idempotent; Debian/Ubuntu, run as root. Nothing is
# started or registered as a service: the benchmark runs every server as its own foreground process
# on loopback high ports with a configuration it writes to a temp dir.
#
# Debian's proftpd-core "Provides/Conflicts: ftp-server" like vsftpd and pure-ftpd, so apt cannot
# install it beside vsftpd. Its .deb is fetched with `apt-get download` and unpacked (no maintainer
# scripts, no inetd, no service) under /opt/ferry-peers/proftpd-core, its shared libraries are
# installed by apt-get, and /usr/local/sbin/proftpd links to the binary. Its loadable modules stay
# in /opt/ferry-peers/proftpd-core/usr/lib/proftpd (the benchmark's configuration names that
# ModulePath).
#
# A missing server is not fatal for the benchmark (it runs against whatever is installed), so this
# script warns instead of failing when it cannot install something (not root, no network).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
. "$here/no-services.sh"
PEERS=/opt/ferry-peers
status=0

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
have_proftpd() { [ -x /usr/sbin/proftpd ] || [ -x /usr/local/sbin/proftpd ] || command -v proftpd >/dev/null 2>&1; }

if ! bash "$here/install-peer-servers.sh"; then
    echo "install-bench-deps: warning: vsftpd/Pure-FTPd installation failed; the benchmark skips what is missing" >&2
    status=1
fi
if ! bash "$here/install-test-deps.sh" >/dev/null; then
    echo "install-bench-deps: warning: curl/lftp installation failed; the client rows need them" >&2
    status=1
fi

if have_proftpd; then
    echo "install-bench-deps: proftpd already present"
elif [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: warning: proftpd missing and not root; run as root to install it" >&2
    status=1
else
    export DEBIAN_FRONTEND=noninteractive
    block_services scripts/install-bench-deps.sh

    pkg=proftpd-core
    work="$(mktemp -d)"
    chmod 755 "$work"
    # apt drops privileges to _apt for downloads; let it write here.
    if getent passwd _apt >/dev/null; then chown _apt "$work"; fi
    if ! (cd "$work" && apt-get download "$pkg"); then
        apt-get update && (cd "$work" && apt-get download "$pkg")
    fi
    deb="$(ls "$work"/"$pkg"_*.deb 2>/dev/null | head -n 1)"
    if [ -z "$deb" ]; then
        echo "install-bench-deps: warning: could not download $pkg" >&2
        status=1
    else
        # Only the libraries not installed yet: never upgrade what the machine already has.
        deps=""
        for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep '^lib'); do
            case "$dep" in libpam-runtime) continue ;; esac
            installed "$dep" || deps="$deps $dep"
        done
        if [ -n "$deps" ]; then
            # shellcheck disable=SC2086
            apt-get install -y --no-install-recommends $deps || status=1
        fi
        rm -rf "${PEERS:?}/$pkg"
        mkdir -p "$PEERS/$pkg"
        dpkg-deb -x "$deb" "$PEERS/$pkg"
        ln -sf "$PEERS/$pkg/usr/sbin/proftpd" /usr/local/sbin/proftpd
        ln -sf "$PEERS/$pkg/usr/bin/ftpasswd" /usr/local/bin/ftpasswd 2>/dev/null || true
    fi
    rm -rf "$work"
    restore_policy
    trap - EXIT
fi

if have_proftpd; then
    bin="$(command -v proftpd || echo /usr/local/sbin/proftpd)"
    if ldd "$bin" | grep -q 'not found'; then
        echo "install-bench-deps: warning: proftpd misses shared libraries:" >&2
        ldd "$bin" | grep 'not found' >&2
        status=1
    else
        echo "proftpd: $bin ($("$bin" -v 2>&1 | sed -n 1p))"
    fi
fi
for tool in curl lftp; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install-bench-deps: warning: $tool missing" >&2; status=1; }
done
exit "$status"
