"""The `poelang` executable's first steps: Ctrl-C is caught from the very start.

This module imports nothing heavy, so that an interrupt while the command line
(typer, pydantic, lark) or torch is still being imported ends with the line
"interrupted" and exit code 130, never a traceback or a half-imported module.
Ctrl-C raises :class:`Interrupted` rather than KeyboardInterrupt, which
libraries (typer among them) catch and turn into silent exits.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT


class Interrupted(BaseException):
    """Ctrl-C: not an Exception, so `except Exception` blocks let it through; `finally` blocks still run
    (an output being written is removed, see poelang.outputs)."""


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted


@contextmanager
def catch_interrupts() -> Iterator[None]:
    """While inside, Ctrl-C raises Interrupted (in the main thread; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted() -> int:
    """Say so in one line and return the exit code. Files already written are complete (each is written
    to a hidden temporary file and renamed); the one being written is removed."""
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return EXIT_INTERRUPTED


def console_main() -> None:
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        from poelang.cli import main

        code = main()
    except (Interrupted, KeyboardInterrupt):
        code = interrupted()
    sys.exit(code)
