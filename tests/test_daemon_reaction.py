"""``pfrelay run``'s reaction path (issue 15): no process on it, detection between polls.

The relay is the real console script on a fake host (``FakeHost``) with the fake ``ip``; the
kernel's view of an expiry is both /proc/net/bonding (what the full cycle reads) and the
slave's ``bonding_slave/`` port-state files (what the fast check watches).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from test_daemon_support import World, wait_until


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def expire(world: World, pf: str = "pf0", bond: str = "bond0") -> None:
    """The partner expired, as 6.12 shows it: /proc and the slave's sysfs files."""
    world.set_lacp(bond, pf, up=False)
    world.host.set_slave(pf, actor=143, partner=55)


def recover(world: World, pf: str = "pf0", bond: str = "bond0") -> None:
    world.set_lacp(bond, pf, up=True)
    world.host.set_slave(pf, actor=63, partner=63)


def test_an_expiry_between_polls_is_seen_by_the_fast_check(world: World) -> None:
    """At 10 s polling, without link events (the monitor fails), the relay still acts within
    a fraction of a second."""
    world.add_pf()
    world.host.enslave("pf0", "bond0")
    world.ip.set(monitor_fails=True)
    daemon = world.start(world.run_args("-i", "pf0", "--restore-delay", "0", interval=10_000))
    daemon.wait_log("lacp is up")
    time.sleep(0.3)
    expire(world)
    began = time.monotonic()
    _, down_at, _ = daemon.wait_log("lacp is down", timeout=3)
    daemon.wait_log("vf link state was set", count=4, state="disable", timeout=3)
    assert down_at - began < 1.0  # the poll would be 10 s away
    assert world.vfs() == {n: "disable" for n in range(4)}
    recover(world)
    daemon.wait_log("lacp is up", count=2, timeout=3)
    daemon.wait_log("vf link state was set", count=4, state="auto", timeout=3)
    assert daemon.stop() == 0


def test_no_fast_check_while_link_events_come(world: World) -> None:
    """With a running link monitor the port states are not polled between cycles (idle CPU):
    a change without a link event waits for the poll."""
    world.add_pf()
    world.host.enslave("pf0", "bond0")
    daemon = world.start(world.run_args("-i", "pf0", interval=10_000))
    _, up_at, _ = daemon.wait_log("lacp is up")  # the first poll; the next is 10 s later
    assert wait_until(lambda: any(c["argv"][0] == "-o" for c in world.ip.processes()), 3)
    time.sleep(0.3)
    expire(world)
    time.sleep(2.0)  # eight fast checks' worth
    assert time.monotonic() - up_at < 8.0
    assert daemon.find("lacp is down") == []
    assert daemon.stop() == 0


def test_no_process_is_started_on_the_reaction_path(world: World) -> None:
    """The co-process started with the relay reads the VFs and changes them: an outage and a
    recovery start no ``ip``."""
    world.add_pf()
    world.host.enslave("pf0", "bond0")
    daemon = world.start(world.run_args("-i", "pf0", "--restore-delay", "0"))
    daemon.wait_log("lacp is up")
    assert wait_until(lambda: len(world.ip.processes()) >= 2, 3)  # co-process, ip monitor
    before = world.ip.processes()
    assert sorted(c["argv"][0] for c in before) == ["-j", "-o"]
    expire(world)
    daemon.wait_log("vf link state was set", count=4, state="disable", timeout=3)
    recover(world)
    daemon.wait_log("vf link state was set", count=4, state="auto", timeout=3)
    assert world.ip.processes() == before
    requests = world.ip.calls()
    assert ["-j", "link", "show", "dev", "pf0"] in [c["argv"] for c in requests]
    assert all(c.get("via") == "session" for c in requests if c["argv"][0] != "-o")
    assert daemon.stop() == 0


def test_a_dead_co_process_is_replaced_and_the_relay_goes_on(world: World) -> None:
    world.add_pf()
    world.host.enslave("pf0", "bond0")
    daemon = world.start(world.run_args("-i", "pf0", "--restore-delay", "0"))
    daemon.wait_log("lacp is up")
    world.ip.set(session_mode="die")  # the next line it reads kills it, and so will a restart
    expire(world)
    daemon.wait_log("ip co-process restarted", timeout=3)
    daemon.wait_log("cannot use an ip co-process; one ip per call until it starts", timeout=3)
    daemon.wait_log("vf link state was set", count=4, state="disable", timeout=5)
    assert world.vfs() == {n: "disable" for n in range(4)}  # through one-shot ip meanwhile
    assert daemon.stop() == 0
