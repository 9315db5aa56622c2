#!/usr/bin/env bash
# Build pf-status-relay's source RPM and noarch RPM in _rpmbuild/ (a private %_topdir).
#
#   bash packaging/rpm/build.sh          (or: make rpm)
#
# 1. Reads the version from pfrelay/__init__.py, the one place it is written.
# 2. Makes Source0, pf-status-relay-VERSION.tar.gz, from the git work tree: the tracked
#    files plus new ones that .gitignore does not exclude (what `git add -A` would commit),
#    so uncommitted work is built too; a fresh clone (CI) builds exactly the commit.
# 3. Copies the spec to _rpmbuild/SPECS with "%global pfrelay_version VERSION" written at
#    its top, so the SRPM rebuilds anywhere (mock, copr, koji) with no --define.
# 4. rpmbuild -ba. Where Fedora's pyproject macros are missing (Debian: `apt-get install
#    rpm`), the spec's plain path builds the wheel with /usr/bin/python3 and its own
#    setuptools and wheel, offline; this script installs those with apt-get, and makes a
#    venv of /usr/bin/python3 with the runtime and test dependencies from PyPI for %check.
#    BuildRequires name RPM packages, which a Debian host has no database of: there it
#    passes --nodeps. On Fedora/RHEL it does not (install them: dnf builddep, or use mock).
#
# Prints the built packages; _rpmbuild/built.txt lists them too (SRPM first).
# Environment: PFRELAY_RPM_TOPDIR (default: <repo>/_rpmbuild); PFRELAY_RPM_TESTS=0 builds
# --without tests (the import check still runs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
top=${PFRELAY_RPM_TOPDIR:-$repo/_rpmbuild}
name=pf-status-relay
spec_in=$here/$name.spec
sys_python=/usr/bin/python3   # the spec's plain path builds with this one; see the spec

say() { printf 'build.sh: %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi; }

# RPM-based host (rpm knows itself) or not (Debian: rpm is a tool, not the package manager)?
rpm_host=0
if command -v rpm >/dev/null && rpm -q rpm >/dev/null 2>&1; then rpm_host=1; fi

# ---- tools -----------------------------------------------------------------------------
apt_install() {  # apt_install PKG...: install the Debian packages that are missing
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null   # an empty or stale package cache
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            die "apt-get install ${missing[*]} failed"
    }
}
if [ "$rpm_host" -eq 0 ] && command -v apt-get >/dev/null; then
    # python3-packaging: rpm's pythondistdeps.py needs it to turn the wheel's metadata into
    # python3.Xdist(typer) >= 0.9 etc.; without it rpmbuild silently generates no Requires.
    apt_install rpm git python3 python3-pip python3-setuptools python3-wheel python3-venv python3-packaging
fi
command -v rpmbuild >/dev/null || die "rpmbuild not found (Fedora/RHEL: dnf install rpm-build; Debian: apt-get install rpm)"
command -v git >/dev/null || die "git not found"

# ---- version ---------------------------------------------------------------------------
version=$("$sys_python" - "$repo/pfrelay/__init__.py" <<'EOF'
import ast, sys
for node in ast.parse(open(sys.argv[1], encoding="utf-8").read()).body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
        print(ast.literal_eval(node.value))
        break
else:
    sys.exit("no __version__ = '...' in " + sys.argv[1])
EOF
) || die "cannot read __version__ from pfrelay/__init__.py"
# A final release X.Y[.Z...] is also a valid RPM Version. Pre-, post- and dev-releases
# (0.2.0rc1) would sort wrong in RPM (0.2.0rc1 > 0.2.0) and need the ~ / ^ mapping.
[[ $version =~ ^[0-9]+(\.[0-9]+)*$ ]] ||
    die "version '$version' is not X.Y.Z: map pre/post/dev releases to RPM's ~ and ^ before packaging them"
say "version $version (pfrelay/__init__.py)"

# ---- sources ---------------------------------------------------------------------------
git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || die "$repo is not a git checkout: Source0 is made from git's file list"
missing=()
for f in pyproject.toml README.md pfrelay/__init__.py systemd/$name.service systemd/$name.sysusers.conf \
         etc/$name/config.toml etc/sysconfig/$name; do
    [ -f "$repo/$f" ] || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] || die "the spec packages files that are not in the tree: ${missing[*]}"

rm -rf "$top/BUILD" "$top/BUILDROOT" "$top/RPMS" "$top/SRPMS" "$top/SOURCES" "$top/SPECS" "$top/built.txt"
mkdir -p "$top/SOURCES" "$top/SPECS"
tarball=$top/SOURCES/$name-$version.tar.gz
mtime=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
(
    cd "$repo"
    # Tracked and new files, minus tracked ones deleted in the work tree.
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
        LC_ALL=C sort -z |
        tar --null --no-recursion -T - --transform "s,^,$name-$version/,rSH" \
            --owner=0 --group=0 --numeric-owner --mtime="@$mtime" --format=pax \
            --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf - |
        gzip -9 -n > "$tarball"
)
git -C "$repo" diff --quiet HEAD 2>/dev/null && [ -z "$(git -C "$repo" ls-files --others --exclude-standard)" ] ||
    say "note: the work tree has uncommitted changes; they are in the tarball"
cp "$repo/systemd/$name.sysusers.conf" "$top/SOURCES/$name.sysusers"
spec=$top/SPECS/$name.spec
{
    echo "# Written by packaging/rpm/build.sh from pfrelay/__init__.py (__version__):"
    echo "%global pfrelay_version $version"
    cat "$spec_in"
} > "$spec"

# ---- rpmbuild --------------------------------------------------------------------------
args=(-ba --define "_topdir $top")
[ "$rpm_host" -eq 1 ] || args+=(--nodeps)
[ "${PFRELAY_RPM_TESTS:-1}" != 0 ] || args+=(--without tests)

if [ "$(rpm --eval '%{?pyproject_wheel:1}')" = 1 ]; then
    say "Fedora pyproject macros found: the spec's %pyproject_* path"
else
    say "no Fedora pyproject macros: the spec's plain path, with $sys_python ($("$sys_python" -V 2>&1))"
    # %check's Python: a venv of the same interpreter with pyproject.toml's dependencies
    # (and the "test" extra), remade when pyproject.toml changes.
    venv=$top/testenv
    extras=test; [ "${PFRELAY_RPM_TESTS:-1}" != 0 ] || extras=
    stamp="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1) $("$sys_python" -V 2>&1) extras=$extras"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
        say "making the %check venv $venv (dependencies from PyPI)"
        rm -rf "$venv"
        "$sys_python" -m venv "$venv"
        mapfile -t deps < <("$venv/bin/python" - "$repo/pyproject.toml" "$extras" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"]))
for extra in filter(None, [sys.argv[2]]):
    print("\n".join(d for d in project["optional-dependencies"][extra] if not d.startswith(project["name"])))
EOF
)
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "${deps[@]}" ||
            die "pip install of the %check dependencies failed: ${deps[*]}"
        echo "$stamp" > "$venv/.stamp"
    fi
    args+=(--define "pfrelay_test_python $venv/bin/python")
fi

log=$top/rpmbuild.log
say "rpmbuild ${args[*]} $spec  (log: $log)"
if ! rpmbuild "${args[@]}" "$spec" > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    die "rpmbuild failed; the whole log is $log"
fi
sed -n 's/^Wrote: //p' "$log" | sort -r > "$top/built.txt"   # SRPMS/... sorts before RPMS/...
[ -s "$top/built.txt" ] || die "rpmbuild wrote no package? see $log"
grep -E '^(=+ |[0-9]+ passed|import check:)' "$log" | tail -n 3 >&2 || true
echo "Built:"
sed 's/^/  /' "$top/built.txt"
