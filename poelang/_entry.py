"""The `poelang` executable's first steps: Ctrl-C is caught from the very start.

This module imports nothing heavy, so that an interrupt while the command line
(typer, pydantic, lark) is still being imported ends like any other: the line
"interrupted" and exit code 130, never a traceback. (torch is imported with
Ctrl-C held back, see ``poelang.cli._import_torch``.)
"""
from __future__ import annotations

import os
import signal
import sys


def console_main() -> None:
    from poelang.interrupts import EXIT_INTERRUPTED, interrupted

    try:
        from poelang.cli import main

        code = main()
    except KeyboardInterrupt:
        code = interrupted()
    if code == EXIT_INTERRUPTED:
        # Leave at once: outputs are already complete or removed, and an interpreter shutdown after an
        # interrupt inside an import can itself end by SIGINT (or worse) instead of with the exit code.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is done: a late Ctrl-C must not break the shutdown
    sys.exit(code)
