"""The sd_notify client against real AF_UNIX datagram sockets (file-system and abstract)."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple, Union

import pytest

from pfrelay.systemd import MAX_DATAGRAM, Notifier, child_env, monotonic_usec, one_line


def _receiver(address: Union[str, bytes]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def _fields(sock: socket.socket) -> Dict[str, str]:
    data = sock.recv(65536)
    assert b"\0" not in data
    lines = data.decode("utf-8").split("\n")
    return dict(line.split("=", 1) for line in lines)


def _nothing_queued(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2.0)
    return False


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[Tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = _receiver(path)
    yield path, sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[Tuple[str, socket.socket]]:
    name = f"pfrelay-test-{secrets.token_hex(8)}"
    sock = _receiver(b"\0" + name.encode())
    yield "@" + name, sock
    sock.close()


@pytest.fixture(params=["path", "abstract"])
def bound(
    request: pytest.FixtureRequest,
    path_socket: Tuple[str, socket.socket],
    abstract_socket: Tuple[str, socket.socket],
) -> Tuple[str, socket.socket]:
    return path_socket if request.param == "path" else abstract_socket


def test_every_message_arrives(bound: Tuple[str, socket.socket]) -> None:
    address, sock = bound
    pid = os.getpid()
    notifier = Notifier(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}
    )
    assert notifier.enabled
    assert notifier.problem is None

    assert notifier.ready("watching 2 PFs")
    assert _fields(sock) == {"READY": "1", "STATUS": "watching 2 PFs"}
    assert notifier.ready()
    assert _fields(sock) == {"READY": "1"}
    assert notifier.status("ens1f0: LACP down, 8 VFs disabled")
    assert _fields(sock) == {"STATUS": "ens1f0: LACP down, 8 VFs disabled"}
    assert notifier.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}
    before = monotonic_usec()
    assert notifier.reloading()
    reload_fields = _fields(sock)
    after = monotonic_usec()
    assert reload_fields["RELOADING"] == "1"
    assert before <= int(reload_fields["MONOTONIC_USEC"]) <= after
    assert set(reload_fields) == {"RELOADING", "MONOTONIC_USEC"}
    assert notifier.stopping()
    assert _fields(sock) == {"STOPPING": "1"}
    assert notifier.sent == 6
    assert notifier.failures == 0
    notifier.close()


def test_monotonic_usec_is_the_monotonic_clock() -> None:
    before = int(time.monotonic() * 1_000_000)
    value = monotonic_usec()
    after = int(time.monotonic() * 1_000_000)
    assert before - 1 <= value <= after + 1


def test_one_socket_is_reused(path_socket: Tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.status("a")
    first = notifier._sock
    notifier.status("b")
    assert notifier._sock is first
    assert first is not None
    assert not first.get_inheritable()  # SOCK_CLOEXEC: `ip` children do not get it
    assert [_fields(sock), _fields(sock)] == [{"STATUS": "a"}, {"STATUS": "b"}]
    notifier.close()
    assert notifier._sock is None


def test_status_is_one_line(path_socket: Tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    with Notifier({"NOTIFY_SOCKET": address}) as notifier:
        notifier.status("first line\nsecond\r\n\nthird\x00 end")
        assert _fields(sock) == {"STATUS": "first line second third end"}
        notifier.ready("a\nREADY=0")  # no way to smuggle a field in through the text
        assert _fields(sock) == {"READY": "1", "STATUS": "a READY=0"}


def test_long_status_is_cut_on_a_character_boundary(path_socket: Tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    with Notifier({"NOTIFY_SOCKET": address}) as notifier:
        assert notifier.ready("é" * 5000)
        data = sock.recv(65536)
    assert len(data) <= MAX_DATAGRAM
    text = data.decode("utf-8")  # still valid UTF-8 after the cut
    assert text.startswith("READY=1\nSTATUS=éé")
    assert set(text.split("STATUS=", 1)[1]) == {"é"}


def test_one_line() -> None:
    assert one_line("  a \n\n b\u2028c\x00") == "a b c"
    assert one_line("") == ""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "{pid}"}, 0.5),
        ({"WATCHDOG_USEC": "3"}, 0.0000015),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": str(2**64 - 1)}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "nope"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "0"}, None),
    ],
)
def test_watchdog_interval(
    path_socket: Tuple[str, socket.socket], env: Dict[str, str], expected: object
) -> None:
    address, _sock = path_socket
    full = {key: value.format(pid=os.getpid()) for key, value in env.items()}
    notifier = Notifier({"NOTIFY_SOCKET": address, **full})
    assert notifier.watchdog_interval_s == expected
    if expected is None and full:
        assert notifier.problem  # says why, for the log
    notifier.close()


def test_watchdog_pid_of_another_process_disables_the_watchdog(
    path_socket: Tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}
    notifier = Notifier(env, pid=4243)
    assert notifier.watchdog_interval_s is None
    assert notifier.watchdog_usec is None
    assert "4242" in (notifier.problem or "")
    assert notifier.watchdog() is False
    assert _nothing_queued(sock)
    # The rest of the protocol still works: only the watchdog belongs to someone else.
    assert notifier.ready()
    assert _fields(sock) == {"READY": "1"}
    assert Notifier(env, pid=4242).watchdog_interval_s == 15.0
    notifier.close()


def test_watchdog_without_a_timeout_sends_nothing(path_socket: Tuple[str, socket.socket]) -> None:
    address, sock = path_socket
    with Notifier({"NOTIFY_SOCKET": address}) as notifier:
        assert notifier.watchdog() is False
        assert _nothing_queued(sock)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"NOTIFY_SOCKET": ""},
        {"NOTIFY_SOCKET": "relative/path"},
        {"NOTIFY_SOCKET": "vsock:2:1234"},
        {"NOTIFY_SOCKET": "/" + "x" * 200},
        {"NOTIFY_SOCKET": "@"},
    ],
)
def test_without_a_usable_socket_everything_is_a_no_op(env: Dict[str, str]) -> None:
    notifier = Notifier({**env, "WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None  # no one to ping
    assert notifier.ready("x") is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.sent == notifier.failures == 0
    assert notifier._sock is None
    assert (notifier.problem is None) == (env == {})


def test_default_environment_is_os_environ(
    monkeypatch: pytest.MonkeyPatch, path_socket: Tuple[str, socket.socket]
) -> None:
    address, sock = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    with Notifier() as notifier:
        assert notifier.enabled
        assert notifier.stopping()
    assert _fields(sock) == {"STOPPING": "1"}


def test_socket_that_never_existed_returns_false(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.failures == 1
    assert notifier.last_error is not None and notifier.last_error.startswith("ENOENT")
    abstract = Notifier({"NOTIFY_SOCKET": f"@pfrelay-test-{secrets.token_hex(8)}"})
    assert abstract.ready() is False
    assert abstract.last_error is not None and abstract.last_error.startswith("ECONNREFUSED")


def test_vanished_socket_returns_false_then_recovers(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    sock = _receiver(path)
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready()
    assert _fields(sock) == {"READY": "1"}

    sock.close()
    os.unlink(path)  # systemd went away
    assert notifier.status("nobody listens") is False
    assert notifier.watchdog() is False  # no watchdog configured: a no-op, not a failure
    assert notifier.stopping() is False
    assert notifier.failures == 2
    assert notifier._sock is None  # dropped, to be re-created

    again = _receiver(path)  # and came back
    assert notifier.status("back")
    assert _fields(again) == {"STATUS": "back"}
    assert notifier.sent == 2
    again.close()
    notifier.close()


def test_stale_connection_is_retried_once_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    first = _receiver(path)
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.status("one")
    first.close()
    os.unlink(path)
    second = _receiver(path)  # the manager re-created its socket between two messages
    assert notifier.status("two")  # the old connection is refused; the retry reaches it
    assert _fields(second) == {"STATUS": "two"}
    assert notifier.failures == 0
    second.close()
    notifier.close()


def test_full_queue_is_eagain_not_a_block(path_socket: Tuple[str, socket.socket]) -> None:
    address, _sock = path_socket  # never read: the queue fills up
    notifier = Notifier({"NOTIFY_SOCKET": address})
    results: List[bool] = []
    started = time.monotonic()
    for _ in range(5000):
        results.append(notifier.status("x" * 1000))
        if not results[-1]:
            break
    assert time.monotonic() - started < 10
    assert results[-1] is False
    assert notifier.failures == 1
    assert notifier.last_error is not None and notifier.last_error.startswith("EAGAIN")
    notifier.close()


def test_child_env_drops_only_the_notify_variables() -> None:
    env = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": "1",
        "PATH": "/usr/sbin:/usr/bin",
        "LANG": "C.UTF-8",
        "INVOCATION_ID": "abc",
    }
    assert child_env(env) == {
        "PATH": "/usr/sbin:/usr/bin",
        "LANG": "C.UTF-8",
        "INVOCATION_ID": "abc",
    }
    assert "NOTIFY_SOCKET" in env  # the caller's mapping is left alone
    assert child_env({}) == {}


def test_child_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@x")
    monkeypatch.setenv("WATCHDOG_USEC", "1")
    monkeypatch.setenv("PFRELAY_TEST_KEEP", "yes")
    result = child_env()
    assert "NOTIFY_SOCKET" not in result and "WATCHDOG_USEC" not in result
    assert result["PFRELAY_TEST_KEEP"] == "yes"
    assert "NOTIFY_SOCKET" in os.environ
