"""Every kustomization in the repository builds cleanly and passes schema + policy.

Discovery, not a hand-kept list: each directory with a kustomization.yaml that is
not a Component (base/*, overlays/*; tests/ excluded) is built with
`kubectl kustomize`, then checked for
- kustomize warnings on stderr (deprecated fields) -> failure;
- built-in kinds against the Kubernetes 1.30 and 1.33 OpenAPI, strict;
- custom resources against the CRDs in $VLLM_COMPOSE_CRD_DIR or ../shared/crds;
- the policy invariants of compose.verify.policy (with the nearest README for the
  single-replica trade-off).
"""

from __future__ import annotations

import pytest

from compose.verify import policy, validate
from helpers_kube import REPO, build, discover, readme_for, require_kubectl

KUBE_VERSIONS = ("1.30", "1.33")
DIRS = discover()
IDS = [str(d.relative_to(REPO)) for d in DIRS]


def _fmt(findings) -> str:
    return "\n".join(f"  - {f}" for f in findings)


@pytest.fixture(scope="module", autouse=True)
def _kubectl():
    require_kubectl()


@pytest.fixture(scope="module")
def crd_dir():
    try:
        return validate.default_crd_dir()
    except Exception as err:  # a ComposeError: say how to point at the CRDs
        pytest.fail(str(err), pytrace=False)


def test_discovery_finds_the_bases_and_skips_tests_and_components():
    rels = set(IDS)
    assert {"base/vllm", "base/nvidia-device-plugin"} <= rels
    assert not any(r.startswith("tests") for r in rels), rels
    assert not any(r.startswith("components") for r in rels), rels


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_builds_without_warnings(directory):
    rendered = build(str(directory))
    assert rendered.docs, f"{directory} rendered nothing"
    assert not rendered.warnings, f"kustomize warned on {directory}:\n{rendered.warnings}"


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_core_objects_match_the_kubernetes_schema(directory):
    findings = validate.validate_core(build(str(directory)).docs, IDS[DIRS.index(directory)], KUBE_VERSIONS)
    assert not findings, "schema findings:\n" + _fmt(findings)


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_custom_resources_match_their_crds(directory, crd_dir):
    findings = validate.validate_custom(build(str(directory)).docs, IDS[DIRS.index(directory)], crd_dir)
    assert not findings, "CRD findings:\n" + _fmt(findings)


@pytest.mark.parametrize("directory", DIRS, ids=IDS)
def test_policy_invariants_hold(directory):
    findings = policy.check_policy(build(str(directory)).docs, IDS[DIRS.index(directory)], readme_for(directory))
    assert not findings, "policy findings:\n" + _fmt(findings)


def test_every_scaled_object_targets_a_rendered_deployment():
    # Also a policy rule; asserted on its own because a namePrefix that skips the
    # ScaledObject's reference (a missing nameReference config) is the classic bug.
    for d in DIRS:
        docs = build(str(d)).docs
        deployments = {(x["metadata"].get("namespace"), x["metadata"]["name"]) for x in docs if x["kind"] == "Deployment"}
        for so in (x for x in docs if x["kind"] == "ScaledObject"):
            ref = so["spec"]["scaleTargetRef"]
            assert (so["metadata"].get("namespace"), ref["name"]) in deployments, f"{d}: {ref}"


# ----------------------------------------------------------------------------- the validators themselves


def _base_docs():
    import copy

    return copy.deepcopy(build(str(REPO / "base/vllm")).docs)


def test_core_validation_reports_every_error_with_named_paths():
    docs = _base_docs()
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["replica"] = 2  # typo: strict mode rejects unknown fields
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = [1]
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    pdb["apiVersion"] = "policy/v1beta1"  # removed in 1.25: no schema is an error, not a warning
    findings = validate.validate_core(docs, "x", KUBE_VERSIONS)
    by_field = {f.field: f for f in findings}
    assert "'replica' was unexpected" in by_field["spec"].problem
    assert "(Kubernetes 1.30, 1.33)" in by_field["spec"].problem  # one finding for both versions
    assert "spec.template.spec.containers[vllm].resources.requests.cpu" in by_field
    assert by_field["apiVersion"].obj == "PodDisruptionBudget/vllm"
    assert "no schema for PodDisruptionBudget in policy/v1beta1" in by_field["apiVersion"].problem
    assert all(f.check == "schema" for f in findings)


def test_core_validation_checks_names():
    docs = _base_docs()
    svc = next(d for d in docs if d["kind"] == "Service")
    svc["metadata"]["name"] = "8b-Vllm"
    findings = validate.validate_core(docs, "x")
    assert [f.field for f in findings] == ["metadata.name"] and "DNS-1035" in findings[0].problem


def test_custom_resources_are_checked_strictly(crd_dir):
    docs = _base_docs()
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    so["spec"]["maxReplicas"] = 3
    so["spec"]["minReplicaCount"] = "one"
    docs.append({"apiVersion": "keda.sh/v1beta9", "kind": "ScaledObject", "metadata": {"name": "other"}, "spec": {}})
    findings = validate.validate_custom(docs, "x", crd_dir)
    problems = {(f.obj, f.field): f.problem for f in findings}
    assert "'maxReplicas' was unexpected" in problems[("ScaledObject/vllm", "spec")]
    assert "'one' is not of type 'integer'" in problems[("ScaledObject/vllm", "spec.minReplicaCount")]
    assert "unknown custom resource keda.sh/v1beta9/ScaledObject" in problems[("ScaledObject/other", "apiVersion")]
    assert validate.validate_core(docs, "x") == []  # CRs are not the core validator's business


def test_core_groups_and_custom_groups_are_told_apart():
    assert validate.is_core("v1") and validate.is_core("apps/v1") and validate.is_core("node.k8s.io/v1")
    assert not validate.is_core("keda.sh/v1alpha1")
    assert not validate.is_core("gateway.networking.k8s.io/v1")  # a CRD despite the k8s.io suffix


def test_missing_crd_dir_says_to_pass_crd_dir(tmp_path, monkeypatch):
    from compose.core.errors import ComposeError

    with pytest.raises(ComposeError, match="--crd-dir"):
        validate.validate_custom(_base_docs(), "x", tmp_path / "nope")
    monkeypatch.setenv("VLLM_COMPOSE_CRD_DIR", str(tmp_path / "nope"))
    with pytest.raises(ComposeError, match="--crd-dir"):
        validate.default_crd_dir()


def test_unsupported_kube_version_is_invalid_input():
    from compose.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--kube-version"):
        validate.validate_core([], "x", ("1.12",))
    assert validate.validate_core([], "x", ("v1.32.4",)) == []


def test_crds_loaded_by_kind_are_the_ones_a_full_load_gives(crd_dir):
    """validate_custom parses only the CRD files that may define the kinds it checks."""
    everything = validate.load_crd_validators(crd_dir)
    for key, validator in everything.items():
        some = validate.load_crd_validators(crd_dir, {key})
        assert some[key].schema == validator.schema, key
    assert len(validate.load_crd_validators(crd_dir, {("keda.sh/v1alpha1", "ScaledObject")})) < len(everything)
    # A kind no file defines: every file is read, so the "no CRD defines it" hint sees them all.
    assert validate.load_crd_validators(crd_dir, {("example.com/v1", "Nope")}).keys() == everything.keys()
