"""IEEE 802.1AX LACP port state and the "is LACP up" verdict.

The port state is the byte that LACPDUs carry for the actor and the partner; the kernel's
bonding driver shows it as ``port state: N`` in /proc/net/bonding and as
``bonding_slave/ad_{actor,partner}_oper_port_state`` in sysfs. This module is pure: no I/O.
"""

from __future__ import annotations

import enum
from typing import Optional


class PortState(enum.IntFlag):
    """The 802.1AX port-state bits (clause 6.4.2.3)."""

    ACTIVITY = 0x01
    TIMEOUT = 0x02
    AGGREGATION = 0x04
    SYNCHRONIZATION = 0x08
    COLLECTING = 0x10
    DISTRIBUTING = 0x20
    DEFAULTED = 0x40
    EXPIRED = 0x80


#: Short names as the kernel lab and switch CLIs print them, in bit order.
SHORT_NAMES = {
    PortState.ACTIVITY: "ACT",
    PortState.TIMEOUT: "TMO",
    PortState.AGGREGATION: "AGG",
    PortState.SYNCHRONIZATION: "SYN",
    PortState.COLLECTING: "COL",
    PortState.DISTRIBUTING: "DIS",
    PortState.DEFAULTED: "DEF",
    PortState.EXPIRED: "EXP",
}

#: Bits both ends must have for traffic to flow through the port.
IN_SERVICE = (
    PortState.AGGREGATION
    | PortState.SYNCHRONIZATION
    | PortState.COLLECTING
    | PortState.DISTRIBUTING
)
#: Bits that mean the partner information is stale or made up.
OUT_OF_SERVICE = PortState.DEFAULTED | PortState.EXPIRED


class Lacp(str, enum.Enum):
    """The relay's verdict on a PF's LACP."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


def flag_names(state: Optional[int]) -> str:
    """``63`` -> ``"ACT|TMO|AGG|SYN|COL|DIS"``; ``0`` -> ``"-"``; ``None`` -> ``"n/a"``."""
    if state is None:
        return "n/a"
    names = [name for bit, name in SHORT_NAMES.items() if state & bit]
    return "|".join(names) if names else "-"


def port_verdict(
    mii_up: Optional[bool],
    actor: Optional[int],
    partner: Optional[int],
    *,
    partner_requires_aggregation: bool = True,
) -> Lacp:
    """LACP verdict for one bond slave.

    Up when the slave's MII status is up and both actor and partner are in service
    (AGG|SYN|COL|DIS) and neither is DEFAULTED or EXPIRED. The MII status matters because on
    carrier loss the kernel keeps the last port states (63/63) and only drops MII.
    ``partner_requires_aggregation=False`` accepts a partner without AGG (Open vSwitch
    single-port LAGs report 59). Any value that could not be read gives UNKNOWN, except that
    a slave whose MII is down is DOWN whatever its (stale) port states say.
    """
    if mii_up is False:
        return Lacp.DOWN
    if mii_up is None or actor is None or partner is None:
        return Lacp.UNKNOWN
    # Plain ints: IntFlag operators go through enum machinery on every poll of every PF.
    partner_needed = _IN if partner_requires_aggregation else _IN & ~_AGG
    actor_ok = actor & _IN == _IN and not actor & _OUT
    partner_ok = partner & partner_needed == partner_needed and not partner & _OUT
    return Lacp.UP if actor_ok and partner_ok else Lacp.DOWN


_IN, _OUT, _AGG = int(IN_SERVICE), int(OUT_OF_SERVICE), int(PortState.AGGREGATION)
