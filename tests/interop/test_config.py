"""`ferry serve --config FILE` and `--users FILE` (made with `ferry user add`), seen from a client."""

from __future__ import annotations

import ftplib
import os
import subprocess

from conftest import FERRY_BIN
from interop_util import Raw, code, free_port_range, parse_227, reply, retr_bytes, run, stor_bytes, write_random


def test_config_file(ferry_factory, tmp_path):
    low, high = free_port_range(4)
    cfg = tmp_path / "ferry.toml"
    cfg.write_text(
        f"""
listen = ["127.0.0.1:0"]
anonymous = true
banner = "Welcome to the interop config test."
fsync = false

[passive]
ports = "{low}-{high}"

[limits]
idle_timeout_secs = 2
max_sessions_per_ip = 5
"""
    )
    server = ferry_factory(["--config", str(cfg)], listen=[], expect_listeners=1)
    data = write_random(server.root / "pub.bin", 5000)
    r = Raw(server.host, server.port)
    assert r.expect(220) == "220 Welcome to the interop config test."
    r.ok("USER anonymous", 331)
    r.ok("PASS x@example.com", 230)
    _, port = parse_227(r.ok("PASV", 227))
    assert low <= port <= high
    got = r.read_reply(timeout=10)  # idle_timeout_secs = 2
    assert got is not None and got[0] == 421, got
    r.close()
    ftp = ftplib.FTP(timeout=10)
    ftp.connect(server.host, server.port)
    ftp.login(server.user, server.password)
    assert retr_bytes(ftp, "pub.bin") == data
    ftp.quit()


def test_config_flags_override_file(ferry_factory, tmp_path):
    cfg = tmp_path / "ferry.toml"
    cfg.write_text('banner = "From the file."\n[limits]\nidle_timeout_secs = 1\n')
    server = ferry_factory(["--config", str(cfg), "--idle-timeout", "30"])
    r = Raw(server.host, server.port)
    assert r.expect(220) == "220 From the file."
    r.login(server.user, server.password)
    import time

    time.sleep(2.5)  # longer than the file's 1 s, shorter than the flag's 30 s
    r.ok("NOOP", 200)
    r.close()


def test_config_unknown_key_fails_startup(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('listen = ["127.0.0.1:0"]\nno_such_setting = 1\n')
    (tmp_path / "root").mkdir()
    cp = run([str(FERRY_BIN), "serve", "--config", str(cfg), "--root", str(tmp_path / "root")], timeout=20, cwd=tmp_path)
    assert cp.returncode != 0
    assert b"no_such_setting" in cp.stderr + cp.stdout, cp.stderr


def _add_user(users, name, password, *extra):
    cp = subprocess.run(
        [str(FERRY_BIN), "user", "add", "--users", str(users), "--password-stdin", *extra, name],
        input=(password + "\n").encode(),
        capture_output=True,
        timeout=60,
    )
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")


def test_users_file_permissions_and_roots(ferry_factory, tmp_path):
    users = tmp_path / "users.toml"
    root = tmp_path / "root"
    (root / "bobhome").mkdir(parents=True)
    _add_user(users, "carol", "carol-pw")  # all permissions, the server's root
    _add_user(users, "bob", "bob-pw", "--perms", "list,read", "--root", str(root / "bobhome"))
    assert b"bob-pw" not in users.read_bytes() and b"carol-pw" not in users.read_bytes()
    server = ferry_factory(["--users", str(users)], user=None, root=root)
    top = write_random(root / "top.bin", 100)
    mine = write_random(root / "bobhome" / "mine.bin", 200)

    carol = ftplib.FTP(timeout=10)
    carol.connect(server.host, server.port)
    carol.login("carol", "carol-pw")
    assert retr_bytes(carol, "top.bin") == top
    stor_bytes(carol, "carol.bin", b"carol")
    assert (root / "carol.bin").read_bytes() == b"carol"
    carol.quit()

    bob = ftplib.FTP(timeout=10)
    bob.connect(server.host, server.port)
    bob.login("bob", "bob-pw")
    assert bob.pwd() == "/"
    assert sorted(bob.nlst()) == ["mine.bin"]  # rooted at bobhome
    assert retr_bytes(bob, "mine.bin") == mine
    bob.sendcmd("PASV")
    assert code(reply(bob, "RETR ../top.bin")) == 550  # never the file above its root
    for cmd in ("DELE mine.bin", "MKD d", "SITE CHMOD 600 mine.bin"):
        assert code(reply(bob, cmd)) == 550, cmd
    try:
        stor_bytes(bob, "x.bin", b"x")
        raise AssertionError("a read-only user stored a file")
    except ftplib.error_perm as e:
        assert code(str(e)) in (550, 553)
    bob.quit()
    assert sorted(os.listdir(root / "bobhome")) == ["mine.bin"]

    wrong = ftplib.FTP(timeout=10)
    wrong.connect(server.host, server.port)
    try:
        wrong.login("bob", "carol-pw")
        raise AssertionError("logged in with another user's password")
    except ftplib.error_perm as e:
        assert code(str(e)) == 530
    wrong.close()
