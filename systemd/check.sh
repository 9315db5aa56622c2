#!/usr/bin/env bash
# Static checks of systemd/pf-status-relay.service (`make systemd-check`, CI):
#   1. systemd-analyze verify of the unit exactly as shipped: any message fails;
#   2. the sysusers.d file creates the User=/Group= the unit runs as;
#   3. ExecStart's command line is one `pfrelay` accepts;
#   4. systemd-analyze security --offline: the exposure score must be <= MAX_EXPOSURE (1.1,
#      what the unit scores today: a change that loosens the sandbox fails here; issue 13).
#
# Why a scratch root for verify: `systemd-analyze verify` insists that every Exec*= binary
# exists and is executable, and CI has no package installed, so /usr/bin/pfrelay is absent.
# With --root=DIR (systemd >= 250) it resolves the binaries, and the units the service
# depends on (sysinit.target, ...), inside DIR. So DIR gets a copy of the host's unit
# directory, a stand-in /usr/bin/pfrelay, the host's kill, and the unit file untouched;
# nothing is rewritten, and nothing is installed on the host.
#
# The unit targets systemd 252 (RHEL 9). Debian 12 has 252 too, so verify catches settings
# that 252 does not know (e.g. Type=notify-reload, which needs 253). The only thing this
# script may install is systemd itself, from apt, if systemd-analyze is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
unit=${UNIT:-$here/pf-status-relay.service}  # UNIT= checks another copy (the tests do)
name=$(basename "$unit")
sysusers="$here/pf-status-relay.sysusers.conf"
max_exposure=${MAX_EXPOSURE:-1.1}
pfrelay=${PFRELAY:-$repo/.venv/bin/pfrelay}

fail() { echo "FAIL: $*" >&2; exit 1; }

if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "systemd-analyze missing: installing systemd from apt"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null
    else
        fail "systemd-analyze not found (install systemd)"
    fi
fi
version=$(systemd-analyze --version | head -n1)
echo "using: $version"
case "$version" in
    "systemd 252 "*) ;;
    *) echo "note: the unit targets systemd 252 (RHEL 9); verify here checks against ${version%% (*}" ;;
esac

unitdir=
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -e "$d/sysinit.target" ]; then unitdir=$d; break; fi
done
[ -n "$unitdir" ] || fail "no systemd unit directory with sysinit.target on this machine"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/usr/lib/sysusers.d" \
    "$root/etc/systemd/system"
ln -s usr/bin "$root/bin"
ln -s usr/bin "$root/sbin"
ln -s usr/lib "$root/lib"
cp -a "$unitdir" "$root/usr/lib/systemd/system"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/pfrelay"
chmod 0755 "$root/usr/bin/pfrelay"
cp "$(type -P kill)" "$root/usr/bin/kill"
cp "$unit" "$root/etc/systemd/system/$name"

echo "== systemd-analyze verify $name"
# systemd 252 reports unknown keys and unparsable values as warnings with exit status 0,
# so any output at all is a failure.
if ! out=$(systemd-analyze verify --root="$root" "$name" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify exited non-zero"
fi
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify has something to say about $name"
fi
echo "ok"

echo "== sysusers.d creates the service's user and group"
cp "$sysusers" "$root/usr/lib/sysusers.d/pf-status-relay.conf"
systemd-sysusers --root="$root" >/dev/null 2>&1 || fail "systemd-sysusers failed on $sysusers"
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
[ -n "$user" ] || fail "the unit has no User="
grep -q "^$user:" "$root/etc/passwd" || fail "sysusers.d does not create user $user"
[ -z "$group" ] || grep -q "^$group:" "$root/etc/group" || fail "sysusers.d does not create group $group"
echo "ok: $user${group:+:$group}"

echo "== ExecStart is a command line pfrelay accepts"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "${exec_start%% *}" = /usr/bin/pfrelay ] || fail "ExecStart does not run /usr/bin/pfrelay: $exec_start"
if [ -x "$pfrelay" ]; then
    read -r -a argv <<<"${exec_start#/usr/bin/pfrelay}"
    "$pfrelay" "${argv[@]}" --help >/dev/null || fail "'pfrelay ${argv[*]} --help' failed"
    echo "ok: pfrelay ${argv[*]}"
else
    echo "skipped: $pfrelay not found (make venv)"
fi

echo "== systemd-analyze security --offline=yes $name (must be <= $max_exposure)"
report=$(systemd-analyze security --offline=yes --root="$root" --no-pager "$name" 2>&1) ||
    { printf '%s\n' "$report" >&2; fail "systemd-analyze security failed"; }
# What is still exposed, for the log: the lines marked with a cross.
printf '%s\n' "$report" | grep '✗' || true
score_line=$(printf '%s\n' "$report" | grep 'Overall exposure level' || true)
[ -n "$score_line" ] || { printf '%s\n' "$report" >&2; fail "no exposure score in the report"; }
echo "$score_line"
score=$(printf '%s\n' "$score_line" | sed -n 's/.*: \([0-9][0-9]*\.[0-9]\).*/\1/p')
[ -n "$score" ] || fail "cannot read the score from: $score_line"
if awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
    fail "exposure $score is above $max_exposure"
fi
echo "ok: exposure $score <= $max_exposure"
