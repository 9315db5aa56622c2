"""Fake host trees (/proc and /sys as the kernel lays them out) built from real captures.

Works on a real directory (``tmp_path``, so subprocess tests can point ``pfrelay run`` at it) and
under pyfakefs (the ``fs`` fixture), since it only uses ``open``, ``os.symlink`` and ``Path``.
Kernel text comes verbatim from ``tests/fixtures``; ``unprivileged()`` derives what a reader
without CAP_NET_ADMIN sees (bond_procfs.c prints the details blocks only when
``capable(CAP_NET_ADMIN)``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict, Optional, Sequence

FIXTURES = Path(__file__).parent / "fixtures"
KERNEL = "6.12.95+deb12-amd64"


def fixture(name: str) -> str:
    """A capture by its name without the kernel suffix, e.g. ``proc-net-bonding-bond0-802.3ad-lacp-up``."""
    return (FIXTURES / f"{name}.{KERNEL}.txt").read_text(encoding="utf-8")


def timeline_snapshots(scenario: str) -> Dict[str, str]:
    """``{"snap-01-blocked-+2.61s": text, ...}`` for a timeline scenario, in order."""
    directory = FIXTURES / "timelines" / scenario
    out = {}
    for path in sorted(directory.glob(f"{scenario}.{KERNEL}.snap-*.txt")):
        out[path.name[len(scenario) + len(KERNEL) + 2 : -4]] = path.read_text(encoding="utf-8")
    return out


def unprivileged(proc_text: str) -> str:
    """The /proc text without the ``details actor/partner lacp pdu`` blocks."""
    out = []
    skipping = False
    for line in proc_text.splitlines(keepends=True):
        if line.startswith("details actor lacp pdu:") or line.startswith(
            "details partner lacp pdu:"
        ):
            skipping = True
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def with_states(proc_text: str, actor: int, partner: int) -> str:
    """Replace the first slave's actor and partner ``port state`` values."""
    states = iter([actor, partner])
    return re.sub(
        r"(    port state: )\d+", lambda m: f"{m.group(1)}{next(states)}", proc_text, count=2
    )


class FakeHost:
    """A /proc + /sys tree under ``root`` with PFs, bonds and their kernel files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.procfs = self.root / "proc"
        self.sysfs = self.root / "sys"
        (self.procfs / "net/bonding").mkdir(parents=True, exist_ok=True)
        (self.procfs / "sys/kernel/random").mkdir(parents=True, exist_ok=True)
        (self.procfs / "sys/kernel/random/boot_id").write_text(
            "00000000-0000-0000-0000-000000000001\n"
        )
        (self.sysfs / "class/net").mkdir(parents=True, exist_ok=True)

    def net(self, name: str) -> Path:
        return self.sysfs / "class/net" / name

    def add_pf(self, name: str, *, ifindex: int = 2, numvfs: Optional[int] = 8) -> None:
        d = self.net(name)
        (d / "device").mkdir(parents=True, exist_ok=True)
        (d / "ifindex").write_text(f"{ifindex}\n")
        if numvfs is not None:
            (d / "device/sriov_numvfs").write_text(f"{numvfs}\n")

    def add_bond(
        self,
        name: str,
        slaves: Sequence[str],
        proc_text: Optional[str],
        *,
        mode: str = "802.3ad 4",
        lacp_rate: str = "fast 1",
        slave_files: Optional[Dict[str, Dict[str, str]]] = None,
    ) -> None:
        """A bond with ``slaves`` enslaved; ``proc_text`` None means no /proc file."""
        d = self.net(name) / "bonding"
        d.mkdir(parents=True, exist_ok=True)
        (d / "mode").write_text(f"{mode}\n")
        (d / "slaves").write_text(" ".join(slaves) + "\n")
        (d / "lacp_rate").write_text(f"{lacp_rate}\n")
        (d / "mii_status").write_text("up\n")
        if proc_text is not None:
            self.set_proc(name, proc_text)
        for slave in slaves:
            self.enslave(slave, name, (slave_files or {}).get(slave))

    def enslave(self, slave: str, bond: str, files: Optional[Dict[str, str]] = None) -> None:
        link = self.net(slave) / "master"
        self.net(slave).mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        os.symlink(f"../{bond}", link)
        d = self.net(slave) / "bonding_slave"
        d.mkdir(exist_ok=True)
        values = {
            "mii_status": "up",
            "ad_actor_oper_port_state": "63",
            "ad_partner_oper_port_state": "63",
            "ad_aggregator_id": "1",
            **(files or {}),
        }
        for key, value in values.items():
            (d / key).write_text(f"{value}\n")

    def add_bridge(self, name: str, ports: Sequence[str]) -> None:
        (self.net(name) / "bridge").mkdir(parents=True, exist_ok=True)
        for port in ports:
            self.net(port).mkdir(parents=True, exist_ok=True)
            os.symlink(f"../{name}", self.net(port) / "master")

    def set_proc(self, bond: str, text: str) -> None:
        (self.procfs / "net/bonding" / bond).write_text(text, encoding="utf-8")

    def set_numvfs(self, pf: str, numvfs: int) -> None:
        (self.net(pf) / "device/sriov_numvfs").write_text(f"{numvfs}\n")

    def set_ifindex(self, pf: str, ifindex: int) -> None:
        (self.net(pf) / "ifindex").write_text(f"{ifindex}\n")

    def remove_bond(self, bond: str) -> None:
        """As ``ip link del bond``: the /proc file and the sysfs entry go, slaves are released."""
        (self.procfs / "net/bonding" / bond).unlink(missing_ok=True)
        slaves = (self.net(bond) / "bonding/slaves").read_text().split()
        shutil.rmtree(self.net(bond))
        for slave in slaves:
            (self.net(slave) / "master").unlink(missing_ok=True)
            shutil.rmtree(self.net(slave) / "bonding_slave", ignore_errors=True)

    def remove_pf(self, pf: str) -> None:
        shutil.rmtree(self.net(pf))


def healthy_pf(
    host: FakeHost, pf: str = "pf0", bond: str = "bond0", numvfs: int = 8, ifindex: int = 2
) -> None:
    """``pf`` as the only slave of an 802.3ad fast bond with LACP up (the real capture)."""
    host.add_pf(pf, ifindex=ifindex, numvfs=numvfs)
    text = fixture("proc-net-bonding-bond0-802.3ad-lacp-up").replace("pf0", pf)
    host.add_bond(bond, [pf], text)
