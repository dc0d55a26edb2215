"""S3 side of the S3 interop tests: what is really in the bucket, seen with `curl --aws-sigv4`.

No SDK: every request is one `curl` subprocess (SigV4-signed by curl, path-style URLs) with a hard
timeout, against the loopback Garage that `scripts/garage-start.sh` starts (or any S3 endpoint given
by S3_ENDPOINT etc.). Also: deterministic large payloads that are generated and hashed as streams.
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from interop_util import file_sha256

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CURL_TIMEOUT = 60.0

# The variables scripts/garage-start.sh exports (and that a caller may set to reuse an endpoint).
S3_ENV_VARS = ("S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass
class S3Env:
    endpoint: str  # http://127.0.0.1:PORT
    region: str
    bucket: str
    access_key: str
    secret_key: str
    garage_pid: int | None = None
    garage_dir: str | None = None
    started_here: bool = False  # started by the test session (and stopped by it)


# Where Ferry keeps digests on S3 (never listed to FTP clients).
FERRY_HIDDEN = ".ferry-upload.digests/"


def parse_exports(text: str) -> dict[str, str]:
    """{VAR: value} from `export VAR=value` lines (shell-quoted as bash's printf %q writes them)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        words = shlex.split(line)
        assert len(words) == 2 and words[0] == "export" and "=" in words[1], f"not an export line: {line!r}"
        name, value = words[1].split("=", 1)
        out[name] = value
    return out


def env_from_environ(environ=os.environ) -> S3Env | None:
    """An S3Env from S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (+ S3_REGION)."""
    need = ("S3_ENDPOINT", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    if not all(environ.get(k) for k in need):
        return None
    pid = environ.get("GARAGE_PID")
    return S3Env(
        endpoint=environ["S3_ENDPOINT"].rstrip("/"),
        region=environ.get("S3_REGION") or "garage",
        bucket=environ["S3_BUCKET"],
        access_key=environ["AWS_ACCESS_KEY_ID"],
        secret_key=environ["AWS_SECRET_ACCESS_KEY"],
        garage_pid=int(pid) if pid and pid.isdigit() else None,
        garage_dir=environ.get("GARAGE_DIR") or None,
    )


def find_garage() -> str | None:
    """$GARAGE_BIN, else `garage` in PATH, else ~/.cargo/bin/garage (where install-garage.sh puts it)."""
    explicit = os.environ.get("GARAGE_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("garage")
    if found:
        return found
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    cand = cargo_home / "bin" / "garage"
    return str(cand) if os.access(cand, os.X_OK) else None


def quote_key(key: str) -> str:
    """A key as an S3 URI path (SigV4 canonical form: UTF-8, %XX for all but unreserved and '/')."""
    return urllib.parse.quote(key, safe="/")


def canonical_query(params: dict[str, str]) -> str:
    """The query string in SigV4 canonical form (sorted, RFC 3986 encoded, `k=` for empty values),
    so the request is the same whatever curl does or does not normalize."""
    items = sorted((urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe="")) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in items)


class S3Error(AssertionError):
    pass


class S3:
    """A few S3 calls (list, multipart list, get, put, delete) through `curl --aws-sigv4`."""

    def __init__(self, env: S3Env):
        self.env = env
        self.curl = shutil.which("curl")
        assert self.curl, "curl is not installed: run scripts/install-test-deps.sh"

    # ------------------------------------------------------------ transport

    def request(
        self,
        method: str,
        key: str = "",
        params: dict[str, str] | None = None,
        body: Path | bytes | None = None,
        ok=(200,),
        timeout: float = CURL_TIMEOUT,
    ) -> tuple[int, bytes]:
        """One signed request on the bucket (key "" = the bucket itself); returns (status, body).

        Raises S3Error when the status is not in `ok` (pass ok=None to accept any)."""
        url = f"{self.env.endpoint}/{self.env.bucket}"
        if key:
            url += "/" + quote_key(key)
        if params:
            url += "?" + canonical_query(params)
        with tempfile.TemporaryDirectory(prefix="s3util-") as td:
            out = Path(td) / "body"
            args = [
                self.curl,
                "-sS",
                "--globoff",
                "--path-as-is",
                "--max-time",
                str(int(timeout)),
                "--aws-sigv4",
                f"aws:amz:{self.env.region}:s3",
                "--user",
                f"{self.env.access_key}:{self.env.secret_key}",
                # HEAD as --head: with -X HEAD, curl would wait for the body that Content-Length announces
                *(["--head"] if method == "HEAD" else ["-X", method]),
                "-o",
                str(out),
                "-w",
                "%{http_code}",
            ]
            if body is not None:
                if isinstance(body, bytes):
                    src = Path(td) / "upload"
                    src.write_bytes(body)
                else:
                    src = body
                args += [
                    "--data-binary",
                    f"@{src}",
                    "-H",
                    "Content-Type: application/octet-stream",
                    "-H",
                    f"x-amz-content-sha256: {file_sha256(src)}",
                ]
            else:
                args += ["-H", f"x-amz-content-sha256: {EMPTY_SHA256}"]
            args.append(url)
            cp = subprocess.run(args, capture_output=True, timeout=timeout + 10)
            status_text = cp.stdout.decode("ascii", "replace").strip()
            status = int(status_text) if status_text.isdigit() else 0
            data = out.read_bytes() if out.exists() else b""
        if cp.returncode != 0 and status == 0:
            raise S3Error(f"curl {method} {url}: exit {cp.returncode}: {cp.stderr.decode(errors='replace')}")
        if ok is not None and status not in ok:
            raise S3Error(f"{method} {url}: HTTP {status}: {data[:2000].decode(errors='replace')}")
        return status, data

    # ------------------------------------------------------------ reads

    def list_objects(self, prefix: str = "", delimiter: str | None = None, hidden: bool = False) -> dict[str, int]:
        """{key: size} for every key under prefix (ListObjectsV2, all pages). With a delimiter, the
        common prefixes are included too, with size -1. Ferry's own hidden objects (the digests it
        keeps under `.ferry-upload.digests/`) only with `hidden`."""
        out: dict[str, int] = {}
        token = None
        while True:
            params = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if delimiter:
                params["delimiter"] = delimiter
            if token:
                params["continuation-token"] = token
            _, body = self.request("GET", params=params)
            root = ET.fromstring(body)
            for c in root.findall(f"{S3_NS}Contents"):
                key = c.findtext(f"{S3_NS}Key") or ""
                if hidden or FERRY_HIDDEN not in key:
                    out[key] = int(c.findtext(f"{S3_NS}Size") or 0)
            for p in root.findall(f"{S3_NS}CommonPrefixes"):
                out[p.findtext(f"{S3_NS}Prefix")] = -1
            if (root.findtext(f"{S3_NS}IsTruncated") or "").lower() != "true":
                return out
            token = root.findtext(f"{S3_NS}NextContinuationToken")
            assert token, "truncated ListObjectsV2 without NextContinuationToken"

    def list_keys(self, prefix: str = "", hidden: bool = False) -> list[str]:
        """Every key under prefix, sorted (raw UTF-8 keys as stored)."""
        return sorted(self.list_objects(prefix, hidden=hidden))

    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """[(key, upload id)] of the multipart uploads in progress under prefix (ListMultipartUploads)."""
        out: list[tuple[str, str]] = []
        key_marker = upload_marker = None
        while True:
            params = {"uploads": "", "prefix": prefix}
            if key_marker:
                params["key-marker"] = key_marker
            if upload_marker:
                params["upload-id-marker"] = upload_marker
            _, body = self.request("GET", params=params)
            root = ET.fromstring(body)
            for u in root.findall(f"{S3_NS}Upload"):
                out.append((u.findtext(f"{S3_NS}Key"), u.findtext(f"{S3_NS}UploadId")))
            if (root.findtext(f"{S3_NS}IsTruncated") or "").lower() != "true":
                return out
            key_marker = root.findtext(f"{S3_NS}NextKeyMarker")
            upload_marker = root.findtext(f"{S3_NS}NextUploadIdMarker")
            assert key_marker or upload_marker, "truncated ListMultipartUploads without markers"

    def exists(self, key: str) -> bool:
        status, _ = self.request("HEAD", key, ok=(200, 404))
        return status == 200

    def get(self, key: str) -> bytes:
        return self.request("GET", key)[1]

    def sha256(self, key: str) -> str:
        """sha256 of an object, streamed through a temporary file (large objects stay off the heap)."""
        with tempfile.TemporaryDirectory(prefix="s3util-") as td:
            out = Path(td) / "obj"
            url = f"{self.env.endpoint}/{self.env.bucket}/{quote_key(key)}"
            cp = subprocess.run(
                [
                    self.curl, "-sS", "--globoff", "--path-as-is", "--fail", "--max-time", "300",
                    "--aws-sigv4", f"aws:amz:{self.env.region}:s3",
                    "--user", f"{self.env.access_key}:{self.env.secret_key}",
                    "-H", f"x-amz-content-sha256: {EMPTY_SHA256}",
                    "-o", str(out), url,
                ],
                capture_output=True,
                timeout=320,
            )  # fmt: skip
            if cp.returncode != 0:
                raise S3Error(f"GET {url}: curl exit {cp.returncode}: {cp.stderr.decode(errors='replace')}")
            return file_sha256(out)

    # ------------------------------------------------------------ writes

    def put(self, key: str, data: bytes | Path) -> None:
        self.request("PUT", key, body=data)

    def delete(self, key: str) -> None:
        self.request("DELETE", key, ok=(200, 204, 404))

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.request("DELETE", key, params={"uploadId": upload_id}, ok=(200, 204, 404))

    def delete_prefix(self, prefix: str) -> None:
        """Deletes every key and aborts every multipart upload under prefix (best-effort cleanup)."""
        assert prefix, "refusing to empty the whole bucket"
        for key, upload_id in self.list_multipart_uploads(prefix):
            self.abort_upload(key, upload_id)
        for key in self.list_keys(prefix):
            self.delete(key)

    def wait_gone(self, key: str, timeout: float = 8.0) -> tuple[bool, list[str], list[tuple[str, str]]]:
        """Polls until neither an object nor a multipart upload exists for key.

        Returns (gone, keys under key's prefix, uploads for key) as last seen."""
        end = time.monotonic() + timeout
        while True:
            keys = [k for k in self.list_keys(key) if k == key]
            uploads = [u for u in self.list_multipart_uploads(key) if u[0] == key]
            if not keys and not uploads:
                return True, keys, uploads
            if time.monotonic() > end:
                return False, keys, uploads
            time.sleep(0.25)


# ---------------------------------------------------------------- deterministic large payloads

BLOCK = 1 << 20


def _block(seed: int, index: int) -> bytes:
    return random.Random(seed * 1_000_003 + index).randbytes(BLOCK)


class Payload:
    """`size` deterministic pseudo-random bytes, generated 1 MiB at a time (never held whole)."""

    def __init__(self, size: int, seed: int = 1):
        self.size = size
        self.seed = seed
        self._sha: str | None = None

    def chunks(self, start: int = 0, end: int | None = None):
        """Yields the bytes [start, end) in pieces of at most 1 MiB."""
        end = self.size if end is None else min(end, self.size)
        pos = start
        while pos < end:
            index, off = divmod(pos, BLOCK)
            piece = _block(self.seed, index)[off : off + (end - pos)]
            yield piece
            pos += len(piece)

    def reader(self, start: int = 0, end: int | None = None) -> PayloadReader:
        return PayloadReader(self.chunks(start, end))

    def sha256(self) -> str:
        if self._sha is None:
            h = hashlib.sha256()
            for c in self.chunks():
                h.update(c)
            self._sha = h.hexdigest()
        return self._sha

    def write_to(self, path: Path, end: int | None = None) -> None:
        with open(path, "wb") as f:
            for c in self.chunks(0, end):
                f.write(c)


class PayloadReader:
    """A file-like read() over a chunk iterator (for ftplib.storbinary)."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""
        self.sent = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        self.sent += len(out)
        return out


class HashSink:
    """A retrbinary callback that hashes and counts what it gets."""

    def __init__(self):
        self.h = hashlib.sha256()
        self.n = 0

    def __call__(self, data: bytes) -> None:
        self.h.update(data)
        self.n += len(data)

    def hexdigest(self) -> str:
        return self.h.hexdigest()
