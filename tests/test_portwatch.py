"""The fast port-state check: a pure comparison, and preads through fds kept open."""

from __future__ import annotations

from pathlib import Path

from fakehost import FakeHost, healthy_pf

from pfrelay.portwatch import PortWatch, changed


def test_changed_names_only_pfs_seen_before_with_other_values() -> None:
    before = {"pf0": (b"63\n", b"63\n"), "pf1": None}
    now = {"pf0": (b"143\n", b"55\n"), "pf1": None, "pf2": (b"63\n", b"63\n")}
    assert changed(before, now) == {"pf0"}
    assert changed(now, now) == set()
    assert changed({"pf1": None}, {"pf1": (b"63\n", b"63\n")}) == {"pf1"}


def test_a_port_state_change_is_seen_through_the_open_files(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    healthy_pf(host, "pf0", "bond0")
    healthy_pf(host, "pf1", "bond1", ifindex=3)
    watch = PortWatch(str(host.sysfs), ["pf0", "pf1"])
    watch.reopen(["pf0", "pf1"], str(host.sysfs))
    try:
        assert watch.check() == set()  # the first look: nothing to compare with
        assert watch.check() == set()
        host.set_slave("pf1", actor=143, partner=55)  # written in place, as sysfs changes
        assert watch.check() == {"pf1"}
        assert watch.check() == set()
        host.set_slave("pf0", partner=0)
        assert watch.check() == {"pf0"}
        host.set_slave("pf0", mii_status="down")  # comes with a link event: not read here
        assert watch.check() == set()
    finally:
        watch.close()


def test_a_pf_that_is_no_slave_is_looked_for_again_after_a_cycle(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.add_pf("pf0", ifindex=2, numvfs=4)
    watch = PortWatch(str(host.sysfs), ["pf0"])
    watch.reopen(["pf0"], str(host.sysfs))
    try:
        assert watch.fds == {"pf0": None} and watch.check() == set()
        healthy_pf(host, "pf0", "bond0")
        assert watch.check() == set()  # fds are opened after full cycles only
        watch.reopen(["pf0"], str(host.sysfs))
        assert watch.check() == {"pf0"}  # None -> values: a cycle looks
        watch.reopen(["pf1"], str(host.sysfs))  # a reload changed the PFs
        assert list(watch.fds) == ["pf1"] and watch.fds["pf1"] is None
    finally:
        watch.close()
