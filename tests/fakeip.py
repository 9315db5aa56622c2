"""A fake iproute2 for tests, at the subprocess boundary.

``FakeIpState`` is a JSON file describing links and their VFs. ``write_script`` installs an
executable ``ip`` that serves ``-j link show dev PF``, ``-force -batch -``, ``link set dev PF vf N
state S`` and ``-o monitor link`` from that file, records every call in ``calls.jsonl`` beside
it, and can be told to fail, print garbage or hang. ``-o monitor link`` sleeps, except that with
``"monitor_events": true`` in the state it prints (and removes) the lines of ``monitor-events``
whenever that file appears beside the state, as the kernel's RTNL events would come. A hanging
(monitoring) script exits once its parent is gone, or after 2 (10) minutes, so a killed relay
leaves none behind. Each call in ``calls.jsonl`` also names the systemd notification variables
it inherited (``notify_env``) and its ``pid`` (a test can end a hang by killing it).
``-j -force -batch -`` is the relay's co-process (``pfrelay.ipsession``), modelled on iproute2
6.1 as observed (see ``serve_session``: line by line, flushed JSON, ``Command failed -:N``, the
stale name cache, exit on usage errors) with faults of its own (``session_mode``, ``die_at_line``,
``hang_at_line``); ``batch_error`` makes a one-shot batch fail in an unknown format and
``hang_single_set`` makes one-shot ``link set`` hang (the per-VF fallback). ``FakeIp``
is the same thing in-process (the ``IpPort`` the relay takes) for pyfakefs tests, where a
subprocess would not see the fake tree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from pfrelay.iproute import ChangeResult, IpError, VfChange
from pfrelay.sriov import LinkState

SCRIPT = r"""
import json, os, sys, time
state_path = os.environ.get("FAKE_IP_STATE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "ip-state.json")
with open(state_path) as f:
    state = json.load(f)
args = sys.argv[1:]
parent = os.getppid()

def sleep_forever(limit=120.0):
    # Until the process that started us is gone (a killed relay leaves no sleeping ip behind;
    # one that died before we looked left us to init already), or for `limit` seconds at most.
    deadline = time.monotonic() + limit
    while parent != 1 and os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(1)
with open(os.path.join(os.path.dirname(state_path), "calls.jsonl"), "a") as log:
    # `-j -batch -` is the relay's co-process: lines are read (and answered) as they come.
    session = "-batch" in args and "-j" in args
    stdin = sys.stdin.read() if "-batch" in args and not session else None
    notify_env = sorted(k for k in os.environ if k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"))
    record = {"argv": args, "stdin": stdin, "notify_env": notify_env, "pid": os.getpid()}
    if session:
        record["session"] = True
    log.write(json.dumps(record) + "\n")
mode = state.get("mode", "ok")
if session and state.get("session_mode"):
    mode = state["session_mode"]
if mode == "hang":
    sleep_forever()
if mode == "garbage":
    print("this is not json {"); sys.exit(0)
if mode == "fail":
    print("RTNETLINK answers: Operation not permitted", file=sys.stderr); sys.exit(2)
if mode == "die":
    sys.exit(1)
links = state.setdefault("links", {})
failing = {tuple(x) for x in state.get("fail_vfs", [])}

def save():
    tmp = state_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_path)

def set_vf(words):
    # link set dev PF vf N state S
    if len(words) != 8 or words[:3] != ["link", "set", "dev"] or words[4] != "vf" or words[6] != "state":
        return "Command line is not complete. Try option \"help\""
    pf, vf, st = words[3], words[5], words[7]
    if pf not in links:
        return 'Cannot find device "%s"' % pf
    vfs = links[pf].setdefault("vfs", {})
    if vf not in vfs or (pf, int(vf)) in failing:
        return "RTNETLINK answers: Invalid argument"
    if st not in ("auto", "enable", "disable"):
        return 'Error: argument "%s" is wrong: Invalid "state"' % st
    vfs[vf] = st
    return None

def show(pf, out):
    if pf == "lo" and pf not in links:  # every network namespace has one
        out.write('[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"]}]\n')
        return True
    if pf not in links:
        print('Device "%s" does not exist.' % pf, file=sys.stderr); return False
    link = links[pf]
    vfs = [{"vf": int(n), "link_state": s, "address": "00:00:00:00:00:00"} for n, s in sorted(link.get("vfs", {}).items(), key=lambda kv: int(kv[0]))]
    shown = link.get("visible")
    if shown is not None:
        vfs = vfs[:shown]
        print("Truncated VF list: %s" % pf, file=sys.stderr)
    out.write(json.dumps([{"ifindex": link.get("ifindex", 2), "ifname": pf, "vfinfo_list": vfs}], separators=(",", ":")) + "\n")
    return True

def serve_session():
    # As iproute2 6.1's `ip -j -force -batch -`: each line is run when it arrives; a command's
    # JSON is flushed when it ends; a failed command prints its error and `Command failed -:N`
    # (N counts every line, blank and comment lines too) on stderr; an unknown object fails
    # without netlink; a usage error (an invalid state) exits with 255. What the relay sent
    # between two of its end markers is logged as one call (`via: session`), as the one-shot
    # `ip` it replaces would be. Faults (state keys): `session_mode` (`hang`, `die`, `garbage`,
    # `fail` at start; `buffered`: JSON only at exit, as an ip that does not flush per
    # command; `hang-after-batch`: changes made, the end never answered), `die_at_line` and
    # `hang_at_line` (N: on reading line N).
    global links, state, failing, mode
    lineno = 0
    resolved = {}  # name -> ifindex at first use: iproute2 caches it for the process's life
    frame = []
    out = sys.stdout
    import io
    held = io.StringIO()  # `buffered`: JSON comes out only at exit
    if mode == "buffered":
        out = held
    while True:
        raw = sys.stdin.readline()
        if not raw:
            sys.stdout.write(held.getvalue())
            sys.exit(0)
        lineno += 1
        with open(state_path) as f:  # tests change the state while the co-process runs
            state = json.load(f)
        links = state.setdefault("links", {})
        failing = {tuple(x) for x in state.get("fail_vfs", [])}
        mode = state.get("session_mode") or state.get("mode", "ok")
        if state.get("die_at_line") == lineno or mode == "die":
            sys.exit(1)
        if state.get("hang_at_line") == lineno or mode == "hang":
            sleep_forever()
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "pfrelay-end" or words[0] not in ("link", "l", "li", "lin"):
            if frame:
                shows = [w for w in frame if w[:2] == ["link", "show"]]
                if shows and len(frame) == 1:
                    entry = {"argv": ["-j", "link", "show", "dev", shows[0][-1]], "stdin": None}
                else:
                    entry = {"argv": ["-force", "-batch", "-"], "stdin": "".join(" ".join(w) + "\n" for w in frame)}
                entry.update(via="session", pid=os.getpid(), notify_env=[])
                with open(os.path.join(os.path.dirname(state_path), "calls.jsonl"), "a") as log:
                    log.write(json.dumps(entry) + "\n")
                if mode == "hang-after-batch" and not shows:
                    sleep_forever()
                frame = []
            print('Object "%s" is unknown, try "ip help".' % words[0], file=sys.stderr)
            print("Command failed -:%d" % lineno, file=sys.stderr)
            continue
        frame.append(words)
        name = words[3] if len(words) > 3 else None
        if name in links:
            resolved.setdefault(name, links[name].get("ifindex", 2))
        stale = name in resolved and (name not in links or links[name].get("ifindex", 2) != resolved[name])
        if words[:3] == ["link", "show", "dev"] and len(words) == 4 and stale:
            out.write("[{}]\n"); out.flush(); ok = True  # what 6.1 prints for a gone ifindex
        elif words[:2] == ["link", "set"] and stale:
            print("RTNETLINK answers: No such device", file=sys.stderr); ok = False
        elif words[:3] == ["link", "show", "dev"] and len(words) == 4:
            ok = show(words[3], out)
            if mode != "buffered":
                out.flush()
        elif words[:2] == ["link", "set"]:
            if len(words) == 8 and words[7] not in ("auto", "enable", "disable"):
                print('Error: argument "%s" is wrong: Invalid "state" value\n' % words[7], file=sys.stderr)
                sys.exit(255)
            err = set_vf(words)
            save()
            ok = not err
            if err:
                print(err, file=sys.stderr)
        else:
            ok = False
            print("fake ip: unsupported %r" % (words,), file=sys.stderr)
        if not ok:
            print("Command failed -:%d" % lineno, file=sys.stderr)
        if mode == "garbage-show" and words[1] == "show":
            out.write("this is not json {\n"); out.flush()

if session:
    serve_session()
elif args[:2] == ["-o", "monitor"]:
    if state.get("monitor_fails"):  # the relay has no link events: it restarts this every 10 s
        sys.exit(1)
    if not state.get("monitor_events"):
        sleep_forever(600.0)
    events = os.path.join(os.path.dirname(state_path), "monitor-events")
    deadline = time.monotonic() + 600.0
    while parent != 1 and os.getppid() == parent and time.monotonic() < deadline:
        try:
            os.rename(events, events + ".taken")
        except FileNotFoundError:
            time.sleep(0.02)
            continue
        with open(events + ".taken") as f:
            sys.stdout.write(f.read())
        sys.stdout.flush()
        os.unlink(events + ".taken")
elif args[:3] == ["-j", "link", "show"]:
    if not show(args[-1], sys.stdout):
        sys.exit(1)
elif "-batch" in args and state.get("batch_error"):
    # A batch failure in a format we do not know (no `Command failed` lines).
    print(state["batch_error"], file=sys.stderr); sys.exit(1)
elif "-batch" in args:
    rc = 0
    for n, line in enumerate(stdin.splitlines(), 1):
        err = set_vf(line.split())
        if err:
            print(err, file=sys.stderr); print("Command failed -:%d" % n, file=sys.stderr); rc = 1
            if "-force" not in args:
                break
    save()
    if mode == "hang-after-batch":  # the changes are made, the answer never comes
        sleep_forever()
    sys.exit(rc)
elif args[:2] == ["link", "set"]:
    if state.get("hang_single_set"):
        sleep_forever()
    err = set_vf(args)
    save()
    if err:
        print(err, file=sys.stderr); sys.exit(2)
else:
    print("fake ip: unsupported %r" % (args,), file=sys.stderr); sys.exit(255)
"""


class FakeIpState:
    """The state file behind the fake ``ip`` script."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "ip-state.json"
        self.calls_path = directory / "calls.jsonl"
        if not self.path.exists():
            self.write({"links": {}})

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict) -> None:
        # Atomically: a running relay may start the script while a test changes the state.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    def add_pf(self, pf: str, vfs: Dict[int, str], ifindex: int = 2) -> None:
        state = self.read()
        state["links"][pf] = {"ifindex": ifindex, "vfs": {str(k): v for k, v in vfs.items()}}
        self.write(state)

    def vfs(self, pf: str) -> Dict[int, str]:
        return {int(k): v for k, v in self.read()["links"][pf]["vfs"].items()}

    def set(self, **kwargs: object) -> None:
        state = self.read()
        state.update(kwargs)
        self.write(state)

    def monitor_event(self, *lines: str) -> None:
        """Have ``ip -o monitor link`` print ``lines`` (needs ``set(monitor_events=True)``)."""
        events = self.dir / "monitor-events"
        tmp = self.dir / "monitor-events.tmp"
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(events)

    def calls(self) -> List[dict]:
        """What the relay asked of ``ip``: one-shot runs and co-process requests.

        A co-process's start and its start-up check (``link show dev lo``) are left out; they
        are in ``all_calls``.
        """
        return [
            c
            for c in self.all_calls()
            if not c.get("session") and not (c.get("via") == "session" and c["argv"][-1:] == ["lo"])
        ]

    def all_calls(self) -> List[dict]:
        if not self.calls_path.exists():
            return []
        return [json.loads(line) for line in self.calls_path.read_text().splitlines()]

    def processes(self) -> List[dict]:
        """One record per ``ip`` process started (co-processes and one-shot runs)."""
        return [c for c in self.all_calls() if c.get("via") != "session"]


def write_script(directory: Path) -> Tuple[Path, FakeIpState]:
    """Install the fake ``ip`` in ``directory``; returns its path and its state."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ip"
    # -S: the stdlib is all it needs; skipping site also skips coverage's start-up hook, which
    # made each fake ip cost ~0.5 s on a loaded CI machine (the relay spawns one per poll
    # while a PF is down, and the daemon tests time the watchdog against that).
    script.write_text(f"#!{sys.executable} -S\n{SCRIPT}")
    script.chmod(0o755)
    return script, FakeIpState(directory)


class FakeIp:
    """In-process ``IpPort``: VF states in a dict, every call recorded."""

    def __init__(self, links: Optional[Dict[str, Dict[int, str]]] = None) -> None:
        self.links: Dict[str, Dict[int, str]] = links or {}
        self.ifindex: Dict[str, int] = {}
        self.visible: Dict[str, int] = {}
        self.fail_vfs: set = set()
        self.error: Optional[str] = None
        self.calls: List[Tuple[str, object]] = []

    def link_show(self, pf: str) -> Tuple[str, str]:
        self.calls.append(("show", pf))
        if self.error:
            raise IpError(self.error)
        if pf not in self.links:
            raise IpError(f'ip -j link show dev {pf}: Device "{pf}" does not exist.')
        vfs = [{"vf": n, "link_state": s} for n, s in sorted(self.links[pf].items())]
        if pf in self.visible:
            vfs = vfs[: self.visible[pf]]
        return json.dumps(
            [{"ifindex": self.ifindex.get(pf, 2), "ifname": pf, "vfinfo_list": vfs}]
        ), ""

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
        self.calls.append(("batch", [(c.pf, c.vf, c.state.value) for c in changes]))
        if self.error:
            return ChangeResult((), tuple((c, self.error) for c in changes))
        applied, failed = [], []
        for c in changes:
            if (c.pf, c.vf) in self.fail_vfs or c.vf not in self.links.get(c.pf, {}):
                failed.append((c, "RTNETLINK answers: Invalid argument"))
            else:
                self.links[c.pf][c.vf] = c.state.value
                applied.append(c)
        return ChangeResult(tuple(applied), tuple(failed))

    def states(self, pf: str) -> Dict[int, LinkState]:
        return {n: LinkState(s) for n, s in self.links[pf].items()}

    @property
    def processes(self) -> int:
        return len(self.calls)
