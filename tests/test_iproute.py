"""``Ip`` against a fake ``ip`` executable: batch, per-line failures, timeouts, garbage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakeip import write_script

from pfrelay.iproute import Ip, IpError, VfChange, resolve_binary
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
