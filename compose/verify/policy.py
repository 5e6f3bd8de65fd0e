"""Policy invariants of a rendered vLLM deployment: the cross-field rules that a
schema cannot express and that, when broken, cause the failures this project
exists to prevent (OOM under load, restarts of a saturated server, dropped
requests on drain, an autoscaler that silently never scales).

    check_policy(docs, source, readme_text=None) -> list[Finding]

runs every rule over one rendered build (a base or an overlay) and returns every
finding; it never stops at the first. Each finding names the object, the field,
what is wrong and how to fix it. `RULES` lists the rules with one line each; the
negative tests in tests/test_policy.py break each one on purpose.

Knobs the rules share (constants below, documented in base/README.md):

- `LOAD_ESTIMATE_ANNOTATION` (`vllm-compose.io/load-seconds-estimate`, on the
  Deployment's metadata): the planner's load-time estimate in seconds, written by
  `compose new-model` into patch-probes-drain.yaml. The startup budget must cover
  it. A Deployment of an overlay (it carries `app.kubernetes.io/instance`) must
  have it; a bare base without it is held to `BASE_STARTUP_FLOOR_SECONDS`. The
  `load_seconds` argument lets a caller plug a live estimate in instead.
- `SINGLE_REPLICA_MARKER`: a README heading "Single replica" (any level), or a
  link to a `#single-replica` anchor, documents the one-replica trade-off.
- `MIN_DRAIN_MARGIN_SECONDS` (1): terminationGracePeriodSeconds must exceed
  preStop + --shutdown-timeout (no margin at all is a finding), leaving vLLM time
  to stop its engine after the drain deadline before the kubelet's SIGKILL. The
  planner uses 15 s, on spot capacity too.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib.resources import files
from typing import Callable, Iterable, Iterator

from compose.core.errors import InvalidInput
from compose.core.findings import Finding, obj_id
from compose.plan import clouds as clouds_mod

# ----------------------------------------------------------------------------- knobs

LOAD_ESTIMATE_ANNOTATION = "vllm-compose.io/load-seconds-estimate"
CLOUD_ANNOTATION = "vllm-compose.io/cloud"
CAPACITY_ANNOTATION = "vllm-compose.io/capacity"
INSTANCE_LABEL = "app.kubernetes.io/instance"

BASE_STARTUP_FLOOR_SECONDS = 300
MIN_PROBE_TIMEOUT_SECONDS = 5
MIN_DRAIN_MARGIN_SECONDS = 1  # "no margin" is the finding; the planner keeps 15 s
SPOT_SHUTDOWN_FLOOR_SECONDS = 30  # llm-d's default --shutdown-timeout, the planner's floor
DEFAULT_VLLM_VERSION = "0.33.0"

# "## Single replica" (any heading level, "single-replica" too), or a link to
# such a section elsewhere (e.g. ../../base/README.md#single-replica).
SINGLE_REPLICA_MARKER = re.compile(r"(?im)^\s{0,3}#{1,6}\s*single[- ]replica\b|\(#?[^)\s]*#single-replica\)")

# Flags the pinned release no longer accepts, with what to do instead.
REMOVED_FLAGS = {
    "--disable-log-requests": "request logging is off by default since --enable-log-requests replaced it; delete the flag",
    "--swap-space": "the V1 engine has no CPU swap space (preempted requests are recomputed); delete the flag",
}
# Short aliases the checks cannot read; the long form is the house style.
SHORT_ALIASES = {"-tp": "--tensor-parallel-size", "-pp": "--pipeline-parallel-size",
                 "-dp": "--data-parallel-size", "-q": "--quantization", "-O": "--compilation-config"}
FLOATING_TAGS = {"latest", "nightly"}
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "f", "no", "off"}


# ----------------------------------------------------------------------------- small helpers


def _get(d, *path, default=None):
    for p in path:
        if isinstance(d, dict):
            d = d.get(p)
        elif isinstance(d, list) and isinstance(p, int) and -len(d) <= p < len(d):
            d = d[p]
        else:
            return default
        if d is None:
            return default
    return d


_QTY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def parse_quantity(value) -> Fraction | None:
    """A Kubernetes quantity ("32Gi", "500m", 2, "1e3") as an exact number, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return Fraction(value)
    m = _QTY.match(str(value).strip())
    if not m:
        return None
    number = Fraction(m.group(1)) * (Fraction(10) ** int(m.group(2)) if m.group(2) else 1)
    return number * _SUFFIX[m.group(3)]


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _labels_match(selector: dict | None, labels: dict | None) -> bool:
    """matchLabels + matchExpressions semantics of a LabelSelector."""
    if not isinstance(selector, dict):
        return False
    labels = labels or {}
    ml = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not ml and not exprs:
        return True  # an empty selector selects everything
    if any(labels.get(k) != v for k, v in ml.items()):
        return False
    for e in exprs:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@lru_cache(maxsize=None)
def valid_flags(version: str = DEFAULT_VLLM_VERSION) -> frozenset[str] | None:
    """The `vllm serve` flags of a release (compose/data/vllm-flags-<version>.txt), or None."""
    try:
        text = files("compose").joinpath(f"data/vllm-flags-{version}.txt").read_text()
    except (FileNotFoundError, OSError):
        return None
    return frozenset(ln.strip() for ln in text.splitlines() if ln.strip().startswith("-"))


def known_flag_versions() -> list[str]:
    """The vLLM releases with a flag list (compose/data/vllm-flags-<version>.txt)."""
    try:
        names = [p.name for p in files("compose").joinpath("data").iterdir()]
    except (FileNotFoundError, OSError):
        return []
    return sorted(n[len("vllm-flags-"):-len(".txt")] for n in names if n.startswith("vllm-flags-") and n.endswith(".txt"))


def _image_tag(image: str) -> tuple[str | None, bool]:
    """(tag, has_digest) of an image reference."""
    has_digest = "@" in image
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else None
    return tag, has_digest


# ----------------------------------------------------------------------------- the model of a build


@dataclass
class VllmArgs:
    model: str | None
    flags: dict[str, list[str | None]]  # normalized --long-name -> values (None for a bare switch)
    tokens: list[str]  # raw flag tokens as written

    def first(self, flag: str) -> str | None:
        values = self.flags.get(flag)
        return values[-1] if values else None


def parse_vllm_args(container: dict) -> VllmArgs:
    """Read `vllm serve MODEL --flag=value --flag value --switch` from command + args."""
    command = [str(c) for c in container.get("command") or []]
    tokens = command[2:] if command[:2] == ["vllm", "serve"] else []
    tokens += [str(a) for a in container.get("args") or []]
    model = None
    flags: dict[str, list[str | None]] = {}
    raw: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and not re.match(r"^-\d", tok):
            raw.append(tok)
            name, eq, value = tok.partition("=")
            if name.startswith("--"):
                name = "--" + name[2:].replace("_", "-")
            else:
                name = SHORT_ALIASES.get(name, name)
            if not eq:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if nxt is not None and not (nxt.startswith("-") and not re.match(r"^-\d", nxt)):
                    value, i = nxt, i + 1
                else:
                    value = None
            flags.setdefault(name, []).append(value)
        elif model is None:
            model = tok
        i += 1
    if model is None and flags.get("--model"):
        model = flags["--model"][-1]
    return VllmArgs(model, flags, raw)


def is_vllm_container(c: dict) -> bool:
    command = [str(x) for x in c.get("command") or []]
    return (c.get("name") == "vllm" or command[:2] == ["vllm", "serve"]
            or any("vllm.entrypoints.openai.api_server" in x for x in command))


def _pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec")
    if kind == "CronJob":
        return _get(doc, "spec", "jobTemplate", "spec", "template", "spec")
    if kind in WORKLOAD_KINDS:
        return _get(doc, "spec", "template", "spec")
    return None


def _pod_spec_path(doc: dict) -> str:
    return {"Pod": "spec", "CronJob": "spec.jobTemplate.spec.template.spec"}.get(doc.get("kind"), "spec.template.spec")


def _containers(spec: dict) -> Iterator[tuple[str, dict]]:
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield f"{key}[{c.get('name', '?')}]", c


def _env(container: dict) -> dict[str, dict]:
    return {e.get("name"): e for e in container.get("env") or [] if isinstance(e, dict)}


def _ns(doc: dict) -> str | None:
    return _get(doc, "metadata", "namespace")


def _annotations(doc: dict) -> dict:
    return _get(doc, "metadata", "annotations", default={}) or {}


class Build:
    """Index of one rendered build."""

    def __init__(self, docs: list[dict], source: str, readme_text: str | None,
                 load_seconds: Callable[[dict], float | None] | None = None, require_digest: bool = False):
        self.docs = [d for d in docs if isinstance(d, dict)]
        self.source = source
        self.readme_text = readme_text
        self.load_seconds = load_seconds
        self.require_digest = require_digest
        self.namespaces = {_get(d, "metadata", "name"): d for d in self.docs
                           if d.get("kind") == "Namespace" and d.get("apiVersion") == "v1"}
        self.findings: list[Finding] = []
        self.deployments = [d for d in self.docs if d.get("kind") == "Deployment"]
        self.scaled_objects = [d for d in self.docs if d.get("kind") == "ScaledObject"]
        self.pdbs = [d for d in self.docs if d.get("kind") == "PodDisruptionBudget"]
        self.pvcs = {(_ns(d), _get(d, "metadata", "name")): d for d in self.docs
                     if d.get("kind") == "PersistentVolumeClaim"}

    def add(self, doc: dict | None, field: str, problem: str, fix: str) -> None:
        self.findings.append(Finding(self.source, obj_id(doc) if doc else "-", field, problem, fix, "policy"))

    def vllm_deployments(self) -> Iterator[tuple[dict, dict, dict, str]]:
        """(deployment, pod spec, vLLM container, field prefix of that container)."""
        for d in self.deployments:
            spec = _pod_spec(d) or {}
            for c in spec.get("containers") or []:
                if isinstance(c, dict) and is_vllm_container(c):
                    yield d, spec, c, f"spec.template.spec.containers[{c.get('name')}]"
                    break

    def scaled_objects_for(self, deployment: dict) -> list[dict]:
        name = _get(deployment, "metadata", "name")
        out = []
        for so in self.scaled_objects:
            ref = _get(so, "spec", "scaleTargetRef", default={}) or {}
            if (ref.get("kind") or "Deployment") == "Deployment" and ref.get("name") == name \
                    and _ns(so) == _ns(deployment):
                out.append(so)
        return out

    def deployment_named(self, name: str | None, namespace: str | None) -> dict | None:
        for d in self.deployments:
            if _get(d, "metadata", "name") == name and _ns(d) == namespace:
                return d
        return None

    def cloud(self, deployment: dict) -> clouds_mod.Cloud | None:
        name = _annotations(deployment).get(CLOUD_ANNOTATION)
        return clouds_mod.CLOUDS.get(name) if name else None


# ----------------------------------------------------------------------------- rules

Rule = Callable[[Build], None]
RULES: dict[str, tuple[str, Rule]] = {}


def rule(rule_id: str, summary: str):
    def deco(fn: Rule) -> Rule:
        RULES[rule_id] = (summary, fn)
        return fn
    return deco


@rule("memory-requests-equal-limits", "every container of a vLLM pod (init too) requests exactly its memory limit")
def _memory(b: Build) -> None:
    for d, spec, _c, _ in b.vllm_deployments():
        for where, c in _containers(spec):
            req = _get(c, "resources", "requests", "memory")
            lim = _get(c, "resources", "limits", "memory")
            field = f"spec.template.spec.{where}.resources"
            if req is None or lim is None:
                b.add(d, field, f"memory {'request' if req is None else 'limit'} is missing "
                      f"(requests.memory={req}, limits.memory={lim})",
                      "set requests.memory equal to limits.memory, sized by the planner")
            elif parse_quantity(req) != parse_quantity(lim):
                b.add(d, field, f"memory request {req} differs from the limit {lim}: under node memory "
                      "pressure this pod is evicted or OOM-killed first (Burstable QoS)",
                      f"set requests.memory = limits.memory (= {lim})")


@rule("cpu-requests", "the vLLM container requests CPU")
def _cpu(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        if _get(c, "resources", "requests", "cpu") is None:
            b.add(d, f"{where}.resources.requests.cpu", "the vLLM container requests no CPU, so the "
                  "scheduler may pack it onto a node whose CPUs cannot feed the GPU (tokenization, scheduling)",
                  "set resources.requests.cpu (the planner's cpu_request)")


@rule("gpu-requests-equal-limits-and-tp", "GPU requests = limits = tensor-parallel × pipeline-parallel size")
def _gpu(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        res = c.get("resources") or {}
        names = [r for r in GPU_RESOURCES if r in (res.get("limits") or {}) or r in (res.get("requests") or {})]
        if not names:
            b.add(d, f"{where}.resources", "the vLLM container requests no GPU (nvidia.com/gpu)",
                  "set requests and limits of nvidia.com/gpu to the tensor-parallel size")
            continue
        args = parse_vllm_args(c)
        tp = _int(args.first("--tensor-parallel-size") or 1)
        pp = _int(args.first("--pipeline-parallel-size") or 1)
        for r in names:
            req, lim = _get(res, "requests", r), _get(res, "limits", r)
            if req is None or lim is None or _int(req) != _int(lim):
                b.add(d, f"{where}.resources", f"{r} request ({req}) and limit ({lim}) differ or one is missing",
                      f"set both requests and limits of {r} to the same count")
                continue
            if tp is not None and pp is not None and _int(lim) != tp * pp:
                b.add(d, f"{where}.resources.limits.{r}",
                      f"{r} is {lim} but vLLM shards over --tensor-parallel-size={tp}"
                      + (f" × --pipeline-parallel-size={pp}" if pp != 1 else "")
                      + f" = {tp * pp} GPUs: " + ("vLLM fails to start" if _int(lim) < tp * pp
                                                  else "the extra GPUs sit idle"),
                      f"make the GPU count equal {tp * pp}, or change --tensor-parallel-size")


@rule("startup-budget", "startupProbe budget ≥ the model's estimated load time; progressDeadlineSeconds ≥ budget")
def _startup(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        probe = c.get("startupProbe")
        if not isinstance(probe, dict):
            b.add(d, f"{where}.startupProbe", "the vLLM container has no startupProbe, so the liveness "
                  "probe kills a model that is still loading (CrashLoopBackOff)",
                  "add a startupProbe on /health whose periodSeconds × failureThreshold covers the load time")
            continue
        period = _int(probe.get("periodSeconds", 10)) or 10
        threshold = _int(probe.get("failureThreshold", 3)) or 3
        delay = _int(probe.get("initialDelaySeconds", 0)) or 0
        budget = delay + period * threshold
        estimate, basis = None, ""
        if b.load_seconds is not None:
            estimate, basis = b.load_seconds(d), "the planner's estimate"
        if estimate is None:
            raw = _annotations(d).get(LOAD_ESTIMATE_ANNOTATION)
            if raw is not None:
                try:
                    estimate, basis = float(raw), f"annotation {LOAD_ESTIMATE_ANNOTATION}"
                except ValueError:
                    b.add(d, f"metadata.annotations.{LOAD_ESTIMATE_ANNOTATION}",
                          f"load-time estimate {raw!r} is not a number of seconds",
                          "regenerate the overlay (`compose regen`) or write the estimate in seconds")
                    continue
        if estimate is None:
            if INSTANCE_LABEL in (_get(d, "metadata", "labels", default={}) or {}):
                b.add(d, f"metadata.annotations.{LOAD_ESTIMATE_ANNOTATION}",
                      "the overlay records no load-time estimate, so its startup budget cannot be checked",
                      f"regenerate it with `compose regen`, or add the annotation {LOAD_ESTIMATE_ANNOTATION}: "
                      "\"<seconds>\" from `compose plan`")
                continue
            estimate, basis = BASE_STARTUP_FLOOR_SECONDS, "the base's floor"
        if budget < estimate:
            b.add(d, f"{where}.startupProbe",
                  f"startup budget {budget} s (initialDelaySeconds {delay} + periodSeconds {period} × "
                  f"failureThreshold {threshold}) is below the estimated load time {estimate:g} s ({basis}); "
                  "the kubelet restarts the pod before the model is loaded",
                  f"raise failureThreshold to at least {math.ceil((estimate - delay) / period)}")
        deadline = _int(_get(d, "spec", "progressDeadlineSeconds", default=600))
        if deadline is not None and deadline < budget:
            b.add(d, "spec.progressDeadlineSeconds",
                  f"progressDeadlineSeconds {deadline} is shorter than the startup budget {budget} s, "
                  "so every slow but healthy rollout is reported as failed",
                  f"set progressDeadlineSeconds >= {budget}")


def _prestop_seconds(c: dict) -> int:
    pre = _get(c, "lifecycle", "preStop") or {}
    if _int(_get(pre, "sleep", "seconds")) is not None:
        return _int(_get(pre, "sleep", "seconds")) or 0
    cmd = " ".join(str(x) for x in _get(pre, "exec", "command", default=[]) or [])
    m = re.search(r"\bsleep\s+(\d+)", cmd) or re.search(r"/sleep\s+(\d+)", cmd)
    return int(m.group(1)) if m else 0


def _shutdown_timeout(c: dict) -> int | None:
    value = parse_vllm_args(c).first("--shutdown-timeout")
    return _int(value) if value is not None else None


@rule("shutdown-timeout", "vLLM runs with --shutdown-timeout > 0 (drains in-flight requests on SIGTERM)")
def _shutdown(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        args = parse_vllm_args(c)
        if "--shutdown-timeout" not in args.flags:
            b.add(d, f"{where}.args", "no --shutdown-timeout: on SIGTERM vLLM aborts every in-flight request",
                  "add --shutdown-timeout=<seconds> (the planner's drain time)")
            continue
        value = _int(args.first("--shutdown-timeout"))
        if value is None or value <= 0:
            b.add(d, f"{where}.args", f"--shutdown-timeout={args.first('--shutdown-timeout')} does not drain "
                  "(it must be a positive number of seconds)", "set --shutdown-timeout to a positive number of seconds")


@rule("grace-period", "terminationGracePeriodSeconds ≥ preStop + --shutdown-timeout + margin")
def _grace(b: Build) -> None:
    for d, spec, c, where in b.vllm_deployments():
        tgps = _int(spec.get("terminationGracePeriodSeconds", 30))
        tgps = 30 if tgps is None else tgps
        pre = _prestop_seconds(c)
        drain = _shutdown_timeout(c) or 0
        need = pre + drain
        field = "spec.template.spec.terminationGracePeriodSeconds"
        if tgps < need:
            b.add(d, field, f"terminationGracePeriodSeconds {tgps} < preStop {pre} s + --shutdown-timeout "
                  f"{drain} s = {need} s: the kubelet SIGKILLs vLLM while requests are still draining",
                  f"set terminationGracePeriodSeconds >= {need + MIN_DRAIN_MARGIN_SECONDS} or shorten the drain")
        elif tgps - need < MIN_DRAIN_MARGIN_SECONDS:
            b.add(d, field, f"terminationGracePeriodSeconds {tgps} leaves {tgps - need} s after preStop {pre} s + "
                  f"--shutdown-timeout {drain} s; vLLM needs a margin to stop its engine before SIGKILL",
                  f"set terminationGracePeriodSeconds to {need + 15} (a 15 s margin), or at least "
                  f"{need + MIN_DRAIN_MARGIN_SECONDS} where a spot notice leaves no room")


@rule("scaledobject-target", "every ScaledObject's scaleTargetRef names a rendered Deployment")
def _so_target(b: Build) -> None:
    for so in b.scaled_objects:
        ref = _get(so, "spec", "scaleTargetRef", default={}) or {}
        kind = ref.get("kind") or "Deployment"
        if kind != "Deployment" or b.deployment_named(ref.get("name"), _ns(so)) is None:
            names = sorted(str(_get(d, "metadata", "name")) for d in b.deployments if _ns(d) == _ns(so))
            b.add(so, "spec.scaleTargetRef", f"scaleTargetRef {kind}/{ref.get('name')} names no Deployment in "
                  f"this build (Deployments: {', '.join(names) or 'none'}); KEDA scales nothing",
                  "keep base/vllm/nameref-keda.yaml in `configurations` so namePrefix renames the reference, "
                  "or fix the name")


_AGG = r"(?:sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile)"


def _close_paren(text: str, open_at: int) -> int:
    depth, quote = 0, None
    for i in range(open_at, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def query_shape_problems(query: str) -> list[str]:
    """Why a KEDA query may not return exactly one series (empty list: it aggregates)."""
    q = query.strip()
    m = re.match(rf"^{_AGG}\s*((?:by|without)\s*\([^)]*\)\s*)?\(", q)
    if not m:
        return ["the query does not aggregate at the top level, so it returns one series per pod and "
                "KEDA's Prometheus scaler fails once two pods report"]
    problems = []
    end = _close_paren(q, m.end() - 1)
    rest = q[end + 1:].strip() if end >= 0 else ""
    grouping = m.group(1) or (re.match(r"^(by|without)\s*\([^)]*\)", rest) or [None])[0]
    if grouping:
        problems.append(f"the aggregation groups ({grouping.strip()}), which returns one series per group")
    if re.search(r"\bvector\s*\(", q):
        problems.append("`vector(...)` turns a missing series into a number, which hides a wrong label "
                        "from ignoreNullValues=false")
    return problems


def _matchers(query: str) -> list[dict[str, tuple[str, str]]]:
    """Label matchers of each `{...}` selector: [{label: (op, value)}]."""
    out = []
    for block in re.findall(r"\{([^}]*)\}", query):
        out.append({m.group(1): (m.group(2), m.group(3))
                    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"', block)})
    return out


def _served_name(c: dict) -> str | None:
    args = parse_vllm_args(c)
    names = args.flags.get("--served-model-name")
    if names and names[0]:
        return names[0].split()[0]  # vLLM labels metrics with the first served name
    return args.model


@rule("keda-query", "KEDA Prometheus triggers: one aggregated series, filtered on the served model name and "
      "namespace; AverageValue; ignoreNullValues false")
def _keda(b: Build) -> None:
    for so in b.scaled_objects:
        ref_name = _get(so, "spec", "scaleTargetRef", "name")
        target = b.deployment_named(ref_name, _ns(so))
        served = None
        if target is not None:
            for c in _get(target, "spec", "template", "spec", "containers", default=[]) or []:
                if is_vllm_container(c):
                    served = _served_name(c)
        for i, trig in enumerate(_get(so, "spec", "triggers", default=[]) or []):
            if trig.get("type") != "prometheus":
                continue
            field = f"spec.triggers[{i}]"
            meta = trig.get("metadata") or {}
            if trig.get("metricType") != "AverageValue":
                b.add(so, f"{field}.metricType", f"metricType is {trig.get('metricType') or 'unset'}; the queue "
                      "threshold is per replica only with AverageValue (KEDA divides the sum by the replica count)",
                      "set metricType: AverageValue")
            ignore = str(meta.get("ignoreNullValues", "true")).strip().lower()
            if ignore not in _FALSE:
                b.add(so, f"{field}.metadata.ignoreNullValues",
                      f"ignoreNullValues is {meta.get('ignoreNullValues', 'unset (KEDA default true)')}: an empty "
                      "result (wrong label, Prometheus not scraping) reads as 0 and the model never scales",
                      "set ignoreNullValues: \"false\" so an empty result trips `fallback`")
            query = str(meta.get("query") or "")
            if not query:
                b.add(so, f"{field}.metadata.query", "the Prometheus trigger has no query", "set the queue-depth query")
                continue
            for problem in query_shape_problems(query):
                b.add(so, f"{field}.metadata.query", problem,
                      'aggregate the whole query without grouping, e.g. sum(vllm:num_requests_waiting{model_name="...", namespace="..."})')
            blocks = _matchers(query)
            ns = _ns(so)
            if not blocks:
                blocks = [{}]
            for labels in blocks:
                got = labels.get("model_name")
                if got is None or got[0] != "=":
                    b.add(so, f"{field}.metadata.query", "the query does not filter on model_name=\"<served name>\""
                          " (vLLM's label; `model` matches nothing), so it mixes or misses models",
                          f'add model_name="{served or "<--served-model-name>"}" to the selector')
                elif served is not None and got[1] != served:
                    b.add(so, f"{field}.metadata.query", f'the query filters model_name="{got[1]}" but the '
                          f"Deployment serves {served!r} (--served-model-name), so it returns nothing",
                          f'use model_name="{served}"')
                gns = labels.get("namespace")
                if gns is None or gns[0] != "=":
                    b.add(so, f"{field}.metadata.query", "the query does not filter on namespace=\"<namespace>\", "
                          "so a model served in several namespaces is counted together",
                          f'add namespace="{ns or "<namespace>"}" to the selector')
                elif ns is not None and gns[1] != ns:
                    b.add(so, f"{field}.metadata.query", f'the query filters namespace="{gns[1]}" but the '
                          f"ScaledObject lives in {ns!r}, so it reads another deployment's queue (or nothing)",
                          f'use namespace="{ns}" (compose sets it from the overlay namespace)')
            try:
                from compose.plan import metrics
                stale = metrics.stale_names(query)
            except (ImportError, AttributeError):  # pragma: no cover - metrics is optional here
                stale = []
            for s in stale:
                b.add(so, f"{field}.metadata.query", f"metric {s.name}: {s.why}", f"use {s.replacement}")


SAFE_FALLBACK = ("currentReplicas", "currentReplicasIfHigher")


@rule("keda-fallback", "KEDA's fallback holds the current count (behavior currentReplicas or currentReplicasIfHigher "
      "with replicas <= minReplicaCount): a first deploy and a Prometheus outage never jump to a fixed count")
def _keda_fallback(b: Build) -> None:
    for so in b.scaled_objects:
        fb = _get(so, "spec", "fallback")
        if not isinstance(fb, dict):
            continue  # no fallback: on errors the HPA keeps the current count
        behavior = fb.get("behavior") or "static"
        replicas = _int(fb.get("replicas"))
        lo = _int(_get(so, "spec", "minReplicaCount", default=0)) or 0
        field = "spec.fallback"
        fix = (f"set fallback.behavior: currentReplicasIfHigher and fallback.replicas: {lo} (the minimum); "
               "compose new-model writes it (KEDA >= 2.17)")
        if behavior == "scalingModifiers":
            continue  # the formula decides; only valid with advanced.scalingModifiers
        if behavior == "static":
            b.add(so, f"{field}.behavior", f"fallback.behavior is static (KEDA's default): whenever the query fails "
                  f"for {fb.get('failureThreshold')} polls KEDA sets {replicas} replicas. A first deploy fails that "
                  "way (vLLM serves no /metrics until its model is loaded), so does a Prometheus outage: "
                  + ("a fresh model jumps above its minimum" if replicas is not None and replicas > lo
                     else "an outage at peak scales the model down"), fix)
        elif behavior == "currentReplicasIfLower":
            b.add(so, f"{field}.behavior", f"fallback.behavior currentReplicasIfLower scales down to {replicas} while "
                  "the query fails: a Prometheus outage at peak drops capacity", fix)
        elif behavior in SAFE_FALLBACK and behavior == "currentReplicasIfHigher" and replicas is not None and replicas > lo:
            b.add(so, f"{field}.replicas", f"fallback.replicas {replicas} is above minReplicaCount {lo}: a first deploy "
                  f"(no /metrics while the model loads) jumps to {replicas} replicas", fix)


@rule("keda-min-max", "KEDA minReplicaCount ≤ maxReplicaCount (a CEL rule jsonschema does not run)")
def _keda_bounds(b: Build) -> None:
    for so in b.scaled_objects:
        lo = _int(_get(so, "spec", "minReplicaCount", default=0))
        hi = _int(_get(so, "spec", "maxReplicaCount", default=100))
        if lo is not None and hi is not None and lo > hi:
            b.add(so, "spec.minReplicaCount", f"minReplicaCount {lo} > maxReplicaCount {hi}; the API server "
                  "rejects the ScaledObject", "make minReplicaCount <= maxReplicaCount")


@rule("model-path", "the init container's MODEL_DIR is the path vLLM loads, on the same volume; HF_HUB_OFFLINE=1")
def _model_path(b: Build) -> None:
    for d, spec, c, where in b.vllm_deployments():
        model = parse_vllm_args(c).model
        offline = _env(c).get("HF_HUB_OFFLINE")
        if offline is None or str(offline.get("value", "")).strip().lower() not in _TRUE:
            b.add(d, f"{where}.env", "the vLLM container does not set HF_HUB_OFFLINE=1, so a missing or "
                  "partial cache makes vLLM download weights at start (slow, rate-limited, unbounded)",
                  "set env HF_HUB_OFFLINE: \"1\"")
        writers = [ic for ic in spec.get("initContainers") or [] if "MODEL_DIR" in _env(ic)]
        if not writers:
            b.add(d, "spec.template.spec.initContainers", "no init container downloads the weights "
                  "(none sets MODEL_DIR)", "keep the base's download-weights init container")
            continue
        if model is None:
            b.add(d, f"{where}.args", "vLLM is given no model path", "pass the weights directory as the first argument")
            continue
        for ic in writers:
            target = _env(ic)["MODEL_DIR"].get("value")
            f = f"spec.template.spec.initContainers[{ic.get('name')}].env[MODEL_DIR]"
            if target is None:
                continue  # valueFrom: cannot be checked statically
            if target.rstrip("/") != model.rstrip("/"):
                b.add(d, f, f"the init container writes the weights to {target} but vLLM loads {model}; vLLM "
                      "finds no weights (and, offline, fails)", "make MODEL_DIR and vLLM's first argument the same path")
                continue
            w, r = _volume_of(ic, target), _volume_of(c, model)
            if r is None:
                b.add(d, f"{where}.volumeMounts", f"vLLM's model path {model} is on no volume mount, so it reads "
                      "the container's own filesystem", "mount the model cache at the parent of the model path")
            elif w != r:
                b.add(d, f, f"the init container writes {target} on {w} but vLLM reads it from {r}",
                      "mount the same volume (and subPath) at the same path in both containers")


def _volume_of(c: dict, path: str) -> tuple[str, str, str] | None:
    """(volume, subPath, path relative to the mount) of the longest mount containing `path`."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = str(m.get("mountPath", "")).rstrip("/") or "/"
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, m)
    if best is None:
        return None
    mp, m = best
    return m.get("name"), m.get("subPath", ""), path[len(mp):].strip("/")


@rule("hf-token-secret", "the Hugging Face token comes from a Secret, never inline")
def _hf_token(b: Build) -> None:
    for doc in b.docs:
        spec = _pod_spec(doc)
        if not spec:
            continue
        for where, c in _containers(spec):
            for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
                e = _env(c).get(name)
                if e is not None and e.get("value"):
                    b.add(doc, f"{_pod_spec_path(doc)}.{where}.env[{name}]", f"{name} is written inline in the manifest",
                          "read it from a Secret with valueFrom.secretKeyRef (base: Secret hf-token, key token)")


@rule("image-tags", "every image is pinned: no :latest/:nightly, no missing tag")
def _images(b: Build) -> None:
    for doc in b.docs:
        spec = _pod_spec(doc)
        if not spec:
            continue
        for where, c in _containers(spec):
            image = str(c.get("image") or "")
            tag, digest = _image_tag(image)
            field = f"{_pod_spec_path(doc)}.{where}.image"
            if not image:
                b.add(doc, field, "the container has no image", "set a pinned image")
            elif digest:
                continue
            elif tag is None:
                b.add(doc, field, f"image {image} has no tag, which means :latest and changes under you",
                      "pin a release tag (vllm/vllm-openai:v0.33.0) or a digest")
            elif tag in FLOATING_TAGS:
                b.add(doc, field, f"image {image} uses the floating tag :{tag}", "pin a release tag or a digest")


def image_vllm_version(image: str) -> str:
    """The vLLM release whose flag list checks a container running `image`: the X.Y.Z its
    tag starts with (v0.33.0, 0.33.0-cu130), else the pinned release (a digest, another tag)."""
    tag, _ = _image_tag(str(image or ""))
    m = re.match(r"^v?(\d+\.\d+\.\d+)", tag or "")
    return m.group(1) if m else DEFAULT_VLLM_VERSION


@rule("vllm-flags", "every vLLM flag exists in the pinned release; none is removed; long forms only")
def _flags(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        version = image_vllm_version(str(c.get("image") or ""))
        known = valid_flags(version)
        if known is None:
            b.add(d, f"{where}.image", f"no flag list for vLLM {version}, so its flags cannot be checked",
                  f"pin vLLM {DEFAULT_VLLM_VERSION}, or add compose/data/vllm-flags-{version}.txt with "
                  "tools/extract_vllm_flags.py")
            continue
        for tok in parse_vllm_args(c).tokens:
            name = tok.partition("=")[0]
            if not name.startswith("--"):
                long = SHORT_ALIASES.get(name)
                b.add(d, f"{where}.args", f"short option {name}: the checks read long flags only",
                      f"write {long}" if long else "use the long --flag form")
                continue
            norm = "--" + name[2:].replace("_", "-")
            if norm in REMOVED_FLAGS:
                b.add(d, f"{where}.args", f"{name} was removed from vLLM (vllm serve {version} rejects it)",
                      REMOVED_FLAGS[norm])
            elif norm not in known:
                close = difflib.get_close_matches(norm, sorted(known), n=1)
                b.add(d, f"{where}.args", f"{name} is not a `vllm serve` flag in vLLM {version}; the server "
                      "exits at start with an argument error",
                      f"did you mean {close[0]}?" if close else "remove it (see compose/data/vllm-flags-*.txt)")


@rule("probe-timeouts", f"readiness and liveness probes exist with timeoutSeconds ≥ {MIN_PROBE_TIMEOUT_SECONDS}")
def _probes(b: Build) -> None:
    for d, _s, c, where in b.vllm_deployments():
        for kind in ("readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if not isinstance(probe, dict):
                b.add(d, f"{where}.{kind}", f"the vLLM container has no {kind}",
                      f"add a {kind} on /health with timeoutSeconds >= {MIN_PROBE_TIMEOUT_SECONDS}")
                continue
            t = _int(probe.get("timeoutSeconds", 1))
            if t is None or t < MIN_PROBE_TIMEOUT_SECONDS:
                b.add(d, f"{where}.{kind}.timeoutSeconds", f"{kind} timeoutSeconds is {probe.get('timeoutSeconds', '1 (default)')}: "
                      "a saturated vLLM answers /health slowly, so the pod is "
                      + ("taken out of the Service" if kind == "readinessProbe" else "restarted, dropping every request"),
                      f"set timeoutSeconds >= {MIN_PROBE_TIMEOUT_SECONDS}")


@rule("no-replicas-under-keda", "a Deployment that a ScaledObject scales has no spec.replicas")
def _replicas(b: Build) -> None:
    for d in b.deployments:
        if b.scaled_objects_for(d) and "replicas" in (d.get("spec") or {}):
            b.add(d, "spec.replicas", f"spec.replicas={d['spec']['replicas']} while KEDA owns scale: every "
                  "sync (kubectl apply, Argo CD) resets the replica count KEDA chose",
                  "delete spec.replicas; set KEDA minReplicaCount instead")


def _scaled_percent(value, total: int, round_up: bool) -> int | None:
    if isinstance(value, str) and value.endswith("%"):
        pct = _int(value[:-1])
        if pct is None:
            return None
        x = Fraction(pct * total, 100)
        return math.ceil(x) if round_up else math.floor(x)
    return _int(value)


@rule("pdb-vs-min-replicas", "PDB minAvailable < KEDA minReplicaCount, and a PDB that protects no replica "
      "is explained in the README (Single replica)")
def _pdb_min(b: Build) -> None:
    documented = bool(b.readme_text and SINGLE_REPLICA_MARKER.search(b.readme_text))
    for pdb in b.pdbs:
        selector = _get(pdb, "spec", "selector")
        targets = [d for d in b.deployments if _ns(d) == _ns(pdb)
                   and _labels_match(selector, _get(d, "spec", "template", "metadata", "labels"))]
        if not targets:
            b.add(pdb, "spec.selector", "the PodDisruptionBudget selects no pods of this build",
                  "select the Deployment's pod labels (app.kubernetes.io/name, app.kubernetes.io/instance)")
            continue
        for d in targets:
            sos = b.scaled_objects_for(d)
            if sos:
                n = _int(_get(sos[0], "spec", "minReplicaCount", default=0)) or 0
                what = f"KEDA minReplicaCount {n}"
            else:
                n = _int(_get(d, "spec", "replicas", default=1)) or 0
                what = f"replicas {n}"
            spec = pdb.get("spec") or {}
            if "maxUnavailable" in spec:
                allowed = _scaled_percent(spec["maxUnavailable"], n, round_up=True)
                m = None if allowed is None else max(0, n - allowed)
            else:
                m = _scaled_percent(spec.get("minAvailable", 1), n, round_up=True)
            if m is None:
                continue
            if n > 0 and m >= n:
                b.add(pdb, "spec.minAvailable", f"the budget keeps {m} of {n} pods ({what}), so at the minimum "
                      "scale no pod may be evicted and every node drain hangs",
                      f"set minAvailable to {max(0, n - 1)} (= min replicas - 1)")
            elif m == 0 and not documented:
                b.add(pdb, "spec.minAvailable", f"the budget protects no replica ({what}): a node drain or "
                      "upgrade takes the model down until a new pod has loaded, and no README explains "
                      "this single-replica trade-off",
                      "run at least 2 replicas with minAvailable = min - 1, or document the trade-off in the "
                      "README under a '## Single replica' heading (or link to base/README.md#single-replica)")


@rule("pdb-unhealthy-eviction", "every PDB sets unhealthyPodEvictionPolicy: AlwaysAllow")
def _pdb_policy(b: Build) -> None:
    for pdb in b.pdbs:
        if _get(pdb, "spec", "unhealthyPodEvictionPolicy") != "AlwaysAllow":
            b.add(pdb, "spec.unhealthyPodEvictionPolicy",
                  f"unhealthyPodEvictionPolicy is {_get(pdb, 'spec', 'unhealthyPodEvictionPolicy') or 'unset (IfHealthyBudget)'}: "
                  "a crash-looping pod counts against the budget and blocks node drains",
                  "set unhealthyPodEvictionPolicy: AlwaysAllow")


@rule("dev-shm", "/dev/shm is a memory emptyDir with a sizeLimit below the container's memory limit")
def _shm(b: Build) -> None:
    for d, spec, c, where in b.vllm_deployments():
        volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
        mounts = [m for m in c.get("volumeMounts") or [] if str(m.get("mountPath", "")).rstrip("/") == "/dev/shm"]
        if not mounts:
            b.add(d, f"{where}.volumeMounts", "nothing is mounted at /dev/shm, so NCCL and PyTorch get the "
                  "runtime's 64 MiB default and tensor parallelism fails or crawls",
                  "mount a memory emptyDir with a sizeLimit at /dev/shm")
            continue
        vol = volumes.get(mounts[0].get("name")) or {}
        ed = vol.get("emptyDir")
        field = f"spec.template.spec.volumes[{mounts[0].get('name')}]"
        if not isinstance(ed, dict) or ed.get("medium") != "Memory":
            b.add(d, field, "/dev/shm is not a memory-backed emptyDir", "use emptyDir: {medium: Memory, sizeLimit: ...}")
            continue
        size = ed.get("sizeLimit")
        if size is None:
            b.add(d, f"{field}.emptyDir.sizeLimit", "the /dev/shm emptyDir has no sizeLimit: it can grow to "
                  "the node's memory and OOM the node", "set sizeLimit (the planner's shm_size_gib)")
            continue
        lim = parse_quantity(_get(c, "resources", "limits", "memory"))
        if lim is not None and parse_quantity(size) is not None and parse_quantity(size) >= lim:
            b.add(d, f"{field}.emptyDir.sizeLimit", f"/dev/shm sizeLimit {size} is not below the container's "
                  f"memory limit {_get(c, 'resources', 'limits', 'memory')}; shm pages count against it",
                  "make sizeLimit smaller than the memory limit")


@rule("service-links", "the vLLM pod sets enableServiceLinks: false")
def _links(b: Build) -> None:
    for d, spec, _c, _w in b.vllm_deployments():
        if spec.get("enableServiceLinks") is not False:
            b.add(d, "spec.template.spec.enableServiceLinks", "service links are on: a Service named vllm "
                  "injects VLLM_PORT=tcp://..., which vLLM reads as its own setting and crashes on",
                  "set enableServiceLinks: false")


@rule("rolling-update", "RollingUpdate with maxUnavailable 0 (and a surge) so a rollout never drops capacity")
def _rolling(b: Build) -> None:
    for d, _s, _c, _w in b.vllm_deployments():
        strategy = _get(d, "spec", "strategy", default={}) or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            b.add(d, "spec.strategy.type", f"strategy {strategy.get('type')} stops every old pod before a new "
                  "one has loaded", "use RollingUpdate with maxUnavailable: 0, maxSurge: 1")
            continue
        ru = strategy.get("rollingUpdate") or {}
        mu = ru.get("maxUnavailable", "25%")
        if str(mu).strip() not in ("0", "0%"):
            b.add(d, "spec.strategy.rollingUpdate.maxUnavailable", f"maxUnavailable is {mu}: a rollout removes "
                  "serving pods before their replacements have loaded the model", "set maxUnavailable: 0")
        ms = ru.get("maxSurge", "25%")
        if str(ms).strip() in ("0", "0%"):
            b.add(d, "spec.strategy.rollingUpdate.maxSurge", "maxSurge is 0 with maxUnavailable 0: the rollout "
                  "cannot make progress", "set maxSurge: 1")


@rule("spot-drain", "spot capacity only on a cloud that has it, and the drain is not cut to the preemption notice "
      f"(--shutdown-timeout >= {SPOT_SHUTDOWN_FLOOR_SECONDS} s): planned disruptions get the full grace period")
def _spot(b: Build) -> None:
    for d, spec, c, where in b.vllm_deployments():
        if _annotations(d).get(CAPACITY_ANNOTATION) != "spot":
            continue
        name = _annotations(d).get(CLOUD_ANNOTATION)
        cloud = b.cloud(d)
        if cloud is None:
            b.add(d, f"metadata.annotations.{CLOUD_ANNOTATION}", f"spot capacity on an unknown cloud ({name!r}), "
                  "so it is not known which capacity the pod may be preempted from",
                  f"include a cloud component ({', '.join(sorted(clouds_mod.CLOUDS))})")
            continue
        if cloud.spot_notice_seconds is None:
            b.add(d, f"metadata.annotations.{CAPACITY_ANNOTATION}", f"{cloud.name} has no spot capacity",
                  "remove the spot component")
            continue
        shutdown = _shutdown_timeout(c)
        if shutdown is not None and 0 < shutdown < SPOT_SHUTDOWN_FLOOR_SECONDS:
            b.add(d, f"{where}.args", f"--shutdown-timeout={shutdown} looks cut to {cloud.name}'s "
                  f"{cloud.spot_notice_seconds} s spot notice: a preemption stops the pod at the notice whatever "
                  "its grace period, so a short drain only aborts requests on rollouts, scale-in and node upgrades, "
                  "which honour the whole grace period",
                  f"drain as on on-demand capacity: --shutdown-timeout >= {SPOT_SHUTDOWN_FLOOR_SECONDS} "
                  "(the planner's), terminationGracePeriodSeconds = preStop + shutdown + margin")


# ----------------------------------------------------------------------------- placement


GPU_LABEL = "vllm-compose.io/gpu"
ENV_LABEL = "vllm-compose.io/env"
# Node-affinity requirements that only NVIDIA GPU nodes meet (the base's and the
# cloud components' GPU terms).
_NVIDIA_NODE_TERMS = {
    "nvidia.com/gpu.present": "true",
    "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
    "kubernetes.azure.com/accelerator": "nvidia",
}


def _required_terms(spec: dict) -> list[list[dict]]:
    """matchExpressions of each required nodeSelectorTerm (ORed terms of ANDed expressions)."""
    terms = _get(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                 "nodeSelectorTerms", default=[]) or []
    return [[e for e in (t.get("matchExpressions") or []) if isinstance(e, dict)] for t in terms if isinstance(t, dict)]


def _expr_excludes(expr: dict, key: str, value: str) -> bool:
    """True when this expression rejects every node labelled key=value."""
    if expr.get("key") != key:
        return False
    op, values = expr.get("operator"), [str(v) for v in expr.get("values") or []]
    return (op == "In" and value not in values) or (op == "NotIn" and value in values) or op == "DoesNotExist"


def _excludes_label(spec: dict, key: str, value: str) -> bool:
    """True when the pod can never be placed on a node labelled key=value: its
    nodeSelector pins another value, or every required affinity term rejects it."""
    selector = spec.get("nodeSelector") or {}
    if key in selector and str(selector[key]) != value:
        return True
    terms = _required_terms(spec)
    return bool(terms) and all(any(_expr_excludes(e, key, value) for e in term) for term in terms)


def _requires_label(spec: dict, key: str, value: str) -> bool:
    """True when the pod only ever runs on nodes labelled key=value."""
    if str((spec.get("nodeSelector") or {}).get(key)) == value:
        return True
    terms = _required_terms(spec)
    return bool(terms) and all(any(e.get("key") == key and e.get("operator") == "In"
                                   and [str(v) for v in e.get("values") or []] == [value] for e in term)
                               for term in terms)


def _tolerates(spec: dict, key: str, value: str | None, effect: str = "NoSchedule") -> bool:
    for t in spec.get("tolerations") or []:
        if not isinstance(t, dict) or (t.get("effect") or effect) != effect:
            continue
        if t.get("key") in (None, "") and t.get("operator") == "Exists":
            return True
        if t.get("key") == key and (t.get("operator") == "Exists" or str(t.get("value", "")) == (value or "")):
            return True
    return False


@rule("gpu-vendor", "the GPU resource matches the GPU's vendor (vllm-compose.io/gpu), the image and the "
      "node affinity: nvidia.com/gpu with vLLM's CUDA image on NVIDIA nodes")
def _gpu_vendor(b: Build) -> None:
    from compose.core.errors import UnknownGPU
    from compose.plan import catalog

    for d, spec, c, where in b.vllm_deployments():
        res = c.get("resources") or {}
        requested = [r for r in GPU_RESOURCES if r in (res.get("limits") or {}) or r in (res.get("requests") or {})]
        labels = _get(d, "spec", "template", "metadata", "labels", default={}) or {}
        gpu_name = labels.get(GPU_LABEL)
        if gpu_name:
            try:
                gpu = catalog.get_gpu(str(gpu_name))
            except UnknownGPU as err:
                if str(gpu_name).lower() in catalog.REMOVED_GPUS:
                    b.add(d, f"spec.template.metadata.labels.{GPU_LABEL}", f"the pod is labelled for {gpu_name}, "
                          f"which compose does not support: {catalog.REMOVED_GPUS[str(gpu_name).lower()]}",
                          "regenerate the overlay for an NVIDIA GPU (`compose gpus`), or deploy this model by hand")
                    continue
                gpu = None
                del err
            if gpu is not None and requested and gpu.resource not in requested:
                b.add(d, f"{where}.resources", f"the pod requests {', '.join(requested)} but runs on {gpu.name} "
                      f"({gpu.vendor}), whose device plugin advertises {gpu.resource}: it never schedules",
                      f"request {gpu.resource} (compose new-model writes it from the GPU catalog)")
                continue
        for r in requested:
            vendor = next(v for v, name in catalog.VENDOR_RESOURCES.items() if name == r)
            problems = []
            image = str(c.get("image") or "")
            rocm = "rocm" in image.lower()
            if vendor == "nvidia" and rocm:
                problems.append(f"the image {image} is a ROCm build")
            if vendor != "nvidia" and not rocm:
                problems.append(f"the image {image} is vLLM's CUDA build")
            if vendor != "nvidia":
                for key, value in _NVIDIA_NODE_TERMS.items():
                    if any(e.get("key") == key and e.get("operator") == "In" and value in (e.get("values") or [])
                           for term in _required_terms(spec) for e in term):
                        problems.append(f"the node affinity requires {key}={value} (NVIDIA nodes)")
            if vendor not in catalog.SUPPORTED_VENDORS:
                problems.append(f"compose generates {', '.join(catalog.SUPPORTED_VENDORS)} deployments only")
            if problems:
                b.add(d, f"{where}.resources", f"the pod requests {r} ({vendor}) but " + "; ".join(problems),
                      "request nvidia.com/gpu for an NVIDIA GPU with the vllm/vllm-openai image "
                      "(docs/gpus.md explains why AMD is not generated)")


@rule("capacity-type", "on a cloud that sells spot too, a pod not marked spot excludes every spot, preemptible "
      "and interruptible node label (components/on-demand); a spot pod selects spot nodes")
def _capacity(b: Build) -> None:
    for d, spec, _c, _w in b.vllm_deployments():
        cloud = b.cloud(d)
        if cloud is None or not cloud.interruptible_labels:
            continue
        capacity = _annotations(d).get(CAPACITY_ANNOTATION)
        if capacity == "spot":
            key, value = cloud.spot_label
            if not _requires_label(spec, key, value):
                b.add(d, "spec.template.spec.nodeSelector", f"the pod is marked spot but does not select "
                      f"{cloud.name}'s spot nodes ({key}={value}), so it runs on whatever capacity has room",
                      f"select {key}: \"{value}\" (compose new-model --spot writes it in patch-placement.yaml)")
            continue
        allowed = []
        for key, value in cloud.interruptible_labels:
            if _excludes_label(spec, key, value):
                continue
            if cloud.spot_label and cloud.spot_taint == key and not _tolerates(spec, key, value):
                continue  # the cloud taints that capacity and the pod does not tolerate it
            allowed.append(f"{key}={value}")
        if allowed:
            b.add(d, "spec.template.spec.affinity.nodeAffinity", f"nothing keeps the pod off {cloud.name}'s "
                  f"reclaimable capacity ({', '.join(allowed)}): {cloud.name} does not taint it"
                  + (" and Karpenter prefers spot when a NodePool allows both" if cloud.name == "eks" else "")
                  + ", so the replicas may be preempted at short notice",
                  "add components/on-demand (required NotIn expressions for every cloud's spot labels; "
                  "compose new-model adds it to every overlay without --spot), or mark the overlay spot")


def _replica_range(b: Build, d: dict) -> tuple[int, int]:
    """(floor, ceiling) of the Deployment's replica count: KEDA's min/max, else spec.replicas."""
    sos = b.scaled_objects_for(d)
    if sos:
        lo = _int(_get(sos[0], "spec", "minReplicaCount", default=0)) or 0
        hi = _int(_get(sos[0], "spec", "maxReplicaCount", default=100)) or 0
        return min(lo, hi), hi
    n = _int(_get(d, "spec", "replicas", default=1)) or 0
    return n, n


def _pod_labels(d: dict) -> dict:
    return _get(d, "spec", "template", "metadata", "labels", default={}) or {}


def _spread(spec: dict, key: str, pod_labels: dict) -> dict | None:
    """The topology spread constraint on `key` that counts this pod's replicas."""
    for t in spec.get("topologySpreadConstraints") or []:
        if isinstance(t, dict) and t.get("topologyKey") == key and _labels_match(t.get("labelSelector"), pod_labels):
            return t
    return None


def _anti_affine_per_node(spec: dict, pod_labels: dict) -> bool:
    terms = _get(spec, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", default=[]) or []
    return any(isinstance(t, dict) and t.get("topologyKey") == "kubernetes.io/hostname"
               and _labels_match(t.get("labelSelector"), pod_labels) for t in terms)


@rule("spread", "two or more replicas spread over nodes (hostname, DoNotSchedule; minDomains = the minimum "
      "replicas when that is 2 or more) and zones (ScheduleAnyway); a single-node k3s box is exempt")
def _spread_rule(b: Build) -> None:
    for d, spec, _c, _w in b.vllm_deployments():
        cloud = b.cloud(d)
        if cloud is not None and cloud.single_node:
            continue
        floor, ceiling = _replica_range(b, d)
        if ceiling < 2:
            continue
        labels = _pod_labels(d)
        field = "spec.template.spec.topologySpreadConstraints"
        host = _spread(spec, "kubernetes.io/hostname", labels)
        if _anti_affine_per_node(spec, labels):
            pass
        elif host is None or host.get("whenUnsatisfiable") != "DoNotSchedule" or (_int(host.get("maxSkew")) or 0) != 1:
            b.add(d, field, f"up to {ceiling} replicas and no hard per-node spread (kubernetes.io/hostname, maxSkew 1, "
                  "DoNotSchedule) selecting them: several replicas can share one node, and one node failure or "
                  "reclaim takes them all", "keep the base's hostname topologySpreadConstraint (its labelSelector "
                  "must match the pod's labels)")
        elif floor >= 2 and (_int(host.get("minDomains")) or 1) < floor:
            b.add(d, field, f"the minimum of {floor} replicas has minDomains {host.get('minDomains', 'unset')} on "
                  "kubernetes.io/hostname: while fewer nodes exist than that, the scheduler stacks the minimum "
                  "on the nodes there are (maxSkew counts only existing nodes)",
                  f"set minDomains: {floor} on the hostname constraint (compose writes it in patch-placement.yaml)")
        zone = _spread(spec, "topology.kubernetes.io/zone", labels)
        if zone is None:
            b.add(d, field, f"up to {ceiling} replicas and no zone spread: they may all sit in one zone",
                  "keep the base's topology.kubernetes.io/zone constraint (maxSkew 1, ScheduleAnyway)")
        elif zone.get("whenUnsatisfiable") != "ScheduleAnyway":
            b.add(d, field, "the zone spread is DoNotSchedule: GPU capacity is often in one zone (and nodes "
                  "without a zone label are not eligible), so scale-out stalls",
                  "use whenUnsatisfiable: ScheduleAnyway for topology.kubernetes.io/zone")


SINGLE_REPLICA_REASON = "vllm-compose.io/single-replica-reason"
PROD_MIN_REPLICAS = 2


@rule("prod-replicas", f"a prod overlay (vllm-compose.io/env=prod) keeps at least {PROD_MIN_REPLICAS} replicas, "
      f"or says in one line why not ({SINGLE_REPLICA_REASON} on its ScaledObject)")
def _prod_replicas(b: Build) -> None:
    for d, _spec, _c, _w in b.vllm_deployments():
        labels = {**(_get(d, "metadata", "labels", default={}) or {}), **_pod_labels(d)}
        if labels.get(ENV_LABEL) != "prod":
            continue
        floor, _ = _replica_range(b, d)
        if floor >= PROD_MIN_REPLICAS:
            continue
        sos = b.scaled_objects_for(d)
        holder = sos[0] if sos else d
        reason = str(_annotations(holder).get(SINGLE_REPLICA_REASON) or "").strip()
        if reason and "\n" not in reason:
            continue
        field = "spec.minReplicaCount" if sos else "spec.replicas"
        b.add(holder, field, f"a prod model runs a minimum of {floor} replica(s) without a recorded reason: one "
              "node drain, upgrade or preemption takes it down for a whole cold start",
              f"keep minReplicaCount >= {PROD_MIN_REPLICAS}, or record why one is enough in one line: "
              f"`compose new-model ... --replicas 1:N --single-replica-reason \"...\"` (annotation {SINGLE_REPLICA_REASON})")


@rule("runtime-class", "runtimeClassName only where the cloud has that RuntimeClass (k3s: nvidia), never on eks/gke/aks")
def _runtime(b: Build) -> None:
    for d, spec, _c, _w in b.vllm_deployments():
        cloud = b.cloud(d)
        if cloud is None:
            continue
        got = spec.get("runtimeClassName")
        field = "spec.template.spec.runtimeClassName"
        if cloud.runtime_class is None and got:
            b.add(d, field, f"runtimeClassName {got} on {cloud.name}, which has no such RuntimeClass: pods "
                  f"fail with RuntimeClass \"{got}\" not found", "remove runtimeClassName (the cloud's GPU nodes "
                  "use the NVIDIA runtime by default)")
        elif cloud.runtime_class is not None and got != cloud.runtime_class:
            b.add(d, field, f"runtimeClassName is {got or 'unset'} on {cloud.name}, where the NVIDIA runtime is "
                  "not containerd's default: the container sees no GPU",
                  f"set runtimeClassName: {cloud.runtime_class} (components/{cloud.name})")


@rule("rwo-cache-only-on-k3s", "a ReadWriteOnce model cache only on single-node k3s")
def _rwo(b: Build) -> None:
    for d, spec, _c, _w in b.vllm_deployments():
        cloud = b.cloud(d)
        for v in spec.get("volumes") or []:
            claim = _get(v, "persistentVolumeClaim", "claimName")
            pvc = b.pvcs.get((_ns(d), claim)) if claim else None
            if pvc is None:
                continue
            modes = set(_get(pvc, "spec", "accessModes", default=[]) or [])
            if modes & {"ReadWriteOnce", "ReadWriteOncePod"} and not (cloud and cloud.access_mode == "ReadWriteOnce"):
                b.add(pvc, "spec.accessModes", f"the model cache is {'/'.join(sorted(modes))} on "
                      f"{cloud.name if cloud else 'an unspecified cloud'}: a second replica or the surge pod of a "
                      "rollout on another node stalls on Multi-Attach",
                      "use a shared mode (ReadWriteMany, or ReadOnlyMany for a pre-filled volume) via the cloud "
                      "component; ReadWriteOnce is only for single-node k3s")


@rule("service-selects-pods", "every Service selects the pods of a rendered Deployment")
def _services(b: Build) -> None:
    for svc in (d for d in b.docs if d.get("kind") == "Service"):
        selector = _get(svc, "spec", "selector")
        if not selector:
            continue
        if not any(_ns(d) == _ns(svc) and all((_get(d, "spec", "template", "metadata", "labels", default={}) or {})
                   .get(k) == v for k, v in selector.items()) for d in b.deployments):
            b.add(svc, "spec.selector", f"the Service selector {selector} matches no pod of this build",
                  "select the Deployment's pod labels")


# ----------------------------------------------------------------------------- entry point


def check_policy(
    docs: list[dict],
    source: str,
    readme_text: str | None = None,
    *,
    load_seconds: Callable[[dict], float | None] | None = None,
    rules: Iterable[str] | None = None,
    require_digest: bool = False,
) -> list[Finding]:
    """Run every policy rule over one rendered build and return all findings, sorted.

    docs: the rendered objects (compose.kustomize.build(...).docs).
    source: the directory they came from, used in each Finding.
    readme_text: the README that may document the single-replica trade-off
        (pass the overlay's README, or the base's for base/vllm).
    load_seconds: optional callable Deployment -> estimated load seconds (or None to
        fall back to the annotation); lets a caller plug the planner in directly.
    rules: restrict to these rule ids (see RULES); default all.
    require_digest: every image must be pinned by digest (`compose check --require-digest`).
    """
    b = Build(docs, source, readme_text, load_seconds, require_digest)
    for rid in (list(RULES) if rules is None else list(rules)):
        if rid not in RULES:
            raise InvalidInput(f"unknown policy rule {rid!r}; choose from: {', '.join(RULES)}")
        RULES[rid][1](b)
    return sorted(set(b.findings))


# The route, inference-pool and canary rules register themselves with `rule` (issue 14).
from compose.verify import routingpolicy as _routingpolicy  # noqa: E402,F401
# The security rules (Pod Security, credentials, images, namespaces) live in their own
# module and register themselves into RULES on import.
from compose.verify import security as _security  # noqa: E402,F401
