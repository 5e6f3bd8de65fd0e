"""The test control plane itself: a real v1.32 API server, scheduler and
controllers on loopback, fake cloud GPU nodes kept Ready by a Lease heartbeat,
and the helpers later tests build on (conftest_cluster.py)."""

from __future__ import annotations

import time

import pytest

import controlplane as cpl
import fakenodes as fn
from compose.core import kustomize
from conftest_cluster import (
    REPO,
    UnknownKinds,
    apply_rendered,
    delete_namespace,
    dry_run,
    dry_run_pod,
    ensure_namespace,
    pending_reasons,
    placements,
    reset,
    scale,
    wait_for,
    wait_pending_reason,
    wait_pods_scheduled,
)

pytestmark = pytest.mark.cluster

PAUSE = "registry.k8s.io/pause:3.10"


def deployment(name: str, *, gpus: int = 0, replicas: int = 1, tolerate_gpu: bool = False, **pod_spec) -> dict:
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    spec = {"containers": [{"name": "main", "image": PAUSE, "resources": resources}], **pod_spec}
    if tolerate_gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def restricted_container() -> dict:
    return {
        "name": "main",
        "image": PAUSE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


# --------------------------------------------------------------------------- without a control plane


def test_missing_binaries_give_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    reason = cpl.missing()
    assert reason is not None and "\n" not in reason
    assert reason.startswith("control plane unavailable:") and "KUBEBUILDER_ASSETS" in reason
    monkeypatch.setenv("ETCD", str(tmp_path / "no-etcd"))
    reason = cpl.missing()
    assert "etcd" in reason and "etcd-server" in reason and "\n" not in reason


def test_shapes_are_consistent():
    """Every shape's labels, taints and resources agree with what it claims to be."""
    assert len(fn.SHAPES) >= 30
    for shape in fn.SHAPES.values():
        labels = shape.node_labels("n")
        assert labels["node.kubernetes.io/instance-type"] == shape.instance_type
        for key in ("cpu", "memory", "pods", "ephemeral-storage"):
            assert key in shape.capacity and key in shape.allocatable, (shape.name, key)
        if shape.gpus:
            assert shape.allocatable[shape.gpu_resource] == shape.capacity[shape.gpu_resource] == str(shape.gpus)
        if shape.cloud == "eks":
            reserved = labels["karpenter.sh/capacity-type"] == "reserved"
            assert labels["karpenter.sh/capacity-type"] == ("spot" if shape.spot else "on-demand") or reserved
            if reserved:  # reclaimable only when interruptible
                assert (labels["karpenter.k8s.aws/capacity-reservation-interruptible"] == "true") == shape.spot
            assert not any("spot" in t["key"] for t in shape.taints)  # Karpenter sets no spot taint
            if shape.gpus:
                assert labels["karpenter.k8s.aws/instance-gpu-count"] == str(shape.gpus)
                assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in shape.taints
        if shape.cloud == "gke":
            assert (labels.get("cloud.google.com/gke-spot") == "true") == shape.spot
            assert labels["cloud.google.com/gke-provisioning"] == ("spot" if shape.spot else "standard")
            assert not any("spot" in t["key"] for t in shape.taints)
            if shape.gpus:
                assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in shape.taints
        if shape.cloud == "aks" and shape.spot:
            assert labels["kubernetes.azure.com/scalesetpriority"] == "spot"
            assert {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"} in shape.taints
    assert fn.AKS_ND96ISR_MI300X_V5.gpu_resource == "amd.com/gpu"
    assert {"key": "sku", "value": "gpu", "effect": "NoSchedule"} in fn.AKS_NC24ADS_A100_V4.taints
    assert fn.K3S_1GPU.labels["nvidia.com/gpu.present"] == "true"
    assert "nvidia.com/gpu.present" not in fn.K3S_1GPU_NO_GFD.labels


# --------------------------------------------------------------------------- the control plane


def test_api_server_is_v1_32_13(control_plane):
    assert control_plane.version()["gitVersion"] == "v1.32.13"
    server = control_plane.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.32.13"' in server
    # Every component is up and listening on loopback only.
    assert control_plane.alive()
    assert control_plane.server.startswith("https://127.0.0.1:")


def test_nodes_stay_ready_past_the_grace_period(control_plane):
    """The heartbeat is what keeps fake nodes Ready: a node whose Lease and Ready
    heartbeat stop is marked NotReady and tainted unreachable after the
    controller-manager's node-monitor grace period; the others stay Ready."""
    cp = control_plane
    silent = fn.EKS_G6_XLARGE.replace(name="eks-silent")
    with fn.node_set(cp, [fn.EKS_G6_XLARGE, fn.GKE_G2_STANDARD_8, silent]) as nodes:
        start = time.monotonic()
        quiet = nodes.of(silent)[0]
        fn.heartbeat(cp).remove(quiet)

        def quiet_is_down():
            node = cp.api.get(f"/api/v1/nodes/{quiet}")
            return any(t["key"] == "node.kubernetes.io/unreachable" for t in node["spec"].get("taints", []) or [])

        wait_for(f"{quiet} tainted unreachable", quiet_is_down, timeout=cpl.NODE_MONITOR_GRACE_SECONDS + 30)
        # Past the grace period, and then some: the beating nodes never flinched.
        time.sleep(max(0.0, cpl.NODE_MONITOR_GRACE_SECONDS + 8 - (time.monotonic() - start)))
        assert time.monotonic() - start > cpl.NODE_MONITOR_GRACE_SECONDS
        for name in nodes.of(fn.EKS_G6_XLARGE) + nodes.of(fn.GKE_G2_STANDARD_8):
            node = cp.api.get(f"/api/v1/nodes/{name}")
            assert fn.node_problems(node) == [], (name, node["spec"], node["status"]["conditions"])
            lease = cp.api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
            assert lease["spec"]["holderIdentity"] == name
            assert lease["spec"]["leaseDurationSeconds"] == 40
        ready = next(c for c in cp.api.get(f"/api/v1/nodes/{quiet}")["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
        assert not fn.heartbeat(cp).errors, list(fn.heartbeat(cp).errors)


def test_gpu_pod_goes_to_the_gpu_node(control_plane, cluster_ns):
    cp = control_plane
    with fn.node_set(cp, [fn.EKS_G6_XLARGE, fn.EKS_M7I_2XLARGE]) as nodes:
        gpu_node, cpu_node = nodes.of(fn.EKS_G6_XLARGE)[0], nodes.of(fn.EKS_M7I_2XLARGE)[0]
        # No toleration in the manifest: ExtendedResourceToleration adds it.
        cp.apply([deployment("gpu", gpus=1), deployment("cpu")], namespace=cluster_ns)
        gpu = wait_pods_scheduled(cp, cluster_ns, "app=gpu", 1)
        assert list(gpu.values()) == [gpu_node]
        pod = cp.api.get(f"/api/v1/namespaces/{cluster_ns}/pods/{next(iter(gpu))}")
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        # The GPU node's taint keeps the CPU-only pod on the CPU node.
        cpu = wait_pods_scheduled(cp, cluster_ns, "app=cpu", 1)
        assert list(cpu.values()) == [cpu_node]
        # A second GPU replica has nowhere to go: one GPU per g6.xlarge.
        scale(cp, cluster_ns, "gpu", 2)
        reasons = wait_pending_reason(cp, cluster_ns, "app=gpu")
        assert len(reasons) == 1 and "Insufficient nvidia.com/gpu" in next(iter(reasons.values())), reasons
        assert placements(cp, cluster_ns, "app=gpu") == gpu


def test_more_gpus_than_any_node_stays_pending(control_plane, cluster_ns):
    cp = control_plane
    with fn.node_set(cp, [fn.EKS_G6_12XLARGE, fn.GKE_G2_STANDARD_24, fn.EKS_M7I_2XLARGE]):
        cp.apply(deployment("huge", gpus=8), namespace=cluster_ns)
        reasons = wait_pending_reason(cp, cluster_ns, "app=huge")
        (message,) = reasons.values()
        assert "0/3 nodes are available" in message and "Insufficient nvidia.com/gpu" in message, message
        pod = cp.get_json("pods", "-l", "app=huge", namespace=cluster_ns)["items"][0]
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
        assert pending_reasons(cp, cluster_ns, "app=huge") == reasons
        # The scheduler's FailedScheduling event says the same.
        events = wait_for("a FailedScheduling event", lambda: cp.api.get(
            f"/api/v1/namespaces/{cluster_ns}/events",
            fieldSelector=f"involvedObject.name={pod['metadata']['name']},reason=FailedScheduling")["items"])
        assert "Insufficient nvidia.com/gpu" in events[-1]["message"], events[-1]


def test_extended_resource_toleration(control_plane, cluster_ns):
    cp = control_plane
    gpu_pod = deployment("x", gpus=1)["spec"]["template"]
    plain_pod = deployment("y")["spec"]["template"]
    got = dry_run_pod(cp, cluster_ns, gpu_pod, name="gpu")
    assert got.allowed, got.error
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in got.object["spec"]["tolerations"]
    got = dry_run_pod(cp, cluster_ns, plain_pod, name="plain")
    assert got.allowed, got.error
    assert not any(t.get("key") == "nvidia.com/gpu" for t in got.object["spec"].get("tolerations", []))


def test_pod_security_restricted(control_plane):
    cp = control_plane
    ns = f"t-psa-{int(time.time() * 1000) % 100000}"
    ensure_namespace(cp, ns, {"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        privileged = {"containers": [{"name": "main", "image": PAUSE, "securityContext": {"privileged": True}}]}
        got = dry_run_pod(cp, ns, privileged)
        assert not got.allowed and got.status == 403, got
        assert 'violates PodSecurity "restricted:latest"' in got.error and "privileged" in got.error
        # The same pod in a Deployment is admitted, with a warning.
        dep = deployment("priv")
        dep["spec"]["template"]["spec"] = privileged
        got = dry_run(cp, dep, ns)
        assert got.allowed, got.error
        assert any('would violate PodSecurity "restricted:latest"' in w for w in got.warnings), got.warnings
        # Positive control: a compliant pod passes, without warnings.
        got = dry_run_pod(cp, ns, {"securityContext": {"runAsNonRoot": True}, "containers": [restricted_container()]})
        assert got.allowed and not got.warnings, (got.error, got.warnings)
    finally:
        delete_namespace(cp, ns)


def test_keda_cel_rule_is_enforced(control_plane, cluster_crds, cluster_ns):
    cp = control_plane
    assert "scaledobjects.keda.sh" in cluster_crds
    assert "applicationsets.argoproj.io" in cluster_crds  # the 1.4 MB CRD fits (server-side apply)

    def scaled_object(min_replicas: int, max_replicas: int) -> dict:
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": cluster_ns},
            "spec": {
                "scaleTargetRef": {"name": "vllm"},
                "minReplicaCount": min_replicas,
                "maxReplicaCount": max_replicas,
                "triggers": [{"type": "prometheus", "metadata": {
                    "serverAddress": "http://prometheus:9090", "query": "sum(up)", "threshold": "1"}}],
            },
        }

    bad = dry_run(cp, scaled_object(5, 2))
    assert not bad.allowed and bad.status == 422 and bad.reason == "Invalid", bad
    assert "minReplicaCount must be less than or equal to maxReplicaCount" in bad.error
    good = cp.apply(scaled_object(1, 2))
    assert "serverside-applied" in good.stdout
    assert cp.get_json("scaledobject", "so", namespace=cluster_ns)["spec"]["maxReplicaCount"] == 2


def test_apply_rendered_binds_claims_and_schedules(control_plane, cluster_ns):
    cp = control_plane
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models"},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc-test",
                      "resources": {"requests": {"storage": "19Gi"}}}}
    dep = deployment("uses-claim", gpus=1)
    dep["spec"]["template"]["spec"]["volumes"] = [{"name": "m", "persistentVolumeClaim": {"claimName": "models"}}]
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "m", "mountPath": "/models"}]
    with fn.node_set(cp, [fn.EKS_G6_XLARGE]) as nodes:
        applied = apply_rendered(cp, [claim, dep], namespace=cluster_ns)
        assert applied.storage_classes == ["efs-sc-test"]
        pvc = cp.api.get(f"/api/v1/namespaces/{cluster_ns}/persistentvolumeclaims/models")
        assert pvc["status"]["phase"] == "Bound" and pvc["status"]["capacity"]["storage"] == "19Gi"
        assert pvc["spec"]["volumeName"] == applied.volumes[f"{cluster_ns}/models"]
        assert list(wait_pods_scheduled(cp, cluster_ns, "app=uses-claim", 1).values()) == nodes.names
    sc = cp.api.get("/apis/storage.k8s.io/v1/storageclasses/efs-sc-test")
    assert sc["provisioner"] == "kubernetes.io/no-provisioner" and sc["volumeBindingMode"] == "Immediate"
    with pytest.raises(UnknownKinds, match=r"example\.com/v1 Widget .*/w1"):
        apply_rendered(cp, [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}}],
                       namespace=cluster_ns)


def test_rendered_overlay_lands_on_its_node(control_plane, cluster_crds):
    """The k3s reference overlay, as `kubectl kustomize` renders it, is accepted
    by a real API server and its pod is scheduled onto the k3s GPU box."""
    cp = control_plane
    docs = kustomize.build(REPO / "overlays" / "dev-8b").docs
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1
    ns = deployments[0]["metadata"]["namespace"]
    selector = deployments[0]["spec"]["selector"]["matchLabels"]
    with fn.node_set(cp, [fn.K3S_1GPU, fn.EKS_M7I_2XLARGE]) as nodes:
        try:
            applied = apply_rendered(cp, docs)
            assert ns in applied.namespaces
            assert cp.api.exists("/apis/node.k8s.io/v1/runtimeclasses/nvidia")  # what k3s would provide
            placed = wait_pods_scheduled(cp, ns, selector, 1)
            assert list(placed.values()) == nodes.of(fn.K3S_1GPU)
        finally:
            delete_namespace(cp, ns)
    # reset(): no fake node, no test namespace left behind.
    ensure_namespace(cp, "t-reset-probe")
    fn.create_nodes(cp, [fn.K3S_2GPU])
    reset(cp)
    assert fn.fake_nodes(cp) == []
    left = cp.api.get("/api/v1/namespaces", labelSelector="vllm-compose.test/ephemeral=true")["items"]
    assert all(n["status"]["phase"] == "Terminating" for n in left), left
