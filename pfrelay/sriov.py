"""SR-IOV VFs of a PF: typed records and the parser of ``ip -j link show dev <pf>``.

The VF link state is what the relay changes: ``auto`` follows the PF's link, ``disable`` forces
the VF's link down (its bond in the pod or VM fails over), ``enable`` forces it up. The kernel
lists VFs over netlink in one attribute whose 16-bit length overflows past ~220 VFs: iproute2
then prints a partial list, so the parser result is compared with ``sriov_numvfs``. Pure.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Optional, Tuple


class LinkState(str, enum.Enum):
    """A VF's administrative link state, as iproute2 names it."""

    AUTO = "auto"
    ENABLE = "enable"
    DISABLE = "disable"


class VfListError(ValueError):
    """``ip -j link show`` output that is not what iproute2 prints (the only error raised)."""


@dataclasses.dataclass(frozen=True)
class VF:
    """One VF of a PF. ``link_state`` is None when iproute2 printed a state we do not know."""

    vf: int
    link_state: Optional[LinkState]
    mac: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class PfLink:
    """What ``ip -j link show dev <pf>`` says about the PF and its VFs."""

    name: str
    ifindex: Optional[int]
    vfs: Tuple[VF, ...]


def parse_link_show(pf: str, text: str) -> PfLink:
    """Parse the JSON of ``ip -j [-d] link show dev <pf>``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise VfListError(f"ip -j link show {pf}: not JSON ({exc})") from None
    except RecursionError:
        raise VfListError(f"ip -j link show {pf}: JSON nested too deeply") from None
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        raise VfListError(f"ip -j link show {pf}: expected a list with one link object")
    link = doc[0]
    ifindex = link.get("ifindex")
    raw_vfs = link.get("vfinfo_list", [])
    if not isinstance(raw_vfs, list):
        raise VfListError(f"ip -j link show {pf}: vfinfo_list is not a list")
    vfs = []
    for entry in raw_vfs:
        if not isinstance(entry, dict):
            raise VfListError(f"ip -j link show {pf}: a vfinfo_list entry is not an object")
        number = entry.get("vf")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise VfListError(f"ip -j link show {pf}: a VF has no valid number: {number!r}")
        raw_state = entry.get("link_state")
        try:
            state: Optional[LinkState] = LinkState(raw_state)
        except ValueError:
            state = None
        mac = entry.get("address")
        vfs.append(VF(number, state, mac.lower() if isinstance(mac, str) else None))
    return PfLink(
        name=pf,
        ifindex=ifindex if isinstance(ifindex, int) and not isinstance(ifindex, bool) else None,
        vfs=tuple(sorted(vfs, key=lambda v: v.vf)),
    )


def missing_vfs(link: PfLink, numvfs: Optional[int]) -> int:
    """How many VFs ``sriov_numvfs`` announces that the netlink list does not show."""
    if numvfs is None:
        return 0
    return max(0, numvfs - len(link.vfs))
