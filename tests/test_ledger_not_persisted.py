"""Issue 12 #6: a ledger that cannot be written. The relay's job comes first: it disables the
VFs anyway, keeps their ownership in memory, retries the write every cycle, and says "ledger not
persisted" in the log, ``STATUS=``, the metrics and ``pfrelay status`` until a write succeeds;
``run --once`` exits non-zero (a restart would not know which VFs it disabled)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from test_daemon_support import World, run_once_on_a_full_tmpfs

from pfrelay import runtime
from pfrelay.status import service_dict


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_run_once_with_a_full_state_directory_disables_and_exits_1(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    # The lock is written first, then a filler eats the rest: the relay can lock and beat,
    # but the ledger's temp file gets no space.
    result = run_once_on_a_full_tmpfs(world, world.root / "full", lock_first=True)
    assert result.returncode == 1, result.stderr
    assert world.vfs() == {n: "disable" for n in range(4)}  # the job comes first
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    events += [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (error,) = [e for e in events if e["msg"] == "ledger not persisted"]
    assert "No space left on device" in error["error"]


def test_status_reads_ledger_not_persisted_from_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "run" / "state.json"
    lock = runtime.acquire(state)  # as a running relay holds it
    try:
        assert runtime.service_info(state).ledger_persisted is True
        runtime.mark_ledger(lock, persisted=False)
        info = runtime.service_info(state)
        assert info.running and info.pid == os.getpid()
        assert info.ledger_persisted is False
        assert service_dict(info)["ledger_persisted"] is False
        runtime.mark_ledger(lock, persisted=True)
        assert runtime.service_info(state).ledger_persisted is True
        assert (tmp_path / "run" / "lock").read_text() == f"{os.getpid()}\n"
    finally:
        lock.close()
    assert runtime.service_info(state).ledger_persisted is None  # no relay: nothing to say


def test_status_table_says_not_persisted(tmp_path: Path) -> None:
    from pfrelay.status import to_table

    info = runtime.ServiceInfo(True, 42, None, 1.0, None, ledger_persisted=False)
    text = to_table([], info)
    assert "ledger: NOT PERSISTED" in text and "fix the state directory" in text


def test_metrics_show_held_vfs_and_when_they_come_back(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from test_relay_support import World as RelayWorld

    from pfrelay import metrics

    world = RelayWorld(tmp_path)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    text = metrics.render(world.cycle(), {}, 0.0, 0.0)
    assert "pf_status_relay_vfs_held_release_seconds" not in text  # monitored: not held
    world.host.remove_bond("bond0")
    world.cycle()
    text = metrics.render(world.cycle(), {}, 0.0, 0.0, ledger_persisted=False)
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["pf_status_relay_vfs_held_release_seconds"] == 29.0
    assert samples["pf_status_relay_vfs_disabled"] == 6
    assert samples["pf_status_relay_ledger_persisted"] == 0
