"""``ownership``: the whole (verdict, VF state, owned) table, the verdict, and the owned set after
a change was attempted and read back."""

from __future__ import annotations

import itertools
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pfrelay.lacp import Lacp
from pfrelay.ownership import Plan, Verdict, owned_after, plan, verdict
from pfrelay.sriov import LinkState

MISSING = "missing"
STATES = [LinkState.AUTO, LinkState.ENABLE, LinkState.DISABLE, None, MISSING]


def expected_action(v: Verdict, state: object, owned: bool, complete: bool) -> str:
    """The brief's rules, one VF at a time: 'disable', 'restore', 'forget' or 'none'."""
    if state == MISSING:
        return "forget" if owned and complete else "none"
    if v is Verdict.DOWN and state is LinkState.AUTO:
        return "disable"
    if not owned:
        return "none"  # never touch a VF the relay does not own
    if state is LinkState.DISABLE:
        return "restore" if v in (Verdict.UP, Verdict.RELEASE) else "none"
    # Seen in any state other than disable: not the relay's any more, whatever the verdict.
    return "forget"


@pytest.mark.parametrize(
    ("v", "state", "owned", "complete"),
    list(itertools.product(list(Verdict), STATES, [False, True], [False, True])),
)
def test_table(v: Verdict, state: object, owned: bool, complete: bool) -> None:
    vfs = {} if state == MISSING else {3: state}
    got = plan(v, vfs, frozenset({3}) if owned else frozenset(), complete=complete)  # type: ignore[arg-type]
    action = expected_action(v, state, owned, complete)
    assert got == Plan(
        disable=(3,) if action == "disable" else (),
        restore=(3,) if action == "restore" else (),
        forget=(3,) if action == "forget" else (),
    )


def test_mixed_pf_down_then_up() -> None:
    vfs = {0: LinkState.AUTO, 1: LinkState.ENABLE, 2: LinkState.DISABLE, 3: LinkState.AUTO}
    down = plan(Verdict.DOWN, vfs, frozenset())
    assert down == Plan(disable=(0, 3))
    after = {**vfs, 0: LinkState.DISABLE, 3: LinkState.DISABLE}
    up = plan(Verdict.UP, after, frozenset({0, 3}))
    assert up == Plan(restore=(0, 3))  # VF 2 was disabled by hand: never touched


def test_operator_takes_a_vf_over_while_unmonitored() -> None:
    # Issue 12 #2: auto by hand while held, then disable on purpose: the operator's VF now.
    owned = frozenset({0, 1})
    seen = {0: LinkState.AUTO, 1: LinkState.DISABLE}
    held = plan(Verdict.HOLD, seen, owned)
    assert held == Plan(forget=(0,))
    owned = owned_after(owned, held, seen)
    assert owned == {1}
    later = plan(Verdict.UP, {0: LinkState.DISABLE, 1: LinkState.DISABLE}, owned)
    assert later == Plan(restore=(1,))


H, U, D, R = Verdict.HOLD, Verdict.UP, Verdict.DOWN, Verdict.RELEASE


@pytest.mark.parametrize(
    ("lacp", "up_for", "unsure_for", "expected"),
    [
        (Lacp.DOWN, None, None, D),
        (Lacp.DOWN, None, 999.0, D),  # a monitored DOWN is never released
        (Lacp.UP, 0.0, None, H),  # within the restore delay (2 s below)
        (Lacp.UP, 1.999, None, H),
        (Lacp.UP, 2.0, None, U),
        (Lacp.UNKNOWN, None, 0.0, H),
        (Lacp.UNKNOWN, None, 29.999, H),
        (Lacp.UNKNOWN, None, 30.0, R),  # cannot read the port states past the hold
        (None, None, 0.0, H),  # not monitored: held ...
        (None, None, 30.0, R),  # ... then released
        (None, None, None, H),
    ],
)
def test_verdict(
    lacp: Optional[Lacp], up_for: Optional[float], unsure_for: Optional[float], expected: Verdict
) -> None:
    got = verdict(lacp, up_for_s=up_for, unsure_for_s=unsure_for, restore_delay_s=2.0, hold_s=30.0)
    assert got is expected


def test_owned_after_a_change_that_did_not_take() -> None:
    wanted = Plan(disable=(0, 1), restore=(5,), forget=(7,))
    owned = frozenset({5, 6, 7})
    # ip lied about VF 1 (still auto) and the restore of 5 (still disable); 6 vanished from an
    # incomplete list; 7 was forgotten.
    seen = {0: LinkState.DISABLE, 1: LinkState.AUTO, 5: LinkState.DISABLE, 7: LinkState.DISABLE}
    assert owned_after(owned, wanted, seen, complete=False) == {0, 5, 6}
    assert owned_after(owned, wanted, seen, complete=True) == {0, 5}


states = st.sampled_from([LinkState.AUTO, LinkState.ENABLE, LinkState.DISABLE, None])
vf_maps = st.dictionaries(st.integers(0, 7), states, max_size=8)


@given(st.sampled_from(list(Verdict)), vf_maps, st.frozensets(st.integers(0, 9)), st.booleans())
def test_plan_invariants(v: Verdict, vfs: dict, owned: frozenset, complete: bool) -> None:
    p = plan(v, vfs, owned, complete=complete)
    # I1: only owned VFs are restored or forgotten; only auto VFs are disabled, and only when down
    assert set(p.restore) <= owned and set(p.forget) <= owned
    assert all(vfs[vf] is LinkState.AUTO for vf in p.disable)
    assert not p.disable or v is Verdict.DOWN
    # never a VF in two lists; enable and unknown states are never changed
    assert not (set(p.disable) & set(p.restore) or set(p.restore) & set(p.forget))
    assert all(vfs.get(vf) is LinkState.DISABLE for vf in p.restore)
    # applied in full, the owned set is exactly the disabled VFs the relay owns (I4)
    after = dict(vfs)
    after.update({vf: LinkState.DISABLE for vf in p.disable})
    after.update({vf: LinkState.AUTO for vf in p.restore})
    kept = owned_after(owned, p, after, complete=complete)
    assert all(after.get(vf, LinkState.DISABLE) is LinkState.DISABLE for vf in kept)
    if v in (Verdict.UP, Verdict.RELEASE) and complete:
        assert not kept  # I3: nothing stays disabled once up or released
