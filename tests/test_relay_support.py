"""Helpers for the relay, fault and metrics tests (no tests here).

``World`` is one fake machine driven in-process: a ``FakeHost`` (/proc and /sys from the real
captures), a ``FakeIp`` holding the VF link states, an ``EventLog`` writing JSON into a
``StringIO``, a hand-moved clock and the ``Relay`` under test, with its ledger in the world's
run directory. ``timeline_steps`` gives each /proc snapshot of a lab timeline with the sysfs
sample the lab took at the same moment, so a step can be replayed for a privileged reader
(details blocks in /proc) or an unprivileged one (port states from sysfs only).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

from fakehost import FIXTURES, KERNEL, FakeHost, load_fixture, unprivileged
from fakeip import FakeIp

from pfrelay import ledger as ledgers
from pfrelay.config import Config
from pfrelay.log import EventLog
from pfrelay.relay import PfReport, Relay

BOOT = "00000000-0000-0000-0000-000000000001"
#: /proc/net/bonding/bond0 verbatim from 6.12: LACP up (63/63) and partner lost (79/0).
PROC_UP = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")
PROC_DOWN = load_fixture("proc-net-bonding-bond0-partner-lost-peer-stops-sending")
#: Hand-set VFs in every scenario: 5 forced up, 6 disabled by an operator (not in the ledger).
HAND_ENABLED = 5
HAND_DISABLED = 6

Record = Dict[str, Any]


class Step(NamedTuple):
    name: str  #: "snap-03-unblocked-+37.11s"
    seconds: float  #: time after the block (the lab's clock)
    proc: str  #: /proc/net/bonding/bond0 at that moment (verbatim)
    slave: str  #: the bond's slave (the PF)
    actor: str  #: sysfs ad_actor_oper_port_state sampled then
    partner: str  #: sysfs ad_partner_oper_port_state sampled then
    mii: str  #: sysfs bonding_slave/mii_status sampled then


def timeline_steps(scenario: str) -> List[Step]:
    """The snapshots of ``tests/fixtures/timelines/<scenario>`` in order, with the TSV row."""
    directory = FIXTURES / "timelines" / scenario
    with (directory / f"{scenario}.{KERNEL}.timeline.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    steps = []
    for path in sorted(directory.glob(f"{scenario}.{KERNEL}.snap-*.txt")):
        name = path.name[len(f"{scenario}.{KERNEL}.") : -len(".txt")]
        match = re.search(r"([+-][\d.]+)s$", name)
        assert match, name
        seconds = float(match.group(1))
        (row,) = [r for r in rows if abs(float(r["t_s"]) - seconds) < 0.006]
        proc = path.read_text(encoding="utf-8")
        slave = re.search(r"^Slave Interface: (\S+)$", proc, re.M)
        assert slave, path
        steps.append(
            Step(name, seconds, proc, slave.group(1), row["actor"], row["partner"], row["mii"])
        )
    return steps


class World:
    """One fake machine and one ``Relay`` over it."""

    def __init__(
        self,
        root: Path,
        *,
        pfs: Sequence[str] = ("pf0",),
        restore_delay_ms: int = 0,
        dry_run: bool = False,
        boot_id: Optional[str] = BOOT,
        state_file: Optional[Path] = None,
        log_level: str = "info",
        ip: Any = None,
        start: bool = True,
    ) -> None:
        self.root = Path(root)
        self.host = FakeHost(self.root / "host")
        self.ip = ip if ip is not None else FakeIp()
        self.stream = io.StringIO()
        self.log = EventLog("json", log_level, self.stream)
        self.now = 1000.0
        self.state_file = state_file or self.root / "run" / "state.json"
        self.config = Config(
            interfaces=tuple(pfs),
            procfs=str(self.host.procfs),
            sysfs=str(self.host.sysfs),
            state_file=str(self.state_file),
            restore_delay_ms=restore_delay_ms,
        )
        self.dry_run = dry_run
        self.boot_id = boot_id
        self._read = 0
        self.relay: Relay
        if start:
            self.start()

    def start(self) -> Relay:
        """A new ``Relay`` (as after a restart of the daemon): loads the ledger from disk."""
        self.relay = Relay(
            self.config,
            self.ip,
            self.log,
            dry_run=self.dry_run,
            clock=lambda: self.now,
            boot_id=self.boot_id,
        )
        return self.relay

    # ----------------------------------------------------------------- the host
    def add_pf(
        self,
        pf: str = "pf0",
        *,
        bond: Optional[str] = "bond0",
        proc: Optional[str] = PROC_UP,
        vfs: Optional[Mapping[int, str]] = None,
        numvfs: int = 8,
        ifindex: int = 2,
    ) -> None:
        """``pf`` with ``numvfs`` VFs (auto, plus the hand-set ones), alone in 802.3ad ``bond``."""
        self.host.add_pf(pf, ifindex=ifindex, numvfs=numvfs)
        if bond is not None:
            text = proc.replace("pf0", pf) if proc is not None else None
            self.host.add_bond(bond, [pf], text)
        if vfs is None:
            vfs = {n: "auto" for n in range(numvfs)}
            if numvfs > HAND_DISABLED:
                vfs[HAND_ENABLED] = "enable"
                vfs[HAND_DISABLED] = "disable"
        self.ip.links[pf] = dict(vfs)
        self.ip.ifindex[pf] = ifindex

    def set_proc(self, text: str, pf: str = "pf0", bond: str = "bond0") -> None:
        self.host.set_proc(bond, text.replace("pf0", pf))

    def lacp(self, up: bool, pf: str = "pf0", bond: str = "bond0") -> None:
        """The real 6.12 /proc text of a healthy bond, or of one whose partner was lost."""
        self.set_proc(PROC_UP if up else PROC_DOWN, pf, bond)

    # ---------------------------------------------------------------- the relay
    def cycle(self, advance: float = 1.0) -> List[PfReport]:
        self.now += advance
        return self.relay.cycle()

    def vfs(self, pf: str = "pf0") -> Dict[int, str]:
        return dict(self.ip.links[pf])

    def ledger(self) -> ledgers.Ledger:
        """The ledger as written on disk."""
        return ledgers.load(self.state_file)

    def events(self) -> List[Record]:
        """Log records written since the last call."""
        lines = self.stream.getvalue().splitlines()
        new = lines[self._read :]
        self._read = len(lines)
        return [json.loads(line) for line in new]

    def all_events(self) -> List[Record]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def set_calls(self) -> List[Any]:
        return [args for kind, args in self.ip.calls if kind == "batch"]


def msgs(records: Iterable[Record]) -> List[str]:
    return [r["msg"] for r in records]


def with_msg(records: Iterable[Record], msg: str) -> List[Record]:
    return [r for r in records if r["msg"] == msg]


def expected_vfs(down: bool, numvfs: int = 8) -> Dict[int, str]:
    """Every VF but the hand-set ones follows LACP."""
    vfs = {n: "disable" if down else "auto" for n in range(numvfs)}
    vfs[HAND_ENABLED] = "enable"
    vfs[HAND_DISABLED] = "disable"
    return vfs


def relayed(numvfs: int = 8) -> frozenset:  # type: ignore[type-arg]
    """The VFs the relay disables when LACP goes down: the ``auto`` ones."""
    return frozenset(n for n in range(numvfs) if n not in (HAND_ENABLED, HAND_DISABLED))


def unprivileged_step(host: FakeHost, step: Step, pf: str, bond: str = "bond0") -> None:
    """Write ``step`` as a reader without CAP_NET_ADMIN sees it: states only in sysfs."""
    host.set_proc(bond, unprivileged(step.proc).replace(step.slave, pf))
    host.set_slave(pf, mii_status=step.mii, actor=step.actor, partner=step.partner)
