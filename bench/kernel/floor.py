"""The floor under a reaction with many VFs: what one netlink request through iproute2 costs.

Runs in the kernel VM (``bench/kernel/run.sh --floor``). For 8, 64 and 192 VFs on pf0 (in
its 802.3ad bond, LACP up) it times one ``ip -force -batch -`` of N ``link set dev pf0 vf I
state disable|auto`` lines against one of N ``link show dev lo`` lines (a request that
changes nothing), and checks whether one ``ip link set`` with several ``vf`` groups changes
them all (iproute2 puts each group in its own IFLA_VFINFO_LIST and the kernel keeps the last
attribute of a type: a single request cannot carry several VFs). Figures only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "kernel"))

import klab


def batch(lines: list[str]) -> float:
    """Seconds for one ``ip -force -batch -`` of these lines (its exec included)."""
    start = time.monotonic()
    subprocess.run(
        ["ip", "-force", "-batch", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        capture_output=True,
        check=False,
    )
    return time.monotonic() - start


def main() -> int:
    print("one ip -batch of N requests (ms, median of 3; exec included), pf0 in its bond")
    print(f"{'VFs':>4} {'N x vf set':>11} {'per set':>8} {'N x show lo':>12} {'per show':>9}")
    for n in (8, 64, 192):
        topo = klab.Topology()
        try:
            klab.standard_topology(topo, num_vfs=n)
            sets, shows = [], []
            for _ in range(3):
                sets.append(batch([f"link set dev pf0 vf {i} state disable" for i in range(n)]))
                sets.append(batch([f"link set dev pf0 vf {i} state auto" for i in range(n)]))
                shows.append(batch(["link show dev lo"] * n))
            s, o = statistics.median(sets) * 1000, statistics.median(shows) * 1000
            print(f"{n:>4} {s:>11.0f} {s / n:>8.2f} {o:>12.0f} {o / n:>9.2f}")
            if n == 8:
                groups = [w for i in range(n) for w in ("vf", str(i), "state", "disable")]
                done = subprocess.run(
                    ["ip", "link", "set", "dev", "pf0", *groups],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                changed = sorted(vf for vf, st in klab.vf_states("pf0").items() if st != "auto")
                print(
                    f"one `ip link set dev pf0 vf 0 state disable ... vf 7 state disable`:"
                    f" exit {done.returncode}, VFs changed {changed}"
                )
        finally:
            topo.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
