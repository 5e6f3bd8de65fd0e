"""The `control_plane` fixture and helpers for tests against a real API server.

Loaded by tests/conftest.py (`pytest_plugins`), so every test module can use
the fixtures; import the helpers with `from conftest_cluster import ...`.

Fixtures:
- `control_plane` (session): a `controlplane.ControlPlane` started once; the
  test is skipped with one line when etcd or the envtest binaries are missing.
- `cluster_crds` (session): every CRD under $VLLM_COMPOSE_CRD_DIR (default
  ../shared/crds) installed and Established; returns their names.
- `cluster_ns` (function): a fresh namespace for one test, removed afterwards
  (its pods force-deleted: there is no kubelet to confirm a graceful delete).

Tests that use `control_plane` get the `cluster` marker automatically
(`python -m pytest -m cluster` runs them all).

Helpers (all take the ControlPlane first): `apply_rendered`, `ensure_namespace`,
`delete_namespace`, `reset`, `scale`, `pods`, `wait_pods_scheduled`, `placements`,
`pending_reasons`, `dry_run`, `dry_run_pod`, `wait_for`. Fake nodes live in
`fakenodes` (`node_set`, the shapes).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

import controlplane as cpl
import fakenodes
from controlplane import ApiError, ControlPlane

REPO = Path(__file__).resolve().parents[1]
EPHEMERAL_LABEL = "vllm-compose.test/ephemeral"
PV_LABEL = "vllm-compose.test/fake-pv"
FAKE_PV_ROOT = "/tmp/vllm-compose-fake-pv"  # hostPath of the fake volumes; no kubelet ever mounts it


def crd_dir() -> Path:
    return Path(os.environ.get("VLLM_COMPOSE_CRD_DIR") or REPO.parent / "shared" / "crds")


# --------------------------------------------------------------------------- pytest wiring


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


_failed_with_cluster: list[str] = []
_kept_logs: list[Path] = []


def pytest_terminal_summary(terminalreporter) -> None:
    for path in _kept_logs:
        terminalreporter.write_line(f"control plane logs kept in {path}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and "control_plane" in getattr(item, "fixturenames", ()):
        _failed_with_cluster.append(item.nodeid)


@pytest.fixture(scope="session")
def control_plane() -> ControlPlane:
    """etcd + kube-apiserver + kube-scheduler + kube-controller-manager on 127.0.0.1,
    started once per session. Skips (one line) when binaries are missing."""
    reason = cpl.missing()
    if reason:
        pytest.skip(reason)
    failure = None
    try:
        cp = cpl.ControlPlane.start()
    except cpl.Unavailable as e:
        failure = ("skip", str(e))
    except cpl.StartFailed as e:  # the message carries the components' log tails
        failure = ("fail", f"control plane did not start: {e}")
    if failure and failure[0] == "skip":
        pytest.skip(failure[1])
    if failure:  # outside the except block: no chained traceback
        pytest.fail(failure[1], pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()
        if _failed_with_cluster or os.environ.get("VLLM_COMPOSE_KEEP_CP"):
            _kept_logs.append(cp.workdir / "logs")
        else:
            cp.remove_workdir()


@pytest.fixture(scope="session")
def cluster_crds(control_plane: ControlPlane) -> list[str]:
    """Every CRD under the CRD directory, installed and Established (once per session)."""
    path = crd_dir()
    if not path.is_dir():
        pytest.fail(f"CRD directory {path} not found: set VLLM_COMPOSE_CRD_DIR to the shared/crds folder")
    return control_plane.install_crds(path)


@pytest.fixture
def cluster_ns(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test; deleted (pods force-deleted) afterwards."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{base}-{secrets.token_hex(3)}"
    ensure_namespace(control_plane, name)
    yield name
    delete_namespace(control_plane, name)


# --------------------------------------------------------------------------- small helpers


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, interval: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (ApiError, KeyError) as e:
            last_error = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


def selector_text(selector: str | Mapping[str, str]) -> str:
    if isinstance(selector, str):
        return selector
    return ",".join(f"{k}={v}" for k, v in selector.items())


def ensure_namespace(cp: ControlPlane, name: str, labels: Mapping[str, str] | None = None, *,
                     ephemeral: bool = True, timeout: float = 30) -> None:
    """Create (or label) a namespace and wait for its default ServiceAccount, without
    which the ServiceAccount admission plugin rejects pods."""
    meta = {"name": name, "labels": {**({EPHEMERAL_LABEL: "true"} if ephemeral else {}), **(labels or {})}}
    try:
        cp.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    except ApiError as e:
        if e.status != 409:
            raise
        if meta["labels"]:
            cp.api.patch(f"/api/v1/namespaces/{name}", {"metadata": {"labels": meta["labels"]}})
    wait_for(f"ServiceAccount {name}/default",
             lambda: cp.api.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"), timeout)


def delete_namespace(cp: ControlPlane, name: str, *, wait: bool = False, timeout: float = 60) -> None:
    """Delete a namespace now: Terminating stops new pods at once; its pods are
    force-deleted (a bound pod would wait forever for a kubelet) and the fake
    PersistentVolumes bound to its claims are removed."""
    try:
        cp.api.delete(f"/api/v1/namespaces/{name}")
    except ApiError as e:
        if e.status != 404:
            raise
    for pod in cp.api.get(f"/api/v1/namespaces/{name}/pods")["items"]:
        try:
            cp.api.delete(f"/api/v1/namespaces/{name}/pods/{pod['metadata']['name']}", {"gracePeriodSeconds": 0})
        except ApiError as e:
            if e.status != 404:
                raise
    for pv in cp.api.get("/api/v1/persistentvolumes", labelSelector=f"{PV_LABEL}={name}")["items"]:
        try:
            cp.api.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
        except ApiError as e:
            if e.status != 404:
                raise
    if wait:
        wait_for(f"namespace {name} gone", lambda: not cp.api.exists(f"/api/v1/namespaces/{name}"), timeout)


def reset(cp: ControlPlane) -> None:
    """Back to an empty cluster: every ephemeral namespace (cluster_ns, apply_rendered)
    and every fake node goes, with their pods and fake volumes."""
    for ns in cp.api.get("/api/v1/namespaces", labelSelector=f"{EPHEMERAL_LABEL}=true")["items"]:
        delete_namespace(cp, ns["metadata"]["name"])
    fakenodes.delete_nodes(cp, fakenodes.fake_nodes(cp))


# --------------------------------------------------------------------------- rendered overlays


class UnknownKinds(ValueError):
    """Objects whose kind the API server does not serve (their CRD is not installed)."""


@dataclass
class Applied:
    """What apply_rendered did."""

    objects: list[str] = field(default_factory=list)  # "Kind namespace/name"
    namespaces: list[str] = field(default_factory=list)
    storage_classes: list[str] = field(default_factory=list)  # created because a claim needed them
    runtime_classes: list[str] = field(default_factory=list)  # created because a pod template needed them
    volumes: dict[str, str] = field(default_factory=dict)  # "ns/claim" -> fake PersistentVolume
    skipped: list[str] = field(default_factory=list)  # unknown kinds, with skip_unknown=True


def _ident(doc: Mapping, namespace: str | None = None) -> str:
    meta = doc.get("metadata", {})
    ns = meta.get("namespace") or namespace
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def _pod_templates(doc: Mapping) -> list[Mapping]:
    spec = doc.get("spec", {}) or {}
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    tpl = spec.get("template", {})
    return [tpl.get("spec", {})] if isinstance(tpl, Mapping) and "spec" in tpl else []


def apply_api(cp: ControlPlane, docs: Iterable[Mapping], resources: Mapping | None = None, workers: int = 8) -> None:
    """Server-side apply each object through the API (PATCH application/apply-patch+yaml,
    force, our field manager) from a few threads: the same admission and validation as
    `kubectl apply --server-side`, without a kubectl process, for many objects at once."""
    docs = list(docs)
    resources = resources or cp.resources()

    def one(doc: Mapping) -> None:
        cp.api.patch(cp.path_of(doc, resources=resources), dict(doc), patch_type="apply",
                     fieldManager=cpl.FIELD_MANAGER, force="true")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(one, d) for d in docs]:
            future.result()  # the first ApiError, with the server's message


def apply_rendered(cp: ControlPlane, docs: Iterable[Mapping], namespace: str | None = None, *,
                   skip_unknown: bool = False, bind_claims: bool = True, timeout: float = 30,
                   via: str = "kubectl") -> Applied:
    """Apply a rendered overlay (the dicts `kubectl kustomize` printed) as a
    cluster would receive it, and give it what the cluster would provide:

    1. Namespaces first (and wait for their default ServiceAccount);
    2. objects whose kind is not served raise UnknownKinds naming each one and
       saying to install its CRD (or are left out and listed, with skip_unknown);
    3. a StorageClass a claim names but nobody created (provisioner
       kubernetes.io/no-provisioner, volumeBindingMode Immediate), a RuntimeClass
       a pod template names (handler = name, as k3s registers `nvidia`);
    4. one fake PersistentVolume per claim, pre-bound to it (hostPath, capacity =
       the request, same class, access and volume modes), so the claim binds and
       the scheduler is not held back by an unbound claim;
    5. the claims, and waits until every one is Bound;
    6. the rest server-side.

    `namespace` is used for namespaced objects that carry none. `via="api"` applies
    through the API from a few threads (apply_api) instead of `kubectl apply`: much
    faster for many overlays at once."""
    if via not in ("kubectl", "api"):
        raise ValueError(f"via must be kubectl or api, not {via!r}")
    docs = [dict(d) for d in docs if d]
    resources = cp.resources()
    out = Applied()
    unknown = [d for d in docs if (d.get("apiVersion"), d.get("kind")) not in resources]
    if unknown:
        names = [f"{d.get('apiVersion')} {_ident(d, namespace)}" for d in unknown]
        if not skip_unknown:
            raise UnknownKinds(
                "the API server does not serve these kinds (install their CRDs first, e.g. "
                "cp.install_crds(crd_dir()) or the cluster_crds fixture): " + "; ".join(names))
        out.skipped = names
        docs = [d for d in docs if d not in unknown]

    def ns_of(doc: Mapping) -> str | None:
        res = resources[(doc["apiVersion"], doc["kind"])]
        if not res.namespaced:
            return None
        return doc.get("metadata", {}).get("namespace") or namespace or "default"

    for doc in docs:  # give namespaced objects their namespace explicitly
        ns = ns_of(doc)
        if ns:
            doc["metadata"] = {**doc.get("metadata", {}), "namespace": ns}

    # 1. namespaces
    def apply(batch: list[dict]) -> None:
        if via == "api":
            apply_api(cp, batch, resources)
        else:
            cp.apply(batch)

    namespaces = [d for d in docs if d["kind"] == "Namespace" and d["apiVersion"] == "v1"]
    if namespaces:
        apply(namespaces)
    wanted = {d["metadata"]["name"] for d in namespaces} | {d["metadata"]["namespace"] for d in docs if d.get("metadata", {}).get("namespace")}
    with ThreadPoolExecutor(max_workers=8) as pool:  # labelled ephemeral: reset() removes them
        list(pool.map(lambda ns: ensure_namespace(cp, ns), sorted(wanted)))
    out.namespaces = sorted(wanted)

    # 3. classes the cluster would have
    declared = {(d["kind"], d["metadata"]["name"]) for d in docs}
    claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    for claim in claims:
        sc = claim.get("spec", {}).get("storageClassName")
        if sc and ("StorageClass", sc) not in declared and not cp.api.exists(f"/apis/storage.k8s.io/v1/storageclasses/{sc}"):
            cp.api.post("/apis/storage.k8s.io/v1/storageclasses", {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": sc},
                "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate",
                "reclaimPolicy": "Retain"})
            out.storage_classes.append(sc)
    for doc in docs:
        for spec in _pod_templates(doc):
            rc = spec.get("runtimeClassName")
            if rc and ("RuntimeClass", rc) not in declared and rc not in out.runtime_classes \
                    and not cp.api.exists(f"/apis/node.k8s.io/v1/runtimeclasses/{rc}"):
                cp.api.post("/apis/node.k8s.io/v1/runtimeclasses", {
                    "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": rc}, "handler": rc})
                out.runtime_classes.append(rc)

    # Cluster-scoped prerequisites (StorageClass, PriorityClass, RuntimeClass, CRDs) before the rest.
    first_kinds = {"StorageClass", "PriorityClass", "RuntimeClass", "CustomResourceDefinition"}
    first = [d for d in docs if d["kind"] in first_kinds]
    if first:
        apply(first)

    # 4. fake volumes, pre-bound to their claims, before the claims exist
    if bind_claims:
        with ThreadPoolExecutor(max_workers=8) as pool:
            made = list(pool.map(lambda c: _fake_volume(cp, c), claims))
        for claim, pv in zip(claims, made):
            out.volumes[f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"] = pv

    # 5. the claims, Bound before any pod exists: a pod the scheduler first sees with
    # an unbound claim is parked and retried only after a back-off (up to 10 s).
    if bind_claims and claims:
        apply(claims)

        def all_bound() -> bool:
            bound = {(c["metadata"]["namespace"], c["metadata"]["name"])
                     for c in cp.api.get("/api/v1/persistentvolumeclaims")["items"]
                     if c.get("status", {}).get("phase") == "Bound"}
            return all((c["metadata"]["namespace"], c["metadata"]["name"]) in bound for c in claims)
        wait_for("PersistentVolumeClaims Bound: " + ", ".join(out.volumes), all_bound, timeout)

    # 6. everything else
    done = first_kinds | ({"PersistentVolumeClaim"} if bind_claims else set())
    rest = [d for d in docs if not (d["kind"] == "Namespace" and d["apiVersion"] == "v1") and d["kind"] not in done]
    if rest:
        apply(rest)
    out.objects = [_ident(d) for d in docs]
    return out


def _fake_volume(cp: ControlPlane, claim: Mapping) -> str:
    meta, spec = claim["metadata"], claim.get("spec", {})
    ns, name = meta["namespace"], meta["name"]
    pv_name = f"fake-pv-{ns}-{name}"[:253]
    size = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": {PV_LABEL: ns}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "persistentVolumeReclaimPolicy": "Retain",
            # Empty class for a claim without one (no default StorageClass here).
            "storageClassName": spec.get("storageClassName") or "",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name},
            "hostPath": {"path": f"{FAKE_PV_ROOT}/{ns}/{name}", "type": "DirectoryOrCreate"},
        },
    }
    try:
        cp.api.post("/api/v1/persistentvolumes", pv)
    except ApiError as e:
        if e.status != 409:
            raise
    return pv_name


# --------------------------------------------------------------------------- workloads


def scale(cp: ControlPlane, ns: str, deployment: str, replicas: int) -> None:
    """Set a Deployment's replicas through its scale subresource (as KEDA/HPA do)."""
    cp.api.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/{deployment}/scale", {"spec": {"replicas": replicas}})


def pods(cp: ControlPlane, ns: str, selector: str | Mapping[str, str]) -> list[dict]:
    """Pods matching the selector that are not being deleted, oldest first."""
    items = cp.api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector_text(selector))["items"]
    items = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return sorted(items, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))


def placements(cp: ControlPlane, ns: str, selector: str | Mapping[str, str]) -> dict[str, str]:
    """{pod: node} for every scheduled pod of the selector (pending pods are left out;
    see pending_reasons)."""
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(cp, ns, selector) if p["spec"].get("nodeName")}


def pending_reasons(cp: ControlPlane, ns: str, selector: str | Mapping[str, str]) -> dict[str, str]:
    """{pod: why it is not scheduled} for every unscheduled pod: the PodScheduled
    condition's message, else the newest FailedScheduling event, else ''."""
    out = {}
    for p in pods(cp, ns, selector):
        if p["spec"].get("nodeName"):
            continue
        name = p["metadata"]["name"]
        cond = next((c for c in p.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"), None)
        message = cond.get("message", "") if cond and cond.get("status") == "False" else ""
        if not message:
            events = cp.api.get(f"/api/v1/namespaces/{ns}/events",
                                fieldSelector=f"involvedObject.name={name},reason=FailedScheduling")["items"]
            events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            message = events[-1].get("message", "") if events else ""
        out[name] = message
    return out


def wait_pods_scheduled(cp: ControlPlane, ns: str, selector: str | Mapping[str, str], n: int,
                        timeout: float = 30) -> dict[str, str]:
    """Wait until at least `n` pods of the selector are bound to nodes; returns
    placements(). On timeout, AssertionError with the scheduler's reasons."""
    deadline = time.monotonic() + timeout
    while True:
        placed = placements(cp, ns, selector)
        if len(placed) >= n:
            return placed
        if time.monotonic() > deadline:
            reasons = pending_reasons(cp, ns, selector)
            raise AssertionError(f"{len(placed)}/{n} pods of {selector_text(selector)} in {ns} scheduled after {timeout}s; "
                                 f"placed {placed}; pending {reasons}")
        time.sleep(0.25)


def wait_pending_reason(cp: ControlPlane, ns: str, selector: str | Mapping[str, str], timeout: float = 30) -> dict[str, str]:
    """Wait until every pod of the selector has been judged unschedulable (a reason
    is recorded); returns pending_reasons()."""
    return wait_for(f"a FailedScheduling reason for {selector_text(selector)} in {ns}",
                    lambda: (r := pending_reasons(cp, ns, selector)) and all(r.values()) and r, timeout)


# --------------------------------------------------------------------------- dry runs


@dataclass
class DryRun:
    """The API server's verdict on a create with dryRun=All."""

    allowed: bool
    status: int
    warnings: list[str]
    error: str  # the rejection message ('' when allowed)
    reason: str = ""
    object: Any = None


def dry_run(cp: ControlPlane, obj: Mapping, namespace: str | None = None) -> DryRun:
    """Create `obj` with dryRun=All: admission (Pod Security, ...) and validation
    run, nothing is stored. Returns the verdict, warnings included."""
    path = cp.path_of({**obj, "metadata": {k: v for k, v in obj.get("metadata", {}).items() if k != "name"}}, namespace)
    resp = cp.api.call("POST", path, dict(obj), query={"dryRun": "All", "fieldManager": cpl.FIELD_MANAGER})
    ok = 200 <= resp.status < 300
    body = resp.body if isinstance(resp.body, dict) else {}
    return DryRun(ok, resp.status, resp.warnings, "" if ok else body.get("message", str(resp.body)),
                  "" if ok else body.get("reason", ""), resp.body if ok else None)


def dry_run_pod(cp: ControlPlane, ns: str, pod_spec: Mapping, name: str = "dry-run") -> DryRun:
    """dry_run() for a Pod made from a full Pod, a pod template ({metadata, spec})
    or a bare PodSpec ({containers: ...}) — e.g. a rendered Deployment's template,
    to see what Pod Security admission says about the pods it would create.
    Other admission runs too: a runtimeClassName needs its RuntimeClass to exist
    (apply_rendered creates it), a new namespace its default ServiceAccount
    (ensure_namespace waits for it)."""
    if pod_spec.get("kind") == "Pod":
        pod = dict(pod_spec)
    elif "containers" in pod_spec:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": dict(pod_spec)}
    else:
        meta = dict(pod_spec.get("metadata", {}))
        meta.setdefault("name", name)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": dict(pod_spec["spec"])}
    pod["metadata"] = {**pod.get("metadata", {}), "namespace": ns}
    pod["metadata"].setdefault("name", name)
    return dry_run(cp, pod, ns)


__all__ = [
    "Applied", "DryRun", "UnknownKinds", "apply_api", "apply_rendered", "crd_dir", "delete_namespace", "dry_run", "dry_run_pod",
    "ensure_namespace", "fakenodes", "pending_reasons", "placements", "pods", "reset", "scale", "selector_text",
    "wait_for", "wait_pending_reason", "wait_pods_scheduled",
]
