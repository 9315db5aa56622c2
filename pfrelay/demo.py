"""``pfrelay demo``: replay a real LACP failure and recovery through the real relay.

The timeline in ``pfrelay/timeline/`` was recorded from Linux 6.12's bonding driver: the
switch behind ``pf0`` stopped sending LACPDUs while the carrier stayed up, then resumed. Each
step's ``/proc/net/bonding/bond0`` snapshot is verbatim kernel output. The demo writes a host
tree (``/proc`` and ``/sys`` as the kernel lays them out) into a temporary directory, points an
unchanged ``Relay`` at it, and stands in for the NIC with an in-memory VF table, so it runs on
any machine and shows what the relay does: the log lines it writes and the VF states after
each step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional, Sequence, Tuple

from pfrelay.config import Config
from pfrelay.iproute import ChangeResult, VfChange
from pfrelay.log import EventLog
from pfrelay.relay import Relay
from pfrelay.sriov import LinkState

TIMELINE = Path(__file__).parent / "timeline"
SCENARIO = "peer-stops-sending.6.12.95+deb12-amd64"


class SimulatedNic:
    """An in-memory PF's VF table that speaks the relay's ``IpPort``."""

    def __init__(self, pf: str, states: Dict[int, LinkState]) -> None:
        self.pf = pf
        self.states = dict(states)

    def link_show(self, pf: str) -> Tuple[str, str]:
        import json

        vfs = [{"vf": n, "link_state": s.value} for n, s in sorted(self.states.items())]
        return json.dumps([{"ifindex": 2, "ifname": pf, "vfinfo_list": vfs}]), ""

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
        for change in changes:
            self.states[change.vf] = change.state
        return ChangeResult(tuple(changes), ())


@dataclasses.dataclass(frozen=True)
class Step:
    """One snapshot of the timeline: seconds after the switch stopped, and the /proc text."""

    seconds: float
    phase: str
    proc_text: str


def load_steps(directory: Path = TIMELINE, scenario: str = SCENARIO) -> List[Step]:
    steps = []
    pattern = re.compile(re.escape(scenario) + r"\.snap-\d+-(\w+)-([-+]\d+\.\d+)s\.txt$")
    for path in sorted(directory.iterdir()):
        match = pattern.match(path.name)
        if match:
            steps.append(
                Step(float(match.group(2)), match.group(1), path.read_text(encoding="utf-8"))
            )
    return steps


def write_host(root: Path, proc_text: str, numvfs: int) -> Tuple[Path, Path]:
    """Lay out /proc and /sys for pf0 enslaved to bond0 (802.3ad) as the kernel does."""
    procfs, sysfs = root / "proc", root / "sys"
    (procfs / "net/bonding").mkdir(parents=True, exist_ok=True)
    (procfs / "net/bonding/bond0").write_text(proc_text, encoding="utf-8")
    net = sysfs / "class/net"
    pf, bond = net / "pf0", net / "bond0"
    for directory in (pf / "device", pf / "bonding_slave", bond / "bonding"):
        directory.mkdir(parents=True, exist_ok=True)
    (pf / "ifindex").write_text("2\n")
    (pf / "device/sriov_numvfs").write_text(f"{numvfs}\n")
    (bond / "bonding/mode").write_text("802.3ad 4\n")
    (bond / "bonding/slaves").write_text("pf0\n")
    (bond / "bonding/lacp_rate").write_text("fast 1\n")
    if not (pf / "master").is_symlink():
        os.symlink("../bond0", pf / "master")
    return procfs, sysfs


def _vf_line(nic: SimulatedNic, relay: Relay) -> str:
    mine = relay.ledger.disabled("pf0")
    cells = []
    for vf, state in sorted(nic.states.items()):
        cells.append(f"vf{vf}={state.value}{'*' if vf in mine else ''}")
    return "    VFs: " + "  ".join(cells) + "   (* = disabled by the relay)"


def run(out: Optional[IO[str]] = None, log_format: str = "text") -> int:
    """Print the replay; returns 0 when the VFs ended as they started (the demo's own check)."""
    import sys

    stream = out or sys.stdout
    steps = load_steps()
    start = {n: LinkState.AUTO for n in range(8)}
    start[6] = LinkState.ENABLE  # set by an operator: never touched
    start[7] = LinkState.DISABLE  # set by an operator: never touched
    nic = SimulatedNic("pf0", start)

    def say(text: str = "") -> None:
        stream.write(text + "\n")
        stream.flush()

    with _tempdir() as root:
        procfs, sysfs = write_host(root, steps[0].proc_text, len(start))
        config = Config(
            interfaces=("pf0",),
            procfs=str(procfs),
            sysfs=str(sysfs),
            state_file=str(root / "run/state.json"),
        )
        relay = Relay(config, nic, EventLog(log_format, "info", stream))
        say("pf-status-relay demo: pf0 is the only slave of bond0 (802.3ad, lacp_rate fast).")
        say("Replaying Linux 6.12's /proc/net/bonding/bond0 while the switch stops sending LACPDUs")
        say("with the carrier up, then resumes. VF 6 and VF 7 were set by hand: enable / disable.")
        say()
        for number, step in enumerate(steps):
            write_host(root, step.proc_text, len(start))
            slave = _slave_states(step.proc_text)
            say(
                f"[t={step.seconds:+7.2f} s  switch {step.phase:9}]  "
                f"actor {slave[0]}, partner {slave[1]}"
            )
            relay.cycle()
            say(_vf_line(nic, relay))
            if number == len(steps) // 2 - 1:
                say("[sriov-cni starts a pod and sets VF 2 back to auto while LACP is still down]")
                nic.states[2] = LinkState.AUTO
                relay.cycle()
                say(_vf_line(nic, relay))
            say()
        ok = nic.states == start
        say(
            "Every VF the relay disabled is back to auto; VF 6 and VF 7 were never touched."
            if ok
            else "Unexpected end state."
        )
        say(
            "Next: `pfrelay status <pf>` on a host, `make test` for the tests, "
            "README for the service."
        )
    return 0 if ok else 1


def _slave_states(text: str) -> Tuple[str, str]:
    from pfrelay.bonding import parse_proc_bonding
    from pfrelay.lacp import flag_names

    bond = parse_proc_bonding("bond0", text)
    slave = bond.slaves[0]
    return (
        f"{slave.actor_state} {flag_names(slave.actor_state)}",
        f"{slave.partner_state} {flag_names(slave.partner_state)}",
    )


@contextlib.contextmanager
def _tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pfrelay-demo-") as name:
        yield Path(name)
