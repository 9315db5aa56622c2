"""``pfrelay status``: the JSON contract and the table, from reports of fake hosts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from fakehost import load_fixture
from test_relay_support import PROC_DOWN, World, relayed

from pfrelay import ledger as ledgers
from pfrelay import status
from pfrelay.relay import PfReport, observe
from pfrelay.runtime import ServiceInfo

#: The public contract: these keys, with these types; more keys may be added, none renamed.
INTERFACE_KEYS = {"interface", "monitored", "reason", "lacp", "bond", "vfs"}
BOND_KEYS = {"name", "mode", "lacp_rate", "mii_status", "slaves"}
SLAVE_KEYS = {"name", "mii_status", "aggregator_id", "actor_state", "partner_state"}
VF_KEYS = {"vf", "link_state", "disabled_by_relay"}


def check_contract(doc: Dict[str, Any]) -> None:
    assert isinstance(doc["interfaces"], list)
    for entry in doc["interfaces"]:
        assert set(entry) >= INTERFACE_KEYS
        assert isinstance(entry["interface"], str)
        assert isinstance(entry["monitored"], bool)
        assert entry["reason"] is None or isinstance(entry["reason"], str)
        assert entry["lacp"] in ("up", "down", "unknown")
        bond = entry["bond"]
        if bond is not None:
            assert set(bond) >= BOND_KEYS
            assert isinstance(bond["name"], str)
            for key in ("mode", "lacp_rate", "mii_status"):
                assert bond[key] is None or isinstance(bond[key], str)
            for slave in bond["slaves"]:
                assert set(slave) >= SLAVE_KEYS
                assert isinstance(slave["name"], str)
                for key in ("aggregator_id", "actor_state", "partner_state"):
                    assert slave[key] is None or type(slave[key]) is int
        for vf in entry["vfs"]:
            assert set(vf) >= VF_KEYS
            assert type(vf["vf"]) is int
            assert vf["link_state"] in ("auto", "enable", "disable", None)
            assert type(vf["disabled_by_relay"]) is bool


@pytest.fixture
def reports(tmp_path: Path) -> List[PfReport]:
    """pf0 up, pf1 down with the relay's VFs disabled, pf2 missing, lagp0 in active-backup."""
    world = World(tmp_path, pfs=["pf0", "pf1", "pf2", "lagp0"])
    world.add_pf("pf0", numvfs=2)
    world.add_pf("pf1", bond="bond1", proc=PROC_DOWN, ifindex=3)
    world.add_pf("lagp0", bond=None, ifindex=4, numvfs=0)
    world.host.add_bond(
        "bondab",
        ["lagp0", "lagp1"],
        load_fixture("proc-net-bonding-bondab-active-backup"),
        mode="active-backup 1",
    )
    world.cycle()
    ledger = ledgers.load(world.state_file)
    return [observe(world.config, world.ip, ledger, pf) for pf in world.config.interfaces]


def test_json_contract(reports: List[PfReport]) -> None:
    doc = json.loads(status.to_json(reports, None))
    assert set(doc) == {"interfaces"}
    check_contract(doc)
    pf0, pf1, pf2, lagp0 = doc["interfaces"]
    assert (pf0["interface"], pf0["monitored"], pf0["reason"], pf0["lacp"]) == (
        "pf0",
        True,
        None,
        "up",
    )
    assert pf0["bond"]["name"] == "bond0"
    assert (pf0["bond"]["mode"], pf0["bond"]["lacp_rate"], pf0["bond"]["mii_status"]) == (
        "802.3ad",
        "fast",
        "up",
    )
    (slave,) = pf0["bond"]["slaves"]
    assert {k: slave[k] for k in SLAVE_KEYS} == {
        "name": "pf0",
        "mii_status": "up",
        "aggregator_id": 1,
        "actor_state": 63,
        "partner_state": 63,
    }
    assert pf0["vfs"] == [
        {"vf": 0, "link_state": "auto", "disabled_by_relay": False},
        {"vf": 1, "link_state": "auto", "disabled_by_relay": False},
    ]

    assert (pf1["monitored"], pf1["lacp"]) == (True, "down")
    (slave,) = pf1["bond"]["slaves"]
    assert (slave["actor_state"], slave["partner_state"]) == (79, 0)
    by_vf = {vf["vf"]: vf for vf in pf1["vfs"]}
    assert {n for n, vf in by_vf.items() if vf["disabled_by_relay"]} == relayed()
    assert by_vf[5]["link_state"] == "enable" and not by_vf[5]["disabled_by_relay"]
    assert by_vf[6]["link_state"] == "disable" and not by_vf[6]["disabled_by_relay"]

    assert (pf2["monitored"], pf2["reason"], pf2["lacp"], pf2["bond"], pf2["vfs"]) == (
        False,
        "no such interface",
        "unknown",
        None,
        [],
    )
    assert (lagp0["monitored"], lagp0["lacp"]) == (False, "unknown")
    assert lagp0["reason"] == "bond bondab mode is active-backup, not 802.3ad"
    assert lagp0["bond"]["mode"] == "active-backup" and lagp0["bond"]["lacp_rate"] is None
    assert [s["name"] for s in lagp0["bond"]["slaves"]] == ["lagp0", "lagp1"]
    assert all(s["actor_state"] is None for s in lagp0["bond"]["slaves"])


def test_json_service(reports: List[PfReport]) -> None:
    now = time.time()
    info = ServiceInfo(running=True, pid=4242, last_cycle=now - 2.0, started=now - 60.0)
    doc = json.loads(status.to_json(reports[:1], info))
    check_contract(doc)
    service = doc["service"]
    assert (service["running"], service["pid"], service["cycled_since_start"]) == (
        True,
        4242,
        True,
    )
    assert service["last_cycle"].endswith("Z")
    assert 1.9 <= service["last_cycle_age_s"] < 10
    stopped = json.loads(status.to_json([], ServiceInfo(False, None, None)))["service"]
    assert stopped == {
        "running": False,
        "unknown_reason": None,
        "pid": None,
        "last_cycle": None,
        "last_cycle_age_s": None,
        "cycled_since_start": None,
        "ledger_persisted": None,
    }


def test_json_with_an_unreadable_vf_list(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.ip.error = "ip -j link show dev pf0: Message truncated"
    report = observe(world.config, world.ip, ledgers.Ledger(), "pf0")
    (entry,) = json.loads(status.to_json([report], None))["interfaces"]
    assert entry["vfs"] == []
    assert entry["vf_error"] == "ip -j link show dev pf0: Message truncated"


def test_table(reports: List[PfReport]) -> None:
    now = time.time()
    text = status.to_table(reports, ServiceInfo(True, 4242, now - 1.5, now - 60.0))
    lines = text.splitlines()
    assert lines[0] == "pf0: LACP UP"
    assert lines[1] == "  bond      bond0  mode 802.3ad  lacp_rate fast  mii up"
    assert lines[2] == "  slave     pf0  mii up  aggregator 1"
    assert lines[3] == "    actor    63 ACT|TMO|AGG|SYN|COL|DIS"
    assert lines[4] == "    partner  63 ACT|TMO|AGG|SYN|COL|DIS  mac 4e:0a:06:1c:16:6d"
    assert lines[5] == "  vfs       2 VFs: 2 auto"
    pf1 = lines[lines.index("pf1: LACP DOWN") :]
    assert pf1[3] == "    actor    79 ACT|TMO|AGG|SYN|DEF"
    assert pf1[4] == "    partner   0 -  mac 00:00:00:00:00:00"
    assert pf1[5] == "  vfs       8 VFs: 7 disable, 1 enable"
    assert pf1[6] == "  disabled by the relay: 0 1 2 3 4 7"
    pf2 = lines.index("pf2: NOT MONITORED - no such interface")
    assert not lines[pf2 + 1].startswith("  ")  # nothing more to say of it: no "vfs" line
    ab = lines[
        lines.index("lagp0: NOT MONITORED - bond bondab mode is active-backup, not 802.3ad") :
    ]
    assert ab[1] == "  bond      bondab  mode active-backup  lacp_rate ?  mii up"
    assert ab[2] == "  slave     lagp0  mii up  aggregator ?"
    assert ab[3] == "    actor   n/a"
    assert lines[-1].startswith("relay: running (pid 4242), last cycle 1.")
    assert lines[-1].endswith(" s ago")


def test_table_service_lines() -> None:
    now = time.time()
    assert status.to_table([], ServiceInfo(False, None, None)) == "relay: not running"
    # A heartbeat older than the lock is an earlier relay's.
    assert (
        status.to_table([], ServiceInfo(True, 7, now - 100.0, now - 10.0))
        == "relay: running (pid 7), no cycle completed yet"
    )
    assert status.to_table([], None) == ""


def test_table_vf_summaries(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.ip.error = "boom"
    report = observe(world.config, world.ip, ledgers.Ledger(), "pf0")
    assert "  vfs       unreadable (boom)" in status.to_table([report], None).splitlines()
    no_ip = observe(world.config, None, ledgers.Ledger(), "pf0")
    assert "  vfs       8 VFs (states not read)" in status.to_table([no_ip], None).splitlines()
