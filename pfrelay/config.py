"""Configuration: defaults < TOML file < environment < command-line flags.

The TOML file is one top-level table whose keys are the ``Config`` field names, so the output of
``render_toml`` (``pfrelay config init``) loads back unchanged. Every configuration key also has
an environment variable, by one rule for all keys::

    PF_STATUS_RELAY_ + the key in upper case, without a trailing "_ms"

so ``interfaces`` is ``PF_STATUS_RELAY_INTERFACES`` (comma-separated) and
``polling_interval_ms`` is ``PF_STATUS_RELAY_POLLING_INTERVAL`` (milliseconds), the names the
upstream relay's DaemonSet already uses; ``ip_timeout_ms`` is ``PF_STATUS_RELAY_IP_TIMEOUT``.
A variable that is set but empty (or only whitespace) counts as not set. Booleans accept
true/false, 1/0, yes/no and on/off. Unknown ``PF_STATUS_RELAY_*`` variables are not an error,
because Kubernetes injects ``<SERVICE>_PORT``-style variables for a Service of the same name;
``env_warnings`` reports the ones that look like a misspelt key.

Every value is validated where it is read, so an error names the key and the file, variable or
flag it came from, even when a later layer would have overridden it. Errors are ``ConfigError``
with a one-line message that says how to fix it. Only ``read_text`` touches the filesystem.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import sys
import textwrap
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

# tomli_w is imported by the two functions that write TOML (`config init` and `config show`),
# not here: every `pfrelay run` and probe imports this module and never writes TOML.
from pfrelay.discovery import DISCOVER

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT_PATH = "/etc/pf-status-relay/config.toml"
ENV_PREFIX = "PF_STATUS_RELAY_"

#: Linux IFNAMSIZ is 16 bytes including the terminating NUL.
IFNAME_MAX_BYTES = 15
#: A config file bigger than this is not a config file (and reading /dev/zero must end).
MAX_FILE_BYTES = 1024 * 1024

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration a person must fix; ``str()`` is one line naming the key or file."""

    def __init__(self, message: str) -> None:
        super().__init__(_printable(message))


@dataclasses.dataclass(frozen=True)
class Config:
    """The effective configuration (see ``FIELD_HELP`` for what each field does)."""

    interfaces: Tuple[str, ...] = ()
    polling_interval_ms: int = 1000
    discover_include: Tuple[str, ...] = ()
    discover_exclude: Tuple[str, ...] = ()
    procfs: str = "/proc"
    sysfs: str = "/sys"
    ip: str = "ip"
    ip_timeout_ms: int = 5000
    state_file: str = "/run/pf-status-relay/state.json"
    partner_requires_aggregation: bool = True
    restore_delay_ms: int = 0
    unmonitored_hold_ms: int = 30_000
    metrics_file: Optional[str] = None
    log_format: str = "json"
    log_level: str = "info"

    @property
    def discover(self) -> bool:
        """Whether ``interfaces`` has the ``discover/`` entry (``pfrelay.discovery``)."""
        return DISCOVER in self.interfaces

    @property
    def names(self) -> Tuple[str, ...]:
        """The PFs named explicitly (``interfaces`` without ``discover/``)."""
        return tuple(name for name in self.interfaces if name != DISCOVER)


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How one key is parsed and checked: ``kind`` names a checker (names, patterns, int, ...)."""

    kind: str
    low: int = 0
    high: int = 0
    choices: Tuple[str, ...] = ()


_SPECS: Dict[str, _Spec] = {
    "interfaces": _Spec("names"),
    "polling_interval_ms": _Spec("int", 100, 3_600_000),
    "procfs": _Spec("path"),
    "sysfs": _Spec("path"),
    "ip": _Spec("command"),
    "ip_timeout_ms": _Spec("int", 100, 60_000),
    "state_file": _Spec("path"),
    "partner_requires_aggregation": _Spec("bool"),
    "restore_delay_ms": _Spec("int", 0, 3_600_000),
    "unmonitored_hold_ms": _Spec("int", 1000, 3_600_000),
    "metrics_file": _Spec("path"),
    "log_format": _Spec("choice", choices=LOG_FORMATS),
    "log_level": _Spec("choice", choices=LOG_LEVELS),
    "discover_include": _Spec("patterns"),
    "discover_exclude": _Spec("patterns"),
}

#: One or two sentences per key: what it does and when to change it (``render_toml`` comments).
FIELD_HELP: Dict[str, str] = {
    "interfaces": (
        'The PFs to watch, e.g. ["ens1f0np0", "ens1f1np1"]: netdev names of SR-IOV physical '
        "functions enslaved to an 802.3ad bond, as `ip link` shows them. The entry "
        f'"{DISCOVER}" (no interface name can contain "/") watches every SR-IOV port of a bond '
        "instead, as the host has them from moment to moment. Empty: nothing to watch."
    ),
    "polling_interval_ms": (
        "How often to read the LACP state, in milliseconds (100 to 3600000). Lower it for "
        "faster failover at the cost of CPU; LACP itself needs up to 3 s (fast rate) to notice."
    ),
    "procfs": (
        "Where procfs is mounted. Change it only when running in a container that mounts the "
        "host's /proc elsewhere, e.g. /host/proc."
    ),
    "sysfs": (
        "Where sysfs is mounted. Change it only when running in a container that mounts the "
        "host's /sys elsewhere, e.g. /host/sys."
    ),
    "ip": (
        "The iproute2 binary: a name looked up in PATH, or an absolute path. Set an absolute "
        "path when PATH is restricted or ip lives somewhere unusual."
    ),
    "ip_timeout_ms": (
        "How long one ip command may run before it is abandoned, in milliseconds (100 to "
        "60000). Raise it on hosts with very many VFs, where ip link is slow."
    ),
    "state_file": (
        "The ledger of VFs this relay disabled, so that it re-enables only those, also after "
        "a restart; its directory also holds the lock and the heartbeat. Absolute path; the "
        "systemd unit can write only /run/pf-status-relay."
    ),
    "partner_requires_aggregation": (
        "Whether LACP counts as up only when the partner sets the Aggregation bit. Set false "
        "for partners that run single-port LAGs without it, such as Open vSwitch (state 59)."
    ),
    "restore_delay_ms": (
        "How long LACP must stay up before the VFs are re-enabled, in milliseconds (0 to "
        "3600000). Raise it to ride out a flapping link instead of bouncing the VFs."
    ),
    "unmonitored_hold_ms": (
        "How long the VFs the relay disabled stay disabled once their PF cannot be monitored "
        "(it left its bond, the bond was deleted or changed mode), in milliseconds (1000 to "
        "3600000). Then they are restored: the verdict they were disabled for is gone."
    ),
    "metrics_file": (
        "Absolute path of a file to write metrics to (Prometheus text format, e.g. for the "
        "node_exporter textfile collector). Not set: no metrics file. Under the systemd unit, "
        "add its directory to ReadWritePaths= (systemctl edit pf-status-relay)."
    ),
    "log_format": (
        '"json": one JSON object per line, for log collectors; "text": for people at a terminal.'
    ),
    "log_level": (
        'The least severe events to log: "debug", "info", "warning" or "error". Use "debug" '
        "only while troubleshooting."
    ),
    "discover_include": (
        f'With "{DISCOVER}" in interfaces: discover only PFs whose name matches one of these '
        'shell patterns, e.g. ["ens*"]. Empty: every SR-IOV port of a bond.'
    ),
    "discover_exclude": (
        f'With "{DISCOVER}" in interfaces: never discover PFs whose name matches one of these '
        'shell patterns, e.g. ["ens1f1np1"]. Explicitly named interfaces are not affected.'
    ),
}

#: Shown commented out by ``render_toml`` for keys that are not set.
_EXAMPLES: Dict[str, object] = {
    "metrics_file": "/var/lib/node_exporter/textfile_collector/pf-status-relay.prom",
}

FIELDS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


def _env_name(field: str) -> str:
    return ENV_PREFIX + re.sub(r"_ms$", "", field).upper()


def _flag_name(field: str) -> str:
    if field == "interfaces":
        return "--interface"  # repeatable, one name each
    if field in ("discover_include", "discover_exclude"):
        return "--" + field.replace("_", "-")  # repeatable, one pattern each
    return "--" + re.sub(r"_ms$", "", field).replace("_", "-")


#: Config field -> its environment variable (``PF_STATUS_RELAY_<KEY>`` without ``_MS``).
ENV_VARS: Dict[str, str] = {name: _env_name(name) for name in FIELDS}
#: Config field -> the CLI flag that sets it, as sources and error messages name it.
FLAG_NAMES: Dict[str, str] = {name: _flag_name(name) for name in FIELDS}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_INT_RE = re.compile(r"[+-]?[0-9]+")
#: An environment or flag integer longer than this is out of every key's range.
_INT_MAX_CHARS = 20
_SYNTAX_RE = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)
_END_RE = re.compile(r"^(?P<what>.*) \(at end of document\)$", re.S)


# ------------------------------------------------------------------------------ messages
def _printable(text: str) -> str:
    """``text`` with every non-printable character (newlines too) escaped: one line."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def _escape(char: str) -> str:
    """``\\n``, ``\\u0085``, ``\\U0001f600``: valid in Python, JSON (BMP) and TOML strings."""
    code = ord(char)
    if code < 0x20:
        return json.dumps(char)[1:-1]
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _quote(text: str) -> str:
    """A string as messages show it: in double quotes, escaped, shortened past 60 chars."""
    if len(text) > 60:
        text = text[:57] + "..."
    return '"' + _printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _show(value: object, depth: int = 0) -> str:
    """A value as messages show it, TOML-like: ``"abc"``, ``true``, ``5``, ``["a", "b"]``.

    Nested arrays are shown two levels deep (a hostile file nests them hundreds deep).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (list, tuple)):
        if depth >= 2:
            return "[...]"
        inner = ", ".join(_show(item, depth + 1) for item in value[:5])
        return "[" + inner + (", ..." if len(value) > 5 else "") + "]"
    if isinstance(value, dict):
        return "a table"
    return _printable(str(value))[:60]


def _suggest(word: str, options: Sequence[str], cutoff: float = 0.75) -> Optional[str]:
    """The option closest to ``word``, ignoring case, "_" and "-" (``pollingInterval`` too)."""

    def norm(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    by_norm = {norm(option): option for option in options}
    match = difflib.get_close_matches(norm(word), list(by_norm), n=1, cutoff=cutoff)
    return by_norm[match[0]] if match else None


def _requirement(name: str) -> str:
    spec = _SPECS[name]
    if spec.kind == "names":
        return (
            f'must be a list of interface names, e.g. ["ens1f0np0", "ens1f1np1"], or ["{DISCOVER}"]'
        )
    if spec.kind == "patterns":
        return 'must be a list of interface name patterns, e.g. ["ens*", "enp59s0f?np?"]'
    if spec.kind == "int":
        return f"must be an integer >= {spec.low} and <= {spec.high} (milliseconds)"
    if spec.kind == "bool":
        return "must be true or false"
    if spec.kind == "path":
        return "must be an absolute path"
    if spec.kind == "command":
        return 'must be a command name without "/" (looked up in PATH) or an absolute path'
    return "must be one of " + ", ".join(f'"{choice}"' for choice in spec.choices)


def _bad(name: str, value: object, origin: str, hint: str = "") -> ConfigError:
    return ConfigError(f"{name}: {_requirement(name)}, got {_show(value)} (from {origin}){hint}")


# ------------------------------------------------------------------------ interface names
def _interface_name_problem(name: str) -> Optional[str]:
    """Why the kernel would refuse ``name`` (``dev_valid_name``), or None if it is fine."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    problems = (
        (size == 0, "it is empty"),
        (size > IFNAME_MAX_BYTES, f"it is {size} bytes long, the kernel allows at most 15"),
        (name in (".", ".."), 'it must not be "." or ".."'),
        ("/" in name, 'it must not contain "/"'),
        ("\0" in name, "it must not contain NUL characters"),
        (any(char.isspace() for char in name), "it must not contain whitespace"),
        (":" in name, 'it must not contain ":" (an alias label like eth0:1 is not an interface)'),
    )
    return next((reason for bad, reason in problems if bad), None)


_NAME_HINT = "; use a name as `ip link` shows it"


def validate_interface_name(name: str) -> str:
    """``name`` if the kernel would accept it as an interface name, else ``ConfigError``."""
    problem = _interface_name_problem(name)
    if problem is not None:
        raise ConfigError(f"{_quote(name)} is not a valid interface name: {problem}{_NAME_HINT}")
    return name


# ------------------------------------------------------------------------------- checking
def _check(name: str, value: object, origin: str) -> object:
    """``value`` (as TOML or the CLI typed it) checked and normalized for field ``name``."""
    kind = _SPECS[name].kind
    if kind == "names":
        return _check_names(value, origin)
    if kind == "patterns":
        return _check_patterns(name, value, origin)
    if kind == "int":
        return _check_int(name, value, origin)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, value, origin)
        return value
    if not isinstance(value, str):
        raise _bad(name, value, origin)
    if kind == "choice":
        return _check_choice(name, value, origin)
    if "\0" in value:
        raise _bad(name, value, origin, "; remove the NUL character")
    if os.path.isabs(value) or (kind == "command" and value and "/" not in value):
        return value
    raise _bad(name, value, origin)


def _check_int(name: str, value: object, origin: str) -> int:
    spec = _SPECS[name]
    # bool is a subclass of int: `polling_interval_ms = true` must not mean 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, value, origin)
    if not spec.low <= value <= spec.high:
        raise _bad(name, value, origin)
    return value


def _check_choice(name: str, value: str, origin: str) -> str:
    choices = _SPECS[name].choices
    lowered = value.lower()
    if lowered not in choices:
        guess = _suggest(value, choices, cutoff=0.6)
        raise _bad(name, value, origin, f' (did you mean "{guess}"?)' if guess else "")
    return lowered


def _check_names(value: object, origin: str) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad("interfaces", value, origin)
    seen = set()
    for item in value:
        problem = None if item == DISCOVER else _interface_name_problem(item)
        if problem is not None:
            raise ConfigError(
                f"interfaces: {_quote(item)} is not a valid interface name: {problem} "
                f"(from {origin}){_NAME_HINT}"
            )
        if item in seen:
            raise ConfigError(
                f"interfaces: {_quote(item)} is listed more than once (from {origin}); "
                "list each interface once"
            )
        seen.add(item)
    return tuple(value)


#: What a pattern may contain besides what an interface name may: fnmatch's own characters.
_GLOB_CHARS = "*?[]!"


def _check_patterns(name: str, value: object, origin: str) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad(name, value, origin)
    for item in value:
        # A pattern is an interface name with wildcards: the name rules apply to the rest,
        # except the length (a character class like [0-9] takes more than one byte).
        plain = "".join("x" for _ in item[:1]) + "".join(
            c for c in item[1:] if c not in _GLOB_CHARS
        )
        problem = _interface_name_problem(plain if len(plain.encode()) <= 15 else "x")
        if not item or len(item) > 64 or problem is not None:
            why = problem or ("it is empty" if not item else "it is longer than 64 characters")
            raise ConfigError(
                f"{name}: {_quote(item)} is not an interface name pattern: {why} (from "
                f'{origin}); use a shell pattern such as "ens*"'
            )
    return tuple(value)


def _from_text(name: str, text: str, origin: str) -> object:
    """An environment (or untyped flag) string for ``name``, parsed and checked."""
    kind = _SPECS[name].kind
    if kind in ("names", "patterns"):
        items = [item.strip() for item in text.split(",")]
        if "" in items:
            what, example = (
                ("interface names", "ens1f0np0,ens1f1np1")
                if kind == "names"
                else ("patterns", "ens*,enp*")
            )
            raise ConfigError(
                f"{name}: empty entry in {_quote(text)} (from {origin}); separate {what} "
                f'with single commas, e.g. "{example}"'
            )
        if kind == "names":
            return _check_names(items, origin)
        return _check_patterns(name, items, origin)
    if kind == "int":
        # The length check first: int() of more than 4300 digits is a ValueError (and of
        # fewer, slow on Pythons without that limit); no valid value has over 20.
        if len(text) > _INT_MAX_CHARS or not _INT_RE.fullmatch(text):
            raise _bad(name, text, origin)
        return _check(name, int(text), origin)
    if kind == "bool":
        lowered = text.lower()
        if lowered not in _TRUE + _FALSE:
            raise ConfigError(
                f"{name}: must be true or false (or 1/0, yes/no, on/off), got {_quote(text)} "
                f"(from {origin})"
            )
        return lowered in _TRUE
    return _check(name, text, origin)


# --------------------------------------------------------------------------------- layers
def read_text(path: str, *, required: bool = True) -> Optional[str]:
    """The text of the config file at ``path``; None if it is missing and not ``required``."""
    if not path:
        raise ConfigError("config file path is empty; give the path of a TOML file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError) as exc:
        if required:
            raise ConfigError(
                f"{path}: config file not found; create it (pfrelay config init {path}) "
                "or give the path of an existing file"
            ) from exc
        return None
    except IsADirectoryError as exc:
        raise ConfigError(
            f"{path}: is a directory, not a config file; give the path of a TOML file"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            f"{path}: cannot read config file: permission denied; make it readable by the "
            "user the relay runs as (pf-status-relay under systemd)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8"
        ) from exc


def parse_toml(text: str, origin: str) -> Dict[str, object]:
    """The checked values that TOML ``text`` sets; ``origin`` (the path) goes into errors."""
    try:
        data: Dict[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: {_syntax_error(str(exc), text)}") from exc
    except RecursionError:
        # Arrays or inline tables nested thousands deep: the parser recurses per level.
        raise ConfigError(
            f"{origin}: arrays or tables nested too deeply to read; "
            "a pf-status-relay config file nests nothing"
        ) from None
    except ValueError as exc:
        # An integer of more than sys.get_int_max_str_digits() (4300) digits.
        raise ConfigError(f"{origin}: {_value_error(exc)}") from None
    for key, value in data.items():
        if key in _SPECS:
            continue
        if isinstance(value, dict):
            raise ConfigError(
                f"unknown table [{_printable(key)}] in {origin}; the file has no sections, "
                "put the keys at the top level"
            )
        guess = _suggest(key, FIELDS)
        if guess:
            raise ConfigError(f'unknown key {_quote(key)} in {origin} (did you mean "{guess}"?)')
        raise ConfigError(
            f"unknown key {_quote(key)} in {origin}; the keys are: " + ", ".join(FIELDS)
        )
    return {name: _check(name, data[name], origin) for name in FIELDS if name in data}


def _value_error(exc: ValueError) -> str:
    """A tomllib/tomli ``ValueError`` that is not a ``TOMLDecodeError``, as one short phrase."""
    if "digits" in str(exc):
        return "an integer has too many digits; TOML integers have at most 19"
    first = (str(exc).splitlines() or [""])[0]
    return "a value cannot be read: " + _printable(first)[:80]


def _syntax_error(message: str, text: str) -> str:
    """``TOML syntax error at line 3, column 7: Invalid value`` from a tomllib/tomli message."""
    match = _SYNTAX_RE.match(message)
    if match:
        return f"TOML syntax error at line {match['line']}, column {match['col']}: {match['what']}"
    match = _END_RE.match(message)
    if match:
        lines = text.count("\n") + 1
        return f"TOML syntax error at end of file (line {lines}): {match['what']}"
    return f"TOML syntax error: {message}"


def parse_env(env: Mapping[str, str]) -> Dict[str, Tuple[object, str]]:
    """Field -> (checked value, variable name) for each ``PF_STATUS_RELAY_*`` key that is set."""
    values: Dict[str, Tuple[object, str]] = {}
    for name, var in ENV_VARS.items():
        text = env.get(var, "").strip()
        if text:
            values[name] = (_from_text(name, text, var), var)
    return values


def env_warnings(env: Mapping[str, str]) -> List[str]:
    """One line per ``PF_STATUS_RELAY_*`` variable that is ignored but looks like a key."""
    known = {var[len(ENV_PREFIX) :]: var for var in ENV_VARS.values()}
    warnings = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in ENV_VARS.values():
            continue
        guess = _suggest(var[len(ENV_PREFIX) :], list(known))
        if guess:
            warnings.append(
                f"environment variable {_printable(var)} is ignored (did you mean {known[guess]}?)"
            )
    return warnings


def parse_flags(flags: Mapping[str, object]) -> Dict[str, Tuple[object, str]]:
    """Field -> (checked value, flag name) for each flag given (not None, not an empty list)."""
    values: Dict[str, Tuple[object, str]] = {}
    for name, value in flags.items():
        if name not in _SPECS:
            raise ValueError(f"unknown config field {name!r} in flags; fields: {FIELDS}")
        kind = _SPECS[name].kind
        if value is None or (kind in ("names", "patterns") and value in ((), [])):
            continue
        flag = FLAG_NAMES[name]
        if isinstance(value, str) and kind in ("names", "patterns", "int", "bool"):
            values[name] = (_from_text(name, value, flag), flag)
        else:
            values[name] = (_check(name, value, flag), flag)
    return values


def _check_config(config: Config, origins: Mapping[str, str]) -> None:
    """Checks that need more than one key."""
    metrics = config.metrics_file
    if metrics is not None and os.path.normpath(metrics) == os.path.normpath(config.state_file):
        raise ConfigError(
            f"metrics_file: must not be the state_file ({_quote(config.state_file)}) "
            f"(from {origins['metrics_file']}); choose another path"
        )


def load(
    path: Optional[str], env: Mapping[str, str], flags: Mapping[str, object]
) -> Tuple[Config, Dict[str, str]]:
    """The effective config and, per field, where its value came from.

    Precedence: defaults < file (``path``, or ``DEFAULT_PATH`` if None, which may be missing)
    < ``env`` < ``flags`` (field -> value; None means not given). Raises ``ConfigError``.
    """
    file_path = DEFAULT_PATH if path is None else path
    values: Dict[str, Any] = {}  # checked per field above; Any for dataclasses.replace
    sources = {name: "default" for name in FIELDS}
    origins = {name: "the defaults" for name in FIELDS}
    text = read_text(file_path, required=path is not None)
    if text is not None:
        for name, value in parse_toml(text, file_path).items():
            values[name], sources[name], origins[name] = value, f"file {file_path}", file_path
    for name, (value, var) in parse_env(env).items():
        values[name], sources[name], origins[name] = value, f"env {var}", var
    for name, (value, flag) in parse_flags(flags).items():
        values[name], sources[name], origins[name] = value, f"flag {flag}", flag
    config = dataclasses.replace(Config(), **values)
    _check_config(config, origins)
    return config, sources


def unused_patterns(config: Config) -> List[str]:
    """The discover_* keys that are set although discovery is off (a warning, not an error)."""
    if config.discover:
        return []
    return [name for name in ("discover_include", "discover_exclude") if getattr(config, name)]


def require_interfaces(config: Config, path: Optional[str] = None) -> Tuple[str, ...]:
    """``config.interfaces``, or ``ConfigError`` if there are none."""
    if not config.interfaces:
        raise ConfigError(
            "interfaces: no interfaces configured; set interfaces in "
            f"{path or DEFAULT_PATH}, PF_STATUS_RELAY_INTERFACES or --interface"
        )
    return config.interfaces


# ------------------------------------------------------------------------------ rendering
def _toml_value(value: object) -> str:
    """``value`` as a one-line TOML value."""
    import tomli_w

    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return tomli_w.dumps({"k": value}).strip()[len("k = ") :]


def _comment(text: str) -> List[str]:
    return ["# " + line for line in textwrap.wrap(text, width=96)]


def render_toml(config: Config, *, comments: bool = True) -> str:
    """``config`` as a TOML file that ``load`` reads back to the same config.

    Keys that are None (not set) are left out, or with ``comments`` shown commented out.
    """
    import tomli_w

    lines: List[str] = []
    if comments:
        lines += _comment(
            "pf-status-relay configuration. Keys are top-level (no sections). Precedence: "
            "these values < PF_STATUS_RELAY_* environment variables < command-line flags."
        )
    for name in FIELDS:
        value = getattr(config, name)
        if comments:
            lines += ["", *_comment(FIELD_HELP[name])]
        if value is None:
            if comments and name in _EXAMPLES:
                lines.append(f"# {name} = {_toml_value(_EXAMPLES[name])}")
            continue
        plain = list(value) if isinstance(value, tuple) else value
        lines += tomli_w.dumps({name: plain}).rstrip("\n").split("\n")
    return "\n".join(lines).lstrip("\n") + "\n"


def show(config: Config, sources: Mapping[str, str]) -> str:
    """One line per key, ``key = value  # source``, for ``pfrelay config show``."""
    lines = []
    for name in FIELDS:
        value = getattr(config, name)
        shown = "(not set)" if value is None else _toml_value(value)
        lines.append(_printable(f"{name} = {shown}  # {sources.get(name, 'default')}"))
    return "\n".join(lines)
