"""The ``pfrelay`` command line (typer). It parses, formats and exits; it does not decide.

Errors a person can fix (configuration, a missing ``ip``, a second relay) are one line on
stderr and a non-zero exit code, never a traceback: 2 for usage and configuration errors,
1 for everything else. Annotations stay in ``typing`` form: typer evaluates them at run time,
also on Python 3.9.
"""

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, NoReturn, Optional, Tuple

import typer

from pfrelay import __version__
from pfrelay import config as configs

if TYPE_CHECKING:  # the ledger module is imported by the commands that use it
    from pfrelay.discovery import Discovery
    from pfrelay.ledger import Ledger

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Relay the LACP state of SR-IOV PFs' 802.3ad bonds to the link state of their VFs.",
)
config_app = typer.Typer(no_args_is_help=True, help="Show or write the configuration.")
app.add_typer(config_app, name="config")


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit."""
    typer.echo(f"pfrelay: error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pfrelay {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pf-status-relay."""


# Options shared by the commands that read the host.
ConfigOpt = typer.Option(
    None, "--config", "-c", help=f"TOML file (default {configs.DEFAULT_PATH})."
)
InterfaceOpt = typer.Option(
    None, "--interface", "-i", help="PF to watch (repeat); replaces the configured list."
)
# Millisecond options are taken as text and parsed by the config module like the file and the
# environment, so "--polling-interval abc" is the same one-line error naming the key and flag.
IntervalOpt = typer.Option(
    None, "--polling-interval", metavar="MS", help="Milliseconds between cycles (>= 100)."
)
ProcfsOpt = typer.Option(None, "--procfs", help="Where the host's /proc is mounted.")
SysfsOpt = typer.Option(None, "--sysfs", help="Where the host's /sys is mounted.")
IpOpt = typer.Option(None, "--ip", help="The iproute2 binary (name or absolute path).")
StateOpt = typer.Option(None, "--state-file", help="The ledger of VFs the relay disabled.")
LogFormatOpt = typer.Option(None, "--log-format", help="json (default) or text.")
LogLevelOpt = typer.Option(None, "--log-level", help="debug, info, warning or error.")
IpTimeoutOpt = typer.Option(
    None, "--ip-timeout", metavar="MS", help="Milliseconds before a hung ip is killed."
)
RestoreDelayOpt = typer.Option(
    None,
    "--restore-delay",
    metavar="MS",
    help="Milliseconds LACP must stay up before VFs are restored.",
)
HoldOpt = typer.Option(
    None,
    "--unmonitored-hold",
    metavar="MS",
    help="Milliseconds the relay's VFs stay disabled once their PF cannot be monitored.",
)
MetricsOpt = typer.Option(None, "--metrics-file", help="Prometheus textfile to write each cycle.")
AggregationOpt = typer.Option(
    None,
    "--partner-requires-aggregation/--partner-may-lack-aggregation",
    help="Whether the partner must set Aggregation (Open vSwitch single-port LAGs do not).",
)


def _seconds(flag: str, text: str) -> float:
    """A positive, finite number of seconds from an option's text, or a one-line error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        shown = text if len(text) <= 60 else text[:57] + "..."
        fail(f'{flag}: must be a number of seconds > 0, got "{shown}"')
    return value


def _load(config_path: Optional[str], flags: Dict[str, object]) -> configs.Config:
    try:
        cfg, _sources = configs.load(config_path, os.environ, flags)
    except configs.ConfigError as exc:
        fail(str(exc))
    return cfg


def _flags(
    interfaces: Optional[List[str]],
    polling_interval: Optional[str],
    procfs: Optional[str],
    sysfs: Optional[str],
    ip: Optional[str],
    state_file: Optional[str],
    log_format: Optional[str] = None,
    log_level: Optional[str] = None,
    **more: object,
) -> Dict[str, object]:
    return {
        **more,
        "interfaces": tuple(interfaces) if interfaces else None,
        "polling_interval_ms": polling_interval,
        "procfs": procfs,
        "sysfs": sysfs,
        "ip": ip,
        "state_file": state_file,
        "log_format": log_format,
        "log_level": log_level,
    }


@app.command()
def run(
    config: Optional[str] = ConfigOpt,
    interface: Optional[List[str]] = InterfaceOpt,
    polling_interval: Optional[str] = IntervalOpt,
    procfs: Optional[str] = ProcfsOpt,
    sysfs: Optional[str] = SysfsOpt,
    ip: Optional[str] = IpOpt,
    state_file: Optional[str] = StateOpt,
    log_format: Optional[str] = LogFormatOpt,
    log_level: Optional[str] = LogLevelOpt,
    ip_timeout: Optional[str] = IpTimeoutOpt,
    restore_delay: Optional[str] = RestoreDelayOpt,
    unmonitored_hold: Optional[str] = HoldOpt,
    metrics_file: Optional[str] = MetricsOpt,
    partner_requires_aggregation: Optional[bool] = AggregationOpt,
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Log what would change; change nothing."),
) -> None:
    """Watch the PFs and relay their LACP state to their VFs (the daemon)."""
    from pfrelay import daemon, runtime
    from pfrelay.iproute import IpError
    from pfrelay.log import EventLog

    flags = _flags(
        interface,
        polling_interval,
        procfs,
        sysfs,
        ip,
        state_file,
        log_format,
        log_level,
        ip_timeout_ms=ip_timeout,
        restore_delay_ms=restore_delay,
        unmonitored_hold_ms=unmonitored_hold,
        metrics_file=metrics_file,
        partner_requires_aggregation=partner_requires_aggregation,
    )
    cfg = _load(config, flags)
    try:
        configs.require_interfaces(cfg)
    except configs.ConfigError as exc:
        fail(str(exc))
    log = EventLog(cfg.log_format, cfg.log_level)
    try:
        code = daemon.serve(
            cfg,
            config_path=config,
            flags=flags,
            env=os.environ,
            log=log,
            once=once,
            dry_run=dry_run,
        )
    except IpError as exc:
        fail(str(exc))
    except runtime.AlreadyRunning as exc:
        fail(str(exc), 1)
    except runtime.RuntimeDirError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def status(
    interfaces: Optional[List[str]] = typer.Argument(
        None, help="PFs to show (default: the configured ones)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object (a stable contract)."
    ),
    config: Optional[str] = ConfigOpt,
    procfs: Optional[str] = ProcfsOpt,
    sysfs: Optional[str] = SysfsOpt,
    ip: Optional[str] = IpOpt,
    state_file: Optional[str] = StateOpt,
    probe: Optional[str] = typer.Option(
        None,
        "--probe",
        help="live or ready: check only the running relay's lock and heartbeat (for probes).",
    ),
    max_age: Optional[str] = typer.Option(
        None,
        "--max-age",
        metavar="SECONDS",
        help="With --probe: seconds (default: polling interval + 30).",
    ),
) -> None:
    """Show each PF's bond, LACP verdict and VFs. Exit 0 when all are monitored and up, else 1."""
    from pfrelay import runtime

    if probe is not None:
        if probe not in ("live", "ready"):
            fail(f'--probe: must be "live" or "ready", got "{probe}"')
        if interfaces:
            fail("--probe checks the relay, not PFs: drop the interface names")
        cfg = _load(config, _flags(None, None, None, None, None, state_file))
        limit = _seconds("--max-age", max_age) if max_age is not None else None
        if limit is None:
            limit = cfg.polling_interval_ms / 1000.0 + 30.0
        ok, line = runtime.probe(runtime.service_info(Path(cfg.state_file)), probe, limit)
        typer.echo(line)
        raise typer.Exit(0 if ok else 1)

    from pfrelay import ledger as ledgers
    from pfrelay import status as views
    from pfrelay.iproute import Ip, IpError, resolve_binary
    from pfrelay.lacp import Lacp
    from pfrelay.relay import observe

    cfg = _load(config, _flags(interfaces, None, procfs, sysfs, ip, state_file))
    if not cfg.interfaces:
        fail(
            "no interfaces given or configured; name them (pfrelay status ens1f0) or set "
            "interfaces in the config file or PF_STATUS_RELAY_INTERFACES"
        )
    for name in configs.unused_patterns(cfg):
        typer.echo(f"pfrelay: warning: {name} is ignored: interfaces has no discover/", err=True)
    try:
        runner: Optional[Ip] = Ip(resolve_binary(cfg.ip, os.environ), cfg.ip_timeout_ms / 1000.0)
    except IpError as exc:
        typer.echo(f"pfrelay: warning: {exc}; VF states not shown", err=True)
        runner = None
    try:
        ledger = ledgers.load(Path(cfg.state_file))
    except ledgers.LedgerError as exc:
        typer.echo(f"pfrelay: warning: {exc}", err=True)
        ledger = ledgers.Ledger()
    ledger, _renamed = _follow(cfg, ledger)
    found, names, sources = _targets(cfg, ledger)
    stale = _stale_entries(cfg, ledger, names)
    for pf, reason in sorted(stale.items()):
        typer.echo(f"pfrelay: warning: {pf}: ledger entry ignored: {reason}", err=True)
    ledger = ledgers.without(ledger, stale)
    reports = [observe(cfg, runner, ledger, pf) for pf in names]
    info = runtime.service_info(Path(cfg.state_file))
    if json_output:
        typer.echo(views.to_json(reports, info, found, sources))
    else:
        typer.echo(views.to_table(reports, info, found))
    healthy = all(
        r.assessment.monitored and r.assessment.lacp is Lacp.UP and not r.disabled_by_relay
        for r in reports
    )
    raise typer.Exit(0 if healthy else 1)


@config_app.command("show")
def config_show(
    config: Optional[str] = ConfigOpt,
    interface: Optional[List[str]] = InterfaceOpt,
    polling_interval: Optional[str] = IntervalOpt,
) -> None:
    """Print the effective configuration and where each value came from."""
    flags = _flags(interface, polling_interval, None, None, None, None)
    try:
        cfg, sources = configs.load(config, os.environ, flags)
    except configs.ConfigError as exc:
        fail(str(exc))
    typer.echo(configs.show(cfg, sources))


@config_app.command("init")
def config_init(
    path: str = typer.Argument(configs.DEFAULT_PATH, help="Where to write the file."),
    interface: Optional[List[str]] = InterfaceOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a configuration file with every key (the defaults, or the given interfaces)."""
    try:
        names = tuple(configs.validate_interface_name(name) for name in interface or ())
    except configs.ConfigError as exc:
        fail(str(exc))
    cfg = configs.Config(interfaces=names)
    target = Path(path)
    if target.is_symlink():
        # Even with --force: as root, writing through a planted link overwrites its target.
        fail(
            f"{target} is a symbolic link; refusing to write through it: "
            "remove it or name the real file"
        )
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to overwrite it")
    from pfrelay import safefile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A new file beside it, then rename: a link swapped in meanwhile is replaced, not followed.
        safefile.replace(target, configs.render_toml(cfg).encode("utf-8"), 0o644)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}", 1)
    typer.echo(f"wrote {target}")


@app.command()
def check(
    interfaces: Optional[List[str]] = typer.Argument(
        None, help="PFs to check (default: the configured ones)."
    ),
    config: Optional[str] = ConfigOpt,
    procfs: Optional[str] = ProcfsOpt,
    sysfs: Optional[str] = SysfsOpt,
    ip: Optional[str] = IpOpt,
) -> None:
    """Preflight: bond, mode, single slave, lacp_rate, MII, VFs, ip, CAP_NET_ADMIN. Exit 0 or 1."""
    from pfrelay import ledger as ledgers
    from pfrelay import preflight
    from pfrelay.iproute import Ip, IpError, resolve_binary
    from pfrelay.relay import observe

    cfg = _load(config, _flags(interfaces, None, procfs, sysfs, ip, None))
    try:
        configs.require_interfaces(cfg, config)
    except configs.ConfigError as exc:
        fail(str(exc))
    runner: Optional[Ip] = None
    ip_error = None
    try:
        runner = Ip(resolve_binary(cfg.ip, os.environ), cfg.ip_timeout_ms / 1000.0)
        runner.link_show("lo")
    except IpError as exc:
        ip_error = str(exc)
    ip_binary = runner.binary if runner is not None else None
    try:
        with open(Path(cfg.procfs) / "self/status", encoding="utf-8") as handle:
            cap = preflight.has_cap_net_admin(handle.read())
    except OSError:
        cap = None
    checks = preflight.check_process(cap, ip_error, ip_binary)
    found, names, _sources = _targets(cfg, ledgers.Ledger())
    if found is not None:
        checks += preflight.check_discovery(found)
    for pf in names:
        report = observe(cfg, runner if ip_error is None else None, ledgers.Ledger(), pf)
        visible = len(report.vfs) if report.vfs is not None else None
        checks += preflight.check_pf(report.facts, report.assessment, visible, report.vf_error)
    for item in checks:
        typer.echo(item.line())
    failed = any(c.outcome is preflight.Outcome.FAIL for c in checks)
    raise typer.Exit(1 if failed else 0)


@app.command()
def restore(
    interfaces: Optional[List[str]] = typer.Argument(
        None, help="PFs to restore (default: every PF in the ledger)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    config: Optional[str] = ConfigOpt,
    procfs: Optional[str] = ProcfsOpt,
    sysfs: Optional[str] = SysfsOpt,
    ip: Optional[str] = IpOpt,
    state_file: Optional[str] = StateOpt,
    from_ledger: Optional[str] = typer.Option(
        None,
        "--ledger",
        help="Restore from this ledger file instead (e.g. one the relay set aside as damaged).",
    ),
) -> None:
    """Put every VF the relay disabled back to auto and empty the ledger (decommissioning).

    Entries that no longer name the VFs the relay disabled (written in another boot, the PF or
    its VFs re-created since) are dropped, not restored: those VFs are someone else's now. A
    PF renamed since is found by its ifindex. ``--ledger`` reads another file, read-only; one
    too damaged to parse gives up the PFs and VFs it still names.
    """
    from pfrelay import ledger as ledgers
    from pfrelay import runtime
    from pfrelay.iproute import Ip, IpError, VfChange, resolve_binary
    from pfrelay.sriov import LinkState, VfListError, parse_link_show

    cfg = _load(config, _flags(None, None, procfs, sysfs, ip, state_file))
    for name in interfaces or ():
        try:
            configs.validate_interface_name(name)
        except configs.ConfigError as exc:
            fail(str(exc))
    path = Path(cfg.state_file)
    try:
        lock = runtime.acquire(path)
    except runtime.AlreadyRunning as exc:
        fail(f"{exc}; the running relay would disable the VFs again", 1)
    except runtime.RuntimeDirError as exc:
        fail(str(exc))
    with lock:
        try:
            runner = Ip(resolve_binary(cfg.ip, os.environ), cfg.ip_timeout_ms / 1000.0)
            ledger = _restore_source(Path(from_ledger)) if from_ledger else ledgers.load(path)
        except (ledgers.LedgerError, IpError) as exc:
            fail(str(exc), 1)
        ledger, renamed = _follow(cfg, ledger)
        targets = [renamed.get(pf, pf) for pf in interfaces] if interfaces else sorted(ledger.pfs)
        stale = _stale_entries(cfg, ledger, targets)
        for pf, reason in sorted(stale.items()):
            ids = " ".join(map(str, sorted(ledger.disabled(pf))))
            typer.echo(f"pfrelay: {pf}: not restoring VFs {ids}: {reason}", err=True)
        plan = {
            pf: sorted(ledger.disabled(pf))
            for pf in targets
            if ledger.disabled(pf) and pf not in stale
        }
        if not plan:
            if stale and not from_ledger:
                _save_ledger(path, ledgers.without(ledger, stale))
            typer.echo(
                "nothing to restore: the ledger names no disabled VF for "
                + (", ".join(targets) or "any PF")
            )
            raise typer.Exit(0)
        summary = "; ".join(f"{pf}: VFs {' '.join(map(str, vfs))}" for pf, vfs in plan.items())
        if not yes:
            if not sys.stdin.isatty():
                fail(f"would set to auto {summary}; pass --yes to confirm without a terminal")
            typer.confirm(f"Set to auto {summary}?", abort=True)
        ledger = ledgers.without(ledger, stale)
        code = 0
        for pf, vfs in plan.items():
            try:
                link = parse_link_show(pf, runner.link_show(pf)[0])
            except (IpError, VfListError) as exc:
                typer.echo(f"pfrelay: error: {pf}: {exc}", err=True)
                code = 1
                continue
            states = {vf.vf: vf.link_state for vf in link.vfs}
            # Only VFs still disabled go back: one an operator changed since is theirs now.
            changes = [
                VfChange(pf, vf, LinkState.AUTO)
                for vf in vfs
                if states.get(vf) is LinkState.DISABLE
            ]
            result = runner.set_vf_states(changes)
            errors = {change.vf: error for change, error in result.failed}
            try:  # verify: ip may time out after applying, or exit 0 and change nothing
                after = parse_link_show(pf, runner.link_show(pf)[0])
                states = {vf.vf: vf.link_state for vf in after.vfs}
            except (IpError, VfListError):
                states.update({c.vf: c.state for c in result.applied})
            kept = set()
            for change in changes:
                if states.get(change.vf) is LinkState.AUTO:
                    typer.echo(f"{pf} vf {change.vf}: auto")
                    continue
                error = errors.get(change.vf, "ip reported success, but the VF is still disabled")
                typer.echo(f"pfrelay: error: {pf} vf {change.vf}: {error}", err=True)
                kept.add(change.vf)
                code = 1
            entry = ledger.entry(pf)
            ledger = ledger.with_pf(pf, entry.updated(frozenset(kept), *_UNKNOWN))
        if not from_ledger:
            _save_ledger(path, ledger)
    raise typer.Exit(code)


_UNKNOWN = (None, None, None)


def _restore_source(path: Path) -> "Ledger":
    """A ledger given to ``restore --ledger``: parsed, or salvaged when it is damaged."""
    from pfrelay import ledger as ledgers

    try:
        return ledgers.load(path)
    except ledgers.LedgerError as exc:
        try:
            with open(path, "rb") as handle:
                text = handle.read(4 * 1024 * 1024).decode("utf-8", "replace")
        except OSError as err:
            raise ledgers.LedgerError(f"cannot read {path}: {err.strerror or err}") from None
        found = ledgers.salvage(text)
        if not found:
            raise ledgers.LedgerError(f"{exc}; no PF or VF can be made out of it") from None
        typer.echo(
            f"pfrelay: warning: {exc}; restoring what can be made out of it (only VFs that "
            "are disabled now are set to auto)",
            err=True,
        )
        return ledgers.Ledger({pf: ledgers.PfEntry(vfs) for pf, vfs in found.items()})


def _follow(cfg: configs.Config, ledger: "Ledger") -> Tuple["Ledger", Dict[str, str]]:
    """The ledger with entries moved to renamed PFs' current names (said on stderr)."""
    from pfrelay.relay import follow_renames

    followed, renames = follow_renames(ledger, cfg.sysfs)
    for old, new in renames:
        typer.echo(f"pfrelay: {old} was renamed {new}; its ledger entry follows it", err=True)
    return followed, dict(renames)


def _targets(
    cfg: configs.Config, ledger: "Ledger"
) -> Tuple[Optional["Discovery"], List[str], Dict[str, str]]:
    """(discovery or None, the PFs to show, PF -> configured/discovered/ledger).

    Without ``discover/``: the configured names. With it, as the daemon cycles them: the
    names, the discovered PFs, and the PFs the ledger holds disabled VFs of.
    """
    from pfrelay.discovery import discover

    names = list(cfg.names)
    sources = {pf: "configured" for pf in names}
    if not cfg.discover:
        return None, names, sources
    found = discover(cfg.sysfs, cfg.discover_include, cfg.discover_exclude)
    held = sorted(pf for pf in ledger.pfs if ledger.disabled(pf))
    for source, pfs in (("discovered", found.candidates), ("ledger", held)):
        for pf in pfs:
            if pf not in sources:
                names.append(pf)
                sources[pf] = source
    return found, names, sources


def _stale_entries(cfg: configs.Config, ledger: "Ledger", pfs: List[str]) -> Dict[str, str]:
    """The entries of ``pfs`` that no longer name the VFs the relay disabled, with the reason."""
    from pfrelay import ledger as ledgers
    from pfrelay.host import read_boot_id, read_sriov, read_vfs_id

    now = {
        pf: ledgers.Identity(*read_sriov(cfg.sysfs, pf)[:2], read_vfs_id(cfg.sysfs, pf))
        for pf in pfs
        if pf in ledger.pfs
    }
    stale = ledgers.stale_entries(ledger, read_boot_id(cfg.procfs), now)
    return {pf: why for pf, why in stale if pf in now}


def _save_ledger(path: Path, ledger: "Ledger") -> None:
    from pfrelay import ledger as ledgers

    try:
        ledgers.save(path, ledger)
    except ledgers.LedgerError as exc:
        fail(str(exc), 1)


@app.command()
def demo(
    log_format: str = typer.Option("text", "--log-format", help="text (default) or json."),
) -> None:
    """Replay a real LACP failure and recovery (Linux 6.12) through the relay; no NIC needed."""
    from pfrelay import demo as replay

    raise typer.Exit(replay.run(log_format=log_format))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
