"""A real HAProxy in front of two Ferry nodes that share one S3 (Garage) bucket prefix.

The haproxy.cfg is the one in docs/deployment.md ("HAProxy configuration"), with its example
addresses and ports replaced by loopback ones (`balance roundrobin` instead of `leastconn`, so that
consecutive connections alternate between the nodes, and a `maxconn` that fits a test machine's
file-descriptor limit). Every party has its own loopback address, so the peer checks mean something:

    client 127.0.0.1 --> HAProxy 127.0.0.20:CTL        --send-proxy-v2, from 127.0.0.30--> node1 127.0.0.21:P1
                                                                                        node2 127.0.0.22:P2
                     --> HAProxy 127.0.0.20:A_LO-A_HI  --> node1 127.0.0.21 (same port)
                     --> HAProxy 127.0.0.20:B_LO-B_HI  --> node2 127.0.0.22 (same port)

Each node announces 127.0.0.20 in its 227 replies, has its own passive range and trusts exactly
127.0.0.30 (HAProxy's `source`). Which node served a session is read from the nodes' logs:
`session{id=N peer=127.0.0.1:<client port> via=127.0.0.30:<port>}`.

HAProxy: `haproxy` in PATH, /usr/sbin/haproxy or $HAPROXY_BIN, run in the foreground (`-db`) per
test and killed at teardown. Missing: the tests FAIL (install it with scripts/install-test-deps.sh)
unless FERRY_SKIP_HAPROXY=1, which skips them. Garage: as for test_s3.py (conftest.py `garage`).
"""

from __future__ import annotations

import ftplib
import io
import os
import random
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from interop_util import Raw, parse_227, parse_229, recv_all, sha256
from s3_util import HashSink, Payload

MiB = 1 << 20
FRONT = "127.0.0.20"  # HAProxy's frontends (the "public" address)
BALANCER = "127.0.0.30"  # HAProxy's source address towards the nodes: what they trust
CLIENT = "127.0.0.1"
THIEF = "127.0.0.9"
NODE_IPS = ("127.0.0.21", "127.0.0.22")
PASSIVE_PORTS = 6  # per node
TIMEOUT = 60.0
DOC = REPO / "docs" / "deployment.md"


# ------------------------------------------------------------------ HAProxy


def find_haproxy() -> str | None:
    explicit = os.environ.get("HAPROXY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for cand in (shutil.which("haproxy"), "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    found = find_haproxy()
    if found is None:
        msg = (
            "haproxy (for test_haproxy.py) is not installed: run `bash scripts/install-test-deps.sh` "
            "(or `make deps`) or set HAPROXY_BIN; FERRY_SKIP_HAPROXY=1 skips these tests instead"
        )
        if os.environ.get("FERRY_SKIP_HAPROXY") == "1":
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)
    return found


def doc_haproxy_cfg() -> str:
    """The haproxy.cfg shown in docs/deployment.md."""
    text = DOC.read_text("utf-8")
    blocks = re.findall(r"^```haproxy\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 1, f"expected one ```haproxy block in {DOC}, found {len(blocks)}"
    return blocks[0]


def loopback_cfg(ctl: int, nodes: list["Node"]) -> str:
    """The documented haproxy.cfg with its example addresses replaced by this test's."""
    a, b = nodes
    subs = [
        # (regex, replacement, occurrences the doc's configuration has)
        (r"\bmaxconn 20000\b", "maxconn 1000", 1),
        (r"\bbalance leastconn\b", "balance roundrobin", 1),
        (r"\bsource 10\.0\.0\.2\b", f"source {BALANCER}", 1),
        (r"\b203\.0\.113\.10:21\b", f"{FRONT}:{ctl}", 1),
        (r"\b203\.0\.113\.10:50000-50999\b", f"{FRONT}:{a.lo}-{a.hi}", 1),
        (r"\b203\.0\.113\.10:51000-51999\b", f"{FRONT}:{b.lo}-{b.hi}", 1),
        (r"\b10\.0\.0\.11:2121\b", f"{a.ip}:{a.port}", 1),
        (r"\b10\.0\.0\.12:2121\b", f"{b.ip}:{b.port}", 1),
        (r"\b10\.0\.0\.11\b", a.ip, 1),
        (r"\b10\.0\.0\.12\b", b.ip, 1),
    ]
    cfg = doc_haproxy_cfg()
    for pattern, repl, count in subs:
        cfg, n = re.subn(pattern, repl, cfg)
        assert n == count, f"docs/deployment.md's haproxy.cfg: expected {count} match(es) of {pattern!r}, found {n}"
    left = re.findall(r"\b(?:203\.0\.113|10\.0\.0)\.\d+\S*", cfg)
    assert not left, f"addresses of docs/deployment.md's haproxy.cfg this test does not map: {left}"
    return cfg


def port_free(ip: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def free_ranges(sizes: list[int], ips: list[list[str]]) -> list[int]:
    """Disjoint runs of consecutive ports, bindable on the given addresses; returns their first
    ports. Below the kernel's ephemeral range, so outgoing connections do not take them meanwhile."""
    rng = random.Random()
    starts: list[int] = []
    used: set[int] = set()
    for size, addrs in zip(sizes, ips):
        for _ in range(500):
            lo = rng.randrange(20000, 32000 - size)
            ports = range(lo, lo + size)
            if used.intersection(ports):
                continue
            if all(port_free(ip, p) for p in ports for ip in addrs):
                starts.append(lo)
                used.update(ports)
                break
        else:
            raise AssertionError(f"no {size} free consecutive ports on {addrs}")
    return starts


@dataclass
class Node:
    name: str
    ip: str
    port: int  # control port (on ip)
    lo: int  # passive range (on ip, and on FRONT at HAProxy)
    hi: int
    site: object  # S3Ferry

    def log(self) -> str:
        return self.site.server.stderr_text()

    def session_lines(self, client_port: int) -> list[str]:
        pat = re.compile(rf"session\{{id=\d+ peer={re.escape(CLIENT)}:{client_port} via={re.escape(BALANCER)}:\d+\}}")
        return [line for line in self.log().splitlines() if pat.search(line)]


@dataclass
class Cluster:
    proc: subprocess.Popen
    cfg: Path
    log_path: Path
    ctl: int
    nodes: list[Node]

    def connect(self, cls=ftplib.FTP) -> ftplib.FTP:
        ftp = cls(timeout=TIMEOUT, encoding="utf-8", source_address=(CLIENT, 0))
        assert ftp.connect(FRONT, self.ctl, timeout=TIMEOUT).startswith("220")
        ftp.login(self.nodes[0].site.user, self.nodes[0].site.password)
        return ftp

    def raw(self) -> Raw:
        r = Raw(FRONT, self.ctl, timeout=TIMEOUT, source=CLIENT)
        r.expect(220)
        r.login(self.nodes[0].site.user, self.nodes[0].site.password)
        return r

    def node_of(self, client_port: int, timeout: float = 5.0) -> Node:
        """The node whose log has the (logged-in) session of the client's control port."""
        end = time.monotonic() + timeout
        while True:
            found = [n for n in self.nodes if any("logged in" in line for line in n.session_lines(client_port))]
            if len(found) == 1:
                return found[0]
            assert len(found) < 2, f"client port {client_port} logged in on both nodes"
            if time.monotonic() > end:
                raise AssertionError(f"no node logged a session from {CLIENT}:{client_port} via {BALANCER}")
            time.sleep(0.05)

    def haproxy_log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


def start_haproxy(binary: str, cfg: Path, log_path: Path, ctl: int) -> subprocess.Popen:
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [binary, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT
        )
    end = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"haproxy exited with {proc.returncode}:\n{log_path.read_text('utf-8', 'replace')[-4000:]}"
            )
        try:
            # Through the balancer to a node, until its greeting: HAProxy has then picked that node
            # (one round-robin turn), so the tests' own connections are not raced by this one.
            with socket.create_connection((FRONT, ctl), timeout=2, source_address=(CLIENT, 0)) as s:
                s.settimeout(5)
                greeting = b""
                while b"\r\n" not in greeting:
                    chunk = s.recv(1024)
                    if not chunk:
                        break
                    greeting += chunk
                if greeting.startswith(b"220 "):
                    return proc
                raise OSError(f"no greeting through haproxy: {greeting!r}")
        except OSError:
            if time.monotonic() > end:
                proc.kill()
                proc.wait(timeout=5)
                raise AssertionError(f"haproxy did not accept on {FRONT}:{ctl} within 10 s")
            time.sleep(0.05)


@pytest.fixture
def cluster(haproxy_bin, s3_ferry_factory, tmp_path, monkeypatch):
    # debug for the accept path: the PROXY headers each node reads (and HAProxy's LOCAL health checks)
    monkeypatch.setenv("RUST_LOG", "info,ferry_server::server=debug")
    ctl, lo_a, lo_b = free_ranges(
        [1, PASSIVE_PORTS, PASSIVE_PORTS], [[FRONT], [FRONT, NODE_IPS[0]], [FRONT, NODE_IPS[1]]]
    )
    nodes: list[Node] = []
    for i, (ip, lo) in enumerate(zip(NODE_IPS, (lo_a, lo_b))):
        hi = lo + PASSIVE_PORTS - 1
        extra = (
            "\n[passive]\n"
            f'ports = "{lo}-{hi}"\n'
            f'address = "{FRONT}"\n'
            "\n[proxy_protocol]\n"
            f'trusted = ["{BALANCER}"]\n'
            "header_timeout_secs = 5\n"
        )
        site = s3_ferry_factory(extra_toml=extra, listen=[f"{ip}:0"], name=f"node{i + 1}")
        assert site.host == ip, site.server.listeners
        nodes.append(Node(f"node{i + 1}", ip, site.port, lo, hi, site))
    assert nodes[0].site.prefix == nodes[1].site.prefix, "both nodes must serve the same bucket prefix"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(loopback_cfg(ctl, nodes), encoding="utf-8")
    log_path = tmp_path / "haproxy.log"
    proc = start_haproxy(haproxy_bin, cfg, log_path, ctl)
    c = Cluster(proc, cfg, log_path, ctl, nodes)
    try:
        yield c
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        print(f"--- {cfg}\n{cfg.read_text('utf-8')}\n--- haproxy log (tail)\n{c.haproxy_log()[-6000:]}")


class EpsvFTP(ftplib.FTP):
    """ftplib with EPSV on IPv4 too (stock ftplib sends PASV there)."""

    def makepasv(self):
        return ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())


def client_port(ftp: ftplib.FTP) -> int:
    return ftp.sock.getsockname()[1]


# ------------------------------------------------------------------ tests


def test_sessions_reach_both_nodes_as_the_client(cluster):
    """PASV and EPSV sessions through HAProxy land on both nodes; each node sees 127.0.0.1."""
    a, b = cluster.nodes
    served: dict[str, list[int]] = {a.name: [], b.name: []}
    uploaded: dict[str, bytes] = {}
    for i in range(4):
        mode = "pasv" if i % 2 == 0 else "epsv"
        ftp = cluster.connect(ftplib.FTP if mode == "pasv" else EpsvFTP)
        port = client_port(ftp)
        node = cluster.node_of(port)
        served[node.name].append(port)
        ftp.voidcmd("TYPE I")
        # the data port the node announces is its own range, at the balancer's address
        if mode == "pasv":
            host, dport = parse_227(ftp.sendcmd("PASV"))
            assert host == FRONT, f"227 announces {host}, not the balancer"
        else:
            dport = parse_229(ftp.sendcmd("EPSV"))
        assert node.lo <= dport <= node.hi, f"{node.name} announced {dport}, outside {node.lo}-{node.hi}"
        stat = ftp.sendcmd("STAT")
        assert f"Connected from {CLIENT}" in stat, stat
        # transfers and listings over data connections relayed by HAProxy's passive frontends
        data = os.urandom(300_000 + i)
        name = f"{mode}-{i}.bin"
        assert ftp.storbinary(f"STOR {name}", io.BytesIO(data)).startswith("226")
        uploaded[name] = data
        assert set(ftp.nlst()) == set(uploaded), "one bucket prefix: every upload is seen by every node"
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert sorted(line.rsplit(" ", 1)[-1] for line in lines) == sorted(uploaded), lines
        assert {n for n, _ in ftp.mlsd()} >= set(uploaded)
        for other, blob in uploaded.items():  # including files uploaded through the other node
            chunks: list[bytes] = []
            ftp.retrbinary(f"RETR {other}", chunks.append)
            assert sha256(b"".join(chunks)) == sha256(blob), f"{other} through {node.name}"
        assert ftp.quit().startswith("221")
        lines = node.session_lines(port)
        assert any(f'verb="STOR" path=/{name}' in line for line in lines), "\n".join(lines)
    assert served[a.name] and served[b.name], f"round robin did not reach both nodes: {served}"
    assert len(served[a.name]) == len(served[b.name]) == 2, served
    for n in cluster.nodes:
        log = n.log()
        sessions = re.findall(r"session\{id=\d+ peer=([0-9.]+):\d+ via=([0-9.]+):\d+\}", log)
        assert sessions, log
        assert all(peer == CLIENT and via == BALANCER for peer, via in sessions), sorted(set(sessions))
        assert not re.search(rf"\bpeer={re.escape(BALANCER)}", log), "the balancer appears as a peer"
        assert "refused" not in log, log
    # HAProxy's `check` on a send-proxy-v2 server sends a PROXY LOCAL header (2.2+): closed, not a session
    end = time.monotonic() + 6  # default check interval: 2 s
    while not all("PROXY LOCAL" in n.log() for n in cluster.nodes) and time.monotonic() < end:
        time.sleep(0.1)
    for n in cluster.nodes:
        assert "PROXY LOCAL" in n.log(), f"{n.name} saw no LOCAL health check:\n{n.log()[-3000:]}"
    assert "DOWN" not in cluster.haproxy_log(), cluster.haproxy_log()


@pytest.mark.parametrize("resume", ["rest-stor", "appe"])
def test_upload_resumed_through_the_other_node(cluster, resume):
    """Part of an upload through one node, the rest through the other (round robin), read back."""
    site = cluster.nodes[0].site
    p = Payload(40 * MiB + 777, seed=11)
    first = 17 * MiB + 3
    f1 = cluster.connect()
    f1.voidcmd("TYPE I")
    assert f1.storbinary("STOR shared.bin", p.reader(0, first), blocksize=MiB).startswith("226")
    f2 = cluster.connect()
    n1, n2 = cluster.node_of(client_port(f1)), cluster.node_of(client_port(f2))
    assert n1 is not n2, f"both connections went to {n1.name}: round robin should alternate"
    f2.voidcmd("TYPE I")
    assert f2.sendcmd("SIZE shared.bin") == f"213 {first}"
    if resume == "rest-stor":
        resp = f2.storbinary("STOR shared.bin", p.reader(first), blocksize=MiB, rest=first)
    else:
        resp = f2.storbinary("APPE shared.bin", p.reader(first), blocksize=MiB)
    assert resp.startswith("226"), resp
    verb = "STOR" if resume == "rest-stor" else "APPE"
    assert any(f'verb="{verb}" path=/shared.bin' in line for line in n2.session_lines(client_port(f2)))
    f3 = cluster.connect()
    n3 = cluster.node_of(client_port(f3))
    assert n3 is n1, "the third connection should be back on the first node"
    f3.voidcmd("TYPE I")
    assert f3.sendcmd("SIZE shared.bin") == f"213 {p.size}"
    sink = HashSink()
    f3.retrbinary("RETR shared.bin", sink, blocksize=MiB)
    assert sink.n == p.size and sink.hexdigest() == p.sha256(), f"{resume}: not byte-exact"
    for f in (f1, f2, f3):
        f.quit()
    assert site.s3.list_objects(site.prefix) == {site.key("shared.bin"): p.size}
    assert site.s3.list_multipart_uploads(site.prefix) == []


def eof_without_data(sock: socket.socket, timeout: float = 10.0) -> bytes | None:
    """Reads until the peer closes: the bytes received (b"" when none), or None if still open."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got
    except socket.timeout:
        return None


@pytest.mark.parametrize("cmd,when", [("RETR", "after"), ("RETR", "before"), ("STOR", "after")])
def test_data_port_thief_through_haproxy_is_refused(cluster, cmd, when):
    """A data connection relayed by HAProxy for another client address is closed, the client's works."""
    site = cluster.nodes[0].site
    secret = os.urandom(500_000)
    site.s3.put(site.key("secret.bin"), secret)
    r = cluster.raw()
    node = cluster.node_of(r.sock.getsockname()[1])
    r.ok("TYPE I", 200)
    text = r.ok("PASV", 227)
    host, port = parse_227(text)
    assert host == FRONT and node.lo <= port <= node.hi, text
    target = "secret.bin" if cmd == "RETR" else "up.bin"
    thief = socket.socket()
    thief.bind((THIEF, 0))
    thief.settimeout(10)
    if when == "before":
        thief.connect((FRONT, port))
        time.sleep(0.3)  # HAProxy has relayed it to the node's listener before the client comes
        r.send(f"{cmd} {target}\r\n".encode())
    else:
        r.send(f"{cmd} {target}\r\n".encode())
        time.sleep(0.2)
        thief.connect((FRONT, port))
        if cmd == "STOR":
            try:
                thief.sendall(b"injected by the thief" * 1000)
            except OSError:
                pass
    stolen = eof_without_data(thief)
    assert stolen is not None, "the thief's relayed connection was not closed"
    assert stolen == b"", f"{len(stolen)} bytes delivered to {THIEF}"
    thief.close()
    end = time.monotonic() + 5
    while "refused passive data connection" not in node.log() and time.monotonic() < end:
        time.sleep(0.05)
    refusals = [line for line in node.log().splitlines() if "refused passive data connection" in line]
    assert refusals and f"client={THIEF}" in refusals[0] and f"expected={CLIENT}" in refusals[0], refusals
    # the real client, through the same HAProxy frontend, is served
    legit = socket.create_connection((FRONT, port), timeout=TIMEOUT, source_address=(CLIENT, 0))
    if cmd == "RETR":
        got = recv_all(legit, timeout=TIMEOUT)
    else:
        upload = os.urandom(400_000)
        legit.sendall(upload)
    legit.close()
    r.expect((125, 150))
    r.expect(226)
    if cmd == "RETR":
        assert sha256(got) == sha256(secret)
    else:
        assert site.s3.get(site.key("up.bin")) == upload, "the upload holds someone else's bytes"
    r.ok("QUIT", 221)
    r.close()
