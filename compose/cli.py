"""`compose`: the typer entry point. Commands live in `compose.commands.*`."""

from __future__ import annotations

import typer

from compose import __version__
from compose.commands import canary, cluster, gitops, overlay, plan

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


for _module in (plan, overlay, gitops, canary, cluster):
    _module.register(app)


def main() -> None:
    """Console entry point: usage errors become one line too, like every other error."""
    import sys

    from typer._click import exceptions as click_exc

    try:
        code = app(prog_name="compose", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as err:
        typer.echo(err.ctx.get_help() if err.ctx else str(err))
        sys.exit(0)
    except click_exc.UsageError as err:
        command = err.ctx.command_path if err.ctx else "compose"
        typer.echo(f"error: {err.format_message()} (see `{command} --help`)", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
