"""The `poelang` command line: run, sweep, check, fmt, graph, repl, experts, examples.

Exit codes: 0 success, 1 diagnostics in a program or a failed run, 2 usage,
130 interrupted (Ctrl-C).
No user mistake ends in a Python traceback: diagnostics are printed GNU
style (`file:line:col: error: message`, the line, a caret).

One module per group of commands, each registering on the one Typer `app`
(`app.py`); `output.py` holds what they share. The modules are imported here
in the order `poelang --help` lists the commands.
"""
from __future__ import annotations

from typing import Optional

from poelang.cli import run, sweep, source, browse  # noqa: F401,I001 - registers the commands, in --help order
from poelang.cli.app import app

__all__ = ["app", "main", "console_main"]


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors, as Click does, 130 after Ctrl-C)."""
    from poelang.interrupts import EXIT_INTERRUPTED, interrupted

    try:
        app(args=argv, prog_name="poelang")
    except KeyboardInterrupt:
        return interrupted()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return interrupted() if code == EXIT_INTERRUPTED else code  # typer turns Ctrl-C into a silent exit 130
    return 0


def console_main() -> None:
    """The entry point of installations made before poelang._entry (which also catches Ctrl-C during imports)."""
    from poelang.interrupts import exit_with

    exit_with(main())
