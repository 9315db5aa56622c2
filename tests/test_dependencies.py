"""Dependencies (issue 13, finding 10): bounded at both ends, locked with hashes, lean daemon path.

* every run-time requirement in pyproject.toml has a lower and an upper bound, and
  requirements/lower-bounds.txt (what .ci/lower-bounds.sh installs) pins exactly the lower ones;
* the hashed lock files pin releases inside those ranges, every pin with its hashes;
* `pfrelay run` imports neither tomli_w (only `config init/show` write TOML) nor typer's
  optional heavy dependencies (rich, pydantic, pygments, markdown-it, shellingham).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from test_daemon_support import World, clean_env, json_lines

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["tomli_w", "rich", "pydantic", "pydantic_core", "pygments", "markdown_it", "shellingham"]


def runtime_requirements() -> List[Requirement]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(r) for r in doc["project"]["dependencies"]]


def pins(path: Path) -> Dict[str, List[str]]:
    """name -> pinned versions (one per marker branch) in a requirements or lock file."""
    out: Dict[str, List[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        if match:
            out.setdefault(match.group(1).lower().replace("_", "-"), []).append(match.group(2))
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_every_runtime_dependency_is_bounded_at_both_ends() -> None:
    for req in runtime_requirements():
        operators = {spec.operator for spec in req.specifier}
        assert operators & {">=", ">", "~=", "=="}, f"{req}: no lower bound"
        assert operators & {"<", "<=", "~=", "=="}, f"{req}: no upper bound"


def test_lower_bounds_file_pins_exactly_the_lower_bounds() -> None:
    lower = {
        name: versions[0] for name, versions in pins(ROOT / "requirements/lower-bounds.txt").items()
    }
    declared = {}
    for req in runtime_requirements():
        floor = [s.version for s in req.specifier if s.operator in (">=", "~=", "==")]
        declared[req.name.lower()] = floor[0]
    assert {n: Version(v) for n, v in lower.items()} == {n: Version(v) for n, v in declared.items()}


@pytest.mark.parametrize("lock", ["runtime", "test", "dev"])
def test_locks_pin_releases_inside_the_ranges_with_hashes(lock: str) -> None:
    path = ROOT / "requirements" / f"{lock}.lock"
    pinned = pins(path)
    for req in runtime_requirements():
        assert req.name.lower() in pinned, f"{req.name} missing from {path.name}"
        for version in pinned[req.name.lower()]:
            assert SpecifierSet(str(req.specifier)).contains(version), (path.name, req, version)
    # pip --require-hashes refuses a pin without a hash; check it here rather than at install.
    blocks = re.split(r"\n(?=[A-Za-z0-9])", path.read_text(encoding="utf-8"))
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]
    for heavy in ("rich", "pydantic", "pydantic-core", "markdown-it-py", "shellingham"):
        if lock == "runtime":
            assert heavy not in pinned, f"{heavy} is in the run-time closure"


def test_the_daemon_path_imports_nothing_heavy(world: World) -> None:
    """`pfrelay run --once` through the console entry point, then which modules it loaded."""
    world.add_pf()
    code = (
        "import atexit, json, sys\n"
        f"heavy = {HEAVY!r}\n"
        "atexit.register(lambda: print(json.dumps({'loaded': [m for m in heavy if m in sys.modules]})))\n"
        "from pfrelay.cli import main\n"
        "sys.argv = ['pfrelay'] + sys.argv[1:]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *world.run_args("-i", "pf0", "--once")[1:]],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert "lacp is up" in [r.get("msg") for r in records]
    assert records[-1] == {"loaded": []}


def test_config_commands_still_write_toml(world: World, tmp_path: Path) -> None:
    """tomli_w moved into the functions that write TOML: `config init` and `show` still work."""
    target = tmp_path / "new.toml"
    result = world.pfrelay("config", "init", str(target), "-i", "pf0")
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(target.read_text(encoding="utf-8"))["interfaces"] == ["pf0"]
    shown = world.pfrelay("config", "show", "--config", str(target))
    assert shown.returncode == 0, shown.stderr
    assert 'interfaces = ["pf0"]  # file' in shown.stdout
