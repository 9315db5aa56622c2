#!/bin/bash
# guest-bench.sh OUTDIR REPO [ARGS...] - runs INSIDE the VM (bench/kernel/run.sh starts it
# through tests/kernel/run.sh).  Loads the modules as the kernel tests do, runs
# bench/kernel/reaction.py ARGS (floor.py with --floor) with the repo's venv; its output goes to
# OUTDIR/guest.log (run.sh prints it), its exit code to OUTDIR/rc.
set -euo pipefail
OUT=${1:?outdir}
REPO=${2:?repo}
shift 2
# shellcheck source=/dev/null
. "$REPO/tests/kernel/guest-lib.sh"

rc=0
guest_prepare "$OUT" || rc=$?
if [ "$rc" = 0 ]; then
    export PFRELAY_KERNEL_GUEST=1 PFRELAY_KERNEL_OUTDIR=$OUT PYTHONDONTWRITEBYTECODE=1
    script=reaction.py
    if [ "${1:-}" = --floor ]; then script=floor.py; shift; fi
    "$REPO/.venv/bin/python" "$REPO/bench/kernel/$script" "$@" > "$OUT/guest.log" 2>&1 || rc=$?
fi
dmesg > "$OUT/dmesg.log" 2>&1 || true
echo "$rc" > "$OUT/rc"
