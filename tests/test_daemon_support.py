"""Helpers for the tests that run the real ``pfrelay`` console script as a subprocess.

No tests here. ``World`` is one fake machine under ``tmp_path``: a ``FakeHost`` (/proc and /sys
from real captures), the fake ``ip`` script, a state directory and a config file, plus the
argument list that points ``pfrelay`` at all of them. ``Daemon`` is a running ``pfrelay run``
whose JSON log lines are collected as they come; ``NotifySocket`` is a bound AF_UNIX datagram
socket standing in for systemd's notification socket, recording every datagram with its time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest
from fakehost import FakeHost, healthy_pf, timeline_snapshots
from fakeip import write_script


def _console_script() -> str:
    """The ``pfrelay`` console script of this interpreter's environment.

    Where the package is importable but no script was installed beside the interpreter (the
    RPM's %check runs the tests against the build tree via PYTHONPATH), write an equivalent
    entry point once, so the same tests run the same code as a real subprocess.
    """
    beside = Path(sys.executable).with_name("pfrelay")
    if beside.exists():
        return str(beside)
    script = Path(tempfile.mkdtemp(prefix="pfrelay-bin-")) / "pfrelay"
    script.write_text(f"#!{sys.executable}\nfrom pfrelay.cli import main\nmain()\n")
    script.chmod(0o755)
    return str(script)


#: The console script of the package installed in this interpreter's environment.
PFRELAY = _console_script()

_SNAPSHOTS = timeline_snapshots("peer-stops-sending")
#: /proc/net/bonding/bond0 verbatim from Linux 6.12: LACP up (63/63) and partner lost (79/0).
PROC_UP = next(text for name, text in _SNAPSHOTS.items() if name.startswith("snap-00-before"))
PROC_DOWN = next(text for name, text in _SNAPSHOTS.items() if name.startswith("snap-02-blocked"))

Record = Dict[str, Any]


#: Tests of attacks and of what only root may do (mounts, namespaces, setuid) run as root only.
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the attacks are root's)")


def clean_env(**extra: str) -> Dict[str, str]:
    """This environment without systemd's and the relay's own variables, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS")
        and not key.startswith("PF_STATUS_RELAY_")
    }
    env.update(extra)
    return env


def run_once_on_a_full_tmpfs(
    world: World, mnt: Path, *, lock_first: bool = False
) -> subprocess.CompletedProcess[str]:
    """``pfrelay run -i pf0 --once`` with its state directory on a full 8 KiB tmpfs at ``mnt``,
    in a mount namespace of its own (root and unshare(1) needed; pytest.skip when mounting is
    refused). ``lock_first``: the lock is written before the filler, so only the ledger lacks
    space."""
    mnt.mkdir()
    lock = f"echo 0 > {mnt}/lock && " if lock_first else ""
    script = (
        f"mount -t tmpfs -o size=8k,mode=0700 tmpfs {mnt} && {lock}"
        f"(head -c 1M /dev/zero > {mnt}/filler 2>/dev/null; true) && "
        f'exec "$@"'
    )
    argv = [*world.run_args("-i", "pf0", "--once")[1:]]
    argv[argv.index("--state-file") + 1] = str(mnt / "state.json")
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", PFRELAY, *argv],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if "mount" in result.stderr and "pfrelay" not in result.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return result


def proc_text(pf: str, up: bool) -> str:
    return (PROC_UP if up else PROC_DOWN).replace("pf0", pf)


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.02) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


class Daemon:
    """A running ``pfrelay`` process whose stdout lines are parsed as they arrive."""

    def __init__(self, argv: Sequence[str], env: Dict[str, str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.pid = self.proc.pid
        self._lock = threading.Condition()
        self.records: List[Tuple[float, Record]] = []  #: (monotonic time, JSON log line)
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            now = time.monotonic()
            with self._lock:
                (self.stdout if is_stdout else self.stderr).append(line)
                if is_stdout:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                    if isinstance(record, dict):
                        self.records.append((now, record))
                self._lock.notify_all()

    # ------------------------------------------------------------------ reading
    def logs(self) -> List[Record]:
        with self._lock:
            return [record for _, record in self.records]

    def msgs(self) -> List[str]:
        return [str(record.get("msg")) for record in self.logs()]

    def find(self, msg: str, after: int = 0, **fields: Any) -> List[Tuple[int, float, Record]]:
        """(index, time, record) of each log line from ``after`` on with ``msg`` and ``fields``."""
        with self._lock:
            records = list(self.records)
        return [
            (index, when, record)
            for index, (when, record) in enumerate(records)
            if index >= after
            and record.get("msg") == msg
            and all(record.get(key) == value for key, value in fields.items())
        ]

    def wait_log(
        self, msg: str, timeout: float = 5.0, after: int = 0, count: int = 1, **fields: Any
    ) -> Tuple[int, float, Record]:
        """The ``count``-th log line with ``msg`` and ``fields``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = self.find(msg, after, **fields)
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._alive_readers()):
                    raise AssertionError(
                        f"no log line {msg!r} {fields} within {timeout} s; exit code "
                        f"{self.proc.poll()}; got {self.msgs()}; stderr {''.join(self.stderr)!r}"
                    )
                self._lock.wait(min(left, 0.1))

    def _alive_readers(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def mark(self) -> int:
        """The number of log lines so far (an ``after`` for later waits)."""
        with self._lock:
            return len(self.records)

    # ------------------------------------------------------------------ stopping
    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Send ``signum`` and wait; the exit code (AssertionError if it does not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"pfrelay did not exit within {timeout} s of signal {signum}"
            ) from None
        self.join()
        return code

    def join(self) -> None:
        for thread in self._threads:
            thread.join(5)

    def kill(self) -> None:
        """End it at teardown: SIGTERM first, so that it ends its ``ip monitor`` child too."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(5)
        self.join()


class NotifySocket:
    """A bound AF_UNIX datagram socket recording every notification with its arrival time."""

    def __init__(self, tmp_path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"pfrelay-test-{secrets.token_hex(8)}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        else:
            path = tmp_path / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.1)
        self._lock = threading.Condition()
        self.messages: List[Tuple[float, Dict[str, str]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode("utf-8").split("\n"))
            with self._lock:
                self.messages.append((now, fields))
                self._lock.notify_all()

    def all(self) -> List[Tuple[float, Dict[str, str]]]:
        with self._lock:
            return list(self.messages)

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def wait(
        self, predicate: Callable[[Dict[str, str]], bool], timeout: float = 5.0, after: int = 0
    ) -> Tuple[int, float, Dict[str, str]]:
        """(index, time, fields) of the first message from ``after`` on that matches."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for index, (when, fields) in enumerate(self.messages):
                    if index >= after and predicate(fields):
                        return index, when, fields
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching notification within {timeout} s; got "
                        f"{[fields for _, fields in self.messages]}"
                    )
                self._lock.wait(min(left, 0.1))

    def times(self, key: str, after: int = 0) -> List[float]:
        """Arrival times of the messages from ``after`` on that carry ``key``."""
        return [when for when, fields in self.all()[after:] if key in fields]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class World:
    """A fake machine under ``root``: host trees, fake ``ip``, state directory, config file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = FakeHost(root / "host")
        self.ip_path, self.ip = write_script(root / "ip")
        self.ip.add_pf("lo", {}, ifindex=1)  # `pfrelay check` runs `ip link show lo`
        self.run_dir = root / "run"
        self.state_file = self.run_dir / "state.json"
        self.config = root / "config.toml"
        self.config.write_text("", encoding="utf-8")
        self.daemons: List[Daemon] = []

    # ------------------------------------------------------------------ the host
    def add_pf(self, pf: str = "pf0", bond: str = "bond0", vfs: int = 4, ifindex: int = 2) -> None:
        """``pf`` alone in 802.3ad bond ``bond`` with LACP up, and ``vfs`` VFs in ``auto``."""
        healthy_pf(self.host, pf, bond, numvfs=vfs, ifindex=ifindex)
        self.set_lacp(bond, pf, up=True)
        self.ip.add_pf(pf, {n: "auto" for n in range(vfs)}, ifindex=ifindex)

    def set_lacp(self, bond: str, pf: str, up: bool) -> None:
        """Replace /proc/net/bonding/<bond> atomically with a real capture, up or partner lost."""
        path = self.host.procfs / "net/bonding" / bond
        tmp = path.with_name(f".{bond}.tmp")
        tmp.write_text(proc_text(pf, up), encoding="utf-8")
        tmp.replace(path)

    def vfs(self, pf: str = "pf0") -> Dict[int, str]:
        return self.ip.vfs(pf)

    def write_config(self, text: str) -> None:
        tmp = self.config.with_name(".config.toml.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.config)

    # ------------------------------------------------------------------ pfrelay
    def paths(self, *, procfs: bool = True, ip: bool = True) -> List[str]:
        """The options that point a command at this world (config, trees, ip, state file)."""
        args = ["--config", str(self.config)]
        if procfs:
            args += ["--procfs", str(self.host.procfs), "--sysfs", str(self.host.sysfs)]
        if ip:
            args += ["--ip", str(self.ip_path)]
        return [*args, "--state-file", str(self.state_file)]

    def run_args(self, *extra: str, interval: int = 100) -> List[str]:
        return [
            PFRELAY,
            "run",
            *self.paths(),
            "--polling-interval",
            str(interval),
            *extra,
        ]

    def start(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> Daemon:
        daemon = Daemon(argv, env if env is not None else clean_env())
        self.daemons.append(daemon)
        return daemon

    def pfrelay(
        self,
        *args: str,
        env: Optional[Dict[str, str]] = None,
        timeout: float = 20.0,
        stdin: Union[int, None] = subprocess.DEVNULL,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pfrelay ARGS`` to completion (stdin not a terminal)."""
        return subprocess.run(
            [PFRELAY, *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=env if env is not None else clean_env(),
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()


def json_lines(text: str) -> List[Record]:
    """The JSON objects among the lines of ``text``."""
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def assert_one_line_error(result: Any, code: int = 2) -> str:
    """The single stderr line of a command (a CompletedProcess) that failed with ``code``."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("pfrelay: error: "), lines[0]
    return lines[0]
