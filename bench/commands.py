#!/usr/bin/env python3
"""Wall time of `pfrelay --help`, `--version`, `status` and `status --probe` (figures only).

Each command runs --runs times as a fresh process (as an operator or a probe runs it); prints
the median and the fastest. `status` reads a fake host tree with 2 healthy PFs and 8 VFs each
through the fake `ip` of the tests. Also prints the modules the daemon path imports.

    .venv/bin/python bench/commands.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakehost import FakeHost, healthy_pf
from fakeip import write_script
from timing import timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    pfrelay = shutil.which("pfrelay", path=str(Path(sys.executable).parent)) or "pfrelay"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PF_STATUS_RELAY_")}
    with tempfile.TemporaryDirectory() as tmp:
        host = FakeHost(Path(tmp))
        healthy_pf(host, "pf0", "bond0", ifindex=2)
        healthy_pf(host, "pf1", "bond1", ifindex=3)
        ip, state = write_script(Path(tmp) / "ipbin")
        state.add_pf("pf0", {n: "auto" for n in range(8)})
        state.add_pf("pf1", {n: "auto" for n in range(8)}, ifindex=3)
        roots = [
            "--procfs",
            str(host.procfs),
            "--sysfs",
            str(host.sysfs),
            "--state-file",
            f"{tmp}/run/state.json",
        ]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "pfrelay --version": [pfrelay, "--version"],
            "pfrelay --help": [pfrelay, "--help"],
            "pfrelay status pf0 pf1": [pfrelay, "status", "pf0", "pf1", "--ip", str(ip), *roots],
            "pfrelay status --probe live": [
                pfrelay,
                "status",
                "--probe",
                "live",
                "--state-file",
                f"{tmp}/run/state.json",
            ],
        }
        print(
            f"wall time over {args.runs} runs (median / fastest), Python {sys.version.split()[0]}:"
        )
        for name, cmd in commands.items():
            median, best = timed(cmd, args.runs, env)
            print(f"  {name:32} {median:7.1f} ms / {best:7.1f} ms")
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, pfrelay.daemon; print(len(sys.modules))"],
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"  modules loaded by `import pfrelay.daemon`: {probe.stdout.strip()}")


if __name__ == "__main__":
    main()
