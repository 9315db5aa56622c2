#!/usr/bin/env bash
# The fast tests on Python 3.9 (RHEL 9's python3) against the OLDEST dependencies pyproject.toml
# allows (requirements/lower-bounds.txt: EPEL 9's typer and tomli-w, click 7.1.2, tomli 1.1).
# `make test` and `make test-py39` cover the newest (the hashed locks). Fails if pip resolved
# anything other than the lower bounds, so the check cannot silently test newer releases.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
source .ci/find-py39.sh
venv=${LOWER_VENV:-.venv-lower}
"$py" -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --require-hashes -r requirements/build.lock
# Constraints, not hashes: this step exists to resolve the bounds against the index.
"$venv/bin/python" -m pip install -q --no-build-isolation -c requirements/lower-bounds.txt -e '.[test]'
"$venv/bin/python" - <<'PY'
import re
from importlib.metadata import version
want = {}
for line in open("requirements/lower-bounds.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, pinned = line.split("==")
        want[name] = pinned
got = {name: version(name) for name in want}
print("lower bounds installed: " + ", ".join(f"{n} {v}" for n, v in got.items()))
assert got == want, f"resolved {got}, expected the lower bounds {want}"
PY
"$venv/bin/python" -m pytest -q -p no:cacheprovider
