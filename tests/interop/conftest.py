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
