"""Security (issue 11) without a cluster: the rules' edges, the repository scan,
owned namespaces, the GitOps input checks, and the new-model security options.

The per-rule negatives are fixtures (tests/test_policy.py); the API server's verdict
is tests/test_pod_security.py; the network policy is tests/test_network_policy.py.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from compose.core import kustomize, names, secrets
from compose.generate import overlay
from compose.verify import policy, security
from composer_helpers import REPO, run, scratch_repo, snapshot

README_OK = "# x\n\n## Single replica\n\nOne replica, minAvailable 0: a drain restarts the model.\n"
DIGEST = "sha256:" + "0123456789abcdef" * 4
# Built at run time so no token-shaped string sits in the repository itself.
FAKE_GH_TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8"

pytestmark = pytest.mark.usefixtures("kubectl")


@pytest.fixture(scope="module")
def base_docs():
    return kustomize.build(REPO / "base/vllm").docs


@pytest.fixture(scope="module")
def plugin_docs():
    return kustomize.build(REPO / "base/nvidia-device-plugin").docs


def _dep(docs):
    return next(d for d in docs if d["kind"] in ("Deployment", "DaemonSet"))


def _ns(docs):
    return next(d for d in docs if d["kind"] == "Namespace")


# --------------------------------------------------------------------------- levels


def test_the_vllm_pod_needs_restricted_and_the_device_plugin_privileged(base_docs, plugin_docs):
    assert security.required_level(_dep(base_docs)["spec"]["template"]["spec"]) == "restricted"
    spec = _dep(plugin_docs)["spec"]["template"]["spec"]
    assert security.required_level(spec) == "privileged"
    assert {v.rule for v in security.pod_security_violations(spec, "x") if v.level == "baseline"} == {"host-path"}


def test_the_device_plugin_passes_in_its_privileged_namespace_with_the_reason(plugin_docs):
    assert policy.check_policy(plugin_docs, "base/nvidia-device-plugin", README_OK) == []
    ns = _ns(plugin_docs)
    assert ns["metadata"]["name"] == "nvidia-device-plugin" == names.ADDON_NAMESPACES[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "hostPath" in ns["metadata"]["annotations"][security.REASON_ANNOTATION]


def test_an_addon_namespace_is_held_to_exactly_the_level_it_needs(plugin_docs):
    docs = copy.deepcopy(plugin_docs)
    labels = _ns(docs)["metadata"]["labels"]
    labels["pod-security.kubernetes.io/enforce"] = "restricted"  # too strict: the rules find the hostPath
    fields = {f.field for f in policy.check_policy(docs, "x", README_OK)}
    assert any(f.endswith("volumes[device-plugins].hostPath") for f in fields), fields
    labels["pod-security.kubernetes.io/enforce"] = "baseline"  # still forbids hostPath
    assert any("hostPath" in f.field for f in policy.check_policy(docs, "x", README_OK))
    # Looser than needed: a privileged namespace whose pods would pass restricted.
    docs = copy.deepcopy(plugin_docs)
    spec = _dep(docs)["spec"]["template"]["spec"]
    spec["volumes"] = []
    spec["containers"][0]["volumeMounts"] = []
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    got = [f for f in policy.check_policy(docs, "x", README_OK) if f.obj == "Namespace/nvidia-device-plugin"]
    assert len(got) == 1 and "admitted under restricted" in got[0].problem, got
    # Privileged without a reason.
    docs = copy.deepcopy(plugin_docs)
    del _ns(docs)["metadata"]["annotations"][security.REASON_ANNOTATION]
    got = policy.check_policy(docs, "x", README_OK)
    assert [f.field for f in got] == [f"metadata.annotations.{security.REASON_ANNOTATION}"]


def test_a_workload_outside_the_build_namespaces_is_held_to_restricted(plugin_docs):
    docs = [d for d in copy.deepcopy(plugin_docs) if d["kind"] != "Namespace"]
    fields = {f.field for f in policy.check_policy(docs, "x", README_OK)}
    assert any("hostPath" in f for f in fields) and any("runAsNonRoot" in f for f in fields)


# --------------------------------------------------------------------------- credentials and images


def test_require_digest(base_docs):
    got = policy.check_policy(base_docs, "base/vllm", README_OK, require_digest=True)
    assert {f.field for f in got} == {"spec.template.spec.initContainers[download-weights].image",
                                      "spec.template.spec.containers[vllm].image"}
    assert all(f.problem.startswith("image vllm/vllm-openai:v0.33.0 is pinned by tag only") for f in got)
    docs = copy.deepcopy(base_docs)
    for where in ("initContainers", "containers"):
        for c in _dep(docs)["spec"]["template"]["spec"][where]:
            c["image"] = f"vllm/vllm-openai:v0.33.0@{DIGEST}"
    assert policy.check_policy(docs, "x", README_OK, require_digest=True) == []


def test_a_secret_on_the_command_line_is_a_finding(base_docs):
    docs = copy.deepcopy(base_docs)
    _dep(docs)["spec"]["template"]["spec"]["containers"][0]["args"].append("--api-key=abc")
    got = policy.check_policy(docs, "x", README_OK)
    assert [(f.field, f.problem.split(":")[0]) for f in got] == [
        ("spec.template.spec.containers[vllm].args", "--api-key passes a secret on the command line")]
    # A token anywhere else (an annotation) is reported too, redacted.
    docs = copy.deepcopy(base_docs)
    _dep(docs)["metadata"]["annotations"]["note"] = f"token {FAKE_GH_TOKEN}"
    got = policy.check_policy(docs, "x", README_OK)
    assert [f.field for f in got] == ["metadata.annotations.note"] and FAKE_GH_TOKEN not in got[0].problem


@pytest.mark.parametrize("text,kind", [
    (FAKE_GH_TOKEN, "github-pat"),
    ("hf_" + "abcdefghij" * 3 + "abcd", "huggingface-access-token"),
    ("AKIAIOSFODNN7EXAMPLE", "aws-access-token"),
    ("https://user:pw@example.com/x", "url-userinfo"),
    ("https://tok123456@github.com/org/repo", "url-userinfo"),
    ("ssh://git:pw@example.com/repo", "url-userinfo"),
])
def test_leaks_are_found_and_redacted(text, kind):
    found = secrets.leaks(f"x {text} y")
    assert [f.kind for f in found][:1] == [kind]
    assert text not in str(found[0])


@pytest.mark.parametrize("text", [
    "https://github.com/org/repo.git", "ssh://git@github.com/org/repo.git", "hf_...", "http://prometheus-operated.monitoring.svc:9090",
    "git@github.com:org/repo.git", "TOKENIZERS_PARALLELISM=false",
])
def test_no_false_positives(text):
    assert secrets.leaks(text) == []


def test_secret_env_names():
    assert all(secrets.secret_env_name(n) for n in ("HF_TOKEN", "VLLM_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD",
                                                       "OPENAI_APIKEY", "GIT_CREDENTIALS"))
    assert not any(secrets.secret_env_name(n) for n in ("TOKENIZERS_PARALLELISM", "MAX_TOKENS", "HF_HUB_OFFLINE",
                                                           "HF_HUB_DISABLE_TELEMETRY", "LOCK_TIMEOUT_SECONDS"))


# --------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize("ns", ["kube-system", "kube-public", "kube-node-lease", "default", "argocd", "flux-system",
                                "monitoring", "nvidia-device-plugin"])
def test_reserved_namespaces_are_refused_with_nothing_written(tmp_path, ns):
    repo = scratch_repo(tmp_path)
    before = snapshot(repo)
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--namespace", ns, repo=repo)
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and f"invalid --namespace '{ns}'" in res.stderr
    assert snapshot(repo) == before


def test_the_prometheus_namespace_of_the_url_is_refused_too(tmp_path):
    repo = scratch_repo(tmp_path)
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--namespace", "obs",
              "--prometheus-url", "http://prom.obs.svc:9090", repo=repo)
    assert res.exit_code == 2 and "Prometheus namespace" in res.stderr


def test_a_shared_namespace_is_refused_and_reported(tmp_path):
    repo = scratch_repo(tmp_path)
    assert run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--name", "a", repo=repo).exit_code == 0
    before = snapshot(repo)
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--name", "b", "--namespace", "dev-a",
              repo=repo)
    assert res.exit_code == 2 and "overlay dev-a already uses it" in res.stderr, res.output
    assert snapshot(repo) == before
    # Regenerating the overlay that owns the namespace is fine.
    assert run("regen", "dev-a", "--check", repo=repo).exit_code == 0
    # A hand edit that shares it is a `check --all` finding.
    shutil.copytree(repo / "overlays" / "dev-a", repo / "overlays" / "dev-c")
    plan = repo / "overlays" / "dev-c" / "compose-plan.yaml"
    plan.write_text(plan.read_text().replace("name: dev-a\n", "name: dev-c\n"))
    found = [f for f in __import__("compose.verify.checks", fromlist=["x"]).check_namespaces(repo)]
    assert {(f.obj, f.check) for f in found} == {("overlays/dev-a", "namespace"), ("overlays/dev-c", "namespace")}
    assert all("used by 2 overlays" in f.problem for f in found)


def test_names_and_gitops_agree_on_reserved_namespaces():
    from compose.publish import gitops

    for ns in (gitops.ARGOCD_NAMESPACE, gitops.FLUX_NAMESPACE, "kube-system", "default", "monitoring"):
        assert names.reserved_namespace(ns)
    assert gitops.addon_namespace("base/nvidia-device-plugin") in names.ADDON_NAMESPACES
    assert names.reserved_namespace("dev-8b") is None and names.reserved_namespace("vllm") is None


# --------------------------------------------------------------------------- the repository scan


@pytest.fixture
def full_repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for part in ("base", "components", "overlays", "argocd", "flux"):
        shutil.copytree(REPO / part, root / part)
    return root


def test_check_all_scans_generated_files_argocd_and_flux_for_credentials(full_repo, crds):
    res = run("check", "--all", "--crd-dir", str(crds), repo=full_repo)
    assert res.exit_code == 0, res.output
    assert "PASS (repository)" in res.stdout
    app = full_repo / "argocd" / "applications" / "prod-70b.yaml"
    app.write_text(app.read_text().replace("https://github.com/", "https://deploy:hunter2@github.com/"))
    ks = full_repo / "flux" / "models" / "dev-8b.yaml"
    ks.write_text(ks.read_text() + f"# {FAKE_GH_TOKEN}\n")
    readme = full_repo / "overlays" / "dev-8b" / "README.md"
    readme.write_text(readme.read_text() + "\nhf_" + "x" * 34 + "\n")
    res = run("check", "--all", "--crd-dir", str(crds), repo=full_repo)
    assert res.exit_code == 1
    out = res.stdout
    assert "FAIL (repository)" in out
    assert "argocd/applications/prod-70b.yaml line" in out and "a URL with credentials (https://depl…@)" in out
    assert "flux/models/dev-8b.yaml line" in out and "github-pat token (ghp_…)" in out
    assert "overlays/dev-8b/README.md line" in out and "huggingface-access-token" in out
    assert "hunter2" not in res.output and FAKE_GH_TOKEN not in res.output


def test_check_all_reports_a_hand_edited_repo_url(full_repo, crds):
    settings = full_repo / "argocd" / "compose-gitops.yaml"
    settings.write_text(settings.read_text().replace("repo_url: https://github.com/", "repo_url: https://github.com/{{x}}/"))
    res = run("check", "--all", "--crd-dir", str(crds), repo=full_repo)
    assert res.exit_code == 1 and "argocd/compose-gitops.yaml repo_url" in res.stdout and "template delimiter" in res.stdout


# --------------------------------------------------------------------------- GitOps inputs


@pytest.mark.parametrize("flavour", ["argocd", "flux"])
@pytest.mark.parametrize("url,why", [
    ("https://user:SECRET@github.com/org/repo.git", "carries credentials"),
    ("https://SECRET@github.com/org/repo.git", "carries credentials"),
    ("https://github.com/{{.org}}/repo.git", "template delimiter"),
    ("https://github.com/org/repo}}.git", "template delimiter"),
    ("ssh://git:SECRET@github.com/org/repo.git", "carries credentials"),
])
def test_repo_url_with_credentials_or_template_is_refused_with_nothing_written(full_repo, flavour, url, why):
    before = snapshot(full_repo)
    res = run("gitops", flavour, "--repo-url", url, repo=full_repo)
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and why in res.stderr
    assert "SECRET" not in res.output
    assert snapshot(full_repo) == before


def test_ssh_account_names_stay_allowed(full_repo):
    res = run("gitops", "argocd", "--repo-url", "ssh://git@github.com/org/repo.git", "--dry-run", repo=full_repo)
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------- new-model options


def _gen(**kw) -> overlay.Generated:
    return overlay.generate(overlay.Options(model="llama-3.1-8b", cloud="eks", gpu="l4", **kw))


def test_image_digest_pins_both_containers(tmp_path):
    repo = scratch_repo(tmp_path)
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--image-digest", DIGEST, repo=repo)
    assert res.exit_code == 0, res.output
    docs = kustomize.build(repo / "overlays" / "dev-llama-3-1-8b").docs
    spec = _dep(docs)["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == {"download-weights": f"vllm/vllm-openai:v0.33.0@{DIGEST}", "vllm": f"vllm/vllm-openai:v0.33.0@{DIGEST}"}
    assert policy.check_policy(docs, "x", README_OK, require_digest=True) == []
    assert f"--image-digest {DIGEST}" in (repo / "overlays" / "dev-llama-3-1-8b" / "README.md").read_text()
    assert run("regen", "dev-llama-3-1-8b", "--check", repo=repo).exit_code == 0


def test_image_with_image_digest_pins_the_given_image(tmp_path):
    """--image (issue 14) with --image-digest (issue 11): the digest pins the image
    --image names, on both containers (patch-image.yaml), with no `images:` entry to
    rewrite it; the tag stays for readers and for the vllm-flags check."""
    repo = scratch_repo(tmp_path)
    image = "registry.example.com/mirror/vllm-openai:v0.33.0-cu130"
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--image", image,
              "--image-digest", DIGEST, repo=repo)
    assert res.exit_code == 0, res.output
    d = repo / "overlays" / "dev-llama-3-1-8b"
    assert "images" not in yaml.safe_load((d / "kustomization.yaml").read_text())
    docs = kustomize.build(d).docs
    spec = _dep(docs)["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == {"download-weights": f"{image}@{DIGEST}", "vllm": f"{image}@{DIGEST}"}
    assert policy.check_policy(docs, "x", README_OK, require_digest=True) == []
    inputs = overlay.load_plan_file(d)["inputs"]
    assert (inputs["image"], inputs["image_digest"]) == (image, DIGEST)
    assert run("check", "dev-llama-3-1-8b", "--require-digest", repo=repo).exit_code == 0
    assert run("regen", "dev-llama-3-1-8b", "--check", repo=repo).exit_code == 0
    # The same digest twice is one pin; two different digests are refused, nothing written.
    same = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--name", "same",
               "--image", f"vllm/vllm-openai:v0.33.0@{DIGEST}", "--image-digest", DIGEST, repo=repo)
    assert same.exit_code == 0, same.output
    spec = _dep(kustomize.build(repo / "overlays" / "dev-same").docs)["spec"]["template"]["spec"]
    assert {c["image"] for c in spec["initContainers"] + spec["containers"]} == {f"vllm/vllm-openai:v0.33.0@{DIGEST}"}
    other = "sha256:" + "cd" * 32
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--name", "clash",
              "--image", f"vllm/vllm-openai:v0.33.0@{other}", "--image-digest", DIGEST, repo=repo)
    assert res.exit_code == 2 and "give the digest once" in res.stderr, res.output
    assert not (repo / "overlays" / "dev-clash").exists()


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 64, DIGEST + "0"])
def test_malformed_digest_is_refused(tmp_path, bad):
    repo = scratch_repo(tmp_path)
    res = run("new-model", "llama-3.1-8b", "--cloud", "eks", "--gpu", "l4", "--image-digest", bad, repo=repo)
    assert res.exit_code == 2 and "invalid --image-digest" in res.stderr
    assert list((repo / "overlays").iterdir()) == []


def test_api_key_secret_wires_vllm_api_key():
    gen = _gen(api_key_secret="llm-key")
    patch = yaml.safe_load(gen.files["patch-api-key.yaml"])
    (env,) = patch["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-key", "key": "api-key",
                                                                           "optional": False}}}
    readme = gen.files["README.md"]
    assert "Authorization: Bearer" in readme and "create secret generic llm-key --from-literal=api-key=" in readme
    # The probes and the scrape keep using /health and /metrics, which vLLM leaves open.
    assert "authenticate.py:11" in gen.files["patch-api-key.yaml"]
    with pytest.raises(Exception, match="invalid --api-key-secret"):
        _gen(api_key_secret="Bad_Name")


def test_network_policy_defaults_per_environment():
    comp = "../../components/network-policy"
    assert comp not in _gen(env="dev").files["kustomization.yaml"]
    for env in ("staging", "prod"):
        gen = _gen(env=env)
        assert comp in gen.files["kustomization.yaml"] and "patch-network-policy.yaml" in gen.files
        values = yaml.safe_load(gen.files["patch-network-policy.yaml"])["spec"]["ingress"][0]["from"][0][
            "namespaceSelector"]["matchExpressions"][0]["values"]
        assert values == ["gateway", "monitoring"]
    assert comp not in _gen(env="prod", network_policy=False).files["kustomization.yaml"]
    assert comp in _gen(env="dev", network_policy=True).files["kustomization.yaml"]
    gen = _gen(env="dev", allow_from=("ingress-nginx", "obs"), prometheus_url="http://p.obs.svc:9090")
    assert comp in gen.files["kustomization.yaml"]
    assert "--allow-from ingress-nginx --allow-from obs" in gen.files["README.md"]
    # The Prometheus namespace follows --prometheus-url.
    values = yaml.safe_load(_gen(env="prod", prometheus_url="http://p.obs.svc:9090").files[
        "patch-network-policy.yaml"])["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert values == ["gateway", "obs"]
    with pytest.raises(Exception, match="--allow-from"):
        _gen(env="dev", allow_from=("x",), network_policy=False)


def test_prometheus_url_with_credentials_is_refused():
    with pytest.raises(Exception, match="invalid --prometheus-url: it carries credentials"):
        _gen(prometheus_url="http://admin:pw@prometheus.monitoring.svc:9090")


# --------------------------------------------------------------------------- Argo CD and Flux never delete a Namespace


def _argocd_destination_permitted(project: dict, namespace: str, server: str = "https://kubernetes.default.svc") -> bool:
    """Argo CD's AppProject.isDestinationMatched (argoproj/argo-cd
    pkg/apis/application/v1alpha1/app_project_types.go), for server + namespace."""
    from fnmatch import fnmatchcase

    def glob(pattern: str, value: str) -> bool:
        if pattern.startswith("!"):
            return not fnmatchcase(value, pattern[1:])
        return pattern == "*" or fnmatchcase(value, pattern)

    any_matched, no_deny = False, True
    for item in project["spec"]["destinations"]:
        server_ok = glob(item.get("server", ""), server)
        ns_ok = glob(item.get("namespace", ""), namespace)
        if server_ok and ns_ok:
            any_matched = True
        elif (not server_ok and item.get("server", "").startswith("!")) or \
                (not ns_ok and item.get("namespace", "").startswith("!")):
            no_deny = False
    return any_matched and no_deny


def test_appproject_owns_model_and_addon_namespaces_only():
    project = yaml.safe_load((REPO / "argocd" / "project.yaml").read_text())
    for ns in ("dev-8b", "prod-70b", "staging-x", "nvidia-device-plugin"):
        assert _argocd_destination_permitted(project, ns), ns
    for ns in ("kube-system", "kube-public", "default", "argocd", "flux-system", "monitoring", "team-a"):
        assert not _argocd_destination_permitted(project, ns), ns
    # Why the project has no `!ns` deny entries: one would permit every other namespace.
    widened = copy.deepcopy(project)
    widened["spec"]["destinations"].append({"server": "https://kubernetes.default.svc", "namespace": "!kube-*"})
    assert _argocd_destination_permitted(widened, "team-a") and not _argocd_destination_permitted(widened, "kube-system")
    assert not any(d["namespace"].startswith("!") for d in project["spec"]["destinations"])
    black = {(e["kind"], e["name"]) for e in project["spec"]["clusterResourceBlacklist"]}
    assert black == {("Namespace", p) for p, _ in names.RESERVED_NAMESPACES if p not in names.ADDON_NAMESPACES}
    assert {"group": "networking.k8s.io", "kind": "NetworkPolicy"} in project["spec"]["namespaceResourceWhitelist"]


def test_addon_application_targets_its_own_namespace():
    app = yaml.safe_load((REPO / "argocd" / "applications" / "addon-nvidia-device-plugin.yaml").read_text())
    assert app["spec"]["destination"]["namespace"] == "nvidia-device-plugin"
    assert "CreateNamespace=true" not in app["spec"]["syncPolicy"]["syncOptions"]  # the add-on renders its Namespace
    appset = yaml.safe_load((REPO / "argocd" / "applicationset-addons.yaml").read_text())
    assert appset["spec"]["template"]["spec"]["destination"]["namespace"] == "{{.path.basename}}"


@pytest.mark.parametrize("directory", ["base/vllm", "base/nvidia-device-plugin"]
                         + [f"overlays/{p.name}" for p in overlay.list_overlay_dirs(REPO)])
def test_every_namespace_is_never_pruned_or_deleted(directory):
    """Argo CD: `Prune=false,Delete=false` on the Namespace overrides the Application's
    automated prune and its resources finalizer for that object (argo-cd
    docs/user-guide/sync-options.md); Flux: `kustomize.toolkit.fluxcd.io/prune: disabled`
    skips it in garbage collection, also when the Kustomization is deleted."""
    (ns,) = [d for d in kustomize.build(REPO / directory).docs if d["kind"] == "Namespace"]
    ann = ns["metadata"]["annotations"]
    assert set(ann["argocd.argoproj.io/sync-options"].split(",")) == {"Prune=false", "Delete=false"}
    assert ann["kustomize.toolkit.fluxcd.io/prune"] == "disabled"


def test_applications_that_prune_are_schema_valid(crds):
    """The Applications keep prune and the resources finalizer (everything but the
    Namespace is cleaned up) and validate against the Argo CD v3.5.1 CRDs."""
    from compose.verify import validate

    docs = []
    for path in sorted((REPO / "argocd").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text())
                 if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("argoproj.io/")]
    apps = [d for d in docs if d["kind"] == "Application" and d["spec"]["project"] == "vllm-compose"]
    assert apps and all(a["spec"]["syncPolicy"]["automated"]["prune"] for a in apps)
    assert all("resources-finalizer.argocd.argoproj.io" in a["metadata"]["finalizers"] for a in apps)
    assert validate.validate_custom(docs, "argocd", crds) == []


def test_security_options_are_recorded_and_replayed(tmp_path):
    repo = scratch_repo(tmp_path)
    res = run("new-model", "qwen3-0.6b", "--cloud", "eks", "--gpu", "l4", "--allow-from", "gw", "--allow-from", "obs",
              "--api-key-secret", "llm-key", "--image-digest", DIGEST, repo=repo)
    assert res.exit_code == 0, res.output
    inputs = overlay.load_plan_file(repo / "overlays" / "dev-qwen3-0-6b")["inputs"]
    assert inputs["allow_from"] == ["gw", "obs"] and inputs["api_key_secret"] == "llm-key"
    assert inputs["image_digest"] == DIGEST and "network_policy" not in inputs
    assert run("regen", "dev-qwen3-0-6b", "--check", repo=repo).exit_code == 0
    docs = kustomize.build(repo / "overlays" / "dev-qwen3-0-6b").docs
    (np,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    # The clients' namespaces, and always Prometheus' (whose scrape feeds KEDA).
    assert np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "gw", "monitoring", "obs"]
    assert policy.check_policy(docs, "x", README_OK, require_digest=True) == []
