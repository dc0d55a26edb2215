"""Explicit FTPS (RFC 4217) with real clients: curl, lftp, Python's ftplib.FTP_TLS.

The server certificate is a fresh self-signed one from `ferry cert self-signed`, trusted by file.
"""

from __future__ import annotations

import ftplib
import io
import os
import ssl
import subprocess

import pytest

from conftest import FERRY_BIN
from interop_util import Raw, file_sha256, make_tree, run, sha256, tool, tree_digest, wait_for, write_random


@pytest.fixture
def cert(tmp_path):
    c, k = tmp_path / "cert.pem", tmp_path / "key.pem"
    cp = subprocess.run(
        [str(FERRY_BIN), "cert", "self-signed", "--cert", str(c), "--key", str(k)],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    return c, k


@pytest.fixture
def ftps(ferry_factory, cert):
    c, k = cert
    server = ferry_factory(["--tls-cert", str(c), "--tls-key", str(k)])
    server.cacert = c
    return server


def tls_context(cafile) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    return ctx


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on data connections."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def test_feat_and_auth(ftps):
    r = Raw(ftps.host, ftps.port)
    r.expect(220)
    c, feat = r.cmd("FEAT")
    assert c == 211 and " AUTH TLS" in feat.split("\n") and " PBSZ" in feat.split("\n") and " PROT" in feat.split("\n"), feat
    r.ok("AUTH TLS", 234)
    r.close()


def test_ftplib_tls_with_session_reuse(ftps):
    data = write_random(ftps.root / "f.bin", 1_000_003)
    ftp = ReusingFTP_TLS(context=tls_context(ftps.cacert), timeout=10)
    ftp.connect(ftps.host, ftps.port)
    ftp.login(ftps.user, ftps.password)  # AUTH TLS first
    ftp.prot_p()
    got = []
    ftp.retrbinary("RETR f.bin", got.append)
    assert sha256(b"".join(got)) == sha256(data)
    up = os.urandom(700_001)
    ftp.storbinary("STOR up.bin", io.BytesIO(up))
    assert file_sha256(ftps.root / "up.bin") == sha256(up)
    assert sorted(ftp.nlst()) == ["f.bin", "up.bin"]
    ftp.quit()


def test_ftplib_tls_plain_stdlib(ftps):
    """Stock ftplib.FTP_TLS (no session reuse on data connections): the server's documented
    reuse requirement must produce a clean refusal (522/425/426), never a hang or a crash."""
    write_random(ftps.root / "f.bin", 1000)
    ftp = ftplib.FTP_TLS(context=tls_context(ftps.cacert), timeout=10)
    ftp.connect(ftps.host, ftps.port)
    ftp.login(ftps.user, ftps.password)
    ftp.prot_p()
    try:
        got = []
        ftp.retrbinary("RETR f.bin", got.append)
        assert len(b"".join(got)) == 1000
    except (ftplib.error_temp, ftplib.error_perm, ssl.SSLError, OSError) as e:
        msg = str(e)
        assert msg[:3] in ("522", "425", "426") or isinstance(e, (ssl.SSLError, OSError)), msg
    ftp.close()


def curl_tls(server, *args, timeout=90):
    base = [tool("curl"), "-sS", "--max-time", "60", "--ssl-reqd", "--cacert", str(server.cacert),
            "--user", f"{server.user}:{server.password}"]
    return run(base + list(args), timeout=timeout)


def test_curl_ftps_download_and_list(ftps, tmp_path):
    data = write_random(ftps.root / "dl.bin", 2_000_000)
    url = f"ftp://127.0.0.1:{ftps.port}"
    out = tmp_path / "o"
    cp = curl_tls(ftps, f"{url}/dl.bin", "-o", str(out))
    assert cp.returncode == 0, cp.stderr
    assert file_sha256(out) == sha256(data)
    cp = curl_tls(ftps, "--list-only", f"{url}/")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().split() == ["dl.bin"]


@pytest.mark.parametrize("tls", ["default", "tls1.2"])
def test_curl_ftps_upload(ftps, tmp_path, tls):
    """curl uploads never read the data connection; with TLS 1.3 the server must not leave unread
    records there (e.g. post-handshake NewSessionTicket messages) or curl's close becomes a TCP
    RST and the upload is cut (426). Six uploads so an intermittent failure shows."""
    url = f"ftp://127.0.0.1:{ftps.port}"
    extra = ["--tls-max", "1.2"] if tls == "tls1.2" else []
    results = []
    for i in range(6):
        src = tmp_path / f"s{i}"
        up = write_random(src, 1_500_000)
        cp = curl_tls(ftps, *extra, "-T", str(src), f"{url}/up{i}.bin")
        ok = cp.returncode == 0 and file_sha256(ftps.root / f"up{i}.bin") == sha256(up)
        results.append(ok or cp.stderr.decode(errors="replace").strip())
    assert results == [True] * 6, results


@pytest.mark.parametrize("tls", ["tls1.3", "tls1.2"])
def test_curl_ftps_many_downloads_in_one_session(ftps, tmp_path, tls):
    """curl fetching several files on one control connection: each data connection resumes the
    session of the one before, and curl (OpenSSL) resumes a TLS 1.3 session only once, so every
    download's data connection must bring a fresh ticket. Without it every second file was
    refused (522) and curl reported 'transfer closed with 4096 bytes remaining to read'."""
    files = {f"m{i:02d}": write_random(ftps.root / f"m{i:02d}", 4096 + i) for i in range(12)}
    version = ["--tlsv1.3"] if tls == "tls1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
    out = tmp_path / "out"
    out.mkdir()
    cp = curl_tls(ftps, *version, f"ftp://127.0.0.1:{ftps.port}/m[00-11]", "-o", str(out / "#1"))
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    got = {name: file_sha256(out / name[1:]) for name in files}
    assert got == {name: sha256(data) for name, data in files.items()}
    assert "did not resume" not in ftps.stderr_text()


def test_lftp_ftps_mirror(ftps, tmp_path):
    expected = make_tree(ftps.root / "src", nfiles=30, max_size=20_000)
    dest = tmp_path / "dest"
    dest.mkdir()
    script = "; ".join(
        [
            "set net:max-retries 1",
            "set net:timeout 10",
            "set ftp:ssl-force yes",
            "set ftp:ssl-protect-data yes",
            f"set ssl:ca-file {ftps.cacert}",
            f"open -u {ftps.user},{ftps.password} ftp://127.0.0.1:{ftps.port}",
            f'mirror /src "{dest}/src"',
            f'mirror -R "{dest}/src" /back',
        ]
    )
    cp = run([tool("lftp"), "-c", script], timeout=120)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")[-3000:]
    assert tree_digest(dest / "src")[0] == expected
    assert tree_digest(ftps.root / "back")[0] == expected


def test_many_protected_transfers_lftp(ftps, tmp_path):
    """lftp (and ReusingFTP_TLS) resume the control connection's TLS session on every data
    connection: that must keep working for the whole session, not for a fixed number of them."""
    n = 40
    for i in range(n):
        (ftps.root / f"g{i}").write_bytes(os.urandom(100) + bytes([i]))
    gets = "; ".join(f"get g{i} -o {tmp_path}/l{i}" for i in range(n))
    script = (
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; "
        f"set ssl:ca-file {ftps.cacert}; open -u {ftps.user},{ftps.password} ftp://127.0.0.1:{ftps.port}; {gets}"
    )
    cp = run([tool("lftp"), "-c", script], timeout=120)
    got = [i for i in range(n) if (tmp_path / f"l{i}").exists()]
    assert got == list(range(n)), f"lftp got {len(got)}/{n}: {cp.stderr.decode(errors='replace')[:400]}"


def test_many_protected_transfers_ftplib(ftps):
    n = 40
    for i in range(n):
        (ftps.root / f"g{i}").write_bytes(os.urandom(100) + bytes([i]))
    ftp = ReusingFTP_TLS(context=tls_context(ftps.cacert), timeout=10)
    ftp.connect(ftps.host, ftps.port)
    ftp.login(ftps.user, ftps.password)
    ftp.prot_p()
    done = 0
    try:
        for i in range(n):
            chunks = []
            ftp.retrbinary(f"RETR g{i}", chunks.append)
            assert b"".join(chunks) == (ftps.root / f"g{i}").read_bytes()
            done += 1
    except (ftplib.Error, ssl.SSLError, OSError) as e:
        raise AssertionError(f"ftplib: protected transfer {done + 1} of {n} failed: {e!r}")
    finally:
        ftp.close()


def test_policy_required_refuses_plaintext_login(ferry_factory, cert):
    c, k = cert
    server = ferry_factory(["--tls-cert", str(c), "--tls-key", str(k), "--tls-policy", "required"])
    r = Raw(server.host, server.port)
    r.expect(220)
    code_, text = r.cmd(f"USER {server.user}")
    assert code_ in (530, 534, 521), text
    r.close()
    # and a TLS client still gets in
    ftp = ReusingFTP_TLS(context=tls_context(c), timeout=10)
    ftp.connect(server.host, server.port)
    ftp.login(server.user, server.password)
    ftp.prot_p()
    assert ftp.nlst() == []
    ftp.quit()


def test_auth_tls_without_certificate(ferry, tmp_path):
    """No certificate configured: AUTH TLS is refused (RFC 4217: 431/500/502/504), and lftp with its
    default settings (it tries AUTH TLS first) falls back to plaintext and works."""
    r = Raw(ferry.host, ferry.port)
    r.expect(220)
    c, text = r.cmd("AUTH TLS")
    assert c in (431, 500, 502, 504, 534), text
    r.ok(f"USER {ferry.user}", 331)
    r.close()
    data = write_random(ferry.root / "f.bin", 5000)
    out = tmp_path / "o"
    cp = run(
        [tool("lftp"), "-c", f"set net:max-retries 1; set net:timeout 10; open -u {ferry.user},{ferry.password} "
         f"ftp://127.0.0.1:{ferry.port}; get f.bin -o {out}"],
        timeout=60,
    )
    assert cp.returncode == 0, cp.stderr
    assert out.read_bytes() == data


# ---------------------------------------------------------------- rclone (Go's TLS client)
#
# Go's TLS client resumes TLS 1.2 sessions only with session tickets (RFC 5077), never by session
# ID; rclone's `disable_tls13` (a common workaround setting) makes every data connection depend on
# a TLS 1.2 ticket issued on the control connection.


@pytest.fixture
def ftps_implicit(ferry_factory, cert):
    c, k = cert
    server = ferry_factory(["--tls-cert", str(c), "--tls-key", str(k), "--implicit-tls-listen", "127.0.0.1:0"])
    server.cacert = c
    line = wait_for(lambda: next((l for l in server.stdout_lines if l.startswith("listening (implicit FTPS) on ")), None))
    assert line, server.stdout_lines
    server.implicit_port = int(line.rsplit(":", 1)[1])
    return server


def rclone(server, tmp_path, *args, port=None, explicit=True, tls13=True, timeout=120):
    """Runs rclone against an on-the-fly FTP remote `:ftp,...:` for the server (no config file)."""
    obscured = run([tool("rclone"), "obscure", server.password]).stdout.decode().strip()
    opts = [
        "host=127.0.0.1",
        f"port={port or server.port}",
        f"user={server.user}",
        f"pass={obscured}",
        "explicit_tls=true" if explicit else "tls=true",
        "no_check_certificate=true",
    ]
    if not tls13:
        opts.append("disable_tls13=true")
    remote = ":ftp," + ",".join(opts) + ":"
    conf = tmp_path / "rclone.conf"
    conf.touch()
    argv = [tool("rclone"), "--config", str(conf), "--low-level-retries", "1", "--retries", "1"]
    argv += [a.replace("REMOTE:", remote) for a in args]
    return run(argv, timeout=timeout)


@pytest.mark.parametrize("mode", ["explicit-tls1.2", "implicit-tls1.2", "explicit-tls1.3"])
def test_rclone_lists_downloads_and_uploads(ftps_implicit, tmp_path, mode):
    server = ftps_implicit
    explicit = mode.startswith("explicit")
    kw = dict(explicit=explicit, tls13=mode.endswith("1.3"), port=None if explicit else server.implicit_port)
    data = write_random(server.root / "dl.bin", 1_500_000)
    cp = rclone(server, tmp_path, "lsf", "REMOTE:", **kw)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert cp.stdout.decode().split() == ["dl.bin"]
    out = tmp_path / "got.bin"
    cp = rclone(server, tmp_path, "copyto", "REMOTE:dl.bin", str(out), **kw)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert file_sha256(out) == sha256(data)
    src = tmp_path / "up.bin"
    up = write_random(src, 1_200_000)
    cp = rclone(server, tmp_path, "copyto", str(src), "REMOTE:sub/up.bin", **kw)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    assert file_sha256(server.root / "sub" / "up.bin") == sha256(up)
    assert "refused a protected data connection" not in server.stderr_text()


# ---------------------------------------------------------------- aioftp (TLS before the command)
#
# aioftp opens the data connection and completes its TLS handshake before it sends LIST/RETR/STOR;
# most clients send the command first and start TLS after the 150. The server must serve both.


def aioftp_session(server, actions):
    import asyncio

    import aioftp

    async def main():
        ctx = tls_context(server.cacert)
        ctx.check_hostname = False
        client = aioftp.Client(socket_timeout=20)
        await client.connect("127.0.0.1", server.port)
        await client.upgrade_to_tls(ctx)
        await client.login(server.user, server.password)
        try:
            return await actions(client)
        finally:
            await client.quit()

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_aioftp_lists_downloads_and_uploads_over_tls(ftps, tmp_path):
    data = write_random(ftps.root / "dl.bin", 1_000_000)
    local_up = tmp_path / "up.bin"
    up = write_random(local_up, 700_000)

    async def actions(client):
        names = sorted(str(p) for p, _ in await client.list())
        await client.download("dl.bin", tmp_path / "got.bin", write_into=True)
        await client.upload(local_up, "up.bin", write_into=True)
        return names

    assert aioftp_session(ftps, actions) == ["dl.bin"]
    assert file_sha256(tmp_path / "got.bin") == sha256(data)
    assert file_sha256(ftps.root / "up.bin") == sha256(up)
