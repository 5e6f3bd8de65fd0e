"""`compose`: the typer entry point. Commands live in `compose.commands.*`."""

from __future__ import annotations

import typer

from compose import __version__
from compose.commands import gitops, overlay, plan

app = typer.Typer(
    name="compose",
    help="Plan, generate, validate and publish vLLM overlays for Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool):
    if value:
        typer.echo(f"compose {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Plan, generate, validate and publish vLLM overlays for Kubernetes."""


for _module in (plan, overlay, gitops):
    _module.register(app)


def main() -> None:
    app(prog_name="compose")
