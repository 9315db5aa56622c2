"""The Linux bonding driver's view of a bond: typed records, the /proc parser, the sysfs merge.

``/proc/net/bonding/<bond>`` is the primary source. Its format has changed over the years
(2.6/RHEL 5 to 6.x), vendor kernels add lines, and an unprivileged reader (no CAP_NET_ADMIN)
gets no ``details actor/partner lacp pdu`` blocks. So the parser is keyed by labels, ignores
what it does not know, and leaves absent values as ``None``; ``merge_sysfs`` fills the gaps
from ``/sys/class/net/<bond>/bonding*`` values. Parsing is pure; reading files is in host.py.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

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


def parse_proc_bonding(name: str, text: str) -> Bond:
    """Parse ``/proc/net/bonding/<name>`` into a ``Bond``.

    Keyed by labels: tolerant of tabs/spaces, CRLF, unknown lines and reordering, and of the
    line sets of kernels from 2.6 (no details blocks, no "LACP active") to 6.x. Values that are
    missing or malformed are None. Raises ``BondingParseError`` only for text that is not a
    bonding status at all.
    """
    bond_values: Dict[str, str] = {}
    slaves: List[_SlaveDraft] = []
    block: Optional[Dict[str, str]] = None  # the "details actor/partner lacp pdu" being read
    seen_header = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = " ".join(key.lower().split())
        value = value.strip()
        if key == "slave interface":
            slaves.append(_SlaveDraft(value.split()[0] if value.split() else ""))
            block = None
            continue
        if key in ("bonding mode", "ethernet channel bonding driver"):
            seen_header = True
        if not slaves:
            # The bond section; "Aggregator ID" here is the active aggregator's.
            bond_values.setdefault(key, value)
            continue
        slave = slaves[-1]
        if key == "details actor lacp pdu":
            block = slave.actor
        elif key == "details partner lacp pdu":
            block = slave.partner
        elif block is not None and raw[:1] in (" ", "\t") and key in _DETAIL_KEYS:
            block.setdefault(key, value)
        else:
            block = None
            slave.values.setdefault(key, value)
    if not seen_header and not slaves:
        raise BondingParseError(f"/proc/net/bonding/{name}: no 'Bonding Mode' line and no slave")
    active = _int(bond_values.get("aggregator id"), 0xFFFF)
    bond_partner_mac = _mac(bond_values.get("partner mac address"))
    records = []
    for draft in slaves:
        if not draft.name:
            continue
        aggregator = _int(draft.values.get("aggregator id"), 0xFFFF)
        partner_mac = _mac(draft.partner.get("system mac address"))
        if (
            partner_mac is None
            and not draft.partner
            and active is not None
            and aggregator == active
        ):
            partner_mac = bond_partner_mac  # old kernels: only the active aggregator's partner
        records.append(
            Slave(
                name=draft.name,
                mii_status=_word(draft.values.get("mii status")),
                aggregator_id=aggregator,
                actor_state=_int(draft.actor.get("port state"), 255),
                partner_state=_int(draft.partner.get("port state"), 255),
                partner_mac=partner_mac,
            )
        )
    mode_text = bond_values.get("bonding mode")
    rate = _word(bond_values.get("lacp rate"))
    return Bond(
        name=name,
        mode=_mode(mode_text) if mode_text is not None else None,
        lacp_rate=rate if rate in ("slow", "fast") else None,
        mii_status=_word(bond_values.get("mii status")),
        active_aggregator=active,
        slaves=tuple(records),
    )


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


def _sysfs_first(value: Optional[str]) -> Optional[str]:
    """``"802.3ad 4"`` -> ``"802.3ad"``; ``"N/A"``, empty or None -> None."""
    text = _word(value)
    if text is None or text == "n/a":
        return None
    return text.split()[0]


def merge_sysfs(
    bond: Bond,
    bond_values: Mapping[str, Optional[str]],
    slave_values: Mapping[str, Mapping[str, Optional[str]]],
) -> Bond:
    """Fill the fields /proc left empty from raw sysfs text. /proc wins where it has a value.

    ``bond_values``: files under ``/sys/class/net/<bond>/bonding/`` (``mode``, ``slaves``,
    ``lacp_rate``, ``mii_status``, ``ad_aggregator``); ``slave_values``: per slave, files under
    ``bonding_slave/`` (``mii_status``, ``ad_actor_oper_port_state``,
    ``ad_partner_oper_port_state``, ``ad_aggregator_id``). ``N/A`` (no aggregator, or not
    802.3ad), empty or non-numeric values are absent.
    """
    mode = bond.mode
    if mode is None:
        candidate = _sysfs_first(bond_values.get("mode"))
        mode = candidate if candidate in MODES else None
    rate = bond.lacp_rate
    if rate is None:
        candidate = _sysfs_first(bond_values.get("lacp_rate"))
        rate = candidate if candidate in ("slow", "fast") else None
    slaves = bond.slaves
    if not slaves and bond_values.get("slaves"):
        slaves = tuple(Slave(n) for n in (bond_values.get("slaves") or "").split())
    merged = []
    for slave in slaves:
        values = slave_values.get(slave.name, {})
        merged.append(
            dataclasses.replace(
                slave,
                mii_status=slave.mii_status or _sysfs_first(values.get("mii_status")),
                aggregator_id=slave.aggregator_id
                if slave.aggregator_id is not None
                else _int(_sysfs_first(values.get("ad_aggregator_id")), 0xFFFF),
                actor_state=slave.actor_state
                if slave.actor_state is not None
                else _int(_sysfs_first(values.get("ad_actor_oper_port_state")), 255),
                partner_state=slave.partner_state
                if slave.partner_state is not None
                else _int(_sysfs_first(values.get("ad_partner_oper_port_state")), 255),
            )
        )
    return dataclasses.replace(
        bond,
        mode=mode,
        lacp_rate=rate,
        mii_status=bond.mii_status or _sysfs_first(bond_values.get("mii_status")),
        active_aggregator=bond.active_aggregator
        if bond.active_aggregator is not None
        else _int(_sysfs_first(bond_values.get("ad_aggregator")), 0xFFFF),
        slaves=tuple(merged),
    )


def missing_from_proc(bond: Bond) -> Tuple[bool, Tuple[str, ...]]:
    """What sysfs must fill: (bond-level values missing?, slaves lacking a port state or MII)."""
    bond_missing = (
        bond.mode is None or (bond.mode == "802.3ad" and bond.lacp_rate is None) or not bond.slaves
    )
    slaves = tuple(
        s.name
        for s in bond.slaves
        if s.mii_status is None or s.actor_state is None or s.partner_state is None
    )
    return bond_missing, slaves
