"""The /proc/net/bonding parser and the sysfs merge, over the real 6.12 captures and variants."""

from __future__ import annotations

import csv
import re
from typing import List, Optional, Tuple

import pytest
from fakehost import FIXTURES, KERNEL, load_fixture, sysfs_capture, unprivileged

from pfrelay.bonding import (
    MODES,
    Bond,
    BondingParseError,
    Slave,
    merge_sysfs,
    missing_from_proc,
    parse_proc_bonding,
    sysfs_gaps,
)

PROC_CAPTURES = sorted(
    p.name[: -len(f".{KERNEL}.txt")] for p in FIXTURES.glob(f"proc-net-bonding-*.{KERNEL}.txt")
)
#: The one capture that is not a bonding status: the peer bond was gone and `cat` said so.
NOT_BONDING = "proc-net-bonding-swbond-peer-end-of-block-peer-lag-deleted"
TIMELINE_SNAPSHOTS = sorted(
    str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("timelines/*/*.snap-*.txt")
)
PEER = "4e:0a:06:1c:16:6d"  # the lab switch's (swbond's) system MAC
ZERO = "00:00:00:00:00:00"

SlaveRow = Tuple[str, Optional[str], Optional[int], Optional[int], Optional[int], Optional[str]]


def parse(name: str) -> Bond:
    return parse_proc_bonding("bond0", load_fixture(name))


def rows(bond: Bond) -> List[SlaveRow]:
    return [
        (s.name, s.mii_status, s.aggregator_id, s.actor_state, s.partner_state, s.partner_mac)
        for s in bond.slaves
    ]


# capture, mode, lacp rate, bond MII, active aggregator, its partner MAC, slaves
# (name, MII, aggregator, actor state, partner state, partner MAC). Checked by hand against
# the files and the lab's README (port states, MACs, which lines each state prints).
EXPECTED = [
    ("bond0-802.3ad-lacp-up", "802.3ad", "fast", "up", 1, PEER, [("pf0", "up", 1, 63, 63, PEER)]),
    (  # partner lost: actor DEFAULTED, partner zeroed
        "bond0-partner-lost-peer-stops-sending",
        "802.3ad", "fast", "up", 1, ZERO, [("pf0", "up", 1, 79, 0, ZERO)],
    ),
    (  # 2.6 s after the switch stopped sending: partner lost SYN, actor EXPIRED
        "bond0-after-block-peer-stops-sending-step1-+2.61s",
        "802.3ad", "fast", "up", 1, PEER, [("pf0", "up", 1, 143, 55, PEER)],
    ),
    (
        "bond0-after-block-peer-stops-receiving-step1-+3.24s",
        "802.3ad", "fast", "up", 1, PEER, [("pf0", "up", 1, 63, 143, PEER)],
    ),
    (  # carrier loss: only MII drops, the port states stay 63/63; no active aggregator
        "bond0-partner-lost-carrier-loss",
        "802.3ad", "fast", "down", None, None, [("pf0", "down", 1, 63, 63, PEER)],
    ),
    (
        "bond0-partner-lost-peer-lag-deleted",
        "802.3ad", "fast", "down", None, None, [("pf0", "down", 1, 15, 3, PEER)],
    ),
    (  # recovering: the aggregator's partner is still zero while the port's is known
        "bond0-recovering-peer-stops-sending-step1-+37.11s",
        "802.3ad", "fast", "up", 1, ZERO, [("pf0", "up", 1, 15, 15, PEER)],
    ),
    (
        "bond2-802.3ad-two-slaves-lacp-up",
        "802.3ad", "fast", "up", 1, "32:f6:12:38:46:e6",
        [
            ("lagp0", "up", 1, 63, 63, "32:f6:12:38:46:e6"),
            ("lagp1", "up", 1, 63, 63, "32:f6:12:38:46:e6"),
        ],
    ),
    ("bondzero-802.3ad-no-slaves-up", "802.3ad", "fast", "down", None, None, []),
    ("bondzero-802.3ad-no-slaves-admin-down", "802.3ad", "fast", "down", None, None, []),
    (  # no "802.3ad info" section, no aggregator lines
        "bondab-active-backup",
        "active-backup", None, "up", None, None,
        [("lagp0", "up", None, None, None, None), ("lagp1", "up", None, None, None, None)],
    ),
    (
        "bondslow-802.3ad-lacp_rate-slow-lacp-up",
        "802.3ad", "slow", "up", 1, "32:f6:12:38:46:e6",
        [("lagp0", "up", 1, 61, 61, "32:f6:12:38:46:e6")],
    ),
    (  # "Speed: Unknown": never negotiates
        "bondnospeed-802.3ad-slave-speed-unknown",
        "802.3ad", "fast", "down", None, None, [("lagp1", "down", 1, 71, 0, ZERO)],
    ),
    (
        "bond0-802.3ad-unpatched-netdevsim-slave-no-speed",
        "802.3ad", "fast", "up", 1, ZERO, [("pf0", "up", 1, 79, 0, ZERO)],
    ),
    (
        "bond0-802.3ad-lacp-up-igb",
        "802.3ad", "fast", "up", 1, "52:54:00:12:34:57",
        [("eth0", "up", 1, 63, 63, "52:54:00:12:34:57")],
    ),
    (
        "swbond-peer-802.3ad-lacp-up",
        "802.3ad", "fast", "up", 1, "da:cb:0b:9f:34:6f",
        [("swp1", "up", 1, 63, 63, "da:cb:0b:9f:34:6f")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("capture", "mode", "rate", "mii", "aggregator", "partner_mac", "slaves"), EXPECTED
)
def test_capture_values(
    capture: str,
    mode: str,
    rate: Optional[str],
    mii: str,
    aggregator: Optional[int],
    partner_mac: Optional[str],
    slaves: List[SlaveRow],
) -> None:
    bond = parse(f"proc-net-bonding-{capture}")
    assert bond.name == "bond0"
    assert (bond.mode, bond.lacp_rate, bond.mii_status) == (mode, rate, mii)
    assert (bond.active_aggregator, bond.partner_mac) == (aggregator, partner_mac)
    assert rows(bond) == slaves


@pytest.mark.parametrize("capture", [c for c in PROC_CAPTURES if c != NOT_BONDING])
def test_every_capture_parses(capture: str) -> None:
    text = load_fixture(capture)
    bond = parse_proc_bonding("b", text)
    assert bond.mode in MODES
    assert bond.mii_status in ("up", "down")
    assert [s.name for s in bond.slaves] == re.findall(r"^Slave Interface: (\S+)$", text, re.M)
    for slave in bond.slaves:
        assert slave.mii_status in ("up", "down")
        if bond.mode == "802.3ad":  # captured as root: the details blocks are there
            assert slave.actor_state is not None and slave.partner_state is not None
            assert slave.partner_mac is not None


def test_cat_error_is_not_a_bonding_status() -> None:
    with pytest.raises(BondingParseError, match="not a bonding status"):
        parse(NOT_BONDING)


def _timeline_row(snapshot: str) -> dict:  # type: ignore[type-arg]
    """The 50 ms sysfs sample the lab took when it saved ``snapshot``."""
    scenario = snapshot.split("/")[1]
    seconds = float(re.search(r"snap-\d+-\w+-([+-][\d.]+)s\.txt$", snapshot).group(1))  # type: ignore[union-attr]
    tsv = FIXTURES / "timelines" / scenario / f"{scenario}.{KERNEL}.timeline.tsv"
    with tsv.open(encoding="utf-8") as handle:
        candidates = [
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if abs(float(r["t_s"]) - seconds) < 0.006
        ]
    assert len(candidates) == 1
    return candidates[0]


@pytest.mark.parametrize("snapshot", TIMELINE_SNAPSHOTS)
def test_timeline_snapshot_agrees_with_sysfs_sample(snapshot: str) -> None:
    """Every /proc snapshot of every failure timeline gives what sysfs said at that moment."""
    bond = parse_proc_bonding("bond0", (FIXTURES / snapshot).read_text(encoding="utf-8"))
    row = _timeline_row(snapshot)
    (slave,) = bond.slaves
    assert str(slave.actor_state) == row["actor"]
    assert str(slave.partner_state) == row["partner"]
    assert slave.mii_status == row["mii"]
    assert slave.partner_mac == row["partner_mac"]


def test_timeline_snapshots_are_all_checked() -> None:
    assert len(TIMELINE_SNAPSHOTS) >= 45
    assert {s.split("/")[1] for s in TIMELINE_SNAPSHOTS} == {
        p.name for p in (FIXTURES / "timelines").iterdir()
    }


# --- the unprivileged view and the sysfs merge ----------------------------------------------

LACP_CAPTURES = [
    c
    for c in PROC_CAPTURES
    if c != NOT_BONDING and "active-backup" not in c and "no-slaves" not in c
]


def test_unprivileged_drops_what_the_kernel_hides() -> None:
    text = unprivileged(load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up"))
    for hidden in ("details", "port state", "System priority", "System MAC", "Active Aggregator"):
        assert hidden not in text
    for kept in ("LACP rate: fast", "Slave Interface: pf0", "Aggregator ID: 1", "Churn"):
        assert kept in text
    zero = unprivileged(load_fixture("proc-net-bonding-bondzero-802.3ad-no-slaves-up"))
    assert "no active aggregator" not in zero
    assert zero.endswith("Aggregator selection policy (ad_select): stable\n")


@pytest.mark.parametrize("capture", LACP_CAPTURES)
def test_unprivileged_parses_with_states_unknown(capture: str) -> None:
    full = parse(capture)
    bond = parse_proc_bonding("bond0", unprivileged(load_fixture(capture)))
    assert (bond.mode, bond.lacp_rate, bond.mii_status) == (
        full.mode,
        full.lacp_rate,
        full.mii_status,
    )
    assert (bond.active_aggregator, bond.partner_mac) == (None, None)
    assert [(s.name, s.mii_status, s.aggregator_id) for s in bond.slaves] == [
        (s.name, s.mii_status, s.aggregator_id) for s in full.slaves
    ]
    assert all(
        (s.actor_state, s.partner_state, s.partner_mac) == (None, None, None) for s in bond.slaves
    )
    assert missing_from_proc(bond) == (False, tuple(s.name for s in bond.slaves))
    assert missing_from_proc(full) == (False, ())


# /proc capture, bond sysfs capture, {slave: bonding_slave capture}, expected after the merge
# of the unprivileged view: (active aggregator, [(slave, mii, aggregator, actor, partner)]).
SYSFS_PAIRS = [
    (
        "bond0-802.3ad-lacp-up",
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"pf0": "sysfs-pf0-bonding_slave-802.3ad-lacp-up"},
        (1, [("pf0", "up", 1, 63, 63)]),
    ),
    (
        "bondslow-802.3ad-lacp_rate-slow-lacp-up",
        "sysfs-bondslow-bonding-802.3ad-lacp_rate-slow",
        {"lagp0": "sysfs-lagp0-bonding_slave-802.3ad-lacp_rate-slow"},
        (1, [("lagp0", "up", 1, 61, 61)]),
    ),
    (  # only lagp1's files were captured: lagp0 stays unknown
        "bond2-802.3ad-two-slaves-lacp-up",
        "sysfs-bond2-bonding-802.3ad-two-slaves",
        {"lagp1": "sysfs-lagp1-bonding_slave-802.3ad-two-slaves"},
        (1, [("lagp0", "up", 1, None, None), ("lagp1", "up", 1, 63, 63)]),
    ),
    (
        "bondnospeed-802.3ad-slave-speed-unknown",
        "sysfs-bondzero-bonding-802.3ad-no-slaves",  # ad_aggregator 0: no active aggregator
        {"lagp1": "sysfs-lagp1-bonding_slave-speed-unknown"},
        (None, [("lagp1", "down", 1, 71, 0)]),
    ),
    (
        "bond0-802.3ad-unpatched-netdevsim-slave-no-speed",
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"pf0": "sysfs-pf0-bonding_slave-unpatched-netdevsim"},
        (1, [("pf0", "up", 1, 79, 0)]),
    ),
    (
        "bond0-802.3ad-lacp-up-igb",
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"eth0": "sysfs-eth0-bonding_slave-igb"},
        (1, [("eth0", "up", 1, 63, 63)]),
    ),
    (  # active-backup: the slaves' ad_* files read "N/A", the bond's are empty
        "bondab-active-backup",
        "sysfs-bondab-bonding-active-backup",
        {"lagp0": "sysfs-lagp0-bonding_slave-active-backup"},
        (None, [("lagp0", "up", None, None, None), ("lagp1", "up", None, None, None)]),
    ),
]


@pytest.mark.parametrize(("capture", "bond_sysfs", "slave_sysfs", "expected"), SYSFS_PAIRS)
def test_merge_fills_the_unprivileged_view_from_sysfs_captures(
    capture: str,
    bond_sysfs: str,
    slave_sysfs: dict,  # type: ignore[type-arg]
    expected: Tuple[Optional[int], list],  # type: ignore[type-arg]
) -> None:
    bond = parse_proc_bonding("bond0", unprivileged(load_fixture(f"proc-net-bonding-{capture}")))
    merged = merge_sysfs(
        bond,
        sysfs_capture(bond_sysfs),
        {slave: sysfs_capture(name) for slave, name in slave_sysfs.items()},
    )
    aggregator, slaves = expected
    assert merged.active_aggregator == aggregator
    assert [
        (s.name, s.mii_status, s.aggregator_id, s.actor_state, s.partner_state)
        for s in merged.slaves
    ] == slaves
    assert (merged.mode, merged.lacp_rate, merged.mii_status) == (
        bond.mode,
        bond.lacp_rate,
        bond.mii_status,
    )


def test_merge_without_proc_takes_everything_from_sysfs() -> None:
    merged = merge_sysfs(
        Bond("bond0"),
        sysfs_capture("sysfs-bond0-bonding-802.3ad-lacp-up"),
        {"pf0": sysfs_capture("sysfs-pf0-bonding_slave-802.3ad-lacp-up")},
    )
    assert merged == Bond(
        "bond0", "802.3ad", "fast", "up", 1, (Slave("pf0", "up", 1, 63, 63, None),)
    )
    zero = merge_sysfs(
        Bond("bondzero"), sysfs_capture("sysfs-bondzero-bonding-802.3ad-no-slaves"), {}
    )
    assert zero == Bond("bondzero", "802.3ad", "fast", "down", None, ())
    ab = merge_sysfs(Bond("bondab"), sysfs_capture("sysfs-bondab-bonding-active-backup"), {})
    assert (ab.mode, ab.lacp_rate, [s.name for s in ab.slaves]) == (
        "active-backup",
        None,  # sysfs shows a rate ("slow 0") in every mode
        ["lagp0", "lagp1"],
    )


def test_proc_wins_over_sysfs() -> None:
    bond = parse("proc-net-bonding-bond0-partner-lost-peer-stops-sending")
    merged = merge_sysfs(
        bond,
        {"mode": "balance-rr 0", "lacp_rate": "slow 0", "slaves": "x y", "mii_status": "down"},
        {"pf0": {"mii_status": "down", "ad_actor_oper_port_state": "63"}},
    )
    assert merged == bond


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("63", 63),
        ("63\n", 63),
        (" 0 ", 0),
        ("255", 255),
        ("256", None),
        ("-1", None),
        ("N/A", None),
        ("n/a\n", None),
        ("", None),
        (None, None),
        ("0x3f", None),
        ("63 61", None),
        ("6.3", None),
        ("\u0663", None),  # an Arabic-Indic digit: str.isdigit() but not a kernel number
        ("9" * 40, None),
    ],
)
def test_merge_port_state_values(value: Optional[str], expected: Optional[int]) -> None:
    merged = merge_sysfs(
        Bond("bond0", slaves=(Slave("pf0"),)), {}, {"pf0": {"ad_actor_oper_port_state": value}}
    )
    assert merged.slaves[0].actor_state == expected


@pytest.mark.parametrize(
    ("bond_values", "mode", "rate", "slaves", "aggregator"),
    [
        ({"mode": "802.3ad 4", "lacp_rate": "fast 1"}, "802.3ad", "fast", [], None),
        ({"mode": "balance-alb 6", "lacp_rate": "slow 0"}, "balance-alb", None, [], None),
        ({"mode": "bogus 9", "lacp_rate": "medium 2"}, None, None, [], None),
        ({"mode": "N/A", "lacp_rate": ""}, None, None, [], None),
        ({"slaves": "pf0 pf1 pf0\n"}, None, None, ["pf0", "pf1"], None),
        ({"slaves": "", "ad_aggregator": "0"}, None, None, [], None),
        ({"ad_aggregator": "7"}, None, None, [], 7),
        ({"ad_aggregator": "65536"}, None, None, [], None),
        ({"mode": None, "slaves": None, "ad_aggregator": None}, None, None, [], None),
    ],
)
def test_merge_bond_values(
    bond_values: dict,  # type: ignore[type-arg]
    mode: Optional[str],
    rate: Optional[str],
    slaves: List[str],
    aggregator: Optional[int],
) -> None:
    merged = merge_sysfs(Bond("bond0"), bond_values, {})
    assert (merged.mode, merged.lacp_rate, merged.active_aggregator) == (mode, rate, aggregator)
    assert [s.name for s in merged.slaves] == slaves


def test_merge_slave_mii_keeps_two_word_states() -> None:
    merged = merge_sysfs(
        Bond("bond0", slaves=(Slave("pf0"),)), {}, {"pf0": {"mii_status": "going back\n"}}
    )
    assert merged.slaves[0].mii_status == "going back"
    assert merged.slaves[0].mii_up is False


def test_sysfs_gaps() -> None:
    full = parse("proc-net-bonding-bond0-802.3ad-lacp-up")
    assert sysfs_gaps(full) == ((), {})
    unpriv = parse_proc_bonding(
        "bond0", unprivileged(load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up"))
    )
    assert sysfs_gaps(unpriv) == (
        (),
        {"pf0": ("ad_actor_oper_port_state", "ad_partner_oper_port_state")},
    )
    assert sysfs_gaps(Bond("b")) == (("mode", "lacp_rate", "slaves", "mii_status"), {})
    assert sysfs_gaps(Bond("b"), everything=True)[0][-1] == "ad_aggregator"
    ab = parse("proc-net-bonding-bondab-active-backup")
    assert sysfs_gaps(ab) == ((), {})  # not 802.3ad: the port states would read N/A
    zero = parse("proc-net-bonding-bondzero-802.3ad-no-slaves-up")
    assert sysfs_gaps(zero) == (("slaves",), {})
    fresh = Bond("b", "802.3ad", "fast", "up", slaves=(Slave("pf0"),))
    assert sysfs_gaps(fresh, everything=True)[1] == {
        "pf0": (
            "mii_status",
            "ad_actor_oper_port_state",
            "ad_partner_oper_port_state",
            "ad_aggregator_id",
        )
    }


# --- older kernels (synthetic layouts, see fixtures/synthetic/README.md) --------------------


def test_rhel5_2_6_18_layout() -> None:
    bond = parse_proc_bonding(
        "bond0", load_fixture("synthetic/proc-net-bonding-SYNTHETIC-rhel5-2.6.18-802.3ad.txt")
    )
    assert (bond.mode, bond.lacp_rate, bond.mii_status) == ("802.3ad", "fast", "up")
    assert (bond.active_aggregator, bond.partner_mac) == (2, "02:00:00:00:0a:01")
    assert rows(bond) == [
        ("eth0", "up", 2, None, None, None),
        ("eth1", "down", None, None, None, None),
    ]
    assert missing_from_proc(bond) == (False, ("eth0", "eth1"))


def test_rhel7_3_10_layout() -> None:
    bond = parse_proc_bonding(
        "bond1",
        load_fixture("synthetic/proc-net-bonding-SYNTHETIC-rhel7-3.10-802.3ad-partner-lost.txt"),
    )
    assert (bond.name, bond.mode, bond.lacp_rate) == ("bond1", "802.3ad", "slow")
    assert (bond.active_aggregator, bond.partner_mac) == (1, ZERO)
    assert rows(bond) == [("ens1f0", "up", 1, None, None, None)]


def test_rhel8_4_18_layout() -> None:
    bond = parse_proc_bonding(
        "bond0", load_fixture("synthetic/proc-net-bonding-SYNTHETIC-rhel8-4.18-802.3ad.txt")
    )
    assert (bond.mode, bond.lacp_rate, bond.active_aggregator) == ("802.3ad", "fast", 1)
    assert rows(bond) == [("ens2f0np0", "up", 1, 63, 61, "02:00:00:00:0a:21")]


# --- tolerance ------------------------------------------------------------------------------

HEALTHY = "proc-net-bonding-bond0-802.3ad-lacp-up"


@pytest.mark.parametrize("capture", [HEALTHY, "proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up"])
def test_crlf_tabs_and_spaces_change_nothing(capture: str) -> None:
    text = load_fixture(capture)
    expected = parse_proc_bonding("bond0", text)
    assert parse_proc_bonding("bond0", text.replace("\n", "\r\n")) == expected
    assert parse_proc_bonding("bond0", text.replace("    ", "\t")) == expected
    assert parse_proc_bonding("bond0", text.replace(": ", ":\t  ")) == expected
    spaced = "\n".join(f"  {line}   " for line in text.splitlines())
    assert parse_proc_bonding("bond0", spaced) == expected
    squeezed = "\n".join(line.strip() for line in text.splitlines())  # details unindented
    assert parse_proc_bonding("bond0", squeezed) == expected


def test_unknown_lines_and_reordering_within_sections() -> None:
    text = load_fixture(HEALTHY)
    head, _, slave = text.partition("\nSlave Interface: pf0\n")
    bond_lines = head.splitlines()
    slave_lines = slave.splitlines()
    details = slave_lines.index("details actor lacp pdu:")
    shuffled = [
        "Vendor Thing: 42",
        "no colon here",
        ":",
        "LACP rate: fast",
        *reversed(bond_lines),
        "Slave Interface: pf0",
        "Future Line: 1",
        *slave_lines[details:],  # details blocks first
        *reversed(slave_lines[:details]),
    ]
    assert parse_proc_bonding("bond0", "\n".join(shuffled)) == parse_proc_bonding("bond0", text)


def test_bond_only_labels_after_a_slave_still_belong_to_the_bond() -> None:
    bond = parse_proc_bonding(
        "b",
        "Slave Interface: pf0\nMII Status: up\n"
        "Bonding Mode: IEEE 802.3ad Dynamic link aggregation\nLACP rate: slow\n",
    )
    assert (bond.mode, bond.lacp_rate, bond.mii_status) == ("802.3ad", "slow", None)
    assert rows(bond) == [("pf0", "up", None, None, None, None)]


def test_first_of_repeated_labels_wins_and_mii_is_per_section() -> None:
    bond = parse_proc_bonding(
        "b",
        "Bonding Mode: load balancing (xor)\nMII Status: down\nMII Status: up\n"
        "Bonding Mode: adaptive load balancing\n"
        "Slave Interface: a\nMII Status: up\nMII Status: down\n"
        "Slave Interface: b\n"
        "Slave Interface:\nMII Status: up\n",  # no name: dropped
    )
    assert (bond.mode, bond.mii_status) == ("balance-xor", "down")
    assert rows(bond) == [("a", "up", None, None, None, None), ("b", None, None, None, None, None)]


def test_detail_labels_outside_a_details_block_are_not_port_states() -> None:
    bond = parse_proc_bonding(
        "b",
        "Bonding Mode: IEEE 802.3ad Dynamic link aggregation\n"
        "Slave Interface: pf0\n"
        "port state: 63\n"  # no block header
        "details actor lacp pdu:\n    port state: 61\nAggregator ID: 4\n"
        "    port state: 1\n"  # after the block ended
        "details partner lacp pdu:\n    system mac address: AA:BB:CC:DD:EE:FF\n",
    )
    assert rows(bond) == [("pf0", None, 4, 61, None, "aa:bb:cc:dd:ee:ff")]


def test_case_is_folded() -> None:
    text = (
        load_fixture(HEALTHY)
        .replace("MII Status: up", "MII Status: UP")
        .replace("LACP rate: fast", "LACP rate: FAST")
        .replace("4e:0a:06:1c:16:6d", "4E:0A:06:1C:16:6D")
        .replace("Bonding Mode: IEEE", "BONDING MODE: ieee")
    )
    assert parse_proc_bonding("bond0", text) == parse("proc-net-bonding-bond0-802.3ad-lacp-up")


@pytest.mark.parametrize(
    ("actor", "expected"),
    [("0", 0), ("255", 255), ("256", None), ("-1", None), ("63.0", None), ("abc", None),
     ("", None), ("9" * 5000, None), ("6 3", None), ("\u0666\u0663", None)],
)  # fmt: skip
def test_bad_numbers_are_none(actor: str, expected: Optional[int]) -> None:
    text = load_fixture(HEALTHY).replace("    port state: 63", f"    port state: {actor}", 1)
    assert parse_proc_bonding("bond0", text).slaves[0].actor_state == expected


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ("Aggregator ID: 65535", "aggregator_id", 65535),
        ("Aggregator ID: 65536", "aggregator_id", None),
        ("Aggregator ID: N/A", "aggregator_id", None),
        ("Aggregator ID: -3", "aggregator_id", None),
        ("MII Status: going back", "mii_status", "going back"),
        ("MII Status:", "mii_status", None),
    ],
)
def test_slave_fields(line: str, field: str, expected: object) -> None:
    bond = parse_proc_bonding("b", f"Bonding Mode: x\nSlave Interface: pf0\n{line}\n")
    assert getattr(bond.slaves[0], field) == expected


@pytest.mark.parametrize(
    "mac", ["4e:0a:06:1c:16", "4e:0a:06:1c:16:6d:00", "4e-0a-06-1c-16-6d", "zz:0a:06:1c:16:6d", ""]
)
def test_malformed_macs_are_none(mac: str) -> None:
    text = load_fixture(HEALTHY).replace(
        f"system mac address: {PEER}", f"system mac address: {mac}"
    )
    text = text.replace(f"Partner Mac Address: {PEER}", f"Partner Mac Address: {mac}")
    bond = parse_proc_bonding("bond0", text)
    assert (bond.partner_mac, bond.slaves[0].partner_mac) == (None, None)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("load balancing (round-robin)", "balance-rr"),
        ("fault-tolerance (active-backup)", "active-backup"),
        ("fault-tolerance (active-backup) (fail_over_mac active)", "active-backup"),
        ("fault-tolerance (active-backup) (fail_over_mac follow)", "active-backup"),
        ("load balancing (xor)", "balance-xor"),
        ("fault-tolerance (broadcast)", "broadcast"),
        ("IEEE 802.3ad Dynamic link aggregation", "802.3ad"),
        ("IEEE  802.3ad   Dynamic link aggregation", "802.3ad"),
        ("transmit load balancing", "balance-tlb"),
        ("adaptive load balancing", "balance-alb"),
        ("802.3ad", "802.3ad"),  # sysfs spelling, should a vendor print it
        ("balance-rr 0", "balance-rr"),
        ("unknown", None),  # bond_mode_name() for an out-of-range mode
        ("load balancing", None),
        ("", None),
    ],
)
def test_modes(value: str, mode: Optional[str]) -> None:
    assert parse_proc_bonding("b", f"Bonding Mode: {value}\n").mode == mode


@pytest.mark.parametrize("rate", ["medium", "", "fast slow"])
def test_unknown_lacp_rate_is_none(rate: str) -> None:
    assert parse_proc_bonding("b", f"Bonding Mode: x\nLACP rate: {rate}\n").lacp_rate is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "cat: /proc/net/bonding/bond0: No such file or directory\n",
        "Ethernet Channel Bonding Driver: v6.12.95+deb12-amd64\n",  # truncated after the header
        "MII Status: up\nLACP rate: fast\n",
        "\x00\x01\ufffd\ufffd",
        "Slave  Interfac: pf0\n",
    ],
)
def test_not_a_bonding_status(text: str) -> None:
    with pytest.raises(BondingParseError):
        parse_proc_bonding("bond0", text)


def test_minimal_texts() -> None:
    assert parse_proc_bonding("b", "Bonding Mode: adaptive load balancing") == Bond(
        "b", "balance-alb"
    )
    assert parse_proc_bonding("b", "Slave Interface: pf0 extra words") == Bond(
        "b", slaves=(Slave("pf0"),)
    )
