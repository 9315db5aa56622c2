"""The shipped config.toml and sysconfig file: defaults, every key documented, examples valid."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List

import pytest

from pfrelay import config as configs
from pfrelay.config import Config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TOML = ROOT / "etc" / "pf-status-relay" / "config.toml"
SYSCONFIG = ROOT / "etc" / "sysconfig" / "pf-status-relay"

#: Keys whose commented-out line shows an example rather than the default.
EXAMPLES = {
    "interfaces": ("ens1f0np0", "ens1f1np1"),
    "metrics_file": "/var/lib/node_exporter/textfile_collector/pf-status-relay.prom",
    "discover_include": ("ens*",),
    "discover_exclude": ("ens1f1np1",),
}

ASSIGNMENT = re.compile(r"^# (?P<key>[a-z_]+) = (?P<value>.*)$")
ENV_ASSIGNMENT = re.compile(r"^#(?P<var>PF_STATUS_RELAY_[A-Z_]+)=(?P<value>.*)$")


def toml_assignments() -> Dict[str, str]:
    found: Dict[str, str] = {}
    for line in SHIPPED_TOML.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match["key"] not in found, f"{match['key']} shown twice"
            found[match["key"]] = line[2:]
    return found


def env_assignments() -> Dict[str, str]:
    found: Dict[str, str] = {}
    for line in SYSCONFIG.read_text(encoding="utf-8").splitlines():
        match = ENV_ASSIGNMENT.match(line)
        if match:
            assert match["var"] not in found, f"{match['var']} shown twice"
            found[match["var"]] = match["value"]
    return found


def test_every_field_has_a_spec_and_help() -> None:
    assert set(configs._SPECS) == set(configs.FIELDS)
    assert set(configs.FIELD_HELP) == set(configs.FIELDS)


def test_shipped_toml_loads_to_the_defaults() -> None:
    cfg, sources = configs.load(str(SHIPPED_TOML), {}, {})
    assert cfg == Config()
    assert set(sources.values()) == {"default"}


def test_shipped_toml_documents_every_field() -> None:
    assert list(toml_assignments()) == list(configs.FIELDS)


def test_shipped_toml_explains_every_field() -> None:
    lines = SHIPPED_TOML.read_text(encoding="utf-8").splitlines()
    for key, assignment in toml_assignments().items():
        index = lines.index("# " + assignment)
        explanation: List[str] = []
        for line in reversed(lines[:index]):
            if not line.startswith("# "):
                break
            explanation.append(line)
        assert len(" ".join(explanation)) > 60, f"{key} has no sentence explaining it"


@pytest.mark.parametrize("key", configs.FIELDS)
def test_uncommenting_a_shipped_line_gives_the_default_or_the_example(
    tmp_path: Path, key: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml_assignments()[key] + "\n", encoding="utf-8")
    cfg, sources = configs.load(str(path), {}, {})
    expected = EXAMPLES.get(key, getattr(Config(), key))
    assert cfg == dataclasses.replace(Config(), **{key: expected})
    assert sources[key] == f"file {path}"


def test_shipped_toml_has_no_active_keys_or_sections() -> None:
    for line in SHIPPED_TOML.read_text(encoding="utf-8").splitlines():
        assert line == "" or line.startswith("#"), line


def test_sysconfig_is_all_comments() -> None:
    for line in SYSCONFIG.read_text(encoding="utf-8").splitlines():
        assert line == "" or line.startswith("#"), line


def test_sysconfig_shows_every_env_var() -> None:
    assert set(env_assignments()) == set(configs.ENV_VARS.values())
    text = SYSCONFIG.read_text(encoding="utf-8")
    assert "#PF_STATUS_RELAY_INTERFACES=" in text
    assert "#PF_STATUS_RELAY_POLLING_INTERVAL=" in text


def test_uncommented_sysconfig_gives_the_defaults_or_the_examples(tmp_path: Path) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("", encoding="utf-8")
    cfg, sources = configs.load(str(empty), env_assignments(), {})
    assert cfg == dataclasses.replace(Config(), **EXAMPLES)
    assert sources == {name: f"env {var}" for name, var in configs.ENV_VARS.items()}


def test_render_toml_of_defaults_documents_every_field(tmp_path: Path) -> None:
    text = configs.render_toml(Config())
    for key in configs.FIELDS:
        assert re.search(rf"^(# )?{key} = ", text, re.M), key
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert configs.load(str(path), {}, {})[0] == Config()
