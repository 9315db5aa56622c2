#!/bin/bash
# run.sh [PYTEST ARGS...] - run the kernel end-to-end tests (tests/kernel) in a VM.
#
# Prepares the host (setup-host.sh: Debian 6.12 kernel, patched netdevsim,
# virtme-ng, cached), boots the kernel under QEMU/TCG with virtme-ng (the
# host's / is the guest's read-only root, so this checkout and its .venv are
# visible as they are), loads bonding/netdevsim/tc modules, runs
#     <repo>/.venv/bin/python -m pytest -p no:cacheprovider <repo>/tests/kernel [PYTEST ARGS...]
# as root in the guest, prints the guest's pytest output and exits with
# pytest's exit code.  If the VM does not get as far as writing an exit code,
# prints why (end of the console log) and exits 125.
#
# Needs: root, the repo's .venv (python -m venv .venv && .venv/bin/pip install -e '.[test]').
# Env:   PFRELAY_KERNEL_OUTDIR  where the run's files go (default
#                               /tmp/pfrelay-kernel-runs/<time>); must not be under
#                               /var/cache, /var/tmp, /var/log (hidden in the guest)
#        PFRELAY_KERNEL_CACHE   setup-host.sh's cache (default /var/cache/pf-status-relay-kernel)
#        PFRELAY_KERNEL_MEM     guest memory (default 2G)
#        PFRELAY_KERNEL_CPUS    guest vCPUs (default 2)
#        PFRELAY_KERNEL_TIMEOUT seconds before the VM is killed (default 1800)
#        PFRELAY_KERNEL_PFRELAY test this pfrelay executable instead of .venv/bin/pfrelay
#        PFRELAY_KERNEL_GUEST_SCRIPT  run this guest script instead of pytest
#                               (used by refresh-fixtures.sh); it gets OUTDIR REPO ARGS...
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${PFRELAY_KERNEL_CACHE:-/var/cache/pf-status-relay-kernel}
export PFRELAY_KERNEL_CACHE=$CACHE
MEM=${PFRELAY_KERNEL_MEM:-2G}
CPUS=${PFRELAY_KERNEL_CPUS:-2}
TIMEOUT=${PFRELAY_KERNEL_TIMEOUT:-1800}
GUEST_SCRIPT=${PFRELAY_KERNEL_GUEST_SCRIPT:-$HERE/guest-pytest.sh}
VM_FAILED=125

msg() { printf '[kernel-tests] %s\n' "$*" >&2; }
die() { printf '[kernel-tests] ERROR: %s\n' "$*" >&2; exit "$VM_FAILED"; }

hidden_in_guest() {  # virtme-ng-init mounts tmpfs over these in the guest
    case "$1/" in
        /var/cache/*|/var/tmp/*|/var/log/*|/var/lib/apt/*|/run/*|/proc/*|/sys/*|/dev/*) return 0 ;;
    esac
    return 1
}

[ "$(id -u)" = 0 ] || die "must run as root"
hidden_in_guest "$REPO" && die "the checkout $REPO is hidden inside the guest (tmpfs); clone it elsewhere"
[ -x "$REPO/.venv/bin/python" ] \
    || die "no $REPO/.venv: python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
"$REPO/.venv/bin/python" -c 'import pytest' 2>/dev/null \
    || die "pytest is not installed in $REPO/.venv (.venv/bin/pip install -e '.[test]')"
[ -x "$REPO/.venv/bin/pfrelay" ] || msg "warning: $REPO/.venv/bin/pfrelay missing (pip install -e .): relay tests will fail"

"$HERE/setup-host.sh" || die "setup-host.sh failed (see above)"
# shellcheck source=/dev/null
. "$CACHE/env.sh"
# vng runs virtme-run from PATH
PATH=$(dirname "$VNG"):$PATH

OUT=${PFRELAY_KERNEL_OUTDIR:-/tmp/pfrelay-kernel-runs/$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
hidden_in_guest "$OUT" && die "OUTDIR $OUT is hidden inside the guest; use e.g. /tmp/pfrelay-kernel-runs/NAME"
case "$OUT/" in "$CACHE"/*) die "OUTDIR $OUT must not be inside $CACHE" ;; esac
rm -f "$OUT/rc" "$OUT/started"

# One VM at a time on this machine (2 cores; TCG timing matters to the tests).
exec {vmlock}>"$CACHE/.vm.lock"
if ! flock -n "$vmlock"; then
    msg "another kernel test VM is running; waiting for it"
    flock -w "$TIMEOUT" "$vmlock" || die "timed out waiting for $CACHE/.vm.lock"
fi

# The guest runs with PYTHONDONTWRITEBYTECODE=1 and reads the checkout over 9p: without .pyc
# files every pfrelay start compiles the package again under TCG. Compile once, here.
"$REPO/.venv/bin/python" -m compileall -q "$REPO/pfrelay" "$REPO/tests/kernel" >/dev/null \
    || msg "warning: compileall failed; pfrelay starts slower in the guest"

cmd="env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
if [ -n "${PFRELAY_KERNEL_PFRELAY:-}" ]; then
    cmd+=" PFRELAY_KERNEL_PFRELAY=$(printf '%q' "$PFRELAY_KERNEL_PFRELAY")"
fi
for a in "$GUEST_SCRIPT" "$OUT" "$REPO" "$@"; do cmd+=" $(printf '%q' "$a")"; done

msg "kernel $KREL, TCG, $MEM, $CPUS vCPU; guest script $(basename "$GUEST_SCRIPT"); output in $OUT"
t0=$(date +%s)
set +e
# timeout runs vng (and the qemu it starts) in its own process group and
# kills the whole group when the time is up.
timeout -k 10 "$TIMEOUT" "$VNG" -v --force-9p --disable-kvm --run "$KIMG" \
    --memory "$MEM" --cpus "$CPUS" --rodir "$CACHE" --rwdir "$OUT" \
    --exec "$cmd" > "$OUT/console.log" 2>&1 < /dev/null &
vpid=$!
trap 'kill -TERM "$vpid" 2>/dev/null; wait "$vpid" 2>/dev/null; exit 130' INT TERM
wait "$vpid"
vrc=$?
set -e
trap - INT TERM
elapsed=$(( $(date +%s) - t0 ))

for f in pytest.log guest.log; do
    if [ -s "$OUT/$f" ]; then
        cat "$OUT/$f"
        break
    fi
done
if [ -s "$OUT/rc" ]; then
    rc=$(cat "$OUT/rc")
    msg "VM ran ${elapsed}s; guest exit code $rc; files in $OUT"
    if [ "$rc" != 0 ] && [ -s "$OUT/modprobe.log" ] && ! grep -q '^modules loaded' "$OUT/modprobe.log"; then
        msg "modprobe output:"; cat "$OUT/modprobe.log" >&2
    fi
    exit "$rc"
fi
msg "the VM wrote no exit code (vng rc=$vrc after ${elapsed}s; 124 = killed after ${TIMEOUT}s)"
if [ -e "$OUT/started" ]; then msg "the guest script had started"; else msg "the guest script never started"; fi
msg "last lines of $OUT/console.log:"
tail -n 40 "$OUT/console.log" >&2 || true
exit "$VM_FAILED"
