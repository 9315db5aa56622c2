#!/usr/bin/env bash
# Run the fast tests on Python 3.9 (RHEL 9's python3): the code must stay 3.9-compatible.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/find-py39.sh
# A new lock means a new venv: a package dropped from the lock must not linger in it.
if [ ! -x .venv39/bin/python ] || ! cmp -s requirements/test.lock .venv39/test.lock; then
    "$py" -m venv --clear .venv39
fi
.venv39/bin/python -m pip install -q --upgrade pip
# The newest releases the bounds allow, exactly as locked (hashes checked).
.venv39/bin/python -m pip install -q --require-hashes -r requirements/test.lock -r requirements/build.lock
.venv39/bin/python -m pip install -q --no-deps --no-build-isolation -e .
cp requirements/test.lock .venv39/test.lock
.venv39/bin/python -m pytest -q -p no:cacheprovider
