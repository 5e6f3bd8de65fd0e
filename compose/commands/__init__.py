"""The CLI layer: thin typer commands over the library.

Each module here defines `register(app)`. Commands parse options, call one
library function and map its result to an exit code. `edge` is the single place
where `ComposeError` is caught and turned into a one-line message plus exit code.
"""

from __future__ import annotations

import functools
import sys

import typer

from compose.core.errors import ComposeError, Findings


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def edge(func):
    """Decorator for command callbacks: ComposeError -> stderr line + exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Findings as err:
            for finding in err.findings:
                text = str(finding)
                if text:
                    typer.echo(text, err=True)
            raise fail(str(err), err.exit_code) from None
        except ComposeError as err:
            raise fail(str(err), err.exit_code) from None
        except KeyboardInterrupt:  # pragma: no cover
            raise fail("interrupted", 130) from None

    return wrapper


def echo(text: str = "") -> None:
    typer.echo(text)
    sys.stdout.flush()
