"""The console entry point: signals are handled before the CLI's imports start.

`compose.cli` imports typer, rich and every command module, which takes a few
hundred milliseconds; a SIGTERM in that window used to end the process silently
(exit 143) and a Ctrl-C printed a KeyboardInterrupt traceback. Nothing has been
read or written yet at that point, so both now print the one interrupted line
and exit 130, like a signal during a command.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130  # compose.core.errors.EXIT_INTERRUPTED, not imported: this module imports nothing heavy


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from compose.cli import run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted (before the command started; nothing was changed)\n")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(run())
