# Sourced by .ci/py39.sh and .ci/lower-bounds.sh: sets $py to a Python 3.9 interpreter.
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
