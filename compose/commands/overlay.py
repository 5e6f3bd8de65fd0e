"""Commands: new-model, regen, build, check, list."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from compose.commands import echo, edge, open_repo
from compose.core.errors import EXIT_FINDINGS, Findings, InvalidInput

RepoOpt = typer.Option(None, "--repo", help="Repository root (default: found from the current directory).")


class Env(str, Enum):
    dev = "dev"
    staging = "staging"
    prod = "prod"


class CloudName(str, Enum):
    eks = "eks"
    gke = "gke"
    aks = "aks"
    k3s = "k3s"


class KvDtype(str, Enum):
    auto = "auto"
    fp8 = "fp8"


class Router(str, Enum):
    service = "service"
    inference_pool = "inference-pool"


class Mesh(str, Enum):
    istio = "istio"


class RouteMatch(str, Enum):
    header = "header"
    path = "path"
    both = "both"


class Fmt(str, Enum):
    text = "text"
    json = "json"


def _root(repo: Optional[Path]) -> Path:
    return open_repo(repo)


def register(app: typer.Typer) -> None:
    app.command("new-model")(new_model)
    app.command("regen")(regen)
    app.command("build")(build)
    app.command("check")(check)
    app.command("list")(list_overlays)


# Upper bounds of every number new-model takes (compose.plan.planner; stated in --help).
_MAX_TOKENS = 1 << 24
_MAX_GPUS = 64
_MAX_RPS = 100_000.0


@edge
def new_model(
    model: str = typer.Argument(..., help="Catalog slug (see `compose models`) or a path to a config.json "
                                "inside the repository."),
    env: Env = typer.Option(Env.dev, "--env", help="Environment; the overlay is overlays/<env>-<name>."),
    cloud: CloudName = typer.Option(CloudName.k3s, "--cloud", help="Where it runs: selects the cloud component."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU from `compose gpus` (default: smallest that fits)."),
    spot: bool = typer.Option(False, "--spot", help="Run on spot capacity (adds the spot component)."),
    monitoring: bool = typer.Option(True, "--monitoring/--no-monitoring", help="PodMonitor, alerts, dashboard."),
    max_model_len: Optional[int] = typer.Option(
        None, "--max-model-len", min=1, max=_MAX_TOKENS, help="Context length (1 to 16777216; default: the model's)."),
    target_rps: Optional[float] = typer.Option(
        None, "--target-rps", min=0.0, max=_MAX_RPS,
        help="Sizes max replicas (up to 100000 req/s; at most 1000 replicas may result)."),
    prompt_tokens: Optional[int] = typer.Option(
        None, "--prompt-tokens", min=1, max=_MAX_TOKENS, help="Request profile: prompt length (1 to 16777216)."),
    output_tokens: Optional[int] = typer.Option(
        None, "--output-tokens", min=1, max=_MAX_TOKENS, help="Request profile: typical output tokens, for capacity planning and the drain; not a limit (1 to 16777216)."),
    max_output_tokens: Optional[int] = typer.Option(
        None, "--max-output-tokens", min=1, max=_MAX_TOKENS,
        help="Cap every answer at N output tokens (vLLM --override-generation-config max_new_tokens); "
        "1 to --max-model-len; the route timeout is sized for N. Default: not capped (up to max-model-len - prompt)."),
    name: Optional[str] = typer.Option(None, "--name", help="Short name (default: the model slug)."),
    namespace: Optional[str] = typer.Option(None, "--namespace", help="Namespace (default: the overlay name)."),
    replicas: Optional[str] = typer.Option(
        None, "--replicas", help="MIN:MAX for KEDA, 1 <= MIN <= MAX <= 1000 (default from env and plan)."),
    single_replica_reason: Optional[str] = typer.Option(
        None, "--single-replica-reason",
        help="prod only: one line (1-200 printable characters) saying why fewer than 2 replicas is enough; "
        "recorded in compose-plan.yaml and on the ScaledObject.",
    ),
    gpus_per_node: Optional[int] = typer.Option(
        None, "--gpus-per-node", min=1, max=16,
        help="GPUs on one node of your cluster, 1-16: the largest tensor-parallel size one pod may use "
        "(default: 1 on k3s, else the largest node shape the catalog lists for the GPU on that cloud).",
    ),
    tensor_parallel_size: Optional[int] = typer.Option(
        None, "--tensor-parallel-size", min=1, max=_MAX_GPUS, help="GPUs per replica (1 to 64; default: smallest that fits)."),
    gpu_memory_utilization: Optional[float] = typer.Option(
        None, "--gpu-memory-utilization", min=0.05, max=1.0,
        help="Fraction of each GPU for vLLM, 0.05 to 1 (default: vLLM's, 0.92 in 0.33)."
    ),
    kv_cache_dtype: Optional[KvDtype] = typer.Option(None, "--kv-cache-dtype", help="fp8 halves KV bytes per token."),
    prometheus_url: Optional[str] = typer.Option(
        None, "--prometheus-url", help="Prometheus KEDA queries: an http(s) URL, at most 2048 characters, no credentials."),
    image: Optional[str] = typer.Option(
        None, "--image", help="Another vLLM image, pinned: a reference, or a tag of vllm/vllm-openai "
        "(default: the base's v0.33.0; at most 512 characters, no credentials)."
    ),
    hf_repo: Optional[str] = typer.Option(
        None, "--hf-repo", help="Hugging Face repository ORG/NAME to download (default: the catalog's, or the "
        "config's _name_or_path when it is one; required otherwise)."),
    revision: Optional[str] = typer.Option(
        None, "--revision", help="Hub commit SHA (40 hex) of the weights (default: the catalog's pinned revision; "
        "required for a config.json)."
    ),
    gateway: Optional[str] = typer.Option(
        None, "--gateway", help="NS/NAME of the shared Gateway to route from (adds the gateway component)."
    ),
    hostname: Optional[str] = typer.Option(
        None, "--hostname", help="The route's hostname, a DNS name of at most 253 characters (default: any)."),
    route_match: Optional[RouteMatch] = typer.Option(
        None, "--route-match", help="Match the model header (body-based router), the /<overlay> path, or both (default)."
    ),
    router: Optional[Router] = typer.Option(
        None, "--router", help="service (default), or inference-pool: the Inference Extension's endpoint picker."
    ),
    mesh: Optional[Mesh] = typer.Option(
        None, "--mesh", help="istio: VirtualService + DestinationRule (Istio's API) for the route."
    ),
    image_digest: Optional[str] = typer.Option(
        None, "--image-digest", metavar="sha256:HEX",
        help="Pin the vLLM image by digest on both containers (sha256:<64 hex>; crane digest vllm/vllm-openai:v0.33.0).",
    ),
    api_key_secret: Optional[str] = typer.Option(
        None, "--api-key-secret", metavar="NAME",
        help="Require `Authorization: Bearer <key>` on /v1: VLLM_API_KEY from key `api-key` of this Secret "
        "(a Secret name, at most 253 characters).",
    ),
    network_policy: Optional[bool] = typer.Option(
        None, "--network-policy/--no-network-policy",
        help="components/network-policy: ingress on 8000 only from --allow-from, egress only DNS and HTTPS "
        "(default: on in staging and prod).",
    ),
    allow_from: Optional[list[str]] = typer.Option(
        None, "--allow-from", metavar="NAMESPACE",
        help="Namespace whose clients may reach port 8000; repeatable, at most 32 (default: gateway). The Prometheus "
        "namespace of --prometheus-url is always admitted for /metrics.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write nothing; print what would change and a git-apply-able diff."),
    force: bool = typer.Option(False, "--force", help="Regenerate an existing overlay (hand-edited files are kept)."),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Plan a model and write its overlay (and refresh the recorded Argo CD/Flux output), as one change.

    \b
    Examples:
      compose new-model qwen2.5-7b --cloud gke --gpu l4 --spot --target-rps 30
      compose new-model models/my-llama/config.json --hf-repo me/my-llama --revision 3f2a...e1 --gpu l4
      compose new-model qwen2.5-7b --gateway gateway-system/inference   # behind a shared Gateway
    """
    from compose.generate import overlay, routing
    from compose.publish import regenerate

    root = open_repo(repo)
    opts = overlay.Options(
        model=overlay.model_input(root, model),
        env=env.value,
        cloud=cloud.value,
        gpu=gpu,
        spot=spot,
        monitoring=monitoring,
        name=name,
        namespace=namespace,
        max_model_len=max_model_len,
        target_rps=target_rps,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        max_output_tokens=max_output_tokens,
        replicas=replicas,
        single_replica_reason=single_replica_reason,
        gpus_per_node=gpus_per_node,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_dtype=kv_cache_dtype.value if kv_cache_dtype else None,
        image=routing.normalize_image(image),
        hf_repo=hf_repo,
        revision=revision,
        gateway=gateway,
        hostname=hostname,
        route_match=route_match.value if route_match else None,
        router=router.value if router else None,
        mesh=mesh.value if mesh else None,
        **({"prometheus_url": prometheus_url} if prometheus_url is not None else {}),
        image_digest=image_digest,
        api_key_secret=api_key_secret,
        network_policy=network_policy,
        allow_from=tuple(allow_from) if allow_from else None,
    )
    outcome = regenerate.new_model(root, opts, force=force, dry_run=dry_run)
    echo(outcome.report() or "no changes")
    for note in outcome.notes:
        echo(f"note: {note}")
    if dry_run:
        if outcome.diff:
            echo(outcome.diff.rstrip("\n"))
        return
    assert outcome.generated is not None
    echo(f"next: compose check {outcome.generated.name}")


@edge
def regen(
    overlay_name: Optional[str] = typer.Argument(None, metavar="[OVERLAY]", help="Overlay name or directory."),
    all_: bool = typer.Option(False, "--all", help="Every overlay, the monitoring component and GitOps output."),
    check_: bool = typer.Option(False, "--check", help="Write nothing; exit 1 and show the drift if any."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write nothing; print what would change and the diff."),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Re-plan overlays from their recorded inputs and rewrite them (idempotent), as one change.

    `regen OVERLAY` writes only overlays/OVERLAY/; `regen --all` also the monitoring
    component and every recorded GitOps tree. With --check, a clean tree prints one line.

    Example: compose regen --all --check
    """
    from compose.publish import regenerate

    if check_ and dry_run:
        raise InvalidInput("--check and --dry-run conflict; pass one of them")
    root = open_repo(repo)
    outcome = regenerate.regen(root, overlay_name, all_, check=check_, dry_run=dry_run)
    drift = outcome.drift
    if check_:
        if drift:
            shown = ", ".join(c.display(root) for c in drift[:5]) + (" ..." if len(drift) > 5 else "")
            fix = "compose regen --all" if all_ else f"compose regen {overlay_name}"
            raise Findings(
                f"{len(drift)} of {len(outcome.changes)} generated file(s) differ from what compose would "
                f"generate ({shown}); run `{fix}` and commit the result",
                findings=[outcome.diff],
            )
        echo(f"up to date: {len(outcome.changes)} generated file(s) match what compose generates")
        return
    lines = outcome.report()
    if lines:
        echo(lines)
    echo(outcome.summary())
    if dry_run and outcome.diff:
        echo(outcome.diff.rstrip("\n"))


@edge
def build(
    overlay_name: Optional[str] = typer.Argument(None, metavar="[OVERLAY]", help="Overlay name or directory."),
    all_: bool = typer.Option(False, "--all", help="Every overlay, in parallel."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write <out>/<overlay>.yaml instead of printing; never inside overlays/, base/, "
        "components/ or a GitOps tree."),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Render overlays with kustomize: deterministic, one file per overlay.

    Example: compose build --all --out rendered/
    """
    from compose.core.writer import report, summary
    from compose.publish import rendering

    root = open_repo(repo)
    text, changes = rendering.build(root, overlay_name, all_, out)
    if out is None:
        echo(text)
        return
    lines = report(changes, root)
    if lines:
        echo(lines)
    echo(summary(changes))


@edge
def check(
    overlay_name: Optional[str] = typer.Argument(None, metavar="[OVERLAY]", help="Overlay name or directory."),
    all_: bool = typer.Option(False, "--all", help="Every kustomization: bases, overlays, the Flux tree."),
    kube_version: list[str] = typer.Option(
        ["1.30", "1.33"], "--kube-version", help="Kubernetes minor(s) to validate against; repeatable."
    ),
    crd_dir: Optional[Path] = typer.Option(None, "--crd-dir", help="Directory of CRDs (default ../shared/crds)."),
    fmt: Fmt = typer.Option(Fmt.text, "--format", help="text, or json for CI bots."),
    require_digest: bool = typer.Option(
        False, "--require-digest", help="Every image must be pinned by digest (repo:tag@sha256:...), not only by tag."
    ),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Build, schema-check, policy-check and plan-check overlays; report every finding.

    With --all, also scans every generated file (overlays/, base/, components/, argocd/,
    flux/) for credentials and checks that no two overlays share a namespace.

    Example: compose check --all --kube-version 1.32 --crd-dir ../shared/crds
    """
    from compose.generate import overlay
    from compose.verify import checks

    root = _root(repo)
    if all_ and overlay_name is None:
        from compose.core import kustomize

        # Everything that builds: the bases, every overlay, the Flux tree.
        dirs = [root / d for d in kustomize.discover(root)]
    else:
        dirs = overlay.resolve_overlays(root, overlay_name, all_)
    reports = checks.check_directories(root, dirs, tuple(kube_version), crd_dir, require_digest=require_digest)
    if all_:
        reports.append(checks.check_repository(root))
    if fmt is Fmt.json:
        echo(json.dumps(checks.summary(reports), indent=2, sort_keys=True))
    else:
        for r in reports:
            echo(f"{'PASS' if r.ok else 'FAIL'} {r.source}")
            for f in r.findings:
                echo(f"  {f.obj} {f.field}: {f.problem}\n    fix: {f.fix} [{f.check}]")
    failed = [r for r in reports if not r.ok]
    if failed:
        n = sum(len(r.findings) for r in failed)
        typer.echo(f"error: {n} finding(s) in {len(failed)} of {len(reports)} overlay(s)", err=True)
        raise typer.Exit(EXIT_FINDINGS)


@edge
def list_overlays(
    no_check: bool = typer.Option(False, "--no-check", help="Skip building and checking (faster)."),
    crd_dir: Optional[Path] = typer.Option(None, "--crd-dir", help="Directory of CRDs (default ../shared/crds)."),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Table of overlays: model, GPU, TP, replicas, cloud, spot, check status.

    Example: compose list
    """
    from compose.verify import listing

    echo(listing.table(_root(repo), check=not no_check, crd_dir=crd_dir))


__all__ = ["register", "InvalidInput"]
