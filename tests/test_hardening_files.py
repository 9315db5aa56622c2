"""Issue 13, the runtime-file findings (1, 2, 8, 11): the relay's files cannot be turned
against the host, a full disk is one line, ``status`` says when it cannot tell.

Each test plays the attack or the failure for real (planted links, hard links and FIFOs, a
directory owned by another user or writable by others, a full tmpfs, a user who cannot enter
the 0700 runtime directory, strace for the fsyncs), so most need root and skip without it.
The finding number of issue 13 is in each test's name; tests/test_hardening_process.py has
the process findings (5, 6, 7).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from test_daemon_support import (
    PFRELAY,
    World,
    assert_one_line_error,
    clean_env,
    root_only,
    run_once_on_a_full_tmpfs,
)

from pfrelay import ledger, metrics, runtime, safefile


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def victim(tmp_path: Path, text: str = "precious root file\n") -> Path:
    path = tmp_path / "victim"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


# ------------------------------------------------------------------- 1: links in the run dir
@root_only
def test_f1_restore_does_not_write_through_a_planted_lock_link(
    world: World, tmp_path: Path
) -> None:
    target = victim(tmp_path)
    world.run_dir.mkdir(mode=0o700)
    (world.run_dir / "lock").symlink_to(target)
    result = world.pfrelay("restore", "--yes", *world.paths())
    line = assert_one_line_error(result, 2)
    assert "symbolic link" in line and "lock" in line
    assert target.read_text(encoding="utf-8") == "precious root file\n"


@root_only
def test_f1_run_does_not_create_a_file_through_a_dangling_heartbeat_link(
    world: World, tmp_path: Path
) -> None:
    world.add_pf()
    world.run_dir.mkdir(mode=0o700)
    created = tmp_path / "created-by-root"
    (world.run_dir / "heartbeat").symlink_to(created)
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    assert result.returncode == 0, result.stderr
    assert not created.exists()
    assert (world.run_dir / "heartbeat").is_symlink()


@root_only
def test_f1_a_planted_hard_link_as_lock_is_refused(world: World, tmp_path: Path) -> None:
    target = victim(tmp_path)
    world.run_dir.mkdir(mode=0o700)
    os.link(target, world.run_dir / "lock")
    result = world.pfrelay("restore", "--yes", *world.paths())
    assert "hard links" in assert_one_line_error(result, 2)
    assert target.read_text(encoding="utf-8") == "precious root file\n"


def test_f1_status_does_not_hang_on_fifos_planted_as_lock_and_ledger(world: World) -> None:
    world.add_pf()
    world.run_dir.mkdir(mode=0o700)
    os.mkfifo(world.run_dir / "lock")
    os.mkfifo(world.state_file)
    result = world.pfrelay("status", "pf0", *world.paths(), timeout=20)
    assert "Traceback" not in result.stderr
    assert "not a regular file" in result.stderr  # the ledger warning
    assert "relay: cannot tell (refusing" in result.stdout


@root_only
@pytest.mark.parametrize("mode", [0o770, 0o757, 0o1777])
def test_f1_root_refuses_a_runtime_dir_writable_by_others(world: World, mode: int) -> None:
    world.add_pf()
    world.run_dir.mkdir()
    world.run_dir.chmod(mode)
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    line = assert_one_line_error(result, 2)
    assert "writable by group or others" in line and f"chmod go-w {world.run_dir}" in line
    assert not (world.run_dir / "lock").exists()


@root_only
def test_f1_root_refuses_a_runtime_dir_owned_by_another_user(world: World) -> None:
    world.run_dir.mkdir(mode=0o700)
    os.chown(world.run_dir, 65534, 65534)
    result = world.pfrelay("restore", "--yes", *world.paths())
    line = assert_one_line_error(result, 2)
    assert "uid 65534" in line and f"chown root {world.run_dir}" in line
    assert not (world.run_dir / "lock").exists()


@root_only
def test_f1_root_accepts_the_service_users_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's RuntimeDirectory= under User=pf-status-relay: 0700, owned by the service
    user, the lock and ledger written by the relay as that user; `sudo pfrelay restore`."""
    uid = 4242

    class Entry:
        pw_uid = uid

    def getpwnam(name: str) -> Entry:
        if name == runtime.SERVICE_USER:
            return Entry()
        raise KeyError(name)

    monkeypatch.setattr(runtime.pwd, "getpwnam", getpwnam)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "lock").write_text("123\n")
    os.chown(run_dir, uid, uid)
    os.chown(run_dir / "lock", uid, uid)
    with runtime.acquire(run_dir / "state.json") as handle:
        handle.seek(0)
        assert handle.read().strip() == str(os.getpid())
    with pytest.raises(runtime.RuntimeDirError, match="not root or pf-status-relay"):
        os.chown(run_dir, uid + 1, uid + 1)
        runtime.acquire(run_dir / "state.json")


@root_only
def test_root_leaves_the_lock_and_ledger_it_creates_to_the_service_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`systemctl stop; sudo pfrelay restore; systemctl start`: a lock or ledger root created
    0600 in the service user's directory could not be opened by the relay afterwards (its
    ledger unreadable, so never written again: "ledger not persisted" for good)."""
    uid, gid = 4242, 4343

    class Entry:
        pw_uid = uid

    def getpwnam(name: str) -> Entry:
        if name == runtime.SERVICE_USER:
            return Entry()
        raise KeyError(name)

    monkeypatch.setattr(runtime.pwd, "getpwnam", getpwnam)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, uid, gid)
    state = run_dir / "state.json"
    with runtime.acquire(state):
        ledger.save(state, ledger.Ledger(boot_id="b"))
    for name in ("lock", "state.json"):
        info = (run_dir / name).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, 0o600), name
    # a root-owned directory keeps root's files root's
    os.chown(run_dir, 0, 0)
    ledger.save(state, ledger.Ledger(boot_id="b"))
    assert state.stat().st_uid == 0


def test_f1_heartbeat_is_touched_through_its_fd(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    runtime.beat(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.utime(path, (1.0, 1.0))
    runtime.beat(path)
    assert path.stat().st_mtime > time.time() - 60
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    runtime.beat(fifo)  # neither hangs nor raises


def test_f1_ledger_replaces_a_link_at_its_name_and_never_writes_its_target(tmp_path: Path) -> None:
    target = victim(tmp_path)
    state = tmp_path / "run" / "state.json"
    state.parent.mkdir()
    state.symlink_to(target)
    with pytest.raises(ledger.LedgerError, match="symbolic link"):
        ledger.load(state)
    ledger.save(state, ledger.Ledger({"pf0": ledger.PfEntry(frozenset({1}))}))
    assert not state.is_symlink() and ledger.load(state).disabled("pf0") == {1}
    assert target.read_text(encoding="utf-8") == "precious root file\n"
    assert [p.name for p in state.parent.iterdir()] == ["state.json"]  # no temp file left


@pytest.mark.parametrize("force", [False, True])
def test_f1_config_init_refuses_a_symlink(tmp_path: Path, force: bool) -> None:
    dangling = tmp_path / "would-be-created"
    link = tmp_path / "config.toml"
    link.symlink_to(dangling)
    args = ["config", "init", str(link), "-i", "pf0"] + (["--force"] if force else [])
    result = subprocess.run(
        [PFRELAY, *args], capture_output=True, text=True, env=clean_env(), check=False
    )
    line = assert_one_line_error(result, 2)
    assert "symbolic link" in line
    assert not dangling.exists() and link.is_symlink()


def test_f1_config_init_writes_a_new_file_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "config.toml"
    result = subprocess.run(
        [PFRELAY, "config", "init", str(path), "-i", "pf0"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pf0" in path.read_text(encoding="utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]


def test_f1_safefile_refuses_links_fifos_and_foreign_owners(tmp_path: Path) -> None:
    target = victim(tmp_path)
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(safefile.Refused, match="symbolic link"):
        safefile.open_regular(tmp_path / "link", os.O_RDONLY)
    with pytest.raises(safefile.Refused, match="not a regular file"):
        safefile.open_regular(tmp_path / "fifo", os.O_RDONLY)
    with pytest.raises(safefile.Refused, match="owned by uid"):
        safefile.open_regular(target, os.O_RDONLY, owners={os.geteuid() + 1})
    fd = safefile.open_regular(target, os.O_RDONLY, owners={os.geteuid()})
    assert os.get_inheritable(fd) is False
    os.close(fd)


# --------------------------------------------------------------------- 2: ENOSPC on the lock
@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_f2_full_disk_while_writing_the_lock_is_one_line(world: World) -> None:
    world.add_pf()
    mnt = world.root / "full"
    result = run_once_on_a_full_tmpfs(world, mnt)
    line = assert_one_line_error(result, 2)
    assert "No space left on device" in line and f"free space in {mnt}" in line


# --------------------------------------------------- 8: status as a user who cannot read the lock
# The venv's interpreter lives under root's 0700 home here: run the command once as root to
# import every module it needs, then as nobody (uid 65534) for real.
AS_NOBODY = """
import contextlib, io, os, sys
import pfrelay.cli
args = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    with contextlib.suppress(SystemExit):
        pfrelay.cli.app(args, prog_name="pfrelay")
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.argv = ["pfrelay", *args]
pfrelay.cli.main()
"""


@root_only
def test_f8_status_as_non_root_says_it_cannot_tell() -> None:
    # Outside pytest's 0700 tmp: nobody must read the config and the fake host, but not the
    # 0700 runtime directory, as with /run/pf-status-relay.
    base = Path(tempfile.mkdtemp(prefix="pfrelay-f8-", dir="/tmp"))
    base.chmod(0o755)
    world = World(base)
    try:
        world.add_pf()
        for dirpath, _dirs, _files in os.walk(base):
            os.chmod(dirpath, 0o755)
        daemon = world.start(world.run_args("-i", "pf0"))
        assert daemon.wait_log("pf is ready", timeout=20)
        assert stat.S_IMODE(world.run_dir.stat().st_mode) == 0o700

        # Without pytest-cov's subprocess hook: nobody cannot write the coverage data file.
        env = {k: v for k, v in clean_env().items() if not k.startswith(("COV_CORE", "COVERAGE"))}

        def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", AS_NOBODY, "status", "pf0", *world.paths(), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
                check=False,
            )

        text = as_nobody()
        assert "Traceback" not in text.stderr, text.stderr
        assert "relay: cannot tell (permission denied)" in text.stdout.splitlines(), text.stdout
        doc = json.loads(as_nobody("--json").stdout)
        assert doc["service"]["running"] is None
        assert doc["service"]["unknown_reason"] == "permission denied"
        probe = subprocess.run(
            [sys.executable, "-c", AS_NOBODY, "status", "--probe", "live", *world.paths()],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert probe.returncode == 1
        assert "cannot tell whether a relay holds the lock (permission denied)" in probe.stdout
        # root still sees it running
        assert "relay: running (pid" in world.pfrelay("status", "pf0", *world.paths()).stdout
    finally:
        world.close()
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------ 11: fsync and fchmod through fds (strace)
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_f11_metrics_and_ledger_are_fsynced_and_chmodded_through_fds(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)  # VFs disabled: the ledger is written too
    metrics_file = world.root / "textfile" / "pfrelay.prom"
    metrics_file.parent.mkdir()
    trace = world.root / "trace"
    argv = world.run_args("-i", "pf0", "--once", "--metrics-file", str(metrics_file))
    result = subprocess.run(
        ["strace", "-f", "-y", "-qq", "-o", str(trace), "-e",
         "trace=fsync,fdatasync,fchmod,chmod,fchmodat,rename,renameat,renameat2", *argv],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert stat.S_IMODE(metrics_file.stat().st_mode) == 0o644
    assert not [line for line in lines if " chmod(" in line or "fchmodat(" in line]
    for directory, tmp in (
        (metrics_file.parent, ".pfrelay.prom."),
        (world.run_dir, ".state.json."),
    ):
        file_syncs = [ln for ln in lines if "fsync(" in ln and f"{directory}/{tmp}" in ln]
        dir_syncs = [ln for ln in lines if "fsync(" in ln and f"<{directory}>)" in ln]
        renames = [ln for ln in lines if "rename" in ln and tmp in ln]
        assert file_syncs and dir_syncs and renames, (directory, lines)
    assert [ln for ln in lines if "fchmod(" in ln and ".pfrelay.prom." in ln and "0644" in ln]


def test_f11_metrics_write_leaves_no_temp_file_and_mode_0644(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        metrics.write(tmp_path / "x.prom", "a 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.prom").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.prom"]
