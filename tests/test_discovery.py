"""Discovery (``interfaces = ["discover/"]``): which PFs, why not the others, and at run time.

The host trees are ``FakeHost`` trees with the real 6.12 /proc captures (single-slave 802.3ad,
active-backup, two slaves); ``pfrelay status --json`` and ``pfrelay check`` run as a person
runs them; the run-time changes go through the daemon's ``Targets`` and a real ``Relay``.
"""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from fakehost import FakeHost, healthy_pf, load_fixture
from fakeip import FakeIp
from test_daemon_support import PFRELAY, World, clean_env, wait_until

from pfrelay import config as configs
from pfrelay import discovery, metrics
from pfrelay.config import Config, ConfigError
from pfrelay.daemon import RESCAN_S, Targets, _affected
from pfrelay.discovery import DISCOVER, BondPort, Skipped, select
from pfrelay.ledger import Ledger, PfEntry, save
from pfrelay.log import EventLog
from pfrelay.relay import Relay

PROC_UP = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")
PROC_DOWN = load_fixture("proc-net-bonding-bond0-partner-lost-peer-stops-sending")
PROC_AB = load_fixture("proc-net-bonding-bondab-active-backup")
PROC_TWO = load_fixture("proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up")


# ------------------------------------------------------------------------------ select (pure)
def test_select_keeps_sriov_ports_of_bonds_and_says_why_it_left_others_out() -> None:
    ports = [
        BondPort("ens1f0np0", "bond0", totalvfs=64),
        BondPort("ens1f1np1", "bond1", totalvfs=64),
        BondPort("eno1", "mgmt", totalvfs=None),  # a plain NIC: not listed at all
        BondPort("eno2", "mgmt", totalvfs=0),  # SR-IOV capability with no VFs: not either
        BondPort("pf0", "bond9", has_numvfs=True),  # netdevsim: sriov_numvfs only
        BondPort("enp59s0f0np0", "bond2", totalvfs=8),
    ]
    found = select(ports, include=["ens*", "pf?"], exclude=["ens1f1*"])
    assert found.candidates == ("ens1f0np0", "pf0")
    assert found.bond_of("pf0") == "bond9"
    assert found.skipped == (
        Skipped("enp59s0f0np0", "bond2", "matches no discover_include pattern (ens*, pf?)"),
        Skipped("ens1f1np1", "bond1", "excluded by discover_exclude 'ens1f1*'"),
    )


def test_select_without_patterns_takes_every_sriov_port_once() -> None:
    ports = [BondPort("b", "bond1", 8), BondPort("a", "bond0", 8), BondPort("a", "bond0", 8)]
    assert select(ports).candidates == ("a", "b")
    assert select([]).candidates == ()


# ------------------------------------------------------------------------- a mixed host tree
def mixed_host(root: Path) -> FakeHost:
    """Every kind of port discovery must tell apart, from real 6.12 captures.

    - pfa: SR-IOV, the only slave of 802.3ad bond0 (LACP up): monitored
    - lagp0, lagp1: SR-IOV, slaves of active-backup bondab: candidates, not monitored
    - pfc, pfd: SR-IOV, the two slaves of 802.3ad bond2: candidates, not monitored
    - pfe: SR-IOV, no bond: not a candidate
    - eth0: no SR-IOV, the only slave of 802.3ad mgmt: not a candidate
    """
    host = FakeHost(root)
    host.add_pf("pfa", ifindex=2, numvfs=4, totalvfs=64)
    host.add_bond("bond0", ["pfa"], PROC_UP.replace("pf0", "pfa"))
    host.add_pf("lagp0", ifindex=3, numvfs=2, totalvfs=8)
    host.add_pf("lagp1", ifindex=4, numvfs=0, totalvfs=8)
    host.add_bond(
        "bondab",
        ["lagp0", "lagp1"],
        PROC_AB,
        mode="active-backup 1",
        slave_files={s: {"ad_actor_oper_port_state": "N/A"} for s in ("lagp0", "lagp1")},
    )
    host.add_pf("pfc", ifindex=5, numvfs=0, totalvfs=8)
    host.add_pf("pfd", ifindex=6, numvfs=0, totalvfs=8)
    host.add_bond("bond2", ["pfc", "pfd"], PROC_TWO.replace("lagp0", "pfc").replace("lagp1", "pfd"))
    host.add_pf("pfe", ifindex=7, numvfs=8, totalvfs=8)
    host.add_pf("eth0", ifindex=8, numvfs=None)
    host.add_bond("mgmt", ["eth0"], PROC_UP.replace("pf0", "eth0").replace("bond0", "mgmt"))
    return host


def test_scan_of_the_mixed_tree(tmp_path: Path) -> None:
    host = mixed_host(tmp_path)
    found = discovery.discover(str(host.sysfs))
    assert found.candidates == ("lagp0", "lagp1", "pfa", "pfc", "pfd")
    assert dict(found.bonds) == {
        "lagp0": "bondab",
        "lagp1": "bondab",
        "pfa": "bond0",
        "pfc": "bond2",
        "pfd": "bond2",
    }
    assert found.skipped == () and found.error is None


def test_scan_without_bonding_masters_falls_back_to_the_bond_directories(tmp_path: Path) -> None:
    host = mixed_host(tmp_path)
    (host.sysfs / "class/net/bonding_masters").unlink()
    assert discovery.discover(str(host.sysfs)).candidates == ("lagp0", "lagp1", "pfa", "pfc", "pfd")
    empty = FakeHost(tmp_path / "empty")  # no bonding module: no bonds, no error
    assert discovery.discover(str(empty.sysfs)) == discovery.Discovery()


def test_an_unreadable_sysfs_is_an_error_not_an_exception(tmp_path: Path) -> None:
    found = discovery.discover(str(tmp_path / "nowhere"))
    assert found.candidates == ()
    assert found.error is not None and "cannot list" in found.error


STATUS_EXPECTED = {
    "pfa": (True, None, "up"),
    "lagp0": (False, "bond bondab mode is active-backup, not 802.3ad", "unknown"),
    "lagp1": (False, "bond bondab mode is active-backup, not 802.3ad", "unknown"),
    "pfc": (False, "bond bond2 has 2 slaves (pfc, pfd); pfc must be its only slave", "unknown"),
    "pfd": (False, "bond bond2 has 2 slaves (pfc, pfd); pfd must be its only slave", "unknown"),
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_status_json_of_the_mixed_tree_lists_exactly_the_candidates_with_reasons(
    world: World,
) -> None:
    host = mixed_host(world.root / "mixed")
    world.host = host
    world.ip.add_pf("pfa", {0: "auto", 1: "auto", 2: "auto", 3: "auto"}, ifindex=2)
    world.ip.add_pf("lagp0", {0: "auto", 1: "auto"}, ifindex=3)
    env = clean_env(PF_STATUS_RELAY_INTERFACES=DISCOVER)
    result = world.pfrelay("status", "--json", *world.paths(), env=env)
    doc = json.loads(result.stdout)
    got = {e["interface"]: (e["monitored"], e["reason"], e["lacp"]) for e in doc["interfaces"]}
    assert got == STATUS_EXPECTED
    assert [e["interface"] for e in doc["interfaces"]] == ["lagp0", "lagp1", "pfa", "pfc", "pfd"]
    assert {e["source"] for e in doc["interfaces"]} == {"discovered"}
    assert doc["discovery"]["skipped"] == [] and doc["discovery"]["error"] is None
    assert result.returncode == 1, "not every PF is monitored and up"

    # Exclusions are listed with their reason; the others stay as they were.
    env["PF_STATUS_RELAY_DISCOVER_EXCLUDE"] = "lagp*"
    doc = json.loads(world.pfrelay("status", "--json", *world.paths(), env=env).stdout)
    assert [e["interface"] for e in doc["interfaces"]] == ["pfa", "pfc", "pfd"]
    assert doc["discovery"]["skipped"] == [
        {"interface": i, "bond": "bondab", "reason": "excluded by discover_exclude 'lagp*'"}
        for i in ("lagp0", "lagp1")
    ]
    table = world.pfrelay("status", *world.paths(), env=env).stdout
    assert "discovery: 3 PFs (pfa, pfc, pfd)" in table
    assert "  skipped   lagp0 (bond bondab): excluded by discover_exclude 'lagp*'" in table


def test_status_with_names_and_discovery_shows_both_and_the_ledger_held_pfs(
    world: World,
) -> None:
    host = mixed_host(world.root / "mixed")
    world.host = host
    save(world.state_file, Ledger({"gone0": PfEntry(frozenset({1}), 40, 4)}))
    env = clean_env(
        PF_STATUS_RELAY_INTERFACES=f"pfe,{DISCOVER}", PF_STATUS_RELAY_DISCOVER_INCLUDE="pfa"
    )
    doc = json.loads(world.pfrelay("status", "--json", *world.paths(), env=env).stdout)
    sources = {e["interface"]: e["source"] for e in doc["interfaces"]}
    assert sources == {"pfe": "configured", "pfa": "discovered", "gone0": "ledger"}
    reasons = {e["interface"]: e["reason"] for e in doc["interfaces"]}
    assert reasons["pfe"] == "not enslaved to a bond (no master)"
    assert reasons["gone0"] == "no such interface"


def test_check_with_discovery_lists_the_pfs_and_the_skipped_ones(world: World) -> None:
    host = mixed_host(world.root / "mixed")
    world.host = host
    env = clean_env(PF_STATUS_RELAY_INTERFACES=DISCOVER, PF_STATUS_RELAY_DISCOVER_EXCLUDE="pfc,pfd")
    result = world.pfrelay("check", *world.paths()[:-2], env=env)  # no --state-file
    lines = result.stdout.splitlines()
    assert "ok   discovery: 3 PFs (lagp0, lagp1, pfa)" in lines
    assert "ok   pfc: not watched (bond bond2): excluded by discover_exclude 'pfc'" in lines, lines
    assert any(line.startswith("FAIL lagp0:") for line in lines), lines
    assert result.returncode == 1


# ------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "source",
    ["toml", "env", "flag"],
)
def test_discover_spelling_in_every_layer(tmp_path: Path, source: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'interfaces = ["discover/", "ens9"]\ndiscover_exclude = ["ens1f1*"]\n'
        if source == "toml"
        else ""
    )
    env = (
        {
            "PF_STATUS_RELAY_INTERFACES": "discover/,ens9",
            "PF_STATUS_RELAY_DISCOVER_EXCLUDE": "ens1f1*",
        }
        if source == "env"
        else {}
    )
    flags: Dict[str, Any] = (
        {"interfaces": ("discover/", "ens9"), "discover_exclude": ("ens1f1*",)}
        if source == "flag"
        else {}
    )
    cfg, _ = configs.load(str(path), env, flags)
    assert cfg.discover and cfg.names == ("ens9",)
    assert cfg.discover_exclude == ("ens1f1*",)
    # What config init / render_toml writes loads back the same.
    path.write_text(configs.render_toml(cfg))
    assert configs.load(str(path), {}, {})[0] == cfg


def test_explicit_names_are_unchanged() -> None:
    cfg, _ = configs.load(None, {"PF_STATUS_RELAY_INTERFACES": "ens1f0,ens1f1"}, {})
    assert cfg.interfaces == cfg.names == ("ens1f0", "ens1f1")
    assert not cfg.discover


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("discover", None),  # a valid interface name: an interface called "discover"
        ("*", None),  # "*" is a valid name for the kernel too, so it is a name here
        ("discover/x", 'it must not contain "/"'),
        ("/discover", 'it must not contain "/"'),
    ],
)
def test_only_the_exact_spelling_means_discovery(text: str, message: str) -> None:
    if message is None:
        cfg, _ = configs.load(None, {"PF_STATUS_RELAY_INTERFACES": text}, {})
        assert cfg.names == (text,) and not cfg.discover
    else:
        with pytest.raises(ConfigError, match=message):
            configs.load(None, {"PF_STATUS_RELAY_INTERFACES": text}, {})


@pytest.mark.parametrize("pattern", ["a/b", "a b", "eth0:1", "", "x" * 65])
def test_bad_patterns_are_one_line_errors(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        configs.load(None, {}, {"discover_include": (pattern,)})
    assert str(info.value).startswith("discover_include: ")
    assert "\n" not in str(info.value)


def test_patterns_without_discovery_are_reported() -> None:
    cfg = Config(interfaces=("ens1f0",), discover_exclude=("x*",))
    assert configs.unused_patterns(cfg) == ["discover_exclude"]
    assert configs.unused_patterns(Config(interfaces=(DISCOVER,), discover_exclude=("x",))) == []


# ------------------------------------------------------------------------- run-time changes
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Machine:
    """A ``Relay`` with discovery over a fake host, cycled the way ``daemon.serve`` does."""

    def __init__(self, root: Path, **config: Any) -> None:
        self.host = FakeHost(root / "host")
        self.ip = FakeIp()
        self.stream = io.StringIO()
        self.log = EventLog("json", "info", self.stream)
        self.clock = Clock()
        self.config = Config(
            interfaces=(DISCOVER,),
            procfs=str(self.host.procfs),
            sysfs=str(self.host.sysfs),
            state_file=str(root / "run/state.json"),
            **config,
        )
        self.relay = Relay(self.config, self.ip, self.log, clock=self.clock)
        self.targets = Targets(self.log, clock=self.clock)

    def add(self, pf: str, bond: str, ifindex: int, numvfs: int = 4) -> None:
        healthy_pf(self.host, pf, bond, numvfs=numvfs, ifindex=ifindex)
        self.ip.links[pf] = {n: "auto" for n in range(numvfs)}
        self.ip.ifindex[pf] = ifindex

    def cycle(self, advance: float = 1.0, force: bool = False) -> Dict[str, Any]:
        self.clock.now += advance
        self.targets.refresh(self.relay.config, force=force)
        reports = self.relay.cycle(self.targets.names(self.relay))
        return {r.assessment.interface: r for r in reports}

    def events(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def msgs(self, msg: str) -> List[Dict[str, Any]]:
        return [e for e in self.events() if e["msg"] == msg]


def test_hot_plugged_pf_and_bond_are_picked_up_without_a_reload(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    assert list(m.cycle()) == ["pf0"]
    assert [e["interface"] for e in m.msgs("pf discovered")] == ["pf0"]

    m.add("pf1", "bond1", 3)  # a bond created at run time
    assert list(m.cycle(advance=0.1)) == ["pf0"], "not yet: no event, rescan not due"
    assert list(m.cycle(advance=RESCAN_S)) == ["pf0", "pf1"], "the periodic rescan finds it"
    assert m.relay.memory["pf1"].assessment.monitored  # type: ignore[union-attr]
    assert [e["interface"] for e in m.msgs("pf discovered")] == ["pf0", "pf1"]
    # Steady state: the scans spawned nothing.
    assert m.ip.processes == 0

    m.cycle()
    m.cycle()
    assert len(m.msgs("pf discovered")) == 2, "logged on change only"


def test_a_bond_found_at_run_time_gets_the_negotiation_grace(tmp_path: Path) -> None:
    """A bond created while the relay runs reads 71/0 until LACP negotiates (~3 s on 6.12):
    discovered then, it must not bounce every VF; one there at start is acted on at once."""
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    m.host.set_proc("bond0", PROC_DOWN)
    m.targets.refresh(m.relay.config)
    m.relay.cycle(m.targets.names(m.relay))
    assert m.ip.links["pf0"] == {n: "disable" for n in range(4)}, "down at start: acted on"

    m.add("pf1", "bond1", 3)
    m.host.set_proc("bond1", PROC_DOWN.replace("pf0", "pf1").replace("bond0", "bond1"))
    added = m.targets.refresh(m.relay.config, force=True)
    for pf in added:
        m.relay.appeared(pf)
    reports = m.relay.cycle(m.targets.names(m.relay))
    pf1 = next(r for r in reports if r.assessment.interface == "pf1")
    assert "still negotiating" in (pf1.assessment.reason or "")
    assert m.ip.links["pf1"] == {n: "auto" for n in range(4)}
    m.clock.now += 11.0  # past NEGOTIATION_GRACE_S and still down: now it counts
    m.cycle()
    assert m.ip.links["pf1"] == {n: "disable" for n in range(4)}


def test_a_link_event_for_an_unknown_interface_forces_a_rescan(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    m.cycle()
    m.add("pf1", "bond1", 3)
    assert not m.targets.knows(m.relay, "pf1")
    assert m.targets.knows(m.relay, "bond0") and m.targets.knows(m.relay, "pf0")
    added = m.targets.refresh(m.relay.config, force=True)
    assert added == {"pf1"}
    assert _affected(m.relay, {"*"}, m.targets.names(m.relay)) == {"pf0", "pf1"}


def test_a_deleted_bond_with_vfs_held_disabled_is_still_cycled_until_released(
    tmp_path: Path,
) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    m.add("pf1", "bond1", 3)
    m.cycle()
    m.host.set_proc("bond1", PROC_DOWN.replace("pf0", "pf1").replace("bond0", "bond1"))
    m.cycle()
    assert m.ip.links["pf1"] == {n: "disable" for n in range(4)}
    assert m.relay.ledger.disabled("pf1") == frozenset(range(4))

    m.host.remove_bond("bond1")  # the bond goes while the relay holds pf1's VFs
    reports = m.cycle(force=True)
    assert m.targets.discovery is not None and "pf1" not in m.targets.discovery.candidates
    assert "pf1" in reports, "a PF the ledger holds VFs of keeps being cycled"
    assert reports["pf1"].assessment.reason == "not enslaved to a bond (no master)"
    assert [e["interface"] for e in m.msgs("pf no longer discovered")] == ["pf1"]
    # The relay's ownership rules decide (today: the VFs stay until the PF is monitored
    # again); discovery only makes sure the PF is not forgotten. Re-created: restored.
    m.add("pf1", "bond1", 3)
    m.ip.links["pf1"] = {n: "disable" for n in range(4)}
    m.cycle(force=True)
    m.cycle()
    assert m.ip.links["pf1"] == {n: "auto" for n in range(4)}
    assert not m.relay.ledger.disabled("pf1")
    assert list(m.cycle(force=True)) == ["pf0", "pf1"]


def test_a_renamed_pf_is_followed(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    m.cycle()
    m.host.rename("pf0", "ens1f0np0")
    m.host.set_proc("bond0", PROC_UP.replace("pf0", "ens1f0np0"))
    reports = m.cycle(force=True)
    assert list(reports) == ["ens1f0np0"]
    assert reports["ens1f0np0"].assessment.monitored
    assert [e["interface"] for e in m.msgs("pf no longer discovered")] == ["pf0"]


def test_vfs_created_later_are_relayed(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2, numvfs=0)
    m.host.add_pf("pf0", ifindex=2, numvfs=0, totalvfs=8)  # a PCI PF before sriov_numvfs
    reports = m.cycle()
    assert reports["pf0"].assessment.monitored
    m.host.set_numvfs("pf0", 4)
    m.ip.links["pf0"] = {n: "auto" for n in range(4)}
    m.host.set_proc("bond0", PROC_DOWN)
    m.cycle()
    assert m.ip.links["pf0"] == {n: "disable" for n in range(4)}


def test_an_excluded_pf_is_not_cycled_and_logged_once(tmp_path: Path) -> None:
    m = Machine(tmp_path, discover_exclude=("pf1",))
    m.add("pf0", "bond0", 2)
    m.add("pf1", "bond1", 3)
    assert list(m.cycle()) == ["pf0"]
    m.cycle(force=True)
    skipped = m.msgs("pf skipped by discovery")
    assert [(e["interface"], e["reason"]) for e in skipped] == [
        ("pf1", "excluded by discover_exclude 'pf1'")
    ]


def test_metrics_say_where_each_pf_comes_from_and_whether_the_ledger_is_saved(
    tmp_path: Path,
) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    m.host.add_pf("pfx", ifindex=9, numvfs=2)
    m.host.add_bond("bondab", ["pfx"], PROC_AB.replace("lagp0", "pfx"), mode="active-backup 1")
    reports = list(m.cycle().values())
    text = metrics.render(
        reports, {}, 1.0, 0.0, sources=m.targets.sources(m.relay), ledger_persisted=False
    )
    assert (
        'pf_status_relay_pf_info{interface="pf0",bond="bond0",reason="",source="discovered"} 1'
        in text.splitlines()
    )
    assert (
        'pf_status_relay_pf_info{interface="pfx",bond="bondab",'
        'reason="bond bondab mode is active-backup, not 802.3ad",source="discovered"} 1'
        in text.splitlines()
    )
    assert "pf_status_relay_ledger_persisted 0" in text.splitlines()


# ------------------------------------------------------------------------- the real daemon
def test_pfrelay_run_with_discovery_follows_a_bond_created_at_run_time(world: World) -> None:
    """With a 5 s poll and rescan, only the link event explains a pickup within ~1.5 s."""
    world.add_pf()
    world.ip.set(monitor_events=True)
    env = clean_env(PF_STATUS_RELAY_INTERFACES=DISCOVER)
    daemon = world.start(world.run_args(interval=5000), env=env)
    daemon.wait_log("pf is ready", interface="pf0")
    start = daemon.find("Starting application")[0][2]
    assert start["interfaces"] == [DISCOVER]

    assert wait_until(
        lambda: any(c["argv"] == ["-o", "monitor", "link"] for c in world.ip.calls()), 2
    )
    world.add_pf("pf1", "bond1", ifindex=3)
    sent = time.monotonic()
    world.ip.monitor_event("3: bond1: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500")
    _, found_at, _ = daemon.wait_log("pf discovered", interface="pf1", timeout=3)
    assert found_at - sent < 1.5
    daemon.wait_log("lacp is up", interface="pf1", timeout=3)
    # And it is relayed like a named PF: its LACP goes down, an event, its VFs follow.
    world.set_lacp("bond1", "pf1", up=False)
    world.ip.monitor_event("3: pf1: <BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP> mtu 1500 master bond1")
    daemon.wait_log("vf link state was set", interface="pf1", count=4, state="disable", timeout=3)
    assert world.vfs("pf0") == {n: "auto" for n in range(4)}
    assert daemon.stop() == 0


def test_reload_turns_discovery_on_and_a_pf_with_vfs_held_is_not_dropped(world: World) -> None:
    """Names -> discover/ with an exclude on SIGHUP: the new set at once (no 5 s wait), and
    the excluded PF whose VFs the relay disabled keeps being cycled as not monitored: its VFs
    are released after the hold (issue 12), not left as they are."""
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    world.set_lacp("bond1", "pf1", up=False)
    world.add_pf("pf2", "bond2", ifindex=4)
    world.write_config('interfaces = ["pf0", "pf1"]\npolling_interval_ms = 100\n')
    daemon = world.start([PFRELAY, "run", *world.paths()])
    daemon.wait_log("vf link state was set", count=4, interface="pf1", state="disable")
    assert daemon.find("pf is ready", interface="pf2") == []

    world.write_config(
        'interfaces = ["discover/"]\ndiscover_exclude = ["pf1"]\npolling_interval_ms = 100\n'
        "unmonitored_hold_ms = 1000\n"
    )
    mark = daemon.mark()
    sent = time.monotonic()
    daemon.send(signal.SIGHUP)
    _, found_at, _ = daemon.wait_log("pf discovered", after=mark, interface="pf2")
    assert found_at - sent < 2.0
    daemon.wait_log("pf is ready", after=mark, interface="pf2")
    _, _, skipped = daemon.wait_log("pf skipped by discovery", after=mark, interface="pf1")
    assert skipped["reason"] == "excluded by discover_exclude 'pf1'"
    assert daemon.find("ledger names a pf that is not configured; its vfs stay as they are") == []
    # pf1 is still cycled for its ledger entries, as not monitored: released after the hold
    # although its LACP is still down (the relay no longer watches it).
    _, _, held = daemon.wait_log("pf is not ready", after=mark, interface="pf1")
    assert held["reason"] == "not configured (nor discovered); the relay disabled vfs on it"
    daemon.wait_log("vf link state was set", after=mark, count=4, interface="pf1", state="auto")
    assert world.vfs("pf1") == {n: "auto" for n in range(4)}
    assert daemon.stop() == 0


def test_check_lines_for_no_candidates_and_for_an_unreadable_sysfs() -> None:
    from pfrelay import preflight
    from pfrelay.discovery import Discovery

    (none,) = preflight.check_discovery(Discovery())
    assert none.line() == (
        "warn discovery: no SR-IOV port of a bond found -- enslave the PF to an 802.3ad bond; "
        "the running relay picks it up by itself"
    )
    (error,) = preflight.check_discovery(Discovery(error="cannot list /x/class/net: EACCES"))
    assert error.outcome is preflight.Outcome.FAIL
    assert error.text == "cannot list /x/class/net: EACCES"


def test_a_sysfs_that_cannot_be_listed_is_logged_once_and_when_it_is_back(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    m.add("pf0", "bond0", 2)
    masters = m.host.sysfs / "class/net/bonding_masters"
    masters.unlink()
    masters.mkdir()  # reading it fails with EISDIR: not "no bonding module"
    m.cycle()
    m.cycle(force=True)
    (error,) = m.msgs("discovery cannot list the bonds")
    assert "bonding_masters" in error["error"]
    masters.rmdir()
    m.host._masters(add="bond0")
    assert list(m.cycle(force=True)) == ["pf0"]
    assert len(m.msgs("discovery can list the bonds again")) == 1
