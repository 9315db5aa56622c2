"""``pfrelay check``: preflight of each PF, one line per fact with a fix hint. Pure.

An operator runs it before enabling the service (or when ``status`` says "not monitored") to
see every problem at once instead of one reason at a time.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import List, Optional

from pfrelay.decision import Assessment
from pfrelay.discovery import Discovery
from pfrelay.host import PfFacts
from pfrelay.lacp import Lacp

CAP_NET_ADMIN = 12


class Outcome(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclasses.dataclass(frozen=True)
class Check:
    outcome: Outcome
    subject: str
    text: str
    hint: Optional[str] = None

    def line(self) -> str:
        return f"{self.outcome.value:4} {self.subject}: {self.text}" + (
            f" -- {self.hint}" if self.hint else ""
        )


def has_cap_net_admin(proc_status: str) -> Optional[bool]:
    """From /proc/self/status's ``CapEff:`` line; None when it cannot be told."""
    for line in proc_status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
            except (IndexError, ValueError):
                return None
    return None


def check_process(
    cap_net_admin: Optional[bool], ip_error: Optional[str], ip_binary: Optional[str] = None
) -> List[Check]:
    checks = []
    if cap_net_admin is None:
        checks.append(Check(Outcome.WARN, "relay", "cannot tell whether CAP_NET_ADMIN is held"))
    elif cap_net_admin:
        checks.append(Check(Outcome.OK, "relay", "runs with CAP_NET_ADMIN"))
    else:
        checks.append(
            Check(
                Outcome.FAIL,
                "relay",
                "no CAP_NET_ADMIN: VF link states cannot be set and LACP details are hidden",
                "run as root or through the pf-status-relay service",
            )
        )
    if ip_error:
        checks.append(Check(Outcome.FAIL, "ip", ip_error, "install iproute2 or set the ip key"))
    else:
        where = f" ({ip_binary})" if ip_binary else ""
        checks.append(Check(Outcome.OK, "ip", f"iproute2 runs{where}"))
    return checks


def check_discovery(discovery: Discovery) -> List[Check]:
    """What discovery found: a line for the candidates and one per port it left out."""
    if discovery.error:
        return [
            Check(
                Outcome.FAIL,
                "discovery",
                discovery.error,
                "the relay needs to read sysfs (class/net/bonding_masters, bonding/slaves)",
            )
        ]
    if not discovery.candidates:
        checks = [
            Check(
                Outcome.WARN,
                "discovery",
                "no SR-IOV port of a bond found",
                "enslave the PF to an 802.3ad bond; the running relay picks it up by itself",
            )
        ]
    else:
        found = ", ".join(discovery.candidates)
        checks = [Check(Outcome.OK, "discovery", f"{len(discovery.candidates)} PFs ({found})")]
    for item in discovery.skipped:
        checks.append(
            Check(Outcome.OK, item.interface, f"not watched (bond {item.bond}): {item.reason}")
        )
    return checks


def check_pf(
    facts: PfFacts,
    assessment: Assessment,
    visible_vfs: Optional[int],
    vf_error: Optional[str],
) -> List[Check]:
    """The facts of one PF, in the order an operator fixes them."""
    pf = facts.name
    out: List[Check] = []

    def add(outcome: Outcome, text: str, hint: Optional[str] = None) -> None:
        out.append(Check(outcome, pf, text, hint))

    if not facts.exists:
        add(Outcome.FAIL, "no such interface", "check the name with `ip link`")
        return out
    bond = assessment.bond
    if facts.master is None or facts.master_kind != "bond":
        add(
            Outcome.FAIL,
            assessment.reason or "not in a bond",
            "enslave it alone to an 802.3ad bond: ip link add bond0 type bond mode 802.3ad "
            f"lacp_rate fast miimon 100; ip link set {pf} master bond0",
        )
    elif bond is None:
        add(Outcome.FAIL, assessment.reason or "bond unreadable", "run as root (CAP_NET_ADMIN)")
    else:
        add(Outcome.OK, f"bond {bond.name} found")
        if bond.mode == "802.3ad":
            add(Outcome.OK, "mode 802.3ad")
        else:
            add(
                Outcome.FAIL,
                f"mode is {bond.mode or 'unknown'}",
                f"ip link set {bond.name} type bond mode 802.3ad (with the bond down and empty)",
            )
        if len(bond.slaves) == 1 and bond.slaves[0].name == pf:
            add(Outcome.OK, "only slave of the bond")
        else:
            names = ", ".join(s.name for s in bond.slaves) or "none"
            add(Outcome.FAIL, f"bond slaves: {names}", f"{pf} must be the bond's only slave")
        if bond.lacp_rate == "fast":
            add(Outcome.OK, "lacp_rate fast")
        elif bond.mode == "802.3ad":
            add(
                Outcome.WARN,
                f"lacp_rate {bond.lacp_rate or 'unknown'}: a dead partner is noticed after ~90 s",
                f"ip link set {bond.name} type bond lacp_rate fast",
            )
    if assessment.monitored:
        slave = assessment.slave
        if slave is not None and slave.mii_up:
            add(Outcome.OK, "MII status up")
        else:
            add(
                Outcome.FAIL,
                f"MII status {slave.mii_status if slave else 'unknown'}",
                "check the cable and the switch port",
            )
        if assessment.lacp is Lacp.UP:
            add(Outcome.OK, "LACP up")
        elif assessment.lacp is Lacp.DOWN:
            add(
                Outcome.WARN,
                "LACP down now: the relay would disable the PF's auto VFs",
                "check the switch's LAG configuration",
            )
        else:
            add(
                Outcome.FAIL,
                assessment.reason or "LACP state unknown",
                "run as root (CAP_NET_ADMIN)",
            )
    if vf_error:
        add(Outcome.FAIL, f"VF link states unreadable: {vf_error}")
    elif facts.numvfs is None:
        add(Outcome.WARN, "no device/sriov_numvfs: not an SR-IOV PF?")
    elif facts.numvfs == 0:
        add(
            Outcome.WARN,
            "sriov_numvfs is 0: no VFs to relay to",
            f"echo N > /sys/class/net/{pf}/device/sriov_numvfs",
        )
    elif visible_vfs is not None and visible_vfs < facts.numvfs:
        add(
            Outcome.WARN,
            f"netlink lists {visible_vfs} of {facts.numvfs} VFs (truncated list): "
            "the others are not relayed",
        )
    else:
        add(Outcome.OK, f"{facts.numvfs} VFs visible")
    return out
