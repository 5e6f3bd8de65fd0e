"""The composer: turn a plan into an overlay directory, and keep it true.

`generate()` is pure: options in, a dict of {relative path: text} out. `stage()`
puts that into a `Transaction` (compose.core.transaction), never touching files a
person took over (files without the generated header) and never overwriting someone
else's directory; the caller commits the transaction together with whatever else
the command changes (the GitOps output). `write()` is the one-overlay shortcut.
`stage_regen()` replays the inputs recorded in an overlay's compose-plan.yaml and
refuses inputs that would name another overlay.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose.core import kustomize, names, yamlio
from compose.core.errors import DoesNotFit, Drift, InvalidInput, NotOurs, OverlayExists, UnknownGPU
from compose.core.transaction import OutOfScope, Transaction
from compose.core.writer import UNCHANGED, Change
from compose.core.writer import report as writer_report
from compose.generate import alerts, canaryalerts, routing
from compose.generate.alerts import (
    KEDA_FAILURE_THRESHOLD,
    KEDA_POLLING_INTERVAL_SECONDS,
)
from compose.generate.options import (
    _HTML_MARK,
    BASE_REFERENCE,
    DEFAULT_PROMETHEUS_URL,
    GPUS_PER_NODE_MAX,
    KUSTOMIZATION,
    PLAN_API,
    PLAN_FILE,
    PLAN_KIND,
    MIN_REPLICAS,
    Options,
    API_KEY_SECRET_KEY,
    VLLM_IMAGE,
    check_replica_reason,
    header,
    ingress_namespaces,
    is_generated,
    load_plan_file,
    network_policy_on,
    parse_replicas,
    prometheus_namespaces,
    replica_bounds,
)
from compose.generate.patches import (
    PATCH_WHY,
    _patch_text,
    patch_api_key,
    patch_image,
    patch_model_args,
    patch_network_policy,
    patch_placement,
    patch_probes_drain,
    patch_resources,
    patch_scaling,
    patch_storage,
)
from compose.plan import clouds as clouds_mod


@dataclass
class Generated:
    name: str
    namespace: str
    files: dict[str, str]
    plan: dict
    options: Options
    notes: list[str] = field(default_factory=list)
    kustomization: dict = field(default_factory=dict)  # the keys compose manages in kustomization.yaml



def gpus_per_node(opts: Options, gpu: str) -> int:
    """GPUs on one node of the target: --gpus-per-node, else 1 on k3s (a box with
    one card is the common case), else the largest node shape the catalog lists
    for this GPU on the cloud. More than the cloud sells is an error."""
    from compose.plan import catalog

    cloud = clouds_mod.get(opts.cloud)
    g = catalog.get_gpu(gpu)
    largest = g.max_gpus_per_node(cloud.name)
    if opts.gpus_per_node is not None:
        if not 1 <= opts.gpus_per_node <= GPUS_PER_NODE_MAX:
            raise InvalidInput(f"--gpus-per-node must be 1-{GPUS_PER_NODE_MAX}, got {opts.gpus_per_node}")
        if not cloud.single_node and opts.gpus_per_node > largest:
            raise InvalidInput(f"--gpus-per-node {opts.gpus_per_node}: {cloud.name} sells {g.name} nodes with at most "
                               f"{largest} GPUs; use --gpus-per-node {largest} or less")
        return opts.gpus_per_node
    return 1 if cloud.single_node else largest


def _gpus_per_node_why(opts: Options, n: int) -> str:
    if opts.gpus_per_node is not None:
        return f"--gpus-per-node {n}: the largest TP one pod may use"
    if clouds_mod.get(opts.cloud).single_node:
        return f"{opts.cloud} default: one GPU per box (pass --gpus-per-node for more)"
    return f"largest {opts.cloud} node shape for this GPU in the catalog (pass --gpus-per-node if your nodes are smaller)"


def resolve_gpu(opts: Options) -> tuple[str, list[str]]:
    """The GPU to plan for; when none is given, the smallest the cloud offers that fits."""
    from compose.plan import catalog, planner

    cloud = clouds_mod.get(opts.cloud)
    if opts.gpu:
        gpu = catalog.get_gpu(opts.gpu)
        offered = catalog.gpus_for_cloud(cloud.name)
        if gpu.name not in {g.name for g in offered}:
            raise InvalidInput(
                f"--gpu {gpu.name} is not offered on --cloud {cloud.name}; "
                f"choose one of: {', '.join(g.name for g in offered)}"
            )
        return gpu.name, []
    fitting = []
    for gpu in catalog.gpus_for_cloud(cloud.name):
        plan = planner.plan(_request(opts, gpu.name))
        if plan.fits:
            fitting.append((plan.tensor_parallel_size, gpu.memory_gib, gpu.name))
    if fitting:
        tp, _, name = min(fitting)
        return name, [f"--gpu not given: picked {name} (TP {tp}), the {cloud.name} GPU that fits with the fewest, smallest GPUs"]
    raise InvalidInput(
        f"{opts.model} fits none of the {cloud.name} GPUs at these settings; "
        "pass --gpu with --tensor-parallel-size, a shorter --max-model-len, or a quantized model"
    )


def _request(opts: Options, gpu: str):
    from compose.plan import planner

    cloud = clouds_mod.get(opts.cloud)
    kwargs: dict[str, Any] = dict(
        model=opts.model,
        gpu=gpu,
        gpus_per_node=gpus_per_node(opts, gpu),
        tensor_parallel_size=opts.tensor_parallel_size,
        max_model_len=opts.max_model_len,
        target_rps=opts.target_rps,
        spot_notice_seconds=cloud.spot_notice_seconds if opts.spot else None,
        hf_repo=opts.hf_repo,
        revision=opts.revision,
        # The start-up budget reads the checkpoint from the cloud's cache, with the
        # minimum replicas of a first deploy loading at once.
        storage=cloud.storage,
        concurrent_loads=_min_replicas(opts),
    )
    if opts.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = opts.gpu_memory_utilization
    if opts.kv_cache_dtype is not None:
        kwargs["kv_cache_dtype"] = opts.kv_cache_dtype
    if opts.prompt_tokens is not None:
        kwargs["prompt_tokens"] = opts.prompt_tokens
    if opts.output_tokens is not None:
        kwargs["output_tokens"] = opts.output_tokens
    if opts.max_output_tokens is not None:
        kwargs["max_output_tokens"] = opts.max_output_tokens
    return planner.PlanRequest(**kwargs)


def _min_replicas(opts: Options) -> int:
    explicit = parse_replicas(opts.replicas)
    return explicit[0] if explicit else MIN_REPLICAS[opts.env]


def model_ref(model: str, repo: Path | None) -> str:
    """A config.json path in the inputs is relative to the repository root and stays inside it."""
    if repo is None:
        return model
    if Path(model).is_absolute():
        raise InvalidInput(
            f"model {model}: an absolute path; record config.json paths relative to the repository "
            "(copy the config into the repository and give that path), so the overlay re-plans on any checkout"
        )
    candidate = Path(repo) / model
    try:
        exists = candidate.exists()
    except OSError:
        exists = False
    if not exists:
        return model
    resolved = candidate.resolve()
    if not resolved.is_relative_to(Path(repo).resolve()):
        raise InvalidInput(
            f"model {model}: the path leaves the repository; give a config.json inside it (e.g. models/<name>/config.json)"
        )
    return str(resolved)


def model_input(repo: Path, arg: str) -> str:
    """What `new-model MODEL` records: a catalog slug as given, a config path relative to the
    repository. A config outside the repository is refused: another checkout could not re-plan."""
    from compose.plan import catalog

    catalog.check_model_ref(arg)
    path = Path(arg).expanduser()
    try:
        exists = path.exists()
    except OSError as err:
        raise InvalidInput(f"model {arg[:60]!r}: {err.strerror}; give a catalog slug or a config.json path") from None
    if not exists:
        return arg
    root = Path(repo).resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput(
            f"the config {arg} is outside the repository {root}: copy it into the repository "
            "(e.g. models/<name>/config.json) and pass that path, so `compose regen` can re-plan the overlay "
            "on any checkout"
        )
    return resolved.relative_to(root).as_posix()


def make_plan(opts: Options, repo: Path | None = None) -> tuple[dict, list[str]]:
    from compose.plan import planner

    opts = dataclasses.replace(opts, model=model_ref(opts.model, repo))
    gpu, notes = resolve_gpu(opts)
    req = _request(opts, gpu)
    result = planner.plan(req)
    if not result.fits and opts.max_model_len is None:
        capped = _context_beyond_one_node(opts, req, result)
        if capped is not None:
            result, note = capped
            notes.append(note)
    if not result.fits:
        raise DoesNotFit(result.reason, plan=result)
    plan = result.to_dict()
    plan["explanations"]["gpus_per_node"] = _gpus_per_node_why(opts, req.gpus_per_node)
    return plan, notes


def _context_beyond_one_node(opts: Options, req, result):
    """The model's full context needs more GPUs than one node has. dev: cap
    --max-model-len to the longest that fits one node and say so; staging and
    prod: refuse, naming both ways out. None when more GPUs would not help."""
    from compose.plan import catalog, planner

    wider = catalog.get_gpu(req.gpu).gpus_per_node
    if req.tensor_parallel_size is not None or wider <= req.gpus_per_node:
        return None
    full = planner.plan(dataclasses.replace(req, gpus_per_node=wider))
    if not full.fits:
        return None  # more GPUs per node would not help: the planner's own way out applies
    cap = planner.max_model_len_for_node(req)
    context = full.max_model_len
    where = f"a {opts.cloud} node has {req.gpus_per_node}"
    need = f"{result.model}'s full {context}-token context needs {full.tensor_parallel_size} {req.gpu} GPUs but {where}"
    if cap is None:
        raise InvalidInput(f"{need}, and no shorter context fits {req.gpus_per_node}: pass --gpus-per-node "
                           f"{full.tensor_parallel_size} if your nodes have that many GPUs, or choose a bigger --gpu")
    if opts.env != "dev":
        raise InvalidInput(f"{need}: pass --max-model-len {cap} (fits one node of {req.gpus_per_node}) or "
                           f"--gpus-per-node {full.tensor_parallel_size} (if your nodes have that many GPUs)")
    capped = planner.plan(dataclasses.replace(req, max_model_len=cap))
    capped.explanations["max_model_len"] = (
        f"capped for dev to fit one node: the full {context}-token context needs TP {full.tensor_parallel_size} "
        f"but {where} (--gpus-per-node {full.tensor_parallel_size} or --max-model-len to change it)")
    return capped, (f"--max-model-len capped to {cap}: {need}; pass --gpus-per-node {full.tensor_parallel_size} "
                    f"for the full context (staging and prod refuse instead of capping)")


def require_identity(plan: dict, opts: Options) -> None:
    """An overlay downloads a real Hub repository at a named revision, or is not written."""
    missing = []
    if not plan.get("hf_repo"):
        missing.append("--hf-repo ORG/NAME (its config's _name_or_path is not a Hugging Face repository id)")
    if not plan.get("revision"):
        missing.append("--revision COMMIT (the 40-character Hub commit SHA that pins the download)")
    if missing:
        raise InvalidInput(
            f"{opts.model}: nothing says which Hugging Face repository and revision the init container downloads; "
            f"pass {' and '.join(missing)} (recorded as inputs.hf_repo and inputs.revision in {PLAN_FILE})"
        )



# --------------------------------------------------------------------------- kustomization

_COMPONENTS_PREFIX = "../../components/"
ARM64_COMPONENT = "arm64"
_MANAGED_COMPONENTS = {
    f"{_COMPONENTS_PREFIX}{c}"
    for c in (*clouds_mod.CLOUDS, "spot", "on-demand", ARM64_COMPONENT, "monitoring", "network-policy", *routing.COMPONENTS)
}
# Every patch file compose writes (and may delete when an option goes away).
ALL_PATCHES = frozenset(PATCH_WHY) | frozenset(routing.PATCH_WHY)


def image_override(image: str | None, digest: str | None = None) -> dict | None:
    """The kustomization `images:` entry that swaps the base's vLLM image for `image`.

    With `--image-digest` the pin is patch-image.yaml's (image and digest on both
    containers, the tag kept for readers), so no `images:` entry is written."""
    if image is None or digest is not None:
        return None
    ref, _, digest = image.partition("@")
    name, tag = ref, None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    entry: dict = {"name": VLLM_IMAGE}
    if name != VLLM_IMAGE:
        entry["newName"] = name
    if digest:
        entry["digest"] = digest
    elif tag:
        entry["newTag"] = tag
    return entry


def capacity_component(opts: Options) -> str | None:
    """spot with --spot; on-demand on every cloud that also sells reclaimable capacity."""
    if opts.spot:
        return "spot"
    if clouds_mod.get(opts.cloud).interruptible_labels:
        return "on-demand"
    return None


def arch_component(opts: Options, plan: dict) -> str | None:
    """arm64 where the overlay pins an Arm GPU node (the catalog's node_arch, e.g. GB200
    on GKE A4X): it tolerates the taint GKE puts on every Arm node. patch_placement pins
    kubernetes.io/arch from the same catalog entry."""
    from compose.plan import catalog

    if not clouds_mod.get(opts.cloud).gpu_label:
        return None
    try:
        gpu = catalog.get_gpu(plan["gpu"])
    except UnknownGPU:  # a custom GPU (--gpu-memory-gib): no catalog node facts
        return None
    return ARM64_COMPONENT if gpu.node_arch == "arm64" else None


def kustomization_doc(name: str, namespace: str, opts: Options, plan: dict, patches: list[str]) -> dict:
    components = [f"{_COMPONENTS_PREFIX}{opts.cloud}"]
    capacity = capacity_component(opts)
    if capacity:
        components.append(f"{_COMPONENTS_PREFIX}{capacity}")
    arch = arch_component(opts, plan)
    if arch:
        components.append(f"{_COMPONENTS_PREFIX}{arch}")
    if opts.monitoring:
        components.append(f"{_COMPONENTS_PREFIX}monitoring")
    if network_policy_on(opts):
        components.append(f"{_COMPONENTS_PREFIX}network-policy")
    components += [f"{_COMPONENTS_PREFIX}{c}" for c in routing.components(opts)]
    mutable = {
        "vllm-compose.io/env": opts.env,
        "vllm-compose.io/model": names.slugify(plan["slug"]),
        "vllm-compose.io/gpu": plan["gpu"],
    }
    if opts.canary_of is not None:
        mutable[routing.CANARY_OF_LABEL] = opts.canary_of
    image = image_override(opts.image, opts.image_digest)
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "namePrefix": f"{name}-",
        "resources": ["../../base/vllm"],
        "components": components,
        "labels": [
            {"pairs": {"app.kubernetes.io/instance": name}, "includeSelectors": True, "includeTemplates": True},
            {
                "pairs": mutable,
                "includeSelectors": False,
                "includeTemplates": True,
            },
        ],
        "images": [image] if image else [],
        "patches": [{"path": p} for p in patches],
    }


def _is_managed_entry(key: str, entry: Any) -> bool:
    if key == "components":
        return str(entry) in _MANAGED_COMPONENTS
    if key == "patches":
        return isinstance(entry, dict) and str(entry.get("path", "")) in ALL_PATCHES
    if key == "images":
        return isinstance(entry, dict) and entry.get("name") == VLLM_IMAGE
    if key == "labels":
        pairs = entry.get("pairs", {}) if isinstance(entry, dict) else {}
        return any(k == "app.kubernetes.io/instance" or str(k).startswith("vllm-compose.io/") for k in pairs)
    if key == "resources":
        return str(entry) == "../../base/vllm"
    return False


def render_kustomization(desired: dict, existing: str | None, name: str) -> str:
    """Write our keys into kustomization.yaml, keeping everything a person added.

    Round-trips the existing file with ruamel.yaml: comments, extra keys and extra
    list entries (another component, another patch) survive; entries compose
    manages are replaced by the desired ones, in the desired order.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    data = yamlio.roundtrip_load(existing, f"overlays/{name}/{KUSTOMIZATION}") if existing else None
    if not isinstance(data, CommentedMap):
        data = CommentedMap()
    for key in ("apiVersion", "kind", "namespace", "namePrefix"):
        data[key] = desired[key]
    for key in ("resources", "components", "labels", "images", "patches"):
        extras = [e for e in (data.get(key) or []) if not _is_managed_entry(key, e)]
        merged = list(desired[key]) + extras
        if not merged and key == "images":
            data.pop(key, None)
            continue
        if key == "images" and key not in data:
            data.insert(list(data.keys()).index("patches") if "patches" in data else len(data), key, CommentedSeq(merged))
            continue
        data[key] = CommentedSeq(merged)
    body = yamlio.roundtrip_dump(data)
    # The header is ours; drop any copy of it the round-trip kept as a comment.
    lines = body.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return header(KUSTOMIZATION, name) + "".join(lines)


# --------------------------------------------------------------------------- README / plan file


def plan_file(name: str, namespace: str, opts: Options, plan: dict) -> str:
    doc = {
        "apiVersion": PLAN_API,
        "kind": PLAN_KIND,
        "overlay": {"name": name, "env": opts.env, "namespace": namespace, "name_prefix": f"{name}-"},
        "inputs": opts.to_inputs(),
        "plan": plan,
    }
    return header(PLAN_FILE, name) + yamlio.dump(doc)


_README_ROWS = (
    "gpus_per_node",
    "tensor_parallel_size",
    "weights_gib_per_gpu",
    "kv_cache_gib_per_gpu",
    "kv_cache_tokens",
    "max_model_len",
    "max_num_seqs",
    "max_num_queued_reqs",
    "storage",
    "load_read_mib_per_second",
    "load_seconds_estimate",
    "startup_budget_seconds",
    "shutdown_timeout_seconds",
    "termination_grace_period_seconds",
    "memory_request_gib",
    "shm_size_gib",
    "pvc_size_gib",
    "replica_throughput_rps",
    "replicas_for_target_rps",
    "keda_queue_threshold",
)


def command_line(opts: Options) -> str:
    """The new-model command that reproduces `opts`, quoted for a POSIX shell."""
    parts = ["compose new-model", shlex.quote(opts.model), f"--env {opts.env}", f"--cloud {opts.cloud}"]
    for flag, value in (
        ("--gpu", opts.gpu),
        ("--name", opts.name),
        ("--namespace", opts.namespace),
        ("--max-model-len", opts.max_model_len),
        ("--target-rps", opts.target_rps),
        ("--prompt-tokens", opts.prompt_tokens),
        ("--output-tokens", opts.output_tokens),
        ("--max-output-tokens", opts.max_output_tokens),
        ("--replicas", opts.replicas),
        ("--tensor-parallel-size", opts.tensor_parallel_size),
        ("--gpus-per-node", opts.gpus_per_node),
        ("--gpu-memory-utilization", opts.gpu_memory_utilization),
        ("--kv-cache-dtype", opts.kv_cache_dtype),
        ("--image-digest", opts.image_digest),
        ("--api-key-secret", opts.api_key_secret),
    ):
        if value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {shlex.quote(str(value))}")
    if opts.single_replica_reason is not None:
        parts.append(f"--single-replica-reason {shlex.quote(opts.single_replica_reason)}")
    if opts.spot:
        parts.append("--spot")
    if not opts.monitoring:
        parts.append("--no-monitoring")
    if opts.prometheus_url != DEFAULT_PROMETHEUS_URL:
        parts.append(f"--prometheus-url {shlex.quote(opts.prometheus_url)}")
    for flag, value in (
        ("--image", opts.image),
        ("--hf-repo", opts.hf_repo),
        ("--revision", opts.revision),
        ("--gateway", opts.gateway),
        ("--hostname", opts.hostname),
        ("--route-match", opts.route_match),
        ("--router", opts.router),
        ("--mesh", opts.mesh),
    ):
        if value is not None:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    if opts.network_policy is not None:
        parts.append("--network-policy" if opts.network_policy else "--no-network-policy")
    for ns in opts.allow_from or ():
        parts.append(f"--allow-from {shlex.quote(ns)}")
    return " ".join(parts)


def _origin(opts: Options) -> str:
    """The command that wrote the overlay: new-model, or for a canary, canary start (+ set-weight)."""
    if opts.canary_of is None:
        return command_line(opts)
    return (f"compose canary start {opts.canary_of} ...   # this canary's inputs: compose-plan.yaml; "
            f"its share: {opts.canary_of}'s route")


def readme(name: str, namespace: str, opts: Options, plan: dict, components: list[str]) -> str:
    lo, hi, fallback = replica_bounds(opts, plan)
    explanations = plan.get("explanations", {})
    rows = "\n".join(
        f"| `{key}` | {plan[key]} | {explanations.get(key, '')} |" for key in _README_ROWS if key in plan
    )
    gated = ""
    if plan.get("gated"):
        gated = (
            "\n## Gated model: provide a Hugging Face token\n\n"
            f"{plan['hf_repo']} is gated. Accept its licence on Hugging Face, then give the init\n"
            "container a token as a Secret (never inline in Git):\n\n"
            "```sh\n"
            f"kubectl create namespace {namespace} --dry-run=client -o yaml | kubectl apply -f -\n"
            f"kubectl -n {namespace} create secret generic hf-token --from-literal=token=hf_...\n"
            "```\n"
        )
    single = ""
    if lo == 1:
        why = ("That is the trade-off for dev and staging;\nproduction overlays keep two replicas."
               if opts.single_replica_reason is None else
               f"This production overlay accepts it because: {opts.single_replica_reason}")
        single = (
            "\n## Single replica\n\n"
            "KEDA may scale this model down to one replica, and a PodDisruptionBudget cannot both\n"
            "protect a lone replica and let a node drain finish, so `minAvailable` is 0: a drain takes\n"
            "the model down for one start-up (budget {s} s). {why} See [base/README.md](../../base/README.md#single-replica).\n"
        ).format(s=plan["startup_budget_seconds"], why=why)
    capped = ""
    if str(explanations.get("max_model_len", "")).startswith("capped"):
        capped = (
            "\n## Context capped to one node\n\n"
            f"This dev overlay serves `--max-model-len {plan['max_model_len']}`, not the model's full context "
            f"({explanations['max_model_len'].removeprefix('capped for dev to fit one node: ')}).\n"
            "vLLM refuses longer requests. `--env staging` and `--env prod` refuse to cap instead, naming both\n"
            "ways out.\n"
        )
    security = ""
    if opts.api_key_secret:
        security += (
            "\n## API key\n\n"
            f"vLLM reads its key from the Secret `{opts.api_key_secret}` (key `{API_KEY_SECRET_KEY}`) as `VLLM_API_KEY`;\n"
            "the pod does not start until the Secret exists. Create it once (never commit it):\n\n"
            "```sh\n"
            f"kubectl -n {namespace} create secret generic {opts.api_key_secret} --from-literal={API_KEY_SECRET_KEY}=\"$(openssl rand -hex 32)\"\n"
            "```\n\n"
            "Clients send it as a bearer token on `/v1` (also `/v2`, `/inference`, `/cohere`):\n\n"
            "```sh\n"
            f"curl -H \"Authorization: Bearer $VLLM_API_KEY\" http://{name}-vllm.{namespace}.svc:8000/v1/models\n"
            "```\n\n"
            "`/health` and `/metrics` stay open, so the probes and Prometheus need no key; so do vLLM's\n"
            "other routes (`/tokenize`, `/invocations`, `/pause`, ...): the network policy, not the key, is the\n"
            "boundary (vLLM's security guide: \"Do not rely exclusively on --api-key\").\n"
        )
    if network_policy_on(opts):
        allowed = ", ".join(f"`{ns}`" for ns in ingress_namespaces(opts, namespace))
        security += (
            "\n## Network policy\n\n"
            f"Port 8000 is reachable only from the namespaces {allowed}: the clients' (`--allow-from`,\n"
            "default the `--gateway` namespace, else `gateway`) and Prometheus' (for `/metrics`). The pods may connect only to DNS and to\n"
            "HTTPS (the weight download). Enforced only where the CNI implements NetworkPolicy: see\n"
            "[components/network-policy](../../components/network-policy/README.md).\n"
        )
    addon = ""
    if clouds_mod.get(opts.cloud).needs_device_plugin:
        addon = "kubectl apply -k ../../base/nvidia-device-plugin   # once per cluster\n"
    comps = ", ".join(f"`{c.removeprefix(_COMPONENTS_PREFIX)}`" for c in components)
    return (
        f"{_HTML_MARK} (README.md) for overlay {name}; run `compose regen {name}`. -->\n"
        f"# {name}\n\n"
        f"{plan['served_model_name']} on {plan['tensor_parallel_size']}× {plan['gpu']} "
        f"({opts.cloud}{', spot' if opts.spot else ''}), namespace `{namespace}`, "
        f"{lo}–{hi} replicas (KEDA fallback: hold the current count, at least {fallback}). Components: {comps}.\n\n"
        "Generated by:\n\n"
        f"```sh\n{_origin(opts)}\n```\n\n"
        "Deploy and verify:\n\n"
        f"```sh\n{addon}kubectl apply -k .\n"
        f"compose check {name}\n"
        f"kubectl -n {namespace} rollout status deploy/{name}-vllm --timeout={plan['progress_deadline_seconds']}s\n```\n"
        f"{gated}{capped}{single}{security}{routing.readme_section(opts, plan, name, namespace)}\n"
        "## Plan\n\n"
        "| figure | value | how it was derived |\n|---|---|---|\n"
        f"{rows}\n\n"
        f"All inputs and figures: [`{PLAN_FILE}`]({PLAN_FILE}). Change them with the command above\n"
        f"plus new options, or edit `inputs` in `{PLAN_FILE}` and run `compose regen {name}`.\n"
    )


# --------------------------------------------------------------------------- generate / write


def generate(
    opts: Options, repo: Path | None = None, plan: dict | None = None, existing_kustomization: str | None = None
) -> Generated:
    """Plan (unless given) and render every file of the overlay. Writes nothing."""
    opts.check()  # types and ranges of every option, before anything else
    cloud = clouds_mod.get(opts.cloud)
    if opts.spot and cloud.spot_notice_seconds is None:
        raise InvalidInput(f"--spot does not apply to --cloud {cloud.name}: it has no spot capacity; drop --spot")
    if opts.name is not None:  # validate names before the (slower) planning
        names.overlay_name(opts.env, opts.name)
    if opts.namespace is not None:
        names.check_namespace(opts.namespace, "--namespace", prometheus_namespaces(opts))
    # Each option on its own (types, bounds, patterns, credentials) was checked by opts.check();
    # what follows are the rules between options.
    if opts.allow_from and opts.network_policy is False:
        raise InvalidInput("--allow-from names who may pass the network policy; drop it or --no-network-policy")
    check_replica_reason(opts, _min_replicas(opts))
    if plan is None:
        plan, notes = make_plan(opts, repo)
    else:
        notes = []
    plan = with_revision(plan, opts.revision)
    require_identity(plan, opts)
    name = names.overlay_name(opts.env, opts.name if opts.name else names.slugify(plan["slug"]))
    namespace = names.check_namespace(opts.namespace or name, "--namespace", prometheus_namespaces(opts))
    routing.check_options(opts, name)
    instance = routing.scope_instance(opts, name)

    patch_docs: dict[str, Any] = {
        "patch-model-args.yaml": patch_model_args(plan),
        "patch-resources.yaml": patch_resources(plan),
        "patch-probes-drain.yaml": patch_probes_drain(plan),
        "patch-scaling.yaml": patch_scaling(plan, opts, namespace, instance),
    }
    if not opts.shared_cache:
        patch_docs["patch-storage.yaml"] = patch_storage(plan)
    placement = patch_placement(plan, opts)
    if placement is not None:
        patch_docs["patch-placement.yaml"] = placement
    if opts.image_digest:
        patch_docs["patch-image.yaml"] = patch_image(plan, opts.image_digest, opts.image)
    if opts.api_key_secret:
        patch_docs["patch-api-key.yaml"] = patch_api_key(opts.api_key_secret)
    if network_policy_on(opts):
        patch_docs["patch-network-policy.yaml"] = patch_network_policy(ingress_namespaces(opts, namespace))
    files: dict[str, str] = {f: _patch_text(f, name, d) for f, d in patch_docs.items()}
    if opts.monitoring:
        files["patch-alerts.yaml"] = _alerts_patch(plan, opts, name, namespace)
    files.update(_routing_patches(plan, opts, name))

    patches = sorted(files)
    desired = kustomization_doc(name, namespace, opts, plan, patches)
    files[KUSTOMIZATION] = render_kustomization(desired, existing_kustomization, name)
    files[PLAN_FILE] = plan_file(name, namespace, opts, plan)
    files["README.md"] = readme(name, namespace, opts, plan, desired["components"])
    if plan.get("gated"):
        notes.append(
            f"{plan['hf_repo']} is gated: create the Secret before the pod starts: "
            f"kubectl -n {namespace} create secret generic hf-token --from-literal=token=hf_..."
        )
    return Generated(name, namespace, files, plan, opts, notes, desired)


def _alerts_patch(plan: dict, opts: Options, name: str, namespace: str) -> str:
    lo, hi, _ = replica_bounds(opts, plan)
    figures = alerts.AlertFigures.from_plan(
        plan,
        namespace=namespace,
        name_prefix=f"{name}-",
        max_replicas=hi,
        keda_polling_interval_seconds=KEDA_POLLING_INTERVAL_SECONDS,
        keda_failure_threshold=KEDA_FAILURE_THRESHOLD,
        instance=routing.scope_instance(opts, name),
    )
    extra = []
    if opts.canary_weight is not None:
        extra.append(canaryalerts.rule_group(canaryalerts.CanaryFigures(
            plan["served_model_name"], namespace, name, routing.canary_name(name), int(opts.canary_weight))))
    return alerts.alerts_patch(figures, header=header("patch-alerts.yaml", name), extra_groups=extra)


def with_revision(plan: dict, revision: str | None) -> dict:
    """The plan with the Hub revision the options pin instead of the catalog's."""
    if revision is None or plan.get("revision") == revision:
        return plan
    plan = dict(plan)
    plan["revision"] = revision
    plan["revision_pinned"] = True
    plan["explanations"] = {**(plan.get("explanations") or {}), "revision": "pinned by --revision (a Hub commit)"}
    return plan


def _routing_patches(plan: dict, opts: Options, name: str) -> dict[str, str]:
    """patch-route.yaml, patch-endpoint-picker.yaml, and a canary's patch-canary.yaml and shared storage."""
    out: dict[str, str] = {}
    if routing.has_route(opts):
        out["patch-route.yaml"] = _patch_text("patch-route.yaml", name, routing.patch_route(opts, plan, name),
                                              routing.PATCH_WHY["patch-route.yaml"])
    if routing.router(opts) == "inference-pool":
        out["patch-endpoint-picker.yaml"] = _patch_text(
            "patch-endpoint-picker.yaml", name, routing.patch_endpoint_picker(plan, name),
            routing.PATCH_WHY["patch-endpoint-picker.yaml"])
    if opts.canary_of is not None:
        out["patch-canary.yaml"] = _patch_text("patch-canary.yaml", name, routing.patch_canary(opts),
                                               routing.PATCH_WHY["patch-canary.yaml"])
        if opts.shared_cache:
            out["patch-storage.yaml"] = _patch_text("patch-storage.yaml", name, routing.patch_shared_storage(opts),
                                                    routing.PATCH_WHY["patch-storage.yaml"])
    return out


def overlays_dir(repo: Path) -> Path:
    return Path(repo) / "overlays"


def _read(path: Path) -> str | None:
    """A file's text, or None; undecodable bytes are replaced (only headers are compared)."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a directory where compose writes a file; move it away") from None


def owned(directory: Path) -> bool:
    """A directory is ours if its compose-plan.yaml carries our header."""
    text = _read(directory / PLAN_FILE)
    return text is not None and is_generated(text)


@dataclass
class WriteResult:
    generated: Generated
    changes: list[Change]
    kept: list[Path]
    directory: Path

    def report(self, root: Path | None = None, preview: bool = False) -> str:
        return writer_report(self.changes, root, self.kept, preview=preview)

    def diff(self, root: Path | None = None) -> str:
        return "".join(c.diff(root) for c in self.changes if c.status != UNCHANGED)


def plan_overlay(repo: Path, opts: Options, plan: dict | None = None) -> Generated:
    """Plan and render without looking at the overlay directory: the name the overlay will have."""
    return generate(opts, Path(repo).resolve(), plan=plan)


def stage(
    repo: Path,
    opts: Options,
    txn: Transaction,
    *,
    force: bool = False,
    allow_existing: bool = False,
    plan: dict | None = None,
    expect: str | None = None,
    probe: Generated | None = None,
) -> WriteResult:
    """Put `overlays/<name>/` into the transaction (nothing is written until it commits).

    An existing overlay needs `force` (or `allow_existing`, used by regen); files a
    person took over (no generated header) are kept and reported; generated patches the
    new plan no longer has are deleted. With `expect`, inputs that would produce another
    overlay than `expect` are refused before anything is staged. `probe` is the result of
    `plan_overlay(repo, opts)` when the caller already has it.
    """
    repo = Path(repo).resolve()
    kustomize.kubectl()  # fail early, before any work, when kubectl is missing
    root = overlays_dir(repo)
    probe = probe or generate(opts, repo, plan=plan)
    if expect is not None and probe.name != expect:
        raise InvalidInput(
            f"overlays/{expect}/{PLAN_FILE}: its inputs (env {opts.env}, name {opts.name or '-'}) produce overlay "
            f"{probe.name}, not {expect}; fix inputs.env/inputs.name or rename the directory; nothing was written"
        )
    directory = root / probe.name
    exists = directory.exists() or directory.is_symlink()
    if exists and not directory.is_dir():
        raise NotOurs(f"overlays/{probe.name} exists and is not a directory; move it away or choose another --name")
    if exists and not owned(directory):
        raise NotOurs(
            f"overlays/{probe.name} exists and was not generated by compose (no {PLAN_FILE} with our header); "
            "move it away or choose another --name"
        )
    if exists and not (force or allow_existing):
        raise OverlayExists(
            f"overlay {probe.name} already exists; pass --force to regenerate it "
            f"(hand-edited files are kept) or run `compose regen {probe.name}`"
        )
    check_namespace_free(repo, probe.name, probe.namespace, canary_of=opts.canary_of)
    if exists and force and not allow_existing and opts.canary_weight is None:
        recorded = load_plan_file(directory, f"overlays/{probe.name}/{PLAN_FILE}")["inputs"].get("canary_weight")
        if recorded is not None:
            raise InvalidInput(
                f"overlay {probe.name} has a canary running ({recorded}% of its traffic); "
                f"`compose canary promote {probe.name}` or `compose canary abort {probe.name}` first"
            )
    existing_k = None
    if exists and (directory / KUSTOMIZATION).is_file():
        rel_k = f"overlays/{probe.name}/{KUSTOMIZATION}"
        kustomize.read_kustomization(directory / KUSTOMIZATION, rel_k)  # types, duplicate keys, UTF-8
        existing_k = yamlio.read_text(directory / KUSTOMIZATION, rel_k)
    gen = probe
    if existing_k:  # keep what a person added to kustomization.yaml
        merged = render_kustomization(probe.kustomization, existing_k, probe.name)
        gen = dataclasses.replace(probe, files={**probe.files, KUSTOMIZATION: merged})

    kept: list[Path] = []
    for rel, text in sorted(gen.files.items()):
        path = directory / rel
        current = _read(path)
        if current is not None and not is_generated(current) and not rel == PLAN_FILE:
            kept.append(path)
            continue
        txn.write(path, text)
    if exists:
        for path in sorted(directory.iterdir()):
            if path.name.startswith("patch-") and path.name in ALL_PATCHES and path.name not in gen.files:
                current = _read(path)
                if current is not None and is_generated(current):
                    txn.delete(path)
    return WriteResult(gen, [], kept, directory)


def write(
    repo: Path,
    opts: Options,
    *,
    force: bool = False,
    dry_run: bool = False,
    check: bool = False,
    allow_existing: bool = False,
    plan: dict | None = None,
) -> WriteResult:
    """Generate and write one overlay in its own transaction (no GitOps refresh: see
    `compose.publish.regenerate.new_model` for the command's complete change)."""
    repo = Path(repo).resolve()
    probe = plan_overlay(repo, opts, plan)
    preview = dry_run or check
    with Transaction(repo, scope=[f"overlays/{probe.name}"], command="new-model", preview=preview) as txn:
        result = stage(repo, opts, txn, force=force, allow_existing=allow_existing, probe=probe)
        if preview:
            result.changes = txn.preview(check=check)
            drift = [c for c in result.changes if c.status != UNCHANGED]
            if check and drift:
                raise Drift(f"{len(drift)} generated file(s) of overlays/{probe.name} are out of date; "
                            f"run `compose regen {probe.name}`", findings=["".join(c.diff(repo) for c in drift)])
        else:
            result.changes = txn.commit()
    return result


def list_overlay_dirs(repo: Path) -> list[Path]:
    root = overlays_dir(repo)
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / KUSTOMIZATION).exists())


def overlay_namespace(directory: Path) -> str:
    """The namespace an overlay renders into: its plan file's, else its kustomization's
    `namespace:`, else its directory name (as the Argo CD ApplicationSet derives it)."""
    try:
        ns = (load_plan_file(directory).get("overlay") or {}).get("namespace")
    except (NotOurs, InvalidInput):
        ns = None
    if not ns:
        try:
            data = yamlio.load_file(Path(directory) / KUSTOMIZATION)
        except (InvalidInput, OSError):
            data = None
        ns = data.get("namespace") if isinstance(data, dict) else None
    return str(ns or Path(directory).name)


def canary_users(repo: Path) -> dict[str, list[str]]:
    """{stable overlay: [its canary overlays]} from the recorded `inputs.canary_of`."""
    out: dict[str, list[str]] = {}
    for d in list_overlay_dirs(repo):
        try:
            stable = (load_plan_file(d).get("inputs") or {}).get("canary_of")
        except (NotOurs, InvalidInput):
            continue
        if stable:
            out.setdefault(str(stable), []).append(d.name)
    return out


def namespace_users(repo: Path) -> dict[str, list[str]]:
    """{namespace: [overlay, ...]} over every overlay of the repository."""
    out: dict[str, list[str]] = {}
    for d in list_overlay_dirs(repo):
        out.setdefault(overlay_namespace(d), []).append(d.name)
    return out


def check_namespace_free(repo: Path, name: str, namespace: str, canary_of: str | None = None) -> None:
    """One namespace per overlay: two overlays in one namespace would each own (label,
    sync, never prune) the same Namespace, and their objects could collide. The one
    exception is a canary and its stable overlay: the canary renders neither the
    Namespace nor the claim, and shares both (compose canary)."""
    pair = {canary_of} if canary_of else set()
    pair |= set(canary_users(repo).get(name, []))
    others = [o for o in namespace_users(repo).get(namespace, []) if o != name and o not in pair]
    if others:
        raise InvalidInput(
            f"invalid --namespace {namespace!r}: overlay {others[0]} already uses it, and every overlay owns "
            f"its own namespace; pick another --namespace (the default is the overlay name, {name})"
        )


def resolve_overlays(repo: Path, overlay: str | None, all_: bool, *, inside: bool = False) -> list[Path]:
    """`overlays/<name>` (or a directory path) for one overlay, or every overlay with `all_`.
    With `inside`, the directory must be an overlay of this repository (commands that write)."""
    if all_ == (overlay is not None):
        raise InvalidInput("name one overlay or pass --all")
    if all_:
        return list_overlay_dirs(repo)
    if not overlay or len(overlay) > 4096 or "\x00" in overlay:
        raise InvalidInput(f"no overlay {overlay[:60]!r}; run `compose list`")
    path = Path(overlay)
    try:
        if not path.exists():
            path = overlays_dir(repo) / overlay
        found = (path / KUSTOMIZATION).is_file()
    except OSError:
        found = False
    if not found:
        raise InvalidInput(f"no overlay {overlay[:60]!r} (looked for {path / KUSTOMIZATION}); run `compose list`")
    resolved = path.resolve()
    if inside and resolved.parent != overlays_dir(repo).resolve():
        raise InvalidInput(f"{overlay}: not an overlay of this repository (overlays/<name>); run `compose list`")
    return [resolved]


def stage_regen(repo: Path, directory: Path, txn: Transaction) -> WriteResult:
    """Re-plan from the recorded inputs and stage the overlay; only `overlays/<its name>/`."""
    directory = Path(directory)
    source = f"overlays/{directory.name}/{PLAN_FILE}"
    doc = load_plan_file(directory, source)
    opts = Options.from_inputs(doc["inputs"], source)
    try:
        return stage(repo, opts, txn, allow_existing=True, expect=directory.name)
    except InvalidInput as err:
        if isinstance(err, OutOfScope) or str(err).startswith(("overlays/", source)):
            raise  # these name their file themselves
        raise InvalidInput(f"{source}: {err}") from None


__all__ = [
    "Options",
    "Generated",
    "generate",
    "write",
    "stage",
    "stage_regen",
    "load_plan_file",
    "list_overlay_dirs",
    "resolve_overlays",
    "is_generated",
    "owned",
    "BASE_REFERENCE",
]
