"""The `poelang` executable's first steps: Ctrl-C is caught from the very start.

This module and :mod:`poelang.interrupts` import only what the interpreter has
loaded at startup, and the package's ``__init__`` nothing at all, so that an
interrupt while the command line (typer, pydantic, lark) is still being
imported ends like any other: the line "interrupted" and exit code 130, never a
traceback. (torch is imported with Ctrl-C held back, see
``poelang.cli.output.import_torch``.) Before this module's first line only the
interpreter's own startup runs (``site`` and the ``.pth`` files of the
environment): there an interrupt is Python's (docs/results.md measures that
window).
"""
from __future__ import annotations

from poelang.interrupts import exit_with, interrupted


def console_main() -> None:
    try:
        from poelang.cli import main

        code = main()
    except KeyboardInterrupt:
        code = interrupted()
    exit_with(code)
