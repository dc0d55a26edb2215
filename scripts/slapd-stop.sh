#!/usr/bin/env bash
# Stop the slapd that scripts/slapd-start.sh started: bash scripts/slapd-stop.sh [LDAP_DIR]
#
# Sends SIGTERM (SIGKILL after 10 s) to the pid in LDAP_DIR/slapd.pid, and only if that process's
# command line names LDAP_DIR/slapd.d: never anything else. LDAP_WIPE=1 also deletes the state
# directory (only if it holds our slapd.d or state file). Without an argument, $LDAP_DIR is used.
# The state is kept otherwise: scripts/slapd-start.sh with the same LDAP_DIR restarts slapd on the
# same ports.
set -euo pipefail

log() { echo "slapd-stop: $*" >&2; }

DIR="${1:-${LDAP_DIR:-}}"
if [ -z "$DIR" ]; then
    log "usage: slapd-stop.sh LDAP_DIR (or set LDAP_DIR)"
    exit 2
fi
if [ ! -d "$DIR" ]; then
    log "$DIR does not exist; nothing to stop"
    exit 0
fi
DIR="$(cd "$DIR" && pwd -P)"
CONFDIR="$DIR/slapd.d"
PIDFILE="$DIR/slapd.pid"

# shellcheck source=scripts/slapd-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/slapd-common.sh"

pid=""
if [ -f "$PIDFILE" ]; then
    pid="$(tr -dc '0-9' <"$PIDFILE" || true)"
fi

if [ -z "$pid" ]; then
    log "no pid file in $DIR; nothing to stop"
elif ! ours "$pid"; then
    log "pid $pid is not running slapd with $CONFDIR; not signalling it"
    rm -f "$PIDFILE"
else
    log "stopping slapd (pid $pid) with SIGTERM"
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

if [ "${LDAP_WIPE:-0}" = 1 ]; then
    if [ -d "$CONFDIR" ] || [ -f "$DIR/state" ]; then
        log "LDAP_WIPE=1: removing $DIR"
        rm -rf "$DIR"
    else
        log "LDAP_WIPE=1 but $DIR has no slapd.d or state of scripts/slapd-start.sh; not removing it"
    fi
fi
