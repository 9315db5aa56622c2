"""The ledger: which VFs the relay itself disabled, persisted so a restart restores them.

Only VFs in the ledger are ever put back to ``auto``: a VF an operator disabled by hand is not
in it and stays disabled. The file is JSON, written atomically (temp file, fsync, rename, mode
0600, fsync of the directory) in the runtime directory, never through a link
(``pfrelay.safefile``), and stamped with the boot ID and the PF's ifindex and VF count, so
entries from another boot, a re-created PF or re-created VFs are dropped instead of flipping
VFs that are not the ones we disabled. A corrupt or unwritable file is reported, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from pfrelay import safefile

FORMAT_VERSION = 1


class LedgerError(Exception):
    """The ledger file could not be read or written; the message is one line."""


class LedgerUnreadable(LedgerError):
    """The file is there (or may be) but cannot be read now: EACCES, EIO, ENOTDIR, ...

    Not proof that the ledger is empty: it is read again later, never overwritten unread.
    """


class LedgerCorrupt(LedgerError):
    """The file was read but is not a ledger this version wrote (cut short, garbled)."""


@dataclasses.dataclass(frozen=True)
class PfEntry:
    """The VFs of one PF that the relay disabled, with what identifies those VFs."""

    disabled: FrozenSet[int] = frozenset()
    ifindex: Optional[int] = None
    numvfs: Optional[int] = None
    #: The kernel's identity of the PF's VF set (``host.read_vfs_id``): changes when the VFs
    #: are re-created, also with the same ``sriov_numvfs``.
    vfs_id: Optional[int] = None

    def updated(
        self,
        disabled: FrozenSet[int],
        ifindex: Optional[int],
        numvfs: Optional[int],
        vfs_id: Optional[int],
    ) -> PfEntry:
        """This entry with new VFs and guards; a guard read as unknown (None) keeps its value.

        Overwriting a guard with an unknown (one unreadable ``sriov_numvfs``) would make a later
        re-creation of the VFs go unnoticed.
        """
        return PfEntry(
            disabled,
            self.ifindex if ifindex is None else ifindex,
            self.numvfs if numvfs is None else numvfs,
            self.vfs_id if vfs_id is None else vfs_id,
        )


@dataclasses.dataclass(frozen=True)
class Ledger:
    """All PFs' entries, plus the boot the VFs were disabled in."""

    pfs: Mapping[str, PfEntry] = dataclasses.field(default_factory=dict)
    boot_id: Optional[str] = None

    def disabled(self, pf: str) -> FrozenSet[int]:
        entry = self.pfs.get(pf)
        return entry.disabled if entry else frozenset()

    def entry(self, pf: str) -> PfEntry:
        return self.pfs.get(pf) or PfEntry()

    def with_pf(self, pf: str, entry: PfEntry) -> Ledger:
        pfs = dict(self.pfs)
        if entry.disabled:
            pfs[pf] = entry
        else:
            pfs.pop(pf, None)
        return dataclasses.replace(self, pfs=pfs)

    def to_json(self) -> str:
        doc = {
            "version": FORMAT_VERSION,
            "boot_id": self.boot_id,
            "pfs": {
                pf: {
                    "ifindex": e.ifindex,
                    "numvfs": e.numvfs,
                    "vfs_id": e.vfs_id,
                    "disabled": sorted(e.disabled),
                }
                for pf, e in sorted(self.pfs.items())
            },
        }
        return json.dumps(doc, indent=1) + "\n"


def _int_or_none(value: object) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse(text: str) -> Ledger:
    """Parse the ledger JSON; LedgerError if it is not a ledger this version wrote."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"not JSON: {exc}") from None
    except RecursionError:
        # e.g. 100000 "[": the decoder recurses per level; a crash here was a crash loop.
        raise LedgerError("not a ledger: JSON nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise LedgerError(f"not a version {FORMAT_VERSION} ledger")
    raw_pfs = doc.get("pfs")
    if not isinstance(raw_pfs, dict):
        raise LedgerError('"pfs" is not an object')
    pfs: Dict[str, PfEntry] = {}
    for pf, raw in raw_pfs.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("disabled"), list):
            raise LedgerError(f'entry for {pf!r} has no "disabled" list')
        vfs = raw["disabled"]
        if not all(_int_or_none(v) is not None and v >= 0 for v in vfs):
            raise LedgerError(f"entry for {pf!r} has a VF that is not a number")
        pfs[pf] = PfEntry(
            frozenset(vfs),
            _int_or_none(raw.get("ifindex")),
            _int_or_none(raw.get("numvfs")),
            _int_or_none(raw.get("vfs_id")),
        )
    boot_id = doc.get("boot_id")
    return Ledger(pfs, boot_id if isinstance(boot_id, str) else None)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What identifies a PF and its VF set now (each None when it cannot be read)."""

    ifindex: Optional[int] = None
    numvfs: Optional[int] = None
    vfs_id: Optional[int] = None


def stale_reason(entry: PfEntry, now: Identity) -> Optional[str]:
    """Why ``entry`` no longer names the VFs the relay disabled, or None while it does.

    A new ifindex means the PF was re-created; a different VF count or VF-set identity means
    the VFs were re-created. An unknown on either side proves nothing.
    """
    if entry.ifindex is not None and now.ifindex is not None and now.ifindex != entry.ifindex:
        return f"the PF was re-created (ifindex {entry.ifindex} -> {now.ifindex})"
    if entry.numvfs is not None and now.numvfs is not None and now.numvfs != entry.numvfs:
        return f"the VFs were re-created (sriov_numvfs {entry.numvfs} -> {now.numvfs})"
    if entry.vfs_id is not None and now.vfs_id is not None and now.vfs_id != entry.vfs_id:
        return "the VFs were re-created (their sysfs entries are new)"
    return None


def stale_entries(
    ledger: Ledger, boot_id: Optional[str], pfs: Mapping[str, Identity]
) -> List[Tuple[str, str]]:
    """PFs whose entries no longer name the VFs we disabled, with the reason.

    ``pfs`` maps a PF to what identifies it now. Entries written in another boot are all stale
    (the VFs were re-created since); see ``stale_reason`` for the others. A PF that is not in
    ``pfs`` (not readable now) is left alone.
    """
    stale = []
    for pf, entry in ledger.pfs.items():
        if boot_id and ledger.boot_id and boot_id != ledger.boot_id:
            stale.append((pf, "the ledger was written in another boot"))
        elif pf in pfs:
            reason = stale_reason(entry, pfs[pf])
            if reason is not None:
                stale.append((pf, reason))
    return stale


class Followed(NamedTuple):
    """What ``follow`` did: the ledger, and what to say about it."""

    ledger: Ledger
    renames: List[Tuple[str, str]]  #: (old, new) name of a PF found by its ifindex
    gone: List[str]  #: neither its ifindex nor its name exists (entry kept)
    dropped: List[Tuple[str, str]]  #: a moved entry that contradicts the one there (reason)


def follow(ledger: Ledger, names: Mapping[int, str]) -> Followed:
    """Entries moved to their PF's current name, found by ifindex (a PF renamed in place).

    ``names`` maps each interface's ifindex to its name now (all of the host's). A PF whose
    ifindex and name no longer exist is "gone": its VFs went with it, or it was moved to
    another network namespace, so its entry is kept and the caller decides what to say. An
    entry whose name now has another ifindex is left for ``stale_entries`` (the PF was
    re-created); one without an ifindex is left as it is. A moved entry that lands on a name
    that has an entry already is merged as ``merge`` does: the entry there is the current one.
    """
    current = set(names.values())
    staying: Dict[str, PfEntry] = {}
    movers: List[Tuple[str, PfEntry]] = []
    renames: List[Tuple[str, str]] = []
    gone: List[str] = []
    for pf, entry in sorted(ledger.pfs.items()):
        name = pf
        if entry.ifindex is not None and entry.ifindex in names:
            name = names[entry.ifindex]
        elif entry.ifindex is not None and pf not in current:
            gone.append(pf)
        if name == pf:
            staying[pf] = entry
        else:
            renames.append((pf, name))
            movers.append((name, entry))
    result = dataclasses.replace(ledger, pfs=staying)
    dropped: List[Tuple[str, str]] = []
    for name, entry in movers:
        result, conflicts = merge(result, Ledger({name: entry}))
        dropped.extend(conflicts)
    return Followed(result, renames, gone, dropped)


_NONE = (None, None, None)


def salvage(text: str) -> Dict[str, FrozenSet[int]]:
    """The PFs and VF numbers that can still be made out in a damaged ledger (best effort).

    A ledger cut short or garbled still names ``"<pf>": {... "disabled": [1, 2, ...`` for most
    PFs; those VFs may be stranded (disabled by the relay, not in any ledger it can read).
    """
    found: Dict[str, FrozenSet[int]] = {}
    for match in _SALVAGE.finditer(text[: 4 * 1024 * 1024]):
        pf = match.group(1)
        vfs = frozenset(int(n) for n in re.findall(r"\d{1,6}", match.group(2)))
        if vfs and _plausible_name(pf):
            found[pf] = found.get(pf, frozenset()) | vfs
    return found


_SALVAGE = re.compile(r'"([^"\\\x00-\x1f]{1,15})"\s*:\s*\{[^{}]*?"disabled"\s*:\s*\[([\d,\s]*)')


def _plausible_name(name: str) -> bool:
    return "/" not in name and name not in (".", "..") and name.isprintable() and " " not in name


def merge(current: Ledger, loaded: Ledger) -> Tuple[Ledger, List[Tuple[str, str]]]:
    """``current`` (what the relay did while its file could not be read) plus ``loaded``.

    A PF in both keeps the union of their VFs with ``current``'s guards, unless ``loaded``'s
    guards say its VFs are not the ones there now (then ``loaded``'s entry is dropped, and
    returned with the reason). A PF only in ``loaded`` is taken as it is: its guards are checked
    when the PF is next cycled.
    """
    pfs = dict(current.pfs)
    dropped: List[Tuple[str, str]] = []
    for pf, entry in loaded.pfs.items():
        mine = pfs.get(pf)
        if mine is None:
            pfs[pf] = entry
            continue
        reason = stale_reason(entry, Identity(mine.ifindex, mine.numvfs, mine.vfs_id))
        if reason is not None:
            dropped.append((pf, reason))
        else:  # the guards agree where both are known: each fills the other's unknowns
            pfs[pf] = mine.updated(
                mine.disabled | entry.disabled, entry.ifindex, entry.numvfs, entry.vfs_id
            )
    return dataclasses.replace(current, pfs=pfs), dropped


def without(ledger: Ledger, pfs: Iterable[str]) -> Ledger:
    drop = set(pfs)
    return dataclasses.replace(ledger, pfs={p: e for p, e in ledger.pfs.items() if p not in drop})


def load(path: Path) -> Ledger:
    """Read the ledger; a missing file is an empty ledger, anything else wrong is LedgerError."""
    try:
        # No link followed, no FIFO waited on: the directory may be the service user's.
        with open(safefile.open_regular(path, os.O_RDONLY), encoding="utf-8") as handle:
            text = handle.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return Ledger()
    except safefile.Refused as exc:  # a planted link or FIFO: set aside, not read forever
        raise LedgerCorrupt(f"cannot read {path}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise LedgerUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LedgerCorrupt(f"{path}: not UTF-8 ({exc.reason})") from None
    try:
        return parse(text)
    except LedgerError as exc:
        raise LedgerCorrupt(f"{path}: {exc}") from None


def set_aside(path: Path, now: Optional[float] = None) -> Path:
    """Rename a ledger that cannot be used to ``<name>.bad-<UTC time>``; OSError if it fails.

    The damaged file is kept for ``pfrelay restore --ledger`` instead of being overwritten at
    the next outage (it may name VFs that are still disabled).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.bad-{stamp}")
    os.rename(path, target)
    return target


def save(path: Path, ledger: Ledger) -> None:
    """Write atomically with mode 0600 (directory created 0700); LedgerError on failure.

    Owned by the directory's owner: root (`sudo pfrelay restore`) writing the service user's
    ledger leaves it the relay's to read.

    A new temp file beside the ledger (never through a link), fsync, rename, fsync of the
    directory: after a crash the ledger is the old one or the new one, never a torn one.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        safefile.replace(path, ledger.to_json().encode("utf-8"), 0o600, to_dir_owner=True)
    except OSError as exc:
        raise LedgerError(f"cannot write {path}: {exc.strerror or exc}") from None
