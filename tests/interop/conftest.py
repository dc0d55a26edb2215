"""Fixtures for the Ferry end-to-end interop suite.

Each test gets its own `ferry serve` process, bound to 127.0.0.1:0 (the real port is read from the
`listening on ...` line it prints), serving a fresh temporary root. On teardown the server gets
SIGTERM and must stop within 10 s without having panicked.

Binary: $FERRY_BIN, else <repo>/target/debug/ferry.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
FERRY_BIN = Path(os.environ.get("FERRY_BIN", REPO / "target" / "debug" / "ferry"))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LISTEN_RE = re.compile(r"^listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)\s*$")

USER = "alice"
PASSWORD = "s3cret-pw"


@dataclass
class FerryServer:
    proc: subprocess.Popen
    root: Path
    listeners: list[tuple[str, int]]
    stderr_path: Path
    user: str = USER
    password: str = PASSWORD
    stdout_lines: list[str] = field(default_factory=list)
    stopped_returncode: int | None = None

    @property
    def host(self) -> str:
        return self.listeners[0][0]

    @property
    def port(self) -> int:
        return self.listeners[0][1]

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stops the server with `sig`; returns its exit code. Kills it after STOP_TIMEOUT."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.stopped_returncode = self.proc.returncode
                raise AssertionError(f"ferry did not stop within {STOP_TIMEOUT} s of signal {sig}")
        self.stopped_returncode = self.proc.returncode
        return self.proc.returncode


def _drain(stream, q: queue.Queue, sink: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        sink.append(line)
        q.put(line)
    q.put(None)


def ipv6_loopback_usable() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
            with socket.create_connection(s.getsockname()[:2], timeout=2):
                pass
        return True
    except OSError:
        return False


def start_ferry(
    tmp_path: Path,
    extra_args: list[str] | None = None,
    *,
    listen: list[str] | None = None,
    user: tuple[str, str] | None = (USER, PASSWORD),
    anonymous: bool = False,
    root: Path | None = None,
    name: str = "ferry",
    expect_listeners: int = 1,
) -> FerryServer:
    if not FERRY_BIN.exists():
        pytest.fail(f"ferry binary not found at {FERRY_BIN} (build it with `cargo build -p ferry` or set FERRY_BIN)")
    if root is None:
        root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    listen = ["127.0.0.1:0"] if listen is None else listen
    args = [str(FERRY_BIN), "serve", "--root", str(root)]
    for addr in listen:
        args += ["--listen", addr]
    if user is not None:
        args += ["--user", f"{user[0]}:{user[1]}"]
    if anonymous:
        args.append("--anonymous")
    args += extra_args or []
    stderr_path = tmp_path / f"{name}.stderr.log"
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    errf = open(stderr_path, "wb")
    # cwd=tmp_path: whatever ferry writes next to itself (a default users file, say) stays out of the repo
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf, env=env, cwd=tmp_path
    )
    errf.close()
    lines: list[str] = []
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stdout, q, lines), daemon=True).start()
    listeners: list[tuple[str, int]] = []
    deadline = time.monotonic() + START_TIMEOUT
    expected = max(len(listen), expect_listeners)
    while len(listeners) < expected:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        m = LISTEN_RE.match(line)
        if m:
            listeners.append((m.group(1).strip("[]"), int(m.group(2))))
    if len(listeners) < expected:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        err = stderr_path.read_text("utf-8", "replace")[-4000:]
        pytest.fail(
            f"ferry did not print {expected} 'listening on' line(s) within {START_TIMEOUT} s "
            f"(exit code {proc.returncode}); args={args}\nstdout={lines!r}\nstderr tail:\n{err}"
        )
    user_name, password = user if user is not None else ("anonymous", "guest@example.com")
    return FerryServer(proc, root, listeners, stderr_path, user_name, password, lines)


def _close_stray_sockets() -> None:
    import gc

    for obj in gc.get_objects():
        try:
            if isinstance(obj, socket.socket) and obj.fileno() != -1 and obj.family in (socket.AF_INET, socket.AF_INET6):
                obj.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


@pytest.fixture
def ferry_factory(tmp_path, request):
    """Starts servers on demand: ferry_factory(extra_args=[...], listen=[...], anonymous=True, ...)."""
    servers: list[FerryServer] = []
    request.node._ferry_servers = servers
    counter = [0]

    def factory(extra_args=None, **kw) -> FerryServer:
        counter[0] += 1
        kw.setdefault("name", f"ferry{counter[0]}")
        if counter[0] > 1 and "root" not in kw:
            kw["root"] = tmp_path / f"root{counter[0]}"
        s = start_ferry(tmp_path, extra_args, **kw)
        servers.append(s)
        return s

    yield factory

    # Sockets a failed test left open would keep sessions (and transfers) alive and turn the
    # graceful stop into a wait; close them first so one failure reports once.
    _close_stray_sockets()
    problems = []
    for s in servers:
        try:
            s.stop()
        except AssertionError as e:
            problems.append(str(e))
        err = s.stderr_text()
        if "panicked" in err:
            idx = err.index("panicked")
            problems.append("ferry panicked:\n" + err[max(0, idx - 2000) : idx + 3000])
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def ferry(ferry_factory) -> FerryServer:
    """A server on 127.0.0.1:<ephemeral> with user alice (all permissions) rooted at tmp_path/root."""
    return ferry_factory()


@pytest.fixture
def ferry_anon(ferry_factory) -> FerryServer:
    """A server that allows anonymous read-only logins (and still has the normal user)."""
    return ferry_factory(anonymous=True)


@pytest.fixture(scope="session")
def ipv6_ok() -> bool:
    return ipv6_loopback_usable()


@pytest.fixture
def ferry6(ferry_factory, ipv6_ok) -> FerryServer:
    """A server listening on [::1]:<ephemeral> only."""
    if not ipv6_ok:
        pytest.skip("IPv6 loopback ::1 is not usable here")
    return ferry_factory(listen=["[::1]:0"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, s in enumerate(getattr(item, "_ferry_servers", [])):
            tail = s.stderr_text()[-6000:]
            rep.sections.append((f"ferry server {i} stderr (tail)", tail))


# ---------------------------------------------------------------- S3 storage (Garage)
#
# test_s3.py runs `ferry serve` with `[storage] kind = "s3"` against a real single-node Garage on
# loopback. One Garage per test session (scripts/garage-start.sh, stopped and wiped at the end),
# unless S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are already set: then
# that endpoint is used as is (and left running). Each test gets its own key prefix `t-<hex>/` in the
# bucket, so tests never see each other's objects.
#
# Garage missing (not in PATH, ~/.cargo/bin or $GARAGE_BIN): the S3 tests FAIL with a message naming
# scripts/install-garage.sh, except with FERRY_SKIP_S3=1, where they are skipped. A Garage that is
# installed but does not start always fails them.

from s3_util import S3, S3Env, env_from_environ, find_garage, parse_exports  # noqa: E402

GARAGE_START = REPO / "scripts" / "garage-start.sh"
GARAGE_STOP = REPO / "scripts" / "garage-stop.sh"
GARAGE_START_TIMEOUT = 120.0


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long test (hundreds of MiB moved); deselect with -m 'not slow'")


@pytest.fixture(scope="session")
def garage() -> S3Env:
    """The S3 endpoint for the session: from the environment, or a Garage started for it."""
    env = env_from_environ()
    if env is not None:
        yield env
        return
    garage_bin = find_garage()
    if garage_bin is None:
        msg = (
            "garage (the S3 engine for test_s3.py) is not installed: run `bash scripts/install-garage.sh` "
            "(or `make deps`), set GARAGE_BIN, or point S3_ENDPOINT/S3_BUCKET/AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY at a running S3 endpoint; FERRY_SKIP_S3=1 skips these tests instead"
        )
        if os.environ.get("FERRY_SKIP_S3") == "1":
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)
    start_env = dict(os.environ, GARAGE_BIN=garage_bin)
    start_env.pop("GARAGE_DIR", None)  # always a fresh state directory, wiped at the end
    try:
        cp = subprocess.run(
            ["bash", str(GARAGE_START)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GARAGE_START_TIMEOUT,
            env=start_env,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/garage-start.sh did not finish within {GARAGE_START_TIMEOUT} s: {e.stderr!r}", pytrace=False)
    err = cp.stderr.decode("utf-8", "replace")
    if cp.returncode != 0:
        pytest.fail(f"scripts/garage-start.sh failed (exit {cp.returncode}):\n{err[-6000:]}", pytrace=False)
    exports = parse_exports(cp.stdout.decode("utf-8"))
    env = env_from_environ(exports)
    assert env is not None, f"garage-start.sh printed incomplete exports: {exports!r}\n{err}"
    env.started_here = True
    try:
        yield env
    finally:
        stop = subprocess.run(
            ["bash", str(GARAGE_STOP), env.garage_dir or ""],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env=dict(os.environ, GARAGE_WIPE="1"),
        )
        if stop.returncode != 0:
            print(f"garage-stop.sh failed: {stop.stderr.decode('utf-8', 'replace')}", file=sys.stderr)


@pytest.fixture(scope="session")
def s3(garage) -> S3:
    """curl --aws-sigv4 access to the bucket, to check what is really stored."""
    return S3(garage)


@pytest.fixture
def s3_prefix(s3):
    """A fresh key prefix (`t-<hex>/`) for this test; emptied afterwards (best effort)."""
    import uuid

    prefix = f"t-{uuid.uuid4().hex[:16]}/"
    yield prefix
    try:
        s3.delete_prefix(prefix)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the test's own result
        print(f"cleanup of s3 prefix {prefix} failed: {e}", file=sys.stderr)


@dataclass
class S3Ferry:
    """A `ferry serve` on the S3 bucket; quacks like FerryServer for the interop_util helpers."""

    server: FerryServer
    prefix: str
    s3: S3
    config: Path

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def user(self) -> str:
        return self.server.user

    @property
    def password(self) -> str:
        return self.server.password

    def key(self, ftp_path: str) -> str:
        """The S3 key an FTP path (relative to the user's root) is stored under."""
        return self.prefix + ftp_path.lstrip("/")

    def url(self, path: str = "/") -> str:
        return f"ftp://{self.user}:{self.password}@{self.host}:{self.port}/{path.lstrip('/')}"


def s3_storage_toml(env: S3Env, prefix: str | None, credentials: bool = True) -> str:
    """The `[storage]` table for `ferry serve --config` (TOML strings written as JSON strings)."""
    import json

    lines = [
        "[storage]",
        'kind = "s3"',
        f"endpoint = {json.dumps(env.endpoint)}",
        f"region = {json.dumps(env.region)}",
        f"bucket = {json.dumps(env.bucket)}",
    ]
    if prefix is not None:
        lines.append(f"prefix = {json.dumps(prefix)}")
    if credentials:
        lines.append(f"access_key_id = {json.dumps(env.access_key)}")
        lines.append(f"secret_access_key = {json.dumps(env.secret_key)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def s3_ferry_factory(ferry_factory, garage, s3, s3_prefix, tmp_path):
    """Starts `ferry serve --config <[storage] kind = "s3">` servers: factory(prefix=..., ...).

    Every server of a test shares the test's prefix unless given another one. `credentials=False`
    leaves the keys out of the file (ferry then reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY);
    `extra_toml` is appended to the config file; other keywords go to ferry_factory."""
    counter = [0]

    def factory(
        prefix: str | None = None,
        extra_args: list[str] | None = None,
        *,
        credentials: bool = True,
        extra_toml: str = "",
        **kw,
    ) -> S3Ferry:
        counter[0] += 1
        prefix = s3_prefix if prefix is None else prefix
        cfg = tmp_path / f"ferry-s3-{counter[0]}.toml"
        cfg.write_text(s3_storage_toml(garage, prefix, credentials) + extra_toml, encoding="utf-8")
        server = ferry_factory(["--config", str(cfg), *(extra_args or [])], **kw)
        return S3Ferry(server, prefix, s3, cfg)

    return factory


@pytest.fixture
def s3_ferry(s3_ferry_factory) -> S3Ferry:
    """A server on 127.0.0.1:<ephemeral> whose user alice is rooted at this test's bucket prefix."""
    return s3_ferry_factory()


# ---------------------------------------------------------------- throwaway services: PostgreSQL, slapd, Garage x3
#
# Session fixtures for the tests of Ferry's database, directory and replicated-storage backends.
# Each is started by its script in a fresh mktemp directory (loopback only, kernel-picked ports) and
# stopped and wiped at the end of the session:
#
#   postgres        scripts/pg-start.sh             PostgreSQL, database `ferry` owned by role `ferry`
#   slapd           scripts/slapd-start.sh          OpenLDAP, dc=ferry,dc=test with tests/interop/ldap/seed.ldif
#   garage_cluster  scripts/garage-cluster-start.sh three Garage nodes, replication factor 3
#
# Each can be stopped and started again by a test (an outage) on the same ports: PgServer.stop() /
# .start() (or `with postgres.down():`), SlapdServer likewise, GarageCluster.stop_node(i) /
# .start_node(i) (or `with garage_cluster.node_down(i):`). A test that stops one must start it again
# (the context managers do), as later tests share it. A missing binary fails the tests that use the
# fixture, naming the install script to run.

import contextlib  # noqa: E402
import glob  # noqa: E402
import shutil  # noqa: E402

SCRIPTS = REPO / "scripts"
SERVICE_START_TIMEOUT = 180.0


def _exports_of(script: str, env_extra: dict[str, str], drop: tuple[str, ...] = (), timeout: float = SERVICE_START_TIMEOUT) -> dict[str, str]:
    """Runs scripts/<script> and returns the `export` lines it printed; fails the test with its
    stderr when it fails."""
    env = dict(os.environ, **env_extra)
    for name in drop:
        env.pop(name, None)
    try:
        cp = subprocess.run(
            ["bash", str(SCRIPTS / script)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"scripts/{script} did not finish within {timeout} s: {e.stderr!r}", pytrace=False)
    err = cp.stderr.decode("utf-8", "replace")
    if cp.returncode != 0:
        pytest.fail(f"scripts/{script} failed (exit {cp.returncode}):\n{err[-6000:]}", pytrace=False)
    return parse_exports(cp.stdout.decode("utf-8"))


def _stop_service(script: str, state_dir: str | None, wipe_var: str | None, timeout: float = 90) -> None:
    """Runs scripts/<script> STATE_DIR (with WIPE_VAR=1 to delete the directory); reports on stderr."""
    if not state_dir:
        return
    env = dict(os.environ)
    if wipe_var:
        env[wipe_var] = "1"
    cp = subprocess.run(
        ["bash", str(SCRIPTS / script), state_dir],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    if cp.returncode != 0:
        print(f"scripts/{script} failed: {cp.stderr.decode('utf-8', 'replace')}", file=sys.stderr)


# ------------------------------------------------ PostgreSQL


@dataclass
class PgServer:
    """A PostgreSQL cluster from scripts/pg-start.sh: `url` is postgres://ferry:PW@127.0.0.1:PORT/ferry."""

    url: str
    port: int
    dir: str  # PG_DIR: data/ (the cluster), run/ (its unix socket), postgres.log
    bin: str  # the server's bin directory (pg_ctl, psql, ...)
    pid: int

    @property
    def data(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.dir, "run")

    def owner_prefix(self) -> list[str]:
        """The command prefix that runs a server-side tool as the cluster's owner (PostgreSQL
        refuses root: as root, `runuser -u <owner> --`)."""
        if os.geteuid() != 0:
            return []
        import pwd

        owner = pwd.getpwuid(os.stat(self.data).st_uid).pw_name
        return ["runuser", "-u", owner, "--"]

    def pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`pg_ctl -D <data> ARGS` as the cluster's owner, e.g. pg_ctl("-m", "immediate", "stop")."""
        return subprocess.run(
            [*self.owner_prefix(), os.path.join(self.bin, "pg_ctl"), "-D", self.data, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def psql(self, sql: str, url: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        """`psql URL -X -tA -c SQL` (as role ferry over TCP by default); check returncode yourself."""
        psql = os.path.join(self.bin, "psql")
        if not os.access(psql, os.X_OK):
            psql = shutil.which("psql") or "psql"
        env = {k: v for k, v in os.environ.items() if not (k.startswith("PG") and not k.startswith("PG_"))}
        return subprocess.run(
            [psql, url or self.url, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def running(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return Path(self.data, "postmaster.pid").exists()

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (an outage): mode fast (SIGINT), immediate (SIGQUIT: a crash, recovery on
        the next start) or smart. The data stays."""
        env = dict(os.environ, PG_STOP_MODE=mode)
        env.pop("PG_WIPE", None)
        cp = subprocess.run(
            ["bash", str(SCRIPTS / "pg-stop.sh"), self.dir],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=90, env=env,
        )  # fmt: skip
        assert cp.returncode == 0, f"pg-stop.sh failed: {cp.stderr.decode('utf-8', 'replace')}"

    def start(self) -> None:
        """Starts it again on the same port (scripts/pg-start.sh with this PG_DIR): the same url."""
        exports = _exports_of("pg-start.sh", {"PG_DIR": self.dir, "PG_BIN": self.bin}, drop=("PG_FRESH",))
        assert exports["PG_URL"] == self.url, f"pg-start.sh restarted on another URL: {exports['PG_URL']} != {self.url}"
        self.pid = int(exports["PG_PID"])

    @contextlib.contextmanager
    def down(self, mode: str = "fast"):
        """`with postgres.down():` the server is stopped inside the block and started again after it."""
        self.stop(mode)
        try:
            yield self
        finally:
            self.start()


def find_pg_bin() -> str | None:
    """$PG_BIN, else the newest /usr/lib/postgresql/*/bin with initdb (as scripts/pg-start.sh)."""
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return explicit if os.access(os.path.join(explicit, "initdb"), os.X_OK) else None
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def version(path: str) -> tuple[int, ...]:
        parts = Path(path).parts[-3].split(".")
        return tuple(int(p) if p.isdigit() else 0 for p in parts)

    return os.path.dirname(max(found, key=version))


@pytest.fixture(scope="session")
def postgres() -> PgServer:
    """A throwaway PostgreSQL for the session (scripts/pg-start.sh), stopped and wiped at the end."""
    pg_bin = find_pg_bin()
    if pg_bin is None or not (shutil.which("psql") or os.access(os.path.join(pg_bin, "psql"), os.X_OK)):
        pytest.fail(
            "PostgreSQL (server under /usr/lib/postgresql/*/bin, and psql) is not installed: "
            "run `bash scripts/install-test-deps.sh` (or `make deps`), or set PG_BIN",
            pytrace=False,
        )
    exports = _exports_of("pg-start.sh", {"PG_BIN": pg_bin}, drop=("PG_DIR", "PG_FRESH"))
    server = PgServer(
        url=exports["PG_URL"],
        port=int(exports["PG_PORT"]),
        dir=exports["PG_DIR"],
        bin=exports["PG_BIN"],
        pid=int(exports["PG_PID"]),
    )
    try:
        yield server
    finally:
        _stop_service("pg-stop.sh", server.dir, "PG_WIPE")


# ------------------------------------------------ OpenLDAP slapd


@dataclass
class SlapdServer:
    """A slapd from scripts/slapd-start.sh; the seed (tests/interop/ldap/seed.ldif) has uid=lara
    (lara-pw, ferryAccount, in cn=ftpusers), uid=leo (leo-pw) and cn=ferry-search (search-pw)."""

    url: str  # ldap://127.0.0.1:PORT (StartTLS too)
    ldaps_url: str  # ldaps://127.0.0.1:PORT2
    ca: str  # the test CA (PEM) that signed the server certificate (127.0.0.1, localhost)
    base: str  # dc=ferry,dc=test
    admin_dn: str
    admin_pw: str
    dir: str
    pid: int
    search_dn: str = "cn=ferry-search,dc=ferry,dc=test"
    search_pw: str = "search-pw"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.base}"

    def client_env(self) -> dict[str, str]:
        """The environment for the ldap* tools: the test CA, certificates checked."""
        return dict(os.environ, LDAPTLS_CACERT=self.ca, LDAPTLS_REQCERT="demand")

    def tool(self, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess:
        """Runs an ldap* tool (ldapwhoami, ldapsearch, ldapmodify, ...) with client_env() (plus `env`)."""
        return subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.client_env(), **env},
        )

    def stop(self) -> None:
        env = dict(os.environ)
        env.pop("LDAP_WIPE", None)
        cp = subprocess.run(
            ["bash", str(SCRIPTS / "slapd-stop.sh"), self.dir],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env,
        )  # fmt: skip
        assert cp.returncode == 0, f"slapd-stop.sh failed: {cp.stderr.decode('utf-8', 'replace')}"

    def start(self) -> None:
        """Starts it again on the same ports, with the same data (scripts/slapd-start.sh)."""
        exports = _exports_of("slapd-start.sh", {"LDAP_DIR": self.dir}, drop=("LDAP_FRESH",))
        assert exports["LDAP_URL"] == self.url, f"slapd-start.sh restarted on another URL: {exports['LDAP_URL']}"
        self.pid = int(exports["LDAP_PID"])

    @contextlib.contextmanager
    def down(self):
        self.stop()
        try:
            yield self
        finally:
            self.start()


@pytest.fixture(scope="session")
def slapd() -> SlapdServer:
    """A throwaway OpenLDAP slapd for the session (scripts/slapd-start.sh), stopped and wiped at the end."""
    slapd_bin = os.environ.get("SLAPD_BIN") or ("/usr/sbin/slapd" if os.access("/usr/sbin/slapd", os.X_OK) else shutil.which("slapd"))
    missing = [t for t in ("ldapwhoami", "ldapsearch") if shutil.which(t) is None]
    if not slapd_bin or not os.access(slapd_bin, os.X_OK) or missing:
        pytest.fail(
            "OpenLDAP (slapd, and ldap-utils: ldapwhoami, ldapsearch) is not installed: "
            "run `bash scripts/install-test-deps.sh` (or `make deps`)",
            pytrace=False,
        )
    exports = _exports_of("slapd-start.sh", {"SLAPD_BIN": slapd_bin}, drop=("LDAP_DIR", "LDAP_FRESH"))
    server = SlapdServer(
        url=exports["LDAP_URL"],
        ldaps_url=exports["LDAPS_URL"],
        ca=exports["LDAP_CA"],
        base=exports["LDAP_BASE"],
        admin_dn=exports["LDAP_ADMIN_DN"],
        admin_pw=exports["LDAP_ADMIN_PW"],
        dir=exports["LDAP_DIR"],
        pid=int(exports["LDAP_PID"]),
    )
    try:
        yield server
    finally:
        _stop_service("slapd-stop.sh", server.dir, "LDAP_WIPE")


# ------------------------------------------------ Garage, three nodes


@dataclass
class GarageCluster:
    """Three Garage nodes (scripts/garage-cluster-start.sh), replication factor 3: any node serves the
    bucket, and reads and writes need 2 of 3. Nodes are numbered 1, 2, 3 as in the scripts;
    endpoints[0] is node 1's S3 API."""

    endpoints: list[str]
    region: str
    bucket: str
    access_key: str
    secret_key: str
    dir: str
    pids: list[int]

    @property
    def endpoint(self) -> str:
        return self.endpoints[0]

    def env(self, node: int = 1) -> S3Env:
        """The S3Env (for s3_storage_toml, S3) of node 1, 2 or 3."""
        return S3Env(self.endpoints[node - 1], self.region, self.bucket, self.access_key, self.secret_key)

    def s3(self, node: int = 1) -> S3:
        """curl --aws-sigv4 access to the bucket through node 1, 2 or 3."""
        return S3(self.env(node))

    def _node(self, action: str, node: int) -> None:
        assert node in (1, 2, 3), f"node must be 1, 2 or 3, not {node!r}"
        cp = subprocess.run(
            ["bash", str(SCRIPTS / "garage-cluster-node.sh"), self.dir, action, str(node)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
        )  # fmt: skip
        assert cp.returncode == 0, f"garage-cluster-node.sh {action} {node} failed:\n{cp.stderr.decode('utf-8', 'replace')}"
        pids = parse_exports(cp.stdout.decode("utf-8")).get("GARAGE_PIDS", "")
        self.pids = [int(p) for p in pids.split()]

    def stop_node(self, node: int) -> None:
        """Stops node 1, 2 or 3 (SIGTERM); its data stays."""
        self._node("stop", node)

    def start_node(self, node: int) -> None:
        """Starts node 1, 2 or 3 again on its ports; returns once it serves the bucket."""
        self._node("start", node)

    @contextlib.contextmanager
    def node_down(self, node: int):
        """`with garage_cluster.node_down(2):` node 2 is stopped inside the block, started after it."""
        self.stop_node(node)
        try:
            yield self
        finally:
            self.start_node(node)


@pytest.fixture(scope="session")
def garage_cluster() -> GarageCluster:
    """A three-node Garage for the session (scripts/garage-cluster-start.sh), stopped and wiped at the end."""
    garage_bin = find_garage()
    if garage_bin is None:
        pytest.fail(
            "garage (three of them make the cluster) is not installed: run `bash scripts/install-garage.sh` "
            "(or `make deps`), or set GARAGE_BIN",
            pytrace=False,
        )
    exports = _exports_of(
        "garage-cluster-start.sh", {"GARAGE_BIN": garage_bin}, drop=("GARAGE_CLUSTER_DIR", "GARAGE_FRESH")
    )
    cluster = GarageCluster(
        endpoints=exports["S3_ENDPOINTS"].split(),
        region=exports["S3_REGION"],
        bucket=exports["S3_BUCKET"],
        access_key=exports["AWS_ACCESS_KEY_ID"],
        secret_key=exports["AWS_SECRET_ACCESS_KEY"],
        dir=exports["GARAGE_CLUSTER_DIR"],
        pids=[int(p) for p in exports["GARAGE_PIDS"].split()],
    )
    assert len(cluster.endpoints) == 3 and cluster.endpoints[0] == exports["S3_ENDPOINT"], exports
    try:
        yield cluster
    finally:
        _stop_service("garage-cluster-stop.sh", cluster.dir, "GARAGE_WIPE")
