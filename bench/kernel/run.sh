#!/bin/bash
# bench/kernel/run.sh [ARGS...] - the kernel reaction benchmark (figures, no pass/fail).
#
# Boots the VM of the kernel tests (tests/kernel/run.sh: same setup, kernel, lock
# and output folder) and runs bench/kernel/reaction.py ARGS in it instead of pytest
# (see reaction.py --help for ARGS; --floor runs floor.py instead: what one netlink
# request costs).  Prints the table; exits 0 unless a trial
# failed.  About 5 minutes; files in /tmp/pfrelay-kernel-runs/<time>/ (guest.log,
# reaction.tsv, bench/<trial>/: relay log, its ip calls, monitor lines, sysfs changes).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PFRELAY_KERNEL_GUEST_SCRIPT=$HERE/guest-bench.sh
export PFRELAY_KERNEL_TIMEOUT=${PFRELAY_KERNEL_TIMEOUT:-900}
exec "$HERE/../../tests/kernel/run.sh" "$@"
