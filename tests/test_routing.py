"""Routes, inference pools and Istio objects (issue 14): what each option renders, that it
validates against the pinned CRDs and the policy, and that the pieces agree with each other
(ports, names, flags, metric names). The real API server's verdict: test_routing_cluster.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from compose.core.errors import InvalidInput
from compose.generate import overlay, routing
from compose.plan import metrics as m
from compose.verify import checks, policy, validate
from composer_helpers import run
from routing_helpers import GATEWAY, LLAMA, QWEN, REPO, built, container, empty_repo, objects, one

pytestmark = pytest.mark.usefixtures("kubectl")

ROUTING_COMPONENTS = ("gateway", "inference-pool", "inference-pool-istio", "istio")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Three routed models: Service router, inference pool, Istio."""
    root = empty_repo(tmp_path_factory.mktemp("routing"))
    for options in (
        dict(QWEN, gateway=GATEWAY, hostname="llm.example.com"),
        dict(LLAMA, gateway=GATEWAY, router="inference-pool"),
        dict(QWEN, name="mesh", gateway="istio-system/public", mesh="istio"),
    ):
        overlay.write(root, overlay.Options(**options))
    return root


def _docs(repo: Path, name: str) -> list[dict]:
    return built(repo / "overlays" / name)


def _plan(repo: Path, name: str) -> dict:
    return overlay.load_plan_file(repo / "overlays" / name)["plan"]


# --------------------------------------------------------------------------- the HTTPRoute


def test_service_route_matches_the_model_header_and_the_path(repo):
    docs = _docs(repo, "dev-qwen2-5-7b")
    plan = _plan(repo, "dev-qwen2-5-7b")
    route = one(docs, "HTTPRoute")
    assert route["metadata"] == {**route["metadata"], "name": "dev-qwen2-5-7b-vllm", "namespace": "dev-qwen2-5-7b"}
    spec = route["spec"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": "gateway-system", "name": "inference"}]
    assert spec["hostnames"] == ["llm.example.com"]
    header, path = spec["rules"]
    assert header["name"] == "model-header" and path["name"] == "path-prefix"
    assert header["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [
        {"type": "Exact", "name": "X-Gateway-Model-Name", "value": plan["served_model_name"]}]}]
    assert path["matches"] == [{"path": {"type": "PathPrefix", "value": "/dev-qwen2-5-7b"}}]
    assert path["filters"] == [{"type": "URLRewrite", "urlRewrite": {
        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
    service = one(docs, "Service", "dev-qwen2-5-7b-vllm")
    for rule in (header, path):
        assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": service["metadata"]["name"],
                                        "port": 8000}]
        assert rule["timeouts"] == {"request": routing.route_timeout(plan).duration,
                                    "backendRequest": routing.route_timeout(plan).duration}
    # The route's port is the Service's `http` port, which targets vLLM's --port.
    assert [p["port"] for p in service["spec"]["ports"] if p["name"] == "http"] == [routing.VLLM_PORT]
    vllm = container(one(docs, "Deployment", "dev-qwen2-5-7b-vllm"), "vllm")
    assert f"--port={routing.VLLM_PORT}" in vllm["args"]
    assert {"name": "http", "containerPort": routing.VLLM_PORT, "protocol": "TCP"} in vllm["ports"]


@pytest.mark.parametrize("match, rules", [("header", ["model-header"]), ("path", ["path-prefix"])])
def test_route_match_picks_the_rules(tmp_path, match, rules):
    opts = overlay.Options(**QWEN, gateway=GATEWAY, route_match=match)
    gen = overlay.generate(opts)
    (route,) = yaml.safe_load_all(gen.files["patch-route.yaml"])
    assert [r["name"] for r in route["spec"]["rules"]] == rules
    assert "&id" not in gen.files["patch-route.yaml"], "no YAML anchors in generated files"


def test_overlays_with_routes_pass_compose_check(repo, crds):
    dirs = [repo / "overlays" / n for n in ("dev-qwen2-5-7b", "dev-llama-3-1-8b", "dev-mesh")]
    reports = checks.check_directories(repo, dirs, crd_dir=crds)
    assert [(r.source, [str(f) for f in r.findings]) for r in reports] == [(r.source, []) for r in reports]


def test_every_routing_object_validates_against_the_pinned_crds(repo, crds):
    kinds = set()
    for name in ("dev-qwen2-5-7b", "dev-llama-3-1-8b", "dev-mesh"):
        docs = _docs(repo, name)
        kinds |= {d["kind"] for d in docs}
        assert validate.validate_custom(docs, name, crds) == []
        assert validate.validate_core(docs, name) == []
    assert kinds >= {"HTTPRoute", "InferencePool", "VirtualService", "DestinationRule", "Role", "RoleBinding",
                     "ServiceAccount"}


# --------------------------------------------------------------------------- timeouts


def test_route_timeout_covers_the_longest_request_the_plan_allows():
    # A 4096-token cap at 10 tokens/s: 409.6 s of queue + 1 s prefill + 409.6 s generation = 820.2 s;
    # x 1.5 = 1230.3 s, in whole minutes 1260 s.
    t = routing.route_timeout({"request": {"max_output_tokens": 4096}, "max_model_len": 32768,
                               "decode_tokens_per_second": 10.0})
    assert t.seconds == 1260 and t.duration == "1260s"
    assert t.longest_request_seconds == pytest.approx(820.2)
    assert t.seconds >= t.longest_request_seconds
    assert "--max-output-tokens" in t.explanation
    # A short cap keeps the Inference Extension's 300 s default.
    assert routing.route_timeout({"request": {"max_output_tokens": 256}, "max_model_len": 8192,
                                  "decode_tokens_per_second": 35.4}).seconds == 300
    # No cap: the longest answer vLLM allows, max_model_len - 1 tokens; --output-tokens plays no part.
    t = routing.route_timeout({"request": {"output_tokens": 256}, "max_model_len": 4097, "decode_tokens_per_second": 10.0})
    assert t.longest_request_seconds == pytest.approx(2 * 4096 / 10 + 1)
    assert "not capped" in t.explanation and "max_model_len 4097 - 1" in t.explanation
    with pytest.raises(InvalidInput, match="max_model_len"):
        routing.route_timeout({"request": {}, "decode_tokens_per_second": 10.0})


def test_long_route_timeouts_render_as_valid_gateway_and_istio_durations():
    import re

    pattern = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")  # Gateway API v1.6.1 HTTPRoute timeouts
    # 131071 tokens at 2 tokens/s: 131072 s longest, x 1.5 in whole minutes = 196620 s (54h37m).
    t = routing.route_timeout({"request": {}, "max_model_len": 131072, "decode_tokens_per_second": 2.0})
    assert t.seconds == 196620 and t.duration == "54h37m" and pattern.match(t.duration)
    assert t.istio_duration == "196620s"  # protobuf JSON Duration: seconds with an "s" suffix
    from compose.verify.routingpolicy import seconds
    assert seconds(t.duration) == t.seconds
    for n in (300, 99999, 100000, 100020, 360000, 3600 * 99999):
        d = routing.gateway_duration(n)
        assert pattern.match(d) and seconds(d) == n, d


def test_a_default_overlay_caps_no_answer_and_its_route_outlasts_max_model_len():
    gen = overlay.generate(overlay.Options(**QWEN, gateway=GATEWAY, max_model_len=16384))
    (dep,) = [d for d in yaml.safe_load_all(gen.files["patch-model-args.yaml"]) if d]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--override-generation-config") for a in args)
    (route,) = yaml.safe_load_all(gen.files["patch-route.yaml"])
    t = routing.route_timeout(gen.plan)
    longest = (16384 - 1) / gen.plan["decode_tokens_per_second"]
    assert t.seconds >= 2 * longest + 1 and t.seconds >= longest
    assert {r["timeouts"]["request"] for r in route["spec"]["rules"]} == {t.duration}
    assert gen.plan["max_output_tokens"] == 16383
    assert "not capped" in gen.plan["explanations"]["max_output_tokens"]
    assert "not capped" in gen.files["README.md"]


def test_max_output_tokens_caps_answers_and_shortens_the_route_timeout():
    default = overlay.generate(overlay.Options(**QWEN, gateway=GATEWAY, max_model_len=16384))
    gen = overlay.generate(overlay.Options(**QWEN, gateway=GATEWAY, max_model_len=16384, max_output_tokens=2048))
    (dep,) = [d for d in yaml.safe_load_all(gen.files["patch-model-args.yaml"]) if d]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert '--override-generation-config={"max_new_tokens":2048}' in args
    t, t0 = routing.route_timeout(gen.plan), routing.route_timeout(default.plan)
    assert t.seconds < t0.seconds
    assert t.seconds >= 2 * 2048 / gen.plan["decode_tokens_per_second"] + 1
    (route,) = yaml.safe_load_all(gen.files["patch-route.yaml"])
    assert {r["timeouts"]["request"] for r in route["spec"]["rules"]} == {t.duration}
    assert gen.plan["request"]["max_output_tokens"] == 2048 and gen.plan["max_output_tokens"] == 2048
    assert "max_new_tokens 2048" in gen.plan["explanations"]["max_output_tokens"]
    assert "max_output_tokens: 2048" in gen.files["compose-plan.yaml"]
    assert "--max-output-tokens 2048" in overlay.command_line(gen.options)


def test_output_tokens_is_a_profile_not_a_cap():
    gen = overlay.generate(overlay.Options(**QWEN, gateway=GATEWAY, output_tokens=8192, max_model_len=16384))
    assert "--override-generation-config" not in gen.files["patch-model-args.yaml"]


# --------------------------------------------------------------------------- the inference pool


def test_inference_pool_selects_this_overlays_vllm_pods_on_vllms_port(repo):
    docs = _docs(repo, "dev-llama-3-1-8b")
    pool = one(docs, "InferencePool")
    assert pool["metadata"]["name"] == "dev-llama-3-1-8b-vllm"
    assert pool["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "vllm",
                                                       "app.kubernetes.io/instance": "dev-llama-3-1-8b"}
    dep = one(docs, "Deployment", "dev-llama-3-1-8b-vllm")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in pool["spec"]["selector"]["matchLabels"].items())
    vllm = container(dep, "vllm")
    port = int(policy.parse_vllm_args(vllm).first("--port"))
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [port] == [routing.VLLM_PORT]
    assert port in {p["containerPort"] for p in vllm["ports"]}
    # Every route rule points at the pool (no port: the pool's target port applies).
    for rule in one(docs, "HTTPRoute")["spec"]["rules"]:
        assert rule["backendRefs"] == [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                                        "name": pool["metadata"]["name"]}]


def test_endpoint_picker_serves_exactly_this_pool(repo):
    docs = _docs(repo, "dev-llama-3-1-8b")
    pool = one(docs, "InferencePool")
    ref = pool["spec"]["endpointPickerRef"]
    svc = one(docs, "Service", ref["name"])
    assert ref == {"group": "", "kind": "Service", "name": "dev-llama-3-1-8b-vllm-epp",
                   "port": {"number": routing.EPP_GRPC_PORT}, "failureMode": "FailOpen"}
    assert routing.EPP_GRPC_PORT in {p["port"] for p in svc["spec"]["ports"]}
    epp = one(docs, "Deployment", "dev-llama-3-1-8b-vllm-epp")
    assert all(epp["spec"]["template"]["metadata"]["labels"][k] == v for k, v in svc["spec"]["selector"].items())
    c = container(epp, routing.EPP_CONTAINER)
    assert c["image"] == routing.EPP_IMAGE
    args = c["args"]
    assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
    assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"
    assert args[args.index("--config-file") + 1] == routing.EPP_CONFIG_FILE
    assert not [a for a in args if a.split("=")[0] in routing.EPP_FORBIDDEN_FLAGS]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "grpc": routing.EPP_GRPC_PORT, "grpc-health": routing.EPP_HEALTH_PORT, "metrics": routing.EPP_METRICS_PORT}
    # NAMESPACE from the downward API replaces --pool-namespace.
    assert {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    plan = _plan(repo, "dev-llama-3-1-8b")
    assert epp["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == plan["termination_grace_period_seconds"]
    # Its config file is the mounted ConfigMap's key.
    cm = one(docs, "ConfigMap", "dev-llama-3-1-8b-vllm-epp")
    mount = next(v for v in c["volumeMounts"] if routing.EPP_CONFIG_FILE.startswith(v["mountPath"]))
    vol = next(v for v in epp["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    config = yaml.safe_load(cm["data"][Path(routing.EPP_CONFIG_FILE).name])
    assert config["kind"] == "EndpointPickerConfig"
    source = next(p for p in config["plugins"] if p["type"] == "metrics-data-source")
    assert source["parameters"]["path"] == routing.VLLM_METRICS_PATH
    # RBAC: the ServiceAccount the EPP runs as may read pods and pools in its namespace only.
    sa = epp["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {r["metadata"]["name"]: r for r in objects(docs, "Role")}
    granted = set()
    for rb in objects(docs, "RoleBinding"):
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "dev-llama-3-1-8b"}]
        for rule in roles[rb["roleRef"]["name"]]["rules"]:
            granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("inference.networking.k8s.io", "inferencepools")} <= granted
    assert not objects(docs, "ClusterRole")


def test_the_endpoint_pickers_metric_names_are_what_vllm_033_exports():
    """The EPP's defaults for engine vllm (GIE v1.5.0 factories.go) against compose/plan/metrics.py."""
    for field, name in routing.EPP_VLLM_METRICS.items():
        assert name in m.VLLM, f"{field}: {name} is not a vLLM {m.VLLM_VERSION} metric"
        assert m.VLLM[name].kind == m.GAUGE
    assert m.VLLM["vllm:lora_requests_info"].labels == ("max_lora", "waiting_lora_adapters", "running_lora_adapters")
    assert {"block_size", "num_gpu_blocks"} <= set(m.VLLM["vllm:cache_config_info"].labels)
    # The queue the EPP scores is the queue KEDA scales on.
    assert routing.EPP_VLLM_METRICS["queuedRequestsSpec"] == m.NUM_REQUESTS_WAITING
    assert routing.EPP_VLLM_METRICS["kvUsageSpec"] == m.KV_CACHE_USAGE


def test_component_files_agree_with_compose():
    comp = REPO / "components" / "inference-pool"
    epp = yaml.safe_load((comp / "epp-deployment.yaml").read_text())
    c = container(epp, routing.EPP_CONTAINER)
    assert c["image"] == routing.EPP_IMAGE
    assert c["args"] == routing.epp_args("vllm")
    pool = yaml.safe_load((comp / "inferencepool.yaml").read_text())
    assert pool["spec"]["endpointPickerRef"]["port"]["number"] == routing.EPP_GRPC_PORT
    assert pool["spec"]["targetPorts"] == [{"number": routing.VLLM_PORT}]
    svc = yaml.safe_load((REPO / "base" / "vllm" / "service.yaml").read_text())
    assert svc["spec"]["ports"][0]["port"] == routing.VLLM_PORT


# --------------------------------------------------------------------------- Istio


def test_istio_virtualservice_and_destinationrule(repo):
    docs = _docs(repo, "dev-mesh")
    plan = _plan(repo, "dev-mesh")
    assert not objects(docs, "HTTPRoute")
    vs = one(docs, "VirtualService")
    assert vs["metadata"]["name"] == "dev-mesh-vllm"
    spec = vs["spec"]
    assert spec["gateways"] == ["istio-system/public"] and spec["hosts"] == ["*"]
    header, path = spec["http"]
    assert header["match"] == [{"headers": {"x-gateway-model-name": {"exact": plan["served_model_name"]}}}]
    assert path["match"] == [{"uri": {"prefix": "/dev-mesh/"}}] and path["rewrite"] == {"uri": "/"}
    for h in spec["http"]:
        assert h["route"] == [{"destination": {"host": "dev-mesh-vllm", "port": {"number": 8000}}}]
        assert h["timeout"] == routing.route_timeout(plan).duration
        assert h["retries"] == {"attempts": 2, "retryOn": "connect-failure,refused-stream,503"}
    dr = one(docs, "DestinationRule")
    assert dr["spec"] == {"host": "dev-mesh-vllm", "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}}
    one(docs, "Service", "dev-mesh-vllm")


def test_inference_pool_on_istio_adds_the_epp_destination_rule(tmp_path):
    root = empty_repo(tmp_path)
    overlay.write(root, overlay.Options(**LLAMA, gateway=GATEWAY, router="inference-pool", mesh="istio"))
    docs = built(root / "overlays" / "dev-llama-3-1-8b")
    one(docs, "HTTPRoute")  # the Gateway API route: Istio serves InferencePool through it
    dr = one(docs, "DestinationRule")
    assert dr["spec"] == {"host": "dev-llama-3-1-8b-vllm-epp",
                          "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}}
    one(docs, "Service", dr["spec"]["host"])
    assert not objects(docs, "VirtualService")


# --------------------------------------------------------------------------- policy negatives


def _mutated(docs, kind, fn):
    out = copy.deepcopy(docs)
    fn(one(out, kind))
    return out


def _problems(docs) -> list[str]:
    return [f.problem for f in policy.check_policy(docs, "t", readme_text="## Single replica")
            if f.check == "policy" and ("route" in f.obj.lower() or "pool" in f.obj.lower()
                                        or "virtualservice" in f.obj.lower() or "epp" in f.obj.lower()
                                        or "destinationrule" in f.obj.lower())]


def test_policy_catches_what_the_crds_cel_rules_would_and_more(repo):
    svc_docs = _docs(repo, "dev-qwen2-5-7b")
    pool_docs = _docs(repo, "dev-llama-3-1-8b")
    mesh_docs = _docs(repo, "dev-mesh")
    assert _problems(svc_docs) == [] and _problems(pool_docs) == [] and _problems(mesh_docs) == []

    def long_backend(r):
        r["spec"]["rules"][0]["timeouts"]["backendRequest"] = "99999h"  # longer than any request timeout

    assert any("backendRequest" in p for p in _problems(_mutated(svc_docs, "HTTPRoute", long_backend)))

    def no_port(r):
        del r["spec"]["rules"][0]["backendRefs"][0]["port"]

    assert any("without a port" in p for p in _problems(_mutated(svc_docs, "HTTPRoute", no_port)))

    def wrong_backend(r):
        r["spec"]["rules"][0]["backendRefs"][0]["name"] = "other-vllm"

    assert any("no Service other-vllm" in p for p in _problems(_mutated(svc_docs, "HTTPRoute", wrong_backend)))

    def wide_pool(p):
        del p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "someone-else"

    assert any("selects no vLLM pod" in p for p in _problems(_mutated(pool_docs, "InferencePool", wide_pool)))

    def wrong_port(p):
        p["spec"]["targetPorts"] = [{"number": 9000}]

    assert any("target port 9000" in p for p in _problems(_mutated(pool_docs, "InferencePool", wrong_port)))

    epp = copy.deepcopy(pool_docs)
    c = container(one(epp, "Deployment", "dev-llama-3-1-8b-vllm-epp"), "epp")
    c["args"][c["args"].index("--pool-name") + 1] = "vllm"
    c["args"] += ["--kv-cache-usage-percentage-metric", "vllm:gpu_cache_usage_perc"]
    problems = _problems(epp)
    assert any("--pool-name is 'vllm'" in p for p in problems)
    assert any("--kv-cache-usage-percentage-metric is passed" in p for p in problems)

    def zero_timeout(v):
        v["spec"]["http"][0]["timeout"] = "0s"

    assert any("below 1ms" in p for p in _problems(_mutated(mesh_docs, "VirtualService", zero_timeout)))


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("options, message", [
    (dict(gateway="inference"), "NAMESPACE/NAME"),
    (dict(gateway="a/b/c"), "NAMESPACE/NAME"),
    (dict(hostname="llm.example.com"), "--hostname needs --gateway"),
    (dict(gateway=GATEWAY, hostname="not a host"), "invalid --hostname"),
    (dict(route_match="path"), "--route-match needs --gateway"),
    (dict(mesh="istio"), "--mesh istio needs --gateway"),
    (dict(router="nginx"), "invalid --router"),
    (dict(image="vllm/vllm-openai:latest"), "floating tag"),
    (dict(image="vllm/vllm-openai"), "pinned reference"),
    (dict(revision="main"), "40-character"),
    (dict(canary_weight=10), "needs a route"),
    (dict(gateway=GATEWAY, canary_weight=101), "0 to 100"),
    (dict(name="x-canary"), "marks canary overlays"),
    (dict(shared_cache=True), "only a canary"),
])
def test_bad_routing_options_are_one_line_errors(options, message):
    with pytest.raises(InvalidInput, match=message):
        overlay.generate(overlay.Options(**QWEN, **options))


def test_new_model_cli_takes_the_routing_options(tmp_path):
    root = empty_repo(tmp_path)
    res = run("new-model", "qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--gateway", GATEWAY,
              "--router", "inference-pool", "--route-match", "path", "--image", "vllm/vllm-openai:v0.33.0",
              repo=root)
    assert res.exit_code == 0, res.output
    d = root / "overlays" / "dev-qwen2-5-7b"
    inputs = overlay.load_plan_file(d)["inputs"]
    assert (inputs["gateway"], inputs["router"], inputs["route_match"]) == (GATEWAY, "inference-pool", "path")
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    # on-demand: every non-spot overlay on a cloud that also sells spot (issue 10); no
    # network policy in dev (on by default in staging and prod only, issue 11).
    assert k["components"] == ["../../components/gke", "../../components/on-demand", "../../components/monitoring",
                               "../../components/gateway", "../../components/inference-pool"]
    assert k["images"] == [{"name": "vllm/vllm-openai", "newTag": "v0.33.0"}]
    assert not (d / "patch-network-policy.yaml").exists()
    readme = (d / "README.md").read_text()
    assert "--gateway gateway-system/inference" in readme and "## Route" in readme
    bad = run("new-model", "qwen2.5-7b", "--gateway", "nope", repo=root)
    assert bad.exit_code == 2 and "NAMESPACE/NAME" in bad.output
    # The same command in staging: the network policy comes on by default, after the
    # capacity and monitoring components and before the routing ones, and admits the
    # gateway's namespace, Prometheus's, and the model's own (the endpoint picker
    # scrapes every pod's /metrics on 8000).
    res = run("new-model", "qwen2.5-7b", "--env", "staging", "--cloud", "gke", "--gpu", "l4", "--gateway", GATEWAY,
              "--router", "inference-pool", "--route-match", "path", repo=root)
    assert res.exit_code == 0, res.output
    d = root / "overlays" / "staging-qwen2-5-7b"
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert k["components"] == ["../../components/gke", "../../components/on-demand", "../../components/monitoring",
                               "../../components/network-policy", "../../components/gateway",
                               "../../components/inference-pool"]
    (policy,) = [x for x in built(d) if x["kind"] == "NetworkPolicy"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In",
         "values": sorted([GATEWAY.partition("/")[0], "monitoring", "staging-qwen2-5-7b"])}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "vllm"
    # The endpoint picker's pods (app.kubernetes.io/name=vllm-epp) are not selected: the
    # gateway reaches its gRPC port whatever the policy; the whole overlay passes check.
    epp = next(x for x in built(d) if x["kind"] == "Deployment" and x["metadata"]["name"].endswith("-vllm-epp"))
    assert epp["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "vllm-epp"
    assert run("check", "staging-qwen2-5-7b", repo=root).exit_code == 0


def test_removing_the_gateway_option_removes_the_route(tmp_path):
    root = empty_repo(tmp_path)
    overlay.write(root, overlay.Options(**QWEN, gateway=GATEWAY, router="inference-pool"))
    d = root / "overlays" / "dev-qwen2-5-7b"
    assert (d / "patch-route.yaml").exists() and (d / "patch-endpoint-picker.yaml").exists()
    overlay.write(root, overlay.Options(**QWEN), force=True)
    assert not (d / "patch-route.yaml").exists() and not (d / "patch-endpoint-picker.yaml").exists()
    docs = built(d)
    assert not {"HTTPRoute", "InferencePool"} & {x["kind"] for x in docs}
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert not any("gateway" in c or "inference-pool" in c for c in k["components"])


# --------------------------------------------------------------------------- house conventions


@pytest.mark.parametrize("component", ROUTING_COMPONENTS)
def test_routing_components_follow_the_house_conventions(component):
    root = REPO / "components" / component
    text = (root / "kustomization.yaml").read_text()
    assert text.startswith(f"# components/{component}:")
    assert "Sets:" in text and "Leaves to the overlay" in text
    k = yaml.safe_load(text)
    assert (k["apiVersion"], k["kind"]) == ("kustomize.config.k8s.io/v1alpha1", "Component")
    assert set(k) <= {"apiVersion", "kind", "resources", "configurations"}
    for res in k["resources"]:
        assert (root / res).read_text().startswith("#"), f"{res} opens with why"
    readme = (root / "README.md").read_text()
    for heading in ("## When to use", "## What it changes", "## Verify"):
        assert heading in readme
    assert "kubectl kustomize" in readme
    assert f"[`{component}`]" in (REPO / "components" / "README.md").read_text()
