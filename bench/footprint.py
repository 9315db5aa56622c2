#!/usr/bin/env python3
"""Runtime closure of pfrelay: site-packages size, `pfrelay run` import time, start-up wall time.

Builds a throw-away virtualenv holding only pfrelay and what it needs at run time (no test or
dev tools), installed from PIP_ARGS (default: the hashed lock file the image uses), then:

  * the size of its site-packages (pip, setuptools and pfrelay itself left out) and the
    distributions in it;
  * `python -X importtime` of a real `pfrelay run --once` on an empty fake host: the sum of the
    top-level imports' cumulative time, and which heavy modules (rich, pydantic, tomli_w, ...)
    the daemon path imported;
  * the wall time of `pfrelay --version` and of that `pfrelay run --once` (median / fastest).

    python3 bench/footprint.py                                     # the lock file
    python3 bench/footprint.py --label before --src OLD_CHECKOUT -- 'typer>=0.9' 'tomli-w>=1.0'

Needs PyPI (or a pip cache); figures only, no pass/fail. Run it with the interpreter to
measure (python3.9 for RHEL 9's).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import timed

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tomli_w", "rich", "pydantic", "pydantic_core", "pygments", "markdown_it", "shellingham")
NOT_CLOSURE = {"pip", "setuptools", "_distutils_hack", "pkg_resources", "pfrelay", "__pycache__"}


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="lock")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--src", default=str(ROOT), help="the pfrelay source tree to install")
    parser.add_argument("pip_args", nargs="*")
    args = parser.parse_args()
    pip_args = args.pip_args or ["--require-hashes", "-r", str(ROOT / "requirements/runtime.lock")]
    with tempfile.TemporaryDirectory(prefix="pfrelay-footprint-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *pip_args], check=True)
        # pfrelay itself without its dependencies: what pip_args installed is the closure.
        subprocess.run([*pip, "--no-deps", args.src], check=True)
        site = Path(
            subprocess.run(
                [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        sizes = {}
        for entry in site.iterdir():
            if entry.name.endswith((".dist-info", ".pth")) or entry.name in NOT_CLOSURE:
                continue
            sizes[entry.name] = du(entry) if entry.is_dir() else entry.stat().st_size
        dists = sorted(
            re.sub(r"\.dist-info$", "", d.name)
            for d in site.glob("*.dist-info")
            if not d.name.startswith(("pip-", "setuptools-", "pf_status_relay-"))
        )
        total = sum(sizes.values())

        # An empty fake host: `run --once` starts, finds no PF, logs, exits 0.
        host = Path(tmp) / "host"
        (host / "proc/net/bonding").mkdir(parents=True)
        (host / "sys/class/net").mkdir(parents=True)
        pfrelay = str(venv / "bin" / "pfrelay")
        run = [
            pfrelay,
            "run",
            "--once",
            "-i",
            "pf0",
            "--procfs",
            str(host / "proc"),
            "--sysfs",
            str(host / "sys"),
            "--ip",
            "/bin/true",
            "--state-file",
            f"{tmp}/run/state.json",
            "--config",
            "/dev/null",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF_STATUS_RELAY_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        subprocess.run(run, capture_output=True, env=env, check=False)  # warm the page cache
        totals = []
        for _ in range(5):
            imports = subprocess.run(
                [py, "-X", "importtime", *run], capture_output=True, text=True, env=env, check=False
            )
            cumulative = 0
            for line in imports.stderr.splitlines():
                match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
                if match and match.group(3) == " ":
                    cumulative += int(match.group(2))
            totals.append(cumulative)
        cumulative = int(statistics.median(totals))
        # -X importtime also lists imports that failed (typer's `try: import rich`): ask
        # sys.modules at exit which heavy modules the run really loaded.
        probe = (
            "import atexit, sys\n"
            f"atexit.register(lambda: print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules]))\n"
            "from pfrelay.cli import main\n"
            "sys.argv = ['pfrelay'] + sys.argv[1:]\n"
            "main()\n"
        )
        loaded = subprocess.run(  # cwd: `python -c` imports from it first, not the venv
            [py, "-c", probe, *run[1:]],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=tmp,
        ).stdout
        heavy_line = [line for line in loaded.splitlines() if line.startswith("HEAVY ")]
        heavy = heavy_line[-1][len("HEAVY ") :].strip("[]").replace("'", "").split(", ")
        heavy = [m for m in heavy if m]
        version_ms = timed([pfrelay, "--version"], args.runs, env)
        run_ms = timed(run, args.runs, env)

    print(f"runtime closure [{args.label}], Python {sys.version.split()[0]}:")
    print(f"  distributions: {', '.join(dists)}")
    print(
        f"  site-packages: {total / 1e6:.2f} MB in {len(sizes)} entries (pip, setuptools excluded)"
    )
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:6]:
        print(f"    {name:28} {size / 1e6:6.2f} MB")
    print(
        f"  `pfrelay run --once` imports: {cumulative / 1000:.1f} ms"
        " (-X importtime, top level, median of 5)"
    )
    print(f"  heavy modules on the daemon path: {', '.join(heavy) or 'none'}")
    print(f"  wall: pfrelay --version {version_ms[0]:.0f} ms / {version_ms[1]:.0f} ms,", end=" ")
    print(f"pfrelay run --once {run_ms[0]:.0f} ms / {run_ms[1]:.0f} ms (median / fastest)")


if __name__ == "__main__":
    if shutil.which("true") is None:
        sys.exit("bench/footprint.py: needs /bin/true as a stand-in ip")
    main()
