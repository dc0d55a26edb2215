#!/usr/bin/env bash
# Stop the three-node Garage that scripts/garage-cluster-start.sh started:
#   bash scripts/garage-cluster-stop.sh [GARAGE_CLUSTER_DIR]
#
# Sends SIGTERM (SIGKILL after 10 s) to each node's pid in GARAGE_CLUSTER_DIR/nodeN/garage.pid, and
# only if that process's command line names that node's garage.toml: never anything else.
# GARAGE_WIPE=1 also deletes the state directory (only if it holds our ports and credentials).
# Without an argument, $GARAGE_CLUSTER_DIR is used.
set -euo pipefail

log() { echo "garage-cluster-stop: $*" >&2; }

DIR="${1:-${GARAGE_CLUSTER_DIR:-}}"
if [ -z "$DIR" ]; then
    log "usage: garage-cluster-stop.sh GARAGE_CLUSTER_DIR (or set GARAGE_CLUSTER_DIR)"
    exit 2
fi
if [ ! -d "$DIR" ]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
CDIR="$(cd "$DIR" && pwd -P)"

# shellcheck source=scripts/garage-cluster-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/garage-cluster-common.sh"

# All three at once (a node that outlives its peers can spend seconds retrying them), each checked
# and, after 10 s, killed by node_stop.
pids=()
for i in "${NODES[@]}"; do
    pid="$(node_pid "$i")"
    pids+=("$pid")
    if [ -z "$pid" ]; then
        log "node $i: not running"
        continue
    fi
    log "node $i: SIGTERM to garage (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
done
t0=$SECONDS
failed=0
for i in "${NODES[@]}"; do
    [ -n "${pids[$((i - 1))]}" ] || continue
    node_stop "$i" || failed=1
done
if [ "$failed" = 1 ]; then
    log "error: a node is still running"
    exit 1
fi
log "stopped in $((SECONDS - t0)) s"

if [ "${GARAGE_WIPE:-0}" = 1 ]; then
    if [ -f "$CDIR/ports" ] && [ -f "$CDIR/credentials" ]; then
        log "GARAGE_WIPE=1: removing $CDIR"
        rm -rf "$CDIR"
    else
        log "GARAGE_WIPE=1 but $CDIR has no ports and credentials of garage-cluster-start.sh; not removing it"
    fi
fi
