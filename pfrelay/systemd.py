"""The sd_notify protocol, written here: readiness, status, watchdog, reload and stop messages.

The protocol is small and declared stable by systemd, so the relay carries no dependency for
it. What this module follows, and where it comes from (systemd sources, read at
``src/libsystemd/sd-daemon/sd-daemon.c`` of systemd/systemd main and of
redhat-plumbers/systemd-rhel9, the RHEL 9 / systemd 252 tree):

* ``NOTIFY_SOCKET`` unset means "not under a service manager": every call is a no-op
  (``pid_notify_with_fds_internal``/``sd_pid_notify_with_fds`` return 0 then).
* The address is parsed like ``socket_address_parse_unix``: it must start with ``/`` (a
  file-system socket) or ``@`` (an abstract one: the ``@`` becomes a NUL byte and the
  address length covers exactly the name, with no trailing NUL). Anything else is refused:
  systemd also accepts ``vsock:CID:PORT`` (systemd >= 253), which a daemon on a RHEL host
  never gets, so this module reports it as unsupported instead of speaking AF_VSOCK.
* One ``AF_UNIX``/``SOCK_DGRAM`` socket with ``SOCK_CLOEXEC``; the text is one datagram of
  newline-separated ``KEY=VALUE`` lines, sent with ``MSG_NOSIGNAL``. sd-daemon.c opens a
  socket per message and does not connect it; this module keeps one socket, connected on
  first use, and drops it after any error so the next message starts afresh (a stale
  connection is retried once at once, which covers a manager that re-created its socket).
* Differently from sd-daemon.c, the socket is non-blocking: a manager that does not read
  its queue (hung, or in the middle of a re-exec) must cost the relay a dropped message
  (``EAGAIN``), never a blocked main loop that would then miss its own watchdog.
* ``sd_watchdog_enabled``: ``WATCHDOG_USEC`` is a decimal unsigned integer; 0 and
  ``UINT64_MAX`` (``USEC_INFINITY``) mean "not set"; if ``WATCHDOG_PID`` is present and
  is not our PID, the watchdog is not ours (it was meant for a parent, e.g. a wrapper
  script) and stays off; an unparsable value disables it too. The recommended ping period
  is half the timeout (sd_watchdog_enabled(3)).
* ``RELOADING=1`` goes with ``MONOTONIC_USEC=`` (CLOCK_MONOTONIC in microseconds): systemd
  >= 253 (Type=notify-reload) uses it to tie the reload to the request; systemd 252, as on
  RHEL 9, ignores the unknown field. Either way the daemon sends ``READY=1`` when done.
* The manager (``manager_dispatch_notify_fd`` in src/core/manager.c) ignores a datagram
  of ``NOTIFY_BUFFER_MAX`` (``PIPE_BUF``, 4096) bytes or more, and one with an embedded
  NUL byte, and drops a ``STATUS=`` that is not valid UTF-8. So STATUS text here is made
  one line, without NUL bytes, encoded as UTF-8 (invalid code points replaced) and cut on
  a character boundary to keep the datagram under that limit.

A failed send never raises: it returns False and is counted in ``failures`` (the last
reason is kept in ``last_error``). The relay must never die because systemd went away.

The object is not thread-safe; the daemon uses it from its single main loop.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from typing import Dict, Mapping, Optional, Tuple, Union

#: Variables that belong to this process alone; ``child_env`` removes them.
NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

#: The manager ignores a datagram of PIPE_BUF bytes or more (src/core/manager.c).
MAX_DATAGRAM = 4095

#: ``sizeof(struct sockaddr_un.sun_path)`` on Linux.
_SUN_PATH_MAX = 108
#: USEC_INFINITY in systemd: "no timeout", which sd_watchdog_enabled treats as unset.
_USEC_INFINITY = 2**64 - 1
#: Errors that mean "the connection this socket had is stale"; worth one immediate retry.
_STALE = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE, errno.ENOENT}
)

_Address = Union[str, bytes]


def child_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of ``env`` (default os.environ) without NOTIFY_SOCKET and WATCHDOG_*.

    For every subprocess the relay starts (``ip``): systemd accepts notifications only from
    the main PID here (NotifyAccess=main), but a child that inherited the socket could still
    try to speak for the service, and one that inherited WATCHDOG_PID would misread it.
    """
    source = os.environ if env is None else env
    return {key: value for key, value in source.items() if key not in NOTIFY_VARIABLES}


def one_line(text: str) -> str:
    """``text`` as one STATUS-safe line: line breaks become spaces, NUL bytes go."""
    parts = [part.strip() for part in text.replace("\0", "").splitlines()]
    return " ".join(part for part in parts if part)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock MONOTONIC_USEC= is read against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _parse_address(value: str) -> _Address:
    """The socket address for NOTIFY_SOCKET, or ValueError saying why it is unusable."""
    if value.startswith("/"):
        encoded = os.fsencode(value)
        if b"\0" in encoded or len(encoded) >= _SUN_PATH_MAX:
            raise ValueError("NOTIFY_SOCKET path is too long or contains a NUL byte")
        return value
    if value.startswith("@"):
        name = b"\0" + os.fsencode(value[1:])
        if len(name) > _SUN_PATH_MAX or len(name) < 2:
            raise ValueError("NOTIFY_SOCKET abstract name is empty or too long")
        return name
    if value.startswith("vsock:"):
        raise ValueError("NOTIFY_SOCKET is an AF_VSOCK address, which is not supported")
    raise ValueError("NOTIFY_SOCKET is neither an absolute path nor an @abstract name")


def _parse_watchdog(env: Mapping[str, str], pid: int) -> Tuple[Optional[int], Optional[str]]:
    """(timeout in µs, None) when the watchdog is ours; (None, reason or None) otherwise."""
    raw = env.get("WATCHDOG_USEC")
    if raw is None:
        return None, None
    if not (raw.isascii() and raw.isdigit()):
        return None, f"WATCHDOG_USEC={raw!r} is not a decimal number; watchdog off"
    usec = int(raw)
    if usec in (0, _USEC_INFINITY) or usec > _USEC_INFINITY:
        return None, f"WATCHDOG_USEC={raw} is not a timeout; watchdog off"
    owner = env.get("WATCHDOG_PID")
    if owner is not None:
        if not (owner.isascii() and owner.isdigit()) or int(owner) <= 0:
            return None, f"WATCHDOG_PID={owner!r} is not a PID; watchdog off"
        if int(owner) != pid:
            return None, f"WATCHDOG_PID={owner} is not this process ({pid}); watchdog off"
    return usec, None


def _describe(exc: OSError) -> str:
    if exc.errno:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__


class Notifier:
    """Talks to the service manager through ``$NOTIFY_SOCKET``; a no-op without one.

    Every message method returns True when the datagram was sent, False when there was
    nothing to send it to or the send failed (never an exception).
    """

    def __init__(self, env: Optional[Mapping[str, str]] = None, pid: Optional[int] = None) -> None:
        source = os.environ if env is None else env
        self._pid = os.getpid() if pid is None else pid
        self._sock: Optional[socket.socket] = None
        self.sent = 0  #: datagrams sent
        self.failures = 0  #: sends that failed (and were swallowed)
        self.last_error: Optional[str] = None  #: why the last send failed
        #: Why NOTIFY_SOCKET or the watchdog variables could not be used (for the log).
        self.problem: Optional[str] = None
        self._address: Optional[_Address] = None
        raw = source.get("NOTIFY_SOCKET")
        if raw:
            try:
                self._address = _parse_address(raw)
            except ValueError as exc:
                self.problem = str(exc)
        elif raw is not None:
            self.problem = "NOTIFY_SOCKET is set but empty"
        self._watchdog_usec, watchdog_problem = _parse_watchdog(source, self._pid)
        if self._address is None:
            self._watchdog_usec = None
        self.problem = self.problem or watchdog_problem

    @property
    def enabled(self) -> bool:
        """Whether there is a notification socket to talk to."""
        return self._address is not None

    @property
    def watchdog_usec(self) -> Optional[int]:
        """The manager's watchdog timeout for this process in µs, or None when off."""
        return self._watchdog_usec

    @property
    def watchdog_interval_s(self) -> Optional[float]:
        """How often to call ``watchdog()``: half the timeout, in seconds; None when off."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: Optional[str] = None) -> bool:
        """Start-up (or a reload) is complete."""
        return self._send("READY=1", status)

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self._send(None, text)

    def watchdog(self) -> bool:
        """Keep-alive ping; a no-op unless the watchdog is enabled for this very PID."""
        if self._watchdog_usec is None:
            return False
        return self._send("WATCHDOG=1", None)

    def reloading(self) -> bool:
        """A reload begins; follow it with ``ready()`` when done (also when it failed)."""
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}", None)

    def stopping(self) -> bool:
        """Shutdown begins."""
        return self._send("STOPPING=1", None)

    def close(self) -> None:
        """Close the socket (a later message opens a new one)."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _message(self, fields: Optional[str], status: Optional[str]) -> bytes:
        head = fields.encode("ascii") if fields else b""
        if status is None:
            return head
        prefix = head + (b"\n" if head else b"") + b"STATUS="
        text = one_line(status).encode("utf-8", errors="replace")
        room = MAX_DATAGRAM - len(prefix)
        if len(text) > room:
            # Cut on a character boundary: a sequence split by the cut is dropped whole.
            text = text[:room].decode("utf-8", errors="ignore").encode("utf-8")
        return prefix + text

    def _connect(self) -> socket.socket:
        if self._sock is None:
            assert self._address is not None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                sock.setblocking(False)
                sock.connect(self._address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def _send(self, fields: Optional[str], status: Optional[str]) -> bool:
        if self._address is None:
            return False
        data = self._message(fields, status)
        for attempt in (1, 2):
            reused = self._sock is not None
            try:
                self._connect().send(data, socket.MSG_NOSIGNAL)
            except OSError as exc:
                self.close()
                if reused and attempt == 1 and exc.errno in _STALE:
                    continue
                self.failures += 1
                self.last_error = _describe(exc)
                return False
            self.sent += 1
            return True
        return False  # pragma: no cover - the loop always returns
