#!/usr/bin/env bash
# Install the peer FTP servers the client interop tests (crates/ferry/tests/peers.rs) run against:
# vsftpd and Pure-FTPd. Idempotent; meant for Debian/Ubuntu, run as root (`make check` runs it on a
# fresh machine).
#
# The tests start their own foreground server processes on free high ports, so neither package may
# run as a system service: a temporary policy-rc.d (exit 101) forbids starting services during the
# install, and anything the packages registered is stopped and disabled afterwards.
#
# Debian's vsftpd and pure-ftpd both "Provide/Conflict: ftp-server", so apt cannot install both.
# vsftpd is installed as a package (its postinst also creates the `ftp` system user the tests map
# uploads to); Pure-FTPd's .deb is fetched with `apt-get download` and unpacked (no maintainer
# scripts, no inetd, no service) under /opt/ferry-peers/pure-ftpd, with its shared libraries
# installed by apt-get and symlinks /usr/local/sbin/pure-ftpd and /usr/local/bin/pure-pw.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/no-services.sh"

PEERS=/opt/ferry-peers

have_vsftpd() { [ -x /usr/sbin/vsftpd ] || command -v vsftpd >/dev/null 2>&1; }
have_pure() {
    { [ -x /usr/sbin/pure-ftpd ] || command -v pure-ftpd >/dev/null 2>&1; } &&
        command -v pure-pw >/dev/null 2>&1
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

if have_vsftpd && have_pure; then
    echo "install-peer-servers: vsftpd and pure-ftpd already present"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-peer-servers: vsftpd or pure-ftpd missing and not root; run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive

    block_services scripts/install-peer-servers.sh

    echo "install-peer-servers: apt-get update"
    apt-get update

    # Unpacks package $1 under $PEERS/$1 (no maintainer scripts) and installs its lib* dependencies.
    unpack() {
        local pkg="$1" work deb deps
        work="$(mktemp -d)"
        chmod 755 "$work"
        # apt drops privileges to _apt for downloads; let it write here.
        if getent passwd _apt >/dev/null; then chown _apt "$work"; fi
        (cd "$work" && apt-get download "$pkg")
        deb="$(ls "$work"/"$pkg"_*.deb)"
        # Only the libraries not installed yet: never upgrade what the machine already has.
        deps=""
        for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep '^lib'); do
            installed "$dep" || deps="$deps $dep"
        done
        if [ -n "$deps" ]; then
            # shellcheck disable=SC2086
            apt-get install -y --no-install-recommends $deps
        fi
        rm -rf "${PEERS:?}/$pkg"
        mkdir -p "$PEERS/$pkg"
        dpkg-deb -x "$deb" "$PEERS/$pkg"
        rm -rf "$work"
    }

    if ! have_vsftpd; then
        if installed pure-ftpd; then
            echo "install-peer-servers: pure-ftpd is installed as a package; unpacking vsftpd beside it"
            unpack vsftpd
            ln -sf "$PEERS/vsftpd/usr/sbin/vsftpd" /usr/local/sbin/vsftpd
        else
            echo "install-peer-servers: installing vsftpd (the service will not be started)"
            apt-get install -y --no-install-recommends vsftpd
        fi
    fi
    if ! have_pure; then
        echo "install-peer-servers: unpacking pure-ftpd under $PEERS/pure-ftpd (conflicts with vsftpd)"
        unpack pure-ftpd
        ln -sf "$PEERS/pure-ftpd/usr/sbin/pure-ftpd" /usr/local/sbin/pure-ftpd
        ln -sf "$PEERS/pure-ftpd/usr/bin/pure-pw" /usr/local/bin/pure-pw
    fi

    restore_policy
    trap - EXIT
fi

# The vsftpd tests map anonymous uploads to the `ftp` user (the vsftpd package creates it).
if ! getent passwd ftp >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "install-peer-servers: creating system user ftp"
        adduser --system --home /srv/ftp --no-create-home --group --disabled-password ftp >/dev/null
    else
        echo "install-peer-servers: warning: no 'ftp' user; the vsftpd tests need one" >&2
    fi
fi

# Whatever the packages registered as services: stop and disable it. The tests run their own
# processes; a system vsftpd on port 21 would only get in the way.
if [ "$(id -u)" -eq 0 ]; then
    for svc in vsftpd pure-ftpd; do
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
        fi
        if [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d "$svc" disable >/dev/null 2>&1 || true
            fi
        fi
    done
fi

# Check that both run (shared libraries resolve) and summarise what the tests will use.
vsftpd_bin="$(command -v vsftpd || echo /usr/sbin/vsftpd)"
pure_bin="$(command -v pure-ftpd || echo /usr/sbin/pure-ftpd)"
if ldd "$vsftpd_bin" "$pure_bin" "$(command -v pure-pw)" | grep -q 'not found'; then
    echo "install-peer-servers: missing shared libraries:" >&2
    ldd "$vsftpd_bin" "$pure_bin" "$(command -v pure-pw)" | grep 'not found' >&2
    exit 1
fi
echo "vsftpd: $vsftpd_bin ($("$vsftpd_bin" -v 0>&1 2>&1 | head -n 1 || true))"
echo "pure-ftpd: $pure_bin ($("$pure_bin" --help 2>&1 | head -n 1 || true))"
echo "pure-pw: $(command -v pure-pw)"
