"""``pfrelay check``'s lines: each PF's facts from fake hosts built from the real captures."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from fakehost import load_fixture, sysfs_capture, unprivileged
from test_relay_support import PROC_DOWN, World

from pfrelay import ledger as ledgers
from pfrelay import preflight
from pfrelay.preflight import Check, Outcome, check_pf, check_process, has_cap_net_admin
from pfrelay.relay import observe

Line = Tuple[str, str]


def checks(world: World, pf: str = "pf0", *, ip: bool = True) -> List[Check]:
    """What ``pfrelay check`` computes for ``pf`` (cli.check, without the process lines)."""
    report = observe(world.config, world.ip if ip else None, ledgers.Ledger(), pf)
    visible = len(report.vfs) if report.vfs is not None else None
    return check_pf(report.facts, report.assessment, visible, report.vf_error)


def outcomes(items: List[Check]) -> List[Line]:
    return [(c.outcome.value, c.text) for c in items]


def test_healthy_pf(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    items = checks(world)
    assert outcomes(items) == [
        ("ok", "bond bond0 found"),
        ("ok", "mode 802.3ad"),
        ("ok", "only slave of the bond"),
        ("ok", "lacp_rate fast"),
        ("ok", "MII status up"),
        ("ok", "LACP up"),
        ("ok", "8 VFs visible"),
    ]
    assert all(c.subject == "pf0" and c.hint is None for c in items)
    assert [c.line() for c in items][:2] == ["ok   pf0: bond bond0 found", "ok   pf0: mode 802.3ad"]
    assert world.set_calls() == []


def test_missing_pf(tmp_path: Path) -> None:
    (item,) = checks(World(tmp_path))
    assert (item.outcome, item.text) == (Outcome.FAIL, "no such interface")
    assert item.line() == "FAIL pf0: no such interface -- check the name with `ip link`"


def test_pf_without_a_master(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(bond=None)
    first, vfs = checks(world)
    assert (first.outcome, first.text) == (Outcome.FAIL, "not enslaved to a bond (no master)")
    assert first.hint is not None
    assert "mode 802.3ad" in first.hint and "ip link set pf0 master bond0" in first.hint
    assert (vfs.outcome, vfs.text) == (Outcome.OK, "8 VFs visible")


def test_pf_in_a_bridge(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(bond=None)
    world.host.add_bridge("br0", ["pf0"])
    assert outcomes(checks(world))[0] == ("FAIL", "master br0 is a bridge device, not a bond")


def _real_bond(world: World, capture: str, sysfs: str) -> None:
    values = sysfs_capture(sysfs)
    bond = sysfs.split("-")[1]
    world.add_pf("lagp0", bond=None)
    world.host.add_bond(
        bond,
        values["slaves"].split(),
        load_fixture(capture),
        mode=values["mode"],
        lacp_rate=values["lacp_rate"],
    )


def test_active_backup_bond(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["lagp0"])
    _real_bond(world, "proc-net-bonding-bondab-active-backup", "sysfs-bondab-bonding-active-backup")
    assert outcomes(checks(world, "lagp0")) == [
        ("ok", "bond bondab found"),
        ("FAIL", "mode is active-backup"),
        ("FAIL", "bond slaves: lagp0, lagp1"),
        ("ok", "8 VFs visible"),
    ]
    mode = checks(world, "lagp0")[1]
    assert mode.hint == "ip link set bondab type bond mode 802.3ad (with the bond down and empty)"


def test_two_slave_bond(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["lagp0"])
    _real_bond(
        world,
        "proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up",
        "sysfs-bond2-bonding-802.3ad-two-slaves",
    )
    items = checks(world, "lagp0")
    assert outcomes(items) == [
        ("ok", "bond bond2 found"),
        ("ok", "mode 802.3ad"),
        ("FAIL", "bond slaves: lagp0, lagp1"),
        ("ok", "lacp_rate fast"),
        ("ok", "8 VFs visible"),
    ]
    assert items[2].hint == "lagp0 must be the bond's only slave"


def test_slow_rate(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["lagp0"])
    world.add_pf("lagp0", proc=None)
    world.host.set_proc(
        "bond0", load_fixture("proc-net-bonding-bondslow-802.3ad-lacp_rate-slow-lacp-up")
    )
    items = checks(world, "lagp0")
    rate = next(c for c in items if "lacp_rate" in c.text)
    assert rate.outcome is Outcome.WARN
    assert rate.text == "lacp_rate slow: a dead partner is noticed after ~90 s"
    assert rate.hint == "ip link set bond0 type bond lacp_rate fast"
    assert ("ok", "LACP up") in outcomes(items)


def test_lacp_down_and_carrier_down(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(proc=PROC_DOWN)
    assert ("warn", "LACP down now: the relay would disable the PF's auto VFs") in outcomes(
        checks(world)
    )
    world.host.set_proc("bond0", load_fixture("proc-net-bonding-bond0-partner-lost-carrier-loss"))
    items = outcomes(checks(world))
    assert ("FAIL", "MII status down") in items
    assert ("warn", "LACP down now: the relay would disable the PF's auto VFs") in items
    assert world.set_calls() == []


def test_unprivileged_without_an_aggregator(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.host.set_proc(
        "bond0", unprivileged(load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up"))
    )
    world.host.set_slave("pf0", actor="N/A", partner="N/A")
    items = checks(world)
    lacp = items[-2]
    assert lacp.outcome is Outcome.FAIL
    assert lacp.text.startswith("cannot read actor port state, partner port state of pf0")
    assert lacp.hint == "run as root (CAP_NET_ADMIN)"


@pytest.mark.parametrize(
    ("numvfs", "visible", "vf_error", "expected"),
    [
        (8, 8, None, ("ok", "8 VFs visible")),
        (None, 0, None, ("warn", "no device/sriov_numvfs: not an SR-IOV PF?")),
        (0, 0, None, ("warn", "sriov_numvfs is 0: no VFs to relay to")),
        (
            256,
            219,
            None,
            ("warn", "netlink lists 219 of 256 VFs (truncated list): the others are not relayed"),
        ),
        (8, None, "ip: boom", ("FAIL", "VF link states unreadable: ip: boom")),
    ],
)
def test_vf_lines(
    tmp_path: Path,
    numvfs: Optional[int],
    visible: Optional[int],
    vf_error: Optional[str],
    expected: Line,
) -> None:
    world = World(tmp_path)
    world.add_pf()
    report = observe(world.config, None, ledgers.Ledger(), "pf0")
    facts = dataclasses.replace(report.facts, numvfs=numvfs)
    assert outcomes(check_pf(facts, report.assessment, visible, vf_error))[-1] == expected


def test_truncated_list_through_observe(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.ip.visible["pf0"] = 5
    assert outcomes(checks(world))[-1] == (
        "warn",
        "netlink lists 5 of 8 VFs (truncated list): the others are not relayed",
    )


def test_zero_vfs_hint_names_the_pf(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(numvfs=0)
    last = checks(world)[-1]
    assert last.hint == "echo N > /sys/class/net/pf0/device/sriov_numvfs"


def test_bond_unreadable(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf()
    world.host.remove_proc("bond0")
    for name in ("mode", "slaves", "lacp_rate", "mii_status", "ad_aggregator"):
        (world.host.net("bond0") / "bonding" / name).unlink()
    first = checks(world)[0]
    assert first.outcome is Outcome.FAIL
    assert "cannot read" in first.text and first.hint == "run as root (CAP_NET_ADMIN)"


# ------------------------------------------------------------------------ the process


def _status(cap_eff: str) -> str:
    """/proc/self/status as Linux 6.x prints it, with the given CapEff."""
    return (
        "Name:\tpfrelay\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\nPid:\t4242\n"
        "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\n"
        f"CapPrm:\t{cap_eff}\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"
        "CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    )


@pytest.mark.parametrize(
    ("cap_eff", "expected"),
    [
        ("000001ffffffffff", True),  # root
        ("0000000000001000", True),  # CAP_NET_ADMIN alone (the service's AmbientCapabilities)
        ("0000000000003000", True),  # + CAP_NET_RAW
        ("0000000000000000", False),  # an ordinary user
        ("0000000000000fff", False),  # everything below bit 12
        ("00000000a80425fb", False),  # docker's default set: no CAP_NET_ADMIN
        ("00000000a80435fb", True),  # the same with --cap-add NET_ADMIN
    ],
)
def test_has_cap_net_admin(cap_eff: str, expected: bool) -> None:
    assert has_cap_net_admin(_status(cap_eff)) is expected


@pytest.mark.parametrize(
    "text", ["", "Name:\tx\n", "CapEff:\n", "CapEff:\tzz\n", "CapEff: 0x\n", "CapPrm:\t1000\n"]
)
def test_has_cap_net_admin_cannot_tell(text: str) -> None:
    assert has_cap_net_admin(text) is None


def test_has_cap_net_admin_of_this_process() -> None:
    text = Path("/proc/self/status").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("CapEff:")]
    assert has_cap_net_admin(text) is bool(int(line.split()[1], 16) & (1 << 12))


def test_check_process() -> None:
    assert outcomes(check_process(True, None)) == [
        ("ok", "runs with CAP_NET_ADMIN"),
        ("ok", "iproute2 runs"),
    ]
    no_cap, no_ip = check_process(False, "ip: 'ip' not found or not executable")
    assert no_cap.outcome is Outcome.FAIL and no_cap.hint is not None
    assert (no_ip.outcome, no_ip.subject, no_ip.text) == (
        Outcome.FAIL,
        "ip",
        "ip: 'ip' not found or not executable",
    )
    assert outcomes(check_process(None, None))[0] == (
        "warn",
        "cannot tell whether CAP_NET_ADMIN is held",
    )
    assert check_process(None, None)[0].line() == (
        "warn relay: cannot tell whether CAP_NET_ADMIN is held"
    )


def test_outcome_values_are_what_the_lines_print() -> None:
    assert [o.value for o in preflight.Outcome] == ["ok", "warn", "FAIL"]
