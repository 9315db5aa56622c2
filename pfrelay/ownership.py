"""VF ownership: which of a PF's VFs are the relay's, and what to do with them. Pure.

The relay's promise, stated as the rules this module implements:

- The relay owns a VF from the moment it decides to disable it (the ledger records it before
  ``ip`` runs: write-ahead) until it sees that VF in any state other than ``disable``. From then
  on the VF is someone else's, whatever the verdict, unmonitored included: an operator who set
  a relay-disabled VF to ``auto`` and then ``disable`` on purpose keeps it disabled.
- While LACP is down every ``auto`` VF is disabled (and owned). A VF the relay does not own is
  never changed: ``enable`` and hand-set ``disable`` VFs are left as they are.
- Once LACP is up (for the restore delay), the owned VFs go back to ``auto``.
- When the verdict the VFs were disabled for no longer exists - the PF left its bond, the bond
  was deleted or changed mode, the LACP state cannot be read - the owned VFs are held for
  ``hold`` seconds (a bond being re-created or renegotiating) and then released: restored to
  ``auto``. Nothing stays stranded because the relay lost sight of its PF.

``verdict`` turns what the relay knows about a PF into one of four ``Verdict`` values; ``plan``
turns a verdict, the VFs' link states and the owned set into a ``Plan``. Both are total
functions over small domains and tested exhaustively.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import FrozenSet, Mapping, Optional, Tuple

from pfrelay.lacp import Lacp
from pfrelay.sriov import LinkState

#: How long VFs of a PF that cannot be monitored stay disabled before they are restored
#: (seconds): longer than the negotiation grace of a re-created bond (10 s), at most a minute.
DEFAULT_HOLD_S = 30.0


class Verdict(enum.Enum):
    """What the relay does with a PF's VFs this cycle."""

    DOWN = "down"  #: LACP is down: disable every ``auto`` VF
    UP = "up"  #: LACP is up (for the restore delay): restore the owned VFs
    HOLD = "hold"  #: change nothing: LACP unknown, within the restore delay or the hold
    RELEASE = "release"  #: the PF cannot be monitored past the hold: restore the owned VFs


def verdict(
    lacp: Optional[Lacp],
    *,
    up_for_s: Optional[float],
    unsure_for_s: Optional[float],
    restore_delay_s: float,
    hold_s: float,
) -> Verdict:
    """The verdict for one PF.

    ``lacp`` is the LACP state of a monitored PF, or None when the PF is not monitored (not the
    single slave of an 802.3ad bond, gone, not configured, or its bond cannot be read).
    ``up_for_s`` is how long LACP has been up; ``unsure_for_s`` how long the PF has been
    without a DOWN or UP verdict (unmonitored or UNKNOWN); None when that is not the case.
    """
    if lacp is Lacp.DOWN:
        return Verdict.DOWN
    if lacp is Lacp.UP:
        return Verdict.UP if (up_for_s or 0.0) >= restore_delay_s else Verdict.HOLD
    if unsure_for_s is not None and unsure_for_s >= hold_s:
        return Verdict.RELEASE
    return Verdict.HOLD


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do with one PF's VFs this cycle."""

    disable: Tuple[int, ...] = ()  #: ``auto`` VFs to set ``disable`` (owned from now on)
    restore: Tuple[int, ...] = ()  #: owned VFs still ``disable`` to set back to ``auto``
    forget: Tuple[int, ...] = ()  #: owned VFs seen in another state, or gone: not ours now

    @property
    def empty(self) -> bool:
        return not (self.disable or self.restore or self.forget)


def plan(
    verdict: Verdict,
    vfs: Mapping[int, Optional[LinkState]],
    owned: FrozenSet[int],
    *,
    complete: bool = True,
) -> Plan:
    """The relay's table: (verdict, VF link state, owned) -> action.

    ``vfs`` maps each visible VF to its link state (None: a state iproute2 named that we do not
    know; never changed). ``complete`` is False when the netlink VF list was truncated (or its
    length cannot be checked): an owned VF that is not visible is then kept, not forgotten.

    | verdict       | VF state            | owned | action                            |
    | down          | auto                | any   | disable (owned)                   |
    | up, release   | disable             | yes   | restore to auto                   |
    | any           | disable             | yes   | otherwise keep                    |
    | any           | auto, enable, other | yes   | forget (not down+auto: disabled)  |
    | any           | missing             | yes   | forget if the list is complete    |
    | any           | any but down+auto   | no    | never touched                     |
    """
    restore = []
    forget = []
    for vf in sorted(owned):
        if vf not in vfs:
            if complete:
                forget.append(vf)
            continue
        state = vfs[vf]
        if state is LinkState.DISABLE:
            if verdict in (Verdict.UP, Verdict.RELEASE):
                restore.append(vf)
        elif not (state is LinkState.AUTO and verdict is Verdict.DOWN):
            forget.append(vf)
    disable: Tuple[int, ...] = ()
    if verdict is Verdict.DOWN:
        disable = tuple(vf for vf, state in sorted(vfs.items()) if state is LinkState.AUTO)
    return Plan(disable, tuple(restore), tuple(forget))


def owned_after(
    owned: FrozenSet[int],
    wanted: Plan,
    seen: Mapping[int, Optional[LinkState]],
    *,
    complete: bool = True,
) -> FrozenSet[int]:
    """The owned set once ``wanted`` was attempted and the VFs were read back as ``seen``.

    A VF is owned afterwards when it was owned or just disabled, is not forgotten, and reads
    ``disable`` (or is not visible in an incomplete list). A change that did not take (``ip``
    failed, lied, or timed out before applying) leaves the VF in the state it is in: a disable
    that did not happen is not owned; a restore that did not happen stays owned.
    """
    candidates = (owned | frozenset(wanted.disable)) - frozenset(wanted.forget)
    return frozenset(
        vf for vf in candidates if (seen[vf] is LinkState.DISABLE if vf in seen else not complete)
    )
