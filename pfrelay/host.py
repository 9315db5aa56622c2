"""Reading the host: a PF's bond from /proc and sysfs, and its SR-IOV numbers. Read-only.

Every path is under the ``procfs``/``sysfs`` roots given as parameters (a container may have
the host's trees at ``/host/proc``), every read is bounded, and nothing here raises for a
fault of the host: a bond deleted between two reads, EACCES, EIO or a renamed PF end up as a
reason in ``PfFacts``. Cost matters, because this runs every poll for every PF: a healthy bond
read by a privileged reader costs the ``master`` link and one /proc file; sysfs values are
read only where /proc lacks them (an unprivileged reader gets no LACP details blocks), and
``ifindex``/``sriov_numvfs`` only when the relay is about to touch VFs.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
from typing import Dict, Optional, Tuple, Union

from pfrelay.bonding import (
    Bond,
    BondingParseError,
    merge_sysfs,
    missing_from_proc,
    parse_proc_bonding,
)

StrPath = Union[str, "os.PathLike[str]"]

#: Largest kernel file read. /proc/net/bonding for a few slaves is ~1.5 KB each.
READ_LIMIT = 256 * 1024

#: The parser is pure and its input rarely changes between polls: memoize on the exact text,
#: which halves a steady-state cycle (bench/cycle.py). Records are frozen, so sharing is safe.
_parse = functools.lru_cache(maxsize=256)(parse_proc_bonding)

_BOND_FILES = ("mode", "slaves", "lacp_rate", "mii_status", "ad_aggregator")
_SLAVE_FILES = (
    "mii_status",
    "ad_actor_oper_port_state",
    "ad_partner_oper_port_state",
    "ad_aggregator_id",
)


@dataclasses.dataclass(frozen=True)
class PfFacts:
    """What the host says about one PF this cycle."""

    name: str
    exists: bool
    ifindex: Optional[int] = None
    master: Optional[str] = None
    master_kind: Optional[str] = None  # "bond", "bridge", "openvswitch", "team", "other"
    bond: Optional[Bond] = None
    bond_error: Optional[str] = None
    numvfs: Optional[int] = None
    totalvfs: Optional[int] = None


def read_text(path: StrPath, limit: int = READ_LIMIT) -> str:
    """Read at most ``limit`` bytes, decoded as UTF-8 with replacement. Raises OSError."""
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", "replace")


def _optional(path: str) -> Optional[str]:
    """The file's text, or None when it cannot be read for any reason."""
    try:
        return read_text(path, 4096).strip()
    except OSError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    if text is None or not text.isdigit():
        return None
    return int(text)


def _why(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def _check_name(pf: str) -> None:
    if not pf or "/" in pf or pf in (".", "..") or "\0" in pf:
        raise ValueError(f"not an interface name: {pf!r}")


def _net(sysfs: StrPath, name: str) -> str:
    return os.path.join(sysfs, "class/net", name)


def master_kind(sysfs: StrPath, master: str) -> str:
    """Bond, bridge, Open vSwitch, team or other, from the master's sysfs entry."""
    net = _net(sysfs, master)
    if os.path.isdir(os.path.join(net, "bonding")):
        return "bond"
    if os.path.isdir(os.path.join(net, "bridge")):
        return "bridge"
    if master == "ovs-system":
        return "openvswitch"
    devtype = None
    for line in (_optional(os.path.join(net, "uevent")) or "").splitlines():
        if line.startswith("DEVTYPE="):
            devtype = line.split("=", 1)[1]
    if devtype in ("bridge", "bond", "team", "openvswitch"):
        return devtype
    if master.startswith("team"):
        return "team"
    return "other"


def read_bond(procfs: StrPath, sysfs: StrPath, bond: str) -> Tuple[Optional[Bond], Optional[str]]:
    """The bond from /proc, completed from sysfs where /proc lacks values; or (None, reason)."""
    proc_path = os.path.join(procfs, "net/bonding", bond)
    try:
        parsed: Optional[Bond] = _parse(bond, read_text(proc_path))
        proc_error = None
    except OSError as exc:
        parsed, proc_error = None, f"cannot read {proc_path}: {_why(exc)}"
    except BondingParseError as exc:
        parsed, proc_error = None, str(exc)
    base = parsed or Bond(bond)
    bond_missing, slaves_missing = missing_from_proc(base)
    if not bond_missing and not slaves_missing:
        return base, None
    bond_dir = os.path.join(_net(sysfs, bond), "bonding")
    bond_values: Dict[str, Optional[str]] = {}
    if bond_missing:
        bond_values = {f: _optional(os.path.join(bond_dir, f)) for f in _BOND_FILES}
        if parsed is None and all(v is None for v in bond_values.values()):
            return None, proc_error or f"bond {bond} disappeared"
    names = slaves_missing if base.slaves else tuple((bond_values.get("slaves") or "").split())
    slave_values = {
        name: {
            f: _optional(os.path.join(_net(sysfs, name), "bonding_slave", f)) for f in _SLAVE_FILES
        }
        for name in names
    }
    return merge_sysfs(base, bond_values, slave_values), None


def read_sriov(sysfs: StrPath, pf: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """(ifindex, sriov_numvfs, sriov_totalvfs); None for what cannot be read."""
    net = _net(sysfs, pf)
    return (
        _int(_optional(os.path.join(net, "ifindex"))),
        _int(_optional(os.path.join(net, "device/sriov_numvfs"))),
        _int(_optional(os.path.join(net, "device/sriov_totalvfs"))),
    )


def read_pf(procfs: StrPath, sysfs: StrPath, pf: str, *, sriov: bool = True) -> PfFacts:
    """Everything the relay needs to assess one PF. Never raises for a fault of the host.

    With ``sriov=False`` the ifindex and VF counts are not read (the steady-state poll).
    """
    _check_name(pf)
    net = _net(sysfs, pf)
    master_link = os.path.join(net, "master")
    try:
        master: Optional[str] = os.path.basename(os.readlink(master_link))
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            return PfFacts(pf, True, bond_error=f"cannot read {master_link}: {_why(exc)}")
        if not os.path.exists(net):
            return PfFacts(pf, False)
        master = None
    ifindex = numvfs = totalvfs = None
    if sriov:
        ifindex, numvfs, totalvfs = read_sriov(sysfs, pf)
    if master is None:
        return PfFacts(pf, True, ifindex, numvfs=numvfs, totalvfs=totalvfs)
    kind = master_kind(sysfs, master)
    bond, error = read_bond(procfs, sysfs, master) if kind == "bond" else (None, None)
    return PfFacts(pf, True, ifindex, master, kind, bond, error, numvfs, totalvfs)
