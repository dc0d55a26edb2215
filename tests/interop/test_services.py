"""Smoke tests of the throwaway services in conftest.py: PostgreSQL (`postgres`), OpenLDAP
(`slapd`) and a three-node Garage (`garage_cluster`). They need no ferry binary: each checks that
its service is reachable the way the backend tests will use it, and survives an outage."""

from __future__ import annotations

import secrets
import socket
import uuid
from urllib.parse import urlsplit

import pytest


# ---------------------------------------------------------------- PostgreSQL


def test_postgres_url_works_with_password_only(postgres):
    u = urlsplit(postgres.url)
    assert (u.scheme, u.hostname, u.port, u.username, u.path) == ("postgres", "127.0.0.1", postgres.port, "ferry", "/ferry")
    cp = postgres.psql("SELECT current_user, current_database(), (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "ferry|ferry|ferry"
    # Over TCP a password is required, and checked.
    wrong = postgres.psql("SELECT 1", url=f"postgres://ferry:{'x' + u.password}@127.0.0.1:{u.port}/ferry")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    # Loopback only: the port answers on 127.0.0.1.
    with socket.create_connection(("127.0.0.1", postgres.port), timeout=5):
        pass


def test_postgres_outage_keeps_url_and_data(postgres):
    table = f"t_{uuid.uuid4().hex[:12]}"
    cp = postgres.psql(f"CREATE TABLE {table} (v text); INSERT INTO {table} VALUES ('before')")
    assert cp.returncode == 0, cp.stderr
    old_pid = postgres.pid
    with postgres.down():
        assert not postgres.running()
        down = postgres.psql("SELECT 1", timeout=15)
        assert down.returncode != 0, "psql still connects while the server is stopped"
    assert postgres.pid != old_pid and postgres.running()
    cp = postgres.psql(f"SELECT v FROM {table}; DROP TABLE {table}")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "before"


def test_postgres_crash_recovers(postgres):
    """An immediate stop (no checkpoint) and a restart: crash recovery, committed rows kept."""
    table = f"t_{uuid.uuid4().hex[:12]}"
    assert postgres.psql(f"CREATE TABLE {table} AS SELECT generate_series(1, 1000) AS n").returncode == 0
    with postgres.down(mode="immediate"):
        pass
    cp = postgres.psql(f"SELECT count(*) FROM {table}; DROP TABLE {table}")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "1000"


# ---------------------------------------------------------------- OpenLDAP


def whoami(slapd, *args: str, **env: str):
    return slapd.tool("ldapwhoami", "-x", "-o", "nettimeout=10", *args, **env)


@pytest.mark.parametrize("how", ["plain", "starttls", "ldaps"])
def test_slapd_user_binds(slapd, how):
    url, extra = {
        "plain": (slapd.url, []),
        "starttls": (slapd.url, ["-ZZ"]),
        "ldaps": (slapd.ldaps_url, []),
    }[how]
    cp = whoami(slapd, *extra, "-H", url, "-D", slapd.user_dn("lara"), "-w", "lara-pw")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"dn:{slapd.user_dn('lara')}"


def test_slapd_wrong_password_and_unknown_ca_fail(slapd):
    cp = whoami(slapd, "-H", slapd.url, "-D", slapd.user_dn("lara"), "-w", "not-lara-pw")
    assert cp.returncode == 49, (cp.returncode, cp.stdout, cp.stderr)  # invalidCredentials
    cp = whoami(slapd, "-H", slapd.url, "-D", slapd.user_dn("leo"), "-w", "lara-pw")
    assert cp.returncode == 49, (cp.returncode, cp.stdout, cp.stderr)
    # Without the test CA the certificate does not verify (the system's CAs do not know it).
    for url, extra in ((slapd.url, ["-ZZ"]), (slapd.ldaps_url, [])):
        cp = whoami(
            slapd, *extra, "-H", url, "-D", slapd.user_dn("lara"), "-w", "lara-pw",
            LDAPTLS_CACERT="/etc/ssl/certs/ca-certificates.crt",
        )  # fmt: skip
        assert cp.returncode != 0, f"TLS to {url} succeeded without the test CA"


def search(slapd, base: str, flt: str, *attrs: str, bind: tuple[str, str] | None = None, url: str | None = None):
    args = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10", "-H", url or slapd.url]
    if bind:
        args += ["-D", bind[0], "-w", bind[1]]
    return slapd.tool(*args, "-b", base, flt, *attrs)


def test_slapd_search_account_reads_people_and_groups(slapd):
    svc = (slapd.search_dn, slapd.search_pw)
    cp = search(slapd, f"ou=people,{slapd.base}", "(uid=lara)", "ferryQuotaBytes", "ferryPermissions", "homeDirectory", "userPassword", bind=svc)
    assert cp.returncode == 0, cp.stderr
    assert f"dn: {slapd.user_dn('lara')}" in cp.stdout
    assert "ferryQuotaBytes: 3000000" in cp.stdout
    assert "ferryPermissions: list,read,write" in cp.stdout
    assert "homeDirectory: /home/lara" in cp.stdout
    assert "userPassword" not in cp.stdout, "the search account must not read password hashes"
    cp = search(slapd, f"ou=groups,{slapd.base}", "(cn=ftpusers)", "member", bind=svc)
    assert cp.returncode == 0, cp.stderr
    assert f"member: {slapd.user_dn('lara')}" in cp.stdout
    assert slapd.user_dn("leo") not in cp.stdout
    # Over LDAPS too, with the search account's bind.
    cp = search(slapd, f"ou=people,{slapd.base}", "(uid=leo)", "uid", bind=svc, url=slapd.ldaps_url)
    assert cp.returncode == 0 and "uid: leo" in cp.stdout, cp.stdout + cp.stderr


def test_slapd_anonymous_reads_no_passwords(slapd):
    cp = search(slapd, slapd.base, "(objectClass=*)", "*")
    assert "userPassword" not in cp.stdout
    assert "uid=lara" not in cp.stdout
    # A user reads their own entry (and hash), not someone else's.
    lara = (slapd.user_dn("lara"), "lara-pw")
    assert "userPassword" in search(slapd, slapd.user_dn("lara"), "(objectClass=*)", "userPassword", bind=lara).stdout
    other = search(slapd, slapd.user_dn("leo"), "(objectClass=*)", "*", bind=lara)
    assert "uid: leo" not in other.stdout and "userPassword" not in other.stdout


def test_slapd_admin_and_restart(slapd):
    cp = whoami(slapd, "-H", slapd.url, "-D", slapd.admin_dn, "-w", slapd.admin_pw)
    assert cp.returncode == 0, cp.stderr
    with slapd.down():
        cp = whoami(slapd, "-H", slapd.url)
        assert cp.returncode != 0, "slapd still answers while stopped"
    cp = whoami(slapd, "-ZZ", "-H", slapd.url, "-D", slapd.user_dn("lara"), "-w", "lara-pw")
    assert cp.returncode == 0, cp.stderr


# ---------------------------------------------------------------- Garage, three nodes


def test_garage_cluster_replicates(garage_cluster):
    assert len(garage_cluster.endpoints) == 3 and len(set(garage_cluster.endpoints)) == 3
    key = f"svc-{uuid.uuid4().hex[:12]}/one"
    data = secrets.token_bytes(1_500_000)
    garage_cluster.s3(1).put(key, data)
    assert garage_cluster.s3(3).get(key) == data
    assert garage_cluster.s3(2).get(key) == data
    garage_cluster.s3(2).delete(key)
    assert not garage_cluster.s3(1).exists(key)


def test_garage_cluster_survives_one_node_down(garage_cluster):
    prefix = f"svc-{uuid.uuid4().hex[:12]}/"
    before = secrets.token_bytes(700_000)
    garage_cluster.s3(1).put(prefix + "before", before)
    with garage_cluster.node_down(2):
        assert garage_cluster.pids[1] == 0
        with pytest.raises(AssertionError):
            garage_cluster.s3(2).get(prefix + "before")  # node 2 does not answer
        during = secrets.token_bytes(2_000_000)
        garage_cluster.s3(1).put(prefix + "during", during)
        assert garage_cluster.s3(3).get(prefix + "during") == during
        assert garage_cluster.s3(3).get(prefix + "before") == before
        assert sorted(garage_cluster.s3(1).list_keys(prefix)) == [prefix + "before", prefix + "during"]
    assert all(garage_cluster.pids)
    # Node 2, back on the same port, serves what was written while it was down.
    assert garage_cluster.s3(2).get(prefix + "during") == during
    garage_cluster.s3(2).delete_prefix(prefix)
