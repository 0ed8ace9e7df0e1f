"""An interactive poelang session (``poelang repl``).

A session keeps the statements accepted so far as program text. Each new
input is appended and the whole text is checked again with
:func:`~poelang.program.compile_source`; an input that brings errors is
reported and dropped, so the session always holds a program that checks.
Typing an expression instead of a statement shows its type.

Enter inserts a newline while the input is incomplete (a ``(``, ``[`` or
``{`` is still open, or the line ends with a ``\\`` continuation) and submits
it otherwise; Escape Enter (Alt-Enter) always submits. Ctrl-C clears the
input, Ctrl-D on an empty line quits. Commands start with ``:``; see
``:help``.

Tests drive it with prompt_toolkit's pipe input::

    with create_pipe_input() as inp:
        inp.send_text("m = box(10%, 10%, 50%, 50%)\\r:type m\\r:quit\\r")
        main(["--no-history"], input=inp, output=DummyOutput())
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TextIO

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from poelang.diagnostics import Diagnostic, DiagnosticBag, PoeError, SourceMap, did_you_mean
from poelang.program import Program, compile_source
from poelang.params import from_command_line

__all__ = [
    "FILE", "PoeCompleter", "Repl", "analyze", "default_history_path", "is_incomplete", "main",
    "session_environment",
]

FILE = "<repl>"
PROMPT = "poe> "
CONTINUATION = "...  "
HISTORY_ENV = "POELANG_HISTORY"
UNUSED_SUFFIX = "is defined but never used"

COMMANDS: dict[str, tuple[str, str]] = {  # name: (usage, what it does)
    ":help": (":help", "show this help"),
    ":type": (":type NAME|EXPR", "the static type of a binding or an expression"),
    ":graph": (":graph", "print the session's expert graph as JSON"),
    ":dot": (":dot", "print the session's expert graph as Graphviz dot"),
    ":check": (":check", "check the session again and show its diagnostics"),
    ":run": (":run [setting=value | parameter=value ...]", "sample the session's `~` statements"),
    ":load": (":load FILE", "append the statements of a file"),
    ":list": (":list", "print the session's program text"),
    ":reset": (":reset", "forget every statement"),
    ":quit": (":quit", "leave (also Ctrl-D)"),
}
_ALIASES = {":q": ":quit", ":exit": ":quit", ":h": ":help", ":?": ":help", ":t": ":type"}


# --- the static environment ----------------------------------------------------


def _lower(source: str, file: str = FILE, *, base_dir: Path | str = ".", registry=None):
    """Lower `source` as compile_module does; return the lowerer's env, diagnostics and sources."""
    from poelang.experts.registry import default_registry
    from poelang.lower import Lowerer
    from poelang.syntax.parser import parse_module

    sources = SourceMap()
    sources.add(file, source)
    bag = DiagnosticBag()
    module, errors = parse_module(source, file)
    bag.extend(errors)
    env: dict = {}
    if module is not None:
        base = Path(base_dir)
        lowerer = Lowerer(registry or default_registry(), sources, bag, [])
        lowerer._import_stack.append((base / file).resolve())
        lowerer.lower_module(module, base)
        lowerer.finish()
        env = lowerer.env
    return env, bag.sorted(), sources


def session_environment(source: str, file: str = FILE, *, base_dir: Path | str = ".", registry=None) -> dict:
    """The names a program binds: ``{name: Symbol}`` as the Lowerer keeps them.

    ``symbol.val.type`` is the static type (``Mask[64,64]``), ``symbol.kind``
    one of "value", "expert", "sample", "module", "constant". Names bound by
    ``import "f.poe" as m`` appear qualified (``m.name``). A name whose
    definition failed to check has the type ``Any``.
    """
    return _lower(source, file, base_dir=base_dir, registry=registry)[0]


# --- scanning partial input ------------------------------------------------------

_SCAN = re.compile(
    r'(?P<string>"(?:[^"\\\n]|\\.)*(?P<close>")?)'
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:%|px|deg)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<cont>\\[ \t\f]*\r?\n)"
    r"|(?P<newline>\r?\n)"
    r"|(?P<space>[ \t\f\r]+)"
    r"|(?P<op>.)",
    re.S,
)


@dataclass
class Frame:
    """An open bracket: `(`, `[` or `{`."""

    char: str
    call: str | None = None  # `name(`: the function or expert called
    given: set[str] = field(default_factory=set)  # keyword arguments or settings already written
    with_block: bool = False  # `with {`
    save: bool = False  # the `with {` of a save statement


@dataclass
class Context:
    """What surrounds the end of a partial input (the cursor)."""

    stack: list[Frame]
    prefix: str = ""  # the name being typed
    prev: str | None = None  # the significant token before it ("\n" for a separator newline)
    before_prev: str | None = None
    statement: list[str] = field(default_factory=list)  # significant tokens of the statement so far
    in_string: bool = False
    in_comment: bool = False

    @property
    def depth(self) -> int:
        return len(self.stack)

    @property
    def top(self) -> Frame | None:
        return self.stack[-1] if self.stack else None


def analyze(text: str) -> Context:
    """Scan a partial input: open brackets, the word being typed and what precedes it."""
    ctx = Context([])
    tokens: list[tuple[str, str]] = []  # significant tokens (kind, value)
    last_kind = None
    for match in _SCAN.finditer(text):
        kind = match.lastgroup
        if match.group("string") is not None:
            kind = "string"
        value = match.group(0)
        last_kind = kind
        ctx.in_string = kind == "string" and match.group("close") is None
        ctx.in_comment = kind == "comment"
        if kind in ("space", "cont", "comment"):
            continue
        if kind == "newline":
            top = ctx.top
            if top is None:
                ctx.statement = []
                tokens.append(("newline", "\n"))
            elif top.char == "{":
                tokens.append(("newline", "\n"))
            continue
        prev = tokens[-1][1] if tokens else None
        before = tokens[-2][1] if len(tokens) > 1 else None
        if kind == "op" and value in "([{":
            frame = Frame(value)
            if value == "(" and tokens and tokens[-1][0] == "name" and before != ".":
                frame.call = prev
            if value == "{" and prev == "with":
                frame.with_block = True
                frame.save = bool(ctx.statement) and ctx.statement[0] == "save"
            ctx.stack.append(frame)
        elif kind == "op" and value in ")]}":
            if ctx.stack:
                ctx.stack.pop()
        elif kind == "op" and value == "=" and ctx.top is not None and tokens and tokens[-1][0] == "name":
            ctx.top.given.add(tokens[-1][1])
        tokens.append((kind, value))
        ctx.statement.append(value)
    if last_kind == "name" and tokens:
        ctx.prefix = tokens[-1][1]
        tokens = tokens[:-1]
    ctx.prev = tokens[-1][1] if tokens else None
    ctx.before_prev = tokens[-2][1] if len(tokens) > 1 else None
    return ctx


def is_incomplete(text: str) -> bool:
    """Whether Enter should continue the input on a new line rather than submit it.

    True while a bracket or a `with {` block is open at the end of the input
    (the parser reports "unexpected end of file: '(' is never closed") or the
    last line ends with a `\\` continuation. Any other "unexpected end of
    file" (`x = 1 +`) cannot be completed on a new line, since newlines end
    statements outside brackets, so such an input is submitted and reported.
    """
    stripped = text.strip()
    if not stripped or stripped.startswith(":"):
        return False
    if re.search(r"\\[ \t\f]*(\r?\n[ \t\f]*)?$", text) and not analyze(text).in_comment:
        return True
    from poelang.syntax.parser import parse_module

    _, diagnostics = parse_module(text, FILE)
    return any(d.message.startswith("unexpected end of file:") for d in diagnostics)


# --- completion --------------------------------------------------------------------

_POSITION_KEYWORDS = {
    "statement": ("import", "param", "save"),
    "expression": ("given", "true", "false", "none", "with", "to", "as"),
    "nested": ("given", "true", "false", "none"),
}


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


class PoeCompleter(Completer):
    """Completes bound names, experts, builtins, keyword arguments, settings and commands.

    `bindings` returns the session's names as ``{name: description}`` (the
    type, shown beside the completion).
    """

    def __init__(self, bindings: Callable[[], Mapping[str, str]] | None = None, registry=None) -> None:
        self._bindings = bindings or (lambda: {})
        self._registry = registry
        self._paths = PathCompleter(expanduser=True)

    # the vocabulary
    def _experts(self) -> dict:
        try:
            if self._registry is None:
                from poelang.experts.registry import default_registry

                self._registry = default_registry()
            return self._registry.experts
        except Exception:
            return {}

    @staticmethod
    def _builtins() -> dict:
        try:
            from poelang.builtins import BUILTINS

            return BUILTINS
        except Exception:  # pragma: no cover
            return {}

    def _spec(self, name: str | None):
        if name is None:
            return None
        return self._experts().get(name) or self._builtins().get(name)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        try:
            yield from self._completions(document, complete_event)
        except Exception:  # completion must never break the prompt
            return

    def _completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.lstrip().startswith(":"):
            yield from self._command_completions(text.lstrip(), event)
            return
        ctx = analyze(text)
        if ctx.in_string or ctx.in_comment:
            return
        prefix = ctx.prefix
        requested = event.completion_requested
        if ctx.prev == "." and ctx.before_prev is not None:
            yield from self._attribute_completions(ctx.before_prev, prefix)
            return
        top = ctx.top
        if top is not None and top.with_block and ctx.prev in ("{", ",", "\n"):
            yield from self._setting_completions(top, prefix)
            return
        if top is not None and top.char == "(" and ctx.prev in ("(", ",") and self._spec(top.call) is not None:
            yield from self._argument_completions(top, prefix)
        if prefix or requested:
            position = "statement" if not ctx.statement or ctx.statement == [prefix] else (
                "nested" if ctx.stack else "expression")
            yield from self._name_completions(prefix, position=position)

    def _command_completions(self, text: str, event: CompleteEvent) -> Iterator[Completion]:
        command, space, rest = text.partition(" ")
        if not space:
            for name, (usage, doc) in COMMANDS.items():
                if name.startswith(command):
                    yield Completion(name, -len(command), display_meta=f"{usage}: {doc}")
            return
        command = _ALIASES.get(command, command)
        if command == ":type":
            ctx = analyze(rest)
            if ctx.prev is None:
                yield from self._name_completions(ctx.prefix, position="nested", keywords=False)
        elif command == ":load":
            yield from self._paths.get_completions(Document(rest.lstrip()), event)

    def _attribute_completions(self, owner: str, prefix: str) -> Iterator[Completion]:
        bindings = self._bindings()
        qualified = [n.split(".", 1)[1] for n in bindings if n.startswith(owner + ".")]
        if qualified:
            for name in sorted(qualified):
                if name.startswith(prefix):
                    yield Completion(name, -len(prefix), display_meta=bindings.get(f"{owner}.{name}", ""))
            return
        from poelang.builtins import SIMULATION_ATTRIBUTES

        for name in SIMULATION_ATTRIBUTES:
            if name.startswith(prefix):
                yield Completion(name, -len(prefix), display_meta="attribute of a simulation")

    def _setting_completions(self, frame: Frame, prefix: str) -> Iterator[Completion]:
        if frame.save:
            names: Iterable[str] = ("fps",)
        else:
            from poelang.graph import SETTING_NAMES

            names = SETTING_NAMES
        for name in names:
            if name.startswith(prefix) and name not in frame.given:
                meta = "frames per second of a saved video" if name == "fps" else _setting_doc(name)
                yield Completion(name, -len(prefix), display_meta=meta)

    def _argument_completions(self, frame: Frame, prefix: str) -> Iterator[Completion]:
        spec = self._spec(frame.call)
        for param in spec.params:
            if param.name.startswith(prefix) and param.name not in frame.given:
                meta = param.describe() + (f" — {param.doc}" if param.doc else "")
                yield Completion(f"{param.name}=", -len(prefix), display=f"{param.name}=", display_meta=meta)

    def _name_completions(self, prefix: str, *, position: str, keywords: bool = True) -> Iterator[Completion]:
        """Names for `position`: "statement" (its first word), "expression" or "nested" (in brackets)."""
        seen: set[str] = set()

        def emit(name: str, meta: str):
            if name.startswith(prefix) and name not in seen and name != prefix:
                seen.add(name)
                return Completion(name, -len(prefix), display_meta=meta)
            return None

        candidates: list[tuple[str, str]] = []
        bindings = self._bindings()
        candidates += [(n, str(bindings[n])) for n in sorted(bindings) if "." not in n]
        for name, spec in sorted(self._experts().items()):
            candidates.append((name, f"{spec.kind} expert: {_first_line(spec.doc)}"))
        for name, spec in sorted(self._builtins().items()):
            candidates.append((name, _first_line(spec.doc)))
        candidates.append(("exp", "exp(reward): a reward as the factor exp(reward)"))
        if keywords and prefix:
            words = _POSITION_KEYWORDS[position]
            candidates += [(k, "keyword") for k in words]
        for name, meta in candidates:
            completion = emit(name, meta)
            if completion is not None:
                yield completion


def _setting_doc(name: str) -> str:
    try:
        from poelang.graph import SamplerSettings

        info = SamplerSettings.model_fields[name]
        doc = info.description or ""
        default = info.default
        return (f"default {default!r}" + (f" — {doc}" if doc else "")) if default is not None else doc
    except Exception:  # pragma: no cover
        return ""


# --- history --------------------------------------------------------------------


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


# --- the session ----------------------------------------------------------------


def _is_unused_warning(d: Diagnostic) -> bool:
    return d.severity == "warning" and d.message.endswith(UNUSED_SUFFIX)


def _diag_key(d: Diagnostic) -> tuple:
    return (d.severity, d.message, d.span.file, d.span.line, d.span.col)


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Repl:
    """The state of one session and its commands; :meth:`loop` is the interactive front."""

    def __init__(self, *, input=None, output=None, stdout: TextIO | None = None,
                 history: History | None = None, base_dir: Path | str = ".", color: bool | None = None,
                 registry=None) -> None:
        self.input = input
        self.output = output
        self.stdout = stdout if stdout is not None else sys.stdout
        self.history = history if history is not None else InMemoryHistory()
        self.base_dir = Path(base_dir)
        self.registry = registry
        if color is None:
            color = bool(getattr(self.stdout, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
        self.color = color
        self.reset()

    # state
    def reset(self) -> None:
        self.chunks: list[str] = []
        self.program: Program = self._compile("")
        self._env: dict | None = {}
        self._shown: set[tuple] = set()

    @property
    def source(self) -> str:
        """The session's program text: every accepted input, in order."""
        return "".join(c if c.endswith("\n") else c + "\n" for c in self.chunks)

    def _compile(self, source: str) -> Program:
        return compile_source(source, FILE, base_dir=self.base_dir, registry=self.registry)

    @property
    def env(self) -> dict:
        """The session's bindings (``{name: Symbol}``), from the Lowerer."""
        if self._env is None:
            self._env = session_environment(self.source, FILE, base_dir=self.base_dir, registry=self.registry)
        return self._env

    def bindings(self) -> dict[str, str]:
        """``{name: type}`` for completion."""
        try:
            return {name: str(symbol.val.type) for name, symbol in self.env.items()}
        except Exception:
            return {}

    # output
    def write(self, text: str = "") -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def _render(self, diagnostics: Iterable[Diagnostic], sources: SourceMap) -> str:
        return "\n".join(d.render(sources, self.color) for d in diagnostics)

    # input
    def submit(self, text: str) -> bool:
        """Handle one complete input; False when the session should end."""
        if not text.strip():
            return True
        stripped = text.strip()
        if stripped.startswith(":"):
            return self.command(stripped)
        self.add(text)
        return True

    def add(self, text: str, origin: str | None = None) -> bool:
        """Append statements; keep them only if the session still checks. True if kept."""
        from poelang.syntax.parser import parse_module

        if not text.endswith("\n"):
            text += "\n"
        module, syntax_errors = parse_module(text, FILE)
        if syntax_errors and origin is None and self._show_expression(text):
            return False
        if module is not None and not module.statements:
            return True  # only comments
        program = self._compile(self.source + text)
        if not program.ok:
            shown = [d for d in program.diagnostics if not _is_unused_warning(d)
                     and (d.severity == "error" or _diag_key(d) not in self._shown)]
            self.write(self._render(shown, program.sources))
            if origin is not None:
                self.write(f"{origin}: not loaded")
            return False
        self.chunks.append(text)
        self.program = program
        self._env = None
        self._report_new_warnings(program)
        if origin is not None:
            count = len(module.statements) if module is not None else 0
            self.write(f"loaded {count} statement{'s' if count != 1 else ''} from {origin}")
        return True

    def _report_new_warnings(self, program: Program) -> None:
        new = [d for d in program.diagnostics
               if d.severity != "error" and not _is_unused_warning(d) and _diag_key(d) not in self._shown]
        self._shown.update(_diag_key(d) for d in new)
        if new:
            self.write(self._render(new, program.sources))

    def _temporary_name(self) -> str:
        name = "_"
        while name in self.env:
            name += "_"
        return name

    def _expression_type(self, expression: str) -> tuple[str | None, str]:
        """The type of an expression in the session, or (None, rendered errors)."""
        from poelang.syntax.parser import parse_module

        name = self._temporary_name()
        line = f"{name} = {expression.strip()}\n"
        _, errors = parse_module(line, FILE)
        if errors:
            return None, ""
        env, diagnostics, sources = _lower(self.source + line, FILE, base_dir=self.base_dir, registry=self.registry)
        problems = [d for d in diagnostics if d.severity == "error" and d.span.line > self.source.count("\n")]
        if problems or name not in env:
            return None, self._render(problems, sources)
        return str(env[name].val.type), ""

    def _show_expression(self, text: str) -> bool:
        """If `text` is an expression (not a statement), print its type; True if it was one."""
        from poelang.syntax.parser import parse_module

        name = self._temporary_name()
        _, errors = parse_module(f"{name} = {text.strip()}\n", FILE)
        if errors:
            return False
        type_, problems = self._expression_type(text)
        shown = " ".join(text.split())
        if type_ is None:
            self.write(problems)
        else:
            self.write(f"{shown}: {type_}" if len(shown) <= 40 else f": {type_}")
        return True

    # commands
    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        name = _ALIASES.get(name, name)
        arg = arg.strip()
        if name == ":quit":
            return False
        handler = getattr(self, "cmd_" + name[1:], None) if name[1:].isidentifier() else None
        if name not in COMMANDS or handler is None:
            self.write(f"unknown command '{name}'{did_you_mean(name, COMMANDS)}; :help lists the commands")
            return True
        handler(arg)
        return True

    def cmd_help(self, arg: str = "") -> None:
        lines = ["Type statements as in a .poe file; each is checked against the session so far.",
                 "An expression on its own shows its type. Commands:"]
        for usage, doc in COMMANDS.values():
            lines.append(f"  {usage:<26} {doc}")
        lines += ["Keys: Enter submits a complete input and continues an open bracket;",
                  "Alt-Enter (Esc Enter) submits anyway; Tab completes; Ctrl-C clears; Ctrl-D quits."]
        self.write("\n".join(lines))

    def cmd_type(self, arg: str) -> None:
        if not arg:
            self.write("usage: :type NAME  (or an expression)")
            return
        env = self.env
        if _NAME_RE.match(arg):
            symbol = env.get(arg)
            if symbol is not None:
                self.write(f"{arg}: {symbol.val.type}")
                return
            if "." not in arg and self._spec(arg) is not None:
                self.write(self._spec(arg).signature())
                return
            if "." not in arg:
                names = [*env, *self._all_callables()]
                self.write(f"unknown name '{arg}'{did_you_mean(arg, names)}")
                return
        type_, problems = self._expression_type(arg)
        if type_ is not None:
            self.write(f"{arg}: {type_}")
        else:
            self.write(problems or f"cannot read '{arg}' as an expression")

    def _all_callables(self) -> list[str]:
        from poelang.builtins import BUILTINS
        from poelang.experts.registry import default_registry

        return [*(self.registry or default_registry()).names(), *BUILTINS]

    def _spec(self, name: str):
        from poelang.builtins import BUILTINS
        from poelang.experts.registry import default_registry

        return (self.registry or default_registry()).get(name) or BUILTINS.get(name)

    def _checked_graph(self):
        program = self._compile(self.source)
        if program.graph is None:
            self.write(self._render(program.errors, program.sources))
            return None
        return program.graph

    def cmd_graph(self, arg: str = "") -> None:
        graph = self._checked_graph()
        if graph is not None:
            self.write(graph.to_json())

    def cmd_dot(self, arg: str = "") -> None:
        graph = self._checked_graph()
        if graph is not None:
            self.write(graph.to_dot())

    def cmd_check(self, arg: str = "") -> None:
        program = self._compile(self.source)
        shown = [d for d in program.diagnostics if not _is_unused_warning(d)]
        if shown:
            self.write(self._render(shown, program.sources))
        count = len(program.module.statements) if program.module is not None else 0
        errors = len(program.errors)
        if errors:
            self.write(f"{errors} error{'s' if errors != 1 else ''}")
        else:
            self.write(f"ok: {count} statement{'s' if count != 1 else ''}")

    def cmd_list(self, arg: str = "") -> None:
        self.write(self.source.rstrip("\n") or "(empty session)")

    def cmd_reset(self, arg: str = "") -> None:
        self.reset()
        self.write("session cleared")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            self.write("usage: :load FILE")
            return
        path = Path(arg.strip().strip('"').strip("'")).expanduser()
        full = path if path.is_absolute() else self.base_dir / path
        try:
            text = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.write(f"cannot read {path}: {reason}")
            return
        self.add(text, origin=str(path))

    def cmd_run(self, arg: str = "") -> None:
        program = self._compile(self.source)
        if not program.ok:
            self.write(self._render(program.errors, program.sources))
            return
        if program.graph is None or not program.graph.samples and not program.graph.outputs:
            self.write("nothing to run: the session has no `~` or save statement")
            return
        try:
            overrides = _parse_run_args(arg)
        except ValueError as e:
            self.write(str(e))
            return
        declared = {p.id for p in program.graph.params}
        params = [from_command_line(k, overrides.pop(k), option=":run") for k in list(overrides) if k in declared]
        for key in overrides:
            overrides[key] = _run_value(overrides[key])
        try:
            result = program.run(**overrides, **({"params": params} if params else {}))
        except KeyboardInterrupt:
            self.write("interrupted")
            return
        except PoeError as e:
            self.write(e.render(self.color))
            return
        except ImportError as e:
            self.write(f"cannot run: {_one_line(e) or type(e).__name__}")
            return
        except BaseException as e:  # never a traceback in the REPL
            if isinstance(e, (SystemExit, GeneratorExit)):
                raise
            render = getattr(e, "render", None)
            message = None
            if callable(render):
                try:
                    message = _one_line(render())
                except Exception:
                    message = None
            self.write(f"run failed: {message or _one_line(e) or type(e).__name__}")
            return
        self.write(_summarize(result))

    # the interactive front
    def prompt_session(self):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.lexers import PygmentsLexer

        from poelang.highlight import PoeLexer

        def continuation(width: int, line_number: int, is_soft_wrap: bool) -> str:
            return CONTINUATION.rjust(width)

        return PromptSession(
            message=PROMPT,
            multiline=True,
            prompt_continuation=continuation,
            lexer=PygmentsLexer(PoeLexer),
            completer=PoeCompleter(self.bindings, self.registry),
            complete_while_typing=True,
            history=self.history,
            key_bindings=_key_bindings(),
            input=self.input,
            output=self.output,
        )

    def loop(self, banner: bool = True) -> int:
        session = self.prompt_session()
        if banner:
            from poelang import __version__

            self.write(f"poelang {__version__}: :help for commands, Ctrl-D to quit")
        while True:
            try:
                text = session.prompt()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            try:
                if not self.submit(text):
                    return 0
            except KeyboardInterrupt:
                self.write("interrupted")


def _key_bindings():
    from prompt_toolkit.filters import completion_is_selected
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("enter", filter=completion_is_selected)
    def _close_menu(event) -> None:
        event.current_buffer.complete_state = None

    @kb.add("enter", filter=~completion_is_selected)
    def _enter(event) -> None:
        buffer = event.current_buffer
        text = buffer.text
        if is_incomplete(text):
            depth = analyze(buffer.document.text_before_cursor).depth
            buffer.insert_text("\n" + "    " * depth)
        else:
            buffer.validate_and_handle()

    for closer in ")]}":
        @kb.add(closer)
        def _dedent(event) -> None:
            # a closing bracket typed on an indented continuation line moves back one level
            buffer = event.current_buffer
            line = buffer.document.current_line_before_cursor
            if line and not line.strip() and "\n" in buffer.document.text_before_cursor:
                buffer.delete_before_cursor(min(4, len(line)))
            buffer.insert_text(event.data)

    @kb.add("escape", "enter")
    def _submit(event) -> None:
        event.current_buffer.validate_and_handle()

    return kb


def _one_line(e: BaseException | str) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _parse_run_args(arg: str) -> dict[str, str]:
    """`key=value` words as typed (shell-like quoting: `prompt="two red cubes"`)."""
    import shlex

    overrides: dict[str, str] = {}
    try:
        items = shlex.split(arg)
    except ValueError as e:
        raise ValueError(f"usage: :run [setting=value | parameter=value ...]: {e}") from None
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"usage: :run [setting=value | parameter=value ...], not '{item}'")
        overrides[key] = value
    return overrides


def _run_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.startswith("[") and text.endswith("]"):
        return [_run_value(v.strip()) for v in text[1:-1].split(",") if v.strip()]
    return text.strip('"')


def _describe_value(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        try:
            dims = "×".join(str(int(s)) for s in shape)
        except Exception:
            dims = str(shape)
        return f"{type(value).__name__} {dims}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _summarize(result: Any) -> str:
    """A few lines about what a run returned: samples and files written."""
    if result is None:
        return "done"
    lines: list[str] = []
    samples = getattr(result, "samples", None)
    if isinstance(result, Mapping):
        samples = result
    if isinstance(samples, Mapping):
        lines += [f"{name}: {_describe_value(value)}" for name, value in samples.items()]
    written = getattr(result, "written", None)
    if written:
        lines += [f"wrote {path}" for path in written]
    if not lines:
        lines.append(f"done: {_describe_value(result)}")
    return "\n".join(lines)


# --- entry point ----------------------------------------------------------------


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="poelang repl", description="an interactive poelang session")
    parser.add_argument("files", nargs="*", help="programs whose statements start the session")
    parser.add_argument("--history", type=Path, default=None,
                        help=f"history file (default ${HISTORY_ENV} or ~/.poelang_history)")
    parser.add_argument("--no-history", action="store_true", help="keep no history file")
    parser.add_argument("--no-banner", action="store_true", help="print no greeting")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, input=None, output=None, *, stdout: TextIO | None = None) -> int:
    """Run the REPL until `:quit` or Ctrl-D; returns the exit status.

    `input` and `output` are prompt_toolkit ``Input``/``Output`` objects (a
    pipe input and ``DummyOutput`` in tests); messages go to `stdout`
    (default ``sys.stdout``). `argv` defaults to no arguments (not
    ``sys.argv``), since the command line calls ``main()`` from its own
    ``repl`` command.
    """
    try:
        args = _arguments([] if argv is None else list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    if args.no_history:
        history: History = InMemoryHistory()
    else:
        history = _FileHistory(str((args.history.expanduser() if args.history else default_history_path())))
    repl = Repl(input=input, output=output, stdout=stdout, history=history)
    for file in args.files:
        repl.cmd_load(file)
    return repl.loop(banner=not args.no_banner)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
