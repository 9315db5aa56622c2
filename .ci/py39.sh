#!/usr/bin/env bash
# Run the fast tests on Python 3.9 (RHEL 9's python3): the code must stay 3.9-compatible.
set -euo pipefail
cd "$(dirname "$0")/.."
is39() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; }
py=
for candidate in /usr/bin/python3.9 /usr/local/bin/python3.9 \
        "$(pyenv root 2>/dev/null)/versions/$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.9')/bin/python3.9" \
        "$(command -v python3.9 || true)"; do
    if is39 "$candidate"; then py=$candidate; break; fi
done
if [ -z "$py" ]; then
    echo "python3.9 not found: install it (pyenv install 3.9, or dnf/apt python3.9) to run the 3.9 check" >&2
    exit 1
fi
[ -x .venv39/bin/python ] || "$py" -m venv .venv39
.venv39/bin/python -m pip install -q --upgrade pip
.venv39/bin/python -m pip install -q -e '.[test]'
.venv39/bin/python -m pytest -q -p no:cacheprovider
