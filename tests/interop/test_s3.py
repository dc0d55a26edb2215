"""Ferry serving an S3 bucket (`[storage] kind = "s3"`) against a real single-node Garage on loopback.

Clients: Python's ftplib, raw control connections, curl (for S3 itself) and the ferry client. After
each operation the bucket is checked directly (ListObjectsV2, ListMultipartUploads, GET through
`curl --aws-sigv4`, see s3_util.py): a user's root is the server's key prefix (`t-<hex>/`, one per
test), a file `a/b.txt` is the key `<prefix>a/b.txt`, a directory made with MKD is the marker `<prefix>d/`.

How Garage is found or started, and when these tests skip instead of failing: conftest.py (`garage`).
FERRY_S3_BIG_MIB (default 200) sets the size of the resume tests' payload.
"""

from __future__ import annotations

import calendar
import ftplib
import os
import re
import socket
import time

import pytest

from interop_util import (
    check_cdup_and_cwd,
    code,
    hard_close,
    IO_TIMEOUT,
    parse_229,
    pwd_path,
    Raw,
    raw_login,
    recv_all,
    reply,
    retr_bytes,
    run,
    sha256,
    stor_bytes,
)
from conftest import FERRY_BIN
from s3_util import HashSink, Payload

MiB = 1 << 20
BIG = int(os.environ.get("FERRY_S3_BIG_MIB", "200")) * MiB
# where the interrupted uploads stop: ~83 MiB of 200, on no part or block boundary
FIRST = BIG * 83 // 200 + 12345
BIG_TIMEOUT = 180.0  # per control/data socket operation in the large tests (a slow debug build)
LS_RE = re.compile(
    r"^([-dl])[rwxsStT-]{9}[.+@]?\s+\d+\s+\S+\s+\S+\s+(\d+)\s+"
    r"[A-Z][a-z]{2}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4})\s(.+)$"
)

_payloads: dict[tuple[int, int], Payload] = {}


def payload(size: int = BIG, seed: int = 7) -> Payload:
    """The same deterministic payload (and its cached sha256) for every test that asks for it."""
    p = _payloads.get((size, seed))
    if p is None:
        p = _payloads[(size, seed)] = Payload(size, seed)
    return p


def connect(site, timeout: float = IO_TIMEOUT) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=timeout, encoding="utf-8")
    ftp.connect(site.host, site.port, timeout=timeout)
    ftp.login(site.user, site.password)
    return ftp


def listing(ftp: ftplib.FTP, path: str = "") -> dict[str, tuple[str, int]]:
    """LIST parsed as {name: (type char, size)}, every line checked against the ls -l format."""
    lines: list[str] = []
    ftp.retrlines(f"LIST {path}".rstrip(), lines.append)
    out = {}
    for line in lines:
        m = LS_RE.match(line)
        assert m, f"LIST line not in ls -l format: {line!r}"
        out[m.group(3)] = (m.group(1), int(m.group(2)))
    return out


def mlst_facts(resp: str) -> tuple[dict[str, str], str]:
    lines = resp.split("\n")
    assert lines[0].startswith("250-") and lines[-1].startswith("250 "), resp
    fl = [line for line in lines[1:-1] if line.startswith(" ")]
    assert len(fl) == 1, resp
    facts_text, name = fl[0][1:].split(" ", 1)
    facts = {k.lower(): v for k, v in (kv.split("=", 1) for kv in facts_text.split(";") if kv)}
    return facts, name


def keys_under(site) -> list[str]:
    """The keys under the site's prefix, relative to it."""
    return sorted(k[len(site.prefix) :] for k in site.s3.list_keys(site.prefix))


# ------------------------------------------------------------------ session, FEAT, basic commands


def test_login_syst_feat_noop_quit(s3_ferry):
    ftp = ftplib.FTP(timeout=IO_TIMEOUT, encoding="utf-8")
    assert ftp.connect(s3_ferry.host, s3_ferry.port).startswith("220")
    assert ftp.sendcmd(f"USER {s3_ferry.user}").startswith("331")
    assert code(reply(ftp, "PASS wrong-password")) == 530
    assert ftp.sendcmd(f"USER {s3_ferry.user}").startswith("331")
    assert ftp.sendcmd(f"PASS {s3_ferry.password}").startswith("230")
    assert ftp.sendcmd("SYST").startswith("215 ")
    lines = ftp.sendcmd("FEAT").split("\n")
    assert lines[0].startswith("211-") and lines[-1].startswith("211 "), lines
    feats = {line.strip().upper() for line in lines[1:-1]}
    missing = {"SIZE", "MDTM", "REST STREAM", "EPSV"} - feats
    assert not missing, f"FEAT lacks {missing} on S3: {feats}"
    assert "MFMT" not in feats, f"FEAT offers MFMT on S3 (modification times cannot be set): {feats}"
    assert pwd_path(ftp.sendcmd("PWD")) == "/"
    assert code(reply(ftp, "NOOP")) == 200
    st = reply(ftp, "STAT")
    assert st.startswith("211-") and st.split("\n")[-1].startswith("211 "), st
    assert ftp.quit().startswith("221")


def test_mkd_cwd_cdup_rmd_dele(s3_ferry):
    site, s3 = s3_ferry, s3_ferry.s3
    ftp = connect(site)
    assert reply(ftp, "MKD d1").startswith('257 "/d1"')
    assert keys_under(site) == ["d1/"], "MKD must create the directory marker key d1/"
    assert s3.get(site.key("d1/")) == b""
    assert code(reply(ftp, "MKD d1")) == 550
    assert code(reply(ftp, "CWD d1")) == 250
    assert pwd_path(reply(ftp, "PWD")) == "/d1"
    assert reply(ftp, "MKD d2").startswith('257 "/d1/d2"')
    stor_bytes(ftp, "f.bin", b"12345")
    assert s3.get(site.key("d1/f.bin")) == b"12345"
    assert keys_under(site) == ["d1/", "d1/d2/", "d1/f.bin"]
    check_cdup_and_cwd(ftp)
    assert code(reply(ftp, "CWD /nope")) == 550
    assert code(reply(ftp, "CWD f.bin")) == 550  # a file is not a directory
    assert code(reply(ftp, "CWD /")) == 250
    assert code(reply(ftp, "RMD d1")) == 550  # not empty
    assert code(reply(ftp, "RMD d1/d2/nope")) == 550
    assert code(reply(ftp, "DELE d1/f.bin")) == 250
    assert not s3.exists(site.key("d1/f.bin"))
    assert code(reply(ftp, "DELE d1/f.bin")) == 550
    assert code(reply(ftp, "RMD d1/d2")) == 250
    assert keys_under(site) == ["d1/"]
    assert code(reply(ftp, "RMD d1")) == 250
    assert keys_under(site) == []
    assert code(reply(ftp, "CWD d1")) == 550
    ftp.quit()


def test_type_size_mdtm_and_refused_mfmt_chmod(s3_ferry):
    data = os.urandom(54321)
    ftp = connect(s3_ferry)
    before = time.time()
    stor_bytes(ftp, "f.bin", data)
    assert code(reply(ftp, "TYPE A")) == 200
    assert code(reply(ftp, "TYPE I")) == 200
    assert reply(ftp, "SIZE f.bin") == f"213 {len(data)}"
    assert code(reply(ftp, "SIZE nope.bin")) == 550
    ftp.mkd("d")
    assert code(reply(ftp, "SIZE d")) == 550
    resp = reply(ftp, "MDTM f.bin")
    m = re.fullmatch(r"213 (\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\.\d+)?", resp)
    assert m, resp
    mtime = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    assert before - 120 <= mtime <= time.time() + 120, f"MDTM {resp!r} is not the upload time"
    assert code(reply(ftp, "MDTM nope.bin")) == 550
    # S3 objects' LastModified cannot be set: no MFMT, no SITE CHMOD
    assert code(reply(ftp, "MFMT 20200102030405 f.bin")) == 502
    assert code(reply(ftp, "SITE CHMOD 600 f.bin")) == 502
    assert reply(ftp, "SIZE f.bin") == f"213 {len(data)}"
    ftp.quit()


def test_type_a_converts_both_ways(s3_ferry):
    ftp = connect(s3_ferry)
    ftp.voidcmd("TYPE A")
    import io

    ftp.storlines("STOR t.txt", io.BytesIO(b"one\r\ntwo\r\nthree\r\n"))
    assert s3_ferry.s3.get(s3_ferry.key("t.txt")) == b"one\ntwo\nthree\n"
    lines: list[str] = []
    ftp.retrlines("RETR t.txt", lines.append)
    assert lines == ["one", "two", "three"]
    ftp.quit()


# ------------------------------------------------------------------ transfers


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * MiB + 7, 12 * MiB + 1])
def test_pasv_stor_epsv_retr(s3_ferry, size):
    data = os.urandom(size)
    ftp = connect(s3_ferry, timeout=60)
    ftp.set_pasv(True)
    assert stor_bytes(ftp, "up.bin", data).startswith("226")
    ftp.quit()
    assert s3_ferry.s3.list_objects(s3_ferry.prefix) == {s3_ferry.key("up.bin"): size}
    assert s3_ferry.s3.sha256(s3_ferry.key("up.bin")) == sha256(data)
    r = raw_login(s3_ferry)
    r.ok("TYPE I", 200)
    port = parse_229(r.ok("EPSV", 229))
    d = socket.create_connection((s3_ferry.host, port), timeout=60)
    r.ok("RETR up.bin", (125, 150))
    got = recv_all(d, timeout=60)
    d.close()
    r.expect(226, timeout=60)
    assert sha256(got) == sha256(data)
    d = r.pasv()
    r.ok("RETR up.bin", (125, 150))
    got = recv_all(d, timeout=60)
    d.close()
    r.expect(226, timeout=60)
    assert sha256(got) == sha256(data)
    r.ok("QUIT", 221)
    r.close()
    assert s3_ferry.s3.list_multipart_uploads(s3_ferry.prefix) == []


def test_stor_replaces_object(s3_ferry):
    ftp = connect(s3_ferry)
    stor_bytes(ftp, "f.bin", os.urandom(100_000))
    new = os.urandom(1000)
    stor_bytes(ftp, "f.bin", new)
    ftp.quit()
    assert s3_ferry.s3.list_objects(s3_ferry.prefix) == {s3_ferry.key("f.bin"): 1000}
    assert s3_ferry.s3.get(s3_ferry.key("f.bin")) == new


def test_hash_is_kept_with_the_object(s3_ferry):
    """An upload's SHA-256 is kept in a hidden object (SIZE:ETAG:HEX), never listed; HASH answers
    from it, notices an object changed behind Ferry's back, and DELE forgets it."""
    site, s3 = s3_ferry, s3_ferry.s3
    data = os.urandom(3_000_000)
    ftp = connect(site)
    stor_bytes(ftp, "h.bin", data)
    kept_key = site.key(".ferry-upload.digests/h.bin.sha-256")
    assert s3.exists(kept_key), s3.list_keys(site.prefix, hidden=True)
    size, _etag, hex_ = s3.get(kept_key).decode().split(":")
    assert (int(size), hex_) == (len(data), sha256(data))
    assert reply(ftp, "HASH h.bin") == f"213 SHA-256 0-{len(data)} {sha256(data)} h.bin"
    assert ftp.nlst() == ["h.bin"], "the kept digests are never listed"
    assert code(reply(ftp, "CWD .ferry-upload.digests")) == 553
    # Replaced behind Ferry's back: the kept digest no longer holds; the new one is kept.
    other = os.urandom(1000)
    s3.put(site.key("h.bin"), other)
    assert reply(ftp, "HASH h.bin") == f"213 SHA-256 0-1000 {sha256(other)} h.bin"
    assert s3.get(kept_key).decode().endswith(":" + sha256(other))
    # Other algorithms are kept too, once computed; DELE forgets them all.
    assert reply(ftp, "OPTS HASH MD5") == "200 MD5"
    assert code(reply(ftp, "HASH h.bin")) == 213
    assert s3.exists(site.key(".ferry-upload.digests/h.bin.md5"))
    ftp.delete("h.bin")
    assert s3.list_keys(site.prefix, hidden=True) == []
    ftp.quit()


def test_stou(s3_ferry):
    site = s3_ferry
    site.s3.put(site.key("keep.bin"), b"keep")
    r = raw_login(site)
    r.ok("TYPE I", 200)
    made = []
    for _ in range(2):
        before = set(keys_under(site))
        data = os.urandom(3333)
        d = r.pasv()
        t150 = r.ok("STOU", (125, 150))
        d.sendall(data)
        d.close()
        t226 = r.expect(226)
        new = set(keys_under(site)) - before
        assert len(new) == 1, new
        name = new.pop()
        assert site.s3.get(site.key(name)) == data
        assert name in t150 or name in t226, (t150, t226)
        made.append(name)
    assert made[0] != made[1]
    assert site.s3.get(site.key("keep.bin")) == b"keep"
    r.close()


def test_appe_small(s3_ferry):
    site = s3_ferry
    ftp = connect(site)
    stor_bytes(ftp, "log.txt", b"abc")
    assert stor_bytes(ftp, "log.txt", b"def", cmd="APPE").startswith("226")
    assert site.s3.get(site.key("log.txt")) == b"abcdef"
    assert retr_bytes(ftp, "log.txt") == b"abcdef"
    blob = os.urandom(100_000)
    stor_bytes(ftp, "new.bin", blob, cmd="APPE")  # APPE to a missing file creates it
    assert site.s3.get(site.key("new.bin")) == blob
    ftp.quit()


def test_rest_retr_ranges(s3_ferry):
    data = os.urandom(200_000)
    s3_ferry.s3.put(s3_ferry.key("r.bin"), data)
    ftp = connect(s3_ferry)
    ftp.voidcmd("TYPE I")
    assert code(reply(ftp, "REST 12345")) == 350
    assert retr_bytes(ftp, "r.bin", rest=12345) == data[12345:]
    assert retr_bytes(ftp, "r.bin") == data  # the marker was consumed
    assert retr_bytes(ftp, "r.bin", rest=len(data) - 1) == data[-1:]
    assert retr_bytes(ftp, "r.bin", rest=len(data)) == b""
    ftp.quit()


def test_rename_file(s3_ferry):
    site, s3 = s3_ferry, s3_ferry.s3
    data = os.urandom(999_999)
    ftp = connect(site)
    stor_bytes(ftp, "a.bin", data)
    assert code(reply(ftp, "RNFR a.bin")) == 350
    assert code(reply(ftp, "RNTO b.bin")) == 250
    assert keys_under(site) == ["b.bin"]
    assert s3.sha256(site.key("b.bin")) == sha256(data)
    ftp.mkd("d")
    ftp.rename("b.bin", "d/c.bin")
    assert keys_under(site) == ["d/", "d/c.bin"]
    assert sha256(retr_bytes(ftp, "d/c.bin")) == sha256(data)
    assert code(reply(ftp, "RNFR nope")) == 550
    ftp.quit()


def test_rename_directory(s3_ferry):
    site, s3 = s3_ferry, s3_ferry.s3
    x, y = os.urandom(5000), os.urandom(70_000)
    ftp = connect(site)
    ftp.mkd("src")
    ftp.mkd("src/sub")
    stor_bytes(ftp, "src/x.bin", x)
    stor_bytes(ftp, "src/sub/y.bin", y)
    assert code(reply(ftp, "RNFR src")) == 350
    assert code(reply(ftp, "RNTO dst")) == 250
    assert keys_under(site) == ["dst/", "dst/sub/", "dst/sub/y.bin", "dst/x.bin"]
    assert s3.get(site.key("dst/x.bin")) == x
    assert s3.get(site.key("dst/sub/y.bin")) == y
    assert code(reply(ftp, "CWD src")) == 550
    assert sorted(ftp.nlst("dst")) in (["sub", "x.bin"], ["dst/sub", "dst/x.bin"])
    ftp.quit()


def test_rename_directory_over_the_limit_is_refused(s3_ferry_factory):
    """A directory with more objects than storage.max_rename_keys is not renamed: 550, nothing moved."""
    site = s3_ferry_factory(extra_toml="max_rename_keys = 2\n")
    ftp = connect(site)
    ftp.mkd("big")
    for i in range(3):
        stor_bytes(ftp, f"big/{i}.bin", b"x")
    assert code(reply(ftp, "RNFR big")) == 350
    resp = reply(ftp, "RNTO moved")
    assert code(resp) == 550 and "more than 2 objects" in resp, resp
    assert keys_under(site) == ["big/", "big/0.bin", "big/1.bin", "big/2.bin"]
    ftp.mkd("small")
    stor_bytes(ftp, "small/0.bin", b"y")
    assert code(reply(ftp, "RNFR small")) == 350
    assert code(reply(ftp, "RNTO small2")) == 250
    assert "small2/0.bin" in keys_under(site) and "small/0.bin" not in keys_under(site)
    ftp.quit()


# ------------------------------------------------------------------ listings and names


def test_list_nlst_mlsd_mlst_stat(s3_ferry):
    site = s3_ferry
    data = os.urandom(1234)
    ftp = connect(site)
    stor_bytes(ftp, "a.txt", data)
    ftp.mkd("sub")
    stor_bytes(ftp, "sub/in.bin", b"123456789")
    assert sorted(ftp.nlst()) == ["a.txt", "sub"]
    assert ftp.nlst("sub") in (["in.bin"], ["sub/in.bin"])
    parsed = listing(ftp)
    assert parsed.get("a.txt") == ("-", len(data)), parsed
    assert parsed.get("sub", ("?",))[0] == "d", parsed
    assert set(parsed) <= {"a.txt", "sub", ".", ".."}, parsed
    sub = listing(ftp, "sub")
    assert set(sub) - {".", ".."} == {"in.bin"} and sub["in.bin"] == ("-", 9), sub
    entries = {name: facts for name, facts in ftp.mlsd("")}
    real = {n: f for n, f in entries.items() if f.get("type", "").lower() not in ("cdir", "pdir")}
    assert set(real) == {"a.txt", "sub"}, entries
    assert real["a.txt"]["type"].lower() == "file" and int(real["a.txt"]["size"]) == len(data)
    assert real["sub"]["type"].lower() == "dir"
    facts, name = mlst_facts(reply(ftp, "MLST a.txt"))
    assert name.endswith("a.txt") and facts["type"].lower() == "file" and int(facts["size"]) == len(data), facts
    facts, _ = mlst_facts(reply(ftp, "MLST sub"))
    assert facts["type"].lower() == "dir", facts
    assert code(reply(ftp, "MLST nope")) == 550
    resp = reply(ftp, "STAT a.txt")
    assert code(resp) in (212, 213) and "a.txt" in resp and f" {len(data)} " in resp, resp
    resp = reply(ftp, "STAT sub")
    assert code(resp) in (212, 213) and "in.bin" in resp, resp
    assert code(reply(ftp, "STAT nope")) in (450, 550)
    ftp.quit()


def test_utf8_and_space_names_are_raw_keys(s3_ferry):
    site, s3 = s3_ferry, s3_ferry.s3
    names = ["résumé 2026.txt", "日本語.bin", "two  spaces.txt"]
    blobs = {n: os.urandom(2000 + i) for i, n in enumerate(names)}
    ftp = connect(site)
    assert code(reply(ftp, "OPTS UTF8 ON")) == 200
    for n in names:
        stor_bytes(ftp, n, blobs[n])
    # the S3 key is the raw UTF-8 name under the prefix (no percent-encoding, no normalization)
    assert s3.list_keys(site.prefix) == sorted(site.prefix + n for n in names)
    for n in names:
        assert s3.get(site.prefix + n) == blobs[n]
    assert sorted(ftp.nlst()) == sorted(names)
    parsed = listing(ftp)
    assert {n: parsed.get(n) for n in names} == {n: ("-", len(blobs[n])) for n in names}, parsed
    assert set(names) <= {name for name, _ in ftp.mlsd("")}
    for n in names:
        assert retr_bytes(ftp, n) == blobs[n]
        assert reply(ftp, f"SIZE {n}") == f"213 {len(blobs[n])}"
    dirname = "répertoire 目录"
    assert reply(ftp, f"MKD {dirname}").startswith(f'257 "/{dirname}"')
    assert s3.exists(f"{site.prefix}{dirname}/")
    ftp.cwd(dirname)
    assert pwd_path(reply(ftp, "PWD")) == f"/{dirname}"
    ftp.cwd("/")
    ftp.rename(names[1], f"{dirname}/{names[1]}")
    assert s3.get(f"{site.prefix}{dirname}/{names[1]}") == blobs[names[1]]
    assert not s3.exists(site.prefix + names[1])
    ftp.quit()


def test_implicit_directory(s3_ferry):
    """A key a/b/c.txt put straight into S3 (no a/ or a/b/ marker) shows as directories a and a/b."""
    site, s3 = s3_ferry, s3_ferry.s3
    data = os.urandom(4321)
    s3.put(site.key("a/b/c.txt"), data)
    assert keys_under(site) == ["a/b/c.txt"]
    ftp = connect(site)
    assert sorted(ftp.nlst()) == ["a"]
    root = listing(ftp)
    assert root.get("a", ("?",))[0] == "d", root
    in_a = listing(ftp, "a")
    assert set(in_a) - {".", ".."} == {"b"} and in_a["b"][0] == "d", in_a
    facts, _ = mlst_facts(reply(ftp, "MLST a/b"))
    assert facts["type"].lower() == "dir", facts
    assert code(reply(ftp, "CWD a/b")) == 250
    assert pwd_path(reply(ftp, "PWD")) == "/a/b"
    assert ftp.nlst() == ["c.txt"]
    assert retr_bytes(ftp, "c.txt") == data
    assert reply(ftp, "SIZE c.txt") == f"213 {len(data)}"
    assert code(reply(ftp, "CDUP")) in (200, 250)
    assert pwd_path(reply(ftp, "PWD")) == "/a"
    assert code(reply(ftp, "RMD b")) == 550  # not empty
    ftp.quit()


def test_root_is_the_prefix(s3_ferry, s3_prefix):
    """The user sees exactly the keys under the server's prefix, and cannot climb out of it."""
    site, s3 = s3_ferry, s3_ferry.s3
    other = s3_prefix.rstrip("/") + "-other/"
    try:
        s3.put(other + "secret.txt", b"not yours")
        s3.put(s3_prefix.rstrip("/") + "sibling.txt", b"not yours either")  # shares the prefix's first bytes
        s3.put(site.key("mine.txt"), b"mine")
        ftp = connect(site)
        assert ftp.nlst() == ["mine.txt"]
        assert code(reply(ftp, "CWD ..")) == 250
        assert pwd_path(reply(ftp, "PWD")) == "/"
        assert ftp.nlst() == ["mine.txt"]
        other_name = other.rstrip("/")
        for path in (f"../{other_name}/secret.txt", f"/../{other_name}/secret.txt", f"/../../{other_name}/secret.txt"):
            assert code(reply(ftp, f"SIZE {path}")) == 550, path
        assert retr_bytes(ftp, "/../mine.txt") == b"mine"  # `..` at the root stays at the root
        ftp.quit()
        assert s3.get(other + "secret.txt") == b"not yours"
    finally:
        s3.delete_prefix(other)
        s3.delete(s3_prefix.rstrip("/") + "sibling.txt")


def test_credentials_from_environment(s3_ferry_factory, garage, monkeypatch):
    """Without access_key_id/secret_access_key in [storage], ferry uses AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", garage.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", garage.secret_key)
    site = s3_ferry_factory(credentials=False)
    data = os.urandom(10_000)
    ftp = connect(site)
    stor_bytes(ftp, "env.bin", data)
    assert retr_bytes(ftp, "env.bin") == data
    ftp.quit()
    assert site.s3.get(site.key("env.bin")) == data


# ------------------------------------------------------------------ aborted uploads leave nothing


def _start_stor(site, name: str, mib: int = 20):
    ftp = connect(site, timeout=60)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    for _ in range(mib):
        conn.sendall(os.urandom(MiB))
    time.sleep(0.3)  # let the server push a part or two to S3
    return ftp, conn


@pytest.mark.parametrize("how", ["abor", "reset"])
def test_aborted_stor_leaves_no_object(s3_ferry, how):
    site, s3 = s3_ferry, s3_ferry.s3
    ftp, conn = _start_stor(site, "aborted.bin")
    if how == "abor":
        resp = ftp.abort()  # ABOR (with Telnet Synch, as ftplib sends it)
        conn.close()
        if resp.startswith("426"):
            assert code(ftp.getmultiline()) in (225, 226)
    else:
        hard_close(conn)  # RST on the data connection: a failed upload, not EOF
        resp = ftp.getmultiline()
        assert code(resp) in (426, 451), resp
    assert code(reply(ftp, "NOOP")) == 200
    gone, keys, uploads = s3.wait_gone(site.key("aborted.bin"), timeout=8)
    assert gone, f"after {how}: object {keys} / multipart uploads {uploads} left for aborted.bin"
    assert code(reply(ftp, "SIZE aborted.bin")) == 550
    ftp.quit()
    assert s3.list_multipart_uploads(site.prefix) == []


def test_aborted_stor_keeps_old_object(s3_ferry):
    site, s3 = s3_ferry, s3_ferry.s3
    old = os.urandom(MiB + 3)
    s3.put(site.key("f.bin"), old)
    ftp, conn = _start_stor(site, "f.bin", mib=12)
    hard_close(conn)
    assert code(ftp.getmultiline()) in (426, 451)
    ftp.quit()
    end = time.monotonic() + 8
    while s3.list_multipart_uploads(site.prefix) and time.monotonic() < end:
        time.sleep(0.25)
    assert s3.list_multipart_uploads(site.prefix) == []
    assert s3.list_objects(site.prefix) == {site.key("f.bin"): len(old)}
    assert s3.get(site.key("f.bin")) == old


# ------------------------------------------------------------------ interrupted and resumed large uploads


@pytest.mark.slow
@pytest.mark.parametrize("resume", ["rest-stor", "appe"])
def test_big_upload_interrupted_and_resumed(s3_ferry, resume):
    site, s3 = s3_ferry, s3_ferry.s3
    p = payload()
    key = site.key("big.bin")
    ftp = connect(site, timeout=BIG_TIMEOUT)
    ftp.voidcmd("TYPE I")
    # a "short" upload: the client closes the data connection cleanly after FIRST bytes
    assert ftp.storbinary("STOR big.bin", p.reader(0, FIRST), blocksize=MiB).startswith("226")
    assert s3.list_objects(site.prefix) == {key: FIRST}
    assert reply(ftp, "SIZE big.bin") == f"213 {FIRST}"
    if resume == "rest-stor":
        resp = ftp.storbinary("STOR big.bin", p.reader(FIRST), blocksize=MiB, rest=FIRST)
    else:
        resp = ftp.storbinary("APPE big.bin", p.reader(FIRST), blocksize=MiB)
    assert resp.startswith("226"), resp
    assert reply(ftp, "SIZE big.bin") == f"213 {BIG}"
    assert s3.list_objects(site.prefix) == {key: BIG}
    assert s3.list_multipart_uploads(site.prefix) == []
    sink = HashSink()
    ftp.retrbinary("RETR big.bin", sink, blocksize=MiB)
    assert sink.n == BIG
    assert sink.hexdigest() == p.sha256(), f"{resume}: the resumed upload is not byte-exact"
    ftp.quit()


@pytest.mark.slow
def test_ferry_put_continue_resumes(s3_ferry, tmp_path):
    site, s3 = s3_ferry, s3_ferry.s3
    p = payload()
    local = tmp_path / "big-local.bin"
    p.write_to(local)
    ftp = connect(site, timeout=BIG_TIMEOUT)
    ftp.voidcmd("TYPE I")
    assert ftp.storbinary("STOR put.bin", p.reader(0, FIRST), blocksize=MiB).startswith("226")
    ftp.quit()
    assert s3.list_objects(site.prefix) == {site.key("put.bin"): FIRST}
    cp = run(
        [str(FERRY_BIN), "put", "-c", "--trace", "--timeout", "120", str(local), site.url("/put.bin")],
        timeout=600,
        cwd=tmp_path,
    )
    err = cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 0, f"ferry put -c exited {cp.returncode}:\n{err[-4000:]}"
    assert f"REST {FIRST}" in err or "APPE" in err, f"ferry put -c did not resume at {FIRST}:\n{err[-4000:]}"
    assert s3.list_objects(site.prefix) == {site.key("put.bin"): BIG}
    assert s3.sha256(site.key("put.bin")) == p.sha256()
    assert s3.list_multipart_uploads(site.prefix) == []
    local.unlink()


def test_two_nodes_share_a_prefix(s3_ferry_factory):
    """Two stateless servers on one bucket prefix: upload part through A, list and resume through B, read through both."""
    a = s3_ferry_factory()
    b = s3_ferry_factory()
    assert a.prefix == b.prefix and a.port != b.port
    p = payload(40 * MiB + 777, seed=11)
    first = 17 * MiB + 3
    fa = connect(a, timeout=120)
    fa.voidcmd("TYPE I")
    assert fa.storbinary("STOR shared.bin", p.reader(0, first), blocksize=MiB).startswith("226")
    fb = connect(b, timeout=120)
    fb.voidcmd("TYPE I")
    assert fb.nlst() == ["shared.bin"]
    assert listing(fb)["shared.bin"] == ("-", first)
    assert reply(fb, "SIZE shared.bin") == f"213 {first}"
    assert fb.storbinary("STOR shared.bin", p.reader(first), blocksize=MiB, rest=first).startswith("226")
    assert reply(fa, "SIZE shared.bin") == f"213 {p.size}"
    for ftp in (fa, fb):
        sink = HashSink()
        ftp.retrbinary("RETR shared.bin", sink, blocksize=MiB)
        assert sink.n == p.size and sink.hexdigest() == p.sha256()
    fa.quit()
    fb.quit()
    assert a.s3.list_objects(a.prefix) == {a.key("shared.bin"): p.size}


# ------------------------------------------------------------------ curl as the FTP client


def q(site, path: str) -> str:
    """The site's URL for `path`, percent-encoded for curl."""
    from urllib.parse import quote

    return site.url(quote(path))


def curl(site, *args: str, timeout: float = 120) -> bytes:
    """Runs curl against the S3-backed server; fails the test with curl's stderr on error."""
    cp = run(["curl", "-sS", "--fail", "--max-time", str(int(timeout)), *args], timeout=timeout + 10)
    assert cp.returncode == 0, f"curl {' '.join(args)} exited {cp.returncode}: {cp.stderr.decode(errors='replace')}"
    return cp.stdout


@pytest.mark.parametrize("mode", ["epsv", "pasv", "active"])
def test_curl_every_command_group(s3_ferry, tmp_path, mode):
    """curl uploads (creating directories), lists, downloads, resumes both ways, renames and deletes."""
    site, s3 = s3_ferry, s3_ferry.s3
    flags = {"epsv": [], "pasv": ["--disable-epsv"], "active": ["-P", "127.0.0.1"]}[mode]
    data = os.urandom(7 * MiB + 123)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    # STOR into directories that do not exist yet (curl sends MKD for each)
    curl(site, *flags, "--ftp-create-dirs", "-T", str(src), q(site, "/d1/d 2/f ü.bin"))
    assert keys_under(site) == ["d1/", "d1/d 2/", "d1/d 2/f ü.bin"]
    assert s3.sha256(site.key("d1/d 2/f ü.bin")) == sha256(data)
    # LIST and NLST (curl -l) of a directory
    assert "f ü.bin" in curl(site, *flags, q(site, "/d1/d 2/")).decode()
    assert curl(site, *flags, "-l", site.url("/d1/")).decode().splitlines() == ["d 2"]
    # RETR, and a ranged RETR (REST)
    assert curl(site, *flags, q(site, "/d1/d 2/f ü.bin")) == data
    assert curl(site, *flags, "-r", "5000000-", q(site, "/d1/d 2/f ü.bin")) == data[5000000:]
    # an upload resumed with curl -C - (SIZE, then APPE) after a short first upload
    part = tmp_path / "part.bin"
    part.write_bytes(data[: 3 * MiB + 1])
    curl(site, *flags, "-T", str(part), site.url("/resume.bin"))
    curl(site, *flags, "-C", "-", "-T", str(src), site.url("/resume.bin"))
    assert s3.sha256(site.key("resume.bin")) == sha256(data)
    assert s3.list_multipart_uploads(site.prefix) == []
    # RNFR/RNTO and DELE through -Q, MKD/RMD through -Q
    curl(site, *flags, "-Q", "RNFR resume.bin", "-Q", "RNTO renamed.bin", "-Q", "MKD empty", "-Q", "RMD empty",
         site.url("/"), "-o", os.devnull)
    assert "resume.bin" not in keys_under(site) and "renamed.bin" in keys_under(site)
    assert "empty/" not in keys_under(site)
    curl(site, *flags, "-Q", "DELE renamed.bin", site.url("/"), "-o", os.devnull)
    assert keys_under(site) == ["d1/", "d1/d 2/", "d1/d 2/f ü.bin"]
    # a missing file: curl's "remote file not found" (78, from the 550)
    cp = run(["curl", "-sS", "--max-time", "30", site.url("/nope.bin")], timeout=40)
    assert cp.returncode == 78, cp.stderr


@pytest.mark.parametrize("credentials", [True, False])
def test_unreachable_or_unauthorised_bucket_stops_start_up(tmp_path, credentials):
    """Start-up checks the bucket: a dead endpoint, or no credentials at all, is a clear error and exit 1."""
    cfg = tmp_path / "ferry.toml"
    lines = ['listen = ["127.0.0.1:0"]', "[storage]", 'kind = "s3"', 'endpoint = "http://127.0.0.1:9"',
             'region = "garage"', 'bucket = "nope"']
    if credentials:
        lines += ['access_key_id = "GK0000"', 'secret_access_key = "0000"']
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cp = run([str(FERRY_BIN), "serve", "--config", str(cfg), "--user", "a:b", "--root", str(tmp_path / "r")],
             timeout=60, env=env)
    err = cp.stderr.decode("utf-8", "replace")
    assert cp.returncode == 1, err
    assert 'cannot reach bucket "nope"' in err, err
    assert "listening on" not in cp.stdout.decode()
