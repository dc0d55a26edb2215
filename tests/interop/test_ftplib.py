"""Ferry against Python's ftplib (an independent client) and exact reply checks.

Every transfer is checked byte for byte (sha256) against random content.
"""

from __future__ import annotations

import calendar
import ftplib
import hashlib
import io
import os
import re
import signal
import socket
import stat
import threading
import time
import zlib

import pytest

from interop_util import (
    check_cdup_and_cwd,
    code,
    file_sha256,
    free_port_range,
    ftp_connect,
    hard_close,
    parse_227,
    parse_229,
    port_arg,
    pwd_path,
    Raw,
    recv_all,
    reply,
    retr_bytes,
    sha256,
    stor_bytes,
    wait_for,
    write_random,
)

FEAT_REQUIRED = {"EPRT", "EPSV", "MDTM", "MFMT", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"}
MLST_FACTS = {"type*", "size*", "modify*", "perm*", "unique*", "unix.mode*"}


def raw_login(server) -> Raw:
    r = Raw(server.host, server.port)
    r.expect(220)
    r.login(server.user, server.password)
    return r


# ------------------------------------------------------------------ the seed session


def test_seed_session_pasv_retr(ferry):
    """The capture from the seeds: USER, PASS, SYST, FEAT, PWD, TYPE I, SIZE, PASV, RETR x2, QUIT."""
    bashrc = write_random(ferry.root / ".bashrc", 124)
    profile = write_random(ferry.root / ".bash_profile", 176)
    ftp = ftplib.FTP(timeout=10)
    welcome = ftp.connect(ferry.host, ferry.port)
    assert welcome.startswith("220")
    assert ftp.sendcmd(f"USER {ferry.user}").startswith("331 ")
    assert ftp.sendcmd(f"PASS {ferry.password}").startswith("230 ")
    assert ftp.sendcmd("SYST") == "215 UNIX Type: L8"
    feat = ftp.sendcmd("FEAT")
    assert feat.startswith("211-")
    assert " EPSV" in feat.split("\n") and " MDTM" in feat.split("\n") and " REST STREAM" in feat.split("\n")
    assert pwd_path(ftp.sendcmd("PWD")) == "/"
    assert ftp.sendcmd("TYPE I").startswith("200")
    for name, data in ((".bashrc", bashrc), (".bash_profile", profile)):
        assert ftp.sendcmd(f"SIZE {name}") == f"213 {len(data)}"
        resp = ftp.sendcmd("PASV")
        assert resp.startswith("227 ")
        host, port = parse_227(resp)
        assert host == "127.0.0.1"
        d = socket.create_connection((host, port), timeout=10)
        assert ftp.sendcmd(f"RETR {name}")[:3] in ("125", "150")
        got = recv_all(d)
        d.close()
        assert ftp.voidresp().startswith("226")
        assert sha256(got) == sha256(data)
    assert ftp.quit().startswith("221")


def test_pwd_reply_text_exact(ferry):
    """The contract's exact PWD text (RFC 959 leaves the text free; our clients' logs and docs pin it)."""
    ftp = ftp_connect(ferry)
    assert ftp.sendcmd("PWD") == '257 "/" is the current directory'
    ftp.quit()


def test_feat_is_rfc2389_and_complete(ferry):
    ftp = ftp_connect(ferry)
    lines = ftp.sendcmd("FEAT").split("\n")
    assert lines[0].startswith("211-")
    assert lines[-1].startswith("211 ")
    body = lines[1:-1]
    assert body and all(line.startswith(" ") for line in body), body
    feats = {line.strip() for line in body}
    upper = {f.upper() for f in feats}
    missing = FEAT_REQUIRED - upper
    assert not missing, f"FEAT lacks {missing}: {feats}"
    mlst = [f for f in feats if f.upper().startswith("MLST ")]
    assert len(mlst) == 1, feats
    facts = {x.lower() for x in mlst[0].split(" ", 1)[1].split(";") if x}
    assert facts == MLST_FACTS
    ftp.quit()


def test_feat_before_login(ferry):
    """RFC 2389: clients (lftp, curl) send FEAT before USER; it must not need a login."""
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    c, text = r.cmd("FEAT")
    assert c == 211, text
    r.close()


# ------------------------------------------------------------------ basic commands


def test_pwd_mkd_quote_doubling(ferry):
    ftp = ftp_connect(ferry)
    resp = reply(ftp, 'MKD we"ird')
    assert resp.startswith('257 "/we""ird"'), resp
    assert (ferry.root / 'we"ird').is_dir()
    assert reply(ftp, 'CWD we"ird').startswith("250")
    resp = reply(ftp, "PWD")
    assert resp.startswith('257 "/we""ird" '), resp
    assert pwd_path(resp) == '/we"ird'
    ftp.quit()


def test_type_stru_mode(ferry):
    ftp = ftp_connect(ferry)
    expectations = [
        ("TYPE I", {200}),
        ("TYPE A", {200}),
        ("TYPE A N", {200}),
        ("TYPE E", {504}),
        ("TYPE", {501}),
        ("TYPE Q", {501, 504}),
        ("STRU F", {200}),
        ("STRU R", {504}),
        ("STRU P", {504}),
        ("MODE S", {200}),
        ("MODE B", {504}),
        ("MODE C", {504}),
    ]
    bad = []
    for cmd, codes in expectations:
        resp = reply(ftp, cmd)
        if code(resp) not in codes:
            bad.append((cmd, resp, codes))
    assert not bad, bad
    ftp.quit()


def test_size_and_mdtm(ferry):
    data = write_random(ferry.root / "f.bin", 54321)
    os.utime(ferry.root / "f.bin", (1_600_000_000, 1_600_000_000))  # 2020-09-13 12:26:40 UTC
    (ferry.root / "d").mkdir()
    ftp = ftp_connect(ferry)
    ftp.voidcmd("TYPE I")
    assert reply(ftp, "SIZE f.bin") == f"213 {len(data)}"
    assert code(reply(ftp, "SIZE nope.bin")) == 550
    assert code(reply(ftp, "SIZE d")) == 550
    assert re.fullmatch(r"213 20200913122640(\.0+)?", reply(ftp, "MDTM f.bin"))
    assert code(reply(ftp, "MDTM nope.bin")) == 550
    ftp.quit()


def test_hash_matches_hashlib(ferry):
    """HASH (draft-bryan-ftpext-hash-02): 213 SHA-256 0-<size> <hex> <path>, the digest Python computes."""
    data = write_random(ferry.root / "h.bin", 1_234_567)
    ftp = ftp_connect(ferry)
    feats = [l.strip() for l in ftp.sendcmd("FEAT").split("\n")]
    assert "HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32" in feats, feats
    assert reply(ftp, "HASH h.bin") == f"213 SHA-256 0-{len(data)} {sha256(data)} h.bin"
    assert reply(ftp, "OPTS HASH MD5") == "200 MD5"
    assert reply(ftp, "HASH h.bin") == f"213 MD5 0-{len(data)} {hashlib.md5(data).hexdigest()} h.bin"
    assert reply(ftp, "RANG 100 200") == "350 Restarting at 100. Ending at 200."
    assert reply(ftp, "HASH h.bin") == f"213 MD5 100-200 {hashlib.md5(data[100:200]).hexdigest()} h.bin"
    assert reply(ftp, "XCRC h.bin") == f"250 {zlib.crc32(data):08x}"
    assert reply(ftp, "OPTS HASH SHA-256") == "200 SHA-256"
    up = os.urandom(333_333)
    ftp.storbinary("STOR up.bin", io.BytesIO(up))
    assert reply(ftp, "HASH up.bin") == f"213 SHA-256 0-{len(up)} {sha256(up)} up.bin"
    assert code(reply(ftp, "HASH nope.bin")) == 550
    ftp.quit()


def test_mfmt_then_mdtm(ferry):
    write_random(ferry.root / "t.txt", 10)
    ftp = ftp_connect(ferry)
    resp = reply(ftp, "MFMT 20200102030405 t.txt")
    assert code(resp) == 213, resp
    assert "Modify=20200102030405" in resp, resp
    assert int(os.stat(ferry.root / "t.txt").st_mtime) == calendar.timegm((2020, 1, 2, 3, 4, 5))
    assert re.fullmatch(r"213 20200102030405(\.0+)?", reply(ftp, "MDTM t.txt"))
    assert code(reply(ftp, "MFMT 20200102030405 nope.txt")) == 550
    assert code(reply(ftp, "MFMT 2020-01-02 t.txt")) == 501
    ftp.quit()


def test_misc_commands(ferry):
    ftp = ftp_connect(ferry)
    assert code(reply(ftp, "NOOP")) == 200
    assert code(reply(ftp, "ALLO 1000")) in (200, 202)
    assert code(reply(ftp, "ACCT billing")) == 202
    assert code(reply(ftp, "SMNT /mnt")) == 502
    assert code(reply(ftp, "OPTS UTF8 ON")) == 200
    help_ = reply(ftp, "HELP")
    assert help_.startswith("214-") and help_.split("\n")[-1].startswith("214 "), help_
    assert code(reply(ftp, "SITE HELP")) == 214
    st = reply(ftp, "STAT")
    assert st.startswith("211-") and st.split("\n")[-1].startswith("211 "), st
    ftp.quit()


def test_stat_path(ferry):
    write_random(ferry.root / "one.bin", 77)
    (ferry.root / "sub").mkdir()
    write_random(ferry.root / "sub" / "inner.bin", 5)
    ftp = ftp_connect(ferry)
    resp = reply(ftp, "STAT one.bin")
    assert code(resp) in (212, 213), resp
    assert "one.bin" in resp and " 77 " in resp, resp
    resp = reply(ftp, "STAT sub")
    assert code(resp) in (212, 213), resp
    assert "inner.bin" in resp, resp
    assert code(reply(ftp, "STAT nope")) in (450, 550)
    ftp.quit()


def test_rein_logs_out(ferry):
    r = raw_login(ferry)
    r.ok("REIN", 220)
    r.ok("PWD", 530)
    r.login(ferry.user, ferry.password)
    assert r.ok("PWD", 257).startswith('257 "/"')
    r.ok("QUIT", 221)
    assert r.closed_by_peer()


def test_quit_closes(ferry):
    r = raw_login(ferry)
    r.ok("QUIT", 221)
    assert r.closed_by_peer(), "server kept the control connection open after 221"


# ------------------------------------------------------------------ login and errors


def test_commands_before_login_get_530(ferry):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    bad = []
    for cmd in ("PWD", "CWD /", "LIST", "NLST", "RETR x", "STOR x", "MKD x", "DELE x", "PASV", "EPSV", "SIZE x", "CDUP"):
        c, text = r.cmd(cmd)
        if c != 530:
            bad.append((cmd, text))
    assert not bad, bad
    assert not (ferry.root / "x").exists()
    r.close()


def test_login_failures(ferry):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    r.ok("PASS whatever", 503)  # RFC 959: PASS must follow USER
    r.ok("USER", 501)
    r.ok(f"USER {ferry.user}", 331)
    r.ok("PASS wrong-password", 530)
    r.ok("PWD", 530)
    r.ok("USER nosuchuser", 331)
    r.ok(f"PASS {ferry.password}", 530)
    r.ok("PWD", 530)
    r.login(ferry.user, ferry.password)
    r.ok("PWD", 257)
    r.close()


def test_anonymous_refused_without_flag(ferry):
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    c, _ = r.cmd("USER anonymous")
    if c == 331:
        r.ok("PASS guest@example.com", 530)
    else:
        assert c == 530
    r.ok("PWD", 530)
    r.close()


def test_error_replies(ferry):
    write_random(ferry.root / "file.bin", 10)
    (ferry.root / "dir").mkdir()
    r = raw_login(ferry)
    cases = [
        ("CWD nope", {550}),
        ("DELE nope", {550}),
        ("RMD nope", {550}),
        ("SIZE nope", {550}),
        ("MDTM nope", {550}),
        ("RNFR nope", {550}),
        ("MLST nope", {550}),
        ("CWD file.bin", {550}),
        ("DELE dir", {550}),
        ("RMD file.bin", {550}),
        ("MKD dir", {550}),
        ("MKD", {501}),
        ("DELE", {501}),
        ("RNTO x", {503}),
        ("XYZZY", {500}),
        ("XYZZY with args", {500}),
        ("PORT 1,2,3", {501}),
        ("PORT 127,0,0,1,300,1", {501}),
        ("EPRT garbage", {501}),
        ("EPRT |1|127.0.0.1|notaport|", {501}),
        ("REST abc", {501}),
        ("REST -5", {501}),
        ("SITE CHMOD 999 file.bin", {501}),
        ("SITE CHMOD 600 nope", {550}),
        ("SITE NOSUCHTHING", {500, 501, 502, 504}),
    ]
    bad = []
    for cmd, codes in cases:
        c, text = r.cmd(cmd)
        if c not in codes:
            bad.append((cmd, text, codes))
    # RETR of a missing file with a data connection prepared
    d = r.pasv()
    c, text = r.cmd("RETR nope")
    if c != 550:
        bad.append(("PASV; RETR nope", text, {550}))
    d.close()
    assert not bad, bad
    r.ok("NOOP", 200)
    r.close()


def test_rnto_must_immediately_follow_rnfr(ferry):
    """RFC 959 4.1.3: RNFR 'must be immediately followed by' RNTO; anything between resets it."""
    write_random(ferry.root / "a", 3)
    r = raw_login(ferry)
    r.ok("RNFR a", 350)
    r.ok("NOOP", 200)
    r.ok("RNTO b", 503)
    assert (ferry.root / "a").exists() and not (ferry.root / "b").exists()
    r.close()


# ------------------------------------------------------------------ data connections


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * 1024 * 1024 + 7])
def test_pasv_roundtrip(ferry, size):
    data = os.urandom(size)
    ftp = ftp_connect(ferry)
    ftp.set_pasv(True)
    assert stor_bytes(ftp, "up.bin", data).startswith("226")
    assert file_sha256(ferry.root / "up.bin") == sha256(data)
    assert sha256(retr_bytes(ftp, "up.bin")) == sha256(data)
    ftp.quit()


def test_port_active_roundtrip(ferry):
    data = os.urandom(2 * 1024 * 1024 + 3)
    ftp = ftp_connect(ferry)
    ftp.set_pasv(False)  # ftplib sends PORT h1,h2,h3,h4,p1,p2 for IPv4
    assert stor_bytes(ftp, "active.bin", data).startswith("226")
    assert file_sha256(ferry.root / "active.bin") == sha256(data)
    assert sha256(retr_bytes(ftp, "active.bin")) == sha256(data)
    assert "active.bin" in ftp.nlst()
    ftp.quit()


def test_epsv_ipv4_roundtrip(ferry):
    data = write_random(ferry.root / "e.bin", 500_000)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    text = r.ok("EPSV", 229)
    port = parse_229(text)
    d = socket.create_connection((ferry.host, port), timeout=10)
    r.ok("RETR e.bin", (125, 150))
    got = recv_all(d)
    d.close()
    r.expect(226)
    assert sha256(got) == sha256(data)
    text = r.ok("EPSV 1", 229)
    d = socket.create_connection((ferry.host, parse_229(text)), timeout=10)
    r.ok("NLST", (125, 150))
    names = recv_all(d).decode().split("\r\n")
    d.close()
    r.expect(226)
    assert "e.bin" in names
    r.close()


def test_eprt_ipv4_roundtrip(ferry):
    data = write_random(ferry.root / "x.bin", 300_000)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    lst = socket.create_server(("127.0.0.1", 0))
    lst.settimeout(10)
    r.ok(f"EPRT |1|127.0.0.1|{lst.getsockname()[1]}|", 200)
    r.ok("RETR x.bin", (125, 150))
    d, _ = lst.accept()
    got = recv_all(d)
    d.close()
    lst.close()
    r.expect(226)
    assert sha256(got) == sha256(data)
    r.close()


def test_epsv_eprt_unsupported_protocol_522(ferry):
    r = raw_login(ferry)
    c, text = r.cmd("EPSV 3")
    assert c == 522 and re.search(r"\(\s*\d+(\s*,\s*\d+)*\s*\)", text), text
    c, text = r.cmd("EPRT |3|1.2.3.4|5000|")
    assert c == 522 and re.search(r"\(\s*\d+(\s*,\s*\d+)*\s*\)", text), text
    r.ok("NOOP", 200)
    r.close()


def test_epsv_all_locks_out_other_modes(ferry):
    data = write_random(ferry.root / "f.bin", 1000)
    r = raw_login(ferry)
    r.ok("EPSV ALL", 200)
    lst = socket.create_server(("127.0.0.1", 0))
    p = lst.getsockname()[1]
    for cmd in ("PASV", f"PORT {port_arg('127.0.0.1', p)}", f"EPRT |1|127.0.0.1|{p}|"):
        c, text = r.cmd(cmd)
        assert 500 <= c < 600, f"{cmd} after EPSV ALL: {text}"
    lst.close()
    r.ok("TYPE I", 200)
    d = r.epsv()
    r.ok("RETR f.bin", (125, 150))
    assert recv_all(d) == data
    d.close()
    r.expect(226)
    r.close()


def test_port_refused_for_low_port(ferry):
    r = raw_login(ferry)
    for cmd in (f"PORT {port_arg('127.0.0.1', 21)}", "EPRT |1|127.0.0.1|80|"):
        c, text = r.cmd(cmd)
        assert 500 <= c < 600, f"{cmd}: {text}"
    r.close()


def test_many_pasv_without_transfer(ferry):
    """Each PASV replaces the previous listener: the pool must not leak."""
    data = write_random(ferry.root / "f.bin", 1234)
    r = raw_login(ferry)
    for _ in range(150):
        r.ok("PASV", 227)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("RETR f.bin", (125, 150))
    assert recv_all(d) == data
    d.close()
    r.expect(226)
    r.close()


def test_passive_port_range(ferry_factory):
    low, high = free_port_range(4)
    server = ferry_factory(["--passive-ports", f"{low}-{high}", "--no-fsync"])
    data = write_random(server.root / "f.bin", 4321)
    ftp = ftp_connect(server)
    for _ in range(6):
        _, port = parse_227(ftp.sendcmd("PASV"))
        assert low <= port <= high, (port, low, high)
        port = parse_229(ftp.sendcmd("EPSV"))
        assert low <= port <= high, (port, low, high)
    for _ in range(6):
        assert retr_bytes(ftp, "f.bin") == data
    ftp.quit()


def test_concurrent_sessions(ferry):
    n = 6
    blobs = {i: os.urandom(700_000 + i) for i in range(n)}
    errors = []

    def worker(i):
        try:
            ftp = ftp_connect(ferry)
            ftp.set_pasv(i % 2 == 0)
            stor_bytes(ftp, f"c{i}.bin", blobs[i])
            assert retr_bytes(ftp, f"c{i}.bin") == blobs[i]
            ftp.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i in range(n):
        assert file_sha256(ferry.root / f"c{i}.bin") == sha256(blobs[i])


# ------------------------------------------------------------------ IPv6


def test_ipv6_epsv_and_eprt(ferry6):
    data = os.urandom(1_000_003)
    ftp = ftplib.FTP(timeout=10)
    ftp.connect("::1", ferry6.port)
    ftp.login(ferry6.user, ferry6.password)
    ftp.set_pasv(True)  # ftplib uses EPSV on IPv6
    assert stor_bytes(ftp, "v6.bin", data).startswith("226")
    assert sha256(retr_bytes(ftp, "v6.bin")) == sha256(data)
    ftp.set_pasv(False)  # ftplib uses EPRT |2|::1|port| on IPv6
    assert stor_bytes(ftp, "v6b.bin", data).startswith("226")
    assert sha256(retr_bytes(ftp, "v6b.bin")) == sha256(data)
    assert sorted(ftp.nlst()) == ["v6.bin", "v6b.bin"]
    ftp.quit()
    assert file_sha256(ferry6.root / "v6b.bin") == sha256(data)


def test_dual_stack_listeners(ferry_factory, ipv6_ok):
    if not ipv6_ok:
        pytest.skip("IPv6 loopback ::1 is not usable here")
    server = ferry_factory(listen=["127.0.0.1:0", "[::1]:0"])
    hosts = {h for h, _ in server.listeners}
    assert hosts == {"127.0.0.1", "::1"}, server.listeners
    data = write_random(server.root / "f.bin", 10_000)
    for host, port in server.listeners:
        ftp = ftplib.FTP(timeout=10)
        ftp.connect(host, port)
        ftp.login(server.user, server.password)
        assert retr_bytes(ftp, "f.bin") == data
        ftp.quit()


# ------------------------------------------------------------------ TYPE A


def test_type_a_upload_converts_crlf_to_lf(ferry):
    ftp = ftp_connect(ferry)
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("STOR a.txt")
    conn.sendall(b"a\r\nb\r\n")
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert (ferry.root / "a.txt").read_bytes() == b"a\nb\n"
    # CRLF split across two TCP segments
    conn = ftp.transfercmd("STOR split.txt")
    conn.sendall(b"line1\r")
    time.sleep(0.2)
    conn.sendall(b"\nline2\r\n")
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert (ferry.root / "split.txt").read_bytes() == b"line1\nline2\n"
    ftp.quit()


def test_type_a_download_converts_lf_to_crlf(ferry):
    (ferry.root / "l.txt").write_bytes(b"x\ny\n")
    ftp = ftp_connect(ferry)
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("RETR l.txt")
    got = recv_all(conn)
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert got == b"x\r\ny\r\n"
    ftp.quit()


def test_type_a_large_text_both_ways(ferry):
    import random

    rng = random.Random()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,;-"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200))) for _ in range(20000)]
    unix = ("\n".join(lines) + "\n").encode()
    dos = unix.replace(b"\n", b"\r\n")
    (ferry.root / "big.txt").write_bytes(unix)
    ftp = ftp_connect(ferry)
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("RETR big.txt")
    got = recv_all(conn)
    conn.close()
    ftp.voidresp()
    assert sha256(got) == sha256(dos)
    conn = ftp.transfercmd("STOR back.txt")
    view = memoryview(dos)
    for i in range(0, len(dos), 4093):  # odd chunk size: CR and LF land in different sends
        conn.sendall(view[i : i + 4093])
    conn.close()
    ftp.voidresp()
    assert file_sha256(ferry.root / "back.txt") == sha256(unix)
    # and binary mode still transfers the file untouched
    ftp.voidcmd("TYPE I")
    assert sha256(retr_bytes(ftp, "big.txt")) == sha256(unix)
    ftp.quit()


# ------------------------------------------------------------------ REST / ABOR


def test_rest_resume_download(ferry):
    data = write_random(ferry.root / "r.bin", 200_000)
    ftp = ftp_connect(ferry)
    ftp.voidcmd("TYPE I")
    assert code(reply(ftp, "REST 12345")) == 350
    ftp.putcmd("REST 0")  # a second REST replaces the first
    assert code(ftp.getmultiline()) == 350
    assert retr_bytes(ftp, "r.bin", rest=12345) == data[12345:]
    # the marker is consumed by the transfer: the next RETR starts at 0
    assert retr_bytes(ftp, "r.bin") == data
    assert retr_bytes(ftp, "r.bin", rest=len(data) - 1) == data[-1:]
    ftp.quit()


def _make_big(path, size=64 * 1024 * 1024) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def test_abor_during_retr(ferry):
    _make_big(ferry.root / "big.bin")
    small = write_random(ferry.root / "small.bin", 5000)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("RETR big.bin", (125, 150))
    got = 0
    d.settimeout(10)
    while got < 1 << 20:
        b = d.recv(65536)
        assert b
        got += len(b)
    r.send(b"ABOR\r\n")
    first = r.read_reply()
    assert first is not None and first[0] == 426, first
    r.expect(226)
    # RFC 959: ABOR closes the data connection
    d.settimeout(10)
    total = got
    try:
        while True:
            b = d.recv(1 << 16)
            if not b:
                break
            total += len(b)
    except ConnectionResetError:
        pass
    assert total < 64 * 1024 * 1024
    d.close()
    r.ok("NOOP", 200)
    d = r.pasv()
    r.ok("RETR small.bin", (125, 150))
    assert recv_all(d) == small
    d.close()
    r.expect(226)
    r.close()


@pytest.mark.parametrize(
    "style",
    ["rfc854", "netkit"],
)
def test_abor_with_telnet_synch(ferry, style):
    """RFC 959 4.1.3 / RFC 854: the client sends Telnet IP and Synch (urgent data), then ABOR.

    rfc854: IAC IP IAC in-band, DM as the urgent byte (RFC 854 "Synch"); netkit: ``send(IAC IP IAC,
    MSG_OOB)`` then ``DM ABOR`` in-band, as BSD/netkit ftp(1) does. Either way the server must see ABOR.
    """
    _make_big(ferry.root / "big.bin", 32 * 1024 * 1024)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("RETR big.bin", (125, 150))
    d.settimeout(10)
    assert d.recv(65536)
    if style == "rfc854":
        r.send(b"\xff\xf4\xff")
        r.sock.send(b"\xf2", socket.MSG_OOB)
        r.send(b"ABOR\r\n")
    else:
        r.sock.send(b"\xff\xf4\xff", socket.MSG_OOB)
        r.send(b"\xf2ABOR\r\n")
    try:
        first = r.read_reply(timeout=5)
    except socket.timeout:
        first = "no reply within 5 s"
    hard_close(d)
    assert first is not None and first[0] == 426, first
    r.expect(226)
    r.ok("NOOP", 200)
    r.close()


def test_abor_without_transfer(ferry):
    r = raw_login(ferry)
    r.ok("ABOR", (225, 226))
    r.ok("NOOP", 200)
    r.close()


# ------------------------------------------------------------------ listings


def test_list_nlst_format(ferry):
    data = write_random(ferry.root / "a.txt", 1234)
    (ferry.root / "sub").mkdir()
    write_random(ferry.root / "sub" / "in.bin", 9)
    ftp = ftp_connect(ferry)
    assert sorted(ftp.nlst()) == ["a.txt", "sub"]
    assert ftp.nlst("sub") in (["in.bin"], ["sub/in.bin"])
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    pat = re.compile(
        r"^([-dl])[rwxsStT-]{9}[.+@]?\s+\d+\s+\S+\s+\S+\s+(\d+)\s+"
        r"[A-Z][a-z]{2}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4})\s(.+)$"
    )
    parsed = {}
    for line in lines:
        m = pat.match(line)
        assert m, f"LIST line not in ls -l format: {line!r}"
        parsed[m.group(3)] = (m.group(1), int(m.group(2)))
    assert parsed.get("a.txt") == ("-", len(data)), parsed
    assert parsed.get("sub", ("?",))[0] == "d", parsed
    assert set(parsed) <= {"a.txt", "sub", ".", ".."}
    sub: list[str] = []
    ftp.retrlines("LIST sub", sub.append)
    assert len(sub) == 1 and sub[0].endswith(" in.bin"), sub
    one: list[str] = []
    ftp.retrlines("LIST a.txt", one.append)
    assert len(one) == 1 and one[0].endswith("a.txt") and pat.match(one[0]), one
    ftp.quit()


def test_mlsd_and_mlst_facts(ferry):
    data = write_random(ferry.root / "a.txt", 100)
    os.chmod(ferry.root / "a.txt", 0o640)
    os.utime(ferry.root / "a.txt", (1_600_000_000, 1_600_000_000))
    (ferry.root / "sub").mkdir()
    ftp = ftp_connect(ferry)
    entries = {name: facts for name, facts in ftp.mlsd("")}
    kinds = {n: f.get("type", "").lower() for n, f in entries.items()}
    real = {n for n, k in kinds.items() if k not in ("cdir", "pdir")}
    assert real == {"a.txt", "sub"}, entries
    a = entries["a.txt"]
    assert a["type"].lower() == "file"
    assert int(a["size"]) == len(data)
    assert a["modify"].split(".")[0] == "20200913122640"
    assert "r" in a["perm"] and "w" in a["perm"] and "d" in a["perm"], a
    assert int(a["unix.mode"], 8) == 0o640, a
    s = entries["sub"]
    assert s["type"].lower() == "dir"
    assert "e" in s["perm"] and "l" in s["perm"], s
    assert a["unique"] and s["unique"] and a["unique"] != s["unique"]

    resp = reply(ftp, "MLST a.txt")
    lines = resp.split("\n")
    assert lines[0].startswith("250-") and lines[-1].startswith("250 "), resp
    facts_lines = [line for line in lines[1:-1] if line.startswith(" ")]
    assert len(facts_lines) == 1, resp
    fl = facts_lines[0]
    assert fl.endswith("a.txt"), fl
    facts = dict(kv.split("=", 1) for kv in fl[1:].split(" ", 1)[0].split(";") if kv)
    facts = {k.lower(): v for k, v in facts.items()}
    assert facts["type"].lower() == "file" and int(facts["size"]) == 100, facts
    resp = reply(ftp, "MLST sub")
    assert "type=dir;" in resp.lower(), resp
    ftp.quit()


def test_opts_mlst_selects_facts(ferry):
    write_random(ferry.root / "a.txt", 100)
    ftp = ftp_connect(ferry)
    resp = reply(ftp, "OPTS MLST type;size;")
    assert code(resp) == 200, resp
    resp = reply(ftp, "MLST a.txt")
    fl = [line for line in resp.split("\n") if line.startswith(" ")][0]
    names = {kv.split("=", 1)[0].lower() for kv in fl[1:].split(" ", 1)[0].split(";") if kv}
    assert names == {"type", "size"}, fl
    feat = ftp.sendcmd("FEAT")
    mlst = [line.strip() for line in feat.split("\n") if line.strip().upper().startswith("MLST ")][0]
    enabled = {x.rstrip("*").lower() for x in mlst.split(" ", 1)[1].split(";") if x.endswith("*")}
    assert enabled == {"type", "size"}, mlst
    ftp.quit()


# ------------------------------------------------------------------ file operations


def _atomic_setup(ferry):
    old = write_random(ferry.root / "f.bin", 1 << 20)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("STOR f.bin", (125, 150))
    d.sendall(os.urandom(256 * 1024))
    time.sleep(0.5)  # let the server start writing the new content
    # meanwhile, another session still sees the old file and no temporary name
    other = ftp_connect(ferry)
    assert sha256(retr_bytes(other, "f.bin")) == sha256(old)
    assert other.nlst() == ["f.bin"], "temporary upload file visible in a listing during STOR"
    mlsd_names = [n for n, f in other.mlsd("") if f.get("type", "").lower() not in ("cdir", "pdir")]
    assert mlsd_names == ["f.bin"], mlsd_names
    other.quit()
    return old, r, d


def _assert_old_content_only(ferry, old):
    ok = wait_for(lambda: sorted(os.listdir(ferry.root)) == ["f.bin"], timeout=5)
    assert ok, f"leftover files in root after an interrupted upload: {os.listdir(ferry.root)}"
    assert file_sha256(ferry.root / "f.bin") == sha256(old)
    ftp = ftp_connect(ferry)
    assert ftp.nlst() == ["f.bin"]
    assert sha256(retr_bytes(ftp, "f.bin")) == sha256(old)
    ftp.quit()


def test_atomic_stor_abor(ferry):
    old, r, d = _atomic_setup(ferry)
    r.send(b"ABOR\r\n")
    first = r.read_reply()
    assert first is not None and first[0] == 426, first
    r.expect(226)
    hard_close(d)
    r.ok("NOOP", 200)
    r.close()
    _assert_old_content_only(ferry, old)


def test_atomic_stor_client_killed(ferry):
    old, r, d = _atomic_setup(ferry)
    hard_close(d)
    r.reset()
    _assert_old_content_only(ferry, old)


def test_atomic_stor_data_reset(ferry):
    """The data connection is reset (not closed cleanly): that is a failed upload, not EOF."""
    old, r, d = _atomic_setup(ferry)
    hard_close(d)
    c, text = r.read_reply(timeout=10)
    assert c in (426, 451), text
    r.ok("NOOP", 200)
    r.close()
    _assert_old_content_only(ferry, old)


def test_stor_replaces_completely(ferry):
    write_random(ferry.root / "f.bin", 100_000)
    new = os.urandom(1000)
    ftp = ftp_connect(ferry)
    stor_bytes(ftp, "f.bin", new)
    ftp.quit()
    assert (ferry.root / "f.bin").read_bytes() == new
    assert sorted(os.listdir(ferry.root)) == ["f.bin"]


def test_stou(ferry):
    (ferry.root / "keep.bin").write_bytes(b"keep")
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    made = []
    for _ in range(2):
        before = set(os.listdir(ferry.root))
        data = os.urandom(3333)
        d = r.pasv()
        t150 = r.ok("STOU", (125, 150))
        d.sendall(data)
        d.close()
        t226 = r.expect(226)
        new = set(os.listdir(ferry.root)) - before
        assert len(new) == 1, new
        name = new.pop()
        assert (ferry.root / name).read_bytes() == data
        assert name in t150 or name in t226, (t150, t226)
        made.append(name)
    assert made[0] != made[1]
    assert (ferry.root / "keep.bin").read_bytes() == b"keep"
    r.close()


def test_appe(ferry):
    (ferry.root / "log.txt").write_bytes(b"abc")
    ftp = ftp_connect(ferry)
    assert stor_bytes(ftp, "log.txt", b"def", cmd="APPE").startswith("226")
    assert (ferry.root / "log.txt").read_bytes() == b"abcdef"
    blob = os.urandom(100_000)
    stor_bytes(ftp, "new.bin", blob, cmd="APPE")
    assert (ferry.root / "new.bin").read_bytes() == blob
    ftp.quit()


def test_rename(ferry):
    data = write_random(ferry.root / "a.bin", 999)
    (ferry.root / "d").mkdir()
    write_random(ferry.root / "d" / "x", 5)
    ftp = ftp_connect(ferry)
    assert code(reply(ftp, "RNFR a.bin")) == 350
    assert code(reply(ftp, "RNTO b.bin")) == 250
    assert not (ferry.root / "a.bin").exists()
    assert (ferry.root / "b.bin").read_bytes() == data
    ftp.rename("b.bin", "d/c.bin")
    assert (ferry.root / "d" / "c.bin").read_bytes() == data
    ftp.rename("d", "e")
    assert (ferry.root / "e" / "x").exists() and not (ferry.root / "d").exists()
    assert code(reply(ftp, "RNFR nope")) == 550
    ftp.quit()


def test_mkd_cwd_cdup_rmd_dele(ferry):
    ftp = ftp_connect(ferry)
    assert reply(ftp, "MKD d1").startswith('257 "/d1"')
    assert (ferry.root / "d1").is_dir()
    assert code(reply(ftp, "MKD d1")) == 550
    assert code(reply(ftp, "MKD nope/child")) == 550
    assert code(reply(ftp, "CWD d1")) == 250
    assert pwd_path(reply(ftp, "PWD")) == "/d1"
    assert reply(ftp, "MKD d2").startswith('257 "/d1/d2"')
    stor_bytes(ftp, "f.bin", b"12345")
    assert (ferry.root / "d1" / "f.bin").read_bytes() == b"12345"
    check_cdup_and_cwd(ftp)
    assert code(reply(ftp, "CWD /")) == 250
    assert code(reply(ftp, "RMD d1")) == 550  # not empty
    assert code(reply(ftp, "DELE d1/f.bin")) == 250
    assert not (ferry.root / "d1" / "f.bin").exists()
    assert code(reply(ftp, "RMD d1/d2")) == 250
    assert code(reply(ftp, "RMD d1")) == 250
    assert not (ferry.root / "d1").exists()
    ftp.quit()


def test_site_chmod(ferry):
    write_random(ferry.root / "f", 1)
    (ferry.root / "d").mkdir()
    os.chmod(ferry.root / "f", 0o644)
    ftp = ftp_connect(ferry)
    assert code(reply(ftp, "SITE CHMOD 600 f")) == 200
    assert stat.S_IMODE(os.stat(ferry.root / "f").st_mode) == 0o600
    assert code(reply(ftp, "SITE CHMOD 0750 d")) == 200
    assert stat.S_IMODE(os.stat(ferry.root / "d").st_mode) == 0o750
    ftp.quit()


def test_utf8_and_space_names(ferry):
    names = ["données 中文.txt", "my file.txt", "two  spaces.txt", "ünïcødé-ß"]
    blobs = {n: os.urandom(2000 + i) for i, n in enumerate(names)}
    ftp = ftp_connect(ferry)
    assert code(reply(ftp, "OPTS UTF8 ON")) == 200
    for n in names:
        stor_bytes(ftp, n, blobs[n])
    on_disk = set(os.listdir(os.fsencode(ferry.root)))
    for n in names:
        assert n.encode("utf-8") in on_disk, (n, on_disk)
        assert (ferry.root / n).read_bytes() == blobs[n]
    assert sorted(ftp.nlst()) == sorted(names)
    listed: list[str] = []
    ftp.retrlines("LIST", listed.append)
    for n in names:
        assert any(line.endswith(" " + n) for line in listed), (n, listed)
    mlsd = {name for name, _ in ftp.mlsd("")}
    assert set(names) <= mlsd
    for n in names:
        assert retr_bytes(ftp, n) == blobs[n]
        assert reply(ftp, f"SIZE {n}") == f"213 {len(blobs[n])}"
    dirname = "répertoire 目录"
    assert reply(ftp, f"MKD {dirname}").startswith(f'257 "/{dirname}"')
    ftp.cwd(dirname)
    assert pwd_path(reply(ftp, "PWD")) == f"/{dirname}"
    ftp.cwd("/")
    ftp.rename(names[0], f"{dirname}/{names[0]}")
    assert (ferry.root / dirname / names[0]).read_bytes() == blobs[names[0]]
    ftp.quit()


# ------------------------------------------------------------------ anonymous


def test_anonymous_is_read_only(ferry_anon):
    data = write_random(ferry_anon.root / "pub.bin", 4096)
    os.chmod(ferry_anon.root / "pub.bin", 0o644)
    os.utime(ferry_anon.root / "pub.bin", (1_600_000_000, 1_600_000_000))
    (ferry_anon.root / "dir").mkdir()
    for anon_user in ("anonymous", "ftp"):
        ftp = ftplib.FTP(timeout=10)
        ftp.connect(ferry_anon.host, ferry_anon.port)
        assert ftp.login(anon_user, "guest@example.com").startswith("230")
        assert retr_bytes(ftp, "pub.bin") == data
        assert sorted(ftp.nlst()) == ["dir", "pub.bin"]
        denied = []
        for cmd in ("STOR new.bin", "APPE pub.bin", "STOR pub.bin", "STOU"):
            conn = None
            try:
                conn = ftp.transfercmd(cmd)
                conn.sendall(b"evil")
                conn.close()
                ftp.voidresp()
                denied.append((cmd, "accepted"))
            except ftplib.error_perm as e:
                if code(str(e)) not in (550, 553, 532):
                    denied.append((cmd, str(e)))
            finally:
                if conn:
                    conn.close()
        for cmd, codes in (
            ("DELE pub.bin", (550,)),
            ("MKD newdir", (550, 553)),
            ("RMD dir", (550,)),
            ("SITE CHMOD 777 pub.bin", (550,)),
            ("MFMT 20010101000000 pub.bin", (550,)),
        ):
            resp = reply(ftp, cmd)
            if code(resp) not in codes:
                denied.append((cmd, resp))
        resp = reply(ftp, "RNFR pub.bin")
        if code(resp) == 350:
            resp = reply(ftp, "RNTO stolen.bin")
        if code(resp) not in (550, 553):
            denied.append(("RNFR/RNTO", resp))
        ftp.quit()
        assert not denied, denied
        assert sorted(os.listdir(ferry_anon.root)) == ["dir", "pub.bin"]
        assert (ferry_anon.root / "pub.bin").read_bytes() == data
        st = os.stat(ferry_anon.root / "pub.bin")
        assert stat.S_IMODE(st.st_mode) == 0o644 and int(st.st_mtime) == 1_600_000_000


# ------------------------------------------------------------------ timeouts, limits, lifecycle


def test_idle_timeout_421(ferry_factory):
    server = ferry_factory(["--idle-timeout", "2"])
    r = raw_login(server)
    start = time.monotonic()
    c, text = r.read_reply(timeout=10) or (None, "closed without a reply")
    assert c == 421, text
    assert time.monotonic() - start < 8
    assert r.closed_by_peer()


def test_login_timeout_421(ferry_factory):
    server = ferry_factory(["--login-timeout", "2"])
    r = Raw(server.host, server.port)
    r.expect(220)
    r.ok(f"USER {server.user}", 331)
    got = r.read_reply(timeout=10)
    assert got is not None and got[0] == 421, got
    assert r.closed_by_peer()


def test_data_timeout_425(ferry_factory):
    server = ferry_factory(["--data-timeout", "2"])
    write_random(server.root / "f.bin", 10)
    r = raw_login(server)
    r.ok("PASV", 227)
    r.send(b"RETR f.bin\r\n")  # and never connect
    codes = []
    while True:
        got = r.read_reply(timeout=10)
        assert got is not None, f"closed; replies so far {codes}"
        codes.append(got[0])
        if got[0] >= 200:
            break
    assert codes[-1] == 425, codes
    r.ok("NOOP", 200)
    r.close()


def test_max_sessions_per_ip(ferry_factory):
    server = ferry_factory(["--max-sessions-per-ip", "2"])
    a = Raw(server.host, server.port)
    a.expect(220)
    b = Raw(server.host, server.port)
    b.expect(220)
    c = Raw(server.host, server.port)
    got = c.read_reply(timeout=5)
    assert got is None or got[0] == 421, f"third session from one IP got {got}"
    c.close()
    a.ok("QUIT", 221)
    a.close()

    def fourth_ok():
        d = Raw(server.host, server.port)
        try:
            got = d.read_reply(timeout=5)
            return got is not None and got[0] == 220
        finally:
            d.close()

    assert wait_for(fourth_ok, timeout=5), "a slot freed by QUIT was not reusable"
    b.close()


def test_max_sessions_global(ferry_factory):
    server = ferry_factory(["--max-sessions", "1"])
    a = Raw(server.host, server.port)
    a.expect(220)
    c = Raw(server.host, server.port)
    got = c.read_reply(timeout=5)
    assert got is None or got[0] == 421, f"second session over --max-sessions 1 got {got}"
    c.close()
    a.close()


def test_sigterm_exit_code_zero(ferry_factory):
    server = ferry_factory()
    r = raw_login(server)  # an idle session must not block the graceful stop
    assert server.stop() == 0
    r.close()


def test_sigint_exit_code_zero(ferry_factory):
    server = ferry_factory()
    r = raw_login(server)
    r.ok("QUIT", 221)
    r.close()
    assert server.stop(signal.SIGINT) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_right_after_listening_line(tmp_path, sig):
    """`listening on` is the readiness signal: a stop request right after it must be graceful too
    (a supervisor or a test harness may stop the server as soon as it is ready)."""
    import subprocess

    from conftest import FERRY_BIN

    (tmp_path / "root").mkdir()
    codes = []
    for _ in range(10):
        p = subprocess.Popen(
            [str(FERRY_BIN), "serve", "--root", str(tmp_path / "root"), "--listen", "127.0.0.1:0", "--user", "a:b"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        timer = threading.Timer(20, p.kill)
        timer.start()
        line = p.stdout.readline()
        timer.cancel()
        assert line.startswith(b"listening on "), line
        p.send_signal(sig)
        try:
            codes.append(p.wait(timeout=10))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            codes.append("hung")
    assert codes == [0] * 10, f"exit codes {codes} (negative: killed by the signal, no graceful stop)"


# ------------------------------------------------------------------ more RFC 959 details


def test_commands_are_case_insensitive(ferry):
    """RFC 959 5.3.1: command verbs (and the TYPE code) may be sent in any case."""
    write_random(ferry.root / "f.bin", 10)
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    r.ok(f"user {ferry.user}", 331)
    r.ok(f"Pass {ferry.password}", 230)
    r.ok("syst", 215)
    r.ok("type i", 200)
    assert r.ok("size f.bin", 213) == "213 10"
    r.ok("pWd", 257)
    r.ok("quit", 221)
    r.close()


def test_x_command_aliases(ferry):
    """RFC 775 aliases (Windows ftp.exe sends XPWD/XMKD); HELP advertises them."""
    ftp = ftp_connect(ferry)
    if "XPWD" not in reply(ftp, "HELP"):
        pytest.skip("server does not advertise the RFC 775 X-commands")
    assert pwd_path(reply(ftp, "XPWD")) == "/"
    assert reply(ftp, "XMKD xd").startswith('257 "/xd"')
    assert code(reply(ftp, "XCWD xd")) == 250
    assert pwd_path(reply(ftp, "XPWD")) == "/xd"
    assert code(reply(ftp, "XCUP")) in (200, 250)
    assert code(reply(ftp, "XRMD xd")) == 250
    assert not (ferry.root / "xd").exists()
    ftp.quit()


def test_list_with_ls_options(ferry):
    """Clients send `LIST -a`/`LIST -la [path]`: the options must not be taken for a file name."""
    write_random(ferry.root / "top.bin", 3)
    (ferry.root / "sub").mkdir()
    write_random(ferry.root / "sub" / "inner.bin", 3)
    ftp = ftp_connect(ferry)
    for cmd, expect in (("LIST -a", "top.bin"), ("LIST -la", "top.bin"), ("LIST -la sub", "inner.bin"), ("NLST -a", "top.bin")):
        lines: list[str] = []
        ftp.retrlines(cmd, lines.append)
        assert any(line.endswith(expect) for line in lines), (cmd, lines)
    ftp.quit()


def test_list_missing_path(ferry):
    r = raw_login(ferry)
    for cmd in ("LIST nope", "NLST nope", "MLSD nope"):
        d = r.pasv()
        c, text = r.cmd(cmd)
        d.close()
        assert c in (450, 550), (cmd, text)
    r.close()


def test_rest_then_stor_resumes_upload(ferry):
    """REST n + STOR writes from offset n (RFC 3659 5: restart of STOR in stream mode)."""
    full = os.urandom(300_000)
    (ferry.root / "part.bin").write_bytes(full[:100_000])
    ftp = ftp_connect(ferry)
    ftp.storbinary("STOR part.bin", io.BytesIO(full[100_000:]), rest=100_000)
    ftp.quit()
    assert file_sha256(ferry.root / "part.bin") == sha256(full)


def test_root_edge_cases(ferry):
    (ferry.root / "d").mkdir()
    r = raw_login(ferry)
    bad = []
    for cmd in ("RMD /", "RMD .", "DELE /", "DELE .", "RNFR /", "RNFR ..", "MKD /", "MKD .", "SIZE /", "RETR /"):
        c, text = r.cmd(cmd)
        if c < 400:
            bad.append((cmd, text))
    r.ok("RNFR d", 350)
    c, text = r.cmd("RNTO d/inside")  # a directory into itself
    if c < 400:
        bad.append(("RNFR d; RNTO d/inside", text))
    assert not bad, bad
    r.ok("NOOP", 200)
    r.close()
    assert ferry.root.is_dir() and (ferry.root / "d").is_dir()


@pytest.mark.parametrize("existing", [True, False], ids=["over-existing", "new-name"])
def test_concurrent_stor_same_file(ferry, existing):
    """Two overlapping uploads of one name: the one that completes last wins, whole.

    Deterministic overlap: both STORs are open before any data flows; A sends its first half,
    B sends everything (226), then A sends its second half (226). Short pauses let the server
    write each part. A got its 226 last, so the file must be exactly A's data, never a mix and
    never B's (that would be a lost update acknowledged with 226).
    """
    if existing:
        (ferry.root / "same.bin").write_bytes(b"old")
    half = 2 * 1024 * 1024
    blobs = [os.urandom(2 * half), os.urandom(2 * half + 1)]
    sessions = []
    for _ in range(2):
        r = raw_login(ferry)
        r.ok("TYPE I", 200)
        d = r.pasv()
        r.ok("STOR same.bin", (125, 150))
        sessions.append((r, d))
    (ra, da), (rb, db) = sessions
    da.sendall(blobs[0][:half])
    time.sleep(0.3)
    db.sendall(blobs[1])
    db.close()
    rb.expect(226, timeout=30)
    time.sleep(0.3)
    da.sendall(blobs[0][half:])
    da.close()
    ra.expect(226, timeout=30)
    ra.close()
    rb.close()
    got = (ferry.root / "same.bin").read_bytes()
    assert sha256(got) != sha256(blobs[1]), "the upload acknowledged last (A) was lost; the file holds B"
    assert sha256(got) == sha256(blobs[0]), (
        f"interleaved result: {len(got)} bytes; first half from upload "
        f"{[i for i in (0, 1) if blobs[i][:half] == got[:half]]}, second half from upload "
        f"{[i for i in (0, 1) if blobs[i][half:2 * half] == got[half:2 * half]]}"
    )
    assert sorted(os.listdir(ferry.root)) == ["same.bin"]


def test_large_directory(ferry):
    n = 2000
    for i in range(n):
        (ferry.root / f"entry-{i:05d}.txt").write_bytes(b"")
    ftp = ftp_connect(ferry)
    names = ftp.nlst()
    assert len(names) == n and len(set(names)) == n
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert len([line for line in lines if "entry-" in line]) == n
    assert len([n_ for n_, f in ftp.mlsd("") if f.get("type") == "file"]) == n
    ftp.quit()


def test_noop_stat_during_transfer_and_quit(ferry):
    _make_big(ferry.root / "big.bin", 32 * 1024 * 1024)
    r = raw_login(ferry)
    r.ok("TYPE I", 200)
    d = r.pasv()
    r.ok("RETR big.bin", (125, 150))
    d.settimeout(10)
    first = b""
    while len(first) < 65536:
        first += d.recv(65536 - len(first))
    r.ok("NOOP", 200)
    c, text = r.cmd("STAT")
    assert c in (211, 213), text
    # RFC 959 QUIT: "If file transfer is in progress, the connection will remain open for
    # result response and the server will then close it."
    r.send(b"QUIT\r\n")
    got = 65536 + len(recv_all(d, timeout=30))
    d.close()
    codes = []
    while True:
        rep = r.read_reply(timeout=10)
        if rep is None:
            break
        codes.append(rep[0])
        if rep[0] == 221:
            break
    assert codes == [226, 221], codes
    assert r.closed_by_peer()


def test_segmented_upload_with_parallel_ftplib_connections(ferry):
    """SITE SEGMENT: four ftplib connections send REST+STOR segments at once; END publishes the
    exact bytes, and the file before it stays whole until then."""
    data = os.urandom(3_000_001)
    (ferry.root / "seg.bin").write_bytes(b"old")
    ctl = ftp_connect(ferry)
    assert code(reply(ctl, f"SITE SEGMENT BEGIN {len(data)} seg.bin")) == 200
    bounds = [(i * len(data) // 4, (i + 1) * len(data) // 4) for i in range(4)]
    errors = []

    def send(start: int, end: int) -> None:
        try:
            ftp = ftp_connect(ferry)
            ftp.storbinary("STOR seg.bin", io.BytesIO(data[start:end]), rest=start)
            ftp.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=b) for b in bounds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert (ferry.root / "seg.bin").read_bytes() == b"old"
    assert reply(ctl, "SITE SEGMENT END seg.bin") == f"250 Segmented upload of seg.bin complete ({len(data)} bytes)."
    assert (ferry.root / "seg.bin").read_bytes() == data
    assert sorted(p.name for p in ferry.root.iterdir() if p.name.startswith(".ferry-upload")) == []
    ctl.quit()


def test_host_selects_a_virtual_host(ferry_factory, tmp_path):
    """RFC 7151: ftplib sends HOST before logging in and sees that host's files; an unknown name
    gets 504; no HOST gets the default host."""
    a, b = tmp_path / "vh-a", tmp_path / "vh-b"
    a.mkdir()
    b.mkdir()
    (a / "on-a.txt").write_text("a")
    (b / "on-b.txt").write_text("b")
    cfg = tmp_path / "hosts.toml"
    cfg.write_text(
        f'[[host]]\nname = "a.example"\nroot = "{a}"\nbanner = "Host A here"\n\n'
        f'[[host]]\nname = "b.example"\nroot = "{b}"\n',
        encoding="utf-8",
    )
    server = ferry_factory(["--config", str(cfg)])
    (server.root / "default.txt").write_text("d")
    for name, expected in (("a.example", ["on-a.txt"]), ("b.example", ["on-b.txt"]), (None, ["default.txt"])):
        ftp = ftp_connect(server, login=False)
        if name:
            assert ftp.sendcmd(f"HOST {name}").startswith("220")
        ftp.login(server.user, server.password)
        assert sorted(ftp.nlst()) == expected, name
        ftp.quit()
    ftp = ftp_connect(server, login=False)
    assert reply(ftp, "HOST a.example") == "220 Host A here"
    ftp.close()
    ftp = ftp_connect(server, login=False)
    with pytest.raises(ftplib.error_perm, match="^504"):
        ftp.sendcmd("HOST nope.example")
    ftp.close()
