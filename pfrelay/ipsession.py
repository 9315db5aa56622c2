"""One long-lived ``ip -j -force -batch -`` serving the relay's reads and VF changes.

Starting ``ip`` costs 2-3 ms on a host and 150-300 ms in an emulated guest, twice per reaction
(a read, then the changes). A co-process started once answers in ~0.1 ms. What iproute2 6.1
does in that mode (checked against ``lo`` and veths in a network namespace):

- Commands run one by one as lines arrive; each command's JSON is flushed to stdout when the
  command ends (``link show`` of one device: one line ``[{...}]``); ``link set`` prints nothing.
- A failing command prints its error, then ``Command failed -:N`` (N counts every line read since
  start, blank and comment lines too) on stderr, and ``-force`` goes on. An unknown object
  (``pfrelay-end``) fails that way without touching netlink: sent after each request, its
  ``Command failed`` line marks the request's end on stderr, after every byte of its stdout.
- A usage error (``state down``, a VF number out of range) exits the process (code 255).
- Names are resolved once and cached: a PF deleted and re-created (new ifindex) reads as
  ``[{}]`` and ``link set`` answers "No such device". A read that does not show the PF asked
  for, and such an error, restart the co-process (a fresh cache) and try once more.

A co-process that dies, hangs (the ip timeout), or fails the start-up check is killed and
restarted on the next call, at most every ``retry_s`` (doubling to 5 min while it fails); until
then every call goes to one-shot ``ip`` (``iproute.Ip``), as does a PF name the batch syntax
cannot carry. Changes whose outcome is unknown (death, hang) are reported failed: the relay
recorded them first (write-ahead) and retries them next cycle.
"""

from __future__ import annotations

import errno
import os
import re
import select
import subprocess
import time
from typing import Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

from pfrelay.children import die_with_parent
from pfrelay.iproute import (
    _BATCH_UNSAFE,
    ChangeResult,
    Ip,
    IpBudget,
    IpError,
    VfChange,
    _one_line,
)
from pfrelay.log import EventLog

#: Not a prefix of any ip object: fails at once with ``Object "pfrelay-end" is unknown``.
END = "pfrelay-end"
_FAILED = re.compile(rb"^Command failed -:(\d+)\s*$")
#: Errors of a stale name cache (the PF was re-created): a fresh co-process resolves anew.
_STALE = ("No such device", "Cannot find device")
MAX_RETRY_S = 300.0
#: The start-up check waits at most this long (or the ip timeout if shorter): a working ip
#: answers in milliseconds (~0.3 s under emulation), and the relay's start waits for it.
START_CHECK_S = 2.0


class _Broken(Exception):
    """The co-process died or did not answer in time; it has been killed."""


class IpSession:
    """``IpPort`` over one ``ip -j -force -batch -`` co-process; one-shot ``ip`` as fallback."""

    def __init__(
        self,
        binary: str,
        timeout_s: float,
        env: Optional[Dict[str, str]] = None,
        budget: Optional[IpBudget] = None,
        log: Optional[EventLog] = None,
        *,
        retry_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.binary = binary
        self.timeout_s = timeout_s
        self.env = env
        self.budget = budget or IpBudget()
        self.log = log
        self.retry_s = retry_s
        self.clock = clock
        self.oneshot = Ip(binary, timeout_s, env=env, budget=self.budget)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.lineno = 0  #: lines written to the current co-process
        self.starts = 0  #: co-processes started (for tests and benchmarks)
        self.next_start = 0.0
        self.backoff_s = retry_s
        self.problem: Optional[str] = None  #: why one-shot ip is used, while it is

    @property
    def processes(self) -> int:
        """Processes started: co-processes and one-shot ``ip`` runs."""
        return self.starts + self.oneshot.processes

    # ------------------------------------------------------------- lifecycle
    def start(self) -> bool:
        """Start the co-process now if it is not running; False (and why in ``problem``) if not."""
        if self.proc is not None:
            return True
        self.next_start = 0.0
        return self._ensure()

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def _ensure(self) -> bool:
        if self.proc is not None and self.proc.poll() is None:
            return True
        if self.proc is not None:
            self._broken(f"ip co-process exited with code {self.proc.returncode}")
        if self.clock() < self.next_start:
            return False
        self.budget.timeout(self.timeout_s)  # IpError when spent: not the co-process's fault
        self.starts += 1
        try:
            proc = subprocess.Popen(
                [self.binary, "-j", "-force", "-batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                close_fds=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (single-threaded): no orphan ip
            )
        except OSError as exc:
            self._failed_start(f"cannot start {self.binary}: {exc.strerror or exc}")
            return False
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
        self.proc, self.lineno = proc, 0
        # The start-up check: a read framed by the end marker must come back whole, i.e. this
        # ip flushes each command's JSON and names failed lines as 6.1 does.
        try:
            out, failed, _ = self._request(["link show dev lo"], START_CHECK_S)
        except (_Broken, IpError) as exc:
            self._failed_start(str(exc))
            return False
        if failed or '"ifname":"lo"' not in out:
            self.close()
            self._failed_start(
                "ip does not answer batch commands one by one "
                f"(start-up check: {_one_line(out) if out else 'no output'})"
            )
            return False
        if self.problem is not None and self.log is not None:
            self.log.info("ip co-process started again", binary=self.binary)
        self.problem = None
        self.backoff_s = self.retry_s
        return True

    def _failed_start(self, why: str) -> None:
        self.close()
        if self.log is not None and why != self.problem:
            self.log.warning(
                "cannot use an ip co-process; one ip per call until it starts",
                error=why,
                retry_s=self.backoff_s,
            )
        self.problem = why
        self.next_start = self.clock() + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, MAX_RETRY_S)

    def _broken(self, why: str) -> None:
        self.close()
        if self.log is not None:
            self.log.warning("ip co-process restarted", error=why)
        self.next_start = 0.0  # once at once; _failed_start backs off if that fails

    # --------------------------------------------------------------- framing
    def _request(
        self, lines: Sequence[str], limit_s: Optional[float] = None
    ) -> Tuple[str, Dict[int, str], str]:
        """Run ``lines``; (stdout, {1-based line: error}, other stderr). _Broken when it fails."""
        proc = self.proc
        assert proc is not None and proc.stdin and proc.stdout and proc.stderr
        timeout_s = self.budget.timeout(min(self.timeout_s, limit_s or self.timeout_s))
        first = self.lineno + 1
        end = self.lineno + len(lines) + 1
        self.lineno = end
        data = "".join(line + "\n" for line in lines).encode() + END.encode() + b"\n"
        out = bytearray()
        err = bytearray()
        failed: Dict[int, str] = {}
        pending: List[bytes] = []
        deadline = self.clock() + timeout_s
        fin, fout, ferr = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
        for fd in (fout, ferr):  # nothing belongs between requests: drop what is there
            while self._read(fd):
                pass
        while True:
            left = deadline - self.clock()
            if left <= 0:
                self._broken(f"no answer after {timeout_s:.3g} s (killed)")
                raise _Broken(f"ip co-process: no answer after {timeout_s:.3g} s (killed)")
            try:
                readable, writable, _ = select.select([fout, ferr], [fin] if data else [], [], left)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select itself
                continue
            if writable:
                try:
                    data = data[os.write(fin, data) :]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._gone(exc)
            if fout in readable:
                chunk = self._read(fout)
                if chunk is None:
                    self._gone(None)
                out += chunk
            if ferr in readable:
                chunk = self._read(ferr)
                if chunk is None:
                    self._gone(None)
                err += chunk
                *complete, rest = bytes(err).split(b"\n")
                err = bytearray(rest)
                for line in complete:
                    match = _FAILED.match(line.strip())
                    if not match:
                        if line.strip():
                            pending.append(line)
                        continue
                    number = int(match.group(1))
                    message = _one_line(b"\n".join(pending).decode("utf-8", "replace"))
                    pending = []
                    if number == end:
                        while True:  # every byte of stdout was written before the marker ran
                            chunk = self._read(fout)
                            if not chunk:
                                break
                            out += chunk
                        return out.decode("utf-8", "replace"), failed, ""
                    if first <= number < end:
                        failed[number - first + 1] = message

    @staticmethod
    def _read(fd: int) -> Optional[bytes]:
        """What is there to read: b"" if nothing now, None at EOF."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return b""
            return None
        return chunk or None

    def _gone(self, exc: Optional[OSError]) -> NoReturn:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(0.5)
            except subprocess.TimeoutExpired:
                code = None
        why = f"ip co-process exited (code {code})" if exc is None else f"ip co-process: {exc}"
        self._broken(why)
        raise _Broken(why)

    # --------------------------------------------------------------- IpPort
    def link_show(self, pf: str) -> Tuple[str, str]:
        """``link show dev PF`` as JSON: (stdout, stderr); IpError when it fails."""
        if _BATCH_UNSAFE.search(pf):
            return self.oneshot.link_show(pf)
        for attempt in (1, 2):
            if not self._ensure():
                return self.oneshot.link_show(pf)
            try:
                out, failed, err = self._request([f"link show dev {pf}"])
            except _Broken as exc:
                raise IpError(f"ip -j link show dev {pf}: {exc}") from None
            if failed:
                raise IpError(f"ip -j link show dev {pf}: {failed[1]}")
            if f'"ifname":"{pf}"' in out or attempt == 2:
                return out, err
            # ``[{}]``: the name cache of this co-process is stale (the PF was re-created).
            self._broken(f"{pf}: stale name cache ({_one_line(out)[:80]})")
        raise AssertionError("unreachable")  # pragma: no cover

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
        """Apply the changes in one request; failed lines are named by ``-force``."""
        if not changes:
            return ChangeResult((), ())
        try:
            usable = not any(_BATCH_UNSAFE.search(c.pf) for c in changes) and self._ensure()
        except IpError as exc:
            return ChangeResult((), tuple((c, str(exc)) for c in changes))
        if not usable:
            return self.oneshot.set_vf_states(changes)
        try:
            _out, failed, _err = self._request(
                [f"link set dev {c.pf} vf {c.vf} state {c.state.value}" for c in changes]
            )
        except (_Broken, IpError) as exc:
            return ChangeResult((), tuple((c, str(exc)) for c in changes))
        if any(s in msg for msg in failed.values() for s in _STALE):
            # The name cache is stale: a fresh co-process resolves the PF again, once.
            self._broken("stale name cache (" + "; ".join(sorted(set(failed.values()))) + ")")
            numbers = sorted(failed)
            retried = [changes[n - 1] for n in numbers]
            try:
                if self._ensure():
                    _out, again, _err = self._request(
                        [f"link set dev {c.pf} vf {c.vf} state {c.state.value}" for c in retried]
                    )
                    failed = {numbers[i - 1]: msg for i, msg in again.items()}
            except (_Broken, IpError):
                pass  # the first answers stand; the next cycle tries again
        applied = tuple(c for n, c in enumerate(changes, 1) if n not in failed)
        result = tuple((c, failed[n]) for n, c in enumerate(changes, 1) if n in failed)
        return ChangeResult(applied, result)
