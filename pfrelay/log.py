"""Structured events: one JSON object per line on stdout (or text for people at a terminal).

Keys are stable and match the upstream relay that operators already grep: ``time``, ``level``,
``msg``, then ``interface``, ``bond``, ``id`` (a VF number), ``state``, ``reason``, ``error``.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import IO, Optional

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class EventLog:
    """Writes events at or above ``level`` to ``stream`` as JSON lines or as text."""

    def __init__(self, fmt: str = "json", level: str = "info", stream: Optional[IO[str]] = None):
        self.fmt = fmt
        self.threshold = LEVELS[level]
        self.stream = stream

    def _emit(self, level: str, msg: str, fields: dict[str, object]) -> None:
        if LEVELS[level] < self.threshold:
            return
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        record: dict[str, object] = {
            "time": now.replace("+00:00", "Z"),
            "level": level.upper(),
            "msg": msg,
        }
        record.update((k, v) for k, v in fields.items() if v is not None)
        if self.fmt == "json":
            line = json.dumps(record, default=str)
        else:
            extra = " ".join(
                f"{k}={v}" for k, v in record.items() if k not in ("time", "level", "msg")
            )
            line = f"{record['time']} {level.upper():7} {msg}" + (f"  {extra}" if extra else "")
        stream = self.stream or sys.stdout
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full stdout must not kill the daemon

    def debug(self, msg: str, **fields: object) -> None:
        self._emit("debug", msg, fields)

    def info(self, msg: str, **fields: object) -> None:
        self._emit("info", msg, fields)

    def warning(self, msg: str, **fields: object) -> None:
        self._emit("warning", msg, fields)

    def error(self, msg: str, **fields: object) -> None:
        self._emit("error", msg, fields)
