"""RFC 959's default representation type: every session (and REIN) starts in TYPE A.

A client that wants bytes sends TYPE I first; every client people use does. Each client here
downloads and uploads a file made of every line ending (LF, CR LF, CR, CR CR LF) and NUL/0xFF
bytes: in TYPE A those would change on the wire or on disk, so a byte-exact copy both ways is the
proof that the client asked for TYPE I. Clients that offer an ASCII mode without sending TYPE A
(ncftpput -a, lftp put -a) get the conversion the RFC promises.
"""

from __future__ import annotations

import ftplib
import io
import os

import pytest

from interop_util import Raw, file_sha256, ftp_connect, raw_login, recv_all, run, sha256, tool
from conftest import FERRY_BIN

# Every line ending a TYPE A conversion would touch, and bytes that are not text at all.
TORTURE = (b"line\n" b"dos\r\n" b"mac\r" b"odd\r\r\n" b"\x00\xff\xfe" b"\n\n\r\r" * 3) * 2000 + os.urandom(50_000)


def test_sessions_start_in_type_a_and_rein_goes_back_to_it(ferry):
    (ferry.root / "text.txt").write_bytes(b"one\ntwo\n")
    r = raw_login(ferry)
    assert "TYPE: ASCII" in r.ok("STAT", 211)
    sock = r.epsv()
    r.ok("RETR text.txt", 150)
    assert recv_all(sock) == b"one\r\ntwo\r\n", "TYPE A sends CRLF line endings"
    r.expect(226)
    r.ok("TYPE I", 200)
    assert "TYPE: BINARY" in r.ok("STAT", 211)
    r.ok("REIN", 220)
    r.login(ferry.user, ferry.password)
    assert "TYPE: ASCII" in r.ok("STAT", 211)
    r.close()


def rclone_remote(server) -> str:
    obscured = run([tool("rclone"), "obscure", server.password]).stdout.decode().strip()
    return f":ftp,host=127.0.0.1,port={server.port},user={server.user},pass={obscured}:"


def client_copy(name: str, server, tmp_path, local_up, local_down) -> None:
    """Downloads /t.bin to `local_down` and uploads `local_up` to /up.bin with client `name`."""
    url = f"ftp://127.0.0.1:{server.port}"
    auth = f"{server.user}:{server.password}"
    if name == "ftplib":
        ftp = ftp_connect(server)
        with open(local_down, "wb") as f:
            ftp.retrbinary("RETR t.bin", f.write)
        with open(local_up, "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        ftp.quit()
        return
    steps = {
        "curl": [
            [tool("curl"), "-sS", "--max-time", "60", "--user", auth, f"{url}/t.bin", "-o", str(local_down)],
            [tool("curl"), "-sS", "--max-time", "60", "--user", auth, "-T", str(local_up), f"{url}/up.bin"],
        ],
        "lftp": [
            [tool("lftp"), "-c", f"set net:max-retries 1; set ftp:ssl-allow no; open -u {server.user},{server.password} "
             f"{url}; get /t.bin -o {local_down}; put {local_up} -o /up.bin"],
        ],
        "wget": [
            [tool("wget"), "-q", "--user", server.user, "--password", server.password, f"{url}/t.bin", "-O", str(local_down)],
        ],
        "ncftp": [
            [tool("ncftpget"), "-V", "-u", server.user, "-p", server.password, "-P", str(server.port), "127.0.0.1",
             str(local_down.parent), "/t.bin"],
            [tool("ncftpput"), "-V", "-u", server.user, "-p", server.password, "-P", str(server.port), "127.0.0.1",
             "/", str(local_up)],
        ],
        "rclone": [
            [tool("rclone"), "--config", str(tmp_path / "rclone.conf"), "copyto", rclone_remote(server) + "t.bin", str(local_down)],
            [tool("rclone"), "--config", str(tmp_path / "rclone.conf"), "copyto", str(local_up), rclone_remote(server) + "up.bin"],
        ],
        "ferry": [
            [str(FERRY_BIN), "get", f"ftp://{auth}@127.0.0.1:{server.port}/t.bin", str(local_down)],
            [str(FERRY_BIN), "put", str(local_up), f"ftp://{auth}@127.0.0.1:{server.port}/up.bin"],
        ],
    }[name]
    (tmp_path / "rclone.conf").touch()
    for argv in steps:
        cp = run(argv, timeout=120, cwd=tmp_path)
        assert cp.returncode == 0, f"{argv[0]}: {cp.stderr.decode(errors='replace')[-2000:]}"


@pytest.mark.parametrize("client", ["curl", "lftp", "wget", "ftplib", "ncftp", "rclone", "ferry"])
def test_clients_send_type_i_before_binary_transfers(ferry, tmp_path, client):
    (ferry.root / "t.bin").write_bytes(TORTURE)
    up = tmp_path / "up.bin"
    up.write_bytes(TORTURE[::-1])
    down = tmp_path / "t.bin"
    client_copy(client, ferry, tmp_path, up, down)
    assert file_sha256(down) == sha256(TORTURE), f"{client} download changed bytes: it did not send TYPE I"
    if client != "wget":  # wget only downloads
        assert file_sha256(ferry.root / "up.bin") == sha256(TORTURE[::-1]), f"{client} upload changed bytes"


def test_ncftpput_ascii_mode_relies_on_the_default_type(ferry, tmp_path):
    """ncftpput -a sends no TYPE A: it relies on RFC 959's default, which now holds."""
    src = tmp_path / "dos.txt"
    src.write_bytes(b"first\r\nsecond\r\nthird\r\n")
    cp = run(
        [tool("ncftpput"), "-a", "-V", "-u", ferry.user, "-p", ferry.password, "-P", str(ferry.port), "127.0.0.1", "/", str(src)],
        timeout=60,
    )
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert (ferry.root / "dos.txt").read_bytes() == b"first\nsecond\nthird\n"


def test_lftp_put_ascii_in_a_fresh_session(ferry, tmp_path):
    """lftp's put -a sends no TYPE A either: it writes CRLF on the wire and relies on the default
    type for the server to store the local LF line endings again (in TYPE I it would store CRLF)."""
    src = tmp_path / "dos.txt"
    src.write_bytes(b"a\nb\n")
    cp = run(
        [tool("lftp"), "-c", f"set net:max-retries 1; set ftp:ssl-allow no; open -u {ferry.user},{ferry.password} "
         f"ftp://127.0.0.1:{ferry.port}; put -a {src} -o /dos.txt"],
        timeout=60,
    )
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert (ferry.root / "dos.txt").read_bytes() == b"a\nb\n"
