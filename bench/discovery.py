#!/usr/bin/env python3
"""Discovery's cost beside the steady-state cycle: 8 and 32 PFs on a fake host tree (figures).

Each PF has SR-IOV (sriov_totalvfs 64) and is the only slave of its own 802.3ad bond with LACP
up (the real 6.12 capture); a management bond of two plain NICs and, per PF, 64 VF netdevs
(a bare sysfs entry each, as a host with VFs bound to the kernel driver has) are there too, to
show that the scan does not grow with the netdevs. The tree lives in /dev/shm when it exists.

Prints, per size, the median and p99 of: one scan (``discovery.discover``), one steady-state
cycle of the discovered PFs (``Relay.cycle``), and a daemon cycle that scans every time; the
files opened per scan; and the ip processes started (the target: none).

    .venv/bin/python bench/discovery.py [--rounds 1000] [--quick]
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
from typing import Callable, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakehost import FakeHost, healthy_pf
from fakeip import FakeIp
from timing import machine_line, scratch_base

from pfrelay import discovery
from pfrelay.config import Config
from pfrelay.daemon import RESCAN_S
from pfrelay.discovery import DISCOVER
from pfrelay.log import EventLog
from pfrelay.relay import Relay


def timed(fn: Callable[[], object], rounds: int) -> List[int]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return times


def figures(times: List[int]) -> str:
    median = statistics.median(times) / 1e6
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] / 1e6
    return f"median {median:7.3f} ms  p99 {p99:7.3f} ms"


def bench(pfs: int, rounds: int, root: Path) -> None:
    host = FakeHost(root / f"h{pfs}")
    names = [f"ens{n}f0np0" for n in range(pfs)]
    for n, pf in enumerate(names):
        healthy_pf(host, pf, f"bond{n}", ifindex=10 + n)
        host.add_pf(pf, ifindex=10 + n, totalvfs=64)
        for v in range(64):
            (host.net(f"{pf}v{v}") / "device").mkdir(parents=True)
    host.add_pf("eno1", ifindex=2, numvfs=None)
    host.add_pf("eno2", ifindex=3, numvfs=None)
    host.add_bond("mgmt", ["eno1", "eno2"], None)
    netdevs = len(list((host.sysfs / "class/net").iterdir()))
    sysfs = str(host.sysfs)
    found = discovery.discover(sysfs)
    assert found.candidates == tuple(sorted(names)), found

    config = Config(
        interfaces=(DISCOVER,),
        procfs=str(host.procfs),
        sysfs=sysfs,
        state_file=str(root / f"h{pfs}/run/state.json"),
    )
    ip = FakeIp({pf: {v: "auto" for v in range(8)} for pf in names})
    with open(os.devnull, "w") as sink:
        relay = Relay(config, ip, EventLog("json", "info", sink))
        relay.cycle(found.candidates)  # the first cycle logs "pf is ready"; not steady state

        opened = 0
        real_open = builtins.open

        def counting_open(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal opened
            opened += 1
            return real_open(*args, **kwargs)

        builtins.open = counting_open
        try:
            discovery.discover(sysfs)
        finally:
            builtins.open = real_open

        scan = timed(lambda: discovery.discover(sysfs), rounds)
        cycle = timed(lambda: relay.cycle(found.candidates), rounds)
        both = timed(lambda: relay.cycle(discovery.discover(sysfs).candidates), rounds)
    scan_ms = statistics.median(scan) / 1e6
    cycle_ms = statistics.median(cycle) / 1e6
    print(f"{pfs:3d} PFs ({netdevs} netdevs in class/net, {len(found.candidates)} discovered):")
    print(f"      scan             {figures(scan)}  files opened/scan {opened}")
    print(f"      cycle            {figures(cycle)}")
    print(f"      scan + cycle     {figures(both)}  ip processes {ip.processes}")
    print(
        f"      a scan is {scan_ms / cycle_ms * 100:5.1f}% of a cycle; rescanning every "
        f"{RESCAN_S:g} s at a 1000 ms poll adds {scan_ms / cycle_ms * 100 / RESCAN_S:4.1f}%, "
        f"at a 100 ms poll {scan_ms / cycle_ms * 100 / RESCAN_S / 10:4.1f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 rounds (for CI logs)")
    args = parser.parse_args()
    rounds = 200 if args.quick else args.rounds
    print(machine_line(f"discovery vs steady-state cycle, {rounds} rounds"))
    with tempfile.TemporaryDirectory(dir=scratch_base()) as tmp:
        for pfs in (8, 32):
            bench(pfs, rounds, Path(tmp))


if __name__ == "__main__":
    main()
