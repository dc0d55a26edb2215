# Sourced by the install scripts: forbid invoke-rc.d from starting services while packages install
# (a temporary /usr/sbin/policy-rc.d that exits 101), and put back whatever policy was there before
# when the calling script exits, even on failure. Usage: `. scripts/no-services.sh; block_services NAME`.

POLICY=/usr/sbin/policy-rc.d
_policy_backup=""

_restore_policy() {
    if [ -n "$_policy_backup" ]; then
        mv -f "$_policy_backup" "$POLICY"
    else
        rm -f "$POLICY"
    fi
}

block_services() {
    if [ -e "$POLICY" ]; then
        _policy_backup="$(mktemp /usr/sbin/policy-rc.d.ferry-backup.XXXXXX)"
        cp -p "$POLICY" "$_policy_backup"
    fi
    trap _restore_policy EXIT
    printf '#!/bin/sh\n# Temporary: written by ferry %s\nexit 101\n' "$1" >"$POLICY"
    chmod 755 "$POLICY"
}
