"""``pfrelay run`` under a stand-in service manager: sd_notify end to end, watchdog, reload.

A real AF_UNIX datagram socket is bound in ``tmp_path`` (or in the abstract namespace) and the
real console script is started with ``NOTIFY_SOCKET`` pointing at it, as systemd starts a
``Type=notify`` unit with ``WatchdogSec=``. ``WATCHDOG_USEC`` is 400 ms, so the relay must ping
every ~200 ms and never leave a gap near 400 ms while it is healthy.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from test_daemon_support import (
    PFRELAY,
    NotifySocket,
    World,
    clean_env,
    wait_until,
)

WATCHDOG_USEC = 400_000


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path)
    yield sock
    sock.close()


def notify_env(address: str, **extra: str) -> Dict[str, str]:
    return clean_env(NOTIFY_SOCKET=address, WATCHDOG_USEC=str(WATCHDOG_USEC), **extra)


def gaps(times: List[float]) -> List[float]:
    return [b - a for a, b in zip(times, times[1:])]


def is_ready(fields: Dict[str, str]) -> bool:
    return fields.get("READY") == "1"


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_ready_status_watchdog_reload_and_stop(
    world: World, notify: NotifySocket, tmp_path: Path
) -> None:
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    world.write_config('interfaces = ["pf0"]\npolling_interval_ms = 100\n')
    argv = [PFRELAY, "run", *world.paths()]
    daemon = world.start(argv, notify_env(notify.address))

    # READY=1 comes once the first full cycle is done: it carries that cycle's status.
    index, ready_at, ready = notify.wait(is_ready)
    assert ready == {"READY": "1", "STATUS": "1 PF: pf0 up"}
    assert (world.run_dir / "heartbeat").exists()
    daemon.wait_log("lacp is up", interface="pf0", timeout=2)  # written before READY
    before_ready = [fields for _, fields in notify.all()[:index]]
    assert not any("READY" in fields for fields in before_ready)
    assert any("pf0 up" in fields.get("STATUS", "") for _, fields in notify.all())

    # WATCHDOG=1 every ~200 ms, never near the 400 ms timeout.
    time.sleep(1.2)
    pings = [t for t in notify.times("WATCHDOG") if t >= ready_at]
    assert len(pings) >= 4, pings
    assert max(gaps(pings)) < WATCHDOG_USEC / 1e6, gaps(pings)
    assert all(fields == {"WATCHDOG": "1"} for _, fields in notify.all() if "WATCHDOG" in fields)
    # Nothing the relay runs (here the `ip -o monitor link` child) inherits the socket.
    calls = world.ip.calls()
    assert calls, "the relay started no ip"
    assert all(call["notify_env"] == [] for call in calls)

    # SIGHUP with a new interface: RELOADING=1 + MONOTONIC_USEC, READY=1, and pf1 watched.
    world.write_config('interfaces = ["pf0", "pf1"]\npolling_interval_ms = 100\n')
    mark, log_mark = notify.mark(), daemon.mark()
    sent_usec = monotonic_usec()
    daemon.send(signal.SIGHUP)
    r_index, _, reloading = notify.wait(lambda f: "RELOADING" in f, after=mark)
    assert set(reloading) == {"RELOADING", "MONOTONIC_USEC"}
    assert reloading["RELOADING"] == "1"
    assert sent_usec <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
    notify.wait(is_ready, after=r_index + 1)
    _, _, reloaded = daemon.wait_log("configuration reloaded", after=log_mark)
    assert reloaded["added"] == ["pf1"]
    assert reloaded["removed"] == []
    daemon.wait_log("pf is ready", after=log_mark, interface="pf1", bond="bond1")
    notify.wait(lambda f: f.get("STATUS") == "2 PFs: pf0 up, pf1 up", after=mark)

    # An invalid file on SIGHUP: said so, RELOADING/READY still paired, the old one kept.
    world.write_config('interfaces = ["pf0"]\npolling_interval_ms = "fast"\n')
    mark, log_mark = notify.mark(), daemon.mark()
    daemon.send(signal.SIGHUP)
    r_index, _, _ = notify.wait(lambda f: "RELOADING" in f, after=mark)
    notify.wait(is_ready, after=r_index + 1)
    _, _, failed = daemon.wait_log(
        "configuration reload failed; keeping the old configuration", after=log_mark
    )
    assert failed["level"] == "ERROR"
    assert "polling_interval_ms" in failed["error"]
    assert str(world.config) in failed["error"]
    world.set_lacp("bond1", "pf1", up=False)  # pf1 is still watched
    daemon.wait_log("lacp is down", after=log_mark, interface="pf1")
    daemon.wait_log("vf link state was set", after=log_mark, count=4, interface="pf1")
    assert world.vfs("pf1") == {n: "disable" for n in range(4)}
    notify.wait(lambda f: f.get("STATUS") == "2 PFs: pf0 up, pf1 DOWN (4 VFs disabled)")
    assert "configuration reloaded" not in [r["msg"] for r in daemon.logs()[log_mark:]]

    # SIGTERM: STOPPING=1 and exit code 0 within 1 s.
    mark = notify.mark()
    sent = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=1.0) == 0
    assert time.monotonic() - sent < 1.0
    notify.wait(lambda f: f == {"STOPPING": "1"}, after=mark, timeout=1.0)
    assert daemon.msgs()[-1] == "Stopping application"
    assert "".join(daemon.stderr) == ""


def test_a_hung_ip_is_cut_at_the_pf_deadline_and_the_watchdog_is_fed(
    world: World, notify: NotifySocket
) -> None:
    """One PF whose `ip` never answers: cut at the per-PF deadline, well under the watchdog.

    Issue 13, finding 4: `ip` work of one PF gets a third of the watchdog timeout at most
    (`iproute.ip_budgets`), so a hung `ip` (3 s timeout here) no longer starves a 1 s watchdog:
    it is killed after 1/3 s and the watchdog is fed throughout. (Before, the relay waited the
    whole `--ip-timeout` without a ping, and with the per-VF fallback 64 x the timeout.)
    A 1 s watchdog here, not the 400 ms of the other tests: once ip answers, the cycle that
    disables the VFs runs (Python) fake ip between two pings, which on a loaded two-core
    machine took 530 ms.
    """
    watchdog_s = 1.0
    world.add_pf()
    argv = world.run_args("-i", "pf0", "--ip-timeout", "3000")
    env = clean_env(NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=str(int(watchdog_s * 1e6)))
    daemon = world.start(argv, env)
    notify.wait(is_ready)
    time.sleep(0.6)

    world.ip.set(mode="hang")
    world.set_lacp("bond0", "pf0", up=False)  # now the cycle must run ip for the VFs
    hung = wait_until(
        lambda: any(c["argv"][:3] == ["-j", "link", "show"] for c in world.ip.calls()), 3
    )
    assert hung, "the relay did not run ip for the PF whose LACP went down"
    hang_started = time.monotonic()
    _, failed_at, failed = daemon.wait_log("failed to read vf link states", timeout=5)
    assert re.search(r"no answer after 0\.3\d* s", failed["error"]), failed
    assert failed_at - hang_started < 1.5  # not the 3 s of --ip-timeout
    time.sleep(1.0)  # more hung cycles, each cut at the deadline
    world.ip.set(mode="ok")
    daemon.wait_log("vf link state was set", count=4, state="disable", timeout=15)
    time.sleep(3 * watchdog_s / 2 + 0.2)

    pings = notify.times("WATCHDOG")
    during = [t for t in pings if t >= hang_started - watchdog_s]
    assert len(during) >= 5
    assert max(gaps(during)) < watchdog_s, gaps(during)  # never starved
    assert daemon.stop() == 0


def test_runs_without_a_notify_socket(world: World) -> None:
    world.add_pf()
    daemon = world.start(world.run_args("-i", "pf0"), clean_env(WATCHDOG_USEC="400000"))
    daemon.wait_log("lacp is up")
    heartbeat = world.run_dir / "heartbeat"
    assert wait_until(heartbeat.exists, 2)
    first = heartbeat.stat().st_mtime
    assert wait_until(lambda: heartbeat.stat().st_mtime > first, 2)
    assert daemon.stop() == 0
    assert "systemd notification is off" not in daemon.msgs()
    assert [r["level"] for r in daemon.logs()] == ["INFO"] * len(daemon.logs())


def test_abstract_notify_socket_end_to_end(world: World, tmp_path: Path) -> None:
    world.add_pf()
    notify = NotifySocket(tmp_path, abstract=True)
    try:
        assert notify.address.startswith("@")
        daemon = world.start(world.run_args("-i", "pf0"), notify_env(notify.address))
        _, ready_at, ready = notify.wait(is_ready)
        assert ready["STATUS"] == "1 PF: pf0 up"
        assert wait_until(lambda: len([t for t in notify.times("WATCHDOG") if t > ready_at]), 1)
        mark = notify.mark()
        assert daemon.stop() == 0
        notify.wait(lambda f: f == {"STOPPING": "1"}, after=mark, timeout=1.0)
        assert "systemd notification is off" not in daemon.msgs()
    finally:
        notify.close()


def test_watchdog_pid_of_this_process_enables_pings(world: World, notify: NotifySocket) -> None:
    """systemd sets WATCHDOG_PID to the main PID; `exec` keeps the shell's PID for the relay."""
    world.add_pf()
    argv = ["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"]
    daemon = world.start([*argv, *world.run_args("-i", "pf0")], notify_env(notify.address))
    _, ready_at, _ = notify.wait(is_ready)
    time.sleep(0.7)
    assert len([t for t in notify.times("WATCHDOG") if t > ready_at]) >= 2
    assert "systemd notification is off" not in daemon.msgs()
    assert daemon.stop() == 0


def test_watchdog_pid_of_another_process_turns_pings_off(
    world: World, notify: NotifySocket
) -> None:
    """The watchdog was meant for a wrapper: no pings (they would be refused), READY still."""
    world.add_pf()
    env = notify_env(notify.address, WATCHDOG_PID="1")
    daemon = world.start(world.run_args("-i", "pf0"), env)
    notify.wait(is_ready)
    _, _, warning = daemon.wait_log("systemd notification is off")
    assert warning["level"] == "WARNING"
    assert "WATCHDOG_PID=1" in warning["reason"]
    time.sleep(0.6)
    assert notify.times("WATCHDOG") == []
    mark = notify.mark()
    assert daemon.stop() == 0
    notify.wait(lambda f: f == {"STOPPING": "1"}, after=mark, timeout=1.0)


def test_the_relay_survives_the_manager_going_away_and_reconnects(
    world: World, tmp_path: Path
) -> None:
    """A manager re-executing re-creates its socket: the relay must neither die nor go mute."""
    world.add_pf()
    notify = NotifySocket(tmp_path)
    address = notify.address
    daemon = world.start(world.run_args("-i", "pf0"), notify_env(address))
    notify.wait(is_ready)
    notify.close()
    Path(address).unlink()

    heartbeat = world.run_dir / "heartbeat"
    before = heartbeat.stat().st_mtime
    # Pings go nowhere meanwhile (ECONNREFUSED, then ENOENT): said once, not per ping.
    _, _, warning = daemon.wait_log("cannot notify systemd; retrying with every message")
    assert warning["socket"] == address
    assert warning["error"].startswith(("ECONNREFUSED", "ENOENT"))
    time.sleep(0.6)
    assert daemon.proc.poll() is None
    assert heartbeat.stat().st_mtime > before

    again = NotifySocket(tmp_path)
    try:
        _, _, ping = again.wait(lambda f: "WATCHDOG" in f, timeout=2)
        assert ping == {"WATCHDOG": "1"}
        daemon.wait_log("systemd notification works again")
        mark = again.mark()
        assert daemon.stop() == 0
        again.wait(lambda f: f == {"STOPPING": "1"}, after=mark, timeout=1.0)
    finally:
        again.close()
    assert "".join(daemon.stderr) == ""
    assert daemon.msgs().count("cannot notify systemd; retrying with every message") == 1
    assert daemon.msgs().count("systemd notification works again") == 1


def test_an_unusable_notify_socket_is_logged_not_fatal(world: World) -> None:
    world.add_pf()
    env = notify_env("vsock:2:1234")
    daemon = world.start(world.run_args("-i", "pf0"), env)
    _, _, warning = daemon.wait_log("systemd notification is off")
    assert "AF_VSOCK" in warning["reason"]
    daemon.wait_log("lacp is up")
    assert daemon.stop() == 0
