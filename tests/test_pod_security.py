"""Pod Security "restricted", proven by the real API server (tests/controlplane.py).

PodSecurity admission *warns* on a Deployment whose template violates the namespace's
level and *rejects* the Pods its ReplicaSet then creates. So each test applies the
rendered overlay exactly as a cluster receives it (apply_rendered: the overlay's own
Namespace, labelled as the overlay labels it, first) and then asserts that the
ReplicaSet's pods exist: they were admitted. Each Deployment's pod template is also
dry-run as a Pod, which must be allowed without a single warning (the overlay's `warn`
mode is `restricted` at `latest`, so a check newer than the pinned `enforce-version`
would show up here first).

- every committed overlay (overlays/*), and base/vllm;
- every generated combination cloud x GPU x spot (a temporary repository, a small
  model, all in one apply);
- every generated variant that adds or changes a pod: the endpoint picker
  (`--router inference-pool`, components/inference-pool), the Istio mesh with and
  without the pool (`--mesh istio`, components/istio, inference-pool-istio),
  `--api-key-secret`, `--allow-from`, `--image-digest`, and a canary overlay
  (`compose canary start`) next to its stable overlay in the stable's namespace;
- the device plugin: admitted in its own namespace (privileged), refused under
  baseline and restricted: exactly the level it needs;
- negative control: the fixtures that run as root, mount a hostPath, run AppArmor
  Unconfined (field or annotation), set an unsafe sysctl or a custom SELinux type are
  refused, with the reason compose's rule gives too.
"""

from __future__ import annotations

import itertools
import re

import pytest

from compose.core import kustomize
from compose.generate import overlay
from compose.plan import catalog, clouds
from compose.verify import checks, policy
from composer_helpers import scratch_repo
from conftest_cluster import REPO, apply_rendered, delete_namespace, dry_run, dry_run_pod, ensure_namespace, pods, wait_for

pytestmark = pytest.mark.cluster

PSA = "pod-security.kubernetes.io/"
SMALL_MODEL = "qwen3-0.6b"


def _workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]


def _namespaces(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Namespace"}


def _selector(doc) -> str:
    return ",".join(f"{k}={v}" for k, v in doc["spec"]["selector"]["matchLabels"].items())


def _failed_creates(cp, ns: str) -> list[str]:
    events = cp.api.get(f"/api/v1/namespaces/{ns}/events", fieldSelector="reason=FailedCreate")["items"]
    return [e.get("message", "") for e in events]


def relocate(docs, namespace: str) -> list[dict]:
    """The rendered objects moved into `namespace` (the Namespace object renamed, its
    labels and annotations kept), so a test never waits for an earlier test's namespace
    of the same name to finish terminating."""
    out = []
    for d in docs:
        d = {**d, "metadata": dict(d["metadata"])}
        if d["kind"] == "Namespace":
            d["metadata"]["name"] = namespace
        elif "namespace" in d["metadata"]:
            d["metadata"]["namespace"] = namespace
        out.append(d)
    return out


def api_apply(cp, docs) -> None:
    """Server-side apply, one PATCH per object over the API client's kept-alive
    connection: the same objects `kubectl apply --server-side` would send, without its
    per-object round trips through a subprocess (~10x faster for hundreds of objects).
    Namespaces first (with their labels, waiting for the default ServiceAccount), then
    cluster-scoped classes, then the rest; a RuntimeClass a pod names is created as k3s
    registers it (apply_rendered does the same)."""
    resources = cp.resources()

    def put(doc):
        cp.api.patch(cp.path_of(doc, resources=resources), doc, patch_type="apply",
                     fieldManager="vllm-compose-tests", force="true")

    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    for doc in namespaces:
        put(doc)
    for doc in namespaces:  # the ServiceAccount controller works on all of them meanwhile
        ensure_namespace(cp, doc["metadata"]["name"])
    named = {s.get("runtimeClassName") for d in _workloads(docs) for s in [d["spec"]["template"]["spec"]]} - {None}
    for rc in sorted(named):
        if not cp.api.exists(f"/apis/node.k8s.io/v1/runtimeclasses/{rc}"):
            put({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": rc}, "handler": rc})
    first = ("PriorityClass", "RuntimeClass", "StorageClass")
    for doc in sorted((d for d in docs if d["kind"] != "Namespace"), key=lambda d: d["kind"] not in first):
        put(doc)


def assert_pods_admitted(cp, docs, timeout: float = 60) -> None:
    """Every Deployment of `docs` (already applied) gets its pod: admitted under its namespace's level."""
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert deployments

    def all_created():
        return all(pods(cp, d["metadata"]["namespace"], _selector(d)) for d in deployments)

    try:
        wait_for(f"pods of {len(deployments)} Deployment(s)", all_created, timeout=timeout)
    except TimeoutError:
        failed = {d["metadata"]["namespace"]: _failed_creates(cp, d["metadata"]["namespace"]) for d in deployments
                  if not pods(cp, d["metadata"]["namespace"], _selector(d))}
        raise AssertionError(f"pods not created (FailedCreate events): {failed}") from None
    for d in deployments:
        ns = d["metadata"]["namespace"]
        live = cp.api.get(f"/api/v1/namespaces/{ns}")["metadata"]["labels"]
        assert live[PSA + "enforce"] == "restricted" and live[PSA + "enforce-version"] == "v1.30", live
        assert _failed_creates(cp, ns) == []


def assert_templates_clean(cp, docs) -> None:
    """Each pod template, dry-run as a Pod in its namespace: allowed, no warning."""
    for d in _workloads(docs):
        got = dry_run_pod(cp, d["metadata"]["namespace"], d["spec"]["template"], name="psa-probe")
        assert got.allowed and got.warnings == [], (d["metadata"]["namespace"], got.error, got.warnings)


# --------------------------------------------------------------------------- committed overlays


@pytest.mark.parametrize("directory", ["base/vllm"] + [f"overlays/{p.name}" for p in overlay.list_overlay_dirs(REPO)])
def test_committed_build_is_admitted_under_restricted(control_plane, cluster_crds, directory):
    cp = control_plane
    docs = kustomize.build(REPO / directory).docs
    (ns_doc,) = _namespaces(docs).values()
    assert {k: v for k, v in ns_doc["metadata"]["labels"].items() if k.startswith(PSA)} == {
        PSA + "enforce": "restricted", PSA + "enforce-version": "v1.30",
        PSA + "audit": "restricted", PSA + "audit-version": "latest",
        PSA + "warn": "restricted", PSA + "warn-version": "latest"}
    ns = f"t-psa-{directory.replace('/', '-')}"
    docs = relocate(docs, ns)
    try:
        apply_rendered(cp, docs)
        assert_pods_admitted(cp, docs)
        assert_templates_clean(cp, docs)
        # The Deployment itself draws no PodSecurity warning either.
        dep = next(d for d in docs if d["kind"] == "Deployment")
        got = dry_run(cp, {**dep, "metadata": {**dep["metadata"], "name": "psa-dry-run"}}, ns)
        assert got.allowed and not [w for w in got.warnings if "PodSecurity" in w], got.warnings
    finally:
        delete_namespace(cp, ns)


# --------------------------------------------------------------------------- every generated combination


def combinations() -> list[overlay.Options]:
    """cloud x GPU (every GPU the cloud offers in the catalog) x spot (where the cloud has
    spot), for a model small enough to fit every GPU; the environments rotate so the
    network-policy component (staging, prod) and two replicas (prod) are covered too."""
    out = []
    envs = itertools.cycle(("dev", "staging", "prod"))
    for cloud in clouds.CLOUDS.values():
        for gpu in catalog.gpus_for_cloud(cloud.name):
            for spot in (False, True) if cloud.spot_notice_seconds is not None else (False,):
                name = f"{cloud.name}-{gpu.name}-{'spot' if spot else 'od'}"
                # No monitoring component: it adds no pod, and 50 dashboard ConfigMaps
                # would only slow the apply (the committed overlays carry it).
                out.append(overlay.Options(model=SMALL_MODEL, env=next(envs), cloud=cloud.name, gpu=gpu.name,
                                           spot=spot, name=name, max_model_len=8192, monitoring=False))
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every combination written into a scratch repository and rendered (in parallel)."""
    repo = scratch_repo(tmp_path_factory.mktemp("psa"))
    dirs = []
    for opts in combinations():
        gen = overlay.generate(opts, repo)
        d = repo / "overlays" / gen.name
        d.mkdir()
        for rel, text in gen.files.items():
            (d / rel).write_text(text)
        dirs.append(d)
    built = checks.build_all(dirs)
    failed = {str(d): str(r) for d, r in built.items() if isinstance(r, Exception)}
    assert not failed, failed
    return {d.name: r.docs for d, r in built.items()}


def test_every_generated_combination_is_admitted_under_restricted(control_plane, cluster_crds, generated):
    cp = control_plane
    assert len(generated) >= 40  # 8 + 6 + 6 GPUs x 2 on eks/gke/aks, 10 on k3s (catalog today)
    assert {o.cloud for o in combinations()} == set(clouds.CLOUDS) and any(o.spot for o in combinations())
    docs = [d for name in sorted(generated) for d in generated[name]]
    for name, ds in generated.items():
        (ns,) = _namespaces(ds)
        assert ns == name and _namespaces(ds)[ns]["metadata"]["labels"][PSA + "enforce"] == "restricted"
    try:
        # Every object of every overlay; the claims stay unbound (irrelevant to admission).
        api_apply(cp, docs)
        assert_pods_admitted(cp, docs, timeout=120)
        assert_templates_clean(cp, docs)
        # The network policies of the staging/prod overlays were accepted as well.
        nps = [d for d in docs if d["kind"] == "NetworkPolicy"]
        assert nps and all(cp.api.exists(f"/apis/networking.k8s.io/v1/namespaces/{d['metadata']['namespace']}"
                                          f"/networkpolicies/{d['metadata']['name']}") for d in nps)
    finally:
        for ns in generated:
            delete_namespace(cp, ns)


# --------------------------------------------------------------------------- every generated variant with a pod

GATEWAY = "gateway-system/inference"
VARIANT_MODEL = dict(model=SMALL_MODEL, cloud="gke", gpu="l4", max_model_len=8192, monitoring=False)
CANARY_IMAGE = "vllm/vllm-openai:v0.33.0-cu130"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def variants() -> dict[str, dict]:
    """Options of every generator switch that adds a pod (the endpoint picker) or changes
    the vLLM pod (API key, network policy peers, digest, mesh); the canary is added by
    the fixture with `compose canary start`."""
    return {
        "prod-psa-pool": dict(VARIANT_MODEL, env="prod", gateway=GATEWAY, router="inference-pool"),
        "staging-psa-mesh": dict(VARIANT_MODEL, env="staging", gateway="istio-system/public", mesh="istio"),
        "dev-psa-pool-mesh": dict(VARIANT_MODEL, env="dev", gateway="istio-system/public", router="inference-pool",
                                  mesh="istio"),
        "staging-psa-api-key": dict(VARIANT_MODEL, env="staging", api_key_secret="vllm-api-key",
                                    allow_from=("team-a", "gateway-system"), image_digest=DIGEST),
        # The canary's stable overlay: routed and monitored, as `canary start` requires.
        "dev-psa-stable": dict(VARIANT_MODEL, env="dev", gateway=GATEWAY, monitoring=True),
    }


@pytest.fixture(scope="module")
def generated_variants(tmp_path_factory):
    """The variants written with the composer library, plus a canary started on psa-stable."""
    from compose.publish import canary

    repo = scratch_repo(tmp_path_factory.mktemp("psa-variants"))
    for name, opts in variants().items():
        assert overlay.write(repo, overlay.Options(name=name.split("-", 1)[1], **opts)).directory.name == name
    canary.apply_change(repo, canary.plan_start(repo, "dev-psa-stable", weight=10, image=CANARY_IMAGE))
    dirs = sorted(p for p in (repo / "overlays").iterdir() if p.is_dir())
    built = checks.build_all(dirs)
    failed = {str(d): str(r) for d, r in built.items() if isinstance(r, Exception)}
    assert not failed, failed
    return {d.name: r.docs for d, r in built.items()}


def test_every_generated_variant_is_admitted_under_restricted(control_plane, cluster_crds, generated_variants):
    cp = control_plane
    got = generated_variants
    assert set(got) == set(variants()) | {"dev-psa-stable-canary"}, sorted(got)
    # What each variant is here for.
    deps = {name: {d["metadata"]["name"] for d in ds if d["kind"] == "Deployment"} for name, ds in got.items()}
    assert "prod-psa-pool-vllm-epp" in deps["prod-psa-pool"] and "dev-psa-pool-mesh-vllm-epp" in deps["dev-psa-pool-mesh"], deps
    assert any(d["kind"] == "VirtualService" for d in got["staging-psa-mesh"])
    envs = [e for d in got["staging-psa-api-key"] if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env") or []]
    assert any(e["name"] == "VLLM_API_KEY" and e["valueFrom"]["secretKeyRef"]["name"] == "vllm-api-key" for e in envs)
    canary_deps = [d for d in got["dev-psa-stable-canary"] if d["kind"] == "Deployment"]
    assert canary_deps and all(d["metadata"]["namespace"] == "dev-psa-stable" for d in canary_deps)
    assert not _namespaces(got["dev-psa-stable-canary"])  # it lives in its stable overlay's namespace
    # Every pod-bearing object of every variant is a Deployment: the endpoint picker and
    # the canary included (a Job, StatefulSet or bare Pod here would need its own check).
    pod_kinds = {d["kind"] for ds in got.values() for d in ds if isinstance(policy._pod_spec(d), dict)}
    assert pod_kinds == {"Deployment"}, pod_kinds
    for name, ds in got.items():
        for ns_name, ns in _namespaces(ds).items():
            assert ns_name == name and ns["metadata"]["labels"][PSA + "enforce"] == "restricted"
    docs = [d for name in sorted(got) for d in got[name]]
    try:
        api_apply(cp, docs)
        assert_pods_admitted(cp, docs, timeout=120)
        assert_templates_clean(cp, docs)
    finally:
        for name, ds in got.items():
            for ns in _namespaces(ds):
                delete_namespace(cp, ns)


# --------------------------------------------------------------------------- the device plugin: exactly privileged


def test_device_plugin_needs_exactly_privileged(control_plane):
    """Applied as the add-on renders it (its Namespace labelled privileged, with the
    reason), the DaemonSet's pod is admitted; under baseline or restricted the same pod
    is refused for its hostPath. Dry runs: no fake GPU node is needed to ask admission."""
    cp = control_plane
    docs = kustomize.build(REPO / "base/nvidia-device-plugin").docs
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    (ns,) = _namespaces(docs)
    assert ns == "nvidia-device-plugin" == ds["metadata"]["namespace"]
    docs = relocate(docs, "t-psa-nvidia-device-plugin")
    levels = {"privileged": "t-psa-nvidia-device-plugin", "baseline": "t-psa-plugin-baseline",
              "restricted": "t-psa-plugin-restricted"}
    try:
        apply_rendered(cp, docs)
        live = cp.api.get(f"/api/v1/namespaces/{levels['privileged']}")["metadata"]["labels"]
        assert live[PSA + "enforce"] == "privileged"
        for level, namespace in levels.items():
            ensure_namespace(cp, namespace, {PSA + "enforce": level})
            got = dry_run_pod(cp, namespace, ds["spec"]["template"], name="plugin")
            if level == "privileged":
                assert got.allowed and not got.warnings, (got.error, got.warnings)
            else:
                assert not got.allowed and got.status == 403, got
                assert f'violates PodSecurity "{level}:latest"' in got.error and "hostPath" in got.error, got.error
    finally:
        for namespace in levels.values():
            delete_namespace(cp, namespace)


# --------------------------------------------------------------------------- negative control


@pytest.mark.parametrize("fixture,reason", [
    ("run-as-root", "runAsUser=0"),
    ("host-path-volume", 'uses restricted volume type "hostPath"'),
    # The baseline checks compose's apparmor, sysctls and selinux rules mirror: the API
    # server refuses the same fixtures (proc-mount-unmasked and windows-host-process are
    # refused earlier, by Pod validation: Unmasked needs hostUsers: false, HostProcess
    # hostNetwork and a Windows pod).
    ("apparmor-unconfined", "forbidden AppArmor profile"),
    ("apparmor-annotation-unconfined", "forbidden AppArmor profile"),
    ("sysctl-unsafe", "forbidden sysctls (net.core.somaxconn)"),
    ("selinux-custom-type", "seLinuxOptions"),
])
def test_a_broken_build_is_refused(control_plane, cluster_crds, fixture, reason):
    """The same admission that lets every overlay through refuses a fixture that breaks
    restricted: the Deployment is stored (with a warning), its pods never are."""
    cp = control_plane
    ns = f"t-psa-broken-{fixture}"
    docs = relocate(kustomize.build(REPO / "tests/fixtures/broken" / fixture).docs, ns)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    try:
        apply_rendered(cp, docs)
        events = wait_for("FailedCreate", lambda: _failed_creates(cp, ns), timeout=60)
        assert any(re.search(r'violates PodSecurity "restricted:v1\.30"', e) and reason in e for e in events), events
        assert pods(cp, ns, _selector(dep)) == []
        got = dry_run_pod(cp, ns, dep["spec"]["template"])
        assert not got.allowed and got.status == 403 and reason in got.error, got
    finally:
        delete_namespace(cp, ns)
