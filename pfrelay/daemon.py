"""``pfrelay run``: the loop around ``Relay.cycle`` — timing, signals, systemd, link events.

The loop is single-threaded. It sleeps in ``select`` on three things: the signal wake-up fd
(SIGTERM/SIGINT stop, SIGHUP reloads the configuration), the stdout of an ``ip monitor link``
child (the kernel sends RTM_NEWLINK for a PF when its LACP port state expires, so the relay
reacts at once instead of at the next poll; bench/kernel showed 6.12 also announces most
recoveries, when the slave turns ACTIVE), and the polling timeout (the safety net); while
that child is not running, also a fast port-state check (``portwatch``) between polls.
VF reads and changes go to one ``ip`` co-process started here (``ipsession``), with a budget
per PF and per cycle (``iproute.IpBudget``) well under the watchdog. The systemd watchdog is
fed only from this loop (after each PF and between ``ip`` calls), so a loop that hangs lets
it fire, and a hung ``ip`` is killed at the budget instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import FrameType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from pfrelay import __version__, children, metrics, runtime
from pfrelay import config as configs
from pfrelay.children import die_with_parent
from pfrelay.discovery import Discovery, discover
from pfrelay.host import read_boot_id
from pfrelay.iproute import Ip, IpBudget, IpError, ip_budgets, resolve_binary
from pfrelay.ipsession import IpSession
from pfrelay.lacp import Lacp
from pfrelay.log import LEVELS, EventLog
from pfrelay.portwatch import PortWatch
from pfrelay.relay import IpPort, PfReport, Relay
from pfrelay.systemd import Notifier, child_env

#: Between full cycles, each PF's port states are read this often (``portwatch``) while no
#: link-event monitor runs (it failed, or events are off) and the polling interval is more
#: than twice as long. With the monitor, an expiry on 6.12 flips the slave to BACKUP, an
#: RTM_NEWLINK that wakes the relay within ms (bench/kernel: 25 of 25 expiries, "lacp is
#: down" 1 ms median after the sysfs change), and the check would only cost: ~1.3 ms of CPU
#: each in the TCG guest (idle at 1000 ms polling, ticks per 20 s: 12-14 without it, 72 every
#: 50 ms, 45 every 100 ms, 30 every 200 ms, 25-29 every 250 ms; the original relay: 21).
FAST_CHECK_S = 0.25


def status_line(reports: Sequence[PfReport], *, ledger_unsaved: bool = False) -> str:
    """One line for ``systemctl status``: ``2 PFs: ens1f0 up, ens1f1 DOWN (5 VFs disabled)``.

    VFs the relay holds disabled for a PF it cannot monitor are shown with when they come
    back, and a ledger that cannot be written is said at the end (a restart would lose them).
    """
    parts = []
    for report in reports:
        a = report.assessment
        held = len(report.disabled_by_relay)
        if not a.monitored:
            text = f"{a.interface} not monitored: {a.reason}"
            if held:
                text += f" ({held} VFs held disabled"
                if report.release_in_s is not None:
                    text += f", restored in {report.release_in_s:.0f} s"
                text += ")"
            parts.append(text)
            continue
        text = f"{a.interface} {'DOWN' if a.lacp is Lacp.DOWN else a.lacp.value}"
        if held:
            text += f" ({held} VFs disabled)"
        parts.append(text)
    count = len(reports)
    line = f"{count} PF{'s' if count != 1 else ''}: " + ", ".join(parts)
    return line + ("; ledger not persisted" if ledger_unsaved else "")


class LinkEvents:
    """An ``ip -o monitor link`` child whose lines name the interfaces that changed."""

    def __init__(self, ip_binary: str, env: Dict[str, str], log: EventLog) -> None:
        self.ip_binary = ip_binary
        self.env = env
        self.log = log
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.buffer = b""
        self.next_start = 0.0

    def fileno(self) -> Optional[int]:
        """The fd to select on; (re)starts the child when it is not running.

        A child that exits closes its stdout: select wakes, ``read_names`` reads EOF and calls
        ``_exited``; no ``wait4`` on every pass of the loop (a syscall per wake-up).
        """
        if self.proc is None and time.monotonic() >= self.next_start:
            self.next_start = time.monotonic() + 10.0
            try:
                self.proc = subprocess.Popen(
                    [self.ip_binary, "-o", "monitor", "link"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    # Killed with the relay: it writes only when a link changes, so it
                    # would not notice a SIGKILLed relay for a long time (pfrelay.children).
                    preexec_fn=die_with_parent(),  # noqa: PLW1509 (single-threaded)
                )
            except OSError as exc:
                self.log.warning("cannot start link monitor; polling only", error=str(exc))
                return None
            assert self.proc.stdout is not None
            os.set_blocking(self.proc.stdout.fileno(), False)
        if self.proc is None or self.proc.stdout is None:
            return None
        return self.proc.stdout.fileno()

    def read_names(self) -> Set[str]:
        """Interface names in the lines available now (``2: pf0: <...> ...``)."""
        if self.proc is None or self.proc.stdout is None:
            return set()
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return set()
        except OSError:
            chunk = b""
        if not chunk:
            self._exited()
            return set()
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        names = set()
        for line in lines:
            fields = line.split(b": ", 2)
            if len(fields) >= 2 and fields[0].strip().isdigit():
                names.add(fields[1].split(b"@", 1)[0].decode("utf-8", "replace"))
            elif line.startswith(b"Deleted "):
                names.add("*")
        return names

    def _exited(self) -> None:
        # Whether its end shows first as EOF on the pipe or as an exit status, say so: link
        # events are off until the restart (at most every 10 s) and only polling is left.
        code = None
        if self.proc is not None:
            # EOF usually comes just before the exit; a child that closed its stdout and
            # lingers is not waited for long (``_close`` kills it).
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(0.5)
        self.log.warning("link monitor exited; polling only until it restarts", code=code)
        self._close()

    def _close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.proc = None
        self.buffer = b""

    close = _close


#: How often discovery re-reads the bonds when no link event asked for it (seconds). A scan
#: costs about as much as a steady-state cycle of the same PFs (bench/discovery.py), so it is
#: not repeated every poll: link events (a new bond, a PF enslaved or renamed) trigger one at
#: once, and this bounds how late a change is seen when events are lost or off.
RESCAN_S = 5.0


class Targets:
    """The PFs each cycle covers, and with discovery (``discover/``) when to look again.

    Without discovery: exactly the configured ``interfaces``, as before. With it: the names
    given explicitly, then the discovered candidates, then every PF the ledger holds disabled
    VFs of, so a PF that leaves the discovered set (its bond deleted, the PF renamed or
    excluded) keeps being cycled and the relay's ownership rules still apply to its VFs.
    Changes of the discovered set are logged when they happen, not every scan.
    """

    def __init__(self, log: EventLog, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.discovery: Optional[Discovery] = None
        self.next_scan = 0.0

    def refresh(self, config: configs.Config, *, force: bool = False) -> Set[str]:
        """Re-scan if due (or ``force``); returns the candidates that are new since last time."""
        if not config.discover:
            self.discovery = None
            return set()
        now = self.clock()
        if not force and self.discovery is not None and now < self.next_scan:
            return set()
        self.next_scan = now + RESCAN_S
        new = discover(config.sysfs, config.discover_include, config.discover_exclude)
        old, self.discovery = self.discovery, new
        self._log_changes(old, new)
        return set(new.candidates) - set(old.candidates if old is not None else ())

    def monitored(self, config: configs.Config) -> Tuple[str, ...]:
        """The PFs to monitor: the names given, then the discovered candidates."""
        names = list(config.names)
        found = self.discovery.candidates if self.discovery is not None else ()
        names.extend(pf for pf in found if pf not in names)
        return tuple(names)

    def names(self, relay: Relay) -> Optional[List[str]]:
        """The PFs of a full cycle; None without discovery (``Relay.cycle``'s default).

        With it: the monitored PFs (which this sets as ``Relay.interfaces``), then those the
        ledger holds disabled VFs of (``Relay.pf_names``), so a PF that left the discovered
        set is still cycled as not monitored and its VFs are released after the hold.
        """
        if not relay.config.discover:
            return None
        relay.interfaces = self.monitored(relay.config)
        return relay.pf_names()

    def knows(self, relay: Relay, name: str) -> bool:
        """Whether a link event for ``name`` concerns a PF or bond already cycled."""
        if name in (self.names(relay) or relay.config.names):
            return True
        return self.discovery is not None and name in dict(self.discovery.bonds).values()

    def sources(self, relay: Relay) -> Dict[str, str]:
        """PF -> how it came to be cycled: configured, discovered or ledger (for the metrics)."""
        out = {pf: "ledger" for pf in relay.ledger.pfs}
        if self.discovery is not None:
            out.update({pf: "discovered" for pf in self.discovery.candidates})
        out.update({pf: "configured" for pf in relay.config.names})
        return out

    def _log_changes(self, old: Optional[Discovery], new: Discovery) -> None:
        if old is None or old.error != new.error:
            if new.error:
                self.log.error("discovery cannot list the bonds", error=new.error)
            elif old is not None:
                self.log.info("discovery can list the bonds again")
        before = dict(old.bonds) if old is not None else {}
        after = dict(new.bonds)
        for pf in sorted(after):
            if before.get(pf) != after[pf]:
                self.log.info("pf discovered", interface=pf, bond=after[pf])
        for pf in sorted(set(before) - set(after)):
            self.log.info("pf no longer discovered", interface=pf, bond=before[pf])
        skipped_before = {s.interface: s for s in (old.skipped if old is not None else ())}
        for item in new.skipped:
            if skipped_before.get(item.interface) != item:
                self.log.info(
                    "pf skipped by discovery",
                    interface=item.interface,
                    bond=item.bond,
                    reason=item.reason,
                )
        if old is None:
            self.log.info(
                "discovery found pfs",
                interfaces=list(new.candidates),
                skipped=[s.interface for s in new.skipped],
            )


@dataclasses.dataclass
class _Signals:
    stop: bool = False
    reload: bool = False


class _Stopped(Exception):
    """SIGTERM/SIGINT came during a cycle: end it after the PF in hand (see ``progress``)."""


def serve(
    config: configs.Config,
    *,
    config_path: Optional[str],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    log: EventLog,
    once: bool = False,
    dry_run: bool = False,
    watch_events: bool = True,
) -> int:
    """Run the relay until SIGTERM/SIGINT (or one cycle with ``once``). Returns the exit code."""
    ip_binary = resolve_binary(config.ip, env)
    state_file = Path(config.state_file)
    lock = runtime.acquire(state_file)
    notifier = Notifier(env)
    children_env = child_env(env)
    watchdog_s = notifier.watchdog_interval_s
    watchdog_timeout_s = 2 * watchdog_s if watchdog_s is not None else None
    budget = IpBudget(*ip_budgets(config.ip_timeout_ms / 1000.0, watchdog_timeout_s))
    ip = _ip_port(ip_binary, config.ip_timeout_ms / 1000.0, children_env, budget, log, once)
    log.info(
        "Starting application",
        version=__version__,
        interfaces=list(config.interfaces),
        polling_interval_ms=config.polling_interval_ms,
        dry_run=dry_run or None,
        discover_include=list(config.discover_include) or None,
        discover_exclude=list(config.discover_exclude) or None,
    )
    for name in configs.unused_patterns(config):
        log.warning(
            f"{name} is ignored: interfaces has no discover/ entry",
            hint="add discover/ to interfaces, or remove " + name,
        )
    if notifier.problem:
        log.warning("systemd notification is off", reason=notifier.problem)
    relay = Relay(config, ip, log, dry_run=dry_run, boot_id=read_boot_id(config.procfs))
    targets = Targets(log)
    rescan = False  # a link event named an interface discovery may not know yet

    signals = _Signals()
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno())

    def on_stop(_signum: int, _frame: Optional[FrameType]) -> None:
        signals.stop = True

    def on_reload(_signum: int, _frame: Optional[FrameType]) -> None:
        signals.reload = True

    def on_child(_signum: int, _frame: Optional[FrameType]) -> None:
        pass  # the wake-up fd ends the select; the loop reaps

    # As PID 1 (a container's entry point) orphans of the PID namespace become our children:
    # SIGCHLD wakes the loop, which reaps them (pfrelay.children), so no zombies pile up.
    init = os.getpid() == 1
    handlers = [(signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_reload)]
    if init:
        handlers.append((signal.SIGCHLD, on_child))
    old_handlers = {sig: signal.signal(sig, handler) for sig, handler in handlers}
    events = LinkEvents(ip_binary, children_env, log) if watch_events and not once else None
    watch = PortWatch(config.sysfs, config.names) if not once else None
    next_check = 0.0
    last_ping = time.monotonic()
    ready = False
    heartbeat = runtime.heartbeat_path(state_file)
    last_status = ""
    notify_failing = False
    ledger_marked_unsaved = False

    def notified(ok: bool) -> bool:
        # Notifier swallows send errors (the relay must not die with systemd); say so once
        # when they start and once when they stop, or a watchdog kill would come unexplained.
        nonlocal notify_failing
        if notifier.enabled and ok == notify_failing:
            notify_failing = not ok
            if notify_failing:
                log.warning(
                    "cannot notify systemd; retrying with every message",
                    error=notifier.last_error,
                    socket=env.get("NOTIFY_SOCKET"),
                )
            else:
                log.info("systemd notification works again")
        return ok

    def feed_watchdog() -> None:
        nonlocal last_ping
        if watchdog_s is not None and time.monotonic() - last_ping >= watchdog_s:
            notified(notifier.watchdog())
            last_ping = time.monotonic()

    def progress() -> None:
        # After each PF of a cycle. A stop request ends the cycle here: the PF in hand is
        # done (its VFs and ledger entry are consistent), and no further ip is started, so
        # with hung ip calls a stop costs at most the one in flight, not one per PF.
        feed_watchdog()
        if signals.stop:
            raise _Stopped
        budget.next_pf()

    def between_ip_calls() -> bool:
        # Between two ip calls of one PF (the per-VF fallback): bounded calls, so feeding the
        # watchdog here hides no hang; a stop leaves the rest untried.
        feed_watchdog()
        return not signals.stop

    budget.between = between_ip_calls

    try:
        next_poll = time.monotonic()
        pending: Optional[Set[str]] = None  # PFs to cycle early after a link event
        while not signals.stop:
            now = time.monotonic()
            if now >= next_poll or pending is not None:
                full = now >= next_poll
                first_scan = targets.discovery is None
                added = targets.refresh(relay.config, force=rescan)
                rescan = False
                targets.names(relay)  # the monitored set, also for a partial cycle
                for pf in () if first_scan else sorted(added):
                    relay.appeared(pf)  # a bond that appears now is still negotiating
                names = targets.names(relay) if full else sorted((pending or set()) | added)
                budget.start_cycle()
                try:
                    reports = relay.cycle(names, progress)
                except _Stopped:
                    break
                if full:
                    next_poll = now + relay.config.polling_interval_ms / 1000.0
                    if watch is not None:
                        watch.reopen(relay.pf_names(), relay.config.sysfs)
                    runtime.beat(heartbeat)
                    if relay.ledger_unsaved != ledger_marked_unsaved:
                        runtime.mark_ledger(lock, persisted=not relay.ledger_unsaved)
                        ledger_marked_unsaved = relay.ledger_unsaved
                    if notifier.enabled:
                        line = status_line(reports, ledger_unsaved=relay.ledger_unsaved)
                        if line != last_status and notified(notifier.status(line)):
                            last_status = line  # else sent again after the next cycle
                    _write_metrics(relay, reports, time.monotonic() - now, log, targets)
                pending = None
                if not ready:
                    line = status_line(reports, ledger_unsaved=relay.ledger_unsaved)
                    notified(notifier.ready(line))
                    ready = True
                if once:
                    break
            feed_watchdog()
            if signals.reload:
                signals.reload = False
                relay = _reload(relay, config_path, flags, env, log, notifier, events)
                targets.next_scan = 0.0  # the patterns (or discovery itself) may have changed
                budget.pf_s, budget.cycle_s = ip_budgets(
                    relay.config.ip_timeout_ms / 1000.0, watchdog_timeout_s
                )
                next_poll = time.monotonic()
                continue
            recheck = relay.recheck_at()
            if recheck is not None and recheck <= time.monotonic():
                pending = set(relay.pf_names())  # a PF to read again before the next poll
                continue
            timeout = max(0.0, next_poll - time.monotonic())
            if recheck is not None:
                timeout = min(timeout, recheck - time.monotonic())
            fast = (
                watch is not None
                and (events is None or events.proc is None)
                and relay.config.polling_interval_ms / 1000.0 > 2 * FAST_CHECK_S
            )
            if fast and watch is not None and watch.fds:
                timeout = min(timeout, max(0.0, next_check - time.monotonic()))
            if watchdog_s is not None:
                timeout = min(timeout, max(0.0, last_ping + watchdog_s - time.monotonic()))
            fds: List[int] = [wake_r.fileno()]
            event_fd = events.fileno() if events is not None else None
            if event_fd is not None:
                fds.append(event_fd)
            if init:
                # The monitor and the ip co-process are the relay's own children: their
                # Popen objects must get their exit status themselves.
                own = [events.proc.pid] if events is not None and events.proc else []
                if isinstance(relay.ip, IpSession) and relay.ip.proc is not None:
                    own.append(relay.ip.proc.pid)  # the co-process: its Popen reaps it
                reaped = children.reap_orphans(own)
                if reaped:
                    log.debug("reaped orphaned processes", pids=reaped)
            readable, _, _ = select.select(fds, [], [], timeout)
            if wake_r.fileno() in readable:
                with contextlib.suppress(OSError):
                    wake_r.recv(4096)
            if events is not None and event_fd in readable:
                changed = events.read_names()
                if changed:
                    pending = _merge(pending, _affected(relay, changed, targets.names(relay)))
                    if relay.config.discover and any(
                        name == "*" or not targets.knows(relay, name) for name in changed
                    ):
                        rescan = True  # a new bond, a PF enslaved or renamed: look now
                        pending = pending or set()
            if fast and watch is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + FAST_CHECK_S
                pending = _merge(pending, watch.check() or None)
        notified(notifier.stopping())
        log.info("Stopping application")
        # --once: the VFs were changed, but a restart would not know they are the relay's.
        return 1 if once and relay.ledger_unsaved else 0
    finally:
        if events is not None:
            events.close()
        if watch is not None:
            watch.close()
        if isinstance(relay.ip, IpSession):
            relay.ip.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(old_wakeup)
        wake_r.close()
        wake_w.close()
        lock.close()


def _ip_port(
    binary: str,
    timeout_s: float,
    env: Dict[str, str],
    budget: IpBudget,
    log: EventLog,
    once: bool = False,
) -> IpPort:
    """The relay's iproute2: a co-process started now (no exec when it matters), or one-shot
    ``ip`` for a single cycle."""
    if once:
        return Ip(binary, timeout_s, env=env, budget=budget)
    session = IpSession(binary, timeout_s, env=env, budget=budget, log=log)
    session.start()
    return session


def _merge(pending: Optional[Set[str]], more: Optional[Set[str]]) -> Optional[Set[str]]:
    if more is None:
        return pending
    return (pending or set()) | more


def _write_metrics(
    relay: Relay,
    reports: Sequence[PfReport],
    duration_s: float,
    log: EventLog,
    targets: Optional[Targets] = None,
) -> None:
    path = relay.config.metrics_file
    if not path:
        return
    text = metrics.render(
        reports,
        relay.transitions(),
        time.time(),
        duration_s,
        sources=targets.sources(relay) if targets is not None else None,
        ledger_persisted=not relay.ledger_unsaved,
    )
    try:
        metrics.write(Path(path), text)
    except OSError as exc:
        relay.report_once(
            "", "metrics", "error", "cannot write the metrics file", error=str(exc), path=path
        )
    else:
        relay.clear_report("", "metrics")


def _affected(
    relay: Relay, names: Set[str], cycled: Optional[Sequence[str]] = None
) -> Optional[Set[str]]:
    """Cycled PFs a link event may concern: the PF itself or its bond; None if none.

    ``cycled`` is the full cycle's list (default: ``Relay.pf_names()``).
    """
    pfs = list(cycled) if cycled is not None else relay.pf_names()
    if "*" in names:
        return set(pfs)
    hit = set()
    for pf in pfs:
        memory = relay.memory.get(pf)
        bond = (
            memory.assessment.bond.name
            if memory and memory.assessment and memory.assessment.bond
            else None
        )
        if pf in names or (bond is not None and bond in names):
            hit.add(pf)
    return hit or None


def _reload(
    relay: Relay,
    config_path: Optional[str],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    log: EventLog,
    notifier: Notifier,
    events: Optional[LinkEvents] = None,
) -> Relay:
    """SIGHUP: re-read the configuration; keep the old one (and say why) if the new one is bad.

    Every key takes effect: the PFs, the intervals and paths read each cycle, and also the
    ``ip`` binary and its timeout (a new runner, and a new ``ip monitor`` child if the binary
    changed) and the log format and level. Only ``state_file`` needs a restart.
    """
    notifier.reloading()
    old = relay.config
    try:
        new, _sources = configs.load(config_path, env, flags)
        configs.require_interfaces(new)
        ip_binary = resolve_binary(new.ip, env) if new.ip != old.ip else None
    except (configs.ConfigError, IpError) as exc:
        log.error("configuration reload failed; keeping the old configuration", error=str(exc))
        notifier.ready()
        return relay
    if ip_binary is not None or new.ip_timeout_ms != old.ip_timeout_ms:
        current = relay.ip
        known = isinstance(current, (Ip, IpSession))
        binary = ip_binary or (current.binary if isinstance(current, (Ip, IpSession)) else new.ip)
        budget = current.budget if isinstance(current, (Ip, IpSession)) else IpBudget()
        if isinstance(current, IpSession):
            current.close()
        relay.ip = _ip_port(
            binary,
            new.ip_timeout_ms / 1000.0,
            child_env(env),
            budget,
            log,
            once=known and not isinstance(current, IpSession),
        )
        if ip_binary is not None and events is not None:
            events.close()
            events.ip_binary = ip_binary
            events.next_start = 0.0
    log.fmt = new.log_format
    log.threshold = LEVELS[new.log_level]
    if new.state_file != old.state_file:
        log.warning(
            "state_file cannot change on reload; restart to move it", state_file=old.state_file
        )
        new = dataclasses.replace(new, state_file=old.state_file)
    added = sorted(set(new.interfaces) - set(old.interfaces))
    removed = sorted(set(old.interfaces) - set(new.interfaces))
    relay.config = new
    relay.interfaces = tuple(new.names)  # discovery adds what it finds at the next scan
    for pf in removed:
        if relay.ledger.disabled(pf) and not new.discover:
            log.warning(
                "ledger names a pf that is not monitored; its vfs are restored after the hold",
                interface=pf,
                ids=sorted(relay.ledger.disabled(pf)),
                hold_ms=new.unmonitored_hold_ms,
            )
        else:
            relay.memory.pop(pf, None)
    log.info(
        "configuration reloaded",
        added=added,
        removed=removed,
        polling_interval_ms=new.polling_interval_ms,
    )
    notifier.ready()
    return relay
