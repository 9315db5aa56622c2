"""Fixtures for the kernel end-to-end tests.

These tests need a kernel with 802.3ad bonding and the patched netdevsim, as root: they run
inside the VM that ``tests/kernel/run.sh`` boots (which sets PFRELAY_KERNEL_GUEST=1).
Anywhere else they are skipped with that reason; inside the VM a missing module is an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import klab
import krelay

IN_GUEST = os.environ.get("PFRELAY_KERNEL_GUEST") == "1"

#: (test, figure, seconds) rows printed at the end of the session
FIGURES: List[Tuple[str, str, float]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason="needs the kernel VM: run tests/kernel/run.sh (as root)")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.kernel)
            if not IN_GUEST:
                item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not IN_GUEST:
        return
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not klab.NSIM_BUS.exists():
        problems.append("no /sys/bus/netdevsim (netdevsim not loaded)")
    if not (klab.SYS_NET / "bonding_masters").exists():
        problems.append("no /sys/class/net/bonding_masters (bonding not loaded)")
    if not Path(krelay.PFRELAY).exists():
        problems.append(f"no {krelay.PFRELAY} (pip install -e . in the venv)")
    if problems:
        pytest.exit("kernel test environment broken: " + "; ".join(problems), returncode=3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("kernel e2e figures (TCG guest; seconds)")
    width = max(len(f"{t}: {f}") for t, f, _ in FIGURES)
    for test, figure, seconds in FIGURES:
        tr.write_line(f"{f'{test}: {figure}':<{width}}  {seconds:7.3f}")
    out = outdir()
    try:
        with open(out / "figures.tsv", "w") as handle:
            handle.write("test\tfigure\tseconds\n")
            for test, figure, seconds in FIGURES:
                handle.write(f"{test}\t{figure}\t{seconds:.3f}\n")
    except OSError:
        pass


def outdir() -> Path:
    return Path(os.environ.get("PFRELAY_KERNEL_OUTDIR") or "/tmp/pfrelay-kernel-out")


@pytest.fixture
def test_dir(request: pytest.FixtureRequest) -> Path:
    """Per-test folder in OUTDIR (kept after the VM exits): relay logs, diagnostics."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    path = outdir() / "tests" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class Figures:
    def __init__(self, test: str) -> None:
        self.test = test

    def record(self, figure: str, seconds: float) -> None:
        FIGURES.append((self.test, figure, seconds))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.name)


def _diagnostics(path: Path) -> None:
    """Keep what the kernel showed when a test failed."""
    cmds = {
        "ip-d-link.txt": [klab.IP, "-d", "link", "show"],
        "ip-d-link-sw.txt": [klab.IP, "-n", klab.PEER_NS, "-d", "link", "show"],
        "tc-sw.txt": [klab.TC, "-n", klab.PEER_NS, "-s", "filter", "show", "dev", "swp0", "egress"],
    }
    for name, argv in cmds.items():
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            (path / name).write_text(proc.stdout + proc.stderr)
        except (OSError, subprocess.SubprocessError):
            pass
    for bond in Path("/proc/net/bonding").glob("*"):
        with contextlib.suppress(OSError):
            (path / f"proc-net-bonding-{bond.name}.txt").write_text(bond.read_text())


@pytest.fixture
def topo(request: pytest.FixtureRequest, test_dir: Path) -> Iterator[klab.Topology]:
    """An empty topology (netns sw exists); everything is removed at teardown."""
    topology = klab.Topology()
    yield topology
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        _diagnostics(test_dir)
    topology.cleanup()


@pytest.fixture
def standard(topo: klab.Topology) -> klab.Port:
    """pf0 with 8 VFs (all auto) in bond0 (802.3ad fast), peer bond in netns sw, LACP up."""
    return klab.standard_topology(topo, num_vfs=8)


@pytest.fixture
def start_relay(
    request: pytest.FixtureRequest, test_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., krelay.Relay]]:
    """Start the real ``pfrelay run`` (one ledger per test); SIGTERM at teardown.

    Teardown fails the test if the relay does not exit 0 on SIGTERM.
    """
    relays: Dict[int, krelay.Relay] = {}

    def start(
        interfaces: Tuple[str, ...] = ("pf0",),
        polling_interval: int = 200,
        extra_args: Tuple[str, ...] = (),
        state_file: Optional[Path] = None,
    ) -> krelay.Relay:
        # logs in the guest's tmpfs while running (not 9p); copied to test_dir at teardown
        relay = krelay.Relay(
            tmp_path,
            state_file or tmp_path / "state" / "state.json",
            interfaces=interfaces,
            polling_interval=polling_interval,
            extra_args=extra_args,
        )
        relays[id(relay)] = relay
        return relay.start()

    yield start
    problems = []
    for relay in relays.values():
        was_running = relay.running()
        started = bool(relay.find("Starting application"))
        rc = relay.stop()
        # SIGTERM before the relay got as far as installing its handlers kills it (-15)
        if was_running and rc != 0 and (started or rc != -15):
            problems.append(f"pfrelay exited {rc} on SIGTERM; stderr: {relay.stderr()[-1000:]}")
        if relay.state_file.exists():
            shutil.copy(relay.state_file, test_dir / "state.json")
        for path in [*relay.logdir.glob("relay-*"), *relay.logdir.glob("status-*")]:
            shutil.copy(path, test_dir / path.name)
    if problems:
        pytest.fail("; ".join(problems))
