"""The `poelang` executable's first steps: Ctrl-C is caught from the very start.

This module imports nothing heavy, so that an interrupt while the command line
(typer, pydantic, lark) is still being imported ends like any other: the line
"interrupted" and exit code 130, never a traceback. (torch is imported with
Ctrl-C held back, see ``poelang.cli.output.import_torch``.)
"""
from __future__ import annotations


def console_main() -> None:
    from poelang.interrupts import exit_with, interrupted

    try:
        from poelang.cli import main

        code = main()
    except KeyboardInterrupt:
        code = interrupted()
    exit_with(code)
