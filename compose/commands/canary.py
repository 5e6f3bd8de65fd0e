"""Commands: canary start | set-weight | promote | abort (one reviewed Git change each)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from compose.commands import echo, edge, open_repo

RepoOpt = typer.Option(None, "--repo", help="Repository root (default: found from the current directory).")
DryRunOpt = typer.Option(False, "--dry-run", help="Write nothing; print the diff of the whole change.")
CrdOpt = typer.Option(None, "--crd-dir", help="Directory of CRDs for the check (default ../shared/crds).")

app = typer.Typer(
    name="canary",
    help="Canary rollouts: a sibling overlay <overlay>-canary on a share of one model's traffic.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def register(root_app: typer.Typer) -> None:
    root_app.add_typer(app, name="canary")


def _run(repo: Path, name: str, plan, dry_run: bool, crd_dir: Optional[Path]) -> None:
    """Plan (under the repository lock) and apply one canary command as one transaction:
    both overlays and the GitOps trees, checked with `compose check` in the staged view."""
    from compose.core.writer import report
    from compose.publish import canary

    change, changes = canary.run(repo, name, plan, dry_run=dry_run, validate=True, crd_dir=crd_dir)
    if dry_run:
        echo(report(changes, repo, preview=True) or "no changes")
        diff = "".join(c.diff(repo) for c in changes)
        if diff:
            echo(diff.rstrip("\n"))
    else:
        echo(report(changes, repo))
    for note in change.notes:
        echo(f"note: {note}")
    if not dry_run:
        echo(f"next: review and commit these {len(changes)} file(s) as one change "
             f"(git add -A overlays argocd flux && git commit -m 'canary {change.command} {change.stable}')")


def _root(repo: Optional[Path]) -> Path:
    return open_repo(repo)


@app.command("start")
@edge
def start(
    overlay: str = typer.Argument(..., help="The stable overlay (it needs a route: new-model --gateway)."),
    weight: int = typer.Option(..., "--weight", min=0, max=100, help="The canary's share of traffic, in percent (0 to 100)."),
    image: Optional[str] = typer.Option(
        None, "--image", help="Another vLLM image, pinned: repo:tag, repo@sha256:..., or a tag of vllm/vllm-openai "
        "(at most 512 characters, no credentials)."),
    vllm_version: Optional[str] = typer.Option(
        None, "--vllm-version", help="vllm/vllm-openai:v<X.Y.Z> (needs its flag list)."),
    revision: Optional[str] = typer.Option(
        None, "--revision", help="Another Hub commit SHA (40 hex) of the same model's weights."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="KEY=VALUE of another input (gpu, spot, max_model_len, tensor_parallel_size, "
        "gpu_memory_utilization, kv_cache_dtype, prompt_tokens, output_tokens, max_output_tokens); repeatable, at most 16; each "
        "value within the bounds `compose new-model --help` states."
    ),
    replicas: int = typer.Option(1, "--replicas", min=1, max=4, help="The canary's fixed replica count (1 to 4)."),
    dry_run: bool = DryRunOpt,
    crd_dir: Optional[Path] = CrdOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Start a canary: overlays/<overlay>-canary and the route's (100-N):N split.

    The canary serves the same model name from the stable overlay's namespace, at a
    fixed replica count, and mounts the stable overlay's weight cache when the weights
    are the same. The change (both overlays, Argo CD/Flux output) is checked in a
    staged view and written as one transaction, or not at all.

    Example: compose canary start dev-qwen2-5-7b --image vllm/vllm-openai:v0.33.1 --weight 10
    """
    from compose.publish import canary

    root = _root(repo)

    def plan(r: Path):
        return canary.plan_start(r, overlay, weight=weight, image=image, vllm_version=vllm_version,
                                 revision=revision, sets=set_ or (), replicas=replicas)

    _run(root, overlay, plan, dry_run, crd_dir)


@app.command("set-weight")
@edge
def set_weight(
    overlay: str = typer.Argument(..., help="The stable overlay (or its canary)."),
    weight: int = typer.Argument(..., min=0, max=100, help="The canary's new share, in percent (0 to 100)."),
    dry_run: bool = DryRunOpt,
    crd_dir: Optional[Path] = CrdOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Change the canary's share of traffic: the route's weights become (100-N):N.

    Example: compose canary set-weight dev-qwen2-5-7b 50
    """
    from compose.publish import canary

    root = _root(repo)
    _run(root, overlay, lambda r: canary.plan_set_weight(r, overlay, weight), dry_run, crd_dir)


@app.command("promote")
@edge
def promote(
    overlay: str = typer.Argument(..., help="The stable overlay (or its canary)."),
    dry_run: bool = DryRunOpt,
    crd_dir: Optional[Path] = CrdOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Fold the canary's inputs into the stable overlay and remove the canary.

    Example: compose canary promote dev-qwen2-5-7b
    """
    from compose.publish import canary

    root = _root(repo)
    _run(root, overlay, lambda r: canary.plan_promote(r, overlay), dry_run, crd_dir)


@app.command("abort")
@edge
def abort(
    overlay: str = typer.Argument(..., help="The stable overlay (or its canary)."),
    dry_run: bool = DryRunOpt,
    crd_dir: Optional[Path] = CrdOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Remove the canary; all traffic goes back to the stable overlay.

    Example: compose canary abort dev-qwen2-5-7b
    """
    from compose.publish import canary

    root = _root(repo)
    _run(root, overlay, lambda r: canary.plan_abort(r, overlay), dry_run, crd_dir)
