#!/usr/bin/env bash
# Install the tools the interop test suite (tests/interop) needs: curl, lftp, wget, rclone,
# ncftp, pytest, aioftp, pyftpdlib (a peer server for crates/ferry/tests/peers.rs), and HAProxy (tests/interop/test_haproxy.py); and those the Rust end-to-end
# tests run: AWStats and fail2ban (log formats), e2fsprogs (the power-cut test), systemd
# (systemd-analyze), Prometheus (scraping the admin listener) and Chromium (the status page);
# PostgreSQL (server and psql), OpenLDAP's slapd and ldap-utils, and openssl, for the throwaway
# services of scripts/pg-start.sh and scripts/slapd-start.sh. Idempotent; meant for Debian/Ubuntu, run as root (CI runs
# it on a fresh machine).
#
# HAProxy, PostgreSQL and slapd are only ever run by the tests, as their own processes on loopback
# with state in a temporary directory (`haproxy -f CFG -db`, scripts/pg-start.sh,
# scripts/slapd-start.sh): a temporary policy-rc.d (scripts/no-services.sh) keeps the packages from
# starting their system services while they install (the postgresql package's `main` cluster and
# slapd's own dc=nodomain database are created but never used), and the services are stopped and
# disabled afterwards.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/no-services.sh"

have_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }

need=()
for tool in curl lftp wget rclone; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        need+=("$tool")
    fi
done
if ! command -v ncftpput >/dev/null 2>&1; then
    need+=(ncftp)
fi
if ! have_haproxy; then
    need+=(haproxy)
fi
# Operations (crates/ferry/tests/ops_logs.rs): AWStats reads the transfer log, fail2ban-regex
# runs the stock vsftpd filter over the vsftpd-format log. Durability (tests/durability.rs):
# mkfs.ext4 and e2fsck for the power-cut image.
if [ ! -x /usr/lib/cgi-bin/awstats.pl ]; then
    need+=(awstats)
fi
if ! command -v fail2ban-regex >/dev/null 2>&1; then
    need+=(fail2ban)
fi
if ! command -v mkfs.ext4 >/dev/null 2>&1; then
    need+=(e2fsprogs)
fi
# systemd-analyze checks dist/ferry.service (tests/service.rs); the package is not started.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    need+=(systemd)
fi
# Prometheus scrapes the admin listener in tests/admin.rs (its own process, on loopback).
if [ ! -x /usr/bin/prometheus ]; then
    need+=(prometheus)
fi
# Headless Chromium shows the status page in tests/status_page.rs.
if [ ! -x /usr/bin/chromium ]; then
    need+=(chromium)
fi
# PostgreSQL and OpenLDAP (scripts/pg-start.sh, scripts/slapd-start.sh and the `postgres` and
# `slapd` fixtures of tests/interop/conftest.py): the server binaries under /usr/lib/postgresql/*/bin,
# psql, slapd with slapadd and slappasswd, the ldap* clients; openssl makes slapd's test CA.
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
if ! have_pg_server || ! command -v psql >/dev/null 2>&1; then
    need+=(postgresql)
fi
if [ ! -x /usr/sbin/slapd ] || [ ! -x /usr/sbin/slappasswd ]; then
    need+=(slapd)
fi
if ! command -v ldapwhoami >/dev/null 2>&1 || ! command -v ldapsearch >/dev/null 2>&1; then
    need+=(ldap-utils)
fi
if ! command -v openssl >/dev/null 2>&1; then
    need+=(openssl)
fi

if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: missing ${need[*]} and not root; install them and rerun" >&2
        exit 1
    fi
    echo "install-test-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # In a subshell: block_services's EXIT trap puts the previous policy-rc.d back when it ends.
    (
        block_services scripts/install-test-deps.sh
        apt-get update
        apt-get install -y --no-install-recommends "${need[@]}"
    )
    # The haproxy package registers a system service; the tests run their own process on loopback
    # ports, so the one just installed must not run now or start at boot.
    # Prometheus likewise: the tests start their own.
    if [[ " ${need[*]} " == *" prometheus "* ]]; then
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now prometheus.service >/dev/null 2>&1 || true
        fi
        if [ -x /etc/init.d/prometheus ]; then
            /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    # fail2ban likewise: only fail2ban-regex is used, the daemon must not run.
    if [[ " ${need[*]} " == *" fail2ban "* ]]; then
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now fail2ban.service >/dev/null 2>&1 || true
        fi
        if [ -x /etc/init.d/fail2ban ]; then
            /etc/init.d/fail2ban stop >/dev/null 2>&1 || true
        fi
    fi
    # PostgreSQL and slapd likewise: the tests run their own clusters and directories (initdb and
    # slapadd into a temporary directory, kernel-picked loopback ports); the package's `main`
    # cluster and slapd's system database must not run now or start at boot.
    for svc in postgresql slapd; do
        [[ " ${need[*]} " == *" $svc "* ]] || continue
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
    if [[ " ${need[*]} " == *" haproxy "* ]]; then
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now haproxy.service >/dev/null 2>&1 || true
        fi
        if [ -x /etc/init.d/haproxy ]; then
            /etc/init.d/haproxy stop >/dev/null 2>&1 || true
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d haproxy disable >/dev/null 2>&1 || true
            fi
        fi
    fi
else
    echo "install-test-deps: curl, lftp, wget, rclone, ncftp, haproxy, postgresql, slapd and ldap-utils already present"
fi

if ! python3 -m pytest --version >/dev/null 2>&1; then
    echo "install-test-deps: installing pytest"
    python3 -m pip install pytest
else
    echo "install-test-deps: pytest already present"
fi

# aioftp: an asyncio client that completes the data connection's TLS handshake before it sends the
# transfer command (tests/interop/test_ftps.py).
if ! python3 -c 'import aioftp' >/dev/null 2>&1; then
    echo "install-test-deps: installing aioftp"
    python3 -m pip install 'aioftp>=0.22'
else
    echo "install-test-deps: aioftp already present"
fi

# pyftpdlib: a Python FTP server that connects an active data connection as soon as it gets
# PORT/EPRT; crates/ferry/tests/peers.rs copies to and from it server-to-server (FXP).
if ! python3 -c 'import pyftpdlib' >/dev/null 2>&1; then
    echo "install-test-deps: installing pyftpdlib"
    python3 -m pip install 'pyftpdlib==2.2.0'
else
    echo "install-test-deps: pyftpdlib already present"
fi

# The S3 tests (tests/interop/test_s3.py, scripts/garage-start.sh) sign requests with curl --aws-sigv4
# (curl 7.75 or later).
if ! curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
    echo "install-test-deps: warning: this curl has no --aws-sigv4 (needs 7.75+); the S3 tests will fail" >&2
fi

# Summary of what the suite will use.
curl --version | sed -n 1p
lftp --version | sed -n 1p
wget --version | sed -n 1p
rclone version | sed -n 1p
ncftpput -v 2>&1 | sed -n 1p || true
python3 -c 'import aioftp; print("aioftp", aioftp.__version__)'
python3 -c 'import pyftpdlib; print("pyftpdlib", pyftpdlib.__ver__)'
"$(command -v haproxy || echo /usr/sbin/haproxy)" -v | sed -n 1p
python3 -m pytest --version
"$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | sed -n '$p')" --version
psql --version
/usr/sbin/slapd -VV 2>&1 | sed -n 1p
ldapwhoami -VV 2>&1 | sed -n 1p
openssl version
