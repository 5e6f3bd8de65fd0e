"""`compose canary start | set-weight | promote | abort`: each is one change set over
overlays/, argocd/ and flux/ that passes `compose check`, with the weights in Git exactly
what the command said and the canary on its stable overlay's cache."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from compose.core.errors import EXIT_INVALID, Findings, InvalidInput
from compose.generate import overlay, routing
from compose.publish import canary, gitops
from compose.verify import checks
from composer_helpers import REPO, run
from routing_helpers import GATEWAY, LLAMA, QWEN, built, objects, one, routed_repo, tree

pytestmark = pytest.mark.usefixtures("kubectl")

STABLE = "dev-qwen2-5-7b"
CANARY = "dev-qwen2-5-7b-canary"
OTHER = "dev-llama-3-1-8b"
IMAGE = "vllm/vllm-openai:v0.33.0-cu130"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Two models behind one Gateway (one on an inference pool), Argo CD and Flux recorded."""
    return routed_repo(tmp_path_factory.mktemp("canary"), dict(QWEN, gateway=GATEWAY),
                       dict(LLAMA, gateway=GATEWAY, router="inference-pool"))


@pytest.fixture
def repo(pristine, tmp_path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    return root


def start(root: Path, name: str = STABLE, validate: bool = False, **kw) -> list:
    """Plan (and with `validate`, check in staging) and apply `canary start`; the changes it
    reported. The CLI always validates; tests that check the result themselves skip it."""
    kw.setdefault("weight", 10)
    if not any(k in kw for k in ("image", "vllm_version", "revision", "sets")):
        kw["image"] = IMAGE
    change = canary.plan_start(root, name, **kw)
    if validate:
        canary.validate(root, change)
    return canary.apply_change(root, change)


def weights(root: Path, name: str = STABLE) -> list[list[tuple[str, int | None]]]:
    """(backend, weight) per rule of the rendered route, as the Gateway will read it."""
    docs = built(root / "overlays" / name)
    routes = objects(docs, "HTTPRoute")
    if routes:
        return [[(b["name"], b.get("weight")) for b in r["backendRefs"]] for r in routes[0]["spec"]["rules"]]
    vs = one(docs, "VirtualService")
    return [[(d["destination"]["host"], d.get("weight")) for d in h["route"]] for h in vs["spec"]["http"]]


def check_all(root: Path, crds: Path) -> list[str]:
    dirs = [root / d for d in ("overlays",) for d in sorted((root / "overlays").iterdir())]
    return [str(f) for r in checks.check_directories(root, dirs, crd_dir=crds) for f in r.findings]


# --------------------------------------------------------------------------- start


def test_start_writes_one_change_the_canary_and_the_split(repo, crds):
    before = tree(repo)
    applied = start(repo, weight=10, validate=True)
    after = tree(repo)
    changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
    assert changed == sorted(
        [f"overlays/{STABLE}/{f}" for f in ("README.md", "compose-plan.yaml", "patch-alerts.yaml",
                                           "patch-route.yaml", "patch-scaling.yaml")]
        + [f"overlays/{CANARY}/{f}" for f in ("README.md", "compose-plan.yaml", "kustomization.yaml",
                                             "patch-alerts.yaml", "patch-canary.yaml", "patch-model-args.yaml",
                                             "patch-placement.yaml", "patch-probes-drain.yaml",
                                             "patch-resources.yaml", "patch-scaling.yaml", "patch-storage.yaml")]
        + ["argocd/applications/dev-qwen2-5-7b-canary.yaml",
           "flux/kustomization.yaml", "flux/models/dev-qwen2-5-7b-canary.yaml"]
    ), changed
    assert {str(c.path.relative_to(repo.resolve())) for c in applied} == set(changed)
    assert weights(repo) == [[(f"{STABLE}-vllm", 90), (f"{CANARY}-vllm", 10)]] * 2
    assert check_all(repo, crds) == []
    # The recorded GitOps output and every overlay are exactly what regen would write.
    from compose.publish import regenerate

    assert regenerate.run(repo, None, True, check=True).drift == []


def test_canary_serves_the_same_model_from_the_stable_cache_and_namespace(repo):
    start(repo)
    sdocs, cdocs = built(repo / "overlays" / STABLE), built(repo / "overlays" / CANARY)
    sdep, cdep = one(sdocs, "Deployment", f"{STABLE}-vllm"), one(cdocs, "Deployment", f"{CANARY}-vllm")
    ns = sdep["metadata"]["namespace"]
    # Same namespace, rendered by the stable overlay only.
    assert {d["metadata"].get("namespace") for d in cdocs} == {ns}
    assert not objects(cdocs, "Namespace") and one(sdocs, "Namespace")["metadata"]["name"] == ns
    # The stable overlay's cache, mounted; no claim of its own; the same weights and path.
    pvc = one(sdocs, "PersistentVolumeClaim")
    assert not objects(cdocs, "PersistentVolumeClaim")
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
              for v in cdep["spec"]["template"]["spec"]["volumes"]}
    assert claims["model-cache"] == pvc["metadata"]["name"] == f"{STABLE}-vllm-models"

    def init_env(dep):
        (ic,) = dep["spec"]["template"]["spec"]["initContainers"]
        return {e["name"]: e.get("value") for e in ic["env"] if e["name"] in ("HF_MODEL_ID", "HF_REVISION", "MODEL_DIR")}

    assert init_env(cdep) == init_env(sdep)  # the marker is there: the init container skips the download
    # Same served model name, another image, its own identity.
    sargs = next(c for c in sdep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")["args"]
    cargs = next(c for c in cdep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
    assert [a for a in sargs if a.startswith("--served-model-name")] == \
        [a for a in cargs["args"] if a.startswith("--served-model-name")]
    assert cargs["image"] == IMAGE
    assert cdep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == CANARY
    assert cdep["spec"]["template"]["metadata"]["labels"][routing.CANARY_OF_LABEL] == STABLE
    # Fixed, small: KEDA min = max = 1.
    so = one(cdocs, "ScaledObject")
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 1)
    # Each scales and alerts on its own pods only.
    sq = one(sdocs, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    assert f'app_kubernetes_io_instance="{STABLE}"' in sq
    assert f'app_kubernetes_io_instance="{CANARY}"' in so["spec"]["triggers"][0]["metadata"]["query"]
    # The stable PrometheusRule carries the canary-vs-stable group.
    groups = {g["name"]: g for g in one(sdocs, "PrometheusRule")["spec"]["groups"]}
    assert [r["alert"] for r in groups["vllm-canary"]["rules"]] == [
        "VLLMCanaryErrorRatioAboveStable", "VLLMCanaryTTFTAboveStable", "VLLMCanaryTPOTAboveStable",
        "VLLMCanaryQueueAboveStable", "VLLMCanaryNoTraffic"]
    assert "vllm-canary" not in {g["name"] for g in one(cdocs, "PrometheusRule")["spec"]["groups"]}
    # The PodMonitor copies the pods' instance label onto every series.
    assert one(cdocs, "PodMonitor")["spec"]["podTargetLabels"] == ["app.kubernetes.io/instance"]


def test_check_all_allows_the_canary_in_its_stable_namespace_and_nothing_else(repo):
    """Issue 11's one namespace per overlay, at repository level (`compose check --all`):
    a canary and its stable overlay share one namespace by design (the canary renders
    neither the Namespace nor the claim), so that pair is no finding; a third overlay
    in the same namespace still is, for every overlay that uses it."""
    start(repo)
    assert [f for f in checks.check_repository(repo).findings if f.check == "namespace"] == []
    res = run("check", "--all", repo=repo)
    assert res.exit_code == 0, res.output
    intruder = repo / "overlays" / "dev-intruder"
    shutil.copytree(repo / "overlays" / OTHER, intruder)
    plan = intruder / "compose-plan.yaml"
    plan.write_text(plan.read_text().replace(f"namespace: {OTHER}\n", f"namespace: {STABLE}\n", 1))
    assert overlay.overlay_namespace(intruder) == STABLE
    found = [f for f in checks.check_repository(repo).findings if f.check == "namespace"]
    assert sorted(f.obj for f in found) == sorted(f"overlays/{n}" for n in (STABLE, CANARY, "dev-intruder")), found
    assert all("used by 3 overlays" in f.problem for f in found), found


def test_gitops_output_for_the_canary(repo):
    start(repo)
    app = yaml.safe_load((repo / "argocd" / "applications" / f"{CANARY}.yaml").read_text())
    assert app["spec"]["destination"]["namespace"] == STABLE
    assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    ks = yaml.safe_load((repo / "flux" / "models" / f"{CANARY}.yaml").read_text())
    assert {"name": STABLE} in ks["spec"]["dependsOn"] and ks["spec"]["path"] == f"./overlays/{CANARY}"
    appset = yaml.safe_load((repo / "argocd" / "applicationset-models.yaml").read_text())
    assert appset["spec"]["template"]["spec"]["destination"]["namespace"] == '{{ trimSuffix "-canary" .path.basename }}'
    project = yaml.safe_load((repo / "argocd" / "project.yaml").read_text())
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    assert {("gateway.networking.k8s.io", "HTTPRoute"), ("inference.networking.k8s.io", "InferencePool"),
            ("rbac.authorization.k8s.io", "Role")} <= kinds


def test_start_with_another_revision_gets_its_own_cache(repo, crds):
    start(repo, image=None, revision="0" * 40)
    cdocs = built(repo / "overlays" / CANARY)
    (pvc,) = objects(cdocs, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == f"{CANARY}-vllm-models"
    dep = one(cdocs, "Deployment")
    (ic,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert {"name": "HF_REVISION", "value": "0" * 40} in ic["env"]
    inputs = overlay.load_plan_file(repo / "overlays" / CANARY)["inputs"]
    assert "shared_cache" not in inputs and inputs["revision"] == "0" * 40
    assert check_all(repo, crds) == []


def test_start_with_an_output_cap_caps_only_the_canary(repo, crds):
    """--set max_output_tokens=N: the canary's vLLM runs with the server-wide cap (vLLM 0.33
    --override-generation-config max_new_tokens), the stable one stays uncapped, and the
    stable route's timeout (sized for the uncapped answer) still covers both."""
    start(repo, sets=["max_output_tokens=1024"])

    def vllm_args(name: str) -> list[str]:
        dep = one(built(repo / "overlays" / name), "Deployment", f"{name}-vllm")
        return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")["args"]

    caps = [a for a in vllm_args(CANARY) if a.startswith("--override-generation-config")]
    assert len(caps) == 1 and json.loads(caps[0].split("=", 1)[1]) == {"max_new_tokens": 1024}, caps
    assert not [a for a in vllm_args(STABLE) if a.startswith("--override-generation-config")]
    inputs = overlay.load_plan_file(repo / "overlays" / CANARY)["inputs"]
    assert inputs["max_output_tokens"] == 1024
    assert "max_output_tokens" not in overlay.load_plan_file(repo / "overlays" / STABLE)["inputs"]
    assert check_all(repo, crds) == []


def test_a_canary_answering_longer_than_the_stable_route_allows_is_refused(tmp_path, crds):
    """The stable overlay's route carries the canary's share: with the stable capped at 256
    output tokens, a canary allowed 8192 would have its long answers cut off by the gateway,
    so `canary start` refuses it (the check runs in staging) and `check --all` would too."""
    root = routed_repo(tmp_path, dict(QWEN, gateway=GATEWAY, max_output_tokens=256), gitops_output=False)
    before = tree(root)
    with pytest.raises(Findings, match="fails `compose check`") as err:
        start(root, sets=["max_output_tokens=8192"], validate=True)
    assert any("shorter than the canary's longest answer" in str(f) for f in err.value.findings), err.value.findings
    assert tree(root) == before
    change = canary.plan_start(root, STABLE, weight=10, sets=["max_output_tokens=8192"])
    canary.apply_change(root, change)  # written without the check, as a hand edit would
    problems = check_all(root, crds)
    assert any("shorter than the canary's longest answer" in p and "8192 tokens" in p for p in problems), problems
    assert all("shorter than the canary" not in p for p in problems if CANARY + "-" in p)  # reported once, on the route
    # a canary within the stable cap is fine
    root2 = routed_repo(tmp_path / "ok", dict(QWEN, gateway=GATEWAY, max_output_tokens=256), gitops_output=False)
    start(root2, sets=["max_output_tokens=128"], validate=True)
    assert check_all(root2, crds) == []


def test_start_on_an_inference_pool_gives_the_canary_its_own_pool(repo, crds):
    start(repo, OTHER, sets=["gpu_memory_utilization=0.85"], weight=25)
    canary_name = f"{OTHER}-canary"
    assert weights(repo, OTHER) == [[(f"{OTHER}-vllm", 75), (f"{canary_name}-vllm", 25)]] * 2
    cdocs = built(repo / "overlays" / canary_name)
    pool = one(cdocs, "InferencePool")
    assert pool["metadata"]["name"] == f"{canary_name}-vllm"
    assert pool["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == canary_name
    epp = one(cdocs, "Deployment", f"{canary_name}-vllm-epp")
    args = epp["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
    assert not objects(cdocs, "HTTPRoute")  # the stable overlay's route sends its share
    vllm = next(c for c in one(cdocs, "Deployment", f"{canary_name}-vllm")["spec"]["template"]["spec"]["containers"]
                if c["name"] == "vllm")
    assert "--gpu-memory-utilization=0.85" in vllm["args"]
    assert check_all(repo, crds) == []


def test_start_with_a_vllm_version_or_a_bare_tag(repo, monkeypatch):
    from compose.verify import policy

    real = policy.valid_flags
    # Pretend the repository has 0.34.0's flag list (tools/extract_vllm_flags.py would add it).
    monkeypatch.setattr(policy, "valid_flags", lambda version="0.33.0": real("0.33.0"))
    start(repo, image=None, vllm_version="0.34.0")
    k = yaml.safe_load((repo / "overlays" / CANARY / "kustomization.yaml").read_text())
    assert k["images"] == [{"name": "vllm/vllm-openai", "newTag": "v0.34.0"}]
    canary.apply_change(repo, canary.plan_abort(repo, STABLE))
    start(repo, image="v0.33.0-cu130")
    assert overlay.load_plan_file(repo / "overlays" / CANARY)["inputs"]["image"] == IMAGE


def test_istio_canary_splits_the_virtualservice(tmp_path):
    root = routed_repo(tmp_path, dict(QWEN, gateway="istio-system/public", mesh="istio"), gitops_output=False)
    start(root, weight=5)
    assert weights(root) == [[(f"{STABLE}-vllm", 95), (f"{CANARY}-vllm", 5)]] * 2
    cdocs = built(root / "overlays" / CANARY)
    assert not objects(cdocs, "VirtualService") and not objects(cdocs, "DestinationRule")
    one(cdocs, "Service", f"{CANARY}-vllm")


# --------------------------------------------------------------------------- set-weight, promote, abort


def test_set_weight_changes_only_the_stable_route_and_its_alerts(repo, crds):
    start(repo, weight=10)
    before = tree(repo)
    change = canary.plan_set_weight(repo, CANARY, 35)  # the canary's name works too
    canary.apply_change(repo, change)
    after = tree(repo)
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == [f"overlays/{STABLE}/{f}" for f in ("README.md", "compose-plan.yaml", "patch-alerts.yaml",
                                                           "patch-route.yaml")]
    assert weights(repo) == [[(f"{STABLE}-vllm", 65), (f"{CANARY}-vllm", 35)]] * 2
    assert overlay.load_plan_file(repo / "overlays" / STABLE)["inputs"]["canary_weight"] == 35
    for w, expected in ((0, [(f"{STABLE}-vllm", 100), (f"{CANARY}-vllm", 0)]),
                        (100, [(f"{STABLE}-vllm", 0), (f"{CANARY}-vllm", 100)])):
        canary.apply_change(repo, canary.plan_set_weight(repo, STABLE, w))
        assert weights(repo) == [expected] * 2
    assert check_all(repo, crds) == []


def test_abort_restores_the_stable_overlay_byte_for_byte(repo):
    before = tree(repo)
    start(repo, weight=20)
    canary.apply_change(repo, canary.plan_abort(repo, STABLE))
    assert tree(repo) == before
    assert not (repo / "overlays" / CANARY).exists()


def test_promote_folds_the_canary_into_the_stable_overlay(repo, crds):
    original = overlay.load_plan_file(repo / "overlays" / STABLE)["inputs"]
    start(repo, weight=50, sets=["max_model_len=16384"])
    change = canary.plan_promote(repo, STABLE)
    canary.validate(repo, change)
    canary.apply_change(repo, change)
    assert not (repo / "overlays" / CANARY).exists()
    assert not (repo / "argocd" / "applications" / f"{CANARY}.yaml").exists()
    assert not (repo / "flux" / "models" / f"{CANARY}.yaml").exists()
    inputs = overlay.load_plan_file(repo / "overlays" / STABLE)["inputs"]
    assert inputs == {**original, "max_model_len": 16384}
    assert weights(repo) == [[(f"{STABLE}-vllm", None)]] * 2
    docs = built(repo / "overlays" / STABLE)
    vllm = next(c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
    assert "--max-model-len=16384" in vllm["args"]
    assert "app_kubernetes_io_instance" not in one(docs, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    assert check_all(repo, crds) == []
    # The promoted overlay is what new-model would write with those options.
    fresh = overlay.generate(overlay.Options.from_inputs(inputs), repo)
    assert fresh.files["patch-model-args.yaml"] == (repo / "overlays" / STABLE / "patch-model-args.yaml").read_text()


def test_canary_of_a_digest_pinned_overlay_runs_the_canary_image(tmp_path, crds):
    """--image-digest (issue 11) pins the stable image on both containers; `canary start
    --image` (issue 14) must not inherit that digest, or the canary would run the stable
    bytes under the new tag. Promote folds the image and its digest together."""
    digest, other = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32
    root = routed_repo(tmp_path, dict(QWEN, gateway=GATEWAY, image_digest=digest))

    def images(name: str) -> set[str]:
        spec = one(built(root / "overlays" / name), "Deployment")["spec"]["template"]["spec"]
        return {c["image"] for c in spec["initContainers"] + spec["containers"]}

    assert images(STABLE) == {f"vllm/vllm-openai:v0.33.0@{digest}"}
    start(root, image=IMAGE)
    assert images(CANARY) == {IMAGE} and images(STABLE) == {f"vllm/vllm-openai:v0.33.0@{digest}"}
    assert "image_digest" not in overlay.load_plan_file(root / "overlays" / CANARY)["inputs"]
    canary.apply_change(root, canary.plan_abort(root, STABLE))
    # A canary image given by digest runs by that digest (kustomize's `images:` digest
    # replaces the tag).
    start(root, image=f"{IMAGE}@{other}")
    assert images(CANARY) == {f"vllm/vllm-openai@{other}"}
    assert check_all(root, crds) == []
    change = canary.plan_promote(root, STABLE)
    canary.validate(root, change)
    canary.apply_change(root, change)
    assert images(STABLE) == {f"vllm/vllm-openai@{other}"}
    inputs = overlay.load_plan_file(root / "overlays" / STABLE)["inputs"]
    assert inputs["image"] == f"{IMAGE}@{other}" and "image_digest" not in inputs


# --------------------------------------------------------------------------- refusals


def test_refusals_are_one_line_and_write_nothing(repo, tmp_path):
    before = tree(repo)
    cases = [
        (dict(weight=10), "must change something"),
        (dict(weight=10, image=IMAGE, vllm_version="0.34.0"), "pass one of them"),
        (dict(weight=10, vllm_version="0.34.0"), "no flag list for vLLM 0.34.0"),
        (dict(weight=10, sets=["model=llama-3.1-8b"]), "a canary may change"),
        (dict(weight=10, sets=["max_model_len=big"]), "takes a int"),
        (dict(weight=101, image=IMAGE), "0 to 100"),
        (dict(weight=10, image=IMAGE, replicas=9), "fixed 1 to 4"),
        (dict(weight=10, sets=["spot=false"]), "would equal"),
        # the stable overlay runs the base's image: naming that image changes nothing either
        (dict(weight=10, image="vllm/vllm-openai:v0.33.0"), "would equal .*image already has that value"),
        (dict(weight=10, vllm_version="0.33.0"), "would equal"),
    ]
    for kw, message in cases:
        with pytest.raises(InvalidInput, match=message):
            canary.plan_start(repo, STABLE, **kw)
    with pytest.raises(InvalidInput, match="no canary running"):
        canary.plan_set_weight(repo, STABLE, 5)
    with pytest.raises(InvalidInput, match="no overlay"):
        canary.plan_abort(repo, "dev-nothing")
    assert tree(repo) == before
    start(repo)
    with pytest.raises(InvalidInput, match="already has a canary"):
        canary.plan_start(repo, STABLE, weight=5, image=IMAGE)
    # new-model --force would drop the split from under the canary.
    with pytest.raises(InvalidInput, match="has a canary running"):
        overlay.write(repo, overlay.Options(**QWEN, gateway=GATEWAY), force=True)
    # An overlay without a route or without monitoring cannot have a canary.
    plain = routed_repo(tmp_path / "plain", dict(QWEN), gitops_output=False)
    with pytest.raises(InvalidInput, match="no route to split"):
        canary.plan_start(plain, STABLE, weight=5, image=IMAGE)
    blind = routed_repo(tmp_path / "blind", dict(QWEN, gateway=GATEWAY, monitoring=False), gitops_output=False)
    with pytest.raises(InvalidInput, match="no monitoring"):
        canary.plan_start(blind, STABLE, weight=5, image=IMAGE)
    # A valid name with no room for "-canary": the fix is the stable overlay's name, not a --name canary lacks.
    long = routed_repo(tmp_path / "long", dict(QWEN, gateway=GATEWAY, name="qwen-a-very-long-name-for-tests-12"),
                       gitops_output=False)
    with pytest.raises(InvalidInput, match="needs a name of at most 34 characters .regenerate it with a shorter"):
        canary.plan_start(long, "dev-qwen-a-very-long-name-for-tests-12", weight=5, image=IMAGE)


def test_validate_refuses_a_change_that_fails_compose_check(repo):
    change = canary.plan_start(repo, STABLE, weight=10, image=IMAGE)
    path = next(p for p in change.fileset.files if p.name == "patch-scaling.yaml" and CANARY in str(p))
    change.fileset.files[path] = change.fileset.files[path].replace("maxReplicaCount: 1", "maxReplicaCount: 0")
    before = tree(repo)
    with pytest.raises(Findings, match="fails `compose check`"):
        canary.validate(repo, change)
    assert tree(repo) == before


def test_check_catches_a_shared_cache_that_no_longer_holds_the_canarys_weights(repo, crds):
    start(repo)
    # Someone moves the stable overlay to another revision by hand while the canary runs.
    sdir = repo / "overlays" / STABLE
    opts = overlay.Options.from_inputs(overlay.load_plan_file(sdir)["inputs"])
    overlay.write(repo, dataclasses.replace(opts, revision="1" * 40), allow_existing=True)
    problems = check_all(repo, crds)
    assert any("would overwrite the stable overlay's files" in p for p in problems), problems


def test_cli_start_set_weight_abort(repo):
    res = run("canary", "start", STABLE, "--image", IMAGE, "--weight", "15", "--dry-run", repo=repo)
    assert res.exit_code == 0, res.output
    assert f"+++ b/overlays/{CANARY}/kustomization.yaml" in res.output and not (repo / "overlays" / CANARY).exists()
    res = run("canary", "start", STABLE, "--image", IMAGE, "--weight", "15", repo=repo)
    assert res.exit_code == 0, res.output
    assert f"created   overlays/{CANARY}/kustomization.yaml" in res.output and "next: review and commit" in res.output
    res = run("canary", "set-weight", STABLE, "30", repo=repo)
    assert res.exit_code == 0 and weights(repo)[0] == [(f"{STABLE}-vllm", 70), (f"{CANARY}-vllm", 30)]
    res = run("canary", "start", STABLE, "--image", IMAGE, "--weight", "150", repo=repo)
    assert res.exit_code == EXIT_INVALID
    res = run("canary", "abort", STABLE, repo=repo)
    assert res.exit_code == 0 and f"deleted   overlays/{CANARY}/kustomization.yaml" in res.output
    res = run("canary", "promote", STABLE, repo=repo)
    assert res.exit_code == EXIT_INVALID and "no canary running" in res.output


def test_a_canary_whose_stable_overlay_was_deleted_is_refused_by_regen_and_removed_by_abort(repo):
    """`regen --all` kept the orphan (and its Flux dependsOn on an overlay that no longer
    exists, waiting forever), exit 0; `check` named `canary abort` as the fix, which then
    said "no overlay"."""
    start(repo)
    shutil.rmtree(repo / "overlays" / STABLE)
    before = tree(repo)
    res = run("regen", "--all", repo=repo)
    assert res.exit_code == EXIT_INVALID and f"overlays/{CANARY} is the canary of {STABLE}, which no longer exists" \
        in res.stderr, res.output
    assert tree(repo) == before
    for name in (STABLE, CANARY):  # either name removes it
        work = repo.parent / f"orphan-{name}"
        shutil.copytree(repo, work)
        res = run("canary", "abort", name, repo=work)
        assert res.exit_code == 0, res.output
        assert not (work / "overlays" / CANARY).exists() and f"{CANARY} is removed" in res.output
        assert run("regen", "--all", "--check", repo=work).exit_code == 0
        assert not any(CANARY in p.read_text() for d in ("argocd", "flux") for p in (work / d).rglob("*.yaml"))


def test_the_cli_finds_the_crds_beside_the_repository_not_beside_its_staging_copy(pristine, tmp_path, monkeypatch):
    """With the CRDs only at the documented default (../shared/crds beside the checkout),
    every canary command looked for them beside the staging copy it checks
    (.compose/txn-*/ or /tmp/compose-preview-*/) and exited 2."""
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "crds").symlink_to(REPO.parent / "shared" / "crds")
    monkeypatch.delenv("VLLM_COMPOSE_CRD_DIR", raising=False)
    for args in (("start", STABLE, "--image", IMAGE, "--weight", "10", "--dry-run"),
                 ("start", STABLE, "--image", IMAGE, "--weight", "10"), ("set-weight", STABLE, "20"),
                 ("abort", STABLE)):
        res = run("canary", *args, repo=root)
        assert res.exit_code == 0, (args, res.output)


def test_two_models_and_a_canary_behind_one_gateway_with_three_commands(tmp_path, crds):
    """The issue's first 'done when': three commands, then one to promote or abort."""
    root = routed_repo(tmp_path, gitops_output=False)
    for flavour in gitops.FLAVOURS:
        assert run("gitops", flavour, repo=root).exit_code == 0
    commands = [
        ("new-model", "qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--gateway", GATEWAY),
        ("new-model", "llama-3.1-8b", "--cloud", "gke", "--gpu", "l4", "--max-model-len", "8192",
         "--gateway", GATEWAY, "--router", "inference-pool"),
        ("canary", "start", STABLE, "--image", IMAGE, "--weight", "10"),
    ]
    for argv in commands:
        res = run(*argv, repo=root)
        assert res.exit_code == 0, res.output
    parents = set()
    for name in (STABLE, OTHER):
        route = one(built(root / "overlays" / name), "HTTPRoute")
        parents |= {(p["namespace"], p["name"]) for p in route["spec"]["parentRefs"]}
    assert parents == {("gateway-system", "inference")}
    assert weights(root) == [[(f"{STABLE}-vllm", 90), (f"{CANARY}-vllm", 10)]] * 2
    assert check_all(root, crds) == []
    assert run("canary", "promote", STABLE, repo=root).exit_code == 0
    assert sorted(p.name for p in (root / "overlays").iterdir()) == [OTHER, STABLE]
    assert check_all(root, crds) == []


# --------------------------------------------------------------------------- the README's flow


def _readme_commands(after_heading: str, nth_block: int = 0) -> list[list[str]]:
    """The `compose ...` commands of the nth ```sh block under a README heading (continuation
    lines joined, comments dropped), so these tests break when the README drifts."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index(after_heading):]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[nth_block]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("compose "):
            commands.append(shlex.split(line)[1:])
    return commands


README_FLOW = "## One endpoint for every model, and canaries"


def test_the_readme_canary_flow_runs_as_written(tmp_path, crds):
    """README.md's commands, exactly: two models, a canary, set-weight, promote, each exit 0."""
    commands = _readme_commands(README_FLOW)
    verbs = [c[:2] if c[0] == "canary" else c[:1] for c in commands]
    assert verbs == [["new-model"], ["new-model"], ["canary", "start"], ["canary", "set-weight"],
                     ["canary", "promote"]], commands
    root = routed_repo(tmp_path, gitops_output=False)
    for flavour in gitops.FLAVOURS:
        assert run("gitops", flavour, repo=root).exit_code == 0
    for argv in commands:
        res = run(*argv, repo=root)
        assert res.exit_code == 0, (argv, res.output)
        if argv[:2] == ["canary", "set-weight"]:
            n = int(argv[3])
            assert weights(root)[0] == [(f"{STABLE}-vllm", 100 - n), (f"{CANARY}-vllm", n)]
    assert sorted(p.name for p in (root / "overlays").iterdir()) == [OTHER, STABLE]
    start_argv = commands[2]
    key, _, value = start_argv[start_argv.index("--set") + 1].partition("=")
    assert overlay.load_plan_file(root / "overlays" / STABLE)["inputs"][key] == value  # promoted
    assert check_all(root, crds) == []


def test_an_image_of_a_release_without_a_flag_list_is_one_line_exit_2(repo):
    """`canary start --image` of a vLLM release compose has no flag list for fails before
    planning with one line naming the way out, and writes nothing (also the README's 0.34.0)."""
    from composer_helpers import cli

    readme_start = [c for c in _readme_commands(README_FLOW, 1) if c[:2] == ["canary", "start"]]
    assert readme_start and "0.34.0" in readme_start[0]
    before = tree(repo)
    for argv in (["canary", "start", STABLE, "--image", "vllm/vllm-openai:v0.33.1", "--weight", "10"],
                 ["canary", "start", STABLE, "--image", "v0.33.1", "--weight", "10"],
                 readme_start[0]):
        res = cli(*argv, repo=repo)
        assert res.exit_code == EXIT_INVALID, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: no flag list for vLLM 0."), res.output
        assert "tools/extract_vllm_flags.py" in lines[0] and "--vllm-version 0.33.0" in lines[0]
        assert tree(repo) == before
