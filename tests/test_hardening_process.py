"""Issue 13, the process findings (5, 6, 7): children die with the relay, the relay reaps
orphans as PID 1, and root runs ``ip`` from an absolute path only.

Played for real: SIGKILL of a running relay, the relay as PID 1 of a new PID namespace
(``unshare -fp --mount-proc``) with an ``ip monitor`` that leaves orphans, a planted ``./ip``
with ``PATH=...::/usr/bin``. The finding number of issue 13 is in each test's name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from test_daemon_support import (
    PFRELAY,
    World,
    clean_env,
    root_only,
    wait_until,
)

from pfrelay import children
from pfrelay.iproute import ROOT_IP_PATHS, IpError, resolve_binary


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


# ----------------------------------------------------------- 5 and 6: children and PID 1
def fake_monitor(world: World, orphans: int = 0) -> Path:
    """An ``ip`` whose ``-o monitor link`` leaves ``orphans`` short-lived orphans (sleep 0.3)
    behind, writes its PID to ``monitor.pid`` and then sleeps for 10 minutes ignoring its
    parent's end (what a real ``ip monitor`` does); everything else goes to the fake ip."""
    path = world.root / "ip-monitor"
    pid_file = world.root / "monitor.pid"
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-o" ] && [ "$2" = "monitor" ]; then\n'
        f"  i=0; while [ $i -lt {orphans} ]; do (sleep 0.3 &); i=$((i+1)); done\n"
        f"  echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\n"
        "  exec sleep 600\n"
        "fi\n"
        f'exec {world.ip_path} "$@"\n',
        encoding="utf-8",
    )
    path.chmod(0o755)
    return pid_file


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_f5_sigkill_of_the_relay_leaves_no_ip_monitor(world: World) -> None:
    world.add_pf()
    pid_file = fake_monitor(world)
    args = world.run_args("-i", "pf0", "--ip", str(world.root / "ip-monitor"))
    daemon = world.start(args)
    monitor = 0
    try:
        assert wait_until(pid_file.exists, 20), daemon.stderr
        monitor = int(pid_file.read_text(encoding="utf-8"))
        assert alive(monitor)
        daemon.send(signal.SIGKILL)
        daemon.proc.wait(10)
        assert wait_until(lambda: not alive(monitor), 5), "ip monitor outlived the relay"
    finally:
        if monitor and alive(monitor):
            os.kill(monitor, signal.SIGKILL)


def test_f5_die_with_parent_kills_a_child_of_a_dead_parent(tmp_path: Path) -> None:
    """The mechanism alone: a middle process starts `sleep` with the preexec and is killed."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "from pfrelay.children import die_with_parent\n"
        "p = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent())\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", code])
    child = 0
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text(), 20)
        child = int(pid_file.read_text())
        middle.kill()
        middle.wait(10)
        assert wait_until(lambda: not alive(child), 5)
    finally:
        if child and alive(child):
            os.kill(child, signal.SIGKILL)


def zombies_of(pid: int) -> List[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text(encoding="utf-8")
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_f6_as_pid_1_the_relay_reaps_orphans(world: World) -> None:
    world.add_pf()
    pid_file = fake_monitor(world, orphans=5)
    argv = world.run_args("-i", "pf0", "--ip", str(world.root / "ip-monitor"))
    daemon = world.start(["unshare", "-fp", "--mount-proc", *argv])
    try:
        assert wait_until(pid_file.exists, 20), daemon.stderr
        relay = wait_until(lambda: _only_child(daemon.pid), 5)
        assert relay, "unshare started no relay"
        assert daemon.wait_log("pf is ready", timeout=20)
        time.sleep(1.5)  # the orphans (sleep 0.3) have ended; the relay had a cycle or more
        assert zombies_of(relay) == []
        # Its own child's status is still its own: the monitor is running, not reaped away.
        assert not daemon.find("link monitor exited; polling only until it restarts")
        os.kill(relay, signal.SIGTERM)
        assert daemon.proc.wait(10) == 0
    finally:
        daemon.kill()


def _only_child(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="utf-8").split()
    except OSError:
        return 0
    return int(text[0]) if len(text) == 1 else 0


def test_f6_reap_orphans_leaves_own_children_to_subprocess() -> None:
    own = subprocess.Popen(["true"])
    stray = subprocess.Popen(["true"])
    wait_until(lambda: not alive(own.pid) and not alive(stray.pid), 5)
    reaped: List[int] = []
    wait_until(lambda: reaped.extend(children.reap_orphans([own.pid])) or stray.pid in reaped, 5)
    # `own` may be first in the kernel's list and block the scan: let its Popen reap it, scan on.
    assert own.wait(5) == 0
    reaped.extend(children.reap_orphans())
    assert stray.pid in reaped and own.pid not in reaped
    assert own.returncode == 0


# ------------------------------------------------------------------ 7: ip from an absolute path
def planted_ip(directory: Path) -> Path:
    marker = directory / "planted-ip-ran"
    script = directory / "ip"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n", encoding="utf-8")
    script.chmod(0o755)
    return marker


def test_f7_relative_and_empty_path_entries_are_never_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted_ip(tmp_path)
    monkeypatch.chdir(tmp_path)
    for path in ("::/nonexistent", ".:/nonexistent", "/nonexistent:", "bin"):
        env = {"PATH": path}
        try:
            found: Optional[str] = resolve_binary("ip", env, as_root=False)
        except IpError:
            found = None  # not found is fine; the planted one is not
        assert found != str(tmp_path / "ip"), path
    with pytest.raises(IpError, match="not found"):
        resolve_binary("./ip", {"PATH": "/usr/bin"}, as_root=False)


def test_f7_root_takes_ip_from_the_fixed_default(tmp_path: Path) -> None:
    planted_ip(tmp_path)
    expected = next((p for p in ROOT_IP_PATHS if os.access(p, os.X_OK)), None)
    if expected is None:
        pytest.skip("no iproute2 installed here")
    assert resolve_binary("ip", {"PATH": f"{tmp_path}:/usr/bin"}, as_root=True) == expected


@root_only
def test_f7_check_as_root_ignores_a_planted_ip_and_names_its_binary(
    world: World, tmp_path: Path
) -> None:
    expected = next((p for p in ROOT_IP_PATHS if os.access(p, os.X_OK)), None)
    if expected is None:
        pytest.skip("no iproute2 installed here")
    world.add_pf()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    marker = planted_ip(cwd)
    env = clean_env(PATH="/nonexistent::/usr/bin:/bin")
    result = subprocess.run(
        [PFRELAY, "check", "pf0", *world.paths(ip=False)[:-2]],  # no --state-file
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "pfrelay check ran ./ip"
    assert f"ok   ip: iproute2 runs ({expected})" in result.stdout.splitlines()
