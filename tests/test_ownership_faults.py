"""The situations of issue 12, one test each: VF ownership when the PF, the bond, the VFs, ``ip``
or the ledger misbehave while the relay holds VFs disabled.

Each test failed on the code before the ownership rework (see the issue for what happened);
the model-based test (``test_ownership_model.py``) hunts for the ones nobody wrote down.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from fakehost import load_fixture
from fakeip import FakeIp
from test_relay_support import PROC_DOWN, PROC_UP, World, expected_vfs, relayed, with_msg

from pfrelay.decision import STALE_AFTER_BOND_DOWN_S, STALE_PORT_STATE_S
from pfrelay.iproute import ChangeResult
from pfrelay.lacp import Lacp
from pfrelay.ownership import Verdict
from pfrelay.relay import NEGOTIATION_GRACE_S

HOLD_S = 30.0  # the default unmonitored_hold_ms
CARRIER_LOST = load_fixture("proc-net-bonding-bond0-after-block-carrier-loss-step2-+0.50s")
ACTIVE_BACKUP = load_fixture("proc-net-bonding-bondab-active-backup").replace("lagp0", "pf0")
TWO_SLAVES = load_fixture("proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up").replace(
    "lagp0", "pf0"
)
NEGOTIATING = re.sub(r"(    port state: )63", r"\g<1>71", PROC_UP, count=1).replace(
    "    port state: 63", "    port state: 0"
)

#: What 6.12 read (kernel lab) at the partner's first answer after bond0 was set up again: 63/143.
PARTNER_EXPIRED = "    port state: 143".join(PROC_UP.rsplit("    port state: 63", 1))


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.add_pf()
    return w


def down(world: World) -> None:
    world.lacp(False)
    world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    world.events()


def break_pf(world: World, how: str) -> str:
    """Make pf0 unmonitorable while it holds VFs disabled; returns the reason's key words."""
    host = world.host
    if how == "bond deleted":
        host.remove_bond("bond0")
        return "no master"
    if how == "nomaster":
        (host.net("pf0") / "master").unlink()
        return "no master"
    if how == "active-backup":
        host.set_proc("bond0", ACTIVE_BACKUP)
        return "mode is active-backup"
    if how == "second slave":
        host.set_proc("bond0", TWO_SLAVES)
        return "has 2 slaves"
    raise AssertionError(how)


# -------------------------------------------------------------------- 1. unmonitorable PF


@pytest.mark.parametrize("how", ["bond deleted", "nomaster", "active-backup", "second slave"])
def test_vfs_of_a_pf_that_cannot_be_monitored_are_held_then_restored(
    world: World, how: str
) -> None:
    down(world)
    words = break_pf(world, how)
    held_at = world.now + 1.0
    reports = []
    while world.now + 1.0 < held_at + HOLD_S:
        reports.append(world.cycle()[0])
        assert world.vfs() == expected_vfs(down=True), world.now - held_at
    first = reports[0]
    assert not first.assessment.monitored and words in (first.assessment.reason or "")
    # status, STATUS= and metrics see them as held, with when they come back
    assert first.disabled_by_relay == relayed() and first.verdict is Verdict.HOLD
    assert first.release_in_s == HOLD_S
    assert reports[-1].release_in_s == 1.0
    (report,) = world.cycle()  # the hold is over: the verdict they were disabled for is gone
    assert report.verdict is Verdict.RELEASE
    assert world.vfs() == expected_vfs(down=False)
    assert world.ledger().pfs == {}
    assert len(with_msg(world.events(), "vf link state was set")) == len(relayed())


def test_the_hold_is_configurable_and_a_bond_back_in_time_keeps_them(tmp_path: Path) -> None:
    world = World(tmp_path, start=False)
    world.config = world.config.__class__(**{**world.config.__dict__, "unmonitored_hold_ms": 5000})
    world.start()
    world.add_pf()
    down(world)
    world.host.remove_bond("bond0")
    for _ in range(4):
        world.cycle()
    world.host.add_bond("bond0", ["pf0"], PROC_DOWN, ifindex=11)  # back, still down
    for _ in range(10):
        world.cycle()
    assert world.vfs() == expected_vfs(down=True)  # monitored and down again: kept
    world.host.remove_bond("bond0")
    for _ in range(5):
        world.cycle()
    assert world.vfs() == expected_vfs(down=True)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)  # 5 s after it left its bond


def test_status_line_shows_held_vfs_and_when_they_come_back(world: World) -> None:
    from pfrelay.daemon import status_line

    down(world)
    world.host.remove_bond("bond0")
    reports = world.cycle()
    assert status_line(reports) == (
        "1 PF: pf0 not monitored: not enslaved to a bond (no master) "
        "(6 VFs held disabled, restored in 30 s)"
    )
    assert status_line(reports, ledger_unsaved=True).endswith("; ledger not persisted")


# ------------------------------------------------------- 2. ownership re-checked unmonitored


def test_an_operator_takes_a_vf_over_while_the_pf_is_unmonitored(world: World) -> None:
    down(world)
    world.host.remove_bond("bond0")
    world.cycle()
    world.ip.links["pf0"][2] = "auto"  # the operator takes VF 2 ...
    world.cycle()
    world.ip.links["pf0"][2] = "disable"  # ... and disables it on purpose
    world.cycle()
    assert world.ledger().disabled("pf0") == relayed() - {2}
    world.host.add_bond("bond0", ["pf0"], PROC_UP)
    world.cycle()
    assert world.vfs() == {**expected_vfs(down=False), 2: "disable"}  # the operator's, kept


# -------------------------------------------------------------------------- 3. PF renamed


def rename(world: World, old: str, new: str) -> None:
    os.rename(world.host.net(old), world.host.net(new))
    if (world.host.net("bond0") / "bonding").is_dir():
        (world.host.net("bond0") / "bonding/slaves").write_text(f"{new}\n")
        text = (world.host.procfs / "net/bonding/bond0").read_text()
        world.host.set_proc(
            "bond0", text.replace(f"Slave Interface: {old}", f"Slave Interface: {new}")
        )
    world.ip.links[new] = world.ip.links.pop(old)
    world.ip.ifindex[new] = world.ip.ifindex.pop(old, 2)


def test_a_renamed_pf_keeps_its_ledger_entry_and_its_vfs_are_not_stranded(world: World) -> None:
    down(world)
    rename(world, "pf0", "ens9")
    reports = world.cycle()
    (line,) = with_msg(world.events(), "pf was renamed; the vfs the relay disabled follow it")
    assert (line["interface"], line["old_name"], line["ids"]) == ("ens9", "pf0", sorted(relayed()))
    assert set(world.ledger().pfs) == {"ens9"}
    assert [r.assessment.interface for r in reports] == ["pf0", "ens9"]
    assert reports[0].assessment.reason == "no such interface"
    held = reports[1]
    assert not held.assessment.monitored and held.disabled_by_relay == relayed()
    # ens9 is not a configured PF: held, then released; never stranded.
    for _ in range(int(HOLD_S)):
        world.cycle()
    assert world.vfs("ens9") == expected_vfs(down=False)
    assert world.ledger().pfs == {}


def test_a_pf_renamed_and_back_within_the_hold_is_watched_again(world: World) -> None:
    down(world)
    rename(world, "pf0", "ens9")
    world.cycle()
    rename(world, "ens9", "pf0")
    (report,) = world.cycle()
    # monitored again (with the grace of a PF that became monitored at run time)
    assert report.assessment.monitored and report.assessment.lacp is Lacp.UNKNOWN
    assert world.vfs() == expected_vfs(down=True)
    assert world.ledger().disabled("pf0") == relayed()
    world.lacp(True)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)


# ---------------------------------------------------------------- 7. VFs re-created, same count


def add_virtfn(world: World, generation: int) -> None:
    device = world.host.net("pf0") / "device"
    target = device / f".vf-{generation}"
    target.mkdir()
    # Created beside the old link, then renamed over it: a new inode, as kernfs gives one.
    os.symlink(target.name, device / "virtfn0.new")
    os.replace(device / "virtfn0.new", device / "virtfn0")


def test_vfs_recreated_with_the_same_count_are_not_the_relays(world: World) -> None:
    add_virtfn(world, 1)
    down(world)
    assert world.ledger().pfs["pf0"].vfs_id is not None
    # sriov_numvfs 8 -> 0 -> 8: new VFs (a real driver starts them at auto); the operator
    # disables VF 1 of the new set on purpose.
    add_virtfn(world, 2)
    world.ip.links["pf0"] = {**expected_vfs(down=False), 1: "disable"}
    world.lacp(True)
    world.cycle()
    (dropped,) = with_msg(
        world.events(), "ledger entries dropped: these are not the vfs the relay disabled"
    )
    assert dropped["reason"] == "the VFs were re-created (their sysfs entries are new)"
    assert world.vfs()[1] == "disable"  # not flipped to auto: not the relay's


def test_an_unreadable_sriov_numvfs_never_erases_the_guard(world: World) -> None:
    down(world)
    numvfs = world.host.net("pf0") / "device/sriov_numvfs"
    numvfs.unlink()  # one unreadable read while the relay writes the ledger
    world.ip.links["pf0"][3] = "auto"  # something for the cycle to do and record
    world.cycle()
    assert world.ledger().pfs["pf0"].numvfs == 8  # not overwritten with null
    world.host.set_numvfs("pf0", 4)  # 8 -> 0 -> 4: re-created
    world.ip.links["pf0"] = {n: "disable" for n in range(4)}
    world.lacp(True)
    world.cycle()
    assert world.vfs() == {n: "disable" for n in range(4)}
    assert world.ledger().pfs == {}


# ------------------------------------------------------------------- 9. ip says yes, does nothing


class LyingIp(FakeIp):
    """Exits 0 for every change and changes nothing (a driver that ignores it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lie = True

    def set_vf_states(self, changes: Any) -> ChangeResult:
        if not self.lie:
            return super().set_vf_states(changes)
        self.calls.append(("batch", [(c.pf, c.vf, c.state.value) for c in changes]))
        return ChangeResult(tuple(changes), ())


def test_ip_that_exits_0_without_changing_anything(tmp_path: Path) -> None:
    world = World(tmp_path, ip=LyingIp())
    world.add_pf()
    world.lacp(False)
    (report,) = world.cycle()
    assert report.disabled_by_relay == frozenset()  # only real states count
    assert world.ledger().pfs == {}  # read back: nothing is disable, nothing is owned
    events = world.events()
    assert with_msg(events, "vf link state was set") == []
    failed = with_msg(events, "failed to set vf link state")
    assert sorted(r["id"] for r in failed) == sorted(relayed())
    assert all(r["error"] == "ip reported success, but the vf is still auto" for r in failed)
    # Backing off: 60 polls of 1 s cost far fewer than 60 batches, logged once.
    for _ in range(60):
        world.cycle()
    batches = len(world.set_calls())
    assert 5 <= batches <= 8, batches  # after 1, 2, 4, 8, 16, 30 s ...
    assert with_msg(world.events(), "failed to set vf link state") == []
    world.ip.lie = False
    for _ in range(31):
        world.cycle()
    assert world.vfs() == expected_vfs(down=True)


# --------------------------------------------------------------- 10. stale ports, slow polling


def test_a_renegotiation_finished_between_slow_polls_is_believed_at_once(world: World) -> None:
    down(world)
    world.set_proc(CARRIER_LOST)  # carrier lost: MII down, 63/63 kept
    world.cycle(advance=5.0)
    world.lacp(True)  # renegotiated within the 5 s between two polls: 63/63, MII up
    (report,) = world.cycle(advance=5.0)
    assert report.assessment.lacp is Lacp.DOWN  # could be the stale moment: re-read soon
    assert world.relay.recheck_at() == world.now + STALE_PORT_STATE_S
    world.now += STALE_PORT_STATE_S
    (report,) = world.relay.cycle()
    assert report.assessment.lacp is Lacp.UP  # unchanged a few ticks later: current
    assert world.vfs() == expected_vfs(down=False)  # 0.5 s after the poll, not 5 s
    assert world.relay.recheck_at() is None


# ----------------------------------------------------------- 11. bond re-created between polls


def test_a_bond_recreated_between_two_polls_gets_the_negotiation_grace(world: World) -> None:
    world.cycle()
    world.host.remove_bond("bond0")
    world.host.add_bond("bond0", ["pf0"], NEGOTIATING, ifindex=12)  # new ifindex, 71/0
    for _ in range(int(NEGOTIATION_GRACE_S) - 1):
        (report,) = world.cycle()
        assert report.assessment.lacp is Lacp.UNKNOWN
        assert "just appeared" in (report.assessment.reason or "")
    world.lacp(True)
    world.cycle()
    assert world.set_calls() == []  # no VF flapped
    assert world.vfs() == expected_vfs(down=False)


def test_a_bond_recreated_long_ago_gets_no_grace_when_it_goes_down(world: World) -> None:
    """Found by the model: a re-creation noticed only at the next DOWN verdict looked new
    and held the VFs auto for 10 s more while LACP was really down."""
    world.cycle()
    world.host.remove_bond("bond0")
    world.host.add_bond("bond0", ["pf0"], PROC_UP, ifindex=12)  # re-created, up at once
    world.cycle()
    for _ in range(int(NEGOTIATION_GRACE_S) + 1):
        world.cycle()
    world.lacp(False)
    (report,) = world.cycle()
    assert report.assessment.lacp is Lacp.DOWN
    assert world.vfs() == expected_vfs(down=True)


# --------------------------------------------------------------------- PF with no VFs


def test_a_pf_without_vfs_spawns_no_ip_while_down(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.add_pf(numvfs=0, vfs={})
    world.lacp(False)
    for _ in range(3):
        (report,) = world.cycle()
        assert report.assessment.lacp is Lacp.DOWN
    assert world.ip.calls == []


# ------------------------------------------------------------- 5. ledger unreadable at start


def test_a_ledger_unreadable_at_start_is_read_again_and_never_overwritten_unread(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.add_pf()
    down(world)
    run = world.state_file.parent
    os.rename(run, tmp_path / "away")
    run.write_text("not a directory\n")  # ENOTDIR for the ledger
    world.start()  # a restart while the ledger cannot be read
    world.lacp(True)
    world.cycle()
    events = world.all_events()
    assert with_msg(
        events, "cannot read the ledger; reading it again every cycle, not overwriting it"
    )
    assert world.vfs() == expected_vfs(down=True)  # not provably ours yet: kept
    run.unlink()
    os.rename(tmp_path / "away", run)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)  # read, merged, restored
    assert world.ledger().pfs == {}


def test_relay_never_writes_over_a_ledger_it_has_not_read(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=["pf0", "pf1"])
    world.add_pf()
    world.add_pf("pf1", bond="bond1", ifindex=3)
    world.lacp(False, "pf1", "bond1")
    world.cycle()  # pf1's VFs disabled and recorded
    saved: Dict[str, Tuple[int, ...]] = {
        pf: tuple(sorted(e.disabled)) for pf, e in world.ledger().pfs.items()
    }
    run = world.state_file.parent
    os.rename(run, tmp_path / "away")
    run.write_text("blocked\n")
    world.start()
    world.lacp(False)  # pf0 goes down while the ledger cannot be read
    world.cycle()
    run.unlink()
    os.rename(tmp_path / "away", run)
    world.cycle()
    merged = world.ledger()
    assert merged.disabled("pf1") == frozenset(saved["pf1"])  # kept, not overwritten
    assert merged.disabled("pf0") == relayed()


def test_the_hold_follows_the_pf_through_renames(world: World) -> None:
    """Found by the model: renamed away and back, the PF got a fresh hold under its old name
    (the name's memory was kept, not the PF's), holding its VFs longer than the hold."""
    down(world)
    world.host.remove_bond("bond0")
    left_at = world.now + 1.0
    world.cycle()
    for _ in range(int(HOLD_S) - 6):
        world.cycle()
    rename(world, "pf0", "ens9")
    world.cycle()
    rename(world, "ens9", "pf0")
    while world.now + 1.0 < left_at + HOLD_S:
        world.cycle()
        assert world.vfs() == expected_vfs(down=True)
    world.cycle()
    assert world.vfs() == expected_vfs(down=False)  # HOLD_S after it left its bond


def test_a_bond_set_down_says_why_lacp_is_down(world: World) -> None:
    """The slave still reads MII up and 63/63 (6.12): the log line must say what the relay saw."""
    world.cycle()
    (world.host.net("bond0") / "operstate").write_text("down\n")
    (world.host.net("bond0") / "flags").write_text("0x1402\n")
    (report,) = world.cycle()
    assert report.assessment.lacp is Lacp.DOWN
    (line,) = with_msg(world.events(), "lacp is down")
    assert line["reason"] == "bond bond0 is administratively down"
    assert (line["actor_state"], line["partner_state"]) == (63, 63)
    assert world.vfs() == expected_vfs(down=True)


def set_bond_admin(world: World, up: bool) -> None:
    (world.host.net("bond0") / "operstate").write_text("up\n" if up else "down\n")
    (world.host.net("bond0") / "flags").write_text("0x1403\n" if up else "0x1402\n")


def test_a_bond_set_up_again_does_not_restore_on_its_frozen_port_states(world: World) -> None:
    """6.12 (kernel lab CI, stop 16): after `ip link set bond0 up` the slave still read the
    63/63 frozen when the bond went down; ~190 ms later the partner's answer (143: expired,
    not collecting) arrived, and 63/63 again ~0.5 s after that. Believing the first 63/63
    restored the VFs and disabled them again 60 ms later."""
    world.cycle()
    set_bond_admin(world, up=False)
    world.cycle(advance=0.2)
    assert world.vfs() == expected_vfs(down=True)
    world.cycle(advance=4.0)
    world.events()
    set_bond_admin(world, up=True)  # 63/63 still: the frozen states
    (report,) = world.cycle(advance=0.13)
    assert report.assessment.lacp is Lacp.DOWN
    assert world.vfs() == expected_vfs(down=True)
    (line,) = with_msg(world.events(), "port states are stale")
    assert "before bond bond0 went down" in line["reason"]
    assert world.relay.recheck_at() == world.now + STALE_AFTER_BOND_DOWN_S
    world.set_proc(PARTNER_EXPIRED)  # the partner's first answer
    (report,) = world.cycle(advance=0.06)
    assert report.assessment.lacp is Lacp.DOWN and world.relay.recheck_at() is None
    world.lacp(True)  # renegotiated
    (report,) = world.cycle(advance=0.34)
    assert report.assessment.lacp is Lacp.UP
    assert world.vfs() == expected_vfs(down=False)
    sets = [e for e in world.all_events() if e["msg"] == "vf link state was set"]
    assert [e["state"] for e in sets] == ["disable"] * len(relayed()) + ["auto"] * len(relayed())


def test_a_bond_set_up_whose_partner_answers_63_is_believed_at_the_recheck(world: World) -> None:
    world.cycle()
    set_bond_admin(world, up=False)
    world.cycle()
    set_bond_admin(world, up=True)
    (report,) = world.cycle(advance=5.0)  # slow polling: the peer may well have answered
    assert report.assessment.lacp is Lacp.DOWN
    due = world.relay.recheck_at()
    assert due == world.now + STALE_AFTER_BOND_DOWN_S
    world.now = due
    (report,) = world.relay.cycle()
    assert report.assessment.lacp is Lacp.UP  # unchanged a fast periodic time later
    assert world.vfs() == expected_vfs(down=False)


def test_a_recheck_that_cannot_read_the_host_asks_for_no_other(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a link loss the re-read is asked for once: if the host cannot be read then, the
    daemon must not spin on a moment that is already past."""
    down(world)
    world.set_proc(CARRIER_LOST)
    world.cycle()
    world.lacp(True)
    world.cycle()
    due = world.relay.recheck_at()
    assert due == world.now + STALE_PORT_STATE_S
    real = os.readlink

    def eio(path: Any, *a: Any, **k: Any) -> str:
        if str(path).endswith("pf0/master"):
            raise OSError(5, "Input/output error")
        return real(path, *a, **k)

    monkeypatch.setattr(os, "readlink", eio)
    world.now = due
    (report,) = world.relay.cycle()
    assert report.assessment.unreadable  # the loss is kept: nothing proves it is over
    assert world.relay.recheck_at() is None  # read at the due moment: the next poll it is
