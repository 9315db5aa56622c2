"""The relay cycle: read each PF, assess, decide, apply, record. The imperative shell.

One ``Relay`` keeps, per PF, only what the cycle needs to log transitions (not every poll) and
to time the restore delay; the truth is re-read from the host every cycle. Nothing here raises
on a fault of the host: each fault is an event and the next cycle starts afresh.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import (
    AbstractSet,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

from pfrelay import ledger as ledgers
from pfrelay.config import Config
from pfrelay.decision import Assessment, LinkLoss, Plan, assess, decide, distrust_stale_ports
from pfrelay.host import PfFacts, read_pf, read_sriov
from pfrelay.iproute import ChangeResult, IpError, VfChange
from pfrelay.lacp import Lacp
from pfrelay.log import EventLog
from pfrelay.sriov import VF, LinkState, PfLink, VfListError, missing_vfs, parse_link_show


class IpPort(Protocol):
    """What the relay needs from iproute2 (``iproute.Ip``; a fake in tests)."""

    def link_show(self, pf: str) -> Tuple[str, str]: ...

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult: ...


@dataclasses.dataclass(frozen=True)
class PfReport:
    """One PF after a cycle: what ``status``, ``STATUS=`` and the metrics show."""

    assessment: Assessment
    facts: PfFacts
    vfs: Optional[Tuple[VF, ...]]  #: None when not read this cycle (steady state) or unreadable
    disabled_by_relay: FrozenSet[int]
    vf_error: Optional[str] = None


#: How long LACP of a bond that appears at run time may stay down before it counts (seconds).
NEGOTIATION_GRACE_S = 10.0


@dataclasses.dataclass
class _PfMemory:
    assessment: Optional[Assessment] = None
    up_since: Optional[float] = None
    negotiating_until: Optional[float] = None
    #: The last assessment that was not ``unreadable``: a poll that could not read the host
    #: does not make the next monitored one a bond that "just appeared".
    settled: Optional[Assessment] = None
    last_warning: Dict[str, str] = dataclasses.field(default_factory=dict)
    transitions: int = 0
    #: Port states seen while the slave's link was down (``distrust_stale_ports``).
    link_loss: Optional[LinkLoss] = None


class Relay:
    """Relays each configured PF's LACP verdict to its VFs, one ``cycle()`` at a time."""

    def __init__(
        self,
        config: Config,
        ip: IpPort,
        log: EventLog,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        boot_id: Optional[str] = None,
    ) -> None:
        self.config = config
        self.ip = ip
        self.log = log
        self.dry_run = dry_run
        self.clock = clock
        self.boot_id = boot_id
        self.memory: Dict[str, _PfMemory] = {}
        self.ledger_path = Path(config.state_file)
        self.ledger_unsaved = False  #: the last write failed: retried every cycle until it works
        self.ledger = self._load_ledger()

    # ----------------------------------------------------------------- ledger
    def _load_ledger(self) -> ledgers.Ledger:
        try:
            loaded = ledgers.load(self.ledger_path)
        except ledgers.LedgerError as exc:
            self.log.error(
                "cannot read the ledger; starting with an empty one",
                error=str(exc),
                path=str(self.ledger_path),
            )
            return ledgers.Ledger(boot_id=self.boot_id)
        if self.boot_id and loaded.boot_id and loaded.boot_id != self.boot_id:
            # Every entry names VFs of another boot. Dropped now, not when its PF is next
            # cycled: a later write would stamp them with this boot's ID (a PF that is not
            # configured is never cycled), and they would flip VFs the relay never disabled.
            for pf in sorted(loaded.pfs):
                self.log.warning(
                    "ledger entries dropped: these are not the vfs the relay disabled",
                    interface=pf,
                    reason="the ledger was written in another boot",
                    ids=sorted(loaded.disabled(pf)),
                )
            self.ledger_unsaved = bool(loaded.pfs)  # the next cycle rewrites the file
            return ledgers.Ledger(boot_id=self.boot_id)
        # With discovery every PF the ledger names is cycled (``daemon.Targets``).
        unnamed = set() if self.config.discover else set(loaded.pfs) - set(self.config.names)
        for pf in sorted(unnamed):
            self.log.warning(
                "ledger names a pf that is not configured; its vfs stay as they are",
                interface=pf,
                ids=sorted(loaded.disabled(pf)),
                hint=f"pfrelay restore {pf}",
            )
        if loaded.boot_id is None:
            loaded = dataclasses.replace(loaded, boot_id=self.boot_id)
        return loaded

    def _save_ledger(self, new: ledgers.Ledger) -> None:
        if new == self.ledger and not self.ledger_unsaved:
            return
        self.ledger = dataclasses.replace(new, boot_id=self.boot_id or new.boot_id)
        self._write_ledger()

    def _write_ledger(self) -> None:
        """Write the ledger; on failure keep ``ledger_unsaved`` so the next cycle retries.

        Without the retry a failed write was never repeated while the entries stayed the same,
        and a restart after the disk came back found no record of the VFs to restore.
        """
        if self.dry_run:
            return
        try:
            ledgers.save(self.ledger_path, self.ledger)
        except ledgers.LedgerError as exc:
            self.ledger_unsaved = True
            self.report_once("", "ledger", "error", "cannot write the ledger", error=str(exc))
        else:
            self.ledger_unsaved = False
            self.memory.setdefault("", _PfMemory()).last_warning.pop("ledger", None)

    # ---------------------------------------------------------------- helpers
    def report_once(self, pf: str, key: str, level: str, msg: str, **fields: object) -> None:
        """Log an event when it is new or its text changed since the last one of this key.

        Faults that last (an unwritable ledger, a truncated VF list) are logged once, not on
        every poll; ``clear_report`` re-arms the key when the fault is gone.
        """
        memory = self.memory.setdefault(pf, _PfMemory())
        text = msg + repr(sorted(fields.items()))
        if memory.last_warning.get(key) != text:
            memory.last_warning[key] = text
            getattr(self.log, level)(msg, interface=pf or None, **fields)

    def clear_report(self, pf: str, key: str) -> None:
        self.memory.setdefault(pf, _PfMemory()).last_warning.pop(key, None)

    def _rearm(self, pf: str, prefix: str, keep: AbstractSet[str] = frozenset()) -> None:
        """Clear the per-VF report keys starting with ``prefix`` that are not in ``keep``.

        A VF whose change failed (or, in a dry run, would be made) is reported once while that
        lasts; once it is applied or no longer wanted, the next occurrence is news again.
        """
        memory = self.memory.setdefault(pf, _PfMemory())
        for key in [k for k in memory.last_warning if k.startswith(prefix) and k not in keep]:
            del memory.last_warning[key]

    # ------------------------------------------------------------------ cycle
    def cycle(
        self,
        interfaces: Optional[Iterable[str]] = None,
        progress: Optional[Callable[[], None]] = None,
    ) -> List[PfReport]:
        """One pass over ``interfaces`` (default: all configured); returns a report per PF.

        ``progress`` is called after each PF: the daemon feeds the watchdog from it, so many
        PFs with slow ``ip`` calls do not add up to a watchdog restart, while one hung PF does.
        """
        names = list(interfaces) if interfaces is not None else list(self.config.names)
        reports = []
        for pf in names:
            reports.append(self._cycle_pf(pf))
            if progress is not None:
                progress()
        if self.ledger_unsaved:
            self._write_ledger()
        return reports

    def appeared(self, pf: str) -> None:
        """``pf`` was found at run time (discovery): its bond gets the negotiation grace.

        As if this relay had seen it unmonitored before: a bond created while the relay runs
        reads "down" until LACP has negotiated, whether the PF was named or discovered.
        """
        memory = self.memory.setdefault(pf, _PfMemory())
        if memory.settled is None:
            memory.settled = Assessment(pf, False, Lacp.UNKNOWN, "not discovered yet")

    def transitions(self) -> Dict[str, int]:
        """LACP verdict changes per PF since start (for the metrics)."""
        return {pf: m.transitions for pf, m in self.memory.items() if pf}

    def _cycle_pf(self, pf: str) -> PfReport:
        cfg = self.config
        facts = read_pf(cfg.procfs, cfg.sysfs, pf, sriov=False)
        assessment = assess(facts, partner_requires_aggregation=cfg.partner_requires_aggregation)
        assessment = self._negotiation_grace(pf, assessment)
        assessment = self._stale_ports(pf, assessment)
        self._log_transitions(pf, assessment)
        recorded = self.ledger.disabled(pf)
        if not recorded and not (assessment.monitored and assessment.lacp is Lacp.DOWN):
            # Steady state (LACP up, or nothing we may act on): nothing to read, nothing to spawn.
            # Faults of the last outage are re-armed: the next outage reports them afresh.
            self._rearm(pf, "set vf ")
            self._rearm(pf, "dry-run vf ")
            self.clear_report(pf, "vfs")
            return PfReport(assessment, facts, None, recorded)

        ifindex, numvfs, totalvfs = read_sriov(cfg.sysfs, pf)
        facts = dataclasses.replace(facts, ifindex=ifindex, numvfs=numvfs, totalvfs=totalvfs)
        self._drop_stale(pf, facts)
        recorded = self.ledger.disabled(pf)
        try:
            link = self._read_vfs(pf, facts)
        except (IpError, VfListError) as exc:
            self.report_once(pf, "vfs", "error", "failed to read vf link states", error=str(exc))
            return PfReport(assessment, facts, None, recorded, vf_error=str(exc))
        self.clear_report(pf, "vfs")

        memory = self.memory[pf]
        delay_s = cfg.restore_delay_ms / 1000.0
        restore_allowed = memory.up_since is not None and self.clock() - memory.up_since >= delay_s
        plan = decide(
            assessment.lacp if assessment.monitored else Lacp.UNKNOWN,
            {vf.vf: vf.link_state for vf in link.vfs},
            recorded,
            restore_allowed=restore_allowed,
            # Without sriov_numvfs a truncated list cannot be told from a complete one: keep
            # the recorded VFs netlink does not show rather than forget (and strand) them.
            complete=facts.numvfs is not None and missing_vfs(link, facts.numvfs) == 0,
        )
        vfs = self._apply(pf, facts, plan, link)
        return PfReport(assessment, facts, vfs, disabled_by_relay(self.ledger.disabled(pf), vfs))

    def _read_vfs(self, pf: str, facts: PfFacts) -> PfLink:
        out, _err = self.ip.link_show(pf)
        link = parse_link_show(pf, out)
        missing = missing_vfs(link, facts.numvfs)
        if missing:
            self.report_once(
                pf,
                "truncated",
                "warning",
                "vf list is truncated; acting on the vfs netlink shows",
                numvfs=facts.numvfs,
                visible=len(link.vfs),
            )
        else:
            self.clear_report(pf, "truncated")
        return link

    def _negotiation_grace(self, pf: str, now: Assessment) -> Assessment:
        """A bond that appears while the relay runs is not "down" while LACP negotiates.

        A new 802.3ad bond shows 71/0 (partner defaulted) for ~3 s until the first LACPDUs
        are exchanged (seen on 6.12). Treating that as "down" would disable and re-enable
        every VF each time a bond is (re)created. So for NEGOTIATION_GRACE_S after a PF
        becomes monitored at run time, DOWN counts as UNKNOWN (nothing changes); a bond that
        is down when the relay starts is acted on at once.
        """
        memory = self.memory.setdefault(pf, _PfMemory())
        before = memory.settled
        if not now.unreadable:
            memory.settled = now
        if now.monitored and before is not None and not before.monitored:
            memory.negotiating_until = self.clock() + NEGOTIATION_GRACE_S
        if not now.monitored or now.lacp is Lacp.UP:
            memory.negotiating_until = None
        until = memory.negotiating_until
        if now.lacp is Lacp.DOWN and until is not None and self.clock() < until:
            bond = now.bond.name if now.bond else "the bond"
            reason = (
                f"{bond} just appeared: LACP is still negotiating "
                f"(acting on it after {NEGOTIATION_GRACE_S:g} s)"
            )
            return dataclasses.replace(now, lacp=Lacp.UNKNOWN, reason=reason)
        return now

    def _stale_ports(self, pf: str, now: Assessment) -> Assessment:
        """Hold an UP that rests on the port states of before a link loss (logged once)."""
        memory = self.memory.setdefault(pf, _PfMemory())
        held, memory.link_loss = distrust_stale_ports(now, memory.link_loss, self.clock())
        if held is not now and held.reason:
            self.report_once(pf, "stale", "info", "port states are stale", reason=held.reason)
        elif memory.link_loss is None:
            self.clear_report(pf, "stale")
        return held

    def _log_transitions(self, pf: str, now: Assessment) -> None:
        memory = self.memory.setdefault(pf, _PfMemory())
        before = memory.assessment
        memory.assessment = now
        bond = now.bond.name if now.bond else None
        if (
            before is None
            or before.monitored != now.monitored
            or (not now.monitored and before.reason != now.reason)
        ):
            if now.monitored:
                self.log.info("pf is ready", interface=pf, bond=bond)
                if now.slow_rate:
                    self.log.warning(
                        "pf is using slow lacp rate",
                        interface=pf,
                        bond=bond,
                        hint="set lacp_rate fast on the bond: detection takes ~90 s with slow",
                    )
            else:
                self.log.warning("pf is not ready", interface=pf, reason=now.reason)
        was = before.lacp if before is not None and before.monitored else None
        lacp = now.lacp if now.monitored else None
        if lacp is Lacp.UP and was is not Lacp.UP:
            memory.up_since = self.clock()
        elif lacp is not Lacp.UP:
            memory.up_since = None
        if lacp is None or lacp == was:
            return
        memory.transitions += 1
        slave = now.slave
        fields = {
            "interface": pf,
            "bond": bond,
            "mii_status": slave.mii_status if slave else None,
            "actor_state": slave.actor_state if slave else None,
            "partner_state": slave.partner_state if slave else None,
        }
        if lacp is Lacp.UP:
            self.log.info("lacp is up", **fields)
        elif lacp is Lacp.DOWN:
            self.log.warning("lacp is down", **fields)
        else:
            self.log.warning("lacp state is unknown", reason=now.reason, **fields)

    def _drop_stale(self, pf: str, facts: PfFacts) -> None:
        if not self.ledger.disabled(pf) or not facts.exists:
            return
        stale = ledgers.stale_entries(
            self.ledger, self.boot_id, {pf: (facts.ifindex, facts.numvfs)}
        )
        for name, reason in stale:
            self.log.warning(
                "ledger entries dropped: these are not the vfs the relay disabled",
                interface=name,
                reason=reason,
                ids=sorted(self.ledger.disabled(name)),
            )
        if stale:
            self._save_ledger(ledgers.without(self.ledger, [name for name, _ in stale]))

    def _apply(self, pf: str, facts: PfFacts, plan: Plan, link: PfLink) -> Tuple[VF, ...]:
        states = {vf.vf: vf.link_state for vf in link.vfs}
        recorded = set(self.ledger.disabled(pf))
        for vf in plan.forget:
            recorded.discard(vf)
            self.log.info(
                "vf link state was changed by someone else; forgetting it",
                interface=pf,
                id=vf,
                state=_value(states.get(vf)),
            )
        changes = [VfChange(pf, vf, LinkState.DISABLE) for vf in plan.disable]
        changes += [VfChange(pf, vf, LinkState.AUTO) for vf in plan.restore]
        failed_now: Set[str] = set()
        if self.dry_run:
            self._rearm(pf, "dry-run vf ", {f"dry-run vf {c.vf}" for c in changes})
            for change in changes:
                self.report_once(
                    pf,
                    f"dry-run vf {change.vf}",
                    "info",
                    "vf link state would be set (dry run)",
                    id=change.vf,
                    state=change.state.value,
                )
        elif changes:
            if plan.disable:
                # Write-ahead: an ip that fails or times out may still have disabled some of
                # these VFs; once recorded, the next cycle sorts them out (still auto while
                # down: disabled again; auto once up: forgotten; disable: restored on up).
                # Recorded only after the change, such a VF looked hand-disabled for good.
                recorded.update(plan.disable)
                entry = ledgers.PfEntry(frozenset(recorded), facts.ifindex, facts.numvfs)
                self._save_ledger(self.ledger.with_pf(pf, entry))
            result = self.ip.set_vf_states(changes)
            for change in result.applied:
                states[change.vf] = change.state
                if change.state is LinkState.AUTO:
                    recorded.discard(change.vf)
                self.log.info(
                    "vf link state was set", interface=pf, id=change.vf, state=change.state.value
                )
            failed_now = {f"set vf {change.vf}" for change, _ in result.failed}
            for change, error in result.failed:
                # Retried every cycle (the table is level-triggered), reported once.
                self.report_once(
                    pf,
                    f"set vf {change.vf}",
                    "error",
                    "failed to set vf link state",
                    id=change.vf,
                    state=change.state.value,
                    error=error,
                )
        self._rearm(pf, "set vf ", failed_now)
        entry = ledgers.PfEntry(frozenset(recorded), facts.ifindex, facts.numvfs)
        self._save_ledger(self.ledger.with_pf(pf, entry))
        return tuple(VF(vf.vf, states.get(vf.vf), vf.mac) for vf in link.vfs)


def disabled_by_relay(recorded: FrozenSet[int], vfs: Iterable[VF]) -> FrozenSet[int]:
    """The recorded VFs that are ``disable`` now, or that netlink did not show.

    A VF is recorded before the relay sets it (write-ahead), so a change that failed leaves
    it recorded but still ``auto``: the relay has not disabled it, and status says so.
    """
    shown = {vf.vf: vf.link_state for vf in vfs}
    return frozenset(v for v in recorded if shown.get(v, LinkState.DISABLE) is LinkState.DISABLE)


def _value(state: Optional[LinkState]) -> Optional[str]:
    return state.value if state is not None else None


def observe(config: Config, ip: Optional[IpPort], ledger: ledgers.Ledger, pf: str) -> PfReport:
    """Read-only view of one PF for ``pfrelay status``/``check``: no decision, no change.

    Unlike the cycle it reads the VF states whenever the PF has VFs (a person asked), and
    reports an unreadable VF list instead of failing.
    """
    facts = read_pf(config.procfs, config.sysfs, pf)
    assessment = assess(facts, partner_requires_aggregation=config.partner_requires_aggregation)
    recorded = ledger.disabled(pf)
    if ip is None or not facts.exists or not (facts.numvfs or recorded):
        return PfReport(assessment, facts, None if facts.numvfs else (), recorded)
    try:
        out, _err = ip.link_show(pf)
        link = parse_link_show(pf, out)
    except (IpError, VfListError) as exc:
        return PfReport(assessment, facts, None, recorded, vf_error=str(exc))
    return PfReport(assessment, facts, link.vfs, disabled_by_relay(recorded, link.vfs))
