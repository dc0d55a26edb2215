#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on loopback for tests, and print how to reach it.
#
#   eval "$(bash scripts/pg-start.sh)"       # exports PG_* for this shell
#   psql "$PG_URL" -c 'select 1'             # database `ferry`, owned by role `ferry`
#   bash scripts/pg-stop.sh "$PG_DIR"        # PG_WIPE=1 also deletes the state directory
#
# stdout carries ONLY `export VAR=value` lines: PG_URL (postgres://ferry:PASSWORD@127.0.0.1:PORT/ferry),
# PG_PORT, PG_DIR, PG_PID (the postmaster) and PG_BIN (the server's bin directory, with pg_ctl);
# progress goes to stderr.
#
# The cluster: `initdb` into PG_DIR/data with the newest /usr/lib/postgresql/*/bin, listening on
# 127.0.0.1:PORT only (a free port picked by the kernel, bind to port 0) and on a unix socket in
# PG_DIR/run. TCP needs a password (scram-sha-256); the socket lets the superuser `postgres` in
# without one (PG_DIR is mode 700). fsync is off (a test cluster, never a real one), but commits are
# synchronous: a crash of the server (an immediate stop) loses no committed transaction.
#
# PostgreSQL refuses to run as root: as root, every server-side command runs as the `postgres` user
# (the postgresql package creates it) or $PG_RUN_AS, through runuser, and PG_DIR is chowned to it.
# Its parent directories must be searchable by that user (the default, mktemp -d in /tmp, is).
#
# Environment (all optional):
#   PG_DIR            state directory (data, run, postgres.log, state, env); default: a new mktemp -d
#   PG_BIN            the bin directory of the server; default: the newest /usr/lib/postgresql/*/bin
#   PG_RUN_AS         the unprivileged user the server runs as when we are root (default postgres)
#   PG_START_TIMEOUT  seconds to wait for the server to accept connections (default 60)
#   PG_FRESH=1        wipe the state in PG_DIR first
#
# Re-running with the same PG_DIR while its server runs prints the same exports again; with a
# stopped server (scripts/pg-stop.sh, or `pg_ctl stop` by a test simulating an outage) it restarts
# it ON THE SAME PORT, with the same role, password and data: PG_URL stays the same.
set -euo pipefail

# Everything on stdout except the final exports goes to stderr.
exec 3>&1 1>&2

log() { echo "pg-start: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE... from the environment: none of the
# caller's may leak into the commands below (PG_* with an underscore are ours, not libpq's).
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^PG[A-Z]' || true)

# ---------------------------------------------------------------- binaries and tools

if [ -z "${PG_BIN:-}" ]; then
    PG_BIN="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | sed -n '$p' || true)"
    PG_BIN="${PG_BIN%/initdb}"
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ] || [ ! -x "$PG_BIN/postgres" ]; then
    die "no PostgreSQL server (initdb, pg_ctl, postgres in /usr/lib/postgresql/*/bin or PG_BIN); run scripts/install-test-deps.sh"
fi
PSQL="$PG_BIN/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql 2>/dev/null || true)"
[ -n "$PSQL" ] || die "psql not found; run scripts/install-test-deps.sh"
command -v python3 >/dev/null 2>&1 || die "python3 not found (used to pick a free port)"
log "using $PG_BIN ($("$PG_BIN/postgres" --version 2>/dev/null || echo 'no --version'))"

RUN_AS=""
if [ "$(id -u)" = 0 ]; then
    RUN_AS="${PG_RUN_AS:-postgres}"
    id -u "$RUN_AS" >/dev/null 2>&1 ||
        die "running as root and there is no user '$RUN_AS' to run PostgreSQL as (PostgreSQL refuses root); install the postgresql package (scripts/install-test-deps.sh) or set PG_RUN_AS"
    [ "$(id -u "$RUN_AS")" != 0 ] || die "PG_RUN_AS=$RUN_AS is root; PostgreSQL refuses to run as root"
    command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) not found"
fi
# Runs "$@" as the server's user (ourselves unless we are root).
as_pg() {
    if [ -n "$RUN_AS" ]; then
        runuser -u "$RUN_AS" -- "$@"
    else
        "$@"
    fi
}

TIMEOUT="${PG_START_TIMEOUT:-60}"
case "$TIMEOUT" in '' | *[!0-9]*) die "PG_START_TIMEOUT must be a number of seconds" ;; esac

# ---------------------------------------------------------------- state directory

if [ -z "${PG_DIR:-}" ]; then
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ferry-pg.XXXXXXXX")"
    log "state directory $PG_DIR (new)"
else
    mkdir -p "$PG_DIR"
    log "state directory $PG_DIR"
fi
PG_DIR="$(cd "$PG_DIR" && pwd -P)"
case "$PG_DIR" in *\'* | *\"* | *\\*) die "PG_DIR must not contain quotes or backslashes: $PG_DIR" ;; esac
chmod 700 "$PG_DIR"
DATA="$PG_DIR/data"
SOCKDIR="$PG_DIR/run"
LOGFILE="$PG_DIR/postgres.log"
STATE="$PG_DIR/state"
ENVFILE="$PG_DIR/env"

# shellcheck source=scripts/pg-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-common.sh"

running_pid="$(postmaster_pid)"
ours "$running_pid" || running_pid=""

if [ "${PG_FRESH:-0}" = 1 ]; then
    if [ -n "$running_pid" ]; then
        die "PG_FRESH=1 but PostgreSQL (pid $running_pid) is running on $DATA; stop it first (scripts/pg-stop.sh)"
    fi
    log "PG_FRESH=1: wiping the state in $PG_DIR"
    rm -rf "$DATA" "$SOCKDIR" "$LOGFILE" "$STATE" "$ENVFILE"
fi

if [ -n "$running_pid" ] && [ -f "$ENVFILE" ] && grep -qxF "export PG_PID=$running_pid" "$ENVFILE"; then
    log "PostgreSQL already running (pid $running_pid); reusing it"
    cat "$ENVFILE" >&3
    exit 0
fi

# ---------------------------------------------------------------- password, port, cluster

hex() { python3 -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }

if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    . "$STATE"
    log "reusing the port ($PORT) and password of the previous run in $PG_DIR"
else
    PASSWORD="$(hex 16)"
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    (
        umask 077
        printf 'PASSWORD=%q\nPORT=%q\n' "$PASSWORD" "$PORT" >"$STATE"
    )
fi
log "port $PORT (127.0.0.1), socket directory $SOCKDIR"

mkdir -p "$SOCKDIR"
chmod 700 "$SOCKDIR"
if [ -n "$RUN_AS" ]; then
    # The server's user owns the directory, its data and its socket; root keeps reading the state.
    chown "$RUN_AS:" "$PG_DIR" "$SOCKDIR"
    [ ! -d "$DATA" ] || chown -R "$RUN_AS:" "$DATA"
    as_pg test -w "$PG_DIR" ||
        die "user $RUN_AS cannot write $PG_DIR (is a parent directory not searchable by it?); use a PG_DIR or TMPDIR it can reach"
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    log "initdb $DATA"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C --no-sync \
        --auth-local=trust --auth-host=scram-sha-256 </dev/null >&2 3>&- ||
        die "initdb failed"
    printf "\n# Written by scripts/pg-start.sh: listen address, port and socket of this test cluster.\ninclude_if_exists = 'ferry-test.conf'\n" |
        as_pg tee -a "$DATA/postgresql.conf" >/dev/null
fi

# Rewritten on every start (same port): `pg_ctl start` by hand uses it as well.
as_pg tee "$DATA/ferry-test.conf" >/dev/null <<EOF
# Written by scripts/pg-start.sh: a throwaway cluster on loopback for tests.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
# No fsync: quick, and still safe against a server crash (kill, pg_ctl stop -m immediate), which
# is what tests simulate; only an OS crash could lose data. synchronous_commit stays on: off, an
# immediate stop loses the last commits.
fsync = off
shared_buffers = 32MB
max_connections = 100
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
as_pg tee "$DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/pg-start.sh: the unix socket (in a mode-700 directory) trusts its users; TCP,
# on 127.0.0.1 only, needs a password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
EOF

URL="postgres://ferry:$PASSWORD@127.0.0.1:$PORT/ferry"

# ---------------------------------------------------------------- start

pg_psql() { as_pg "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres "$@"; }

started=0
launched=0
stop_on_failure() {
    [ "$started" != 1 ] && [ "$launched" = 1 ] || return 0
    log "stopping the server this run started"
    as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 20 stop </dev/null >&2 || true
}
# Whatever goes wrong from here on, do not leave a server we started behind.
trap stop_on_failure EXIT

t0=$SECONDS
if [ -n "$running_pid" ]; then
    # Started by hand (a test's `pg_ctl start`): check it and write the exports again.
    log "PostgreSQL already running (pid $running_pid), started by someone else; checking it"
else
    log "starting: pg_ctl -D $DATA start (log: $LOGFILE)"
    launched=1
    # pg_ctl detaches the postmaster (setsid, stdin from /dev/null, output to the log); fd 3, our
    # real stdout, must not be inherited: a caller reading our stdout to EOF must not wait for it.
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t "$TIMEOUT" start </dev/null >&2 3>&-; then
        log "last lines of $LOGFILE:"
        tail -n 20 "$LOGFILE" >&2 || true
        if grep -q 'could not bind' "$LOGFILE" 2>/dev/null; then
            die "PostgreSQL could not bind 127.0.0.1:$PORT (taken by another process since the last run?)"
        fi
        die "PostgreSQL did not start"
    fi
fi
PID="$(postmaster_pid)"
ours "$PID" || die "no postmaster for $DATA after pg_ctl start (pid file says '${PID:-nothing}')"
log "postmaster pid $PID"
deadline=$((SECONDS + TIMEOUT))
until pg_psql -d postgres -c 'SELECT 1' </dev/null >/dev/null 2>&1; do
    ours "$PID" || die "the postmaster (pid $PID) exited; see $LOGFILE"
    [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL did not accept connections on $SOCKDIR within $TIMEOUT s"
    sleep 0.2
done

# The role and its database (idempotent: also after a restart, or a run that stopped half-way).
pg_psql -d postgres <<EOF
SELECT 'CREATE ROLE ferry LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ferry')\gexec
ALTER ROLE ferry LOGIN PASSWORD '$PASSWORD';
SELECT 'CREATE DATABASE ferry OWNER ferry' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ferry')\gexec
ALTER DATABASE ferry OWNER TO ferry;
EOF

# The URL itself, over TCP with the password, as the tests will use it.
who="$("$PSQL" "$URL" -X -tA -c 'SELECT current_user || chr(32) || current_database()' </dev/null 2>&1)" ||
    die "psql with PG_URL failed: $who"
[ "$who" = "ferry ferry" ] || die "psql with PG_URL answered '$who', not 'ferry ferry'"
started=1
log "ready in $((SECONDS - t0)) s: postgres://ferry:***@127.0.0.1:$PORT/ferry"

{
    printf 'export PG_URL=%q\n' "$URL"
    printf 'export PG_PORT=%q\n' "$PORT"
    printf 'export PG_DIR=%q\n' "$PG_DIR"
    printf 'export PG_PID=%q\n' "$PID"
    printf 'export PG_BIN=%q\n' "$PG_BIN"
} >"$ENVFILE"
chmod 600 "$ENVFILE"
cat "$ENVFILE" >&3
