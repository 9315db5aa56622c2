"""The only place that runs iproute2's ``ip``: reading a PF's VFs and setting VF link states.

Every call has a timeout, none goes through a shell, and the binary is resolved once to an
absolute path. All changes of one PF in one cycle go through one ``ip -force -batch -``
process (one exec per VF costs 140-360 ms under emulation and the RTNL lock each time on real
hosts); ``-force`` keeps going past a failed line and names it (``Command failed -:N``), so one
bad VF never blocks the others and we know exactly which one failed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from pfrelay.children import die_with_parent
from pfrelay.sriov import LinkState

_FAILED_LINE = re.compile(r"^Command failed -:(\d+)\s*$")
#: Characters that ip's batch tokenizer treats specially (comments, quotes, escapes).
_BATCH_UNSAFE = re.compile(r"[\"'#\\\s]")


class IpError(Exception):
    """``ip`` could not be run or failed; the message is one line."""


@dataclasses.dataclass(frozen=True)
class VfChange:
    """One VF link-state change."""

    pf: str
    vf: int
    state: LinkState


@dataclasses.dataclass(frozen=True)
class ChangeResult:
    """Outcome of a set of changes: which were applied and why the others failed."""

    applied: Tuple[VfChange, ...]
    failed: Tuple[Tuple[VfChange, str], ...]


class IpBudget:
    """How long ``ip`` work may still take, and whether to go on: shared by the daemon and ``Ip``.

    The daemon opens a budget per cycle (``start_cycle``) and per PF (``next_pf``); every ``ip``
    call is cut to what is left of both, so the per-VF fallback after a failed batch (64 VFs x
    the ip timeout) cannot outlast the watchdog. ``between`` runs between two calls (the daemon
    feeds the watchdog there) and says whether to go on (false once a stop was asked for).
    """

    def __init__(
        self,
        pf_s: Optional[float] = None,
        cycle_s: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pf_s = pf_s
        self.cycle_s = cycle_s
        self.clock = clock
        self.cycle_end: Optional[float] = None
        self.deadline: Optional[float] = None
        self.between: Callable[[], bool] = lambda: True

    def start_cycle(self) -> None:
        now = self.clock()
        self.cycle_end = now + self.cycle_s if self.cycle_s is not None else None
        self.next_pf()

    def next_pf(self) -> None:
        ends = [self.cycle_end] if self.cycle_end is not None else []
        if self.pf_s is not None:
            ends.append(self.clock() + self.pf_s)
        self.deadline = min(ends) if ends else None

    def timeout(self, default_s: float) -> float:
        """The timeout of the next call: ``default_s`` cut to the deadline; IpError when spent."""
        if self.deadline is None:
            return default_s
        left = self.deadline - self.clock()
        if left <= 0:
            raise IpError("ip: not run, the time for ip work of this pf and cycle is spent")
        return min(default_s, left)


def ip_budgets(ip_timeout_s: float, watchdog_s: Optional[float]) -> Tuple[float, float]:
    """(per PF, per cycle) seconds of ``ip`` work: a read and a batch, well under the watchdog.

    ``watchdog_s`` is the watchdog's timeout (``WatchdogSec``, not the ping interval). A PF gets
    a third of it at most: it is fed between calls and PFs, so no ``ip`` can starve it; the
    cycle's budget (half) bounds how long the loop is away from signals and link events.
    With ``WatchdogSec=30`` and the default 5 s timeout: 10 s per PF, 15 s per cycle.
    """
    pf_s = 2 * ip_timeout_s
    cycle_s = 4 * ip_timeout_s
    if watchdog_s is not None:
        pf_s = min(pf_s, watchdog_s / 3)
        cycle_s = min(cycle_s, watchdog_s / 2)
    return pf_s, max(pf_s, cycle_s)


#: Where root takes ``ip`` from when the ``ip`` key is the bare default name: never from PATH.
ROOT_IP_PATHS = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip")


def _search_path(env: Mapping[str, str]) -> str:
    """PATH without relative or empty entries (``which`` takes those as the current
    directory, where anyone may have left an ``ip``), then /usr/sbin and /sbin."""
    entries = env.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join([e for e in entries if os.path.isabs(e)] + ["/usr/sbin", "/sbin"])


def resolve_binary(
    name_or_path: str, env: Optional[Mapping[str, str]] = None, as_root: Optional[bool] = None
) -> str:
    """Absolute path of the ``ip`` binary, or IpError with a fix hint.

    A name is searched in PATH's absolute entries only. As root (``as_root``, by default
    whether the effective UID is 0), the default name ``ip`` is not searched at all: it is the
    first of ``ROOT_IP_PATHS`` that is executable, so root never runs an ``ip`` that a PATH
    entry or the current directory put first.
    """
    if as_root is None:
        as_root = os.geteuid() == 0
    if os.path.isabs(name_or_path):
        found: Optional[str] = name_or_path if os.access(name_or_path, os.X_OK) else None
    elif as_root and name_or_path == "ip":
        found = next((p for p in ROOT_IP_PATHS if os.access(p, os.X_OK)), None)
    elif os.sep in name_or_path:
        found = None  # relative to the current directory: never
    else:
        found = shutil.which(name_or_path, path=_search_path(env or os.environ))
    if not found:
        raise IpError(
            f"ip: {name_or_path!r} not found or not executable; install iproute2 "
            "or set the ip key / --ip to its absolute path"
        )
    return os.path.abspath(found)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)[:500] if lines else "no error message"


class Ip:
    """Runs the iproute2 binary at ``binary`` (an absolute path) with a timeout."""

    def __init__(
        self,
        binary: str,
        timeout_s: float,
        env: Optional[Dict[str, str]] = None,
        budget: Optional[IpBudget] = None,
    ):
        self.binary = binary
        self.timeout_s = timeout_s
        self.env = env
        self.budget = budget or IpBudget()
        self.processes = 0  #: processes started (for tests and benchmarks)

    def _run(
        self, args: Sequence[str], stdin: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        timeout_s = self.budget.timeout(self.timeout_s)
        self.processes += 1
        try:
            return subprocess.run(
                [self.binary, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=self.env,
                check=False,
                errors="replace",
                preexec_fn=die_with_parent(),  # a killed relay leaves no ip behind
            )
        except subprocess.TimeoutExpired:
            raise IpError(
                f"ip {' '.join(args)}: no answer after {timeout_s:.3g} s (killed)"
            ) from None
        except OSError as exc:
            raise IpError(f"ip: cannot run {self.binary}: {exc.strerror or exc}") from None

    def link_show(self, pf: str) -> Tuple[str, str]:
        """``ip -j link show dev <pf>``: (stdout JSON, stderr). Raises IpError when it fails."""
        proc = self._run(["-j", "link", "show", "dev", pf])
        if proc.returncode != 0:
            raise IpError(f"ip -j link show dev {pf}: {_one_line(proc.stderr)}")
        return proc.stdout, proc.stderr

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
        """Apply the changes through one ``ip -force -batch -`` process."""
        if not changes:
            return ChangeResult((), ())
        if any(_BATCH_UNSAFE.search(c.pf) for c in changes):
            return self._set_one_by_one(changes)
        script = "".join(f"link set dev {c.pf} vf {c.vf} state {c.state.value}\n" for c in changes)
        try:
            proc = self._run(["-force", "-batch", "-"], stdin=script)
        except IpError as exc:
            return ChangeResult((), tuple((c, str(exc)) for c in changes))
        if proc.returncode == 0:
            return ChangeResult(tuple(changes), ())
        failed_at = _failed_lines(proc.stderr)
        if not failed_at:
            # Not the batch failure format we know: find the failing ones one by one.
            return self._set_one_by_one(changes)
        applied = tuple(c for n, c in enumerate(changes, 1) if n not in failed_at)
        failed = tuple((c, failed_at[n]) for n, c in enumerate(changes, 1) if n in failed_at)
        return ChangeResult(applied, failed)

    def _set_one_by_one(self, changes: Sequence[VfChange]) -> ChangeResult:
        applied = []
        failed = []
        for n, c in enumerate(changes):
            if n and not self.budget.between():
                failed += [(rest, "not tried: the relay is stopping") for rest in changes[n:]]
                break
            try:
                proc = self._run(
                    ["link", "set", "dev", c.pf, "vf", str(c.vf), "state", c.state.value]
                )
            except IpError as exc:
                failed.append((c, str(exc)))
                continue
            if proc.returncode == 0:
                applied.append(c)
            else:
                failed.append((c, _one_line(proc.stderr)))
        return ChangeResult(tuple(applied), tuple(failed))


def _failed_lines(stderr: str) -> Dict[int, str]:
    """Map batch line number -> the error printed before its ``Command failed -:N`` line."""
    failed: Dict[int, str] = {}
    pending: List[str] = []
    for line in stderr.splitlines():
        match = _FAILED_LINE.match(line.strip())
        if match:
            failed[int(match.group(1))] = _one_line("\n".join(pending))
            pending = []
        elif line.strip():
            pending.append(line)
    return failed
