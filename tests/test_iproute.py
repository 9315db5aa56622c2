"""``Ip`` against a fake ``ip`` executable: batch, per-line failures, timeouts, garbage."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List

import pytest
from fakeip import write_script

from pfrelay.iproute import Ip, IpBudget, IpError, VfChange, ip_budgets, resolve_binary
from pfrelay.sriov import LinkState, parse_link_show


@pytest.fixture()
def fake(tmp_path: Path):
    script, state = write_script(tmp_path / "ipbin")
    state.add_pf("pf0", {n: "auto" for n in range(4)})
    return Ip(str(script), timeout_s=5.0), state


def test_batch_is_one_process(fake) -> None:
    ip, state = fake
    changes = [VfChange("pf0", n, LinkState.DISABLE) for n in range(4)]
    result = ip.set_vf_states(changes)
    assert result.applied == tuple(changes) and result.failed == ()
    assert state.vfs("pf0") == {n: "disable" for n in range(4)}
    calls = state.calls()
    assert len(calls) == 1 and calls[0]["argv"] == ["-force", "-batch", "-"]
    assert calls[0]["stdin"].splitlines()[0] == "link set dev pf0 vf 0 state disable"


def test_one_failing_vf_does_not_block_the_others(fake) -> None:
    ip, state = fake
    state.set(fail_vfs=[["pf0", 2]])
    changes = [VfChange("pf0", n, LinkState.DISABLE) for n in range(4)]
    result = ip.set_vf_states(changes)
    assert [c.vf for c in result.applied] == [0, 1, 3]
    assert [(c.vf, err) for c, err in result.failed] == [(2, "RTNETLINK answers: Invalid argument")]
    assert state.vfs("pf0") == {0: "disable", 1: "disable", 2: "auto", 3: "disable"}
    assert len(state.calls()) == 1


def test_unknown_failure_format_falls_back_to_one_by_one(fake) -> None:
    ip, state = fake
    state.set(mode="fail")
    result = ip.set_vf_states(
        [VfChange("pf0", 0, LinkState.DISABLE), VfChange("pf0", 1, LinkState.DISABLE)]
    )
    assert result.applied == ()
    assert [err for _, err in result.failed] == ["RTNETLINK answers: Operation not permitted"] * 2
    assert len(state.calls()) == 3  # the batch, then one per VF


def test_unsafe_names_never_go_into_a_batch(fake) -> None:
    ip, state = fake
    ip.set_vf_states([VfChange("pf#0", 0, LinkState.DISABLE)])
    assert state.calls()[0]["argv"] == ["link", "set", "dev", "pf#0", "vf", "0", "state", "disable"]


def test_link_show(fake) -> None:
    ip, _ = fake
    out, _err = ip.link_show("pf0")
    assert [v.link_state for v in parse_link_show("pf0", out).vfs] == [LinkState.AUTO] * 4


def test_link_show_missing_device(fake) -> None:
    ip, _ = fake
    with pytest.raises(IpError, match='Device "nope" does not exist'):
        ip.link_show("nope")


def test_hang_is_killed_after_the_timeout(tmp_path: Path) -> None:
    script, state = write_script(tmp_path)
    state.set(mode="hang")
    ip = Ip(str(script), timeout_s=0.5)
    with pytest.raises(IpError, match=r"no answer after 0.5 s"):
        ip.link_show("pf0")
    result = ip.set_vf_states([VfChange("pf0", 0, LinkState.DISABLE)])
    assert "no answer" in result.failed[0][1]


def test_missing_binary(tmp_path: Path) -> None:
    ip = Ip(str(tmp_path / "nope"), timeout_s=1)
    with pytest.raises(IpError, match="cannot run"):
        ip.link_show("pf0")
    with pytest.raises(IpError, match="not found or not executable"):
        resolve_binary(str(tmp_path / "nope"))
    with pytest.raises(IpError, match="not found"):
        resolve_binary("no-such-ip-binary", {"PATH": str(tmp_path)})


def test_resolve_finds_ip_on_path(tmp_path: Path) -> None:
    # Not as root: root takes the bare name "ip" from a fixed list (tests/test_hardening.py).
    script, _ = write_script(tmp_path)
    assert resolve_binary("ip", {"PATH": str(tmp_path)}, as_root=False) == str(script)
    assert os.path.isabs(resolve_binary(str(script)))


# --------------------------------------------------------------- deadlines (issue 13, finding 4)
def test_the_per_vf_fallback_stops_at_the_pf_deadline(tmp_path: Path) -> None:
    """A batch failing in an unknown format, then every single ``ip`` hanging: 16 VFs x the
    timeout was 8 s here (64 x 5 s = 320 s with the defaults); the PF's budget ends it."""
    script, state = write_script(tmp_path / "ipbin")
    state.add_pf("pf0", {n: "auto" for n in range(16)})
    state.set(batch_error="something new went wrong", hang_single_set=True)
    budget = IpBudget(pf_s=1.2)
    ip = Ip(str(script), timeout_s=0.5, budget=budget)
    budget.start_cycle()
    began = time.monotonic()
    result = ip.set_vf_states([VfChange("pf0", n, LinkState.DISABLE) for n in range(16)])
    assert time.monotonic() - began < 2.5
    assert result.applied == () and len(result.failed) == 16
    assert "no answer after" in result.failed[0][1]
    assert "time for ip work of this pf and cycle is spent" in result.failed[-1][1]
    assert ip.processes <= 4  # the batch and the singles that fit


def test_the_per_vf_fallback_stops_when_asked_between_calls(tmp_path: Path) -> None:
    script, state = write_script(tmp_path / "ipbin")
    state.add_pf("pf0", {n: "auto" for n in range(8)})
    state.set(batch_error="something new went wrong")
    budget = IpBudget()
    asked: List[int] = []

    def between() -> bool:
        asked.append(1)  # the daemon feeds the watchdog here
        return len(asked) < 3

    budget.between = between
    ip = Ip(str(script), timeout_s=5.0, budget=budget)
    result = ip.set_vf_states([VfChange("pf0", n, LinkState.DISABLE) for n in range(8)])
    assert [c.vf for c in result.applied] == [0, 1, 2]
    assert {e for _, e in result.failed} == {"not tried: the relay is stopping"}
    assert ip.processes == 4  # the batch and three singles


def test_ip_budgets_stay_well_under_the_watchdog() -> None:
    assert ip_budgets(5.0, None) == (10.0, 20.0)
    assert ip_budgets(5.0, 30.0) == (10.0, 15.0)  # the unit's WatchdogSec=30
    pf_s, cycle_s = ip_budgets(60.0, 30.0)
    assert pf_s == 10.0 and cycle_s == 15.0
    pf_s, cycle_s = ip_budgets(5.0, 1.0)
    assert pf_s < 0.34 and cycle_s == 0.5
