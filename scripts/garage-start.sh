#!/usr/bin/env bash
# Start a single-node Garage (S3 engine) on loopback for the S3 tests, and print how to reach it.
#
#   eval "$(bash scripts/garage-start.sh)"      # exports S3_* and AWS_* for this shell
#   ...                                         # run tests against $S3_ENDPOINT / $S3_BUCKET
#   bash scripts/garage-stop.sh "$GARAGE_DIR"   # GARAGE_WIPE=1 also deletes the state directory
#
# stdout carries ONLY `export VAR=value` lines (S3_ENDPOINT, S3_REGION, S3_BUCKET,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GARAGE_PID, GARAGE_DIR); progress goes to stderr.
#
# Environment (all optional):
#   GARAGE_DIR            state directory (config, metadata, data, log, pid); default: a new mktemp -d
#   GARAGE_BIN            the garage binary; default: `garage` in PATH, else ~/.cargo/bin/garage
#   GARAGE_BUCKET         bucket name (default ferry-test)
#   GARAGE_START_TIMEOUT  seconds to wait for the first signed S3 request to succeed (default 30)
#   GARAGE_START_MODE     auto (default: `server --single-node --default-bucket`, falling back to
#                         the quick-start CLI steps if that fails), single-node, or quickstart
#   GARAGE_COMPRESSION    zstd level for data blocks, or none (default none: tests use random data)
#   GARAGE_FRESH=1        wipe the state in GARAGE_DIR first
#
# Ports: three free loopback ports (S3 API, RPC, admin) picked by the kernel (bind to port 0), never
# fixed ones. Re-running with the same GARAGE_DIR while its garage runs prints the same exports again;
# with a stopped garage it restarts it on new ports with the same key and bucket.
set -euo pipefail

# Everything on stdout except the final exports goes to stderr.
exec 3>&1 1>&2

log() { echo "garage-start: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------- binary and tools

if [ -z "${GARAGE_BIN:-}" ]; then
    GARAGE_BIN="$(command -v garage 2>/dev/null || true)"
    if [ -z "$GARAGE_BIN" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
        GARAGE_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
    fi
fi
[ -n "${GARAGE_BIN:-}" ] && [ -x "$GARAGE_BIN" ] ||
    die "garage not found (PATH, ~/.cargo/bin, GARAGE_BIN); run scripts/install-garage.sh"
log "using $GARAGE_BIN ($("$GARAGE_BIN" --version 2>/dev/null || echo 'no --version'))"
command -v curl >/dev/null 2>&1 || die "curl not found; run scripts/install-test-deps.sh"
command -v python3 >/dev/null 2>&1 || die "python3 not found (used to pick free ports)"

BUCKET="${GARAGE_BUCKET:-ferry-test}"
TIMEOUT="${GARAGE_START_TIMEOUT:-30}"
MODE="${GARAGE_START_MODE:-auto}"
COMPRESSION="${GARAGE_COMPRESSION:-none}"
case "$MODE" in auto | single-node | quickstart) ;; *) die "GARAGE_START_MODE must be auto, single-node or quickstart" ;; esac
case "$COMPRESSION" in none) COMPRESSION_TOML='"none"' ;; *[!0-9-]* | '') die "GARAGE_COMPRESSION must be a number or none" ;; *) COMPRESSION_TOML="$COMPRESSION" ;; esac

# ---------------------------------------------------------------- state directory

if [ -z "${GARAGE_DIR:-}" ]; then
    GARAGE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ferry-garage.XXXXXXXX")"
    log "state directory $GARAGE_DIR (new)"
else
    mkdir -p "$GARAGE_DIR"
    log "state directory $GARAGE_DIR"
fi
GARAGE_DIR="$(cd "$GARAGE_DIR" && pwd -P)"
chmod 700 "$GARAGE_DIR"
CONFIG="$GARAGE_DIR/garage.toml"
PIDFILE="$GARAGE_DIR/garage.pid"
LOGFILE="$GARAGE_DIR/garage.log"
ENVFILE="$GARAGE_DIR/env"
CREDS="$GARAGE_DIR/credentials"

# shellcheck source=scripts/garage-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/garage-common.sh"

running_pid=""
if [ -f "$PIDFILE" ]; then
    running_pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    ours "$running_pid" || running_pid=""
fi

if [ "${GARAGE_FRESH:-0}" = 1 ]; then
    if [ -n "$running_pid" ]; then
        die "GARAGE_FRESH=1 but garage (pid $running_pid) is running on $GARAGE_DIR; stop it first (scripts/garage-stop.sh)"
    fi
    log "GARAGE_FRESH=1: wiping the state in $GARAGE_DIR"
    rm -rf "$GARAGE_DIR/meta" "$GARAGE_DIR/data" "$CONFIG" "$PIDFILE" "$LOGFILE" "$ENVFILE" "$CREDS"
fi

if [ -n "$running_pid" ] && [ -f "$ENVFILE" ]; then
    log "garage already running (pid $running_pid); reusing it"
    cat "$ENVFILE" >&3
    exit 0
fi

# ---------------------------------------------------------------- credentials, ports, config

hex() { python3 -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }

if [ -f "$CREDS" ]; then
    # shellcheck disable=SC1090
    . "$CREDS"
    log "reusing the key and bucket of the previous run in $GARAGE_DIR"
else
    ACCESS_KEY="GK$(hex 12)"
    SECRET_KEY="$(hex 32)"
    RPC_SECRET="$(hex 32)"
    ADMIN_TOKEN="$(hex 32)"
    (
        umask 077
        printf 'ACCESS_KEY=%s\nSECRET_KEY=%s\nRPC_SECRET=%s\nADMIN_TOKEN=%s\nBUCKET=%s\n' \
            "$ACCESS_KEY" "$SECRET_KEY" "$RPC_SECRET" "$ADMIN_TOKEN" "$BUCKET" >"$CREDS"
    )
fi

# Three distinct free loopback ports, chosen by the kernel.
read -r S3_PORT RPC_PORT ADMIN_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)
log "ports: S3 API $S3_PORT, RPC $RPC_PORT, admin $ADMIN_PORT (127.0.0.1)"

mkdir -p "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
(
    umask 077
    cat >"$CONFIG" <<EOF
# Written by scripts/garage-start.sh: a single-node Garage on loopback for tests.
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = $COMPRESSION_TOML

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$RPC_SECRET"
bootstrap_peers = []

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$ADMIN_TOKEN"
EOF
)

ENDPOINT="http://127.0.0.1:$S3_PORT"
PID=""

# ---------------------------------------------------------------- start, poll, stop

# Starts `garage server` with extra args "$@", detached (own session; stdin, stdout, stderr and fd 3,
# our real stdout, not inherited: a caller reading our stdout to EOF must not wait for garage), and
# records its pid.
start_server() {
    log "starting: $GARAGE_BIN -c $CONFIG server $*"
    printf '\n==== %s: garage server %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGFILE"
    GARAGE_DEFAULT_ACCESS_KEY="$ACCESS_KEY" GARAGE_DEFAULT_SECRET_KEY="$SECRET_KEY" \
        GARAGE_DEFAULT_BUCKET="$BUCKET" RUST_LOG="${RUST_LOG:-info}" \
        setsid "$GARAGE_BIN" -c "$CONFIG" server "$@" </dev/null >>"$LOGFILE" 2>&1 3>&- &
    PID=$!
    echo "$PID" >"$PIDFILE"
    # setsid execs in place unless it is a process-group leader; check we recorded garage itself.
    sleep 0.05
    if [ -r "/proc/$PID/cmdline" ] && ! ours "$PID"; then
        local child
        child="$(pgrep -P "$PID" 2>/dev/null | head -n 1 || true)"
        if [ -n "$child" ] && ours "$child"; then
            PID="$child"
            echo "$PID" >"$PIDFILE"
        fi
    fi
    log "garage pid $PID (log: $LOGFILE)"
}

stop_server() {
    [ -n "$PID" ] || return 0
    if ours "$PID"; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            ours "$PID" || break
            sleep 0.1
        done
        ours "$PID" && kill -KILL "$PID" 2>/dev/null || true
    fi
    wait "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    PID=""
}

# HTTP status of a SigV4-signed ListObjectsV2 on the bucket (000 when nothing answers). Garage
# requires x-amz-content-sha256, which curl (7.88) does not add by itself: the empty body's hash.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
list_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        --aws-sigv4 "aws:amz:garage:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "$ENDPOINT/$BUCKET?list-type=2&max-keys=1" 2>/dev/null || true
}

# Polls until the signed ListObjectsV2 answers 200 (0), garage exits (1) or the deadline passes (2).
wait_ready() {
    local deadline=$((SECONDS + TIMEOUT)) status=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! ours "$PID"; then
            log "garage exited before serving S3"
            return 1
        fi
        status="$(list_status)"
        if [ "$status" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    log "no 200 from a signed ListObjectsV2 within ${TIMEOUT} s (last status: ${status:-none})"
    return 2
}

# The quick-start steps (garage's documented setup) with the CLI, each skipped when already done.
g() { "$GARAGE_BIN" -c "$CONFIG" "$@"; }
quickstart_setup() {
    local deadline=$((SECONDS + TIMEOUT)) node_id version
    until g status >/dev/null 2>&1; do
        ours "$PID" || return 1
        [ "$SECONDS" -lt "$deadline" ] || return 2
        sleep 0.2
    done
    node_id="$(g node id -q 2>/dev/null | sed -n 1p)"
    node_id="${node_id%%@*}"
    [ -n "$node_id" ] || return 1
    if g status 2>/dev/null | grep -q 'NO ROLE ASSIGNED'; then
        log "layout: assigning dc1/1G to node ${node_id:0:16}"
        g layout assign -z dc1 -c 1G "$node_id" >&2
        version="$(g layout show 2>/dev/null | sed -n 's/.*Current cluster layout version: *\([0-9][0-9]*\).*/\1/p' | sed -n 1p)"
        g layout apply --version "$((${version:-0} + 1))" >&2
    fi
    if ! g key info "$ACCESS_KEY" >/dev/null 2>&1; then
        g key import --yes -n ferry-test "$ACCESS_KEY" "$SECRET_KEY" >&2
    fi
    if ! g bucket info "$BUCKET" >/dev/null 2>&1; then
        g bucket create "$BUCKET" >&2
    fi
    g bucket allow --read --write --owner "$BUCKET" --key "$ACCESS_KEY" >&2
}

started=0
# Whatever goes wrong from here on, do not leave a garage we started behind.
trap 'if [ "$started" != 1 ]; then stop_server; fi' EXIT
t0=$SECONDS
if [ "$MODE" != quickstart ]; then
    start_server --single-node --default-bucket
    if wait_ready; then
        started=1
    else
        stop_server
        log "last lines of $LOGFILE:"
        tail -n 20 "$LOGFILE" >&2 || true
        [ "$MODE" = auto ] || die "garage did not start in single-node mode"
        log "falling back to the quick-start steps (layout assign/apply, key import, bucket create/allow)"
    fi
fi
if [ "$started" = 0 ]; then
    start_server
    if quickstart_setup && wait_ready; then
        started=1
    else
        stop_server
        log "last lines of $LOGFILE:"
        tail -n 30 "$LOGFILE" >&2 || true
        die "garage did not start (quick-start steps)"
    fi
fi
log "ready in $((SECONDS - t0)) s: $ENDPOINT bucket $BUCKET"

{
    printf 'export S3_ENDPOINT=%q\n' "$ENDPOINT"
    printf 'export S3_REGION=%q\n' garage
    printf 'export S3_BUCKET=%q\n' "$BUCKET"
    printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
    printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
    printf 'export GARAGE_PID=%q\n' "$PID"
    printf 'export GARAGE_DIR=%q\n' "$GARAGE_DIR"
} >"$ENVFILE"
chmod 600 "$ENVFILE"
cat "$ENVFILE" >&3
