"""``pfrelay status``: gather one PF's standing for people and scripts. Formatting only.

The JSON keys are a public contract (scripts and monitoring read them): add keys freely,
never rename. The table and the JSON come from the same ``PfReport`` records.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

from pfrelay.discovery import Discovery
from pfrelay.lacp import flag_names
from pfrelay.relay import PfReport
from pfrelay.runtime import ServiceInfo, age_s


def report_dict(report: PfReport) -> Dict[str, Any]:
    a = report.assessment
    bond = None
    if a.bond is not None:
        bond = {
            "name": a.bond.name,
            "mode": a.bond.mode,
            "lacp_rate": a.bond.lacp_rate,
            "mii_status": a.bond.mii_status,
            "slaves": [
                {
                    "name": s.name,
                    "mii_status": s.mii_status,
                    "aggregator_id": s.aggregator_id,
                    "actor_state": s.actor_state,
                    "partner_state": s.partner_state,
                    "actor_state_flags": flag_names(s.actor_state),
                    "partner_state_flags": flag_names(s.partner_state),
                    "partner_mac": s.partner_mac,
                }
                for s in a.bond.slaves
            ],
        }
    vfs = [
        {
            "vf": vf.vf,
            "link_state": vf.link_state.value if vf.link_state else None,
            "disabled_by_relay": vf.vf in report.disabled_by_relay,
        }
        for vf in report.vfs or ()
    ]
    return {
        "interface": a.interface,
        "monitored": a.monitored,
        "reason": a.reason,
        "lacp": a.lacp.value,
        "bond": bond,
        "vfs": vfs,
        "numvfs": report.facts.numvfs,
        "disabled_by_relay": sorted(report.disabled_by_relay),
        "vf_error": report.vf_error,
    }


def service_dict(info: ServiceInfo) -> Dict[str, Any]:
    last = info.last_cycle
    return {
        # null when it cannot be told (``unknown_reason`` says why, e.g. "permission denied").
        "running": None if info.unknown is not None else info.running,
        "unknown_reason": info.unknown,
        "pid": info.pid,
        "last_cycle": _iso(last) if last is not None else None,
        "last_cycle_age_s": round(age_s(info) or 0.0, 3) if last is not None else None,
        # False while the running relay has not finished a cycle of its own: last_cycle is
        # then an earlier relay's (the heartbeat survives restarts in the same directory).
        "cycled_since_start": info.cycled_since_start if info.running else None,
        # False while the running relay cannot write its ledger (kept in memory; a restart
        # then would not know which VFs it disabled); null when no relay runs.
        "ledger_persisted": info.ledger_persisted,
    }


def discovery_dict(discovery: Discovery, sources: Mapping[str, str]) -> Dict[str, Any]:
    """What discovery found: the candidates, the ports it left out and why."""
    return {
        "candidates": [
            {"interface": pf, "bond": bond, "source": sources.get(pf, "discovered")}
            for pf, bond in discovery.bonds
        ],
        "skipped": [
            {"interface": s.interface, "bond": s.bond, "reason": s.reason}
            for s in discovery.skipped
        ],
        "error": discovery.error,
    }


def to_json(
    reports: Sequence[PfReport],
    info: Optional[ServiceInfo],
    discovery: Optional[Discovery] = None,
    sources: Optional[Mapping[str, str]] = None,
) -> str:
    """The ``status --json`` document. With discovery, each interface also says its
    ``source`` (configured, discovered, ledger) and a ``discovery`` object is added."""
    entries = [report_dict(r) for r in reports]
    if discovery is not None:
        for entry in entries:
            entry["source"] = (sources or {}).get(entry["interface"], "configured")
    doc: Dict[str, Any] = {"interfaces": entries}
    if discovery is not None:
        doc["discovery"] = discovery_dict(discovery, sources or {})
    if info is not None:
        doc["service"] = service_dict(info)
    return json.dumps(doc, indent=2)


def _iso(ts: float) -> str:
    return (
        datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _vf_summary(report: PfReport) -> str:
    if report.vf_error:
        return f"unreadable ({report.vf_error})"
    if report.vfs is None:
        count = report.facts.numvfs if report.facts.numvfs is not None else "no"
        return f"{count} VFs (states not read)"
    counts: Dict[str, List[int]] = {}
    for vf in report.vfs:
        counts.setdefault(vf.link_state.value if vf.link_state else "unknown", []).append(vf.vf)
    text = ", ".join(f"{len(ids)} {state}" for state, ids in sorted(counts.items())) or "none"
    return f"{len(report.vfs)} VFs: {text}"


def discovery_lines(discovery: Discovery) -> List[str]:
    """``discovery: 2 PFs (pf0, pf1)`` and a line per port it left out."""
    found = ", ".join(discovery.candidates) or "none"
    lines = [f"discovery: {len(discovery.candidates)} PFs ({found})"]
    if discovery.error:
        lines.append(f"  error     {discovery.error}")
    for item in discovery.skipped:
        lines.append(f"  skipped   {item.interface} (bond {item.bond}): {item.reason}")
    return lines


def to_table(
    reports: Sequence[PfReport],
    info: Optional[ServiceInfo],
    discovery: Optional[Discovery] = None,
) -> str:
    """A readable block per PF, then discovery's summary and the service line."""
    lines: List[str] = []
    for report in reports:
        a = report.assessment
        verdict = f"LACP {a.lacp.value.upper()}" if a.monitored else "NOT MONITORED"
        lines.append(f"{a.interface}: {verdict}" + (f" - {a.reason}" if a.reason else ""))
        if a.bond is not None:
            b = a.bond
            lines.append(
                f"  bond      {b.name}  mode {b.mode or '?'}  "
                f"lacp_rate {b.lacp_rate or '?'}  mii {b.mii_status or '?'}"
            )
            for s in b.slaves:
                lines.append(
                    f"  slave     {s.name}  mii {s.mii_status or '?'}  "
                    f"aggregator {'?' if s.aggregator_id is None else s.aggregator_id}"
                )
                lines.append(f"    actor   {_state(s.actor_state)}")
                lines.append(f"    partner {_state(s.partner_state)}  mac {s.partner_mac or '?'}")
        if report.facts.exists:  # a PF that is not there has no VFs to speak of
            lines.append(f"  vfs       {_vf_summary(report)}")
        if report.disabled_by_relay:
            ids = " ".join(str(v) for v in sorted(report.disabled_by_relay))
            lines.append(f"  disabled by the relay: {ids}")
    if discovery is not None:
        lines += discovery_lines(discovery)
    if info is not None:
        if info.unknown is not None:
            lines.append(f"relay: cannot tell ({info.unknown})")
        elif info.running:
            # A heartbeat older than the lock is an earlier relay's, not this one's.
            age = age_s(info) if info.cycled_since_start else None
            when = f"last cycle {age:.1f} s ago" if age is not None else "no cycle completed yet"
            lines.append(f"relay: running (pid {info.pid}), {when}")
            if info.ledger_persisted is False:
                lines.append(
                    "ledger: NOT PERSISTED - the relay cannot write it and keeps it in memory; "
                    "fix the state directory before restarting the relay"
                )
        else:
            lines.append("relay: not running")
    return "\n".join(lines)


def _state(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value:3d} {flag_names(value)}"
