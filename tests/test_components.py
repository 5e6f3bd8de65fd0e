"""Component behaviour: each component changes only what it claims, removing it
restores the baseline exactly, it follows the house conventions, and the cloud
components encode the same facts as compose/plan/clouds.py."""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml

from compose.core import kustomize

from compose.plan import clouds

from compose.verify import policy, validate
from compose.core.errors import BuildFailed
from helpers_kube import REPO, Scratch, build, diff_paths, index, require_kubectl

OURS = ("spot", "on-demand", "arm64", "k3s", "eks", "gke", "aks")
CLOUDS = ("k3s", "eks", "gke", "aks")
AFFINITY_TERMS = ("spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                  ".nodeSelectorTerms[0].matchExpressions")
AFFINITY_TERM = AFFINITY_TERMS + "[0]"
CAPACITY_ANN = "metadata.annotations.vllm-compose.io/capacity"
CLOUD_ANN = "metadata.annotations.vllm-compose.io/cloud"

# What each component claims to change, keyed by (kind, base name). Tolerations are
# compared as a set keyed "key=value:effect" (order-free), so the claim is the key.
CLAIMS: dict[str, dict[tuple[str, str], str | tuple[str, ...]]] = {
    "spot": {
        ("PriorityClass", "vllm-spot"): "added",
        ("Deployment", "vllm"): (
            "metadata.annotations.vllm-compose.io/capacity",
            "spec.template.spec.priorityClassName",
            "spec.template.spec.tolerations.cloud.google.com/gke-spot=true:NoSchedule",
            "spec.template.spec.tolerations.kubernetes.azure.com/scalesetpriority=spot:NoSchedule",
        ),
    },
    "on-demand": {
        ("Deployment", "vllm"): (CAPACITY_ANN, *(f"{AFFINITY_TERMS}[{i}]" for i in range(1, 6))),
    },
    "arm64": {
        ("Deployment", "vllm"): ("spec.template.spec.tolerations.kubernetes.io/arch=arm64:NoSchedule",),
    },
    "k3s": {
        ("Deployment", "vllm"): (CLOUD_ANN, AFFINITY_TERM, "spec.template.spec.runtimeClassName"),
        ("PersistentVolumeClaim", "vllm-models"): ("spec.storageClassName", "spec.accessModes"),
    },
    "eks": {
        ("Deployment", "vllm"): (CLOUD_ANN, AFFINITY_TERM),
        ("PersistentVolumeClaim", "vllm-models"): ("spec.storageClassName",),
    },
    "gke": {
        ("Deployment", "vllm"): (CLOUD_ANN, AFFINITY_TERM),
        ("PersistentVolumeClaim", "vllm-models"): ("spec.storageClassName",),
    },
    "aks": {
        ("Deployment", "vllm"): (CLOUD_ANN, AFFINITY_TERM, "spec.template.spec.tolerations.sku=gpu:NoSchedule"),
        ("PersistentVolumeClaim", "vllm-models"): ("spec.storageClassName",),
    },
}

# Fields the overlay's generated patches set; patches run after components, so a
# component must never own them (the header of every component says so).
OVERLAY_OWNED = {"args", "command", "resources", "startupProbe", "readinessProbe", "livenessProbe",
                 "terminationGracePeriodSeconds", "lifecycle", "nodeSelector", "progressDeadlineSeconds"}
PREFIX = "t-"
OVERLAY_LIKE = {"namespace": "t-ns", "namePrefix": PREFIX,
                "labels": [{"pairs": {"app.kubernetes.io/instance": "t"},
                            "includeSelectors": True, "includeTemplates": True}]}


@pytest.fixture(scope="module")
def scratch():
    require_kubectl()
    s = Scratch()
    yield s
    s.cleanup()


_MEMO: dict[str, kustomize.Rendered] = {}


def render(scratch: Scratch, components=(), extra=None, resources=("base/vllm",)) -> kustomize.Rendered:
    key = json.dumps([list(resources), list(components), extra], sort_keys=True)
    if key not in _MEMO:
        d = scratch.kustomization(resources=resources, components=[f"components/{c}" for c in components], extra=extra)
        _MEMO[key] = build(str(d))
    return _MEMO[key]


def normalized(docs: list[dict], prefix: str = "") -> dict[tuple[str, str], dict]:
    """Objects by (kind, base name), tolerations turned into an order-free mapping."""
    out = {}
    for (kind, name), doc in index(copy.deepcopy(docs)).items():
        spec = (doc.get("spec") or {}).get("template", {}).get("spec", {})
        if "tolerations" in spec:
            spec["tolerations"] = {f"{t.get('key')}={t.get('value', '')}:{t.get('effect', '')}".replace("=:", ":"): t
                                   for t in spec["tolerations"]}
        out[(kind, name[len(prefix):] if name.startswith(prefix) else name)] = doc
    return out


def _covered(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in prefixes)


def assert_only_claimed(component: str, before: list[dict], after: list[dict], prefix: str = "") -> None:
    b, a = normalized(before, prefix), normalized(after, prefix)
    claims = CLAIMS[component]
    for key in b.keys() | a.keys():
        claim = claims.get(key)
        if key not in b:
            assert claim == "added", f"{component} added {key}, which it does not claim"
            continue
        assert key in a, f"{component} removed {key}"
        changed = diff_paths(b[key], a[key])
        if claim is None or claim == "added":
            assert not changed, f"{component} changed {key}, which it does not claim: {sorted(changed)}"
            continue
        stray = sorted(p for p in changed if not _covered(p, claim))
        assert not stray, f"{component} changed unclaimed fields of {key}: {stray}"
        idle = [p for p in claim if not any(_covered(c, (p,)) for c in changed)]
        assert not idle, f"{component} claims {idle} on {key} but does not change them"


# ----------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("component", OURS)
def test_component_changes_only_what_it_claims(scratch, component):
    assert_only_claimed(component, render(scratch).docs, render(scratch, [component]).docs)


@pytest.mark.parametrize("component", OURS)
def test_component_changes_only_what_it_claims_inside_an_overlay(scratch, component):
    # As the composer uses it: namespace, namePrefix, identity label, and the
    # other component (a cloud with spot, spot with a cloud).
    others = ["eks"] if component in ("spot", "on-demand") else ["spot"]
    before = render(scratch, others, OVERLAY_LIKE).docs
    after = render(scratch, [*others[:1], component] if component != "spot" else [*others, component], OVERLAY_LIKE).docs
    assert_only_claimed(component, before, after, PREFIX)


@pytest.mark.parametrize("component", OURS)
def test_removing_the_component_restores_the_baseline(scratch, component):
    with_it = scratch.kustomization(components=[f"components/{component}"], extra=OVERLAY_LIKE)
    with_text = build(str(with_it)).text
    # The same overlay with the component line deleted, built from scratch.
    k = yaml.safe_load((with_it / "kustomization.yaml").read_text())
    del k["components"]
    without = scratch.kustomization(extra={kk: v for kk, v in k.items() if kk not in ("apiVersion", "kind", "resources")})
    assert build(str(without)).text == render(scratch, (), OVERLAY_LIKE).text
    assert with_text != build(str(without)).text


@pytest.mark.parametrize("cloud", CLOUDS)
def test_cloud_and_spot_commute(scratch, cloud):
    a = render(scratch, [cloud, "spot"], OVERLAY_LIKE).docs
    b = render(scratch, ["spot", cloud], OVERLAY_LIKE).docs
    assert normalized(a, PREFIX) == normalized(b, PREFIX)


@pytest.mark.parametrize("component", OURS)
def test_component_builds_validate_for_both_kube_versions(scratch, component):
    docs = render(scratch, [component], OVERLAY_LIKE).docs
    assert validate.validate_core(docs, component, ("1.30", "1.33")) == []
    assert validate.validate_custom(docs, component) == []


def test_spot_priority_class_follows_the_name_prefix(scratch):
    objs = index(render(scratch, ["eks", "spot"], OVERLAY_LIKE).docs)
    pc = objs[("PriorityClass", f"{PREFIX}vllm-spot")]
    assert "namespace" not in pc["metadata"]  # cluster-scoped: the namespace transformer leaves it
    pod = objs[("Deployment", f"{PREFIX}vllm")]["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == pc["metadata"]["name"]


def test_base_spread_selects_only_the_overlays_own_replicas(scratch):
    """The spread lives in the base (every overlay, spot or not); the overlay's
    identity label lands in its selector, so models never count each other."""
    pod = index(render(scratch, ["eks"], OVERLAY_LIKE).docs)[("Deployment", f"{PREFIX}vllm")]["spec"]["template"]["spec"]
    for tsc in pod["topologySpreadConstraints"]:
        # the overlay's identity label lands in the spread selector: no cross-model counting
        assert tsc["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "t"}
    assert {t["topologyKey"]: t["whenUnsatisfiable"] for t in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname": "DoNotSchedule", "topology.kubernetes.io/zone": "ScheduleAnyway"}


@pytest.mark.parametrize("cloud", ("eks", "gke", "aks", "k3s"))
def test_affinity_patch_refuses_a_changed_base(scratch, cloud):
    """The JSON6902 `test` guard: if the base's GPU term changes, the build fails loudly."""
    changed = scratch.kustomization(files={"patch.yaml": (
        "- op: replace\n  path: /spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"
        "/nodeSelectorTerms/0/matchExpressions/0/key\n  value: nvidia.com/gpu.product\n")},
        extra={"patches": [{"path": "patch.yaml", "target": {"kind": "Deployment"}}]})
    top = _wrap(scratch, changed, cloud)
    with pytest.raises(BuildFailed, match="test|testing"):
        kustomize.build(top)


def _wrap(scratch: Scratch, inner, cloud: str):
    d = scratch.root / f"wrap-{cloud}"
    d.mkdir()
    (d / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(inner, d)],
        "components": [os.path.relpath(REPO / "components" / cloud, d)],
    }))
    return d


def test_device_plugin_cannot_be_a_component_resource(scratch):
    """Why components/k3s does not include base/nvidia-device-plugin (its README):
    inside an overlay, the overlay's `namespace:` renames the add-on's own Namespace to
    the model's, so the build fails (two Namespace objects of one name); without the
    Namespace, the DaemonSet would leave its privileged namespace for the model's
    restricted one and the renamed RuntimeClass would leave runtimeClassName: nvidia
    dangling."""
    comp = scratch.root / "comp-with-plugin"
    comp.mkdir()
    (comp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
        "resources": [os.path.relpath(REPO / "base/nvidia-device-plugin", comp)]}))
    top = scratch.root / "overlay-with-plugin"
    top.mkdir()
    (top / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": "dev-8b", "namePrefix": "dev-8b-",
        "resources": [os.path.relpath(REPO / "base/vllm", top)], "components": ["../comp-with-plugin"]}))
    with pytest.raises(BuildFailed, match="namespace transformation produces ID conflict"):
        kustomize.build(top)
    # Without its Namespace, the DaemonSet moves into the model's namespace and names nothing.
    files = ("runtimeclass.yaml", "daemonset.yaml")
    for f in files:  # kustomize loads resource files only from inside the kustomization
        (comp / f).write_text((REPO / "base/nvidia-device-plugin" / f).read_text())
    (comp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "resources": list(files)}))
    objs = index(kustomize.build(top).docs)
    ds = objs[("DaemonSet", "dev-8b-nvidia-device-plugin")]
    assert ds["metadata"]["namespace"] == "dev-8b"  # out of nvidia-device-plugin, into a restricted namespace
    assert ("RuntimeClass", "dev-8b-nvidia") in objs and ("RuntimeClass", "nvidia") not in objs
    assert ds["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"  # now names nothing
    # Built on its own, the add-on keeps its names and its namespace.
    alone = index(build(str(REPO / "base/nvidia-device-plugin")).docs)
    assert alone[("DaemonSet", "nvidia-device-plugin")]["metadata"]["namespace"] == "nvidia-device-plugin"
    assert alone[("Namespace", "nvidia-device-plugin")]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "privileged"
    assert alone[("RuntimeClass", "nvidia")]["handler"] == "nvidia"


# ----------------------------------------------------------------------------- agreement with clouds.py


@pytest.mark.parametrize("name", CLOUDS)
def test_cloud_component_matches_clouds_py(scratch, name):
    cloud = clouds.get(name)
    objs = normalized(render(scratch, [name]).docs)
    pvc, dep = objs[("PersistentVolumeClaim", "vllm-models")], objs[("Deployment", "vllm")]
    pod = dep["spec"]["template"]["spec"]
    assert pvc["spec"]["storageClassName"] == cloud.storage_class
    assert pvc["spec"]["accessModes"] == [cloud.access_mode]
    assert pod.get("runtimeClassName") == cloud.runtime_class
    assert dep["metadata"]["annotations"][policy.CLOUD_ANNOTATION] == cloud.name
    assert "nodeSelector" not in pod  # the GPU model and spot pins are the overlay's
    kinds = {k for k, _ in objs}
    assert not kinds & {"DaemonSet", "RuntimeClass"}, "a cloud component never ships the device plugin"
    if cloud.needs_device_plugin:
        addon = index(build(str(REPO / "base/nvidia-device-plugin")).docs)
        assert addon[("RuntimeClass", cloud.runtime_class)]["handler"] == cloud.runtime_class


def test_on_demand_excludes_every_cloud_interruptible_label(scratch):
    """components/on-demand encodes clouds.py: one NotIn per interruptible label of
    every cloud, appended to (ANDed with) the GPU term, for every cloud component."""
    wanted = {(k, v) for c in CLOUDS for k, v in clouds.get(c).interruptible_labels}
    assert wanted  # eks, gke and aks sell spot
    for cloud in ("eks", "gke", "aks"):
        dep = index(render(scratch, [cloud, "on-demand"]).docs)[("Deployment", "vllm")]
        terms = dep["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert len(terms) == 1
        first, *rest = terms[0]["matchExpressions"]
        assert first["key"] != "nvidia.com/gpu.present"  # the cloud's GPU term, kept
        assert {(e["key"], e["values"][0]) for e in rest if e["operator"] == "NotIn"} == wanted
        assert all(e["operator"] == "NotIn" and len(e["values"]) == 1 for e in rest)
        assert policy.check_policy(render(scratch, [cloud, "on-demand"]).docs, cloud, "## Single replica",
                                   rules=["capacity-type"]) == []
        assert policy.check_policy(render(scratch, [cloud]).docs, cloud, "## Single replica",
                                   rules=["capacity-type"]) != [] or cloud == "aks"


@pytest.mark.parametrize("name", [c for c in CLOUDS if clouds.get(c).spot_taint])
def test_spot_tolerates_every_cloud_spot_taint(scratch, name):
    cloud = clouds.get(name)
    pod = render(scratch, ["spot"]).docs
    tolerations = next(d for d in pod if d["kind"] == "Deployment")["spec"]["template"]["spec"]["tolerations"]
    expected_value = cloud.spot_label[1] if cloud.spot_label and cloud.spot_label[0] == cloud.spot_taint else None
    assert any(t["key"] == cloud.spot_taint and t.get("effect") == "NoSchedule"
               and (t.get("operator") == "Exists" or t.get("value") == expected_value) for t in tolerations), tolerations


def test_spot_component_leaves_the_drain_to_the_overlay(scratch):
    base = index(render(scratch).docs)[("Deployment", "vllm")]
    spot = index(render(scratch, ["spot"]).docs)[("Deployment", "vllm")]
    for path in (("terminationGracePeriodSeconds",),):
        assert base["spec"]["template"]["spec"][path[0]] == spot["spec"]["template"]["spec"][path[0]]


# ----------------------------------------------------------------------------- conventions


def _patch_docs(component: str):
    k = yaml.safe_load((REPO / "components" / component / "kustomization.yaml").read_text())
    for p in k.get("patches") or []:
        yield p, yaml.safe_load((REPO / "components" / component / p["path"]).read_text())


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


@pytest.mark.parametrize("component", OURS)
def test_component_follows_the_house_conventions(component):
    root = REPO / "components" / component
    text = (root / "kustomization.yaml").read_text()
    assert text.startswith("# components/"), "header comment: what it sets, leaves, invariants"
    assert "Sets:" in text and "Leaves to the overlay" in text
    k = yaml.safe_load(text)
    assert (k["apiVersion"], k["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    assert set(k) <= {"apiVersion", "kind", "resources", "patches", "labels", "replacements", "configurations"}
    for p, doc in _patch_docs(component):
        assert p["path"].startswith("patch-") and p["path"].endswith(".yaml")
        assert (root / p["path"]).read_text().startswith("# Why"), f"{p['path']} must open with why"
        target = p["target"]
        assert target.get("labelSelector") == "app.kubernetes.io/name=vllm" and "name" not in target
        assert target["kind"] not in {"ScaledObject", "PodDisruptionBudget"}
        if isinstance(doc, list):  # JSON6902: positional edits only
            paths = [op["path"] for op in doc]
            assert not any(seg in OVERLAY_OWNED for path in paths for seg in path.split("/")), paths
        else:
            owned = set(_keys(doc)) & OVERLAY_OWNED
            if doc["kind"] == "PersistentVolumeClaim":
                assert "resources" not in doc.get("spec", {}), "the cache size is the overlay's"
                owned.discard("resources")
            assert not owned, f"{p['path']} sets overlay-owned fields {owned}"
    readme = (root / "README.md").read_text()
    for heading in ("## When to use", "## What it changes", "## Verify"):
        assert heading in readme, f"components/{component}/README.md lacks {heading!r}"
    assert "kubectl kustomize" in readme


def test_components_readme_lists_every_component():
    text = (REPO / "components" / "README.md").read_text()
    for d in sorted(p.name for p in (REPO / "components").iterdir() if p.is_dir()):
        assert f"[`{d}`]" in text, f"components/README.md has no row for {d}"
    assert "monitoring" in text
