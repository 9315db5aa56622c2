"""Properties of pfrelay.config: interface names as the kernel sees them, render/parse round trip."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pfrelay import config as configs
from pfrelay.config import Config, ConfigError

# Printable-or-not, any plane, but no surrogates (they cannot be encoded as UTF-8).
CHARS = st.one_of(
    st.characters(min_codepoint=1, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0xE000, max_codepoint=0x10FFFF),
)
FORBIDDEN = set("/:\0")


def acceptable(name: str) -> bool:
    return (
        0 < len(name.encode("utf-8")) <= 15
        and name not in (".", "..")
        and not FORBIDDEN & set(name)
        and not any(char.isspace() for char in name)
    )


VALID_NAMES = st.text(CHARS, min_size=1, max_size=15).filter(acceptable)
ASCII_NAMES = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/:,\"'\\"),
    min_size=1,
    max_size=15,
).filter(acceptable)


def refused(name: str) -> str:
    with pytest.raises(ConfigError) as info:
        configs.validate_interface_name(name)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert " is not a valid interface name: " in message
    return message


@given(VALID_NAMES)
def test_valid_names_are_accepted(name: str) -> None:
    assert configs.validate_interface_name(name) == name


@given(VALID_NAMES)
def test_valid_names_are_accepted_in_toml(name: str) -> None:
    text = configs.render_toml(Config(interfaces=(name,)), comments=False)
    assert configs.parse_toml(text, "x.toml")["interfaces"] == (name,)


@given(st.lists(ASCII_NAMES, min_size=1, max_size=8, unique=True))
def test_valid_names_are_accepted_in_env(names: list[str]) -> None:
    env = {"PF_STATUS_RELAY_INTERFACES": " , ".join(names)}
    assert configs.parse_env(env)["interfaces"] == (tuple(names), "PF_STATUS_RELAY_INTERFACES")


SAFE_PART = st.text(st.sampled_from("abcxyz019-_.@"), max_size=6)


@given(SAFE_PART, SAFE_PART)
def test_names_with_a_slash_are_refused(before: str, after: str) -> None:
    assert 'it must not contain "/"' in refused(before + "/" + after)


@given(
    SAFE_PART,
    st.sampled_from([" ", "\t", "\n", "\r", "\v", "\f", "\u00a0", "\u2028", "\u3000"]),
    SAFE_PART,
)
def test_names_with_whitespace_are_refused(before: str, space: str, after: str) -> None:
    assert "it must not contain whitespace" in refused(before + space + after)


@given(st.text(CHARS, min_size=1, max_size=40).filter(lambda s: len(s.encode("utf-8")) > 15))
def test_names_longer_than_15_bytes_are_refused(name: str) -> None:
    size = len(name.encode("utf-8"))
    assert f"it is {size} bytes long, the kernel allows at most 15" in refused(name)


@given(st.text(CHARS | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=20))
def test_any_name_is_accepted_or_refused_on_one_line(name: str) -> None:
    try:
        configs.validate_interface_name(name)
    except ConfigError as exc:
        assert len(str(exc).splitlines()) == 1
        surrogate = any(0xD800 <= ord(char) <= 0xDFFF for char in name)
        assert surrogate or not acceptable(name)
    else:
        assert acceptable(name)


PATHS = st.builds(
    lambda parts: "/" + "/".join(parts),
    st.lists(st.text(CHARS.filter(lambda c: c != "/"), min_size=1, max_size=8), max_size=4),
)
CONFIGS = st.builds(
    Config,
    interfaces=st.lists(VALID_NAMES, max_size=4, unique=True).map(tuple),
    polling_interval_ms=st.integers(100, 3_600_000),
    procfs=PATHS,
    sysfs=PATHS,
    ip=st.one_of(PATHS, st.text(CHARS.filter(lambda c: c != "/"), min_size=1, max_size=8)),
    ip_timeout_ms=st.integers(100, 60_000),
    state_file=PATHS.map(lambda p: p + "/state.json"),
    partner_requires_aggregation=st.booleans(),
    restore_delay_ms=st.integers(0, 3_600_000),
    metrics_file=st.one_of(st.none(), PATHS.map(lambda p: p + "/metrics.prom")),
    log_format=st.sampled_from(configs.LOG_FORMATS),
    log_level=st.sampled_from(configs.LOG_LEVELS),
)


@given(CONFIGS, st.booleans())
def test_render_toml_round_trips(config: Config, comments: bool) -> None:
    parsed = configs.parse_toml(configs.render_toml(config, comments=comments), "x.toml")
    assert dataclasses.replace(Config(), **parsed) == config


@given(CONFIGS)
def test_show_has_one_line_per_key(config: Config) -> None:
    sources = {name: "default" for name in configs.FIELDS}
    lines = configs.show(config, sources).splitlines()
    assert [line.split(" = ")[0] for line in lines] == list(configs.FIELDS)
    assert all(line.endswith("  # default") for line in lines)


@given(st.integers(-(10**7), 10**7))
def test_env_interval_is_accepted_exactly_in_range(value: int) -> None:
    env = {"PF_STATUS_RELAY_POLLING_INTERVAL": str(value)}
    if 100 <= value <= 3_600_000:
        assert configs.parse_env(env)["polling_interval_ms"][0] == value
    else:
        with pytest.raises(ConfigError, match=r"^polling_interval_ms: .*\(from PF_STATUS_RELAY_"):
            configs.parse_env(env)
