#!/usr/bin/env bash
# Stop the PostgreSQL cluster that scripts/pg-start.sh started: bash scripts/pg-stop.sh [PG_DIR]
#
# Signals the postmaster in PG_DIR/data/postmaster.pid, and only if that process is a `postgres`
# working in PG_DIR/data: never anything else. PG_STOP_MODE picks PostgreSQL's shutdown mode:
# fast (default: SIGINT, open sessions are ended, a clean checkpoint), immediate (SIGQUIT: no
# checkpoint, the next start runs crash recovery) or smart (SIGTERM: waits for sessions to end).
# After 30 s it falls back to immediate, then SIGKILL. PG_WIPE=1 also deletes the state directory
# (only if it holds a cluster of ours, PG_DIR/data/ferry-test.conf). Without an argument, $PG_DIR
# is used. The state is kept otherwise: scripts/pg-start.sh with the same PG_DIR restarts the
# cluster on the same port.
set -euo pipefail

log() { echo "pg-stop: $*" >&2; }

DIR="${1:-${PG_DIR:-}}"
if [ -z "$DIR" ]; then
    log "usage: pg-stop.sh PG_DIR (or set PG_DIR)"
    exit 2
fi
if [ ! -d "$DIR" ]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
DIR="$(cd "$DIR" && pwd -P)"
DATA="$DIR/data"

# shellcheck source=scripts/pg-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-common.sh"

case "${PG_STOP_MODE:-fast}" in
smart) sig=TERM ;;
fast) sig=INT ;;
immediate) sig=QUIT ;;
*)
    log "PG_STOP_MODE must be smart, fast or immediate"
    exit 2
    ;;
esac

# Waits up to $2 seconds for pid $1 to be gone; fails if it is still there.
wait_gone() {
    local deadline=$((SECONDS + $2))
    while ours "$1" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    ! ours "$1"
}

pid="$(postmaster_pid)"
if [ -z "$pid" ]; then
    log "no postmaster.pid in $DATA; nothing to stop"
elif ! ours "$pid"; then
    log "pid $pid is not a postgres of $DATA; not signalling it"
else
    log "stopping PostgreSQL (pid $pid) with SIG$sig (${PG_STOP_MODE:-fast} shutdown)"
    kill -"$sig" "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 30; then
        log "still running after 30 s; SIGQUIT (immediate shutdown)"
        kill -QUIT "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 10; then
            log "still running; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || true
        fi
    fi
    if ours "$pid"; then
        log "error: pid $pid is still running"
        exit 1
    fi
    log "stopped"
fi

if [ "${PG_WIPE:-0}" = 1 ]; then
    if [ -f "$DATA/ferry-test.conf" ] || [ -f "$DIR/state" ]; then
        log "PG_WIPE=1: removing $DIR"
        rm -rf "$DIR"
    else
        log "PG_WIPE=1 but $DIR has no cluster of scripts/pg-start.sh; not removing it"
    fi
fi
