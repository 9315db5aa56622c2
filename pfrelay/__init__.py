"""pf-status-relay: relay the LACP state of an SR-IOV PF's 802.3ad bond to its VFs."""

__version__ = "0.1.0"
