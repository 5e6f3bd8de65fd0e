"""checkov (bridgecrewio/checkov, the test extra) cross-checks compose's security rules.

One offline run (`--skip-download`: no Prisma Cloud call) of checkov's Kubernetes
checks over the rendered manifests:

- every committed build (base/vllm, base/nvidia-device-plugin, overlays/*) and two
  generated overlays (prod with an API key and a pinned digest; staging): nothing fails
  but the documented skips (SKIPS, each with its reason) and the expected cases below;
- the broken fixtures that break something checkov also checks: checkov flags the same
  thing compose does (CROSS), so the hand-written rules agree with a maintained engine;
- the fixtures checkov has no check for (ONLY_COMPOSE): checkov passes them, which is
  why compose keeps its own rules (README.md, "Security: who checks what").

Skipped (one line) when checkov is not installed; `CHECKOV=/path/to/checkov` picks one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compose.core import kustomize
from compose.generate import overlay
from composer_helpers import REPO, scratch_repo

pytestmark = pytest.mark.usefixtures("kubectl")

# Checks that fail on purpose, everywhere, with the reason.
SKIPS = {
    "CKV_K8S_11": "no CPU limit, deliberately: CFS throttling of the tokenizer and scheduler threads hurts latency; "
                  "CPU is requested (base/README.md)",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: the image is pinned (tag, and digest with --image-digest), and "
                  "pulling 10+ GB again on every start would only slow recovery",
    "CKV_K8S_22": "writable root filesystem: the NVIDIA container toolkit's CDI hooks write into it at container "
                  "creation (NVIDIA/nvidia-container-toolkit#1326, #2026; kserve/kserve#5711)",
    "CKV_K8S_35": "VLLM_API_KEY and HF_TOKEN come from Secrets as environment variables: vLLM and huggingface_hub "
                  "read them only from the environment (vllm/envs.py)",
    "CKV_K8S_40": "uid 1000, not >= 10000: the documented owner of the model cache (fsGroup 1000, chown 1000:1000); "
                  "no hostPath or host namespace is shared, so a host uid clash has no surface",
}
# Fails only where compose knowingly allows it.
DIGEST_CHECK = "CKV_K8S_43"  # "Image should use digest": only with --image-digest (no public v0.33.0 digest exists)
NETPOL_CHECK = "CKV2_K8S_6"  # "pods which lack an associated NetworkPolicy": dev overlays and the bases
# The device plugin is NVIDIA's static manifest in a privileged namespace.
ADDON_EXPECTED = {
    "CKV_K8S_8": "no liveness probe in NVIDIA's static manifest (the kubelet re-registers the plugin)",
    "CKV_K8S_9": "no readiness probe in NVIDIA's static manifest (it serves the kubelet, not a Service)",
    "CKV_K8S_10": "no CPU request in NVIDIA's manifest; system-node-critical priority instead",
    "CKV_K8S_12": "no memory request in NVIDIA's manifest",
    "CKV_K8S_13": "no memory limit in NVIDIA's manifest",
    "CKV_K8S_23": "runs as the image's user: it needs the kubelet's root-owned device-plugin socket directory",
    "CKV_K8S_29": "no pod securityContext: the namespace is privileged for the hostPath (base/nvidia-device-plugin/namespace.yaml)",
    "CKV_K8S_31": "no seccomp profile, as NVIDIA ships it",
}

# fixture -> the checkov checks that catch the same thing as compose's rule.
CROSS = {
    "privileged-container": {"CKV_K8S_16", "CKV_K8S_20"},  # the fixture also drops allowPrivilegeEscalation: false
    "host-network": {"CKV_K8S_19"},
    "host-port": {"CKV_K8S_26"},
    "capability-sys-admin": {"CKV_K8S_25", "CKV_K8S_39"},
    "privilege-escalation": {"CKV_K8S_20"},
    "seccomp-unconfined": {"CKV_K8S_31"},
    "sa-token-automounted": {"CKV_K8S_38"},
    "image-latest": {"CKV_K8S_14"},
    "image-untagged": {"CKV_K8S_14"},
}
# fixture -> why only compose catches it.
ONLY_COMPOSE = {
    "host-path-volume": "checkov has no generic hostPath check (CKV_K8S_27 covers only the Docker socket)",
    "run-as-root": "CKV_K8S_23 passes on runAsNonRoot: true even with runAsUser: 0",
    "api-key-inline": "the kubernetes framework has no inline-secret check (CKV_K8S_35 is about secretKeyRef)",
    "hf-token-inline": "as api-key-inline",
    "emptydir-unbounded": "no emptyDir sizeLimit check",
    "image-digest-malformed": "CKV_K8S_43 accepts any '@' suffix",
    "namespace-without-psa": "no Namespace checks",
    "url-with-credentials": "no custom-resource checks (ScaledObject)",
    "apparmor-unconfined": "no check of securityContext.appArmorProfile",
    "apparmor-annotation-unconfined": "no check of the container.apparmor.security.beta.kubernetes.io annotation's value",
    "proc-mount-unmasked": "no procMount check",
    "sysctl-unsafe": "no sysctls check",
    "selinux-custom-type": "no seLinuxOptions check",
    "windows-host-process": "no windowsOptions.hostProcess check",
}


def checkov_bin() -> str | None:
    """$CHECKOV, else `checkov` beside this Python (pip's scripts directory), else on PATH."""
    beside = Path(sys.executable).parent / "checkov"
    return os.environ.get("CHECKOV") or (str(beside) if beside.is_file() else None) or shutil.which("checkov")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, set[str]]:
    """{rendered file name: failed check ids} for one offline checkov run."""
    exe = checkov_bin()
    if not exe:
        pytest.skip("checkov not installed: pip install -e '.[test]' (or set CHECKOV=/path/to/checkov)")
    out = tmp_path_factory.mktemp("checkov")
    builds = {"base-vllm": REPO / "base/vllm", "addon": REPO / "base/nvidia-device-plugin"}
    builds |= {f"overlay-{d.name}": d for d in overlay.list_overlay_dirs(REPO)}
    builds |= {f"fixture-{f}": REPO / "tests/fixtures/broken" / f for f in [*CROSS, *ONLY_COMPOSE]}
    repo = scratch_repo(tmp_path_factory.mktemp("checkov-repo"))
    for opts in (overlay.Options(model="qwen3-0.6b", env="prod", cloud="eks", gpu="l4", name="pinned",
                                 api_key_secret="vllm-api-key", image_digest="sha256:" + "ab" * 32),
                 overlay.Options(model="qwen3-0.6b", env="staging", cloud="gke", gpu="l4", spot=True)):
        gen = overlay.generate(opts, repo)
        d = repo / "overlays" / gen.name
        d.mkdir()
        for rel, text in gen.files.items():
            (d / rel).write_text(text)
        builds[f"generated-{gen.name}"] = d
    for name, d in builds.items():
        (out / f"{name}.yaml").write_text(kustomize.build(d).text)
    proc = subprocess.run(
        [exe, "-d", str(out), "--framework", "kubernetes", "--skip-download", "--quiet", "--compact",
         "-o", "json", "--skip-check", ",".join(sorted(SKIPS))],
        capture_output=True, text=True, timeout=600, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed: dict[str, set[str]] = {f"{n}.yaml": set() for n in builds}
    for r in reports:
        for f in r["results"]["failed_checks"]:
            failed[Path(f["file_path"]).name].add(f["check_id"])
        assert r["summary"]["parsing_errors"] == 0
    return failed


def test_committed_and_generated_builds_fail_only_what_is_documented(results):
    for name, failed in sorted(results.items()):
        if name.startswith("fixture-"):
            continue
        # Tag-pinned everywhere but the overlay generated with --image-digest.
        expected = set() if name == "generated-prod-pinned.yaml" else {DIGEST_CHECK}
        if name in ("base-vllm.yaml", "overlay-dev-8b.yaml", "addon.yaml"):
            expected.add(NETPOL_CHECK)  # no network-policy component in dev (or on the add-on)
        if name == "addon.yaml":
            expected |= set(ADDON_EXPECTED)
        assert failed == expected, (name, sorted(failed ^ expected))
    assert not set(SKIPS) & set().union(*results.values())  # the skips were honoured


@pytest.mark.parametrize("fixture", sorted(CROSS))
def test_checkov_agrees_with_compose_on(results, fixture):
    base = results["base-vllm.yaml"]
    assert results[f"fixture-{fixture}.yaml"] - base == CROSS[fixture]


@pytest.mark.parametrize("fixture", sorted(ONLY_COMPOSE))
def test_only_compose_catches(results, fixture):
    """If checkov starts catching one of these, move the row in README.md's table."""
    assert results[f"fixture-{fixture}.yaml"] - results["base-vllm.yaml"] == set(), ONLY_COMPOSE[fixture]
