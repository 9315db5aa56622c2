"""The relay's child processes: they die with it, and as PID 1 it reaps what is left to it.

* Parent-death signal. ``ip -o monitor link`` blocks on netlink and writes only when a link
  changes, so a relay killed with SIGKILL outside systemd (no cgroup to clean up) would leave
  it running for good. Every child is started with ``preexec_fn=die_with_parent()``: in the
  forked child, before ``exec``, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; the setting survives
  ``execve`` of ``ip`` (not set-uid, no file capabilities). If the relay died between fork and
  ``prctl``, the child is already orphaned and exits at once. ``preexec_fn`` is unsafe only
  in threaded programs (a lock held by another thread at fork); the relay is single-threaded,
  and everything ``prctl`` needs (libc's symbol) is looked up before the fork.
* Reaping as PID 1. In a container the relay is PID 1, so processes orphaned in its PID
  namespace (children of ``kubectl exec`` shells, of a killed ``ip``) are re-parented to it
  and stay zombies unless it waits for them. ``reap_orphans`` collects them with
  ``waitid(WNOWAIT)`` to look first and ``waitpid(pid)`` to reap, skipping the relay's own
  live ``Popen`` children, whose exit status ``subprocess`` must get itself (a stolen status
  makes ``Popen.poll`` report 0). It runs in the main loop, between cycles, where the only own
  child is the ``ip monitor``; ``subprocess.run`` children are waited for inside the cycle.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from typing import Callable, Collection, List, Optional

PR_SET_PDEATHSIG = 1


@functools.cache
def _load_prctl() -> Optional[Callable[..., int]]:
    """libc's prctl, looked up once (ctypes loads on first use, never in a forked child)."""
    import ctypes  # only where a child is started: `--help` and the probe do not pay for it

    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def die_with_parent(sig: int = signal.SIGKILL) -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that has the child get ``sig`` when the relay dies (Linux only).

    None where prctl is not available (the child then merely outlives a killed relay).
    """
    prctl = _load_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the relay died before prctl: nobody will signal us
            os._exit(1)

    return preexec


def reap_orphans(own: Collection[int] = ()) -> List[int]:
    """Reap exited children that are not ``own``; their PIDs. Never blocks, never raises."""
    reaped: List[int] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        except OSError:
            break
        if info is None or info.si_pid == 0 or info.si_pid in own:
            # Nothing exited, or an own child first in line: its Popen reaps it.
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)
        reaped.append(info.si_pid)
    return reaped
