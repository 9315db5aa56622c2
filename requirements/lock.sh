#!/usr/bin/env bash
# Re-resolve the hashed lock files from pyproject.toml (`make lock`). uv resolves once for every
# Python >= 3.9 (--universal: per-version pins carry markers), from PyPI, with the sha256 of every
# file of every pinned release, so `pip install --require-hashes -r requirements/X.lock` installs
# exactly these files on any machine that reaches PyPI. uv is a pinned PyPI package installed into
# its own venv; nothing else is downloaded.
#   runtime.lock  pfrelay's run-time closure: the image build (Containerfile), bench/footprint.py
#   test.lock     + the test extra: .ci/py39.sh
#   dev.lock      + the dev extra (ruff, mypy): `make venv`, hence `make test`, `make lint`, CI
#   build.lock    setuptools, to build pfrelay itself without an unhashed build environment
set -euo pipefail
cd "$(dirname "$0")/.."
UV_PIN=uv==0.13.9
tools=${LOCK_TOOLS_VENV:-.venv-lock}
if [ "$(cat "$tools/.pin" 2>/dev/null)" != "$UV_PIN" ]; then
    python3 -m venv --clear "$tools"
    "$tools/bin/python" -m pip install -q "$UV_PIN"
    echo "$UV_PIN" > "$tools/.pin"
fi
export UV_CUSTOM_COMPILE_COMMAND="make lock" UV_INDEX_URL=https://pypi.org/simple
compile() { "$tools/bin/uv" pip compile -q --universal --python-version 3.9 --generate-hashes "$@"; }
compile pyproject.toml -o requirements/runtime.lock
compile pyproject.toml --extra test -o requirements/test.lock
compile pyproject.toml --extra dev -o requirements/dev.lock
compile requirements/build.in -o requirements/build.lock
grep -h '==' requirements/runtime.lock | sed 's/ *\\$//'
