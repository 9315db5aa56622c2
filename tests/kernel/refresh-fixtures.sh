#!/bin/bash
# refresh-fixtures.sh - regenerate tests/fixtures/refreshed/ from the real kernel.
#
# Boots the same VM as run.sh and captures, verbatim, /proc/net/bonding/* and the
# sysfs bonding/ and bonding_slave/ files in these states: healthy,
# partner-expired, partner-lost, carrier-loss, two-slaves, active-backup, slow;
# and `ip -j link show pf0` with VFs auto/enable/disable/mixed.  See capture.py
# for the layout.  Replaces tests/fixtures/refreshed/ as a whole
# (PFRELAY_FIXTURES_DEST=DIR writes elsewhere, e.g. to look before replacing).
#
# Run by hand only (it rewrites files under version control); it refuses to run
# when CI is set.  Takes about a minute with a warm cache.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DEST=${PFRELAY_FIXTURES_DEST:-$REPO/tests/fixtures/refreshed}

if [ -n "${CI:-}" ]; then
    echo "refresh-fixtures.sh: CI is set; fixtures are refreshed by hand only" >&2
    exit 2
fi
OUT=${PFRELAY_KERNEL_OUTDIR:-/tmp/pfrelay-kernel-runs/refresh-$(date +%Y%m%d-%H%M%S)-$$}
export PFRELAY_KERNEL_OUTDIR=$OUT
export PFRELAY_KERNEL_GUEST_SCRIPT=$HERE/guest-capture.sh
"$HERE/run.sh"

[ -s "$OUT/captures/INDEX.tsv" ] || { echo "refresh-fixtures.sh: no captures in $OUT/captures" >&2; exit 1; }
rm -rf "$DEST.new"
cp -r "$OUT/captures" "$DEST.new"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
echo "refresh-fixtures.sh: wrote $DEST ($(find "$DEST" -type f | wc -l) files); review with git status/diff"
