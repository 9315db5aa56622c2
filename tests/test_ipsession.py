"""``IpSession``: one ``ip -j -force -batch -`` for reads and changes; restarts; fallback.

Against the fake ``ip`` (``fakeip``: its co-process mode models iproute2 6.1 as observed) and,
where this machine allows it, against the real ``ip`` in a network namespace of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import pytest
from fakeip import FakeIpState, write_script

from pfrelay.iproute import IpBudget, IpError, VfChange
from pfrelay.ipsession import IpSession
from pfrelay.sriov import LinkState, parse_link_show


@pytest.fixture()
def fake(tmp_path: Path) -> Tuple[Path, FakeIpState]:
    script, state = write_script(tmp_path / "ipbin")
    state.add_pf("pf0", {n: "auto" for n in range(4)})
    return script, state


def session(script: Path, timeout_s: float = 5.0, **kwargs: object) -> IpSession:
    s = IpSession(str(script), timeout_s, **kwargs)  # type: ignore[arg-type]
    return s


def disable(*vfs: int, pf: str = "pf0") -> List[VfChange]:
    return [VfChange(pf, n, LinkState.DISABLE) for n in vfs]


def test_reads_and_changes_go_through_one_process(fake) -> None:
    script, state = fake
    ip = session(script)
    try:
        assert ip.start() and ip.problem is None
        for _ in range(3):
            link = parse_link_show("pf0", ip.link_show("pf0")[0])
            assert [vf.vf for vf in link.vfs] == [0, 1, 2, 3]
        result = ip.set_vf_states(disable(0, 1, 2, 3))
        assert len(result.applied) == 4 and result.failed == ()
        assert state.vfs("pf0") == {n: "disable" for n in range(4)}
        assert ip.processes == 1
        assert [c["argv"] for c in state.processes()] == [["-j", "-force", "-batch", "-"]]
        batches = [c for c in state.calls() if "-batch" in c["argv"]]
        assert batches[0]["stdin"].splitlines() == [
            f"link set dev pf0 vf {n} state disable" for n in range(4)
        ]
    finally:
        ip.close()


def test_failed_lines_are_named_and_the_process_goes_on(fake) -> None:
    script, state = fake
    state.set(fail_vfs=[["pf0", 2]])
    ip = session(script)
    try:
        result = ip.set_vf_states(disable(0, 1, 2, 3))
        assert [c.vf for c in result.applied] == [0, 1, 3]
        assert [(c.vf, e) for c, e in result.failed] == [(2, "RTNETLINK answers: Invalid argument")]
        # Line numbers count on across requests (the end markers included).
        result = ip.set_vf_states(disable(2, 3))
        assert [(c.vf, e) for c, e in result.failed] == [(2, "RTNETLINK answers: Invalid argument")]
        with pytest.raises(IpError, match='Device "nosuch" does not exist'):
            ip.link_show("nosuch")
        assert ip.link_show("pf0")[0].startswith('[{"ifindex":2,"ifname":"pf0"')
        assert ip.starts == 1
    finally:
        ip.close()


def test_a_dead_co_process_is_restarted_and_unknown_outcomes_are_failures(fake) -> None:
    script, state = fake
    ip = session(script)
    try:
        ip.start()
        state.set(die_at_line=5)  # 1-2: the start-up check; 3-4: a read; 5: dies reading it
        ip.link_show("pf0")
        result = ip.set_vf_states(disable(0, 1))
        assert result.applied == () and len(result.failed) == 2
        assert "exited" in result.failed[0][1]
        state.set(die_at_line=None)
        result = ip.set_vf_states(disable(0, 1))  # a new co-process, at once
        assert len(result.applied) == 2
        assert ip.starts == 2 and ip.oneshot.processes == 0
    finally:
        ip.close()


def test_a_hung_co_process_is_killed_after_the_timeout(fake) -> None:
    script, state = fake
    ip = session(script, timeout_s=0.5)
    try:
        ip.start()
        state.set(hang_at_line=3)
        began = time.monotonic()
        with pytest.raises(IpError, match=r"no answer after 0\.5 s"):
            ip.link_show("pf0")
        assert time.monotonic() - began < 2.0
        state.set(hang_at_line=None)
        assert "pf0" in ip.link_show("pf0")[0]
        assert ip.starts == 2
    finally:
        ip.close()


def test_changes_made_then_no_answer_are_reported_failed(fake) -> None:
    """Apply-then-hang: the VFs changed, the answer never came; the relay's write-ahead
    ledger already holds them and the next cycle sorts them out."""
    script, state = fake
    ip = session(script, timeout_s=0.5)
    try:
        ip.start()
        state.set(session_mode="hang-after-batch")
        result = ip.set_vf_states(disable(0, 1))
        assert result.applied == () and "no answer" in result.failed[0][1]
        assert state.vfs("pf0") == {0: "disable", 1: "disable", 2: "auto", 3: "auto"}
    finally:
        ip.close()


@pytest.mark.parametrize("mode", ["die", "garbage", "fail", "buffered", "hang"])
def test_a_co_process_that_cannot_start_falls_back_to_one_shot_ip(fake, mode: str) -> None:
    script, state = fake
    state.set(session_mode=mode)
    ip = session(script, timeout_s=0.5)
    try:
        began = time.monotonic()
        assert not ip.start()
        assert time.monotonic() - began < 2.0
        assert ip.problem
        link = parse_link_show("pf0", ip.link_show("pf0")[0])
        assert len(link.vfs) == 4
        assert len(ip.set_vf_states(disable(0)).applied) == 1
        assert ip.starts == 1  # not retried at once: one-shot ip until retry_s passed
        assert ip.oneshot.processes == 2
    finally:
        ip.close()


def test_start_is_retried_with_backoff(fake) -> None:
    script, state = fake
    state.set(session_mode="die")
    now = [100.0]
    ip = session(script, retry_s=10.0, clock=lambda: now[0])
    try:
        assert not ip.start()
        ip.link_show("pf0")
        now[0] += 9.0
        ip.link_show("pf0")
        assert ip.starts == 1
        now[0] += 1.5
        ip.link_show("pf0")
        assert ip.starts == 2  # failed again: the next try waits 20 s
        now[0] += 15.0
        state.set(session_mode=None)
        ip.link_show("pf0")
        assert ip.starts == 2
        now[0] += 6.0
        ip.link_show("pf0")
        assert ip.starts == 3 and ip.problem is None
    finally:
        ip.close()


def test_a_re_created_pf_is_resolved_by_a_fresh_co_process(fake) -> None:
    """iproute2 caches names: after the PF came back with a new ifindex a read shows ``[{}]``
    and a change "No such device" until a new co-process resolves it."""
    script, state = fake
    ip = session(script)
    try:
        assert '"ifindex":2' in ip.link_show("pf0")[0]
        state.add_pf("pf0", {n: "auto" for n in range(4)}, ifindex=7)
        assert '"ifindex":7' in ip.link_show("pf0")[0]
        assert ip.starts == 2
        state.add_pf("pf0", {n: "auto" for n in range(4)}, ifindex=8)
        result = ip.set_vf_states(disable(0, 1))
        assert len(result.applied) == 2 and result.failed == ()
        assert state.vfs("pf0")[0] == "disable" and ip.starts == 3
    finally:
        ip.close()


def test_a_name_the_batch_syntax_cannot_carry_goes_to_one_shot_ip(fake) -> None:
    script, state = fake
    state.add_pf("pf#0", {0: "auto"})
    ip = session(script)
    try:
        ip.start()
        assert len(ip.set_vf_states(disable(0, pf="pf#0")).applied) == 1
        assert ip.oneshot.processes == 1
    finally:
        ip.close()


def test_the_budget_cuts_the_wait(fake) -> None:
    script, state = fake
    budget = IpBudget(pf_s=0.3)
    ip = session(script, timeout_s=5.0, budget=budget)
    try:
        ip.start()
        state.set(hang_at_line=3)
        budget.start_cycle()
        began = time.monotonic()
        with pytest.raises(IpError, match=r"no answer after 0\.[23]"):
            ip.link_show("pf0")
        assert time.monotonic() - began < 1.0
        with pytest.raises(IpError, match="time for ip work of this pf and cycle is spent"):
            ip.link_show("pf0")
    finally:
        ip.close()


# ------------------------------------------------------------------------ the real ip
REAL_IP = shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

PROBE = r"""
import json, subprocess, sys, time
from pfrelay.ipsession import IpSession
from pfrelay.iproute import VfChange
from pfrelay.sriov import LinkState
ip_bin = sys.argv[1]
subprocess.run([ip_bin, "link", "add", "v0", "type", "veth", "peer", "name", "v1"], check=True)
s = IpSession(ip_bin, 5.0)
out = {"started": s.start(), "problem": s.problem}
out["lo"] = json.loads(s.link_show("lo")[0])[0]["ifname"]
r = s.set_vf_states([VfChange("v0", 0, LinkState.DISABLE), VfChange("nosuch", 1, LinkState.AUTO)])
out["failed"] = [(c.pf, e) for c, e in r.failed]
subprocess.run([ip_bin, "link", "del", "v0"], check=True)
subprocess.run([ip_bin, "link", "add", "v0", "type", "veth", "peer", "name", "v1"], check=True)
out["recreated"] = json.loads(s.link_show("v0")[0])[0].get("ifname")
t = time.perf_counter()
for _ in range(20):
    s.link_show("lo")
out["ms"] = (time.perf_counter() - t) / 20 * 1000
out["starts"] = s.starts
s.close()
print(json.dumps(out))
"""


def test_real_ip_in_a_network_namespace(tmp_path: Path) -> None:
    """What the co-process relies on, checked on this machine's iproute2 (6.1 on Debian 12)."""
    unshare = shutil.which("unshare")
    if REAL_IP is None or unshare is None or os.geteuid() != 0:
        pytest.skip("needs root, unshare and iproute2")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    proc = subprocess.run(
        [unshare, "-n", sys.executable, str(probe), REAL_IP],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        pytest.skip(f"no network namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["started"] and out["problem"] is None
    assert out["lo"] == "lo"
    assert [tuple(f) for f in out["failed"]] == [
        ("v0", "RTNETLINK answers: Operation not supported"),  # a veth has no VFs
        ("nosuch", 'Cannot find device "nosuch"'),
    ]
    assert out["recreated"] == "v0"  # after a restart: the cached name was stale
    assert out["ms"] < 50
