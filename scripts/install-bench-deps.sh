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
# in /opt/ferry-peers/proftpd-core/usr/lib/proftpd, where proftpd-mod-crypto's mod_tls joins them
# (the benchmark's FTPS configuration names that ModulePath).
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

# Downloads the Debian package $1 (never installing it: no maintainer scripts, no service),
# installs the libraries it needs that are missing, and unpacks it into $2. Root only.
unpack_deb() {
    local pkg="$1" dest="$2" work deb deps dep rc=0
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
        rc=1
    else
        # Only the libraries not installed yet: never upgrade what the machine already has.
        deps=""
        for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep '^lib'); do
            case "$dep" in libpam-runtime) continue ;; esac
            installed "$dep" || deps="$deps $dep"
        done
        if [ -n "$deps" ]; then
            # shellcheck disable=SC2086
            apt-get install -y --no-install-recommends $deps || rc=1
        fi
        mkdir -p "$dest"
        dpkg-deb -x "$deb" "$dest" || rc=1
    fi
    rm -rf "$work"
    return "$rc"
}

if have_proftpd; then
    echo "install-bench-deps: proftpd already present"
elif [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: warning: proftpd missing and not root; run as root to install it" >&2
    status=1
else
    export DEBIAN_FRONTEND=noninteractive
    block_services scripts/install-bench-deps.sh
    rm -rf "${PEERS:?}/proftpd-core"
    if unpack_deb proftpd-core "$PEERS/proftpd-core"; then
        ln -sf "$PEERS/proftpd-core/usr/sbin/proftpd" /usr/local/sbin/proftpd
        ln -sf "$PEERS/proftpd-core/usr/bin/ftpasswd" /usr/local/bin/ftpasswd 2>/dev/null || true
    else
        status=1
    fi
    restore_policy
    trap - EXIT
fi

# ProFTPD's TLS module (mod_tls, for the FTPS workload) is Debian's proftpd-mod-crypto, unpacked
# beside the unpacked proftpd-core so that the binary's own module directory has it.
modules="$PEERS/proftpd-core/usr/lib/proftpd"
if [ -d "$modules" ] && [ ! -f "$modules/mod_tls.so" ] && [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    block_services scripts/install-bench-deps.sh
    unpack_deb proftpd-mod-crypto "$PEERS/proftpd-core" || status=1
    restore_policy
    trap - EXIT
fi
[ -f "$modules/mod_tls.so" ] && echo "proftpd mod_tls: $modules/mod_tls.so"

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
