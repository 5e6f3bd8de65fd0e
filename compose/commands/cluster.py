"""Commands: doctor, status (read-only, against a live cluster).

The library is `compose.cluster`; it (and the optional `kubernetes` client) is
imported inside the commands, so the offline commands never load it.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from compose.commands import echo, edge, open_repo
from compose.core.errors import EXIT_FINDINGS, EXIT_OK, InvalidInput

RepoOpt = typer.Option(None, "--repo", help="Repository root (default: found from the current directory).")
ContextOpt = typer.Option(
    None, "--context", help="kubeconfig context (default: its current-context; at most 253 characters).")
KubeconfigOpt = typer.Option(
    None, "--kubeconfig", help="kubeconfig file, at most 1 MiB and 1000 contexts (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)."
)
TimeoutOpt = typer.Option(
    30.0, "--timeout", min=1.0, max=600.0, help="Seconds to wait for each API request (1 to 600).")
MAX_CONTEXT = 253
MAX_PATH = 4096


def _check_access(kubeconfig: Optional[Path], context: Optional[str]) -> None:
    """The kubeconfig path and context name, bounded before anything opens a file."""
    if kubeconfig is not None and (len(str(kubeconfig)) > MAX_PATH or "\x00" in str(kubeconfig)):
        raise InvalidInput(f"--kubeconfig: a path of at most {MAX_PATH} characters, without NUL bytes")
    if context is not None and (not context or len(context) > MAX_CONTEXT or not context.isprintable()):
        raise InvalidInput(f"--context: a context name of 1 to {MAX_CONTEXT} printable characters "
                           "(`kubectl config get-contexts` lists them)")


class Fmt(str, Enum):
    text = "text"
    json = "json"


class GitOps(str, Enum):
    argocd = "argocd"
    flux = "flux"


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
    app.command("status")(status)


def _root(repo: Optional[Path]) -> Path:
    return open_repo(repo)


def _console():
    import os

    from rich.console import Console

    # rich decides colour by whether stdout is a terminal (and honours NO_COLOR);
    # piped output gets a wide page (or $COLUMNS) so tables do not fold at 80.
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=int(os.environ.get("COLUMNS") or 200))
    return console


@edge
def doctor(
    overlay_name: str = typer.Argument(..., metavar="OVERLAY", help="Overlay name or directory."),
    context: Optional[str] = ContextOpt,
    kubeconfig: Optional[Path] = KubeconfigOpt,
    fmt: Fmt = typer.Option(Fmt.text, "--format", help="text, or json for CI."),
    gitops: Optional[GitOps] = typer.Option(None, "--gitops", help="Also check the Argo CD or Flux CRDs."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    timeout: float = TimeoutOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Check a live cluster against an overlay before `kubectl apply -k`: read-only.

    Server version, CRDs, KEDA (and its release), StorageClass, RuntimeClass,
    device plugin, the hf-token and API-key Secrets, the Prometheus Service and
    whether a Prometheus selects the PodMonitor and PrometheusRule, the
    NetworkPolicy's namespaces, and a scheduling pre-flight on the real nodes
    (and Karpenter NodePools). Exit 0 when nothing fails, 1 on a
    failed check, 2 on bad input or an unreachable cluster.

    \b
    Examples:
      compose doctor prod-70b
      compose doctor dev-8b --context k3s --format json
    """
    from compose.cluster import doctor as lib
    from compose.cluster import kube, target

    _check_access(kubeconfig, context)
    tgt = target.load(_root(repo), overlay_name)  # bad input fails before the cluster is asked
    cluster = kube.connect(kubeconfig, context, timeout=(min(5.0, timeout), timeout))
    try:
        report = lib.run(cluster, tgt, gitops.value if gitops else None)
    finally:
        cluster.close()
    if fmt is Fmt.json:
        echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_report(report)
    if report.status == lib.FAIL or (strict and report.status == lib.WARN):
        raise typer.Exit(EXIT_FINDINGS)


def _print_report(report) -> None:
    from rich.text import Text

    from compose.cluster import doctor as lib

    from compose.core.text import terminal_safe_all

    report = terminal_safe_all(report)  # what the API server said is printed, never obeyed
    console = _console()
    style = {lib.OK: "green", lib.WARN: "yellow", lib.FAIL: "bold red"}
    lines = lib.render_text(report).splitlines()
    console.print(Text(lines[0], style="bold"))
    width = max((len(c.id) for c in report.checks), default=10)
    for c in report.checks:
        line = Text()
        line.append(f"{c.status.upper():<4}", style=style[c.status])
        line.append(f"  {c.id:<{width}}  {c.saw}")
        console.print(line)
        if c.fix:
            console.print(Text(f"{'':<4}  {'':<{width}}  fix: {c.fix}", style="cyan"))
    console.print(Text(lines[-1], style=style[report.status]))


@edge
def status(
    overlay_name: Optional[str] = typer.Argument(None, metavar="[OVERLAY]", help="Overlay name or directory."),
    all_: bool = typer.Option(False, "--all", help="Every overlay."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(
        5.0, "--interval", min=0.2, max=3600.0, help="Seconds between refreshes with --watch (0.2 to 3600)."),
    context: Optional[str] = ContextOpt,
    kubeconfig: Optional[Path] = KubeconfigOpt,
    prometheus_url: Optional[str] = typer.Option(
        None, "--prometheus-url", help="Query the queue here (e.g. a port-forward) instead of through the API server: "
        "an http(s) URL of at most 2048 characters."),
    logs: bool = typer.Option(True, "--logs/--no-logs", help="Read the download container's last log line."),
    fmt: Fmt = typer.Option(Fmt.text, "--format", help="text, or json."),
    timeout: float = TimeoutOpt,
    repo: Optional[Path] = RepoOpt,
) -> None:
    """Show what applied overlays are doing: replicas, pods and why they are not ready,
    autoscaling, claims, recent Warning events. Read-only.

    Exit 0 when every overlay shown is serving (all desired replicas ready), 1 when
    one is not, 2 on bad input or an unreachable cluster; with --watch, Ctrl-C exits 0.

    \b
    Examples:
      compose status prod-70b
      compose status --all --watch --interval 10
    """
    from compose.cluster import kube, target
    from compose.cluster import status as lib
    from compose.generate import overlay

    from compose.core.text import terminal_safe_all
    from compose.generate.options import check_http_url

    _check_access(kubeconfig, context)
    if prometheus_url is not None:
        check_http_url(prometheus_url)
    root = _root(repo)
    if watch and fmt is Fmt.json:
        raise InvalidInput("--watch shows a screen; use --format json without --watch")
    targets = [target.from_directory(d) for d in overlay.resolve_overlays(root, overlay_name, all_)]
    cluster = kube.connect(kubeconfig, context, timeout=(min(5.0, timeout), timeout))
    console = _console()
    try:
        while True:
            shown = [lib.collect(cluster, t, prometheus_url=prometheus_url, logs=logs) for t in targets]
            if fmt is Fmt.json:
                echo(json.dumps([s.to_dict() for s in shown], indent=2, sort_keys=True))
            else:
                if watch and console.is_terminal:
                    console.clear()
                for s in shown:
                    lib.render(terminal_safe_all(s), console)
                if watch:
                    console.print(f"every {interval:g}s, {time.strftime('%H:%M:%S')}; Ctrl-C to stop", style="dim")
                sys.stdout.flush()
            if not watch:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    finally:
        cluster.close()
    if not all(s.serving for s in shown):
        raise typer.Exit(EXIT_FINDINGS)
