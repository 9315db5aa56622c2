#!/usr/bin/env python3
"""Reaction of the relay to an LACP expiry on Linux 6.12 bonding (kernel VM; figures only).

Runs INSIDE the VM that ``bench/kernel/run.sh`` boots (tests/kernel's harness and topology).
Per configuration (a group): a fresh topology (pf0 with N netdevsim VFs, all auto, the only
slave of bond0, 802.3ad fast; the peer bond in netns sw) and ``daemon.serve`` in a subprocess
(this file's ``serve`` command: polling 1000 ms, link events on or off, VF reads and changes
through the relay's ``ip`` co-process or, with ``--apply per-vf``, one ``ip`` per VF through its
one-shot fallback). Then a few cycles: drop the LACPDUs on the peer port until the kernel expires the partner
(~3 s) and the relay has disabled the VFs, let them through again, wait for the restore.
A thread samples pf0's bonding_slave sysfs every 10 ms, another reads
``ip -d -o monitor link`` (the port states each RTM_NEWLINK carries), and the relay records
each cycle (woken by a poll or a link event) and each ``ip`` call. Printed, in ms from the
first sysfs sample that shows LACP down (up, for the recovery):

- kernel event: the first monitor line after the block;
- detect: the relay's "lacp is down" log line, and whether an event or a poll woke it;
- reaction: its last "vf link state was set" line (the VFs are read back with
  ``ip -j link show`` once the relay logged them all);
- apply: wall time and ``ip`` processes of the set_vf_states call; self-wakes: the extra
  cycles the relay's own VF changes wake (each is an RTM_NEWLINK for the PF);
- recovery: "lacp is up", the last VF restored, and the monitor lines in between;
- timelines of three cycles: the expiry and DEFAULTED, and a recovery per wake mode;
- per events group: the idle CPU before the first expiry (``--idle-s``), and in its last,
  held-down cycle a VF reset to auto 5 times, timed until the relay disabled it again.

``--idle-sweep 0,250`` measures only idle CPU per fast-check period (0: the defaults).

A warm-up group (not reported) runs first: the guest's first Python and ``ip`` runs are slow.
Files: OUTDIR/reaction.tsv (every cycle), OUTDIR/bench/<group>/ (relay log, its cycles and
ip calls, monitor lines, sysfs changes).

    bench/kernel/run.sh [--vfs 8,64,192] [--per-vf-vfs 8,64,192] [--cycles-small 5] [--cycles 3]
        [--polling-ms 1000] [--idle-s 10] [--fast-check-ms N] [--idle-sweep 0,250]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "tests" / "kernel"))

import klab
import krelay

PF = "pf0"
RELAY_ARGS: List[str] = []  #: more arguments for every relay (main's --fast-check-ms)
SET_MSG = "vf link state was set"
DEFAULTED = 0x40  #: actor oper port state bit

Call = Dict[str, Any]


# --- the relay under test: daemon.serve in a subprocess ---------------------------------------


def serve_main(argv: Sequence[str]) -> int:
    """``reaction.py serve ...``: ``daemon.serve`` with a timed ``Ip`` and ``Relay``.

    Every ``ip`` call and every cycle of the relay is appended to ``--calls`` as a JSON line
    (what, wall start and end; for a cycle whether a poll or a link event started it).
    ``--apply per-vf`` replaces ``set_vf_states`` by ``_set_one_by_one`` (one ``ip`` per VF),
    which the product has no switch for.
    """
    parser = argparse.ArgumentParser(prog="reaction.py serve")
    parser.add_argument("--interface", default=PF)
    parser.add_argument("--polling-ms", type=int, default=1000)
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--calls", required=True)
    parser.add_argument("--events", choices=("on", "off"), default="on")
    parser.add_argument("--apply", choices=("batch", "per-vf"), default="batch")
    parser.add_argument("--fast-check-ms", type=float, default=None, help="0: off")
    args = parser.parse_args(argv)

    from pfrelay import daemon
    from pfrelay.config import Config
    from pfrelay.iproute import ChangeResult, VfChange
    from pfrelay.ipsession import IpSession
    from pfrelay.log import EventLog
    from pfrelay.relay import PfReport, Relay

    calls = open(args.calls, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    per_vf = args.apply == "per-vf"

    def note(what: str, start: float, **extra: Any) -> None:
        calls.write(json.dumps({"what": what, "start": start, "end": time.time(), **extra}) + "\n")

    class TimedIp(IpSession):
        """The relay's co-process, each call noted with the processes it started."""

        def link_show(self, pf: str) -> Tuple[str, str]:
            start, before = time.time(), self.processes
            try:
                return super().link_show(pf)
            finally:
                note("link_show", start, processes=self.processes - before)

        def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
            start, before = time.time(), self.processes
            if per_vf:
                result = self.oneshot._set_one_by_one(changes)
            else:
                result = super().set_vf_states(changes)
            note(
                "set",
                start,
                processes=self.processes - before,
                vfs=len(changes),
                failed=len(result.failed),
                state=changes[0].state.value if changes else None,
            )
            return result

    class TimedRelay(Relay):
        def cycle(
            self,
            interfaces: Optional[Iterable[str]] = None,
            progress: Optional[Callable[[], None]] = None,
        ) -> List[PfReport]:
            start = time.time()
            try:
                return super().cycle(interfaces, progress)
            finally:
                note("cycle", start, kind="poll" if interfaces is None else "event")

    daemon.IpSession = TimedIp  # type: ignore[misc]
    daemon.Relay = TimedRelay  # type: ignore[misc]
    if args.fast_check_ms is not None:  # 0: never (it runs only when polling > 2 x this)
        daemon.FAST_CHECK_S = args.fast_check_ms / 1000 if args.fast_check_ms else 1e9
    config = Config(
        interfaces=(args.interface,),
        polling_interval_ms=args.polling_ms,
        state_file=args.state_file,
    )
    return daemon.serve(
        config,
        config_path=None,
        flags={},
        env=dict(os.environ),
        log=EventLog("json", "info"),
        watch_events=args.events == "on",
    )


class ServeRelay(krelay.Relay):
    """krelay's process and log handling around ``reaction.py serve`` instead of pfrelay run."""

    @property
    def argv(self) -> List[str]:
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            "--interface",
            self.interfaces[0],
            "--polling-ms",
            str(self.polling_interval),
            "--state-file",
            str(self.state_file),
            *self.extra_args,
        ]

    def has_monitor_child(self) -> bool:
        """Whether the relay's ``ip -o monitor link`` child is running."""
        if self.proc is None:
            return False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if ppid != self.proc.pid:
                    continue
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if b"monitor" in cmdline:
                return True
        return False


# --- what the kernel does: sysfs samples and link events --------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    t: float  #: wall time of the first read that showed ``state``
    prev: float  #: wall time of the read before (the change happened in between)
    state: klab.SlaveState

    @property
    def ports(self) -> str:
        s = self.state
        return f"actor/partner {s.actor}/{s.partner} mii {s.mii}"


class Sampler(threading.Thread):
    """Reads pf0's bonding_slave files every ``interval`` s; keeps every change."""

    def __init__(self, ifname: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.ifname = ifname
        self.interval = interval
        self.changes: List[Sample] = []
        self.reads = 0
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        last: Optional[klab.SlaveState] = None
        prev = time.time()
        self.started_at = prev
        while not self._stop_event.is_set():
            state = klab.slave_state(self.ifname)
            now = time.time()
            self.reads += 1
            if state != last:
                self.changes.append(Sample(now, prev, state))
                last = state
            prev = now
            self._stop_event.wait(self.interval)
        self.stopped_at = time.time()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def wait(
        self, what: str, pred: Callable[[klab.SlaveState], object], after: float, timeout: float
    ) -> Sample:
        deadline = time.monotonic() + timeout
        while True:
            for sample in list(self.changes):
                if sample.t >= after and pred(sample.state):
                    return sample
            if time.monotonic() >= deadline:
                last = self.changes[-1].ports if self.changes else None
                raise AssertionError(f"{what}: not seen in {timeout:.0f}s (last: {last})")
            time.sleep(0.05)

    @property
    def mean_interval_ms(self) -> float:
        span = (self.stopped_at or time.time()) - self.started_at
        return 1000 * span / max(self.reads, 1)


class Monitor(threading.Thread):
    """``ip -d -o monitor link``; each line stamped with the wall time it was read."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lines: List[Tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [klab.IP, "-d", "-o", "monitor", "link"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            errors="replace",
        )

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.join(10)


def summarize_line(line: str) -> str:
    """``pf0: bond_slave BACKUP mii UP actor/partner 143/55`` from an ``ip -d -o`` line."""
    fields = line.split(": ", 2)
    name = fields[1] if len(fields) >= 2 else "?"
    if line.startswith("Deleted"):
        name = f"Deleted {name}"
    found = {
        key: m.group(1)
        for key, pattern in (
            ("state", r"bond_slave state (\S+)"),
            ("mii", r"bond_slave state \S+ mii_status (\S+)"),
            ("actor", r"ad_actor_oper_port_state (\d+)"),
            ("partner", r"ad_partner_oper_port_state (\d+)"),
        )
        if (m := re.search(pattern, line))
    }
    if "actor" in found:
        return (
            f"{name}: bond_slave {found.get('state')} mii {found.get('mii')}"
            f" actor/partner {found['actor']}/{found.get('partner')}"
        )
    return f"{name}: {line[len(fields[0]) + len(name) + 4 :][:90]}"


# --- one group: a topology, a relay, some block/recover cycles ----------------------------------


@dataclasses.dataclass
class Group:
    """One configuration: a fresh topology and relay, then ``cycles`` LACP expiries."""

    apply: str  #: "batch" or "per-vf"
    events: bool
    vfs: int
    cycles: int
    recover: bool = True  #: let LACPDUs through after each cycle; time the restore
    hold_defaulted: bool = False  #: the last cycle waits for DEFAULTED instead of recovering
    warmup: bool = False
    idle_s: float = 0.0  #: measure the relay's idle CPU this long before the first expiry
    idle: Dict[str, float] = dataclasses.field(default_factory=dict)
    redisable_ms: List[float] = dataclasses.field(default_factory=list)
    name: str = ""
    setup_s: float = 0.0
    sample_ms: float = 0.0
    error: Optional[str] = None
    results: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    timelines: List[List[Tuple[float, str, str]]] = dataclasses.field(default_factory=list)

    @property
    def wake(self) -> str:
        return "events" if self.events else "polling"


def read_calls(path: Path) -> List[Call]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def count_sets(relay: ServeRelay, state: str) -> int:
    """Cheap count of "vf link state was set" lines to ``state`` (no JSON parsing)."""
    try:
        text = relay.log_path.read_text(errors="replace")
    except OSError:
        return 0
    needle = f'"state": "{state}"'
    return sum(1 for line in text.splitlines() if SET_MSG in line and needle in line)


def wait_sets(relay: ServeRelay, state: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count_sets(relay, state) < count:
        if not relay.running():
            raise AssertionError(f"relay exited: {relay.stderr()[-2000:]}")
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{count_sets(relay, state)}/{count} VF changes to {state} logged"
                f" after {timeout:.0f}s"
            )
        time.sleep(0.05)  # the relay's own time stamps are measured, not this loop's


def log_times(events: List[krelay.Event], msg: str, **fields: Any) -> List[float]:
    times = [krelay.event_time(e) for e in events if krelay.matches(e, msg, fields)]
    return [t for t in times if t is not None]


def cycle_at(calls: List[Call], t: float) -> Optional[Call]:
    """The relay cycle running at wall time ``t`` (log times have ms resolution)."""
    for call in calls:
        if call["what"] == "cycle" and call["start"] - 0.001 <= t <= call["end"] + 0.001:
            return call
    return None


def last_own_change(lines: List[Tuple[float, str]], sets: List[Call]) -> Optional[float]:
    """When the kernel announced the last VF change of these ``set`` calls (its RTM_NEWLINK
    for the PF, as ``ip monitor`` read it): the moment the VFs were really changed, before
    the relay's read-back and log lines."""
    own = [t for t, _ in lines if any(c["start"] <= t <= c["end"] + 0.1 for c in sets)]
    return max(own) if own else None


def own_change(calls: List[Call], t: float) -> bool:
    """Whether a monitor line read at ``t`` came from the relay's own ``ip`` VF change."""
    return any(c["what"] == "set" and c["start"] <= t <= c["end"] + 0.1 for c in calls)


def run_group(group: Group, work: Path, outdir: Path, polling_ms: int, sample_s: float) -> None:
    gdir = work / group.name
    gdir.mkdir(parents=True)
    calls_path = gdir / "calls.jsonl"
    n = group.vfs
    topo = klab.Topology()
    monitor = Monitor()
    monitor.start()
    sampler = Sampler(PF, sample_s)
    relay = ServeRelay(
        gdir,
        gdir / "state" / "state.json",
        interfaces=(PF,),
        polling_interval=polling_ms,
        extra_args=(
            "--events",
            "on" if group.events else "off",
            "--apply",
            group.apply,
            "--calls",
            str(calls_path),
            *RELAY_ARGS,
        ),
    )
    t_setup = time.monotonic()
    try:
        # the relay's start (~4 s of Python under TCG) overlaps the topology's; a bond that
        # appears at run time is acted on once LACP has been seen up ("lacp is up")
        relay.start()
        klab.standard_topology(topo, num_vfs=n)
        group.setup_s = time.monotonic() - t_setup
        relay.wait_for_msg("lacp is up", timeout=60, interface=PF)
        if group.events:
            klab.wait_for("the relay's ip monitor child", relay.has_monitor_child, timeout=15)
        if group.idle_s and relay.proc is not None:
            time.sleep(2.0)  # the first cycles after "lacp is up" are not idle
            group.idle = idle_cpu(relay.proc.pid, group.idle_s)
        sampler.start()
        for i in range(group.cycles):
            res: Dict[str, Any] = {}
            group.results.append(res)
            # quiet polls first; the random part puts the expiry at a random poll phase
            time.sleep(0.7 + random.uniform(0, polling_ms / 1000))
            target = count_sets(relay, "disable") + n
            restored_before = count_sets(relay, "auto")
            res["t_block"] = time.time()
            topo.block_lacpdus()
            down = sampler.wait("LACP down", lambda s: not s.lacp_up, res["t_block"], 15)
            res["t_change"] = down.t
            before = [c for c in sampler.changes if c.t < down.t]
            res["change"] = f"{before[-1].ports if before else '?'} -> {down.ports}"
            timeout = 15 + n * (1.5 if group.apply == "per-vf" else 0.05)
            if group.hold_defaulted and i == group.cycles - 1:
                wait_sets(relay, "disable", target, timeout)
                res["readback"] = readback(n)
                res["t_resets"] = time.time()
                group.redisable_ms = reset_while_down(relay, monitor, n, polling_ms)
                sampler.wait("DEFAULTED", lambda s: (s.actor or 0) & DEFAULTED, down.t, 15)
                time.sleep(0.5)
            elif group.recover:
                # Unblock once the VFs are disabled, but no later than 1.9 s after the expiry:
                # a peer LACPDU (fast rate: every 1 s) must arrive before the kernel's
                # DEFAULTED (~3 s after it), after which the peer resends only at the slow
                # rate and recovery takes ~30 s. By then the relay has read "down" (polling
                # 1000 ms), and LACP takes >= 0.5 s to come back, so the read-back after the
                # unblock still sees what the relay did, not a restore.
                while count_sets(relay, "disable") < target and time.time() < down.t + 1.9:
                    time.sleep(0.03)
                res["t_unblock"] = time.time()
                topo.unblock_lacpdus()
                wait_sets(relay, "disable", target, timeout)
                res["readback"] = readback(n)
                up = sampler.wait("LACP up", lambda s: s.lacp_up, res["t_unblock"], 45)
                res["t_up"] = up.t
                res["recover_ms"] = 1000 * (up.t - res["t_unblock"])
                wait_sets(relay, "auto", restored_before + n, 10)
            else:
                wait_sets(relay, "disable", target, timeout)
                res["readback"] = readback(n)
            time.sleep(0.3)
            res["t_end"] = time.time()
    finally:
        if sampler.is_alive():
            sampler.stop()
            group.sample_ms = sampler.mean_interval_ms
        relay.stop()
        monitor.stop()
        topo.cleanup()
        keep = outdir / "bench" / group.name
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(gdir, keep, ignore=shutil.ignore_patterns("state"))
        with open(keep / "monitor.txt", "w") as handle:
            handle.writelines(f"{t:.3f} {line}\n" for t, line in monitor.lines)
        with open(keep / "sysfs-changes.txt", "w") as handle:
            handle.writelines(f"{c.t:.3f} (prev {c.prev:.3f}) {c.state}\n" for c in sampler.changes)
        events = relay.events()
        calls = read_calls(calls_path)
        for res in group.results:
            if "t_end" in res:
                analyse(res, n, events, calls, monitor.lines)
                group.timelines.append(
                    build_timeline(
                        sampler, monitor.lines, events, calls, res["t_block"] - 1.1, res["t_end"]
                    )
                )


def idle_cpu(pid: int, seconds: float) -> Dict[str, float]:
    """The relay's CPU while LACP is up: clock ticks per 20 s (as issue 15's table) and the
    scheduler's exact on-CPU time in % of one core."""
    ticks0, run0, t0 = _ticks(pid), _run_ns(pid), time.monotonic()
    time.sleep(seconds)
    ticks1, run1, t1 = _ticks(pid), _run_ns(pid), time.monotonic()
    return {
        "ticks_per_20s": (ticks1 - ticks0) * 20.0 / (t1 - t0),
        "cpu_pct": 100.0 * (run1 - run0) / 1e9 / (t1 - t0),
    }


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _run_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def reset_while_down(
    relay: ServeRelay, monitor: Monitor, n: int, polling_ms: int, times: int = 5
) -> List[float]:
    """An operator sets a disabled VF back to auto while LACP is down: ms from the kernel's
    change (the first monitor line for the PF after the ``ip`` that made it started; the
    end of that ``ip`` if none: its exec alone costs 150-300 ms here) until the relay has
    disabled it again ("vf link state was set" for it), ``times`` over, at random poll phases.
    The port states stay down (expired, then DEFAULTED) all the while."""
    found: List[float] = []
    vf = n - 1
    for _ in range(times):
        time.sleep(random.uniform(0.05, polling_ms / 1000))
        before = len(relay.find(SET_MSG, interface=PF, id=vf, state="disable"))
        t_start = time.time()
        klab.set_vf_state(PF, vf, "auto")
        t_reset = time.time()
        time.sleep(0.05)  # the monitor thread's read of the kernel's line
        lines = [t for t, line in list(monitor.lines) if t >= t_start and f" {PF}" in line]
        if lines and lines[0] <= t_reset + 0.05:
            t_reset = lines[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            hits = relay.find(SET_MSG, interface=PF, id=vf, state="disable")
            if len(hits) > before:
                found.append(1000 * ((krelay.event_time(hits[-1]) or t_reset) - t_reset))
                break
            time.sleep(0.01)
    return found


def readback(n: int) -> str:
    states = klab.vf_states(PF)
    return f"{sum(1 for st in states.values() if st == 'disable')}/{n}"


def analyse(
    res: Dict[str, Any],
    n: int,
    all_events: List[krelay.Event],
    all_calls: List[Call],
    all_lines: List[Tuple[float, str]],
) -> None:
    """The figures of one cycle, from what happened between its block and its end."""
    start, end = res["t_block"], res["t_end"]
    events = [e for e in all_events if start <= (krelay.event_time(e) or 0) <= end]
    calls = [c for c in all_calls if start <= c["start"] <= end]
    lines = [(t, x) for t, x in all_lines if start <= t <= end]
    t0 = res["t_change"]
    downs = log_times(events, "lacp is down", interface=PF)
    resets = res.get("t_resets", end)  # the re-disables after it are not this reaction's
    disabled = [t for t in log_times(events, SET_MSG, interface=PF, state="disable") if t < resets]
    if downs:
        res["detect_ms"] = 1000 * (downs[0] - t0)
        cycle = cycle_at(calls, downs[0])
        res["detect_by"] = cycle["kind"] if cycle else "?"
    if len(disabled) >= n:
        res["react_ms"] = 1000 * (max(disabled) - t0)
    sets = [
        c
        for c in calls
        if c["what"] == "set" and c.get("state") == "disable" and c["start"] < resets
    ]
    changed = last_own_change(lines, sets)
    if changed is not None:
        res["changed_ms"] = 1000 * (changed - t0)
    if sets:
        res["apply_ms"] = 1000 * sum(c["end"] - c["start"] for c in sets)
        res["apply_procs"] = sum(c["processes"] for c in sets)
        res["apply_failed"] = sum(c["failed"] for c in sets)
        last = sets[-1]["end"]
        res["self_wakes"] = sum(
            1
            for c in calls
            if c["what"] == "cycle" and c["kind"] == "event" and last < c["start"] <= last + 1.0
        )
    kernel = [(t, x) for t, x in lines if not own_change(all_calls, t)]
    if kernel:
        res["event_ms"] = 1000 * (kernel[0][0] - t0)
        res["event"] = summarize_line(kernel[0][1])
        if downs:
            res["after_event_ms"] = 1000 * (downs[0] - kernel[0][0])
    t_up = res.get("t_up")
    if t_up is None:
        return
    ups = [t for t in log_times(events, "lacp is up", interface=PF) if t >= t_up - 0.2]
    autos = log_times(events, SET_MSG, interface=PF, state="auto")
    if ups:
        res["up_detect_ms"] = 1000 * (ups[0] - t_up)
        cycle = cycle_at(calls, ups[0])
        res["up_by"] = cycle["kind"] if cycle else "?"
    if len(autos) >= n:
        res["up_react_ms"] = 1000 * (max(autos) - t_up)
    restored = last_own_change(
        lines, [c for c in calls if c["what"] == "set" and c.get("state") == "auto"]
    )
    if restored is not None:
        res["up_changed_ms"] = 1000 * (restored - t_up)
    restores = [c["start"] for c in calls if c["what"] == "set" and c.get("state") == "auto"]
    first_restore = restores[0] if restores else end
    res["up_lines"] = [
        (round(1000 * (t - t_up)), summarize_line(x))
        for t, x in kernel
        if res["t_unblock"] <= t < first_restore
    ]


def build_timeline(
    sampler: Sampler,
    lines: List[Tuple[float, str]],
    events: List[krelay.Event],
    calls: List[Call],
    since: float,
    until: float,
) -> List[Tuple[float, str, str]]:
    """(wall time, source, text) in [since, until]; the relay's own VF changes folded."""
    rows: List[Tuple[float, str, str]] = [
        (c.t, "sysfs", c.ports) for c in sampler.changes if since <= c.t <= until
    ]
    folded: List[Tuple[float, str]] = []
    for t, line in lines:
        if not since <= t <= until:
            continue
        if own_change(calls, t):
            folded.append((t, line))
            continue
        if folded:
            rows.append(fold(folded))
            folded = []
        rows.append((t, "monitor", summarize_line(line)))
    if folded:
        rows.append(fold(folded))
    for c in calls:
        if not since <= c["start"] <= until:
            continue
        ms = 1000 * (c["end"] - c["start"])
        if c["what"] == "cycle":
            reads = [
                x
                for x in calls
                if x["what"] == "link_show" and c["start"] <= x["start"] <= c["end"]
            ]
            what = f"cycle ({c['kind']}) {ms:.0f} ms" + (
                f", ip -j link show {1000 * (reads[0]['end'] - reads[0]['start']):.0f} ms"
                if reads
                else ", no ip"
            )
            rows.append((c["start"], "relay", what))
        elif c["what"] == "set":
            what = f"  set {c['vfs']} VFs {c['state']}: {c['processes']} ip, {ms:.0f} ms"
            rows.append((c["start"], "relay", what))
    window = [e for e in events if since <= (krelay.event_time(e) or 0) <= until]
    for key in ("lacp is down", "lacp is up"):
        rows += [(t, "relay log", key) for t in log_times(window, key)]
    for state in ("disable", "auto"):
        times = log_times(window, SET_MSG, state=state)
        if times:
            rows.append((max(times), "relay log", f"last of {len(times)} '{SET_MSG}' {state}"))
    return sorted(rows, key=lambda row: row[0])


def fold(lines: List[Tuple[float, str]]) -> Tuple[float, str, str]:
    names = sorted({line.split(": ", 2)[1] for _, line in lines if line.count(": ") >= 2})
    span = 1000 * (lines[-1][0] - lines[0][0])
    return (
        lines[0][0],
        "monitor",
        f"{len(lines)} lines for {','.join(names)} over {span:.0f} ms (the relay's own VF changes)",
    )


# --- the report ---------------------------------------------------------------------------------


def fmt(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.median(values):.0f} [{min(values):.0f}..{max(values):.0f}]"


def kinds(values: Sequence[str]) -> str:
    return ",".join(f"{k} {values.count(k)}" for k in sorted(set(values))) or "-"


def table(cols: Sequence[Tuple[str, int]], rows: Sequence[Sequence[str]]) -> None:
    """Columns: the first two left-aligned, the others right-aligned."""

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, (_, w)) in enumerate(zip(cells, cols))
        )

    header = line([name for name, _ in cols])
    print(header)
    print("-" * len(header))
    for row in rows:
        print(line(row))


def report(groups: List[Group], sample_ms: float, polling_ms: int) -> None:
    done = [g for g in groups if not g.warmup and any("t_change" in r for r in g.results)]
    order = sorted(done, key=lambda g: (g.apply != "batch", g.events is False, g.vfs))
    print()
    print(
        f"LACP expiry -> VFs disabled. Polling {polling_ms} ms. Times in ms from the first sysfs"
        f" sample showing LACP down (sampled every {sample_ms:.0f} ms); median [min..max]."
    )
    print(
        "kernel event: first `ip -d -o monitor link` line after the block; - kernel event:"
        " 'lacp is down' logged minus that line; woken by: the relay cycle that logged it"
        " (event or poll); last VF changed: the kernel's RTM_NEWLINK for the relay's last VF"
        " change (the VFs are disabled then; 'set logged' comes after the read-back);"
        " self-wakes: event cycles <= 1 s after the apply (its own RTM_NEWLINKs)."
    )
    rows = []
    for g in order:
        rs = [r for r in g.results if "t_change" in r]

        def vals(name: str, rs: List[Dict[str, Any]] = rs) -> List[float]:
            return [r[name] for r in rs if r.get(name) is not None]

        applies = vals("apply_ms")
        rows.append(
            [
                g.apply,
                g.wake,
                str(g.vfs),
                str(len(rs)),
                fmt(vals("event_ms")),
                fmt(vals("detect_ms")),
                fmt(vals("after_event_ms")),
                kinds([r.get("detect_by", "?") for r in rs]),
                fmt(vals("changed_ms")),
                fmt(vals("react_ms")),
                fmt(applies),
                f"{statistics.median(applies) / g.vfs:.1f}" if applies else "-",
                fmt(vals("apply_procs")),
                ",".join(sorted({r.get("readback", "?") for r in rs})),
                fmt(vals("self_wakes")) if g.events else "-",
            ]
        )
    table(
        [
            ("apply", 6),
            ("wake", 7),
            ("VFs", 3),
            ("runs", 4),
            ("kernel event", 12),
            ("lacp down logged", 16),
            ("- kernel event", 14),
            ("woken by", 8),
            ("last VF changed", 15),
            ("last VF set logged", 18),
            ("apply (ip)", 15),
            ("ms/VF", 5),
            ("ip procs", 8),
            ("read-back", 9),
            ("self-wakes", 10),
        ],
        rows,
    )

    recov = [g for g in order if any("t_up" in r for r in g.results)]
    if recov:
        print()
        print(
            "Recovery: LACPDUs let through right after the VFs were disabled; ms from the first"
            " sysfs sample showing LACP up. Kernel lines: every monitor line from the unblock to"
            " the relay's first restore, ms from LACP up, with the port states it carries."
        )
        rows = []
        for g in recov:
            rs = [r for r in g.results if "t_up" in r]

            def vals(name: str, rs: List[Dict[str, Any]] = rs) -> List[float]:
                return [r[name] for r in rs if r.get(name) is not None]

            ups = [
                " ".join(f"{brief(s)}@{ms:+d}" for ms, s in r.get("up_lines", [])) or "none"
                for r in rs
            ]
            rows.append(
                [
                    g.apply,
                    g.wake,
                    str(g.vfs),
                    str(len(rs)),
                    fmt(vals("recover_ms")),
                    fmt(vals("up_detect_ms")),
                    kinds([r.get("up_by", "?") for r in rs]),
                    fmt(vals("up_changed_ms")),
                    fmt(vals("up_react_ms")),
                    " | ".join(ups),
                ]
            )
        table(
            [
                ("apply", 6),
                ("wake", 7),
                ("VFs", 3),
                ("runs", 4),
                ("unblock->up", 15),
                ("lacp up logged", 16),
                ("woken by", 16),
                ("last VF restored", 16),
                ("last VF auto logged", 19),
                ("kernel lines", 12),
            ],
            rows,
        )

    extra = [g for g in order if g.redisable_ms or g.idle]
    if extra:
        print()
        print(
            "VF reset to auto while LACP is down -> disabled again (ms from the reset, 5 times at"
            " random poll phases); idle CPU with LACP up (clock ticks per 20 s; on-CPU % of one"
            " core from schedstat)."
        )
        table(
            [
                ("apply", 6),
                ("wake", 7),
                ("VFs", 3),
                ("re-disabled", 22),
                ("idle ticks/20 s", 15),
                ("idle CPU %", 10),
            ],
            [
                [
                    g.apply,
                    g.wake,
                    str(g.vfs),
                    fmt(g.redisable_ms),
                    f"{g.idle['ticks_per_20s']:.1f}" if g.idle else "-",
                    f"{g.idle['cpu_pct']:.2f}" if g.idle else "-",
                ]
                for g in extra
            ],
        )

    def medians(apply: str, n: int) -> List[float]:
        return [
            r["apply_ms"]
            for g in done
            if g.apply == apply and g.vfs == n and g.events
            for r in g.results
            if "apply_ms" in r
        ]

    print()
    print("One ip per VF vs one batch (apply wall time, medians, events):")
    for n in sorted({g.vfs for g in done}):
        batch, single = medians("batch", n), medians("per-vf", n)
        if batch and single:
            b, s = statistics.median(batch), statistics.median(single)
            print(f"  {n:>3} VFs: per-VF {s:.0f} ms / batch {b:.0f} ms = {s / b:.1f}x")
    results = [r for g in done for r in g.results]
    changes = sorted({r["change"] for r in results if "change" in r})
    print(f"Kernel change sampled: {'; '.join(changes)}")
    firsts = [r["event"].split(": ", 1)[1] for r in results if "event" in r]
    print(
        "First monitor line after the block: "
        + ("; ".join(f"{x} x{firsts.count(x)}" for x in sorted(set(firsts))) or "none")
        + f" (of {len(results)} expiries)"
    )


def brief(summary: str) -> str:
    """``ACTIVE 63/143`` from a summarize_line() text."""
    m = re.search(r"bond_slave (\S+) mii \S+ actor/partner (\S+)", summary)
    return f"{m.group(1)} {m.group(2)}" if m else summary.split(":", 1)[0]


def print_timeline(group: Group, index: int, title: str) -> None:
    if index >= len(group.timelines) or index >= len(group.results):
        return
    zero = group.results[index].get("t_change")
    if zero is None:
        return
    print()
    print(f"{title} [{group.name}, cycle {index + 1}]: ms from the sysfs sample showing LACP down")
    for t, source, text in group.timelines[index]:
        print(f"  {1000 * (t - zero):+8.0f}  {source:<9}  {text}")


# --- main ---------------------------------------------------------------------------------------


def plan(
    vfs: Sequence[int],
    per_vf_vfs: Sequence[int],
    cycles_small: int,
    cycles: int,
    idle_s: float = 0.0,
) -> List[Group]:
    smallest = min(vfs)
    groups = [Group("batch", True, smallest, 1, recover=False, warmup=True)]
    for n in vfs:
        count = cycles_small if n == smallest else cycles
        # every events group ends held down: a VF reset to auto then is disabled again
        groups.append(Group("batch", True, n, count + 1, hold_defaulted=True, idle_s=idle_s))
        groups.append(Group("batch", False, n, count))
    # one ip per VF outlasts the DEFAULTED state (~3 s): after it recovery takes ~30 s
    groups += [Group("per-vf", True, n, 1, recover=False) for n in per_vf_vfs]
    for i, g in enumerate(groups):
        kind = "warmup" if g.warmup else f"{g.apply}-{g.wake}"
        g.name = f"{i:02d}-{kind}-{g.vfs}vf"
    return groups


def idle_sweep(periods: Sequence[int], polling_ms: int, seconds: float, outdir: Path) -> int:
    """Idle CPU of the relay (1 PF, 8 VFs, LACP up): with its defaults (period 0: link events
    on, so no fast check), and with events off and a fast check every N ms."""
    print(f"Idle CPU, polling {polling_ms} ms, 1 PF with 8 VFs, {seconds:g} s each:")
    with tempfile.TemporaryDirectory(prefix="pfrelay-idle-") as tmp:
        for period in [periods[0], *periods]:  # the first is a warm-up
            gdir = Path(tmp) / f"fast-{period}-{time.monotonic_ns()}"
            gdir.mkdir()
            topo = klab.Topology()
            relay = ServeRelay(
                gdir,
                gdir / "state" / "state.json",
                interfaces=(PF,),
                polling_interval=polling_ms,
                # 0: the defaults (link events on: no fast check); N: events off, check every N ms
                extra_args=(
                    "--calls",
                    str(gdir / "calls.jsonl"),
                    *(["--events", "off", "--fast-check-ms", str(period)] if period else []),
                ),
            )
            try:
                relay.start()
                klab.standard_topology(topo, num_vfs=8)
                relay.wait_for_msg("lacp is up", timeout=60, interface=PF)
                time.sleep(2.0)
                assert relay.proc is not None
                idle = idle_cpu(relay.proc.pid, seconds)
            finally:
                relay.stop()
                topo.cleanup()
            print(
                f"  {f'events off, fast check {period} ms' if period else 'defaults (link events)':>32}:"
                f" {idle['ticks_per_20s']:5.1f} ticks/20 s,"
                f" on-CPU {idle['cpu_pct']:.2f} % of one core",
                flush=True,
            )
    return 0


def ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vfs", type=ints, default=[8, 64, 192], help="batch: VF counts")
    parser.add_argument("--per-vf-vfs", type=ints, default=[8, 64, 192])
    parser.add_argument("--cycles-small", type=int, default=5, help="expiries, fewest VFs")
    parser.add_argument("--cycles", type=int, default=3, help="expiries, other VF counts")
    parser.add_argument("--polling-ms", type=int, default=1000)
    parser.add_argument("--sample-ms", type=float, default=10.0)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU sample, events")
    parser.add_argument(
        "--idle-sweep",
        type=ints,
        default=[],
        help="only idle CPU, LACP up, for these fast-check periods (ms; 0: off), then exit",
    )
    parser.add_argument("--fast-check-ms", type=float, default=None, help="for the relay")
    parser.add_argument(
        "--outdir", type=Path, default=Path(os.environ.get("PFRELAY_KERNEL_OUTDIR", "/tmp"))
    )
    args = parser.parse_args(argv)
    if os.environ.get("PFRELAY_KERNEL_GUEST") != "1":
        print("reaction.py runs inside the kernel VM: bench/kernel/run.sh (as root)")
        return 2
    started = time.monotonic()
    if args.fast_check_ms is not None:
        RELAY_ARGS.extend(["--fast-check-ms", str(args.fast_check_ms)])
    if args.idle_sweep:
        return idle_sweep(args.idle_sweep, args.polling_ms, args.idle_s, args.outdir)
    groups = plan(
        args.vfs, args.per_vf_vfs, max(args.cycles_small, 1), max(args.cycles, 1), args.idle_s
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="pfrelay-bench-") as tmp:
        for g in groups:
            t_start = time.monotonic()
            try:
                run_group(g, Path(tmp), args.outdir, args.polling_ms, args.sample_ms / 1000)
            except (AssertionError, klab.KernelCmdError, OSError) as exc:
                g.error = f"{type(exc).__name__}: {exc}"
            reacts = [f"{r['react_ms']:.0f}" for r in g.results if "react_ms" in r]
            print(
                f"{g.name}: {time.monotonic() - t_start:5.1f} s (setup {g.setup_s:.1f} s);"
                f" last VF set logged (ms) {' '.join(reacts) or '-'}"
                + (f"; ERROR {g.error}" if g.error else ""),
                flush=True,
            )
    sample_ms = statistics.median([g.sample_ms for g in groups if g.sample_ms] or [args.sample_ms])
    report(groups, sample_ms, args.polling_ms)
    for g in groups:
        if g.hold_defaulted:
            print_timeline(g, g.cycles - 1, "Expiry and DEFAULTED, events")
    for g in groups:
        if not g.warmup and g.recover and g.vfs == min(args.vfs):
            print_timeline(g, 0, f"Expiry and recovery, {g.wake}")
    with open(args.outdir / "reaction.tsv", "w") as handle:
        keys = sorted({k for g in groups for r in g.results for k in r})
        handle.write("\t".join(["group", "cycle", "apply", "wake", "vfs", *keys]) + "\n")
        for g in groups:
            for i, r in enumerate(g.results, 1):
                head = [g.name, str(i), g.apply, g.wake, str(g.vfs)]
                handle.write("\t".join(head + [str(r.get(k, "")) for k in keys]) + "\n")
    errors = [g.name for g in groups if g.error]
    print()
    print(
        f"{len(groups)} groups, {sum(len(g.results) for g in groups)} expiries in"
        f" {time.monotonic() - started:.0f} s; errors: {errors or 'none'}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
