"""The harness itself on the real kernel: LACP negotiates, VF link states can be set and read,
and the failures the relay tests inject look the way the lab recorded them."""

from __future__ import annotations

import time
from pathlib import Path

import klab


def test_lacp_comes_up_and_vf_states_can_be_set(topo: klab.Topology, figures) -> None:
    topo.add_port("pf0", "swp0", num_vfs=8)
    t0 = time.monotonic()
    topo.add_bond("bond0", ["pf0"])
    topo.add_peer_bond("swbond", ["swp0"])
    t_up = topo.wait_lacp_up("pf0")
    figures.record("bonds created -> LACP up", t_up - t0)

    state = klab.slave_state("pf0")
    assert (state.actor, state.partner, state.mii) == (63, 63, "up"), state
    proc = Path("/proc/net/bonding/bond0").read_text()
    assert "Bonding Mode: IEEE 802.3ad Dynamic link aggregation" in proc
    assert "LACP rate: fast" in proc
    assert "Slave Interface: pf0" in proc

    assert klab.vf_states("pf0") == {i: "auto" for i in range(8)}
    wanted = {0: "enable", 1: "disable", 2: "auto", 3: "disable", 4: "enable"}
    klab.set_vf_states("pf0", wanted)
    states = klab.vf_states("pf0")
    assert {i: states[i] for i in wanted} == wanted
    klab.set_vf_state("pf0", 1, "auto")
    assert klab.vf_states("pf0")[1] == "auto"


def test_blocked_lacpdus_and_carrier_loss_as_the_kernel_shows_them(
    standard: klab.Port, topo: klab.Topology, figures
) -> None:
    t_block = topo.block_lacpdus()
    t_down = klab.wait_lacp("pf0", up=False, timeout=10)
    figures.record("LACPDUs blocked -> kernel LACP down", t_down - t_block)
    state = klab.slave_state("pf0")
    assert state.mii == "up" and state.carrier == "1", state  # carrier stays up

    topo.unblock_lacpdus()
    topo.delete_peer_bond()
    topo.add_peer_bond("swbond", ["swp0"])
    klab.wait_lacp("pf0", up=True, timeout=15)

    t_cut = topo.peer_port(up=False)
    t_mii = klab.wait_lacp("pf0", up=False, timeout=5)
    figures.record("peer port down -> mii down", t_mii - t_cut)
    state = klab.slave_state("pf0")
    # the port states keep their last value: only mii_status says the link is gone
    assert (state.actor, state.partner, state.mii, state.carrier) == (63, 63, "down", "0"), state
