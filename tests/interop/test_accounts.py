"""Accounts outside the users file (issue 17), against the real stores the project's scripts start
on loopback: PostgreSQL (scripts/pg-start.sh), OpenLDAP slapd (scripts/slapd-start.sh), Garage
(scripts/garage-start.sh), and an HTTP auth service written here with Python's http.server.

Each PostgreSQL test works in a schema of its own (`search_path` in the URL), created empty and
filled by `ferry accounts migrate`, so no test sees another's accounts, bans or sessions.
"""

from __future__ import annotations

import ftplib
import http.server
import json
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import FERRY_BIN, s3_storage_toml
from interop_util import IO_TIMEOUT, code, rand_bytes, reply, retr_bytes, stor_bytes, wait_for

ADMIN_RE_PREFIX = "admin listening on "


def ferry_cli(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    cp = subprocess.run(
        [str(FERRY_BIN), *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip
    return cp


def ok(cp: subprocess.CompletedProcess) -> str:
    assert cp.returncode == 0, f"{cp.args}: exit {cp.returncode}\nstdout={cp.stdout}\nstderr={cp.stderr}"
    return cp.stdout


def schema_url(postgres, request) -> tuple[str, str]:
    """A fresh schema for this test, and the URL whose connections use it."""
    schema = "t_" + secrets.token_hex(6)
    cp = postgres.psql(f"CREATE SCHEMA {schema}")
    assert cp.returncode == 0, cp.stderr
    request.addfinalizer(lambda: postgres.psql(f"DROP SCHEMA {schema} CASCADE"))
    sep = "&" if "?" in postgres.url else "?"
    options = urllib.parse.quote(f"-c search_path={schema}")
    return schema, f"{postgres.url}{sep}options={options}"


def sql(postgres, schema: str, query: str) -> list[list[str]]:
    cp = postgres.psql(f"SET search_path = {schema}; {query}")
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout if isinstance(cp.stdout, str) else cp.stdout.decode()
    return [line.split("|") for line in out.splitlines() if line and line != "SET"]


def write_config(path: Path, root: Path, accounts: str, extra: str = "") -> Path:
    path.write_text(
        f'root = {json.dumps(str(root))}\nlisten = ["127.0.0.1:0"]\n{extra}\n{accounts}\n', encoding="utf-8"
    )
    return path


def pg_accounts(url: str) -> str:
    return f'[accounts]\nkind = "postgres"\nurl = {json.dumps(url)}\ntimeout_ms = 2000\n'


# Logins answered at once and banned after three failures (the set-up).
FAST_BANS = "[limits]\nfailed_login_delay_ms = 0\nban_after_failures = 3\nmax_login_failures = 10\n"


def start_node(ferry_factory, cfg: Path, root: Path, *extra: str):
    return ferry_factory(["--config", str(cfg), "--no-sandbox", *extra], user=None, root=root)


def login(server, user: str, password: str) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=IO_TIMEOUT)
    ftp.login(user, password)
    return ftp


def login_reply(server, user: str, password: str) -> str:
    """The reply to PASS (or the error a refused connection gives)."""
    ftp = ftplib.FTP()
    try:
        ftp.connect(server.host, server.port, timeout=IO_TIMEOUT)
    except ftplib.error_temp as e:
        return str(e)
    try:
        ftp.sendcmd(f"USER {user}")
        return ftp.sendcmd(f"PASS {password}")
    except (ftplib.error_perm, ftplib.error_temp) as e:
        return str(e)
    finally:
        ftp.close()


def stor_reply(ftp: ftplib.FTP, name: str, data: bytes) -> str:
    """The final reply to a STOR (a refused upload may also reset the data connection first)."""
    try:
        return stor_bytes(ftp, name, data)
    except (ftplib.error_perm, ftplib.error_temp) as e:
        return str(e)
    except (ConnectionResetError, BrokenPipeError):
        try:
            return ftp.getresp()
        except (ftplib.error_perm, ftplib.error_temp) as e:
            return str(e)


def add_user(cfg: Path, name: str, password: str, *args: str) -> str:
    return ok(ferry_cli("user", "add", name, "--config", str(cfg), "--password-stdin", *args, stdin=password + "\n"))


@pytest.fixture
def pg(postgres, request, tmp_path):
    """A migrated schema and a configuration naming it: (schema, config path, root)."""
    schema, url = schema_url(postgres, request)
    root = tmp_path / "srv"
    root.mkdir()
    cfg = write_config(tmp_path / "ferry.toml", root, pg_accounts(url), FAST_BANS)
    out = ok(ferry_cli("accounts", "migrate", "--config", str(cfg)))
    assert "applied migration(s) [1]" in out
    assert "already at version 1" in ok(ferry_cli("accounts", "migrate", "--config", str(cfg)))
    return schema, cfg, root


def test_done_when_two_nodes_on_garage_share_quota_and_bans(postgres, pg, ferry_factory, garage, s3, s3_prefix, tmp_path):
    """The issue's "done when", on one Garage bucket: alice added through the CLI logs in on both
    nodes; two 2 MB uploads at once, one per node, against a 3,000,000-byte quota: one 226, one 552,
    and no more than 3 MB stored; three failed logins on node A make node B answer 421."""
    schema, cfg, root = pg
    text = cfg.read_text() + s3_storage_toml(garage, s3_prefix)
    cfg.write_text(text, encoding="utf-8")
    add_user(cfg, "alice", "alice-pw", "--root", str(root / "alice"), "--quota-bytes", "3000000")
    a = start_node(ferry_factory, cfg, root)
    b = start_node(ferry_factory, cfg, root)
    for node in (a, b):
        ftp = login(node, "alice", "alice-pw")
        assert ftp.pwd() == "/"
        ftp.quit()
    data = rand_bytes(2_000_000)
    results: dict[str, str] = {}

    def upload(node, name):
        ftp = login(node, "alice", "alice-pw")
        try:
            results[name] = stor_reply(ftp, name, data)
        finally:
            ftp.close()

    threads = [threading.Thread(target=upload, args=(n, f"up{i}.bin")) for i, n in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = sorted(code(r) for r in results.values())
    assert codes == [226, 552], results
    keys = {k: size for k, size in s3.list_objects(s3_prefix + "alice/").items() if size >= 0}
    assert sum(keys.values()) <= 3_000_000, keys
    assert list(keys.values()) == [2_000_000], keys
    winner = next(n for n, r in results.items() if code(r) == 226)
    assert s3.get(s3_prefix + "alice/" + winner) == data
    usage = wait_for(lambda: (r := sql(postgres, schema, "SELECT bytes, files FROM ferry_usage WHERE account = 'alice'")) and r[0] == ["2000000", "1"] and r)
    assert usage
    assert sql(postgres, schema, "SELECT count(*) FROM ferry_reservations") == [["0"]]
    # Three failed logins on node A ...
    for _ in range(3):
        assert code(login_reply(a, "alice", "wrong")) == 530
    # ... and node B answers the address with 421 within a second.
    start = time.monotonic()
    refused = wait_for(lambda: code(login_reply(b, "alice", "alice-pw")) == 421, timeout=3)
    assert refused, "node B still lets the banned address in"
    assert time.monotonic() - start < 1.5
    assert sql(postgres, schema, "SELECT host(ip), count FROM ferry_bans") == [["127.0.0.1", "1"]]
    history = sql(postgres, schema, "SELECT ok, count(*) FROM ferry_logins WHERE account = 'alice' GROUP BY ok ORDER BY ok")
    assert history[0] == ["f", "3"] and int(history[1][1]) >= 4, history


def test_session_limit_counts_both_nodes(postgres, pg, ferry_factory):
    schema, cfg, root = pg
    add_user(cfg, "sam", "sam-pw", "--max-sessions", "2")
    a = start_node(ferry_factory, cfg, root)
    b = start_node(ferry_factory, cfg, root)
    one = login(a, "sam", "sam-pw")
    # The slot was claimed by the login's account query and taken by the session: one row, not a
    # second claim beside an unused one (a login costs one round trip).
    sessions = lambda: sql(postgres, schema, "SELECT count(*) FROM ferry_sessions WHERE account = 'sam'")  # noqa: E731
    assert sessions() == [["1"]]
    # A wrong password gives back the slot its account query claimed.
    assert code(login_reply(a, "sam", "wrong")) == 530
    assert wait_for(lambda: sessions() == [["1"]], timeout=5)
    two = login(b, "sam", "sam-pw")
    assert sessions() == [["2"]]
    assert code(login_reply(a, "sam", "sam-pw")) == 530
    assert code(login_reply(b, "sam", "sam-pw")) == 530
    one.quit()
    # The slot is given back when the session ends (the row is deleted in the background).
    assert wait_for(lambda: code(login_reply(b, "sam", "sam-pw")) == 230, timeout=5)
    two.quit()


def test_groups_permissions_and_cli(postgres, pg, ferry_factory):
    schema, cfg, root = pg
    ok(ferry_cli("group", "add", "readers", "--config", str(cfg), "--perms", "list,read", "--quota-files", "5"))
    add_user(cfg, "rita", "rita-pw", "--group", "readers", "--root", "rita")
    assert (root / "rita").is_dir(), "the root is created on local storage"
    (root / "rita" / "hello.txt").write_bytes(b"hello\n")
    listing = ok(ferry_cli("user", "list", "--config", str(cfg)))
    assert "rita\trita\tlist,read\tgroup readers\t" in listing, listing
    assert "quota files 5" in listing
    node = start_node(ferry_factory, cfg, root)
    ftp = login(node, "rita", "rita-pw")
    assert retr_bytes(ftp, "hello.txt") == b"hello\n"
    with pytest.raises(ftplib.error_perm, match="^550"):
        stor_bytes(ftp, "new.txt", b"x")
    ftp.quit()
    # The group changes; the user inherits at the next login, on a running node.
    ok(ferry_cli("group", "add", "readers", "--config", str(cfg), "--perms", "list,read,write"))
    ftp = login(node, "rita", "rita-pw")
    assert code(stor_bytes(ftp, "new.txt", b"x")) == 226
    ftp.quit()
    ok(ferry_cli("accounts", "recount", "rita", "--config", str(cfg)))
    assert sql(postgres, schema, "SELECT bytes, files FROM ferry_usage WHERE account = 'rita'") == [["7", "2"]]
    # passwd and del.
    ok(ferry_cli("user", "passwd", "rita", "--config", str(cfg), "--password-stdin", stdin="new-pw\n"))
    assert code(login_reply(node, "rita", "rita-pw")) == 530
    assert code(login_reply(node, "rita", "new-pw")) == 230
    ok(ferry_cli("user", "del", "rita", "--config", str(cfg)))
    assert code(login_reply(node, "rita", "new-pw")) == 530
    gone = ferry_cli("user", "del", "rita", "--config", str(cfg))
    assert gone.returncode != 0 and "no user" in gone.stderr
    bad = ferry_cli("user", "add", "x", "--config", str(cfg), "--password-stdin", "--root", "/etc", stdin="pw\n")
    assert bad.returncode != 0 and "inside the server's root" in bad.stderr


def test_imported_sha512_crypt_hash_is_rehashed_to_argon2id(postgres, pg, ferry_factory):
    """A hash carried over from Pure-FTPd/ProFTPD (SHA-512 crypt, as `openssl passwd -6` makes
    it) logs in, and is replaced by an argon2id hash of the same password."""
    schema, cfg, root = pg
    crypt_hash = subprocess.run(["openssl", "passwd", "-6", "old-pw"], capture_output=True, text=True, check=True).stdout.strip()
    assert crypt_hash.startswith("$6$")
    sql(postgres, schema, f"INSERT INTO ferry_users (name, password_hash) VALUES ('olga', '{crypt_hash}')")
    node = start_node(ferry_factory, cfg, root)
    assert code(login_reply(node, "olga", "wrong")) == 530
    assert code(login_reply(node, "olga", "old-pw")) == 230
    rehashed = wait_for(lambda: sql(postgres, schema, "SELECT password_hash FROM ferry_users WHERE name = 'olga'")[0][0].startswith("$argon2id$"))
    assert rehashed, "the imported hash was not replaced"
    assert code(login_reply(node, "olga", "old-pw")) == 230
    assert code(login_reply(node, "olga", "wrong")) == 530


def test_disabled_expired_and_source_restricted_accounts(postgres, pg, ferry_factory):
    schema, cfg, root = pg
    for name in ("dora", "eve", "fay"):
        add_user(cfg, name, "pw")
    sql(postgres, schema, "UPDATE ferry_users SET enabled = false WHERE name = 'dora'")
    sql(postgres, schema, "UPDATE ferry_users SET expires_at = now() - interval '1 day' WHERE name = 'eve'")
    sql(postgres, schema, "UPDATE ferry_users SET allow_from = '10.0.0.0/8' WHERE name = 'fay'")
    node = start_node(ferry_factory, cfg, root)
    for name in ("dora", "eve", "fay"):
        assert code(login_reply(node, name, "pw")) == 530, name
    sql(postgres, schema, "UPDATE ferry_users SET allow_from = '10.0.0.0/8, 127.0.0.0/8' WHERE name = 'fay'")
    # Three refusals banned the address (a right password does not make a refusal harmless);
    # lifting the ban in the database lifts it on the node.
    assert code(login_reply(node, "fay", "pw")) == 421
    sql(postgres, schema, "DELETE FROM ferry_bans")
    assert wait_for(lambda: code(login_reply(node, "fay", "pw")) == 230, timeout=3)
    reasons = {r[0] for r in sql(postgres, schema, "SELECT reason FROM ferry_logins WHERE NOT ok")}
    assert {"account disabled", "account expired", "not allowed from this address"} <= reasons, reasons


def test_database_outage_421_transfers_finish_quota_right_after(postgres, pg, ferry_factory, tmp_path):
    """With the database stopped: new logins get 421 (not 530), /readyz says why, an upload in
    progress finishes, and its quota change is applied once the database is back."""
    schema, cfg, root = pg
    cfg.write_text(cfg.read_text() + '[admin]\nlisten = "127.0.0.1:0"\n', encoding="utf-8")
    add_user(cfg, "otto", "otto-pw", "--root", "otto", "--quota-bytes", "10000000")
    node = start_node(ferry_factory, cfg, root)
    admin = next(line[len(ADMIN_RE_PREFIX):] for line in node.stdout_lines if line.startswith(ADMIN_RE_PREFIX))
    readyz = f"http://{admin}/readyz"

    def ready() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(readyz, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert ready()[0] == 200
    data = rand_bytes(3_000_000)
    src = tmp_path / "slow.bin"
    src.write_bytes(data)
    curl = subprocess.Popen(
        ["curl", "-sS", "--limit-rate", "600K", "-T", str(src), f"ftp://otto:otto-pw@{node.host}:{node.port}/slow.bin",
         "-w", "%{response_code}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    with postgres.down():
        assert code(login_reply(node, "otto", "otto-pw")) == 421
        status = wait_for(lambda: (r := ready())[0] == 503 and r, timeout=5)
        assert status and any("accounts store unreachable" in why for why in status[1]["reasons"]), status
        out, err = curl.communicate(timeout=60)
        assert curl.returncode == 0 and out.strip() == "226", (out, err)
    assert (root / "otto" / "slow.bin").read_bytes() == data
    assert wait_for(lambda: ready()[0] == 200, timeout=10)
    settled = wait_for(lambda: sql(postgres, schema, "SELECT bytes, files FROM ferry_usage WHERE account = 'otto'") == [["3000000", "1"]], timeout=20)
    assert settled, sql(postgres, schema, "SELECT bytes, files FROM ferry_usage")
    assert code(login_reply(node, "otto", "otto-pw")) == 230


def test_ldap_bind_search_group_and_attributes(slapd, ferry_factory, tmp_path):
    """lara (in cn=ftpusers) logs in over StartTLS with the quota and permissions of her entry;
    leo (not in the group) and wrong passwords are refused; LDAPS works too; slapd down: 421."""
    root = tmp_path / "srv"
    root.mkdir()

    def config(name: str, url: str, starttls: bool) -> Path:
        accounts = f"""[accounts]
kind = "ldap"
url = {json.dumps(url)}
timeout_ms = 3000
[accounts.ldap]
starttls = {"true" if starttls else "false"}
ca_file = {json.dumps(slapd.ca)}
[accounts.ldap.search]
base = {json.dumps("ou=people," + slapd.base)}
filter = "(uid={{user}})"
bind_dn = {json.dumps(slapd.search_dn)}
bind_password = {json.dumps(slapd.search_pw)}
[accounts.ldap.group]
base = {json.dumps("ou=groups," + slapd.base)}
filter = "(&(cn=ftpusers)(member={{dn}}))"
[accounts.ldap.attributes]
permissions = "ferryPermissions"
quota_bytes = "ferryQuotaBytes"
[accounts.ldap.defaults]
root = "home/{{user}}"
"""
        return write_config(tmp_path / name, root, accounts, FAST_BANS.replace("ban_after_failures = 3", "ban_after_failures = 0"))

    (root / "home" / "lara").mkdir(parents=True)
    node = start_node(ferry_factory, config("starttls.toml", slapd.url, True), root)
    ftp = login(node, "lara", "lara-pw")
    assert code(stor_bytes(ftp, "a.bin", rand_bytes(2_000_000))) == 226
    # ferryQuotaBytes: 3000000, and "delete" is not in ferryPermissions.
    assert code(stor_reply(ftp, "b.bin", rand_bytes(1_500_000))) == 552
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.delete("a.bin")
    ftp.quit()
    assert (root / "home" / "lara" / "a.bin").stat().st_size == 2_000_000
    assert not (root / "home" / "lara" / "b.bin").exists()
    assert code(login_reply(node, "lara", "wrong")) == 530
    assert code(login_reply(node, "leo", "leo-pw")) == 530, "leo is not in cn=ftpusers"
    assert code(login_reply(node, "lara", "")) != 230, "an empty password is an unauthenticated bind"
    assert code(login_reply(node, "nobody*", "x")) == 530
    assert "not in the LDAP group" in node.stderr_text()
    ldaps = start_node(ferry_factory, config("ldaps.toml", slapd.ldaps_url, False), root)
    assert code(login_reply(ldaps, "lara", "lara-pw")) == 230
    with slapd.down():
        assert code(login_reply(ldaps, "lara", "lara-pw")) == 421


class AuthService(http.server.BaseHTTPRequestHandler):
    """An external auth service: carl/carl-pw is accepted with a read-only root of his own;
    "broken" makes it answer 500."""

    calls: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        AuthService.calls.append({**body, "auth": self.headers.get("Authorization")})
        if body["user"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        if body["user"] == "carl" and body["password"] == "carl-pw":
            answer = json.dumps({"root": "carl", "permissions": ["list", "read"], "max_sessions": 1}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        self.send_response(403)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        self.send_response(405)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_http_auth_hook(ferry_factory, tmp_path):
    service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthService)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    AuthService.calls.clear()
    try:
        root = tmp_path / "srv"
        (root / "carl").mkdir(parents=True)
        (root / "carl" / "readme.txt").write_bytes(b"carl's\n")
        url = f"http://127.0.0.1:{service.server_address[1]}/login"
        accounts = f'[accounts]\nkind = "http"\nurl = {json.dumps(url)}\n[accounts.http]\ncache_secs = 60\ntoken = "s3cr3t"\n'
        cfg = write_config(tmp_path / "http.toml", root, accounts, FAST_BANS.replace("ban_after_failures = 3", "ban_after_failures = 0"))
        node = start_node(ferry_factory, cfg, root)
        ftp = login(node, "carl", "carl-pw")
        assert retr_bytes(ftp, "readme.txt") == b"carl's\n"
        with pytest.raises(ftplib.error_perm, match="^550"):
            stor_bytes(ftp, "x.txt", b"x")
        # max_sessions 1 from the answer.
        assert code(login_reply(node, "carl", "carl-pw")) == 530
        ftp.quit()
        assert AuthService.calls[0] == {"user": "carl", "password": "carl-pw", "ip": "127.0.0.1", "protocol": "FTP", "auth": "Bearer s3cr3t"}
        asked = len(AuthService.calls)
        assert wait_for(lambda: code(login_reply(node, "carl", "carl-pw")) == 230, timeout=5)
        assert len(AuthService.calls) == asked, "a cached positive answer is reused"
        assert code(login_reply(node, "carl", "bad")) == 530
        assert code(login_reply(node, "carl", "bad")) == 530
        assert len(AuthService.calls) == asked + 2, "refusals are never cached"
        assert code(login_reply(node, "broken", "pw")) == 421
    finally:
        service.shutdown()
    # The service gone: 421 for what is not cached.
    assert code(login_reply(node, "dave", "pw")) == 421


# ------------------------------------------------ PostgreSQL over TLS


def make_ca_and_server_cert(d: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (d / f"{name}-{x}" for x in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = d / f"{name}-ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n", encoding="utf-8")
    run = lambda *a: ok(subprocess.run(["openssl", *a], capture_output=True, text=True, timeout=60))  # noqa: E731
    run("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    run("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-out", str(crt), "-extfile", str(ext))  # fmt: skip
    return ca, crt, key


def superuser_sql(postgres, query: str) -> str:
    """SQL as the cluster's superuser, over its unix socket (ALTER SYSTEM, pg_stat_ssl)."""
    import os

    psql = os.path.join(postgres.bin, "psql")
    cp = subprocess.run(
        [*postgres.owner_prefix(), psql, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", postgres.socket_dir,
         "-p", str(postgres.port), "-U", "postgres", "-d", "postgres", "-c", query],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return ok(cp)


@pytest.fixture
def pg_tls(postgres, tmp_path):
    """The session's PostgreSQL with TLS on (a certificate for 127.0.0.1 signed by a test CA) for
    this test; off again after it. Yields the CA's PEM file."""
    import os
    import shutil

    ca, crt, key = make_ca_and_server_cert(tmp_path / "pg-tls", "pg")
    uid = os.stat(postgres.data).st_uid
    for src, dst in ((crt, "ferry-test-server.pem"), (key, "ferry-test-server.key")):
        target = Path(postgres.data) / dst
        shutil.copy(src, target)
        os.chown(target, uid, -1)
        os.chmod(target, 0o600)
    superuser_sql(postgres, "ALTER SYSTEM SET ssl_cert_file = 'ferry-test-server.pem'")
    superuser_sql(postgres, "ALTER SYSTEM SET ssl_key_file = 'ferry-test-server.key'")
    superuser_sql(postgres, "ALTER SYSTEM SET ssl = on")
    superuser_sql(postgres, "SELECT pg_reload_conf()")
    assert wait_for(lambda: superuser_sql(postgres, "SHOW ssl").strip() == "on", timeout=10)
    try:
        yield ca
    finally:
        superuser_sql(postgres, "ALTER SYSTEM RESET ssl")
        superuser_sql(postgres, "SELECT pg_reload_conf()")


def test_postgres_over_tls(postgres, pg_tls, ferry_factory, request, tmp_path):
    """`[accounts] ca_file` (or sslmode=require): the CLI and the server reach PostgreSQL over TLS,
    verified against the CA (pg_stat_ssl shows every ferry connection encrypted); a certificate
    from another CA is refused (421 at login, not a plain-text fall-back)."""
    schema, url = schema_url(postgres, request)
    root = tmp_path / "srv"
    root.mkdir()
    accounts = pg_accounts(url) + f"ca_file = {json.dumps(str(pg_tls))}\n"
    cfg = write_config(tmp_path / "ferry-tls.toml", root, accounts, FAST_BANS)
    assert "applied migration(s) [1]" in ok(ferry_cli("accounts", "migrate", "--config", str(cfg)))
    (root / "tess").mkdir()
    add_user(cfg, "tess", "tess-pw", "--root", "tess")
    node = start_node(ferry_factory, cfg, root)
    ftp = login(node, "tess", "tess-pw")
    assert stor_bytes(ftp, "over-tls.txt", b"sealed").startswith("226")
    rows = superuser_sql(
        postgres,
        "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        "WHERE a.application_name = 'ferry' AND a.usename = 'ferry'",
    ).split()
    assert rows and all(r.startswith("t|TLSv1.") for r in rows), rows
    ftp.quit()

    # The same URL, but trusting another CA: no connection, 421, nothing in clear.
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other", "other")
    bad = write_config(tmp_path / "ferry-bad-ca.toml", root, pg_accounts(url) + f"ca_file = {json.dumps(str(other_ca))}\n")
    bad_node = start_node(ferry_factory, bad, root)
    assert login_reply(bad_node, "tess", "tess-pw").startswith("421"), "a certificate of another CA was accepted"
    assert "error performing TLS handshake" in bad_node.stderr_text()
    # sslmode=require without ca_file trusts the system's CAs, which did not sign the test server's.
    sep = "&" if "?" in url else "?"
    req = write_config(tmp_path / "ferry-require.toml", root, pg_accounts(url + sep + "sslmode=require"))
    req_node = start_node(ferry_factory, req, root)
    assert login_reply(req_node, "tess", "tess-pw").startswith("421")
    assert "error performing TLS handshake" in req_node.stderr_text()
