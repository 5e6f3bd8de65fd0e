"""`compose doctor` on a real control plane: every check's fail and ok paths, the
seed failures of issue 12 each reported with its fix, read-only access, and the
CLI's edges (no cluster, bad kubeconfig, no client installed).

These tests need CRDs absent and present in turn, so they run on a control plane
of their own (started once for this module, about 5 s), not the session's shared
one; everything they create dies with it.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import controlplane as cpl
import fakenodes as fn
from composer_helpers import run
from compose.cluster import doctor as doc
from compose.cluster import kube
from compose.cluster import target as tgt
from compose.core import kustomize
from conftest_cluster import REPO, apply_rendered, crd_dir, delete_namespace, ensure_namespace, wait_for

pytestmark = pytest.mark.cluster

SECRET_VALUE = "hf_doNotPrintMe0123456789"


@pytest.fixture(scope="module")
def cp():
    reason = cpl.missing()
    if reason:
        pytest.skip(reason)
    plane = cpl.ControlPlane.start()
    try:
        yield plane
    finally:
        plane.stop()
        plane.remove_workdir()


def doctor(cp, overlay: str | Path, *args: str, kubeconfig: Path | None = None):
    """(result, report dict or None, {check id: check})."""
    res = run("doctor", str(overlay), "--kubeconfig", str(kubeconfig or cp.kubeconfig), "--format", "json", *args, repo=REPO)
    data = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
    checks = {c["id"]: c for c in data["checks"]} if data else {}
    return res, data, checks


def text_doctor(cp, overlay: str | Path, *args: str):
    return run("doctor", str(overlay), "--kubeconfig", str(cp.kubeconfig), *args, repo=REPO)


def install(cp, *names: str) -> None:
    """Install the CRDs of ../shared/crds/<name> (one folder per project)."""
    for name in names:
        cp.install_crds(crd_dir() / name)


def post(cp, path: str, obj: dict) -> dict:
    return cp.api.post(path, obj)


def delete(cp, path: str) -> None:
    try:
        cp.api.delete(path)
    except cpl.ApiError as e:
        if e.status != 404:
            raise


def make_pods_ready(cp, ns: str, selector: str, n: int = 1) -> None:
    """Mark the bound pods of a selector Running and Ready, as a kubelet would."""
    def bound():
        pods = [p for p in cp.api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"] if p["spec"].get("nodeName")]
        return pods if len(pods) >= n else None
    for p in wait_for(f"{n} pod(s) {selector} bound", bound, 60):
        now = fn._now()
        cp.api.patch(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status", {"status": {
            "phase": "Running", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                                   "restartCount": 0, "state": {"running": {"startedAt": now}}} for c in p["spec"]["containers"]],
        }})


def keda_operator(cp) -> None:
    """A KEDA operator Deployment whose pod is Ready (on whatever fake node is there)."""
    ensure_namespace(cp, "keda")
    labels = {"app.kubernetes.io/name": "keda-operator", "app": "keda-operator"}
    if not cp.api.exists("/apis/apps/v1/namespaces/keda/deployments/keda-operator"):
        post(cp, "/apis/apps/v1/namespaces/keda/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "keda-operator", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keda-operator"}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "keda-operator", "image": "ghcr.io/kedacore/keda:2.20.2",
                          "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}}}})
    make_pods_ready(cp, "keda", "app=keda-operator")
    wait_for("keda-operator available", lambda: cp.api.get("/apis/apps/v1/namespaces/keda/deployments/keda-operator")
             .get("status", {}).get("availableReplicas"), 60)


def prometheus_service(cp, endpoints: bool) -> None:
    ensure_namespace(cp, "monitoring")
    if not cp.api.exists("/api/v1/namespaces/monitoring/services/prometheus-operated"):
        post(cp, "/api/v1/namespaces/monitoring/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus-operated"},
            "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": "prometheus"},
                     "ports": [{"name": "web", "port": 9090, "targetPort": 9090}]}})
    if endpoints:
        # What the endpointslice controller writes for a ready Prometheus pod; nothing ever dials it.
        post(cp, "/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "prometheus-operated-test", "labels": {"kubernetes.io/service-name": "prometheus-operated"}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 9090, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": True}}]})


def secret(cp, ns: str, data: dict[str, str]) -> None:
    ensure_namespace(cp, ns)
    delete(cp, f"/api/v1/namespaces/{ns}/secrets/hf-token")
    post(cp, f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def storage_class(cp, name: str, provisioner: str) -> None:
    delete(cp, f"/apis/storage.k8s.io/v1/storageclasses/{name}")
    post(cp, "/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name}, "provisioner": provisioner})


def csi_driver(cp, name: str) -> None:
    post(cp, "/apis/storage.k8s.io/v1/csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                                                    "metadata": {"name": name}, "spec": {"attachRequired": False}})


def runtime_class(cp, name: str = "nvidia") -> None:
    if not cp.api.exists(f"/apis/node.k8s.io/v1/runtimeclasses/{name}"):
        post(cp, "/apis/node.k8s.io/v1/runtimeclasses", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                                          "metadata": {"name": name}, "handler": name})


# --------------------------------------------------------------------------- edges (no cluster needed)


def test_no_cluster_is_one_line_and_exit_2(tmp_path):
    port = cpl.free_port()
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}]}))
    for cmd in ("doctor", "status"):
        res = run(cmd, "prod-70b", "--kubeconfig", str(kc), "--timeout", "2", repo=REPO)
        assert res.exit_code == 2, res.output
        err = res.stderr.strip()
        assert err.count("\n") == 0 and "Traceback" not in res.output, err
        assert err.startswith("error: cannot reach the cluster at https://127.0.0.1:") and "connection refused" in err, err
    res = run("doctor", "prod-70b", "--kubeconfig", str(tmp_path / "missing"), repo=REPO)
    assert res.exit_code == 2 and "no such file" in res.stderr and res.stderr.count("\n") == 1
    res = run("doctor", "prod-70b", "--kubeconfig", str(kc), "--context", "nope", repo=REPO)
    assert res.exit_code == 2 and "--context nope: no such context" in res.stderr and "gone" in res.stderr
    res = run("doctor", "no-such-overlay", "--kubeconfig", str(kc), repo=REPO)
    assert res.exit_code == 2 and "no overlay 'no-such-overlay'" in res.stderr


def test_kubeconfig_resolution(tmp_path, monkeypatch):
    """--kubeconfig, then $KUBECONFIG (a list; missing entries skipped), then ~/.kube/config."""
    a, b = tmp_path / "a", tmp_path / "b"
    for path, ctx, port in ((a, "ctx-a", 1), (b, "ctx-b", 2)):
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": ctx,
            "clusters": [{"name": ctx, "cluster": {"server": f"https://127.0.0.1:{port}"}}],
            "users": [{"name": ctx, "user": {"token": "t"}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}]}))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "none"), str(a), str(b)]))
    c = kube.connect(check=False)
    assert (c.connection.context, c.connection.server) == ("ctx-a", "https://127.0.0.1:1")
    c = kube.connect(context="ctx-b", check=False)  # merged: b's context is known too
    assert c.connection.server == "https://127.0.0.1:2"
    c = kube.connect(b, check=False)
    assert c.connection.context == "ctx-b"
    monkeypatch.delenv("KUBECONFIG")
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(b.read_text())
    assert kube.connect(check=False).connection.context == "ctx-b"
    (tmp_path / ".kube" / "config").unlink()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(kube.InvalidInput, match="no kubeconfig found"):
        kube.connect(check=False)


def test_offline_commands_never_import_the_client(tmp_path):
    """plan, new-model and check run without compose.cluster or kubernetes loaded,
    and doctor without the client installed is one line, exit 2."""
    code = f"""
import sys
from typer.testing import CliRunner
from compose.cli import app
sys.path.insert(0, {str(REPO / 'tests')!r})
from composer_helpers import scratch_repo
from pathlib import Path
repo = scratch_repo(Path({str(tmp_path)!r}))
for argv in (["plan", "llama-3.1-8b", "--gpu", "l4"], ["new-model", "qwen3-0.6b", "--repo", str(repo)],
             ["check", "dev-qwen3-0-6b", "--repo", str(repo), "--crd-dir", {str(crd_dir())!r}]):
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, (argv, r.output)
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes" or m.startswith("compose.cluster"))
print("LOADED", loaded)
sys.modules["kubernetes"] = None  # as if not installed
r = CliRunner().invoke(app, ["doctor", "dev-qwen3-0-6b", "--repo", str(repo)])
print("DOCTOR", r.exit_code, r.stderr.strip())
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
    assert "DOCTOR 2 error: the Kubernetes client is not installed: pip install 'vllm-compose[cluster]'" in proc.stdout, proc.stdout


def test_cluster_package_reads_only():
    """Nothing under compose/cluster can send anything but GET: the client's one
    request path hard-codes it, and no write call exists."""
    sources = {p.name: p.read_text() for p in (REPO / "compose" / "cluster").glob("*.py")}
    assert sources["kube.py"].count("param_serialize(") == 1 and 'method="GET"' in sources["kube.py"]
    for name, text in sources.items():
        for verb in ("POST", "PUT", "PATCH", "DELETE", "create_namespaced", "patch_namespaced", "delete_namespaced"):
            assert verb not in text, f"{name} mentions {verb}"


# --------------------------------------------------------------------------- the seed failures, then fixed


def test_seed_failures_are_reported_with_their_fix(cp):
    """Issue 12's list, on a bare cluster with EKS and GKE GPU nodes: each failure
    is found by doctor, with the fix, before anything is applied."""
    extra: list[str] = []  # nodes added during the test (node_set removes only its own)
    try:
        _seed_failures(cp, extra)
    finally:
        fn.delete_nodes(cp, extra)


def _seed_failures(cp, extra: list[str]) -> None:
    with fn.node_set(cp, [fn.EKS_P5_48XLARGE, fn.EKS_G6E_12XLARGE, fn.GKE_G2_STANDARD_24, fn.EKS_M7I_2XLARGE]):
        # The seed manifest (base/vllm): EKS and GKE nodes lack the hand-applied label.
        res, data, checks = doctor(cp, REPO / "base" / "vllm")
        assert res.exit_code == 1, res.output
        s = checks["scheduling"]
        assert s["status"] == "fail"
        assert "0/4 nodes are available" in s["saw"] and "node(s) didn't match Pod's node affinity/selector" in s["saw"]
        assert "the overlay requires `nvidia.com/gpu.present=true`" in s["saw"], s["saw"]
        assert "carr" in s["saw"] and ("instance-gpu" in s["saw"] or "gke-accelerator" in s["saw"]), s["saw"]
        assert "GPU feature discovery" in s["fix"] and "components/eks" in s["fix"], s["fix"]
        # KEDA is not installed.
        keda = checks["crd/scaledobject.keda.sh"]
        assert keda["status"] == "fail" and 'no matches for kind "ScaledObject" in version "keda.sh/v1alpha1"' in keda["saw"]
        assert "helm install keda" in keda["fix"]
        assert checks["keda-operator"]["status"] == "fail" and checks["keda-metrics-api"]["status"] == "fail"
        # Prometheus is not there: the ScaledObject's serverAddress names no Service.
        prom = checks["prometheus-url"]
        assert prom["status"] == "fail" and "Service monitoring/prometheus-operated does not exist" in prom["saw"]
        assert "--prometheus-url" in prom["fix"]
        # The base's claim names no class and the cluster has no default.
        assert checks["storage-class"]["status"] == "fail" and "no default" in checks["storage-class"]["saw"]
        # Text output: one line per check, each failure followed by its fix.
        text = text_doctor(cp, REPO / "base" / "vllm").stdout
        assert "\x1b[" not in text  # no colours when not a terminal
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("FAIL"):
                assert lines[i + 1].lstrip().startswith("fix: "), (line, lines[i + 1])
        assert lines[-1].endswith(f"{data['summary']['ok']} ok") and data["status"] == "fail"

        # prod-70b (EKS, gated): StorageClass efs-sc missing, hf-token forgotten; the p5 node fits
        # one replica. Its minimum of two each need a node of their own (hostname spread with
        # minDomains 2, issue 10): with one p5 node the second would stay Pending, so a warning.
        res, data, checks = doctor(cp, "prod-70b")
        s = checks["scheduling"]
        assert s["status"] == "warn", s
        assert s["details"]["feasible_nodes"] == [fn.node_name(fn.EKS_P5_48XLARGE)]
        assert "only 1 replica(s) fit now, minReplicaCount is 2" in s["saw"] and "add GPU nodes" in s["fix"], s
        # A second on-demand p5 node, in the other zone: both minimum replicas fit.
        second = fn.in_zone(fn.EKS_P5_48XLARGE, 1)
        extra.extend(fn.create_nodes(cp, [second]))
        res, data, checks = doctor(cp, "prod-70b")
        assert checks["scheduling"]["status"] == "ok", checks["scheduling"]
        assert checks["scheduling"]["details"]["feasible_nodes"] == sorted(
            [fn.node_name(fn.EKS_P5_48XLARGE), fn.node_name(second)])
        assert checks["scheduling"]["details"]["replicas_that_fit_now"] == 2
        sc = checks["storage-class"]
        assert sc["status"] == "fail" and 'StorageClass "efs-sc" not found' in sc["saw"] and "EFS CSI driver" in sc["fix"]
        tok = checks["hf-token"]
        assert tok["status"] == "fail" and "Secret prod-70b/hf-token does not exist" in tok["saw"] and "gated" in tok["saw"]
        assert tok["fix"] == "kubectl -n prod-70b create secret generic hf-token --from-literal=token=hf_..."
        assert checks["crd/nodepool.karpenter.sh"]["status"] == "warn"
        assert checks["runtime-class"]["status"] == "ok" and checks["device-plugin"]["status"] == "ok"

        # ... then fixed, one by one.
        storage_class(cp, "efs-sc", "ebs.csi.aws.com")  # the wrong driver: EBS is ReadWriteOnce
        _, _, checks = doctor(cp, "prod-70b")
        assert checks["storage-class"]["status"] == "fail" and "not ReadWriteMany" in checks["storage-class"]["saw"]
        storage_class(cp, "efs-sc", "efs.csi.aws.com")
        _, _, checks = doctor(cp, "prod-70b")
        assert checks["storage-class"]["status"] == "warn" and "no CSIDriver" in checks["storage-class"]["saw"]
        csi_driver(cp, "efs.csi.aws.com")
        secret(cp, "prod-70b", {"hf_token": SECRET_VALUE})
        _, _, checks = doctor(cp, "prod-70b")
        assert checks["storage-class"]["status"] == "ok", checks["storage-class"]
        assert checks["hf-token"]["status"] == "fail" and "not 'token'" in checks["hf-token"]["saw"], checks["hf-token"]
        secret(cp, "prod-70b", {"token": SECRET_VALUE})
        install(cp, "keda", "prometheus-operator", "karpenter")
        prometheus_service(cp, endpoints=False)
        res, data, checks = doctor(cp, "prod-70b")
        assert SECRET_VALUE not in res.stdout and base64.b64encode(SECRET_VALUE.encode()).decode() not in res.stdout
        assert checks["hf-token"]["status"] == "ok" and checks["hf-token"]["details"]["keys"] == ["token"]
        for crd in ("crd/scaledobject.keda.sh", "crd/podmonitor.monitoring.coreos.com",
                    "crd/prometheusrule.monitoring.coreos.com", "crd/nodepool.karpenter.sh"):
            assert checks[crd]["status"] == "ok", checks[crd]
        assert checks["prometheus-url"]["status"] == "warn" and "no ready endpoint" in checks["prometheus-url"]["saw"]
        prometheus_service(cp, endpoints=True)
        keda_operator(cp)
        _, _, checks = doctor(cp, "prod-70b")
        assert checks["prometheus-url"]["status"] == "ok", checks["prometheus-url"]
        assert checks["keda-operator"]["status"] == "ok" and "keda/keda-operator: 1 available" in checks["keda-operator"]["saw"]
        # KEDA's metrics API registered, but nothing serves it (no endpoints): the aggregator says so.
        post(cp, "/apis/apiregistration.k8s.io/v1/apiservices", {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": doc.METRICS_APISERVICE},
            "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                     "insecureSkipTLSVerify": True, "service": {"namespace": "keda", "name": "keda-operator-metrics-apiserver", "port": 443}}})
        wait_for("APIService judged", lambda: doctor(cp, "prod-70b")[2]["keda-metrics-api"]["saw"].find("not Available") >= 0, 30)
        _, data, checks = doctor(cp, "prod-70b")
        m = checks["keda-metrics-api"]
        assert m["status"] == "fail" and "keda/keda-operator-metrics-apiserver" in m["saw"] and "ServiceNotFound" in m["saw"], m
        # prod-70b admits its clients from namespaces gateway and monitoring (components/network-policy):
        # gateway does not exist yet.
        n = checks["network-policy"]
        assert n["status"] == "warn" and "gateway do(es) not exist" in n["saw"] and "kubectl create namespace gateway" in n["fix"], n
        assert checks["keda-version"]["status"] == "ok" and "needs KEDA 2.17 or later" in checks["keda-version"]["saw"]
        ensure_namespace(cp, "gateway")
        try:
            _, data, checks = doctor(cp, "prod-70b")
        finally:
            delete_namespace(cp, "gateway")
        assert [c["id"] for c in data["checks"] if c["status"] != "ok"] == ["keda-metrics-api"], data["checks"]
        delete(cp, f"/apis/apiregistration.k8s.io/v1/apiservices/{doc.METRICS_APISERVICE}")


def schedule_for_real(cp, overlay: str, ns: str, timeout: float = 60) -> str | None:
    """The overlay's pod as its Deployment would create it (its claims Bound on a fake
    volume), in namespace `ns`: the node the real scheduler binds it to, or None when
    it is judged unschedulable. Everything it made is removed again."""
    t = tgt.from_directory(REPO / "overlays" / overlay)
    claims = [{**d, "metadata": {**d["metadata"], "namespace": ns}} for d in t.docs if d["kind"] == "PersistentVolumeClaim"]
    applied = apply_rendered(cp, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}] + claims, namespace=ns)
    try:
        cp.api.post(f"/api/v1/namespaces/{ns}/pods", {"apiVersion": "v1", "kind": "Pod",
                                                      "metadata": {"name": "probe", "labels": t.pod_labels},
                                                      "spec": copy.deepcopy(t.pod_spec)})

        def decided():
            pod = cp.api.get(f"/api/v1/namespaces/{ns}/pods/probe")
            if pod["spec"].get("nodeName"):
                return (pod["spec"]["nodeName"],)
            cond = next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"), {})
            return (None,) if cond.get("reason") == "Unschedulable" else None
        return wait_for(f"{overlay}'s pod scheduled or judged unschedulable", decided, timeout)[0]
    finally:
        cp.api.call("DELETE", f"/api/v1/namespaces/{ns}/pods/probe", {"gracePeriodSeconds": 0})
        delete_namespace(cp, ns)
        for sc in applied.storage_classes:
            delete(cp, f"/apis/storage.k8s.io/v1/storageclasses/{sc}")
        for pv in applied.volumes.values():
            delete(cp, f"/api/v1/persistentvolumes/{pv}")


def test_k3s_overlay_on_eks_nodes_and_the_reverse(cp):
    """A k3s overlay pins no GPU label (affinity kubernetes.io/os In [linux], issue 10:
    the nvidia.com/gpu request picks the box), so on EKS GPU nodes it schedules, and the
    real scheduler agrees with doctor. What is wrong about that cluster is reported by
    the checks that own it: no RuntimeClass nvidia, no local-path StorageClass. The
    reverse, an EKS overlay on a k3s box, cannot schedule: its GPU pin names a label
    only Karpenter sets."""
    install(cp, "keda", "prometheus-operator")
    with fn.node_set(cp, [fn.EKS_P5_48XLARGE, fn.EKS_G6E_12XLARGE]) as nodes:
        _, _, checks = doctor(cp, "dev-8b")
        s = checks["scheduling"]
        assert s["status"] == "ok" and s["saw"].startswith("2/2 nodes are available"), s["saw"]
        assert sorted(s["details"]["feasible_nodes"]) == sorted(nodes.names), s
        rc = checks["runtime-class"]
        assert rc["status"] == "fail" and 'RuntimeClass "nvidia" not found' in rc["saw"] and "base/nvidia-device-plugin" in rc["fix"]
        sc = checks["storage-class"]
        assert sc["status"] == "fail" and 'StorageClass "local-path" not found' in sc["saw"], sc
        runtime_class(cp)
        assert doctor(cp, "dev-8b")[2]["runtime-class"]["status"] == "ok"
        # The real scheduler binds the pod to one of the nodes doctor called feasible.
        assert schedule_for_real(cp, "dev-8b", "t-k3s-on-eks") in nodes.names
    with fn.node_set(cp, [fn.K3S_1GPU]):
        _, _, checks = doctor(cp, "prod-70b")
        s = checks["scheduling"]
        assert s["status"] == "fail" and "0/1 nodes are available" in s["saw"], s
        assert "karpenter.k8s.aws/instance-gpu-name" in s["saw"] and "needs 4 nvidia.com/gpu" in s["saw"], s["saw"]
        assert "these nodes look like k3s, the overlay is for eks" in s["fix"], s["fix"]
        assert schedule_for_real(cp, "prod-70b", "t-eks-on-k3s") is None  # the scheduler agrees
        _, _, checks = doctor(cp, "dev-8b")
        assert checks["scheduling"]["status"] == "ok" and checks["storage-class"]["status"] == "fail"
        assert "local-path" in checks["storage-class"]["fix"]


def test_gpu_node_without_device_plugin(cp):
    """A node that matches the labels but advertises no GPU: the device plugin is missing."""
    dark = fn.K3S_1GPU.replace(name="k3s-no-plugin",
                               capacity={k: v for k, v in fn.K3S_1GPU.capacity.items() if k != "nvidia.com/gpu"},
                               allocatable={k: v for k, v in fn.K3S_1GPU.allocatable.items() if k != "nvidia.com/gpu"})
    runtime_class(cp)
    with fn.node_set(cp, [dark]):
        _, _, checks = doctor(cp, "dev-8b")
        d = checks["device-plugin"]
        assert d["status"] == "fail" and "look like GPU nodes (nvidia.com/gpu.present=true" in d["saw"] and "advertise no nvidia.com/gpu" in d["saw"], d
        assert "no device-plugin DaemonSet" in d["saw"] and "kubectl apply -k base/nvidia-device-plugin" in d["fix"]
        s = checks["scheduling"]
        assert s["status"] == "fail" and "Insufficient nvidia.com/gpu" in s["saw"] and "advertises none" in s["saw"], s
        assert "device plugin" in s["fix"]
        # The plugin installed in a namespace of its own (found by its labels, not a namespace).
        ensure_namespace(cp, "gpu-plugins")
        docs = kustomize.build(REPO / "base" / "nvidia-device-plugin").docs
        ds = next(d for d in docs if d["kind"] == "DaemonSet")
        ds["metadata"]["namespace"] = "gpu-plugins"
        cp.apply([ds])
        wait_for("device plugin pod", lambda: cp.api.get("/api/v1/namespaces/gpu-plugins/pods")["items"], 30)
        _, _, checks = doctor(cp, "dev-8b")
        d = checks["device-plugin"]
        assert d["status"] == "fail" and "gpu-plugins/nvidia-device-plugin (0/1 ready)" in d["saw"], d
        assert "kubectl -n gpu-plugins get pods -o wide -l app.kubernetes.io/name=nvidia-device-plugin" in d["fix"]
    with fn.node_set(cp, [fn.K3S_1GPU]):
        make_pods_ready(cp, "gpu-plugins", "app.kubernetes.io/name=nvidia-device-plugin")
        wait_for("DaemonSet ready", lambda: cp.api.get("/apis/apps/v1/namespaces/gpu-plugins/daemonsets/nvidia-device-plugin")
                 .get("status", {}).get("numberReady") == 1, 60)
        _, _, checks = doctor(cp, "dev-8b")
        d = checks["device-plugin"]
        assert d["status"] == "ok" and "gpu-plugins/nvidia-device-plugin (1/1 ready)" in d["saw"], d
        assert checks["scheduling"]["status"] == "ok"
    delete(cp, "/apis/apps/v1/namespaces/gpu-plugins/daemonsets/nvidia-device-plugin")


def test_everything_in_place_exits_0(cp):
    """dev-8b on its k3s box with every prerequisite: all ok but the metrics API,
    which this control plane cannot serve for real (a local APIService is
    Available but not KEDA's: a warning); --strict turns it into exit 1."""
    install(cp, "keda", "prometheus-operator")
    runtime_class(cp)
    storage_class(cp, "local-path", "rancher.io/local-path")
    secret(cp, "dev-8b", {"token": SECRET_VALUE})
    if not cp.api.exists("/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices/prometheus-operated-test"):
        prometheus_service(cp, endpoints=True)
    delete(cp, f"/apis/apiregistration.k8s.io/v1/apiservices/{doc.METRICS_APISERVICE}")
    post(cp, "/apis/apiregistration.k8s.io/v1/apiservices", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": doc.METRICS_APISERVICE},
        "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100}})
    try:
        with fn.node_set(cp, [fn.K3S_1GPU, fn.EKS_M7I_2XLARGE]):
            keda_operator(cp)
            res, data, checks = doctor(cp, "dev-8b")
            assert res.exit_code == 0, res.output
            assert {i: c["status"] for i, c in checks.items() if c["status"] != "ok"} == {"keda-metrics-api": "warn"}, checks
            assert data["schema"] == doc.SCHEMA and data["summary"] == {"ok": len(checks) - 1, "warn": 1, "fail": 0}
            assert set(data["checks"][0]) == {"id", "title", "status", "saw", "fix", "details"}
            assert run("doctor", "dev-8b", "--kubeconfig", str(cp.kubeconfig), "--strict", repo=REPO).exit_code == 1
            assert SECRET_VALUE not in res.stdout
    finally:
        delete(cp, f"/apis/apiregistration.k8s.io/v1/apiservices/{doc.METRICS_APISERVICE}")


def test_metrics_api_ok_path():
    """The ok path of keda-metrics-api on KEDA's own APIService object (an aggregated
    API the test control plane cannot reach: no kube-proxy, no endpoints)."""
    class Stub:
        def find(self, path):
            return {"spec": {"service": {"namespace": "keda", "name": "keda-operator-metrics-apiserver"}},
                    "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}}

        def list(self, path, **q):
            return [{"metadata": {"namespace": "keda", "name": "keda-operator"}, "status": {"availableReplicas": 1}}]

    t = tgt.from_directory(REPO / "overlays" / "prod-70b")
    facts = doc.Facts(Stub(), t)  # type: ignore[arg-type]
    checks = {c.id: c for c in doc.check_keda(facts)}
    assert checks["keda-metrics-api"].status == "ok" and "keda/keda-operator-metrics-apiserver" in checks["keda-metrics-api"].saw
    assert checks["keda-operator"].status == "ok"


def test_server_version_fail_path():
    """The test control plane is v1.32; an older server is checked on its /version answer."""
    class Old:
        def version(self):
            return {"gitVersion": "v1.29.8", "major": "1", "minor": "29"}

        def list(self, *a, **k):
            return []

    t = tgt.from_directory(REPO / "overlays" / "prod-70b")
    (check,) = doc.check_server_version(doc.Facts(Old(), t))  # type: ignore[arg-type]
    assert check.status == "fail" and "preStop `sleep`" in check.saw and "needs 1.30" in check.saw
    assert "upgrade the control plane to 1.30" in check.fix and "exec" in check.fix


def test_karpenter_nodepool_counts_as_a_node(cp):
    install(cp, "karpenter")

    def pool(name: str, gpu: str, limit: int | None = None) -> dict:
        spec = {"template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [{"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": [gpu]},
                             {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]}},
            "disruption": {"consolidateAfter": "30s"}}
        if limit is not None:
            spec["limits"] = {"nvidia.com/gpu": str(limit)}
        return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": spec}

    with fn.node_set(cp, [fn.EKS_M7I_2XLARGE]):
        post(cp, "/apis/karpenter.sh/v1/nodepools", pool("l40s", "l40s"))
        try:
            _, _, checks = doctor(cp, "prod-70b")
            s = checks["scheduling"]
            assert s["status"] == "fail" and "NodePool l40s" in s["saw"], s["saw"]
            assert "the pool offers `karpenter.k8s.aws/instance-gpu-name In ['l40s']`" in s["saw"], s["saw"]
            assert "allow it in NodePool l40s" in s["fix"]
            post(cp, "/apis/karpenter.sh/v1/nodepools", pool("h100", "h100", limit=2))
            s = doctor(cp, "prod-70b")[2]["scheduling"]
            assert s["status"] == "fail" and "under its limit of 2" in s["saw"] and "raise spec.limits.nvidia.com/gpu of NodePool h100" in s["fix"], s
            cp.api.patch("/apis/karpenter.sh/v1/nodepools/h100", {"spec": {"limits": {"nvidia.com/gpu": "16"}}})
            s = doctor(cp, "prod-70b")[2]["scheduling"]
            assert s["status"] == "ok" and "Karpenter can launch one from NodePool(s) h100" in s["saw"], s
        finally:
            for name in ("l40s", "h100"):
                delete(cp, f"/apis/karpenter.sh/v1/nodepools/{name}")


# --------------------------------------------------------------------------- read-only


def _identity(cp, name: str, rules: list[dict], tmp_path: Path) -> Path:
    """A ServiceAccount bound to a ClusterRole with `rules`; a kubeconfig with its token."""
    ensure_namespace(cp, "doctor-identities")
    post(cp, "/api/v1/namespaces/doctor-identities/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    post(cp, "/apis/rbac.authorization.k8s.io/v1/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                                                 "metadata": {"name": name}, "rules": rules})
    post(cp, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "doctor-identities"}]})
    token = cp.api.post(f"/api/v1/namespaces/doctor-identities/serviceaccounts/{name}/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})["status"]["token"]
    kc = tmp_path / f"{name}.kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "test", "cluster": {"server": cp.server, "certificate-authority": str(cp.certs["ca.crt"])}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}]}))
    return kc


def test_a_read_only_identity_gets_the_same_answers(cp, tmp_path):
    """Doctor needs nothing but get and list: an identity that may do nothing else
    gets the same verdicts as the admin, and every request it sends is a GET. An
    identity that may not read Secrets gets a finding, not a traceback."""
    read_all = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]},
                {"nonResourceURLs": ["*"], "verbs": ["get"]}]
    no_secrets = [{"apiGroups": [""], "resources": ["nodes", "pods", "services", "namespaces", "persistentvolumes", "events"], "verbs": ["get", "list"]},
                  {"apiGroups": ["apps", "storage.k8s.io", "node.k8s.io", "discovery.k8s.io", "apiregistration.k8s.io", "karpenter.sh"],
                   "resources": ["*"], "verbs": ["get", "list"]}]
    reader = _identity(cp, "doctor-reader", read_all, tmp_path)
    limited = _identity(cp, "doctor-no-secrets", no_secrets, tmp_path)
    with fn.node_set(cp, [fn.K3S_1GPU, fn.EKS_G6_XLARGE]):
        admin = doctor(cp, "dev-8b")[1]
        res, ro, _ = doctor(cp, "dev-8b", kubeconfig=reader)
        assert [(c["id"], c["status"], c["saw"]) for c in ro["checks"]] == [(c["id"], c["status"], c["saw"]) for c in admin["checks"]]
        cluster = kube.connect(reader)
        doc.run(cluster, tgt.from_directory(REPO / "overlays" / "dev-8b"))
        assert cluster.requests and {m for m, _ in cluster.requests} == {"GET"}, set(cluster.requests)
        res, data, checks = doctor(cp, "dev-8b", kubeconfig=limited)
        assert "Traceback" not in res.output and res.exit_code in (0, 1), res.output
        tok = checks["hf-token"]
        assert tok["status"] == "warn" and "forbidden" in tok["saw"] and "cannot get resource \"secrets\"" in tok["saw"], tok
        assert "grant this identity" in tok["fix"]


# --------------------------------------------------------------------------- the audit's gaps: Prometheus selection,
# KEDA release, API-key Secret, Gateway/InferencePool/GitOps CRDs, NetworkPolicy namespaces

# Only the Prometheus Operator's `Prometheus` kind matters here, not its 1 MB schema (../shared/crds
# has no copy): a CRD that keeps every field, so absent and {} selectors stay what they are.
PROMETHEUS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "prometheuses.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "Prometheus", "listKind": "PrometheusList", "plural": "prometheuses", "singular": "prometheus"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
PROMS = "/apis/monitoring.coreos.com/v1/namespaces/monitoring/prometheuses"


def checks_of(cp, t: tgt.Target, fn, *args) -> dict[str, doc.Check]:
    """One check function, in process, on the test control plane."""
    return {c.id: c for c in fn(doc.Facts(kube.connect(cp.kubeconfig), t), *args)}


def target_with(overlay: str, *extra: dict, env: list[dict] | None = None) -> tgt.Target:
    """An overlay's rendered objects plus `extra` objects (and env on the vllm container)."""
    base = tgt.from_directory(REPO / "overlays" / overlay)
    docs = copy.deepcopy(base.docs) + [copy.deepcopy(d) for d in extra]
    if env:
        dep = next(d for d in docs if d["kind"] == "Deployment")
        vllm = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
        vllm.setdefault("env", []).extend(env)
    return tgt.from_docs(overlay, base.path, docs, {"gated": base.gated, "hf_repo": base.hf_repo})


def test_prometheus_selects_the_podmonitor_and_rule(cp, tmp_path):
    """Selector semantics of the Prometheus Operator (prometheus_types.go): a nil podMonitorSelector
    selects nothing, {} everything; a nil namespace selector only the Prometheus's own namespace.
    kube-prometheus-stack's default (matchLabels release=<release>) misses the overlay's PodMonitor."""
    install(cp, "keda", "prometheus-operator")
    (tmp_path / "crd").mkdir()
    (tmp_path / "crd" / "prometheus.yaml").write_text(yaml.safe_dump(PROMETHEUS_CRD))
    cp.install_crds(tmp_path / "crd")
    ensure_namespace(cp, "monitoring")
    try:
        _, _, checks = doctor(cp, "dev-8b")
        pm, rule = checks["prometheus-podmonitor"], checks["prometheus-rule"]
        assert pm["status"] == "warn" and "no Prometheus object" in pm["saw"] and "kube-prometheus-stack" in pm["fix"], pm
        # kube-prometheus-stack with its defaults (podMonitorSelectorNilUsesHelmValues: true).
        post(cp, PROMS, {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "kps"},
                         "spec": {"podMonitorSelector": {"matchLabels": {"release": "kps"}}, "podMonitorNamespaceSelector": {},
                                  "ruleSelector": {"matchLabels": {"release": "kps"}}, "ruleNamespaceSelector": {}}})
        res, data, checks = doctor(cp, "dev-8b")
        pm, rule = checks["prometheus-podmonitor"], checks["prometheus-rule"]
        assert res.exit_code == 1 and pm["status"] == "fail", pm
        assert "Prometheus monitoring/kps selects PodMonitors with release=kps; PodMonitor dev-8b/dev-8b-vllm lacks release=kps" in pm["saw"], pm
        assert "KEDA's query returns nothing" in pm["saw"]
        assert "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false" in pm["fix"] and "release=kps" in pm["fix"], pm
        assert rule["status"] == "warn" and "ruleSelectorNilUsesHelmValues=false" in rule["fix"] and "never evaluated" in rule["saw"], rule
        # {} selects every object; a nil namespace selector only monitoring (merge patch: null deletes a field,
        # so matchLabels: null leaves the selector {}).
        cp.api.patch(f"{PROMS}/kps", {"spec": {"podMonitorSelector": {"matchLabels": None}, "podMonitorNamespaceSelector": None,
                                               "ruleSelector": {"matchLabels": None}, "ruleNamespaceSelector": None}})
        assert cp.api.get(f"{PROMS}/kps")["spec"]["podMonitorSelector"] == {}
        pm = doctor(cp, "dev-8b")[2]["prometheus-podmonitor"]
        assert pm["status"] == "fail" and "only its own namespace monitoring" in pm["saw"] and "is in dev-8b" in pm["saw"], pm
        assert "spec.podMonitorNamespaceSelector: {}" in pm["fix"], pm
        # A namespace selector on a label the namespace lacks (the overlay's Namespace is judged by its rendered labels).
        cp.api.patch(f"{PROMS}/kps", {"spec": {"podMonitorNamespaceSelector": {"matchLabels": {"monitoring": "enabled"}}}})
        pm = doctor(cp, "dev-8b")[2]["prometheus-podmonitor"]
        assert pm["status"] == "fail" and "namespace dev-8b lacks monitoring=enabled" in pm["saw"], pm
        assert "kubectl label namespace dev-8b monitoring=enabled" in pm["fix"], pm
        # matchExpressions: the namespace's own name (set by the API server) and the PodMonitor's instance label.
        cp.api.patch(f"{PROMS}/kps", {"spec": {
            "podMonitorNamespaceSelector": {"matchLabels": None, "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["dev-8b", "prod-70b"]}]},
            "podMonitorSelector": {"matchExpressions": [{"key": "app.kubernetes.io/instance", "operator": "NotIn", "values": ["dev-8b"]}]},
            "ruleNamespaceSelector": {}}})
        checks = doctor(cp, "dev-8b")[2]
        pm = checks["prometheus-podmonitor"]
        assert pm["status"] == "fail" and "lacks app.kubernetes.io/instance NotIn (dev-8b)" in pm["saw"], pm
        assert checks["prometheus-rule"]["status"] == "ok", checks["prometheus-rule"]
        cp.api.patch(f"{PROMS}/kps", {"spec": {"podMonitorSelector": {"matchExpressions": [
            {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["dev-8b"]}]}}})
        pm = doctor(cp, "dev-8b")[2]["prometheus-podmonitor"]
        assert pm["status"] == "ok" and "selected by Prometheus monitoring/kps" in pm["saw"] and pm["fix"] is None, pm
        # A nil podMonitorSelector selects no PodMonitor at all.
        cp.api.patch(f"{PROMS}/kps", {"spec": {"podMonitorSelector": None}})
        pm = doctor(cp, "dev-8b")[2]["prometheus-podmonitor"]
        assert pm["status"] == "fail" and "no podMonitorSelector (nil selects no PodMonitor)" in pm["saw"], pm
        assert pm["fix"].startswith("set spec.podMonitorSelector: {} on Prometheus monitoring/kps"), pm
    finally:
        delete(cp, f"{PROMS}/kps")
        delete(cp, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/prometheuses.monitoring.coreos.com")
        wait_for("Prometheus kind gone", lambda: not any(
            r["kind"] == "Prometheus" for r in cp.api.get("/apis/monitoring.coreos.com/v1")["resources"]), 30)


def test_keda_release_supports_fallback_behavior(cp):
    """fallback.behavior (the overlays' currentReplicasIfHigher) needs KEDA 2.17: doctor reads the
    operator Deployment's image tag. Deployments with no replica: only their spec is read."""
    install(cp, "keda")

    def operator(ns: str, image: str) -> None:
        ensure_namespace(cp, ns)
        delete(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/keda-operator")
        post(cp, f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "keda-operator", "labels": {"app.kubernetes.io/name": "keda-operator"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "keda-operator"}},
                     "template": {"metadata": {"labels": {"app": "keda-operator"}},
                                  "spec": {"containers": [{"name": "keda-operator", "image": image}]}}}})

    t = tgt.from_directory(REPO / "overlays" / "dev-8b")
    assert t.fallback_behaviors() == ["currentReplicasIfHigher"]
    try:
        operator("keda-old", "ghcr.io/kedacore/keda:2.16.1")
        res, _, checks = doctor(cp, "dev-8b")
        v = checks["keda-version"]
        assert v["status"] == "fail" and "keda-old/keda-operator runs ghcr.io/kedacore/keda:2.16.1 (2.16.1)" in v["saw"], v
        assert "ScaledObject fallback.behavior (needs KEDA 2.17)" in v["saw"] and res.exit_code == 1
        assert v["fix"] == f"upgrade KEDA: helm upgrade keda kedacore/keda --version {doc.KEDA_PIN} --namespace keda-old (KEDA's chart also updates its CRDs)"
        operator("keda-old", "ghcr.io/kedacore/keda@sha256:" + "0" * 64)
        v = doctor(cp, "dev-8b")[2]["keda-version"]
        assert v["status"] == "warn" and "whose tag names no release" in v["saw"] and "2.17 or later" in v["fix"], v
        operator("keda-old", "ghcr.io/kedacore/keda:v2.17.0")
        v = doctor(cp, "dev-8b")[2]["keda-version"]
        assert v["status"] == "ok" and "needs KEDA 2.17 or later" in v["saw"] and v["fix"] is None, v
    finally:
        delete_namespace(cp, "keda-old")
    assert doc.keda_version({"spec": {"template": {"spec": {"containers": [
        {"name": "keda-operator", "image": "registry:5000/kedacore/keda:2.20.2@sha256:ab"}]}}}})[1] == (2, 20, 2)


def test_helm_fixes_pin_a_version():
    """Every `helm install`/`helm upgrade` doctor suggests names a chart version."""
    text = (REPO / "compose" / "cluster" / "doctor.py").read_text()
    import re as _re
    cmds = _re.findall(r"helm (?:install|upgrade) [^\"]*", text)
    assert cmds, "no helm command found"
    for cmd in cmds:
        assert "--version" in cmd, cmd


def test_api_key_secret(cp):
    """--api-key-secret NAME: VLLM_API_KEY from NAME's `api-key`; missing, wrong key, then present."""
    env = [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key", "optional": False}}}]
    t = target_with("dev-8b", env=env)
    assert checks_of(cp, tgt.from_directory(REPO / "overlays" / "dev-8b"), doc.check_api_key) == {}  # no key asked, no finding
    ensure_namespace(cp, "dev-8b")
    delete(cp, "/api/v1/namespaces/dev-8b/secrets/vllm-api-key")
    a = checks_of(cp, t, doc.check_api_key)["api-key"]
    assert a.status == "fail" and "Secret dev-8b/vllm-api-key does not exist" in a.saw and "CreateContainerConfigError" in a.saw, a
    assert a.fix == 'kubectl -n dev-8b create secret generic vllm-api-key --from-literal=api-key="$(openssl rand -hex 32)"'
    value = "sk-doNotPrintMe"
    post(cp, "/api/v1/namespaces/dev-8b/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vllm-api-key"},
                                                   "data": {"token": base64.b64encode(value.encode()).decode()}})
    try:
        a = checks_of(cp, t, doc.check_api_key)["api-key"]
        assert a.status == "fail" and "has keys ['token'], not 'api-key'" in a.saw and a.fix.startswith("kubectl -n dev-8b delete secret vllm-api-key && "), a
        cp.api.patch("/api/v1/namespaces/dev-8b/secrets/vllm-api-key",
                     {"data": {"api-key": base64.b64encode(value.encode()).decode(), "token": None}})
        a = checks_of(cp, t, doc.check_api_key)["api-key"]
        assert a.status == "ok" and a.details["keys"] == ["api-key"] and value not in a.saw and a.fix is None, a
    finally:
        delete(cp, "/api/v1/namespaces/dev-8b/secrets/vllm-api-key")


def test_gateway_inference_pool_and_gitops_crds(cp):
    """components/gateway (HTTPRoute) and components/inference-pool (InferencePool): absent, then
    served; an InferencePool of a version its group does not serve; --gitops argocd and flux."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "vllm"}}
    pool = {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "vllm"}}
    old_pool = {"apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool", "metadata": {"name": "vllm"}}
    t = target_with("dev-8b", route, pool)
    checks = checks_of(cp, t, doc.check_crds)
    r, p = checks["crd/httproute.gateway.networking.k8s.io"], checks["crd/inferencepool.inference.networking.k8s.io"]
    assert r.status == "fail" and "no CRD of group gateway.networking.k8s.io is installed" in r.saw, r
    assert r.fix == doc.CRD_FIXES["gateway.networking.k8s.io"]
    assert p.status == "fail" and 'no matches for kind "InferencePool" in version "inference.networking.k8s.io/v1"' in p.saw, p
    assert "Inference Extension" in p.fix
    install(cp, "gateway-api", "gateway-api-inference-extension")
    checks = checks_of(cp, t, doc.check_crds)
    for cid in ("crd/httproute.gateway.networking.k8s.io", "crd/inferencepool.inference.networking.k8s.io"):
        assert checks[cid].status == "ok" and checks[cid].fix is None, checks[cid]
    # The experimental group serves v1alpha1 (InferencePoolImport) only, not an InferencePool v1alpha2.
    old = checks_of(cp, target_with("dev-8b", old_pool), doc.check_crds)["crd/inferencepool.inference.networking.x-k8s.io"]
    assert old.status == "fail" and "inference.networking.x-k8s.io serves only v1alpha1" in old.saw, old
    assert old.fix.startswith("upgrade the controller that owns inference.networking.x-k8s.io to a release that serves v1alpha2"), old
    # --gitops: without the flag nothing is asked; with it, the CRDs the published objects use.
    _, _, checks = doctor(cp, "dev-8b")
    assert not [i for i in checks if "argoproj" in i or "fluxcd" in i]
    for gitops, ids, crds in (
        ("argocd", ["crd/application.argoproj.io", "crd/applicationset.argoproj.io"], "argocd"),
        ("flux", ["crd/kustomization.kustomize.toolkit.fluxcd.io", "crd/gitrepository.source.toolkit.fluxcd.io"], "flux"),
    ):
        _, _, checks = doctor(cp, "dev-8b", "--gitops", gitops)
        for cid in ids:
            assert checks[cid]["status"] == "fail" and "no CRD of group" in checks[cid]["saw"], checks[cid]
            assert checks[cid]["fix"].startswith("install Argo CD" if gitops == "argocd" else "install Flux"), checks[cid]
            assert f"--gitops {gitops}" in checks[cid]["title"]
        install(cp, crds)
        _, _, checks = doctor(cp, "dev-8b", "--gitops", gitops)
        for cid in ids:
            assert checks[cid]["status"] == "ok", checks[cid]


def test_network_policy_allowed_namespaces(cp):
    """components/network-policy admits port 8000 from named namespaces (prod-70b: gateway, monitoring):
    a name no namespace has is a warning; the overlay's own namespace counts as present."""
    delete_namespace(cp, "gateway")
    ensure_namespace(cp, "monitoring")
    t = tgt.from_directory(REPO / "overlays" / "prod-70b")
    n = checks_of(cp, t, doc.check_network_policy)["network-policy"]
    assert n.status == "warn" and "from namespace(s) gateway, monitoring; gateway do(es) not exist" in n.saw, n
    assert n.fix.startswith("create the namespace(s) (kubectl create namespace gateway), or regenerate the overlay with the --allow-from"), n
    assert n.details["missing"] == ["gateway"]
    ensure_namespace(cp, "gateway")
    try:
        n = checks_of(cp, t, doc.check_network_policy)["network-policy"]
        assert n.status == "ok" and n.fix is None and "all present" in n.saw, n
    finally:
        delete_namespace(cp, "gateway")
    assert checks_of(cp, tgt.from_directory(REPO / "overlays" / "dev-8b"), doc.check_network_policy) == {}  # no policy, no check
    # matchLabels on the name counts too; other selectors name no namespace.
    pol = {"spec": {"ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}},
                                          {"namespaceSelector": {"matchLabels": {"team": "x"}}}, {"podSelector": {}}]}]}}
    assert doc.allowed_namespaces(pol) == ["a"]
