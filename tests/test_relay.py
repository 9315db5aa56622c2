"""``Relay.cycle`` over fake hosts built from the real 6.12 captures, with an in-process ``ip``.

Each lab timeline is replayed snapshot by snapshot and the VFs are checked after every step;
then the rules one at a time: hand-set VFs, the ledger across restarts, the restore delay,
dry run, the log lines, the reasons a PF is not monitored, and what a steady cycle costs.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest
from fakehost import load_fixture, sysfs_capture, unprivileged
from test_relay_support import (
    BOOT,
    HAND_DISABLED,
    HAND_ENABLED,
    PROC_DOWN,
    PROC_UP,
    World,
    expected_vfs,
    msgs,
    relayed,
    timeline_steps,
    unprivileged_step,
    with_msg,
)

from pfrelay import ledger as ledgers
from pfrelay.lacp import Lacp
from pfrelay.relay import observe

# ------------------------------------------------------------------------ the lab timelines

#: The verdict at each snapshot of each timeline (U up, D down), read off the files by hand:
#: down as soon as either side loses AGG|SYN|COL|DIS or gets DEFAULTED/EXPIRED, or the slave's
#: MII goes down (carrier loss keeps 63/63); up again only at 63/63 (61/61 with slow rate) and
#: MII up. carrier-loss snap-01 (+0.38 s) still says MII up; snap-04 (+6.67 s) is the ~60 ms
#: when the stale 63/63 shows with MII up again before the port re-initialises: up by the
#: rule, but the pre-loss port states are not believed (``distrust_stale_ports``), so down.
TIMELINES = {
    "peer-stops-sending": "UDDDDU",  # 63/63, 143/55, 79/0, 15/15, 63/15, 63/63
    "peer-stops-receiving": "UDDDDDDU",  # 63/63, 63/143, 15/71, 143/71, 79/0, 15/71, 15/63, 63/63
    "lacpdu-blocked-both-ways": "UDDDDU",  # as peer-stops-sending
    "carrier-loss": "UUDDDDDDDDU",  # MII up, up, down, down, stale 63/63, 71/0 ... 63/63
    "peer-lag-deleted": "UDDDDDDU",  # 63/63, MII down 15/3, 199/2, 7/199, 7/7, 15/7, 15/63
    "slow-peer-stops-sending": "UDDDDU",  # 61/61, 141/55, 77/0, 13/13, 61/13, 61/61
    "igb-0-vfs-peer-stops-sending": "UDDDU",  # the igb PF eth0: 63/63, 143/55, 79/0, 63/15
}


def test_every_timeline_has_a_row() -> None:
    scenarios = {p.name for p in (Path(__file__).parent / "fixtures/timelines").iterdir()}
    # igb-4-vfs: the loopback froze the state (lab README): one snapshot, nothing to replay.
    assert set(TIMELINES) == scenarios - {"igb-4-vfs-peer-stops-sending"}
    for scenario, verdicts in TIMELINES.items():
        assert len(timeline_steps(scenario)) == len(verdicts), scenario


@pytest.mark.parametrize("reader", ["root", "unprivileged"])
@pytest.mark.parametrize("scenario", sorted(TIMELINES))
def test_timeline_step_by_step(tmp_path: Path, scenario: str, reader: str) -> None:
    steps = timeline_steps(scenario)
    pf = steps[0].slave
    world = World(tmp_path, pfs=[pf])
    world.add_pf(pf)
    for step, verdict in zip(steps, TIMELINES[scenario]):
        if reader == "root":
            world.host.set_proc("bond0", step.proc)
            # sysfs says the opposite: a privileged reader must not need it.
            world.host.set_slave(pf, mii_status="up", actor=63 if verdict == "D" else 0)
        else:
            unprivileged_step(world.host, step, pf)
        (report,) = world.cycle()
        down = verdict == "D"
        assert report.assessment.monitored, (step.name, report.assessment.reason)
        assert report.assessment.lacp is (Lacp.DOWN if down else Lacp.UP), step.name
        assert world.vfs(pf) == expected_vfs(down), step.name
        assert world.ledger().disabled(pf) == (relayed() if down else frozenset()), step.name
        assert report.disabled_by_relay == (relayed() if down else frozenset())
    # Every verdict change was one "lacp is up/down" line, the first one included.
    changes = sum(1 for a, b in zip("-" + TIMELINES[scenario], TIMELINES[scenario]) if a != b)
    lacp_lines = [m for m in msgs(world.all_events()) if m in ("lacp is up", "lacp is down")]
    assert len(lacp_lines) == changes


def test_timeline_stale_carrier_moment_and_restore_delay(tmp_path: Path) -> None:
    """carrier-loss: 63/63 with MII up for ~60 ms before the port re-initialises (snap-04).

    That moment restores nothing, with or without a delay (the lab's clock drives ours); with
    ``restore_delay_ms`` the VFs then stay disabled until LACP has been up for the whole delay.
    """
    steps = timeline_steps("carrier-loss")
    no_delay = World(tmp_path / "a")
    with_delay = World(tmp_path / "b", restore_delay_ms=500)
    seen: Dict[str, List[bool]] = {"a": [], "b": []}
    for world, key in ((no_delay, "a"), (with_delay, "b")):
        world.add_pf()
        for step in steps:
            world.host.set_proc("bond0", step.proc)
            world.now = 1000.0 + step.seconds
            world.relay.cycle()
            seen[key].append(world.vfs()[0] == "disable")
        world.now += 0.499  # LACP up since +9.03 s: not yet 500 ms
        world.relay.cycle()
        seen[key].append(world.vfs()[0] == "disable")
        world.now += 0.001
        world.relay.cycle()
        seen[key].append(world.vfs()[0] == "disable")
    #                 00     01     02    03    04    05    06    07    08    09    10     +.499  +.5
    assert seen["a"] == [False, False, True, True, True, True, True, True, True, True, False, False, False]  # fmt: skip
    assert seen["b"] == [False, False, True, True, True, True, True, True, True, True, True, True, False]  # fmt: skip
    # One "lacp is down" and one "lacp is up" for the whole loss: the stale moment is no flap.
    lacp_lines = [m for m in msgs(no_delay.all_events()) if m.startswith("lacp is")]
    assert lacp_lines == ["lacp is up", "lacp is down", "lacp is up"]
    stale = with_msg(no_delay.all_events(), "port states are stale")
    assert len(stale) == 1 and "before its link went down" in stale[0]["reason"], stale


# ------------------------------------------------------------------------------ the rules


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.add_pf()
    return w


def test_hand_set_vfs_are_never_touched(world: World) -> None:
    for up in (True, False, False, True, False, True):
        world.lacp(up)
        world.cycle()
        assert world.vfs()[HAND_ENABLED] == "enable"
        assert world.vfs()[HAND_DISABLED] == "disable"
    for _pf, vf, _state in (c for batch in world.set_calls() for c in batch):
        assert vf not in (HAND_ENABLED, HAND_DISABLED)


def test_vf_set_back_to_auto_while_down_is_disabled_again(world: World) -> None:
    world.lacp(False)
    world.cycle()
    world.events()
    world.ip.links["pf0"][2] = "auto"  # someone (an orchestrator) reset it
    world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    assert world.ledger().disabled("pf0") == relayed()
    (line,) = with_msg(world.events(), "vf link state was set")
    assert (line["interface"], line["id"], line["state"]) == ("pf0", 2, "disable")


def test_vf_an_operator_enables_while_in_the_ledger_is_forgotten(world: World) -> None:
    world.lacp(False)
    world.cycle()
    world.events()
    world.ip.links["pf0"][3] = "enable"
    world.cycle()
    (line,) = with_msg(world.events(), "vf link state was changed by someone else; forgetting it")
    assert (line["interface"], line["id"], line["state"]) == ("pf0", 3, "enable")
    assert world.ledger().disabled("pf0") == relayed() - {3}
    world.lacp(True)
    world.cycle()
    assert world.vfs()[3] == "enable"  # the operator's choice stands
    assert world.vfs() == {**expected_vfs(down=False), 3: "enable"}


def test_vf_an_operator_resets_to_auto_after_recovery_is_forgotten_not_touched(
    world: World,
) -> None:
    world.lacp(False)
    world.cycle()
    world.ip.links["pf0"][1] = "auto"
    world.lacp(True)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)
    assert world.ledger().disabled("pf0") == frozenset()
    restores = [c for batch in world.set_calls()[1:] for c in batch]
    assert ("pf0", 1, "auto") not in restores


def test_restart_with_a_ledger_restores_exactly_the_recorded_vfs(tmp_path: Path) -> None:
    first = World(tmp_path)
    first.add_pf()
    first.lacp(False)
    first.cycle()
    on_disk = first.ledger()
    assert on_disk.disabled("pf0") == relayed()
    assert on_disk.pfs["pf0"].ifindex == 2 and on_disk.pfs["pf0"].numvfs == 8
    assert on_disk.boot_id == BOOT
    # The daemon restarts (same boot) while LACP recovers; the fake ip keeps the VF states.
    first.lacp(True)
    relay = first.start()
    assert relay.ledger.disabled("pf0") == relayed()
    first.cycle()
    assert first.vfs() == expected_vfs(down=False)
    assert first.ledger().disabled("pf0") == frozenset()
    (restore,) = first.set_calls()[1:]
    assert sorted(restore) == sorted(("pf0", n, "auto") for n in relayed())


def test_restart_while_still_down_keeps_the_ledger_and_sets_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    world.start()
    world.cycle()
    world.cycle()
    assert len(world.set_calls()) == 1
    assert world.ledger().disabled("pf0") == relayed()


def test_steady_state_makes_no_ip_call_and_opens_three_paths(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.cycle()  # first cycle: "pf is ready", "lacp is up"
    assert msgs(world.events()) == ["pf is ready", "lacp is up"]
    world.ip.calls.clear()
    opened: List[str] = []
    links: List[str] = []
    real_open, real_readlink = builtins.open, os.readlink

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    def counting_readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        links.append(os.fspath(path))
        return real_readlink(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(os, "readlink", counting_readlink)
    for _ in range(5):
        (report,) = world.cycle()
        assert report.assessment.lacp is Lacp.UP
    monkeypatch.undo()
    assert world.ip.calls == []
    # /proc, the bond's operstate (/proc does not show `ip link set bond0 down`, issue 12)
    # and its ifindex (a bond re-created between two polls)
    assert (
        opened
        == [
            str(world.host.procfs / "net/bonding/bond0"),
            str(world.host.sysfs / "class/net/bond0/operstate"),
            str(world.host.sysfs / "class/net/bond0/ifindex"),  # a bond re-created between polls
        ]
        * 5
    )
    assert links == [str(world.host.sysfs / "class/net/pf0/master")] * 5
    assert world.events() == []
    assert not world.state_file.exists()  # nothing to record, nothing written


def test_steady_state_unprivileged_reads_only_the_two_port_states(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.host.set_proc("bond0", unprivileged(PROC_UP))
    world.cycle()
    opened: List[str] = []
    real_open = builtins.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    world.cycle()
    monkeypatch.undo()
    slave = world.host.sysfs / "class/net/pf0/bonding_slave"
    assert sorted(opened) == sorted(
        [
            str(world.host.procfs / "net/bonding/bond0"),
            str(slave / "ad_actor_oper_port_state"),
            str(slave / "ad_partner_oper_port_state"),
            str(world.host.sysfs / "class/net/bond0/operstate"),
            str(world.host.sysfs / "class/net/bond0/ifindex"),
        ]
    )


def test_unprivileged_reader_takes_the_states_from_sysfs(world: World) -> None:
    world.host.set_proc("bond0", unprivileged(PROC_UP))  # says nothing about the port states
    world.host.set_slave("pf0", actor=79, partner=0)  # partner lost, as sysfs shows it
    (report,) = world.cycle()
    assert report.assessment.lacp is Lacp.DOWN
    assert (report.assessment.slave.actor_state, report.assessment.slave.partner_state) == (79, 0)  # type: ignore[union-attr]
    assert world.vfs() == expected_vfs(down=True)
    world.host.set_slave("pf0", actor=63, partner=63)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)
    # Without an aggregator sysfs reads N/A: unknown, and nothing is touched either way.
    world.host.set_slave("pf0", actor="N/A", partner="N/A")
    (report,) = world.cycle()
    assert report.assessment.monitored and report.assessment.lacp is Lacp.UNKNOWN
    assert "actor port state" in (report.assessment.reason or "")
    assert world.vfs() == expected_vfs(down=False)


# ------------------------------------------------------------------------- restore delay


def test_restore_waits_for_the_delay(tmp_path: Path) -> None:
    world = World(tmp_path, restore_delay_ms=3000)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    world.lacp(True)
    world.cycle(advance=1.0)  # up since now
    for _ in range(2):
        world.cycle(advance=1.0)
        assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=0.999)
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=0.001)  # 3.000 s of LACP up
    assert world.vfs() == expected_vfs(down=False)
    assert world.ledger().disabled("pf0") == frozenset()


def test_a_flap_inside_the_delay_restarts_it(tmp_path: Path) -> None:
    world = World(tmp_path, restore_delay_ms=2000)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    world.lacp(True)
    world.cycle()  # t=1: up since 1
    world.cycle(advance=1.5)  # t=2.5
    world.lacp(False)
    world.ip.links["pf0"][2] = "auto"  # and something re-enabled a VF meanwhile
    world.cycle(advance=0.1)  # t=2.6: down again -> VF 2 disabled again
    assert world.vfs() == expected_vfs(down=True)
    world.lacp(True)
    world.cycle(advance=0.1)  # t=2.7: up since 2.7
    world.cycle(advance=1.0)  # t=3.7: 1.0 s since the flap, 2.7 s since the first up
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=0.99)
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=0.01)  # t=4.7: 2.0 s since the flap
    assert world.vfs() == expected_vfs(down=False)


def test_restore_delay_after_a_restart_counts_from_the_start(tmp_path: Path) -> None:
    world = World(tmp_path, restore_delay_ms=1000)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    world.lacp(True)
    world.start()
    world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=1.0)
    assert world.vfs() == expected_vfs(down=False)


def test_unknown_inside_the_delay_restarts_it(tmp_path: Path) -> None:
    world = World(tmp_path, restore_delay_ms=1000)
    world.add_pf()
    world.lacp(False)
    world.cycle()
    world.lacp(True)
    world.cycle()
    world.host.set_proc("bond0", unprivileged(PROC_UP))
    world.host.set_slave("pf0", actor="N/A", partner="N/A")
    world.cycle(advance=0.5)  # unknown: not "up for the delay"
    world.lacp(True)
    world.cycle(advance=0.6)
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=1.0)
    assert world.vfs() == expected_vfs(down=False)


# ------------------------------------------------------------------------------- dry run


def test_dry_run_changes_nothing_and_says_so_once(tmp_path: Path) -> None:
    world = World(tmp_path, dry_run=True)
    world.add_pf()
    world.lacp(False)
    for _ in range(4):
        (report,) = world.cycle()
        assert report.assessment.lacp is Lacp.DOWN
    assert world.set_calls() == []
    assert world.vfs() == expected_vfs(down=False)
    assert not world.state_file.exists()
    lines = with_msg(world.all_events(), "vf link state would be set (dry run)")
    assert sorted((r["interface"], r["id"], r["state"]) for r in lines) == sorted(
        ("pf0", n, "disable") for n in relayed()
    )
    assert not with_msg(world.all_events(), "vf link state was set")


# ------------------------------------------------------------------------------- the log


def test_log_lines_on_transitions_only(world: World) -> None:
    world.cycle()
    first = world.events()
    assert msgs(first) == ["pf is ready", "lacp is up"]
    assert first[0]["interface"] == "pf0" and first[0]["bond"] == "bond0"
    up = first[1]
    assert (up["interface"], up["bond"], up["level"]) == ("pf0", "bond0", "INFO")
    assert (up["actor_state"], up["partner_state"], up["mii_status"]) == (63, 63, "up")
    for _ in range(3):
        world.cycle()
    assert world.events() == []  # polls without a change say nothing

    world.lacp(False)
    world.cycle()
    events = world.events()
    assert msgs(events)[0] == "lacp is down"
    down = events[0]
    assert (down["interface"], down["bond"], down["level"]) == ("pf0", "bond0", "WARNING")
    assert (down["actor_state"], down["partner_state"]) == (79, 0)
    sets = with_msg(events, "vf link state was set")
    assert sorted(r["id"] for r in sets) == sorted(relayed())
    for record in sets:
        assert set(record) >= {"time", "level", "msg", "interface", "id", "state"}
        assert (record["interface"], record["state"]) == ("pf0", "disable")
    for _ in range(3):
        world.cycle()
    assert world.events() == []

    world.lacp(True)
    world.cycle()
    events = world.events()
    assert msgs(events)[0] == "lacp is up"
    assert sorted((r["id"], r["state"]) for r in with_msg(events, "vf link state was set")) == [
        (n, "auto") for n in sorted(relayed())
    ]
    world.cycle()
    assert world.events() == []


def test_log_is_json_with_stable_keys(world: World) -> None:
    world.lacp(False)
    world.cycle()
    for record in world.all_events():
        assert list(record)[:3] == ["time", "level", "msg"]
        assert record["time"].endswith("Z")
        assert None not in record.values()


# ------------------------------------------------------------------------ not monitored


def _not_ready(world: World) -> List[Dict[str, Any]]:
    return with_msg(world.all_events(), "pf is not ready")


def test_missing_pf(tmp_path: Path) -> None:
    world = World(tmp_path)
    for _ in range(3):
        (report,) = world.cycle()
    assert not report.assessment.monitored
    assert report.assessment.reason == "no such interface"
    (line,) = _not_ready(world)
    assert (line["interface"], line["reason"], line["level"]) == (
        "pf0",
        "no such interface",
        "WARNING",
    )
    assert world.ip.calls == []


def test_pf_without_master(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(bond=None)
    world.cycle()
    world.cycle()
    (line,) = _not_ready(world)
    assert line["reason"] == "not enslaved to a bond (no master)"
    assert world.ip.calls == []


def test_pf_in_a_bridge(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(bond=None)
    world.host.add_bridge("br0", ["pf0"])
    world.cycle()
    world.cycle()
    (line,) = _not_ready(world)
    assert line["reason"] == "master br0 is a bridge device, not a bond"
    assert world.ip.calls == []


REAL_BONDS = [
    (
        "proc-net-bonding-bondab-active-backup",
        "sysfs-bondab-bonding-active-backup",
        "lagp0",
        "bond bondab mode is active-backup, not 802.3ad",
    ),
    (
        "proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up",
        "sysfs-bond2-bonding-802.3ad-two-slaves",
        "lagp0",
        "bond bond2 has 2 slaves (lagp0, lagp1); lagp0 must be its only slave",
    ),
    (
        "proc-net-bonding-bondzero-802.3ad-no-slaves-up",
        "sysfs-bondzero-bonding-802.3ad-no-slaves",
        None,
        "bond bondzero has 0 slaves; lagp0 must be its only slave",
    ),
]


@pytest.mark.parametrize(("capture", "sysfs", "slave", "reason"), REAL_BONDS)
def test_real_bonds_that_are_not_monitored(
    tmp_path: Path, capture: str, sysfs: str, slave: Any, reason: str
) -> None:
    """The real captures of bonds the relay must leave alone, whatever LACP says."""
    bond = sysfs.split("-")[1]
    world = World(tmp_path, pfs=["lagp0"])
    world.add_pf("lagp0", bond=None)
    values = sysfs_capture(sysfs)
    world.host.add_bond(
        bond,
        values["slaves"].split(),
        load_fixture(capture),
        mode=values["mode"],
        lacp_rate=values["lacp_rate"],
        mii_status=values["mii_status"],
    )
    if slave is None:  # a zero-slave bond that lagp0 still points at (a race, or a stale link)
        world.host.enslave("lagp0", bond)
    for _ in range(3):
        (report,) = world.cycle()
        assert not report.assessment.monitored
        assert report.assessment.reason == reason
    (line,) = _not_ready(world)
    assert (line["interface"], line["reason"]) == ("lagp0", reason)
    assert world.ip.calls == []
    assert world.vfs("lagp0") == expected_vfs(down=False)


def test_reason_change_is_logged_and_recovery_says_ready(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.cycle()
    world.add_pf(bond=None)
    world.cycle()
    world.host.add_bond("bond0", ["pf0"], PROC_UP)
    world.cycle()
    events = world.all_events()
    assert [(r["msg"], r.get("reason")) for r in events] == [
        ("pf is not ready", "no such interface"),
        ("pf is not ready", "not enslaved to a bond (no master)"),
        ("pf is ready", None),
        ("lacp is up", None),
    ]


def test_bond_created_after_start_is_picked_up(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(bond=None)
    world.cycle()
    world.cycle()
    # An 802.3ad bond is created and the PF enslaved while the relay runs; LACP negotiates.
    world.host.add_bond("bond0", ["pf0"], PROC_UP)
    world.cycle()
    world.lacp(False)
    world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    assert world.ledger().disabled("pf0") == relayed()
    assert msgs(world.all_events())[:4] == [
        "pf is not ready",
        "pf is ready",
        "lacp is up",
        "lacp is down",
    ]


def test_slow_rate_is_warned_once(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["lagp0"])
    world.add_pf("lagp0", proc=None)
    world.host.set_proc(
        "bond0", load_fixture("proc-net-bonding-bondslow-802.3ad-lacp_rate-slow-lacp-up")
    )
    for _ in range(4):
        (report,) = world.cycle()
        assert report.assessment.slow_rate and report.assessment.lacp is Lacp.UP
    (line,) = with_msg(world.all_events(), "pf is using slow lacp rate")
    assert (line["interface"], line["bond"], line["level"]) == ("lagp0", "bond0", "WARNING")
    assert "lacp_rate fast" in line["hint"]


def test_fast_rate_is_not_warned(world: World) -> None:
    world.cycle()
    assert not with_msg(world.all_events(), "pf is using slow lacp rate")


# ------------------------------------------------------------------------ several PFs


def test_pfs_are_independent(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["pf0", "pf1", "pf2"])
    world.add_pf("pf0", bond="bond0", ifindex=2)
    world.add_pf("pf1", bond="bond1", ifindex=3)  # pf2 missing
    world.lacp(False, pf="pf1", bond="bond1")
    reports = world.cycle()
    assert [r.assessment.interface for r in reports] == ["pf0", "pf1", "pf2"]
    assert [r.assessment.lacp for r in reports] == [Lacp.UP, Lacp.DOWN, Lacp.UNKNOWN]
    assert world.vfs("pf0") == expected_vfs(down=False)
    assert world.vfs("pf1") == expected_vfs(down=True)
    assert world.ledger().disabled("pf1") == relayed()
    assert world.ledger().pfs["pf1"].ifindex == 3
    assert set(world.ledger().pfs) == {"pf1"}
    assert world.relay.transitions() == {"pf0": 1, "pf1": 1, "pf2": 0}


def test_cycle_of_some_interfaces_and_progress(world: World) -> None:
    ticks: List[int] = []
    reports = world.relay.cycle(["pf0"], lambda: ticks.append(1))
    assert len(reports) == 1 and ticks == [1]


# --------------------------------------------------------------------------- observe


def test_observe_reads_vfs_and_changes_nothing(world: World) -> None:
    world.lacp(False)
    world.ip.links["pf0"][1] = "disable"
    # VF 5 is recorded but still auto (a change that failed after the write-ahead record).
    ledger = ledgers.Ledger({"pf0": ledgers.PfEntry(frozenset({1, 5}), 2, 8)}, BOOT)
    report = observe(world.config, world.ip, ledger, "pf0")
    assert report.assessment.lacp is Lacp.DOWN
    assert report.vfs is not None and len(report.vfs) == 8
    assert report.disabled_by_relay == frozenset({1})
    assert report.facts.numvfs == 8 and report.facts.ifindex == 2
    assert world.set_calls() == []
    world.ip.error = "ip: boom"
    report = observe(world.config, world.ip, ledger, "pf0")
    assert report.vfs is None and report.vf_error == "ip: boom"
    assert observe(world.config, None, ledger, "pf0").vfs is None


def test_observe_missing_pf(tmp_path: Path) -> None:
    world = World(tmp_path)
    report = observe(world.config, world.ip, ledgers.Ledger(), "pf0")
    assert not report.assessment.monitored and report.vfs == ()
    assert world.ip.calls == []


def test_down_before_first_sight_of_up(tmp_path: Path) -> None:
    """A relay started during an outage acts at once (LACP down is down, no history needed)."""
    world = World(tmp_path)
    world.add_pf(proc=PROC_DOWN)
    world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    assert msgs(world.all_events())[:2] == ["pf is ready", "lacp is down"]


def test_dry_run_says_it_again_at_the_next_outage(tmp_path: Path) -> None:
    world = World(tmp_path, dry_run=True)
    world.add_pf()
    for up in (False, False, True, True, False):
        world.lacp(up)
        world.cycle()
    lines = with_msg(world.all_events(), "vf link state would be set (dry run)")
    assert sorted(r["id"] for r in lines) == sorted(list(relayed()) * 2)
    assert world.set_calls() == []
