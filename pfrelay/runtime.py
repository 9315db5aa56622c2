"""The runtime directory beside the ledger: the single-instance lock and the heartbeat.

``pfrelay run`` holds an exclusive ``flock`` on ``<dir>/lock`` (containing its PID) for its
whole life, so a second relay refuses to start instead of fighting the first over the same
VFs. After every completed cycle it touches ``<dir>/heartbeat``: its mtime is when the relay
last finished a cycle, which ``pfrelay status`` and the container probe read to spot a stuck
relay. Both are cheap: one ``utime`` per cycle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from pathlib import Path
from typing import IO, Optional, Tuple


class AlreadyRunning(Exception):
    """Another relay holds the lock; the message is one line."""


class RuntimeDirError(Exception):
    """The runtime directory cannot be used; the message is one line."""


@dataclasses.dataclass(frozen=True)
class ServiceInfo:
    """What the runtime directory says about the relay."""

    running: bool
    pid: Optional[int]
    last_cycle: Optional[float]  #: wall-clock time of the last completed cycle
    started: Optional[float] = None  #: when the running relay took the lock (lock file mtime)

    @property
    def cycled_since_start(self) -> bool:
        """A heartbeat left by an earlier relay (same host directory) does not count."""
        return (
            self.last_cycle is not None
            and self.started is not None
            and self.last_cycle >= self.started
        )


def probe(
    info: ServiceInfo, kind: str, max_age_s: float, now: Optional[float] = None
) -> Tuple[bool, str]:
    """Liveness (``live``) or readiness (``ready``) of the relay, with one line for the prober.

    live: a relay holds the lock and its last cycle (or, before the first one, its start) is
    at most ``max_age_s`` old. ready: a relay holds the lock and completed a cycle at most
    ``max_age_s`` ago. The LACP state plays no part: a relay with a PF down is healthy.
    """
    now = time.time() if now is None else now
    if not info.running:
        return False, f"{kind}: no relay holds the lock"
    pid = f"relay pid {info.pid}"
    if info.cycled_since_start:
        assert info.last_cycle is not None
        age = now - info.last_cycle
        ok = age <= max_age_s
        return ok, f"{kind}: {pid}, last completed cycle {age:.1f} s ago (max {max_age_s:g} s)"
    since = now - info.started if info.started is not None else 0.0
    if kind == "ready":
        return False, f"{kind}: {pid} has not completed a cycle since it started {since:.1f} s ago"
    ok = since <= max_age_s
    return (
        ok,
        f"{kind}: {pid} started {since:.1f} s ago, no cycle completed yet (max {max_age_s:g} s)",
    )


def lock_path(state_file: Path) -> Path:
    return state_file.parent / "lock"


def heartbeat_path(state_file: Path) -> Path:
    return state_file.parent / "heartbeat"


def acquire(state_file: Path) -> IO[str]:
    """Take the single-instance lock; keep the returned file open for the relay's life."""
    path = lock_path(state_file)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise RuntimeDirError(
            f"cannot use runtime directory {path.parent}: {exc.strerror or exc}; "
            "set state_file (or --state-file) to a writable place"
        ) from None
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = handle.read(32).strip()
        handle.close()
        raise AlreadyRunning(
            f"another pfrelay run (pid {other or 'unknown'}) holds {path}; "
            "stop it first (systemctl stop pf-status-relay) or use another state_file"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def beat(path: Path) -> None:
    """Touch the heartbeat file at ``path`` (``heartbeat_path(state_file)``) now.

    Errors are ignored: the ledger write reports an unusable runtime directory.
    """
    try:
        os.utime(path)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            path.touch(mode=0o600)
    except OSError:
        pass


def service_info(state_file: Path) -> ServiceInfo:
    """Is a relay running on this state file, with which PID, and when did it last cycle."""
    running = False
    pid: Optional[int] = None
    started: Optional[float] = None
    try:
        with open(lock_path(state_file), encoding="utf-8") as handle:
            started = os.fstat(handle.fileno()).st_mtime
            text = handle.read(32).strip()
            pid = int(text) if text.isdigit() else None
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                running = True
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        pass
    try:
        last: Optional[float] = os.stat(heartbeat_path(state_file)).st_mtime
    except OSError:
        last = None
    return ServiceInfo(running, pid if running else None, last, started if running else None)


def age_s(info: ServiceInfo, now: Optional[float] = None) -> Optional[float]:
    if info.last_cycle is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - info.last_cycle)
