"""A cheap look at each PF's LACP port states between full cycles, to react near the kernel.

The kernel's 802.3ad state machines run on a 100 ms tick, and partner expiry sends no link
event (bench/kernel: no RTM_NEWLINK between the block and the first disable), so at 1000 ms
polling the relay saw an expiry 0.5 s late on average. Between full cycles the daemon reads
two sysfs attributes of each PF (``bonding_slave/ad_actor_oper_port_state`` and
``ad_partner_oper_port_state``) through file descriptors kept open (sysfs regenerates an
attribute on every read at offset 0: one ``pread`` each, no open/close, no parsing) and runs
a full cycle of a PF whose values changed. The full cycle stays the judge: this only decides
when to look.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

#: ``mii_status`` is not among them: a slave's link change comes with RTM_NEWLINK (the link
#: events the daemon already wakes on), and each file is a syscall on every check.
FILES = ("ad_actor_oper_port_state", "ad_partner_oper_port_state")

#: The raw values of ``FILES`` for one PF; None when they cannot be read (not a bond slave).
Ports = Optional[Tuple[bytes, ...]]


def changed(before: Mapping[str, Ports], now: Mapping[str, Ports]) -> Set[str]:
    """The PFs whose port values differ between two looks (a PF seen once only: none)."""
    return {pf for pf, value in now.items() if pf in before and before[pf] != value}


class PortWatch:
    """The fast check: ``check()`` returns the PFs whose port states changed since the last."""

    def __init__(self, sysfs: str, interfaces: Iterable[str]) -> None:
        self.sysfs = sysfs
        self.interfaces: Sequence[str] = tuple(interfaces)
        self.fds: Dict[str, Optional[List[int]]] = {}
        self.last: Dict[str, Ports] = {}
        self.reads = 0  #: checks made (for tests and benchmarks)

    def reopen(self, interfaces: Iterable[str], sysfs: str) -> None:
        """Open what is not open (after a full cycle: a PF may have become a slave).

        The PFs and the sysfs root are the configuration's (a reload may change them).
        """
        if tuple(interfaces) != self.interfaces or sysfs != self.sysfs:
            self.close()
            self.interfaces, self.sysfs = tuple(interfaces), sysfs
        for pf in self.interfaces:
            if self.fds.get(pf) is None:
                self.fds[pf] = self._open(pf)

    def _open(self, pf: str) -> Optional[List[int]]:
        base = os.path.join(self.sysfs, "class/net", pf, "bonding_slave")
        fds: List[int] = []
        try:
            for name in FILES:
                fds.append(os.open(os.path.join(base, name), os.O_RDONLY | os.O_CLOEXEC))
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            return None
        return fds

    def _read(self, pf: str) -> Ports:
        fds = self.fds.get(pf)
        if fds is None:
            return None
        try:
            return (os.pread(fds[0], 64, 0), os.pread(fds[1], 64, 0))
        except OSError:  # the slave or the PF is gone (ENODEV): open again after a cycle
            self._close(pf)
            return None

    def check(self) -> Set[str]:
        self.reads += 1
        now = {pf: self._read(pf) for pf in self.interfaces}
        hits = changed(self.last, now)
        self.last = now
        return hits

    def _close(self, pf: str) -> None:
        for fd in self.fds.pop(pf, None) or ():
            os.close(fd)

    def close(self) -> None:
        for pf in list(self.fds):
            self._close(pf)
        self.last = {}
