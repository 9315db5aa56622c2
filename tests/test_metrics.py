"""The textfile metrics, read back with prometheus_client's own parser, and their atomic write."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_relay_support import PROC_DOWN, World, relayed

from pfrelay import metrics
from pfrelay.relay import PfReport

PER_PF = {
    "pf_status_relay_monitored": "gauge",
    "pf_status_relay_lacp_up": "gauge",
    "pf_status_relay_vfs_disabled": "gauge",
    "pf_status_relay_lacp_transitions": "counter",  # the parser drops "_total" from the family
    "pf_status_relay_actor_port_state": "gauge",
    "pf_status_relay_partner_port_state": "gauge",
}
GLOBAL = {
    "pf_status_relay_last_cycle_timestamp_seconds": "gauge",
    "pf_status_relay_cycle_duration_seconds": "gauge",
}

Samples = Dict[Tuple[str, str], float]


def three_pfs(tmp_path: Path) -> Tuple[World, List[PfReport]]:
    """pf0 up, pf1 down with its auto VFs disabled, pf2 not monitored (no such interface)."""
    world = World(tmp_path, pfs=["pf0", "pf1", "pf2"])
    world.add_pf("pf0")
    world.add_pf("pf1", bond="bond1", ifindex=3)
    world.cycle()
    world.lacp(False, pf="pf1", bond="bond1")
    reports = world.cycle()
    return world, reports


def parse(text: str) -> Tuple[Dict[str, str], Samples, Dict[str, Any]]:
    """(family -> type, (sample name, interface label) -> value, family -> documentation)."""
    types: Dict[str, str] = {}
    docs: Dict[str, Any] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        docs[family.name] = family.documentation
        for sample in family.samples:
            assert set(sample.labels) <= {"interface"}
            key = (sample.name, sample.labels.get("interface", ""))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return types, samples, docs


def test_families_types_labels_and_values(tmp_path: Path) -> None:
    world, reports = three_pfs(tmp_path)
    text = metrics.render(reports, world.relay.transitions(), 1764340000.25, 0.0125)
    types, samples, docs = parse(text)
    assert types == {**PER_PF, **GLOBAL}
    assert all(docs.values())
    assert samples == {
        ("pf_status_relay_monitored", "pf0"): 1,
        ("pf_status_relay_monitored", "pf1"): 1,
        ("pf_status_relay_monitored", "pf2"): 0,
        ("pf_status_relay_lacp_up", "pf0"): 1,
        ("pf_status_relay_lacp_up", "pf1"): 0,  # pf2: absent, not 0 (unknown is not down)
        ("pf_status_relay_vfs_disabled", "pf0"): 0,
        ("pf_status_relay_vfs_disabled", "pf1"): len(relayed()),
        ("pf_status_relay_vfs_disabled", "pf2"): 0,
        ("pf_status_relay_lacp_transitions_total", "pf0"): 1,
        ("pf_status_relay_lacp_transitions_total", "pf1"): 2,  # up, then down
        ("pf_status_relay_lacp_transitions_total", "pf2"): 0,
        ("pf_status_relay_actor_port_state", "pf0"): 63,
        ("pf_status_relay_actor_port_state", "pf1"): 79,
        ("pf_status_relay_partner_port_state", "pf0"): 63,
        ("pf_status_relay_partner_port_state", "pf1"): 0,
        ("pf_status_relay_last_cycle_timestamp_seconds", ""): 1764340000.25,
        ("pf_status_relay_cycle_duration_seconds", ""): 0.0125,
    }


def test_text_is_exposition_format(tmp_path: Path) -> None:
    world, reports = three_pfs(tmp_path)
    text = metrics.render(reports, world.relay.transitions(), 1764340000.0, 0.5)
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    for name, kind in {**PER_PF, **GLOBAL}.items():
        full = f"{name}_total" if kind == "counter" else name
        help_at = lines.index(next(line for line in lines if line.startswith(f"# HELP {full} ")))
        assert lines[help_at + 1] == f"# TYPE {full} {kind}"
    assert 'pf_status_relay_monitored{interface="pf2"} 0' in lines
    assert "pf_status_relay_last_cycle_timestamp_seconds 1764340000" in lines
    assert "pf_status_relay_cycle_duration_seconds 0.5" in lines


def test_no_pfs_still_has_the_cycle_metrics() -> None:
    types, samples, _ = parse(metrics.render([], {}, 12.0, 0.0))
    assert types == {**PER_PF, **GLOBAL}
    assert samples == {
        ("pf_status_relay_last_cycle_timestamp_seconds", ""): 12.0,
        ("pf_status_relay_cycle_duration_seconds", ""): 0.0,
    }


def test_unknown_verdict_has_no_lacp_up_sample(tmp_path: Path) -> None:
    from fakehost import unprivileged

    world = World(tmp_path)
    world.add_pf()
    world.host.set_proc("bond0", unprivileged(PROC_DOWN))
    world.host.set_slave("pf0", actor="N/A", partner="N/A")
    reports = world.cycle()
    _, samples, _ = parse(metrics.render(reports, world.relay.transitions(), 1.0, 0.0))
    assert samples[("pf_status_relay_monitored", "pf0")] == 1
    assert ("pf_status_relay_lacp_up", "pf0") not in samples
    assert ("pf_status_relay_actor_port_state", "pf0") not in samples


def test_label_values_are_escaped(tmp_path: Path) -> None:
    world = World(tmp_path, pfs=['we"ird\\pf'])
    reports = world.cycle()
    _, samples, _ = parse(metrics.render(reports, world.relay.transitions(), 1.0, 0.0))
    assert samples[("pf_status_relay_monitored", 'we"ird\\pf')] == 0


# ------------------------------------------------------------------------------- write


def test_write_is_atomic_and_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pf_status_relay.prom"
    target.write_text("old\n")
    old_inode = target.stat().st_ino
    seen: List[Tuple[str, str, str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # At the rename the temporary file is complete, beside the target, and the target
        # still holds the old text: a reader sees one or the other, never a mix.
        seen.append((Path(src).read_text(), Path(dst).read_text(), str(Path(src).parent)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    old_umask = os.umask(0o077)
    try:
        metrics.write(target, "new 1\n")
    finally:
        os.umask(old_umask)
    assert seen == [("new 1\n", "old\n", str(tmp_path))]
    assert target.read_text() == "new 1\n"
    assert target.stat().st_ino != old_inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pf_status_relay.prom"]


def test_write_failure_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m.prom"

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        metrics.write(target, "x 1\n")
    assert list(tmp_path.iterdir()) == []


def test_write_into_a_missing_directory_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        metrics.write(tmp_path / "nowhere" / "m.prom", "x 1\n")
    assert list(tmp_path.iterdir()) == []


def test_written_file_parses(tmp_path: Path) -> None:
    world, reports = three_pfs(tmp_path)
    target = tmp_path / "textfile" / "pf_status_relay.prom"
    target.parent.mkdir()
    metrics.write(target, metrics.render(reports, world.relay.transitions(), 5.0, 0.1))
    types, samples, _ = parse(target.read_text())
    assert types == {**PER_PF, **GLOBAL}
    assert samples[("pf_status_relay_vfs_disabled", "pf1")] == len(relayed())
