"""``assess``: the monitored/reason cases; ``distrust_stale_ports``: the carrier-loss rule."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest
from fakehost import load_fixture

from pfrelay.bonding import Bond, Slave, parse_proc_bonding
from pfrelay.decision import (
    STALE_AFTER_BOND_DOWN_S,
    STALE_PORT_STATE_S,
    Assessment,
    LinkLoss,
    assess,
    distrust_stale_ports,
)
from pfrelay.host import PfFacts
from pfrelay.lacp import Lacp


def facts(**kw: object) -> PfFacts:
    base = dict(
        name="pf0",
        exists=True,
        ifindex=2,
        master="bond0",
        master_kind="bond",
        bond=None,
        bond_error=None,
        numvfs=8,
        totalvfs=None,
    )
    base.update(kw)
    return PfFacts(**base)  # type: ignore[arg-type]


def bond(
    mode: Optional[str] = "802.3ad",
    slaves: tuple = (Slave("pf0", "up", 1, 63, 63),),
    rate: str = "fast",
) -> Bond:
    return Bond("bond0", mode, rate, "up", 1, slaves)


@pytest.mark.parametrize(
    ("kw", "monitored", "lacp", "reason_part"),
    [
        (dict(exists=False, master=None), False, Lacp.UNKNOWN, "no such interface"),
        (dict(master=None, master_kind=None), False, Lacp.UNKNOWN, "no master"),
        (dict(master="br0", master_kind="bridge"), False, Lacp.UNKNOWN, "br0 is a bridge"),
        (dict(master="ovs-system", master_kind="openvswitch"), False, Lacp.UNKNOWN, "openvswitch"),
        (
            dict(bond=None, bond_error="cannot read /proc/net/bonding/bond0: Permission denied"),
            False,
            Lacp.UNKNOWN,
            "Permission denied",
        ),
        (dict(bond=bond(mode="active-backup")), False, Lacp.UNKNOWN, "mode is active-backup"),
        (dict(bond=bond(mode=None)), False, Lacp.UNKNOWN, "cannot tell the mode"),
        (
            dict(bond=bond(slaves=(Slave("pf0"), Slave("pf1")))),
            False,
            Lacp.UNKNOWN,
            "has 2 slaves (pf0, pf1)",
        ),
        (dict(bond=bond(slaves=())), False, Lacp.UNKNOWN, "has 0 slaves"),
        (
            dict(bond=bond(slaves=(Slave("pf9", "up", 1, 63, 63),))),
            False,
            Lacp.UNKNOWN,
            "slave is pf9",
        ),
        (dict(bond=bond()), True, Lacp.UP, None),
        (dict(bond=bond(slaves=(Slave("pf0", "up", 1, 79, 0),))), True, Lacp.DOWN, None),
        (dict(bond=bond(slaves=(Slave("pf0", "down", 1, 63, 63),))), True, Lacp.DOWN, None),
        (
            dict(bond=bond(slaves=(Slave("pf0", "up", 1, None, None),))),
            True,
            Lacp.UNKNOWN,
            "actor port state, partner port state",
        ),
    ],
)
def test_assess(kw: dict, monitored: bool, lacp: Lacp, reason_part: Optional[str]) -> None:
    a = assess(facts(**kw))
    assert a.monitored is monitored
    assert a.lacp is lacp
    if reason_part is None:
        assert a.reason is None
    else:
        assert a.reason is not None and reason_part in a.reason


def test_slow_rate_is_monitored_with_a_flag() -> None:
    a = assess(facts(bond=bond(rate="slow", slaves=(Slave("pf0", "up", 1, 61, 61),))))
    assert a.monitored and a.lacp is Lacp.UP and a.slow_rate


def test_ovs_partner_option() -> None:
    ovs = facts(bond=bond(slaves=(Slave("pf0", "up", 1, 63, 59),)))
    assert assess(ovs).lacp is Lacp.DOWN
    assert assess(ovs, partner_requires_aggregation=False).lacp is Lacp.UP


# --------------------------------------------------- stale port states after a link loss


def slave_at(mii: Optional[str], actor: Optional[int], partner: Optional[int]) -> Assessment:
    return assess(facts(bond=bond(slaves=(Slave("pf0", mii, 1, actor, partner),))))


def replay(steps: list) -> list:
    """Feed (time, mii, actor, partner) through ``distrust_stale_ports``; the verdicts acted on."""
    loss: Optional[LinkLoss] = None
    verdicts = []
    for at, mii, actor, partner in steps:
        held, loss = distrust_stale_ports(slave_at(mii, actor, partner), loss, at)
        verdicts.append(held.lacp)
    return verdicts


U, D, X = Lacp.UP, Lacp.DOWN, Lacp.UNKNOWN


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # 6.12 carrier-loss timeline: the stale 63/63 with MII up at +6.67 s is not believed
        (
            [(0, "up", 63, 63), (0.5, "down", 63, 63), (6.67, "up", 63, 63), (6.74, "up", 71, 0),
             (8.96, "up", 15, 63), (9.03, "up", 63, 63)],
            [U, D, D, D, D, U],
        ),
        # a renegotiation that finished between two reads is believed at the re-read a few
        # state-machine ticks later (the port would have re-initialised by then)
        (
            [(0, "down", 63, 63), (1, "up", 63, 63), (1.2, "up", 63, 63), (1.499, "up", 63, 63),
             (1.5, "up", 63, 63), (2.5, "up", 63, 63)],
            [D, D, D, D, U, U],
        ),
        # the limit counts from the first read with MII up, not from the loss
        ([(0, "down", 63, 63), (50, "down", 63, 63), (50.5, "up", 63, 63)], [D, D, D]),
        # a port that was already down when the link went is not held past its own verdict
        ([(0, "down", 71, 0), (1, "up", 71, 0), (1.2, "up", 63, 63)], [D, D, U]),
        # any change of the port states ends the distrust, for good (61: partner slow rate)
        ([(0, "down", 63, 63), (1, "up", 63, 61), (1.1, "up", 63, 63)], [D, U, U]),
        # MII unknown (sysfs gone) forgets the loss: nothing to compare with afterwards
        ([(0, "down", 63, 63), (1, None, 63, 63), (1.1, "up", 63, 63)], [D, X, U]),
        # no loss seen: an up port is up at once
        ([(0, "up", 63, 63), (0.1, "up", 63, 63)], [U, U]),
        # the loss seen again while held starts over
        ([(0, "down", 63, 63), (1, "up", 63, 63), (1.3, "down", 63, 63), (2.4, "up", 63, 63),
          (2.8, "up", 63, 63), (2.9, "up", 63, 63)],
         [D, D, D, D, D, U]),
    ],
)  # fmt: skip
def test_distrust_stale_ports(steps: list, expected: list) -> None:
    assert replay(steps) == expected


def test_stale_window_is_a_few_state_machine_ticks() -> None:
    # The 6.12 port re-initialises at the next 100 ms tick after its link returns: the re-read
    # must come after that tick (with room for a loaded host), and well before a 1 s poll.
    assert 0.3 <= STALE_PORT_STATE_S <= 0.5


def test_stale_hold_names_the_reason_and_survives_an_unreadable_read() -> None:
    _, loss = distrust_stale_ports(slave_at("down", 63, 63), None, 0.0)
    assert loss == LinkLoss(63, 63)
    unreadable = assess(facts(master=None, master_kind=None, bond_error="EIO"))
    assert unreadable.unreadable
    same, kept = distrust_stale_ports(unreadable, loss, 0.5)
    assert same is unreadable and kept == loss
    held, kept = distrust_stale_ports(slave_at("up", 63, 63), kept, 0.6)
    assert held.lacp is Lacp.DOWN and kept == LinkLoss(63, 63, back_since=0.6)
    assert held.reason is not None and "pf0" in held.reason and "renegotiate" in held.reason


def test_stale_hold_ends_when_the_pf_leaves_its_bond() -> None:
    _, loss = distrust_stale_ports(slave_at("down", 63, 63), None, 0.0)
    gone = assess(facts(bond=bond(mode="active-backup")))
    assert distrust_stale_ports(gone, loss, 0.1) == (gone, None)


# --- the bond's own link (issue 12, finding 4) -----------------------------------------------


def _captured_admin_down_bond() -> Bond:
    """bond0 as /proc showed it 12 s after `ip link set bond0 down` on 6.12 (slave 63/63)."""
    text = load_fixture("proc-net-bonding-bond0-admin-down-step3-+12s")
    return parse_proc_bonding("bond0", text)


@pytest.mark.parametrize(
    ("operstate", "flags", "reason"),
    [
        ("down", 0x1402, "bond bond0 is administratively down"),  # the 6.12 capture
        (None, 0x1402, "bond bond0 is administratively down"),
        ("down", None, "bond bond0 is down (operstate)"),
        ("lowerlayerdown", 0x1403, "bond bond0 is lowerlayerdown (operstate)"),
        ("dormant", 0x1403, "bond bond0 is dormant (operstate)"),
    ],
)
def test_bond_down_means_lacp_down_though_the_slave_reads_63(
    operstate: Optional[str], flags: Optional[int], reason: str
) -> None:
    captured = _captured_admin_down_bond()
    slave = captured.slaves[0]
    assert (slave.mii_status, slave.actor_state, slave.partner_state) == ("up", 63, 63)
    got = assess(facts(bond=captured, bond_operstate=operstate, bond_flags=flags))
    assert (got.monitored, got.lacp, got.reason) == (True, Lacp.DOWN, reason)
    assert got.bond == captured and got.slave == slave


def test_bond_mii_down_means_lacp_down() -> None:
    b = dataclasses.replace(bond(), mii_status="down")
    got = assess(facts(bond=b))
    assert (got.monitored, got.lacp, got.reason) == (
        True,
        Lacp.DOWN,
        "bond bond0 MII status is down",
    )


@pytest.mark.parametrize(
    ("operstate", "flags"),
    [("up", None), ("up", 0x1403), (None, None), ("unknown", 0x1403), ("garbage", None)],
)
def test_bond_up_or_unreadable_keeps_the_port_verdict(
    operstate: Optional[str], flags: Optional[int]
) -> None:
    got = assess(facts(bond=bond(), bond_operstate=operstate, bond_flags=flags))
    assert (got.monitored, got.lacp, got.reason) == (True, Lacp.UP, None)


def test_bond_state_does_not_matter_for_an_unmonitored_pf() -> None:
    b = bond(mode="active-backup")
    got = assess(facts(bond=b, bond_operstate="down", bond_flags=0x1402))
    assert (got.monitored, got.lacp) == (False, Lacp.UNKNOWN)
    assert got.reason == "bond bond0 mode is active-backup, not 802.3ad"


def bond_at(up: bool, actor: int, partner: int) -> Assessment:
    """pf0 (MII up throughout) in bond0, which is up or set down (flags 0x1402)."""
    b = bond(slaves=(Slave("pf0", "up", 1, actor, partner),))
    if up:
        return assess(facts(bond=b, bond_operstate="up", bond_flags=0x1403))
    return assess(facts(bond=b, bond_operstate="down", bond_flags=0x1402))


def replay_bond(steps: list) -> list:
    """Feed (time, bond up?, actor, partner) through ``distrust_stale_ports``."""
    loss: Optional[LinkLoss] = None
    verdicts = []
    for at, up, actor, partner in steps:
        held, loss = distrust_stale_ports(bond_at(up, actor, partner), loss, at)
        verdicts.append(held.lacp)
    return verdicts


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # the kernel lab's 6.12 timeline (CI, stop 16): bond0 down 4 s, the slave frozen at
        # 63/63; after `ip link set bond0 up` 63/63 for ~190 ms, then the partner's answer
        # (143: expired, not collecting), then 63/63 renegotiated ~0.5 s after that
        (
            [(0, True, 63, 63), (0.2, False, 63, 63), (4.0, False, 63, 63),
             (4.13, True, 63, 63), (4.19, True, 63, 143), (4.53, True, 63, 63)],
            [U, D, D, D, D, U],
        ),
        # the partner answered with 63 at once: believed one fast periodic time and a few
        # ticks after the bond came up, not at the carrier-loss window
        (
            [(0, False, 63, 63), (1, True, 63, 63), (1 + STALE_PORT_STATE_S, True, 63, 63),
             (1 + STALE_AFTER_BOND_DOWN_S - 0.001, True, 63, 63),
             (1 + STALE_AFTER_BOND_DOWN_S, True, 63, 63)],
            [D, D, D, D, U],
        ),
        # set down and up between two reads: nothing seen, nothing held
        ([(0, True, 63, 63), (1, True, 63, 63)], [U, U]),
    ],
)  # fmt: skip
def test_a_bond_set_down_and_up_is_a_link_loss(steps: list, expected: list) -> None:
    assert replay_bond(steps) == expected


def test_stale_window_after_a_bond_was_down_covers_a_fast_periodic_time() -> None:
    # bond_open() resumes without re-initialising the port: the first LACPDU after it goes
    # out within one fast periodic time (1 s), and the partner's answer a tick later.
    assert 1.2 <= STALE_AFTER_BOND_DOWN_S <= 2.0


def test_stale_hold_after_a_bond_was_down_names_the_bond() -> None:
    _, loss = distrust_stale_ports(bond_at(False, 63, 63), None, 0.0)
    assert loss == LinkLoss(63, 63, window=STALE_AFTER_BOND_DOWN_S, what="bond bond0")
    held, _ = distrust_stale_ports(bond_at(True, 63, 63), loss, 0.1)
    assert held.lacp is Lacp.DOWN
    assert held.reason == (
        "the port states of pf0 are those from before bond bond0 went down; "
        "waiting for LACP to renegotiate"
    )
