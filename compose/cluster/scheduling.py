"""A scheduling pre-flight: would the scheduler place this pod, and where?

The filters of kube-scheduler's default profile that decide where a vLLM pod
can go, re-implemented on the API's own JSON objects (v1.32 semantics, the
reason strings are the scheduler's own, so a verdict reads like a
`FailedScheduling` event):

1. NodeUnschedulable  `node(s) were unschedulable` (cordoned; tolerating
   node.kubernetes.io/unschedulable:NoSchedule lifts it);
2. TaintToleration    `node(s) had untolerated taint {key: value}` (NoSchedule
   and NoExecute taints; PreferNoSchedule never filters);
3. NodeAffinity       `node(s) didn't match Pod's node affinity/selector`
   (nodeSelector AND any one required nodeSelectorTerm; In, NotIn, Exists,
   DoesNotExist, Gt, Lt; matchFields on metadata.name);
4. NodeResourcesFit   `Insufficient cpu|memory|ephemeral-storage|<extended>`,
   `Too many pods`: the pod's effective request (max of the containers' sum and
   each init container, sidecars included, plus pod overhead; limits stand in
   for missing requests as API defaulting does) against allocatable minus what
   the pods already bound to the node request;
5. PodTopologySpread  DoNotSchedule constraints: the node must carry the
   topology key, and the skew with the matching pods already placed stays
   within maxSkew (domains from the nodes that pass nodeAffinity and, with
   nodeTaintsPolicy Honor, taints).

As admission would, the pod first gets the tolerations ExtendedResourceToleration
adds for each extended resource it requests, the NoExecute tolerations of
DefaultTolerationSeconds, and its RuntimeClass's nodeSelector, tolerations and
overhead. Like the scheduler, a node's verdict is its first failing filter.

Karpenter NodePools (karpenter.sh/v1) count as nodes that could be launched:
their template's taints must be tolerated, the pod's node requirements must be
compatible with the template's requirements and labels (a label Karpenter or the
cloud provider sets from the instance type counts as known), and the pool's
limits must leave room for the pod's requests.

Not modelled (the vLLM overlays use none of them): inter-pod (anti-)affinity,
host ports, volume topology and per-node volume limits. It is no substitute for
the scheduler: tests/test_doctor_scheduling.py compares its verdict with the
real scheduler's for every overlay and node shape in the suite.

Besides the verdict, every node gets the full list of what it misses (not only
the first filter), and `nearest_miss()` names the candidate that misses least,
in one actionable line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from compose.cluster import quantity

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
NATIVE = ("cpu", "memory", "ephemeral-storage")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
DEFAULT_NOEXECUTE = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_PODS = "Too many pods"

# Labels Karpenter (core and the AWS provider) sets on a node from the NodePool
# and the chosen instance type: a pod may require them although the NodePool
# template does not list them (https://karpenter.sh/docs/concepts/scheduling/).
KARPENTER_WELL_KNOWN = (
    "karpenter.sh/capacity-type", "karpenter.sh/nodepool", "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region", "node.kubernetes.io/instance-type", "kubernetes.io/arch",
    "kubernetes.io/os", "node.kubernetes.io/windows-build", "topology.k8s.aws/zone-id",
    "kubernetes.io/hostname",
)
KARPENTER_WELL_KNOWN_PREFIXES = ("karpenter.k8s.aws/instance-", "karpenter.k8s.aws/capacity-reservation")


# --------------------------------------------------------------------------- the pod


@dataclass(frozen=True)
class Pod:
    """A pod as the scheduler sees it after admission."""

    namespace: str
    labels: Mapping[str, str]
    node_selector: Mapping[str, str]
    terms: tuple[Mapping[str, Any], ...]  # required nodeSelectorTerms (ORed); () = no affinity
    tolerations: tuple[Mapping[str, Any], ...]
    requests: Mapping[str, int]  # cpu in milli-cores, everything else in units (bytes, counts)
    spread: tuple[Mapping[str, Any], ...]  # DoNotSchedule topologySpreadConstraints
    unmodelled: tuple[str, ...] = ()  # constraints present but not modelled (inter-pod affinity, ...)

    def gpus(self) -> tuple[str, int] | None:
        for r in GPU_RESOURCES:
            if self.requests.get(r):
                return r, self.requests[r]
        return None


def _container_requests(container: Mapping) -> dict[str, int]:
    res = container.get("resources") or {}
    requests = dict(res.get("requests") or {})
    for name, value in (res.get("limits") or {}).items():
        requests.setdefault(name, value)  # API defaulting: a limit without a request is the request
    return {name: to_amount(name, value) for name, value in requests.items()}


def to_amount(resource: str, value: Any) -> int:
    return quantity.milli(value) if resource == "cpu" else quantity.units(value)


def _add(a: dict[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _max(a: dict[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = max(out.get(k, 0), v)
    return out


def pod_requests(spec: Mapping, overhead: Mapping[str, Any] | None = None) -> dict[str, int]:
    """The effective request of a pod spec (k8s.io/component-helpers resource.PodRequests):
    max(sum of containers + restartable init containers, each init container
    + the sidecars started before it) + overhead."""
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        total = _add(total, _container_requests(c))
    init_max: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        req = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, req)
            init_max = _max(init_max, sidecars)
        else:
            init_max = _max(init_max, _add(req, sidecars))
    total = _max(_add(total, sidecars), init_max)
    overhead = overhead if overhead is not None else spec.get("overhead")
    if overhead:
        total = _add(total, {k: to_amount(k, v) for k, v in overhead.items()})
    return {k: v for k, v in total.items() if v}


def _tolerated(tolerations: Iterable[Mapping], key: str, effect: str) -> bool:
    return any(tolerates(t, {"key": key, "effect": effect}) for t in tolerations)


def admitted_pod(spec: Mapping, namespace: str, labels: Mapping[str, str] | None = None, *,
                 runtime_class: Mapping | None = None, extended_resource_toleration: bool = True) -> Pod:
    """The pod a Deployment's template becomes after admission (see the module doc)."""
    tolerations = [dict(t) for t in spec.get("tolerations") or []]
    node_selector = dict(spec.get("nodeSelector") or {})
    overhead = None
    if runtime_class:
        sched = runtime_class.get("scheduling") or {}
        node_selector.update(sched.get("nodeSelector") or {})
        tolerations += [dict(t) for t in sched.get("tolerations") or []]
        overhead = (runtime_class.get("overhead") or {}).get("podFixed")
    requests = pod_requests(spec, overhead)
    if extended_resource_toleration:
        for name in sorted(requests):
            if "/" in name and not name.startswith(("kubernetes.io/", "requests.", "hugepages-")):
                t = {"key": name, "operator": "Exists", "effect": "NoSchedule"}
                if t not in tolerations:
                    tolerations.append(t)
    for key in DEFAULT_NOEXECUTE:
        if not _tolerated(tolerations, key, "NoExecute"):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    affinity = spec.get("affinity") or {}
    required = ((affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = tuple(required.get("nodeSelectorTerms") or ())
    spread = tuple(c for c in spec.get("topologySpreadConstraints") or [] if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule")
    unmodelled = tuple(k for k in ("podAffinity", "podAntiAffinity")
                       if (affinity.get(k) or {}).get("requiredDuringSchedulingIgnoredDuringExecution"))
    return Pod(namespace, dict(labels or {}), node_selector, terms, tuple(tolerations), requests, spread, unmodelled)


# --------------------------------------------------------------------------- matching


def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """k8s.io/api/core/v1 Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def requirement_matches(req: Mapping, labels: Mapping[str, str]) -> bool:
    key, op, values = req.get("key"), req.get("operator"), list(req.get("values") or [])
    has = key in labels
    value = labels.get(key)
    if op == "In":
        return has and value in values
    if op == "NotIn":
        return not has or value not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt"):
        try:
            node_value, bound = int(value), int(values[0])
        except (TypeError, ValueError, IndexError):
            return False
        return node_value > bound if op == "Gt" else node_value < bound
    return False


def term_matches(term: Mapping, labels: Mapping[str, str], name: str) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    if not all(requirement_matches(r, labels) for r in exprs):
        return False
    return all(requirement_matches(r, {"metadata.name": name}) for r in fields)


def affinity_matches(pod: Pod, labels: Mapping[str, str], name: str) -> bool:
    if any(labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    return not pod.terms or any(term_matches(t, labels, name) for t in pod.terms)


def _selector_matches(selector: Mapping | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_matches(r, labels) for r in selector.get("matchExpressions") or [])


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Miss:
    """One thing a candidate lacks. `filter` is the scheduler plugin."""

    filter: str  # NodeUnschedulable | TaintToleration | NodeAffinity | NodeResourcesFit | PodTopologySpread | NodePool
    reasons: tuple[str, ...]  # the scheduler's reason strings
    detail: str  # for people: what the node has and what the pod needs
    key: str = ""  # the label/taint key or resource name involved
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """One candidate: a Node, or a NodePool that could launch one."""

    name: str
    kind: str  # "node" or "nodepool"
    labels: Mapping[str, str]
    misses: list[Miss]

    @property
    def fits(self) -> bool:
        return not self.misses

    @property
    def reasons(self) -> tuple[str, ...]:
        """The scheduler's reasons: those of the first failing filter only."""
        return self.misses[0].reasons if self.misses else ()


@dataclass
class Placement:
    """Where the pod can go."""

    pod: Pod
    nodes: list[Verdict]
    nodepools: list[Verdict]
    unmodelled: tuple[str, ...] = ()

    @property
    def feasible_nodes(self) -> list[str]:
        return [v.name for v in self.nodes if v.fits]

    @property
    def feasible_nodepools(self) -> list[str]:
        return [v.name for v in self.nodepools if v.fits]

    @property
    def schedulable(self) -> bool:
        return bool(self.feasible_nodes or self.feasible_nodepools)

    def histogram(self) -> Counter:
        """{reason: number of nodes}, as the scheduler counts them."""
        out: Counter = Counter()
        for v in self.nodes:
            for r in v.reasons:
                out[r] += 1
        return out

    def message(self) -> str:
        """The scheduler's FailedScheduling summary for these nodes (no preemption part)."""
        n = len(self.nodes)
        feasible = len(self.feasible_nodes)
        if feasible:
            return f"{feasible}/{n} nodes are available"
        parts = sorted(f"{count} {reason}" for reason, count in self.histogram().items())
        return f"0/{n} nodes are available" + (f": {', '.join(parts)}." if parts else ".")


def _allocatable(node: Mapping) -> dict[str, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    out = {}
    for k, v in alloc.items():
        try:
            out[k] = to_amount(k, v)
        except ValueError:
            continue
    return out


def usage_by_node(pods: Iterable[Mapping]) -> dict[str, tuple[dict[str, int], int, list[str]]]:
    """{node: (requested, pod count, pod names)} for every bound pod that is not finished."""
    out: dict[str, tuple[dict[str, int], int, list[str]]] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if not node or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        req, count, names = out.get(node, ({}, 0, []))
        meta = p.get("metadata") or {}
        out[node] = (_add(req, pod_requests(p.get("spec") or {})), count + 1,
                     names + [f"{meta.get('namespace')}/{meta.get('name')}"])
    return out


def _taints(node: Mapping) -> list[Mapping]:
    return list((node.get("spec") or {}).get("taints") or [])


def _unschedulable(pod: Pod, node: Mapping) -> Miss | None:
    if (node.get("spec") or {}).get("unschedulable") and not _tolerated(pod.tolerations, UNSCHEDULABLE_TAINT, "NoSchedule"):
        return Miss("NodeUnschedulable", (R_UNSCHEDULABLE,), "is cordoned (spec.unschedulable)", UNSCHEDULABLE_TAINT)
    return None


def _taint_misses(pod: Pod, taints: Iterable[Mapping]) -> list[Miss]:
    out = []
    for t in taints:
        if t.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if any(tolerates(tol, t) for tol in pod.tolerations):
            continue
        key, value = t.get("key", ""), t.get("value") or ""
        shown = f"{key}={value}:{t.get('effect')}" if value else f"{key}:{t.get('effect')}"
        out.append(Miss("TaintToleration", (f"node(s) had untolerated taint {{{key}: {value}}}",),
                        f"is tainted {shown} and the pod does not tolerate it", key, {"taint": dict(t)}))
    return out


def _affinity_misses(pod: Pod, labels: Mapping[str, str], name: str) -> list[Miss]:
    """What keeps the node out, label by label (the scheduler reports it as one reason)."""
    failing: list[tuple[str, str, Mapping]] = []
    for k, v in pod.node_selector.items():
        if labels.get(k) != v:
            req = {"key": k, "operator": "In", "values": [v]}
            failing.append((k, _requirement_text(req, labels), req))
    if pod.terms and not any(term_matches(t, labels, name) for t in pod.terms):
        # Report the term that comes closest (fewest failing expressions).
        best: list[tuple[str, str, Mapping]] | None = None
        for term in pod.terms:
            fails = [(r.get("key", ""), _requirement_text(r, labels), r) for r in term.get("matchExpressions") or []
                     if not requirement_matches(r, labels)]
            fails += [("metadata.name", _requirement_text(r, {"metadata.name": name}), r)
                      for r in term.get("matchFields") or [] if not requirement_matches(r, {"metadata.name": name})]
            if not fails and not term.get("matchExpressions") and not term.get("matchFields"):
                fails = [("", "an empty nodeSelectorTerm matches no node", {})]
            if best is None or len(fails) < len(best):
                best = fails
        failing += best or []
    return [Miss("NodeAffinity", (R_AFFINITY,), text, key, {"requirement": dict(req)}) for key, text, req in failing]


def _requirement_text(req: Mapping, labels: Mapping[str, str]) -> str:
    key, op, values = req.get("key", ""), req.get("operator"), list(req.get("values") or [])
    want = {"In": f"`{key}` in {values}" if len(values) > 1 else f"`{key}={values[0] if values else ''}`",
            "NotIn": f"`{key}` not in {values}", "Exists": f"a `{key}` label",
            "DoesNotExist": f"no `{key}` label", "Gt": f"`{key}` > {values[0] if values else '?'}",
            "Lt": f"`{key}` < {values[0] if values else '?'}"}.get(op, f"`{key}` {op} {values}")
    have = f"`{key}={labels[key]}`" if key in labels else f"no `{key}` label"
    return f"requires {want}, has {have}"


def _resource_misses(pod: Pod, alloc: Mapping[str, int], used: Mapping[str, int], count: int,
                     on_node: Sequence[str]) -> list[Miss]:
    out = []
    max_pods = alloc.get("pods", 110)
    if count + 1 > max_pods:
        out.append(Miss("NodeResourcesFit", (R_PODS,), f"already runs {count} of {max_pods} pods", "pods"))
    # GPUs first: the reason people act on; the scheduler lists every insufficient resource anyway.
    for name, need in sorted(pod.requests.items(), key=lambda kv: (kv[0] not in GPU_RESOURCES, kv[0] not in NATIVE, kv[0])):
        if name == "pods" or need <= 0:
            continue
        free = alloc.get(name, 0) - used.get(name, 0)
        if need > free:
            have = alloc.get(name, 0)
            if have == 0:
                detail = f"needs {quantity.human(name, need)} {name}, the node advertises none"
            elif used.get(name) and need <= have:
                detail = (f"needs {quantity.human(name, need)} {name}, {quantity.human(name, max(free, 0))} of "
                          f"{quantity.human(name, have)} free (requested by {len(on_node)} pod(s): {', '.join(on_node[:3])})")
            else:
                detail = f"needs {quantity.human(name, need)} {name}, the node has {quantity.human(name, have)} allocatable"
            out.append(Miss("NodeResourcesFit", (f"Insufficient {name}",), detail, name,
                            {"need": need, "allocatable": have, "free": free}))
    if out and len(out) > 1:  # the scheduler reports every insufficient resource of the node at once
        reasons = tuple(r for m in out for r in m.reasons)
        out = [Miss(m.filter, reasons if i == 0 else m.reasons, m.detail, m.key, m.data) for i, m in enumerate(out)]
    return out


def _spread_misses(pod: Pod, node: Mapping, nodes: Sequence[Mapping], pods: Sequence[Mapping]) -> list[Miss]:
    out = []
    labels = _labels(node)
    for c in pod.spread:
        key = c.get("topologyKey", "")
        if key not in labels:
            out.append(Miss("PodTopologySpread", (R_SPREAD_LABEL,), f"has no `{key}` label for topology spread", key))
            continue
        selector = dict(c.get("labelSelector") or {})
        for k in c.get("matchLabelKeys") or []:
            if k in pod.labels:
                selector.setdefault("matchLabels", {})
                selector["matchLabels"] = {**selector["matchLabels"], k: pod.labels[k]}
        honour_taints = c.get("nodeTaintsPolicy") == "Honor"
        domains: dict[str, int] = {}
        node_domain: dict[str, str] = {}
        for n in nodes:
            nl = _labels(n)
            if key not in nl or not affinity_matches(pod, nl, _name(n)):
                continue
            if honour_taints and _taint_misses(pod, _taints(n)):
                continue
            domains.setdefault(nl[key], 0)
            node_domain[_name(n)] = nl[key]
        for p in pods:
            meta = p.get("metadata") or {}
            bound = (p.get("spec") or {}).get("nodeName")
            if (meta.get("namespace") != pod.namespace or bound not in node_domain or meta.get("deletionTimestamp")
                    or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")):
                continue
            if _selector_matches(selector, meta.get("labels") or {}):
                domains[node_domain[bound]] += 1
        if labels[key] not in domains:
            continue  # not an eligible domain; nodeAffinity already excludes the node
        self_match = 1 if _selector_matches(selector, pod.labels) else 0
        min_count = min(domains.values()) if domains else 0
        if c.get("minDomains") and len(domains) < int(c["minDomains"]):
            min_count = 0
        skew = domains[labels[key]] + self_match - min_count
        if skew > int(c.get("maxSkew", 1)):
            out.append(Miss("PodTopologySpread", (R_SPREAD,),
                            f"already has {domains[labels[key]]} matching pod(s) in {key}={labels[key]} (maxSkew {c.get('maxSkew', 1)})", key))
    return out


def _labels(obj: Mapping) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _name(obj: Mapping) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def node_verdict(pod: Pod, node: Mapping, usage: Mapping[str, tuple[dict[str, int], int, list[str]]],
                 nodes: Sequence[Mapping] = (), pods: Sequence[Mapping] = ()) -> Verdict:
    """Every miss of one node, in the scheduler's filter order (the first is the scheduler's reason)."""
    name, labels = _name(node), _labels(node)
    used, count, on_node = usage.get(name, ({}, 0, []))
    misses: list[Miss] = []
    m = _unschedulable(pod, node)
    if m:
        misses.append(m)
    misses += _taint_misses(pod, _taints(node))
    misses += _affinity_misses(pod, labels, name)
    misses += _resource_misses(pod, _allocatable(node), used, count, on_node)
    if pod.spread:
        misses += _spread_misses(pod, node, nodes or [node], pods)
    # Verdict.reasons reads the first miss only: one untolerated taint, as the scheduler reports it.
    return Verdict(name, "node", labels, misses)


# --------------------------------------------------------------------------- Karpenter NodePools


def _karpenter_known(key: str) -> bool:
    return key in KARPENTER_WELL_KNOWN or key.startswith(KARPENTER_WELL_KNOWN_PREFIXES)


def _pool_requirements(pool: Mapping) -> dict[str, Mapping]:
    tmpl = (pool.get("spec") or {}).get("template") or {}
    reqs: dict[str, Mapping] = {}
    for k, v in ((tmpl.get("metadata") or {}).get("labels") or {}).items():
        reqs[k] = {"key": k, "operator": "In", "values": [v]}
    for r in (tmpl.get("spec") or {}).get("requirements") or []:
        reqs[r["key"]] = r
    name = _name(pool)
    reqs.setdefault("karpenter.sh/nodepool", {"key": "karpenter.sh/nodepool", "operator": "In", "values": [name]})
    return reqs


def _compatible(pod_req: Mapping, pool_req: Mapping | None) -> str | None:
    """None when a node of the pool can satisfy the pod's requirement; else why not."""
    key, op, values = pod_req.get("key", ""), pod_req.get("operator"), set(pod_req.get("values") or [])
    if pool_req is None:
        if op in ("NotIn", "DoesNotExist"):
            return None
        if _karpenter_known(key):
            return None
        return f"the pod requires {_requirement_text(pod_req, {}).split(', has')[0][9:]}, which no node of the pool carries (not in its template labels or requirements)"
    pop, pvalues = pool_req.get("operator"), set(pool_req.get("values") or [])
    shown = f"`{key} {pop}{(' ' + str(sorted(pvalues))) if pvalues else ''}`"
    if op == "In":
        if pop == "In" and not (values & pvalues):
            return f"the pool offers {shown}, the pod requires `{key}` in {sorted(values)}"
        if pop == "NotIn" and values <= pvalues:
            return f"the pool excludes {sorted(values)} ({shown}), the pod requires one of them"
        if pop == "DoesNotExist":
            return f"the pool's nodes have no `{key}` label, the pod requires it"
        if pop in ("Gt", "Lt"):
            try:
                bound = int(next(iter(pvalues)))
                ok = [v for v in values if (int(v) > bound if pop == "Gt" else int(v) < bound)]
            except (ValueError, StopIteration):
                ok = []
            if not ok:
                return f"the pool offers {shown}, the pod requires `{key}` in {sorted(values)}"
        return None
    if op == "Exists" and pop == "DoesNotExist":
        return f"the pool's nodes have no `{key}` label, the pod requires it"
    if op == "DoesNotExist" and pop in ("In", "Exists", "Gt", "Lt"):
        return f"the pool's nodes carry `{key}`, the pod requires its absence"
    if op == "NotIn" and pop == "In" and pvalues <= values:
        return f"the pool offers only {sorted(pvalues)} for `{key}`, the pod excludes them"
    if op in ("Gt", "Lt") and pop == "In":
        try:
            bound = int(next(iter(values)))
            if not any((int(v) > bound if op == "Gt" else int(v) < bound) for v in pvalues):
                return f"the pool offers {shown}, the pod requires `{key}` {op} {bound}"
        except (ValueError, StopIteration):
            return None
    return None


def nodepool_verdict(pod: Pod, pool: Mapping) -> Verdict:
    """Could Karpenter launch a node from this NodePool (karpenter.sh/v1) for the pod?"""
    name = _name(pool)
    spec = pool.get("spec") or {}
    tmpl_spec = (spec.get("template") or {}).get("spec") or {}
    reqs = _pool_requirements(pool)
    misses = [Miss("NodePool", m.reasons, m.detail.replace("is tainted", "its nodes are tainted"), m.key, m.data)
              for m in _taint_misses(pod, tmpl_spec.get("taints") or [])]
    pod_reqs = [{"key": k, "operator": "In", "values": [v]} for k, v in pod.node_selector.items()]
    best: list[Miss] | None = None
    for term in pod.terms or ({},):
        term_reqs = pod_reqs + list((term or {}).get("matchExpressions") or [])
        found = []
        for r in term_reqs:
            why = _compatible(r, reqs.get(r.get("key", "")))
            if why:
                found.append(Miss("NodePool", (R_AFFINITY,), why, r.get("key", ""), {"requirement": dict(r)}))
        if best is None or len(found) < len(best):
            best = found
    misses += best or []
    limits = spec.get("limits") or {}
    used = ((pool.get("status") or {}).get("resources")) or {}
    for res, limit in limits.items():
        need = pod.requests.get(res, 0)
        if not need:
            continue
        try:
            room = to_amount(res, limit) - to_amount(res, used.get(res, 0))
        except ValueError:
            continue
        if need > room:
            misses.append(Miss("NodePool", (f"Insufficient {res}",),
                               f"has {quantity.human(res, max(room, 0))} {res} left under its limit of {limit}, the pod needs {quantity.human(res, need)}",
                               res, {"need": need, "room": room}))
    labels = {k: (r.get("values") or [""])[0] for k, r in reqs.items() if r.get("operator") == "In" and len(r.get("values") or []) == 1}
    return Verdict(name, "nodepool", labels, misses)


# --------------------------------------------------------------------------- the whole


def evaluate(pod: Pod, nodes: Sequence[Mapping], pods: Sequence[Mapping] = (),
             nodepools: Sequence[Mapping] = ()) -> Placement:
    """Verdicts for every node (allocatable minus what `pods` already request) and NodePool."""
    usage = usage_by_node(pods)
    verdicts = [node_verdict(pod, n, usage, nodes, pods) for n in sorted(nodes, key=_name)]
    pools = [nodepool_verdict(pod, p) for p in sorted(nodepools, key=_name)]
    return Placement(pod, verdicts, pools, pod.unmodelled)


def replicas_that_fit(placement: Placement, nodes: Sequence[Mapping], pods: Sequence[Mapping] = ()) -> int:
    """How many copies of the pod the feasible nodes hold right now (each resource's free / need)."""
    usage = usage_by_node(pods)
    by_name = {_name(n): n for n in nodes}
    total = 0
    for name in placement.feasible_nodes:
        alloc = _allocatable(by_name[name])
        used, count, _ = usage.get(name, ({}, 0, []))
        fit = alloc.get("pods", 110) - count
        for res, need in placement.pod.requests.items():
            if need > 0:
                fit = min(fit, (alloc.get(res, 0) - used.get(res, 0)) // need)
        if placement.pod.spread:  # hostname spread with maxSkew 1: one per node while another node has none
            fit = min(fit, 1)
        total += max(fit, 0)
    return total


__all__ = [
    "Pod", "Miss", "Verdict", "Placement", "admitted_pod", "pod_requests", "evaluate", "node_verdict",
    "nodepool_verdict", "tolerates", "requirement_matches", "replicas_that_fit", "usage_by_node",
]
