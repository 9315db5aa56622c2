"""Prometheus metrics for node_exporter's textfile collector, written atomically each cycle.

The exposition text is written by hand (the format is small and stable, and the daemon stays
free of a client library); the tests parse it with ``prometheus_client``'s own parser. The file
is replaced with a rename, so the collector never reads a half-written file; the temp file is
fsynced and chmod-ed through its fd and the directory fsynced after the rename. Off unless
``metrics_file`` is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from pfrelay import safefile
from pfrelay.lacp import Lacp
from pfrelay.relay import PfReport

_HELP = {
    "pf_status_relay_monitored": ("gauge", "1 when the PF is the only slave of an 802.3ad bond."),
    "pf_status_relay_lacp_up": ("gauge", "1 when LACP is up, 0 when down; absent when unknown."),
    "pf_status_relay_vfs_disabled": ("gauge", "VFs the relay disabled (in its ledger)."),
    "pf_status_relay_lacp_transitions_total": ("counter", "LACP verdict changes seen since start."),
    "pf_status_relay_actor_port_state": ("gauge", "802.1AX actor port state byte of the PF."),
    "pf_status_relay_partner_port_state": ("gauge", "802.1AX partner port state byte of the PF."),
    "pf_status_relay_last_cycle_timestamp_seconds": (
        "gauge",
        "Unix time the last cycle completed.",
    ),
    "pf_status_relay_cycle_duration_seconds": ("gauge", "How long the last cycle took."),
    "pf_status_relay_pf_info": (
        "gauge",
        "1 per PF cycled: its bond, why it is cycled (configured, discovered, ledger) and, "
        "when not monitored, why not.",
    ),
    "pf_status_relay_ledger_persisted": (
        "gauge",
        "1 when the ledger on disk matches the VFs the relay disabled, 0 while writing it fails.",
    ),
    "pf_status_relay_vfs_held_release_seconds": (
        "gauge",
        "Seconds until the VFs the relay disabled on a PF it cannot monitor are restored.",
    ),
}


#: Families written only when ``render`` is given their data (the alerting rules need them).
_OPTIONAL = (
    "pf_status_relay_pf_info",
    "pf_status_relay_ledger_persisted",
    "pf_status_relay_vfs_held_release_seconds",  # only while some PF holds VFs
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(
    reports: Sequence[PfReport],
    transitions: Mapping[str, int],
    last_cycle: float,
    duration_s: float,
    *,
    sources: Optional[Mapping[str, str]] = None,
    ledger_persisted: Optional[bool] = None,
) -> str:
    """The exposition text for one cycle.

    ``sources`` (PF -> configured/discovered/ledger; a PF not in it: configured) turns on
    ``pf_status_relay_pf_info``, ``ledger_persisted`` the gauge of that name; the daemon
    passes both, and without them the text is what it was before they existed.
    """
    samples: Dict[str, List[str]] = {name: [] for name in _HELP}

    def add(name: str, pf: Optional[str], value: float, **extra: str) -> None:
        pairs = ([("interface", pf)] if pf is not None else []) + sorted(extra.items())
        inner = ",".join(f'{key}="{_escape(text)}"' for key, text in pairs)
        labels = f"{{{inner}}}" if inner else ""
        number = f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        samples[name].append(f"{name}{labels} {number}")

    for report in reports:
        a = report.assessment
        pf = a.interface
        add("pf_status_relay_monitored", pf, 1 if a.monitored else 0)
        if a.monitored and a.lacp is not Lacp.UNKNOWN:
            add("pf_status_relay_lacp_up", pf, 1 if a.lacp is Lacp.UP else 0)
        add("pf_status_relay_vfs_disabled", pf, len(report.disabled_by_relay))
        if report.disabled_by_relay and report.release_in_s is not None:
            add("pf_status_relay_vfs_held_release_seconds", pf, float(report.release_in_s))
        add("pf_status_relay_lacp_transitions_total", pf, transitions.get(pf, 0))
        if a.slave is not None and a.slave.actor_state is not None:
            add("pf_status_relay_actor_port_state", pf, a.slave.actor_state)
        if a.slave is not None and a.slave.partner_state is not None:
            add("pf_status_relay_partner_port_state", pf, a.slave.partner_state)
        if sources is not None:
            add(
                "pf_status_relay_pf_info",
                pf,
                1,
                bond=a.bond.name if a.bond is not None else (report.facts.master or ""),
                source=sources.get(pf, "configured"),
                reason="" if a.monitored else (a.reason or ""),
            )
    add("pf_status_relay_last_cycle_timestamp_seconds", None, float(last_cycle))
    add("pf_status_relay_cycle_duration_seconds", None, float(duration_s))
    if ledger_persisted is not None:
        add("pf_status_relay_ledger_persisted", None, 1 if ledger_persisted else 0)
    lines = []
    for name, (kind, text) in _HELP.items():
        if name in _OPTIONAL and not samples[name]:
            continue
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(samples[name])
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (mode 0644: the collector runs as another user).

    The temp file (``.<name>.<random>.tmp``: the collector reads only ``*.prom``) is created
    with ``O_EXCL|O_NOFOLLOW``, chmod-ed and fsynced through its fd; the directory is fsynced
    after the rename (``safefile.replace``).
    """
    safefile.replace(path, text.encode("utf-8"), 0o644)
