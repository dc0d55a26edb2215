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
