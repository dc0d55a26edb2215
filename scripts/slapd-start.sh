#!/usr/bin/env bash
# Start a throwaway OpenLDAP slapd on loopback for tests, and print how to reach it.
#
#   eval "$(bash scripts/slapd-start.sh)"      # exports LDAP_* for this shell
#   LDAPTLS_CACERT=$LDAP_CA ldapwhoami -x -ZZ -H "$LDAP_URL" -D uid=lara,ou=people,$LDAP_BASE -w lara-pw
#   bash scripts/slapd-stop.sh "$LDAP_DIR"     # LDAP_WIPE=1 also deletes the state directory
#
# stdout carries ONLY `export VAR=value` lines: LDAP_URL (ldap://127.0.0.1:PORT, StartTLS too),
# LDAPS_URL (ldaps://127.0.0.1:PORT2), LDAP_CA (the test CA's PEM), LDAP_BASE (dc=ferry,dc=test),
# LDAP_ADMIN_DN, LDAP_ADMIN_PW, LDAP_DIR, LDAP_PID; progress goes to stderr.
#
# The directory: Debian's /usr/sbin/slapd with a cn=config (LDAP_DIR/slapd.d) made by slapadd -n 0,
# an mdb database (LDAP_DIR/db) for dc=ferry,dc=test whose rootdn cn=admin,dc=ferry,dc=test has a
# random password (cn=admin,cn=config has the same one, for cn=config), the core, cosine, nis,
# inetorgperson and Ferry (contrib/ldap/ferry.schema.ldif) schemas, and the entries of
# tests/interop/ldap/seed.ldif (lara, leo, ftpusers, the search account cn=ferry-search). TLS: a
# self-signed CA and a server certificate for 127.0.0.1 (and localhost), made with openssl in
# LDAP_DIR/tls. ACLs: anyone may bind (auth) with an entry's userPassword and nobody else reads it;
# cn=ferry-search reads ou=people and ou=groups; users read their own entry and ou=groups;
# anonymous reads nothing.
#
# Environment (all optional):
#   LDAP_DIR            state directory (slapd.d, db, tls, slapd.log, state, env); default: mktemp -d
#   LDAP_SEED           the LDIF loaded into a new database (default tests/interop/ldap/seed.ldif)
#   SLAPD_BIN           the slapd binary (default /usr/sbin/slapd, else slapd in PATH)
#   SLAPD_DEBUG         slapd -d level, written to LDAP_DIR/slapd.log (default 256: stats)
#   LDAP_START_TIMEOUT  seconds to wait for binds to succeed (default 30)
#   LDAP_FRESH=1        wipe the state in LDAP_DIR first
#
# Ports: two free loopback ports picked by the kernel (bind to port 0), never fixed ones.
# Re-running with the same LDAP_DIR while its slapd runs prints the same exports again; with a
# stopped slapd it restarts it ON THE SAME PORTS with the same data and passwords.
set -euo pipefail

# Everything on stdout except the final exports goes to stderr.
exec 3>&1 1>&2

log() { echo "slapd-start: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BASE="dc=ferry,dc=test"
ADMIN_DN="cn=admin,$BASE"
SEARCH_DN="cn=ferry-search,$BASE"

# ---------------------------------------------------------------- binaries and tools

if [ -z "${SLAPD_BIN:-}" ]; then
    SLAPD_BIN=/usr/sbin/slapd
    [ -x "$SLAPD_BIN" ] || SLAPD_BIN="$(command -v slapd 2>/dev/null || true)"
fi
if [ -z "$SLAPD_BIN" ] || [ ! -x "$SLAPD_BIN" ]; then
    die "slapd not found (/usr/sbin/slapd, PATH, SLAPD_BIN); run scripts/install-test-deps.sh"
fi
SBIN="$(dirname "$SLAPD_BIN")"
tool() {
    if [ -x "$SBIN/$1" ]; then
        echo "$SBIN/$1"
    else
        command -v "$1" 2>/dev/null || die "$1 not found; run scripts/install-test-deps.sh"
    fi
}
SLAPADD="$(tool slapadd)"
SLAPPASSWD="$(tool slappasswd)"
for t in ldapwhoami ldapsearch openssl python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found; run scripts/install-test-deps.sh"
done
log "using $SLAPD_BIN ($("$SLAPD_BIN" -VV 2>&1 | sed -n 1p | sed 's/^[@(#) $]*//; s/ *[$]$//'))"

SEED="${LDAP_SEED:-$REPO/tests/interop/ldap/seed.ldif}"
SCHEMA_DIR=/etc/ldap/schema
FERRY_SCHEMA="$REPO/contrib/ldap/ferry.schema.ldif"
for f in "$SEED" "$FERRY_SCHEMA" "$SCHEMA_DIR"/{core,cosine,nis,inetorgperson}.ldif; do
    [ -r "$f" ] || die "$f not found"
done
TIMEOUT="${LDAP_START_TIMEOUT:-30}"
case "$TIMEOUT" in '' | *[!0-9]*) die "LDAP_START_TIMEOUT must be a number of seconds" ;; esac
DEBUG="${SLAPD_DEBUG:-256}"

# ---------------------------------------------------------------- state directory

if [ -z "${LDAP_DIR:-}" ]; then
    LDAP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ferry-slapd.XXXXXXXX")"
    log "state directory $LDAP_DIR (new)"
else
    mkdir -p "$LDAP_DIR"
    log "state directory $LDAP_DIR"
fi
LDAP_DIR="$(cd "$LDAP_DIR" && pwd -P)"
chmod 700 "$LDAP_DIR"
CONFDIR="$LDAP_DIR/slapd.d"
DBDIR="$LDAP_DIR/db"
TLSDIR="$LDAP_DIR/tls"
PIDFILE="$LDAP_DIR/slapd.pid"
LOGFILE="$LDAP_DIR/slapd.log"
STATE="$LDAP_DIR/state"
ENVFILE="$LDAP_DIR/env"

# shellcheck source=scripts/slapd-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/slapd-common.sh"

running_pid=""
if [ -f "$PIDFILE" ]; then
    running_pid="$(tr -dc '0-9' <"$PIDFILE" || true)"
    ours "$running_pid" || running_pid=""
fi

if [ "${LDAP_FRESH:-0}" = 1 ]; then
    if [ -n "$running_pid" ]; then
        die "LDAP_FRESH=1 but slapd (pid $running_pid) is running on $LDAP_DIR; stop it first (scripts/slapd-stop.sh)"
    fi
    log "LDAP_FRESH=1: wiping the state in $LDAP_DIR"
    rm -rf "$CONFDIR" "$DBDIR" "$TLSDIR" "$PIDFILE" "$LOGFILE" "$STATE" "$ENVFILE" "$LDAP_DIR/slapd.args"
fi

if [ -n "$running_pid" ] && [ -f "$ENVFILE" ]; then
    log "slapd already running (pid $running_pid); reusing it"
    cat "$ENVFILE" >&3
    exit 0
fi

# ---------------------------------------------------------------- password, ports

if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    . "$STATE"
    log "reusing the ports and password of the previous run in $LDAP_DIR"
else
    ADMIN_PW="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    # Two distinct free loopback ports, chosen by the kernel.
    read -r PORT TLS_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)
    (
        umask 077
        printf 'ADMIN_PW=%q\nPORT=%q\nTLS_PORT=%q\n' "$ADMIN_PW" "$PORT" "$TLS_PORT" >"$STATE"
    )
fi
URL="ldap://127.0.0.1:$PORT"
LDAPS="ldaps://127.0.0.1:$TLS_PORT"
CA="$TLSDIR/ca.pem"
log "ports: ldap $PORT (StartTLS too), ldaps $TLS_PORT (127.0.0.1)"

# ---------------------------------------------------------------- TLS: a test CA and a server cert

if [ ! -s "$TLSDIR/server.pem" ] || [ ! -s "$TLSDIR/server.key" ] || [ ! -s "$CA" ]; then
    log "making a test CA and a server certificate for 127.0.0.1 in $TLSDIR"
    rm -rf "$TLSDIR"
    mkdir -m 700 "$TLSDIR"
    (
        umask 077
        cd "$TLSDIR"
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout ca.key -out ca.pem -days 365 -subj "/O=Ferry tests/CN=Ferry test CA $(date -u +%FT%TZ)" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" 2>/dev/null
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout server.key -out server.csr -subj "/O=Ferry tests/CN=127.0.0.1" 2>/dev/null
        printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            "authorityKeyIdentifier=keyid" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 365 \
            -set_serial "0x$(python3 -c 'import secrets; print(secrets.token_hex(16))')" \
            -extfile server.ext -out server.pem 2>/dev/null
        rm -f server.csr server.ext
        chmod 644 ca.pem server.pem
    ) || die "openssl could not make the test certificates"
    openssl verify -CAfile "$CA" "$TLSDIR/server.pem" >&2 || die "the server certificate does not verify against the test CA"
fi

# ---------------------------------------------------------------- cn=config and the database

# The directory holding back_mdb as a loadable module (Debian: /usr/lib/ldap); none when built in.
MODULE_DIR=""
for d in /usr/lib/ldap /usr/lib/x86_64-linux-gnu/ldap /usr/lib64/openldap /usr/lib/openldap /usr/libexec/openldap; do
    if compgen -G "$d/back_mdb*.so*" >/dev/null || compgen -G "$d/back_mdb.la" >/dev/null; then
        MODULE_DIR="$d"
        break
    fi
done

if [ ! -f "$CONFDIR/cn=config.ldif" ]; then
    log "writing cn=config into $CONFDIR (slapadd -n 0)"
    rm -rf "$CONFDIR" "$CONFDIR.new" "$DBDIR"
    mkdir -m 700 "$CONFDIR.new" "$DBDIR"
    hash="$("$SLAPPASSWD" -h '{SSHA}' -s "$ADMIN_PW")"
    config="$LDAP_DIR/config.ldif"
    {
        cat <<EOF
# Written by scripts/slapd-start.sh: a throwaway slapd on loopback for tests.
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $PIDFILE
olcArgsFile: $LDAP_DIR/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: $CA
olcTLSCertificateFile: $TLSDIR/server.pem
olcTLSCertificateKeyFile: $TLSDIR/server.key
olcTLSProtocolMin: 3.3
olcTLSVerifyClient: never

EOF
        if [ -n "$MODULE_DIR" ]; then
            cat <<EOF
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULE_DIR
olcModuleLoad: back_mdb

EOF
        fi
        cat <<EOF
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

EOF
        for f in "$SCHEMA_DIR"/{core,cosine,nis,inetorgperson}.ldif "$FERRY_SCHEMA"; do
            cat "$f"
            printf '\n'
        done
        cat <<EOF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config
olcRootPW: $hash
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $DBDIR
olcSuffix: $BASE
olcRootDN: $ADMIN_DN
olcRootPW: $hash
olcDbMaxSize: 268435456
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: cn eq
olcDbIndex: member eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to dn.subtree="ou=people,$BASE" by self read by dn.exact="$SEARCH_DN" read by * none
olcAccess: {2}to dn.subtree="ou=groups,$BASE" by dn.exact="$SEARCH_DN" read by users read by * none
olcAccess: {3}to * by dn.exact="$SEARCH_DN" read by self read by * none
EOF
    } >"$config"
    chmod 600 "$config"
    "$SLAPADD" -n 0 -F "$CONFDIR.new" -l "$config" >&2 || die "slapadd -n 0 (cn=config) failed; see $config"
    mv "$CONFDIR.new" "$CONFDIR"
fi

if [ ! -f "$DBDIR/data.mdb" ]; then
    log "loading $SEED into $BASE (slapadd)"
    rm -rf "$DBDIR"
    mkdir -m 700 "$DBDIR"
    if ! "$SLAPADD" -F "$CONFDIR" -b "$BASE" -l "$SEED" >&2; then
        rm -rf "$DBDIR"
        die "slapadd of $SEED failed"
    fi
fi

# ---------------------------------------------------------------- start, poll, stop

PID=""
LISTEN="ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$TLS_PORT/"

# Starts slapd in the foreground (-d: no fork, its log on stderr into LOGFILE), detached (own
# session; stdin, stdout, stderr and fd 3, our real stdout, not inherited: a caller reading our
# stdout to EOF must not wait for slapd), and records its pid. slapd sizes tables by the descriptor
# limit, so it runs with a soft limit of 1024.
start_server() {
    log "starting: $SLAPD_BIN -F $CONFDIR -h '$LISTEN' -d $DEBUG (log: $LOGFILE)"
    printf '\n==== %s: slapd -h %s\n' "$(date -u +%FT%TZ)" "$LISTEN" >>"$LOGFILE"
    rm -f "$PIDFILE"
    (
        ulimit -Sn 1024 2>/dev/null || true
        exec setsid "$SLAPD_BIN" -F "$CONFDIR" -h "$LISTEN" -d "$DEBUG" </dev/null >>"$LOGFILE" 2>&1 3>&-
    ) &
    PID=$!
    # setsid execs in place unless it is a process-group leader; check we recorded slapd itself.
    sleep 0.05
    if [ -r "/proc/$PID/cmdline" ] && ! ours "$PID"; then
        local child
        child="$(pgrep -P "$PID" 2>/dev/null | sed -n 1p || true)"
        if [ -n "$child" ] && ours "$child"; then
            PID="$child"
        fi
    fi
    echo "$PID" >"$PIDFILE"
    log "slapd pid $PID"
}

stop_server() {
    [ -n "$PID" ] || return 0
    if ours "$PID"; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            ours "$PID" || break
            sleep 0.1
        done
        if ours "$PID"; then
            kill -KILL "$PID" 2>/dev/null || true
        fi
    fi
    wait "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    PID=""
}

# The checks the tests rely on: the admin binds on the plain port, with StartTLS and over LDAPS,
# verifying the server certificate against the test CA.
export LDAPTLS_CACERT="$CA" LDAPTLS_REQCERT=demand
admin_whoami() { ldapwhoami -x -o nettimeout=3 -D "$ADMIN_DN" -w "$ADMIN_PW" "$@" </dev/null >/dev/null 2>&1; }
wait_ready() {
    local deadline=$((SECONDS + TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! ours "$PID"; then
            log "slapd exited before answering"
            return 1
        fi
        if admin_whoami -H "$URL" && admin_whoami -ZZ -H "$URL" && admin_whoami -H "$LDAPS"; then
            return 0
        fi
        sleep 0.1
    done
    log "no successful bind (ldap, StartTLS, ldaps) within ${TIMEOUT} s"
    return 2
}

started=0
# Whatever goes wrong from here on, do not leave a slapd we started behind.
trap 'if [ "$started" != 1 ]; then stop_server; fi' EXIT
t0=$SECONDS
start_server
if ! wait_ready; then
    stop_server
    log "last lines of $LOGFILE:"
    tail -n 30 "$LOGFILE" >&2 || true
    if grep -q 'Address already in use' "$LOGFILE" 2>/dev/null; then
        die "slapd could not bind 127.0.0.1:$PORT or :$TLS_PORT (taken by another process since the last run?)"
    fi
    die "slapd did not start"
fi
# The seed is there: the search account finds lara.
found="$(ldapsearch -x -LLL -o nettimeout=3 -H "$URL" -D "$SEARCH_DN" -w search-pw -b "ou=people,$BASE" '(uid=lara)' dn </dev/null 2>&1)" ||
    die "search as $SEARCH_DN failed: $found"
case "$found" in *"uid=lara,ou=people,$BASE"*) ;; *) die "search as $SEARCH_DN did not find uid=lara: $found" ;; esac
started=1
log "ready in $((SECONDS - t0)) s: $URL, $LDAPS, base $BASE"

{
    printf 'export LDAP_URL=%q\n' "$URL"
    printf 'export LDAPS_URL=%q\n' "$LDAPS"
    printf 'export LDAP_CA=%q\n' "$CA"
    printf 'export LDAP_BASE=%q\n' "$BASE"
    printf 'export LDAP_ADMIN_DN=%q\n' "$ADMIN_DN"
    printf 'export LDAP_ADMIN_PW=%q\n' "$ADMIN_PW"
    printf 'export LDAP_DIR=%q\n' "$LDAP_DIR"
    printf 'export LDAP_PID=%q\n' "$PID"
} >"$ENVFILE"
chmod 600 "$ENVFILE"
cat "$ENVFILE" >&3
