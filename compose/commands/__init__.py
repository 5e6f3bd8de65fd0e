"""The CLI layer: thin typer commands over the library.

Each module here defines `register(app)`. Commands parse options, call one
library function and map its result to an exit code. `edge` is the single place
where errors become a one-line message and an exit code:

    0  success
    1  findings or drift (`check`, `regen --check`, `gitops --check`)
    2  invalid input or environment: a bad option or file, a model that does not
       fit, a read-only checkout, kubectl missing, the repository locked by another run
    3  an unexpected internal error (a bug): one line, and the full traceback is
       saved to a file whose path the line gives
    130  interrupted (SIGINT/SIGTERM): the change is complete or not made at all
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import tempfile
import traceback

import typer
from typer.exceptions import TyperException

from compose.core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, ComposeError, Findings

# OSErrors that describe the machine, not a bug: exit 2 with the file and the reason.
ENVIRONMENT_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP,
    errno.ENOTDIR, errno.EISDIR, errno.EMFILE, errno.ENFILE, errno.EIO, errno.ENOENT, errno.EEXIST,
    errno.ENOTEMPTY, errno.EBUSY, errno.ETXTBSY, errno.EXDEV,
}


MAX_ERROR_LINE = 2000  # characters: a 5 MB message from an API server is not read on a terminal


def one_line(message: str) -> str:
    """`message` as one terminal-safe line: whitespace collapsed, control and bidi characters
    escaped (a message may quote an API server, a kubeconfig or a file), at most
    MAX_ERROR_LINE characters."""
    from compose.core.text import terminal_safe

    text = terminal_safe(" ".join(str(message).split()))
    return text if len(text) <= MAX_ERROR_LINE else text[: MAX_ERROR_LINE - 3] + "..."


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(code)


def internal_error(err: BaseException) -> str:
    """The one line for a bug: what happened and where the full traceback was saved."""
    from compose import __version__

    text = " ".join(str(err).split())[:200]
    summary = f"{type(err).__name__}: {text}" if text else type(err).__name__
    try:
        fd, path = tempfile.mkstemp(prefix="compose-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"compose {__version__}: {' '.join(sys.argv)}\n\n")
            traceback.print_exception(type(err), err, err.__traceback__, file=fh)
        where = f"the full traceback is in {path}"
    except OSError:
        where = "the traceback could not be saved (temp directory not writable)"
    return f"internal error ({summary}); {where}; please report it with that file"


def environment_error(err: OSError) -> str:
    target = err.filename or "a file"
    return (f"cannot access {target}: {err.strerror or err}; check the path, its permissions and the free "
            "space, then re-run (a change this command had started is complete or not made at all)")


def edge(func):
    """Decorator for command callbacks: every error -> one stderr line + exit code (see above)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Findings as err:
            for finding in err.findings:
                text = str(finding)
                if text:
                    from compose.core.text import terminal_safe

                    typer.echo("\n".join(terminal_safe(line) for line in text.rstrip("\n").split("\n")), err=True)
            raise fail(str(err), err.exit_code) from None
        except ComposeError as err:
            raise fail(str(err), err.exit_code) from None
        except KeyboardInterrupt:
            raise fail(
                "interrupted; any change this command had started is either complete or not made at all "
                "(`git status` shows which)", EXIT_INTERRUPTED,
            ) from None
        except RecursionError as err:
            raise fail(internal_error(err), EXIT_INTERNAL) from None
        except BrokenPipeError:  # `compose ... | head`: the reader closed the pipe; nothing of ours failed
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            raise typer.Exit(0) from None
        except OSError as err:
            if err.errno in ENVIRONMENT_ERRNOS:
                raise fail(environment_error(err), EXIT_INVALID) from None
            raise fail(internal_error(err), EXIT_INTERNAL) from None
        except Exception as err:  # a bug: never a bare traceback
            raise fail(internal_error(err), EXIT_INTERNAL) from None

    return wrapper


def echo(text: str = "") -> None:
    typer.echo(text)
    sys.stdout.flush()


def open_repo(repo):
    """The repository a command works on, after recovering interrupted runs (each thing
    recovery did is one `note:` line on stderr, so nothing changes silently)."""
    from compose.core.repo import open_repository

    root, notes = open_repository(repo)
    for note in notes:
        typer.echo(f"note: {one_line(note)}", err=True)
    return root
