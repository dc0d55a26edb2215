# shellcheck shell=bash
# Sourced by pg-start.sh and pg-stop.sh, after they set DATA (the cluster directory they own).

# Is $1 a live postmaster (or backend) of our cluster? PostgreSQL's processes run `postgres` and
# chdir into their data directory, so the working directory says which cluster a pid belongs to.
ours() {
    local pid="$1" cwd
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 1p | grep -q 'postgres$' || return 1
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
    [ "$cwd" = "$DATA" ] && return 0
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$DATA"
}

# The postmaster's pid, from the first line of DATA/postmaster.pid (empty when there is none).
postmaster_pid() {
    [ -f "$DATA/postmaster.pid" ] || return 0
    sed -n 1p "$DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9' || true
}
