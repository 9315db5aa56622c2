#!/usr/bin/env python3
"""CPU time and peak RSS of `pfrelay run`: 8 PFs, 100 ms polling, fake tree (figures only).

Runs the installed console script against a fake host tree in /dev/shm with every PF's LACP up
(steady state), the real `ip` for the link-event monitor, for --seconds (default 60), then
reads the process's own utime+stime and VmHWM from /proc before stopping it with SIGTERM.

    .venv/bin/python bench/daemon.py [--seconds 60] [--pfs 8] [--interval 100] [--profile FILE]

With --profile the relay runs under cProfile (slower: for where the time goes, not figures)
and the top functions by own time are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakehost import FakeHost, healthy_pf


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_run_s(pid: int) -> float:
    """Time on a CPU from the scheduler (``schedstat``, ns): exact, where utime+stime are
    sampled at the tick (10 ms) and charge a whole tick to a 0.1 ms wake-up that meets one."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def proc_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pfs", type=int, default=8)
    parser.add_argument("--interval", type=int, default=100, help="polling interval, ms")
    parser.add_argument("--profile", help="write a cProfile of the relay to this file")
    args = parser.parse_args()
    pfrelay = shutil.which("pfrelay", path=str(Path(sys.executable).parent)) or "pfrelay"
    ip = shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or "ip"
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        host = FakeHost(Path(tmp))
        names = [f"ens{n}f0" for n in range(args.pfs)]
        for n, pf in enumerate(names):
            healthy_pf(host, pf, f"bond{n}", ifindex=10 + n)
        # The real ip behind a wrapper that notes each start: processes spawned are counted.
        ip_log = Path(tmp) / "ip-starts.log"
        ip_log.touch()
        wrapper = Path(tmp) / "ip"
        wrapper.write_text(f'#!/bin/sh\necho "$*" >> {ip_log}\nexec {ip} "$@"\n')
        wrapper.chmod(0o755)
        runner = [pfrelay]
        if args.profile:
            runner = [sys.executable, "-m", "cProfile", "-o", args.profile, pfrelay]
        cmd = [
            *runner,
            "run",
            "--procfs",
            str(host.procfs),
            "--sysfs",
            str(host.sysfs),
            "--ip",
            str(wrapper),
            "--state-file",
            f"{tmp}/run/state.json",
            "--polling-interval",
            str(args.interval),
        ]
        for pf in names:
            cmd += ["-i", pf]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF_STATUS_RELAY_")}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        time.sleep(2.0)  # start-up (imports, first cycle) is not steady state
        if proc.poll() is not None:
            sys.exit(f"pfrelay run exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        cpu0, run0, t0 = proc_cpu_s(proc.pid), proc_run_s(proc.pid), time.monotonic()
        started = len(ip_log.read_text().splitlines())
        time.sleep(args.seconds)
        cpu1, run1, t1 = proc_cpu_s(proc.pid), proc_run_s(proc.pid), time.monotonic()
        spawned = len(ip_log.read_text().splitlines()) - started
        hwm = proc_hwm_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        t_stop = time.monotonic()
        code = proc.wait(timeout=10)
        stop_s = time.monotonic() - t_stop
    cycles = (t1 - t0) * 1000 / args.interval
    cpu = cpu1 - cpu0
    run = run1 - run0
    print(
        f"pfrelay run, {args.pfs} PFs, {args.interval} ms polling, {t1 - t0:.0f} s steady state "
        f"(~{cycles:.0f} cycles):"
    )
    print(
        f"  CPU {cpu:.2f} s = {100 * cpu / (t1 - t0):.2f} % of one core; {1000 * cpu / cycles:.2f} ms per cycle"
    )
    print(
        f"  on-CPU (schedstat) {run:.3f} s = {100 * run / (t1 - t0):.2f} % of one core; "
        f"{1000 * run / cycles:.3f} ms per cycle"
    )
    print(f"  peak RSS {hwm:.1f} MB; SIGTERM -> exit {code} in {stop_s * 1000:.0f} ms")
    print(f"  ip processes started in the steady state: {spawned}")
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
