#!/usr/bin/env bash
# Ferry as an FTP gateway to S3, side by side with `rclone serve ftp` on the same bucket (where the
# installed rclone has it) and with a direct S3 copy by rclone, on one single-node Garage started
# here (docs/performance.md, issue 19).
#
#   bash scripts/bench-s3.sh                 # 1 GiB, 3 rounds (about 3 minutes)
#   SIZE_MIB=64 ROUNDS=1 bash scripts/bench-s3.sh
#
# Every round, in turn: STOR of the file by curl to Ferry and to `rclone serve ftp`, and
# `rclone copyto` straight to S3; then RETR by curl (to /dev/null) from both servers and
# `rclone cat` from S3. Prints every sample, then medians (MiB/s) and the ratios
# Ferry / rclone serve ftp and Ferry / direct. Installs what is missing: garage
# (scripts/install-garage.sh) and rclone (Debian's package, as root); needs curl
# (scripts/install-bench-deps.sh) and builds ferry in release mode if it is not built.
# Everything listens on 127.0.0.1 on ports the kernel picks; everything is stopped at exit.
set -euo pipefail

SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FERRY="${FERRY:-$ROOT/target/release/ferry}"
log() { echo "bench-s3: $*" >&2; }

if ! command -v rclone >/dev/null && [ "$(id -u)" -eq 0 ]; then
    log "installing rclone (Debian's package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y rclone >&2 || { apt-get update >&2 && apt-get install -y rclone >&2; }
fi
if ! command -v garage >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
    bash "$ROOT/scripts/install-garage.sh" >&2
fi
for tool in rclone curl python3; do
    command -v "$tool" >/dev/null || { log "$tool is missing: run scripts/install-bench-deps.sh"; exit 1; }
done
if [ ! -x "$FERRY" ]; then
    log "building ferry (release)"
    cargo build --release -p ferry --manifest-path "$ROOT/Cargo.toml" >&2
fi

WORK="$(mktemp -d /tmp/ferry-bench-s3.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${GARAGE_DIR:-}" ]; then GARAGE_WIPE=1 bash "$ROOT/scripts/garage-stop.sh" "$GARAGE_DIR" >/dev/null 2>&1 || true; fi
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT INT TERM HUP

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listens on port $1"; return 1
}

log "starting Garage"
eval "$(GARAGE_DIR="$WORK/garage" GARAGE_BUCKET=ferry-bench bash "$ROOT/scripts/garage-start.sh")"

SRC="$WORK/src.bin"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$SRC"

# Ferry on the bucket, under the prefix ferry/.
FERRY_PORT="$(free_port)"
cat >"$WORK/ferry.toml" <<EOF
[storage]
kind = "s3"
endpoint = "$S3_ENDPOINT"
region = "$S3_REGION"
bucket = "$S3_BUCKET"
prefix = "ferry"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
EOF
"$FERRY" serve --listen "127.0.0.1:$FERRY_PORT" --root "$WORK/ferry-root" --user bench:bench \
    --passive-ports 46000-46199 --config "$WORK/ferry.toml" >"$WORK/ferry.log" 2>&1 &
PIDS+=($!)

# rclone serve ftp on the same bucket, under rclone/ (no VFS cache: it streams, as Ferry does),
# where this rclone has it: Debian's rclone 1.60 is built without `serve ftp`.
# The endpoint is plain HTTP on loopback: a CA bundle named by the environment only makes
# rclone's AWS SDK fail ("unable to load custom CA bundle").
unset AWS_CA_BUNDLE
export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other RCLONE_CONFIG_G_ENDPOINT="$S3_ENDPOINT" \
    RCLONE_CONFIG_G_REGION="$S3_REGION" RCLONE_CONFIG_G_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    RCLONE_CONFIG_G_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_G_FORCE_PATH_STYLE=true
RCLONE_PORT=""
if rclone serve ftp --help 2>/dev/null | grep -q -- "--passive-port"; then
    RCLONE_PORT="$(free_port)"
    rclone serve ftp "G:$S3_BUCKET/rclone" --addr "127.0.0.1:$RCLONE_PORT" --user bench --pass bench \
        --passive-port 46200-46399 --vfs-cache-mode off >"$WORK/rclone.log" 2>&1 &
    PIDS+=($!)
    wait_port "$RCLONE_PORT"
    rclone mkdir "G:$S3_BUCKET/rclone" 2>/dev/null || true
else
    log "this rclone ($(rclone version | sed -n 1p)) has no 'serve ftp': that column is left out"
fi
wait_port "$FERRY_PORT"
log "ferry $("$FERRY" --version 2>/dev/null | head -n 1), $(rclone version | sed -n 1p), ${SIZE_MIB} MiB, $ROUNDS round(s)"

SAMPLES="$WORK/samples"
: >"$SAMPLES"
timed() { # timed NAME command...: records MiB/s
    local name="$1"; shift
    local t0 t1
    t0="$(date +%s.%N)"
    "$@"
    t1="$(date +%s.%N)"
    python3 -c "print('$name', round($SIZE_MIB / ($t1 - $t0), 1))" | tee -a "$SAMPLES" >&2
}
ftp_url() { echo "ftp://bench:bench@127.0.0.1:$1/$2"; }
check_size() { # check_size OBJECT: the object stored has the source's size
    local got
    got="$(rclone size --json "G:$S3_BUCKET/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')"
    [ "$got" = "$((SIZE_MIB << 20))" ] || { log "$1: $got bytes stored, expected $((SIZE_MIB << 20))"; exit 1; }
}

for round in $(seq "$ROUNDS"); do
    log "round $round"
    sync
    timed stor_ferry curl -sS --fail -T "$SRC" "$(ftp_url "$FERRY_PORT" big.bin)"
    check_size ferry/big.bin
    if [ -n "$RCLONE_PORT" ]; then
        timed stor_rclone_ftp curl -sS --fail -T "$SRC" "$(ftp_url "$RCLONE_PORT" big.bin)"
        check_size rclone/big.bin
    fi
    # --ignore-times: otherwise rclone skips an object of the same size and time (rounds 2, 3).
    rclone deletefile "G:$S3_BUCKET/direct/big.bin" 2>/dev/null || true
    timed stor_direct rclone copyto --ignore-times "$SRC" "G:$S3_BUCKET/direct/big.bin"
    check_size direct/big.bin
    timed retr_ferry curl -sS --fail -o /dev/null "$(ftp_url "$FERRY_PORT" big.bin)"
    if [ -n "$RCLONE_PORT" ]; then
        timed retr_rclone_ftp curl -sS --fail -o /dev/null "$(ftp_url "$RCLONE_PORT" big.bin)"
    fi
    timed retr_direct sh -c "rclone cat 'G:$S3_BUCKET/direct/big.bin' >/dev/null"
done

python3 - "$SAMPLES" <<'EOF'
import statistics, sys
s = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    s.setdefault(k, []).append(float(v))
med = {k: statistics.median(v) for k, v in s.items()}
cell = lambda v: f"{v:.0f}" if v is not None else "-"
ratio = lambda a, b: f"{a / b:.2f}x" if a is not None and b else "-"
print(f"{'MiB/s (median)':<16}{'ferry':>10}{'rclone ftp':>12}{'direct':>10}{'F/rclone ftp':>14}{'F/direct':>10}")
for op in ("stor", "retr"):
    f, r, d = (med.get(f"{op}_{w}") for w in ("ferry", "rclone_ftp", "direct"))
    print(f"{op.upper():<16}{cell(f):>10}{cell(r):>12}{cell(d):>10}{ratio(f, r):>14}{ratio(f, d):>10}")
print("targets: Ferry >= 1.5x rclone serve ftp and >= 0.9x the direct copy")
EOF
