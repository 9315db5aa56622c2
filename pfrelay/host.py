"""Reading the host: a PF's bond from /proc and sysfs, and its SR-IOV numbers. Read-only.

Every path is under the ``procfs``/``sysfs`` roots given as parameters (a container may have
the host's trees at ``/host/proc``), every read is bounded, and nothing here raises for a
fault of the host: a bond deleted between two reads, EACCES, EIO or a renamed PF end up as a
reason in ``PfFacts``. Cost matters, because this runs every poll for every PF: a healthy bond
read by a privileged reader costs the ``master`` link and one /proc file (a file there is
proof enough that the master is a bond); sysfs values are read only where /proc lacks them
(an unprivileged reader gets no LACP details blocks: two port-state files per slave), and
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
    parse_proc_bonding,
    sysfs_gaps,
)

StrPath = Union[str, "os.PathLike[str]"]

#: Largest kernel file read. /proc/net/bonding for a few slaves is ~1.5 KB each.
READ_LIMIT = 256 * 1024

#: The parser is pure and its input rarely changes between polls: memoize on the exact text,
#: which halves a steady-state cycle (bench/cycle.py). Records are frozen, so sharing is safe.
_parse = functools.lru_cache(maxsize=256)(parse_proc_bonding)


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
    #: The bond's ifindex: a bond deleted and re-created between two polls has a new one.
    bond_ifindex: Optional[int] = None
    #: The bond's own link: ``/sys/class/net/<bond>/operstate`` ("up", "down", ...) and its
    #: ``flags`` (IFF_UP 0x1 = administratively up); None when not read or unreadable.
    bond_operstate: Optional[str] = None
    bond_flags: Optional[int] = None


def read_text(path: StrPath, limit: int = READ_LIMIT) -> str:
    """Read at most ``limit`` bytes, decoded as UTF-8 with replacement. Raises OSError.

    Unbuffered, in 64 KiB reads: a buffered ``read(limit)`` allocated ``limit`` bytes first,
    58 us against 12 us per 1.3 KB /proc/net/bonding file, the cycle's largest cost.
    """
    chunks = []
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while size < limit:
            chunk = handle.read(min(1 << 16, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _optional(path: str) -> Optional[str]:
    """The file's text, or None when it cannot be read for any reason."""
    try:
        return read_text(path, 4096).strip()
    except OSError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def _why(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def _check_name(pf: str) -> None:
    if not _valid_name(pf):
        raise ValueError(f"not an interface name: {pf!r}")


def _net(sysfs: StrPath, name: str) -> str:
    return os.path.join(sysfs, "class/net", name)


def master_kind(sysfs: StrPath, master: str) -> str:
    """Bond, bridge, Open vSwitch, team or other, from the master's sysfs entry.

    A bond has ``bonding/`` and a bridge ``bridge/`` (their uevent also says ``DEVTYPE=bond``
    or ``bridge``). Open vSwitch ports have the datapath device ``ovs-system`` as master. The
    team driver sets no device type and has no sysfs directory of its own (team_setup()), so a
    team master is recognised by its conventional name (``team*``) only; anything else is
    "other".
    """
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


def _fill_from_sysfs(sysfs: StrPath, base: Bond, *, everything: bool) -> Tuple[Bond, bool]:
    """``base`` completed from sysfs, reading only the files for what it lacks.

    Returns (bond, whether any bond-level file could be read; False when nothing was needed).
    """
    bond_files, slave_gaps = sysfs_gaps(base, everything=everything)
    if not bond_files and not slave_gaps:
        return base, False  # a privileged read of a healthy bond: /proc said it all
    bond_dir = os.path.join(_net(sysfs, base.name), "bonding")
    bond_values = {f: _optional(os.path.join(bond_dir, f)) for f in bond_files}
    merged = merge_sysfs(base, bond_values, {}) if bond_values else base
    _, slave_files = sysfs_gaps(merged, everything=everything)
    slave_values: Dict[str, Dict[str, Optional[str]]] = {
        name: {f: _optional(os.path.join(_net(sysfs, name), "bonding_slave", f)) for f in files}
        for name, files in slave_files.items()
        if _valid_name(name)
    }
    if slave_values:
        merged = merge_sysfs(merged, {}, slave_values)
    return merged, any(v is not None for v in bond_values.values())


def read_bond(procfs: StrPath, sysfs: StrPath, bond: str) -> Tuple[Optional[Bond], Optional[str]]:
    """The bond from /proc, completed from sysfs where /proc lacks values; or (None, reason).

    The reason is also given with a bond when /proc could not be used but sysfs could.
    """
    text, error = _read_proc_bonding(procfs, bond)
    return _bond_from(sysfs, bond, text, error)


def _read_proc_bonding(procfs: StrPath, bond: str) -> Tuple[Optional[str], Optional[str]]:
    """(text of /proc/net/bonding/<bond>, None) or (None, why it could not be read)."""
    proc_path = os.path.join(procfs, "net/bonding", bond)
    try:
        return read_text(proc_path), None
    except OSError as exc:
        return None, f"cannot read {proc_path}: {_why(exc)}"


def _bond_from(
    sysfs: StrPath, name: str, text: Optional[str], error: Optional[str]
) -> Tuple[Optional[Bond], Optional[str]]:
    parsed: Optional[Bond] = None
    if text is not None:
        try:
            parsed = _parse(name, text)
        except BondingParseError as exc:
            error = str(exc)
    bond, read_any = _fill_from_sysfs(sysfs, parsed or Bond(name), everything=parsed is None)
    if parsed is None and not read_any:
        return None, error or f"cannot read bond {name}"
    return bond, error


def _hex(text: Optional[str]) -> Optional[int]:
    """``0x1403`` (the kernel's ``flags`` format) as an int, else None."""
    if text is None or not text.startswith("0x") or not 2 < len(text) <= 18:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def read_bond_link(sysfs: StrPath, bond: str) -> Tuple[Optional[str], Optional[int]]:
    """(operstate, flags) of the bond itself; None for what cannot be read.

    ``ip link set <bond> down`` runs bond_close(), which stops the 802.3ad state machines and
    the MII monitor: the slave then keeps reading MII up and 63/63 while the switch expires
    the port, and /proc and ``bonding/mii_status`` still say "up" (seen on 6.12). Only the
    bond's operstate ("down") and flags (IFF_UP cleared) tell. ``flags`` is read only when the
    operstate reads something other than "up", so a healthy bond costs one small file more.
    """
    net = _net(sysfs, bond)
    operstate = _optional(os.path.join(net, "operstate"))
    if operstate is None or operstate == "up":
        return operstate, None
    return operstate, _hex(_optional(os.path.join(net, "flags")))


def read_sriov(sysfs: StrPath, pf: str) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """(ifindex, sriov_numvfs, sriov_totalvfs); None for what cannot be read."""
    net = _net(sysfs, pf)
    return (
        _int(_optional(os.path.join(net, "ifindex"))),
        _int(_optional(os.path.join(net, "device/sriov_numvfs"))),
        _int(_optional(os.path.join(net, "device/sriov_totalvfs"))),
    )


def read_vfs_id(sysfs: StrPath, pf: str) -> Optional[int]:
    """The identity of the PF's current VF set: the inode of ``device/virtfn0``, or None.

    sysfs (kernfs) numbers its nodes cyclically, so the ``virtfn0`` link that the PCI core
    creates with the VFs gets a new inode each time they are re-created, even with the same
    ``sriov_numvfs`` (seen on this host's kernel with re-created netdevs). One ``lstat``.
    Devices without PCI VFs (netdevsim) have no ``virtfn0``: None, and only the count guards.
    """
    try:
        return os.lstat(os.path.join(_net(sysfs, pf), "device/virtfn0")).st_ino
    except (OSError, ValueError):
        return None


def read_ifindex(sysfs: StrPath, name: str) -> Optional[int]:
    """``<sysfs>/class/net/<name>/ifindex``, or None."""
    if not _valid_name(name):
        return None
    return _int(_optional(os.path.join(_net(sysfs, name), "ifindex")))


def ifindex_names(sysfs: StrPath) -> Optional[Dict[int, str]]:
    """Every interface's ifindex -> name, or None when ``class/net`` cannot be listed.

    Read only to follow a PF the ledger names that is not where it was (renamed, or gone).
    """
    try:
        names = os.listdir(os.path.join(sysfs, "class/net"))
    except OSError:
        return None
    found: Dict[int, str] = {}
    for name in names:
        index = read_ifindex(sysfs, name)
        if index is not None:
            found[index] = name
    return found


def read_pf(procfs: StrPath, sysfs: StrPath, pf: str, *, sriov: bool = True) -> PfFacts:
    """Everything the relay needs to assess one PF. Never raises for a fault of the host.

    Reads ``<sysfs>/class/net/<pf>/master``, then ``<procfs>/net/bonding/<master>``: a file
    there means the master is a bond, so a privileged read of a healthy bond costs these two
    and nothing else. sysfs is read only for what /proc lacks (``sysfs_gaps``: an unprivileged
    reader's port states), or when /proc has no file for the master (a bridge, a bond whose
    /proc entry cannot be read). With ``sriov=True`` the ifindex, ``sriov_numvfs`` and
    ``sriov_totalvfs`` are read too (``pfrelay status``); the relay's poll passes False and
    reads them with ``read_sriov`` only when it is about to touch VFs. Raises ValueError for a
    name that is not an interface name ("/", ".", "..", NUL, empty).
    """
    _check_name(pf)
    net = _net(sysfs, pf)
    master_link = os.path.join(net, "master")
    try:
        master: Optional[str] = os.path.basename(os.readlink(master_link))
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            return PfFacts(pf, True, bond_error=f"cannot read {master_link}: {_why(exc)}")
        if not os.path.lexists(net):
            return PfFacts(pf, False)
        master = None
    ifindex = numvfs = totalvfs = None
    if sriov:
        ifindex, numvfs, totalvfs = read_sriov(sysfs, pf)
    if master is None or not _valid_name(master):
        return PfFacts(pf, True, ifindex, numvfs=numvfs, totalvfs=totalvfs)
    text, error = _read_proc_bonding(procfs, master)
    kind: Optional[str] = "bond"
    if text is None:
        if not os.path.isdir(_net(sysfs, master)):
            # Deleted since the master link was read (or a dangling link).
            error = f"master {master} disappeared ({error})"
            return PfFacts(pf, True, ifindex, master, None, None, error, numvfs, totalvfs)
        kind = master_kind(sysfs, master)
    if kind != "bond":
        return PfFacts(pf, True, ifindex, master, kind, None, None, numvfs, totalvfs)
    bond, error = _bond_from(sysfs, master, text, error)
    operstate, flags = read_bond_link(sysfs, master) if bond is not None else (None, None)
    # One more small read per poll: the only way to see a bond re-created between two polls
    # (issue 12 #11); read only at a DOWN verdict, a re-creation long ago looked new.
    bond_ifindex = read_ifindex(sysfs, master)
    return PfFacts(
        pf,
        True,
        ifindex,
        master,
        kind,
        bond,
        error,
        numvfs,
        totalvfs,
        bond_ifindex=bond_ifindex,
        bond_operstate=operstate,
        bond_flags=flags,
    )


def read_boot_id(procfs: StrPath) -> Optional[str]:
    """This boot's ID (``<procfs>/sys/kernel/random/boot_id``): ledgers are stamped with it."""
    try:
        with open(os.path.join(procfs, "sys/kernel/random/boot_id"), encoding="ascii") as handle:
            return handle.read(64).strip() or None
    except (OSError, UnicodeDecodeError):
        return None
