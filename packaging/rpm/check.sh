#!/usr/bin/env bash
# CI check of the RPM packaging: build, lint, list, install into a scratch root, run, erase.
#
#   bash packaging/rpm/check.sh
#
# 1. build.sh: SRPM + noarch RPM (its %check runs the import check and the fast tests).
# 2. rpmlint on the spec, the SRPM and the RPM, filtered by pf-status-relay.rpmlintrc: no
#    errors and no warnings that the rpmlintrc does not accept (each one there says why).
# 3. rpm -qlp: the console script, the pfrelay package and its data, the unit, the
#    sysusers.d file and both config files (marked %config); the requirements; the
#    scriptlets parse (sh -n).
# 4. rpm -i into an empty scratch root, with --nodeps (the root has no Python, typer or
#    iproute) and --noscripts (the root has no /bin/sh to run them in; and %post would ask
#    the host's systemd to preset the unit). Then:
#    - the sysusers.d file creates the user: systemd-sysusers --root on the scratch root;
#    - the installed /usr/bin/pfrelay runs: executed as it is, so its shebang
#      (/usr/bin/python3 -s) picks the host's Python, which is the one the plain path built
#      for; PYTHONPATH names the root's site-packages (pfrelay, from the package) and the
#      %check venv's (typer, tomli-w: the dependencies --nodeps left out). A chroot is not
#      possible: the root has no Python. It must print "pfrelay <pfrelay.__version__>", and
#      pfrelay must be imported from the root, not from the source tree or a venv.
# 5. rpm -e --root: the package's files are gone, and an edited config.toml is kept as
#    config.toml.rpmsave.
# Any failure is reported and the script exits 1 at the end (after the listing and the
# rpmlint summary are printed).
set -euo pipefail
start=$(date +%s)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
top=${PFRELAY_RPM_TOPDIR:-$repo/_rpmbuild}
export PFRELAY_RPM_TOPDIR=$top
name=pf-status-relay

failures=()
fail() { failures+=("$*"); printf 'check.sh: FAIL: %s\n' "$*" >&2; }
ok() { printf 'check.sh: ok: %s\n' "$*"; }
die() { printf 'check.sh: error: %s\n' "$*" >&2; exit 1; }
section() { printf '\n==== %s\n' "$*"; }

# ---- 1. build ---------------------------------------------------------------------------
section "build (packaging/rpm/build.sh)"
bash "$here/build.sh" || die "build.sh failed (see above)"
srpm=$(grep -m1 '\.src\.rpm$' "$top/built.txt") || die "no SRPM in $top/built.txt"
rpmfile=$(grep -m1 '\.noarch\.rpm$' "$top/built.txt") || die "no noarch RPM in $top/built.txt"
version=$(rpm -qp --qf '%{VERSION}' "$rpmfile")

# ---- 2. rpmlint -------------------------------------------------------------------------
section "rpmlint"
if ! command -v rpmlint >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
        echo "installing rpmlint (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q rpmlint >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q rpmlint >/dev/null
        } || die "apt-get install rpmlint failed"
    else
        die "rpmlint not found (Fedora/RHEL: dnf install rpmlint; Debian: apt-get install rpmlint)"
    fi
fi
# The spec rpmlint reads is the one in the SRPM: this directory's, with the version written in.
lint_out=$top/rpmlint.txt
set +e
rpmlint -r "$here/$name.rpmlintrc" "$top/SPECS/$name.spec" "$srpm" "$rpmfile" > "$lint_out" 2>&1
lint_rc=$?
set -e
cat "$lint_out"
summary=$(grep -E '[0-9]+ errors?, [0-9]+ warnings?' "$lint_out" | tail -n1)
if [ -z "$summary" ]; then
    fail "rpmlint printed no summary (exit $lint_rc)"
elif [[ $summary =~ ([0-9]+)\ errors?,\ ([0-9]+)\ warnings? ]]; then
    errors=${BASH_REMATCH[1]} warnings=${BASH_REMATCH[2]}
    [ "$errors" -eq 0 ] || fail "rpmlint: $errors error(s)"
    [ "$warnings" -eq 0 ] || fail "rpmlint: $warnings warning(s) not accepted in $name.rpmlintrc (fix them, or add a filter there with the reason)"
    [ "$errors" -ne 0 ] || [ "$warnings" -ne 0 ] || ok "rpmlint: 0 errors, 0 warnings beyond the accepted ones"
fi
if grep -q 'incoherent-version-in-changelog' "$lint_out"; then
    fail "the newest %changelog entry in packaging/rpm/$name.spec is not for $version-1: add one for this release"
fi

# ---- 3. what the package holds ----------------------------------------------------------
section "rpm -qlp $(basename "$rpmfile")"
listing=$(rpm -qlp "$rpmfile")
echo "$listing"
section "contents"
has() {  # has REGEX WHAT
    if grep -Eq "$1" <<< "$listing"; then ok "$2"; else fail "the RPM has no $2 (no path matching $1)"; fi
}
has '^/usr/bin/pfrelay$' "console script /usr/bin/pfrelay"
has '^/usr/lib/python3\.[0-9]+/site-packages/pfrelay/__init__\.py$' "pfrelay package in site-packages"
has '^/usr/lib/python3\.[0-9]+/site-packages/pfrelay/cli\.py$' "pfrelay.cli (the console script's module)"
has '^/usr/lib/python3\.[0-9]+/site-packages/pfrelay/timeline/.+\.tsv$' "pfrelay/timeline data (pfrelay demo)"
has '^/usr/lib/python3\.[0-9]+/site-packages/pf_status_relay-[^/]+\.dist-info/METADATA$' "dist-info metadata"
has "^/usr/lib/systemd/system/$name\\.service\$" "systemd unit"
has "^/usr/lib/sysusers\\.d/$name\\.conf\$" "sysusers.d file"
has "^/etc/$name/config\\.toml\$" "/etc/$name/config.toml"
has "^/etc/sysconfig/$name\$" "/etc/sysconfig/$name"
if grep -q '/tests/' <<< "$listing"; then fail "the RPM ships tests"; fi
configs=$(rpm -qcp "$rpmfile")
for f in "/etc/$name/config.toml" "/etc/sysconfig/$name"; do
    if grep -qx "$f" <<< "$configs"; then ok "$f is %config"; else fail "$f is not marked %config"; fi
done
requires=$(rpm -qp --requires "$rpmfile")
section "rpm -qp --requires"
echo "$requires"
# The bounds of pyproject.toml, both ends (the lower ones are EPEL 9's, see requirements/).
for r in '^iproute$' '^python\(abi\) = 3\.' 'dist\(typer\) >= 0\.10' 'dist\(typer\) < 0\.12' \
        'dist\(click\) >= 7\.1\.2' 'dist\(click\) < 8\.2' 'dist\(tomli-w\) >= 0\.4' 'dist\(tomli-w\) < 2'; do
    if grep -Eq "$r" <<< "$requires"; then ok "requires $r"; else fail "the RPM does not require $r"; fi
done
for tag in PREIN POSTIN PREUN POSTUN; do
    body=$(rpm -qp --qf "%{$tag}" "$rpmfile")
    if [ "$body" = "(none)" ]; then fail "no $tag scriptlet"; continue; fi
    if sh -n <<< "$body"; then ok "$tag scriptlet parses"; else fail "$tag scriptlet does not parse: $body"; fi
done

# ---- 4. install into a scratch root and run it ------------------------------------------
section "rpm -i --root (scratch)"
root=$(mktemp -d "${TMPDIR:-/tmp}/pfrelay-rpmroot.XXXXXX")
trap 'rm -rf "$root"' EXIT
rpmr=(rpm --root "$root" --dbpath /var/lib/rpm)
"${rpmr[@]}" --initdb
if "${rpmr[@]}" -i --nodeps --noscripts "$rpmfile"; then
    ok "installed into $root"
    installed=$("${rpmr[@]}" -q "$name") && ok "rpm -q: $installed" || fail "rpm -q $name in the root"
    if command -v systemd-sysusers >/dev/null; then
        if systemd-sysusers --root "$root" "$root/usr/lib/sysusers.d/$name.conf" &&
            grep -q "^$name:" "$root/etc/passwd" && grep -q "^$name:" "$root/etc/group"; then
            ok "sysusers.d file creates user and group: $(grep "^$name:" "$root/etc/passwd")"
        else
            fail "systemd-sysusers did not create $name from /usr/lib/sysusers.d/$name.conf"
        fi
    else
        echo "check.sh: note: no systemd-sysusers on this host; sysusers.d file not exercised"
    fi
    site=$(cd "$root" && echo usr/lib/python3.*/site-packages)
    pypath=$root/$site
    if [ -x "$top/testenv/bin/python" ]; then
        pypath=$pypath:$("$top/testenv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    fi
    shebang=$(head -n1 "$root/usr/bin/pfrelay")
    echo "shebang: $shebang; PYTHONPATH=$pypath"
    from=$(cd / && PYTHONPATH=$pypath /usr/bin/python3 -s -c 'import pfrelay; print(pfrelay.__file__)' 2>&1) || true
    if [ "$from" = "$root/$site/pfrelay/__init__.py" ]; then ok "pfrelay imports from the root: $from"
    else fail "pfrelay does not import from the root's site-packages: $from"; fi
    if out=$(cd / && PYTHONPATH=$pypath "$root/usr/bin/pfrelay" --version 2>&1); then
        echo "\$ $root/usr/bin/pfrelay --version"
        echo "$out"
        if [ "$out" = "pfrelay $version" ]; then ok "pfrelay --version says $version"
        else fail "pfrelay --version printed '$out', expected 'pfrelay $version'"; fi
    else
        fail "the installed /usr/bin/pfrelay --version failed: $out"
    fi

    # ---- 5. erase: an edited config is kept as .rpmsave ---------------------------------
    section "rpm -e --root"
    echo '# edited by check.sh' >> "$root/etc/$name/config.toml"
    if "${rpmr[@]}" -e --nodeps --noscripts "$name"; then
        ok "erased"
        if [ -f "$root/etc/$name/config.toml.rpmsave" ] &&
            grep -q 'edited by check.sh' "$root/etc/$name/config.toml.rpmsave"; then
            ok "edited config kept as /etc/$name/config.toml.rpmsave"
        else
            fail "no /etc/$name/config.toml.rpmsave with the edit after rpm -e"
        fi
        for f in usr/bin/pfrelay "usr/lib/systemd/system/$name.service" "etc/sysconfig/$name" "$site/pfrelay"; do
            [ ! -e "$root/$f" ] || fail "/$f is still there after rpm -e"
        done
        ! "${rpmr[@]}" -q "$name" >/dev/null 2>&1 || fail "rpm -q still finds $name after rpm -e"
        left=$(cd "$root" && find usr etc -type f 2>/dev/null | grep -v -e "^etc/$name/config.toml.rpmsave\$" \
            -e '^etc/\(passwd\|group\|shadow\|gshadow\)-\?$' -e '^etc/\.pwd\.lock$' || true)
        [ -z "$left" ] && ok "nothing else left behind" || fail "files left after rpm -e: $left"
    else
        fail "rpm -e --root failed"
    fi
else
    fail "rpm -i --root $root --nodeps --noscripts failed"
fi

# ---- summary ----------------------------------------------------------------------------
section "summary"
echo "packages: $(tr '\n' ' ' < "$top/built.txt")"
echo "rpmlint:  ${summary:-no summary}"
echo "time:     $(( $(date +%s) - start )) s"
if [ ${#failures[@]} -ne 0 ]; then
    printf 'check.sh: %d failure(s):\n' "${#failures[@]}" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "check.sh: all RPM packaging checks passed"
