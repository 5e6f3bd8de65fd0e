"""Each policy invariant rejects a fixture overlay that breaks exactly that invariant.

Fixtures live in tests/fixtures/broken/<case>/: a kustomization over
../../../../base/vllm (plus a cloud/spot component where the rule needs one) and
one patch-broken.yaml. tests/ is excluded from the repository-wide discovery in
test_manifests.py, so these never count as deployable builds.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from compose.verify import policy
from helpers_kube import FIXTURES, REPO, build, build_many, require_kubectl

README_OK = "# x\n\n## Single replica\n\nOne replica, minAvailable 0: a drain restarts the model.\n"

# case -> (rule id, a fragment of the field, fragments the problem must contain)
CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "memory-request-below-limit": ("memory-requests-equal-limits", "initContainers[download-weights].resources",
                                   ("memory request 2Gi differs from the limit 4Gi",)),
    "cpu-request-missing": ("cpu-requests", "requests.cpu", ("requests no CPU",)),
    "gpu-request-differs": ("gpu-requests-equal-limits-and-tp", "containers[vllm].resources",
                            ("nvidia.com/gpu request (1) and limit (2) differ",)),
    "gpu-not-tensor-parallel": ("gpu-requests-equal-limits-and-tp", "limits.nvidia.com/gpu",
                                ("--tensor-parallel-size=2", "fails to start")),
    "startup-budget-below-floor": ("startup-budget", "startupProbe", ("startup budget 100 s", "300 s")),
    "startup-budget-below-estimate": ("startup-budget", "startupProbe",
                                      ("startup budget 280 s", "900 s", "load-seconds-estimate")),
    "overlay-without-estimate": ("startup-budget", "load-seconds-estimate", ("no load-time estimate",)),
    "grace-below-drain": ("grace-period", "terminationGracePeriodSeconds", ("40 < preStop 15 s + --shutdown-timeout", "the kubelet SIGKILLs vLLM")),
    "grace-without-margin": ("grace-period", "terminationGracePeriodSeconds", ("leaves 0 s", "margin")),
    "shutdown-timeout-missing": ("shutdown-timeout", "containers[vllm].args", ("no --shutdown-timeout",)),
    "scaledobject-target-missing": ("scaledobject-target", "spec.scaleTargetRef", ("vllm-server names no Deployment",)),
    "keda-query-not-aggregated": ("keda-query", "metadata.query", ("does not aggregate",)),
    "keda-query-wrong-model": ("keda-query", "metadata.query", ('model_name="llama-3.1-8b"', "returns nothing")),
    "keda-query-model-label": ("keda-query", "metadata.query", ("does not filter on model_name",)),
    "keda-metric-type-value": ("keda-query", "metricType", ("metricType is Value",)),
    "keda-ignore-null-values": ("keda-query", "ignoreNullValues", ("reads as 0",)),
    "keda-min-above-max": ("keda-min-max", "minReplicaCount", ("minReplicaCount 3 > maxReplicaCount 1",)),
    "model-dir-mismatch": ("model-path", "env[MODEL_DIR]", ("writes the weights to /models/Llama-3.1-8B-Instruct",)),
    "hf-hub-offline-missing": ("model-path", "containers[vllm].env", ("HF_HUB_OFFLINE=1",)),
    "hf-token-inline": ("hf-token-secret", "env[HF_TOKEN]", ("inline",)),
    "image-latest": ("image-tags", "containers[vllm].image", ("floating tag :latest",)),
    "image-untagged": ("image-tags", "initContainers[download-weights].image", ("has no tag",)),
    "removed-flag": ("vllm-flags", "args", ("--swap-space was removed",)),
    "unknown-flag": ("vllm-flags", "args", ("--max-num-seq is not a `vllm serve` flag",)),
    "probe-timeout-short": ("probe-timeouts", "readinessProbe.timeoutSeconds", ("timeoutSeconds is 1",)),
    "replicas-under-keda": ("no-replicas-under-keda", "spec.replicas", ("KEDA owns scale",)),
    "pdb-blocks-drain": ("pdb-vs-min-replicas", "minAvailable", ("keeps 1 of 1 pods", "drain hangs")),
    "pdb-if-healthy-budget": ("pdb-unhealthy-eviction", "unhealthyPodEvictionPolicy", ("IfHealthyBudget",)),
    "dev-shm-unbounded": ("dev-shm", "volumes[dshm].emptyDir.sizeLimit", ("no sizeLimit",)),
    "service-links-on": ("service-links", "enableServiceLinks", ("VLLM_PORT",)),
    "rolling-max-unavailable": ("rolling-update", "maxUnavailable", ("maxUnavailable is 1",)),
    "spot-drain-cut-to-notice": ("spot-drain", "containers[vllm].args", ("--shutdown-timeout=6 looks cut to gke's 15 s",
                                                                          "rollouts, scale-in")),
    "runtime-class-on-eks": ("runtime-class", "runtimeClassName", ('RuntimeClass "nvidia" not found',)),
    "runtime-class-missing-on-k3s": ("runtime-class", "runtimeClassName", ("unset on k3s",)),
    "rwo-cache-on-gke": ("rwo-cache-only-on-k3s", "spec.accessModes", ("ReadWriteOnce on gke", "Multi-Attach")),
    "service-selects-nothing": ("service-selects-pods", "spec.selector", ("matches no pod",)),
    "route-backend-without-port": ("route-backends", "backendRefs[vllm]", ("Service backend without a port",)),
    "route-timeout-below-answer": ("route-timeout", "timeouts", ("timeout 300s is shorter", "16383 s",
                                                                         "--max-model-len 8192 - 1")),
    "pool-wrong-target-port": ("inference-pool", "spec.targetPorts", ("target port 9000",)),
    # Security (compose/verify/security.py): Pod Security baseline ...
    "privileged-container": ("privileged", "containers[vllm].securityContext", ("privileged: true",)),
    "host-network": ("host-namespaces", "spec.template.spec.hostNetwork", ("node's network namespace",)),
    "host-path-volume": ("host-path", "volumes[host-root].hostPath", ("hostPath volume '/'",)),
    "host-port": ("host-port", "ports[http].hostPort", ("hostPort 8000",)),
    "capability-sys-admin": ("capabilities", "capabilities.add", ("adds SYS_ADMIN",)),
    "seccomp-unconfined": ("seccomp", "seccompProfile.type", ("Unconfined",)),
    "apparmor-unconfined": ("apparmor", "containers[vllm].securityContext.appArmorProfile.type",
                            ("appArmorProfile Unconfined",)),
    "apparmor-annotation-unconfined": ("apparmor", "annotations[container.apparmor.security.beta.kubernetes.io/vllm]",
                                       ("AppArmor profile 'unconfined'", "container vllm")),
    "proc-mount-unmasked": ("proc-mount", "containers[vllm].securityContext.procMount", ("procMount Unmasked",)),
    "sysctl-unsafe": ("sysctls", "securityContext.sysctls[net.core.somaxconn]", ("net.core.somaxconn", "safe set")),
    "selinux-custom-type": ("selinux", "containers[vllm].securityContext.seLinuxOptions", ("type spc_t",)),
    "windows-host-process": ("windows-host-process", "securityContext.windowsOptions.hostProcess",
                             ("hostProcess: true",)),
    # ... and restricted
    "run-as-root": ("run-as-non-root", "securityContext.runAsUser", ("runAsUser: 0",)),
    "privilege-escalation": ("privilege-escalation", "allowPrivilegeEscalation", ("allowPrivilegeEscalation is True",)),
    # Namespaces
    "namespace-without-psa": ("namespace-pod-security", "metadata.labels", ("no Pod Security label",)),
    "namespace-privileged": ("namespace-pod-security", "pod-security.kubernetes.io/enforce", ("enforces privileged",)),
    "namespace-kube-system": ("namespace-reserved", "metadata.name", ("Namespace kube-system",)),
    "namespace-prunable": ("namespace-protected", "sync-options", ("prune and delete",)),
    # Pods: token, emptyDir; credentials; images
    "sa-token-automounted": ("service-account-token", "automountServiceAccountToken", ("ServiceAccount default",)),
    "emptydir-unbounded": ("emptydir-size-limit", "volumes[home].emptyDir.sizeLimit", ("no sizeLimit",)),
    "api-key-inline": ("secret-env-inline", "env[VLLM_API_KEY]", ("written inline",)),
    "token-in-env": ("secret-env-inline", "env[DOWNLOAD_OPTS]", ("aws-access-token",)),
    "url-with-credentials": ("secret-in-url", "metadata.serverAddress", ("URL with credentials", "http://admi…@")),
    "image-digest-malformed": ("image-digest", "containers[vllm].image", ("is not a digest",)),
    "network-policy-blocks-prometheus": ("network-policy-flows", "spec.ingress", ("namespace monitoring", "falls back")),
    "network-policy-https-to-cluster": ("network-policy-flows", "spec.egress[1].to[0].ipBlock.except",
                                        ("ipBlock 0.0.0.0/0 does not except 10.0.0.0/8, 100.64.0.0/10, 172.16.0.0/12, "
                                         "192.168.0.0/16",)),
    "capacity-on-demand-missing": ("capacity-type", "spec.template.spec.affinity.nodeAffinity",
                                   ("karpenter.sh/capacity-type=spot", "Karpenter prefers spot")),
    "spread-minimum-may-share-a-node": ("spread", "topologySpreadConstraints",
                                        ("minimum of 2 replicas has minDomains unset", "stacks")),
    "prod-single-replica": ("prod-replicas", "spec.minReplicaCount", ("prod model runs a minimum of 1",)),
    "keda-fallback-static": ("keda-fallback", "spec.fallback", ("behavior is static", "jumps above its minimum")),
    "gpu-vendor-mismatch": ("gpu-vendor", "containers[vllm].resources",
                            ("requests amd.com/gpu (amd)", "CUDA build", "nvidia.com/gpu.present=true")),
}


@pytest.fixture(scope="module")
def builds():
    require_kubectl()
    dirs = [FIXTURES / "broken" / case for case in CASES]
    out = build_many(dirs)
    return {case: out[str(FIXTURES / "broken" / case)] for case in CASES}


def test_every_fixture_has_a_case_and_every_rule_a_fixture():
    on_disk = {p.name for p in (FIXTURES / "broken").iterdir() if p.is_dir()}
    assert on_disk == set(CASES), on_disk ^ set(CASES)
    assert {rule for rule, _, _ in CASES.values()} == set(policy.RULES)


def test_the_base_passes_every_rule():
    findings = policy.check_policy(build(str(REPO / "base/vllm")).docs, "base/vllm", README_OK)
    assert findings == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_policy_rejects_broken_fixture(case, builds):
    rule, field, fragments = CASES[case]
    rendered = builds[case]
    assert not isinstance(rendered, Exception), f"fixture {case} does not build: {rendered}"
    findings = policy.check_policy(rendered.docs, f"tests/fixtures/broken/{case}", README_OK)
    matching = [f for f in findings if field in f.field and all(x in f.problem for x in fragments)]
    assert matching, f"{case}: expected a finding on *{field}* with {fragments}; got:\n" + "\n".join(map(str, findings))
    # The fixture breaks one thing: nothing else is reported ...
    assert all(field in f.field for f in findings), "\n".join(map(str, findings))
    # ... and it is the named rule that catches it, with a fix to apply.
    assert policy.check_policy(rendered.docs, case, README_OK, rules=[rule])
    assert all(f.fix and f.check == "policy" and f.obj != "-" for f in matching)


def test_single_replica_needs_the_readme_trade_off():
    docs = build(str(REPO / "base/vllm")).docs
    findings = policy.check_policy(docs, "base/vllm", readme_text=None)
    assert [f.field for f in findings] == ["spec.minAvailable"]
    assert "single-replica trade-off" in findings[0].problem and "Single replica" in findings[0].fix
    assert policy.check_policy(docs, "base/vllm", "## Single-replica deployments\n...") == []
    assert policy.check_policy(docs, "overlays/x", "See [the trade-off](../../base/README.md#single-replica).") == []
    assert policy.check_policy(docs, "base/vllm", "We run a single replica.") != []  # prose is not the marker


def test_findings_are_all_collected():
    """Several broken things at once: every one is reported, not just the first."""
    docs = build(str(REPO / "base/vllm")).docs
    import copy

    docs = copy.deepcopy(docs)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    spec["enableServiceLinks"] = True
    spec["containers"][0]["image"] = "vllm/vllm-openai:latest"
    dep["spec"]["replicas"] = 3
    rules = {f.field for f in policy.check_policy(docs, "x", README_OK)}
    assert {"spec.template.spec.enableServiceLinks", "spec.replicas",
            "spec.template.spec.containers[vllm].image"} <= rules


def test_load_seconds_callable_overrides_the_annotation():
    docs = build(str(REPO / "base/vllm")).docs
    assert policy.check_policy(docs, "x", README_OK, load_seconds=lambda d: 200) == []
    found = policy.check_policy(docs, "x", README_OK, load_seconds=lambda d: 700)
    assert [f.field for f in found] == ["spec.template.spec.containers[vllm].startupProbe"]
    assert "raise failureThreshold to at least 70" in found[0].fix


# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("query, ok", [
    ('sum(vllm:num_requests_waiting{model_name="m", namespace="n"})', True),
    ('avg(vllm:num_requests_waiting{model_name="m"})', True),
    ('sum(rate(vllm:request_success_total{model_name="m"}[1m]))', True),
    ('vllm:num_requests_waiting{model_name="m"}', False),
    ('sum by (pod) (vllm:num_requests_waiting{model_name="m"})', False),
    ('sum(vllm:num_requests_waiting{model_name="m"}) by (pod)', False),
    ('sum(vllm:num_requests_waiting{model_name="m"}) or vector(0)', False),
    ('rate(vllm:x[1m])', False),
])
def test_query_shape(query, ok):
    assert (policy.query_shape_problems(query) == []) is ok


def test_parse_vllm_args_reads_every_form():
    c = {"command": ["vllm", "serve"],
         "args": ["/models/m", "--served-model-name", "name", "--tensor_parallel_size=4", "--enable-prefix-caching",
                  "--max-model-len", "8192", "-tp", "2", "--seed", "-1"]}
    a = policy.parse_vllm_args(c)
    assert a.model == "/models/m"
    assert a.first("--served-model-name") == "name"
    assert a.flags["--tensor-parallel-size"] == ["4", "2"]  # the alias counts; last one wins
    assert a.flags["--enable-prefix-caching"] == [None]
    assert a.first("--seed") == "-1"
    assert a.tokens == ["--served-model-name", "--tensor_parallel_size=4", "--enable-prefix-caching",
                        "--max-model-len", "-tp", "--seed"]


@pytest.mark.parametrize("text, value", [
    ("32Gi", Fraction(32 * 2**30)), ("34359738368", Fraction(34359738368)), ("500m", Fraction(1, 2)),
    ("1.5Gi", Fraction(3 * 2**29)), ("1e3", Fraction(1000)), (4, Fraction(4)), ("lots", None),
])
def test_parse_quantity(text, value):
    assert policy.parse_quantity(text) == value


def test_flag_list_is_the_pinned_release():
    flags = policy.valid_flags("0.33.0")
    assert {"--shutdown-timeout", "--max-num-queued-reqs", "--served-model-name"} <= flags
    assert not set(policy.REMOVED_FLAGS) & flags
    assert policy.valid_flags("0.0.1") is None


def test_gpu_vendor_rejects_the_old_mi300x_overlay():
    """What compose used to write for --gpu mi300x: an NVIDIA pod labelled mi300x."""
    import copy

    docs = copy.deepcopy(build(str(REPO / "base/vllm")).docs)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    labels = dep["spec"]["template"]["metadata"].setdefault("labels", {})
    labels[policy.GPU_LABEL] = "l4"
    assert policy.check_policy(docs, "x", README_OK, rules=["gpu-vendor"]) == []
    labels[policy.GPU_LABEL] = "mi300x"
    (finding,) = policy.check_policy(docs, "x", README_OK, rules=["gpu-vendor"])
    assert finding.field.endswith("labels.vllm-compose.io/gpu") and "Pod Security" in finding.problem


def test_spread_rule_cases():
    import copy

    base = build(str(REPO / "base/vllm")).docs

    def variant(max_replicas=3, min_replicas=1, cloud=None, edit=None):
        docs = copy.deepcopy(base)
        so = next(d for d in docs if d["kind"] == "ScaledObject")
        so["spec"].update(minReplicaCount=min_replicas, maxReplicaCount=max_replicas)
        so["spec"]["fallback"]["replicas"] = min_replicas
        dep = next(d for d in docs if d["kind"] == "Deployment")
        if cloud:
            dep["metadata"]["annotations"][policy.CLOUD_ANNOTATION] = cloud
        if edit:
            edit(dep["spec"]["template"]["spec"])
        return [f.problem for f in policy.check_policy(docs, "x", README_OK, rules=["spread"])]

    assert variant() == []  # the base's spread covers any maximum above a floor of 1
    assert variant(max_replicas=1) == []
    assert any("share one node" in p for p in variant(edit=lambda s: s.pop("topologySpreadConstraints")))
    assert any("no zone spread" in p for p in variant(edit=lambda s: s["topologySpreadConstraints"].pop(1)))

    def zone_hard(spec):
        spec["topologySpreadConstraints"][1]["whenUnsatisfiable"] = "DoNotSchedule"
    assert any("zone spread is DoNotSchedule" in p for p in variant(edit=zone_hard))

    def min_domains(spec):
        spec["topologySpreadConstraints"][0]["minDomains"] = 2
    assert variant(min_replicas=2, edit=min_domains) == []
    # A single-node k3s box shares its node by design.
    assert variant(min_replicas=2, cloud="k3s", edit=lambda s: s.pop("topologySpreadConstraints")) == []


def test_prod_single_replica_with_a_reason_passes():
    import copy

    docs = copy.deepcopy(build(str(FIXTURES / "broken" / "prod-single-replica")).docs)
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    so["metadata"].setdefault("annotations", {})[policy.SINGLE_REPLICA_REASON] = "batch embeddings; a cold start is fine"
    assert policy.check_policy(docs, "x", README_OK) == []
    so["metadata"]["annotations"][policy.SINGLE_REPLICA_REASON] = "  "
    assert [f.field for f in policy.check_policy(docs, "x", README_OK)] == ["spec.minReplicaCount"]


@pytest.mark.parametrize("fallback, problem", [
    ({"behavior": "currentReplicasIfHigher", "replicas": 1}, None),
    ({"behavior": "currentReplicas", "replicas": 9}, None),
    ({"behavior": "currentReplicasIfHigher", "replicas": 3}, "jumps to 3 replicas"),
    ({"behavior": "currentReplicasIfLower", "replicas": 1}, "drops capacity"),
    ({"replicas": 1}, "scales the model down"),
])
def test_keda_fallback_behaviours(fallback, problem):
    import copy

    docs = copy.deepcopy(build(str(REPO / "base/vllm")).docs)
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    so["spec"]["fallback"] = {"failureThreshold": 3, **fallback}
    found = policy.check_policy(docs, "x", README_OK, rules=["keda-fallback"])
    assert (problem is None and found == []) or (problem and problem in found[0].problem), found
