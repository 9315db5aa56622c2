"""pfrelay.config: layers, precedence, sources and one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from pfrelay import config as configs
from pfrelay.config import DEFAULT_PATH, Config, ConfigError

DEFAULT_SOURCES = {name: "default" for name in configs.FIELDS}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(
    tmp_path: Path,
    text: str = "",
    env: Optional[Mapping[str, str]] = None,
    flags: Optional[Mapping[str, object]] = None,
) -> tuple[Config, Dict[str, str]]:
    return configs.load(write(tmp_path, text), env or {}, flags or {})


def error(tmp_path: Path, text: str = "", env=None, flags=None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env, flags)
    return one_line(info.value)


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert len(message.splitlines()) == 1, message
    return message


# ---------------------------------------------------------------------------- defaults/files
def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load(tmp_path) == (Config(), DEFAULT_SOURCES)


def test_comment_only_file_gives_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "# nothing here\n\n")[0] == Config()


def test_missing_default_file_is_fine(fs) -> None:
    assert configs.load(None, {}, {}) == (Config(), DEFAULT_SOURCES)


def test_default_file_is_read_when_path_is_none(fs) -> None:
    fs.create_file(DEFAULT_PATH, contents='interfaces = ["ens1f0np0"]\n')
    cfg, sources = configs.load(None, {}, {})
    assert cfg.interfaces == ("ens1f0np0",)
    assert sources["interfaces"] == f"file {DEFAULT_PATH}"
    assert sources["polling_interval_ms"] == "default"


def test_default_path_that_is_a_directory_is_an_error(fs) -> None:
    fs.create_dir(DEFAULT_PATH)
    with pytest.raises(ConfigError) as info:
        configs.load(None, {}, {})
    assert one_line(info.value).startswith(f"{DEFAULT_PATH}: is a directory")


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        configs.load(path, {}, {})
    message = one_line(info.value)
    assert message.startswith(f"{path}: config file not found")
    assert "pfrelay config init" in message


def test_explicit_path_under_a_file_is_not_found(tmp_path: Path) -> None:
    path = write(tmp_path, "") + "/config.toml"
    with pytest.raises(ConfigError, match="config file not found"):
        configs.load(path, {}, {})


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        configs.load(str(tmp_path), {}, {})
    assert one_line(info.value) == (
        f"{tmp_path}: is a directory, not a config file; give the path of a TOML file"
    )


def test_empty_path_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        configs.load("", {}, {})
    assert "path is empty" in one_line(info.value)


def test_unreadable_file_is_an_error() -> None:
    with Patcher(allow_root_user=False) as patcher:
        patcher.fs.create_file("/etc/x.toml", contents="", st_mode=0o100000)
        with pytest.raises(ConfigError) as info:
            configs.load("/etc/x.toml", {}, {})
    message = one_line(info.value)
    assert message.startswith("/etc/x.toml: cannot read config file: permission denied")
    assert "readable" in message


def test_other_os_error_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("builtins.open", broken)
    with pytest.raises(ConfigError) as info:
        configs.load("/etc/x.toml", {}, {})
    assert one_line(info.value) == "/etc/x.toml: cannot read config file: Input/output error"


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'ip = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        configs.load(str(path), {}, {})
    assert one_line(info.value) == (
        f"{path}: not UTF-8 text (invalid byte at offset 6); save it as UTF-8"
    )


def test_huge_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "#" * (configs.MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        configs.load(path, {}, {})


def test_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    text = 'interfaces = ["ens1f0np0"]\npolling_interval_ms = abc\n'
    path = str(tmp_path / "config.toml")
    assert error(tmp_path, text) == (
        f"{path}: TOML syntax error at line 2, column 23: Invalid value"
    )


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    message = error(tmp_path, 'ip = "ip"\nsysfs = "/sys')
    assert "TOML syntax error at end of file (line 2): Unterminated string" in message


def test_syntax_error_without_position_is_still_one_line() -> None:
    assert configs._syntax_error("odd\nthing", "") == "TOML syntax error: odd\nthing"
    assert str(ConfigError("x: odd\nthing")) == "x: odd\\nthing"


# -------------------------------------------------------------------------------- unknown keys
def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    path = str(tmp_path / "config.toml")
    assert error(tmp_path, "polling_intervall = 500") == (
        f'unknown key "polling_intervall" in {path} (did you mean "polling_interval_ms"?)'
    )


def test_unknown_upstream_camel_case_key_suggests_ours(tmp_path: Path) -> None:
    assert 'did you mean "polling_interval_ms"' in error(tmp_path, "pollingInterval = 500")


def test_unknown_key_without_a_near_one_lists_the_keys(tmp_path: Path) -> None:
    message = error(tmp_path, "colour = 1")
    assert message.startswith('unknown key "colour" in ')
    assert "; the keys are: interfaces, polling_interval_ms," in message


def test_section_is_an_unknown_table(tmp_path: Path) -> None:
    message = error(tmp_path, '[relay]\ninterfaces = ["a"]\n')
    assert message.startswith("unknown table [relay] in ")
    assert "top level" in message


# ------------------------------------------------------------------------ wrong values in file
BAD_VALUES = [
    ("polling_interval_ms", "true", "true"),  # bool is an int in Python; not here
    ("polling_interval_ms", "1000.0", "1000.0"),
    ("polling_interval_ms", '"1000"', '"1000"'),
    ("polling_interval_ms", "99", "99"),
    ("polling_interval_ms", "3600001", "3600001"),
    ("ip_timeout_ms", "99", "99"),
    ("ip_timeout_ms", "60001", "60001"),
    ("restore_delay_ms", "-1", "-1"),
    ("restore_delay_ms", "3600001", "3600001"),
    ("restore_delay_ms", "false", "false"),
    ("partner_requires_aggregation", "1", "1"),
    ("partner_requires_aggregation", '"yes"', '"yes"'),
    ("procfs", '"proc"', '"proc"'),
    ("sysfs", "1", "1"),
    ("sysfs", '""', '""'),
    ("state_file", '"state.json"', '"state.json"'),
    ("state_file", '"/run/a\\u0000b"', '"/run/a\\u0000b"'),
    ("metrics_file", '"metrics.prom"', '"metrics.prom"'),
    ("ip", '"sbin/ip"', '"sbin/ip"'),
    ("ip", '""', '""'),
    ("ip", '["ip"]', '["ip"]'),
    ("log_format", '"yaml"', '"yaml"'),
    ("log_level", '"verbose"', '"verbose"'),
    ("log_level", "{ a = 1 }", "a table"),
    ("interfaces", '"ens1f0np0"', '"ens1f0np0"'),
    ("interfaces", "[1, 2]", "[1, 2]"),
    ("interfaces", '"ens1f0np0,ens1f1np1"', '"ens1f0np0,ens1f1np1"'),
]


@pytest.mark.parametrize(("key", "toml", "shown"), BAD_VALUES)
def test_bad_value_in_file_names_key_value_and_file(
    tmp_path: Path, key: str, toml: str, shown: str
) -> None:
    message = error(tmp_path, f"{key} = {toml}\n")
    assert message.startswith(f"{key}: must be ")
    assert f", got {shown} (from {tmp_path / 'config.toml'})" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("polling_interval_ms", 100),
        ("polling_interval_ms", 3_600_000),
        ("ip_timeout_ms", 100),
        ("ip_timeout_ms", 60_000),
        ("restore_delay_ms", 0),
        ("restore_delay_ms", 3_600_000),
    ],
)
def test_bounds_are_inclusive(tmp_path: Path, key: str, value: int) -> None:
    assert getattr(load(tmp_path, f"{key} = {value}")[0], key) == value


def test_interval_message_says_milliseconds(tmp_path: Path) -> None:
    assert "must be an integer >= 100 and <= 3600000 (milliseconds)" in error(
        tmp_path, "polling_interval_ms = 5"
    )


def test_log_level_suggests_the_nearest(tmp_path: Path) -> None:
    assert error(tmp_path, 'log_level = "warn"').endswith(' (did you mean "warning"?)')


def test_choices_are_case_insensitive_and_normalized(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'log_level = "DEBUG"\nlog_format = "Text"')[0]
    assert (cfg.log_level, cfg.log_format) == ("debug", "text")


def test_ip_may_be_a_bare_name_or_absolute(tmp_path: Path) -> None:
    assert load(tmp_path, 'ip = "ip"')[0].ip == "ip"
    assert load(tmp_path, 'ip = "/usr/sbin/ip"')[0].ip == "/usr/sbin/ip"


def test_invalid_interface_name_in_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert error(tmp_path, 'interfaces = ["ens1f0np0", "../../etc"]') == (
        'interfaces: "../../etc" is not a valid interface name: it must not contain "/" '
        f"(from {path}); use a name as `ip link` shows it"
    )


def test_interface_name_with_newline_stays_on_one_line(tmp_path: Path) -> None:
    message = error(tmp_path, 'interfaces = ["ens1\\nf0"]')
    assert '"ens1\\nf0" is not a valid interface name: it must not contain whitespace' in message


def test_duplicate_interface_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert error(tmp_path, 'interfaces = ["ens1f0np0", "ens1f1np1", "ens1f0np0"]') == (
        f'interfaces: "ens1f0np0" is listed more than once (from {path}); list each interface once'
    )


def test_metrics_file_must_not_be_the_state_file(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        'state_file = "/run/pf/state.json"',
        env={"PF_STATUS_RELAY_METRICS_FILE": "/run/pf/./state.json"},
    )
    assert message.startswith("metrics_file: must not be the state_file")
    assert "(from PF_STATUS_RELAY_METRICS_FILE)" in message


def test_long_value_is_shortened(tmp_path: Path) -> None:
    message = error(tmp_path, f'procfs = "{"p" * 500}"')
    assert '"' + "p" * 57 + '..."' in message
    assert len(message) < 200


# ---------------------------------------------------------------------------------- environment
def test_env_interfaces_are_split_and_trimmed(tmp_path: Path) -> None:
    env = {"PF_STATUS_RELAY_INTERFACES": " ens1f0np0 ,ens1f1np1\t"}
    cfg, sources = load(tmp_path, env=env)
    assert cfg.interfaces == ("ens1f0np0", "ens1f1np1")
    assert sources["interfaces"] == "env PF_STATUS_RELAY_INTERFACES"


@pytest.mark.parametrize("value", ["a,,b", "a,", ",a", "a, ,b"])
def test_env_empty_interface_entry_is_an_error(tmp_path: Path, value: str) -> None:
    message = error(tmp_path, env={"PF_STATUS_RELAY_INTERFACES": value})
    assert message.startswith("interfaces: empty entry in ")
    assert "(from PF_STATUS_RELAY_INTERFACES)" in message


def test_env_bad_interface_name_names_the_variable(tmp_path: Path) -> None:
    message = error(tmp_path, env={"PF_STATUS_RELAY_INTERFACES": "ens1f0np0,eth0:1"})
    assert message.startswith('interfaces: "eth0:1" is not a valid interface name')
    assert "(from PF_STATUS_RELAY_INTERFACES)" in message


def test_env_duplicate_interface_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, env={"PF_STATUS_RELAY_INTERFACES": "a,b,a"})
    assert "listed more than once (from PF_STATUS_RELAY_INTERFACES)" in message


def test_env_polling_interval(tmp_path: Path) -> None:
    cfg, sources = load(tmp_path, env={"PF_STATUS_RELAY_POLLING_INTERVAL": " 250 "})
    assert cfg.polling_interval_ms == 250
    assert sources["polling_interval_ms"] == "env PF_STATUS_RELAY_POLLING_INTERVAL"


@pytest.mark.parametrize("value", ["abc", "1e3", "1000ms", "1_000", "99", "3600001", "10.5"])
def test_env_bad_polling_interval(tmp_path: Path, value: str) -> None:
    assert error(tmp_path, env={"PF_STATUS_RELAY_POLLING_INTERVAL": value}) == (
        "polling_interval_ms: must be an integer >= 100 and <= 3600000 (milliseconds), "
        f"got {value if value.isdigit() else chr(34) + value + chr(34)} "
        "(from PF_STATUS_RELAY_POLLING_INTERVAL)"
    )


def test_env_abc_message_quotes_the_text(tmp_path: Path) -> None:
    assert error(tmp_path, env={"PF_STATUS_RELAY_POLLING_INTERVAL": "abc"}) == (
        "polling_interval_ms: must be an integer >= 100 and <= 3600000 (milliseconds), "
        'got "abc" (from PF_STATUS_RELAY_POLLING_INTERVAL)'
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("1", True), ("0", False), ("yes", True), ("off", False)],
)
def test_env_booleans(tmp_path: Path, text: str, value: bool) -> None:
    env = {"PF_STATUS_RELAY_PARTNER_REQUIRES_AGGREGATION": text}
    assert load(tmp_path, env=env)[0].partner_requires_aggregation is value


def test_env_bad_boolean(tmp_path: Path) -> None:
    env = {"PF_STATUS_RELAY_PARTNER_REQUIRES_AGGREGATION": "maybe"}
    assert error(tmp_path, env=env) == (
        "partner_requires_aggregation: must be true or false (or 1/0, yes/no, on/off), "
        'got "maybe" (from PF_STATUS_RELAY_PARTNER_REQUIRES_AGGREGATION)'
    )


def test_every_key_has_an_env_var_by_one_rule(tmp_path: Path) -> None:
    assert configs.ENV_VARS["interfaces"] == "PF_STATUS_RELAY_INTERFACES"
    assert configs.ENV_VARS["polling_interval_ms"] == "PF_STATUS_RELAY_POLLING_INTERVAL"
    assert configs.ENV_VARS["ip_timeout_ms"] == "PF_STATUS_RELAY_IP_TIMEOUT"
    assert configs.ENV_VARS["state_file"] == "PF_STATUS_RELAY_STATE_FILE"
    assert set(configs.ENV_VARS) == set(configs.FIELDS)
    env = {
        "PF_STATUS_RELAY_PROCFS": "/host/proc",
        "PF_STATUS_RELAY_SYSFS": "/host/sys",
        "PF_STATUS_RELAY_IP": "/usr/sbin/ip",
        "PF_STATUS_RELAY_IP_TIMEOUT": "2000",
        "PF_STATUS_RELAY_STATE_FILE": "/var/lib/pf/state.json",
        "PF_STATUS_RELAY_RESTORE_DELAY": "3000",
        "PF_STATUS_RELAY_METRICS_FILE": "/var/lib/pf/metrics.prom",
        "PF_STATUS_RELAY_LOG_FORMAT": "text",
        "PF_STATUS_RELAY_LOG_LEVEL": "debug",
    }
    cfg, sources = load(tmp_path, env=env)
    assert cfg == Config(
        procfs="/host/proc",
        sysfs="/host/sys",
        ip="/usr/sbin/ip",
        ip_timeout_ms=2000,
        state_file="/var/lib/pf/state.json",
        restore_delay_ms=3000,
        metrics_file="/var/lib/pf/metrics.prom",
        log_format="text",
        log_level="debug",
    )
    for name, var in configs.ENV_VARS.items():
        if var in env:
            assert sources[name] == f"env {var}"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PF_STATUS_RELAY_PROCFS", "proc"),
        ("PF_STATUS_RELAY_IP", "./ip"),
        ("PF_STATUS_RELAY_IP_TIMEOUT", "61000"),
        ("PF_STATUS_RELAY_LOG_FORMAT", "xml"),
        ("PF_STATUS_RELAY_METRICS_FILE", "m.prom"),
    ],
)
def test_env_bad_values_name_key_and_variable(tmp_path: Path, var: str, value: str) -> None:
    name = next(name for name, v in configs.ENV_VARS.items() if v == var)
    message = error(tmp_path, env={var: value})
    assert message.startswith(f"{name}: must be ")
    assert message.endswith(f"(from {var})") or f"(from {var}) " in message


def test_empty_env_var_counts_as_not_set(tmp_path: Path) -> None:
    env = {"PF_STATUS_RELAY_INTERFACES": "", "PF_STATUS_RELAY_POLLING_INTERVAL": "  "}
    assert load(tmp_path, 'interfaces = ["a"]', env=env)[0] == Config(interfaces=("a",))


def test_unknown_env_vars_are_not_an_error(tmp_path: Path) -> None:
    # Kubernetes injects <SERVICE>_PORT etc. for a Service named pf-status-relay.
    env = {"PF_STATUS_RELAY_PORT": "tcp://10.0.0.1:9100", "PF_STATUS_RELAY_INTERFACE": "x"}
    assert load(tmp_path, env=env)[0] == Config()


def test_env_warnings_flag_likely_typos_only() -> None:
    env = {
        "PF_STATUS_RELAY_INTERFACE": "ens1f0np0",
        "PF_STATUS_RELAY_POLLING_INTERVAL_MS": "500",
        "PF_STATUS_RELAY_PORT": "tcp://10.0.0.1:9100",
        "PF_STATUS_RELAY_SERVICE_HOST": "10.0.0.1",
        "PF_STATUS_RELAY_CONFIG": "/etc/x.toml",
        "PF_STATUS_RELAY_INTERFACES": "ens1f0np0",
        "PATH": "/usr/bin",
    }
    assert configs.env_warnings(env) == [
        "environment variable PF_STATUS_RELAY_INTERFACE is ignored "
        "(did you mean PF_STATUS_RELAY_INTERFACES?)",
        "environment variable PF_STATUS_RELAY_POLLING_INTERVAL_MS is ignored "
        "(did you mean PF_STATUS_RELAY_POLLING_INTERVAL?)",
    ]


# ---------------------------------------------------------------------------------------- flags
def test_flags_override_and_none_means_not_given(tmp_path: Path) -> None:
    flags = {name: None for name in configs.FIELDS}
    flags["polling_interval_ms"] = 300
    cfg, sources = load(tmp_path, "polling_interval_ms = 200\nip = '/sbin/ip'", flags=flags)
    assert (cfg.polling_interval_ms, cfg.ip) == (300, "/sbin/ip")
    assert sources["polling_interval_ms"] == "flag --polling-interval"
    assert sources["ip"] == f"file {tmp_path / 'config.toml'}"


def test_flag_interfaces_replace_configured_ones(tmp_path: Path) -> None:
    env = {"PF_STATUS_RELAY_INTERFACES": "a,b"}
    cfg, sources = load(tmp_path, 'interfaces = ["c"]', env, {"interfaces": ("d",)})
    assert cfg.interfaces == ("d",)
    assert sources["interfaces"] == "flag --interface"


@pytest.mark.parametrize("empty", [(), []])
def test_empty_flag_interfaces_means_not_given(tmp_path: Path, empty: object) -> None:
    assert load(tmp_path, 'interfaces = ["c"]', flags={"interfaces": empty})[0].interfaces == ("c",)


def test_flag_interfaces_as_comma_separated_text(tmp_path: Path) -> None:
    assert load(tmp_path, flags={"interfaces": "a, b"})[0].interfaces == ("a", "b")


def test_flag_bad_interface_names_the_flag(tmp_path: Path) -> None:
    message = error(tmp_path, flags={"interfaces": ["ok0", "bad name"]})
    assert message.startswith('interfaces: "bad name" is not a valid interface name')
    assert "(from --interface)" in message


def test_flag_bad_value_names_the_flag(tmp_path: Path) -> None:
    assert error(tmp_path, flags={"polling_interval_ms": 50}) == (
        "polling_interval_ms: must be an integer >= 100 and <= 3600000 (milliseconds), "
        "got 50 (from --polling-interval)"
    )


def test_flag_text_is_parsed_like_env(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, flags={"polling_interval_ms": "400", "partner_requires_aggregation": "no"}
    )[0]
    assert (cfg.polling_interval_ms, cfg.partner_requires_aggregation) == (400, False)


def test_flag_bool(tmp_path: Path) -> None:
    cfg, sources = load(tmp_path, flags={"partner_requires_aggregation": False})
    assert cfg.partner_requires_aggregation is False
    assert sources["partner_requires_aggregation"] == "flag --partner-requires-aggregation"


def test_unknown_flag_field_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="polling_interval"):
        load(tmp_path, flags={"polling_interval": 500})


# ----------------------------------------------------------------------------------- precedence
def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    text = "polling_interval_ms = 200\nip_timeout_ms = 2000\nrestore_delay_ms = 10"
    env = {"PF_STATUS_RELAY_IP_TIMEOUT": "3000", "PF_STATUS_RELAY_RESTORE_DELAY": "20"}
    flags = {"restore_delay_ms": 30}
    cfg, sources = load(tmp_path, text, env, flags)
    path = tmp_path / "config.toml"
    assert (cfg.polling_interval_ms, cfg.ip_timeout_ms, cfg.restore_delay_ms) == (200, 3000, 30)
    assert cfg.sysfs == "/sys"
    assert sources == {
        **DEFAULT_SOURCES,
        "polling_interval_ms": f"file {path}",
        "ip_timeout_ms": "env PF_STATUS_RELAY_IP_TIMEOUT",
        "restore_delay_ms": "flag --restore-delay",
    }


def test_env_overrides_file_interfaces(tmp_path: Path) -> None:
    env = {"PF_STATUS_RELAY_INTERFACES": "b"}
    assert load(tmp_path, 'interfaces = ["a"]', env)[0].interfaces == ("b",)


def test_bad_value_is_an_error_even_when_overridden(tmp_path: Path) -> None:
    # A broken file stays broken: it must not surface only once the override is removed.
    message = error(tmp_path, "polling_interval_ms = 5", flags={"polling_interval_ms": 500})
    assert message.startswith("polling_interval_ms: ")


# -------------------------------------------------------------------------- require_interfaces
def test_require_interfaces() -> None:
    assert configs.require_interfaces(Config(interfaces=("a",))) == ("a",)
    with pytest.raises(ConfigError) as info:
        configs.require_interfaces(Config())
    assert one_line(info.value) == (
        "interfaces: no interfaces configured; set interfaces in "
        f"{DEFAULT_PATH}, PF_STATUS_RELAY_INTERFACES or --interface"
    )


def test_require_interfaces_names_the_given_path() -> None:
    with pytest.raises(ConfigError, match=r"set interfaces in /etc/x\.toml, "):
        configs.require_interfaces(Config(), "/etc/x.toml")


# ---------------------------------------------------------------------------- validate names
@pytest.mark.parametrize("name", ["ens1f0np0", "eth0", "a", "x" * 15, "bond0.100", "vé", "a-b_c@d"])
def test_valid_interface_names(name: str) -> None:
    assert configs.validate_interface_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "it is empty"),
        ("x" * 16, "it is 16 bytes long, the kernel allows at most 15"),
        ("é" * 8, "it is 16 bytes long"),
        (".", 'it must not be "." or ".."'),
        ("..", 'it must not be "." or ".."'),
        ("../../etc", 'it must not contain "/"'),
        ("a b", "it must not contain whitespace"),
        ("a\tb", "it must not contain whitespace"),
        ("a\u00a0b", "it must not contain whitespace"),
        ("eth0:1", 'it must not contain ":"'),
        ("a\0b", "it must not contain NUL characters"),
        ("a\udcffb", "it is not valid UTF-8"),
    ],
)
def test_invalid_interface_names(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        configs.validate_interface_name(name)
    message = one_line(info.value)
    assert " is not a valid interface name: " + why in message
    assert message.endswith("; use a name as `ip link` shows it")


# -------------------------------------------------------------------------------- show/render
def test_show_one_line_per_key_with_source(tmp_path: Path) -> None:
    cfg, sources = load(
        tmp_path,
        'interfaces = ["ens1f0np0", "ens1f1np1"]',
        {"PF_STATUS_RELAY_POLLING_INTERVAL": "500"},
        {"log_level": "debug"},
    )
    lines = configs.show(cfg, sources).splitlines()
    assert len(lines) == len(configs.FIELDS)
    assert lines[0] == (
        f'interfaces = ["ens1f0np0", "ens1f1np1"]  # file {tmp_path / "config.toml"}'
    )
    assert lines[1] == "polling_interval_ms = 500  # env PF_STATUS_RELAY_POLLING_INTERVAL"
    assert 'state_file = "/run/pf-status-relay/state.json"  # default' in lines
    assert "partner_requires_aggregation = true  # default" in lines
    assert "metrics_file = (not set)  # default" in lines
    assert lines[-1] == 'log_level = "debug"  # flag --log-level'


NON_DEFAULT = Config(
    interfaces=("ens1f0np0", "ens1f1np1"),
    polling_interval_ms=250,
    procfs="/host/proc",
    sysfs="/host/sys",
    ip="/usr/sbin/ip",
    ip_timeout_ms=2500,
    state_file="/var/lib/pf-status-relay/state.json",
    partner_requires_aggregation=False,
    restore_delay_ms=5000,
    metrics_file='/var/lib/node_exporter/pf "relay".prom',
    log_format="text",
    log_level="debug",
)


@pytest.mark.parametrize("config", [Config(), NON_DEFAULT])
@pytest.mark.parametrize("comments", [True, False])
def test_render_toml_round_trips(tmp_path: Path, config: Config, comments: bool) -> None:
    text = configs.render_toml(config, comments=comments)
    cfg, sources = load(tmp_path, text)
    assert cfg == config
    expected = {"file " + str(tmp_path / "config.toml")}
    if config.metrics_file is None:
        expected.add("default")
    assert set(sources.values()) == expected


def test_render_toml_leaves_out_none(tmp_path: Path) -> None:
    plain = configs.render_toml(Config(), comments=False)
    assert "metrics_file" not in plain
    assert "#" not in plain
    commented = configs.render_toml(Config())
    assert "\n# metrics_file = " in commented


def test_render_toml_comments_every_key() -> None:
    lines = configs.render_toml(NON_DEFAULT).splitlines()
    for name in configs.FIELDS:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
        assert lines[index - 1].startswith("# "), name
    assert set(configs.FIELD_HELP) == set(configs.FIELDS)
