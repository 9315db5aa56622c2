"""Capture verbatim kernel output for the fake-tree tests; runs INSIDE the VM (refresh-fixtures.sh).

Usage: python capture.py OUTDIR

For each state it writes a tree shaped like the host, so a test can point ``--procfs`` and
``--sysfs`` at it::

    OUTDIR/<state>/proc/net/bonding/<bond>
    OUTDIR/<state>/sys/class/net/<bond>/bonding/<file>
    OUTDIR/<state>/sys/class/net/<slave>/bonding_slave/<file>
    OUTDIR/<state>/sys/class/net/<slave>/{carrier,operstate,device/sriov_numvfs}
    OUTDIR/<state>/ip-d-j-link-show-<slave>.json
    OUTDIR/vfs/ip-j-link-show-pf0-<auto|enable|disable|mixed>.json (and ip -d -j)
    OUTDIR/INDEX.tsv   state, what was done to get there, kernel version

Files are the kernel's bytes as read; a file the kernel refuses to read is left out and
listed in INDEX.tsv.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import klab

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/captures")
INDEX: List[str] = []
SLAVE_EXTRA = ("carrier", "operstate", "mtu", "address")


def note(state: str, text: str) -> None:
    INDEX.append(f"{state}\t{text}")
    print(f"[capture] {state}: {text}", flush=True)


def copy_file(src: Path, dst: Path, state: str) -> None:
    try:
        data = src.read_bytes()
    except OSError as exc:
        note(state, f"unreadable {src}: {exc.strerror}")
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)


def copy_dir(src: Path, dst: Path, state: str) -> None:
    for entry in sorted(src.iterdir()):
        if entry.is_file() and not entry.is_symlink():
            copy_file(entry, dst / entry.name, state)


def snapshot(state: str, bonds: Sequence[str], slaves: Sequence[str], how: str) -> None:
    root = OUT / state
    note(state, how)
    for bond in bonds:
        copy_file(Path("/proc/net/bonding") / bond, root / "proc/net/bonding" / bond, state)
        copy_dir(klab.SYS_NET / bond / "bonding", root / f"sys/class/net/{bond}/bonding", state)
        for name in SLAVE_EXTRA:
            copy_file(klab.SYS_NET / bond / name, root / f"sys/class/net/{bond}/{name}", state)
    masters = klab.SYS_NET / "bonding_masters"
    copy_file(masters, root / "sys/class/net/bonding_masters", state)
    for slave in slaves:
        base = klab.SYS_NET / slave
        copy_dir(base / "bonding_slave", root / f"sys/class/net/{slave}/bonding_slave", state)
        for name in SLAVE_EXTRA:
            copy_file(base / name, root / f"sys/class/net/{slave}/{name}", state)
        numvfs = base / "device" / "sriov_numvfs"
        if numvfs.exists():
            copy_file(numvfs, root / f"sys/class/net/{slave}/device/sriov_numvfs", state)
        (root / f"ip-d-j-link-show-{slave}.json").write_text(
            klab.ip("-d", "-j", "link", "show", "dev", slave)
        )
        note(state, f"{slave}: {klab.slave_state(slave)}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    note("-", f"kernel {platform.release()} ({os.uname().version}); {klab.ip('-V').strip()}")

    # healthy: one slave, 802.3ad, lacp_rate fast, LACP up (63/63); then the VF states
    topo = klab.Topology()
    klab.standard_topology(topo, num_vfs=8)
    snapshot("healthy", ["bond0"], ["pf0"], "bond0 802.3ad fast, one slave, LACP up")
    vfs = OUT / "vfs"
    vfs.mkdir(parents=True, exist_ok=True)
    for st in ("auto", "enable", "disable"):
        klab.set_vf_states("pf0", {vf: st for vf in range(8)})
        (vfs / f"ip-j-link-show-pf0-{st}.json").write_text(klab.ip("-j", "link", "show", "pf0"))
        (vfs / f"ip-d-j-link-show-pf0-{st}.json").write_text(
            klab.ip("-d", "-j", "link", "show", "pf0")
        )
    mixed = dict(enumerate(["auto", "disable", "enable"] * 3))
    klab.set_vf_states("pf0", {vf: mixed[vf] for vf in range(8)})
    (vfs / "ip-j-link-show-pf0-mixed.json").write_text(klab.ip("-j", "link", "show", "pf0"))
    note("vfs", "pf0 8 VFs: all auto / all enable / all disable / mixed (auto,disable,enable,...)")
    klab.set_vf_states("pf0", {vf: "auto" for vf in range(8)})

    # partner lost: LACPDUs dropped both ways on the peer; first EXPIRED, then DEFAULTED
    topo.block_lacpdus()
    klab.wait_lacp("pf0", up=False, timeout=10)
    snapshot("partner-expired", ["bond0"], ["pf0"], "LACPDUs blocked both ways, first change")
    klab.wait_actor_bits("pf0", 0x40, timeout=15)  # DEFAULTED
    time.sleep(0.5)
    snapshot("partner-lost", ["bond0"], ["pf0"], "LACPDUs blocked both ways, actor DEFAULTED")
    topo.unblock_lacpdus()

    # carrier loss: peer port down; port states keep 63/63, mii_status goes down
    topo.delete_peer_bond()
    topo.add_peer_bond("swbond", ["swp0"])
    topo.wait_lacp_up("pf0", timeout=60)
    topo.peer_port(up=False)
    klab.wait_for("pf0 mii down", lambda: klab.slave_state("pf0").mii == "down", timeout=5)
    time.sleep(1.0)
    snapshot("carrier-loss", ["bond0"], ["pf0"], "peer port down (carrier lost), 1 s later")
    topo.cleanup()

    # two slaves in one 802.3ad bond
    topo = klab.Topology()
    topo.add_port("pf0", "swp0", num_vfs=8)
    topo.add_port("pf1", "swp1", num_vfs=8)
    topo.add_bond("bond0", ["pf0", "pf1"])
    topo.add_peer_bond("swbond", ["swp0", "swp1"])
    topo.wait_lacp_up("pf0")
    topo.wait_lacp_up("pf1")
    time.sleep(0.5)
    snapshot("two-slaves", ["bond0"], ["pf0", "pf1"], "bond0 802.3ad fast, two slaves, LACP up")
    topo.cleanup()

    # active-backup (peer port simply up)
    topo = klab.Topology()
    topo.add_port("pf0", "swp0", num_vfs=8)
    topo.add_bond("bond0", ["pf0"], ("mode", "active-backup", "miimon", "100"))
    klab.wait_for("pf0 mii up", lambda: klab.slave_state("pf0").mii == "up", timeout=10)
    time.sleep(0.5)
    snapshot("active-backup", ["bond0"], ["pf0"], "bond0 active-backup miimon 100, one slave")
    topo.cleanup()

    # lacp_rate slow on both sides, healthy
    topo = klab.Topology()
    slow = ("mode", "802.3ad", "lacp_rate", "slow", "miimon", "100")
    topo.add_port("pf0", "swp0", num_vfs=8)
    topo.add_bond("bond0", ["pf0"], slow)
    topo.add_peer_bond("swbond", ["swp0"], slow)
    topo.wait_lacp_up("pf0", timeout=120)
    time.sleep(0.5)
    snapshot("slow", ["bond0"], ["pf0"], "bond0 802.3ad lacp_rate slow both sides, LACP up")
    topo.cleanup()

    (OUT / "INDEX.tsv").write_text("state\tnote\n" + "\n".join(INDEX) + "\n")


if __name__ == "__main__":
    main()
