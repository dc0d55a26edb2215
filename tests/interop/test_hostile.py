"""Hostile input over raw sockets: traversal, symlink escapes, FTP bounce, data-channel theft,
over-long lines, NUL / invalid UTF-8, abrupt disconnects, pipelining and floods.

After each attack the server must still serve a fresh client normally (and must not panic, which
the fixture checks on teardown).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from interop_util import (
    Raw,
    assert_server_healthy,
    hard_close,
    parse_227,
    parse_229,
    raw_login,
    port_arg,
    recv_all,
    wait_for,
    write_random,
)

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT\n" * 10


@pytest.fixture
def jail(ferry, tmp_path):
    """root/ with a file, plus things outside it: a secret file, a directory, symlinks from inside."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.chmod(tmp_path / "secret.txt", 0o640)
    os.utime(tmp_path / "secret.txt", (1_500_000_000, 1_500_000_000))
    outside = tmp_path / "outside_dir"
    outside.mkdir()
    (outside / "inside.txt").write_bytes(SECRET)
    (ferry.root / "inroot.txt").write_bytes(b"fine\n")
    (ferry.root / "sub").mkdir()
    os.symlink(tmp_path / "secret.txt", ferry.root / "link")
    os.symlink(outside, ferry.root / "ldir")
    os.symlink("../../secret.txt", ferry.root / "sub" / "rel-link")
    return ferry, tmp_path


def outside_untouched(tmp_path: Path) -> None:
    assert (tmp_path / "secret.txt").read_bytes() == SECRET
    st = os.stat(tmp_path / "secret.txt")
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert int(st.st_mtime) == 1_500_000_000
    assert sorted(os.listdir(tmp_path / "outside_dir")) == ["inside.txt"]
    assert (tmp_path / "outside_dir" / "inside.txt").read_bytes() == SECRET
    extra = {p.name for p in tmp_path.iterdir()} - {"secret.txt", "outside_dir", "root"}
    extra = {n for n in extra if not n.endswith(".stderr.log")}
    assert not extra, f"files created outside the root: {extra}"


def retr_refused(r: Raw, path: str) -> tuple[int, str, bytes]:
    """RETR with a passive connection ready; returns (final code, text, bytes received)."""
    d = r.pasv()
    c, text = r.cmd(f"RETR {path}")
    got = b""
    if c in (125, 150):
        try:
            got = recv_all(d, timeout=10)
        except OSError:
            pass
        c, text = r.read_reply()
    d.close()
    return c, text, got


# ------------------------------------------------------------------ traversal


TRAVERSALS = [
    "../secret.txt",
    "../../secret.txt",
    "../../../../../../../../etc/passwd",
    "/../secret.txt",
    "/../../../etc/passwd",
    "/etc/passwd",
    "sub/../../secret.txt",
    "./../secret.txt",
    "sub/../../../root/../secret.txt",
    "..\\secret.txt",
    "....//secret.txt",
    "%2e%2e/secret.txt",
]


def test_retr_traversal(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    bad = []
    for path in TRAVERSALS:
        c, text, got = retr_refused(r, path)
        if c != 550 or b"SECRET" in got or b"root:" in got:
            bad.append((path, text, got[:60]))
    assert not bad, bad
    for cmd in ("SIZE ../secret.txt", "MDTM ../secret.txt", "MLST ../secret.txt", "SIZE /../secret.txt"):
        c, text = r.cmd(cmd)
        if c != 550:
            bad.append((cmd, text))
    assert not bad, bad
    r.close()
    assert_server_healthy(ferry)


def test_cwd_traversal_stays_in_root(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    for cmd in ("CWD /../..", "CWD ../../..", "CWD ..", "CDUP", "CWD /..", "CWD sub/../../.."):
        c, text = r.cmd(cmd)
        assert c in (200, 250, 550), (cmd, text)
        c, text = r.cmd("PWD")
        assert c == 257 and text.startswith('257 "/"'), (cmd, text)
    for cmd in ("NLST", "NLST ..", "NLST ../..", "NLST /.."):
        d = r.pasv()
        c, text = r.cmd(cmd)
        if c in (125, 150):
            names = recv_all(d).decode("utf-8", "replace").split("\r\n")
            r.expect(226)
            assert "secret.txt" not in names and "outside_dir" not in names and "root" not in names, (cmd, names)
            assert "inroot.txt" in names, (cmd, names)
        else:
            assert c == 550, (cmd, text)
        d.close()
    c, text = r.cmd("STAT ..")
    entries = [line.split(" -> ")[0] for line in text.split("\n")]  # symlink targets aside
    assert not any(e.endswith((" secret.txt", " outside_dir", " root")) for e in entries), text
    assert any(e.endswith(" inroot.txt") for e in entries), text
    r.close()


def test_writes_cannot_escape(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    for target in ("../escape.bin", "/../escape.bin", "sub/../../escape.bin"):
        d = r.pasv()
        c, text = r.cmd(f"STOR {target}")
        if c in (125, 150):
            d.sendall(b"escaped?")
            d.close()
            r.expect(226)
        else:
            d.close()
            assert c in (550, 553), (target, text)
    for cmd in ("MKD ../escdir", "MKD /../escdir", "RMD ../outside_dir", "DELE ../secret.txt", "SITE CHMOD 777 ../secret.txt",
                "MFMT 20010101000000 ../secret.txt"):
        c, text = r.cmd(cmd)
        assert c != 350 and not (cmd.startswith("RMD") and c == 250) and not (cmd.startswith("DELE") and c == 250), (cmd, text)
    c, _ = r.cmd("RNFR inroot.txt")
    if c == 350:
        r.cmd("RNTO ../moved.txt")
    c, _ = r.cmd("RNFR ../secret.txt")
    if c == 350:
        r.cmd("RNTO stolen.txt")
    r.close()
    outside_untouched(tmp_path)
    assert not (ferry.root / "stolen.txt").exists()


# ------------------------------------------------------------------ symlinks out of the root


def test_symlink_to_outside_file_refused(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    for path in ("link", "sub/rel-link", "/link"):
        c, text, got = retr_refused(r, path)
        assert c == 550 and b"SECRET" not in got, (path, text, got[:60])
    for cmd in ("SIZE link", "MDTM link", "SITE CHMOD 777 link", "MFMT 20010101000000 link"):
        c, text = r.cmd(cmd)
        assert c == 550, (cmd, text)
    c, text = r.cmd("MLST link")
    assert c == 550 or "size=%d;" % len(SECRET) not in text.lower(), text
    # writing through the link must never modify the file outside
    for verb in ("APPE", "STOR"):
        d = r.pasv()
        c, text = r.cmd(f"{verb} link")
        if c in (125, 150):
            d.sendall(b"overwritten!")
            d.close()
            r.expect(226)
        else:
            d.close()
            assert c in (550, 553), (verb, text)
        outside_untouched(tmp_path)
    r.close()
    outside_untouched(tmp_path)


def test_symlink_to_outside_dir_refused(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    c, text = r.cmd("CWD ldir")
    assert c == 550, text
    c, text, got = retr_refused(r, "ldir/inside.txt")
    assert c == 550 and b"SECRET" not in got, (text, got[:60])
    for cmd in ("NLST ldir", "LIST ldir", "MLSD ldir"):
        d = r.pasv()
        c, text = r.cmd(cmd)
        if c in (125, 150):
            listing = recv_all(d).decode("utf-8", "replace")
            r.expect(226)
            assert "inside.txt" not in listing, (cmd, listing)
        else:
            assert c == 550, (cmd, text)
        d.close()
    d = r.pasv()
    c, text = r.cmd("STOR ldir/new.txt")
    if c in (125, 150):
        d.sendall(b"x")
        d.close()
        r.read_reply()
    d.close()
    for cmd in ("MKD ldir/newdir", "DELE ldir/inside.txt", "RMD ldir/x"):
        r.cmd(cmd)
    c, _ = r.cmd("RNFR ldir/inside.txt")
    if c == 350:
        r.cmd("RNTO grabbed.txt")
    r.close()
    outside_untouched(tmp_path)
    assert not (ferry.root / "grabbed.txt").exists()


def test_dele_symlink_keeps_target(jail):
    ferry, tmp_path = jail
    r = raw_login(ferry)
    c, text = r.cmd("DELE link")
    assert c in (250, 550), text
    r.close()
    outside_untouched(tmp_path)


# ------------------------------------------------------------------ FTP bounce and data-channel theft


def test_port_bounce_refused(ferry, ipv6_ok):
    victim = socket.create_server(("127.0.0.2", 0))
    victim.settimeout(1.5)
    vport = victim.getsockname()[1]
    write_random(ferry.root / "f.bin", 1000)
    r = raw_login(ferry)
    cmds = [f"PORT {port_arg('127.0.0.2', vport)}", f"EPRT |1|127.0.0.2|{vport}|"]
    victim6 = None
    if ipv6_ok:
        victim6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        victim6.settimeout(0.5)
        cmds.append(f"EPRT |2|::1|{victim6.getsockname()[1]}|")
    for cmd in cmds:
        c, text = r.cmd(cmd)
        assert 500 <= c < 600, f"{cmd}: {text}"
        c, text = r.cmd("RETR f.bin")
        assert c >= 400, (cmd, "RETR after a refused PORT/EPRT", text)
        for v in (victim, victim6):
            if v is None:
                continue
            with pytest.raises(socket.timeout):
                conn, peer = v.accept()
                conn.close()
                raise AssertionError(f"server connected to the bounce target from {peer}")
    victim.close()
    if victim6:
        victim6.close()
    r.ok("NOOP", 200)
    r.close()


@pytest.mark.parametrize("when", ["before-retr", "after-retr"])
@pytest.mark.parametrize("cmd", ["PASV", "EPSV"])
def test_passive_connection_from_other_ip_refused(ferry, when, cmd):
    data = write_random(ferry.root / "f.bin", 200_000)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    text = r.ok(cmd, 227 if cmd == "PASV" else 229)
    port = parse_227(text)[1] if cmd == "PASV" else parse_229(text)
    thief = socket.socket()
    thief.bind(("127.0.0.2", 0))
    thief.settimeout(5)

    def steal() -> bytes:
        got = b""
        try:
            thief.connect(("127.0.0.1", port))
            thief.settimeout(2)
            while True:
                b = thief.recv(65536)
                if not b:
                    break
                got += b
        except OSError:
            pass
        return got

    if when == "before-retr":
        stolen = steal()
        r.send(b"RETR f.bin\r\n")
    else:
        r.send(b"RETR f.bin\r\n")
        time.sleep(0.2)
        stolen = steal()
    assert stolen == b"", f"{len(stolen)} bytes delivered to 127.0.0.2"
    thief.close()
    # The server may keep waiting for the real client (the 150 may come only once it connects);
    # if it does, the data must go to the real client. Refusing the transfer (425) is fine too.
    got = None
    try:
        legit = socket.create_connection(("127.0.0.1", port), timeout=5)
        got = recv_all(legit, timeout=15)
        legit.close()
    except OSError:
        pass
    codes = []
    while True:
        rep = r.read_reply(timeout=15)
        assert rep is not None, f"control connection closed; replies {codes}"
        codes.append(rep[1])
        if rep[0] >= 200:
            break
    final = int(codes[-1][:3])
    if final == 226:
        assert got == data, "226 but the real client did not get the file"
    else:
        assert 400 <= final < 500, codes
    r.ok("NOOP", 200)
    r.close()
    assert_server_healthy(ferry)


# ------------------------------------------------------------------ malformed input


@pytest.mark.parametrize("phase", ["before-login", "after-login", "with-crlf"])
def test_64k_line(ferry, phase):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    if phase != "before-login":
        r.login(ferry.user, ferry.password)
    payload = b"A" * 65536 + (b"\r\n" if phase == "with-crlf" else b"")
    try:
        r.send(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed on us: allowed
    try:
        got = r.read_reply(timeout=5)
    except socket.timeout:
        raise AssertionError("no 500 and no close within 5 s after a 64 KiB line")
    if got is not None:
        assert got[0] == 500, got
        try:
            r.send(b"\r\nNOOP\r\n" if phase != "with-crlf" else b"NOOP\r\n")
            nxt = r.read_reply(timeout=5)
        except (BrokenPipeError, ConnectionResetError):
            nxt = None
        if nxt is not None:
            assert nxt[0] == 200, nxt
    r.close()
    assert_server_healthy(ferry)


def test_long_argument_in_pieces(ferry):
    """A long line sent slowly in many segments is bounded the same way."""
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    try:
        r.send(b"USER ")
        for _ in range(20):
            r.send(b"x" * 4000)
        r.send(b"\r\n")
        got = r.read_reply(timeout=5)
    except (BrokenPipeError, ConnectionResetError):
        got = None
    assert got is None or got[0] == 500, got
    r.close()
    assert_server_healthy(ferry)


BAD_BYTES = [
    b"CWD a\x00b",
    b"MKD \xc3\x28",
    b"MKD bad\x80name",
    b"RETR \x80abc",
    b"DELE \xfe\xfe",
    b"NOOP\x00",
    b"MKD ok\x00../../evil",
    b"STOR \xed\xa0\x80",  # UTF-8-encoded surrogate: invalid UTF-8
    b"\x00\x00\x00",
]


@pytest.mark.parametrize("line", BAD_BYTES, ids=[repr(b)[2:-1] for b in BAD_BYTES])
def test_nul_and_invalid_utf8_after_login(ferry, tmp_path, line):
    r = raw_login(ferry)
    c, text = r.cmd(line)
    assert c in (500, 501), text
    r.ok("NOOP", 200)
    r.close()
    assert os.listdir(ferry.root) == []
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    "line", [b"USER \xc3\x28", b"USER al\x00ice", b"USER \x00", b"\x00USER alice"], ids=["utf8", "nul", "only-nul", "leading-nul"]
)
def test_nul_and_invalid_utf8_before_login(ferry, line):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    c, text = r.cmd(line)
    assert c in (500, 501), text
    r.login(ferry.user, ferry.password)
    r.close()
    assert_server_healthy(ferry)


def test_telnet_sequences(ferry):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    r.send(b"\xff\xfd\x01\xff\xfb\x03NOOP\r\n")  # IAC DO ECHO, IAC WILL SGA, then a command
    got = r.read_reply()
    assert got is not None and got[0] == 200, got
    c, text = r.cmd(b"NO\xff\xffOP")  # IAC IAC is a data byte 0xff: not NOOP
    assert c in (500, 501), text
    r.close()


# ------------------------------------------------------------------ abrupt disconnects


def test_dropped_mid_command(ferry):
    for payload in (b"RET", b"USER al", b"US", b"\xff", b"PASS"):
        s = socket.create_connection((ferry.host, ferry.port), timeout=5)
        s.recv(1024)
        s.sendall(payload)
        hard_close(s)
    r = raw_login(ferry)
    r.send(b"STOR half")
    r.close()
    r = raw_login(ferry)
    r.ok("PASV", 227)
    r.send(b"RETR ")
    r.reset()
    assert_server_healthy(ferry)


def test_dropped_mid_transfer(ferry):
    big = write_random(ferry.root / "big.bin", 16 * 1024 * 1024)
    # download: read a little, then reset both connections
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("RETR big.bin", (125, 150))
    d.recv(65536)
    hard_close(d)
    r.reset()
    # upload to a new file: send some, then reset both
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("STOR new.bin", (125, 150))
    d.sendall(os.urandom(300_000))
    r.reset()
    hard_close(d)
    # control closed cleanly while the data connection is idle and open
    r = raw_login(ferry)
    d = r.pasv()
    r.ok("STOR idle.bin", (125, 150))
    r.close()
    time.sleep(0.3)
    hard_close(d)
    assert (ferry.root / "big.bin").read_bytes() == big
    assert_server_healthy(ferry)


# ------------------------------------------------------------------ pipelining and floods


def test_pipelined_commands(ferry):
    write_random(ferry.root / "f.bin", 4321)
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    script = [
        (f"USER {ferry.user}", {331}),
        (f"PASS {ferry.password}", {230}),
        ("SYST", {215}),
        ("PWD", {257}),
        ("TYPE I", {200}),
        ("SIZE f.bin", {213}),
        ("MKD x", {257}),
        ("CWD x", {250}),
        ("PWD", {257}),
        ("NOOP", {200}),
        ("CDUP", {200, 250}),
        ("RMD x", {250}),
        ("RNTO nowhere", {503}),
        ("FEAT", {211}),
        ("BOGUS", {500}),
        ("HELP", {214}),
        ("QUIT", {221}),
    ]
    r.send(b"".join(c.encode() + b"\r\n" for c, _ in script))
    got = []
    for cmd, codes in script:
        rep = r.read_reply()
        assert rep is not None, f"closed before the reply to {cmd}; got {got}"
        got.append((cmd, rep[1]))
        assert rep[0] in codes, got
    assert got[5][1] == "213 4321"
    assert got[8][1].startswith('257 "/x"')
    assert r.closed_by_peer()
    assert_server_healthy(ferry)


def test_noop_flood(ferry):
    """20000 pipelined commands while replies are read concurrently: no loss, no deadlock."""
    n = 20000
    r = Raw(ferry.host, ferry.port, timeout=30)
    r.expect(220)
    r.login(ferry.user, ferry.password)
    err = []

    def sender():
        try:
            r.sock.sendall(b"NOOP\r\n" * n)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender)
    t.start()
    count = 0
    for _ in range(n):
        rep = r.read_reply(timeout=30)
        assert rep is not None and rep[0] == 200, (count, rep)
        count += 1
    t.join(30)
    assert not err and count == n
    r.ok("NOOP", 200)
    r.close()


def test_slow_bytes(ferry):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    for b in f"USER {ferry.user}\r\n".encode():
        r.send(bytes([b]))
        time.sleep(0.005)
    r.expect(331)
    r.send(f"PASS {ferry.password}\r".encode())
    time.sleep(0.2)
    r.send(b"\n")
    r.expect(230)
    r.close()


def test_connection_storm(ferry):
    socks = []
    for _ in range(40):
        try:
            socks.append(socket.create_connection((ferry.host, ferry.port), timeout=5))
        except OSError:
            pass
    for i, s in enumerate(socks):
        if i % 2:
            hard_close(s)
        else:
            s.close()

    def healthy():
        try:
            assert_server_healthy(ferry)
            return True
        except (AssertionError, OSError):
            return False

    assert wait_for(healthy, timeout=10, interval=0.5)


def test_failed_logins_are_bounded(ferry):
    """Password guessing on one connection ends: after a few failures the server says 421 and closes."""
    r = Raw(ferry.host, ferry.port, timeout=15)
    r.expect(220)
    closed = False
    for attempt in range(6):
        try:
            c, text = r.cmd(f"USER {ferry.user}")
        except (AssertionError, BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if c == 421:
            closed = r.closed_by_peer()
            break
        assert c == 331, text
        c, text = r.cmd(f"PASS wrong-{attempt}")
        if c == 421:
            closed = r.closed_by_peer()
            break
        assert c == 530, text
    assert closed, "six wrong passwords on one connection and the server still accepts more"
    r.close()
    assert_server_healthy(ferry)
