"""Capture what the kernel shows when the PF's bond is set administratively down (issue 12,
finding 4); runs INSIDE the VM (``tests/kernel/run.sh`` with ``guest-bond-down.sh``).

Usage: python capture_bond_down.py OUTDIR

Writes verbatim outputs named like ``tests/fixtures`` (``<what>.<kernel>.txt``) into OUTDIR and
one row per capture (time, file, rc, command) into ``OUTDIR/INDEX.<kernel>.bond-admin-down.tsv``.
Two scenarios, each from a fresh standard topology (pf0 in bond0, 802.3ad fast, LACP up):

- ``admin-down``: ``ip link set bond0 down``; the peer keeps its LACP config and expires our
  port (we stop sending). Captured at +0.5 s, once the peer has expired us, and at +12 s;
  then ``ip link set bond0 up`` and captured until LACP is up again.
- ``admin-down-peer-blocked``: bond0 down, then the peer drops LACPDUs both ways (a switch that
  gives up on the port): captured after 8 s.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import klab

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/captures-bond-down")
KREL = platform.release()
INDEX = OUT / f"INDEX.{KREL}.bond-admin-down.tsv"

SYSDUMP = r"""sysdump() {
    local d=$1 f
    echo "\$ ls -l $d"
    ls -l "$d"
    for f in "$d"/*; do
        [ -f "$f" ] || continue
        echo
        echo "==> $f <=="
        cat "$f" 2>&1
    done
}
"""


def cap(name: str, argv: Sequence[str], shown: str = "") -> None:
    """Run argv; keep its stdout+stderr verbatim in OUT/<name>.<krel>.txt; index it."""
    proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    path = OUT / f"{name}.{KREL}.txt"
    path.write_bytes(proc.stdout)
    stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    with open(INDEX, "a") as handle:
        handle.write(f"{stamp}\t{path.name}\trc={proc.returncode}\t{shown or ' '.join(argv)}\n")
    print(f"[capture] {path.name} rc={proc.returncode}", flush=True)


def sysdump(name: str, directory: str) -> None:
    cap(name, ["bash", "-c", SYSDUMP + f'sysdump "{directory}"'], f"sysdump {directory}")


def heads(name: str, files: Sequence[str]) -> None:
    """``head`` of several small files (one command, the head(1) layout)."""
    cap(name, ["head", "-v", *files])


def state(label: str, with_peer: bool = True) -> None:
    """Everything about bond0 and pf0 (and the peer's bond) at this moment."""
    cap(f"proc-net-bonding-bond0-{label}", ["cat", "/proc/net/bonding/bond0"])
    sysdump(f"sysfs-pf0-bonding_slave-{label}", "/sys/class/net/pf0/bonding_slave")
    sysdump(f"sysfs-bond0-bonding-{label}", "/sys/class/net/bond0/bonding")
    heads(
        f"sysfs-bond0-pf0-link-files-{label}",
        [
            f"/sys/class/net/{dev}/{f}"
            for dev in ("bond0", "pf0")
            for f in ("operstate", "flags", "carrier")
        ],
    )
    cap(f"ip-d-link-show-bond0-{label}", [klab.IP, "-d", "link", "show", "dev", "bond0"])
    if with_peer:
        cap(
            f"proc-net-bonding-swbond-peer-{label}",
            [klab.IP, "netns", "exec", klab.PEER_NS, "cat", "/proc/net/bonding/swbond"],
        )


def peer_expired() -> bool:
    """The peer's port no longer has our port in sync (its partner state lost SYNC)."""
    proc = subprocess.run(
        [
            klab.IP,
            "netns",
            "exec",
            klab.PEER_NS,
            "cat",
            "/sys/class/net/swp0/bonding_slave/ad_partner_oper_port_state",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(proc.stdout.strip()) & 0x08 == 0
    except ValueError:
        return False


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []

    # --- scenario 1: admin down, the peer keeps LACP and expires us ------------------------
    topo = klab.Topology()
    klab.standard_topology(topo, num_vfs=4)
    state("802.3ad-before-admin-down")
    t0 = time.monotonic()
    klab.ip("link", "set", "dev", "bond0", "down")
    time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
    state("admin-down-step1-+0.5s")
    try:
        klab.wait_for("peer expired our port", peer_expired, timeout=15, interval=0.1)
        notes.append(f"peer lost SYNC {time.monotonic() - t0:.2f}s after bond0 down")
        state(f"admin-down-step2-peer-expired-+{time.monotonic() - t0:.1f}s")
    except AssertionError as exc:
        notes.append(f"peer never lost SYNC: {exc}")
    time.sleep(max(0.0, 12 - (time.monotonic() - t0)))
    state("admin-down-step3-+12s")
    t_up = time.monotonic()
    klab.ip("link", "set", "dev", "bond0", "up")
    time.sleep(0.3)
    state("admin-up-step1-+0.3s")
    try:
        t_lacp = klab.wait_lacp("pf0", True, timeout=60)
        notes.append(f"LACP up {t_lacp - t_up:.2f}s after bond0 up")
        state(f"admin-up-step2-lacp-up-+{time.monotonic() - t_up:.1f}s")
    except AssertionError as exc:
        notes.append(f"LACP not up after bond0 up: {exc}")
    topo.cleanup()

    # --- scenario 2: admin down, then the peer drops LACPDUs (gives up on the port) -------
    topo = klab.Topology()
    klab.standard_topology(topo, num_vfs=4)
    t0 = time.monotonic()
    klab.ip("link", "set", "dev", "bond0", "down")
    topo.block_lacpdus()
    time.sleep(max(0.0, 8 - (time.monotonic() - t0)))
    state("admin-down-peer-blocked-+8s")
    topo.cleanup()

    (OUT / "notes.txt").write_text("".join(n + "\n" for n in notes))
    print("\n".join(notes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
