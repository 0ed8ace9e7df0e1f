"""The REPL's inputs and `:` commands, on top of a :class:`~poelang.repl.session.Session`."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from poelang.diagnostics import Diagnostic, PoeError, SourceMap, did_you_mean
from poelang.repl.completion import ALIASES, COMMANDS
from poelang.repl.running import RunFailed, Runner, parse_run_args, split_run_args, summarize
from poelang.repl.session import Outcome, Session

__all__ = ["Repl"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Repl:
    """One session's state and commands; :func:`poelang.repl.prompt.loop` is the interactive front.

    `submit` handles one complete input and returns False when the session
    should end; `failures` counts inputs that were refused (the scripted mode's
    exit status).
    """

    def __init__(self, *, input: Any = None, output: Any = None, stdout: TextIO | None = None,
                 history: Any = None, base_dir: Path | str = ".", color: bool | None = None,
                 registry: Any = None) -> None:
        from prompt_toolkit.history import InMemoryHistory

        self.input, self.output = input, output
        self.stdout = stdout if stdout is not None else sys.stdout
        self.history = history if history is not None else InMemoryHistory()
        self.registry = registry
        if color is None:
            color = bool(getattr(self.stdout, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
        self.color = color
        self.session = Session(base_dir=base_dir, registry=registry)
        self.runner = Runner(self.write, self.color)
        self.failures = 0

    @property
    def source(self) -> str:
        """The session's program text, as :list prints it."""
        return self.session.source

    @property
    def env(self) -> dict[str, Any]:
        """The session's bindings: name → symbol (its type, where it was written)."""
        return self.session.env

    def bindings(self) -> dict[str, str]:
        """``{name: type}`` for completion."""
        return self.session.bindings()

    # output
    def write(self, text: str = "") -> None:
        """Print a line (or lines) of the session's output."""
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def _render(self, diagnostics: Iterable[Diagnostic], sources: SourceMap) -> str:
        return "\n".join(d.render(sources, self.color) for d in diagnostics)

    def _fail(self, message: str) -> None:
        self.failures += 1
        if message:
            self.write(message)

    # input
    def submit(self, text: str) -> bool:
        """Handle one complete input; False when the session should end."""
        stripped = text.strip()
        if not stripped:
            return True
        if stripped.startswith(":"):
            return self.command(stripped)
        self.add(text)
        return True

    def add(self, text: str, origin: str | None = None) -> bool:
        """Add statements (an input, or a file's text with `origin` its path); True if they were kept."""
        label = origin or self.session.next_label()
        if origin is None and self._show_expression(text, label):
            return False
        outcome = self.session.add(text, label)
        if outcome.diagnostics:
            self.write(self._render(outcome.diagnostics, outcome.sources))
        if not outcome.ok:
            self._fail(f"{origin}: not loaded" if origin is not None else "")
            return False
        self._report(outcome, origin)
        return True

    def _report(self, outcome: Outcome, origin: str | None) -> None:
        for name, users in outcome.rebound:
            self.write(f"{name} rebound" + (f"; {', '.join(users)} now use{'s' if len(users) == 1 else ''} it"
                                            if users else ""))
        if origin is not None:
            count = outcome.statements
            self.write(f"loaded {count} statement{'s' if count != 1 else ''} from {origin}")

    def _show_expression(self, text: str, label: str) -> bool:
        """If `text` is an expression (not a statement), print its type; True if it was one."""
        from poelang.syntax.parser import parse_module

        if parse_module(text, label)[0] is not None:
            return False  # a statement (or only comments)
        type_, problems = self.session.expression_type(text, label)
        if type_ is None and not problems:
            return False
        if type_ is None:
            self._fail(self._render(problems, self.session.sources()))
            return True
        shown = " ".join(text.split())
        self.write(f"{shown}: {type_}" if len(shown) <= 40 else f": {type_}")
        return True

    # commands
    def command(self, line: str) -> bool:
        """Run a `:` command (`:NAME` is handled by ``cmd_NAME``, listed with its usage in
        completion.COMMANDS); False for :quit."""
        name, _, arg = line.partition(" ")
        name = ALIASES.get(name, name)
        if name == ":quit":
            return False
        handler = getattr(self, "cmd_" + name[1:], None) if name[1:].isidentifier() else None
        if name not in COMMANDS or handler is None:
            self._fail(f"unknown command '{name}'{did_you_mean(name, COMMANDS)}; :help lists the commands")
            return True
        handler(arg.strip())
        return True

    def cmd_help(self, arg: str = "") -> None:
        lines = ["Type statements as in a .poe file; each is checked against the session so far.",
                 "Binding a name again replaces its definition. An expression on its own shows its type. Commands:"]
        lines += [f"  {usage:<26} {doc}" for usage, doc in COMMANDS.values()]
        lines += ["Keys: Enter submits a complete input and continues an open bracket;",
                  "Alt-Enter (Esc Enter) submits anyway; Tab completes; Ctrl-C clears; Ctrl-D quits.",
                  "$POELANG_VIEWER (e.g. xdg-open) opens what :show writes."]
        self.write("\n".join(lines))

    def cmd_type(self, arg: str) -> None:
        if not arg:
            return self.write("usage: :type NAME  (or an expression)")
        if _NAME_RE.match(arg):
            symbol = self.env.get(arg)
            if symbol is not None:
                return self.write(f"{arg}: {symbol.val.type}")
            spec = self._spec(arg)
            if "." not in arg and spec is not None:
                return self.write(spec.signature())
            if "." not in arg:
                return self._fail(f"unknown name '{arg}'{did_you_mean(arg, [*self.env, *self._callables()])}")
        label = self.session.next_label()
        type_, problems = self.session.expression_type(arg, label)
        if type_ is not None:
            self.write(f"{arg}: {type_}")
        else:
            self._fail(self._render(problems, self.session.sources()) or f"cannot read '{arg}' as an expression")

    def _callables(self) -> list[str]:
        from poelang.experts.registry import default_registry

        registry = self.registry or default_registry()
        return [*registry.names(), *registry.builtins]

    def _spec(self, name: str) -> Any:
        from poelang.experts.registry import default_registry

        registry = self.registry or default_registry()
        return registry.get(name) or registry.builtins.get(name)

    def cmd_graph(self, arg: str = "") -> None:
        self.write(self.session.program.graph.to_json())  # type: ignore[union-attr] - a session always checks

    def cmd_dot(self, arg: str = "") -> None:
        self.write(self.session.program.graph.to_dot())  # type: ignore[union-attr]

    def cmd_check(self, arg: str = "") -> None:
        diagnostics, sources = self.session.diagnostics()
        if diagnostics:
            self.write(self._render(diagnostics, sources))
        count = len(self.session.entries)
        self.write(f"ok: {count} statement{'s' if count != 1 else ''}")

    def cmd_list(self, arg: str = "") -> None:
        self.write(self.source.rstrip("\n") or "(empty session)")

    def cmd_reset(self, arg: str = "") -> None:
        self.session.reset()
        self.write("session cleared")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            return self.write("usage: :load FILE")
        path = Path(arg.strip().strip('"').strip("'")).expanduser()
        full = path if path.is_absolute() else self.session.base_dir / path
        from poelang.builtins import input_file_problem

        problem = "only .poe programs can be loaded" if full.suffix != ".poe" else input_file_problem(full)
        if problem:  # as for import: never echo another file's lines, never block on a pipe
            return self._fail(f"cannot read {path}: {problem}")
        try:
            text = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return self._fail(f"cannot read {path}: {reason}")
        self.add(text, origin=str(path))

    def cmd_run(self, arg: str = "") -> None:
        program = self.session.program
        if program.graph is None or not program.graph.samples and not program.graph.outputs:
            return self.write("nothing to run: the session has no `~` or save statement")
        try:
            result = self.runner.run(program, *split_run_args(program, parse_run_args(arg)))
        except ValueError as e:
            return self._fail(str(e))
        except RunFailed as e:
            return self._fail(str(e))
        except PoeError as e:  # a mistaken override (`:run particles=0`) is reported by the checker
            return self._fail(e.render(self.color))
        self.write(summarize(result))

    def cmd_show(self, arg: str) -> None:
        if not _NAME_RE.match(arg):
            return self.write("usage: :show NAME")
        try:
            self.write(str(self.runner.show(self.session.program, arg)))
        except RunFailed as e:
            self._fail(str(e))

    def cmd_save(self, arg: str) -> None:
        name, _, path = arg.partition(" ")
        path = path.strip().strip('"').strip("'")
        if not _NAME_RE.match(name) or not path:
            return self.write("usage: :save NAME PATH")
        try:
            self.write(f"wrote {self.runner.save(self.session.program, name, path)}")
        except RunFailed as e:
            self._fail(str(e))
