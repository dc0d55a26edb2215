"""Ferry against lftp: mirror a ~300-file nested tree both ways, passive and active, MLSD and LIST."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from interop_util import make_tree, run, tool, tree_digest, write_random

BASE_SETTINGS = [
    "set net:max-retries 1",
    "set net:timeout 10",
    "set net:reconnect-interval-base 1",
    "set cmd:fail-exit yes",
    "set ftp:ssl-allow no",
]


def lftp(server, script: list[str], settings: list[str] = (), timeout: float = 150):
    host = f"[{server.host}]" if ":" in server.host else server.host
    cmds = BASE_SETTINGS + list(settings) + [f"open -u {server.user},{server.password} ftp://{host}:{server.port}"] + script
    cp = run([tool("lftp"), "-c", "; ".join(cmds)], timeout=timeout)
    assert cp.returncode == 0, (
        f"lftp exit {cp.returncode}\nstdout: {cp.stdout.decode(errors='replace')[-2000:]}"
        f"\nstderr: {cp.stderr.decode(errors='replace')[-3000:]}"
    )
    return cp


def q(path: Path) -> str:
    return '"' + str(path).replace('"', '\\"') + '"'


VARIANTS = {
    "passive-mlsd": [],
    "active-mlsd": ["set ftp:passive-mode off"],
    "passive-list": ["set ftp:use-mlsd off"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mirror_download(ferry, tmp_path, variant):
    expected = make_tree(ferry.root / "src", nfiles=300)
    dest = tmp_path / "dest"
    dest.mkdir()
    lftp(ferry, [f"mirror --parallel=3 /src {q(dest / 'src')}"], VARIANTS[variant])
    files, dirs = tree_digest(dest / "src")
    assert files == expected
    _, src_dirs = tree_digest(ferry.root / "src")
    assert dirs == src_dirs  # including the empty directory
    # mirror preserves modification times (from MLSD modify= or MDTM/LIST)
    for rel in list(expected)[:20]:
        a = os.stat(ferry.root / "src" / rel).st_mtime
        b = os.stat(dest / "src" / rel).st_mtime
        assert abs(a - b) <= 1.0 if variant != "passive-list" else abs(a - b) <= 61, (rel, a, b)


@pytest.mark.parametrize("variant", ["passive-mlsd", "active-mlsd"])
def test_mirror_upload(ferry, tmp_path, variant):
    local = tmp_path / "local"
    expected = make_tree(local, nfiles=300)
    lftp(ferry, [f"mirror -R --parallel=3 {q(local)} /uploaded"], VARIANTS[variant])
    files, dirs = tree_digest(ferry.root / "uploaded")
    assert files == expected
    _, local_dirs = tree_digest(local)
    assert dirs == local_dirs
    # nothing but the tree was written into the root (no temp files left behind)
    assert sorted(os.listdir(ferry.root)) == ["uploaded"]


def test_mirror_reverse_delete_and_update(ferry, tmp_path):
    local = tmp_path / "local"
    make_tree(local, nfiles=60)
    lftp(ferry, [f"mirror -R {q(local)} /m"])
    # change the local side: delete some files and a directory, modify and add others
    victims = sorted(p for p in local.rglob("*.dat"))[:10]
    for p in victims:
        p.unlink()
    shutil.rmtree(local / "zeta")
    changed = sorted(p for p in local.rglob("*.dat"))[0]
    write_random(changed, 12_345)
    os.utime(changed, (2_000_000_000, 2_000_000_000))
    write_random(local / "alpha" / "brand new.bin", 777)
    lftp(ferry, [f"mirror -R --delete {q(local)} /m"])
    assert tree_digest(ferry.root / "m") == tree_digest(local)


def test_lftp_commands(ferry, tmp_path):
    data = write_random(tmp_path / "put me.bin", 100_000)
    out = tmp_path / "got.bin"
    cp = lftp(
        ferry,
        [
            "mkdir -p a/b/c",
            "cd a/b",
            f"put {q(tmp_path / 'put me.bin')} -o 'put me.bin'",
            "mv 'put me.bin' c/moved.bin",
            "cls -1 c",
            f"get c/moved.bin -o {q(out)}",
            "chmod 600 c/moved.bin",
            "rm c/moved.bin",
            "pwd",
        ],
    )
    assert out.read_bytes() == data
    assert not (ferry.root / "a" / "b" / "c" / "moved.bin").exists()
    stdout = cp.stdout.decode()
    assert "moved.bin" in stdout
    assert stdout.strip().splitlines()[-1].endswith("/a/b"), stdout


def test_ipv6_mirror(ferry6, tmp_path):
    expected = make_tree(ferry6.root / "src", nfiles=40, max_size=8000)
    dest = tmp_path / "dest"
    dest.mkdir()
    lftp(ferry6, [f"mirror /src {q(dest / 'src')}"])
    assert tree_digest(dest / "src")[0] == expected
    # Passive both ways: lftp 4.9 in active mode on IPv6 announces `EPRT |2|::|port|` (the
    # unspecified address), which a server must refuse (not the control peer, RFC 2577); lftp then
    # stalls for net:timeout per file. Active IPv6 (EPRT |2|::1|...) is covered by ftplib and curl.
    lftp(ferry6, [f"mirror -R {q(dest / 'src')} /back"])
    assert tree_digest(ferry6.root / "back")[0] == expected
