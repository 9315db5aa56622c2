"""The ledger file: round trip, atomic 0600 writes, corrupt input, stale entries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pfrelay import ledger as ledgers
from pfrelay.ledger import Ledger, LedgerError, PfEntry


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
        },
        "boot-1",
    )
    stale = dict(ledgers.stale_entries(ledger, "boot-1", {"a": (2, 8), "b": (9, 8), "c": (4, 4)}))
    assert set(stale) == {"b", "c"}
    assert "re-created (ifindex 3 -> 9)" in stale["b"]
    assert "sriov_numvfs 8 -> 4" in stale["c"]
    other_boot = ledgers.stale_entries(ledger, "boot-2", {})
    assert {pf for pf, _ in other_boot} == {"a", "b", "c"}


def test_save_leaves_no_temp_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(LedgerError, match="No space left"):
        ledgers.save(tmp_path / "state.json", Ledger())
    assert list(tmp_path.iterdir()) == []
