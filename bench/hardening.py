#!/usr/bin/env python3
"""What issue 13's runtime hardening costs (figures only, no pass/fail).

* One ``ip -V`` through ``subprocess.run`` with and without ``preexec_fn=die_with_parent()``
  (the parent-death signal forces ``fork`` where CPython would ``vfork``), interleaved, in a
  process that has imported the daemon's modules (about the relay's RSS).
* One heartbeat: ``os.utime(path)`` (before) against ``runtime.beat`` (open with
  ``O_NOFOLLOW``, ``fstat``, ``futimens``, close), in /dev/shm.
* One ledger write (``ledger.save``: temp, ``fchmod``, ``fsync``, rename, directory ``fsync``)
  in the runtime directory given by --dir (default: a temp directory under /dev/shm).

    .venv/bin/python bench/hardening.py [--runs 300] [--ip /usr/sbin/ip] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List

import pfrelay.cli
import pfrelay.daemon
import pfrelay.relay
import pfrelay.status  # noqa: F401 - the daemon's imports, for a realistic fork
from pfrelay import ledger, runtime
from pfrelay.children import die_with_parent


def figures(label: str, samples: List[float], unit: float, name: str) -> None:
    samples = sorted(samples)
    p90 = samples[int(len(samples) * 0.9) - 1]
    print(
        f"{label}: median {statistics.median(samples) * unit:.2f} {name}, "
        f"p90 {p90 * unit:.2f} {name} ({len(samples)} runs)"
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--ip", default=shutil.which("ip") or "/usr/sbin/ip")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()

    def spawn(preexec: bool) -> None:
        subprocess.run(
            [args.ip, "-V"],
            capture_output=True,
            check=True,
            preexec_fn=die_with_parent() if preexec else None,
        )

    plain: List[float] = []
    guarded: List[float] = []
    for _ in range(args.runs):
        plain.append(timed(lambda: spawn(False)))
        guarded.append(timed(lambda: spawn(True)))
    figures("ip -V, no preexec_fn (vfork)", plain, 1000, "ms")
    figures("ip -V, die_with_parent (fork)", guarded, 1000, "ms")

    beat = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    path = beat / "heartbeat"
    path.touch()
    n = max(1000, args.runs * 50)
    figures(
        "heartbeat os.utime(path) (before)",
        [timed(lambda: os.utime(path)) for _ in range(n)],
        1e6,
        "us",
    )
    figures(
        "heartbeat runtime.beat (after)",
        [timed(lambda: runtime.beat(path)) for _ in range(n)],
        1e6,
        "us",
    )
    shutil.rmtree(beat)

    where = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(dir="/dev/shm"))
    state = where / "state.json"
    entry = ledger.Ledger({"pf0": ledger.PfEntry(frozenset(range(8)), 2, 8)})
    figures(
        f"ledger.save in {where}",
        [timed(lambda: ledger.save(state, entry)) for _ in range(args.runs)],
        1000,
        "ms",
    )
    if not args.dir:
        shutil.rmtree(where)


if __name__ == "__main__":
    main()
