"""The shipped unit keeps what the relay needs to work, whatever a hardening pass would like.

Each setting pinned here breaks the relay silently if changed: ``systemd-analyze security``
would score the change as an improvement, and only a host with real bonds would show it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "pf-status-relay.service"
SYSUSERS = SYSTEMD_DIR / "pf-status-relay.sysusers.conf"
CHECK = SYSTEMD_DIR / "check.sh"


def _entries(path: Path) -> List[Tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order (keys may repeat)."""
    entries = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def _settings(section: str) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    for sect, key, value in _entries(UNIT):
        if sect == section:
            found.setdefault(key, []).append(value)
    return found


SERVICE = _settings("Service")
UNIT_SECTION = _settings("Unit")


def _one(key: str) -> str:
    values = SERVICE.get(key, [])
    assert len(values) == 1, f"{key}= should be set exactly once, found {values}"
    return values[0]


def test_sections() -> None:
    assert {sect for sect, _, _ in _entries(UNIT)} == {"Unit", "Service", "Install"}
    assert _settings("Install")["WantedBy"] == ["multi-user.target"]


def test_lifecycle_matches_the_daemon() -> None:
    # systemd 252 (RHEL 9) has no Type=notify-reload; the daemon sends READY=1/RELOADING=1.
    assert _one("Type") == "notify"
    assert _one("NotifyAccess") == "main"
    assert _one("ExecStart") == "/usr/bin/pfrelay run"
    assert _one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one("WatchdogSec") == "30"
    assert _one("Restart") == "on-failure"
    assert _one("RestartSec")
    assert _one("EnvironmentFile") == "-/etc/sysconfig/pf-status-relay"


def test_ledger_directory_survives_restarts() -> None:
    assert _one("RuntimeDirectory") == "pf-status-relay"  # /run/pf-status-relay/state.json
    assert _one("RuntimeDirectoryPreserve") == "yes"
    assert _one("RuntimeDirectoryMode") == "0700"


def test_boot_ordering_does_not_wait_for_the_network() -> None:
    after = " ".join(UNIT_SECTION.get("After", [])).split()
    wants = " ".join(UNIT_SECTION.get("Wants", [])).split()
    assert "network-pre.target" in after
    assert "network-pre.target" in wants
    every = " ".join(v for values in UNIT_SECTION.values() for v in values)
    assert "network-online.target" not in every
    assert "network.target" not in after


def test_privileges_are_cap_net_admin_for_a_dedicated_user() -> None:
    assert _one("CapabilityBoundingSet") == "CAP_NET_ADMIN"
    # Ambient: effective in the relay (capable() for /proc/net/bonding) and inherited by
    # `ip`, whose drop_cap() keeps capabilities only when CAP_NET_ADMIN is inheritable.
    assert _one("AmbientCapabilities") == "CAP_NET_ADMIN"
    user = _one("User")
    assert user not in ("root", "0")
    assert "DynamicUser" not in SERVICE  # the preserved ledger must not outlive its UID
    assert _one("NoNewPrivileges") == "yes"


def test_sysusers_creates_the_unit_user() -> None:
    lines = [
        line.split()
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [(fields[0], fields[1]) for fields in lines] == [("u", _one("User"))]
    assert _one("Group") == _one("User")  # `u` creates the group of the same name


def test_the_relay_can_still_see_and_change_the_host() -> None:
    # The host's interfaces, not a private network namespace.
    assert "PrivateNetwork" not in SERVICE
    # capable(CAP_NET_ADMIN) is checked against the initial user namespace.
    assert SERVICE.get("PrivateUsers", ["no"]) == ["no"]
    # ProcSubset=pid hides /proc/net, hence /proc/net/bonding.
    assert SERVICE.get("ProcSubset", ["all"]) == ["all"]
    families = _one("RestrictAddressFamilies").split()
    assert "AF_NETLINK" in families  # ip
    assert "AF_UNIX" in families  # sd_notify
    assert not families[0].startswith("~")
    # Writing VF state goes through netlink; /sys and /proc/sys are only read.
    assert _one("ProtectKernelTunables") == "yes"
    assert "ReadOnlyPaths" not in SERVICE and "InaccessiblePaths" not in SERVICE


def test_sandbox_settings() -> None:
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
        "IPAddressDeny": "any",
    }
    assert {key: SERVICE.get(key, ["<unset>"])[-1] for key in expected} == expected
    assert SERVICE["SystemCallFilter"][0] == "@system-service"
    # A denied call fails with EPERM instead of killing the relay with SIGSYS.
    assert _one("SystemCallErrorNumber") == "EPERM"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_check_script_fails_on_what_systemd_252_only_warns_about(tmp_path: Path) -> None:
    bad = tmp_path / "pf-status-relay.service"
    bad.write_text(UNIT.read_text().replace("Type=notify\n", "Type=notify-reload\n"))
    result = subprocess.run(
        ["bash", str(CHECK)],
        env={"UNIT": str(bad), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PFRELAY": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "systemd 252 " not in result.stdout:
        pytest.skip("Type=notify-reload is valid on systemd >= 253")
    assert result.returncode == 1
    assert "notify-reload" in result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("dropped", ["ProtectKernelLogs", "ProtectClock"])
def test_check_script_holds_the_exposure_at_1_1(tmp_path: Path, dropped: str) -> None:
    """Issue 13's gate: one sandbox setting fewer (exposure 1.2-1.3) fails `make systemd-check`."""
    bad = tmp_path / "pf-status-relay.service"
    lines = UNIT.read_text().splitlines(keepends=True)
    bad.write_text("".join(line for line in lines if not line.startswith(f"{dropped}=")))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PFRELAY": "/nonexistent"}
    shipped = subprocess.run(
        ["bash", str(CHECK)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "ok: exposure 1.1 <= 1.1" in shipped.stdout, shipped.stdout + shipped.stderr
    result = subprocess.run(
        ["bash", str(CHECK)],
        env={**env, "UNIT": str(bad)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "is above 1.1" in result.stderr
