"""The interactive front (prompt_toolkit), the scripted mode, and the `poelang repl` arguments.

Enter inserts a newline while the input is incomplete (a ``(``, ``[`` or
``{`` is still open, or the line ends with a ``\\`` continuation) and submits
it otherwise; Escape Enter (Alt-Enter) always submits. Ctrl-C clears the
input, Ctrl-D on an empty line quits.

When standard input is not a terminal (``poelang repl < session.txt``,
a pipe), no prompt is drawn: the inputs are read, executed in order and
their results printed, and the exit status is 1 if any was refused.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from poelang.repl.commands import Repl
from poelang.repl.completion import PoeCompleter, analyze, is_incomplete

__all__ = ["HISTORY_ENV", "arguments", "default_history_path", "inputs", "loop", "main", "prompt_session"]

PROMPT = "poe> "
CONTINUATION = "...  "
HISTORY_ENV = "POELANG_HISTORY"


class _FileHistory(FileHistory):
    """A FileHistory that never fails the prompt when the file cannot be written."""

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError:
            pass

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except (OSError, UnicodeDecodeError):
            return []


def default_history_path() -> Path:
    """``$POELANG_HISTORY`` if set, else ``~/.poelang_history``."""
    env = os.environ.get(HISTORY_ENV)
    return Path(env).expanduser() if env else Path("~/.poelang_history").expanduser()


def prompt_session(repl: Repl) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.lexers import PygmentsLexer

    from poelang.highlight import PoeLexer

    def continuation(width: int, line_number: int, is_soft_wrap: bool) -> str:
        return CONTINUATION.rjust(width)

    return PromptSession(
        message=PROMPT, multiline=True, prompt_continuation=continuation, lexer=PygmentsLexer(PoeLexer),
        completer=PoeCompleter(repl.bindings, repl.registry), complete_while_typing=True, history=repl.history,
        key_bindings=_key_bindings(), input=repl.input, output=repl.output,
    )


def loop(repl: Repl, banner: bool = True) -> int:
    """Prompt until `:quit` or Ctrl-D; returns the exit status (0)."""
    session = prompt_session(repl)
    if banner:
        from poelang.version import __version__

        repl.write(f"poelang {__version__}: :help for commands, Ctrl-D to quit")
    while True:
        try:
            text = session.prompt()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        try:
            if not repl.submit(text):
                return 0
        except KeyboardInterrupt:
            repl.write("interrupted")


def inputs(lines: Iterable[str]) -> Iterator[str]:
    """Complete inputs from lines of text, joined while a bracket or a `\\` continuation is open."""
    pending = ""
    for line in lines:
        pending += line if line.endswith("\n") else line + "\n"
        if not is_incomplete(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


def script(repl: Repl, stream: TextIO) -> int:
    """The scripted mode: every input of `stream` submitted in order; 1 if any was refused."""
    for text in inputs(stream):
        if not repl.submit(text):
            break
    return 1 if repl.failures else 0


def _key_bindings() -> Any:
    from prompt_toolkit.filters import completion_is_selected
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("enter", filter=completion_is_selected)
    def _close_menu(event: Any) -> None:
        event.current_buffer.complete_state = None

    @kb.add("enter", filter=~completion_is_selected)
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if is_incomplete(buffer.text):
            depth = analyze(buffer.document.text_before_cursor).depth
            buffer.insert_text("\n" + "    " * depth)
        else:
            buffer.validate_and_handle()

    for closer in ")]}":
        @kb.add(closer)
        def _dedent(event: Any) -> None:
            # a closing bracket typed on an indented continuation line moves back one level
            buffer = event.current_buffer
            line = buffer.document.current_line_before_cursor
            if line and not line.strip() and "\n" in buffer.document.text_before_cursor:
                buffer.delete_before_cursor(min(4, len(line)))
            buffer.insert_text(event.data)

    @kb.add("escape", "enter")
    def _submit(event: Any) -> None:
        event.current_buffer.validate_and_handle()

    return kb


def arguments(argv: list[str]) -> argparse.Namespace:
    """The REPL's options: the one definition, used by `poelang repl` and `python -m poelang.repl`."""
    parser = argparse.ArgumentParser(prog="poelang repl", description="an interactive poelang session")
    parser.add_argument("files", nargs="*", help="programs whose statements start the session")
    parser.add_argument("--history", type=Path, default=None,
                        help=f"history file (default ${HISTORY_ENV} or ~/.poelang_history)")
    parser.add_argument("--no-history", action="store_true", help="keep no history file")
    parser.add_argument("--no-banner", action="store_true", help="print no greeting")
    parser.add_argument("--script", action="store_true",
                        help="read inputs from standard input without a prompt (the default when it is not a terminal)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, input: Any = None, output: Any = None, *,
         stdout: TextIO | None = None, stdin: TextIO | None = None) -> int:
    """Run the REPL until `:quit` or Ctrl-D (or the end of a script); returns the exit status.

    `input` and `output` are prompt_toolkit ``Input``/``Output`` objects (a
    pipe input and ``DummyOutput`` in tests); messages go to `stdout`
    (default ``sys.stdout``). Without `input`, a `stdin` (default
    ``sys.stdin``) that is not a terminal is read in the scripted mode.
    `argv` defaults to no arguments (not ``sys.argv``).
    """
    try:
        args = arguments([] if argv is None else list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    stdin = stdin if stdin is not None else sys.stdin
    scripted = input is None and (args.script or not stdin.isatty())
    if args.no_history or scripted:
        history: History = InMemoryHistory()
    else:
        history = _FileHistory(str((args.history.expanduser() if args.history else default_history_path())))
    repl = Repl(input=input, output=output, stdout=stdout, history=history)
    for file in args.files:
        repl.cmd_load(file)
    if scripted:
        return script(repl, stdin)
    return loop(repl, banner=not args.no_banner)
