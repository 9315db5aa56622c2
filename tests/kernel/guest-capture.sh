#!/bin/bash
# guest-capture.sh OUTDIR REPO - runs INSIDE the VM (started by refresh-fixtures.sh
# through run.sh).  Writes the captures into OUTDIR/captures (the checkout is
# read-only in the guest; the host copies them into tests/fixtures/refreshed/),
# the trace into OUTDIR/guest.log and the exit code into OUTDIR/rc.
set -euo pipefail
OUT=${1:?outdir}
REPO=${2:?repo}
# shellcheck source=/dev/null
. "$REPO/tests/kernel/guest-lib.sh"

rc=0
guest_prepare "$OUT" || rc=$?
if [ "$rc" = 0 ]; then
    PYTHONDONTWRITEBYTECODE=1 "$REPO/.venv/bin/python" "$REPO/tests/kernel/capture.py" \
        "$OUT/captures" > "$OUT/guest.log" 2>&1 || rc=$?
fi
dmesg > "$OUT/dmesg.log" 2>&1 || true
echo "$rc" > "$OUT/rc"
