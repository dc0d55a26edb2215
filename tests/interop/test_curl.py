"""Ferry against curl: downloads, uploads, passive/active variants, ranges, listings, quote commands."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from interop_util import file_sha256, run, sha256, tool, write_random


def curl(server, *args: str, timeout: float = 90) -> "subprocess.CompletedProcess":  # noqa: F821
    return run(
        [tool("curl"), "-sS", "--max-time", "60", "--user", f"{server.user}:{server.password}", *args],
        timeout=timeout,
    )


def url(server, path: str = "/") -> str:
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"ftp://{host}:{server.port}{path}"


def ok(cp) -> None:
    assert cp.returncode == 0, f"curl exit {cp.returncode}\nstderr: {cp.stderr.decode(errors='replace')}"


@pytest.mark.parametrize(
    "mode",
    [
        [],  # default: EPSV, then PASV
        ["--ftp-pasv"],
        ["--disable-epsv"],  # PASV only
        ["-P", "127.0.0.1"],  # active: EPRT
        ["-P", "127.0.0.1", "--disable-eprt"],  # active: PORT
    ],
    ids=["default", "ftp-pasv", "disable-epsv", "active-eprt", "active-port"],
)
def test_download_upload_modes(ferry, tmp_path, mode):
    data = write_random(ferry.root / "down.bin", 2 * 1024 * 1024 + 11)
    out = tmp_path / "out.bin"
    ok(curl(ferry, *mode, url(ferry, "/down.bin"), "-o", str(out)))
    assert file_sha256(out) == sha256(data)

    up = tmp_path / "up.bin"
    updata = write_random(up, 1024 * 1024 + 5)
    ok(curl(ferry, *mode, "-T", str(up), url(ferry, "/uploaded.bin")))
    assert file_sha256(ferry.root / "uploaded.bin") == sha256(updata)


def test_empty_file(ferry, tmp_path):
    (ferry.root / "empty").write_bytes(b"")
    out = tmp_path / "out"
    ok(curl(ferry, url(ferry, "/empty"), "-o", str(out)))
    assert out.read_bytes() == b""
    src = tmp_path / "zero"
    src.write_bytes(b"")
    ok(curl(ferry, "-T", str(src), url(ferry, "/zero-up")))
    assert (ferry.root / "zero-up").read_bytes() == b""


@pytest.mark.parametrize("rng,sl", [("10-99", slice(10, 100)), ("0-0", slice(0, 1)), ("65000-", slice(65000, None))])
def test_ranges(ferry, tmp_path, rng, sl):
    data = write_random(ferry.root / "r.bin", 100_000)
    out = tmp_path / "part"
    ok(curl(ferry, "-r", rng, url(ferry, "/r.bin"), "-o", str(out)))
    assert out.read_bytes() == data[sl]
    # the session-level server state is fine afterwards
    out2 = tmp_path / "whole"
    ok(curl(ferry, url(ferry, "/r.bin"), "-o", str(out2)))
    assert file_sha256(out2) == sha256(data)


def test_directory_listing(ferry):
    d = ferry.root / "dir"
    names = ["a.bin", "b c.txt", "données.txt"]
    for i, n in enumerate(names):
        write_random(d / n, 100 * (i + 1))
    (d / "subdir").mkdir()
    cp = curl(ferry, url(ferry, "/dir/"))
    ok(cp)
    lines = cp.stdout.decode("utf-8").splitlines()
    for i, n in enumerate(names):
        matching = [line for line in lines if line.endswith(" " + n)]
        assert len(matching) == 1, (n, lines)
        assert matching[0].startswith("-") and f" {100 * (i + 1)} " in matching[0], matching
    assert any(line.startswith("d") and line.endswith(" subdir") for line in lines), lines
    cp = curl(ferry, "--list-only", url(ferry, "/dir/"))
    ok(cp)
    assert sorted(cp.stdout.decode("utf-8").splitlines()) == sorted(names + ["subdir"])


def test_create_dirs(ferry, tmp_path):
    src = tmp_path / "src.bin"
    data = write_random(src, 33_333)
    ok(curl(ferry, "--ftp-create-dirs", "-T", str(src), url(ferry, "/a/b/c/deep.bin")))
    assert file_sha256(ferry.root / "a" / "b" / "c" / "deep.bin") == sha256(data)


def test_quote_commands(ferry, tmp_path):
    write_random(ferry.root / "x", 10)
    write_random(ferry.root / "old name", 10)
    write_random(ferry.root / "post", 10)
    cp = curl(
        ferry,
        "-Q", "DELE x",
        "-Q", "RNFR old name",
        "-Q", "RNTO new name",
        "-Q", "-DELE post",  # after the transfer
        "-Q", "-MKD made",
        url(ferry, "/"),
    )
    ok(cp)
    assert not (ferry.root / "x").exists()
    assert not (ferry.root / "old name").exists() and (ferry.root / "new name").exists()
    assert not (ferry.root / "post").exists()
    assert (ferry.root / "made").is_dir()
    cp = curl(ferry, "-Q", "DELE does-not-exist", url(ferry, "/"))
    assert cp.returncode == 21, (cp.returncode, cp.stderr)  # CURLE_QUOTE_ERROR
    cp = curl(ferry, "-Q", "SITE CHMOD 600 new name", url(ferry, "/"))
    ok(cp)
    assert (os.stat(ferry.root / "new name").st_mode & 0o777) == 0o600


@pytest.mark.parametrize("method", ["multicwd", "singlecwd", "nocwd"])
def test_ftp_methods_nested(ferry, tmp_path, method):
    data = write_random(ferry.root / "p" / "q r" / "s" / "f.bin", 77_777)
    out = tmp_path / "o"
    ok(curl(ferry, "--ftp-method", method, url(ferry, "/p/q%20r/s/f.bin"), "-o", str(out)))
    assert file_sha256(out) == sha256(data)
    src = tmp_path / "u"
    up = write_random(src, 12_345)
    ok(curl(ferry, "--ftp-method", method, "-T", str(src), url(ferry, "/p/q%20r/s/u.bin")))
    assert file_sha256(ferry.root / "p" / "q r" / "s" / "u.bin") == sha256(up)


def test_resume_upload_and_download(ferry, tmp_path):
    full = os.urandom(300_000)
    # upload resume: the server has the first 100000 bytes; curl uses SIZE then APPE
    (ferry.root / "up.bin").write_bytes(full[:100_000])
    src = tmp_path / "full.bin"
    src.write_bytes(full)
    ok(curl(ferry, "-C", "-", "-T", str(src), url(ferry, "/up.bin")))
    assert file_sha256(ferry.root / "up.bin") == sha256(full)
    # download resume: the local file has the first 123456 bytes; curl uses REST
    (ferry.root / "down.bin").write_bytes(full)
    part = tmp_path / "part.bin"
    part.write_bytes(full[:123_456])
    ok(curl(ferry, "-C", "-", url(ferry, "/down.bin"), "-o", str(part)))
    assert file_sha256(part) == sha256(full)


def test_head_size_and_time(ferry):
    data = write_random(ferry.root / "h.bin", 4242)
    os.utime(ferry.root / "h.bin", (1_600_000_000, 1_600_000_000))
    cp = curl(ferry, "-I", url(ferry, "/h.bin"))
    ok(cp)
    out = cp.stdout.decode()
    assert f"Content-Length: {len(data)}" in out, out
    assert "Last-Modified: Sun, 13 Sep 2020 12:26:40 GMT" in out, out


def test_utf8_and_space_names(ferry, tmp_path):
    name = "données 中文 file.txt"
    data = write_random(ferry.root / name, 5000)
    out = tmp_path / "o"
    ok(curl(ferry, url(ferry, "/" + quote(name)), "-o", str(out)))
    assert out.read_bytes() == data
    src = tmp_path / "s"
    up = write_random(src, 4000)
    up_name = "上传 with space.bin"
    ok(curl(ferry, "-T", str(src), url(ferry, "/" + quote(up_name))))
    assert (ferry.root / up_name).read_bytes() == up


def test_missing_file_and_bad_login(ferry, tmp_path):
    cp = curl(ferry, url(ferry, "/nope.bin"), "-o", str(tmp_path / "o"))
    assert cp.returncode == 78, (cp.returncode, cp.stderr)  # CURLE_REMOTE_FILE_NOT_FOUND (550)
    cp = run(
        [tool("curl"), "-sS", "--max-time", "30", "--user", f"{ferry.user}:wrong", url(ferry, "/")],
        timeout=60,
    )
    assert cp.returncode == 67, (cp.returncode, cp.stderr)  # CURLE_LOGIN_DENIED (530)


def test_many_files_one_connection(ferry, tmp_path):
    """curl reuses one control connection for several URLs (CWD/EPSV/RETR repeated)."""
    blobs = {f"m{i}.bin": write_random(ferry.root / "many" / f"m{i}.bin", 1000 * i + 1) for i in range(20)}
    args = []
    for name in blobs:
        args += [url(ferry, f"/many/{name}"), "-o", str(tmp_path / name)]
    ok(curl(ferry, *args))
    for name, data in blobs.items():
        assert (tmp_path / name).read_bytes() == data


def test_ipv6(ferry6, tmp_path):
    data = write_random(ferry6.root / "six.bin", 500_000)
    out = tmp_path / "o"
    ok(curl(ferry6, url(ferry6, "/six.bin"), "-o", str(out)))
    assert file_sha256(out) == sha256(data)
    ok(curl(ferry6, "-P", "::1", url(ferry6, "/six.bin"), "-o", str(out)))
    assert file_sha256(out) == sha256(data)
    src = tmp_path / "s"
    up = write_random(src, 300_000)
    ok(curl(ferry6, "-T", str(src), url(ferry6, "/up6.bin")))
    assert file_sha256(ferry6.root / "up6.bin") == sha256(up)


def test_anonymous_download_upload_denied(ferry_anon, tmp_path):
    data = write_random(ferry_anon.root / "pub.bin", 10_000)
    out = tmp_path / "o"
    cp = run(
        [tool("curl"), "-sS", "--max-time", "30", url(ferry_anon, "/pub.bin"), "-o", str(out)], timeout=60
    )  # curl logs in as anonymous by default
    ok(cp)
    assert out.read_bytes() == data
    src = tmp_path / "s"
    src.write_bytes(b"evil")
    cp = run([tool("curl"), "-sS", "--max-time", "30", "-T", str(src), url(ferry_anon, "/evil.bin")], timeout=60)
    assert cp.returncode == 25, (cp.returncode, cp.stderr)  # CURLE_UPLOAD_FAILED
    assert not (ferry_anon.root / "evil.bin").exists()
