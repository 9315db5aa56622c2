"""Chaos soak: a seeded random walk over real faults, with the relay's invariants checked
against the real VF states (issue 12). Runs INSIDE the kernel VM, as root::

    make soak SEED=7 STEPS=150          # on the host: boots the VM, runs this, prints the summary
    python tests/kernel/soak.py --seed 7 --steps 150    # inside the VM

One topology (``klab.standard_topology``: pf0 with 8 VFs in bond0, 802.3ad fast, its peer in
netns sw) and one ``pfrelay run`` (200 ms polling, ``unmonitored_hold_ms`` short) live through the
whole walk. Each step does one fault, picked by ``random.Random(seed)`` from the soak's own model
only (never from what the kernel or the relay did), so the same seed replays the same steps:

    lacpdu drop/pass on the peer port, peer carrier down/up, peer LAG delete/re-create, bond0
    admin down/up, pf0 released (nomaster)/re-enslaved, bond0 mode 802.3ad <-> active-backup,
    sriov_numvfs re-created (2/4/8; the VFs then set to auto as a real driver resets them),
    an operator's ``ip link set pf0 vf N state enable|disable|auto``, SIGKILL + restart of the
    relay, SIGHUP, the relay's state directory (a small tmpfs) filled up / freed.

After each step the soak polls the kernel (sysfs: is pf0 the only slave of an 802.3ad bond that
is up, and is its LACP up) and the VF states (``ip -j link show``) until the VFs are where the
invariants want them and stay there, or a deadline passes:

- I1 the relay never changes a VF it does not own: a VF the operator set to enable/disable keeps
  that state (until the operator sets it to auto, or the VFs are re-created);
- I2 while pf0 is monitored and its LACP is down, no VF that is not the operator's stays auto
  beyond one cycle + MARGIN (+ the negotiation grace of a bond that just became monitorable);
- I3 once LACP is up (restore delay 0), or pf0 has been unmonitorable for longer than the hold,
  no VF the relay disabled stays disabled beyond MARGIN;
- I4 the ledger names only VFs that are disable and the relay's (checked when the state
  directory is not full, MARGIN after the last change);
- I5 the relay never dies (apart from the walk's own SIGKILLs).

"The relay's VFs" are the VFs in ``disable`` that the operator did not set: nothing else in the
VM changes VF states. An operator ``disable`` on a VF that is already ``disable`` cannot be told
apart by the relay, so it does not take the VF from the relay. SIGKILL is not drawn while the
state directory is full (the relay's in-memory ownership would be lost by design, issue 12 #6).

Prints every step, then faults by kind, violations, and time to converge (p50/p99/max): from
the end of a step's action to the first VF read of the final stretch where everything held.
A violation prints the seed and the step list. Exit code: 0 clean, 1 violations, 2 usage,
3 the topology or the relay could not be set up.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import errno
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import klab
import krelay

PF, BOND, PEER, PEER_BOND = "pf0", "bond0", "swp0", "swbond"
POLL_MS = 200
HOLD_MS = 3000  #: ``unmonitored_hold_ms`` the soak configures (issue 12 finding 1)
GRACE_S = 10.0  #: relay.NEGOTIATION_GRACE_S: LACP down of a bond that just became monitored
STALE_S = 1.5  #: decision.STALE_AFTER_BOND_DOWN_S: "up" after a link loss may be held this long
UP_STABLE_S = 0.5  #: kernel "up" counts once it held this long (the stale 63/63 lasts ~60 ms)
MIN_STABLE_S = 0.8  #: a step settles once everything held this long (>= 2 VF reads)
STEP_CAP_S = 60.0  #: a step that has not settled after this long is left (and said so)
STARTUP_S = 90.0  #: a relay start under TCG: 2-7 s, once over 30 s (tests/kernel/test_relay.py)
NUMVFS = (2, 4, 8)
STATE_DIR = Path("/run/pfsoak")
STATE_FS_SIZE = "256k"

#: fault kind -> weight. Toggles (drop/pass, down/up, ...) pick their direction from the model.
WEIGHTS = {
    "lacpdu": 10,
    "peer_carrier": 8,
    "peer_lag": 5,
    "bond_admin": 7,
    "pf_master": 6,
    "bond_mode": 4,
    "numvfs": 4,
    "operator_vf": 18,
    "relay_kill": 2,  #: a pfrelay start under TCG takes 2-50 s (Python over 9p)
    "relay_hup": 4,
    "run_full": 4,
}


@dataclasses.dataclass
class Model:
    """The soak's idea of what it did (never read back from the kernel: it drives the walk)."""

    lacpdus_blocked: bool = False
    peer_port_up: bool = True
    peer_lag: bool = True
    bond_up: bool = True
    pf_enslaved: bool = True
    mode: str = "802.3ad"
    numvfs: int = 8
    run_full: bool = False
    pins: Dict[int, str] = dataclasses.field(default_factory=dict)  #: operator's VF states


@dataclasses.dataclass(frozen=True)
class Truth:
    """What the kernel says about pf0 now: monitorable, and LACP up or down."""

    monitored: bool
    up: bool
    why: str

    def label(self) -> str:
        return "up" if self.monitored and self.up else ("down" if self.monitored else "unmon")


@dataclasses.dataclass
class Violation:
    step: int
    invariant: str
    detail: str


def read_truth() -> Truth:
    """An independent reading of the relay's rule: single slave of an up 802.3ad bond, LACP."""
    net = klab.SYS_NET
    try:
        master = os.path.basename(os.readlink(net / PF / "master"))
    except OSError:
        return Truth(False, False, "no master")
    mode = (klab.read_text(net / master / "bonding" / "mode") or "").split(" ")[0]
    if mode != "802.3ad":
        return Truth(False, False, f"mode {mode or '?'}")
    slaves = (klab.read_text(net / master / "bonding" / "slaves") or "").split()
    if slaves != [PF]:
        return Truth(False, False, f"slaves {slaves}")
    flags = klab.read_text(net / master / "flags") or "0x0"
    operstate = klab.read_text(net / master / "operstate")
    if not int(flags, 16) & 0x1:
        return Truth(True, False, "bond admin down")
    if operstate != "up":
        return Truth(True, False, f"bond operstate {operstate}")
    state = klab.slave_state(PF)
    # the README's rule: in service (klab's lacp_up) and neither side DEFAULTED or EXPIRED
    stale = (state.actor or 0) & 0xC0 or (state.partner or 0) & 0xC0
    return Truth(True, state.lacp_up and not stale, str(state))


class Clocks:
    """When the kernel truth last changed, as the relay's timers see it (approximately)."""

    def __init__(self, now: float, truth: Truth) -> None:
        self.truth = truth
        self.raw_since = now  #: the current Truth (label) held since
        self.up_raw_since: Optional[float] = now if truth.label() == "up" else None
        self.grace_until = 0.0
        self.relay_ready = now
        self.changes = 0

    def see(self, now: float, truth: Truth) -> None:
        if truth.label() == self.truth.label():
            self.truth = truth
            return
        if truth.monitored and not self.truth.monitored:
            self.grace_until = now + GRACE_S  # a bond that appears at run time
        self.changes += 1
        self.truth = truth
        self.raw_since = now
        self.up_raw_since = now if truth.label() == "up" else None


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.model = Model()
        self.out = Path(args.out)
        self.work = Path("/tmp/pfsoak")
        self.steps: List[str] = []
        self.violations: List[Violation] = []
        self.reported: Set[Tuple[str, int, int]] = set()
        self.converge: List[float] = []
        self.unsettled: List[int] = []
        self.faults: collections.Counter[str] = collections.Counter()
        self.relay: Optional[krelay.Relay] = None
        self.topo: Optional[klab.Topology] = None
        self.margin = max(6.0, 8 * klab.ip_cost_s())
        self.hold_known = False
        self.last_vf_change = 0.0
        self.last_states: Dict[int, str] = {}
        self.vf_since: Dict[int, float] = {}  #: when each VF was first seen in its state
        self.run_freed_at = 0.0
        self.clocks: Optional[Clocks] = None
        self.step_no = 0

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(STATE_DIR):
            klab.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    # 0700 as systemd's RuntimeDirectory: root refuses one others may write to
                    "-o",
                    f"size={STATE_FS_SIZE},mode=0700",
                    "pfsoak",
                    str(STATE_DIR),
                ]
            )
        STATE_DIR.chmod(0o700)
        self.topo = klab.Topology()
        klab.standard_topology(self.topo, num_vfs=self.model.numvfs)
        self.config = self.work / "config.toml"
        self.hold_known = self._write_config(probe=True)
        self.relay = krelay.Relay(
            self.work,
            STATE_DIR / "state.json",
            interfaces=(PF,),
            polling_interval=POLL_MS,
            extra_args=("--config", str(self.config)),
        )
        self._start_relay()
        self.relay.wait_for_msg("pf is ready", timeout=STARTUP_S, interface=PF)
        now = time.monotonic()
        self.clocks = Clocks(now, read_truth())
        self.clocks.relay_ready = now
        self.last_states = klab.vf_states(PF)

    def _write_config(self, probe: bool = False) -> bool:
        base = (
            f'interfaces = ["{PF}"]\npolling_interval_ms = {POLL_MS}\nrestore_delay_ms = 0\n'
            f'state_file = "{STATE_DIR / "state.json"}"\nlog_format = "json"\n'
        )
        with_hold = base + f"unmonitored_hold_ms = {HOLD_MS}\n"
        if not probe:
            self.config.write_text(with_hold if self.hold_known else base)
            return self.hold_known
        self.config.write_text(with_hold)
        proc = subprocess.run(
            [krelay.PFRELAY, "config", "show", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if proc.returncode == 0:
            return True
        self.config.write_text(base)
        print(
            f"soak: this pfrelay does not know unmonitored_hold_ms ({proc.stderr.strip()[:200]});"
            f" I3 still expects the relay's VFs back {HOLD_MS} ms after pf0 became unmonitorable"
            " (issue 12 finding 1), so expect I3 violations from this build",
            flush=True,
        )
        return False

    def _start_relay(self) -> None:
        assert self.relay is not None
        self.relay.start()
        self.relay.wait_for_msg("Starting application", timeout=STARTUP_S)
        if self.clocks is not None:
            self.clocks.relay_ready = time.monotonic()

    # ------------------------------------------------------------------ the walk
    def pick(self) -> str:
        kinds = [k for k in WEIGHTS if not (k == "relay_kill" and self.model.run_full)]
        kind = self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        m = self.model
        if kind == "lacpdu":
            return "lacpdu pass" if m.lacpdus_blocked else "lacpdu drop"
        if kind == "peer_carrier":
            return "peer carrier up" if not m.peer_port_up else "peer carrier down"
        if kind == "peer_lag":
            return "peer lag re-create" if not m.peer_lag else "peer lag delete"
        if kind == "bond_admin":
            return "bond admin up" if not m.bond_up else "bond admin down"
        if kind == "pf_master":
            return "pf re-enslave" if not m.pf_enslaved else "pf nomaster"
        if kind == "bond_mode":
            return "bond mode " + ("active-backup" if m.mode == "802.3ad" else "802.3ad")
        if kind == "numvfs":
            return f"numvfs {self.rng.choice(NUMVFS)}"
        if kind == "operator_vf":
            vf = self.rng.randrange(m.numvfs)
            return f"operator vf {vf} {self.rng.choice(('enable', 'disable', 'auto'))}"
        if kind == "relay_kill":
            return "relay sigkill"
        if kind == "relay_hup":
            return "relay sighup"
        return "run free" if m.run_full else "run fill"

    def act(self, action: str) -> None:
        """Do one step on the kernel (or the relay) and update the model."""
        m, topo = self.model, self.topo
        assert topo is not None and self.relay is not None
        words = action.split()
        if action == "lacpdu drop":
            topo.block_lacpdus(PEER)
            m.lacpdus_blocked = True
        elif action == "lacpdu pass":
            topo.unblock_lacpdus(PEER)
            m.lacpdus_blocked = False
        elif action.startswith("peer carrier"):
            m.peer_port_up = words[-1] == "up"
            topo.peer_port(m.peer_port_up, PEER)
        elif action == "peer lag delete":
            topo.delete_peer_bond(PEER_BOND)
            m.peer_lag, m.peer_port_up = False, False  # deleting the bond downs its port
        elif action == "peer lag re-create":
            topo.add_peer_bond(PEER_BOND, [PEER])  # enslaving opens the port again
            m.peer_lag, m.peer_port_up = True, True
        elif action.startswith("bond admin"):
            m.bond_up = words[-1] == "up"
            klab.ip("link", "set", "dev", BOND, "up" if m.bond_up else "down")
        elif action == "pf nomaster":
            klab.ip("link", "set", "dev", PF, "nomaster")
            m.pf_enslaved = False
        elif action == "pf re-enslave":
            klab.ip_batch([f"link set dev {PF} down", f"link set dev {PF} master {BOND}"])
            m.pf_enslaved = True
        elif action.startswith("bond mode"):
            # the mode can change only while the bond is down and has no slaves
            lines = [f"link set dev {PF} nomaster"] if m.pf_enslaved else []
            lines += [
                f"link set dev {BOND} down",
                f"link set dev {BOND} type bond mode {words[-1]}",
            ]
            if m.pf_enslaved:
                lines += [f"link set dev {PF} down", f"link set dev {PF} master {BOND}"]
            if m.bond_up:
                lines.append(f"link set dev {BOND} up")
            klab.ip_batch(lines)
            m.mode = words[-1]
        elif action.startswith("numvfs"):
            count = int(words[-1])
            port = topo.ports[PF]
            klab.nsim_set_vfs(port.nsim_id, count)
            # netdevsim keeps a VF's link state across re-creation; a real driver resets it
            klab.set_vf_states(PF, {vf: "auto" for vf in range(count)})
            m.numvfs, m.pins = count, {}
        elif action.startswith("operator vf"):
            vf, state = int(words[2]), words[3]
            before = self.last_states.get(vf)  # the last read (the step before settled)
            klab.set_vf_state(PF, vf, state)
            if state == "auto":
                m.pins.pop(vf, None)
            elif state == "disable" and before == "disable" and vf not in m.pins:
                pass  # the relay's VF: the relay cannot see this "disable" (see the docstring)
            else:
                m.pins[vf] = state
        elif action == "relay sigkill":
            self.relay.kill()
            self._start_relay()
        elif action == "relay sighup":
            self._write_config()
            assert self.relay.proc is not None
            self.relay.proc.send_signal(signal.SIGHUP)
        elif action == "run fill":
            fill(STATE_DIR / "filler")
            m.run_full = True
        elif action == "run free":
            (STATE_DIR / "filler").unlink()
            m.run_full = False
            self.run_freed_at = time.monotonic()
        else:  # pragma: no cover - pick() makes only the above
            raise ValueError(action)

    # ------------------------------------------------------------------ the invariants
    def violate(self, invariant: str, vf: int, detail: str) -> None:
        assert self.clocks is not None
        key = (invariant, vf, self.clocks.changes)
        if key in self.reported:
            return
        self.reported.add(key)
        v = Violation(self.step_no, invariant, detail)
        self.violations.append(v)
        print(f"  VIOLATION {invariant} at step {self.step_no}: {detail}", flush=True)

    def check(self, now: float, states: Dict[int, str]) -> List[str]:
        """Check I1-I5 now; return what is still pending (not yet due)."""
        clocks, m = self.clocks, self.model
        assert clocks is not None and self.relay is not None
        pending: List[str] = []
        truth = clocks.truth
        ready = clocks.relay_ready
        if not self.relay.running():
            rc = self.relay.proc.returncode if self.relay.proc else None
            self.violate(
                "I5", -1, f"pfrelay exited rc={rc}; stderr: {self.relay.stderr()[-600:]!r}"
            )
            self._start_relay()
            return ["relay restarted"]
        for vf, pinned in m.pins.items():
            if states.get(vf) != pinned:
                self.violate(
                    "I1", vf, f"operator set vf {vf} {pinned}; it is {states.get(vf)} ({truth.why})"
                )
        free = {vf: st for vf, st in states.items() if vf not in m.pins}
        since = self.vf_since
        if truth.label() == "down":
            base = max(clocks.raw_since, ready, clocks.grace_until)
            autos = sorted(vf for vf, st in free.items() if st == "auto")
            late = [vf for vf in autos if now > max(base, since.get(vf, 0.0)) + self.margin]
            for vf in late:
                self.violate(
                    "I2",
                    vf,
                    f"vf {vf} still auto {now - clocks.raw_since:.1f}s after LACP down and"
                    f" {now - since.get(vf, 0.0):.1f}s after it became auto ({truth.why})",
                )
            if len(late) < len(autos):
                pending.append(f"I2 vfs {sorted(set(autos) - set(late))} auto")
        elif truth.label() == "up":
            assert clocks.up_raw_since is not None
            disabled = sorted(vf for vf, st in free.items() if st == "disable")
            if now - clocks.up_raw_since < UP_STABLE_S:
                if disabled:
                    pending.append("kernel up not yet stable")
            else:
                base = max(clocks.up_raw_since, ready) + STALE_S
                late = [vf for vf in disabled if now > max(base, since.get(vf, 0.0)) + self.margin]
                for vf in late:
                    self.violate(
                        "I3",
                        vf,
                        f"vf {vf} still disable {now - clocks.up_raw_since:.1f}s after LACP up",
                    )
                if len(late) < len(disabled):
                    pending.append(f"I3 vfs {sorted(set(disabled) - set(late))} disable (up)")
        else:
            due = max(clocks.raw_since, ready) + HOLD_MS / 1000 + self.margin
            disabled = sorted(vf for vf, st in free.items() if st == "disable")
            if disabled and now > due:
                for vf in disabled:
                    self.violate(
                        "I3",
                        vf,
                        f"vf {vf} still disable {now - clocks.raw_since:.1f}s after pf0 became"
                        f" unmonitorable ({truth.why}; hold {HOLD_MS} ms)",
                    )
            elif disabled:
                pending.append(f"hold: vfs {disabled} disable (unmonitorable)")
        pending += self.check_ledger(now, states)
        return pending

    def check_ledger(self, now: float, states: Dict[int, str]) -> List[str]:
        assert self.clocks is not None and self.relay is not None
        if self.model.run_full:
            return []
        try:
            doc = json.loads(self.relay.state_file.read_text())
            named = list(doc.get("pfs", {}).get(PF, {}).get("disabled", []))
        except FileNotFoundError:
            named = []
        except (OSError, ValueError) as exc:
            named, bad = [], str(exc)
            self.violate("I4", -1, f"ledger unreadable: {bad}")
        wrong = sorted(vf for vf in named if states.get(vf) != "disable" or vf in self.model.pins)
        if not wrong:
            return []
        due = (
            max(
                self.last_vf_change,
                self.clocks.raw_since,
                self.clocks.relay_ready,
                self.run_freed_at,
                # A bond that just became monitorable is down only once its negotiation grace
                # is over: the write-ahead ledger then names VFs still auto for one ip call.
                self.clocks.grace_until,
            )
            + self.margin
        )
        if now <= due:
            return [f"I4 ledger names {wrong}"]
        for vf in wrong:
            what = "the operator's" if vf in self.model.pins else f"{states.get(vf)}"
            self.violate("I4", vf, f"ledger names vf {vf}, which is {what}")
        return []

    def expectation(self, action: str) -> Optional[Tuple[str, float]]:
        """The kernel verdict a fault should lead to, and how long to wait for it.

        A step does not settle before the kernel has reacted (or that wait is over), so that
        its time to converge includes the relay's reaction to it. Recoveries wait less than they
        may take (after DEFAULTED the Linux peer resends only at the slow rate: ~25 s): a
        recovery that comes later lands in a later step, whose checks cover it.
        """
        m = self.model
        healthy = (
            m.bond_up and m.pf_enslaved and m.mode == "802.3ad" and m.peer_lag and m.peer_port_up
        )
        if action in ("lacpdu drop", "peer carrier down", "peer lag delete", "bond admin down"):
            return ("down", 10.0) if m.pf_enslaved and m.mode == "802.3ad" else None
        if action in ("pf nomaster", "bond mode active-backup"):
            return "unmon", 5.0
        if (
            healthy
            and not m.lacpdus_blocked
            and action
            in (
                "lacpdu pass",
                "peer carrier up",
                "peer lag re-create",
                "bond admin up",
                "pf re-enslave",
                "bond mode 802.3ad",
            )
        ):
            return "up", 8.0
        return None

    def settle(
        self, t_act: float, expect: Optional[Tuple[str, float]] = None
    ) -> Tuple[Optional[float], str]:
        """Poll until the invariants hold for MIN_STABLE_S; return (converge time, summary).

        The converge time runs from the end of the action, or from the kernel's reaction to
        it when that came later (the relay cannot act before the kernel has).
        """
        assert self.clocks is not None
        ok_since: Optional[float] = None
        summary = ""
        changes = self.clocks.changes
        start = t_act
        while True:
            self.clocks.see(time.monotonic(), read_truth())
            try:
                states = klab.vf_states(PF)
            except klab.KernelCmdError as exc:
                states, summary = {}, f"ip failed: {exc}"
            now = time.monotonic()
            self.clocks.see(now, read_truth())
            if states != self.last_states:
                for vf, st in states.items():
                    if self.last_states.get(vf) != st:
                        self.vf_since[vf] = now
                self.last_vf_change, self.last_states = now, states
            pending = self.check(now, states)
            if self.clocks.changes != changes:
                changes, start = self.clocks.changes, self.clocks.raw_since
            if expect and self.clocks.truth.label() != expect[0] and now - t_act < expect[1]:
                pending.append(f"waiting for the kernel: {expect[0]}")
            if pending:
                ok_since = None
                summary = "; ".join(pending)
            else:
                ok_since = now if ok_since is None else ok_since
                if now - ok_since >= MIN_STABLE_S:
                    return max(0.0, ok_since - start), self._describe(states)
            if now - t_act > STEP_CAP_S:
                return None, summary

    def _describe(self, states: Dict[int, str]) -> str:
        assert self.clocks is not None
        vfs = "".join(
            {"auto": "a", "disable": "d", "enable": "e"}.get(s, "?")
            for _, s in sorted(states.items())
        )
        return (
            f"{self.clocks.truth.label():6} vfs {vfs} pins {dict(sorted(self.model.pins.items()))}"
        )

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        started = time.monotonic()
        print(
            f"soak: seed {self.args.seed}, {self.args.steps} steps; margin {self.margin:.1f}s"
            f" (ip costs {klab.ip_cost_s():.2f}s), hold {HOLD_MS} ms"
            f" ({'configured' if self.hold_known else 'NOT known to this pfrelay'}),"
            f" poll {POLL_MS} ms",
            flush=True,
        )
        for step_no in range(1, self.args.steps + 1):
            if self.args.minutes and time.monotonic() - started > self.args.minutes * 60:
                print(f"soak: time budget of {self.args.minutes} min used up; stopping", flush=True)
                break
            self.step_no = step_no
            action = self.pick()
            self.steps.append(action)
            self.faults[
                " ".join(action.split()[:2]) if action.startswith("operator") else action
            ] += 1
            t0 = time.monotonic()
            try:
                self.act(action)
            except (klab.KernelCmdError, AssertionError, OSError) as exc:
                print(f"step {self.step_no}: {action}: the fault itself failed: {exc}", flush=True)
            expect = self.expectation(action)
            t_act = time.monotonic()
            seen = len(self.violations)
            try:
                converged, summary = self.settle(t_act, expect)
            except AssertionError as exc:  # the relay could not be started again
                self.violate("I5", -2, f"cannot go on: {exc}")
                break
            if converged is not None and len(self.violations) > seen:
                # "converged" only because the violations were reported: not a convergence
                print(
                    f"step {self.step_no:4}/{self.args.steps} {action:26} act {t_act - t0:5.2f}s"
                    f" VIOLATED ({len(self.violations) - seen})  {summary}",
                    flush=True,
                )
                continue
            if converged is None:
                self.unsettled.append(self.step_no)
                print(
                    f"step {self.step_no:4}/{self.args.steps} {action:26} NOT SETTLED after"
                    f" {STEP_CAP_S:.0f}s: {summary}",
                    flush=True,
                )
            else:
                self.converge.append(converged)
                print(
                    f"step {self.step_no:4}/{self.args.steps} {action:26} act {t_act - t0:5.2f}s"
                    f" converged {converged:6.2f}s  {summary}",
                    flush=True,
                )
        return self.report(time.monotonic() - started)

    def report(self, elapsed: float) -> int:
        print(
            f"\n=== soak summary: seed {self.args.seed}, {len(self.steps)} of {self.args.steps}"
            f" steps in {elapsed:.0f}s"
        )
        print("faults by kind:")
        for kind, count in sorted(self.faults.items()):
            print(f"  {kind:26} {count}")
        if self.converge:
            print(
                f"time to converge (s): p50 {percentile(self.converge, 50):.2f}"
                f"  p99 {percentile(self.converge, 99):.2f}  max {max(self.converge):.2f}"
                f"  (n={len(self.converge)})"
            )
        if self.unsettled:
            print(f"steps that did not settle within {STEP_CAP_S:.0f}s: {self.unsettled}")
        by_inv = collections.Counter(v.invariant for v in self.violations)
        print(f"violations: {len(self.violations)} {dict(sorted(by_inv.items()))}")
        if self.violations:
            steps = sorted({v.step for v in self.violations})
            print(f"steps with violations (not in the converge figures): {steps}")
        assert self.relay is not None
        print(f"relay starts: {self.relay.starts}")
        if not self.violations:
            return 0
        for v in self.violations[:50]:
            print(f"  step {v.step} {v.invariant}: {v.detail}")
        last = max(v.step for v in self.violations)
        print(
            f"replay: make soak SEED={self.args.seed} STEPS={last}"
            f" (first violation at step {self.violations[0].step}); the steps:"
        )
        for i, action in enumerate(self.steps[:last], 1):
            print(f"  {i:4} {action}")
        return 1

    def teardown(self) -> None:
        if self.relay is not None:
            try:
                self.relay.stop()
            except AssertionError as exc:
                print(f"soak: {exc}", flush=True)
            for path in list(self.work.glob("relay-*")):
                shutil.copy(path, self.out / path.name)
            if self.relay.state_file.exists():
                shutil.copy(self.relay.state_file, self.out / "state.json")
        filler = STATE_DIR / "filler"
        if filler.exists():
            filler.unlink()
        if self.topo is not None:
            self.topo.cleanup()


def fill(path: Path) -> None:
    """Write zeros into ``path`` until the file system is full (ENOSPC)."""
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument(
        "--out",
        default=os.path.join(os.environ.get("PFRELAY_KERNEL_OUTDIR") or "/tmp", "soak"),
        help="where the relay's logs and the final ledger are kept",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=0,
        help="stop drawing steps after this long (0: no limit); the summary says how many ran",
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if os.environ.get("PFRELAY_KERNEL_GUEST") != "1":
        print("soak.py runs inside the kernel VM: make soak SEED=N STEPS=M", file=sys.stderr)
        return 2
    soak = Soak(args)
    try:
        try:
            soak.setup()
        except (klab.KernelCmdError, AssertionError, OSError) as exc:
            print(f"soak: set-up failed: {exc}", file=sys.stderr)
            return 3
        return soak.run()
    finally:
        soak.teardown()


if __name__ == "__main__":
    sys.exit(main())
