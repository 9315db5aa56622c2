#!/bin/bash
# guest-python.sh OUTDIR REPO SCRIPT [ARGS...] - runs INSIDE the VM (started by run.sh with
# PFRELAY_KERNEL_GUEST_SCRIPT=this). Loads the modules, runs the repo's venv python on SCRIPT
# (capture_bond_down.py, soak.py, ...) with ARGS, keeps its output in OUTDIR/guest.log and its
# exit code in OUTDIR/rc (vng's own exit code does not carry it).
set -euo pipefail
OUT=${1:?outdir}
REPO=${2:?repo}
SCRIPT=${3:?script}
shift 3
# shellcheck source=/dev/null
. "$REPO/tests/kernel/guest-lib.sh"

rc=0
guest_prepare "$OUT" || rc=$?
if [ "$rc" = 0 ]; then
    cd "$REPO"
    export PFRELAY_KERNEL_GUEST=1 PFRELAY_KERNEL_OUTDIR=$OUT PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
    "$REPO/.venv/bin/python" "$SCRIPT" "$@" > "$OUT/guest.log" 2>&1 || rc=$?
fi
dmesg > "$OUT/dmesg.log" 2>&1 || true
echo "$rc" > "$OUT/rc"
