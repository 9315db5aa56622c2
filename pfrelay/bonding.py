"""The Linux bonding driver's view of a bond: typed records, the /proc parser, the sysfs merge.

``/proc/net/bonding/<bond>`` is the primary source. Its format has changed over the years
(2.6/RHEL 5 to 6.x), vendor kernels add lines, and an unprivileged reader (no CAP_NET_ADMIN)
gets no ``details actor/partner lacp pdu`` blocks. So the parser is keyed by labels, ignores
what it does not know, and leaves absent values as ``None``; ``merge_sysfs`` fills the gaps
from ``/sys/class/net/<bond>/bonding*`` values. Parsing is pure; reading files is in host.py.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple, TypeVar

#: sysfs mode names, in the order of the kernel's mode numbers 0..6.
MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)


class BondingParseError(ValueError):
    """The text is not a bonding status the parser can make sense of (the only error it raises)."""


@dataclasses.dataclass(frozen=True)
class Slave:
    """One bond slave (port) as the bonding driver reports it."""

    name: str
    mii_status: Optional[str] = None  # "up" / "down" / "going back" / ... lower-cased
    aggregator_id: Optional[int] = None
    actor_state: Optional[int] = None  # 802.1AX port state byte, None when not shown
    partner_state: Optional[int] = None
    partner_mac: Optional[str] = None  # lower-case "aa:bb:..."; partner system MAC

    @property
    def mii_up(self) -> Optional[bool]:
        return None if self.mii_status is None else self.mii_status == "up"


@dataclasses.dataclass(frozen=True)
class Bond:
    """A bond as the bonding driver reports it."""

    name: str
    mode: Optional[str] = None  # one of MODES
    lacp_rate: Optional[str] = None  # "fast" / "slow"; None outside 802.3ad
    mii_status: Optional[str] = None
    active_aggregator: Optional[int] = None  # "Active Aggregator Info: Aggregator ID"
    slaves: Tuple[Slave, ...] = ()
    #: The active aggregator's partner system MAC ("Active Aggregator Info: Partner Mac
    #: Address"), lower-case; None when not shown (no aggregator, or no CAP_NET_ADMIN on 4.x+).
    partner_mac: Optional[str] = None


#: The kernel's bond_mode_name() strings (bond_main.c), longest first so that a prefix match
#: also takes suffixes such as active-backup's " (fail_over_mac active)".
_PROC_MODES = (
    ("ieee 802.3ad dynamic link aggregation", "802.3ad"),
    ("fault-tolerance (active-backup)", "active-backup"),
    ("fault-tolerance (broadcast)", "broadcast"),
    ("load balancing (round-robin)", "balance-rr"),
    ("load balancing (xor)", "balance-xor"),
    ("transmit load balancing", "balance-tlb"),
    ("adaptive load balancing", "balance-alb"),
)


def _mode(value: str) -> Optional[str]:
    text = " ".join(value.lower().split())
    for prefix, mode in _PROC_MODES:
        if text.startswith(prefix):
            return mode
    first = text.split(" ", 1)[0] if text else ""
    return first if first in MODES else None


def _int(value: Optional[str], high: int) -> Optional[int]:
    """A decimal integer in 0..high, else None (never an exception)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    number = int(text)
    return number if number <= high else None


def _word(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    text = value.strip().lower()
    return text or None


def _mac(value: Optional[str]) -> Optional[str]:
    text = _word(value)
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        return text
    return None


@dataclasses.dataclass
class _SlaveDraft:
    name: str
    values: Dict[str, str] = dataclasses.field(default_factory=dict)
    actor: Dict[str, str] = dataclasses.field(default_factory=dict)
    partner: Dict[str, str] = dataclasses.field(default_factory=dict)


#: Lines of a ``details actor/partner lacp pdu`` block (bond_procfs.c, kernel 4.x and later).
_DETAIL_KEYS = frozenset(
    {
        "system priority",
        "system mac address",
        "port key",
        "oper key",
        "port priority",
        "port number",
        "port state",
    }
)

#: Labels only the bond section has: kept for the bond even if a reordered text puts them
#: after a "Slave Interface" line (the bond section's own line wins).
_BOND_ONLY_KEYS = frozenset({"bonding mode", "lacp rate", "partner mac address"})


def parse_proc_bonding(name: str, text: str) -> Bond:
    """Parse ``/proc/net/bonding/<name>`` into a ``Bond``.

    Keyed by labels: tolerant of tabs/spaces, CRLF, unknown lines and reordering, and of the
    line sets of kernels from 2.6 (no details blocks, no "LACP active") to 6.x. Lines before
    the first ``Slave Interface:`` are the bond's, the lines after it are that slave's (its
    ``MII Status`` included) until the next one. When a label repeats, the first one counts.
    A slave's partner MAC comes from its ``details partner lacp pdu`` block only (privileged
    readers of kernels >= 4.x); the ``Partner Mac Address`` of the active aggregator, which
    older kernels print in the bond section, is ``Bond.partner_mac``. Values that are missing
    or malformed (port state outside 0..255, a non-numeric aggregator, a MAC that is not six
    hex pairs) are None. Raises ``BondingParseError``, and nothing else, only for text with
    neither a ``Bonding Mode`` nor a ``Slave Interface`` line: that is not a bonding status.
    """
    bond_values: Dict[str, str] = {}
    slaves: List[_SlaveDraft] = []
    block: Optional[Dict[str, str]] = None  # the "details actor/partner lacp pdu" being read
    for raw in text.splitlines():
        key, colon, value = raw.partition(":")
        if not colon:
            continue
        key = " ".join(key.lower().split())
        value = value.strip()
        if key == "slave interface":
            words = value.split()
            slaves.append(_SlaveDraft(words[0] if words else ""))
            block = None
        elif not slaves or key in _BOND_ONLY_KEYS:
            # The bond section; its "Aggregator ID" is the active aggregator's.
            bond_values.setdefault(key, value)
        elif key == "details actor lacp pdu":
            block = slaves[-1].actor
        elif key == "details partner lacp pdu":
            block = slaves[-1].partner
        elif block is not None and key in _DETAIL_KEYS:
            block.setdefault(key, value)
        else:
            block = None
            slaves[-1].values.setdefault(key, value)
    if "bonding mode" not in bond_values and not slaves:
        raise BondingParseError(
            f"/proc/net/bonding/{name}: not a bonding status (no 'Bonding Mode', no slave)"
        )
    records = tuple(
        Slave(
            name=draft.name,
            mii_status=_word(draft.values.get("mii status")),
            aggregator_id=_int(draft.values.get("aggregator id"), 0xFFFF),
            actor_state=_int(draft.actor.get("port state"), 255),
            partner_state=_int(draft.partner.get("port state"), 255),
            partner_mac=_mac(draft.partner.get("system mac address")),
        )
        for draft in slaves
        if draft.name
    )
    mode_text = bond_values.get("bonding mode")
    rate = _word(bond_values.get("lacp rate"))
    return Bond(
        name=name,
        mode=_mode(mode_text) if mode_text is not None else None,
        lacp_rate=rate if rate in ("slow", "fast") else None,
        mii_status=_word(bond_values.get("mii status")),
        active_aggregator=_int(bond_values.get("aggregator id"), 0xFFFF),
        slaves=records,
        partner_mac=_mac(bond_values.get("partner mac address")),
    )


def _sysfs_value(value: Optional[str]) -> Optional[str]:
    """Stripped, lower-cased sysfs text; ``"N/A"``, empty or None -> None."""
    text = _word(value)
    return None if text is None or text == "n/a" else text


def _sysfs_first(value: Optional[str]) -> Optional[str]:
    """``"802.3ad 4"`` -> ``"802.3ad"``, ``"fast 1"`` -> ``"fast"``; absent -> None."""
    text = _sysfs_value(value)
    return None if text is None else text.split()[0]


def merge_sysfs(
    bond: Bond,
    bond_values: Mapping[str, Optional[str]],
    slave_values: Mapping[str, Mapping[str, Optional[str]]],
) -> Bond:
    """Fill the fields /proc left empty from raw sysfs text. /proc wins where it has a value.

    ``bond_values``: files under ``/sys/class/net/<bond>/bonding/`` (``mode`` such as
    ``"802.3ad 4"``, ``slaves`` such as ``"pf0 pf1"``, ``lacp_rate`` such as ``"fast 1"``,
    ``mii_status``, ``ad_aggregator``); ``slave_values``: per slave name, files under
    ``/sys/class/net/<slave>/bonding_slave/`` (``mii_status``, ``ad_actor_oper_port_state``,
    ``ad_partner_oper_port_state``, ``ad_aggregator_id``). ``N/A`` (no aggregator, or not
    802.3ad), empty, non-numeric, out-of-range or None values are absent. When ``bond`` has no
    slaves (/proc unreadable, or a race), they come from ``slaves``. Pure.
    """
    mode = bond.mode
    if mode is None:
        candidate = _sysfs_first(bond_values.get("mode"))
        mode = candidate if candidate in MODES else None
    rate = bond.lacp_rate
    if rate is None and mode == "802.3ad":  # sysfs shows a rate in every mode
        candidate = _sysfs_first(bond_values.get("lacp_rate"))
        rate = candidate if candidate in ("slow", "fast") else None
    slaves = bond.slaves
    if not slaves:
        names = (_sysfs_value(bond_values.get("slaves")) or "").split()
        slaves = tuple(Slave(n) for n in dict.fromkeys(names))
    merged = []
    for slave in slaves:
        values = slave_values.get(slave.name, {})
        merged.append(
            dataclasses.replace(
                slave,
                mii_status=_first_of(slave.mii_status, _sysfs_value(values.get("mii_status"))),
                aggregator_id=_first_of(
                    slave.aggregator_id, _int(_sysfs_value(values.get("ad_aggregator_id")), 0xFFFF)
                ),
                actor_state=_first_of(
                    slave.actor_state,
                    _int(_sysfs_value(values.get("ad_actor_oper_port_state")), 255),
                ),
                partner_state=_first_of(
                    slave.partner_state,
                    _int(_sysfs_value(values.get("ad_partner_oper_port_state")), 255),
                ),
            )
        )
    return dataclasses.replace(
        bond,
        mode=mode,
        lacp_rate=rate,
        mii_status=_first_of(bond.mii_status, _sysfs_value(bond_values.get("mii_status"))),
        active_aggregator=_first_of(bond.active_aggregator, _aggregator(bond_values)),
        slaves=tuple(merged),
    )


def _aggregator(bond_values: Mapping[str, Optional[str]]) -> Optional[int]:
    """``bonding/ad_aggregator``: the active aggregator's ID, ``0`` when there is none."""
    number = _int(_sysfs_value(bond_values.get("ad_aggregator")), 0xFFFF)
    return number or None


_T = TypeVar("_T")


def _first_of(primary: Optional[_T], fallback: Optional[_T]) -> Optional[_T]:
    return primary if primary is not None else fallback


def missing_from_proc(bond: Bond) -> Tuple[bool, Tuple[str, ...]]:
    """What sysfs must fill: (bond-level values missing?, slaves lacking a port state or MII)."""
    bond_files, slave_files = sysfs_gaps(bond)
    return bool(bond_files), tuple(slave_files)


def sysfs_gaps(
    bond: Bond, *, everything: bool = False
) -> Tuple[Tuple[str, ...], Dict[str, Tuple[str, ...]]]:
    """The sysfs files that would fill what the relay needs and ``bond`` lacks.

    Returns (files under ``bonding/``, {slave: files under ``bonding_slave/``}), naming only
    what matters for the verdict: the mode, the 802.3ad rate, the slaves, the MII statuses and
    the port states (not of a bond known not to be 802.3ad, whose slaves read ``N/A``). So a
    privileged read of a healthy bond needs nothing and an unprivileged one needs each slave's
    two port states. ``everything=True`` (no /proc at all) adds the aggregator IDs.
    """
    bond_files: List[str] = []
    if bond.mode is None:
        bond_files.append("mode")
    if bond.lacp_rate is None and bond.mode in (None, "802.3ad"):
        bond_files.append("lacp_rate")
    if not bond.slaves:
        bond_files.append("slaves")
    if bond.mii_status is None:
        bond_files.append("mii_status")
    if everything and bond.active_aggregator is None:
        bond_files.append("ad_aggregator")
    lacp = bond.mode in (None, "802.3ad")
    slave_files: Dict[str, Tuple[str, ...]] = {}
    for slave in bond.slaves:
        files = [
            file
            for file, value, wanted in (
                ("mii_status", slave.mii_status, True),
                ("ad_actor_oper_port_state", slave.actor_state, lacp),
                ("ad_partner_oper_port_state", slave.partner_state, lacp),
                ("ad_aggregator_id", slave.aggregator_id, lacp and everything),
            )
            if wanted and value is None
        ]
        if files:
            slave_files[slave.name] = tuple(files)
    return tuple(bond_files), slave_files
