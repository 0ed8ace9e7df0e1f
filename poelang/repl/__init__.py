"""An interactive poelang session (``poelang repl``).

A session holds statements that check together; each input is checked
against the session so far and kept only if it brings no error. Binding a
name again replaces its definition (the statements using it follow). Typing an
expression shows its type. Commands start with ``:`` (``:help``); ``:run``
samples, ``:show NAME`` writes a preview PNG, ``:save NAME PATH`` writes a
value. With standard input not a terminal the inputs are run as a script.

The package: :mod:`~poelang.repl.session` (statements, rebinding, diagnostics
per input), :mod:`~poelang.repl.completion` (what the cursor is in, from the
grammar's lexer and parser), :mod:`~poelang.repl.commands` (inputs and ``:``
commands), :mod:`~poelang.repl.running` (``:run``, ``:show``, ``:save``) and
:mod:`~poelang.repl.prompt` (the prompt, the scripted mode, the arguments).

Tests drive it with prompt_toolkit's pipe input::

    with create_pipe_input() as inp:
        inp.send_text("m = box(10%, 10%, 50%, 50%)\\r:type m\\r:quit\\r")
        main(["--no-history"], input=inp, output=DummyOutput())
"""
from __future__ import annotations

from poelang.repl.commands import Repl
from poelang.repl.completion import PoeCompleter, analyze, is_incomplete, setting_values
from poelang.repl.prompt import default_history_path, main
from poelang.repl.session import FILE, Session

__all__ = [
    "FILE", "PoeCompleter", "Repl", "Session", "analyze", "default_history_path", "is_incomplete", "main",
    "session_environment", "setting_values",
]


def session_environment(source: str, file: str = FILE, *, base_dir: str = ".", registry: object = None) -> dict:
    """The names a program binds: ``{name: Symbol}`` (``symbol.val.type`` its static type)."""
    from poelang.program import compile_source

    return compile_source(source, file, base_dir=base_dir, registry=registry).symbols
