"""Policy for routes, inference pools and canaries (issue 14).

Registered with `compose.verify.policy` (same `Build`, same findings):

- `route-backends`: every backend of an HTTPRoute or VirtualService in the build
  exists with the port it names (a canary's backend, `<x>-canary-vllm`, lives in the
  canary overlay and is checked by `canary_consistency`); and the CRD's CEL rules that
  offline schema validation cannot run: a Service backend names a port, backendRequest
  <= request, Istio durations >= 1ms.
- `route-timeout`: a generated route (it carries the planner's decode speed in the
  annotation vllm-compose.io/decode-tokens-per-second-estimate) waits at least as long
  as the longest answer the build's vLLM args allow: 2 x the output cap (max_new_tokens of
  --override-generation-config, else --max-model-len) / that speed + 1 s prefill.
- `inference-pool`: the pool selects this build's vLLM pods on the port vLLM listens
  on (`--port`, the container port, the Service's target); its endpoint picker is a
  Service of this build on that port, whose pods run the EPP with `--pool-name` = the
  pool, and never the metric-name flags the v1.5.0 EPP rejects.

`canary_consistency(repo, directory, docs, source)` compares a canary overlay with its
stable overlay (two builds): same namespace and served model name, the stable route
sends it a share, and a shared cache holds exactly the weights the canary serves.
"""

from __future__ import annotations

import re
from pathlib import Path

from compose.core.findings import Finding, obj_id
from compose.verify.policy import Build, _get, _int, _labels_match, _ns, is_vllm_container, parse_vllm_args, rule

EPP_FORBIDDEN_FLAGS = (
    "--total-queued-requests-metric", "--total-running-requests-metric",
    "--kv-cache-usage-percentage-metric", "--lora-info-metric", "--cache-info-metric",
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(duration: str | None) -> float | None:
    """A Gateway API / Istio duration ("300s", "1m30s", "500ms") in seconds, or None."""
    if not isinstance(duration, str) or not duration:
        return None
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _services(b: Build) -> dict[tuple[str | None, str], dict]:
    return {(_ns(d), _get(d, "metadata", "name")): d for d in b.docs if d.get("kind") == "Service"}


def _service_ports(svc: dict) -> set[int]:
    return {_int(p.get("port")) for p in _get(svc, "spec", "ports", default=[]) or []}


def _foreign(name: str) -> bool:
    """A canary's backend, rendered by the canary overlay, not by this build."""
    return str(name).endswith("-canary-vllm")


@rule("route-backends", "routes name existing backends and ports; backendRequest <= request; Istio durations >= 1ms")
def _routes(b: Build) -> None:
    services = _services(b)
    pools = {(_ns(d), _get(d, "metadata", "name")) for d in b.docs if d.get("kind") == "InferencePool"}
    for route in (d for d in b.docs if d.get("kind") == "HTTPRoute"):
        ns = _ns(route)
        for i, r in enumerate(_get(route, "spec", "rules", default=[]) or []):
            field = f"spec.rules[{r.get('name', i)}]"
            for ref in r.get("backendRefs") or []:
                kind, group, name = ref.get("kind", "Service"), ref.get("group", ""), ref.get("name")
                if kind == "Service" and group in ("", None):
                    if "port" not in ref:
                        b.add(route, f"{field}.backendRefs[{name}]", "a Service backend without a port (the CRD's CEL "
                              "rule: 'Must have port for Service reference')", "name the Service port, 8000")
                        continue
                    svc = services.get((ref.get("namespace") or ns, name))
                    if svc is None and not _foreign(name):
                        b.add(route, f"{field}.backendRefs[{name}]", f"no Service {name} in this build",
                              "point the route at the overlay's Service <overlay>-vllm")
                    elif svc is not None and _int(ref.get("port")) not in _service_ports(svc):
                        b.add(route, f"{field}.backendRefs[{name}].port", f"Service {name} has no port {ref.get('port')}",
                              f"use one of {sorted(_service_ports(svc))}")
                elif kind == "InferencePool":
                    if (ref.get("namespace") or ns, name) not in pools and not _foreign(name):
                        b.add(route, f"{field}.backendRefs[{name}]", f"no InferencePool {name} in this build",
                              "include components/inference-pool (compose new-model --router inference-pool)")
            t = r.get("timeouts") or {}
            req, back = seconds(t.get("request")), seconds(t.get("backendRequest"))
            if req not in (None, 0) and back is not None and back > req:
                b.add(route, f"{field}.timeouts", f"backendRequest {t['backendRequest']} is longer than request "
                      f"{t['request']} (the CRD's CEL rule rejects it)", "make backendRequest <= request")
    for vs in (d for d in b.docs if d.get("kind") == "VirtualService"):
        ns = _ns(vs)
        for i, h in enumerate(_get(vs, "spec", "http", default=[]) or []):
            field = f"spec.http[{h.get('name', i)}]"
            for key in ("timeout",):
                if key in h and (seconds(h[key]) is None or seconds(h[key]) < 0.001):
                    b.add(vs, f"{field}.{key}", f"{key} {h[key]!r} is below 1ms (the CRD's CEL rule rejects it)",
                          "use a duration such as 300s")
            per_try = _get(h, "retries", "perTryTimeout")
            if per_try is not None and (seconds(per_try) is None or seconds(per_try) < 0.001):
                b.add(vs, f"{field}.retries.perTryTimeout", "below 1ms (the CRD's CEL rule)", "use a duration >= 1ms")
            for dest in h.get("route") or []:
                host = _get(dest, "destination", "host")
                port = _get(dest, "destination", "port", "number")
                svc = services.get((ns, host))
                if svc is None and not _foreign(host or ""):
                    b.add(vs, f"{field}.route[{host}]", f"no Service {host} in this build",
                          "route to the overlay's Service <overlay>-vllm (a short name, in this namespace)")
                elif svc is not None and port is not None and _int(port) not in _service_ports(svc):
                    b.add(vs, f"{field}.route[{host}].port", f"Service {host} has no port {port}",
                          f"use one of {sorted(_service_ports(svc))}")
    for dr in (d for d in b.docs if d.get("kind") == "DestinationRule"):
        if not _get(dr, "spec", "host"):
            b.add(dr, "spec.host", "a DestinationRule without a host", "name the Service")
        if "trafficPolicy" in (dr.get("spec") or {}) and not _get(dr, "spec", "trafficPolicy"):
            b.add(dr, "spec.trafficPolicy", "an empty trafficPolicy (Istio's webhook rejects it)", "remove it or set a field")


# The route must outlast the longest answer vLLM will give (rule route-timeout). Kept in step
# with compose.generate.routing.longest_request_seconds (not imported: policy reads builds).
DECODE_SPEED_ANNOTATION = "vllm-compose.io/decode-tokens-per-second-estimate"
PREFILL_ALLOWANCE_SECONDS = 1.0


def max_output_tokens(c: dict) -> tuple[int | None, str]:
    """The most tokens this vLLM container generates for one request, and where that comes from.

    vLLM 0.33.0 caps every request at `max_new_tokens` of --override-generation-config (a
    server-wide limit; entrypoints/serve/utils/api_utils.py get_max_tokens()); without it, at
    --max-model-len minus the prompt, so at most --max-model-len - 1."""
    import json

    args = parse_vllm_args(c)
    raw = args.first("--override-generation-config")
    if raw is not None:
        try:
            cap = json.loads(raw).get("max_new_tokens")
        except (ValueError, AttributeError):
            cap = None
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return cap, f"--override-generation-config max_new_tokens {cap}"
    mml = _int(args.first("--max-model-len"))
    if mml is not None and mml > 1:
        return mml - 1, f"no max_new_tokens cap, so up to --max-model-len {mml} - 1 prompt token"
    return None, "neither max_new_tokens nor --max-model-len"


def short_route_timeouts(route: dict, cap: int) -> list[tuple[str, str, float, float]]:
    """(field, value, longest answer in s, decode tokens/s) for each timeout of a generated
    route that is shorter than an answer of `cap` tokens at the route's planned decode speed;
    [] for a hand-written route (no planned speed to check against)."""
    tps = _get(route, "metadata", "annotations", DECODE_SPEED_ANNOTATION)
    try:
        tps = float(tps) if tps is not None else None
    except (TypeError, ValueError):
        tps = None
    if tps is None or tps <= 0:
        return []
    longest = 2 * cap / tps + PREFILL_ALLOWANCE_SECONDS
    if route.get("kind") == "HTTPRoute":
        timeouts = [(f"spec.rules[{r.get('name', i)}].timeouts.{k}", (r.get("timeouts") or {}).get(k))
                    for i, r in enumerate(_get(route, "spec", "rules", default=[]) or []) for k in ("request", "backendRequest")]
    else:
        timeouts = [(f"spec.http[{h.get('name', i)}].timeout", h.get("timeout"))
                    for i, h in enumerate(_get(route, "spec", "http", default=[]) or [])]
    out = []
    for field, value in timeouts:
        secs = seconds(value)
        if secs is None or secs == 0:  # unset: the implementation's own; 0s: none
            continue
        if secs < longest:
            out.append((field, value, longest, tps))
    return out


@rule("route-timeout", "a route's timeout outlasts the longest answer the vLLM args allow at the planned decode speed")
def _route_timeouts(b: Build) -> None:
    caps = [(max_output_tokens(c), where) for _d, _s, c, where in b.vllm_deployments()]
    caps = [(cap, why) for (cap, why), _w in caps if cap is not None]
    if not caps:
        return
    cap, why = max(caps)
    for route in (d for d in b.docs if d.get("kind") in ("HTTPRoute", "VirtualService")):
        for field, value, longest, tps in short_route_timeouts(route, cap):
            b.add(route, field, f"timeout {value} is shorter than the longest answer the vLLM args allow: "
                  f"{longest:.0f} s = 2 x {cap} tokens ({why}) / {tps:g} tokens/s + {PREFILL_ALLOWANCE_SECONDS:g} s "
                  "prefill; the gateway cuts such answers off mid-stream (504)",
                  f"regenerate the overlay (compose regen) so the timeout follows --max-output-tokens or max-model-len, or set it to "
                  f"at least {int(longest) + 1}s")


def _vllm_pods(b: Build, selector: dict, ns: str | None) -> list[tuple[dict, dict]]:
    out = []
    for d, _spec, c, _w in b.vllm_deployments():
        labels = _get(d, "spec", "template", "metadata", "labels", default={}) or {}
        if _ns(d) == ns and _labels_match({"matchLabels": selector}, labels):
            out.append((d, c))
    return out


def _container_ports(c: dict) -> set[int]:
    return {_int(p.get("containerPort")) for p in c.get("ports") or []}


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


@rule("inference-pool", "an InferencePool selects this build's vLLM pods on vLLM's port, and its endpoint "
      "picker serves exactly that pool without metric-name flags")
def _pools(b: Build) -> None:
    services = _services(b)
    for pool in (d for d in b.docs if d.get("kind") == "InferencePool"):
        ns, name = _ns(pool), _get(pool, "metadata", "name")
        selector = _get(pool, "spec", "selector", "matchLabels", default={}) or {}
        ports = [_int(p.get("number")) for p in _get(pool, "spec", "targetPorts", default=[]) or []]
        pods = _vllm_pods(b, selector, ns)
        if not pods:
            b.add(pool, "spec.selector.matchLabels", f"selects no vLLM pod of this build ({selector})",
                  "select the overlay's identity labels (components/inference-pool/kustomizeconfig.yaml adds "
                  "app.kubernetes.io/instance)")
        for d, c in pods:
            vport = _int(parse_vllm_args(c).first("--port") or 8000)
            for p in ports:
                if p != vport or p not in _container_ports(c):
                    b.add(pool, "spec.targetPorts", f"target port {p} is not the port vLLM of {obj_id(d)} listens "
                          f"on (--port={vport}, container ports {sorted(_container_ports(c))})",
                          f"use {vport}")
        ref = _get(pool, "spec", "endpointPickerRef") or {}
        if not ref:
            b.add(pool, "spec.endpointPickerRef", "no endpoint picker: gateways that need one route nothing",
                  "keep components/inference-pool's endpointPickerRef")
            continue
        if (ref.get("kind") or "Service") == "Service" and "port" not in ref:
            b.add(pool, "spec.endpointPickerRef.port", "kind Service without a port (the CRD's CEL rule rejects it)",
                  "set port.number to the EPP Service's port, 9002")
            continue
        svc = services.get((ns, ref.get("name")))
        if svc is None:
            b.add(pool, "spec.endpointPickerRef.name", f"no Service {ref.get('name')} in this build",
                  "keep components/inference-pool/kustomizeconfig.yaml so namePrefix renames the reference")
            continue
        want = _int(_get(ref, "port", "number"))
        if want not in _service_ports(svc):
            b.add(pool, "spec.endpointPickerRef.port", f"Service {ref.get('name')} has no port {want}",
                  f"use one of {sorted(_service_ports(svc))}")
        eps = [d for d in b.deployments if _ns(d) == ns
               and _labels_match({"matchLabels": _get(svc, "spec", "selector", default={}) or {}},
                                 _get(d, "spec", "template", "metadata", "labels"))]
        if not eps:
            b.add(svc, "spec.selector", "the endpoint picker's Service selects no Deployment of this build",
                  "select the EPP pods (app.kubernetes.io/name: vllm-epp)")
        for d in eps:
            for c in _get(d, "spec", "template", "spec", "containers", default=[]) or []:
                if is_vllm_container(c):
                    continue
                args = [str(a) for a in c.get("args") or []]
                got = _flag_value(args, "--pool-name")
                if got != name:
                    b.add(d, f"spec.template.spec.containers[{c.get('name')}].args",
                          f"--pool-name is {got!r}, but the pool is {name!r}: the endpoint picker watches another pool",
                          "keep the overlay's patch-endpoint-picker.yaml (compose regen)")
                for flag in EPP_FORBIDDEN_FLAGS:
                    if any(a == flag or a.startswith(flag + "=") for a in args):
                        b.add(d, f"spec.template.spec.containers[{c.get('name')}].args",
                              f"{flag} is passed: the v1.5.0 endpoint picker refuses to start with it "
                              "(\"deprecated and cannot be used\")",
                              "remove it; the defaults are vLLM 0.33's metric names")


# --------------------------------------------------------------------------- canary vs stable


def canary_consistency(repo: Path, directory: Path, docs: list[dict], source: str) -> list[Finding]:
    """A canary overlay against its stable overlay (built here); [] for other overlays."""
    from compose.core import kustomize
    from compose.core.errors import ComposeError
    from compose.generate import overlay

    try:
        doc = overlay.load_plan_file(directory)
    except ComposeError:
        return []
    stable = (doc.get("inputs") or {}).get("canary_of")
    if not stable:
        return []
    out: list[Finding] = []

    def add(obj: str, field: str, problem: str, fix: str) -> None:
        out.append(Finding(source, obj, field, problem, fix, "canary"))

    sdir = Path(repo) / "overlays" / stable
    try:
        sdoc = overlay.load_plan_file(sdir)
        sdocs = kustomize.build(sdir).docs
    except ComposeError as err:
        add("-", "inputs.canary_of", f"the stable overlay {stable} cannot be read or built: {err}",
            f"restore overlays/{stable}, or remove this canary (compose canary abort {stable})")
        return out
    ns, sns = (doc.get("overlay") or {}).get("namespace"), (sdoc.get("overlay") or {}).get("namespace")
    if ns != sns:
        add("-", "overlay.namespace", f"the canary runs in {ns!r} but {stable} in {sns!r}",
            "a canary shares its stable overlay's namespace (and cache); regenerate it with compose canary start")
    weight = (sdoc.get("inputs") or {}).get("canary_weight")
    if weight is None:
        add("-", "inputs.canary_of", f"{stable}'s route sends this canary nothing (no canary_weight)",
            f"compose canary set-weight {stable} N, or compose canary abort {stable}")

    def vllm(ds: list[dict]) -> tuple[dict, dict] | None:
        for d in ds:
            if d.get("kind") != "Deployment":
                continue
            for c in _get(d, "spec", "template", "spec", "containers", default=[]) or []:
                if is_vllm_container(c):
                    return d, c
        return None

    mine, theirs = vllm(docs), vllm(sdocs)
    if mine is None or theirs is None:
        return out
    # The stable overlay's route carries the canary's share too: it must outlast the
    # canary's longest answer, which a larger --max-output-tokens on the canary lengthens.
    cap, why = max_output_tokens(mine[1])
    if cap is not None:
        for route in (d for d in sdocs if d.get("kind") in ("HTTPRoute", "VirtualService")):
            for field, value, longest, tps in short_route_timeouts(route, cap):
                add(obj_id(route), field, f"{stable}'s route timeout {value} is shorter than the canary's longest "
                    f"answer: {longest:.0f} s = 2 x {cap} tokens ({why}) / {tps:g} tokens/s + "
                    f"{PREFILL_ALLOWANCE_SECONDS:g} s prefill; the gateway would cut the canary's answers off",
                    f"give the canary a max_output_tokens no larger than {stable}'s, or raise {stable}'s "
                    "--max-output-tokens first (compose new-model ... --force)")
    names = [parse_vllm_args(x[1]).first("--served-model-name") for x in (mine, theirs)]
    if names[0] != names[1]:
        add(obj_id(mine[0]), "--served-model-name", f"the canary serves {names[0]!r}, {stable} serves {names[1]!r}",
            "a canary serves the same model name (clients do not change)")
    claims = [v.get("persistentVolumeClaim", {}).get("claimName")
              for v in _get(mine[0], "spec", "template", "spec", "volumes", default=[]) or []
              if v.get("name") == "model-cache"]
    own = {_get(d, "metadata", "name") for d in docs if d.get("kind") == "PersistentVolumeClaim"}
    stable_claims = {_get(d, "metadata", "name") for d in sdocs if d.get("kind") == "PersistentVolumeClaim"}
    for claim in claims:
        if claim in own:
            continue
        if claim not in stable_claims:
            add(obj_id(mine[0]), "spec.template.spec.volumes[model-cache]",
                f"mounts {claim}, which neither this canary nor {stable} renders", "regenerate the canary")
            continue

        def env(container_of: tuple[dict, dict]) -> dict:
            inits = _get(container_of[0], "spec", "template", "spec", "initContainers", default=[]) or []
            for ic in inits:
                e = {x.get("name"): x.get("value") for x in ic.get("env") or []}
                if "MODEL_DIR" in e:
                    return {k: e.get(k) for k in ("HF_MODEL_ID", "HF_REVISION", "MODEL_DIR")}
            return {}

        if env(mine) != env(theirs):
            add(obj_id(mine[0]), "spec.template.spec.initContainers[download-weights].env",
                f"shares {stable}'s cache {claim} but wants other weights ({env(mine)} vs {env(theirs)}): its "
                "download would overwrite the stable overlay's files",
                f"give the canary its own cache (compose canary abort {stable}, then start it again)")
    return out
