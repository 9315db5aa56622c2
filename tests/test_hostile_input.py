"""Hostile input on every parse path (issue 13, finding 3): one-line errors, never a crash.

Config file (TOML), environment, flags, the ledger JSON and ``ip -j`` JSON: arrays nested
thousands deep (``RecursionError`` in the parsers) and integers longer than Python's
int/str conversion limit (4300 digits, ``ValueError``) must end in the module's own error,
the CLI's one line and exit 2, a logged ledger error, or a reload that keeps the old
configuration; never in a traceback or a dead daemon (a crash loop under systemd).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_daemon_support import PFRELAY, World, assert_one_line_error, clean_env, json_lines

from pfrelay import config as configs
from pfrelay import ledger as ledgers
from pfrelay.config import ConfigError
from pfrelay.ledger import LedgerError
from pfrelay.sriov import VfListError, parse_link_show

#: More digits than sys.get_int_max_str_digits() allows by default (4300).
HUGE = "1" * 5000


def nested_toml(depth: int, kind: str, key: str = "interfaces") -> str:
    if kind == "array":
        return f"{key} = " + "[" * depth + "]" * depth + "\n"
    return f"{key} = " + "{a = " * depth + "1" + "}" * depth + "\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


# ------------------------------------------------------------------------------ TOML file
@settings(max_examples=40, deadline=None)
@given(
    depth=st.integers(min_value=2, max_value=20_000),
    kind=st.sampled_from(["array", "table"]),
    key=st.sampled_from(["interfaces", "polling_interval_ms", "nokey"]),
)
@example(depth=5000, kind="array", key="interfaces")
@example(depth=5000, kind="table", key="interfaces")
@example(depth=900, kind="array", key="interfaces")
def test_toml_nested_any_depth_is_a_config_error(depth: int, kind: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        configs.parse_toml(nested_toml(depth, kind, key), "/etc/x.toml")
    message = str(raised.value)
    assert "\n" not in message
    assert len(message) < 400
    assert "/etc/x.toml" in message or "interfaces" in message or "polling" in message


@settings(max_examples=30, deadline=None)
@given(
    # 8 digits of 9 are out of every key's range already.
    digits=st.integers(min_value=8, max_value=12_000),
    key=st.sampled_from(["polling_interval_ms", "ip_timeout_ms", "restore_delay_ms", "nokey"]),
    sign=st.sampled_from(["", "-", "+"]),
)
@example(digits=4301, key="polling_interval_ms", sign="")
@example(digits=5000, key="nokey", sign="-")
def test_toml_integer_of_any_length_is_a_config_error(digits: int, key: str, sign: str) -> None:
    with pytest.raises(ConfigError) as raised:
        configs.parse_toml(f"{key} = {sign}{'9' * digits}\n", "/etc/x.toml")
    message = str(raised.value)
    assert "\n" not in message
    assert len(message) < 400


def test_toml_huge_integer_message_says_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="too many digits"):
        configs.parse_toml(f"polling_interval_ms = {HUGE}\n", "/etc/x.toml")


# ------------------------------------------------------------------------- env and flags
@settings(max_examples=30, deadline=None)
@given(
    digits=st.integers(min_value=1, max_value=12_000),
    field=st.sampled_from(["polling_interval_ms", "ip_timeout_ms", "restore_delay_ms"]),
)
@example(digits=5000, field="polling_interval_ms")
def test_env_and_flag_integers_of_any_length(digits: int, field: str) -> None:
    text = "7" * digits
    for parse in (
        lambda: configs.parse_env({configs.ENV_VARS[field]: text}),
        lambda: configs.parse_flags({field: text}),
    ):
        try:
            parsed = parse()
        except ConfigError as exc:
            assert "\n" not in str(exc)
            assert len(str(exc)) < 400
        else:
            value = next(iter(parsed.values()))[0]
            assert isinstance(value, int)
            assert len(text) <= 7


def test_huge_integers_from_the_console_script(world: World) -> None:
    world.add_pf()
    env = clean_env(PF_STATUS_RELAY_POLLING_INTERVAL=HUGE)
    line = assert_one_line_error(world.pfrelay("run", *world.paths(), "--once", env=env))
    assert "PF_STATUS_RELAY_POLLING_INTERVAL" in line
    assert len(line) < 300
    result = world.pfrelay("run", *world.paths(), "-i", "pf0", "--once", "--ip-timeout", HUGE)
    assert "--ip-timeout" in assert_one_line_error(result)
    result = world.pfrelay("status", "--probe", "live", "--max-age", HUGE)
    assert len(assert_one_line_error(result)) < 300
    for case in ("array", "table"):
        world.write_config(nested_toml(5000, case))
        line = assert_one_line_error(world.pfrelay("run", *world.paths(), "--once"))
        assert "nested too deeply" in line
    world.write_config(f"ip_timeout_ms = {HUGE}\n")
    result = world.pfrelay("config", "show", "--config", str(world.config))
    assert "too many digits" in assert_one_line_error(result)
    assert not (world.run_dir / "lock").exists()


# --------------------------------------------------------------------------------- ledger
@settings(max_examples=30, deadline=None)
@given(depth=st.integers(min_value=1, max_value=200_000), opener=st.sampled_from(["[", '{"a":']))
@example(depth=100_000, opener="[")
def test_ledger_nested_any_depth_is_a_ledger_error(depth: int, opener: str) -> None:
    with pytest.raises(LedgerError) as raised:
        ledgers.parse(opener * depth)
    assert "\n" not in str(raised.value)
    assert len(str(raised.value)) < 300


def test_ledger_with_huge_numbers_is_a_ledger_error() -> None:
    entry = f'{{"disabled": [{HUGE}], "ifindex": {HUGE}}}'
    text = f'{{"version": 1, "pfs": {{"pf0": {entry}}}}}'
    with pytest.raises(LedgerError):
        ledgers.parse(text)


def test_run_and_status_with_a_hostile_ledger_log_one_error(world: World) -> None:
    """100000 "[" in the ledger: a logged error and a clean cycle, not a crash loop."""
    world.add_pf()
    world.run_dir.mkdir(parents=True, exist_ok=True)
    world.state_file.write_text("[" * 100_000)
    result = world.pfrelay(*world.run_args("-i", "pf0", "--once")[1:])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [r for r in json_lines(result.stdout) if r["level"] == "ERROR"]
    assert [r["msg"] for r in errors] == [
        "cannot read the ledger; kept it aside and started with an empty one"
    ]
    assert "nested too deeply" in errors[0]["error"]
    assert errors[0]["moved_to"].startswith(str(world.state_file) + ".bad-")
    assert json_lines(result.stdout)[-1]["msg"] == "Stopping application"

    world.state_file.write_text("[" * 100_000)
    result = world.pfrelay("status", *world.paths(), "pf0")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("pfrelay: warning: ")
    assert "nested too deeply" in warnings[0]
    assert "pf0" in result.stdout


# ------------------------------------------------------------------------------ ip -j JSON
@settings(max_examples=20, deadline=None)
@given(depth=st.integers(min_value=1, max_value=100_000))
@example(depth=100_000)
def test_ip_json_nested_any_depth_is_a_vf_list_error(depth: int) -> None:
    text = '[{"ifindex": 2, "vfinfo_list": ' + "[" * depth + "]" * depth + "}]"
    try:
        parse_link_show("pf0", text)
    except VfListError as exc:
        assert "\n" not in str(exc)


def test_ip_json_with_huge_numbers_is_a_vf_list_error() -> None:
    with pytest.raises(VfListError):
        parse_link_show("pf0", f'[{{"ifindex": {HUGE}, "vfinfo_list": []}}]')
    with pytest.raises(VfListError):
        parse_link_show("pf0", "[" * 100_000)


# ---------------------------------------------------------------------------------- reload
@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(nested_toml(5000, "array"), id="arrays-5000-deep"),
        pytest.param(nested_toml(5000, "table"), id="tables-5000-deep"),
        pytest.param(f"polling_interval_ms = {HUGE}\n", id="int-5000-digits"),
    ],
)
def test_reload_with_a_hostile_file_keeps_the_old_configuration(world: World, hostile: str) -> None:
    world.add_pf()
    world.write_config('interfaces = ["pf0"]\n')
    daemon = world.start([PFRELAY, "run", *world.paths(), "--polling-interval", "100"])
    daemon.wait_log("lacp is up")
    world.write_config(hostile)
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    _, _, failed = daemon.wait_log(
        "configuration reload failed; keeping the old configuration", after=mark
    )
    assert str(world.config) in failed["error"]
    # Still alive and still relaying with the old configuration.
    world.set_lacp("bond0", "pf0", up=False)
    daemon.wait_log("vf link state was set", after=mark, count=4, state="disable")
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
