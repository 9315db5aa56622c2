"""Reading a PF's facts from fake /proc and /sys trees: values, faults, and what it costs."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from fakehost import FakeHost, healthy_pf, load_fixture, sysfs_capture, unprivileged

from pfrelay.bonding import Bond, Slave, parse_proc_bonding
from pfrelay.host import (
    PfFacts,
    master_kind,
    read_bond,
    read_bond_link,
    read_pf,
    read_sriov,
    read_text,
)

HEALTHY = "proc-net-bonding-bond0-802.3ad-lacp-up"
PEER = "4e:0a:06:1c:16:6d"


def facts(host: FakeHost, pf: str = "pf0", **kwargs: Any) -> PfFacts:
    return read_pf(str(host.procfs), str(host.sysfs), pf, **kwargs)


def proc_path(host: FakeHost, bond: str = "bond0") -> str:
    return os.path.join(str(host.procfs), "net/bonding", bond)


# --- read_text -------------------------------------------------------------------------------


def test_read_text_is_bounded_and_replaces_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"ab\xffcd" + b"x" * (300 * 1024))
    assert read_text(path, limit=4) == "ab\ufffdc"
    assert len(read_text(path)) == 256 * 1024
    assert read_text(str(path), 3) == "ab\ufffd"


def test_read_text_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        read_text(tmp_path)


# --- the usual cases ------------------------------------------------------------------------


def test_healthy(host: FakeHost) -> None:
    healthy_pf(host)
    expected_bond = parse_proc_bonding("bond0", load_fixture(HEALTHY))
    assert facts(host) == PfFacts(
        "pf0", True, 2, "bond0", "bond", expected_bond, None, 8, None, bond_ifindex=10
    )
    assert facts(host, sriov=False) == PfFacts(
        "pf0", True, None, "bond0", "bond", expected_bond, bond_ifindex=10
    )
    assert expected_bond.slaves == (Slave("pf0", "up", 1, 63, 63, PEER),)


def test_healthy_under_pyfakefs(fake_host: FakeHost) -> None:
    healthy_pf(fake_host, "ens1f0", "bond7", numvfs=16, ifindex=12)
    fake_host.add_pf("ens1f0", ifindex=12, numvfs=16, totalvfs=64)
    got = facts(fake_host, "ens1f0")
    assert (got.ifindex, got.master, got.master_kind, got.numvfs, got.totalvfs) == (
        12,
        "bond7",
        "bond",
        16,
        64,
    )
    assert got.bond is not None and got.bond.name == "bond7"
    assert got.bond.slaves == (Slave("ens1f0", "up", 1, 63, 63, PEER),)


@pytest.mark.parametrize(
    ("capture", "actor", "partner", "mii"),
    [
        ("proc-net-bonding-bond0-partner-lost-peer-stops-sending", 79, 0, "up"),
        ("proc-net-bonding-bond0-after-block-peer-stops-sending-step1-+2.61s", 143, 55, "up"),
        ("proc-net-bonding-bond0-partner-lost-carrier-loss", 63, 63, "down"),
    ],
)
def test_failures_come_from_proc(
    host: FakeHost, capture: str, actor: int, partner: int, mii: str
) -> None:
    healthy_pf(host)  # sysfs keeps 63/63 up: /proc wins
    host.set_proc("bond0", load_fixture(capture))
    bond = facts(host).bond
    assert bond is not None
    assert (bond.slaves[0].actor_state, bond.slaves[0].partner_state) == (actor, partner)
    assert bond.slaves[0].mii_status == mii


def test_unprivileged_reader_gets_port_states_from_sysfs(host: FakeHost) -> None:
    healthy_pf(host)
    host.set_proc(
        "bond0",
        unprivileged(load_fixture("proc-net-bonding-bond0-partner-lost-peer-stops-sending")),
    )
    host.set_slave("pf0", actor=79, partner=0)
    bond = facts(host).bond
    assert bond is not None
    assert bond.slaves == (Slave("pf0", "up", 1, 79, 0, None),)
    assert (bond.mode, bond.lacp_rate, bond.active_aggregator) == ("802.3ad", "fast", None)


def test_unprivileged_with_na_sysfs_values(host: FakeHost) -> None:
    healthy_pf(host)
    host.set_proc("bond0", unprivileged(load_fixture(HEALTHY)))
    host.set_slave("pf0", actor="N/A", partner="N/A", aggregator="N/A")
    got = facts(host)
    assert got.bond is not None and got.bond_error is None
    assert got.bond.slaves == (Slave("pf0", "up", 1, None, None, None),)


def test_no_such_pf(host: FakeHost) -> None:
    assert facts(host, "pf9") == PfFacts("pf9", False)
    healthy_pf(host)
    host.remove_pf("pf0")
    assert facts(host) == PfFacts("pf0", False)


def test_no_master(host: FakeHost) -> None:
    host.add_pf("pf0", ifindex=5, numvfs=4, totalvfs=8)
    assert facts(host) == PfFacts("pf0", True, 5, numvfs=4, totalvfs=8)
    healthy_pf(host, "pf1", "bond1")
    host.remove_bond("bond1")  # as `ip link del bond1`: pf1 is released
    assert facts(host, "pf1") == PfFacts("pf1", True, 2, numvfs=8)


@pytest.mark.parametrize(
    ("master", "subdir", "kind"),
    [
        ("br0", "bridge", "bridge"),
        ("ovs-system", None, "openvswitch"),
        ("team0", None, "team"),
        ("macsec0", None, "other"),
    ],
)
def test_other_masters(host: FakeHost, master: str, subdir: str, kind: str) -> None:
    host.add_pf("pf0")
    host.add_master(master, ["pf0"], subdir=subdir)
    assert facts(host) == PfFacts("pf0", True, 2, master, kind, None, None, 8)
    assert master_kind(str(host.sysfs), master) == kind


def test_master_kind_from_uevent(host: FakeHost) -> None:
    host.add_master("x0", [])
    (host.net("x0") / "uevent").write_text("DEVTYPE=bond\nINTERFACE=x0\n")
    assert master_kind(str(host.sysfs), "x0") == "bond"
    assert master_kind(str(host.sysfs), "nosuch") == "other"


def test_active_backup_bond(host: FakeHost) -> None:
    host.add_pf("pf0")
    na = {"ad_actor_oper_port_state": "N/A", "ad_partner_oper_port_state": "N/A"}
    host.add_bond(
        "bondab",
        ["pf0"],
        load_fixture("proc-net-bonding-bondab-active-backup").replace("lagp0", "pf0"),
        mode="active-backup 1",
        slave_files={"pf0": na},
    )
    got = facts(host)
    assert got.master_kind == "bond" and got.bond is not None
    assert got.bond.mode == "active-backup"
    assert [(s.name, s.actor_state) for s in got.bond.slaves] == [("pf0", None), ("lagp1", None)]


# --- faults -----------------------------------------------------------------------------------


def test_bond_deleted_between_master_and_proc(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy_pf(host)
    real_readlink = os.readlink

    def readlink_then_delete(path: Any, *args: Any, **kwargs: Any) -> Any:
        target = real_readlink(path, *args, **kwargs)
        host.remove_bond("bond0")
        return target

    monkeypatch.setattr(os, "readlink", readlink_then_delete)
    got = facts(host)
    assert (got.exists, got.master, got.master_kind, got.bond) == (True, "bond0", None, None)
    assert got.bond_error == (
        f"master bond0 disappeared (cannot read {proc_path(host)}: No such file or directory)"
    )
    assert got.numvfs == 8


def test_dangling_master_link(host: FakeHost) -> None:
    host.add_pf("pf0", master="bond3")
    got = facts(host)
    assert (got.master, got.master_kind, got.bond) == ("bond3", None, None)
    assert got.bond_error is not None and "disappeared" in got.bond_error


def _fail_open(monkeypatch: pytest.MonkeyPatch, match: Callable[[str], bool], exc: OSError) -> None:
    real_open = builtins.open

    def failing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and match(os.fspath(file)):
            raise exc
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (OSError(errno.EINVAL, ""), "EINVAL"),
    ],
)
def test_unreadable_proc_falls_back_to_sysfs(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    healthy_pf(host)
    _fail_open(monkeypatch, lambda p: p == proc_path(host), error)
    got = facts(host)
    assert got.master_kind == "bond"
    assert got.bond == Bond("bond0", "802.3ad", "fast", "up", 1, (Slave("pf0", "up", 1, 63, 63),))
    assert got.bond_error == f"cannot read {proc_path(host)}: {reason}"


def test_proc_is_a_directory(host: FakeHost) -> None:
    healthy_pf(host)
    host.remove_proc("bond0")
    Path(proc_path(host)).mkdir()
    got = facts(host)
    assert got.bond is not None and got.bond.slaves[0].actor_state == 63
    assert got.bond_error == f"cannot read {proc_path(host)}: Is a directory"


def test_eacces_under_pyfakefs(fake_host: FakeHost) -> None:
    from pyfakefs.helpers import reset_ids, set_uid

    healthy_pf(fake_host)
    os.chmod(proc_path(fake_host), 0o000)
    set_uid(1000)
    try:
        got = facts(fake_host)
    finally:
        reset_ids()
    assert got.bond is not None and got.bond.slaves[0].actor_state == 63
    assert got.bond_error == f"cannot read {proc_path(fake_host)}: Permission denied"


def test_nothing_readable_about_the_bond(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy_pf(host)
    bond_dir = str(host.net("bond0"))
    denied = PermissionError(errno.EACCES, "Permission denied")
    _fail_open(monkeypatch, lambda p: p == proc_path(host) or p.startswith(bond_dir), denied)
    got = facts(host)
    assert (got.master_kind, got.bond) == ("bond", None)
    assert got.bond_error == f"cannot read {proc_path(host)}: Permission denied"


def test_proc_without_a_bond_entry_uses_sysfs(host: FakeHost) -> None:
    """No /proc/net/bonding/bond0 (another netns's procfs) while sysfs has the bond."""
    healthy_pf(host)
    host.remove_proc("bond0")
    got = facts(host)
    assert got.bond == Bond("bond0", "802.3ad", "fast", "up", 1, (Slave("pf0", "up", 1, 63, 63),))
    assert got.bond_error == f"cannot read {proc_path(host)}: No such file or directory"


def test_garbage_in_proc(host: FakeHost) -> None:
    healthy_pf(host)
    host.set_proc(
        "bond0", load_fixture("proc-net-bonding-swbond-peer-end-of-block-peer-lag-deleted")
    )
    got = facts(host)
    assert got.bond is not None and got.bond.slaves[0].partner_state == 63
    assert got.bond_error is not None and "not a bonding status" in got.bond_error


def test_unreadable_master_link(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy_pf(host)

    def denied(path: Any, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    monkeypatch.setattr(os, "readlink", denied)
    link = os.path.join(str(host.sysfs), "class/net/pf0/master")
    assert facts(host) == PfFacts("pf0", True, bond_error=f"cannot read {link}: Permission denied")


def test_master_is_not_a_link(host: FakeHost) -> None:
    host.add_pf("pf0")
    (host.net("pf0") / "master").write_text("bond0\n")  # EINVAL from readlink
    assert facts(host) == PfFacts("pf0", True, 2, numvfs=8)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../pf0", "pf\x000"])
def test_bad_names_are_refused(host: FakeHost, name: str) -> None:
    with pytest.raises(ValueError, match="not an interface name"):
        facts(host, name)


def test_sysfs_slave_names_are_not_paths(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy_pf(host)
    host.remove_proc("bond0")
    (host.net("bond0") / "bonding/slaves").write_text("../../../../etc pf0 .\n")
    opened = _record(monkeypatch)
    got = facts(host)
    assert got.bond is not None
    assert [s.name for s in got.bond.slaves] == ["../../../../etc", "pf0", "."]
    monkeypatch.undo()
    assert opened and all(os.path.realpath(p).startswith(str(host.root)) for _, p in opened)


@pytest.mark.parametrize(
    ("numvfs", "expected"), [("8\n", 8), ("0", 0), ("abc", None), ("-1", None), ("\u0668", None)]
)
def test_sriov_numbers(host: FakeHost, numvfs: str, expected: Any) -> None:
    host.add_pf("pf0")
    (host.net("pf0") / "device/sriov_numvfs").write_text(numvfs)
    assert read_sriov(str(host.sysfs), "pf0") == (2, expected, None)
    assert read_sriov(str(host.sysfs), "nosuch") == (None, None, None)


def test_read_bond(host: FakeHost) -> None:
    healthy_pf(host)
    bond, error = read_bond(str(host.procfs), str(host.sysfs), "bond0")
    assert error is None and bond == parse_proc_bonding("bond0", load_fixture(HEALTHY))
    gone, why = read_bond(str(host.procfs), str(host.sysfs), "bond9")
    assert gone is None and why is not None and "No such file" in why


def _tree(host: FakeHost) -> List[Path]:
    return sorted(p for p in host.root.rglob("*") if "boot_id" not in str(p))


def _break_each() -> Iterator[Tuple[str, Callable[[Path], None]]]:
    def remove(p: Path) -> None:
        if p.is_dir() and not p.is_symlink():
            for child in sorted(p.rglob("*"), reverse=True):
                child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
            p.rmdir()
        else:
            p.unlink()

    def to_dir(p: Path) -> None:
        remove(p)
        p.mkdir()

    def to_dangling(p: Path) -> None:
        remove(p)
        os.symlink("nowhere", p)

    def to_garbage(p: Path) -> None:
        if p.is_file():
            p.write_bytes(b"\xff\xfe-1 N/A 99999999999999999999 \x00\n")

    yield from (
        ("remove", remove),
        ("dir", to_dir),
        ("dangling", to_dangling),
        ("garbage", to_garbage),
    )


@pytest.mark.parametrize("proc", ["privileged", "unprivileged"])
def test_never_raises_whatever_breaks(tmp_path: Path, proc: str) -> None:
    """Every file and directory of the tree, removed, made a directory, a dangling link or garbage."""
    text = load_fixture(HEALTHY)
    if proc == "unprivileged":
        text = unprivileged(text)
    paths = _tree(_build(tmp_path / "probe", text))
    count = 0
    for index, relative in enumerate(p.relative_to(tmp_path / "probe") for p in paths):
        for how, breaker in _break_each():
            host = _build(tmp_path / f"h{index}-{how}", text)
            breaker(host.root / relative)
            for sriov in (True, False):
                got = facts(host, sriov=sriov)
                assert isinstance(got, PfFacts), (relative, how)
                count += 1
    assert count > 100


def _build(root: Path, text: str) -> FakeHost:
    host = FakeHost(root)
    healthy_pf(host)
    host.set_proc("bond0", text)
    return host


# --- cost -------------------------------------------------------------------------------------


def _record(monkeypatch: pytest.MonkeyPatch) -> List[Tuple[str, str]]:
    """Record every file system access pfrelay.host can make: opens, links, stats, listings."""
    calls: List[Tuple[str, str]] = []

    def wrap(module: Any, name: str) -> None:
        real = getattr(module, name)

        def recording(path: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(
                (name, os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path))
            )
            return real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, recording)

    wrap(builtins, "open")
    for name in ("open", "readlink", "stat", "lstat", "listdir", "scandir", "access"):
        wrap(os, name)
    return calls


def _relative(host: FakeHost, calls: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    return [(name, os.path.relpath(path, host.root)) for name, path in calls]


def test_steady_state_poll_reads_the_master_link_and_proc_only(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy_pf(host)
    facts(host, sriov=False)  # warm the parser's cache, as a running relay has
    calls = _record(monkeypatch)
    got = facts(host, sriov=False)
    assert _relative(host, calls) == [
        ("readlink", "sys/class/net/pf0/master"),
        ("open", "proc/net/bonding/bond0"),
        # the bond's own link: /proc does not show `ip link set bond0 down` (issue 12)
        ("open", "sys/class/net/bond0/operstate"),
        ("open", "sys/class/net/bond0/ifindex"),  # a bond re-created between two polls
    ]
    assert got.bond is not None and got.bond.slaves[0].actor_state == 63
    assert got.bond_ifindex == 10


def test_full_read_adds_the_sriov_files(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy_pf(host)
    calls = _record(monkeypatch)
    facts(host)
    assert _relative(host, calls) == [
        ("readlink", "sys/class/net/pf0/master"),
        ("open", "sys/class/net/pf0/ifindex"),
        ("open", "sys/class/net/pf0/device/sriov_numvfs"),
        ("open", "sys/class/net/pf0/device/sriov_totalvfs"),
        ("open", "proc/net/bonding/bond0"),
        ("open", "sys/class/net/bond0/operstate"),
        ("open", "sys/class/net/bond0/ifindex"),
    ]


def test_unprivileged_poll_adds_two_port_state_files(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy_pf(host)
    host.set_proc("bond0", unprivileged(load_fixture(HEALTHY)))
    calls = _record(monkeypatch)
    facts(host, sriov=False)
    assert _relative(host, calls) == [
        ("readlink", "sys/class/net/pf0/master"),
        ("open", "proc/net/bonding/bond0"),
        ("open", "sys/class/net/pf0/bonding_slave/ad_actor_oper_port_state"),
        ("open", "sys/class/net/pf0/bonding_slave/ad_partner_oper_port_state"),
        ("open", "sys/class/net/bond0/operstate"),
        ("open", "sys/class/net/bond0/ifindex"),
    ]


def test_bridge_poll_cost(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    host.add_pf("pf0")
    host.add_bridge("br0", ["pf0"])
    calls = _record(monkeypatch)
    facts(host, sriov=False)
    assert [name for name, _ in calls] == ["readlink", "open", "stat", "stat", "stat"]


# --- the bond's own link (issue 12, finding 4: `ip link set bond0 down`) --------------------

#: Captured on 6.12 (tests/fixtures/INDEX.*.bond-admin-down.tsv): the bond's operstate and flags,
#: then the slave's bonding files and /proc, before and 12 s after `ip link set bond0 down`.
ADMIN_DOWN = "admin-down-step3-+12s"
BEFORE_DOWN = "802.3ad-before-admin-down"


def captured_bond_host(host: FakeHost, label: str) -> None:
    """pf0 in bond0 exactly as the kernel showed them at ``label`` (the bond-admin-down run)."""
    host.add_pf("pf0", numvfs=4)
    link = sysfs_capture(f"sysfs-bond0-pf0-link-files-{label}")
    slave = sysfs_capture(f"sysfs-pf0-bonding_slave-{label}")
    bond_files = sysfs_capture(f"sysfs-bond0-bonding-{label}")
    host.add_bond(
        "bond0",
        ["pf0"],
        load_fixture(f"proc-net-bonding-bond0-{label}"),
        mii_status=bond_files["mii_status"],
        slave_files={"pf0": {k: slave[k] for k in ("mii_status", "ad_actor_oper_port_state")}},
    )
    # sysfs_capture keys by file name: bond0's operstate/flags come first in the capture
    text = load_fixture(f"sysfs-bond0-pf0-link-files-{label}")
    bond_part = text.split("==> /sys/class/net/pf0/", 1)[0]
    for name in ("operstate", "flags"):
        value = bond_part.split(f"==> /sys/class/net/bond0/{name} <==\n", 1)[1].split("\n", 1)[0]
        (host.net("bond0") / name).write_text(value + "\n")
    assert link  # the capture parsed


def test_admin_down_bond_is_read_from_its_operstate_and_flags(host: FakeHost) -> None:
    captured_bond_host(host, ADMIN_DOWN)
    got = facts(host)
    # what the kernel shows: the slave frozen at MII up, 63/63; only the bond's link says down
    assert got.bond is not None and got.bond.slaves[0].mii_status == "up"
    assert (got.bond.slaves[0].actor_state, got.bond.slaves[0].partner_state) == (63, 63)
    assert got.bond.mii_status == "up"
    assert (got.bond_operstate, got.bond_flags) == ("down", 0x1402)


def test_healthy_bond_costs_only_its_operstate(host: FakeHost) -> None:
    captured_bond_host(host, BEFORE_DOWN)
    got = facts(host)
    assert (got.bond_operstate, got.bond_flags) == ("up", None)  # flags not read when up


def test_bond_link_files_missing_or_garbled_are_unknown(host: FakeHost) -> None:
    healthy_pf(host)
    assert (facts(host).bond_operstate, facts(host).bond_flags) == (None, None)
    (host.net("bond0") / "operstate").write_text("down\n")
    for garbage in ("1402", "0x", "0xzz", "0x" + "f" * 20, ""):
        (host.net("bond0") / "flags").write_text(garbage + "\n")
        assert facts(host).bond_flags is None, garbage
    assert read_bond_link(str(host.sysfs), "bond9") == (None, None)
