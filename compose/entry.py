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
    started = False
    try:
        from compose.cli import run

        started = True
        code = run()
    except KeyboardInterrupt:  # before run() took the signals over, or after it gave them back
        sys.stderr.write("error: interrupted (before the command started; nothing was changed)\n" if not started
                         else "error: interrupted as the command finished; its change is complete\n")
        code = EXIT_INTERRUPTED
    # the command is over and its exit code stands: a signal now would only lose it
    # (Python's shutdown puts the default handlers back, so a late SIGTERM ended with -15)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
