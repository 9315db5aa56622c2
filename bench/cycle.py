#!/usr/bin/env python3
"""Steady-state cycle cost: 1, 8 and 32 PFs on a fake host tree (figures, no pass/fail).

Each PF is the only slave of its own 802.3ad bond with LACP up (the real 6.12 capture), the
ledger is empty: the relay's state for ~all of its life. The tree lives in /dev/shm when it
exists (sysfs and procfs are in memory too). Prints median and p99 over N cycles, the files
opened and the ip processes started per cycle (the target: none).

    .venv/bin/python bench/cycle.py [--cycles 1000] [--quick]
"""

from __future__ import annotations

import argparse
import builtins
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakehost import FakeHost, healthy_pf
from fakeip import FakeIp
from timing import machine_line, scratch_base

from pfrelay.config import Config
from pfrelay.log import EventLog
from pfrelay.relay import Relay


def bench(pfs: int, cycles: int, root: Path) -> None:
    host = FakeHost(root / f"h{pfs}")
    names = [f"ens{n}f0" for n in range(pfs)]
    for n, pf in enumerate(names):
        healthy_pf(host, pf, f"bond{n}", ifindex=10 + n)
    config = Config(
        interfaces=tuple(names),
        procfs=str(host.procfs),
        sysfs=str(host.sysfs),
        state_file=str(root / f"h{pfs}/run/state.json"),
    )
    ip = FakeIp({pf: {v: "auto" for v in range(8)} for pf in names})
    with open(os.devnull, "w") as sink:
        relay = Relay(config, ip, EventLog("json", "info", sink))
        relay.cycle()  # the first cycle logs "pf is ready"; not steady state
        opened = 0
        real_open, real_os_open = builtins.open, os.open

        def counting_open(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal opened
            opened += 1
            return real_open(*args, **kwargs)

        def counting_os_open(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal opened
            opened += 1
            return real_os_open(*args, **kwargs)

        builtins.open, os.open = counting_open, counting_os_open
        try:
            relay.cycle()
        finally:
            builtins.open, os.open = real_open, real_os_open
        times = []
        for _ in range(cycles):
            t0 = time.perf_counter_ns()
            relay.cycle()
            times.append(time.perf_counter_ns() - t0)
    times.sort()
    median = statistics.median(times) / 1e6
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] / 1e6
    print(
        f"{pfs:3d} PFs: median {median:7.3f} ms  p99 {p99:7.3f} ms  per PF {median / pfs * 1000:6.1f} us"
        f"  files opened/cycle {opened}  ip processes {ip.processes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 cycles (for CI logs)")
    args = parser.parse_args()
    cycles = 200 if args.quick else args.cycles
    print(machine_line(f"steady-state cycle, {cycles} cycles"))
    with tempfile.TemporaryDirectory(dir=scratch_base()) as tmp:
        for pfs in (1, 8, 32):
            bench(pfs, cycles, Path(tmp))


if __name__ == "__main__":
    main()
