"""The deployment's design decisions as checks, run by deploy/check.sh.

A schema validator says the manifests are well-formed Kubernetes; this says they are still the
deployment deploy/README.md describes: host network but no host PID, only CAP_NET_ADMIN, the
ledger on the host where the relay looks for it, probes that call the CLI, an environment the
relay's own configuration parser accepts, an image entry point that matches, and a build context
that holds the package and nothing else. Supply chain and confinement (issue 13): the confined
SELinux type container_t, a versioned image (pfrelay's version or a digest, never latest) with
IfNotPresent, the base image pinned by digest, and dependencies installed only from the hashed
lock file.

    python deploy/policy.py manifests RENDERED.yaml   # the manifests, Containerfile, .dockerignore
    python deploy/policy.py context DIR               # lay out the build stage's /src in DIR

It runs in the deploy tools' virtualenv (PyYAML) and asks the project's .venv for what only the
package knows (the default state file, the config parser). Each problem is one line on stderr;
the exit code is the number of problems (capped at 100).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
PROJECT_PYTHON = Path(os.environ.get("PROJECT_PYTHON", ROOT / ".venv" / "bin" / "python"))
NAMESPACE = "pf-status-relay"
ENTRYPOINT = ["pfrelay", "run"]
# Files the wheel cannot be built without, and files that must never reach the image.
CONTEXT_REQUIRED = [
    "pyproject.toml",
    "README.md",
    "pfrelay/__init__.py",
    "pfrelay/cli.py",
    "requirements/runtime.lock",
    "requirements/build.lock",
]
#: The confined SELinux type the pods ask for (deploy/README.md, "SELinux"): never spc_t.
SELINUX_TYPE = "container_t"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")
CONTEXT_FORBIDDEN = [".git", ".venv", "tests", "deploy", "etc", ".ci"]

problems: List[str] = []
passed: List[str] = []


def check(ok: bool, what: str, why: str = "") -> bool:
    """Record one named check."""
    if ok:
        passed.append(what)
    else:
        problems.append(what + (f": {why}" if why else ""))
    return ok


# ----------------------------------------------------------------------------- Containerfile


def containerfile_instructions(path: Path) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: List[Tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(instructions: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def check_containerfile() -> List[Tuple[str, str]]:
    path = ROOT / "Containerfile"
    instructions = containerfile_instructions(path)
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] if "=" in rest else ""
        for word, rest in instructions
        if word == "ARG"
    }
    base = args.get("BASE_IMAGE", "")
    check(
        base.startswith("registry.access.redhat.com/ubi9/"),
        "Containerfile: base image is UBI 9 from registry.access.redhat.com",
        f"BASE_IMAGE={base!r}",
    )
    check(
        bool(re.search(r":\d+\.\d+", base)),
        "Containerfile: base image tag names a RHEL 9 minor release",
        base,
    )
    check(
        bool(DIGEST.search(base)),
        "Containerfile: base image pinned by digest (@sha256:...; deploy/update-base-digest.sh)",
        base,
    )
    build_runs = [
        rest
        for word, rest in instructions[: len(instructions) - len(final_stage(instructions))]
        if word == "RUN"
    ]
    pip_installs = [
        part
        for run in build_runs
        for part in re.split(r"&&|;", run)
        if re.search(r"\bpip\b.*\binstall\b", part)
    ]
    check(
        any(
            "--require-hashes" in p and "requirements/runtime.lock" in p.replace("/src/", "")
            for p in pip_installs
        ),
        "Containerfile: dependencies from requirements/runtime.lock with --require-hashes",
        f"{pip_installs}",
    )
    check(
        all("--require-hashes" in p or "--no-deps" in p for p in pip_installs),
        "Containerfile: every pip install is hash-checked or --no-deps (nothing unpinned)",
        f"{pip_installs}",
    )
    final = final_stage(instructions)
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    check(
        len(entry) == 1 and json.loads(entry[0]) == ENTRYPOINT,
        f"Containerfile: ENTRYPOINT is exec-form {json.dumps(ENTRYPOINT)}",
        f"found {entry}",
    )
    check(
        not any(word == "CMD" for word, _ in final),
        "Containerfile: no CMD, so arguments given to the image go to `pfrelay run`",
    )
    runs = " ".join(rest for word, rest in final if word == "RUN")
    check(
        bool(re.search(r"\binstall\b[^&]*\biproute\b", runs)),
        "Containerfile: runtime stage installs iproute",
    )
    check(
        not re.search(r"\bpip\b.*\binstall\b", runs),
        "Containerfile: runtime stage runs no pip install (the build stage does)",
    )
    users = [rest for word, rest in final if word == "USER"]
    check(
        users[-1:] in (["0"], ["root"], ["0:0"]),
        "Containerfile: runs as root, explained (CAP_NET_ADMIN needs it, see the comment)",
        f"USER {users}",
    )
    check(
        not any(word == "ADD" for word, _ in instructions),
        "Containerfile: no ADD (no remote URLs or archives in the build)",
    )
    secretish = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|CREDENTIAL)", re.I)
    check(
        not any(
            word in {"ARG", "ENV", "LABEL"} and secretish.search(rest.split("=", 1)[0])
            for word, rest in instructions
        ),
        "Containerfile: no ARG, ENV or LABEL that looks like a secret",
    )
    labels = " ".join(rest for word, rest in final if word == "LABEL")
    for key in ("title", "description", "licenses", "version", "revision", "source"):
        check(
            f"org.opencontainers.image.{key}=" in labels,
            f"Containerfile: OCI label org.opencontainers.image.{key}",
        )
    for word, rest in instructions:
        if word == "COPY" and "--from=" not in rest:
            for src in shlex.split(rest)[:-1]:
                check((ROOT / src).exists(), f"Containerfile: COPY source {src} exists")
    return instructions


# ------------------------------------------------------------------------------ build context


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match plus **, as docker and buildah)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignore_rules(path: Path) -> List[Tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        rules.append((negate, _ignore_regex(pattern)))
    return rules


def excluded(rel: str, rules: List[Tuple[bool, re.Pattern[str]]]) -> bool:
    """Last matching rule wins; a rule matches a path or any of its parent directories."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            result = not negate
    return result


def context_files() -> List[str]:
    rules = ignore_rules(ROOT / ".dockerignore")
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        # Do not descend into huge trees that no rule re-includes (the walk stays fast).
        dirnames[:] = [
            d
            for d in dirnames
            if not (d in {".git", ".venv", ".venv39", "node_modules"} and excluded(d, rules))
        ]
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not excluded(rel, rules):
                files.append(rel)
    return sorted(files)


def check_context() -> List[str]:
    files = context_files()
    for required in CONTEXT_REQUIRED:
        check(required in files, f".dockerignore: build context includes {required}")
    timeline = [f for f in files if f.startswith("pfrelay/timeline/")]
    check(bool(timeline), ".dockerignore: build context includes pfrelay/timeline/ (package data)")
    for forbidden in CONTEXT_FORBIDDEN:
        leaked = [f for f in files if f == forbidden or f.startswith(forbidden + "/")]
        check(not leaked, f".dockerignore: build context excludes {forbidden}/", f"{leaked[:3]}")
    caches = [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    check(not caches, ".dockerignore: build context has no bytecode caches", f"{caches[:3]}")
    return files


def lay_out_build_src(target: Path) -> Path:
    """Copy what the build stage's COPY instructions copy (after .dockerignore) under target."""
    instructions = containerfile_instructions(ROOT / "Containerfile")
    stage = -1
    first_stage: List[Tuple[str, str]] = []
    for word, rest in instructions:
        stage += word == "FROM"
        if stage == 0:
            first_stage.append((word, rest))
    files = set(context_files())
    for word, rest in first_stage:
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, dest = shlex.split(rest)
        for source in sources:
            src = os.path.normpath(source)
            if (ROOT / src).is_dir():
                for rel in sorted(f for f in files if f.startswith(src + "/")):
                    out = target / dest.lstrip("/") / rel[len(src) + 1 :]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / rel, out)
            elif src in files:
                out = target / dest.lstrip("/")
                if dest.endswith("/"):
                    out = out / Path(src).name
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / src, out)
            else:
                check(False, f"Containerfile: COPY {src} is in the build context", "excluded")
    # The build stage installs /src: that is the directory pip sees.
    return target / "src"


# -------------------------------------------------------------------------------- manifests


def load_docs(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def project_facts(env: Dict[str, str]) -> Dict[str, Any]:
    """Ask the package itself: default state file, env var names, and whether env parses."""
    code = r"""
import json, sys, tempfile
from pfrelay import config as c
env = json.loads(sys.argv[1])
from pfrelay import __version__
out = {"state_file": c.Config().state_file, "env_vars": sorted(c.ENV_VARS.values()),
       "version": __version__}
with tempfile.NamedTemporaryFile("w", suffix=".toml") as empty:
    try:
        cfg, _ = c.load(empty.name, env, {})
        out["interfaces"] = list(cfg.interfaces)
        out["polling_interval_ms"] = cfg.polling_interval_ms
        out["warnings"] = c.env_warnings(env)
    except c.ConfigError as exc:
        out["error"] = str(exc)
print(json.dumps(out))
"""
    result = subprocess.run(
        [str(PROJECT_PYTHON), "-c", code, json.dumps(env)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"policy: cannot ask the project ({PROJECT_PYTHON}) about its configuration: "
            + (result.stderr.strip().splitlines() or ["no output"])[-1]
            + "; run `make venv` first"
        )
    facts: Dict[str, Any] = json.loads(result.stdout)
    return facts


def quantity(text: str) -> float:
    """A Kubernetes quantity in base units (bytes, or cores for m)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * units.get(match.group(2), 1)


def pod_specs(docs: List[Dict[str, Any]]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    for doc in docs:
        if doc.get("kind") == "DaemonSet":
            yield "DaemonSet/" + doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc.get("kind") == "Pod":
            yield "Pod/" + doc["metadata"]["name"], doc["spec"]


def check_pod(name: str, pod: Dict[str, Any], state_dir: str) -> Dict[str, Any]:
    """Invariants shared by the DaemonSet's pod and the restore pod; returns the container."""
    check(pod.get("hostNetwork") is True, f"{name}: hostNetwork true (host's PFs, VFs, bonds)")
    check(not pod.get("hostPID"), f"{name}: no hostPID")
    check(not pod.get("hostIPC"), f"{name}: no hostIPC")
    check(
        pod.get("automountServiceAccountToken") is False,
        f"{name}: no service account token (the relay never calls the API)",
    )
    check(pod.get("enableServiceLinks") is False, f"{name}: no service link env vars")
    check(
        pod.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{name}: seccomp RuntimeDefault",
    )
    containers = pod.get("containers", [])
    check(len(containers) == 1, f"{name}: one container", f"{len(containers)}")
    container: Dict[str, Any] = containers[0]
    sc = container.get("securityContext", {})
    check(sc.get("privileged") is False, f"{name}: not privileged")
    check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, f"{name}: read-only root filesystem")
    caps = sc.get("capabilities", {})
    check(
        caps.get("drop") == ["ALL"] and caps.get("add") == ["NET_ADMIN"],
        f"{name}: capabilities drop ALL, add exactly NET_ADMIN",
        json.dumps(caps),
    )
    check(sc.get("runAsUser") == 0, f"{name}: runs as uid 0 (no ambient caps in Kubernetes)")
    selinux = sc.get("seLinuxOptions", {})
    check(
        selinux.get("type") == SELINUX_TYPE and set(selinux) <= {"type", "level"},
        f"{name}: SELinux type {SELINUX_TYPE} (confined; not spc_t, see deploy/README.md)",
        json.dumps(selinux),
    )
    image = str(container.get("image", ""))
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    version = project_facts({})["version"]
    check(
        bool(DIGEST.search(image)) or tag == version,
        f"{name}: image is versioned ({version}, pfrelay's version) or pinned by digest,"
        " never latest",
        image,
    )
    check(
        container.get("imagePullPolicy") == "IfNotPresent",
        f"{name}: imagePullPolicy IfNotPresent (an immutable version tag or digest)",
        str(container.get("imagePullPolicy")),
    )
    resources = container.get("resources", {})
    try:
        memory_limit = quantity(resources["limits"]["memory"])
        check(
            memory_limit >= 128 * 2**20,
            f"{name}: memory limit leaves room for the relay plus two exec probes (>= 128Mi)",
            resources["limits"]["memory"],
        )
        check(
            "cpu" in resources["requests"] and "memory" in resources["requests"],
            f"{name}: cpu and memory requests",
        )
    except (KeyError, ValueError) as exc:
        check(False, f"{name}: resources requests and memory limit", f"missing {exc}")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    host_paths = {n: v["hostPath"] for n, v in volumes.items() if "hostPath" in v}
    check(
        [hp["path"] for hp in host_paths.values()] == [state_dir],
        f"{name}: the only hostPath is the relay's runtime directory {state_dir}"
        " (no host /proc or /sys: the pod's own show the host netns)",
        json.dumps(host_paths),
    )
    mounts = [m for m in container.get("volumeMounts", []) if m.get("name") in host_paths]
    check(
        len(mounts) == 1
        and mounts[0].get("mountPath") == state_dir
        and not mounts[0].get("readOnly"),
        f"{name}: runtime directory mounted read-write at {state_dir}, where the default"
        " --state-file looks",
        json.dumps(mounts),
    )
    return container


def check_manifests(rendered: Optional[Path]) -> None:
    containerfile_entry = ENTRYPOINT
    files = {
        "daemonset.yaml": KUBE / "daemonset.yaml",
        "restore-pod.yaml": KUBE / "restore-pod.yaml",
    }
    if rendered is not None:
        files["kustomize build"] = rendered
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    check(
        kustomization.get("resources") == ["daemonset.yaml"],
        "kustomization.yaml: renders daemonset.yaml (restore-pod.yaml stays a one-off)",
    )
    image_names = {i["name"] for i in kustomization.get("images", [])}
    version = project_facts({})["version"]
    for entry in kustomization.get("images", []):
        check(
            str(entry.get("newTag", "")) == version or bool(entry.get("digest")),
            f"kustomization.yaml: image {entry.get('name')} retagged to {version} or a digest,"
            " never latest",
            json.dumps(entry),
        )

    for label, path in files.items():
        docs = load_docs(path)
        namespaced = [d for d in docs if d.get("kind") not in {"Namespace"}]
        check(
            all(d.get("metadata", {}).get("namespace") == NAMESPACE for d in namespaced),
            f"{label}: every namespaced object is in namespace {NAMESPACE}",
        )
        for doc in docs:
            if doc.get("kind") == "Namespace":
                labels = doc["metadata"].get("labels", {})
                check(
                    labels.get("pod-security.kubernetes.io/enforce") == "privileged",
                    f"{label}: namespace allows the pod (Pod Security 'privileged')",
                )
            if doc.get("kind") == "ServiceAccount":
                check(
                    doc.get("automountServiceAccountToken") is False,
                    f"{label}: ServiceAccount mounts no token",
                )
        for kind_name, pod in pod_specs(docs):
            name = f"{label}: {kind_name}"
            facts = project_facts({})
            state_dir = os.path.dirname(facts["state_file"])
            container = check_pod(name, pod, state_dir)
            repo = container["image"].rsplit(":", 1)[0]
            if label == "daemonset.yaml":
                check(
                    repo in image_names,
                    f"{name}: image {repo} is the one kustomization.yaml retags",
                    f"{sorted(image_names)}",
                )
            if pod.get("restartPolicy") == "Never":
                check(
                    container.get("command") == ["pfrelay", "restore", "--yes"],
                    f"{name}: runs `pfrelay restore --yes`",
                )
                check(
                    pod.get("restartPolicy") == "Never" and bool(pod.get("nodeName")),
                    f"{name}: one-off on one named node",
                )
                continue
            check(
                "command" not in container and "args" not in container,
                f"{name}: uses the image's entry point {json.dumps(containerfile_entry)}",
            )
            check(
                pod.get("priorityClassName") == "system-node-critical",
                f"{name}: priorityClassName system-node-critical",
            )
            check(
                pod.get("nodeSelector", {}).get("feature.node.kubernetes.io/network-sriov.capable")
                == "true",
                f"{name}: nodeSelector picks SR-IOV-capable nodes",
            )
            check(
                {"operator": "Exists"} in pod.get("tolerations", []),
                f"{name}: tolerates the taints of dedicated SR-IOV nodes",
            )
            check(
                int(pod.get("terminationGracePeriodSeconds", 30)) >= 15,
                f"{name}: grace period lets the cycle in progress finish (>= 15 s)",
            )
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            for var in ("PF_STATUS_RELAY_INTERFACES", "PF_STATUS_RELAY_POLLING_INTERVAL"):
                check(var in env, f"{name}: env {var} set")
            unknown = sorted(
                v for v in env if v.startswith("PF_STATUS_RELAY_") and v not in facts["env_vars"]
            )
            check(
                not unknown,
                f"{name}: every PF_STATUS_RELAY_* variable is a config key",
                f"{unknown}",
            )
            parsed = project_facts(env)
            check(
                "error" not in parsed,
                f"{name}: pfrelay's own config parser accepts the env "
                f"({parsed.get('interfaces')}, {parsed.get('polling_interval_ms')} ms)",
                parsed.get("error", ""),
            )
            probes = {
                "readinessProbe": "ready",
                "livenessProbe": "live",
            }
            for key, mode in probes.items():
                probe = container.get(key, {})
                command = probe.get("exec", {}).get("command", [])
                check(
                    command[:4] == ["pfrelay", "status", "--probe", mode],
                    f"{name}: {key} runs `pfrelay status --probe {mode}`",
                    f"{command}",
                )
                check(
                    int(probe.get("timeoutSeconds", 1)) >= 5,
                    f"{name}: {key} timeout >= 5 s (a Python start on a busy node)",
                )
            live = container.get("livenessProbe", {})
            check(
                int(live.get("failureThreshold", 3)) >= 2,
                f"{name}: liveness needs two failures in a row (one slow probe is no restart)",
            )
            spec_strategy = next(d for d in docs if d.get("kind") == "DaemonSet")["spec"].get(
                "updateStrategy", {}
            )
            check(
                spec_strategy.get("type") == "RollingUpdate"
                and str(spec_strategy.get("rollingUpdate", {}).get("maxSurge", 0)) in {"0", "0%"},
                f"{name}: RollingUpdate with maxSurge 0 (never two relays on a node)",
            )


def main(argv: List[str]) -> int:
    if len(argv) == 3 and argv[1] == "context":
        target = Path(argv[2])
        src = lay_out_build_src(target)
        print(src)
        return min(len(problems), 100)
    if len(argv) not in (2, 3) or argv[1] != "manifests":
        print(__doc__, file=sys.stderr)
        return 2
    rendered = Path(argv[2]) if len(argv) == 3 else None
    check_containerfile()
    files = check_context()
    check_manifests(rendered)
    for line in passed:
        print(f"  ok    {line}")
    for line in problems:
        print(f"  FAIL  {line}", file=sys.stderr)
    print(f"build context: {len(files)} files")
    print(f"policy: {len(passed)} passed, {len(problems)} failed")
    return min(len(problems), 100)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
