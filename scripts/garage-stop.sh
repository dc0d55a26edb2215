#!/usr/bin/env bash
# Stop the Garage that scripts/garage-start.sh started: bash scripts/garage-stop.sh [GARAGE_DIR]
#
# Sends SIGTERM (SIGKILL after 10 s) to the pid in GARAGE_DIR/garage.pid, and only if that process's
# command line names GARAGE_DIR/garage.toml: never anything else. GARAGE_WIPE=1 also deletes the
# state directory (only if it holds our garage.toml). Without an argument, $GARAGE_DIR is used.
set -euo pipefail

log() { echo "garage-stop: $*" >&2; }

DIR="${1:-${GARAGE_DIR:-}}"
if [ -z "$DIR" ]; then
    log "usage: garage-stop.sh GARAGE_DIR (or set GARAGE_DIR)"
    exit 2
fi
if [ ! -d "$DIR" ]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
DIR="$(cd "$DIR" && pwd -P)"
CONFIG="$DIR/garage.toml"
PIDFILE="$DIR/garage.pid"

# shellcheck source=scripts/garage-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/garage-common.sh"

pid=""
if [ -f "$PIDFILE" ]; then
    pid="$(tr -dc '0-9' <"$PIDFILE" || true)"
fi

if [ -z "$pid" ]; then
    log "no pid file in $DIR; nothing to stop"
elif ! ours "$pid"; then
    log "pid $pid is not running garage with $CONFIG; not signalling it"
    rm -f "$PIDFILE"
else
    log "stopping garage (pid $pid) with SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    if ours "$pid"; then
        log "still running after 10 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            ours "$pid" || break
            sleep 0.1
        done
    fi
    if ours "$pid"; then
        log "error: pid $pid is still running"
        exit 1
    fi
    log "stopped"
    rm -f "$PIDFILE"
fi

if [ "${GARAGE_WIPE:-0}" = 1 ]; then
    if [ -f "$CONFIG" ]; then
        log "GARAGE_WIPE=1: removing $DIR"
        rm -rf "$DIR"
    else
        log "GARAGE_WIPE=1 but $DIR has no garage.toml; not removing it"
    fi
fi
