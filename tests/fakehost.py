"""Fake host trees (/proc and /sys as the kernel lays them out) built from real captures.

Works on a real directory (``tmp_path``, so subprocess tests can point ``pfrelay run`` at it) and
under pyfakefs (the ``fs`` fixture; ``conftest.fake_host`` maps ``tests/fixtures`` into it), since
it only uses ``open``/``Path``, ``os.symlink`` and ``shutil``. Kernel text comes verbatim from
``tests/fixtures``; ``unprivileged()`` derives what a reader without CAP_NET_ADMIN sees.

    host = FakeHost(tmp_path)
    healthy_pf(host)                                   # pf0, the only slave of 802.3ad bond0
    host.set_proc("bond0", load_fixture("proc-net-bonding-bond0-partner-lost-peer-stops-sending"))
    host.set_slave("pf0", actor=79, partner=0)         # keep sysfs in step when it matters
    read_pf(str(host.procfs), str(host.sysfs), "pf0")
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, AnyStr, Dict, List, Mapping, Optional, Sequence, Union

FIXTURES = Path(__file__).parent / "fixtures"
KERNEL = "6.12.95+deb12-amd64"

Value = Union[str, int]


def load_fixture(name: str) -> str:
    """A fixture's text by file name, or a capture by its name without the kernel suffix.

    ``load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")`` and
    ``load_fixture("synthetic/proc-net-bonding-SYNTHETIC-rhel7-3.10.txt")`` both work.
    """
    path = FIXTURES / name
    if not path.is_file():
        path = FIXTURES / f"{name}.{KERNEL}.txt"
    return path.read_text(encoding="utf-8")


#: The name the first tests used; same function.
fixture = load_fixture


def timeline_snapshots(scenario: str) -> Dict[str, str]:
    """``{"snap-01-blocked-+2.61s": text, ...}`` for a timeline scenario, in order."""
    directory = FIXTURES / "timelines" / scenario
    out = {}
    for path in sorted(directory.glob(f"{scenario}.{KERNEL}.snap-*.txt")):
        out[path.name[len(scenario) + len(KERNEL) + 2 : -4]] = path.read_text(encoding="utf-8")
    return out


def sysfs_capture(name: str) -> Dict[str, str]:
    """A ``sysfs-*`` capture (``ls -l`` then ``head`` of each file) as {file name: text}.

    ``sysfs_capture("sysfs-pf0-bonding_slave-802.3ad-lacp-up")["ad_actor_oper_port_state"]``
    is ``"63"``; a file that ``head`` showed empty maps to ``""``.
    """
    values: Dict[str, str] = {}
    current: Optional[str] = None
    for line in load_fixture(name).splitlines():
        match = re.match(r"^==> .*/([^/]+) <==$", line)
        if match:
            current = match.group(1)
            values[current] = ""
        elif current is not None and line and not values[current]:
            values[current] = line
    return values


def unprivileged(proc_text: str) -> str:
    """``/proc/net/bonding/<bond>`` as a reader without CAP_NET_ADMIN gets it (kernel >= 4.x).

    bond_procfs.c prints these only when ``capable(CAP_NET_ADMIN)``: in the bond's 802.3ad
    section ``System priority``, ``System MAC address`` and the ``Active Aggregator Info`` block
    (or ``bond X has no active aggregator``); per slave the ``details actor lacp pdu`` and
    ``details partner lacp pdu`` blocks. Everything else, line endings included, is kept.
    """
    out = []
    skip_indent: Optional[str] = None  # the indent of the block being dropped
    for line in proc_text.splitlines(keepends=True):
        if skip_indent is not None and line.startswith(skip_indent):
            continue
        skip_indent = None
        if line.startswith(("details actor lacp pdu:", "details partner lacp pdu:")):
            skip_indent = "    "
        elif line.startswith("Active Aggregator Info:"):
            skip_indent = "\t"
        elif not line.startswith(("System priority:", "System MAC address:")) and not (
            line.startswith("bond ") and "has no active aggregator" in line
        ):
            out.append(line)
    return "".join(out)


def with_states(proc_text: str, actor: int, partner: int) -> str:
    """Replace the first slave's actor and partner ``port state`` values."""
    states = iter([actor, partner])
    return re.sub(
        r"(    port state: )\d+", lambda m: f"{m.group(1)}{next(states)}", proc_text, count=2
    )


class FakeHost:
    """A /proc + /sys tree under ``root`` with PFs, bonds and their kernel files.

    ``procfs``/``sysfs`` are the roots to give ``read_pf`` (or ``pfrelay --procfs/--sysfs``).
    Values are written as the kernel shows them: one line with a newline.
    """

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
        """``<sysfs>/class/net/<name>``."""
        return self.sysfs / "class/net" / name

    def add_pf(
        self,
        name: str,
        *,
        ifindex: int = 2,
        numvfs: Optional[int] = 8,
        totalvfs: Optional[int] = None,
        master: Optional[str] = None,
    ) -> None:
        """An SR-IOV PF (``numvfs=None``: no ``sriov_numvfs``, not SR-IOV capable).

        ``master`` only links it (``master`` symlink); ``add_bond``/``enslave`` also write the
        ``bonding_slave/`` files. netdevsim has no ``sriov_totalvfs``: the default leaves it out.
        """
        d = self.net(name)
        (d / "device").mkdir(parents=True, exist_ok=True)
        (d / "ifindex").write_text(f"{ifindex}\n")
        if numvfs is not None:
            (d / "device/sriov_numvfs").write_text(f"{numvfs}\n")
        if totalvfs is not None:
            (d / "device/sriov_totalvfs").write_text(f"{totalvfs}\n")
        if master is not None:
            self._link_master(name, master)

    def add_bond(
        self,
        name: str,
        slaves: Sequence[str],
        proc_text: Optional[str],
        *,
        mode: str = "802.3ad 4",
        lacp_rate: str = "fast 1",
        mii_status: str = "up",
        slave_files: Optional[Mapping[str, Mapping[str, Value]]] = None,
        ifindex: int = 10,
    ) -> None:
        """A bond with ``slaves`` enslaved; ``proc_text`` None means no /proc file.

        Each slave gets ``bonding_slave/`` files of a healthy 802.3ad port (up, 63/63,
        aggregator 1) unless ``slave_files`` overrides them, e.g. ``{"pf0": {"mii_status":
        "down"}}``; ``"N/A"`` is what active-backup slaves show.
        """
        d = self.net(name) / "bonding"
        d.mkdir(parents=True, exist_ok=True)
        (self.net(name) / "ifindex").write_text(f"{ifindex}\n")
        for key, value in (
            ("mode", mode),
            ("slaves", " ".join(slaves)),
            ("lacp_rate", lacp_rate),
            ("mii_status", mii_status),
            ("ad_aggregator", "1"),
        ):
            (d / key).write_text(f"{value}\n")
        if proc_text is not None:
            self.set_proc(name, proc_text)
        for slave in slaves:
            self.enslave(slave, name, (slave_files or {}).get(slave))
        self._masters(add=name)

    def enslave(self, slave: str, bond: str, files: Optional[Mapping[str, Value]] = None) -> None:
        """Link ``slave`` to ``bond`` and write its ``bonding_slave/`` files."""
        self._link_master(slave, bond)
        (self.net(slave) / "bonding_slave").mkdir(exist_ok=True)
        values: Dict[str, Value] = {
            "mii_status": "up",
            "ad_actor_oper_port_state": 63,
            "ad_partner_oper_port_state": 63,
            "ad_aggregator_id": 1,
        }
        values.update(files or {})
        self._write_slave(slave, values)

    def set_slave(
        self,
        name: str,
        *,
        mii_status: Optional[str] = None,
        actor: Optional[Value] = None,
        partner: Optional[Value] = None,
        aggregator: Optional[Value] = None,
    ) -> None:
        """Overwrite some of an enslaved interface's ``bonding_slave/`` files (None: keep)."""
        self._write_slave(
            name,
            {
                key: value
                for key, value in (
                    ("mii_status", mii_status),
                    ("ad_actor_oper_port_state", actor),
                    ("ad_partner_oper_port_state", partner),
                    ("ad_aggregator_id", aggregator),
                )
                if value is not None
            },
        )

    def add_bridge(self, name: str, ports: Sequence[str]) -> None:
        """A Linux bridge (``bridge/`` directory) with ``ports`` linked to it."""
        self.add_master(name, ports, subdir="bridge")

    def add_master(self, name: str, ports: Sequence[str], *, subdir: Optional[str] = None) -> None:
        """Any other master (team, ``ovs-system``, ...): a bare entry, optionally with ``subdir``."""
        self.net(name).mkdir(parents=True, exist_ok=True)
        if subdir is not None:
            (self.net(name) / subdir).mkdir(exist_ok=True)
        for port in ports:
            self._link_master(port, name)

    def set_proc(self, bond: str, text: str) -> None:
        """Write ``/proc/net/bonding/<bond>`` (the text as given, e.g. a capture)."""
        with open(self.procfs / "net/bonding" / bond, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    def remove_proc(self, bond: str) -> None:
        (self.procfs / "net/bonding" / bond).unlink(missing_ok=True)

    def set_numvfs(self, pf: str, numvfs: int) -> None:
        (self.net(pf) / "device/sriov_numvfs").write_text(f"{numvfs}\n")

    def set_ifindex(self, pf: str, ifindex: int) -> None:
        (self.net(pf) / "ifindex").write_text(f"{ifindex}\n")

    def remove_bond(self, bond: str) -> None:
        """As ``ip link del bond``: the /proc file and the sysfs entry go, slaves are released."""
        self.remove_proc(bond)
        slaves = (self.net(bond) / "bonding/slaves").read_text().split()
        shutil.rmtree(self.net(bond))
        self._masters(remove=bond)
        for slave in slaves:
            (self.net(slave) / "master").unlink(missing_ok=True)
            shutil.rmtree(self.net(slave) / "bonding_slave", ignore_errors=True)

    def remove_pf(self, pf: str) -> None:
        """As a PF that vanished (driver unbound, renamed): its sysfs entry goes."""
        shutil.rmtree(self.net(pf))

    def rename(self, old: str, new: str) -> None:
        """As ``ip link set OLD name NEW``: the sysfs entry and the bond's slave list follow."""
        self.net(old).rename(self.net(new))
        for bond in self.bonds():
            path = self.net(bond) / "bonding/slaves"
            names = [new if n == old else n for n in path.read_text().split()]
            path.write_text(" ".join(names) + "\n")

    def bonds(self) -> List[str]:
        """The names in ``class/net/bonding_masters``."""
        path = self.sysfs / "class/net/bonding_masters"
        return path.read_text().split() if path.exists() else []

    def _masters(self, add: Optional[str] = None, remove: Optional[str] = None) -> None:
        """Keep ``class/net/bonding_masters`` (one line, space-separated) as the kernel does."""
        names = [b for b in self.bonds() if b not in (add, remove)] + ([add] if add else [])
        (self.sysfs / "class/net/bonding_masters").write_text(" ".join(names) + "\n")

    def _link_master(self, port: str, master: str) -> None:
        self.net(port).mkdir(parents=True, exist_ok=True)
        link = self.net(port) / "master"
        if link.is_symlink():
            link.unlink()
        os.symlink(f"../{master}", link)

    def _write_slave(self, name: str, values: Mapping[str, Value]) -> None:
        d = self.net(name) / "bonding_slave"
        d.mkdir(parents=True, exist_ok=True)
        for key, value in values.items():
            (d / key).write_text(f"{value}\n")


def healthy_pf(
    host: FakeHost, pf: str = "pf0", bond: str = "bond0", numvfs: int = 8, ifindex: int = 2
) -> None:
    """``pf`` as the only slave of an 802.3ad fast bond with LACP up (the real capture)."""
    host.add_pf(pf, ifindex=ifindex, numvfs=numvfs)
    text = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up").replace("pf0", pf)
    host.add_bond(bond, [pf], text)


#: The edits ``reshape`` makes: what a short read, a race or a reordering kernel does to a file.
RESHAPES = ("drop", "dup", "move", "cut", "end")


def reshape(draw: Any, lines: List[AnyStr], op: str, i: int) -> List[AnyStr]:
    """Apply one of ``RESHAPES`` at line ``i`` (hypothesis ``draw`` picks the details)."""
    from hypothesis import strategies as st

    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(draw(st.integers(0, len(lines))), lines[i])
    elif op == "move":
        lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(i))
    elif op == "cut":  # mid-line (mid-character for bytes), as a short read would
        lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    else:  # "end": the file ends here
        lines = lines[:i]
    return lines
