"""Ferry against GNU wget: single downloads, recursive downloads (LIST parsing), continue, active mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interop_util import file_sha256, make_tree, run, sha256, tool, tree_digest, write_random


def wget(server, *args: str, timeout: float = 120):
    return run(
        [
            tool("wget"),
            "-nv",
            "--tries=1",
            "--timeout=20",
            f"--user={server.user}",
            f"--password={server.password}",
            *args,
        ],
        timeout=timeout,
    )


def url(server, path: str) -> str:
    return f"ftp://{server.host}:{server.port}{path}"


def ok(cp) -> None:
    assert cp.returncode == 0, f"wget exit {cp.returncode}\n{cp.stderr.decode(errors='replace')[-3000:]}"


@pytest.mark.parametrize("mode", [[], ["--no-passive-ftp"]], ids=["passive", "active"])
def test_single_file(ferry, tmp_path, mode):
    data = write_random(ferry.root / "w.bin", 3 * 1024 * 1024 + 1)
    out = tmp_path / "out.bin"
    ok(wget(ferry, *mode, "-O", str(out), url(ferry, "/w.bin")))
    assert file_sha256(out) == sha256(data)


def test_continue(ferry, tmp_path):
    data = write_random(ferry.root / "c.bin", 400_000)
    out = tmp_path / "c.bin"
    out.write_bytes(data[:150_000])
    ok(wget(ferry, "-c", "-O", str(out), url(ferry, "/c.bin")))
    assert file_sha256(out) == sha256(data)


@pytest.mark.parametrize("mode", [[], ["--no-passive-ftp"]], ids=["passive", "active"])
def test_recursive(ferry, tmp_path, mode):
    expected = make_tree(ferry.root / "tree", nfiles=40, max_size=20_000)
    for rel in list(expected)[:5]:  # listing times: old files get the "Mon DD  YYYY" LIST form
        os.utime(ferry.root / "tree" / rel, (1_300_000_000, 1_300_000_000))
    dest = tmp_path / "dest"
    ok(wget(ferry, *mode, "-r", "-l", "0", "-nH", "-P", str(dest), "--no-remove-listing", url(ferry, "/tree/")))
    files, _ = tree_digest(dest / "tree", skip=lambda rel: rel.endswith(".listing"))
    assert files == expected
    assert (dest / "tree" / ".listing").exists()
    # wget sets local mtimes from the LIST dates: old files keep their year
    for rel in list(expected)[:5]:
        assert abs(os.stat(dest / "tree" / rel).st_mtime - 1_300_000_000) < 86400 * 2, rel


def test_utf8_name(ferry, tmp_path):
    name = "données 中文.txt"
    data = write_random(ferry.root / name, 999)
    dest = tmp_path / "d"
    dest.mkdir()
    ok(wget(ferry, "--restrict-file-names=nocontrol", "-P", str(dest), "--no-iri", url(ferry, "/" + name)))
    got = [p for p in dest.iterdir()]
    assert len(got) == 1 and got[0].read_bytes() == data, got
