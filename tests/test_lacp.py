"""The LACP verdict over every actor/partner port-state pair, and the flag names."""

from __future__ import annotations

import itertools

import pytest

from pfrelay.lacp import Lacp, PortState, flag_names, port_verdict

NEEDED = 0x04 | 0x08 | 0x10 | 0x20
BAD = 0x40 | 0x80


def expected(actor: int, partner: int, partner_needed: int = NEEDED) -> Lacp:
    """The rule as the brief states it, written independently of the implementation."""
    actor_ok = (actor & NEEDED) == NEEDED and not (actor & BAD)
    partner_ok = (partner & partner_needed) == partner_needed and not (partner & BAD)
    return Lacp.UP if actor_ok and partner_ok else Lacp.DOWN


def test_every_state_pair_with_mii_up() -> None:
    ups = 0
    for actor, partner in itertools.product(range(256), repeat=2):
        verdict = port_verdict(True, actor, partner)
        assert verdict is expected(actor, partner), (actor, partner)
        ups += verdict is Lacp.UP
    # 4 free bits (ACT, TMO on each side) -> 4 * 4 up combinations.
    assert ups == 16


def test_every_state_pair_with_mii_down_is_down() -> None:
    # Carrier loss keeps 63/63 in the kernel: MII down must win.
    for actor, partner in itertools.product(range(256), repeat=2):
        assert port_verdict(False, actor, partner) is Lacp.DOWN


def test_partner_without_aggregation_allowed_when_configured() -> None:
    for actor, partner in itertools.product(range(256), repeat=2):
        verdict = port_verdict(True, actor, partner, partner_requires_aggregation=False)
        assert verdict is expected(actor, partner, NEEDED & ~0x04), (actor, partner)
    assert port_verdict(True, 63, 59, partner_requires_aggregation=False) is Lacp.UP
    assert port_verdict(True, 63, 59) is Lacp.DOWN


@pytest.mark.parametrize(
    ("mii", "actor", "partner", "verdict"),
    [
        (True, 63, 63, Lacp.UP),  # healthy, fast rate
        (True, 61, 61, Lacp.UP),  # healthy, slow rate
        (True, 143, 55, Lacp.DOWN),  # partner lost: actor expired, partner out of sync
        (True, 79, 0, Lacp.DOWN),  # defaulted
        (True, 15, 15, Lacp.DOWN),  # renegotiating: not collecting/distributing yet
        (False, 63, 63, Lacp.DOWN),  # carrier loss with stale states
        (None, 63, 63, Lacp.UNKNOWN),
        (True, None, 63, Lacp.UNKNOWN),
        (True, 63, None, Lacp.UNKNOWN),
        (False, None, None, Lacp.DOWN),
    ],
)
def test_timeline_states(mii: object, actor: object, partner: object, verdict: Lacp) -> None:
    assert port_verdict(mii, actor, partner) is verdict  # type: ignore[arg-type]


def test_flag_names() -> None:
    assert flag_names(63) == "ACT|TMO|AGG|SYN|COL|DIS"
    assert flag_names(143) == "ACT|TMO|AGG|SYN|EXP"
    assert flag_names(79) == "ACT|TMO|AGG|SYN|DEF"
    assert flag_names(0) == "-"
    assert flag_names(None) == "n/a"
    assert (
        PortState(0x3F)
        == PortState.ACTIVITY
        | PortState.TIMEOUT
        | PortState.AGGREGATION
        | PortState.SYNCHRONIZATION
        | PortState.COLLECTING
        | PortState.DISTRIBUTING
    )
