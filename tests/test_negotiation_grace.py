"""A bond created while the relay runs negotiates for ~3 s (71/0): no VF may flap meanwhile."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import List

from fakehost import FakeHost, load_fixture, with_states
from fakeip import FakeIp

from pfrelay.config import Config
from pfrelay.log import EventLog
from pfrelay.relay import NEGOTIATION_GRACE_S, Relay

UP = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")
NEGOTIATING = with_states(UP, 71, 0)  # what 6.12 shows before the first LACPDU exchange


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(tmp_path: Path, *, bond_at_start: bool):
    host = FakeHost(tmp_path)
    host.add_pf("pf0", numvfs=4)
    if bond_at_start:
        host.add_bond("bond0", ["pf0"], NEGOTIATING)
    ip = FakeIp({"pf0": {n: "auto" for n in range(4)}})
    stream = io.StringIO()
    clock = Clock()
    config = Config(
        interfaces=("pf0",),
        procfs=str(host.procfs),
        sysfs=str(host.sysfs),
        state_file=str(tmp_path / "run/state.json"),
    )
    relay = Relay(config, ip, EventLog("json", "info", stream), clock=clock)
    return host, ip, relay, clock, stream


def msgs(stream: io.StringIO) -> List[str]:
    return [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]


def test_bond_that_appears_and_negotiates_touches_no_vf(tmp_path: Path) -> None:
    host, ip, relay, clock, stream = setup(tmp_path, bond_at_start=False)
    relay.cycle()  # not monitored: no master yet
    host.add_bond("bond0", ["pf0"], NEGOTIATING)
    for _ in range(3):
        clock.now += 1.0
        relay.cycle()
    assert set(ip.links["pf0"].values()) == {"auto"}
    assert not any(kind == "batch" for kind, _ in ip.calls)
    host.set_proc("bond0", UP)
    clock.now += 1.0
    relay.cycle()
    assert "lacp is down" not in msgs(stream)
    assert msgs(stream)[-1] == "lacp is up"


def test_bond_that_appears_and_stays_down_is_acted_on_after_the_grace(tmp_path: Path) -> None:
    host, ip, relay, clock, stream = setup(tmp_path, bond_at_start=False)
    relay.cycle()
    host.add_bond("bond0", ["pf0"], NEGOTIATING)
    relay.cycle()
    clock.now += NEGOTIATION_GRACE_S - 0.1
    relay.cycle()
    assert set(ip.links["pf0"].values()) == {"auto"}
    clock.now += 0.2
    relay.cycle()
    assert set(ip.links["pf0"].values()) == {"disable"}
    assert "lacp is down" in msgs(stream)


def test_bond_down_when_the_relay_starts_is_acted_on_at_once(tmp_path: Path) -> None:
    _host, ip, relay, _clock, _stream = setup(tmp_path, bond_at_start=True)
    relay.cycle()
    assert set(ip.links["pf0"].values()) == {"disable"}
