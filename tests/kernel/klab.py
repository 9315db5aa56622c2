"""Kernel topology helpers for the end-to-end tests; they run INSIDE the VM, as root.

The topology of one test::

     init netns                                    netns "sw" (plays the switch)
     bond0 (802.3ad, lacp_rate fast, miimon 100)    swbond (802.3ad, lacp_rate fast)
       └─ pf0 = netdevsim<A> port  ◄─ link_device ─► swp0 = netdevsim<B> port
            sriov_numvfs = N                         tc clsact: protocol 0x8809 drops

Facts this relies on (seen on Debian's 6.12 kernel with the patched netdevsim):
- netdevsim allows 4 VFs until debugfs ``max_vfs`` is raised, and only while
  ``sriov_numvfs`` is 0; it has no ``virtfn*`` links and no ``sriov_totalvfs``.
- On carrier loss the slave's port states stay 63/63 and only ``mii_status`` goes
  down, so "LACP up" here also requires ``mii_status == up``.
- Under TCG each ``ip``/``tc`` process costs 150-300 ms: batch where possible.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TypeVar

T = TypeVar("T")

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
NSIM_BUS = Path("/sys/bus/netdevsim")
NSIM_DBG = Path("/sys/kernel/debug/netdevsim")
SYS_NET = Path("/sys/class/net")

#: 802.3ad port state bits that make a port part of a working aggregate.
AGG_SYN_COL_DIS = 0x04 | 0x08 | 0x10 | 0x20
PEER_NS = "sw"
BOND_OPTS = ("mode", "802.3ad", "lacp_rate", "fast", "miimon", "100")

_next_nsim_id = [1]


class KernelCmdError(RuntimeError):
    """A command that sets up the topology failed."""


def run(
    argv: Sequence[str], stdin: Optional[str] = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        detail = f"\n--- stdin ---\n{stdin}" if stdin else ""
        raise KernelCmdError(
            f"{' '.join(argv)} -> rc={proc.returncode}: {proc.stderr.strip()}{detail}"
        )
    return proc


def ip(*args: str, ns: Optional[str] = None, check: bool = True) -> str:
    argv = [IP] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check).stdout


def ip_batch(lines: Iterable[str], ns: Optional[str] = None) -> None:
    """Several ``ip`` commands in one process (one exec costs ~0.2 s under TCG)."""
    text = "".join(line + "\n" for line in lines)
    if text:
        run([IP] + (["-n", ns] if ns else []) + ["-batch", "-"], stdin=text)


def tc_batch(lines: Iterable[str], ns: Optional[str] = None) -> None:
    text = "".join(line + "\n" for line in lines)
    if text:
        run([TC] + (["-n", ns] if ns else []) + ["-batch", "-"], stdin=text)


_IP_COST: List[float] = []


def ip_cost_s() -> float:
    """What one ``ip -j link show`` costs in this guest (median of 5, measured once).

    Under TCG it was 0.14-0.36 s on one day and ~0.7 s on another on the same kind of machine;
    the reaction margins are multiples of it instead of a fixed figure that held on one day.
    """
    if not _IP_COST:
        samples = []
        for _ in range(5):
            t0 = time.monotonic()
            subprocess.run(
                ["ip", "-j", "link", "show", "dev", "lo"], check=False, capture_output=True
            )
            samples.append(time.monotonic() - t0)
        _IP_COST.append(sorted(samples)[2])
    return _IP_COST[0]


def read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write_text(path: Path, value: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise KernelCmdError(f"echo {value!r} > {path}: {exc.strerror}") from exc


def wait_for(
    what: str,
    probe: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    describe: Optional[Callable[[], object]] = None,
) -> T:
    """Call ``probe`` until it returns something truthy; raise AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"; last: {describe()}" if describe else f"; last: {value!r}"
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def wall_to_iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()


# --- bonding state --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SlaveState:
    """What sysfs says about one bond slave (read in the init netns)."""

    mii: Optional[str]
    actor: Optional[int]
    partner: Optional[int]
    carrier: Optional[str]

    @property
    def lacp_up(self) -> bool:
        return (
            self.mii == "up"
            and self.actor is not None
            and self.partner is not None
            and self.actor & AGG_SYN_COL_DIS == AGG_SYN_COL_DIS
            and self.partner & AGG_SYN_COL_DIS == AGG_SYN_COL_DIS
        )

    def __str__(self) -> str:
        return (
            f"mii={self.mii} actor={self.actor} partner={self.partner} carrier={self.carrier}"
            f" ({'up' if self.lacp_up else 'down'})"
        )


def _int_or_none(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None else None
    except ValueError:  # "N/A" outside 802.3ad or without an aggregator
        return None


def slave_state(ifname: str) -> SlaveState:
    base = SYS_NET / ifname / "bonding_slave"
    return SlaveState(
        mii=read_text(base / "mii_status"),
        actor=_int_or_none(read_text(base / "ad_actor_oper_port_state")),
        partner=_int_or_none(read_text(base / "ad_partner_oper_port_state")),
        carrier=read_text(SYS_NET / ifname / "carrier"),
    )


def wait_lacp(
    ifname: str, up: bool, timeout: float, interval: float = 0.02, stable: Optional[float] = None
) -> float:
    """Poll sysfs every ``interval`` s until the slave's LACP is up (or down).

    Returns the monotonic time of the first sample that showed it. For "up" the state must
    hold for ``stable`` s (default 0.5): when the carrier comes back the port states still
    read the stale 63/63 with mii up for ~60 ms before the port re-initialises.
    """
    hold = (0.5 if up else 0.0) if stable is None else stable
    deadline = time.monotonic() + timeout
    since: Optional[float] = None
    while True:
        now = time.monotonic()
        last = slave_state(ifname)
        if last.lacp_up == up:
            since = now if since is None else since
            if now - since >= hold:
                return since
        else:
            since = None
        if now >= deadline:
            raise AssertionError(
                f"{ifname}: LACP not {'up' if up else 'down'} after {timeout:.0f}s ({last})"
            )
        time.sleep(interval)


def wait_actor_bits(ifname: str, bits: int, timeout: float) -> float:
    """Wait until the slave's actor oper port state has ``bits`` (0x40 DEFAULTED, 0x80 EXPIRED)."""
    wait_for(
        f"{ifname} actor state has {bits:#x}",
        lambda: (slave_state(ifname).actor or 0) & bits == bits,
        timeout=timeout,
        interval=0.02,
        describe=lambda: slave_state(ifname),
    )
    return time.monotonic()


# --- VFs --------------------------------------------------------------------------------------


def vf_states(pf: str = "pf0") -> Dict[int, str]:
    """``{vf: "auto"|"enable"|"disable"}`` from ``ip -j link show dev PF``."""
    data = json.loads(ip("-j", "link", "show", "dev", pf))
    return {int(v["vf"]): v["link_state"] for v in data[0].get("vfinfo_list", [])}


def set_vf_states(pf: str, states: Mapping[int, str]) -> None:
    ip_batch(f"link set dev {pf} vf {vf} state {st}" for vf, st in sorted(states.items()))


def set_vf_state(pf: str, vf: int, state: str) -> None:
    ip("link", "set", "dev", pf, "vf", str(vf), "state", state)


# --- netdevsim --------------------------------------------------------------------------------


def nsim_new(ports: int = 1) -> tuple[int, List[str]]:
    """Create a netdevsim device with ``ports`` ports; return its id and port netdevs."""
    nid = _next_nsim_id[0]
    _next_nsim_id[0] += 1
    write_text(NSIM_BUS / "new_device", f"{nid} {ports}")
    netdir = NSIM_BUS / "devices" / f"netdevsim{nid}" / "net"

    def names() -> List[str]:
        try:
            found = [p.name for p in netdir.iterdir()]
        except OSError:
            return []
        return found if len(found) >= ports else []

    found = wait_for(f"netdevsim{nid} ports", names, timeout=10)
    # port order = phys_port_name (p0, p1, ...)
    found.sort(key=lambda n: read_text(SYS_NET / n / "phys_port_name") or n)
    return nid, found


def nsim_set_vfs(nid: int, count: int) -> None:
    dev = NSIM_BUS / "devices" / f"netdevsim{nid}"
    write_text(dev / "sriov_numvfs", "0")
    if count > 4:  # netdevsim's default limit; raised only while numvfs is 0
        write_text(NSIM_DBG / f"netdevsim{nid}" / "max_vfs", str(max(count, 64)))
    if count:
        write_text(dev / "sriov_numvfs", str(count))


def ifindex(ifname: str, ns: Optional[str] = None) -> int:
    return int(json.loads(ip("-j", "link", "show", "dev", ifname, ns=ns))[0]["ifindex"])


def nsim_link(a: str, b: str, ns_b: str, index_b: Optional[int] = None) -> None:
    """Connect port ``a`` (init netns) back to back with port ``b`` in netns ``ns_b``.

    ``/sys/bus/netdevsim/link_device`` takes "<netns fd>:<ifindex> <netns fd>:<ifindex>",
    the fds being this process's (kernel >= 6.9).
    """
    fa = os.open("/proc/self/ns/net", os.O_RDONLY)
    fb = os.open(f"/run/netns/{ns_b}", os.O_RDONLY)
    try:
        xa = int(read_text(SYS_NET / a / "ifindex") or "0")
        xb = index_b if index_b is not None else ifindex(b, ns=ns_b)
        write_text(NSIM_BUS / "link_device", f"{fa}:{xa} {fb}:{xb}")
    finally:
        os.close(fa)
        os.close(fb)


def reset_kernel_state() -> None:
    """Remove every bond, netdevsim device and netns: each test starts from nothing."""
    masters = (read_text(SYS_NET / "bonding_masters") or "").split()
    if masters:
        ip_batch(f"link del dev {b}" for b in masters)
    devices = NSIM_BUS / "devices"
    for dev in sorted(devices.glob("netdevsim*")) if devices.exists() else []:
        write_text(NSIM_BUS / "del_device", dev.name[len("netdevsim") :])
    if any(Path("/run/netns").glob("*")):
        run([IP, "-all", "netns", "delete"], check=False)


# --- the topology -----------------------------------------------------------------------------


@dataclasses.dataclass
class Port:
    name: str  #: in the init netns (pf0, pf1, ...)
    peer: str  #: in netns sw (swp0, swp1, ...)
    nsim_id: int
    peer_nsim_id: int
    num_vfs: int


class Topology:
    """One test's PFs, bonds and switch; every timing-sensitive call records when it acted."""

    def __init__(self) -> None:
        self.ports: Dict[str, Port] = {}
        self.bonds: Dict[str, List[str]] = {}
        self.peer_bonds: Dict[str, List[str]] = {}
        self.blocked: Dict[str, List[str]] = {}
        reset_kernel_state()
        ip("netns", "add", PEER_NS)

    # building blocks
    def add_port(self, name: str = "pf0", peer: str = "swp0", num_vfs: int = 8) -> Port:
        """A netdevsim PF with ``num_vfs`` VFs, linked to its own peer port in netns sw."""
        nid, (dev,) = nsim_new(1)
        pid, (pdev,) = nsim_new(1)
        nsim_set_vfs(nid, num_vfs)
        ip_batch([f"link set dev {dev} name {name}", f"link set dev {pdev} netns {PEER_NS}"])
        ip_batch([f"link set dev {pdev} name {peer}", f"link set dev {peer} up"], ns=PEER_NS)
        nsim_link(name, peer, PEER_NS)
        tc_batch([f"qdisc add dev {peer} clsact"], ns=PEER_NS)
        port = Port(name, peer, nid, pid, num_vfs)
        self.ports[name] = port
        return port

    def add_bond(self, name: str, slaves: Sequence[str], opts: Sequence[str] = BOND_OPTS) -> None:
        ip_batch(_bond_lines(name, slaves, opts))
        self.bonds[name] = list(slaves)

    def add_peer_bond(
        self, name: str, slaves: Sequence[str], opts: Sequence[str] = BOND_OPTS
    ) -> None:
        ip_batch(_bond_lines(name, slaves, opts), ns=PEER_NS)
        self.peer_bonds[name] = list(slaves)

    def wait_lacp_up(self, ifname: str = "pf0", timeout: float = 30) -> float:
        return wait_lacp(ifname, True, timeout)

    # failures of the "switch"
    def block_lacpdus(self, peer: str = "swp0", directions: Sequence[str] = ("egress", "ingress")):
        """Drop LACPDUs (ethertype 0x8809) on the peer port; carrier stays up.

        Returns the monotonic time right after the filters are in place.
        """
        tc_batch(
            [
                f"filter add dev {peer} {d} pref 1 protocol 0x8809 matchall action drop"
                for d in directions
            ],
            ns=PEER_NS,
        )
        self.blocked[peer] = list(directions)
        return time.monotonic()

    def unblock_lacpdus(self, peer: str = "swp0") -> float:
        directions = self.blocked.pop(peer, ["egress", "ingress"])
        tc_batch([f"filter del dev {peer} {d} pref 1" for d in directions], ns=PEER_NS)
        return time.monotonic()

    def peer_port(self, up: bool, peer: str = "swp0") -> float:
        """Take the peer port down (netdevsim drops the carrier on both ends) or up.

        Returns the monotonic time just before ``ip`` ran (the kernel acts during the call).
        """
        t0 = time.monotonic()
        ip("link", "set", "dev", peer, "up" if up else "down", ns=PEER_NS)
        return t0

    def delete_peer_bond(self, name: str = "swbond") -> float:
        """Delete the switch's LAG; returns the monotonic time just before ``ip`` ran."""
        t0 = time.monotonic()
        ip("link", "del", "dev", name, ns=PEER_NS)
        self.peer_bonds.pop(name, None)
        return t0

    def cleanup(self) -> None:
        reset_kernel_state()


def _bond_lines(name: str, slaves: Sequence[str], opts: Sequence[str]) -> List[str]:
    lines = [f"link add {name} type bond {' '.join(opts)}"]
    for slave in slaves:
        lines += [f"link set dev {slave} down", f"link set dev {slave} master {name}"]
    lines.append(f"link set dev {name} up")
    return lines


def standard_topology(topo: Topology, num_vfs: int = 8, wait: bool = True) -> Port:
    """pf0 with ``num_vfs`` VFs in bond0, swp0 in swbond, LACP up (fast rate) unless told not."""
    port = topo.add_port("pf0", "swp0", num_vfs)
    topo.add_bond("bond0", ["pf0"])
    topo.add_peer_bond("swbond", ["swp0"])
    if wait:
        topo.wait_lacp_up("pf0")
    return port


def wait_vf_states(expected: Mapping[int, str], timeout: float, pf: str = "pf0") -> float:
    """Read ``ip -j link show`` back to back until the listed VFs have these states.

    Returns the monotonic time of the read that showed it (an upper bound: one read costs
    ~0.2 s under TCG).
    """
    deadline = time.monotonic() + timeout
    while True:
        states = vf_states(pf)
        now = time.monotonic()
        if all(states.get(vf) == st for vf, st in expected.items()):
            return now
        if now >= deadline:
            wrong = {vf: states.get(vf) for vf, st in expected.items() if states.get(vf) != st}
            raise AssertionError(
                f"{pf}: VF link states not as expected after {timeout:.1f}s;"
                f" differing (vf: actual): {wrong}; expected {dict(expected)}"
            )


class VfWatch:
    """Reads the PF's VF states back to back in a thread (each read ~0.2 s under TCG).

    Lets a test wait for the kernel on one clock (sysfs every 20 ms) while knowing when the
    VFs changed, and whether they ever showed a state they should not have.
    """

    def __init__(self, pf: str = "pf0") -> None:
        self.pf = pf
        self.samples: List[tuple[float, Dict[int, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: Optional[BaseException] = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                states = vf_states(self.pf)
                self.samples.append((time.monotonic(), states))
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def __enter__(self) -> VfWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def first(self, expected: Mapping[int, str], after: float = 0.0) -> Optional[float]:
        """Completion time of the first read at or after ``after`` showing ``expected``."""
        for t, states in list(self.samples):
            if t >= after and all(states.get(vf) == st for vf, st in expected.items()):
                return t
        return None

    def wait(self, expected: Mapping[int, str], timeout: float, after: float = 0.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            found = self.first(expected, after)
            if found is not None:
                return found
            if self.error is not None:
                raise AssertionError(f"reading VF states failed: {self.error}")
            if time.monotonic() >= deadline:
                last = self.samples[-1][1] if self.samples else None
                raise AssertionError(
                    f"{self.pf}: VF states not {dict(expected)} within {timeout:.1f}s; last: {last}"
                )
            time.sleep(0.02)

    def seen(self, vf: int, state: str, start: float, end: float) -> List[float]:
        """Times of reads in [start, end] where ``vf`` had ``state``."""
        return [t for t, st in list(self.samples) if start <= t <= end and st.get(vf) == state]


def mono_to_wall(mono: float) -> float:
    """A time.monotonic() value as a Unix timestamp (to compare with log times)."""
    return time.time() - (time.monotonic() - mono)
