"""The relay cycle: read each PF, assess, decide, apply, verify, record. The imperative shell.

One ``Relay`` keeps, per PF, only what the cycle needs to log transitions (not every poll), to
time the restore delay, the negotiation grace and the unmonitored hold, and to back off from
VFs whose change does not take; the truth is re-read from the host every cycle. Who owns which
VF is decided by ``ownership`` (pure); this module reads, applies, reads back and records.
Nothing here raises on a fault of the host: each fault is an event and the next cycle starts
afresh.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import (
    AbstractSet,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

from pfrelay import ledger as ledgers
from pfrelay import ownership, safefile
from pfrelay.config import Config
from pfrelay.decision import Assessment, LinkLoss, assess, distrust_stale_ports
from pfrelay.host import (
    PfFacts,
    ifindex_names,
    read_ifindex,
    read_pf,
    read_sriov,
    read_vfs_id,
)
from pfrelay.iproute import ChangeResult, IpError, VfChange
from pfrelay.lacp import Lacp
from pfrelay.log import EventLog
from pfrelay.ownership import Plan, Verdict
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
    verdict: Optional[Verdict] = None
    #: Seconds until VFs held for an unmonitored PF are restored (None: not held).
    release_in_s: Optional[float] = None


#: How long LACP of a bond that appears at run time may stay down before it counts (seconds).
NEGOTIATION_GRACE_S = 10.0
#: Longest wait before a VF whose change did not take is tried again (seconds).
MAX_BACKOFF_S = 30.0


@dataclasses.dataclass
class _Retry:
    """A VF change that did not take: tried again at ``next_at``, reported once."""

    state: LinkState
    failures: int
    next_at: float


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
    #: Since when the PF has had neither an UP nor a DOWN verdict (the unmonitored hold).
    unsure_since: Optional[float] = None
    #: The bond's ifindex at the last read: a new one is a re-created bond.
    bond_ifindex: Optional[int] = None
    retries: Dict[int, _Retry] = dataclasses.field(default_factory=dict)
    #: When port states believed after a link loss were already current (``_stale_ports``).
    up_evidence_since: Optional[float] = None
    #: When the PF was last read (``recheck_at`` asks for one read after a link loss, once).
    read_at: Optional[float] = None


class Relay:
    """Relays each PF's LACP verdict to its VFs, one ``cycle()`` at a time.

    ``interfaces`` are the PFs to monitor (the configured ones unless the caller sets it, as
    discovery does). A PF the ledger names that is not among them is cycled too, as not
    monitored, so its VFs are released after the hold instead of being stranded.
    """

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
        #: The PFs to monitor: the configured names (without ``discover/``), plus what
        #: discovery finds when the daemon sets it.
        self.interfaces: Tuple[str, ...] = tuple(config.names)
        self.ip = ip
        self.log = log
        self.dry_run = dry_run
        self.clock = clock
        self.boot_id = boot_id
        self.memory: Dict[str, _PfMemory] = {}
        self.ledger_path = Path(config.state_file)
        self.ledger_unsaved = False  #: the last write failed: retried every cycle until it works
        #: Why the file could not be read at start (EACCES, EIO, ...): read again every cycle,
        #: merged when it can be, and never overwritten before.
        self.ledger_unread: Optional[str] = None
        self.ledger = self._load_ledger()

    # ----------------------------------------------------------------- ledger
    def _load_ledger(self) -> ledgers.Ledger:
        try:
            loaded = ledgers.load(self.ledger_path)
        except ledgers.LedgerUnreadable as exc:
            self.ledger_unread = str(exc)
            self.log.error(
                "cannot read the ledger; reading it again every cycle, not overwriting it",
                error=str(exc),
                path=str(self.ledger_path),
            )
            return ledgers.Ledger(boot_id=self.boot_id)
        except ledgers.LedgerError as exc:
            self._set_aside(str(exc))
            return ledgers.Ledger(boot_id=self.boot_id)
        return self._accept(loaded)

    def _reread_ledger(self) -> bool:
        """Read a ledger that could not be read at start; True once it has been (merged)."""
        try:
            loaded = ledgers.load(self.ledger_path)
        except ledgers.LedgerUnreadable as exc:
            self.ledger_unread = str(exc)
            return False
        except ledgers.LedgerError as exc:
            self._set_aside(str(exc))
            loaded = ledgers.Ledger()
        self.ledger_unread = None
        merged, dropped = ledgers.merge(self.ledger, self._accept(loaded))
        for pf, reason in dropped:
            self.log.warning(
                "ledger entries dropped: these are not the vfs the relay disabled",
                interface=pf,
                reason=reason,
            )
        self.log.info("the ledger can be read again; merged", path=str(self.ledger_path))
        self.ledger = merged
        self.ledger_unsaved = True  # write the union
        return True

    def _accept(self, loaded: ledgers.Ledger) -> ledgers.Ledger:
        """A ledger just read, less what belongs to another boot (logged)."""
        if self.boot_id and loaded.boot_id and loaded.boot_id != self.boot_id:
            # Every entry names VFs of another boot. Dropped now, not when its PF is next
            # cycled: a later write would stamp them with this boot's ID, and they would flip
            # VFs the relay never disabled.
            for pf in sorted(loaded.pfs):
                self.log.warning(
                    "ledger entries dropped: these are not the vfs the relay disabled",
                    interface=pf,
                    reason="the ledger was written in another boot",
                    ids=sorted(loaded.disabled(pf)),
                )
            self.ledger_unsaved = bool(loaded.pfs)  # the next cycle rewrites the file
            return ledgers.Ledger(boot_id=self.boot_id)
        # With discovery the monitored set is not known yet: said when the PF is cycled.
        unnamed = set() if self.config.discover else set(loaded.pfs) - set(self.interfaces)
        for pf in sorted(unnamed):
            self.log.warning(
                "ledger names a pf that is not monitored; its vfs are restored after the hold",
                interface=pf,
                ids=sorted(loaded.disabled(pf)),
                hold_ms=self.config.unmonitored_hold_ms,
            )
        if loaded.boot_id is None:
            loaded = dataclasses.replace(loaded, boot_id=self.boot_id)
        return loaded

    def _set_aside(self, error: str) -> None:
        """A ledger that cannot be read is kept (renamed), and what it still says is logged.

        Starting empty and overwriting it at the next outage would strand the VFs it names.
        """
        text = ""
        try:  # never through a planted link, never blocked on a FIFO
            fd = safefile.open_regular(self.ledger_path, os.O_RDONLY)
            with open(fd, "rb") as handle:
                text = handle.read(4 * 1024 * 1024).decode("utf-8", "replace")
        except OSError:
            pass
        moved: Optional[Path] = None
        try:
            moved = ledgers.set_aside(self.ledger_path)
        except OSError as exc:
            self.log.error(
                "cannot read the ledger, nor move it aside; starting with an empty one",
                error=error,
                path=str(self.ledger_path),
                move_error=exc.strerror or str(exc),
            )
        else:
            self.log.error(
                "cannot read the ledger; kept it aside and started with an empty one",
                error=error,
                path=str(self.ledger_path),
                moved_to=str(moved),
            )
        hint_path = str(moved or self.ledger_path)
        for pf, vfs in sorted(ledgers.salvage(text).items()):
            self.log.warning(
                "the unreadable ledger names vfs that may still be disabled by the relay",
                interface=pf,
                ids=sorted(vfs),
                hint=f"pfrelay restore --ledger {hint_path} {pf}",
            )

    def _save_ledger(self, new: ledgers.Ledger) -> None:
        if new == self.ledger and not self.ledger_unsaved:
            return
        self.ledger = dataclasses.replace(new, boot_id=self.boot_id or new.boot_id)
        self._write_ledger()

    def _write_ledger(self) -> None:
        """Write the ledger; on failure keep ``ledger_unsaved`` so every cycle retries.

        The relay's job comes first: the VFs are disabled anyway and their ownership kept in
        memory; status, ``STATUS=``, the metrics and the log say "ledger not persisted" until
        a write succeeds.
        """
        if self.dry_run:
            return
        try:
            if self.ledger_unread is not None and not self._reread_ledger():
                raise ledgers.LedgerUnreadable(
                    f"not written before it is read: {self.ledger_unread}"
                )
            ledgers.save(self.ledger_path, self.ledger)
        except ledgers.LedgerError as exc:
            self.ledger_unsaved = True
            self.report_once("", "ledger", "error", "ledger not persisted", error=str(exc))
        else:
            if self.ledger_unsaved:
                self.log.info("ledger persisted again", path=str(self.ledger_path))
            self.ledger_unsaved = False
            self.clear_report("", "ledger")

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
        """Clear the per-VF report keys starting with ``prefix`` that are not in ``keep``."""
        memory = self.memory.setdefault(pf, _PfMemory())
        for key in [k for k in memory.last_warning if k.startswith(prefix) and k not in keep]:
            del memory.last_warning[key]

    # ------------------------------------------------------------------ cycle
    def pf_names(self) -> List[str]:
        """The PFs a full cycle visits: the monitored ones, then the others the ledger names."""
        extra = sorted(set(self.ledger.pfs) - set(self.interfaces))
        return list(self.interfaces) + extra

    def cycle(
        self,
        interfaces: Optional[Iterable[str]] = None,
        progress: Optional[Callable[[], None]] = None,
    ) -> List[PfReport]:
        """One pass over ``interfaces`` (default: ``pf_names()``); returns a report per PF.

        ``progress`` is called after each PF: the daemon feeds the watchdog from it, so many
        PFs with slow ``ip`` calls do not add up to a watchdog restart, while one hung PF does.
        """
        if self.ledger_unread is not None:
            self._reread_ledger()
        self._follow_pfs()
        names = list(interfaces) if interfaces is not None else self.pf_names()
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

    def recheck_at(self) -> Optional[float]:
        """When a PF must be read again before the next poll (clock time), or None.

        After a link loss, "up" port states that are still the pre-loss ones are believed only
        once a read a state-machine tick later shows them unchanged; waiting a whole poll for
        that read would hold the VFs one poll longer (5 s polling: 5 s).
        """
        times = []
        for pf in self.pf_names():
            memory = self.memory.get(pf)
            loss = memory.link_loss if memory is not None else None
            if memory is None or loss is None or loss.back_since is None:
                continue
            due = loss.back_since + loss.window
            # Read at or after that moment already (and still held: the host could not be
            # read): the next poll reads it again, not a busy loop.
            if memory.read_at is None or memory.read_at < due:
                times.append(due)
        return min(times) if times else None

    def _follow_pfs(self) -> None:
        """Move ledger entries of renamed PFs to their new name; say so once of vanished PFs.

        Costs one ``ifindex`` read per ledger entry while the ledger is not empty, and a scan
        of ``class/net`` only when one of them is not where it was.
        """
        if not self.ledger.pfs:
            return
        sysfs = self.config.sysfs
        moved = [
            pf
            for pf, entry in self.ledger.pfs.items()
            if entry.ifindex is not None and read_ifindex(sysfs, pf) != entry.ifindex
        ]
        if not moved:
            return
        names = ifindex_names(sysfs)
        if names is None:
            return  # cannot list the interfaces: proves nothing
        followed, renames, gone, dropped = ledgers.follow(self.ledger, names)
        for old, new in renames:
            self.log.warning(
                "pf was renamed; the vfs the relay disabled follow it",
                interface=new,
                old_name=old,
                ids=sorted(self.ledger.disabled(old)),
            )
            if old in self.memory:  # the hold's clock follows the PF, not its name
                self.memory[new] = self.memory.pop(old)
                self.memory[new].assessment = None  # log the new name's standing
        for pf, reason in dropped:
            self.log.warning(
                "ledger entries dropped: these are not the vfs the relay disabled",
                interface=pf,
                reason=reason,
            )
        for pf in gone:
            # Kept: a PF moved to another network namespace still has its VFs. Cycled as not
            # monitored; an entry whose PF comes back re-created is dropped as stale.
            self.report_once(
                pf,
                "gone",
                "warning",
                "pf is gone; the ledger keeps the vfs the relay disabled on it",
                ids=sorted(self.ledger.disabled(pf)),
            )
        if renames:
            self._save_ledger(followed)

    def _cycle_pf(self, pf: str) -> PfReport:
        cfg = self.config
        facts = read_pf(cfg.procfs, cfg.sysfs, pf, sriov=False)
        assessment = assess(facts, partner_requires_aggregation=cfg.partner_requires_aggregation)
        if pf not in self.interfaces and assessment.monitored:
            assessment = dataclasses.replace(
                assessment,
                monitored=False,
                lacp=Lacp.UNKNOWN,
                reason="not configured (nor discovered); the relay disabled vfs on it",
            )
        self.memory.setdefault(pf, _PfMemory()).read_at = self.clock()
        assessment = self._negotiation_grace(pf, assessment, facts.bond_ifindex)
        assessment = self._stale_ports(pf, assessment)
        self._log_transitions(pf, assessment)
        memory = self.memory[pf]
        now = self.clock()
        # A bond that came back and negotiates is not "unmonitorable": the hold waits for it.
        if memory.negotiating_until is not None and now < memory.negotiating_until:
            memory.unsure_since = None
        unsure = memory.unsure_since
        verdict = ownership.verdict(
            assessment.lacp if assessment.monitored else None,
            up_for_s=None if memory.up_since is None else now - memory.up_since,
            unsure_for_s=None if unsure is None else now - unsure,
            restore_delay_s=cfg.restore_delay_ms / 1000.0,
            hold_s=cfg.unmonitored_hold_ms / 1000.0,
        )
        owned = self.ledger.disabled(pf)
        if not owned and verdict is not Verdict.DOWN:
            # Steady state (LACP up, or nothing we may act on): nothing to read, nothing to spawn.
            # Faults of the last outage are re-armed: the next outage reports them afresh.
            memory.retries.clear()
            self._rearm(pf, "set vf ")
            self._rearm(pf, "dry-run vf ")
            self.clear_report(pf, "vfs")
            return PfReport(assessment, facts, None, owned, verdict=verdict)

        ifindex, numvfs, totalvfs = read_sriov(cfg.sysfs, pf)
        facts = dataclasses.replace(facts, ifindex=ifindex, numvfs=numvfs, totalvfs=totalvfs)
        vfs_id = read_vfs_id(cfg.sysfs, pf)
        self._drop_stale(pf, facts, vfs_id)
        owned = self.ledger.disabled(pf)
        if not facts.exists or (numvfs == 0 and not owned):
            # Nothing to read: no PF (its entry waits for it), or no VFs. No ip is spawned.
            return PfReport(
                assessment, facts, None, owned, None, verdict, self._release_in(memory, owned, now)
            )
        try:
            link = self._read_vfs(pf, facts)
        except (IpError, VfListError) as exc:
            self.report_once(pf, "vfs", "error", "failed to read vf link states", error=str(exc))
            return PfReport(
                assessment,
                facts,
                None,
                owned,
                str(exc),
                verdict,
                self._release_in(memory, owned, now),
            )
        self.clear_report(pf, "vfs")
        # Without sriov_numvfs a truncated list cannot be told from a complete one: keep the
        # owned VFs netlink does not show rather than forget (and strand) them.
        complete = facts.numvfs is not None and missing_vfs(link, facts.numvfs) == 0
        states = {vf.vf: vf.link_state for vf in link.vfs}
        wanted = ownership.plan(verdict, states, owned, complete=complete)
        vfs = self._apply(pf, facts, vfs_id, wanted, link, complete)
        owned = self.ledger.disabled(pf)
        return PfReport(
            assessment,
            facts,
            vfs,
            disabled_by_relay(owned, vfs),
            verdict=verdict,
            release_in_s=self._release_in(memory, owned, now),
        )

    def _release_in(self, memory: _PfMemory, owned: FrozenSet[int], now: float) -> Optional[float]:
        if not owned or memory.unsure_since is None:
            return None
        hold_s = self.config.unmonitored_hold_ms / 1000.0
        return max(0.0, memory.unsure_since + hold_s - now)

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

    def _negotiation_grace(
        self, pf: str, now: Assessment, bond_ifindex: Optional[int]
    ) -> Assessment:
        """A bond that appears (or is re-created) while the relay runs is not "down" at once.

        A new 802.3ad bond shows 71/0 (partner defaulted) for ~3 s until the first LACPDUs
        are exchanged (seen on 6.12). Treating that as "down" would disable and re-enable
        every VF each time a bond is (re)created. So for NEGOTIATION_GRACE_S after a PF
        becomes monitored at run time - or its bond's ifindex changes, a bond deleted and
        re-created between two polls - DOWN counts as UNKNOWN (nothing changes); a bond that
        is down when the relay starts is acted on at once.
        """
        memory = self.memory.setdefault(pf, _PfMemory())
        before = memory.settled
        if not now.unreadable:
            memory.settled = now
        recreated = (
            now.monitored
            and memory.bond_ifindex is not None
            and bond_ifindex is not None
            and bond_ifindex != memory.bond_ifindex
        )
        memory.bond_ifindex = bond_ifindex if now.monitored else None
        if now.monitored and ((before is not None and not before.monitored) or recreated):
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
        prior = memory.link_loss
        held, memory.link_loss = distrust_stale_ports(now, prior, self.clock())
        if (
            held.lacp is Lacp.UP
            and prior is not None
            and prior.back_since is not None
            and memory.link_loss is None
        ):
            # Believed at the re-read: unchanged a few ticks on, so current since MII came
            # back (stale ones would have been re-initialised). The restore delay counts from
            # then, not from this read (with slow polling, a whole poll later).
            memory.up_evidence_since = prior.back_since
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
        clock = self.clock()
        if lacp is Lacp.UP and was is not Lacp.UP:
            memory.up_since = memory.up_evidence_since or clock
        elif lacp is not Lacp.UP:
            memory.up_since = None
        memory.up_evidence_since = None
        if lacp in (Lacp.UP, Lacp.DOWN):
            memory.unsure_since = None
        elif memory.unsure_since is None:
            memory.unsure_since = clock
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
            # Why, when the port states alone do not say it (the bond set down, stale states).
            extra = {"reason": now.reason} if now.reason else {}
            self.log.warning("lacp is down", **fields, **extra)
        else:
            self.log.warning("lacp state is unknown", reason=now.reason, **fields)

    def _drop_stale(self, pf: str, facts: PfFacts, vfs_id: Optional[int]) -> None:
        if not self.ledger.disabled(pf) or not facts.exists:
            return
        now = ledgers.Identity(facts.ifindex, facts.numvfs, vfs_id)
        stale = ledgers.stale_entries(self.ledger, self.boot_id, {pf: now})
        for name, reason in stale:
            self.log.warning(
                "ledger entries dropped: these are not the vfs the relay disabled",
                interface=name,
                reason=reason,
                ids=sorted(self.ledger.disabled(name)),
            )
        if stale:
            self.memory.setdefault(pf, _PfMemory()).retries.clear()
            self._save_ledger(ledgers.without(self.ledger, [name for name, _ in stale]))

    # ------------------------------------------------------------------ apply
    def _record(
        self, pf: str, facts: PfFacts, vfs_id: Optional[int], owned: FrozenSet[int]
    ) -> None:
        entry = self.ledger.entry(pf).updated(owned, facts.ifindex, facts.numvfs, vfs_id)
        self._save_ledger(self.ledger.with_pf(pf, entry))

    def _due(self, pf: str, wanted: Plan) -> Plan:
        """``wanted`` without the changes of VFs that are backing off (tried again later)."""
        retries = self.memory[pf].retries
        now = self.clock()

        def due(vf: int, state: LinkState) -> bool:
            retry = retries.get(vf)
            if retry is None or retry.state is not state:
                retries.pop(vf, None)
                return True
            return now >= retry.next_at

        return dataclasses.replace(
            wanted,
            disable=tuple(vf for vf in wanted.disable if due(vf, LinkState.DISABLE)),
            restore=tuple(vf for vf in wanted.restore if due(vf, LinkState.AUTO)),
        )

    def _apply(
        self,
        pf: str,
        facts: PfFacts,
        vfs_id: Optional[int],
        wanted: Plan,
        link: PfLink,
        complete: bool,
    ) -> Tuple[VF, ...]:
        states: Dict[int, Optional[LinkState]] = {vf.vf: vf.link_state for vf in link.vfs}
        owned = self.ledger.disabled(pf)
        memory = self.memory[pf]
        wanted_vfs = set(wanted.disable) | set(wanted.restore)
        for vf in [vf for vf in memory.retries if vf not in wanted_vfs]:
            del memory.retries[vf]  # no longer wanted: a later failure is news again
        for vf in wanted.forget:
            self.log.info(
                "vf link state was changed by someone else; forgetting it",
                interface=pf,
                id=vf,
                state=_value(states.get(vf)),
            )
        todo = dataclasses.replace(self._due(pf, wanted), forget=wanted.forget)
        changes = [VfChange(pf, vf, LinkState.DISABLE) for vf in todo.disable]
        changes += [VfChange(pf, vf, LinkState.AUTO) for vf in todo.restore]
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
            self._record(pf, facts, vfs_id, owned - frozenset(wanted.forget))
            return tuple(link.vfs)
        if not changes:
            self._rearm(pf, "set vf ", {f"set vf {vf}" for vf in memory.retries})
            self._record(
                pf, facts, vfs_id, ownership.owned_after(owned, todo, states, complete=complete)
            )
            return tuple(link.vfs)
        if todo.disable:
            # Write-ahead: an ip that fails or times out may still have disabled some of
            # these VFs; recorded first, the read-back below (or the next cycle) sorts them
            # out. Recorded only after the change, such a VF looked hand-disabled for good.
            self._record(
                pf, facts, vfs_id, (owned | frozenset(todo.disable)) - frozenset(wanted.forget)
            )
        result = self.ip.set_vf_states(changes)
        seen = self._read_back(pf, link, states, result)
        errors = {change.vf: error for change, error in result.failed}
        failing: Set[str] = set()
        now = self.clock()
        for change in changes:
            state = seen.get(change.vf)
            if state is change.state:
                memory.retries.pop(change.vf, None)
                extra = {}
                if change.vf in errors:
                    extra["note"] = f"ip reported a failure, but it took: {errors[change.vf]}"
                self.log.info(
                    "vf link state was set",
                    interface=pf,
                    id=change.vf,
                    state=change.state.value,
                    **extra,
                )
                continue
            retry = memory.retries.get(change.vf)
            failures = 1 if retry is None else retry.failures + 1
            delay = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
            memory.retries[change.vf] = _Retry(change.state, failures, now + delay)
            failing.add(f"set vf {change.vf}")
            error = errors.get(change.vf) or (
                f"ip reported success, but the vf is still {_value(state) or 'not shown'}"
            )
            # Reported once per condition; tried again after a growing pause (the table is
            # level-triggered, so a VF that never changes would otherwise cost an ip per poll).
            self.report_once(
                pf,
                f"set vf {change.vf}",
                "error",
                "failed to set vf link state",
                id=change.vf,
                state=change.state.value,
                error=error,
            )
        self._rearm(pf, "set vf ", failing | {f"set vf {vf}" for vf in memory.retries})
        self._record(pf, facts, vfs_id, ownership.owned_after(owned, todo, seen, complete=complete))
        return tuple(VF(vf.vf, seen.get(vf.vf), vf.mac) for vf in link.vfs)

    def _read_back(
        self,
        pf: str,
        link: PfLink,
        before: Mapping[int, Optional[LinkState]],
        result: ChangeResult,
    ) -> Dict[int, Optional[LinkState]]:
        """The VFs' states after a change, as the kernel reports them.

        ``ip`` can time out after it applied a change, or exit 0 although nothing changed (a
        driver that ignores it, another agent resetting it): only a read-back says what is
        true. When it cannot be read, what ``ip`` reported is taken.
        """
        try:
            out, _err = self.ip.link_show(pf)
            after = parse_link_show(pf, out)
        except (IpError, VfListError) as exc:
            self.report_once(
                pf, "readback", "warning", "cannot read back the vfs after a change", error=str(exc)
            )
            guessed = dict(before)
            for change in result.applied:
                guessed[change.vf] = change.state
            return guessed
        self.clear_report(pf, "readback")
        return {vf.vf: vf.link_state for vf in after.vfs}


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


def follow_renames(
    ledger: ledgers.Ledger, sysfs: str
) -> Tuple[ledgers.Ledger, List[Tuple[str, str]]]:
    """The ledger with entries moved to their PFs' current names (for ``status``/``restore``)."""
    if not any(
        e.ifindex is not None and read_ifindex(sysfs, pf) != e.ifindex
        for pf, e in ledger.pfs.items()
    ):
        return ledger, []
    names = ifindex_names(sysfs)
    if names is None:
        return ledger, []
    followed = ledgers.follow(ledger, names)
    return followed.ledger, followed.renames
