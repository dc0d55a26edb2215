#!/usr/bin/env bash
# The Debian package, built and used as a user would: build it (cargo-deb, from the debug build,
# with the man pages and completions `ferry generate-assets` writes), install it with dpkg, check
# what it installed (binary, units that pass systemd-analyze verify, man page, completions, the
# ferry user, /srv/ftp, an empty users file), start the installed server from its own config on
# loopback (dropping to the ferry user), reach it with curl (upload, listing), check the transfer
# log and `ferry who`, then purge the package. Needs root and dpkg; skipped otherwise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ "$(id -u)" -ne 0 ] || ! command -v dpkg >/dev/null 2>&1; then
    echo "deb-test: skipped (needs root and dpkg)"
    exit 0
fi
fail() { echo "deb-test: FAILED: $*" >&2; exit 1; }
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
cargo build -p ferry
target/debug/ferry generate-assets target/assets >/dev/null
# The debug build (what the tests built; a release package: `cargo deb -p ferry`), compressed fast.
deb="$(cargo deb -p ferry --no-build --profile dev --no-strip --fast 2>/dev/null | tail -n 1)"
[ -f "$deb" ] || fail "cargo deb wrote no package ($deb)"
echo "deb-test: built $deb ($(du -h "$deb" | cut -f1))"

work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    dpkg --purge ferry >/dev/null 2>&1 || true
    rm -rf "$work" /srv/ftp/deb-test.txt /run/ferry
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null

# What it installed.
[ -x /usr/bin/ferry ] || fail "/usr/bin/ferry"
/usr/bin/ferry --version | grep -q '^ferry ' || fail "ferry --version"
for f in /lib/systemd/system/ferry.service /lib/systemd/system/ferry.socket /etc/ferry/ferry.toml \
         /etc/logrotate.d/ferry /usr/share/bash-completion/completions/ferry /usr/share/doc/ferry/operations.md; do
    [ -f "$f" ] || fail "$f is missing"
done
ls /usr/share/man/man1/ferry.1* >/dev/null 2>&1 || fail "no man page"
ls /usr/share/man/man1/ferry-serve.1* >/dev/null 2>&1 || fail "no ferry-serve man page"
getent passwd ferry >/dev/null || fail "no ferry user"
[ "$(stat -c %U /srv/ftp)" = ferry ] || fail "/srv/ftp is not ferry's"
[ "$(stat -c '%U %a' /etc/ferry/users.toml)" = "ferry 600" ] || fail "/etc/ferry/users.toml"
out="$(systemd-analyze verify --man=no /lib/systemd/system/ferry.service /lib/systemd/system/ferry.socket 2>&1)" \
    || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify said: $out"
echo "deb-test: files, user, directories and units are in place; the units verify"

# The installed server, from its own config, on loopback.
echo "deb-pass-1" | /usr/bin/ferry user add alice --users /etc/ferry/users.toml --password-stdin >/dev/null
install -d -o ferry -g ferry /run/ferry
/usr/bin/ferry serve --config /etc/ferry/ferry.toml --listen 127.0.0.1:0 --run-as ferry \
    >"$work/out" 2>"$work/err" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/out" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out" | sed -n 1p)"
[ -n "$port" ] || fail "the installed server did not start: $(cat "$work/err")"
echo "hello from the package" > "$work/up.txt"
curl -sS --max-time 20 -T "$work/up.txt" "ftp://alice:deb-pass-1@127.0.0.1:$port/deb-test.txt" || fail "curl upload"
listing="$(curl -sS --max-time 20 --list-only "ftp://alice:deb-pass-1@127.0.0.1:$port/")" || fail "curl list"
echo "$listing" | grep -qx 'deb-test.txt' || fail "listing: $listing"
[ "$(stat -c %U /srv/ftp/deb-test.txt)" = ferry ] || fail "the upload is not the ferry user's"
cmp -s "$work/up.txt" /srv/ftp/deb-test.txt || fail "the upload differs"
grep -q ' /deb-test.txt b _ i r alice ftp 0 \* c$' /var/log/ferry/xferlog || fail "xferlog: $(cat /var/log/ferry/xferlog)"
grep -q 'sandbox: Landlock' "$work/err" || fail "not confined: $(cat "$work/err")"
who="$(/usr/bin/ferry who --config /etc/ferry/ferry.toml)" || fail "ferry who: $who"
echo "deb-test: the installed server served curl (upload, listing), wrote the transfer log, runs as ferry, sandboxed"
kill "$server"; wait "$server" 2>/dev/null || true; server=""

dpkg --purge ferry >/dev/null
[ ! -e /usr/bin/ferry ] || fail "/usr/bin/ferry is still there after purge"
echo "deb-test: purged; all checks passed"
