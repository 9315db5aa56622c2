"""VF ownership under faults, hunted by a model-based test (hypothesis stateful testing).

A model host (two PFs with VFs, bonds from the real 6.12 captures, an in-process ``ip`` that
can fail, time out after applying, lie, or be killed mid-change) and a real ``Relay`` are driven
through random sequences of LACP down/up, carrier loss, bonds deleted, re-created, changed to
active-backup, given a second slave or set administratively down, PFs renamed or removed, VFs re-created (also with the
same count), operator VF changes, ledger faults (unwritable, corrupt), relay restarts and kills,
with slow and fast polling. After every step the relay runs one cycle and the invariants are
checked against the model's truth:

- I1: the relay never changes a VF it does not own (checked at every ``ip`` call).
- I2: while a monitored PF's LACP is down, no VF stays ``auto`` after a cycle (except during
  the negotiation grace of a new bond, or while ``ip`` misbehaves and its back-off runs).
- I3: once LACP is up for the restore delay, or the PF has been unmonitorable past the hold, no
  VF the relay disabled stays disabled (same exceptions for ``ip`` trouble).
- I4: the ledger names only VFs that are ``disable`` and the relay's.
- I5: the relay never dies (a cycle raises nothing but the simulated kill).

Known limits the model states rather than hides: when the relay is restarted while its ledger
cannot be written (it says "ledger not persisted" meanwhile), the file is older than what it
knew: VFs it disabled since are lost to it (they become the operator's; I1 protects them), and
VFs it gave back since and someone disabled again are claimed again (``stale_claims``); so is a
VF of its own set to auto and back to disable while ``ip`` cannot show the VFs. VFs of
a ledger that is corrupt at start are lost to it too (set aside, logged with a
``restore --ledger`` hint).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from fakehost import FakeHost, load_fixture
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pfrelay import ledger as ledgers
from pfrelay.config import Config
from pfrelay.decision import STALE_AFTER_BOND_DOWN_S
from pfrelay.iproute import ChangeResult, IpError, VfChange
from pfrelay.log import EventLog
from pfrelay.relay import MAX_BACKOFF_S, NEGOTIATION_GRACE_S, Relay
from pfrelay.sriov import LinkState

UP = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up")
DOWN = load_fixture("proc-net-bonding-bond0-partner-lost-peer-stops-sending")
CARRIER = load_fixture("proc-net-bonding-bond0-after-block-carrier-loss-step2-+0.50s")
NEGOTIATING = re.sub(r"(    port state: )63", r"\g<1>71", UP, count=1).replace(
    "    port state: 63", "    port state: 0"
)
ACTIVE_BACKUP = load_fixture("proc-net-bonding-bondab-active-backup")
TWO_SLAVES = load_fixture("proc-net-bonding-bond2-802.3ad-two-slaves-lacp-up")

#: A RAM-backed directory where there is one: the model creates and deletes many small files.
_FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
CONFIGURED = ("pf0", "pf1")
HOLD_S = 5.0
VFS = 4


class Killed(BaseException):
    """The relay process was SIGKILLed (raised through the relay, as nothing catches it)."""


class ModelPf:
    """The model's truth about one PF (keyed by its ifindex: names change)."""

    def __init__(self, name: str, ifindex: int) -> None:
        self.name = name
        self.ifindex = ifindex
        self.vfs: Dict[int, str] = {n: "auto" for n in range(VFS)}
        self.bond: Optional[str] = None
        self.bond_ifindex = 0
        self.mode = "802.3ad"
        self.second_slave = False
        self.lacp = "up"  # up, down, carrier, negotiating
        self.admin_down = False  # ip link set <bond> down: the slave's states freeze
        #: When the bond (re)appeared or the PF became monitored: the negotiation grace.
        self.bond_since = 0.0
        self.virtfn = 0  # generation of the VF set (re-creation)

    def monitored(self) -> bool:
        return (
            self.name in CONFIGURED
            and self.bond is not None
            and self.mode == "802.3ad"
            and not self.second_slave
        )

    def lacp_down(self) -> bool:
        return self.admin_down or self.lacp in ("down", "carrier", "negotiating")


class OwnershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="pfrelay-model-", dir=_FAST_TMP))
        self.host = FakeHost(self.root / "host")
        self.state_file = self.root / "run" / "state.json"
        self.now = 1000.0
        self.next_index = 20
        self.pfs: Dict[int, ModelPf] = {}
        self.owned: Set[Tuple[int, int]] = set()  #: (PF ifindex, VF) the relay disabled
        self.trouble: Dict[Tuple[int, int], float] = {}  #: last time a change of it misbehaved
        self.show_trouble: Dict[int, float] = {}  #: last time ip could not show the PF
        self.ip_mode = "ok"
        self.kill_next: Optional[str] = None
        self.violations: List[str] = []
        self.restarted_at = self.now
        self.condition_since: Dict[int, Tuple[str, float]] = {}
        self.ledger_blocked = False
        self.hidden: Set[Tuple[int, int]] = set()
        self.stale_claims: Set[Tuple[int, int]] = set()
        self.blind: Set[Tuple[int, int]] = set()
        self.learned_at: Dict[Tuple[int, int], float] = {}
        self.restore_delay_s = 0.0
        self.stream = io.StringIO()
        self.relay: Relay

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ the model's ip
    def by_name(self, name: str) -> Optional[ModelPf]:
        for pf in self.pfs.values():
            if pf.name == name:
                return pf
        return None

    def link_show(self, name: str) -> Tuple[str, str]:
        pf = self.by_name(name)
        if self.ip_mode == "show-fails" and pf is not None:
            self.show_trouble[pf.ifindex] = self.now
            raise IpError(f"ip -j link show dev {name}: Message truncated")
        if pf is None:
            raise IpError(f'ip -j link show dev {name}: Device "{name}" does not exist.')
        vfs = [{"vf": n, "link_state": s} for n, s in sorted(pf.vfs.items())]
        return json.dumps([{"ifindex": pf.ifindex, "ifname": name, "vfinfo_list": vfs}]), ""

    def set_vf_states(self, changes: Sequence[VfChange]) -> ChangeResult:
        mode, kill, self.kill_next = self.ip_mode, self.kill_next, None
        applied: List[VfChange] = []
        failed: List[Tuple[VfChange, str]] = []
        for change in changes:
            pf = self.by_name(change.pf)
            if pf is None or change.vf not in pf.vfs:
                failed.append((change, "RTNETLINK answers: No such device"))
                continue
            key = (pf.ifindex, change.vf)
            state = pf.vfs[change.vf]
            # I1: only an auto VF may be disabled; only a VF the relay disabled may go back.
            if change.state is LinkState.DISABLE and state != "auto":
                self.violations.append(f"I1: disabled {key} which was {state}")
            if change.state is LinkState.AUTO and key not in self.owned | self.stale_claims:
                self.violations.append(f"I1: set {key} to auto, not the relay's ({state})")
            if mode != "ok":
                self.trouble[key] = self.now
            if kill == "before":
                raise Killed
            if mode in ("fail", "lie"):
                if mode == "fail":
                    failed.append((change, "RTNETLINK answers: Operation not permitted"))
                else:
                    applied.append(change)  # exit 0, nothing changed
                continue
            self.apply(pf, change.vf, change.state.value)
            if mode == "agent-resets":
                self.apply(pf, change.vf, "auto", by_relay=False)
            if mode == "timeout-after-apply":
                failed.append((change, "ip -force -batch -: no answer after 5 s (killed)"))
            else:
                applied.append(change)
        if kill == "after":
            raise Killed
        return ChangeResult(tuple(applied), tuple(failed))

    def apply(self, pf: ModelPf, vf: int, state: str, *, by_relay: bool = True) -> None:
        key = (pf.ifindex, vf)
        pf.vfs[vf] = state
        if state != "disable":
            self.stale_claims.discard(key)  # seen in another state: not claimed any more
        if by_relay and state == "disable":
            self.owned.add(key)
        else:
            self.owned.discard(key)

    # ------------------------------------------------------------------- the host
    def write_pf(self, pf: ModelPf) -> None:
        """Write the PF's bond as the kernel shows it now."""
        if pf.bond is None:
            return
        if pf.mode != "802.3ad":
            text = ACTIVE_BACKUP.replace("lagp0", pf.name).replace("lagp1", f"ab{pf.ifindex}")
        elif pf.second_slave:
            text = TWO_SLAVES.replace("lagp0", pf.name).replace("lagp1", f"sl{pf.ifindex}")
        else:
            text = {"up": UP, "down": DOWN, "carrier": CARRIER, "negotiating": NEGOTIATING}[
                pf.lacp
            ].replace("pf0", pf.name)
        self.host.set_proc(pf.bond, text)
        net = self.host.net(pf.bond)
        (net / "operstate").write_text("down\n" if pf.admin_down else "up\n")
        (net / "flags").write_text("0x1402\n" if pf.admin_down else "0x1403\n")
        bonding = net / "bonding"
        (bonding / "mode").write_text(
            "802.3ad 4\n" if pf.mode == "802.3ad" else "active-backup 1\n"
        )

    def add_pf(self, name: str) -> ModelPf:
        pf = ModelPf(name, self.next_index)
        self.next_index += 1
        self.pfs[pf.ifindex] = pf
        self.host.add_pf(name, ifindex=pf.ifindex, numvfs=VFS)
        self.write_virtfn(pf)
        self.create_bond(pf, lacp="up")
        return pf

    def write_virtfn(self, pf: ModelPf) -> None:
        device = self.host.net(pf.name) / "device"
        pf.virtfn += 1
        new = device / f".virtfn-{pf.virtfn}"
        new.mkdir()
        link = device / "virtfn0"
        if pf.vfs:  # created beside the old link, renamed over it: a new inode for sure
            os.symlink(new.name, device / "virtfn0.new")
            os.replace(device / "virtfn0.new", link)
        elif link.is_symlink():
            link.unlink()

    def create_bond(self, pf: ModelPf, lacp: str) -> None:
        pf.bond = f"bond{pf.ifindex}"
        pf.bond_ifindex = self.next_index
        self.next_index += 1
        pf.mode, pf.second_slave, pf.lacp, pf.admin_down = "802.3ad", False, lacp, False
        pf.bond_since = self.now
        self.host.add_bond(pf.bond, [pf.name], None, ifindex=pf.bond_ifindex)
        self.write_pf(pf)

    def delete_bond(self, pf: ModelPf) -> None:
        if pf.bond is not None:
            self.host.remove_bond(pf.bond)
        pf.bond = None

    # ------------------------------------------------------------------ the relay
    def start(self) -> None:
        stored = self.root / "run.away/state.json" if self.ledger_blocked else self.state_file
        try:
            on_disk: Optional[ledgers.Ledger] = ledgers.load(stored)
        except ledgers.LedgerError:
            on_disk = None  # corrupt: set aside, nothing is the relay's any more
        # What the relay disabled but could not record is lost to it (documented limit):
        # from now on those VFs are the operator's, and I1 protects them.
        recorded = {
            (entry.ifindex, vf)
            for entry in (on_disk.pfs.values() if on_disk is not None else ())
            if self.same_vfs(entry)
            for vf in entry.disabled
        }
        if self.ledger_blocked or (hasattr(self, "relay") and self.relay.ledger_unsaved):
            # The file is older than what the relay knew: VFs it has given back since (and
            # that someone disabled again) are claimed again by the restarted relay. The
            # other side of "ledger not persisted" (documented): allowed, not hidden.
            self.stale_claims |= {
                (i, vf)
                for i, vf in recorded - self.owned
                if i in self.pfs and vf in self.pfs[i].vfs
            }
        self.owned &= recorded
        # While the ledger cannot be read the relay does not know these yet: it reads the
        # file again every cycle and merges it as soon as it can.
        self.hidden = set(self.owned) if self.ledger_blocked else set()
        config = Config(
            interfaces=CONFIGURED,
            procfs=str(self.host.procfs),
            sysfs=str(self.host.sysfs),
            state_file=str(self.state_file),
            restore_delay_ms=int(self.restore_delay_s * 1000),
            unmonitored_hold_ms=int(HOLD_S * 1000),
        )
        self.stream = io.StringIO()
        self.relay = Relay(
            config, self, EventLog("json", "debug", self.stream), clock=lambda: self.now
        )
        self.restarted_at = self.now

    def same_vfs(self, entry: ledgers.PfEntry) -> bool:
        """Whether a ledger entry names the VFs there now (not an earlier set of VFs)."""
        pf = self.pfs.get(entry.ifindex or -1)
        if pf is None:
            return False
        link = self.host.net(pf.name) / "device/virtfn0"
        vfs_id = os.lstat(link).st_ino if link.is_symlink() else None
        return entry.numvfs in (None, len(pf.vfs)) and entry.vfs_id in (None, vfs_id)

    def disk_ledger(self) -> Optional[ledgers.Ledger]:
        """The ledger on disk (None: unreadable or corrupt)."""
        try:
            return ledgers.load(self.state_file)
        except ledgers.LedgerError:
            return None

    def advance(self, dt: float) -> None:
        """Move the clock as the daemon lives through it: it reads a PF again at the moment
        ``Relay.recheck_at`` asks for (after a link loss), not only at the next poll."""
        target = self.now + dt
        while True:
            at = self.relay.recheck_at()
            if at is None or at > target:
                break
            self.now = max(self.now, at)
            self.cycle()
        self.now = target

    def cycle(self, dt: float = 0.0, *, restart: bool = False) -> None:
        """One relay cycle ``dt`` from now (rules move the clock first, then change the host)."""
        STEPS[0] += 1
        self.now += dt
        if restart:
            self.start()
        try:
            self.relay.cycle()
        except Killed:
            self.start()
            self.relay.cycle()  # the restarted relay's first cycle, same moment
        self.track_conditions()

    def track_conditions(self) -> None:
        for pf in self.pfs.values():
            if not pf.monitored():
                condition = "unmonitored"
            elif pf.lacp_down():
                condition = "down"
            else:
                condition = "up"
            before = self.condition_since.get(pf.ifindex)
            if before is None or before[0] != condition:
                self.condition_since[pf.ifindex] = (condition, self.now)
                if before is not None and before[0] == "unmonitored":
                    pf.bond_since = self.now  # became monitored at run time: the same grace

    # -------------------------------------------------------------------- rules
    @initialize(
        delay=st.sampled_from([0.0, 2.0]),
        lacp=st.sampled_from(["up", "down"]),
        preloaded=st.booleans(),
    )
    def setup(self, delay: float, lacp: str, preloaded: bool) -> None:
        self.restore_delay_s = delay
        for name in CONFIGURED:
            pf = self.add_pf(name)
            pf.lacp = lacp
            self.write_pf(pf)
        if preloaded:  # a ledger from an earlier run of this boot: VF 1 of pf0 disabled
            pf0 = self.by_name("pf0")
            assert pf0 is not None
            pf0.vfs[1] = "disable"
            self.owned.add((pf0.ifindex, 1))
            entry = ledgers.PfEntry(frozenset({1}), pf0.ifindex, VFS)
            ledgers.save(self.state_file, ledgers.Ledger({"pf0": entry}))
        self.start()
        self.cycle(0.0)

    pf_index = st.integers(0, 1)
    dts = st.sampled_from([0.1, 0.3, 1.0, 2.0, 5.0])

    def pick(self, i: int) -> ModelPf:
        return sorted(self.pfs.values(), key=lambda p: p.ifindex)[i % len(self.pfs)]

    @rule(dt=dts)
    def poll(self, dt: float) -> None:
        self.advance(dt)
        self.cycle()

    @rule(i=pf_index, lacp=st.sampled_from(["up", "down", "carrier"]), dt=dts)
    def lacp_changes(self, i: int, lacp: str, dt: float) -> None:
        self.advance(dt)
        pf = self.pick(i)
        if pf.bond is not None and pf.mode == "802.3ad" and not pf.second_slave:
            pf.lacp = lacp
            self.write_pf(pf)
        self.cycle()

    @rule(i=pf_index, dt=dts)
    def bond_deleted(self, i: int, dt: float) -> None:
        self.advance(dt)
        self.delete_bond(self.pick(i))
        self.cycle()

    @rule(i=pf_index, lacp=st.sampled_from(["up", "negotiating"]), dt=dts)
    def bond_created(self, i: int, lacp: str, dt: float) -> None:
        """(Re-)created between two polls: a new bond ifindex, LACP still negotiating."""
        self.advance(dt)
        pf = self.pick(i)
        self.delete_bond(pf)
        self.create_bond(pf, lacp)
        self.cycle()

    @rule(i=pf_index, up=st.booleans(), dt=dts)
    def bond_admin(self, i: int, up: bool, dt: float) -> None:
        """``ip link set bond down``/``up``: /proc keeps the frozen 63/63; only the bond's
        operstate and IFF_UP tell (seen on 6.12)."""
        self.advance(dt)
        pf = self.pick(i)
        if pf.bond is not None:
            pf.admin_down = not up
            self.write_pf(pf)
        self.cycle()

    @rule(i=pf_index, mode=st.sampled_from(["802.3ad", "active-backup"]), dt=dts)
    def bond_mode(self, i: int, mode: str, dt: float) -> None:
        self.advance(dt)
        pf = self.pick(i)
        if pf.bond is not None:
            pf.mode = mode
            self.write_pf(pf)
        self.cycle()

    @rule(i=pf_index, second=st.booleans(), dt=dts)
    def second_slave(self, i: int, second: bool, dt: float) -> None:
        self.advance(dt)
        pf = self.pick(i)
        if pf.bond is not None:
            pf.second_slave = second
            self.write_pf(pf)
        self.cycle()

    @rule(i=pf_index, dt=dts)
    def pf_renamed(self, i: int, dt: float) -> None:
        """Renamed in place (same ifindex): pf0 <-> pf0r."""
        self.advance(dt)
        pf = self.pick(i)
        new = pf.name[:-1] if pf.name.endswith("r") else pf.name + "r"
        if self.by_name(new) is not None:
            return
        os.rename(self.host.net(pf.name), self.host.net(new))
        if pf.bond is not None:
            (self.host.net(pf.bond) / "bonding/slaves").write_text(f"{new}\n")
        old, pf.name = pf.name, new
        if pf.bond is not None:
            self.write_pf(pf)
        assert old != new
        self.cycle()

    @rule(i=pf_index, count=st.sampled_from([0, 2, VFS]), dt=dts)
    def vfs_recreated(self, i: int, count: int, dt: float) -> None:
        """sriov_numvfs N -> 0 -> count: new VFs (a real driver starts them at auto)."""
        self.advance(dt)
        pf = self.pick(i)
        pf.vfs = {n: "auto" for n in range(count)}
        self.owned = {k for k in self.owned if k[0] != pf.ifindex}
        self.host.set_numvfs(pf.name, count)
        self.write_virtfn(pf)
        self.cycle()

    @rule(
        i=pf_index, vf=st.integers(0, VFS - 1), state=st.sampled_from(["auto", "enable", "disable"])
    )
    def operator_sets_vf(self, i: int, vf: int, state: str) -> None:
        pf = self.pick(i)
        key = (pf.ifindex, vf)
        # While ip cannot show the VFs the relay is blind: a VF of its own that someone sets
        # to auto and back to disable meanwhile looks untouched to it (as disable -> disable
        # does at any time), so it may still claim it.
        blind = self.ip_mode == "show-fails" and (key in self.owned or key in self.blind)
        if blind:
            self.blind.add(key)
        if vf in pf.vfs and not (state == "disable" and pf.vfs[vf] == "disable"):
            self.apply(pf, vf, state, by_relay=False)
            if blind and state == "disable":
                self.stale_claims.add(key)
        self.cycle(0.1)

    @rule(i=pf_index, dt=dts)
    def pf_removed_and_back(self, i: int, dt: float) -> None:
        """Driver unbound: the PF and its VFs vanish; a poll later it is back, re-created."""
        self.advance(dt)
        pf = self.pick(i)
        self.delete_bond(pf)
        self.host.remove_pf(pf.name)
        del self.pfs[pf.ifindex]
        self.owned = {k for k in self.owned if k[0] != pf.ifindex}
        self.cycle()
        self.advance(dt)
        self.add_pf(pf.name)
        self.cycle()

    @rule(
        mode=st.sampled_from(
            ["ok", "ok", "fail", "lie", "timeout-after-apply", "agent-resets", "show-fails"]
        )
    )
    def ip_behaves(self, mode: str) -> None:
        self.ip_mode = mode
        self.cycle(0.3)
        if mode != "show-fails":
            self.blind.clear()  # the relay has seen the VFs again

    @rule(when=st.sampled_from(["before", "after"]), i=pf_index, dt=dts)
    def relay_killed(self, when: str, i: int, dt: float) -> None:
        """SIGKILL in the middle of an ip change (after the write-ahead ledger, before or after
        ip applied it), restarted at once (systemd)."""
        self.advance(dt)
        self.kill_next = when
        pf = self.pick(i)
        if pf.bond is not None and pf.mode == "802.3ad" and not pf.second_slave:
            pf.lacp = "down" if pf.lacp == "up" else "up"  # so that there is a change to kill
            self.write_pf(pf)
        self.cycle()
        self.kill_next = None

    @rule(dt=dts)
    def relay_restarted(self, dt: float) -> None:
        self.advance(dt)
        self.cycle(restart=True)

    @precondition(lambda self: not self.ledger_blocked)
    @rule(dt=dts)
    def run_becomes_unwritable(self, dt: float) -> None:
        self.advance(dt)
        run = self.state_file.parent
        run.mkdir(exist_ok=True)
        os.rename(run, self.root / "run.away")
        run.write_text("not a directory\n")
        self.ledger_blocked = True
        self.cycle()

    @precondition(lambda self: self.ledger_blocked)
    @rule(dt=dts)
    def run_becomes_writable(self, dt: float) -> None:
        self.advance(dt)
        run = self.state_file.parent
        run.unlink()
        os.rename(self.root / "run.away", run)
        self.ledger_blocked = False
        self.cycle()
        for key in self.hidden:  # read and merged by that cycle: the hold counts from now
            self.learned_at[key] = self.now
        self.hidden.clear()

    @precondition(lambda self: not self.ledger_blocked)
    @rule(dt=dts)
    def ledger_corrupt_at_restart(self, dt: float) -> None:
        self.advance(dt)
        self.state_file.parent.mkdir(exist_ok=True)
        text = self.state_file.read_text() if self.state_file.exists() else "{}"
        self.state_file.write_text(text[: len(text) // 2])
        self.cycle(restart=True)

    # --------------------------------------------------------------- invariants
    def quiet(self, key: Tuple[int, int]) -> bool:
        """No ip trouble for this VF long enough for the back-off to have run out."""
        pf_ifindex = key[0]
        last = max(self.trouble.get(key, -1e9), self.show_trouble.get(pf_ifindex, -1e9))
        return self.ip_mode == "ok" and self.now - last > MAX_BACKOFF_S + 5.0

    @invariant()
    def i1_never_touches_what_is_not_its_own(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def i2_down_means_no_auto_vf(self) -> None:
        for pf in self.pfs.values():
            condition, since = self.condition_since.get(pf.ifindex, ("", 0.0))
            if condition != "down" or self.now - pf.bond_since < NEGOTIATION_GRACE_S + 0.01:
                continue
            for vf, state in pf.vfs.items():
                if state == "auto" and self.quiet((pf.ifindex, vf)):
                    raise AssertionError(f"I2: {pf.name} vf {vf} auto while down since {since}")

    @invariant()
    def i3_nothing_stranded(self) -> None:
        for pf in self.pfs.values():
            condition, since = self.condition_since.get(pf.ifindex, ("", 0.0))
            since = max(since, self.restarted_at)
            if condition == "up":
                # the longest stale-port window: after a bond was set down and up again
                due = self.restore_delay_s + STALE_AFTER_BOND_DOWN_S
            elif condition == "unmonitored":
                due = HOLD_S
            else:
                continue
            if self.now - since < due:
                continue
            for vf, state in pf.vfs.items():
                key = (pf.ifindex, vf)
                if self.now - max(since, self.learned_at.get(key, since)) < due:
                    continue
                hidden = key in self.hidden and self.ledger_blocked
                if key in self.owned and state == "disable" and self.quiet(key) and not hidden:
                    raise AssertionError(
                        f"I3: {pf.name} vf {vf} still disabled by the relay, {condition} "
                        f"since {since} (now {self.now})"
                    )

    @invariant()
    def i4_ledger_names_only_disabled_vfs_of_the_relay(self) -> None:
        for name, entry in self.relay.ledger.pfs.items():
            pf = self.by_name(name)
            if pf is None or self.show_trouble.get(pf.ifindex, -1e9) >= self.now - 1e-9:
                continue  # gone (kept until it returns), or not readable this cycle
            for vf in entry.disabled:
                key = (pf.ifindex, vf)
                assert pf.vfs.get(vf) == "disable", f"I4: ledger names {name} vf {vf}: {pf.vfs}"
                assert key in self.owned | self.stale_claims, f"I4: {name} vf {vf} not its own"
        if not self.ledger_blocked and not self.relay.ledger_unsaved:
            on_disk = self.disk_ledger()
            assert on_disk is not None and on_disk.pfs == self.relay.ledger.pfs, "I4: disk"


#: Steps (rules) run in this process, to prove the run was as long as it says.
STEPS = [0]
#: ``make test`` runs at least this many steps (the issue's bar); PFRELAY_MODEL_STEPS raises it.
MIN_STEPS = int(os.environ.get("PFRELAY_MODEL_STEPS", "5000"))


def test_ownership_model() -> None:
    STEPS[0] = 0
    examples = 0
    while STEPS[0] < MIN_STEPS:  # hypothesis ends runs early at will: top up until the bar
        run_state_machine_as_test(
            OwnershipMachine,
            settings=settings(
                max_examples=100,
                stateful_step_count=50,
                deadline=None,
                report_multiple_bugs=False,
                database=None if examples else settings.default.database,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
        examples += 100
    print(f"ownership model: {STEPS[0]} steps (relay cycles) in {examples} sequences, 0 violations")
