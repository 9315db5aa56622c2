"""The runtime directory beside the ledger: the single-instance lock and the heartbeat.

``pfrelay run`` holds an exclusive ``flock`` on ``<dir>/lock`` (containing its PID) for its
whole life, so a second relay refuses to start instead of fighting the first over the same
VFs. After every completed cycle it touches ``<dir>/heartbeat``: its mtime is when the relay
last finished a cycle, which ``pfrelay status`` and the container probe read to spot a stuck
relay. Both are cheap: one open and ``futimens`` per cycle.

The directory may belong to the service user (systemd's ``RuntimeDirectory=``), so nothing
here follows a link or trusts what it opened without ``fstat`` (``pfrelay.safefile``), and a
command running as root refuses a directory that someone other than root or the service user
could have prepared (owned by another user, or writable by group or others).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import pwd
import stat
import time
from pathlib import Path
from typing import IO, FrozenSet, Optional, Tuple

from pfrelay import safefile

#: The system user of the packaged service (``User=`` in systemd/pf-status-relay.service):
#: systemd creates ``RuntimeDirectory=`` owned by it, and root commands accept that.
SERVICE_USER = "pf-status-relay"


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
    #: Why it cannot be told whether a relay runs (e.g. "permission denied"); None when known.
    unknown: Optional[str] = None
    #: False while the running relay cannot write its ledger (it keeps it in memory).
    ledger_persisted: Optional[bool] = None

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
    if info.unknown is not None:
        return False, f"{kind}: cannot tell whether a relay holds the lock ({info.unknown})"
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


def _trusted_owners() -> FrozenSet[int]:
    """Who may own a runtime directory that root uses: root and the service user."""
    owners = {0}
    with contextlib.suppress(KeyError):
        owners.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return frozenset(owners)


def check_dir(directory: Path, info: os.stat_result, euid: int) -> None:
    """As root, refuse a directory another user could have prepared; RuntimeDirError.

    Accepted: owned by root or by the service user (systemd's ``RuntimeDirectory=`` with
    ``User=pf-status-relay``, mode 0700) and not writable by group or others. Anyone else
    could have planted files there, or could swap them while root works in it.
    """
    if euid != 0:
        return
    trusted = _trusted_owners()
    if info.st_uid not in trusted:
        try:
            owner = f"{pwd.getpwuid(info.st_uid).pw_name} (uid {info.st_uid})"
        except KeyError:
            owner = f"uid {info.st_uid}"
        raise RuntimeDirError(
            f"refusing runtime directory {directory}: owned by {owner}, not root or "
            f"{SERVICE_USER}; fix: chown root {directory} (or set state_file to a "
            "directory root owns)"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeDirError(
            f"refusing runtime directory {directory}: writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); fix: chmod go-w {directory}"
        )


def acquire(state_file: Path) -> IO[str]:
    """Take the single-instance lock; keep the returned file open for the relay's life.

    The directory is created 0700 if missing and, as root, checked (``check_dir``); the lock
    is opened without following a link and must be a regular file owned by this user or the
    directory's owner. Any failure, a full disk included, is a one-line RuntimeDirError.
    """
    path = lock_path(state_file)
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd = safefile.open_dir(directory)
    except OSError as exc:
        raise RuntimeDirError(
            f"cannot use runtime directory {directory}: {exc.strerror or exc}; "
            "set state_file (or --state-file) to a writable place"
        ) from None
    try:
        dir_info = os.fstat(dir_fd)
        euid = os.geteuid()
        check_dir(directory, dir_info, euid)
        fd = safefile.open_regular(
            path.name, os.O_RDWR | os.O_CREAT, 0o600, owners={euid, dir_info.st_uid}, dir_fd=dir_fd
        )
        owner = safefile.dir_owner(dir_fd)
        if owner is not None and os.fstat(fd).st_uid != owner[0]:
            # Created by root (`sudo pfrelay restore`) in the service user's directory: the
            # relay, started later as that user, must be able to open it.
            try:
                os.fchown(fd, *owner)
            except OSError:
                os.close(fd)
                raise
    except OSError as exc:
        raise RuntimeDirError(
            f"cannot use runtime directory {directory}: {exc.strerror or exc}; "
            "set state_file (or --state-file) to a writable place"
        ) from None
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.pread(fd, 32, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise AlreadyRunning(
            f"another pfrelay run (pid {other or 'unknown'}) holds {path}; "
            "stop it first (systemctl stop pf-status-relay) or use another state_file"
        ) from None
    try:
        # Unbuffered, so a full disk shows here (not again when the file is closed).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        hint = "free space in" if exc.errno == errno.ENOSPC else "check"
        raise RuntimeDirError(
            f"cannot write the lock {path}: {exc.strerror or exc}; {hint} {directory}"
        ) from None
    os.set_blocking(fd, True)
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    return handle


#: The lock's second line while the running relay cannot write its ledger.
LEDGER_NOT_PERSISTED = "ledger-not-persisted"


def mark_ledger(lock: IO[str], persisted: bool) -> None:
    """Say in the lock whether the ledger is persisted (``pfrelay status`` reads it there).

    The ledger's own directory may be full or read-only: the lock is already open and its
    one page allocated, so rewriting its first bytes needs no space. Errors are ignored.
    """
    fd = lock.fileno()
    text = f"{os.getpid()}\n" + ("" if persisted else LEDGER_NOT_PERSISTED + "\n")
    with contextlib.suppress(OSError):
        os.pwrite(fd, text.encode(), 0)
        os.ftruncate(fd, len(text))


def beat(path: Path) -> None:
    """Touch the heartbeat file at ``path`` (``heartbeat_path(state_file)``) now.

    Through the fd of a regular file opened without following a link (a planted link or FIFO
    is left alone). Errors are ignored: the ledger write reports an unusable runtime directory.
    """
    with contextlib.suppress(OSError):
        safefile.touch(path)


def service_info(state_file: Path) -> ServiceInfo:
    """Is a relay running on this state file, with which PID, and when did it last cycle.

    A lock that cannot be opened for another reason than its absence (a user who may not
    enter the service's 0700 directory: "permission denied") leaves it unknown, not "not
    running".
    """
    running = False
    persisted = True
    pid: Optional[int] = None
    started: Optional[float] = None
    unknown: Optional[str] = None
    try:
        fd = safefile.open_regular(lock_path(state_file), os.O_RDONLY)
    except FileNotFoundError:
        pass
    except safefile.Refused as exc:
        unknown = exc.strerror or str(exc)
    except PermissionError:
        unknown = "permission denied"
    except OSError as exc:
        unknown = exc.strerror or str(exc)
    else:
        with open(fd, encoding="utf-8") as handle:
            started = os.fstat(fd).st_mtime
            try:
                words = handle.read(64).split()
            except (OSError, UnicodeDecodeError):
                words = []
            pid = int(words[0]) if words and words[0].isdigit() else None
            persisted = LEDGER_NOT_PERSISTED not in words
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                running = True
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
    try:
        beat_info = os.stat(heartbeat_path(state_file), follow_symlinks=False)
        last: Optional[float] = beat_info.st_mtime if stat.S_ISREG(beat_info.st_mode) else None
    except OSError:
        last = None
    return ServiceInfo(
        running,
        pid if running else None,
        last,
        started if running else None,
        unknown,
        persisted if running else None,
    )


def age_s(info: ServiceInfo, now: Optional[float] = None) -> Optional[float]:
    if info.last_cycle is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - info.last_cycle)
