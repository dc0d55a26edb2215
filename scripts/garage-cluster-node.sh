#!/usr/bin/env bash
# Stop, start or check ONE node of the cluster of scripts/garage-cluster-start.sh, by index (1-3):
#
#   bash scripts/garage-cluster-node.sh GARAGE_CLUSTER_DIR stop 2     # SIGTERM (SIGKILL after 10 s)
#   bash scripts/garage-cluster-node.sh GARAGE_CLUSTER_DIR start 2    # again, on the SAME ports
#   bash scripts/garage-cluster-node.sh GARAGE_CLUSTER_DIR status 2   # exit 0 if it runs
#
# `start` waits until the node is back: it answers over RPC, is connected again to the other running
# nodes (garage node connect) and serves a signed ListObjectsV2 on the bucket (which needs a quorum,
# 2 of 3). stdout carries ONLY one `export GARAGE_PIDS="PID1 PID2 PID3"` line (0 for a stopped
# node), after stop and start; GARAGE_CLUSTER_DIR/env is rewritten with it. Progress goes to stderr.
#
# Environment: GARAGE_BIN (as garage-cluster-start.sh), GARAGE_START_TIMEOUT (default 60, for start).
set -euo pipefail

# Everything on stdout except the final export goes to stderr.
exec 3>&1 1>&2

log() { echo "garage-cluster-node: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

if [ "$#" -ne 3 ]; then
    log "usage: garage-cluster-node.sh GARAGE_CLUSTER_DIR stop|start|status N (N: 1, 2 or 3)"
    exit 2
fi
DIR="$1"
action="$2"
i="$3"
case "$i" in 1 | 2 | 3) ;; *) die "node index must be 1, 2 or 3, not '$i'" ;; esac
case "$action" in stop | start | status) ;; *) die "action must be stop, start or status, not '$action'" ;; esac
[ -d "$DIR" ] || die "$DIR does not exist"
CDIR="$(cd "$DIR" && pwd -P)"

# shellcheck source=scripts/garage-cluster-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/garage-cluster-common.sh"

load_state || die "$CDIR has no ports and credentials: not a cluster of scripts/garage-cluster-start.sh"

case "$action" in
status)
    pid="$(node_pid "$i")"
    if [ -n "$pid" ]; then
        log "node $i: running (pid $pid)"
        exit 0
    fi
    log "node $i: not running"
    exit 1
    ;;
stop)
    if [ -z "$(node_pid "$i")" ]; then
        log "node $i: not running"
    else
        node_stop "$i" || die "node $i did not stop"
        log "node $i: stopped"
    fi
    ;;
start)
    find_garage_bin || die "garage not found (PATH, ~/.cargo/bin, GARAGE_BIN); run scripts/install-garage.sh"
    TIMEOUT="${GARAGE_START_TIMEOUT:-60}"
    case "$TIMEOUT" in '' | *[!0-9]*) die "GARAGE_START_TIMEOUT must be a number of seconds" ;; esac
    deadline=$((SECONDS + TIMEOUT))
    if [ -n "$(node_pid "$i")" ]; then
        log "node $i: already running (pid $(node_pid "$i"))"
    else
        ok=0
        trap 'if [ "$ok" != 1 ]; then node_stop "$i" || true; fi' EXIT
        write_node_config "$i"
        node_start "$i"
        node_wait_rpc "$i" "$deadline" || die "node $i did not come up"
        until connect_all; do
            [ "$SECONDS" -lt "$deadline" ] || die "node $i could not connect to the other nodes"
            sleep 0.5
        done
        node_wait_s3 "$i" "$deadline" || die "node $i does not serve the bucket"
        ok=1
        log "node $i: back (pid $(node_pid "$i"))"
    fi
    ;;
esac

if [ -f "$CDIR/env" ]; then
    write_env
fi
printf 'export GARAGE_PIDS=%q\n' "$(cluster_pids)" >&3
