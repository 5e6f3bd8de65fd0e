"""`compose`: the typer entry point. Commands live in `compose.commands.*`.

Exit codes (README.md, "Exit codes"): 0 success, 1 findings or drift, 2 invalid
input or environment, 3 internal error (one line plus the saved traceback), 130
interrupted.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading

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


@functools.lru_cache(maxsize=1)
def _command():
    """The click command typer builds from `app` (built once per process, not per run)."""
    return typer.main.get_command(app)


def _sigterm(signum, frame):  # SIGTERM ends a command the way Ctrl-C does: cleanly
    raise KeyboardInterrupt


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` and return the exit code; usage errors are one line too."""
    from typer._click import exceptions as click_exc

    from compose.commands import internal_error
    from compose.core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = _command().main(args=argv, prog_name="compose", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as err:
        typer.echo(err.ctx.get_help() if err.ctx else str(err))
        return 0
    except click_exc.UsageError as err:
        from compose.commands import one_line

        command = err.ctx.command_path if err.ctx else "compose"
        typer.echo(f"error: {one_line(err.format_message())} (see `{command} --help`)", err=True)
        return EXIT_INVALID
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # anything outside a command's own edge (option parsing, ...)
        typer.echo(f"error: {internal_error(err)}", err=True)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console entry point."""
    sys.exit(run())
