"""Discovery: which PFs to watch when the configuration names none (``interfaces = ["discover/"]``).

The relay's precondition already says which PFs it is for: the only slave of an 802.3ad bond,
with SR-IOV VFs. So every slave of a bond that has SR-IOV is a *candidate*; ``assess`` (the same
function the cycle uses) then says whether it is monitored or, with its reason, why not. This
module only says which netdevs are candidates, after the include/exclude patterns.

- ``select`` is pure: a listing of sysfs facts (``BondPort`` records) and the patterns in, the
  candidates and the skipped ports (each with its reason) out.
- ``scan`` is the small reader at the edge (the sysfs root is a parameter). It starts from the
  bonds, not from every netdev: ``class/net/bonding_masters`` names them, each bond's
  ``bonding/slaves`` names its ports, and only those ports' ``device/sriov_*`` files are read.
  On a host with thousands of VF netdevs that is a few reads per bond, not one per netdev.

SR-IOV means ``device/sriov_totalvfs`` > 0 (a PCI physical function that can have VFs, whether
or not it has any yet). netdevsim, which the kernel tests use, has ``device/sriov_numvfs`` but
no ``sriov_totalvfs``: a port without ``sriov_totalvfs`` counts as SR-IOV when it has
``sriov_numvfs``. PCI creates both files together (only for SR-IOV capable functions), so this
adds no false candidate on real hardware.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import os
from typing import Iterable, List, Optional, Sequence, Tuple, Union

StrPath = Union[str, "os.PathLike[str]"]

#: The ``interfaces`` entry that turns discovery on. It contains "/", which no interface name
#: can (the kernel's dev_valid_name refuses it), so it can never mean a real PF; "*" alone
#: could (``ip link add name '*' type dummy`` works).
DISCOVER = "discover/"


@dataclasses.dataclass(frozen=True)
class BondPort:
    """What sysfs says about one port of a bond, for discovery."""

    name: str
    bond: str
    totalvfs: Optional[int] = None  #: ``device/sriov_totalvfs``; None: no such file / unreadable
    has_numvfs: bool = False  #: ``device/sriov_numvfs`` exists (netdevsim has only this)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A port of a bond that discovery leaves out, and why (for status, check and the log)."""

    interface: str
    bond: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Discovery:
    """The result of one scan: candidates to cycle (sorted) and ports left out."""

    candidates: Tuple[str, ...] = ()
    bonds: Tuple[Tuple[str, str], ...] = ()  #: (candidate, its bond), for the metrics and logs
    skipped: Tuple[Skipped, ...] = ()
    error: Optional[str] = None  #: the bonds could not be listed at all (sysfs unreadable)

    def bond_of(self, pf: str) -> Optional[str]:
        return dict(self.bonds).get(pf)


def has_sriov(port: BondPort) -> bool:
    """SR-IOV capable: ``sriov_totalvfs`` > 0, or only ``sriov_numvfs`` (netdevsim)."""
    if port.totalvfs is not None:
        return port.totalvfs > 0
    return port.has_numvfs


def matching(name: str, patterns: Iterable[str]) -> Optional[str]:
    """The first of ``patterns`` (fnmatch, case-sensitive like interface names) ``name`` matches."""
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


def select(
    ports: Iterable[BondPort],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    error: Optional[str] = None,
) -> Discovery:
    """The candidates among ``ports``: SR-IOV, matching ``include`` (if any), no ``exclude``.

    Ports without SR-IOV are not listed at all (a management bond of plain NICs is none of the
    relay's business); excluded ones are listed with the pattern that excluded them.
    """
    chosen: List[Tuple[str, str]] = []
    skipped: List[Skipped] = []
    seen = set()
    for port in sorted(ports, key=lambda p: (p.name, p.bond)):
        if port.name in seen or not has_sriov(port):
            continue
        seen.add(port.name)
        if include and matching(port.name, include) is None:
            reason = "matches no discover_include pattern (" + ", ".join(include) + ")"
            skipped.append(Skipped(port.name, port.bond, reason))
            continue
        hit = matching(port.name, exclude)
        if hit is not None:
            skipped.append(Skipped(port.name, port.bond, f"excluded by discover_exclude {hit!r}"))
            continue
        chosen.append((port.name, port.bond))
    return Discovery(tuple(n for n, _ in chosen), tuple(chosen), tuple(skipped), error)


# ------------------------------------------------------------------------------- the reader
def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


def _valid(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def list_bonds(sysfs: StrPath) -> Tuple[List[str], Optional[str]]:
    """The bonds of the netns sysfs was mounted in, and why they could not be listed (or None).

    ``class/net/bonding_masters`` exists once the bonding module is loaded; without it there is
    no bond, unless sysfs is laid out unusually: then every ``class/net/*/bonding`` counts.
    """
    net = os.path.join(sysfs, "class/net")
    masters = os.path.join(net, "bonding_masters")
    try:
        with open(masters, "rb") as handle:
            return [
                b for b in handle.read(65536).decode("utf-8", "replace").split() if _valid(b)
            ], None
    except FileNotFoundError:
        pass
    except OSError as exc:
        return [], f"cannot read {masters}: {exc.strerror or errno.errorcode.get(exc.errno or 0)}"
    try:
        names = os.listdir(net)
    except OSError as exc:
        return [], f"cannot list {net}: {exc.strerror or errno.errorcode.get(exc.errno or 0)}"
    return sorted(n for n in names if os.path.isdir(os.path.join(net, n, "bonding"))), None


def scan(sysfs: StrPath) -> Tuple[List[BondPort], Optional[str]]:
    """Every port of every bond with its SR-IOV files; never raises for a fault of the host.

    A bond deleted between the listing and the read simply contributes no port.
    """
    bonds, error = list_bonds(sysfs)
    net = os.path.join(sysfs, "class/net")
    ports: List[BondPort] = []
    for bond in bonds:
        slaves = _read(os.path.join(net, bond, "bonding/slaves"))
        for name in (slaves or "").split():
            if not _valid(name):
                continue
            device = os.path.join(net, name, "device")
            total = (_read(os.path.join(device, "sriov_totalvfs")) or "").strip()
            totalvfs = int(total) if total.isascii() and total.isdigit() else None
            has_numvfs = totalvfs is None and os.path.exists(os.path.join(device, "sriov_numvfs"))
            ports.append(BondPort(name, bond, totalvfs, has_numvfs))
    return ports, error


def discover(sysfs: StrPath, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Discovery:
    """``scan`` then ``select``: the candidates on this host now."""
    ports, error = scan(sysfs)
    return select(ports, include, exclude, error=error)
