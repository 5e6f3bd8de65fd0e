"""Doctor's scheduling pre-flight against the real kube-scheduler.

For every overlay in the suite (the committed ones, the golden ones, base/vllm
itself, and a few more generated per cloud with `compose new-model`) and every
node shape in tests/fakenodes.py (one node per shape, all at once: every cloud's
on-demand and spot GPU nodes, reservations, Arm, CPU-only and k3s boxes):

- one pod per node, pinned with a `kubernetes.io/hostname` nodeSelector: the
  real scheduler binds it or not, and doctor's per-node verdict must agree; when
  it is not bound, doctor's reasons for every node must add up to exactly the
  scheduler's `0/N nodes are available: ...` message (which checks the filter
  order on all N nodes, not only the pinned one);
- one unpinned pod: bound to a node doctor calls feasible, or Pending with the
  message doctor predicts; once bound, a second unpinned pod (the next replica),
  which the topology spread (hostname, minDomains on prod) keeps off the first
  one's node: doctor's verdict, computed from the pods bound, must agree again.

Batched: the nodes are made once, the pinned pods of one overlay are
created together (each can only go to its own node, so they never compete),
and deleted before the next overlay.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fakenodes as fn
from composer_helpers import scratch_repo
from compose.cluster import kube, scheduling
from compose.cluster import doctor as doc
from compose.cluster import target as tgt
from compose.generate import overlay
from conftest_cluster import REPO, apply_rendered, delete_namespace, wait_for

pytestmark = pytest.mark.cluster

GOLDEN = Path(__file__).parent / "golden"
# More overlays per cloud: spot and on-demand, 1 to 8 GPUs per pod (what `compose new-model`
# writes; generated through the library, which skips refreshing the GitOps output).
EXTRA = {
    "dev-l40s-spot": dict(model="llama-3.1-8b", cloud="eks", gpu="l40s", spot=True, max_model_len=8192, name="l40s-spot"),
    "dev-l4-tp4": dict(model="qwen2.5-32b", cloud="eks", gpu="l4", name="l4-tp4"),
    "prod-a3": dict(model="qwen2.5-72b", env="prod", cloud="gke", gpu="h100-80gb", name="a3"),
    "dev-a100-gke": dict(model="qwen3-8b", cloud="gke", gpu="a100-80gb", name="a100-gke"),
    "dev-aks-spot": dict(model="qwen3-8b", cloud="aks", gpu="a100-80gb", spot=True, name="aks-spot"),
    "dev-k3s-small": dict(model="qwen3-0.6b", cloud="k3s", name="k3s-small"),
    # Arm: GB200 on GKE A4X nodes, which GKE taints kubernetes.io/arch=arm64 (components/arm64).
    "prod-gb200": dict(model="qwen3-8b", env="prod", cloud="gke", gpu="gb200", name="gb200"),
}
RESULTS: dict[str, int] = Counter()
SECOND: dict[str, tuple[str, str | None]] = {}  # overlay -> (first replica's node, second's)


@pytest.fixture(scope="module")
def suite_repo(tmp_path_factory) -> Path:
    repo = scratch_repo(tmp_path_factory.mktemp("sched"))
    for d in sorted((REPO / "overlays").iterdir()):
        if d.is_dir():
            shutil.copytree(d, repo / "overlays" / d.name)
    for d in sorted(GOLDEN.iterdir()):
        shutil.copytree(d, repo / "overlays" / d.name)
    for name, options in EXTRA.items():
        overlay.write(repo, overlay.Options(**options))
        assert (repo / "overlays" / name).is_dir(), name
    return repo


def _targets(repo: Path) -> list[tgt.Target]:
    dirs = [repo / "base" / "vllm"] + sorted(p for p in (repo / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
    return [tgt.from_directory(d) for d in dirs]


def parse_message(message: str) -> Counter:
    """'0/30 nodes are available: 1 Insufficient cpu, 29 node(s) ... . preemption: ...' -> {reason: count}."""
    head = message.split(" preemption:")[0]
    m = re.match(r"0/\d+ nodes are available: (.*)\.$", head.strip())
    assert m, message
    out: Counter = Counter()
    for part in m.group(1).split(", "):
        count, reason = part.split(" ", 1)
        out[reason] += int(count)
    return out


def _pod(t: tgt.Target, name: str, node: str | None) -> dict:
    spec = copy.deepcopy(t.pod_spec)
    if node:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), "kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": t.namespace, "labels": t.pod_labels}, "spec": spec}


def _outcomes(cp, ns: str, names: list[str], timeout: float = 60) -> dict[str, tuple[str | None, str]]:
    """{pod: (node or None, the scheduler's message)} once every pod is bound or judged unschedulable."""
    def done():
        items = {p["metadata"]["name"]: p for p in cp.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]}
        out = {}
        for n in names:
            p = items.get(n)
            if p is None:
                return None
            if p["spec"].get("nodeName"):
                out[n] = (p["spec"]["nodeName"], "")
                continue
            cond = next((c for c in p.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"), None)
            if not cond or cond.get("reason") != "Unschedulable":
                return None
            out[n] = (None, cond.get("message", ""))
        return out
    return wait_for(f"{len(names)} pods in {ns} scheduled or unschedulable", done, timeout, interval=0.2)


def _cleanup(cp, ns: str, applied, extra_cluster_objects: list[str]) -> None:
    pods = [p["metadata"]["name"] for p in cp.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]]
    with ThreadPoolExecutor(6) as pool:  # force-delete at once: no kubelet confirms a graceful delete
        list(pool.map(lambda name: cp.api.call("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}",
                                               {"gracePeriodSeconds": 0}), pods))
    delete_namespace(cp, ns)
    wait_for(f"pods of {ns} gone", lambda: not cp.api.get(f"/api/v1/namespaces/{ns}/pods")["items"], 60)
    for path in [f"/apis/storage.k8s.io/v1/storageclasses/{sc}" for sc in applied.storage_classes] + extra_cluster_objects:
        try:
            cp.api.delete(path)
        except Exception:
            pass


def _unhealthy(cp) -> set[str]:
    """Fake nodes the node-lifecycle controller has tainted (a heartbeat missed on a busy machine)."""
    return {n["metadata"]["name"] for n in cp.api.get("/api/v1/nodes", labelSelector=f"{fn.FAKE_LABEL}=true")["items"]
            if fn.node_problems(n)}


def _compare(cp, cluster, t: tgt.Target, node_names: list[str]) -> tuple[int, list[str], int]:
    """(pairs compared, disagreements, nodes the pinned pods were bound to) for one overlay.
    Runs in a namespace of its own (t-sched-<namespace>), removed afterwards."""
    ns = f"t-sched-{t.namespace}"[:63]
    t = tgt.Target(t.name, t.path, t.docs, ns, t.deployment, t.claims, t.scaled_objects, t.gated, t.hf_repo)
    pcs = [d for d in t.docs if d["kind"] == "PriorityClass"]
    claims = [{**d, "metadata": {**d["metadata"], "namespace": ns}} for d in t.docs if d["kind"] == "PersistentVolumeClaim"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    applied = apply_rendered(cp, [namespace] + claims + pcs, namespace=ns)
    cluster_objects = [f"/apis/scheduling.k8s.io/v1/priorityclasses/{d['metadata']['name']}" for d in pcs]
    if t.runtime_class and not cp.api.exists(f"/apis/node.k8s.io/v1/runtimeclasses/{t.runtime_class}"):
        cp.api.post("/apis/node.k8s.io/v1/runtimeclasses", {
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": t.runtime_class}, "handler": t.runtime_class})
        cluster_objects.append(f"/apis/node.k8s.io/v1/runtimeclasses/{t.runtime_class}")
    pairs, disagreements = 0, []
    try:
        facts = doc.Facts(cluster, t)
        node_objs = facts.nodes()
        placement = scheduling.evaluate(facts.pod(), node_objs, facts.pods())
        # 1. unpinned: the overlay as it is
        cp.api.post(f"/api/v1/namespaces/{ns}/pods", _pod(t, "free", None))
        node, message = _outcomes(cp, ns, ["free"])["free"]
        pairs += 1
        if node is not None and node not in placement.feasible_nodes:
            disagreements.append(f"{t.name}: scheduler bound to {node}, doctor feasible {placement.feasible_nodes}")
        if node is None and (placement.feasible_nodes or parse_message(message) != placement.histogram()):
            disagreements.append(f"{t.name}: scheduler says {message!r}, doctor {placement.message()!r}")
        if node is not None:
            # 1b. a second replica while the first runs: the spread (hostname DoNotSchedule,
            # minDomains = the minimum on prod) decides whether it may share the node. Doctor
            # reads the pods already bound, as it does on a live cluster.
            cp.api.post(f"/api/v1/namespaces/{ns}/pods", _pod(t, "second", None))
            node2, message2 = _outcomes(cp, ns, ["second"])["second"]
            placed = [p for p in cp.api.get("/api/v1/pods")["items"]  # every pod but the one judged
                      if (p["metadata"]["namespace"], p["metadata"]["name"]) != (ns, "second")]
            again = scheduling.evaluate(facts.pod(), node_objs, placed)
            pairs += 1
            if node2 is not None and node2 not in again.feasible_nodes:
                disagreements.append(f"{t.name} (second replica): scheduler bound to {node2}, doctor feasible {again.feasible_nodes}")
            if node2 is None and (again.feasible_nodes or parse_message(message2) != again.histogram()):
                disagreements.append(f"{t.name} (second replica): scheduler says {message2!r}, doctor {again.message()!r}")
            SECOND[t.name] = (node, node2)
            cp.api.delete(f"/api/v1/namespaces/{ns}/pods/second", {"gracePeriodSeconds": 0})
            wait_for("pod second gone", lambda: not cp.api.exists(f"/api/v1/namespaces/{ns}/pods/second"), 30)
        cp.api.delete(f"/api/v1/namespaces/{ns}/pods/free", {"gracePeriodSeconds": 0})
        wait_for("pod free gone", lambda: not cp.api.exists(f"/api/v1/namespaces/{ns}/pods/free"), 30)
        # 2. pinned: one pod per node, all at once (each can only go to its own node)
        names = {f"pin-{i}": n for i, n in enumerate(node_names)}
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda kv: cp.api.post(f"/api/v1/namespaces/{ns}/pods", _pod(t, *kv)), names.items()))
        got = _outcomes(cp, ns, list(names))
        for pod_name, n in names.items():
            bound, message = got[pod_name]
            pairs += 1
            doctor_fits = n in placement.feasible_nodes
            if (bound == n) != doctor_fits:
                verdict = next(v for v in placement.nodes if v.name == n)
                disagreements.append(f"{t.name} on {n}: scheduler {'bound' if bound else message!r}, "
                                     f"doctor {'fits' if doctor_fits else [m.detail for m in verdict.misses]}")
                continue
            if bound is None:
                pinned = scheduling.admitted_pod(_pod(t, "x", n)["spec"], ns, t.pod_labels, runtime_class=facts.runtime_class())
                want = scheduling.evaluate(pinned, node_objs).histogram()
                if parse_message(message) != want:
                    disagreements.append(f"{t.name} pinned to {n}: scheduler {message!r}, doctor {dict(want)}")
        return pairs, disagreements, sum(1 for p, n in names.items() if got[p][0] == n)
    finally:
        _cleanup(cp, ns, applied, cluster_objects)


def test_scheduling_verdict_matches_the_scheduler(control_plane, suite_repo):
    cp = control_plane
    targets = _targets(suite_repo)
    assert len(targets) >= 12
    shapes = list(fn.SHAPES.values())
    cluster = kube.connect(cp.kubeconfig)
    disagreements: list[str] = []
    pairs = retried = 0
    try:
        with fn.node_set(cp, shapes) as nodes:
            assert len(nodes) == len(shapes)
            for t in targets:
                n, bad, fits = _compare(cp, cluster, t, nodes.names)
                if bad and _unhealthy(cp):
                    # A heartbeat missed under load: the node was tainted between doctor's read and the
                    # scheduler's decision. Wait until the nodes are Ready again and compare once more.
                    fn.wait_nodes_ready(cp, nodes.names, timeout=60)
                    retried += 1
                    n, bad, fits = _compare(cp, cluster, t, nodes.names)
                pairs += n
                disagreements += bad
                RESULTS[t.name] = fits
    finally:
        cluster.close()
    print(f"\nscheduling pre-flight vs kube-scheduler: {pairs - len(disagreements)}/{pairs} pairs agree "
          f"({len(targets)} overlays x {len(shapes)} node shapes + {len(targets)} unpinned + {len(SECOND)} second replicas; "
          f"{retried} overlay(s) retried "
          f"after a node missed its heartbeat); feasible nodes per overlay: {dict(RESULTS)}")
    assert not disagreements, "\n".join(disagreements)
    # A prod minimum of two never doubles up on one node (minDomains), modelled and real alike.
    for name in ("prod-70b", "prod-a3", "prod-gb200"):
        first, second = SECOND[name]
        assert second != first, (name, first, second)
    # The suite is not trivial: some overlays fit some nodes, none fits all.
    assert any(RESULTS.values()) and all(v < len(shapes) for v in RESULTS.values()), RESULTS
