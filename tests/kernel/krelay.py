"""The real ``pfrelay`` as a subprocess, and its JSON log lines (run INSIDE the VM)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: the venv's console script (the guest runs this checkout's .venv/bin/python);
#: PFRELAY_KERNEL_PFRELAY=PATH (passed on by run.sh) tests another build instead
PFRELAY = os.environ.get("PFRELAY_KERNEL_PFRELAY") or str(Path(sys.executable).parent / "pfrelay")

Event = Dict[str, Any]


def event_time(event: Event) -> Optional[float]:
    """The event's ``time`` as a Unix timestamp (ISO 8601, "Z" or an offset)."""
    text = event.get("time")
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def matches(event: Event, msg: str, fields: Dict[str, Any]) -> bool:
    return event.get("msg") == msg and all(event.get(k) == v for k, v in fields.items())


class Relay:
    """``pfrelay run`` with stdout (JSON lines) and stderr kept in files under ``logdir``."""

    def __init__(
        self,
        logdir: Path,
        state_file: Path,
        interfaces: Sequence[str] = ("pf0",),
        polling_interval: int = 200,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.logdir = logdir
        self.state_file = state_file
        self.interfaces = list(interfaces)
        self.polling_interval = polling_interval
        self.extra_args = list(extra_args)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0
        self.log_path = logdir / "relay.jsonl"
        self.err_path = logdir / "relay.stderr"
        self.start_times: List[float] = []
        self.status_calls = 0

    @property
    def argv(self) -> List[str]:
        argv = [PFRELAY, "run"]
        for pf in self.interfaces:
            argv += ["--interface", pf]
        argv += ["--polling-interval", str(self.polling_interval)]
        argv += ["--state-file", str(self.state_file), "--log-format", "json"]
        return argv + self.extra_args

    def start(self) -> Relay:
        assert self.proc is None or self.proc.poll() is not None, "relay already running"
        self.starts += 1
        self.log_path = self.logdir / f"relay-{self.starts}.jsonl"
        self.err_path = self.logdir / f"relay-{self.starts}.stderr"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
            )
        self.start_times.append(time.time())
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> Optional[int]:
        """Send ``sig`` and wait; SIGKILL if it does not exit in ``timeout`` s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"pfrelay did not exit {timeout}s after signal {sig}; killed"
                ) from None
        return self.proc.returncode

    def kill(self) -> Optional[int]:
        return self.stop(signal.SIGKILL)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def events(self, all_runs: bool = False) -> List[Event]:
        """The JSON objects of the current run's stdout (or of every run), in order.

        A line that is not a JSON object becomes ``{"msg": None, "raw": line}``.
        """
        paths = (
            [self.logdir / f"relay-{i}.jsonl" for i in range(1, self.starts + 1)]
            if all_runs
            else [self.log_path]
        )
        events: List[Event] = []
        for path in paths:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                events.append(obj if isinstance(obj, dict) else {"msg": None, "raw": line})
        return events

    def find(self, msg: str, **fields: Any) -> List[Event]:
        return [e for e in self.events() if matches(e, msg, fields)]

    def wait_for_msg(self, msg: str, timeout: float = 15, after: int = 0, **fields: Any) -> Event:
        """Wait for a log line with ``msg`` (and these field values) at index >= ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            for event in events[after:]:
                if matches(event, msg, fields):
                    return event
            if not self.running():
                raise AssertionError(
                    f"pfrelay exited (rc={self.proc.returncode if self.proc else None}) before"
                    f" logging {msg!r} {fields}; stderr: {self.stderr()[-2000:]}"
                    f"\nlast log lines: {events[-10:]}"
                )
            if time.monotonic() >= deadline:
                size = self.log_path.stat().st_size if self.log_path.exists() else None
                raise AssertionError(
                    f"no {msg!r} {fields} from pfrelay within {timeout}s"
                    f" ({time.time() - self.start_times[-1]:.1f} s after its start;"
                    f" {self.log_path.name}: {size} bytes); last log lines: {events[-10:]}"
                )
            time.sleep(0.05)

    def status(self, *pfs: str) -> Dict[str, Any]:
        """``pfrelay status --json --state-file STATE PF...`` parsed."""
        argv = [PFRELAY, "status", "--json", "--state-file", str(self.state_file), *pfs]
        # 180 s: a Python start-up under TCG with the venv over 9p took 13-27 s, and one CI run
        # saw a status call pass 60 s while the relay and the VF watcher ran beside it.
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        self.status_calls += 1
        (self.logdir / f"status-{self.status_calls}.json").write_text(
            f"# {' '.join(argv)}\n# rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(
                f"{' '.join(argv)}: rc={proc.returncode}, not JSON: {proc.stdout!r}"
                f" stderr: {proc.stderr!r}"
            ) from None
        assert isinstance(data, dict), data
        return data


def status_of(status: Dict[str, Any], pf: str) -> Dict[str, Any]:
    for entry in status.get("interfaces", []):
        if entry.get("interface") == pf:
            return dict(entry)
    raise AssertionError(f"{pf} not in pfrelay status output: {status}")
