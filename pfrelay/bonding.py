"""The Linux bonding driver's view of a bond: typed records, the /proc parser, the sysfs merge.

``/proc/net/bonding/<bond>`` is the primary source. Its format has changed over the years
(2.6/RHEL 5 to 6.x), vendor kernels add lines, and an unprivileged reader (no CAP_NET_ADMIN)
gets no ``details actor/partner lacp pdu`` blocks. So the parser is keyed by labels, ignores
what it does not know, and leaves absent values as ``None``; ``merge_sysfs`` fills the gaps
from ``/sys/class/net/<bond>/bonding*`` values. Parsing is pure; reading files is in host.py.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

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
