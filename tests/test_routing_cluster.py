"""Every routing object compose generates, applied to a real API server (v1.32) with the
pinned CRDs installed: Gateway API v1.6.1, the Inference Extension v1.6.0, Istio 1.30.3.
The API server runs the CRDs' CEL rules, which offline jsonschema validation cannot; the
negative controls prove those rules are live here. Also: a canary's pod and its stable
overlay's pod bound to one node with the one cache claim."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

import fakenodes as fn
from compose.generate import overlay
from compose.publish import canary
from conftest_cluster import apply_rendered, delete_namespace, dry_run, wait_pods_scheduled
from routing_helpers import GATEWAY, LLAMA, LLAMA_K3S, QWEN, built, empty_repo, objects, one

pytestmark = pytest.mark.cluster

IMAGE = "vllm/vllm-openai:v0.33.0-cu130"


def _start(root: Path, name: str, weight: int, **kw) -> None:
    change = canary.plan_start(root, name, weight=weight, **kw)
    canary.apply_change(root, change)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """Every routing shape: a Service route with a canary, an inference pool with a canary
    (its own pool and EPP), Istio's VirtualService, and an inference pool on Istio."""
    root = empty_repo(tmp_path_factory.mktemp("cluster-routing"))
    for options in (
        dict(QWEN, gateway=GATEWAY, hostname="llm.example.com"),
        dict(LLAMA, gateway=GATEWAY, router="inference-pool"),
        dict(QWEN, name="mesh", gateway="istio-system/public", mesh="istio"),
        dict(LLAMA, name="poolmesh", gateway=GATEWAY, router="inference-pool", mesh="istio"),
    ):
        overlay.write(root, overlay.Options(**options))
    _start(root, "dev-qwen2-5-7b", 10, image=IMAGE)
    _start(root, "dev-llama-3-1-8b", 25, sets=["gpu_memory_utilization=0.85"])
    _start(root, "dev-mesh", 5, image=IMAGE)
    rendered = {d.name: built(d) for d in sorted((root / "overlays").iterdir())}
    return root, rendered


def _gateway_objects() -> list[dict]:
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "test"},
         "spec": {"controllerName": "example.com/gateway-controller"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gateway-system"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": "inference", "namespace": "gateway-system"},
         "spec": {"gatewayClassName": "test", "listeners": [
             {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
    ]


def _written(want, got) -> bool:
    """Every field of `want` is in `got` with the same value (the server may add defaults)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _written(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(_written, want, got))
    return want == got


ROUTING_KINDS = {"HTTPRoute", "InferencePool", "VirtualService", "DestinationRule", "ServiceAccount", "Role",
                 "RoleBinding", "ConfigMap", "Service", "Deployment"}


def test_every_generated_object_is_accepted_by_the_api_server(control_plane, cluster_crds, fleet):
    cp = control_plane
    root, rendered = fleet
    assert {"httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.k8s.io",
            "virtualservices.networking.istio.io", "destinationrules.networking.istio.io"} <= set(cluster_crds)
    namespaces = set()
    try:
        apply_rendered(cp, _gateway_objects())
        for name, docs in rendered.items():
            applied = apply_rendered(cp, docs)  # raises on any rejection or unserved kind
            namespaces |= set(applied.namespaces)
        kinds = set()
        for name, docs in rendered.items():
            for doc in docs:
                kinds.add(doc["kind"])
                meta = doc["metadata"]
                args = [doc["kind"], meta["name"]] + (["-n", meta["namespace"]] if meta.get("namespace") else [])
                live = cp.get_json(*args)
                assert live["metadata"]["name"] == meta["name"]
                if doc["kind"] in ("HTTPRoute", "VirtualService", "InferencePool", "DestinationRule"):
                    # Stored as written (plus the CRD's defaults): the weights in the cluster are
                    # the weights in Git.
                    assert _written(doc["spec"], live["spec"]), (name, doc["kind"], doc["spec"], live["spec"])
        assert {"HTTPRoute", "InferencePool", "VirtualService", "DestinationRule", "Role", "RoleBinding",
                "ServiceAccount"} <= kinds
        # The split the commands asked for, read back from the API server.
        route = cp.get_json("httproute", "dev-qwen2-5-7b-vllm", "-n", "dev-qwen2-5-7b")
        assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
            ("dev-qwen2-5-7b-vllm", 90), ("dev-qwen2-5-7b-canary-vllm", 10)]
        pool_route = cp.get_json("httproute", "dev-llama-3-1-8b-vllm", "-n", "dev-llama-3-1-8b")
        assert [(b["kind"], b["name"], b["weight"]) for b in pool_route["spec"]["rules"][0]["backendRefs"]] == [
            ("InferencePool", "dev-llama-3-1-8b-vllm", 75), ("InferencePool", "dev-llama-3-1-8b-canary-vllm", 25)]
        vs = cp.get_json("virtualservice", "dev-mesh-vllm", "-n", "dev-mesh")
        assert [(d["destination"]["host"], d["weight"]) for d in vs["spec"]["http"][0]["route"]] == [
            ("dev-mesh-vllm", 95), ("dev-mesh-canary-vllm", 5)]
        # Both pools exist, each with its own endpoint picker Service.
        for pool in ("dev-llama-3-1-8b-vllm", "dev-llama-3-1-8b-canary-vllm"):
            p = cp.get_json("inferencepool", pool, "-n", "dev-llama-3-1-8b")
            assert cp.get_json("service", p["spec"]["endpointPickerRef"]["name"], "-n", "dev-llama-3-1-8b")
    finally:
        for ns in sorted(namespaces | {"gateway-system"}):
            delete_namespace(cp, ns)


def _mutate(doc: dict, fn_) -> dict:
    out = copy.deepcopy(doc)
    out["metadata"] = {k: v for k, v in out["metadata"].items() if k in ("name", "labels")}
    fn_(out)
    return out


def test_the_crds_cel_rules_reject_what_we_never_generate(control_plane, cluster_crds, cluster_ns, fleet):
    """Negative controls: the same objects, broken one way each, are rejected by the API
    server with the CRD's own message; the unbroken ones pass the same dry run."""
    cp = control_plane
    _, rendered = fleet
    route = one(rendered["dev-qwen2-5-7b"], "HTTPRoute")
    pool = one(rendered["dev-llama-3-1-8b"], "InferencePool")
    vs = one(rendered["dev-mesh"], "VirtualService")
    dr = one(rendered["dev-mesh"], "DestinationRule")
    for good in (route, pool, vs, dr):
        verdict = dry_run(cp, _mutate(good, lambda d: None), cluster_ns)
        assert verdict.allowed, (good["kind"], verdict.error)

    def long_backend(d):
        d["spec"]["rules"][0]["timeouts"]["backendRequest"] = "99999h"  # longer than any request timeout compose derives

    def no_port(d):
        del d["spec"]["rules"][0]["backendRefs"][0]["port"]

    def epp_without_port(d):
        del d["spec"]["endpointPickerRef"]["port"]

    def same_port_twice(d):
        d["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8000}]

    def zero_timeout(d):
        d["spec"]["http"][0]["timeout"] = "0s"

    def no_host(d):
        del d["spec"]["host"]

    cases = [
        (route, long_backend, "backendRequest timeout cannot be longer than request timeout"),
        (route, no_port, "Must have port for Service reference"),
        (pool, epp_without_port, "port is required when kind is 'Service' or unspecified"),
        (pool, same_port_twice, "port number must be unique"),
        (vs, zero_timeout, "must be a valid duration greater than 1ms"),
        (dr, no_host, "spec.host: Required value"),
    ]
    for doc, breaks, message in cases:
        verdict = dry_run(cp, _mutate(doc, breaks), cluster_ns)
        assert not verdict.allowed and verdict.status == 422, (breaks.__name__, verdict)
        assert message in verdict.error, (breaks.__name__, verdict.error)


def test_the_canary_and_its_stable_overlay_share_one_cache_claim(control_plane, cluster_crds, tmp_path):
    """On a two-GPU k3s box: both pods scheduled, both on the stable overlay's claim (Bound),
    the canary rendering no claim of its own."""
    cp = control_plane
    root = empty_repo(tmp_path)
    overlay.write(root, overlay.Options(**LLAMA_K3S, name="shared", gateway=GATEWAY))
    _start(root, "dev-shared", 10, image=IMAGE)
    stable, canary_docs = built(root / "overlays" / "dev-shared"), built(root / "overlays" / "dev-shared-canary")
    assert not objects(canary_docs, "PersistentVolumeClaim")
    ns = one(stable, "Namespace")["metadata"]["name"]
    with fn.node_set(cp, [fn.K3S_2GPU]) as nodes:
        try:
            apply_rendered(cp, stable)
            apply_rendered(cp, canary_docs)
            placed = wait_pods_scheduled(cp, ns, {"app.kubernetes.io/name": "vllm"}, 2)
            assert set(placed.values()) == set(nodes.names)
            pods = cp.api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector="app.kubernetes.io/name=vllm")["items"]
            instances = {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in pods}
            assert instances == {"dev-shared", "dev-shared-canary"}
            claims = {v["persistentVolumeClaim"]["claimName"] for p in pods for v in p["spec"]["volumes"]
                      if v["name"] == "model-cache"}
            assert claims == {"dev-shared-vllm-models"}
            pvc = cp.api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/dev-shared-vllm-models")
            assert pvc["status"]["phase"] == "Bound"
        finally:
            delete_namespace(cp, ns)
    shutil.rmtree(root, ignore_errors=True)
