"""``pfrelay run`` as a subprocess on a fake host: cycles, logs, lock, files, signals, events.

The relay is the real console script; /proc and /sys are real captures written under
``tmp_path`` (``FakeHost``), and ``ip`` is the fake script (``fakeip.write_script``) whose VF
table the tests read back. LACP goes down and up by replacing /proc/net/bonding/bond0 with
snapshots recorded from Linux 6.12 while a switch stopped and resumed sending LACPDUs.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from fakehost import with_states
from fakeip import write_script
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_support import (
    PFRELAY,
    World,
    assert_one_line_error,
    clean_env,
    json_lines,
    wait_until,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def msgs(records: List[dict]) -> List[str]:
    return [r["msg"] for r in records]


# ----------------------------------------------------------------------------- --once
def test_once_runs_one_cycle_and_exits_0(world: World) -> None:
    world.add_pf()
    result = world.pfrelay(*world.run_args("--interface", "pf0", "--once")[1:])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = json_lines(result.stdout)
    assert msgs(records) == [
        "Starting application",
        "pf is ready",
        "lacp is up",
        "Stopping application",
    ]
    start = records[0]
    assert start["interfaces"] == ["pf0"]
    assert start["polling_interval_ms"] == 100
    assert {"time", "level", "msg", "version"} <= set(start)
    # One cycle completed (heartbeat), and --once starts no `ip monitor`; with LACP up the
    # steady state does not run ip at all.
    assert (world.run_dir / "heartbeat").exists()
    assert world.ip.calls() == []
    assert world.vfs() == {0: "auto", 1: "auto", 2: "auto", 3: "auto"}


def test_once_with_lacp_down_disables_the_auto_vfs_and_records_them(world: World) -> None:
    world.add_pf()
    world.ip.add_pf("pf0", {0: "auto", 1: "enable", 2: "auto", 3: "disable"})
    world.set_lacp("bond0", "pf0", up=False)
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    sets = [r for r in records if r["msg"] == "vf link state was set"]
    assert [(r["interface"], r["id"], r["state"]) for r in sets] == [
        ("pf0", 0, "disable"),
        ("pf0", 2, "disable"),
    ]
    assert world.vfs() == {0: "disable", 1: "enable", 2: "disable", 3: "disable"}
    ledger = json.loads(world.state_file.read_text())
    assert ledger["pfs"]["pf0"]["disabled"] == [0, 2]
    assert ledger["pfs"]["pf0"]["ifindex"] == 2
    assert ledger["pfs"]["pf0"]["numvfs"] == 4
    assert ledger["boot_id"] == "00000000-0000-0000-0000-000000000001"
    assert stat.S_IMODE(world.state_file.stat().st_mode) == 0o600
    # All changes of the cycle went through one `ip -force -batch -`.
    batches = [c for c in world.ip.calls() if "-batch" in c["argv"]]
    assert len(batches) == 1
    assert batches[0]["stdin"] == (
        "link set dev pf0 vf 0 state disable\nlink set dev pf0 vf 2 state disable\n"
    )


def test_dry_run_logs_what_it_would_do_and_changes_nothing(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once", "--dry-run")[1:])
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert records[0]["dry_run"] is True
    would = [r for r in records if r["msg"] == "vf link state would be set (dry run)"]
    assert [(r["id"], r["state"]) for r in would] == [(n, "disable") for n in range(4)]
    assert "vf link state was set" not in msgs(records)
    assert world.vfs() == {n: "auto" for n in range(4)}
    assert not world.state_file.exists()
    assert not any("-batch" in c["argv"] for c in world.ip.calls())


# ----------------------------------------------------------------------------- the lock
def test_a_second_relay_on_the_same_state_file_refuses(world: World) -> None:
    world.add_pf()
    first = world.start(world.run_args("-i", "pf0"))
    first.wait_log("lacp is up")
    second = world.pfrelay(*world.run_args("-i", "pf0")[1:], timeout=10)
    line = assert_one_line_error(second, 1)
    lock = str(world.run_dir / "lock")
    assert lock in line
    assert f"pid {first.pid}" in line
    assert second.stdout == ""  # it did not start: no "Starting application"
    # The first one is unaffected and still cycling.
    mark = first.mark()
    world.set_lacp("bond0", "pf0", up=False)
    first.wait_log("lacp is down", after=mark)
    assert first.stop() == 0


def test_sigint_stops_cleanly_and_releases_the_lock(world: World) -> None:
    world.add_pf()
    daemon = world.start(world.run_args("-i", "pf0"))
    daemon.wait_log("lacp is up")
    assert (world.run_dir / "lock").read_text().strip() == str(daemon.pid)
    started = time.monotonic()
    assert daemon.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 1.0
    assert daemon.msgs()[-1] == "Stopping application"
    assert "".join(daemon.stderr) == ""
    # The `ip -o monitor link` child went with it, and the lock is free again.
    probe = world.pfrelay("status", "--probe", "live", "--state-file", str(world.state_file))
    assert probe.returncode == 1
    assert "no relay holds the lock" in probe.stdout
    again = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    assert again.returncode == 0, again.stderr


# ----------------------------------------------------------------------------- a failure
def test_lacp_down_and_up_drive_the_vfs_with_the_documented_log_lines(world: World) -> None:
    world.add_pf()
    world.ip.add_pf("pf0", {0: "auto", 1: "auto", 2: "auto", 3: "enable"})
    daemon = world.start(world.run_args("-i", "pf0"))
    daemon.wait_log("lacp is up")

    world.set_lacp("bond0", "pf0", up=False)
    daemon.wait_log("vf link state was set", count=3, state="disable")
    assert world.vfs() == {0: "disable", 1: "disable", 2: "disable", 3: "enable"}
    assert wait_until(world.state_file.exists, 2), "no ledger after the VFs were disabled"
    assert stat.S_IMODE(world.state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.run_dir.stat().st_mode) == 0o700
    assert json.loads(world.state_file.read_text())["pfs"]["pf0"]["disabled"] == [0, 1, 2]

    world.set_lacp("bond0", "pf0", up=True)
    daemon.wait_log("vf link state was set", count=3, state="auto")
    assert world.vfs() == {0: "auto", 1: "auto", 2: "auto", 3: "enable"}
    assert wait_until(lambda: json.loads(world.state_file.read_text())["pfs"] == {}, 2)
    assert daemon.stop() == 0

    records = daemon.logs()
    assert msgs(records) == [
        "Starting application",
        "pf is ready",
        "lacp is up",
        "lacp is down",
        *["vf link state was set"] * 3,
        "lacp is up",
        *["vf link state was set"] * 3,
        "Stopping application",
    ]
    by_msg = {r["msg"]: r for r in records}
    assert by_msg["pf is ready"]["interface"] == "pf0"
    assert by_msg["pf is ready"]["bond"] == "bond0"
    down = records[3]
    assert down["level"] == "WARNING"
    assert (down["interface"], down["bond"], down["mii_status"]) == ("pf0", "bond0", "up")
    assert (down["actor_state"], down["partner_state"]) == (79, 0)
    sets = [(r["interface"], r["id"], r["state"]) for r in records if "id" in r]
    assert sets == [("pf0", n, "disable") for n in range(3)] + [
        ("pf0", n, "auto") for n in range(3)
    ]


def test_restore_delay_flag_holds_the_vfs_until_lacp_stayed_up(world: World) -> None:
    world.add_pf(vfs=2)
    daemon = world.start(world.run_args("-i", "pf0", "--restore-delay", "700"))
    daemon.wait_log("lacp is up")
    world.set_lacp("bond0", "pf0", up=False)
    daemon.wait_log("vf link state was set", count=2, state="disable")
    mark = daemon.mark()
    world.set_lacp("bond0", "pf0", up=True)
    _, up_at, _ = daemon.wait_log("lacp is up", after=mark)
    _, restored_at, _ = daemon.wait_log("vf link state was set", after=mark, state="auto")
    assert 0.65 <= restored_at - up_at < 3.0
    assert daemon.stop() == 0


# ----------------------------------------------------------------------------- files
def test_heartbeat_advances_and_the_lock_names_the_relay(world: World) -> None:
    world.add_pf()
    daemon = world.start(world.run_args("-i", "pf0"))
    daemon.wait_log("lacp is up")
    heartbeat = world.run_dir / "heartbeat"
    assert wait_until(heartbeat.exists, 2)
    first = heartbeat.stat().st_mtime
    assert abs(first - time.time()) < 2
    later = wait_until(lambda: heartbeat.stat().st_mtime > first and heartbeat.stat().st_mtime, 2)
    assert later, "the heartbeat's mtime did not advance"
    assert stat.S_IMODE(heartbeat.stat().st_mode) & 0o077 == 0
    assert (world.run_dir / "lock").read_text() == f"{daemon.pid}\n"
    assert daemon.stop() == 0


@pytest.mark.parametrize("how", ["flag", "config", "env"])
def test_metrics_file_is_written_and_parses(world: World, how: str) -> None:
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    world.set_lacp("bond1", "pf1", up=False)
    metrics = world.root / "metrics" / "relay.prom"
    metrics.parent.mkdir()
    args = world.run_args("-i", "pf0", "-i", "pf1", "--once")[1:]
    env = clean_env()
    if how == "flag":
        args += ["--metrics-file", str(metrics)]
    elif how == "config":
        world.write_config(f'metrics_file = "{metrics}"\n')
    else:
        env["PF_STATUS_RELAY_METRICS_FILE"] = str(metrics)
    result = world.pfrelay(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert metrics.exists(), f"metrics_file from {how} was not written"
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    samples = {
        (s.name, s.labels.get("interface")): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert samples[("pf_status_relay_monitored", "pf0")] == 1
    assert samples[("pf_status_relay_lacp_up", "pf0")] == 1
    assert samples[("pf_status_relay_lacp_up", "pf1")] == 0
    assert samples[("pf_status_relay_vfs_disabled", "pf0")] == 0
    assert samples[("pf_status_relay_vfs_disabled", "pf1")] == 4
    assert samples[("pf_status_relay_partner_port_state", "pf1")] == 0
    assert abs(samples[("pf_status_relay_last_cycle_timestamp_seconds", None)] - time.time()) < 10
    assert list(metrics.parent.iterdir()) == [metrics]  # no temporary file left behind


# ----------------------------------------------------------------------------- link events
def test_a_link_event_wakes_the_relay_before_the_next_poll(world: World) -> None:
    """With a 5 s poll, only the `ip monitor` line can explain a reaction within ~1 s."""
    world.add_pf()
    world.ip.set(monitor_events=True)
    daemon = world.start(world.run_args("-i", "pf0", interval=5000))
    _, first_cycle, _ = daemon.wait_log("lacp is up")
    assert wait_until(
        lambda: any(c["argv"] == ["-o", "monitor", "link"] for c in world.ip.calls()), 2
    ), "no `ip -o monitor link` child"
    next_poll = first_cycle + 5.0

    world.set_lacp("bond0", "pf0", up=False)
    # An event for an interface the relay does not watch: no early cycle.
    world.ip.monitor_event("7: eth9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq")
    time.sleep(1.0)
    assert daemon.find("lacp is down") == [], "reacted without an event for its PF"

    # The kernel announces the PF (RTM_NEWLINK when its port state expires): react at once.
    sent = time.monotonic()
    world.ip.monitor_event(
        "2: pf0: <BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP> mtu 1500 qdisc mq master bond0 "
        "state UP mode DEFAULT group default qlen 1000\\    link/ether 02:00:00:00:00:01"
    )
    _, down_at, _ = daemon.wait_log("lacp is down", timeout=3)
    assert down_at - sent < 1.0
    assert down_at < next_poll - 1.0
    daemon.wait_log("vf link state was set", count=4, state="disable", timeout=2)

    # An event naming the bond (bond0@...) concerns its only slave too.
    mark = daemon.mark()
    world.set_lacp("bond0", "pf0", up=True)
    sent = time.monotonic()
    world.ip.monitor_event("3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500")
    _, up_at, _ = daemon.wait_log("lacp is up", after=mark, timeout=3)
    assert up_at - sent < 1.0
    assert up_at < next_poll - 0.5
    daemon.wait_log("vf link state was set", after=mark, count=4, state="auto", timeout=2)
    assert daemon.stop() == 0
    # The monitor child got no systemd variables and is gone with the relay.
    monitors = [c for c in world.ip.calls() if c["argv"][:2] == ["-o", "monitor"]]
    assert len(monitors) == 1


def test_a_deleted_link_event_rechecks_every_pf(world: World) -> None:
    world.add_pf()
    world.ip.set(monitor_events=True)
    daemon = world.start(world.run_args("-i", "pf0", interval=5000))
    _, first_cycle, _ = daemon.wait_log("lacp is up")
    assert wait_until(
        lambda: any(c["argv"] == ["-o", "monitor", "link"] for c in world.ip.calls()), 2
    )
    world.set_lacp("bond0", "pf0", up=False)
    sent = time.monotonic()
    world.ip.monitor_event("Deleted 9: vf9: <BROADCAST,MULTICAST> mtu 1500 qdisc noop")
    _, down_at, _ = daemon.wait_log("lacp is down", timeout=3)
    assert down_at - sent < 1.0
    assert down_at < first_cycle + 4.0
    assert daemon.stop() == 0


def test_a_link_monitor_that_exits_is_reported_and_polling_goes_on(world: World) -> None:
    world.add_pf()
    world.ip.set(mode="fail")  # every ip fails at once, `ip -o monitor link` too
    daemon = world.start(world.run_args("-i", "pf0"))
    _, _, warning = daemon.wait_log("link monitor exited; polling only until it restarts")
    assert warning["level"] == "WARNING"
    assert warning["code"] == 2
    world.set_lacp("bond0", "pf0", up=False)  # found by the next poll
    daemon.wait_log("lacp is down")
    time.sleep(0.5)
    assert daemon.msgs().count("link monitor exited; polling only until it restarts") == 1
    monitors = [c for c in world.ip.calls() if c["argv"][:2] == ["-o", "monitor"]]
    assert len(monitors) == 1  # restarted at most every 10 s, not every loop
    assert daemon.stop() == 0


def test_run_with_an_empty_config_file_and_no_interfaces_is_a_config_error(world: World) -> None:
    result = world.pfrelay("run", *world.paths(), "--once")
    line = assert_one_line_error(result, 2)
    assert "no interfaces configured" in line
    assert "PF_STATUS_RELAY_INTERFACES" in line
    assert not os.path.exists(world.run_dir / "lock")


@pytest.mark.parametrize(
    ("flag", "verdict"),
    [(None, "lacp is down"), ("--partner-may-lack-aggregation", "lacp is up")],
)
def test_partner_aggregation_flag_reaches_the_relay(
    world: World, flag: Optional[str], verdict: str
) -> None:
    """An Open vSwitch partner reports 59 (no Aggregation bit): down unless told otherwise."""
    world.add_pf()
    proc = world.host.procfs / "net/bonding/bond0"
    proc.write_text(with_states(proc.read_text(), 63, 59))
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once", *([flag] if flag else []))[1:])
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert verdict in msgs(records)
    assert world.vfs() == {n: ("auto" if verdict == "lacp is up" else "disable") for n in range(4)}


# ----------------------------------------------------------------------------- SIGHUP
def test_reload_applies_ip_timeout_and_log_level_and_warns_about_dropped_pfs(
    world: World,
) -> None:
    """Every key of a reloaded file takes effect, not only the PF list; state_file excepted."""
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    world.set_lacp("bond1", "pf1", up=False)
    other_ip, other_state = write_script(world.root / "ip2")
    other_state.add_pf("pf0", {n: "auto" for n in range(4)})
    other_state.set(mode="hang")
    world.write_config(
        f'interfaces = ["pf0", "pf1"]\nip = "{world.ip_path}"\npolling_interval_ms = 100\n'
    )
    daemon = world.start([PFRELAY, "run", *world.paths(ip=False)])
    daemon.wait_log("vf link state was set", count=4, interface="pf1", state="disable")
    assert wait_until(lambda: world.ip.calls() and world.state_file.exists(), 2)

    # A file naming a binary that does not exist is refused as a whole.
    world.write_config(f'interfaces = ["pf0"]\nip = "{world.root / "nowhere" / "ip"}"\n')
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    _, _, failed = daemon.wait_log(
        "configuration reload failed; keeping the old configuration", after=mark
    )
    assert "not found or not executable" in failed["error"]

    world.write_config(
        'interfaces = ["pf0"]\n'
        f'ip = "{other_ip}"\n'
        "ip_timeout_ms = 500\n"
        "polling_interval_ms = 100\n"
        'log_level = "warning"\n'
    )
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    _, _, dropped = daemon.wait_log(
        "ledger names a pf that is not monitored; its vfs are restored after the hold",
        after=mark,
    )
    assert (dropped["interface"], dropped["ids"]) == ("pf1", [0, 1, 2, 3])
    assert dropped["hold_ms"] == 30000

    world.set_lacp("bond0", "pf0", up=False)
    daemon.wait_log("lacp is down", after=mark, interface="pf0")
    _, _, error = daemon.wait_log(
        "failed to read vf link states", after=mark, timeout=3, interface="pf0"
    )
    assert "no answer after 0.5 s" in error["error"]  # the new ip_timeout_ms
    assert ["-j", "link", "show", "dev", "pf0"] in [c["argv"] for c in other_state.calls()]
    assert wait_until(  # and a new `ip monitor` under the new binary
        lambda: ["-o", "monitor", "link"] in [c["argv"] for c in other_state.calls()], 10
    )
    assert [r["level"] for r in daemon.logs()[mark:]].count("INFO") == 0  # log_level warning
    assert world.vfs("pf1") == {n: "disable" for n in range(4)}  # held: 30 s hold
    assert daemon.stop() == 0


# ----------------------------------------------------------------------------- SIGTERM
def test_sigterm_during_a_hung_ip_starts_no_further_ip(world: World) -> None:
    """A stop waits for the ip call in flight (bounded by --ip-timeout), not for every PF's."""
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    world.set_lacp("bond0", "pf0", up=False)
    world.set_lacp("bond1", "pf1", up=False)
    world.ip.set(mode="hang")
    daemon = world.start(world.run_args("-i", "pf0", "-i", "pf1", "--ip-timeout", "60000"))
    daemon.wait_log("lacp is down", interface="pf0")
    hung = wait_until(lambda: [c for c in world.ip.calls() if c["argv"][0] == "-j"], 5)
    assert hung, "no ip for pf0"
    assert daemon.find("lacp is down", interface="pf1") == []  # pf0's ip hangs first
    daemon.send(signal.SIGTERM)
    time.sleep(0.2)
    assert daemon.proc.poll() is None  # it waits for the ip in flight...
    world.ip.set(mode="ok")
    ended = time.monotonic()
    os.kill(hung[0]["pid"], signal.SIGKILL)  # ...which now ends (as at its timeout)
    # The first SIGTERM stops it: no second one (it could land after the handlers are gone).
    assert daemon.proc.wait(timeout=5) == 0
    daemon.join()
    assert time.monotonic() - ended < 1.0
    shows = [c["argv"][-1] for c in world.ip.calls() if c["argv"][0] == "-j"]
    assert shows == ["pf0"], "an ip was started after SIGTERM"
    assert daemon.msgs()[-1] == "Stopping application"


def test_an_unwritable_metrics_file_is_an_error_event_not_fatal(world: World) -> None:
    world.add_pf()
    metrics = world.root / "no-such-dir" / "relay.prom"
    result = world.pfrelay(
        *world.run_args("-i", "pf0", "--once", "--metrics-file", str(metrics))[1:]
    )
    assert result.returncode == 0, result.stderr
    errors = [r for r in json_lines(result.stdout) if r["level"] == "ERROR"]
    assert [r["msg"] for r in errors] == ["cannot write the metrics file"]
    assert errors[0]["path"] == str(metrics)


def test_reload_cannot_move_the_state_file(world: World) -> None:
    world.add_pf()
    other = world.root / "elsewhere" / "state.json"
    world.write_config(f'interfaces = ["pf0"]\nstate_file = "{world.state_file}"\n')
    args = [PFRELAY, "run", *world.paths()[:-2], "--polling-interval", "100"]
    daemon = world.start(args)
    daemon.wait_log("lacp is up")
    world.write_config(f'interfaces = ["pf0"]\nstate_file = "{other}"\n')
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    _, _, warning = daemon.wait_log("state_file cannot change on reload; restart to move it")
    assert warning["state_file"] == str(world.state_file)
    daemon.wait_log("configuration reloaded", after=mark)
    world.set_lacp("bond0", "pf0", up=False)
    daemon.wait_log("vf link state was set", count=4, state="disable")
    assert wait_until(world.state_file.exists, 2)
    assert not other.parent.exists()
    assert daemon.stop() == 0
