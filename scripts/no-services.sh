# Sourced by the install scripts: forbid invoke-rc.d from starting services while packages install
# (a temporary /usr/sbin/policy-rc.d that exits 101), and put back whatever policy was there before
# when the calling script exits, even on failure. Usage: `. scripts/no-services.sh; block_services NAME; ...; restore_policy`.

POLICY=/usr/sbin/policy-rc.d
_policy_backup=""

_policy_blocked=""

# Puts the previous policy back; safe to call more than once (explicitly, then from the EXIT trap).
restore_policy() {
    [ -n "$_policy_blocked" ] || return 0
    if [ -n "$_policy_backup" ]; then
        mv -f "$_policy_backup" "$POLICY"
    else
        rm -f "$POLICY"
    fi
    _policy_blocked=""
}

block_services() {
    if [ -e "$POLICY" ]; then
        _policy_backup="$(mktemp /usr/sbin/policy-rc.d.ferry-backup.XXXXXX)"
        cp -p "$POLICY" "$_policy_backup"
    fi
    trap restore_policy EXIT
    _policy_blocked=1
    printf '#!/bin/sh\n# Temporary: written by ferry %s\nexit 101\n' "$1" >"$POLICY"
    chmod 755 "$POLICY"
}
