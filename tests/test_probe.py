"""``pfrelay status --probe live|ready``: the container probes' contract, against real relays.

live: a relay holds the lock and its last cycle (or, before its first, its start) is recent.
ready: a relay holds the lock and completed a cycle of its own recently. LACP plays no part.
The probe reads only the runtime directory (lock and heartbeat), never /proc, /sys or ip.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from test_daemon_support import World, assert_one_line_error, clean_env, wait_until


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def probe(world: World, kind: str, *extra: str, **env: str) -> Tuple[int, str]:
    result = world.pfrelay(
        "status",
        "--probe",
        kind,
        "--state-file",
        str(world.state_file),
        *extra,
        env=clean_env(**env),
    )
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return result.returncode, lines[0]


def both(world: World, *extra: str) -> List[int]:
    return [probe(world, kind, *extra)[0] for kind in ("live", "ready")]


def test_no_relay_fails_both(world: World) -> None:
    assert probe(world, "live") == (1, "live: no relay holds the lock")
    assert probe(world, "ready") == (1, "ready: no relay holds the lock")
    assert not world.run_dir.exists(), "the probe must not create the runtime directory"


def test_a_cycling_relay_passes_both(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)  # a PF down is a healthy relay
    daemon = world.start(world.run_args("-i", "pf0"))
    assert wait_until(lambda: probe(world, "ready")[0] == 0, 5), probe(world, "ready")
    code, line = probe(world, "ready")
    assert code == 0
    assert line.startswith(f"ready: relay pid {daemon.pid}, last completed cycle ")
    code, line = probe(world, "live")
    assert code == 0
    assert "(max 31 s)" in line  # default: the configured polling interval (1 s) + 30 s
    _, line = probe(world, "live", PF_STATUS_RELAY_POLLING_INTERVAL="60000")
    assert "(max 90 s)" in line
    assert daemon.stop() == 0
    assert both(world) == [1, 1]


def test_a_stale_heartbeat_from_an_earlier_relay_does_not_make_a_new_one_ready(
    world: World,
) -> None:
    world.add_pf()
    earlier = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    assert earlier.returncode == 0, earlier.stderr
    heartbeat = world.run_dir / "heartbeat"
    old = time.time() - 120
    os.utime(heartbeat, (old, old))
    assert both(world) == [1, 1]  # nothing holds the lock

    # A new relay whose first cycle is stuck in ip: it started, but never completed a cycle.
    world.ip.set(mode="hang")
    world.set_lacp("bond0", "pf0", up=False)
    daemon = world.start(world.run_args("-i", "pf0", "--ip-timeout", "60000"))
    daemon.wait_log("lacp is down")
    code, line = probe(world, "ready")
    assert code == 1
    assert f"relay pid {daemon.pid} has not completed a cycle since it started" in line
    code, line = probe(world, "live")
    assert code == 0
    assert "no cycle completed yet" in line
    # `status` does not pass the predecessor's heartbeat off as this relay's either.
    # (Without ip: status would hang in it too.)
    no_ip = [*world.paths(ip=False), "--ip", str(world.root / "no-ip")]
    table = world.pfrelay("status", "pf0", *no_ip)
    assert f"relay: running (pid {daemon.pid}), no cycle completed yet" in table.stdout
    doc = json.loads(world.pfrelay("status", "pf0", "--json", *no_ip).stdout)
    assert doc["service"]["running"] is True
    assert doc["service"]["cycled_since_start"] is False
    assert probe(world, "ready")[0] == 1

    # The hung ip ends (killed): the cycle completes with an error for pf0, and counts.
    world.ip.set(mode="ok")
    hung = [c for c in world.ip.calls() if c["argv"][0] == "-j"]
    assert len(hung) == 1
    os.kill(hung[0]["pid"], signal.SIGKILL)
    assert wait_until(lambda: probe(world, "ready")[0] == 0, 5)
    assert heartbeat.stat().st_mtime > old + 100
    assert daemon.stop() == 0


def test_a_stopped_relay_fails_live_once_max_age_passes(world: World) -> None:
    world.add_pf()
    daemon = world.start(world.run_args("-i", "pf0"))
    assert wait_until(lambda: both(world, "--max-age", "1") == [0, 0], 5)
    daemon.send(signal.SIGSTOP)
    try:
        time.sleep(1.4)
        code, line = probe(world, "live", "--max-age", "1")
        assert code == 1
        assert f"relay pid {daemon.pid}, last completed cycle " in line
        assert "(max 1 s)" in line
        assert probe(world, "ready", "--max-age", "1")[0] == 1
        assert both(world) == [0, 0]  # within the default max-age it is still fine
    finally:
        daemon.send(signal.SIGCONT)
    assert wait_until(lambda: both(world, "--max-age", "1") == [0, 0], 5)
    assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["live", "pf0"], "drop the interface names"),
        (["ready", "pf0", "pf1"], "drop the interface names"),
        (["alive"], '--probe: must be "live" or "ready", got "alive"'),
    ],
)
def test_probe_usage_errors_exit_2(world: World, args: List[str], words: str) -> None:
    result = world.pfrelay("status", "--probe", *args, "--state-file", str(world.state_file))
    assert words in assert_one_line_error(result, 2)
