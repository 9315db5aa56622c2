#!/usr/bin/env bash
# The unit's sandbox under a real systemd (252 on Debian 12, as on RHEL 9), on a machine whose
# PID 1 is not systemd (CI, a developer container): boots this machine's own root, seen
# through a throw-away tmpfs overlay, as a systemd-nspawn container, then checks:
#   * `ip` under every [Service] setting of the unit (systemd-run -p ...), as the service user:
#     it reads links, and it can change one (CAP_NET_ADMIN reaches the `ip` child through
#     the ambient set, which iproute2's drop_cap() keeps because it is also inheritable);
#     without AmbientCapabilities= the same change is refused (the check is not vacuous);
#   * the unit itself, with ExecStart replaced by a probe that drives pfrelay.systemd:
#     start waits for READY=1, STATUS= shows, reload (RELOADING=1 ... READY=1), a stalled
#     watchdog gets the service killed and restarted, stop, and the ledger directory
#     survives the stop with its owner and mode.
# Not covered: /proc/net/bonding and VF changes (no bonding or SR-IOV in this kernel; the
# kernel tests in the VM do that), and python3.9 (the container has the host's python3).
#
# Needs root, overlayfs and systemd-nspawn (installed from apt, package systemd-container, if
# missing). The container has a private network (only lo), so nothing on the host changes.
# Prints "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
unit_src=${UNIT:-$here/pf-status-relay.service}  # UNIT= tries another copy
machine="pfrelay-sandbox-$$"
work=$(mktemp -d /tmp/pfrelay-sandbox.XXXXXX)
root="$work/root"
nspawn_pid=
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

cleanup() {
    set +e
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" # nspawn --boot turns SIGTERM into an orderly poweroff
        for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$nspawn_pid" 2>/dev/null && kill -KILL "$nspawn_pid"
        wait "$nspawn_pid" 2>/dev/null
    fi
    mountpoint -q "$root" && umount "$root"
    mountpoint -q "$work/layer" && umount "$work/layer"
    rmdir "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
if [ -d /run/systemd/system ]; then
    echo "note: systemd is PID 1 here; this still tests inside a container"
fi
if ! command -v systemd-nspawn >/dev/null; then
    echo "installing systemd-container from apt (systemd-nspawn)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        systemd-container >/dev/null
fi

# The machine's own root as the container's, through an overlay whose upper layer is a tmpfs.
# It boots only to basic.target: none of the machine's own services start in there.
mkdir -p "$work/layer" "$root"
mount -t tmpfs -o size=1g,mode=0755 tmpfs "$work/layer"
mkdir -p "$work/layer/upper" "$work/layer/work"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$work/layer/upper,workdir=$work/layer/work" "$root"

# What goes into the container: the unit and its user, and the probe with pfrelay.systemd
# (standard library only, so no virtualenv is needed inside).
mkdir -p "$root/opt/pfrelay-sandbox/pfrelay"
cp "$repo/pfrelay/__init__.py" "$repo/pfrelay/systemd.py" "$root/opt/pfrelay-sandbox/pfrelay/"
cat >"$root/opt/pfrelay-sandbox/probe.py" <<'EOF'
"""Stands in for `pfrelay run`: the sd_notify life cycle the daemon goes through."""
import os, signal, subprocess, time
from pfrelay.systemd import Notifier, child_env

flags = {"reload": False, "stop": False, "stall": False}
signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("reload", True))
signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("stall", True))
notifier = Notifier()
env = child_env()
child = subprocess.run(["/usr/bin/env"], env=env, capture_output=True, text=True).stdout
print("child-env-clean", "NOTIFY_SOCKET=" not in child and "WATCHDOG_" not in child, flush=True)
ip = subprocess.run(["ip", "-j", "link", "show"], env=env, capture_output=True, text=True)
print("ip-rc", ip.returncode, flush=True)
with open(os.path.join(os.environ["RUNTIME_DIRECTORY"], "state.json"), "w") as ledger:
    ledger.write("{}\n")
notifier.status("starting")
time.sleep(1)  # a start that returned before READY=1 would show up as "starting"
notifier.ready("probe ready")
last = time.monotonic()
while not flags["stop"]:
    time.sleep(0.1)
    if flags["reload"]:
        flags["reload"] = False
        notifier.reloading()
        time.sleep(0.5)
        notifier.ready("probe reloaded")
    interval = notifier.watchdog_interval_s
    if interval and not flags["stall"] and time.monotonic() - last >= interval:
        notifier.watchdog()
        last = time.monotonic()
notifier.stopping()
print("probe-sent", notifier.sent, "failures", notifier.failures, flush=True)
EOF
sed -e 's|^ExecStart=.*|ExecStart=/usr/bin/python3 /opt/pfrelay-sandbox/probe.py|' \
    -e 's|^WatchdogSec=.*|WatchdogSec=3|' \
    -e 's|^RestartSec=.*|RestartSec=1s|' \
    -e 's|^EnvironmentFile=.*|Environment=PYTHONPATH=/opt/pfrelay-sandbox|' \
    "$unit_src" >"$root/etc/systemd/system/pfrelay-probe.service"
cp "$here/pf-status-relay.sysusers.conf" "$root/usr/lib/sysusers.d/pf-status-relay.conf"
# systemd-run -p for every [Service] setting of the unit that is not about the life cycle.
python3 - "$unit_src" >"$root/opt/pfrelay-sandbox/props" <<'EOF'
import sys
lifecycle = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "Restart",
             "RestartSec", "TimeoutStopSec", "EnvironmentFile"}
section, props = None, []
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("["):
        section = line
    elif line and not line.startswith("#") and section == "[Service]":
        key = line.split("=", 1)[0]
        if key not in lifecycle:
            props += ["-p", line]
sys.stdout.write("\0".join(props))
EOF
cat >"$root/opt/pfrelay-sandbox/run" <<'EOF'
#!/bin/bash
# run [-p EXTRA]... -- COMMAND...: COMMAND as a transient service with the unit's sandbox.
mapfile -d '' props </opt/pfrelay-sandbox/props
extra=()
while [ "$1" != -- ]; do extra+=("$1"); shift; done
shift
exec systemd-run --quiet --wait --pipe --collect "${props[@]}" "${extra[@]}" "$@"
EOF
chmod 0755 "$root/opt/pfrelay-sandbox/run"

echo "booting $(systemd-analyze --version | head -n1) in container $machine"
systemd-nspawn --quiet --directory="$root" --machine="$machine" --boot --private-network \
    --register=no --keep-unit --uuid="$(tr -d - </proc/sys/kernel/random/uuid)" \
    systemd.unit=basic.target >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
leader=
state=
for _ in $(seq 1 60); do
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    if [ -n "$leader" ]; then
        state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
        [[ "$state" == running || "$state" == degraded ]] && break
    fi
    sleep 1
done
c() { nsenter -t "$leader" -a "$@"; }
prop() { c systemctl show -P "$2" "$1"; }
if [[ "$state" != running && "$state" != degraded ]]; then
    tail -n 30 "$work/console.log" >&2
    echo "the container's systemd did not come up (state: ${state:-none})" >&2
    exit 1
fi
echo "container up (state: $state)"
c systemd-sysusers
c systemctl daemon-reload

echo "# ip under the unit's sandbox (systemd-run -p ...)"
check "ip -j link show runs and prints JSON" \
    bash -c "c() { nsenter -t $leader -a \"\$@\"; }; c /opt/pfrelay-sandbox/run -- ip -j link show | grep -q '\"ifname\":\"lo\"'"
out=$(c /opt/pfrelay-sandbox/run -- sh -c 'id -un; grep -E "^Cap(Eff|Amb):" /proc/self/status' || true)
check "runs as pf-status-relay with CAP_NET_ADMIN effective and ambient, nothing else" \
    test "$out" = "$(printf 'pf-status-relay\nCapEff:\t0000000000001000\nCapAmb:\t0000000000001000')"
check "ip can change a link (lo mtu) under the sandbox" \
    c /opt/pfrelay-sandbox/run -- sh -c 'ip link set dev lo mtu 65000 && ip link show dev lo | grep -q "mtu 65000" && ip link set dev lo mtu 65536'
check "without AmbientCapabilities= the same change is refused" \
    bash -c "! nsenter -t $leader -a /opt/pfrelay-sandbox/run -p AmbientCapabilities= -- ip link set dev lo mtu 65000 2>/dev/null"
check "/proc/net and /sys/class/net are readable, /sys is read-only" \
    c /opt/pfrelay-sandbox/run -- sh -c 'test -r /proc/net/dev && ls /sys/class/net/lo >/dev/null && ! touch /sys/class/net/lo/x 2>/dev/null'
check "the python3 interpreter starts under MemoryDenyWriteExecute and the syscall filter" \
    c /opt/pfrelay-sandbox/run -- /usr/bin/python3 -c 'import json, subprocess, socket, select, signal'

echo "# the unit's life cycle with the sd_notify probe"
check "start returns after READY=1, with the STATUS text" \
    bash -c "c() { nsenter -t $leader -a \"\$@\"; }; c systemctl start pfrelay-probe && test \"\$(c systemctl show -P StatusText pfrelay-probe)\" = 'probe ready'"
check "the probe's children get no NOTIFY_SOCKET/WATCHDOG_*, and ip works from Python" \
    bash -c "nsenter -t $leader -a journalctl -u pfrelay-probe -o cat | grep -q 'child-env-clean True' && nsenter -t $leader -a journalctl -u pfrelay-probe -o cat | grep -q 'ip-rc 0'"
sleep 4 # longer than WatchdogSec=3: the pings keep it alive
check "pings keep the watchdog (3 s) satisfied" test "$(prop pfrelay-probe ActiveState)/$(prop pfrelay-probe NRestarts)" = active/0
c systemctl reload pfrelay-probe
sleep 1.5
check "reload: RELOADING=1 ... READY=1 accepted" test "$(prop pfrelay-probe StatusText)" = "probe reloaded"
c systemctl kill --kill-who=main -s USR1 pfrelay-probe # stop pinging
sleep 6 # 3 s watchdog, 1 s RestartSec, 1 s to READY=1
check "a stalled watchdog gets the service killed (SIGABRT) and restarted" \
    test "$(prop pfrelay-probe NRestarts)/$(prop pfrelay-probe ActiveState)" = 1/active
check "the journal names the watchdog" \
    bash -c "nsenter -t $leader -a journalctl -u pfrelay-probe -o cat | grep -q 'Watchdog timeout'"
c systemctl stop pfrelay-probe
check "stop: STOPPING=1 sent, no send failed" \
    bash -c "nsenter -t $leader -a journalctl -u pfrelay-probe -o cat | grep -q 'probe-sent [0-9]* failures 0'"
check "the ledger survives the stop: pf-status-relay-owned, 0700 directory, 0600 file" \
    test "$(c stat -c '%U %a' /run/pf-status-relay /run/pf-status-relay/state.json | tr '\n' ' ')" = \
    "pf-status-relay 700 pf-status-relay 600 "

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
