"""Command: gitops (Argo CD or Flux objects for every overlay)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from compose.commands import echo, edge, open_repo

RepoOpt = typer.Option(None, "--repo", help="Repository root (default: found from the current directory).")


def register(app: typer.Typer) -> None:
    app.command("gitops")(gitops)


@edge
def gitops(
    flavour: Optional[str] = typer.Argument(None, metavar="argocd|flux", help="Which GitOps tool to write for."),
    repo_url: Optional[str] = typer.Option(
        None, "--repo-url", help="Git URL the cluster pulls from (default: the recorded one, else the project's)."
    ),
    revision: Optional[str] = typer.Option(
        None, "--revision", help="Branch, refs/tags/<tag> or commit SHA to sync (default: recorded, else main)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output directory, relative to the repository root (default: argocd/ or flux/)."
    ),
    addon: Optional[List[str]] = typer.Option(
        None, "--addon", help="Cluster add-on directory synced before the models (repeatable; "
        "default: recorded, else base/nvidia-device-plugin)."
    ),
    no_addons: bool = typer.Option(
        False, "--no-addons", help="No add-ons (GKE, AKS, EKS Bottlerocket/Auto Mode ship their own device plugin)."
    ),
    secret_ref: Optional[str] = typer.Option(
        None, "--secret-ref", help="Flux only: Secret in flux-system with the Git credentials of a private "
        "repository (after `flux bootstrap`: flux-system)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write nothing; print the diff."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 and show the diff if anything is out of date."),
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Write Argo CD or Flux objects that sync every overlay, add-ons first.

    Argo CD (argocd/): an AppProject, ApplicationSets for overlays/* and the add-ons,
    a root app-of-apps, and one Application per overlay under applications/.
    Flux (flux/): a GitRepository, one Kustomization per add-on and per overlay
    (dependsOn the add-ons, timeout from the planner's startup budget).
    The options are recorded in <out>/compose-gitops.yaml; later runs and
    `compose regen --all` replay them. Stale files of removed overlays are deleted.

    Examples:

      compose gitops argocd --repo-url https://github.com/me/my-models.git --revision main

      compose gitops flux --revision main --no-addons --secret-ref flux-system

      compose gitops argocd --check
    """
    from compose.core.errors import InvalidInput
    from compose.core.writer import report, summary
    from compose.publish import gitops as lib

    flavour = lib.check_flavour(flavour)
    if no_addons and addon:
        raise InvalidInput("--addon and --no-addons conflict; pass one of them")
    if dry_run and check:
        raise InvalidInput("--dry-run and --check conflict; pass one of them")
    root = open_repo(repo)
    settings = lib.resolve_settings(
        root,
        flavour,
        repo_url=repo_url,
        revision=revision,
        out=out,
        addons=[] if no_addons else addon or None,
        secret_ref=secret_ref,
    )
    changes = lib.write(root, settings, dry_run=dry_run, check=check)
    if check:  # drift raised Drift (exit 1) with the diff
        echo(f"up to date: {len(changes)} file(s) in {settings.out}/ match what compose generates")
        return
    lines = report(changes, root, preview=dry_run)
    echo(lines or f"no changes: {summary(changes)} in {settings.out}/")
    if dry_run:
        diff = "".join(c.diff(root) for c in changes)
        if diff:
            echo(diff.rstrip("\n"))
        return
    if flavour == "argocd":
        echo(f"next: commit {settings.out}/, then once per cluster: kubectl apply -n argocd -f {settings.out}/root.yaml")
    else:
        echo(f"next: commit {settings.out}/, then bootstrap Flux with --path={settings.out}"
             + lib.readme_hint(root, settings, " (see {})"))
