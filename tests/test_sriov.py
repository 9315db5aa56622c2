"""Parsing ``ip -j link show`` into VFs, over the real captures and broken inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfrelay.sriov import VF, LinkState, PfLink, VfListError, missing_vfs, parse_link_show

FIXTURES = Path(__file__).parent / "fixtures"
KERNEL = "6.12.95+deb12-amd64"


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("ip-j-link-show-pf0-vfs-auto", "auto"),
        ("ip-j-link-show-pf0-vfs-disable", "disable"),
        ("ip-j-link-show-pf0-vfs-enable", "enable"),
    ],
)
def test_captures(name: str, state: str) -> None:
    text = (FIXTURES / f"{name}.{KERNEL}.txt").read_text()
    link = parse_link_show("pf0", text)
    assert link.ifindex == 2
    assert [v.vf for v in link.vfs] == list(range(8))
    assert {v.link_state for v in link.vfs} == {LinkState(state)}


def test_mixed_detail_capture() -> None:
    text = (FIXTURES / f"ip-d-j-p-link-show-pf0-vfs-mixed.{KERNEL}.txt").read_text()
    states = {v.vf: v.link_state for v in parse_link_show("pf0", text).vfs}
    assert set(states.values()) == {LinkState.AUTO, LinkState.ENABLE, LinkState.DISABLE}


def test_no_vfs_capture() -> None:
    text = (FIXTURES / f"ip-d-j-link-show-pf0-numvfs-0.{KERNEL}.txt").read_text()
    assert parse_link_show("pf0", text).vfs == ()


def test_unknown_state_is_none() -> None:
    text = json.dumps([{"ifindex": 5, "vfinfo_list": [{"vf": 0, "link_state": "weird"}]}])
    assert parse_link_show("p", text).vfs == (VF(0, None),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{}",
        "[]",
        "[1]",
        '[{"vfinfo_list": {}}]',
        '[{"vfinfo_list": [1]}]',
        '[{"vfinfo_list": [{"vf": "0"}]}]',
        '[{"vfinfo_list": [{"vf": -1}]}]',
        '[{"vfinfo_list": [{"vf": true}]}]',
    ],
)
def test_broken_output(text: str) -> None:
    with pytest.raises(VfListError):
        parse_link_show("pf0", text)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(["vf", "link_state", "vfinfo_list", "ifindex", "address"]),
                c,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_is_a_record_or_our_error(doc: object) -> None:
    try:
        link = parse_link_show("pf0", json.dumps(doc))
    except VfListError:
        return
    assert isinstance(link, PfLink)


def test_truncation() -> None:
    link = PfLink("pf0", 2, tuple(VF(n, LinkState.AUTO) for n in range(2)))
    assert missing_vfs(link, 224) == 222
    assert missing_vfs(link, 2) == 0
    assert missing_vfs(link, None) == 0
