#!/bin/bash
# guest-pytest.sh OUTDIR REPO [PYTEST ARGS...] - runs INSIDE the VM (started by run.sh).
# Loads the modules the tests need, runs the kernel tests with the repo's
# venv, keeps pytest's output in OUTDIR/pytest.log and its exit code in
# OUTDIR/rc (vng's own exit code does not carry it).
set -euo pipefail
OUT=${1:?outdir}
REPO=${2:?repo}
shift 2
# shellcheck source=/dev/null
. "$REPO/tests/kernel/guest-lib.sh"

rc=0
guest_prepare "$OUT" || rc=$?
if [ "$rc" = 0 ]; then
    cd "$REPO"
    export PFRELAY_KERNEL_GUEST=1 PFRELAY_KERNEL_OUTDIR=$OUT PYTHONDONTWRITEBYTECODE=1
    "$REPO/.venv/bin/python" -m pytest -p no:cacheprovider -p no:hypothesispytest --rootdir "$REPO" \
        -c "$REPO/pyproject.toml" "$REPO/tests/kernel" \
        --junitxml "$OUT/junit.xml" "$@" > "$OUT/pytest.log" 2>&1 || rc=$?
fi
dmesg > "$OUT/dmesg.log" 2>&1 || true
echo "$rc" > "$OUT/rc"
