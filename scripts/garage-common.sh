# Sourced by garage-start.sh and garage-stop.sh, after they set CONFIG (the garage.toml they own).

# Is $1 a live process whose command line names our config file?
ours() {
    local pid="$1"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CONFIG"
}
