"""Deciding: from what the host says to what the relay should do. Pure: no I/O, no clock.

Two questions, each a function that can be tested exhaustively:

- ``assess``: is this PF monitored (the only slave of an 802.3ad bond) and what is its LACP
  verdict? Every case that is not monitored has a named reason an operator can act on.
- ``distrust_stale_ports``: after a link loss, is an "up" still the pre-loss port state?

What to do with the VFs given the verdict is ``ownership``'s question.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from pfrelay.bonding import Bond, Slave
from pfrelay.host import PfFacts
from pfrelay.lacp import Lacp, port_verdict


@dataclasses.dataclass(frozen=True)
class Assessment:
    """A PF's standing: monitored or why not, its LACP verdict, and notes worth a warning."""

    interface: str
    monitored: bool
    lacp: Lacp
    reason: Optional[str] = None  # why not monitored, or why LACP is unknown
    bond: Optional[Bond] = None
    slave: Optional[Slave] = None
    slow_rate: bool = False
    #: Not monitored because the host could not be read (EACCES, EIO, a garbled file), not
    #: because of how the PF is set up: says nothing about whether the PF left its bond.
    unreadable: bool = False
    #: DOWN because the bond itself is down (``bond_link_down``), whatever the port states say.
    bond_down: bool = False


def assess(facts: PfFacts, *, partner_requires_aggregation: bool = True) -> Assessment:
    """Is the PF the single slave of an 802.3ad bond, and is its LACP up?"""
    pf = facts.name

    def unmonitored(
        reason: str, bond: Optional[Bond] = None, *, unreadable: bool = False
    ) -> Assessment:
        return Assessment(pf, False, Lacp.UNKNOWN, reason, bond, unreadable=unreadable)

    if not facts.exists:
        return unmonitored("no such interface")
    if facts.master is None:
        # read_pf sets bond_error without a master when the master link itself could not be
        # read (EACCES, EIO): that is not "no master", and the operator needs the errno.
        if facts.bond_error:
            return unmonitored(facts.bond_error, unreadable=True)
        return unmonitored("not enslaved to a bond (no master)")
    if facts.master_kind is None and facts.bond_error:
        return unmonitored(facts.bond_error)
    if facts.master_kind != "bond":
        kind = facts.master_kind or "unknown"
        article = "an" if kind[0] in "aeiou" else "a"
        return unmonitored(f"master {facts.master} is {article} {kind} device, not a bond")
    bond = facts.bond
    if bond is None:
        return unmonitored(facts.bond_error or f"cannot read bond {facts.master}", unreadable=True)
    if bond.mode is None:
        return unmonitored(f"cannot tell the mode of bond {bond.name}", bond, unreadable=True)
    if bond.mode != "802.3ad":
        return unmonitored(f"bond {bond.name} mode is {bond.mode}, not 802.3ad", bond)
    names = [s.name for s in bond.slaves]
    if len(names) != 1:
        listed = f" ({', '.join(names)})" if names else ""
        return unmonitored(
            f"bond {bond.name} has {len(names)} slaves{listed}; {pf} must be its only slave", bond
        )
    if names[0] != pf:
        return unmonitored(f"bond {bond.name}'s slave is {names[0]}, not {pf}", bond)
    slave = bond.slaves[0]
    down_because = bond_link_down(facts, bond)
    if down_because:
        return Assessment(
            pf,
            True,
            Lacp.DOWN,
            down_because,
            bond,
            slave,
            slow_rate=bond.lacp_rate == "slow",
            bond_down=True,
        )
    verdict = port_verdict(
        slave.mii_up,
        slave.actor_state,
        slave.partner_state,
        partner_requires_aggregation=partner_requires_aggregation,
    )
    reason = None
    if verdict is Lacp.UNKNOWN:
        missing = [
            what
            for what, value in (
                ("MII status", slave.mii_status),
                ("actor port state", slave.actor_state),
                ("partner port state", slave.partner_state),
            )
            if value is None
        ]
        reason = (
            f"cannot read {', '.join(missing)} of {pf} "
            f"(bond {bond.name} has no aggregator yet, or the relay lacks CAP_NET_ADMIN)"
        )
    return Assessment(pf, True, verdict, reason, bond, slave, slow_rate=bond.lacp_rate == "slow")


#: IFF_UP in ``/sys/class/net/<dev>/flags``: the interface is administratively up.
IFF_UP = 0x1

#: Bond operstates (RFC 2863, ``/sys/class/net/<bond>/operstate``) that mean no traffic flows.
#: "unknown" is not among them: it says the driver does not report a state.
_OPER_DOWN = frozenset({"down", "lowerlayerdown", "notpresent", "dormant", "testing"})


def bond_link_down(facts: PfFacts, bond: Bond) -> Optional[str]:
    """Why the bond itself is down (so LACP through it is down), or None.

    The slave's port states cannot say it: ``ip link set <bond> down`` (bond_close()) stops
    the 802.3ad and MII work, and the slave stays frozen at MII up, 63/63, while the switch
    expires the port (6.12: /proc and ``bonding/mii_status`` keep saying "up" too; only the
    bond's operstate and IFF_UP change). A value that could not be read changes nothing.
    """
    if facts.bond_flags is not None and not facts.bond_flags & IFF_UP:
        return f"bond {bond.name} is administratively down"
    if facts.bond_operstate in _OPER_DOWN:
        return f"bond {bond.name} is {facts.bond_operstate} (operstate)"
    if bond.mii_status == "down":
        return f"bond {bond.name} MII status is down"
    return None


#: How long after a slave's MII status is first seen back up its port states are distrusted
#: while they still read what they read when the link went down (seconds). The bonding driver
#: keeps the last port states (63/63) through a carrier loss and re-initialises the port at its
#: next 100 ms state-machine tick after the link returns (6.12: 63/63 with MII up for ~60 ms,
#: then 71/0 and a 2.4 s renegotiation). So a read this long after MII was seen up that still
#: shows the pre-loss states is the kernel's evidence that they are current: the port
#: renegotiated before the relay looked (slow polling). Five ticks leave room for a loaded host;
#: the relay reads the PF again at that moment (``Relay.recheck_at``), not a poll later.
STALE_PORT_STATE_S = 0.5

#: The same, after the bond itself was down (``ip link set <bond> down``): bond_close() stops
#: the 802.3ad work, so the slave keeps 63/63 through the outage while the switch expires the
#: port. bond_open() resumes the state machines without re-initialising the port, so the stale
#: 63/63 stays until the partner answers the first LACPDU sent after the bond came up: up to
#: one fast periodic time (1 s) later. 6.12 (kernel lab, bond down 4 s): 63/63 for ~190 ms after
#: `ip link set bond0 up`, then partner 143 (expired, not collecting), then 63/63 again ~0.5 s
#: later; believing the first 63/63 restored the VFs and disabled them again 60 ms later.
STALE_AFTER_BOND_DOWN_S = 1.0 + STALE_PORT_STATE_S


@dataclasses.dataclass(frozen=True)
class LinkLoss:
    """What a slave's port states read while its link was down, and when it came back."""

    actor: Optional[int]
    partner: Optional[int]
    back_since: Optional[float] = None  #: when the link was first seen up again (clock seconds)
    #: How long after ``back_since`` unchanged port states are still distrusted (seconds).
    window: float = STALE_PORT_STATE_S
    #: What went down, for the log: "its link" (carrier) or "bond <name>".
    what: str = "its link"


def distrust_stale_ports(
    now: Assessment, loss: Optional[LinkLoss], at: float
) -> Tuple[Assessment, Optional[LinkLoss]]:
    """After a link loss, "up" port states that are still the pre-loss ones are not believed.

    The kernel keeps the port states through a carrier loss, so for a moment after the link
    returns the slave reads MII up with the old 63/63 - LACP "up" by the rule - before the port
    re-initialises and renegotiates (~2.4 s with lacp_rate fast). Acting on that moment would
    restore the VFs and disable them again 60 ms later. So while the MII status is back up,
    the port states equal those seen during the loss and less than the loss's ``window`` has
    passed, an UP verdict counts as DOWN. Any change of the port states ends the distrust (the
    port re-initialised), and so does a read ``window`` after the link was first seen up that
    still shows them (the port would have changed by then: it had renegotiated before).
    A bond that was itself down (``Assessment.bond_down``) is a link loss too, with the longer
    ``STALE_AFTER_BOND_DOWN_S`` window. Returns the assessment to act on and the ``loss`` to
    pass to the next call.
    """
    slave = now.slave
    if now.unreadable:
        return now, loss  # a read that failed says nothing about the link
    if not now.monitored or slave is None:
        return now, None
    states = (slave.actor_state, slave.partner_state)
    if slave.mii_up is False:
        return now, LinkLoss(*states)
    if now.bond_down and now.bond is not None:
        return now, LinkLoss(*states, window=STALE_AFTER_BOND_DOWN_S, what=f"bond {now.bond.name}")
    if slave.mii_up is None or loss is None or states != (loss.actor, loss.partner):
        return now, None
    back_since = at if loss.back_since is None else loss.back_since
    if at - back_since >= loss.window:
        return now, None
    held = dataclasses.replace(loss, back_since=back_since)
    if now.lacp is not Lacp.UP:
        return now, held
    reason = (
        f"the port states of {now.interface} are those from before {loss.what} went down; "
        "waiting for LACP to renegotiate"
    )
    return dataclasses.replace(now, lacp=Lacp.DOWN, reason=reason), held
