# shellcheck shell=bash
# Sourced by slapd-start.sh and slapd-stop.sh, after they set CONFDIR (the slapd.d they own).

# Is $1 a live process whose command line names our configuration directory (slapd -F CONFDIR)?
ours() {
    local pid="$1"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CONFDIR"
}
