"""Routing: one endpoint for every model, and a canary's share of it (issue 14).

What an overlay gets, by option (the components hold the objects, the overlay's
generated patches hold what differs per model):

| options | components | generated patches |
|---|---|---|
| `--gateway NS/NAME` | `gateway` (HTTPRoute -> Service `<overlay>-vllm`:8000) | `patch-route.yaml` |
| `--gateway NS/NAME --router inference-pool` | `gateway`, `inference-pool` (InferencePool + endpoint picker) | `patch-route.yaml`, `patch-endpoint-picker.yaml` |
| `--gateway NS/NAME --mesh istio` | `istio` (VirtualService + DestinationRule) | `patch-route.yaml` |
| `--router inference-pool --mesh istio` | `inference-pool`, `inference-pool-istio` (+ `gateway` with a Gateway) | as above |
| canary (`compose canary start`) | the stable's router components, no route | `patch-canary.yaml`, shared `patch-storage.yaml` |

The route matches a model two ways (`--route-match`, default both):
- the header the Gateway API Inference Extension's body-based router (BBR) sets
  from the OpenAI request body's `model` field, `X-Gateway-Model-Name`
  (gateway-api-inference-extension v1.5.0 `config/charts/body-based-routing/values.yaml`,
  plugin `body-field-to-header`), on every path;
- the path prefix `/<overlay>`, rewritten to `/`, for gateways without BBR
  (`base_url=http://<gateway>/<overlay>/v1`).

Every backend reference is written with its final name (`<overlay>-vllm`,
`<overlay>-canary-vllm`): the canary's objects are not in the stable overlay's
build, so kustomize could not rename them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from compose.core.errors import InvalidInput
from compose.generate import options
from compose.generate.options import MESHES, ROUTE_MATCHES, ROUTERS, Options, parse_gateway  # noqa: F401 (re-exported)

# --------------------------------------------------------------------------- options

DEFAULT_ROUTER = "service"
DEFAULT_ROUTE_MATCH = "both"

GATEWAY_COMPONENT = "gateway"
ISTIO_COMPONENT = "istio"
POOL_COMPONENT = "inference-pool"
POOL_ISTIO_COMPONENT = "inference-pool-istio"
COMPONENTS = (GATEWAY_COMPONENT, ISTIO_COMPONENT, POOL_COMPONENT, POOL_ISTIO_COMPONENT)

CANARY_SUFFIX = "-canary"
CANARY_OF_LABEL = "vllm-compose.io/canary-of"
INSTANCE_LABEL = "app.kubernetes.io/instance"

# The vLLM server: base/vllm/service.yaml (port `http` 8000 -> container port `http`) and
# `--port=8000` in patch-model-args.yaml. tests/test_routing.py checks all three agree.
VLLM_PORT = 8000
VLLM_METRICS_PATH = "/metrics"

# Body-based routing (BBR) of the Gateway API Inference Extension: the header its default
# `body-field-to-header` plugin sets from the body's `model` field.
MODEL_HEADER = "X-Gateway-Model-Name"

# The endpoint picker (EPP). The InferencePool CRD is gateway-api-inference-extension
# v1.6.0, which ships no EPP image or chart (its README: "The Endpoint Picker (EPP) ...
# moved to llm-d/llm-d-router"); v1.5.0 is that project's last EPP release, built against the
# same inference.networking.k8s.io/v1 InferencePool (components/inference-pool/README.md).
EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
EPP_CONTAINER = "epp"
EPP_GRPC_PORT = 9002  # ext_proc; endpointPickerRef.port is this Service port
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
EPP_CONFIG_FILE = "/config/default-plugins.yaml"
# Metric names the v1.5.0 EPP reads from a vLLM pod when nothing is configured
# (pkg/epp/framework/plugins/datalayer/extractor/metrics/factories.go, defaultEngineConfigs
# "vllm"); compose/plan/metrics.py holds what vLLM 0.33.0 exports.
EPP_VLLM_METRICS = {
    "queuedRequestsSpec": "vllm:num_requests_waiting",
    "runningRequestsSpec": "vllm:num_requests_running",
    "kvUsageSpec": "vllm:kv_cache_usage_perc",
    "loraSpec": "vllm:lora_requests_info",
    "cacheInfoSpec": "vllm:cache_config_info",
}
# Setting any of these is an error in v1.5.0 (pkg/epp/server/options.go, Validate():
# "flag %q is deprecated and cannot be used").
EPP_FORBIDDEN_FLAGS = (
    "--total-queued-requests-metric", "--total-running-requests-metric",
    "--kv-cache-usage-percentage-metric", "--lora-info-metric", "--cache-info-metric",
)

# Route timeouts (see route_timeout()).
ROUTE_TIMEOUT_FLOOR_SECONDS = 300  # GIE v1.5.0 inferencepool chart experimentalHttpRoute.requestTimeout "300s"
ROUTE_TIMEOUT_MARGIN = 1.5  # the planner's drain margin (planner.DRAIN_MARGIN)
PREFILL_ALLOWANCE_SECONDS = 1.0  # as the TTFT SLO (alerts.TTFT_PREFILL_ALLOWANCE_SECONDS)
# Istio retries: only failures where no token was generated. vLLM answers 503 when its
# queue is full (`--max-num-queued-reqs`), so another replica may take the request.
ISTIO_RETRY_ON = "connect-failure,refused-stream,503"
ISTIO_RETRY_ATTEMPTS = 2  # Istio's own default number of attempts



VLLM_IMAGE = "vllm/vllm-openai"


def normalize_image(image: str | None) -> str | None:
    """`--image TAG` means vLLM's own image at that tag; a reference (with `/` or `:`) is kept."""
    if image is None:
        return None
    image = image.strip()
    if "/" not in image and ":" not in image and "@" not in image:
        return f"{VLLM_IMAGE}:{image}"
    return image


def router(opts: Options) -> str:
    return opts.router or DEFAULT_ROUTER


def route_match(opts: Options) -> str:
    return opts.route_match or DEFAULT_ROUTE_MATCH


def canary_name(stable: str) -> str:
    return f"{stable}{CANARY_SUFFIX}"


def has_route(opts: Options) -> bool:
    return opts.gateway is not None


def check_options(opts: Options, overlay: str) -> None:
    """Reject option combinations that would render a broken route; every message names the fix.
    Each option's own rule lives in compose.generate.options (the inputs schema runs it too)."""
    if opts.router is not None:
        options.check_router(opts.router)
    if opts.mesh is not None:
        options.check_mesh(opts.mesh)
    if opts.route_match is not None:
        options.check_route_match(opts.route_match)
    if opts.gateway is not None:
        parse_gateway(opts.gateway)
    if opts.hostname is not None:
        options.check_hostname(opts.hostname)
        if opts.gateway is None:
            raise InvalidInput("--hostname needs --gateway NS/NAME: it is the route's hostname")
    if opts.route_match is not None and opts.gateway is None:
        raise InvalidInput("--route-match needs --gateway NS/NAME: it chooses how the route matches")
    if opts.mesh == "istio" and router(opts) == "service" and opts.gateway is None and opts.canary_of is None:
        raise InvalidInput("--mesh istio needs --gateway NS/NAME, the Istio Gateway its VirtualService binds to")
    if opts.image is not None:
        image = options.check_image(opts.image)
        pinned = image.partition("@")[2]
        if pinned and opts.image_digest and pinned != opts.image_digest:
            # patch-image.yaml would pin --image-digest and silently drop the reference's own digest.
            raise InvalidInput(f"--image {image!r} pins {pinned}, --image-digest says {opts.image_digest}: "
                               "give the digest once (--image REPO:TAG --image-digest sha256:...)")
    if opts.revision is not None:
        options.check_revision(opts.revision)
    if opts.canary_weight is not None:
        options.check_canary_weight(opts.canary_weight)
        if opts.gateway is None:
            raise InvalidInput("a canary weight needs a route: give the overlay --gateway NS/NAME")
        if opts.canary_of is not None:
            raise InvalidInput("a canary overlay has no canary of its own")
    if opts.shared_cache and opts.canary_of is None:
        raise InvalidInput("shared_cache is for canary overlays: only a canary mounts another overlay's cache")
    if opts.canary_of is not None:
        if overlay != canary_name(opts.canary_of):
            raise InvalidInput(f"overlay {overlay} cannot be the canary of {opts.canary_of}: "
                               f"a canary overlay is named {canary_name(opts.canary_of)}")
        if opts.gateway is not None:
            raise InvalidInput("a canary overlay owns no route: the stable overlay's route sends it its share")
    elif overlay.endswith(CANARY_SUFFIX):
        raise InvalidInput(f"overlay name {overlay!r} ends in {CANARY_SUFFIX!r}, which marks canary overlays "
                           "(`compose canary start`); choose another --name")


def components(opts: Options) -> list[str]:
    """The routing components of an overlay, in a fixed order."""
    out = []
    if has_route(opts) and not (opts.mesh == "istio" and router(opts) == "service"):
        out.append(GATEWAY_COMPONENT)
    if has_route(opts) and opts.mesh == "istio" and router(opts) == "service":
        out.append(ISTIO_COMPONENT)
    if router(opts) == "inference-pool":
        out.append(POOL_COMPONENT)
        if opts.mesh == "istio":
            out.append(POOL_ISTIO_COMPONENT)
    return out


def scope_instance(opts: Options, overlay: str) -> str | None:
    """The instance label that scopes this overlay's vLLM series, when a canary shares
    its namespace and served model name (else None: model_name + namespace suffice)."""
    if opts.canary_of is not None or opts.canary_weight is not None:
        return overlay
    return None


# --------------------------------------------------------------------------- timeouts


def longest_request_seconds(max_output_tokens: int, decode_tps: float) -> float:
    """A full answer waiting behind one running batch, its prefill, and its own generation."""
    return 2 * max_output_tokens / decode_tps + PREFILL_ALLOWANCE_SECONDS


# The route records the planner's decode speed, so `compose check` can recompute the
# longest request from the rendered vLLM args (rule route-timeout).
DECODE_SPEED_ANNOTATION = "vllm-compose.io/decode-tokens-per-second-estimate"


# Gateway API v1.6.1 HTTPRoute timeouts: pattern ^([0-9]{1,5}(h|m|s|ms)){1,4}$, so at most
# 99999 in one unit; longer timeouts are written in hours and minutes.
GATEWAY_DURATION_MAX_UNIT = 99999


def gateway_duration(seconds: int) -> str:
    """A Gateway API duration for whole seconds: "300s", or "30h15m" past 5 digits of seconds."""
    seconds = int(seconds)
    if seconds <= GATEWAY_DURATION_MAX_UNIT:
        return f"{seconds}s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h" + (f"{m}m" if m else "") + (f"{s}s" if s else "")


@dataclass(frozen=True)
class RouteTimeout:
    seconds: int
    longest_request_seconds: float
    explanation: str

    @property
    def duration(self) -> str:
        """The HTTPRoute's form (Gateway API duration pattern)."""
        return gateway_duration(self.seconds)

    @property
    def istio_duration(self) -> str:
        """The VirtualService's form: protobuf JSON Duration, seconds with an "s" suffix."""
        return f"{self.seconds}s"


def route_timeout(plan: dict) -> RouteTimeout:
    """The route's request timeout: never shorter than the longest answer vLLM will give.

    With `--max-output-tokens N` every overlay's vLLM runs with
    `--override-generation-config={"max_new_tokens": N}` (compose.generate.patches.output_cap;
    vLLM 0.33.0 caps every request's max_tokens at it: entrypoints/serve/utils/api_utils.py
    get_max_tokens()), and the longest answer is N tokens. Without it (the default) vLLM
    answers up to max-model-len minus the prompt, so the longest answer is max-model-len - 1
    tokens (a one-token prompt), as compose check's route-timeout rule assumes. `--output-tokens`
    is the typical request, not a limit, and plays no part here. The answer is generated at
    `decode_tokens_per_second`, the per-sequence speed with `max_num_seqs` running. The longest
    request admitted behind a full queue (`--max-num-queued-reqs` = one more batch) first waits
    for the running batch, about one generation, then needs its prefill and its own generation:

        longest = N / decode_tps (queue) + 1 s (prefill) + N / decode_tps
        timeout = max(300 s, ceil(1.5 x longest), in whole minutes)

    300 s is the Inference Extension's and llm-d's route default; 1.5 is the planner's drain
    margin. `compose check` (rule route-timeout, compose/verify/routingpolicy.py) recomputes
    `longest` from the rendered args and the route's decode-speed annotation.
    """
    from compose.generate.patches import output_cap

    cap = output_cap(plan)
    max_model_len = int(plan.get("max_model_len") or 0)
    decode_tps = float(plan.get("decode_tokens_per_second") or 0)
    if cap > 0:
        output_tokens = cap
        source = (f"{cap} is the answer cap vLLM enforces (--max-output-tokens: --override-generation-config "
                  "max_new_tokens)")
    else:
        output_tokens = max_model_len - 1
        source = (f"{output_tokens} = max_model_len {max_model_len} - 1 prompt token: answers are not capped "
                  "(vLLM's get_max_tokens allows max_model_len - prompt; --max-output-tokens caps them and "
                  "shortens this timeout)")
    if output_tokens <= 0 or decode_tps <= 0:
        raise InvalidInput("the plan lacks max_model_len or decode_tokens_per_second; "
                           "re-plan the overlay (compose regen) before routing to it")
    longest = longest_request_seconds(output_tokens, decode_tps)
    generation = output_tokens / decode_tps
    seconds = max(ROUTE_TIMEOUT_FLOOR_SECONDS, int(math.ceil(ROUTE_TIMEOUT_MARGIN * longest / 60.0)) * 60)
    explanation = (
        f"longest request {longest:.0f} s = queue {generation:.0f} s + prefill {PREFILL_ALLOWANCE_SECONDS:g} s + "
        f"{output_tokens} output tokens / {decode_tps:g} tokens/s, where {source}; "
        f"timeout = max({ROUTE_TIMEOUT_FLOOR_SECONDS} s, {ROUTE_TIMEOUT_MARGIN:g} x longest in whole minutes)"
    )
    return RouteTimeout(seconds, longest, explanation)


# --------------------------------------------------------------------------- the route


@dataclass(frozen=True)
class Backend:
    name: str  # final object name (Service or InferencePool)
    weight: int | None  # None: the only backend


def backends(opts: Options, overlay: str) -> list[Backend]:
    """Stable, then canary, with the weights the commands set ((100 - N) : N)."""
    own = f"{overlay}-vllm"
    if opts.canary_weight is None:
        return [Backend(own, None)]
    n = int(opts.canary_weight)
    return [Backend(own, 100 - n), Backend(f"{canary_name(overlay)}-vllm", n)]


def path_prefix(overlay: str) -> str:
    return f"/{overlay}"


def _gateway_backend_refs(opts: Options, overlay: str) -> list[dict]:
    out = []
    for b in backends(opts, overlay):
        if router(opts) == "inference-pool":
            ref = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": b.name}
        else:
            ref = {"group": "", "kind": "Service", "name": b.name, "port": VLLM_PORT}
        if b.weight is not None:
            ref["weight"] = b.weight
        out.append(ref)
    return out


def httproute_spec(opts: Options, plan: dict, overlay: str) -> dict:
    """The HTTPRoute's spec: parent Gateway, header and/or path rules, weights, timeouts."""
    ns, name = parse_gateway(opts.gateway)
    timeout = route_timeout(plan).duration
    # backendRequest = request: one attempt (the standard channel has no retries), and the
    # CRD's CEL rule forbids backendRequest > request.
    def timeouts() -> dict:  # a fresh dict per rule: no YAML anchors in the written patch
        return {"request": timeout, "backendRequest": timeout}

    def refs() -> list[dict]:
        return _gateway_backend_refs(opts, overlay)

    rules = []
    if route_match(opts) in ("header", "both"):
        rules.append({
            "name": "model-header",
            "matches": [{
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"type": "Exact", "name": MODEL_HEADER, "value": plan["served_model_name"]}],
            }],
            "backendRefs": refs(),
            "timeouts": timeouts(),
        })
    if route_match(opts) in ("path", "both"):
        rules.append({
            "name": "path-prefix",
            "matches": [{"path": {"type": "PathPrefix", "value": path_prefix(overlay)}}],
            "filters": [{"type": "URLRewrite",
                         "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
            "backendRefs": refs(),
            "timeouts": timeouts(),
        })
    spec: dict = {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": ns, "name": name}],
        "rules": rules,
    }
    if opts.hostname:
        spec["hostnames"] = [opts.hostname]
    return spec


def virtualservice_spec(opts: Options, plan: dict, overlay: str) -> dict:
    """Istio's equivalent of the HTTPRoute: same matches, weights and timeout.

    Destination hosts are short Service names, resolved in the VirtualService's own
    namespace (no assumption about the cluster domain). Header names must be lower case
    (the CRD says so); Istio's prefix match is a string prefix, hence the trailing slash.
    """
    ns, name = parse_gateway(opts.gateway)
    route = []
    for b in backends(opts, overlay):
        dest = {"destination": {"host": b.name, "port": {"number": VLLM_PORT}}}
        if b.weight is not None:
            dest["weight"] = b.weight
        route.append(dest)
    def common() -> dict:  # fresh per rule: no YAML anchors in the written patch
        return {
            "route": copy.deepcopy(route),
            "timeout": route_timeout(plan).istio_duration,
            "retries": {"attempts": ISTIO_RETRY_ATTEMPTS, "retryOn": ISTIO_RETRY_ON},
        }

    http = []
    if route_match(opts) in ("header", "both"):
        http.append({"name": "model-header",
                     "match": [{"headers": {MODEL_HEADER.lower(): {"exact": plan["served_model_name"]}}}],
                     **common()})
    if route_match(opts) in ("path", "both"):
        http.append({"name": "path-prefix", "match": [{"uri": {"prefix": path_prefix(overlay) + "/"}}],
                     "rewrite": {"uri": "/"}, **common()})
    return {"hosts": [opts.hostname or "*"], "gateways": [f"{ns}/{name}"], "http": http}


def patch_route(opts: Options, plan: dict, overlay: str) -> dict:
    """patch-route.yaml: the route object's spec (the component holds the object)."""
    def meta() -> dict:
        return {"name": "vllm", "annotations": {DECODE_SPEED_ANNOTATION: f"{float(plan['decode_tokens_per_second']):g}"}}

    if opts.mesh == "istio" and router(opts) == "service":
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta(),
                "spec": virtualservice_spec(opts, plan, overlay)}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta(),
            "spec": httproute_spec(opts, plan, overlay)}


# --------------------------------------------------------------------------- endpoint picker


def epp_args(pool: str) -> list[str]:
    """The EPP's command line (GIE v1.5.0 config/charts/epplib/templates/_deployment.yaml).

    `--pool-namespace` is left out: the EPP defaults it to the NAMESPACE env var, which
    the Deployment sets from the downward API (runner.go resolvePoolNamespace). The
    metric-name flags are never passed (EPP_FORBIDDEN_FLAGS). `--metrics-endpoint-auth=false`
    as the chart passes when Prometheus auth is off: no cluster-wide RBAC for token reviews.
    """
    return [
        "--pool-name", pool,
        "--pool-group", "inference.networking.k8s.io",
        "--zap-encoder", "json",
        "--config-file", EPP_CONFIG_FILE,
        "--v", "1",
        "--tracing=false",
        "--metrics-endpoint-auth=false",
    ]


def patch_endpoint_picker(plan: dict, overlay: str) -> dict:
    """patch-endpoint-picker.yaml: bind the EPP to this overlay's pool (a name kustomize cannot
    rewrite inside args) and give it the pool's grace period (the chart: "this timeout should
    mirror the longest grace period of the pods within the pool")."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm-epp"},
        "spec": {"template": {"spec": {
            "terminationGracePeriodSeconds": plan["termination_grace_period_seconds"],
            "containers": [{"name": EPP_CONTAINER, "args": epp_args(f"{overlay}-vllm")}],
        }}},
    }


# --------------------------------------------------------------------------- canary


def patch_canary(opts: Options) -> dict:
    """patch-canary.yaml: the canary renders no Namespace; it lives in the stable overlay's."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}, "$patch": "delete"}


def patch_shared_storage(opts: Options) -> list[dict]:
    """patch-storage.yaml of a canary that serves the stable overlay's weights: mount the
    stable overlay's cache and render no PVC. The delete is the last document: kustomize
    v5 panics on a document that follows a `$patch: delete` (kubernetes-sigs/kustomize#5471)."""
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm"},
         "spec": {"template": {"spec": {"volumes": [
             {"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{opts.canary_of}-vllm-models"}}]}}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "vllm-models"}, "$patch": "delete"},
    ]


# --------------------------------------------------------------------------- README


def readme_section(opts: Options, plan: dict, overlay: str, namespace: str) -> str:
    """The overlay README's routing / canary section ('' when neither applies)."""
    parts = []
    if has_route(opts):
        t = route_timeout(plan)
        ns, gw = parse_gateway(opts.gateway)
        kind = "VirtualService (Istio)" if "istio" in components(opts) else "HTTPRoute"
        target = ("InferencePool" if router(opts) == "inference-pool" else "Service") + f" `{overlay}-vllm`"
        lines = [f"\n## Route\n\n{kind} `{overlay}-vllm` on Gateway `{ns}/{gw}`"
                 + (f", hostname `{opts.hostname}`" if opts.hostname else "") + f", to {target}:\n"]
        if route_match(opts) in ("header", "both"):
            lines.append(f"- header `{MODEL_HEADER}: {plan['served_model_name']}` (set from the request body's "
                         "`model` by the Inference Extension's body-based router; see components/gateway/README.md)")
        if route_match(opts) in ("path", "both"):
            lines.append(f"- path prefix `{path_prefix(overlay)}`, rewritten to `/`: "
                         f"`base_url=http://<gateway>{path_prefix(overlay)}/v1`")
        b = backends(opts, overlay)
        if len(b) > 1:
            lines.append(f"- weights: `{b[0].name}` {b[0].weight}, `{b[1].name}` {b[1].weight} "
                         f"(`compose canary set-weight {overlay} N`, `promote`, `abort`)")
        lines.append(f"- timeout {t.istio_duration if kind.startswith('VirtualService') else t.duration}: {t.explanation}")
        parts.append("\n".join(lines) + "\n")
    if opts.canary_of is not None:
        stable = opts.canary_of
        cache = (f"It mounts `{stable}`'s weight cache `{stable}-vllm-models` (same weights: nothing is downloaded "
                 "twice) and owns no volume." if opts.shared_cache else
                 "It serves other weights than the stable overlay, so it has its own cache volume.")
        parts.append(
            f"\n## Canary of {stable}\n\n"
            f"This overlay is the canary of [`{stable}`](../{stable}/README.md): same served model name, namespace "
            f"`{namespace}` (owned by `{stable}`), a fixed replica count. {cache} Its share of traffic is the weight "
            f"in `{stable}`'s route; the alerts comparing it with `{stable}` are in `{stable}`'s PrometheusRule "
            "(group `vllm-canary`).\n\n"
            f"```sh\ncompose canary set-weight {stable} 25   # change the share\n"
            f"compose canary promote {stable}          # fold these inputs into {stable}, remove this overlay\n"
            f"compose canary abort {stable}            # remove this overlay, all traffic back to {stable}\n```\n"
        )
    return "".join(parts)


PATCH_WHY = {
    "patch-route.yaml": "The route to this model from the shared Gateway: the body-based router's\n"
    "# model header and/or the /<overlay> path prefix, the canary's share of traffic, and a\n"
    "# timeout no shorter than the longest request the plan allows.",
    "patch-endpoint-picker.yaml": "Bind the endpoint picker to this overlay's InferencePool (a name in its\n"
    "# args, which kustomize cannot rename) and give it the pool pods' grace period.",
    "patch-canary.yaml": "This overlay is a canary: it lives in the stable overlay's namespace, which the\n"
    "# stable overlay owns, so it renders no Namespace (removing the canary never deletes it).",
    "patch-storage.yaml": "The canary serves the stable overlay's weights: it mounts that overlay's cache\n"
    "# (no second download) and owns no volume, so removing the canary never deletes the cache.",
}


__all__ = [
    "Backend", "DECODE_SPEED_ANNOTATION", "RouteTimeout", "backends", "canary_name", "check_options", "components", "epp_args",
    "httproute_spec", "parse_gateway", "patch_canary", "patch_endpoint_picker", "patch_route",
    "gateway_duration", "longest_request_seconds", "patch_shared_storage", "route_timeout", "router", "scope_instance", "virtualservice_spec",
]
