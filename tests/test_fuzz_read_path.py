"""Property tests of the whole read path: bytes in the kernel files -> ``read_pf`` -> ``assess``
-> ``Relay.cycle``. Whatever the files hold, nothing raises and no VF goes the wrong way.

The inputs start from the real captures, broken the ways a short read, a race or a future kernel
would break them (lines dropped, duplicated, moved, cut mid-line, numbers replaced, junk and
non-UTF-8 bytes inserted), or are random bytes outright; sysfs files and the ``master`` link get
random contents too. ``tests/test_fuzz_parser.py`` fuzzes the parser alone; these go through
the files, the bounded reads and the relay. Every property runs a fixed number of examples
(``EXAMPLES``), with no example database, so CI does the same work on every run.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from fakehost import FIXTURES, KERNEL, RESHAPES, FakeHost, load_fixture, reshape, unprivileged
from fakeip import FakeIp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pfrelay import host as hostmod
from pfrelay.bonding import Bond, BondingParseError, parse_proc_bonding
from pfrelay.config import Config
from pfrelay.decision import assess
from pfrelay.host import READ_LIMIT, PfFacts, read_pf
from pfrelay.lacp import IN_SERVICE, OUT_OF_SERVICE, Lacp
from pfrelay.log import EventLog
from pfrelay.relay import Relay

EXAMPLES = 300  # per property: ~1.5 s each here, so the whole file stays near 6 s
#: Link targets are tried on the real file system, where each costs a symlink(2).
LINK_EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CAPTURES = [
    load_fixture(str(p.relative_to(FIXTURES))).encode()
    for p in [
        *sorted(FIXTURES.glob(f"proc-net-bonding-*.{KERNEL}.txt")),
        *sorted(FIXTURES.glob("timelines/*/*.snap-*.txt")),
        *sorted(FIXTURES.glob("synthetic/*.txt")),
    ]
]
#: Captures of pf0 alone in bond0 (the bond the fake host has), for the relay property.
PF0_CAPTURES = [c for c in CAPTURES if b"Slave Interface: pf0\n" in c and c.count(b"Slave I") == 1]

NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(lambda n: str(n).encode()),
    st.sampled_from(
        [b"", b"-1", b"256", b"65536", b"0x3f", b"63.0", b"6 3", b"N/A", b"nan", b"\xd9\xa3"]
    ),
)
SYSFS_FILES = {
    "bonding": ["mode", "slaves", "lacp_rate", "mii_status", "ad_aggregator"],
    "bonding_slave": [
        "mii_status",
        "ad_actor_oper_port_state",
        "ad_partner_oper_port_state",
        "ad_aggregator_id",
    ],
    "": ["ifindex", "device/sriov_numvfs", "device/sriov_totalvfs"],
}
SYSFS_VALUES = st.one_of(
    st.binary(max_size=40),
    NUMBERS.map(lambda b: b + b"\n"),
    st.sampled_from(
        [
            b"802.3ad 4\n",
            b"active-backup 1\n",
            b"fast 1\n",
            b"slow 0\n",
            b"up\n",
            b"down\n",
            b"N/A\n",
            b"63\n",
            b"79\n",
            b"0\n",
            b"pf0\n",
            b"pf0 pf1\n",
            b"\n",
        ]
    ),
)


@st.composite
def broken_capture(draw: st.DrawFn, texts: List[bytes] = CAPTURES) -> bytes:
    """A real capture (as bytes), broken by up to 10 edits."""
    lines = draw(st.sampled_from(texts)).splitlines(keepends=True)
    if draw(st.booleans()):
        lines = unprivileged(b"".join(lines).decode()).encode().splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        if not lines:
            break
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from([*RESHAPES, "number", "junk", "bytes"]))
        if op in RESHAPES:
            lines = reshape(draw, lines, op, i)
        elif op == "number":
            lines[i] = re.sub(rb"\d+", draw(NUMBERS).replace(b"\\", b""), lines[i], count=1)
        elif op == "junk":
            lines.insert(i, draw(st.text(max_size=60)).encode("utf-8", "surrogatepass") + b"\n")
        else:  # bytes
            lines.insert(i, draw(st.binary(max_size=60)))
    return b"".join(lines)


PROC_BYTES = st.one_of(broken_capture(), st.binary(max_size=2000), st.none())


# ------------------------------------------------------------------------------ the host


@pytest.fixture
def host(fake_host: FakeHost) -> FakeHost:
    """One fake host (pyfakefs: in memory) for all examples of a property; each example
    rewrites the files it uses."""
    return fake_host


def write(path: Path, data: Optional[bytes]) -> None:
    if data is None:
        if path.exists():
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


BASELINE = {
    **{("bonding", name): b"up\n" for name in SYSFS_FILES["bonding"]},
    ("bonding", "mode"): b"802.3ad 4\n",
    ("bonding", "slaves"): b"pf0\n",
    ("bonding", "lacp_rate"): b"fast 1\n",
    ("bonding", "ad_aggregator"): b"1\n",
    ("bonding_slave", "mii_status"): b"up\n",
    ("bonding_slave", "ad_actor_oper_port_state"): b"63\n",
    ("bonding_slave", "ad_partner_oper_port_state"): b"63\n",
    ("bonding_slave", "ad_aggregator_id"): b"1\n",
    ("", "ifindex"): b"2\n",
    ("", "device/sriov_numvfs"): b"8\n",
    ("", "device/sriov_totalvfs"): None,
}


def sysfs_path(host: FakeHost, directory: str, name: str) -> Path:
    if directory == "bonding":
        return host.net("bond0") / "bonding" / name
    if directory == "bonding_slave":
        return host.net("pf0") / "bonding_slave" / name
    return host.net("pf0") / name


@contextlib.contextmanager
def files(
    host: FakeHost,
    proc: Optional[bytes],
    changes: Optional[Dict[Tuple[str, str], Optional[bytes]]] = None,
) -> Iterator[None]:
    """pf0 alone in 802.3ad bond0 with healthy sysfs files, ``proc`` as /proc/net/bonding/bond0
    (None: absent) and ``changes`` to the sysfs files; the changes are undone afterwards, so
    an example costs only the files it changes."""
    if not (host.net("bond0") / "bonding").is_dir():
        host.add_pf("pf0", ifindex=2, numvfs=8)
        host.add_bond("bond0", ["pf0"], None)
        for (directory, name), data in BASELINE.items():
            write(sysfs_path(host, directory, name), data)
    write(host.procfs / "net/bonding/bond0", proc)
    for (directory, name), data in (changes or {}).items():
        write(sysfs_path(host, directory, name), data)
    try:
        yield
    finally:
        for key in changes or {}:
            write(sysfs_path(host, *key), BASELINE[key])


def sound(facts: PfFacts) -> None:
    """What ``read_pf`` returns is well-formed, and ``assess`` takes it without raising."""
    assert isinstance(facts, PfFacts) and facts.name == "pf0"
    assert facts.bond is None or isinstance(facts.bond, Bond)
    if facts.bond is None and facts.master_kind == "bond":
        assert facts.bond_error
    for number in (facts.ifindex, facts.numvfs, facts.totalvfs):
        assert number is None or (isinstance(number, int) and number >= 0)
    a = assess(facts)
    assert a.monitored or a.reason
    if a.lacp is Lacp.UP:
        s = a.slave
        assert s is not None and s.mii_up and s.actor_state is not None
        assert s.partner_state is not None
        assert s.actor_state & IN_SERVICE == IN_SERVICE
        assert s.partner_state & IN_SERVICE == IN_SERVICE
        assert not (s.actor_state | s.partner_state) & OUT_OF_SERVICE


@FUZZ
@given(proc=PROC_BYTES)
def test_read_pf_with_broken_proc_bytes(host: FakeHost, proc: Optional[bytes]) -> None:
    with files(host, proc):
        sound(read_pf(str(host.procfs), str(host.sysfs), "pf0"))


@FUZZ
@given(
    proc=PROC_BYTES,
    changes=st.dictionaries(
        st.sampled_from(sorted(BASELINE)),
        st.one_of(st.none(), SYSFS_VALUES),
    ),
    master=st.one_of(
        st.none(),
        st.sampled_from(
            ["../bond0", "../nowhere", "..", "../", "/", "../br0", "bond0", "master", "../pf0"]
        ),
    ),
)
def test_read_pf_with_random_sysfs(
    host: FakeHost,
    proc: Optional[bytes],
    changes: Dict[Tuple[str, str], Optional[bytes]],
    master: Optional[str],
) -> None:
    with files(host, proc, changes):
        link = host.net("pf0") / "master"
        link.unlink()
        try:
            if master is not None:
                with contextlib.suppress(OSError, ValueError):  # a name the fs refuses
                    os.symlink(master, link)
            sound(read_pf(str(host.procfs), str(host.sysfs), "pf0"))
            sound(read_pf(str(host.procfs), str(host.sysfs), "pf0", sriov=False))
        finally:
            if os.path.lexists(link):
                link.unlink()
            os.symlink("../bond0", link)


@pytest.fixture(scope="module")
def real_host(tmp_path_factory: pytest.TempPathFactory) -> FakeHost:
    """On the real file system: pyfakefs fails internally on some odd link targets."""
    host = FakeHost(tmp_path_factory.mktemp("links"))
    host.add_pf("pf0", ifindex=2, numvfs=8)
    host.add_bond("bond0", ["pf0"], load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up"))
    return host


@settings(FUZZ, max_examples=LINK_EXAMPLES)
@given(master=st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1, max_size=40))
def test_read_pf_with_any_master_link(real_host: FakeHost, master: str) -> None:
    link = real_host.net("pf0") / "master"
    link.unlink()
    try:
        with contextlib.suppress(OSError, ValueError):  # a name the file system refuses
            os.symlink(master, link)
        sound(read_pf(str(real_host.procfs), str(real_host.sysfs), "pf0"))
    finally:
        if os.path.lexists(link):
            link.unlink()
        os.symlink("../bond0", link)


HAND = {5: "enable", 6: "disable"}


@FUZZ
@given(
    proc=st.one_of(broken_capture(PF0_CAPTURES), st.binary(max_size=600)),
    states=st.tuples(SYSFS_VALUES, SYSFS_VALUES, SYSFS_VALUES),
    recorded=st.frozensets(st.integers(0, 7), max_size=8),
    vfs=st.lists(st.sampled_from(["auto", "enable", "disable"]), min_size=8, max_size=8),
)
def test_cycle_never_a_wrong_vf(
    host: FakeHost,
    proc: bytes,
    states: Tuple[bytes, bytes, bytes],
    recorded: frozenset,  # type: ignore[type-arg]
    vfs: List[str],
) -> None:
    """Whatever the files say: VFs go to disable only on a monitored DOWN, back to auto only
    when recorded and UP, and an unrecorded VF that is not ``auto`` is never touched."""
    mii, actor, partner = states
    changes = {
        ("bonding_slave", "mii_status"): mii,
        ("bonding_slave", "ad_actor_oper_port_state"): actor,
        ("bonding_slave", "ad_partner_oper_port_state"): partner,
    }
    with files(host, proc, changes):
        relay_once(host, recorded, vfs)


def relay_once(host: FakeHost, recorded: frozenset, vfs: List[str]) -> None:  # type: ignore[type-arg]
    from pfrelay import ledger as ledgers

    state_file = host.root / "run" / "state.json"
    ledgers.save(state_file, ledgers.Ledger({"pf0": ledgers.PfEntry(recorded, 2, 8)}, "boot"))
    before = dict(enumerate(vfs))
    ip = FakeIp({"pf0": dict(before)})
    config = Config(
        interfaces=("pf0",),
        procfs=str(host.procfs),
        sysfs=str(host.sysfs),
        state_file=str(state_file),
    )
    relay = Relay(config, ip, EventLog("json", "error", open(os.devnull, "w")), boot_id="boot")  # noqa: SIM115
    (report,) = relay.cycle()
    relay.log.stream.close()  # type: ignore[union-attr]
    a = report.assessment
    after = ip.links["pf0"]
    for vf, old in before.items():
        new = after[vf]
        if new == old:
            continue
        if new == "disable":
            assert old == "auto" and a.monitored and a.lacp is Lacp.DOWN
        else:
            assert (old, new) == ("disable", "auto")
            assert vf in recorded and a.monitored and a.lacp is Lacp.UP
    on_disk = ledgers.load(state_file).disabled("pf0")
    # Credited to the relay: the recorded VFs that are disabled (or were not read this cycle).
    shown = after if report.vfs is not None else {}
    assert report.disabled_by_relay == {v for v in on_disk if shown.get(v, "disable") == "disable"}
    added = on_disk - recorded
    assert all(before[vf] == "auto" and after[vf] == "disable" for vf in added)
    for vf in recorded - on_disk:  # forgotten: seen in another state than disable, or restored
        assert after[vf] in ("auto", "enable")
        assert before[vf] != "disable" or (a.monitored and a.lacp is Lacp.UP)


# ------------------------------------------------------------------------------ big files

TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> Dict[str, int]:
    """Bytes each path's handles returned, for every ``open`` in this test."""
    counts: Dict[str, int] = {}
    real_open = builtins.open

    class Counting:
        def __init__(self, handle: Any, path: str) -> None:
            self.handle, self.path = handle, path

        def read(self, *args: Any) -> Any:
            data = self.handle.read(*args)
            counts[self.path] = counts.get(self.path, 0) + len(data)
            return data

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.handle.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        return Counting(real_open(path, *args, **kwargs), os.fspath(path))

    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


def test_ten_megabyte_proc_file_is_read_bounded(
    tmp_path: Path, counted_reads: Dict[str, int]
) -> None:
    host = FakeHost(tmp_path)
    host.add_pf("pf0")
    healthy = load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up").encode()
    host.add_bond("bond0", ["pf0"], None)
    write(host.procfs / "net/bonding/bond0", (healthy * (TEN_MB // len(healthy) + 1))[:TEN_MB])
    started = time.monotonic()
    facts = read_pf(str(host.procfs), str(host.sysfs), "pf0")
    elapsed = time.monotonic() - started
    proc = str(host.procfs / "net/bonding/bond0")
    assert counted_reads[proc] == READ_LIMIT
    assert max(counted_reads.values()) == READ_LIMIT
    assert facts.bond is not None
    # The first READ_LIMIT bytes hold ~170 copies of the one-slave status: "many slaves".
    assert len(facts.bond.slaves) == READ_LIMIT // len(healthy) + 1
    assert not assess(facts).monitored
    assert elapsed < 2.0


@pytest.mark.parametrize("name", ["bonding_slave/ad_actor_oper_port_state", "ifindex"])
def test_ten_megabyte_sysfs_file_is_read_bounded(
    tmp_path: Path, counted_reads: Dict[str, int], name: str
) -> None:
    host = FakeHost(tmp_path)
    host.add_pf("pf0")
    host.add_bond(
        "bond0", ["pf0"], unprivileged(load_fixture("proc-net-bonding-bond0-802.3ad-lacp-up"))
    )
    write(host.net("pf0") / name, b"6" * TEN_MB)
    facts = read_pf(str(host.procfs), str(host.sysfs), "pf0")
    sound(facts)
    assert counted_reads[str(host.net("pf0") / name)] <= 4096
    assert max(counted_reads.values()) <= READ_LIMIT


def test_ten_megabytes_of_non_utf8_text() -> None:
    """Every byte value, 10 MB of it, decoded with replacement as ``read_text`` does."""
    text = (bytes(range(256)) * (TEN_MB // 256)).decode("utf-8", "replace")
    started = time.monotonic()
    with pytest.raises(BondingParseError):
        parse_proc_bonding("bond0", text)
    started = time.monotonic() - started
    assert started < 2.0
    text = text.replace("\x00", "\nBonding Mode: adaptive load balancing\n", 1)
    assert parse_proc_bonding("bond0", text).mode == "balance-alb"


def test_read_text_limit_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"ok \xff\xfe" + b"x" * (READ_LIMIT * 2))
    text = hostmod.read_text(path)
    assert text.startswith("ok \ufffd\ufffd") and len(text) == READ_LIMIT
    assert hostmod.read_text(path, 3) == "ok "
