"""Every /proc/net/bonding capture and timeline snapshot in tests/fixtures, as a table.

One row per file: mode, lacp_rate, bond MII, the active aggregator and its partner MAC, then per
slave (name, MII, aggregator ID, actor port state, partner port state, partner MAC from the
details block). The rows were read off the files with a separate line matcher and checked
against the lab's sysfs samples (timeline TSVs); a capture added without a row fails
``test_every_capture_has_a_row``. The same texts are then read as a reader without
CAP_NET_ADMIN gets them (``fakehost.unprivileged``): no port states, no partner MAC, and
``merge_sysfs`` fills the states back in from the sysfs values captured at the same moment.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pytest
from fakehost import FIXTURES, KERNEL, sysfs_capture, unprivileged

from pfrelay.bonding import Bond, BondingParseError, merge_sysfs, parse_proc_bonding

PEER = "4e:0a:06:1c:16:6d"  # the lab switch's bond (swbond), as pf0's partner
OURS = "da:cb:0b:9f:34:6f"  # bond0 (pf0), as the switch's partner
ZERO = "00:00:00:00:00:00"  # partner lost (DEFAULTED)
IGB_PEER = "52:54:00:12:34:57"
IGB_OURS = "52:54:00:12:34:56"
LAGP_PEER = "32:f6:12:38:46:e6"
#: the bond-admin-down run (INDEX.*.bond-admin-down.tsv): two topologies, two pairs of MACs
AD_OURS, AD_PEER = "02:71:fd:9d:fb:f4", "3e:2a:ad:f5:bd:17"
AD2_OURS, AD2_PEER = "0e:96:bd:cf:3b:c5", "b6:42:33:4b:68:50"
NOT_BONDING = "cat: No such file or directory"  # `cat` of a bond that was gone

SlaveRow = Tuple[str, Optional[str], Optional[int], Optional[int], Optional[int], Optional[str]]
Row = Tuple[str, Optional[str], str, Optional[int], Optional[str], List[SlaveRow]]

# fmt: off
EXPECTED: Dict[str, Union[Row, str]] = {
    'bond0-802.3ad-lacp-up-at-end': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'bond0-802.3ad-lacp-up-igb': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 63, IGB_PEER)]),
    'bond0-802.3ad-lacp-up': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'bond0-802.3ad-unpatched-netdevsim-slave-no-speed': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-after-block-carrier-loss-step1-+0.38s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'bond0-after-block-carrier-loss-step2-+0.50s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 63, 63, PEER)]),
    'bond0-after-block-lacpdu-blocked-both-ways-step1-+2.54s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 55, PEER)]),
    'bond0-after-block-lacpdu-blocked-both-ways-step2-+5.68s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-after-block-peer-lag-deleted-step1-+0.36s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 15, 3, PEER)]),
    'bond0-after-block-peer-stops-receiving-step1-+3.24s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 143, PEER)]),
    'bond0-after-block-peer-stops-receiving-step2-+6.37s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 71, PEER)]),
    'bond0-after-block-peer-stops-receiving-step3-+9.40s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 71, PEER)]),
    'bond0-after-block-peer-stops-sending-step1-+2.61s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 55, PEER)]),
    'bond0-after-block-peer-stops-sending-step2-+5.75s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-end-of-block-igb-0-vfs-peer-stops-sending': ('802.3ad', 'fast', 'up', 1, ZERO, [('eth0', 'up', 1, 79, 0, ZERO)]),
    'bond0-end-of-block-igb-4-vfs-peer-stops-sending': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 63, IGB_PEER)]),
    'bond0-partner-lost-carrier-loss': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 63, 63, PEER)]),
    'bond0-partner-lost-lacpdu-blocked-both-ways': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-partner-lost-peer-lag-deleted': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 15, 3, PEER)]),
    'bond0-partner-lost-peer-stops-receiving': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 71, PEER)]),
    'bond0-partner-lost-peer-stops-sending': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-recovering-carrier-loss-step1-+6.61s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 63, 63, PEER)]),
    'bond0-recovering-carrier-loss-step2-+6.67s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'bond0-recovering-carrier-loss-step3-+6.73s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 71, 0, ZERO)]),
    'bond0-recovering-carrier-loss-step4-+6.80s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 199, 2, ZERO)]),
    'bond0-recovering-carrier-loss-step5-+7.73s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 7, 199, PEER)]),
    'bond0-recovering-carrier-loss-step6-+8.90s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 199, PEER)]),
    'bond0-recovering-carrier-loss-step7-+8.96s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'bond0-recovering-lacpdu-blocked-both-ways-step1-+36.92s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 15, PEER)]),
    'bond0-recovering-lacpdu-blocked-both-ways-step2-+36.98s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 15, PEER)]),
    'bond0-recovering-peer-lag-deleted-step1-+9.59s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 199, 2, ZERO)]),
    'bond0-recovering-peer-lag-deleted-step2-+9.82s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 7, 199, PEER)]),
    'bond0-recovering-peer-lag-deleted-step3-+10.77s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 7, 7, PEER)]),
    'bond0-recovering-peer-lag-deleted-step4-+11.66s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 7, PEER)]),
    'bond0-recovering-peer-lag-deleted-step5-+12.01s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'bond0-recovering-peer-stops-receiving-step1-+12.67s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'bond0-recovering-peer-stops-receiving-step2-+37.65s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 71, PEER)]),
    'bond0-recovering-peer-stops-receiving-step3-+37.99s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'bond0-recovering-peer-stops-sending-step1-+37.11s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 15, PEER)]),
    'bond0-recovering-peer-stops-sending-step2-+37.18s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 15, PEER)]),
    'bond2-802.3ad-two-slaves-lacp-up': ('802.3ad', 'fast', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 63, 63, LAGP_PEER), ('lagp1', 'up', 1, 63, 63, LAGP_PEER)]),
    'bondab-active-backup': ('active-backup', None, 'up', None, None, [('lagp0', 'up', None, None, None, None), ('lagp1', 'up', None, None, None, None)]),
    'bondnospeed-802.3ad-slave-speed-unknown': ('802.3ad', 'fast', 'down', None, None, [('lagp1', 'down', 1, 71, 0, ZERO)]),
    'bondslow-802.3ad-lacp_rate-slow-lacp-up': ('802.3ad', 'slow', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 61, 61, LAGP_PEER)]),
    'bondzero-802.3ad-no-slaves-admin-down': ('802.3ad', 'fast', 'down', None, None, []),
    'bondzero-802.3ad-no-slaves-up': ('802.3ad', 'fast', 'down', None, None, []),
    'swbond-peer-802.3ad-lacp-up': ('802.3ad', 'fast', 'up', 1, OURS, [('swp1', 'up', 1, 63, 63, OURS)]),
    'swbond-peer-end-of-block-carrier-loss': ('802.3ad', 'fast', 'down', None, None, [('swp1', 'down', 1, 63, 63, OURS)]),
    'swbond-peer-end-of-block-lacpdu-blocked-both-ways': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'swbond-peer-end-of-block-peer-lag-deleted': NOT_BONDING,
    'swbond-peer-end-of-block-peer-stops-receiving': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'swbond-peer-end-of-block-peer-stops-sending': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'carrier-loss/end-of-hold': ('802.3ad', 'fast', 'down', None, None, [('swp1', 'down', 1, 63, 63, OURS)]),
    'carrier-loss/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'carrier-loss/snap-01-blocked-+0.38s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'carrier-loss/snap-02-blocked-+0.50s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 63, 63, PEER)]),
    'carrier-loss/snap-03-unblocked-+6.61s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 63, 63, PEER)]),
    'carrier-loss/snap-04-unblocked-+6.67s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'carrier-loss/snap-05-unblocked-+6.73s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 71, 0, ZERO)]),
    'carrier-loss/snap-06-unblocked-+6.80s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 199, 2, ZERO)]),
    'carrier-loss/snap-07-unblocked-+7.73s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 7, 199, PEER)]),
    'carrier-loss/snap-08-unblocked-+8.90s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 199, PEER)]),
    'carrier-loss/snap-09-unblocked-+8.96s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'carrier-loss/snap-10-unblocked-+9.03s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'igb-0-vfs-peer-stops-sending/end-of-hold': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'igb-0-vfs-peer-stops-sending/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 63, IGB_PEER)]),
    'igb-0-vfs-peer-stops-sending/snap-01-blocked-+2.68s': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 143, 55, IGB_PEER)]),
    'igb-0-vfs-peer-stops-sending/snap-02-blocked-+5.78s': ('802.3ad', 'fast', 'up', 1, ZERO, [('eth0', 'up', 1, 79, 0, ZERO)]),
    'igb-0-vfs-peer-stops-sending/snap-03-unblocked-+37.37s': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 15, IGB_PEER)]),
    'igb-0-vfs-peer-stops-sending/snap-04-unblocked-+37.70s': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 63, IGB_PEER)]),
    'igb-4-vfs-peer-stops-sending/end-of-hold': ('802.3ad', 'fast', 'up', 1, IGB_OURS, [('swp1', 'up', 1, 63, 63, IGB_OURS)]),
    'igb-4-vfs-peer-stops-sending/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, IGB_PEER, [('eth0', 'up', 1, 63, 63, IGB_PEER)]),
    'lacpdu-blocked-both-ways/end-of-hold': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'lacpdu-blocked-both-ways/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'lacpdu-blocked-both-ways/snap-01-blocked-+2.54s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 55, PEER)]),
    'lacpdu-blocked-both-ways/snap-02-blocked-+5.68s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'lacpdu-blocked-both-ways/snap-03-unblocked-+36.92s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 15, PEER)]),
    'lacpdu-blocked-both-ways/snap-04-unblocked-+36.98s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 15, PEER)]),
    'lacpdu-blocked-both-ways/snap-05-unblocked-+37.23s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-lag-deleted/end-of-hold': NOT_BONDING,
    'peer-lag-deleted/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-lag-deleted/snap-01-blocked-+0.36s': ('802.3ad', 'fast', 'down', None, None, [('pf0', 'down', 1, 15, 3, PEER)]),
    'peer-lag-deleted/snap-02-unblocked-+9.59s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 199, 2, ZERO)]),
    'peer-lag-deleted/snap-03-unblocked-+9.82s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 7, 199, PEER)]),
    'peer-lag-deleted/snap-04-unblocked-+10.77s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 7, 7, PEER)]),
    'peer-lag-deleted/snap-05-unblocked-+11.66s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 7, PEER)]),
    'peer-lag-deleted/snap-06-unblocked-+12.01s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'peer-lag-deleted/snap-07-unblocked-+12.08s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-stops-receiving/end-of-hold': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'peer-stops-receiving/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-stops-receiving/snap-01-blocked-+3.24s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 143, PEER)]),
    'peer-stops-receiving/snap-02-blocked-+6.37s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 71, PEER)]),
    'peer-stops-receiving/snap-03-blocked-+9.40s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 71, PEER)]),
    'peer-stops-receiving/snap-04-unblocked-+12.67s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'peer-stops-receiving/snap-05-unblocked-+37.65s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 71, PEER)]),
    'peer-stops-receiving/snap-06-unblocked-+37.99s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 15, 63, PEER)]),
    'peer-stops-receiving/snap-07-unblocked-+38.06s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-stops-sending/end-of-hold': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp1', 'up', 1, 79, 0, ZERO)]),
    'peer-stops-sending/snap-00-before--1.00s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'peer-stops-sending/snap-01-blocked-+2.61s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 143, 55, PEER)]),
    'peer-stops-sending/snap-02-blocked-+5.75s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 79, 0, ZERO)]),
    'peer-stops-sending/snap-03-unblocked-+37.11s': ('802.3ad', 'fast', 'up', 1, ZERO, [('pf0', 'up', 1, 15, 15, PEER)]),
    'peer-stops-sending/snap-04-unblocked-+37.18s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 15, PEER)]),
    'peer-stops-sending/snap-05-unblocked-+37.44s': ('802.3ad', 'fast', 'up', 1, PEER, [('pf0', 'up', 1, 63, 63, PEER)]),
    'slow-peer-stops-sending/snap-00-before--1.00s': ('802.3ad', 'slow', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 61, 61, LAGP_PEER)]),
    'slow-peer-stops-sending/snap-01-blocked-+86.56s': ('802.3ad', 'slow', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 141, 55, LAGP_PEER)]),
    'slow-peer-stops-sending/snap-02-blocked-+89.65s': ('802.3ad', 'slow', 'up', 1, ZERO, [('lagp0', 'up', 1, 77, 0, ZERO)]),
    'slow-peer-stops-sending/snap-03-unblocked-+115.87s': ('802.3ad', 'slow', 'up', 1, ZERO, [('lagp0', 'up', 1, 13, 13, LAGP_PEER)]),
    'slow-peer-stops-sending/snap-04-unblocked-+116.08s': ('802.3ad', 'slow', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 61, 13, LAGP_PEER)]),
    'slow-peer-stops-sending/snap-05-unblocked-+116.31s': ('802.3ad', 'slow', 'up', 1, LAGP_PEER, [('lagp0', 'up', 1, 61, 61, LAGP_PEER)]),
    # `ip link set bond0 down`: our slave frozen at MII up, 63/63; the peer expires us (79/0)
    'bond0-802.3ad-before-admin-down': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-down-step1-+0.5s': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-down-step2-peer-expired-+10.5s': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-down-step3-+12s': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-up-step1-+0.3s': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-up-step2-lacp-up-+9.9s': ('802.3ad', 'fast', 'up', 1, AD_PEER, [('pf0', 'up', 1, 63, 63, AD_PEER)]),
    'bond0-admin-down-peer-blocked-+8s': ('802.3ad', 'fast', 'up', 1, AD2_PEER, [('pf0', 'up', 1, 63, 63, AD2_PEER)]),
    'swbond-peer-802.3ad-before-admin-down': ('802.3ad', 'fast', 'up', 1, AD_OURS, [('swp0', 'up', 1, 63, 63, AD_OURS)]),
    'swbond-peer-admin-down-step1-+0.5s': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp0', 'up', 1, 79, 0, ZERO)]),
    'swbond-peer-admin-down-step2-peer-expired-+10.5s': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp0', 'up', 1, 79, 0, ZERO)]),
    'swbond-peer-admin-down-step3-+12s': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp0', 'up', 1, 79, 0, ZERO)]),
    'swbond-peer-admin-up-step1-+0.3s': ('802.3ad', 'fast', 'up', 1, AD_OURS, [('swp0', 'up', 1, 63, 63, AD_OURS)]),
    'swbond-peer-admin-up-step2-lacp-up-+9.9s': ('802.3ad', 'fast', 'up', 1, AD_OURS, [('swp0', 'up', 1, 63, 63, AD_OURS)]),
    'swbond-peer-admin-down-peer-blocked-+8s': ('802.3ad', 'fast', 'up', 1, ZERO, [('swp0', 'up', 1, 79, 0, ZERO)]),
}
SYNTHETIC: Dict[str, Row] = {
    "proc-net-bonding-SYNTHETIC-rhel5-2.6.18-802.3ad": (
        "802.3ad", "fast", "up", 2, "02:00:00:00:0a:01",
        [("eth0", "up", 2, None, None, None), ("eth1", "down", None, None, None, None)],
    ),
    "proc-net-bonding-SYNTHETIC-rhel7-3.10-802.3ad-partner-lost": (
        "802.3ad", "slow", "up", 1, ZERO, [("ens1f0", "up", 1, None, None, None)],
    ),
    "proc-net-bonding-SYNTHETIC-rhel8-4.18-802.3ad": (
        "802.3ad", "fast", "up", 1, "02:00:00:00:0a:21",
        [("ens2f0np0", "up", 1, 63, 61, "02:00:00:00:0a:21")],
    ),
}
# fmt: on


def _key(path: Path) -> str:
    """``bond0-802.3ad-lacp-up`` or ``carrier-loss/snap-00-before--1.00s``."""
    relative = str(path.relative_to(FIXTURES))
    if relative.startswith("timelines/"):
        _, scenario, name = relative.split("/")
        return f"{scenario}/{name[len(f'{scenario}.{KERNEL}.') : -len('.txt')]}"
    return relative[len("proc-net-bonding-") : -len(f".{KERNEL}.txt")]


CAPTURES = {
    _key(p): p
    for p in [
        *FIXTURES.glob("proc-net-bonding-*.txt"),
        *FIXTURES.glob("timelines/*/*.snap-*.txt"),
        *FIXTURES.glob("timelines/*/*.end-of-hold.txt"),
    ]
}
SYNTHETIC_FILES = {p.name[: -len(".txt")]: p for p in FIXTURES.glob("synthetic/*.txt")}
BONDS = sorted(k for k, v in EXPECTED.items() if v != NOT_BONDING)


def rows(bond: Bond) -> Row:
    return (
        bond.mode or "?",
        bond.lacp_rate,
        bond.mii_status or "?",
        bond.active_aggregator,
        bond.partner_mac,
        [
            (s.name, s.mii_status, s.aggregator_id, s.actor_state, s.partner_state, s.partner_mac)
            for s in bond.slaves
        ],
    )


def test_every_capture_has_a_row() -> None:
    assert len(CAPTURES) >= 100
    assert sorted(CAPTURES) == sorted(EXPECTED)
    assert sorted(SYNTHETIC_FILES) == sorted(SYNTHETIC)


@pytest.mark.parametrize("key", BONDS)
def test_capture(key: str) -> None:
    text = CAPTURES[key].read_text(encoding="utf-8")
    assert rows(parse_proc_bonding("bond0", text)) == EXPECTED[key]


@pytest.mark.parametrize("key", sorted(k for k, v in EXPECTED.items() if v == NOT_BONDING))
def test_no_such_file_capture_is_not_a_bonding_status(key: str) -> None:
    text = CAPTURES[key].read_text(encoding="utf-8")
    assert "No such file or directory" in text
    with pytest.raises(BondingParseError):
        parse_proc_bonding("swbond", text)


@pytest.mark.parametrize("key", sorted(SYNTHETIC))
def test_synthetic_older_layouts(key: str) -> None:
    text = SYNTHETIC_FILES[key].read_text(encoding="utf-8")
    assert rows(parse_proc_bonding("bond0", text)) == SYNTHETIC[key]


def test_synthetic_layouts_are_documented() -> None:
    readme = (FIXTURES / "synthetic" / "README.md").read_text(encoding="utf-8")
    for name in SYNTHETIC_FILES:
        assert f"`{name}.txt`" in readme
    assert all("SYNTHETIC" in name for name in SYNTHETIC_FILES)


@pytest.mark.parametrize("key", BONDS)
def test_unprivileged_view_hides_the_states(key: str) -> None:
    full = EXPECTED[key]
    assert not isinstance(full, str)
    bond = parse_proc_bonding("bond0", unprivileged(CAPTURES[key].read_text(encoding="utf-8")))
    mode, rate, mii, _aggregator, _mac, slaves = full
    assert rows(bond) == (
        mode,
        rate,
        mii,
        None,  # "Active Aggregator Info" is CAP_NET_ADMIN only
        None,
        [(name, s_mii, agg, None, None, None) for name, s_mii, agg, _a, _p, _m in slaves],
    )


def _sample(key: str) -> Dict[str, str]:
    """The lab's 50 ms sysfs sample taken when a timeline snapshot was saved."""
    scenario, name = key.split("/")
    seconds = float(re.search(r"([+-][\d.]+)s$", name).group(1))  # type: ignore[union-attr]
    tsv = FIXTURES / "timelines" / scenario / f"{scenario}.{KERNEL}.timeline.tsv"
    with tsv.open(encoding="utf-8") as handle:
        (row,) = [
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if abs(float(r["t_s"]) - seconds) < 0.006
        ]
    return row


TIMELINE_SNAPSHOTS = sorted(k for k in BONDS if "/snap-" in k)


@pytest.mark.parametrize("key", TIMELINE_SNAPSHOTS)
def test_merge_sysfs_restores_the_states_of_every_snapshot(key: str) -> None:
    full = EXPECTED[key]
    assert not isinstance(full, str)
    sample = _sample(key)
    bond = parse_proc_bonding("bond0", unprivileged(CAPTURES[key].read_text(encoding="utf-8")))
    (slave,) = bond.slaves
    merged = merge_sysfs(
        bond,
        {"mode": "802.3ad 4", "lacp_rate": "fast 1", "ad_aggregator": "1"},
        {
            slave.name: {
                "mii_status": sample["mii"] + "\n",
                "ad_actor_oper_port_state": sample["actor"] + "\n",
                "ad_partner_oper_port_state": sample["partner"] + "\n",
                "ad_aggregator_id": "1\n",
            }
        },
    )
    # /proc wins where it has a value (mode, rate, MII); the port states come from sysfs and
    # equal what the privileged reader saw in the details blocks.
    assert [
        (s.name, s.mii_status, s.aggregator_id, s.actor_state, s.partner_state)
        for s in merged.slaves
    ] == [row[:5] for row in full[5]]
    assert (merged.mode, merged.lacp_rate, merged.mii_status) == full[:3]
    assert merged.active_aggregator == (full[3] if full[3] is not None else 1)


#: /proc capture -> (bond sysfs capture, {slave: bonding_slave capture}); the sysfs values were
#: captured in the same state as the /proc file.
SYSFS_PAIRS = {
    "bond0-802.3ad-lacp-up": (
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"pf0": "sysfs-pf0-bonding_slave-802.3ad-lacp-up"},
    ),
    "bondslow-802.3ad-lacp_rate-slow-lacp-up": (
        "sysfs-bondslow-bonding-802.3ad-lacp_rate-slow",
        {"lagp0": "sysfs-lagp0-bonding_slave-802.3ad-lacp_rate-slow"},
    ),
    "bond0-802.3ad-lacp-up-igb": (
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"eth0": "sysfs-eth0-bonding_slave-igb"},
    ),
    "bond0-802.3ad-unpatched-netdevsim-slave-no-speed": (
        "sysfs-bond0-bonding-802.3ad-lacp-up",
        {"pf0": "sysfs-pf0-bonding_slave-unpatched-netdevsim"},
    ),
    "bondnospeed-802.3ad-slave-speed-unknown": (
        "sysfs-bondzero-bonding-802.3ad-no-slaves",
        {"lagp1": "sysfs-lagp1-bonding_slave-speed-unknown"},
    ),
}


@pytest.mark.parametrize("key", sorted(SYSFS_PAIRS))
def test_merge_sysfs_from_the_sysfs_captures(key: str) -> None:
    full = EXPECTED[key]
    assert not isinstance(full, str)
    bond_file, slave_files = SYSFS_PAIRS[key]
    bond = parse_proc_bonding("bond0", unprivileged(CAPTURES[key].read_text(encoding="utf-8")))
    merged = merge_sysfs(
        bond,
        sysfs_capture(bond_file),
        {slave: sysfs_capture(name) for slave, name in slave_files.items()},
    )
    assert [(s.name, s.actor_state, s.partner_state) for s in merged.slaves] == [
        (name, actor, partner) for name, _mii, _agg, actor, partner, _mac in full[5]
    ]
    assert [s.partner_mac for s in merged.slaves] == [None] * len(full[5])  # not in sysfs


def test_merge_sysfs_of_an_active_backup_bond_finds_no_port_states() -> None:
    text = CAPTURES["bondab-active-backup"].read_text(encoding="utf-8")
    merged = merge_sysfs(
        parse_proc_bonding("bondab", unprivileged(text)),
        sysfs_capture("sysfs-bondab-bonding-active-backup"),
        {"lagp0": sysfs_capture("sysfs-lagp0-bonding_slave-active-backup")},
    )
    assert sysfs_capture("sysfs-lagp0-bonding_slave-active-backup")["ad_aggregator_id"] == "N/A"
    assert rows(merged) == EXPECTED["bondab-active-backup"]
