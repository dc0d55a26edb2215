# shellcheck shell=bash
# Sourced by garage-cluster-start.sh, garage-cluster-stop.sh and garage-cluster-node.sh after they
# set CDIR (the cluster's state directory) and define log(). Node N (1, 2, 3) keeps garage.toml,
# meta/, data/, garage.log and garage.pid in CDIR/nodeN; CDIR/ports and CDIR/credentials hold what
# a restart reuses (the same ports, keys, bucket and RPC secret); CDIR/env the exports.

NODES=(1 2 3)
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

node_config() { echo "$CDIR/node$1/garage.toml"; }

# Is $2 a live process whose command line names node $1's garage.toml?
node_ours() {
    local config pid="$2"
    config="$(node_config "$1")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$config"
}

# The pid of node $1 if it runs (from its garage.pid, checked), else nothing.
node_pid() {
    local f="$CDIR/node$1/garage.pid" pid=""
    if [ -f "$f" ]; then
        pid="$(tr -dc '0-9' <"$f" || true)"
    fi
    if node_ours "$1" "$pid"; then
        echo "$pid"
    fi
}

# "PID1 PID2 PID3", 0 for a node that does not run.
cluster_pids() {
    local i pid out=()
    for i in "${NODES[@]}"; do
        pid="$(node_pid "$i")"
        out+=("${pid:-0}")
    done
    echo "${out[*]}"
}

# Sources CDIR/ports and CDIR/credentials (fails if either is missing).
load_state() {
    [ -f "$CDIR/ports" ] && [ -f "$CDIR/credentials" ] || return 1
    # shellcheck disable=SC1091
    . "$CDIR/ports"
    # shellcheck disable=SC1091
    . "$CDIR/credentials"
}

# Node $1's port of kind $2 (S3, RPC or ADMIN), from CDIR/ports.
port_of() {
    local var="${2}_PORT_$1"
    echo "${!var}"
}
endpoint_of() { echo "http://127.0.0.1:$(port_of "$1" S3)"; }

# The garage CLI as node $1 (it talks RPC to that node).
g() {
    local i="$1"
    shift
    "$GARAGE_BIN" -c "$(node_config "$i")" "$@"
}

# `replication_factor = 3` (Garage 1.0 and later) or `replication_mode = "3"` (0.x), from
# `garage --version` (`garage cargo:2.5.0 [...]`, `garage v0.9.4 [...]`, `git:v1.0.1-...`).
replication_toml() {
    local ver major
    ver="$("$GARAGE_BIN" --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | sed -n 1p || true)"
    major="${ver%%.*}"
    if [ "${major:-1}" = 0 ]; then
        echo 'replication_mode = "3"'
    else
        echo 'replication_factor = 3'
    fi
}

# Writes node $1's garage.toml (same ports and secret on every start).
write_node_config() {
    local i="$1" dir="$CDIR/node$1"
    mkdir -p "$dir/meta" "$dir/data"
    chmod 700 "$dir"
    (
        umask 077
        cat >"$dir/garage.toml" <<EOF
# Written by scripts/garage-cluster-start.sh: node $i of a three-node Garage on loopback for tests.
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
$(replication_toml)
compression_level = "none"

rpc_bind_addr = "127.0.0.1:$(port_of "$i" RPC)"
rpc_public_addr = "127.0.0.1:$(port_of "$i" RPC)"
rpc_secret = "$RPC_SECRET"
bootstrap_peers = []

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$(port_of "$i" S3)"

[admin]
api_bind_addr = "127.0.0.1:$(port_of "$i" ADMIN)"
admin_token = "$ADMIN_TOKEN"
EOF
    )
}

# Starts node $1's `garage server`, detached (own session; stdin, stdout, stderr and fd 3 not
# inherited: a caller reading our stdout to EOF must not wait for garage), and records its pid.
node_start() {
    local i="$1" dir="$CDIR/node$1" pid child
    log "node $i: starting garage server (S3 $(port_of "$i" S3), RPC $(port_of "$i" RPC); log: $dir/garage.log)"
    printf '\n==== %s: garage server\n' "$(date -u +%FT%TZ)" >>"$dir/garage.log"
    RUST_LOG="${RUST_LOG:-info}" setsid "$GARAGE_BIN" -c "$dir/garage.toml" server \
        </dev/null >>"$dir/garage.log" 2>&1 3>&- &
    pid=$!
    # setsid execs in place unless it is a process-group leader; check we recorded garage itself.
    sleep 0.05
    if [ -r "/proc/$pid/cmdline" ] && ! node_ours "$i" "$pid"; then
        child="$(pgrep -P "$pid" 2>/dev/null | sed -n 1p || true)"
        if [ -n "$child" ] && node_ours "$i" "$child"; then
            pid="$child"
        fi
    fi
    echo "$pid" >"$dir/garage.pid"
    log "node $i: pid $pid"
}

# Stops node $1 (SIGTERM, SIGKILL after 10 s); only a process running with its garage.toml.
node_stop() {
    local i="$1" pid
    pid="$(node_pid "$i")"
    if [ -z "$pid" ]; then
        rm -f "$CDIR/node$i/garage.pid"
        return 0
    fi
    log "node $i: stopping garage (pid $pid) with SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while node_ours "$i" "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    if node_ours "$i" "$pid"; then
        log "node $i: still running after 10 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            node_ours "$i" "$pid" || break
            sleep 0.1
        done
    fi
    if node_ours "$i" "$pid"; then
        log "node $i: error: pid $pid is still running"
        return 1
    fi
    rm -f "$CDIR/node$i/garage.pid"
}

# Waits (until $2, a SECONDS deadline) for node $1 to answer the CLI over RPC.
node_wait_rpc() {
    local i="$1" deadline="$2"
    until g "$i" status >/dev/null 2>&1; do
        [ -n "$(node_pid "$i")" ] || {
            log "node $i: garage exited; last lines of its log:"
            tail -n 20 "$CDIR/node$i/garage.log" >&2 || true
            return 1
        }
        [ "$SECONDS" -lt "$deadline" ] || {
            log "node $i: no answer over RPC in time"
            return 2
        }
        sleep 0.2
    done
}

# Node $1's full id and RPC address (`<hex id>@127.0.0.1:PORT`), cached in CDIR/nodeN/node_id
# (the node key lives in its metadata directory, so the id never changes).
node_addr() {
    local i="$1" f="$CDIR/node$1/node_id" id
    if [ ! -s "$f" ]; then
        id="$(g "$i" node id -q 2>/dev/null | sed -n 1p)"
        id="${id%%@*}"
        [ -n "$id" ] || return 1
        echo "$id" >"$f"
    fi
    echo "$(cat "$f")@127.0.0.1:$(port_of "$i" RPC)"
}

# Connects every running node to every other running one (harmless when already connected).
connect_all() {
    local i j addr
    for i in "${NODES[@]}"; do
        [ -n "$(node_pid "$i")" ] || continue
        for j in "${NODES[@]}"; do
            if [ "$i" = "$j" ] || [ -z "$(node_pid "$j")" ]; then
                continue
            fi
            addr="$(node_addr "$j")" || return 1
            g "$i" node connect "$addr" >/dev/null 2>&1 || {
                log "node $i: garage node connect ${addr:0:16}... failed"
                return 1
            }
        done
    done
}

# HTTP status of a SigV4-signed ListObjectsV2 on the bucket through node $1 (000: no answer).
list_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        --aws-sigv4 "aws:amz:garage:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "$(endpoint_of "$1")/$BUCKET?list-type=2&max-keys=1" 2>/dev/null || true
}

# Waits (until $2) for a 200 from a signed ListObjectsV2 through node $1.
node_wait_s3() {
    local i="$1" deadline="$2" status=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ -n "$(node_pid "$i")" ] || {
            log "node $i: garage exited before serving S3"
            return 1
        }
        status="$(list_status "$i")"
        [ "$status" != 200 ] || return 0
        sleep 0.2
    done
    log "node $i: no 200 from a signed ListObjectsV2 in time (last status: ${status:-none})"
    return 2
}

# Writes CDIR/env (the exports; GARAGE_PIDS as they are now, 0 for a stopped node).
write_env() {
    local i endpoints=()
    for i in "${NODES[@]}"; do
        endpoints+=("$(endpoint_of "$i")")
    done
    {
        printf 'export S3_ENDPOINTS=%q\n' "${endpoints[*]}"
        printf 'export S3_ENDPOINT=%q\n' "${endpoints[0]}"
        printf 'export S3_REGION=%q\n' garage
        printf 'export S3_BUCKET=%q\n' "$BUCKET"
        printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
        printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
        printf 'export GARAGE_CLUSTER_DIR=%q\n' "$CDIR"
        printf 'export GARAGE_PIDS=%q\n' "$(cluster_pids)"
    } >"$CDIR/env"
    chmod 600 "$CDIR/env"
}

# The garage binary: $GARAGE_BIN, else `garage` in PATH, else ~/.cargo/bin/garage (as garage-start.sh).
find_garage_bin() {
    if [ -z "${GARAGE_BIN:-}" ]; then
        GARAGE_BIN="$(command -v garage 2>/dev/null || true)"
        if [ -z "$GARAGE_BIN" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
            GARAGE_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
        fi
    fi
    [ -n "${GARAGE_BIN:-}" ] && [ -x "$GARAGE_BIN" ]
}
