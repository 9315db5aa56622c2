"""The ledger file: round trip, atomic 0600 writes, corrupt input, stale entries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pfrelay import ledger as ledgers
from pfrelay.ledger import Identity, Ledger, LedgerError, PfEntry


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "state.json"
    ledger = Ledger({"pf0": PfEntry(frozenset({1, 3}), 2, 8)}, "boot-1")
    ledgers.save(path, ledger)
    assert ledgers.load(path) == ledger
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert ledgers.load(tmp_path / "none.json") == Ledger()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"version": 2, "pfs": {}}',
        '{"version": 1}',
        '{"version": 1, "pfs": {"pf0": {}}}',
        '{"version": 1, "pfs": {"pf0": {"disabled": ["x"]}}}',
        '{"version": 1, "pfs": {"pf0": {"disabled": [-1]}}}',
    ],
)
def test_corrupt(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(LedgerError, match=str(path)):
        ledgers.load(path)


def test_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match="cannot write"):
        ledgers.save(blocker / "state.json", Ledger())


def test_unreadable_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()
    with pytest.raises(LedgerError, match="cannot read"):
        ledgers.load(path)


def test_empty_entries_are_dropped() -> None:
    ledger = (
        Ledger()
        .with_pf("pf0", PfEntry(frozenset({1}), 2, 8))
        .with_pf("pf0", PfEntry(frozenset(), 2, 8))
    )
    assert ledger.pfs == {}


def test_stale_entries() -> None:
    ledger = Ledger(
        {
            "a": PfEntry(frozenset({1}), 2, 8),
            "b": PfEntry(frozenset({1}), 3, 8),
            "c": PfEntry(frozenset({0}), 4, 8),
            "d": PfEntry(frozenset({0}), 5, 8, 1001),
            "e": PfEntry(frozenset({0}), 6, 8, 1002),
        },
        "boot-1",
    )
    now = {
        "a": Identity(2, 8),
        "b": Identity(9, 8),
        "c": Identity(4, 4),
        "d": Identity(5, 8, 2001),  # re-created with the same count: new sysfs entries
        "e": Identity(None, None, None),  # nothing readable proves nothing
    }
    stale = dict(ledgers.stale_entries(ledger, "boot-1", now))
    assert set(stale) == {"b", "c", "d"}
    assert "re-created (ifindex 3 -> 9)" in stale["b"]
    assert "sriov_numvfs 8 -> 4" in stale["c"]
    assert "VFs were re-created" in stale["d"]
    other_boot = ledgers.stale_entries(ledger, "boot-2", {})
    assert {pf for pf, _ in other_boot} == {"a", "b", "c", "d", "e"}


def test_an_unknown_guard_never_overwrites_a_known_one() -> None:
    # Issue 12 #7: one unreadable sriov_numvfs must not erase the guard.
    entry = PfEntry(frozenset({1}), 2, 8, 1001)
    assert entry.updated(frozenset({1, 2}), None, None, None) == PfEntry(
        frozenset({1, 2}), 2, 8, 1001
    )
    assert entry.updated(frozenset(), 3, 4, 5) == PfEntry(frozenset(), 3, 4, 5)


def test_vfs_id_round_trips_and_old_files_load() -> None:
    ledger = Ledger({"pf0": PfEntry(frozenset({1}), 2, 8, 77)}, "b")
    assert ledgers.parse(ledger.to_json()) == ledger
    old = '{"version": 1, "boot_id": "b", "pfs": {"pf0": {"ifindex": 2, "numvfs": 8, "disabled": [1]}}}'
    assert ledgers.parse(old).pfs["pf0"] == PfEntry(frozenset({1}), 2, 8, None)


def test_follow_moves_entries_to_the_renamed_pf() -> None:
    ledger = Ledger(
        {
            "old0": PfEntry(frozenset({1}), 2, 8),  # renamed: ifindex 2 is now new0
            "pf1": PfEntry(frozenset({2}), 3, 8),  # where it was
            "gone": PfEntry(frozenset({3}), 9, 8),  # neither ifindex nor name exist
            "recreated": PfEntry(frozenset({4}), 10, 8),  # name exists, other ifindex
            "noindex": PfEntry(frozenset({5})),
        }
    )
    names = {1: "lo", 2: "new0", 3: "pf1", 11: "recreated"}
    followed, renames, gone, dropped = ledgers.follow(ledger, names)
    assert dropped == []
    assert renames == [("old0", "new0")]
    assert gone == ["gone"]
    assert set(followed.pfs) == {"new0", "pf1", "gone", "recreated", "noindex"}
    assert followed.pfs["new0"] == PfEntry(frozenset({1}), 2, 8)


def test_follow_swapped_names_and_a_merge() -> None:
    ledger = Ledger({"a": PfEntry(frozenset({1}), 2, 8), "b": PfEntry(frozenset({2}), 3, 8)})
    followed, renames, _, _ = ledgers.follow(ledger, {2: "b", 3: "a"})
    assert followed.pfs == {"b": PfEntry(frozenset({1}), 2, 8), "a": PfEntry(frozenset({2}), 3, 8)}
    assert sorted(renames) == [("a", "b"), ("b", "a")]
    # an entry already under the new name (an old relay's) is merged, not lost
    ledger = Ledger({"a": PfEntry(frozenset({1}), 2, 8), "b": PfEntry(frozenset({2}))})
    followed, _, _, _ = ledgers.follow(ledger, {2: "b"})
    assert followed.disabled("b") == {1, 2}
    assert followed.pfs["b"].ifindex == 2  # the guard the moved entry knew is kept
    # ... unless the moved entry names other VFs than the ones there now: dropped, not merged
    ledger = Ledger({"a": PfEntry(frozenset({3}), 2, 4), "b": PfEntry(frozenset({1}), 2, 2)})
    followed, renames, _, dropped = ledgers.follow(ledger, {2: "b"})
    assert followed.pfs == {"b": PfEntry(frozenset({1}), 2, 2)}
    assert dropped == [("b", "the VFs were re-created (sriov_numvfs 4 -> 2)")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": 1, "pfs": {"pf0": {"ifindex": 2, "disabled": [0, 1, 5', {"pf0": {0, 1, 5}}),
        (
            '{"pfs": {"a": {"disabled": [1]}, "b": {"numvfs": 8, "disabled": []}, "c": {"disabled": [2,3]}}}',
            {"a": {1}, "c": {2, 3}},
        ),
        ("[" * 100_000, {}),
        ("\x00\xff garbage", {}),
        ('{"../../x": {"disabled": [1]}}', {}),
    ],
)
def test_salvage_what_a_damaged_ledger_still_says(text: str, expected: dict) -> None:
    assert ledgers.salvage(text) == {pf: frozenset(v) for pf, v in expected.items()}


def test_parse_rejects_deep_nesting_in_one_line() -> None:
    with pytest.raises(LedgerError, match="nested too deeply"):
        ledgers.parse("[" * 100_000)


def test_set_aside_keeps_the_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{garbage")
    moved = ledgers.set_aside(path, now=0.0)
    assert moved.name == "state.json.bad-19700101T000000Z"
    assert moved.read_text() == "{garbage" and not path.exists()


def test_save_leaves_no_temp_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(LedgerError, match="No space left"):
        ledgers.save(tmp_path / "state.json", Ledger())
    assert list(tmp_path.iterdir()) == []
