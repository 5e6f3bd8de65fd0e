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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose.core import kustomize, names, yamlio
from compose.core.errors import Drift, InvalidInput, NotOurs, OverlayExists
from compose.core.transaction import Transaction
from compose.core.writer import UNCHANGED, Change
from compose.core.writer import report as writer_report
from compose.generate import alerts
from compose.generate.alerts import (
    KEDA_FAILURE_THRESHOLD,
    KEDA_POLLING_INTERVAL_SECONDS,
)
from compose.generate.options import (
    _HTML_MARK,
    BASE_REFERENCE,
    DEFAULT_PROMETHEUS_URL,
    KUSTOMIZATION,
    PLAN_API,
    PLAN_FILE,
    PLAN_KIND,
    Options,
    check_prometheus_url,
    header,
    is_generated,
    load_plan_file,
    parse_replicas,
    replica_bounds,
)
from compose.generate.patches import (
    PATCH_WHY,
    _patch_text,
    patch_model_args,
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
        tensor_parallel_size=opts.tensor_parallel_size,
        max_model_len=opts.max_model_len,
        target_rps=opts.target_rps,
        spot_notice_seconds=cloud.spot_notice_seconds if opts.spot else None,
        hf_repo=opts.hf_repo,
        revision=opts.revision,
    )
    if opts.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = opts.gpu_memory_utilization
    if opts.kv_cache_dtype is not None:
        kwargs["kv_cache_dtype"] = opts.kv_cache_dtype
    if opts.prompt_tokens is not None:
        kwargs["prompt_tokens"] = opts.prompt_tokens
    if opts.output_tokens is not None:
        kwargs["output_tokens"] = opts.output_tokens
    return planner.PlanRequest(**kwargs)


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
    plan = planner.plan_or_raise(_request(opts, gpu))
    return plan.to_dict(), notes


def require_identity(plan: dict, opts: Options) -> None:
    """An overlay downloads a real Hub repository at a named revision, or is not written."""
    missing = []
    if not plan.get("hf_repo"):
        missing.append("--hf-repo ORG/NAME (its config's _name_or_path is not a Hugging Face repository id)")
    if not plan.get("revision"):
        missing.append("--revision COMMIT (a commit SHA pins the download; a branch or tag also works)")
    if missing:
        raise InvalidInput(
            f"{opts.model}: nothing says which Hugging Face repository and revision the init container downloads; "
            f"pass {' and '.join(missing)} (recorded as inputs.hf_repo and inputs.revision in {PLAN_FILE})"
        )



# --------------------------------------------------------------------------- kustomization

_COMPONENTS_PREFIX = "../../components/"
_MANAGED_COMPONENTS = {f"{_COMPONENTS_PREFIX}{c}" for c in (*clouds_mod.CLOUDS, "spot", "monitoring")}


def kustomization_doc(name: str, namespace: str, opts: Options, plan: dict, patches: list[str]) -> dict:
    components = [f"{_COMPONENTS_PREFIX}{opts.cloud}"]
    if opts.spot:
        components.append(f"{_COMPONENTS_PREFIX}spot")
    if opts.monitoring:
        components.append(f"{_COMPONENTS_PREFIX}monitoring")
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
                "pairs": {
                    "vllm-compose.io/env": opts.env,
                    "vllm-compose.io/model": names.slugify(plan["slug"]),
                    "vllm-compose.io/gpu": plan["gpu"],
                },
                "includeSelectors": False,
                "includeTemplates": True,
            },
        ],
        "patches": [{"path": p} for p in patches],
    }


def _is_managed_entry(key: str, entry: Any) -> bool:
    if key == "components":
        return str(entry) in _MANAGED_COMPONENTS
    if key == "patches":
        return isinstance(entry, dict) and str(entry.get("path", "")) in PATCH_WHY
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
    for key in ("resources", "components", "labels", "patches"):
        extras = [e for e in (data.get(key) or []) if not _is_managed_entry(key, e)]
        merged = CommentedSeq(list(desired[key]) + extras)
        data[key] = merged
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
    "tensor_parallel_size",
    "weights_gib_per_gpu",
    "kv_cache_gib_per_gpu",
    "kv_cache_tokens",
    "max_model_len",
    "max_num_seqs",
    "max_num_queued_reqs",
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
    import shlex

    parts = ["compose new-model", shlex.quote(opts.model), f"--env {opts.env}", f"--cloud {opts.cloud}"]
    for flag, value in (
        ("--gpu", opts.gpu),
        ("--name", opts.name),
        ("--namespace", opts.namespace),
        ("--max-model-len", opts.max_model_len),
        ("--target-rps", opts.target_rps),
        ("--prompt-tokens", opts.prompt_tokens),
        ("--output-tokens", opts.output_tokens),
        ("--replicas", opts.replicas),
        ("--tensor-parallel-size", opts.tensor_parallel_size),
        ("--gpu-memory-utilization", opts.gpu_memory_utilization),
        ("--kv-cache-dtype", opts.kv_cache_dtype),
        ("--hf-repo", opts.hf_repo),
        ("--revision", opts.revision),
    ):
        if value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {shlex.quote(str(value))}")
    if opts.spot:
        parts.append("--spot")
    if not opts.monitoring:
        parts.append("--no-monitoring")
    if opts.prometheus_url != DEFAULT_PROMETHEUS_URL:
        parts.append(f"--prometheus-url {shlex.quote(opts.prometheus_url)}")
    return " ".join(parts)


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
        single = (
            "\n## Single replica\n\n"
            "KEDA may scale this model down to one replica, and a PodDisruptionBudget cannot both\n"
            "protect a lone replica and let a node drain finish, so `minAvailable` is 0: a drain takes\n"
            "the model down for one start-up (budget {s} s). That is the trade-off for dev and staging;\n"
            "production overlays keep two replicas. See [base/README.md](../../base/README.md#single-replica).\n"
        ).format(s=plan["startup_budget_seconds"])
    addon = ""
    if clouds_mod.get(opts.cloud).needs_device_plugin:
        addon = "kubectl apply -k ../../base/nvidia-device-plugin   # once per cluster\n"
    comps = ", ".join(f"`{c.removeprefix(_COMPONENTS_PREFIX)}`" for c in components)
    return (
        f"{_HTML_MARK} (README.md) for overlay {name}; run `compose regen {name}`. -->\n"
        f"# {name}\n\n"
        f"{plan['served_model_name']} on {plan['tensor_parallel_size']}× {plan['gpu']} "
        f"({opts.cloud}{', spot' if opts.spot else ''}), namespace `{namespace}`, "
        f"{lo}–{hi} replicas (KEDA fallback {fallback}). Components: {comps}.\n\n"
        "Generated by:\n\n"
        f"```sh\n{command_line(opts)}\n```\n\n"
        "Deploy and verify:\n\n"
        f"```sh\n{addon}kubectl apply -k .\n"
        f"compose check {name}\n"
        f"kubectl -n {namespace} rollout status deploy/{name}-vllm --timeout={plan['progress_deadline_seconds']}s\n```\n"
        f"{gated}{single}\n"
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
    from compose.plan import catalog

    opts.check()  # types and ranges of every option, before anything else
    cloud = clouds_mod.get(opts.cloud)
    if opts.spot and cloud.spot_notice_seconds is None:
        raise InvalidInput(f"--spot does not apply to --cloud {cloud.name}: it has no spot capacity; drop --spot")
    if opts.name is not None:  # validate names before the (slower) planning
        names.overlay_name(opts.env, opts.name)
    if opts.namespace is not None:
        names.check_label(opts.namespace, "--namespace")
    parse_replicas(opts.replicas)
    check_prometheus_url(opts.prometheus_url)
    if opts.hf_repo is not None:
        catalog.check_hub_id(opts.hf_repo)
    if opts.revision is not None:
        catalog.check_revision(opts.revision)
    if plan is None:
        plan, notes = make_plan(opts, repo)
    else:
        notes = []
    require_identity(plan, opts)
    name = names.overlay_name(opts.env, opts.name if opts.name else names.slugify(plan["slug"]))
    namespace = names.check_label(opts.namespace or name, "--namespace")

    patch_docs: dict[str, Any] = {
        "patch-model-args.yaml": patch_model_args(plan),
        "patch-resources.yaml": patch_resources(plan),
        "patch-probes-drain.yaml": patch_probes_drain(plan),
        "patch-scaling.yaml": patch_scaling(plan, opts, namespace),
        "patch-storage.yaml": patch_storage(plan),
    }
    placement = patch_placement(plan, opts)
    if placement is not None:
        patch_docs["patch-placement.yaml"] = placement
    files: dict[str, str] = {f: _patch_text(f, name, d) for f, d in patch_docs.items()}
    if opts.monitoring:
        files["patch-alerts.yaml"] = _alerts_patch(plan, opts, name, namespace)

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
    )
    return alerts.alerts_patch(figures, header=header("patch-alerts.yaml", name))


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
            if path.name.startswith("patch-") and path.name in PATCH_WHY and path.name not in gen.files:
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
        if str(err).startswith(("overlays/", source)):
            raise
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
