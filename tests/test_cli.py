"""The ``pfrelay`` commands as a person runs them: exit codes, one-line errors, output.

Each test runs the real console script in a subprocess against a fake host (``FakeHost``) and
the fake ``ip``; stdin is never a terminal. Configuration errors must be exactly one line on
stderr starting with ``pfrelay: error:``, exit code 2, and no traceback, whichever command and
whichever layer (flag, environment variable, TOML file) they come from.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from test_daemon_support import PFRELAY, World, assert_one_line_error, clean_env, json_lines

from pfrelay import __version__, cli
from pfrelay import config as configs
from pfrelay.ledger import Ledger, PfEntry, save


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


class Result:
    """What an in-process run of ``pfrelay.cli.main`` printed and returned."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@pytest.fixture
def pfrelay_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """The console script's ``main()`` in this process: the same code path, in milliseconds.

    For the large error matrices; a traceback would surface as an exception in the test.
    """
    for key in list(os.environ):
        if key.startswith("PF_STATUS_RELAY_"):
            monkeypatch.delenv(key)

    def run(*args: str, env: Optional[Dict[str, str]] = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(sys, "argv", ["pfrelay", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            cli.main()
        for key in env or {}:
            monkeypatch.delenv(key)
        code = exited.value.code
        out, err = capsys.readouterr()
        return Result(code if isinstance(code, int) else 1, out, err)

    return run


def cap_status(world: World, cap_eff: str) -> None:
    """``<procfs>/self/status`` as `pfrelay check` reads it, with the given CapEff mask."""
    self_dir = world.host.procfs / "self"
    self_dir.mkdir(exist_ok=True)
    (self_dir / "status").write_text(f"Name:\tpfrelay\nCapEff:\t{cap_eff}\n")


# ------------------------------------------------------------------ configuration errors
#: (flags, the words the one line must contain)
FLAG_ERRORS = [
    (["--polling-interval", "abc"], ["polling_interval_ms", '"abc"', "--polling-interval"]),
    (["--polling-interval", "50"], ["polling_interval_ms", ">= 100", "got 50"]),
    (["--polling-interval", "99999999999999999999"], ["polling_interval_ms", "<= 3600000"]),
    (["--ip-timeout", "1.5"], ["ip_timeout_ms", "--ip-timeout"]),
    (["--restore-delay", "-1"], ["restore_delay_ms", "--restore-delay"]),
    (["-i", "../../etc"], ['"../../etc"', 'must not contain "/"']),
    (["-i", "eth0 vf 1"], ['"eth0 vf 1"', "whitespace"]),
    (["-i", "abcdefghijklmnop"], ['"abcdefghijklmnop"', "16 bytes", "at most 15"]),
    (["-i", "pf0", "-i", "pf0"], ['"pf0"', "more than once"]),
    (["--log-format", "xml"], ["log_format", '"xml"']),
    (["--log-level", "verbose"], ["log_level", '"verbose"']),
]


@pytest.mark.parametrize(("flags", "words"), FLAG_ERRORS, ids=lambda v: " ".join(v)[:40])
def test_run_flag_errors_are_one_line_exit_2(
    world: World, pfrelay_main: Callable[..., Result], flags: List[str], words: List[str]
) -> None:
    world.add_pf()
    args = ["run", *world.paths(), "--once"]
    if not any(f in ("-i", "--interface") for f in flags):
        args += ["-i", "pf0"]
    line = assert_one_line_error(pfrelay_main(*args, *flags))
    for word in words:
        assert word in line
    assert not (world.run_dir / "lock").exists(), "it started despite the error"
    assert world.vfs() == {n: "auto" for n in range(4)}


@pytest.mark.parametrize("flags", [["--polling-interval", "abc"], ["-i", "../../etc"]])
def test_flag_errors_from_the_console_script(world: World, flags: List[str]) -> None:
    result = world.pfrelay("run", *world.paths(), "--once", *flags)
    line = assert_one_line_error(result)
    assert flags[0] in line


def test_config_show_interval_error(pfrelay_main: Callable[..., Result]) -> None:
    line = assert_one_line_error(pfrelay_main("config", "show", "--polling-interval", "1e3"))
    assert "--polling-interval" in line


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_probe_max_age_errors(world: World, pfrelay_main: Callable[..., Result], value: str):
    result = pfrelay_main(
        "status", "--probe", "live", "--max-age", value, "--state-file", str(world.state_file)
    )
    assert f'--max-age: must be a number of seconds > 0, got "{value}"' in (
        assert_one_line_error(result)
    )


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (["../../etc"], ['"../../etc"', 'must not contain "/"']),
        (["eth0 vf 1"], ["whitespace"]),
        (["abcdefghijklmnop"], ["at most 15"]),
        (["pf0", "pf0"], ["more than once"]),
    ],
)
@pytest.mark.parametrize("command", ["status", "check"])
def test_bad_pf_names_as_arguments_are_one_line_exit_2(
    world: World,
    pfrelay_main: Callable[..., Result],
    command: str,
    names: List[str],
    words: List[str],
) -> None:
    line = assert_one_line_error(pfrelay_main(command, *names, *world.paths()[:6]))
    for word in words:
        assert word in line


def test_restore_and_config_init_check_names_too(world: World) -> None:
    line = assert_one_line_error(world.pfrelay("restore", "--yes", "a/b", *world.paths()[:2]))
    assert '"a/b"' in line
    target = world.root / "new.toml"
    line = assert_one_line_error(world.pfrelay("config", "init", str(target), "-i", "eth0:1"))
    assert "alias" in line
    assert not target.exists()


#: (TOML text, or None for "no such file", or "DIR" for a directory; words of the one line)
FILE_ERRORS = {
    "unknown key": ('interfaces = ["pf0"]\npoling_interval_ms = 200\n', ["poling_interval_ms"]),
    "unknown table": ('[relay]\ninterfaces = ["pf0"]\n', ["[relay]", "top level"]),
    "syntax": ('interfaces = ["pf0"\n', ["TOML syntax error", "line"]),
    "wrong type": ('interfaces = "pf0"\n', ["interfaces", "list of interface names"]),
    "interval abc": ('polling_interval_ms = "abc"\n', ["polling_interval_ms", '"abc"']),
    "interval huge": ("polling_interval_ms = 360000000000\n", ["<= 3600000"]),
    "bad name": ('interfaces = ["../../etc"]\n', ['"../../etc"']),
    "duplicate": ('interfaces = ["pf0", "pf0"]\n', ["more than once"]),
    "not utf-8": (None, ["not UTF-8"]),
    "missing": (None, ["config file not found", "pfrelay config init"]),
    "directory": (None, ["is a directory"]),
}

COMMANDS = {
    "run": ["run", "--once"],
    "status": ["status", "pf0"],
    "check": ["check", "pf0"],
    "config show": ["config", "show"],
    "restore": ["restore", "--yes"],
    "probe": ["status", "--probe", "live"],
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_config_file_errors_are_one_line_exit_2(
    world: World, pfrelay_main: Callable[..., Result], case: str, command: str
) -> None:
    text, words = FILE_ERRORS[case]
    path = world.root / "bad.toml"
    if case == "directory":
        path.mkdir()
    elif case == "not utf-8":
        path.write_bytes(b'interfaces = ["pf\xff"]\n')
    elif text is not None:
        path.write_text(text)
    args = [*COMMANDS[command], "--config", str(path)]
    if command not in ("config show", "check"):
        args += ["--state-file", str(world.state_file)]
    line = assert_one_line_error(pfrelay_main(*args))
    for word in words:
        assert word in line
    assert str(path) in line
    assert not (world.run_dir / "lock").exists()


@pytest.mark.parametrize("case", ["syntax", "missing", "directory"])
def test_config_file_errors_from_the_console_script(world: World, case: str) -> None:
    path = world.root / "bad.toml"
    if case == "directory":
        path.mkdir()
    elif case == "syntax":
        path.write_text("interfaces = [\n")
    line = assert_one_line_error(world.pfrelay("run", "--once", "--config", str(path)))
    assert str(path) in line


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("PF_STATUS_RELAY_POLLING_INTERVAL", "abc", ["PF_STATUS_RELAY_POLLING_INTERVAL"]),
        ("PF_STATUS_RELAY_POLLING_INTERVAL", "50", [">= 100"]),
        ("PF_STATUS_RELAY_INTERFACES", "pf0,,pf1", ["empty entry"]),
        ("PF_STATUS_RELAY_INTERFACES", "pf0,pf0", ["more than once"]),
        ("PF_STATUS_RELAY_PARTNER_REQUIRES_AGGREGATION", "maybe", ["true or false"]),
    ],
)
def test_environment_errors_are_one_line_exit_2(
    world: World, pfrelay_main: Callable[..., Result], var: str, value: str, words: List[str]
) -> None:
    result = pfrelay_main("run", *world.paths(), "--once", env={var: value})
    line = assert_one_line_error(result)
    for word in words:
        assert word in line


def test_an_empty_config_file_is_fine(world: World) -> None:
    world.add_pf()
    assert world.config.read_text() == ""
    result = world.pfrelay("run", *world.paths(), "-i", "pf0", "--once")
    assert result.returncode == 0, result.stderr
    shown = world.pfrelay("config", "show", "--config", str(world.config))
    assert shown.returncode == 0
    assert "polling_interval_ms = 1000  # default" in shown.stdout


def test_an_unknown_option_is_a_usage_error_without_traceback(world: World) -> None:
    result = world.pfrelay("run", "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ env configures run
def test_environment_variables_configure_run_once(world: World) -> None:
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3)
    env = clean_env(
        PF_STATUS_RELAY_INTERFACES="pf0, pf1",
        PF_STATUS_RELAY_POLLING_INTERVAL="250",
        PF_STATUS_RELAY_LOG_FORMAT="json",
    )
    result = world.pfrelay("run", *world.paths(), "--once", env=env)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert records[0]["msg"] == "Starting application"
    assert records[0]["interfaces"] == ["pf0", "pf1"]
    assert records[0]["polling_interval_ms"] == 250
    ready = [r["interface"] for r in records if r["msg"] == "pf is ready"]
    assert ready == ["pf0", "pf1"]
    # A flag beats the environment.
    result = world.pfrelay("run", *world.paths(), "--once", "-i", "pf1", env=env)
    assert json_lines(result.stdout)[0]["interfaces"] == ["pf1"]


def test_text_log_format(world: World) -> None:
    world.add_pf()
    result = world.pfrelay("run", *world.paths(), "-i", "pf0", "--once", "--log-format", "text")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z INFO +Starting application  ", lines[0])
    assert any(re.search(r"INFO +lacp is up  interface=pf0 bond=bond0", line) for line in lines)
    assert json_lines(result.stdout) == []


# ------------------------------------------------------------------ status
def test_status_of_a_pf_that_does_not_exist_says_why(world: World) -> None:
    world.add_pf()
    result = world.pfrelay("status", "eth0", *world.paths())
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "eth0: NOT MONITORED - no such interface"
    assert "relay: not running" in result.stdout
    assert "Traceback" not in result.stderr


def test_status_of_a_pf_outside_a_bond_says_why(world: World) -> None:
    world.host.add_pf("eth3", ifindex=7, numvfs=0)
    result = world.pfrelay("status", "eth3", *world.paths())
    assert result.returncode == 1
    assert (
        result.stdout.splitlines()[0] == "eth3: NOT MONITORED - not enslaved to a bond (no master)"
    )


def test_status_all_up_exits_0_with_a_readable_table(world: World) -> None:
    world.add_pf()
    world.add_pf("pf1", "bond1", ifindex=3, vfs=2)
    world.write_config('interfaces = ["pf0", "pf1"]\n')
    result = world.pfrelay("status", *world.paths())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pf0: LACP UP"
    assert "  bond      bond0  mode 802.3ad  lacp_rate fast  mii up" in lines
    assert "  vfs       4 VFs: 4 auto" in lines
    assert "pf1: LACP UP" in lines
    assert "  vfs       2 VFs: 2 auto" in lines
    assert lines[-1] == "relay: not running"


def test_status_with_lacp_down_exits_1(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    result = world.pfrelay("status", "pf0", *world.paths())
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "pf0: LACP DOWN"
    assert "partner   0 -" in result.stdout


def test_status_json_contract(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    # The relay ran once: VFs 0-3 disabled and in the ledger.
    assert world.pfrelay("run", *world.paths(), "-i", "pf0", "--once").returncode == 0
    result = world.pfrelay("status", "pf0", "eth0", "--json", *world.paths())
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"interfaces", "service"}
    pf0, eth0 = doc["interfaces"]
    contract = {"interface", "monitored", "reason", "lacp", "bond", "vfs"}
    assert contract <= set(pf0)
    assert contract <= set(eth0)
    assert pf0["interface"] == "pf0"
    assert pf0["monitored"] is True
    assert pf0["reason"] is None
    assert pf0["lacp"] == "down"
    assert pf0["bond"]["name"] == "bond0"
    assert pf0["bond"]["mode"] == "802.3ad"
    assert [s["name"] for s in pf0["bond"]["slaves"]] == ["pf0"]
    assert pf0["bond"]["slaves"][0]["partner_state"] == 0
    assert pf0["vfs"] == [
        {"vf": n, "link_state": "disable", "disabled_by_relay": True} for n in range(4)
    ]
    assert eth0 == {**eth0, "monitored": False, "reason": "no such interface", "lacp": "unknown"}
    assert eth0["bond"] is None
    assert eth0["vfs"] == []
    assert set(doc["service"]) >= {"running", "pid", "last_cycle", "last_cycle_age_s"}
    assert doc["service"]["running"] is False
    assert doc["service"]["pid"] is None
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", doc["service"]["last_cycle"])


def test_status_does_not_credit_the_relay_with_vfs_of_another_boot(world: World) -> None:
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    assert world.pfrelay("run", *world.paths(), "-i", "pf0", "--once").returncode == 0
    (world.host.procfs / "sys/kernel/random/boot_id").write_text("another-boot\n")
    result = world.pfrelay("status", "pf0", "--json", *world.paths())
    assert result.stderr.splitlines() == [
        "pfrelay: warning: pf0: ledger entry ignored: the ledger was written in another boot"
    ]
    (pf0,) = json.loads(result.stdout)["interfaces"]
    assert pf0["vfs"] == [
        {"vf": n, "link_state": "disable", "disabled_by_relay": False} for n in range(4)
    ]
    assert ledger_pfs(world) == {"pf0": [0, 1, 2, 3]}  # status reads; the relay drops it


def test_status_json_shows_a_running_relay(world: World) -> None:
    world.add_pf()
    daemon = world.start(world.run_args("-i", "pf0"))
    daemon.wait_log("lacp is up")
    result = world.pfrelay("status", "pf0", "--json", *world.paths())
    assert result.returncode == 0, result.stdout + result.stderr
    service = json.loads(result.stdout)["service"]
    assert service["running"] is True
    assert service["pid"] == daemon.pid
    assert 0 <= service["last_cycle_age_s"] < 5
    table = world.pfrelay("status", "pf0", *world.paths())
    assert f"relay: running (pid {daemon.pid}), last cycle " in table.stdout
    assert daemon.stop() == 0


def test_status_without_interfaces_is_a_config_error(world: World) -> None:
    line = assert_one_line_error(world.pfrelay("status", *world.paths()))
    assert "no interfaces" in line


def test_status_without_ip_warns_and_still_shows_lacp(world: World) -> None:
    world.add_pf()
    args = [a if a != str(world.ip_path) else str(world.root / "no-ip") for a in world.paths()]
    result = world.pfrelay("status", "pf0", *args)
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("pfrelay: warning: ")
    assert "VF states not shown" in result.stderr
    assert "pf0: LACP UP" in result.stdout


# ------------------------------------------------------------------ check
def check(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return world.pfrelay("check", *args, *world.paths()[:8])


def test_check_a_healthy_pf_passes(world: World) -> None:
    world.add_pf()
    cap_status(world, "000001ffffffffff")
    result = check(world, "pf0")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        "ok   relay: runs with CAP_NET_ADMIN",
        f"ok   ip: iproute2 runs ({world.ip_path})",
        "ok   pf0: bond bond0 found",
        "ok   pf0: mode 802.3ad",
        "ok   pf0: only slave of the bond",
        "ok   pf0: lacp_rate fast",
        "ok   pf0: MII status up",
        "ok   pf0: LACP up",
        "ok   pf0: 4 VFs visible",
    ]


def test_check_failures_exit_1_with_hints(world: World) -> None:
    world.add_pf()
    cap_status(world, "0000000000000000")
    world.host.add_pf("eth3", ifindex=7, numvfs=0)
    result = check(world, "pf0", "eth3", "eth9")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL relay: no CAP_NET_ADMIN")
    assert " -- run as root" in lines[0]
    assert "FAIL eth9: no such interface -- check the name with `ip link`" in lines
    eth3 = [line for line in lines if line.startswith(("ok   eth3", "warn eth3", "FAIL eth3"))]
    assert eth3[0].startswith("FAIL eth3: not enslaved to a bond")
    assert "ip link set eth3 master bond0" in eth3[0]
    assert any(line.startswith("warn eth3: sriov_numvfs is 0") for line in eth3)


def test_check_warnings_alone_exit_0(world: World) -> None:
    world.add_pf()
    cap_status(world, "0000000000001000")  # CAP_NET_ADMIN only
    world.set_lacp("bond0", "pf0", up=False)
    result = check(world, "pf0")
    assert result.returncode == 0, result.stdout
    assert (
        "warn pf0: LACP down now: the relay would disable the PF's auto VFs"
        in (result.stdout.splitlines()[-2].split(" -- ")[0])
    )


def test_check_a_failing_ip_exits_1(world: World) -> None:
    world.add_pf()
    cap_status(world, "000001ffffffffff")
    world.ip.set(mode="fail")
    result = check(world, "pf0")
    assert result.returncode == 1
    ip_line = result.stdout.splitlines()[1]
    assert ip_line.startswith("FAIL ip: ")
    assert "Operation not permitted" in ip_line


def test_check_without_interfaces_is_a_config_error(world: World) -> None:
    line = assert_one_line_error(check(world))
    assert "no interfaces" in line


# ------------------------------------------------------------------ restore
def disable_by_relay(world: World) -> None:
    """Let the relay disable pf0's VFs 0-3 (LACP down, --once), as after a failure."""
    world.add_pf()
    world.set_lacp("bond0", "pf0", up=False)
    assert world.pfrelay("run", *world.paths(), "-i", "pf0", "--once").returncode == 0
    assert world.vfs() == {n: "disable" for n in range(4)}


def ledger_pfs(world: World) -> Dict[str, List[int]]:
    doc = json.loads(world.state_file.read_text())
    return {pf: entry["disabled"] for pf, entry in doc["pfs"].items()}


def test_restore_yes_puts_back_what_the_relay_disabled(world: World) -> None:
    disable_by_relay(world)
    # An operator has since taken VF 1 over by hand.
    world.ip.add_pf("pf0", {0: "disable", 1: "enable", 2: "disable", 3: "disable"})
    result = world.pfrelay("restore", "--yes", *world.paths())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["pf0 vf 0: auto", "pf0 vf 2: auto", "pf0 vf 3: auto"]
    assert world.vfs() == {0: "auto", 1: "enable", 2: "auto", 3: "auto"}
    assert ledger_pfs(world) == {}
    again = world.pfrelay("restore", "--yes", *world.paths())
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to restore")


def test_restore_of_one_pf_keeps_the_others(world: World) -> None:
    world.ip.add_pf("pf0", {0: "disable", 1: "disable"})
    world.ip.add_pf("pf1", {0: "disable"}, ifindex=3)
    world.run_dir.mkdir()
    save(
        world.state_file,
        Ledger({"pf0": PfEntry(frozenset({0, 1}), 2, 2), "pf1": PfEntry(frozenset({0}), 3, 1)}),
    )
    result = world.pfrelay("restore", "pf1", "--yes", *world.paths())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["pf1 vf 0: auto"]
    assert world.vfs("pf0") == {0: "disable", 1: "disable"}
    assert ledger_pfs(world) == {"pf0": [0, 1]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("boot", "the ledger was written in another boot"),
        ("ifindex", "the PF was re-created (ifindex 2 -> 7)"),
        ("numvfs", "the VFs were re-created (sriov_numvfs 4 -> 2)"),
    ],
)
def test_restore_does_not_flip_vfs_the_relay_did_not_disable(
    world: World, change: str, reason: str
) -> None:
    """A ledger entry from another boot, or of a PF/VFs re-created since, names other VFs."""
    disable_by_relay(world)
    if change == "boot":
        (world.host.procfs / "sys/kernel/random/boot_id").write_text("another-boot\n")
    elif change == "ifindex":
        (world.host.net("pf0") / "ifindex").write_text("7\n")
    else:
        (world.host.net("pf0") / "device/sriov_numvfs").write_text("2\n")
    calls = len(world.ip.calls())
    result = world.pfrelay("restore", "--yes", *world.paths())
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"pfrelay: pf0: not restoring VFs 0 1 2 3: {reason}"]
    assert len(world.ip.calls()) == calls  # not even a look
    assert result.stdout.startswith("nothing to restore")
    assert world.vfs() == {n: "disable" for n in range(4)}  # untouched
    assert ledger_pfs(world) == {}  # the entry is dropped: those VFs are not ours


def test_restore_refuses_while_a_relay_holds_the_lock(world: World) -> None:
    disable_by_relay(world)
    daemon = world.start(world.run_args("-i", "pf0"))
    daemon.wait_log("lacp is down")
    line = assert_one_line_error(world.pfrelay("restore", "--yes", *world.paths()), 1)
    assert str(world.run_dir / "lock") in line
    assert "the running relay would disable the VFs again" in line
    assert world.vfs() == {n: "disable" for n in range(4)}
    assert daemon.stop() == 0
    assert ledger_pfs(world) == {"pf0": [0, 1, 2, 3]}


def test_restore_without_yes_and_no_terminal_refuses_with_a_hint(world: World) -> None:
    disable_by_relay(world)
    line = assert_one_line_error(world.pfrelay("restore", *world.paths()), 2)
    assert "pf0: VFs 0 1 2 3" in line
    assert "--yes" in line
    assert world.vfs() == {n: "disable" for n in range(4)}
    assert ledger_pfs(world) == {"pf0": [0, 1, 2, 3]}


def test_restore_reports_a_vf_it_cannot_set_and_keeps_it(world: World) -> None:
    disable_by_relay(world)
    world.ip.set(fail_vfs=[["pf0", 2]])
    result = world.pfrelay("restore", "--yes", *world.paths())
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["pf0 vf 0: auto", "pf0 vf 1: auto", "pf0 vf 3: auto"]
    assert result.stderr.splitlines() == [
        "pfrelay: error: pf0 vf 2: RTNETLINK answers: Invalid argument"
    ]
    assert ledger_pfs(world) == {"pf0": [2]}


# ------------------------------------------------------------------ config show / init
def test_config_show_names_each_source(world: World) -> None:
    world.write_config('interfaces = ["pf0"]\nip_timeout_ms = 2000\n')
    env = clean_env(PF_STATUS_RELAY_RESTORE_DELAY="1500", PF_STATUS_RELAY_IP_TIMEOUT="3000")
    result = world.pfrelay(
        "config", "show", "--config", str(world.config), "--polling-interval", "200", env=env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f'interfaces = ["pf0"]  # file {world.config}' in lines
    assert "ip_timeout_ms = 3000  # env PF_STATUS_RELAY_IP_TIMEOUT" in lines
    assert "restore_delay_ms = 1500  # env PF_STATUS_RELAY_RESTORE_DELAY" in lines
    assert "polling_interval_ms = 200  # flag --polling-interval" in lines
    assert 'log_format = "json"  # default' in lines
    assert "metrics_file = (not set)  # default" in lines
    assert [line.split(" = ")[0] for line in lines] == list(configs.FIELDS)


def test_config_init_writes_a_file_that_loads_back(world: World) -> None:
    target = world.root / "etc" / "relay.toml"
    result = world.pfrelay("config", "init", str(target), "-i", "ens1f0np0", "-i", "ens1f1np1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {target}"
    shown = world.pfrelay("config", "show", "--config", str(target))
    assert shown.returncode == 0, shown.stderr
    assert f'interfaces = ["ens1f0np0", "ens1f1np1"]  # file {target}' in shown.stdout
    assert "polling_interval_ms = 1000  # file" in shown.stdout
    # It is the same configuration as the defaults plus the interfaces.
    cfg, _ = configs.load(str(target), {}, {})
    assert cfg == configs.Config(interfaces=("ens1f0np0", "ens1f1np1"))
    # An existing file is kept unless --force.
    line = assert_one_line_error(world.pfrelay("config", "init", str(target)))
    assert "--force" in line
    assert "ens1f0np0" in target.read_text()
    forced = world.pfrelay("config", "init", str(target), "--force")
    assert forced.returncode == 0
    assert configs.load(str(target), {}, {})[0] == configs.Config()


# ------------------------------------------------------------------ version, demo, help
def test_version(world: World) -> None:
    result = world.pfrelay("--version")
    assert result.returncode == 0
    assert result.stdout == f"pfrelay {__version__}\n"


def test_demo_replays_a_failure_and_recovery(world: World) -> None:
    result = world.pfrelay("demo")
    assert result.returncode == 0, result.stderr
    assert "lacp is down" in result.stdout
    assert "back to auto" in result.stdout
    assert result.stdout.index("lacp is down") < result.stdout.rindex("lacp is up")


def test_help_lists_the_commands(world: World) -> None:
    result = world.pfrelay("--help")
    assert result.returncode == 0
    for command in ("run", "status", "check", "restore", "config", "demo"):
        assert re.search(rf"^\s*│?\s*{command}\b", result.stdout, re.M), command


# ------------------------------------------------------------------ run's own errors
def test_run_without_ip_is_one_line(world: World) -> None:
    world.add_pf()
    args = [*world.paths(ip=False), "--ip", str(world.root / "nowhere" / "ip")]
    line = assert_one_line_error(world.pfrelay("run", *args, "-i", "pf0", "--once"))
    assert "not found or not executable" in line
    assert not (world.run_dir / "lock").exists()


def test_run_with_an_unusable_runtime_directory_is_one_line(world: World) -> None:
    world.add_pf()
    blocker = world.root / "a-file"
    blocker.write_text("")
    state = blocker / "state.json"
    args = [a if a != str(world.state_file) else str(state) for a in world.paths()]
    line = assert_one_line_error(world.pfrelay("run", *args, "-i", "pf0", "--once"))
    assert f"cannot use runtime directory {blocker}" in line
    assert "--state-file" in line


def run_on_a_terminal(argv: List[str], answer: bytes, timeout: float = 10.0) -> Tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout, type ``answer``; (code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=clean_env(), close_fds=True
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"[y/N]" in output:
            os.write(master, answer)
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    code = proc.wait(timeout)
    return code, output.decode("utf-8", "replace")


@pytest.mark.parametrize(("answer", "restored"), [(b"y\n", True), (b"n\n", False)])
def test_restore_on_a_terminal_asks_first(world: World, answer: bytes, restored: bool) -> None:
    disable_by_relay(world)
    code, output = run_on_a_terminal([PFRELAY, "restore", *world.paths()], answer)
    assert "Set to auto pf0: VFs 0 1 2 3? [y/N]:" in output
    assert "Traceback" not in output
    if restored:
        assert code == 0, output
        assert world.vfs() == {n: "auto" for n in range(4)}
        assert ledger_pfs(world) == {}
    else:
        assert code == 1, output
        assert "Aborted" in output
        assert world.vfs() == {n: "disable" for n in range(4)}
        assert ledger_pfs(world) == {"pf0": [0, 1, 2, 3]}


def test_restore_with_a_corrupt_ledger_is_one_line(world: World) -> None:
    world.run_dir.mkdir()
    world.state_file.write_text("{not json")
    line = assert_one_line_error(world.pfrelay("restore", "--yes", *world.paths()), 1)
    assert str(world.state_file) in line
    assert world.state_file.read_text() == "{not json"  # evidence kept


def test_restore_of_a_pf_ip_cannot_show_keeps_its_entry(world: World) -> None:
    disable_by_relay(world)
    state = world.ip.read()
    del state["links"]["pf0"]  # the PF is gone (renamed, driver unloaded)
    world.ip.write(state)
    result = world.pfrelay("restore", "--yes", *world.paths())
    assert result.returncode == 1
    assert result.stderr.startswith("pfrelay: error: pf0: ")
    assert "does not exist" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert ledger_pfs(world) == {"pf0": [0, 1, 2, 3]}


def test_status_with_a_corrupt_ledger_warns_and_shows_the_pf(world: World) -> None:
    world.add_pf()
    world.run_dir.mkdir()
    world.state_file.write_text("[]")
    result = world.pfrelay("status", "pf0", *world.paths())
    assert result.returncode == 0
    assert result.stderr.startswith("pfrelay: warning: ")
    assert str(world.state_file) in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout.startswith("pf0: LACP UP")


def test_check_without_proc_self_status_cannot_tell_the_capability(world: World) -> None:
    world.add_pf()
    result = check(world, "pf0")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "warn relay: cannot tell whether CAP_NET_ADMIN is held"


def test_config_init_into_an_unwritable_place_is_one_line(world: World) -> None:
    blocker = world.root / "a-file"
    blocker.write_text("")
    line = assert_one_line_error(world.pfrelay("config", "init", str(blocker / "c.toml")), 1)
    assert f"cannot write {blocker / 'c.toml'}" in line
