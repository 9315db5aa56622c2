"""Shared fixtures: fake host trees on a real temporary directory or under pyfakefs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import fakehost` from any test module

from fakehost import FIXTURES, FakeHost


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    """An empty fake host under ``tmp_path`` (real files: subprocesses can read it too)."""
    return FakeHost(tmp_path / "host")


@pytest.fixture
def fake_host(fs: Any) -> FakeHost:
    """An empty fake host at ``/host`` under pyfakefs, with ``tests/fixtures`` readable in it."""
    fs.add_real_directory(str(FIXTURES), read_only=True)
    return FakeHost(Path("/host"))
