"""What the benchmarks share: timing a command, and where and on what they run. Stdlib only
(``bench/footprint.py`` runs it from a bare interpreter)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Tuple


def timed(cmd: List[str], runs: int, env: Dict[str, str]) -> Tuple[float, float]:
    """(median, fastest) wall time of ``cmd`` over ``runs`` runs, in milliseconds."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, min(times) * 1000


def scratch_base() -> Optional[str]:
    """A RAM-backed directory for fake trees where there is one (None: the default tmp)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def machine_line(what: str) -> str:
    """``<what>; Python 3.11.7, x86_64, 2 CPUs, tree in /dev/shm``: the header of a run."""
    base = scratch_base()
    return (
        f"{what}; Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, tree in {base or tempfile.gettempdir()}"
    )
