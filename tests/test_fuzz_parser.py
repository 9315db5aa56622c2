"""Property tests of the parser alone: whatever /proc/net/bonding or sysfs holds, the outcome
is a sound ``Bond`` or ``BondingParseError``, nothing else. Inputs start from the real captures
and get broken; ``tests/test_fuzz_read_path.py`` takes them through the files and the relay."""

from __future__ import annotations

import re
import time
from typing import List, Optional

from fakehost import FIXTURES, KERNEL, RESHAPES, load_fixture, reshape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pfrelay.bonding import MODES, Bond, BondingParseError, Slave, merge_sysfs, parse_proc_bonding

TEXTS = [
    load_fixture(str(p.relative_to(FIXTURES)))
    for p in sorted(FIXTURES.glob(f"proc-net-bonding-*.{KERNEL}.txt"))
    + sorted(FIXTURES.glob("synthetic/*.txt"))
]
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Replacements for a number: out of range, negative, huge, not a number, another script.
BAD_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "-0", "1e3", "0x3f", "6 3", "63.0", "N/A", "\u0663", "+63", "٣٣", "NaN"]),
)
LABELS = [
    "Bonding Mode",
    "LACP rate",
    "MII Status",
    "Active Aggregator Info",
    "\tAggregator ID",
    "\tPartner Mac Address",
    "Slave Interface",
    "Aggregator ID",
    "details actor lacp pdu",
    "details partner lacp pdu",
    "    port state",
    "    system mac address",
    "port state",
    "Speed",
    "Unknown Label",
]
VALUES = st.one_of(
    BAD_NUMBERS,
    st.sampled_from(
        [
            "IEEE 802.3ad Dynamic link aggregation",
            "fault-tolerance (active-backup) (fail_over_mac active)",
            "unknown",
            "fast",
            "slow",
            "up",
            "DOWN",
            "pf0",
            "pf0 pf1",
            "4E:0A:06:1C:16:6D",
            "00:00:00:00:00:00",
            "4e:0a:06:1c:16",
        ]
    ),
    st.text(max_size=20),
)


def outcome(text: str) -> Optional[Bond]:
    """Parse; a ``BondingParseError`` is None; any other exception fails the test."""
    try:
        bond = parse_proc_bonding("bond0", text)
    except BondingParseError:
        return None
    check(bond)
    return bond


def check(bond: Bond) -> None:
    assert isinstance(bond, Bond) and bond.name == "bond0"
    assert bond.mode is None or bond.mode in MODES
    assert bond.lacp_rate in (None, "fast", "slow")
    assert bond.active_aggregator is None or 0 <= bond.active_aggregator <= 0xFFFF
    assert bond.partner_mac is None or MAC.match(bond.partner_mac)
    _word(bond.mii_status)
    for slave in bond.slaves:
        assert isinstance(slave, Slave)
        assert slave.name and slave.name == slave.name.strip() and " " not in slave.name
        _word(slave.mii_status)
        for state in (slave.actor_state, slave.partner_state):
            assert state is None or 0 <= state <= 255
        assert slave.aggregator_id is None or 0 <= slave.aggregator_id <= 0xFFFF
        assert slave.partner_mac is None or MAC.match(slave.partner_mac)


def _word(value: Optional[str]) -> None:
    assert value is None or (value and value == value.strip() and value == value.lower())


@st.composite
def broken_capture(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from([*RESHAPES, "number", "junk", "crlf", "strip"]))
        if op in RESHAPES:
            lines = reshape(draw, lines, op, i)
        elif op == "number":
            lines[i] = re.sub(r"\d+", draw(BAD_NUMBERS).replace("\\", ""), lines[i], count=1)
        elif op == "junk":
            lines.insert(i, draw(st.text(max_size=40)) + "\n")
        elif op == "crlf":
            lines[i] = lines[i].replace("\n", "\r\n")
        else:  # strip
            lines[i] = lines[i].strip() + "\n"
    return "".join(lines)


@FUZZ
@given(broken_capture())
def test_broken_captures(text: str) -> None:
    outcome(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TEXTS), st.binary(max_size=64), st.integers(min_value=0, max_value=4000))
def test_non_utf8_bytes_decoded_with_replace(text: str, junk: bytes, at: int) -> None:
    raw = text.encode()
    outcome((raw[:at] + junk + raw[at:]).decode("utf-8", "replace"))


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(LABELS), VALUES), max_size=30))
def test_label_soup(pairs: List[tuple]) -> None:  # type: ignore[type-arg]
    bond = outcome("\n".join(f"{label}: {value}" for label, value in pairs))
    names = [label for label, _ in pairs]
    if "Bonding Mode" in names or "Slave Interface" in names:
        assert bond is not None
    else:
        assert bond is None


SYSFS_VALUES = st.one_of(st.none(), VALUES, st.sampled_from(["802.3ad 4", "fast 1", "N/A\n"]))


@FUZZ
@given(
    st.sampled_from(TEXTS),
    st.booleans(),
    st.dictionaries(
        st.sampled_from(["mode", "slaves", "lacp_rate", "mii_status", "ad_aggregator"]),
        SYSFS_VALUES,
    ),
    st.dictionaries(
        st.sampled_from(["pf0", "lagp0", "lagp1", "eth0", "x"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "mii_status",
                    "ad_actor_oper_port_state",
                    "ad_partner_oper_port_state",
                    "ad_aggregator_id",
                ]
            ),
            SYSFS_VALUES,
        ),
    ),
)
def test_merge_sysfs_with_anything(
    text: str,
    with_proc: bool,
    bond_values: dict,  # type: ignore[type-arg]
    slave_values: dict,  # type: ignore[type-arg]
) -> None:
    base = (outcome(text) if with_proc else None) or Bond("bond0")
    merged = merge_sysfs(base, bond_values, slave_values)
    check(merged)
    for key in ("mode", "lacp_rate", "mii_status", "active_aggregator", "partner_mac"):
        if getattr(base, key) is not None:
            assert getattr(merged, key) == getattr(base, key)
    if base.slaves:
        assert [s.name for s in merged.slaves] == [s.name for s in base.slaves]


def test_ten_megabytes() -> None:
    """Big inputs parse in linear time: a capture repeated, one long line, a flood of labels."""
    healthy = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")
    size = 10 * 1024 * 1024
    started = time.monotonic()
    bond = outcome((healthy * (size // len(healthy) + 1))[:size])
    assert bond is not None and len(bond.slaves) > 5000
    assert outcome("Bonding Mode: " + "x" * size) == Bond("bond0")
    assert outcome("Slave Interface: pf0\n" + "port state: 1\n" * (size // 14)) is not None
    assert outcome("\x00\ufffd" * (size // 2)) is None
    assert time.monotonic() - started < 15
