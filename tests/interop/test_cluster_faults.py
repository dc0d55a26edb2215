"""Faults of the cluster itself: a three-node Garage (replication factor 3) and two Ferry nodes,
both behind a real HAProxy, with real clients (curl, lftp) moving real bytes while parts of the
cluster are stopped.

    client 127.0.0.1 --> HAProxy 127.0.0.40:CTL (FTP, tcp) --> ferry node1 127.0.0.41:P1
                                                           --> ferry node2 127.0.0.42:P2
    ferry nodes      --> HAProxy 127.0.0.40:S3  (S3, tcp)  --> garage 1, 2, 3 (loopback ports)

Each node has its own passive port range, which HAProxy forwards as it is (the set-up of
docs/deployment.md, without the PROXY protocol). HAProxy health-checks every server every 300 ms and re-dispatches a
connection whose server refuses it.

What is measured (printed, and recorded in docs/s3.md): transfers in flight when the fault hits,
how many completed byte-exact, how long they took, and how long a client took to resume through
the surviving Ferry node.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import s3_storage_toml
from interop_util import file_sha256
from test_haproxy import find_haproxy, free_ranges

MiB = 1 << 20
FRONT = "127.0.0.40"
NODE_IPS = ("127.0.0.41", "127.0.0.42")
RATE = "8M"  # client-side rate limit: the transfers last long enough for a fault to hit them
SIZE = 40 * MiB
PASSIVE_PORTS = 6  # per node


def haproxy_cfg(ctl: int, s3: int, nodes: list[tuple[str, int, int]], garage: list[str], balance_ftp: str) -> str:
    garage_servers = "\n".join(
        f"    server g{i + 1} {ep.removeprefix('http://')} check inter 300ms fall 1 rise 2"
        for i, ep in enumerate(garage)
    )
    ferry_servers = "\n".join(
        f"    server n{i + 1} {ip}:{port} check inter 300ms fall 1 rise 2" for i, (ip, port, _) in enumerate(nodes)
    )
    # Each node's passive ports, forwarded as they are (the node announces HAProxy's address).
    passive = "\n".join(
        f"listen pasv{i + 1}\n    bind {FRONT}:{lo}-{lo + PASSIVE_PORTS - 1}\n    server n{i + 1} {ip}\n"
        for i, (ip, _, lo) in enumerate(nodes)
    )
    return f"""global
    maxconn 500

defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch

listen ftp
    bind {FRONT}:{ctl}
    balance {balance_ftp}
{ferry_servers}

listen s3
    bind {FRONT}:{s3}
    balance roundrobin
{garage_servers}

{passive}"""


@dataclass
class Rig:
    haproxy: subprocess.Popen
    ctl: int
    s3_port: int
    ports: list[int]
    passive: list[int]  # each node's first passive port
    prefix: str
    cfg_dir: Path
    nodes: list  # FerryServer, or None for a node that is down

    def url(self, name: str) -> str:
        return f"ftp://alice:s3cret-pw@{FRONT}:{self.ctl}/{name}"

    def ferry_toml(self, cluster, abandoned_secs: int) -> str:
        env = cluster.env(1)
        env = type(env)(f"http://{FRONT}:{self.s3_port}", env.region, env.bucket, env.access_key, env.secret_key)
        return s3_storage_toml(env, self.prefix) + f"part_size_mib = 5\nabandoned_upload_secs = {abandoned_secs}\n"

    def passive_toml(self, i: int) -> str:
        lo = self.passive[i]
        return f'\n[passive]\nports = "{lo}-{lo + PASSIVE_PORTS - 1}"\naddress = "{FRONT}"\n'



def wait_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    import socket

    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise AssertionError(f"nothing accepts on {host}:{port}") from None
            time.sleep(0.05)


@pytest.fixture
def rig_factory(garage_cluster, ferry_factory, tmp_path):
    """rig_factory(balance_ftp, abandoned_secs): HAProxy + two Ferry nodes on a fresh prefix."""
    binary = find_haproxy()
    if binary is None:
        pytest.fail("haproxy is not installed: run `bash scripts/install-test-deps.sh`", pytrace=False)
    procs: list[subprocess.Popen] = []

    def start_node(rig: Rig, i: int, abandoned_secs: int):
        cfg = rig.cfg_dir / f"node{i + 1}-{time.monotonic_ns()}.toml"
        cfg.write_text(rig.ferry_toml(garage_cluster, abandoned_secs) + rig.passive_toml(i), encoding="utf-8")
        node = ferry_factory(
            ["--config", str(cfg)], listen=[f"{NODE_IPS[i]}:{rig.ports[i]}"], name=f"node{i + 1}-{len(procs)}"
        )
        rig.nodes[i] = node
        return node

    def factory(balance_ftp: str = "roundrobin", abandoned_secs: int = 86400) -> Rig:
        ctl, s3_port, p1, p2, lo1, lo2 = free_ranges(
            [1, 1, 1, 1, PASSIVE_PORTS, PASSIVE_PORTS],
            [[FRONT], [FRONT], [NODE_IPS[0]], [NODE_IPS[1]], [FRONT, NODE_IPS[0]], [FRONT, NODE_IPS[1]]],
        )
        prefix = f"faults-{os.getpid()}-{time.monotonic_ns()}/"
        cfg = tmp_path / "haproxy-faults.cfg"
        cfg.write_text(
            haproxy_cfg(ctl, s3_port, list(zip(NODE_IPS, (p1, p2), (lo1, lo2))), garage_cluster.endpoints, balance_ftp),
            encoding="utf-8",
        )
        log = open(tmp_path / "haproxy-faults.log", "wb")
        proc = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        procs.append(proc)
        wait_tcp(FRONT, s3_port)
        rig = Rig(proc, ctl, s3_port, [p1, p2], [lo1, lo2], prefix, tmp_path, [None, None])
        for i in range(2):
            start_node(rig, i, abandoned_secs)
        wait_tcp(FRONT, ctl)
        return rig

    factory.start_node = start_node
    yield factory
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)


def curl(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["curl", "-sS", "--ftp-pasv", "--connect-timeout", "10", "--max-time", "120", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def random_file(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return file_sha256(path)


def test_garage_node_stopped_during_uploads_and_downloads(garage_cluster, rig_factory, tmp_path):
    """Stop one of three Garage nodes while two uploads and two downloads run through two Ferry
    nodes: every transfer finishes, every byte is right, no multipart upload is left over."""
    rig = rig_factory()
    s3 = garage_cluster.s3(1)
    sources = {}
    for name in ("down-a.bin", "down-b.bin", "up-a.bin", "up-b.bin"):
        sources[name] = tmp_path / name
        random_file(sources[name], SIZE)
    for name in ("down-a.bin", "down-b.bin"):  # the files to download, stored first
        cp = subprocess.run(["curl", "-sS", "-T", str(sources[name]), rig.url(name)], capture_output=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
    jobs = {}
    started = time.monotonic()
    for name in ("up-a.bin", "up-b.bin"):
        jobs[name] = curl("--limit-rate", RATE, "-T", str(sources[name]), rig.url(name))
    for name in ("down-a.bin", "down-b.bin"):
        jobs[name] = curl("--limit-rate", RATE, "-o", str(tmp_path / f"got-{name}"), rig.url(name))
    time.sleep(1.5)
    in_flight = [n for n, p in jobs.items() if p.poll() is None]
    assert len(in_flight) == 4, f"transfers over before the fault: {set(jobs) - set(in_flight)}"
    stop_at = time.monotonic()
    garage_cluster.stop_node(2)
    try:
        results = {n: (p.wait(timeout=150), p.stderr.read().decode("utf-8", "replace")) for n, p in jobs.items()}
        elapsed = time.monotonic() - started
    finally:
        garage_cluster.start_node(2)
    failed = {n: err for n, (rc, err) in results.items() if rc != 0}
    assert not failed, f"transfers failed with a Garage node down: {failed}"
    for name in ("down-a.bin", "down-b.bin"):
        assert file_sha256(tmp_path / f"got-{name}") == file_sha256(sources[name]), name
    for name in ("up-a.bin", "up-b.bin"):
        assert s3.sha256(rig.prefix + name) == file_sha256(sources[name]), f"{name} as stored"
    left = s3.list_multipart_uploads(rig.prefix)
    parts = -(-SIZE // (5 * MiB))  # part_size_mib = 5
    for name in ("up-a.bin", "up-b.bin"):
        _, head = s3.request("HEAD", rig.prefix + name)
        etag = re.search(rb'etag: "([0-9a-f]+)-(\d+)"', head, re.I)
        assert etag and int(etag.group(2)) == parts, f"{name}: {parts} parts expected (none twice, none lost): {head!r}"
    # After an outage Garage may go on listing uploads that completed (a stale index entry on the
    # node that was down): each upload still listed must be such a ghost, which AbortMultipartUpload
    # does not know (404 NoSuchUpload). A real upload left behind would answer 204.
    ghosts = s3.list_multipart_uploads(rig.prefix)
    for key, upload_id in ghosts:
        status, body = s3.request("DELETE", key, params={"uploadId": upload_id}, ok=None)
        assert status == 404 and b"NoSuchUpload" in body, f"a multipart upload of {key} was left behind: {status}"
    print(
        f"FIGURES garage-node-down: in_flight={len(in_flight)} completed={len(results)} "
        f"stop_after_s={stop_at - started:.1f} all_done_s={elapsed:.1f} size_mib={SIZE // MiB} rate={RATE} "
        f"retries={sum(n.stderr_text().count('will retry') for n in rig.nodes)} listed_ghosts={len(ghosts)}"
    )


def lftp_put(rig: Rig, source: Path, name: str) -> subprocess.Popen:
    script = (
        f"set net:limit-rate {RATE.replace('M', '000000')}; set net:max-retries 20; "
        "set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; set net:timeout 5; "
        f"set ftp:passive-mode yes; open -u alice,s3cret-pw ftp://{FRONT}:{rig.ctl}; "
        f"put -c {source} -o {name}; bye"
    )
    return subprocess.Popen(
        ["lftp", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_ferry_node_killed_mid_upload_resumes_elsewhere_and_restart_leaves_no_orphans(
    garage_cluster, rig_factory, tmp_path
):
    """SIGKILL the Ferry node serving an lftp upload: lftp reconnects through HAProxy to the other
    node and finishes; the object is byte-exact. The killed node's multipart upload is left on S3;
    after a restart of everything (Garage and Ferry), the nodes' sweep aborts it."""
    if shutil.which("lftp") is None:
        pytest.fail("lftp is not installed: run `bash scripts/install-test-deps.sh`", pytrace=False)
    rig = rig_factory(balance_ftp="first")  # every session goes to node 1 while it is up
    s3 = garage_cluster.s3(1)
    source = tmp_path / "big.bin"
    digest = random_file(source, SIZE)
    lost_source = tmp_path / "lost.bin"
    random_file(lost_source, SIZE)
    job = lftp_put(rig, source, "big.bin")
    # A second upload on node 1 whose client does not retry: its multipart upload is orphaned.
    lost = curl("--limit-rate", RATE, "-T", str(lost_source), rig.url("lost.bin"))
    node1, node2 = rig.nodes
    keys = {rig.prefix + "big.bin", rig.prefix + "lost.bin"}
    deadline = time.monotonic() + 20
    while {k for k, _ in s3.list_multipart_uploads(rig.prefix)} != keys:
        assert time.monotonic() < deadline, "the two multipart uploads did not begin"
        assert job.poll() is None and lost.poll() is None, job.stdout.read()
        time.sleep(0.1)
    time.sleep(1.0)
    assert job.poll() is None and lost.poll() is None, "an upload ended before the fault"
    assert "logged in" in node1.stderr_text() and "logged in" not in node2.stderr_text()
    node1.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    node1.proc.wait(timeout=10)
    resumed = None
    while job.poll() is None:
        if resumed is None and "logged in" in node2.stderr_text():
            resumed = time.monotonic() - killed
        assert time.monotonic() - killed < 150, "the upload did not finish through node 2"
        time.sleep(0.05)
    done = time.monotonic() - killed
    out = job.stdout.read().decode("utf-8", "replace")
    assert job.returncode == 0, out
    assert resumed is not None, "no session reached node 2"
    assert s3.sha256(rig.prefix + "big.bin") == digest, "the object is not what was uploaded"
    assert lost.wait(timeout=30) != 0, "curl's upload through the killed node cannot have succeeded"
    assert not s3.exists(rig.prefix + "lost.bin"), "a partial upload became an object"
    # Garage drops the killed upload of big.bin once big.bin completes; lost.bin's stays.
    orphans = s3.list_multipart_uploads(rig.prefix)
    assert [k for k, _ in orphans] == [rig.prefix + "lost.bin"], f"expected lost.bin's orphan: {orphans}"
    # What node 2 received: on S3 the killed node's parts are not an object, so lftp's SIZE finds
    # nothing and the whole file goes again (on local storage the bytes written stay and REST goes on).
    sent = [int(m) for m in re.findall(r'verb="STOR" path=/big\.bin bytes=(\d+)', node2.stderr_text())]
    assert sent and sum(sent) <= SIZE, sent
    print(
        f"FIGURES ferry-node-killed: in_flight=2 (1 resumed by lftp, 1 curl without retry) resent_mib={sum(sent) / MiB:.1f} "
        f"resume_s={resumed:.1f} "
        f"done_after_kill_s={done:.1f} size_mib={SIZE // MiB} rate={RATE}"
    )

    # Restart everything: Ferry nodes down, the three Garage nodes down and up, Ferry nodes up
    # again with a short bound, so that their sweep takes the orphan.
    node2.stop()
    for n in (1, 2, 3):
        garage_cluster.stop_node(n)
    threads = [threading.Thread(target=garage_cluster.start_node, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert set(garage_cluster.pids) and all(garage_cluster.pids), f"Garage nodes not all up: {garage_cluster.pids}"
    time.sleep(3)  # the orphan is older than the 2 s bound by now
    restarted = [rig_factory.start_node(rig, i, 2) for i in (0, 1)]
    up = time.monotonic()
    while (left := s3.list_multipart_uploads(rig.prefix)) and time.monotonic() < up + 20:
        time.sleep(0.2)
    assert left == [], f"orphaned multipart uploads after the restart: {left}"
    swept = [n for n in restarted if "aborted abandoned multipart uploads" in n.stderr_text()]
    assert swept, "no node logged its sweep"
    assert s3.sha256(rig.prefix + "big.bin") == digest, "the sweep touched the finished object"
    print(f"FIGURES restart: orphans_before={len(orphans)} orphans_after=0 swept_within_s={time.monotonic() - up:.1f}")
