"""Helpers shared by the interop tests: a raw FTP control client, data helpers, file trees.

Everything here talks to loopback only and every blocking call has a timeout.
"""

from __future__ import annotations

import ftplib
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

IO_TIMEOUT = 10.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rand_bytes(n: int, rng: random.Random | None = None) -> bytes:
    if rng is None:
        return os.urandom(n)
    return rng.randbytes(n)


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tool(name: str) -> str:
    """Absolute path of an external client; fails (not skips) when it is missing."""
    found = shutil.which(name)
    assert found, f"{name} is not installed: run scripts/install-test-deps.sh"
    return found


def run(args: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Runs a client subprocess with a hard timeout, capturing its output."""
    return subprocess.run(args, capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------- ftplib helpers


def ftp_connect(server, login: bool = True, user: str | None = None, password: str | None = None) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=IO_TIMEOUT, encoding="utf-8")
    ftp.connect(server.host, server.port, timeout=IO_TIMEOUT)
    if login:
        ftp.login(user or server.user, password if password is not None else server.password)
    return ftp


def reply(ftp: ftplib.FTP, cmd: str) -> str:
    """Sends a command and returns the complete reply text, whatever its code (no exceptions)."""
    ftp.putcmd(cmd)
    return ftp.getmultiline()


def code(resp: str) -> int:
    return int(resp[:3])


def pwd_path(resp: str) -> str:
    """The directory named in a 257 reply (RFC 959 Appendix II: embedded quotes are doubled)."""
    m = re.match(r'^257 "((?:[^"]|"")*)"(?: |$)', resp)
    assert m, f"not a 257 reply with a quoted path: {resp!r}"
    return m.group(1).replace('""', '"')


def check_cdup_and_cwd(ftp: ftplib.FTP) -> None:
    """From /d1, which holds d2: CDUP to /, CDUP at the root stays there, CWD to an absolute path,
    CWD .. back to /d1 (where it ends)."""
    assert code(reply(ftp, "CDUP")) in (200, 250)
    assert pwd_path(reply(ftp, "PWD")) == "/"
    assert code(reply(ftp, "CDUP")) in (200, 250)  # at the root: stays at /
    assert pwd_path(reply(ftp, "PWD")) == "/"
    assert code(reply(ftp, "CWD /d1/d2")) == 250
    assert pwd_path(reply(ftp, "PWD")) == "/d1/d2"
    assert code(reply(ftp, "CWD ..")) == 250
    assert pwd_path(reply(ftp, "PWD")) == "/d1"


def retr_bytes(ftp: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary(f"RETR {path}", chunks.append, rest=rest)
    return b"".join(chunks)


def stor_bytes(ftp: ftplib.FTP, path: str, data: bytes, cmd: str = "STOR") -> str:
    import io

    return ftp.storbinary(f"{cmd} {path}", io.BytesIO(data))


def recv_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    while True:
        b = sock.recv(1 << 16)
        if not b:
            return bytes(out)
        out += b


def parse_227(resp: str) -> tuple[str, int]:
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", resp)
    assert m, f"no address in PASV reply {resp!r}"
    n = [int(x) for x in m.groups()]
    return f"{n[0]}.{n[1]}.{n[2]}.{n[3]}", n[4] * 256 + n[5]


def parse_229(resp: str) -> int:
    m = re.search(r"\((.)\1\1(\d+)\1\)", resp)
    assert m, f"no (|||port|) in EPSV reply {resp!r}"
    return int(m.group(2))


def port_arg(host: str, port: int) -> str:
    return ",".join(host.split(".") + [str(port >> 8), str(port & 0xFF)])


# ---------------------------------------------------------------- raw control client


class Raw:
    """A byte-level FTP control connection: send exactly what we want, parse replies strictly."""

    def __init__(self, host: str, port: int, timeout: float = IO_TIMEOUT, source: str | None = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.host = host
        self.buf = b""
        self.timeout = timeout

    # -- low level
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self, timeout: float | None = None) -> bytes | None:
        """One CRLF-terminated line (without CRLF), or None on EOF."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if self.buf:
                    rest, self.buf = self.buf, b""
                    return rest
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout: float | None = None) -> tuple[int, str] | None:
        """Reads one complete (possibly multi-line) reply; None if the server closed first."""
        first = self._line(timeout)
        if first is None:
            return None
        text = first.decode("utf-8", "replace")
        assert re.match(r"^\d{3}[ -]", text), f"malformed reply line {text!r}"
        c = int(text[:3])
        lines = [text]
        if text[3] == "-":
            while True:
                nxt = self._line(timeout)
                assert nxt is not None, f"connection closed inside multi-line reply {lines!r}"
                t = nxt.decode("utf-8", "replace")
                lines.append(t)
                if t.startswith(f"{c} "):
                    break
        return c, "\n".join(lines)

    def expect(self, codes, timeout: float | None = None) -> str:
        r = self.read_reply(timeout)
        assert r is not None, f"connection closed, expected {codes}"
        if isinstance(codes, int):
            codes = (codes,)
        assert r[0] in codes, f"expected {codes}, got {r[1]!r}"
        return r[1]

    def cmd(self, line: str | bytes, timeout: float | None = None) -> tuple[int, str]:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        r = self.read_reply(timeout)
        assert r is not None, f"connection closed after {line!r}"
        return r

    def ok(self, line: str | bytes, codes) -> str:
        c, text = self.cmd(line)
        if isinstance(codes, int):
            codes = (codes,)
        assert c in codes, f"{line!r}: expected {codes}, got {text!r}"
        return text

    def login(self, user: str, password: str) -> None:
        self.ok(f"USER {user}", 331)
        self.ok(f"PASS {password}", 230)

    def pasv(self, source: str | None = None) -> socket.socket:
        text = self.ok("PASV", 227)
        host, port = parse_227(text)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        return s

    def epsv(self) -> socket.socket:
        text = self.ok("EPSV", 229)
        port = parse_229(text)
        return socket.create_connection((self.host, port), timeout=self.timeout)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def reset(self) -> None:
        """Closes with a TCP RST (SO_LINGER 0): an abrupt client death."""
        hard_close(self.sock)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def raw_login(server) -> "Raw":
    """A raw control connection, greeted and logged in as the server's user."""
    r = Raw(server.host, server.port)
    r.expect(220)
    r.login(server.user, server.password)
    return r


def hard_close(sock: socket.socket) -> None:
    import struct

    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def assert_server_healthy(server) -> None:
    """A brand-new client can log in, list, upload and download: the server survived."""
    data = os.urandom(4096)
    r = Raw(server.host, server.port)
    try:
        r.expect(220)
        r.login(server.user, server.password)
        r.ok("TYPE I", 200)
        d = r.pasv()
        r.ok("STOR __health_check.bin", (125, 150))
        d.sendall(data)
        d.close()
        r.expect(226)
        d = r.pasv()
        r.ok("RETR __health_check.bin", (125, 150))
        got = recv_all(d)
        d.close()
        r.expect(226)
        assert got == data
        r.ok("DELE __health_check.bin", 250)
        r.ok("QUIT", 221)
    finally:
        r.close()


# ---------------------------------------------------------------- file trees


def make_tree(base: Path, nfiles: int = 300, seed: int | None = None, max_size: int = 64 * 1024) -> dict[str, str]:
    """Creates a nested tree of random files; returns {relative posix path: sha256}."""
    rng = random.Random(seed if seed is not None else random.randrange(1 << 30))
    dirs = [
        "",
        "alpha",
        "alpha/beta",
        "alpha/beta/gamma deep",
        "with space",
        "with space/inner dir",
        "zeta",
        "zeta/empty-sibling-parent",
    ]
    base.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "empty dir").mkdir(exist_ok=True)
    out: dict[str, str] = {}
    for i in range(nfiles):
        d = dirs[i % len(dirs)]
        name = f"file {i:03d}.bin" if i % 5 == 0 else f"f{i:03d}_{rng.randrange(1 << 20):x}.dat"
        size = 0 if i % 37 == 0 else rng.randrange(0, max_size + 1)
        data = rng.randbytes(size)
        rel = f"{d}/{name}" if d else name
        (base / rel).write_bytes(data)
        out[rel] = sha256(data)
    return out


def tree_digest(base: Path, skip=lambda rel: False) -> tuple[dict[str, str], set[str]]:
    """({file relpath: sha256}, {dir relpaths}) for everything under base."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for root, dnames, fnames in os.walk(base):
        rp = Path(root).relative_to(base)
        for d in dnames:
            rel = (rp / d).as_posix()
            if not skip(rel):
                dirs.add(rel)
        for f in fnames:
            rel = (rp / f).as_posix()
            if not skip(rel):
                files[rel] = file_sha256(Path(root) / f)
    return files, dirs


def wait_for(pred, timeout: float = 5.0, interval: float = 0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


def free_port_range(n: int = 8, host: str = "127.0.0.1") -> tuple[int, int]:
    """A range of n consecutive TCP ports that are free right now (best effort, random start)."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(30000, 60000 - n)
        socks = []
        try:
            for p in range(low, low + n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, p))
                socks.append(s)
            return low, low + n - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")
