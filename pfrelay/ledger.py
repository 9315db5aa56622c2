"""The ledger: which VFs the relay itself disabled, persisted so a restart restores them.

Only VFs in the ledger are ever put back to ``auto``: a VF an operator disabled by hand is not
in it and stays disabled. The file is JSON, written atomically (temp file, fsync, rename, mode
0600) in the runtime directory, and stamped with the boot ID and the PF's ifindex and VF count,
so entries from another boot, a re-created PF or re-created VFs are dropped instead of flipping
VFs that are not the ones we disabled. A corrupt or unwritable file is reported, never fatal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

FORMAT_VERSION = 1


class LedgerError(Exception):
    """The ledger file could not be read or written; the message is one line."""


@dataclasses.dataclass(frozen=True)
class PfEntry:
    """The VFs of one PF that the relay disabled, with what identifies those VFs."""

    disabled: FrozenSet[int] = frozenset()
    ifindex: Optional[int] = None
    numvfs: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Ledger:
    """All PFs' entries, plus the boot the VFs were disabled in."""

    pfs: Mapping[str, PfEntry] = dataclasses.field(default_factory=dict)
    boot_id: Optional[str] = None

    def disabled(self, pf: str) -> FrozenSet[int]:
        entry = self.pfs.get(pf)
        return entry.disabled if entry else frozenset()

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
                pf: {"ifindex": e.ifindex, "numvfs": e.numvfs, "disabled": sorted(e.disabled)}
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
            frozenset(vfs), _int_or_none(raw.get("ifindex")), _int_or_none(raw.get("numvfs"))
        )
    boot_id = doc.get("boot_id")
    return Ledger(pfs, boot_id if isinstance(boot_id, str) else None)


def stale_entries(
    ledger: Ledger, boot_id: Optional[str], pfs: Mapping[str, Tuple[Optional[int], Optional[int]]]
) -> List[Tuple[str, str]]:
    """PFs whose entries no longer name the VFs we disabled, with the reason.

    ``pfs`` maps a PF to its current (ifindex, numvfs). Entries written in another boot are all
    stale (the VFs were re-created since); an entry whose PF has a new ifindex (the PF was
    re-created) or a different VF count (the VFs were re-created) is stale. A PF that is not in
    ``pfs`` (not readable now) is left alone.
    """
    stale = []
    for pf, entry in ledger.pfs.items():
        if boot_id and ledger.boot_id and boot_id != ledger.boot_id:
            stale.append((pf, "the ledger was written in another boot"))
        elif pf in pfs:
            ifindex, numvfs = pfs[pf]
            if entry.ifindex is not None and ifindex is not None and ifindex != entry.ifindex:
                stale.append((pf, f"the PF was re-created (ifindex {entry.ifindex} -> {ifindex})"))
            elif entry.numvfs is not None and numvfs is not None and numvfs != entry.numvfs:
                stale.append(
                    (pf, f"the VFs were re-created (sriov_numvfs {entry.numvfs} -> {numvfs})")
                )
    return stale


def without(ledger: Ledger, pfs: Iterable[str]) -> Ledger:
    drop = set(pfs)
    return dataclasses.replace(ledger, pfs={p: e for p, e in ledger.pfs.items() if p not in drop})


def load(path: Path) -> Ledger:
    """Read the ledger; a missing file is an empty ledger, anything else wrong is LedgerError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return Ledger()
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return parse(text)
    except LedgerError as exc:
        raise LedgerError(f"{path}: {exc}") from None


def save(path: Path, ledger: Ledger) -> None:
    """Write atomically with mode 0600 (directory created 0700); LedgerError on failure."""
    tmp_name = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".state-", dir=str(path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(ledger.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise LedgerError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
