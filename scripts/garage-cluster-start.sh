#!/usr/bin/env bash
# Start a THREE-node Garage cluster (replication factor 3) on loopback for tests, and print how to
# reach it.
#
#   eval "$(bash scripts/garage-cluster-start.sh)"              # exports S3_*, AWS_*, GARAGE_*
#   bash scripts/garage-cluster-node.sh "$GARAGE_CLUSTER_DIR" stop 2    # an outage of node 2
#   bash scripts/garage-cluster-node.sh "$GARAGE_CLUSTER_DIR" start 2   # back, on the same ports
#   bash scripts/garage-cluster-stop.sh "$GARAGE_CLUSTER_DIR"   # GARAGE_WIPE=1 also deletes the state
#
# stdout carries ONLY `export VAR=value` lines: S3_ENDPOINTS (the three S3 APIs,
# "http://127.0.0.1:P1 http://127.0.0.1:P2 http://127.0.0.1:P3"), S3_ENDPOINT (node 1's),
# S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GARAGE_CLUSTER_DIR and
# GARAGE_PIDS ("PID1 PID2 PID3"); progress goes to stderr.
#
# Three `garage server` processes, each with its own garage.toml, metadata and data directory in
# GARAGE_CLUSTER_DIR/nodeN, its own S3, RPC and admin ports (nine free loopback ports picked by the
# kernel, bind to port 0), one rpc_secret. `garage node connect` joins them; the layout gives each a
# zone of its own (dc1, dc2, dc3) and 1 GiB; then a key and a bucket the key may read, write and
# own. With replication factor 3 every object is on all three nodes and reads and writes need 2 of
# 3 (quorum): with one node down, PUT and GET still work.
#
# Garage versions: 1.0 and later take `replication_factor = 3`, 0.x `replication_mode = "3"`; the
# script reads `garage --version` and writes the one it needs.
#
# Environment (all optional):
#   GARAGE_CLUSTER_DIR    state directory; default: a new mktemp -d
#   GARAGE_BIN            the garage binary; default: `garage` in PATH, else ~/.cargo/bin/garage
#   GARAGE_BUCKET         bucket name (default ferry-test)
#   GARAGE_START_TIMEOUT  seconds for the whole setup to succeed (default 90)
#   GARAGE_FRESH=1        wipe the state in GARAGE_CLUSTER_DIR first
#
# Re-running with the same GARAGE_CLUSTER_DIR while all three run prints the same exports again;
# nodes that are stopped are started again ON THE SAME PORTS, with the same key and bucket.
set -euo pipefail

# Everything on stdout except the final exports goes to stderr.
exec 3>&1 1>&2

log() { echo "garage-cluster-start: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# shellcheck source=scripts/garage-cluster-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/garage-cluster-common.sh"

# ---------------------------------------------------------------- binary and tools

find_garage_bin || die "garage not found (PATH, ~/.cargo/bin, GARAGE_BIN); run scripts/install-garage.sh"
log "using $GARAGE_BIN ($("$GARAGE_BIN" --version 2>/dev/null || echo 'no --version')): $(replication_toml)"
command -v curl >/dev/null 2>&1 || die "curl not found; run scripts/install-test-deps.sh"
command -v python3 >/dev/null 2>&1 || die "python3 not found (used to pick free ports)"

TIMEOUT="${GARAGE_START_TIMEOUT:-90}"
case "$TIMEOUT" in '' | *[!0-9]*) die "GARAGE_START_TIMEOUT must be a number of seconds" ;; esac

# ---------------------------------------------------------------- state directory

if [ -z "${GARAGE_CLUSTER_DIR:-}" ]; then
    GARAGE_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ferry-garage-cluster.XXXXXXXX")"
    log "state directory $GARAGE_CLUSTER_DIR (new)"
else
    mkdir -p "$GARAGE_CLUSTER_DIR"
    log "state directory $GARAGE_CLUSTER_DIR"
fi
CDIR="$(cd "$GARAGE_CLUSTER_DIR" && pwd -P)"
chmod 700 "$CDIR"

running=()
for i in "${NODES[@]}"; do
    [ -z "$(node_pid "$i")" ] || running+=("$i")
done

if [ "${GARAGE_FRESH:-0}" = 1 ]; then
    if [ "${#running[@]}" -gt 0 ]; then
        die "GARAGE_FRESH=1 but node(s) ${running[*]} run on $CDIR; stop them first (scripts/garage-cluster-stop.sh)"
    fi
    log "GARAGE_FRESH=1: wiping the state in $CDIR"
    rm -rf "$CDIR/node1" "$CDIR/node2" "$CDIR/node3" "$CDIR/ports" "$CDIR/credentials" "$CDIR/env"
fi

if [ "${#running[@]}" = 3 ] && [ -f "$CDIR/env" ] && load_state; then
    log "all three nodes already running ($(cluster_pids)); reusing them"
    write_env
    cat "$CDIR/env" >&3
    exit 0
fi

# ---------------------------------------------------------------- credentials, ports, configs

hex() { python3 -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }

if [ -f "$CDIR/credentials" ]; then
    log "reusing the key, bucket and RPC secret of the previous run in $CDIR"
else
    (
        umask 077
        printf 'ACCESS_KEY=%q\nSECRET_KEY=%q\nRPC_SECRET=%q\nADMIN_TOKEN=%q\nBUCKET=%q\n' \
            "GK$(hex 12)" "$(hex 32)" "$(hex 32)" "$(hex 32)" "${GARAGE_BUCKET:-ferry-test}" >"$CDIR/credentials"
    )
fi
if [ -f "$CDIR/ports" ]; then
    log "reusing the ports of the previous run"
else
    # Nine distinct free loopback ports, chosen by the kernel: S3, RPC and admin of each node.
    python3 - >"$CDIR/ports" <<'EOF'
import socket
socks = []
for _ in range(9):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
for s in socks:
    s.close()
for n in range(3):
    s3, rpc, admin = ports[3 * n : 3 * n + 3]
    print(f"S3_PORT_{n + 1}={s3}\nRPC_PORT_{n + 1}={rpc}\nADMIN_PORT_{n + 1}={admin}")
EOF
fi
load_state || die "cannot read $CDIR/ports and $CDIR/credentials"
for i in "${NODES[@]}"; do
    log "node $i: S3 $(port_of "$i" S3), RPC $(port_of "$i" RPC), admin $(port_of "$i" ADMIN) (127.0.0.1)"
done

# ---------------------------------------------------------------- start, join, layout, key, bucket

started_here=()
ok=0
# Whatever goes wrong from here on, do not leave nodes we started behind.
cleanup() {
    [ "$ok" != 1 ] || return 0
    local i
    for i in "${started_here[@]}"; do
        node_stop "$i" || true
    done
}
trap cleanup EXIT

t0=$SECONDS
deadline=$((SECONDS + TIMEOUT))
for i in "${NODES[@]}"; do
    if [ -n "$(node_pid "$i")" ]; then
        log "node $i: already running (pid $(node_pid "$i"))"
        continue
    fi
    write_node_config "$i"
    node_start "$i"
    started_here+=("$i")
done
for i in "${NODES[@]}"; do
    node_wait_rpc "$i" "$deadline" || die "node $i did not come up"
done

# Retries "$@" (a setup step) until it succeeds or the deadline passes: right after the nodes
# connect, the layout and the tables need a moment to reach a quorum.
retry() {
    local out
    while true; do
        if out="$("$@" 2>&1)"; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "failed: $*: $out"
            return 1
        fi
        sleep 0.5
    done
}

log "joining the nodes (garage node connect)"
retry connect_all || die "the nodes could not connect to each other"

layout_version() {
    g 1 layout show 2>/dev/null | sed -n 's/.*Current cluster layout version: *\([0-9][0-9]*\).*/\1/p' | sed -n 1p
}
version="$(layout_version)"
if [ "${version:-0}" = 0 ]; then
    for i in "${NODES[@]}"; do
        id="$(node_addr "$i")" || die "node $i: no node id"
        id="${id%%@*}"
        log "layout: node $i (${id:0:16}) in zone dc$i, 1G"
        retry g 1 layout assign -z "dc$i" -c 1G "$id" || die "garage layout assign failed"
    done
    retry g 1 layout apply --version 1 || die "garage layout apply failed"
    log "layout version 1 applied"
else
    log "layout version $version already applied"
fi

if ! g 1 key info "$ACCESS_KEY" >/dev/null 2>&1; then
    log "importing key $ACCESS_KEY"
    retry g 1 key import --yes -n ferry-test "$ACCESS_KEY" "$SECRET_KEY" || die "garage key import failed"
fi
if ! g 1 bucket info "$BUCKET" >/dev/null 2>&1; then
    log "creating bucket $BUCKET"
    retry g 1 bucket create "$BUCKET" || die "garage bucket create failed"
fi
retry g 1 bucket allow --read --write --owner "$BUCKET" --key "$ACCESS_KEY" || die "garage bucket allow failed"

for i in "${NODES[@]}"; do
    node_wait_s3 "$i" "$deadline" || die "node $i does not serve the bucket"
done
ok=1
log "ready in $((SECONDS - t0)) s: $(endpoint_of 1) $(endpoint_of 2) $(endpoint_of 3), bucket $BUCKET"

write_env
cat "$CDIR/env" >&3
