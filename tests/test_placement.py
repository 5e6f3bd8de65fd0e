"""Every overlay on a real control plane: where the scheduler puts each pod, and
where it must not.

The committed overlays, and one overlay per cloud x GPU x capacity the composer
offers (`compose new-model` for a small model, prod on eks/gke/aks so every
combination runs two spread replicas, dev on k3s), are rendered once per session
and applied to the test control plane (tests/controlplane.py) over fake nodes
labelled and tainted as each cloud labels its GPU nodes (tests/fakenodes.py).
Each Deployment is scaled to its KEDA minimum, as KEDA would, and the test reads
which node the real kube-scheduler bound every pod to.

To stay fast, many overlays share one node set (each in its own namespace), the
control plane is the session's, and waits poll instead of sleeping.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import fakenodes as fn
from compose.core import kustomize, names
from compose.generate import overlay
from compose.plan import catalog
from composer_helpers import scratch_repo
from controlplane import ApiError
from conftest_cluster import (
    REPO,
    apply_api,
    apply_rendered,
    delete_namespace,
    pending_reasons,
    placements,
    scale,
    wait_for,
    wait_pods_scheduled,
)

SMALL_MODEL = "qwen3-0.6b"  # fits every catalog GPU at TP 1 with its full context
STAGING_ON = (("eks", "h200"), ("gke", "h200"), ("aks", "a100-40gb"))  # 8-GPU nodes: room beside prod
MULTI_GPU_ON = (("eks", "h200"), ("gke", "h100-80gb"), ("aks", "h100-80gb"))  # llama-3.1-70b: TP 2, 4, 4
VLLM = "app.kubernetes.io/name=vllm"
MANAGED = ("eks", "gke", "aks")

# (cloud, GPU) -> (on-demand shape, spot shape): the nodes each combination must land on.
# On EKS the 8-vCPU one-GPU sizes: the pod requests 4 CPUs, which an xlarge (3920m
# allocatable) cannot give, so Karpenter would launch the 2xlarge.
SHAPES: dict[tuple[str, str], tuple[fn.NodeShape, fn.NodeShape]] = {
    ("eks", "h100-80gb"): (fn.EKS_P5_48XLARGE, fn.EKS_P5_48XLARGE_SPOT),
    ("eks", "h200"): (fn.EKS_P5E_48XLARGE, fn.EKS_P5E_48XLARGE_SPOT),
    ("eks", "a100-80gb"): (fn.EKS_P4DE_24XLARGE, fn.EKS_P4DE_24XLARGE_SPOT),
    ("eks", "a100-40gb"): (fn.EKS_P4D_24XLARGE, fn.EKS_P4D_24XLARGE_SPOT),
    ("eks", "l40s"): (fn.EKS_G6E_2XLARGE, fn.EKS_G6E_2XLARGE_SPOT),
    ("eks", "l4"): (fn.EKS_G6_2XLARGE, fn.EKS_G6_2XLARGE_SPOT),
    ("eks", "a10g"): (fn.EKS_G5_2XLARGE, fn.EKS_G5_2XLARGE_SPOT),
    ("eks", "t4"): (fn.EKS_G4DN_2XLARGE, fn.EKS_G4DN_2XLARGE_SPOT),
    ("gke", "h100-80gb"): (fn.GKE_A3_HIGHGPU_8G, fn.GKE_A3_HIGHGPU_8G_SPOT),
    ("gke", "h200"): (fn.GKE_A3_ULTRAGPU_8G, fn.GKE_A3_ULTRAGPU_8G_SPOT),
    ("gke", "a100-80gb"): (fn.GKE_A2_ULTRAGPU_1G, fn.GKE_A2_ULTRAGPU_1G_SPOT),
    ("gke", "a100-40gb"): (fn.GKE_A2_HIGHGPU_1G, fn.GKE_A2_HIGHGPU_1G_SPOT),
    ("gke", "l4"): (fn.GKE_G2_STANDARD_8, fn.GKE_G2_STANDARD_8_SPOT),
    ("gke", "t4"): (fn.GKE_N1_STANDARD_8_T4, fn.GKE_N1_STANDARD_8_T4_SPOT),
    ("eks", "b200"): (fn.EKS_P6_B200_48XLARGE, fn.EKS_P6_B200_48XLARGE_SPOT),
    ("eks", "rtx-pro-6000"): (fn.EKS_G7E_2XLARGE, fn.EKS_G7E_2XLARGE_SPOT),
    ("gke", "b200"): (fn.GKE_A4_HIGHGPU_8G, fn.GKE_A4_HIGHGPU_8G_SPOT),
    # Arm (Grace) nodes, tainted kubernetes.io/arch=arm64 as GKE taints every Arm node.
    ("gke", "gb200"): (fn.GKE_A4X_HIGHGPU_4G, fn.GKE_A4X_HIGHGPU_4G_SPOT),
    ("gke", "rtx-pro-6000"): (fn.GKE_G4_STANDARD_48, fn.GKE_G4_STANDARD_48_SPOT),
    ("aks", "h100-80gb"): (fn.AKS_ND96ISR_H100_V5, fn.AKS_ND96ISR_H100_V5_SPOT),
    ("aks", "h200"): (fn.AKS_ND96ISR_H200_V5, fn.AKS_ND96ISR_H200_V5_SPOT),
    ("aks", "a100-80gb"): (fn.AKS_NC24ADS_A100_V4, fn.AKS_NC24ADS_A100_V4_SPOT),
    ("aks", "a100-40gb"): (fn.AKS_ND96ASR_V4, fn.AKS_ND96ASR_V4_SPOT),
    ("aks", "t4"): (fn.AKS_NC8AS_T4_V3, fn.AKS_NC8AS_T4_V3_SPOT),
}
# Nodes no overlay of the big set may use: reclaimable reserved capacity, a T4 size
# too small for the pod's 4 CPUs, an AMD node, a CPU-only node.
DECOYS = (fn.EKS_P5_48XLARGE_RESERVED_INTERRUPTIBLE, fn.AKS_NC4AS_T4_V3, fn.AKS_ND96ISR_MI300X_V5,
          fn.EKS_M7I_2XLARGE)
# Also on-demand capacity for EKS H100: a (non-interruptible) capacity reservation.
EXTRA_ON_DEMAND = {("eks", "h100-80gb"): (fn.EKS_P5_48XLARGE_RESERVED,)}


# --------------------------------------------------------------------------- the overlays


@dataclass
class Rendered:
    """One overlay as `kubectl kustomize` renders it."""

    name: str
    cloud: str
    gpu: str
    spot: bool
    docs: list[dict] = field(default_factory=list)

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    def one(self, kind: str) -> dict:
        (doc,) = [d for d in self.docs if d["kind"] == kind]
        return doc

    @property
    def namespace(self) -> str:
        return self.one("Deployment")["metadata"]["namespace"]

    @property
    def deployment(self) -> str:
        return self.one("Deployment")["metadata"]["name"]

    @property
    def selector(self) -> dict[str, str]:
        return self.one("Deployment")["spec"]["selector"]["matchLabels"]

    @property
    def min_replicas(self) -> int:
        return int(self.one("ScaledObject")["spec"]["minReplicaCount"])


def _render_all(root: Path, names: list[str]) -> dict[str, list[dict]]:
    """Build every overlay with one `kubectl kustomize` (a kustomization listing them
    all) and split the objects back by overlay: each has its own namespace, and
    cluster-scoped objects carry its namePrefix."""
    top = root / "all-overlays"
    top.mkdir()
    (top / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [f"../overlays/{n}" for n in names]}))
    out: dict[str, list[dict]] = {n: [] for n in names}
    for doc in kustomize.build(top).docs:
        meta = doc["metadata"]
        owner = meta.get("namespace") or (meta["name"] if doc["kind"] == "Namespace" else None)
        if owner not in out:  # cluster-scoped: the longest namePrefix it carries
            owner = max((n for n in names if meta["name"].startswith(f"{n}-")), key=len)
        out[owner].append(doc)
    return out


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Every overlay the tests apply, generated and rendered once per session:
    the committed ones, `prod` on each managed cloud x GPU x {on-demand, spot},
    `dev` on k3s for each GPU, and the issue's k3s command (with and without
    --gpus-per-node 2). Files come from the composer's own generate() (what
    `compose new-model` writes); one combined kustomize build renders them."""
    root = scratch_repo(tmp_path_factory.mktemp("placement"))
    wanted: dict[str, tuple[overlay.Options, str, str, bool]] = {}
    for cloud in MANAGED:
        for gpu in catalog.gpus_for_cloud(cloud):
            for spot in (False, True):
                opts = overlay.Options(model=SMALL_MODEL, env="prod", cloud=cloud, gpu=gpu.name, spot=spot,
                                       monitoring=False, name=f"{cloud}-{gpu.name}{'-spot' if spot else ''}")
                wanted[names.overlay_name("prod", opts.name)] = (opts, cloud, gpu.name, spot)
    for gpu in catalog.gpus_for_cloud("k3s"):
        opts = overlay.Options(model=SMALL_MODEL, env="dev", cloud="k3s", gpu=gpu.name, monitoring=False,
                               name=f"k3s-{gpu.name}")
        wanted[f"dev-k3s-{gpu.name}"] = (opts, "k3s", gpu.name, False)
    # A staging overlay per managed cloud (monitoring and the default network policy on), and a
    # prod overlay per cloud whose model needs more than one GPU per replica (the committed
    # prod-70b is EKS's TP4; these are EKS TP2 on H200, GKE and AKS TP4 on H100).
    for (cloud, gpu), model, env, name in (*((cg, SMALL_MODEL, "staging", f"{cg[0]}-{cg[1]}") for cg in STAGING_ON),
                                           *((cg, "llama-3.1-70b", "prod", f"tp-{cg[0]}-{cg[1]}") for cg in MULTI_GPU_ON)):
        opts = overlay.Options(model=model, env=env, cloud=cloud, gpu=gpu, monitoring=True, name=name)
        wanted[names.overlay_name(env, name)] = (opts, cloud, gpu, False)
    # The issue's command, and what it planned before issue 10 (TP 2 on a one-L4 box).
    wanted["dev-llama-3-1-8b"] = (overlay.Options(model="llama-3.1-8b", env="dev", cloud="k3s", gpu="l4"), "k3s", "l4", False)
    wanted["dev-8b-two-gpus"] = (overlay.Options(model="llama-3.1-8b", env="dev", cloud="k3s", gpu="l4",
                                                 gpus_per_node=2, name="8b-two-gpus"), "k3s", "l4", False)
    for name, (opts, *_rest) in wanted.items():
        gen = overlay.generate(opts, root)
        assert gen.name == name
        directory = root / "overlays" / name
        directory.mkdir()
        for rel, text in gen.files.items():
            (directory / rel).write_text(text)
    committed = {d.name: d for d in overlay.list_overlay_dirs(REPO)}
    for name, directory in committed.items():
        shutil.copytree(directory, root / "overlays" / name)
        doc = overlay.load_plan_file(directory)["inputs"]
        wanted[name] = (None, doc["cloud"], doc["gpu"], bool(doc.get("spot")))
    docs = _render_all(root, sorted(wanted))
    out = {n: Rendered(n, cloud, gpu, spot, docs[n]) for n, (_o, cloud, gpu, spot) in wanted.items()}
    for r in out.values():
        assert ("PriorityClass" in r.kinds()) == r.spot, r.name  # each spot overlay got its own class
    return out


def staging_and_multi_gpu(rendered: dict[str, Rendered]) -> list[Rendered]:
    return [r for r in rendered.values() if r.name.startswith(("staging-", "prod-tp-"))]


def combos(rendered: dict[str, Rendered], cloud: str | None = None) -> list[Rendered]:
    return [r for r in rendered.values() if r.name.startswith(("prod-eks-", "prod-gke-", "prod-aks-"))
            and (cloud is None or r.cloud == cloud)]


# --------------------------------------------------------------------------- helpers


def node_table(cp) -> dict[str, dict]:
    """{node: labels} of every fake node."""
    items = cp.api.get("/api/v1/nodes", labelSelector=f"{fn.FAKE_LABEL}=true")["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in items}


def vllm_pods(cp) -> dict[str, list[dict]]:
    """{namespace: [pod]} of every vLLM pod not being deleted."""
    out: dict[str, list[dict]] = defaultdict(list)
    for pod in cp.api.get("/api/v1/pods", labelSelector=VLLM)["items"]:
        if not pod["metadata"].get("deletionTimestamp"):
            out[pod["metadata"]["namespace"]].append(pod)
    return out


def shape_of(labels: dict) -> str:
    """The catalog shape a fake node was made from (zone variants end in -z<N>)."""
    name = labels[fn.SHAPE_LABEL]
    return name.rsplit("-z", 1)[0] if name[-3:-1] == "-z" else name


def renamed(r: Rendered, suffix: str) -> Rendered:
    """The same overlay in namespace `<namespace>-<suffix>`: a test reusing an overlay
    another test applied need not wait for the old namespace to finish terminating."""
    ns = r.namespace
    docs = copy.deepcopy(r.docs)
    for d in docs:
        meta = d["metadata"]
        if d["kind"] == "Namespace" and meta["name"] == ns:
            meta["name"] = f"{ns}-{suffix}"
        elif meta.get("namespace") == ns:
            meta["namespace"] = f"{ns}-{suffix}"
    return dataclasses.replace(r, docs=docs)


def apply_and_scale(cp, overlays: list[Rendered]) -> None:
    """Apply the overlays together (through the API, in parallel), then scale each
    Deployment to its KEDA minimum, as KEDA would."""
    apply_rendered(cp, [d for r in overlays for d in r.docs], timeout=60, via="api")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda r: scale(cp, r.namespace, r.deployment, r.min_replicas), overlays))


def wait_reason(cp, r: Rendered, fragment: str, timeout: float = 30) -> str:
    """The scheduler's reason for the overlay's one unscheduled pod, once it says
    `fragment` (an earlier attempt may have been about the claim not yet Bound)."""
    def reason():
        found = [why for why in pending_reasons(cp, r.namespace, r.selector).values() if fragment in why]
        return found[0] if found else None

    try:
        return wait_for(f"{r.name}: a pending pod whose reason says {fragment!r}", reason, timeout)
    except TimeoutError:
        raise AssertionError(f"{r.name}: {pending_reasons(cp, r.namespace, r.selector)}") from None


def cleanup(cp, overlays: list[Rendered]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda r: delete_namespace(cp, r.namespace), overlays))


# --------------------------------------------------------------------------- without a cluster


def test_the_node_library_covers_every_combination_the_composer_offers():
    """A GPU added to the catalog fails here until its node shapes exist; every
    shape carries the labels the overlay pins (checked on the rendered overlays)."""
    offered = {(c, g.name) for c in MANAGED for g in catalog.gpus_for_cloud(c)}
    assert set(SHAPES) == offered
    for (cloud, gpu), (on_demand, spot) in SHAPES.items():
        assert on_demand.cloud == spot.cloud == cloud and not on_demand.spot and spot.spot
        assert on_demand.gpu_resource == catalog.get_gpu(gpu).resource
        wanted = catalog.get_gpu(gpu).node_selector(cloud, 1, 4)
        for shape in (on_demand, spot):
            labels = shape.node_labels("n")
            assert {k: labels.get(k) for k in wanted} == wanted, shape.name
            assert shape.gpus >= 1 and float(shape.allocatable["cpu"].rstrip("m")) / (
                1000 if shape.allocatable["cpu"].endswith("m") else 1) > 4, shape.name
            # An Arm node (GKE taints it) takes only a pod that tolerates the taint: the overlay does.
            if labels["kubernetes.io/arch"] != "amd64":
                assert wanted.get("kubernetes.io/arch") == labels["kubernetes.io/arch"], shape.name


# --------------------------------------------------------------------------- the big set


def test_every_overlay_lands_on_its_cloud_gpu_and_capacity(control_plane, cluster_crds, rendered):
    """All cloud overlays at once (every cloud x GPU x capacity type, a staging and a
    multi-GPU prod overlay per cloud, plus prod-70b) over one node set
    that mixes every cloud's on-demand and spot nodes of every GPU, two zones each:
    every pod lands on its own cloud, GPU and capacity type, a prod minimum of two on
    two nodes in two zones, and nothing on the decoys."""
    cp = control_plane
    extra = staging_and_multi_gpu(rendered)
    assert len(extra) == len(STAGING_ON) + len(MULTI_GPU_ON)
    for r in extra:  # what they are meant to cover: a staging minimum of one, more than one GPU a pod
        gpus = r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        tp = int(next(v for k, v in gpus.items() if k.endswith("/gpu")))
        assert (r.min_replicas, tp > 1) == ((1, False) if r.name.startswith("staging-") else (2, True)), (r.name, tp)
        assert "NetworkPolicy" in r.kinds() and "PodMonitor" in r.kinds(), r.name
    overlays = combos(rendered) + extra + [renamed(rendered["prod-70b"], "all")]
    shapes = [fn.in_zone(s, z) for pair in SHAPES.values() for s in pair for z in (0, 1)]
    shapes += [s for extra in EXTRA_ON_DEMAND.values() for s in extra] + list(DECOYS)
    started = time.monotonic()
    with fn.node_set(cp, shapes) as nodes:
        try:
            apply_and_scale(cp, overlays)
            want = {r.namespace: r.min_replicas for r in overlays}

            def all_placed():
                pods = vllm_pods(cp)
                return pods if all(len([p for p in pods.get(ns, []) if p["spec"].get("nodeName")]) >= n
                                   for ns, n in want.items()) else None

            try:
                pods = wait_for("every overlay's minimum replicas scheduled", all_placed, timeout=90)
            except TimeoutError:
                stuck = {r.name: pending_reasons(cp, r.namespace, r.selector) for r in overlays
                         if len(placements(cp, r.namespace, r.selector)) < r.min_replicas}
                raise AssertionError(f"not scheduled: {stuck}") from None
            table = node_table(cp)
            used = Counter()
            for r in overlays:
                placed = [p["spec"]["nodeName"] for p in pods[r.namespace]]
                assert len(placed) == r.min_replicas, (r.name, placed)
                on_demand, spot = SHAPES[(r.cloud, r.gpu)]
                allowed = {spot.name} if r.spot else {on_demand.name} | {
                    s.name for s in EXTRA_ON_DEMAND.get((r.cloud, r.gpu), ())}
                for node in placed:
                    assert shape_of(table[node]) in allowed, f"{r.name}: pod on {node} ({shape_of(table[node])})"
                    used[node] += 1
                if r.min_replicas >= 2:
                    assert len(set(placed)) == len(placed), f"{r.name}: replicas share a node: {placed}"
                    if (r.cloud, r.gpu) not in EXTRA_ON_DEMAND or r.spot:
                        # Two eligible nodes, one per zone. (With a third, the zone spread is a
                        # preference the scheduler may trade; the prod-70b test below shows it.)
                        zones = {table[n]["topology.kubernetes.io/zone"] for n in placed}
                        assert len(zones) == len(placed), f"{r.name}: replicas share a zone: {placed}"
            decoys = {n for s in DECOYS for n in nodes.of(s)}
            assert not decoys & set(used), {n: used[n] for n in decoys & set(used)}
        finally:
            cleanup(cp, overlays)
    print(f"\n[placement] {len(overlays)} overlays on {len(shapes)} nodes in {time.monotonic() - started:.1f} s")


# --------------------------------------------------------------------------- where it must not go


def test_prod_never_on_spot_and_each_minimum_replica_on_its_own_node(control_plane, cluster_crds, rendered):
    """The realistic mix: spot and on-demand H100 nodes of one Karpenter cluster,
    plus an interruptible capacity reservation. prod-70b's two TP-4 replicas would
    both fit on the one on-demand node, and the spot nodes have free GPUs: the second
    replica waits for another on-demand node, and takes the one in the other zone."""
    cp = control_plane
    prod = renamed(rendered["prod-70b"], "mix")
    spot = renamed(rendered["prod-eks-h100-80gb-spot"], "mix")
    elsewhere = [renamed(rendered["prod-gke-h100-80gb"], "mix"), renamed(rendered["prod-aks-h100-80gb"], "mix")]
    first = fn.in_zone(fn.EKS_P5_48XLARGE, 0, "a1")
    with fn.node_set(cp, [first, fn.in_zone(fn.EKS_P5_48XLARGE_SPOT, 0), fn.in_zone(fn.EKS_P5_48XLARGE_SPOT, 1),
                          fn.EKS_P5_48XLARGE_RESERVED_INTERRUPTIBLE]) as nodes:
        added: list[str] = []
        try:
            apply_and_scale(cp, [prod, spot, *elsewhere])
            # The spot overlay takes the two spot nodes, one replica each.
            placed = wait_pods_scheduled(cp, spot.namespace, spot.selector, 2)
            assert sorted(placed.values()) == sorted(n for s in nodes.by_shape if "spot" in s
                                                     for n in nodes.by_shape[s]), placed
            # prod: one replica on the on-demand node, the other Pending, not on spot.
            placed = wait_pods_scheduled(cp, prod.namespace, prod.selector, 1)
            assert list(placed.values()) == nodes.of(first)
            reason = wait_reason(cp, prod, "didn't match pod topology spread constraints")
            assert len(pending_reasons(cp, prod.namespace, prod.selector)) == 1
            assert "0/4 nodes are available" in reason, reason
            assert "didn't match pod topology spread constraints" in reason, reason  # not the same node
            assert "3 node(s) didn't match Pod's node affinity/selector" in reason, reason  # not spot, not interruptible
            # Other clouds' overlays find no node of theirs: Pending, with the scheduler's reason.
            for r in elsewhere:
                why = wait_reason(cp, r, "4 node(s) didn't match Pod's node affinity/selector")
                assert "0/4 nodes are available" in why, (r.name, why)
                assert not placements(cp, r.namespace, r.selector), r.name
            # Two more on-demand nodes, one in each zone: the second replica takes the other zone.
            a2, b1 = fn.in_zone(fn.EKS_P5_48XLARGE, 0, "a2"), fn.in_zone(fn.EKS_P5_48XLARGE, 1, "b1")
            added = fn.create_nodes(cp, [a2, b1])
            placed = wait_pods_scheduled(cp, prod.namespace, prod.selector, 2)
            zones = {node_table(cp)[n]["topology.kubernetes.io/zone"] for n in placed.values()}
            assert len(set(placed.values())) == 2 and zones == {"us-east-1a", "us-east-1b"}, placed
            # Above the minimum the replicas stay balanced, one more per node, never on spot.
            scale(cp, prod.namespace, prod.deployment, 4)
            placed = wait_pods_scheduled(cp, prod.namespace, prod.selector, 4)
            per_node = Counter(placed.values())
            assert set(per_node) <= {*nodes.of(first), *added} and max(per_node.values()) - min(
                per_node.get(n, 0) for n in (*nodes.of(first), *added)) <= 1, per_node
        finally:
            cleanup(cp, [prod, spot, *elsewhere])
            fn.delete_nodes(cp, added)


def test_the_issue_command_schedules_on_a_one_l4_k3s_box(control_plane, cluster_crds, rendered):
    """`compose new-model llama-3.1-8b --env dev --cloud k3s --gpu l4` on a k3s box
    with one L4 and only the NVIDIA device plugin (no GPU operator, no GFD labels):
    the device plugin add-on and the model both land on it. With two GPUs per node
    (the planner's old assumption) the pod stays Pending with the scheduler's reason."""
    cp = control_plane
    issue, two = renamed(rendered["dev-llama-3-1-8b"], "box"), renamed(rendered["dev-8b-two-gpus"], "box")
    assert issue.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "1"
    plugin = kustomize.build(REPO / "base" / "nvidia-device-plugin").docs
    (ds,) = [d for d in plugin if d["kind"] == "DaemonSet"]
    plugin_ns = ds["metadata"]["namespace"]  # its own privileged namespace (issue 11), not kube-system
    with fn.node_set(cp, [fn.K3S_1L4_NO_GFD]) as nodes:
        try:
            apply_api(cp, plugin)
            plugin_pods = wait_for("the device plugin's pod on the box", lambda: [
                p for p in cp.api.get(f"/api/v1/namespaces/{plugin_ns}/pods",
                                      labelSelector="app.kubernetes.io/name=nvidia-device-plugin")["items"]
                if p["spec"].get("nodeName")])
            assert [p["spec"]["nodeName"] for p in plugin_pods] == nodes.names
            # Before: the plan asked for 2 GPUs (TP 2) and the box has one.
            apply_and_scale(cp, [two])
            reason = wait_reason(cp, two, "Insufficient nvidia.com/gpu")
            assert reason.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."), reason
            # Now: one GPU, a capped context, on the box.
            apply_and_scale(cp, [issue])
            assert list(wait_pods_scheduled(cp, issue.namespace, issue.selector, 1).values()) == nodes.names
            assert not placements(cp, two.namespace, two.selector)
        finally:
            cleanup(cp, [issue, two])
            try:
                cp.api.delete(f"/apis/apps/v1/namespaces/{plugin_ns}/daemonsets/{ds['metadata']['name']}")
            except ApiError as e:
                if e.status != 404:
                    raise


def test_k3s_overlays_land_on_k3s_boxes(control_plane, cluster_crds, rendered):
    """dev-8b and a dev overlay per GPU: one GPU each, on k3s boxes with and without
    GPU feature discovery labels."""
    cp = control_plane
    overlays = [renamed(r, "boxes") for r in rendered.values()
                if r.cloud == "k3s" and r.name.startswith(("dev-k3s-", "dev-8b")) and r.name != "dev-8b-two-gpus"]
    assert "dev-8b" in {r.name for r in overlays} and len(overlays) == len(catalog.gpus_for_cloud("k3s")) + 1
    # One GPU per overlay: four one-GPU boxes without GFD labels, the rest on two-GPU boxes.
    no_gfd = 4
    boxes = [fn.K3S_2GPU.replace(name=f"k3s-2gpu-{i}") for i in range(-(-(len(overlays) - no_gfd) // 2))] + [
        fn.K3S_1GPU_NO_GFD.replace(name=f"k3s-1gpu-nogfd-{i}") for i in range(no_gfd)]
    assert sum(b.gpus for b in boxes) >= len(overlays)
    with fn.node_set(cp, boxes) as nodes:
        try:
            apply_and_scale(cp, overlays)
            gpus_used = Counter()
            for r in overlays:
                placed = wait_pods_scheduled(cp, r.namespace, r.selector, r.min_replicas, timeout=60)
                for node in placed.values():
                    assert node in nodes.names, (r.name, node)
                    gpus_used[node] += 1
            assert {n for n in gpus_used if "nogfd" in n}, "no pod on a box without GFD labels"
        finally:
            cleanup(cp, overlays)
