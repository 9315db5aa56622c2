"""Discovery on the real kernel: ``pfrelay run --interface discover/`` with no PF named.

pf0 is the standard topology (the only slave of 802.3ad bond0, LACP up). pfab has VFs but is
the slave of an active-backup bond: discovered, listed as not monitored with its reason, never
touched. pfx has VFs and no bond: not a candidate, never touched. Then a second PF, its bond
and the switch's LAG are created while the relay runs: it must be picked up without a reload
(link events), wait out LACP's negotiation, and then be relayed like a named PF.
"""

from __future__ import annotations

import time

import klab
import pytest
from test_relay import DETECT_S, MARGIN_S, POLL_S, STARTUP_S

DISCOVER = "discover/"
#: A bond created at run time -> "pf discovered": link events make it immediate; the periodic
#: rescan (5 s) bounds it. Python under TCG is slow, so allow a few polls more.
PICKUP_S = 20.0


def test_discovery_follows_the_host_and_touches_nothing_else(
    topo: klab.Topology, start_relay, figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pfrelay status` (no PF named) reads the same setting from the environment.
    monkeypatch.setenv("PF_STATUS_RELAY_INTERFACES", DISCOVER)
    klab.standard_topology(topo, num_vfs=4)
    topo.add_port("pfab", "swp2", num_vfs=4)
    topo.add_bond("bondab", ["pfab"], ("mode", "active-backup", "miimon", "100"))
    topo.add_port("pfx", "swp3", num_vfs=4)
    klab.set_vf_states("pfab", {0: "enable", 1: "disable"})
    klab.set_vf_states("pfx", {2: "disable"})
    untouched = {pf: klab.vf_states(pf) for pf in ("pfab", "pfx")}

    relay = start_relay(interfaces=(DISCOVER,))
    relay.wait_for_msg("pf is ready", timeout=STARTUP_S, interface="pf0")
    relay.wait_for_msg("pf is not ready", timeout=10, interface="pfab")
    figures.record("pfrelay start -> pf0 ready (discovered)", time.time() - relay.start_times[-1])
    found = relay.find("discovery found pfs")
    assert found and found[0]["interfaces"] == ["pf0", "pfab"], found

    status = relay.status()
    entries = {e["interface"]: e for e in status["interfaces"]}
    assert set(entries) == {"pf0", "pfab"}, status
    assert (entries["pf0"]["monitored"], entries["pf0"]["lacp"]) == (True, "up"), entries["pf0"]
    assert entries["pfab"]["monitored"] is False, entries["pfab"]
    assert entries["pfab"]["reason"] == "bond bondab mode is active-backup, not 802.3ad"
    assert {e["source"] for e in entries.values()} == {"discovered"}
    assert status["discovery"]["skipped"] == [], status["discovery"]

    # A second PF, its bond and the switch's LAG, created while the relay runs.
    t_add = time.monotonic()
    topo.add_port("pf1", "swp1", num_vfs=4)
    topo.add_bond("bond1", ["pf1"])
    t_bond = time.monotonic()
    topo.add_peer_bond("swbond1", ["swp1"])
    relay.wait_for_msg("pf discovered", timeout=PICKUP_S, interface="pf1", bond="bond1")
    figures.record("bond1 created -> pf1 discovered (logged)", time.monotonic() - t_bond)
    topo.wait_lacp_up("pf1")
    relay.wait_for_msg("lacp is up", timeout=PICKUP_S, interface="pf1")
    figures.record("pf1 created -> pf1 lacp up in the relay", time.monotonic() - t_add)
    # While LACP negotiated (71/0 for ~3 s) nothing was disabled: the negotiation grace.
    assert relay.find("vf link state was set") == [], relay.find("vf link state was set")

    # It is relayed like a named PF: its partner goes silent, its VFs are disabled.
    topo.block_lacpdus("swp1")
    t_down = klab.wait_lacp("pf1", up=False, timeout=DETECT_S)
    t_vfs = klab.wait_vf_states({n: "disable" for n in range(4)}, POLL_S + MARGIN_S, pf="pf1")
    figures.record("pf1: kernel down -> all VFs disable", t_vfs - t_down)

    # Nothing else was touched.
    time.sleep(1.0)
    assert klab.vf_states("pf0") == {n: "auto" for n in range(4)}
    for pf, states in untouched.items():
        assert klab.vf_states(pf) == states, pf
    touched = {e.get("interface") for e in relay.find("vf link state was set")}
    assert touched == {"pf1"}, touched
