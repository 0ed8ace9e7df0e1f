"""The state of a REPL session: its statements, rebinding, and diagnostics per input.

A session is a program kept as a list of statements, each remembering the
input it was typed in. Every new input is checked together with the session
so far (:func:`~poelang.program.compile_source`); an input that brings errors
is reported and dropped, so the session always holds a program that checks.

A statement that binds a name the session already binds **rebinds** it: the
new statement takes the old one's place, so every statement that used the
name now uses the new definition, and the graph shows it. When the new
definition uses names bound later in the session, the statements are put in
dependency order (a stable topological order); a rebinding that would make a
name depend on itself is refused.

Diagnostics point into the input they are about, with line numbers counted
from that input's first line (`<input 3>:2:5: error: …`), not from the start of
the session.
"""
from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from poelang.diagnostics import ALREADY_DEFINED, UNUSED, Diagnostic, SourceMap, Span
from poelang.program import Program, compile_source
from poelang.syntax import ast
from poelang.syntax.parser import parse_module

__all__ = ["FILE", "Entry", "Session", "Outcome"]

FILE = "<repl>"  # the file name of the session's program text while it is checked


@dataclass(frozen=True)
class Entry:
    """One statement of the session."""

    text: str  # ends with a newline
    label: str  # the input it came from: "<input 3>" or a file name
    first_line: int  # its first line within that input
    binds: frozenset[str]
    uses: frozenset[str]


@dataclass
class Outcome:
    """What adding an input did."""

    ok: bool
    diagnostics: list[Diagnostic]  # new ones, mapped to their inputs
    sources: SourceMap
    rebound: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)  # (name, the names using it)
    statements: int = 0


class Session:
    """Statements, the program they make, and how each input changes them."""

    def __init__(self, *, base_dir: Path | str = ".", registry: Any = None) -> None:
        self.base_dir = Path(base_dir)
        self.registry = registry
        self.reset()

    def reset(self) -> None:
        """Forget every statement and input: an empty session."""
        self.entries: list[Entry] = []
        self.inputs: dict[str, str] = {}  # label → text, for excerpts under diagnostics
        self.program: Program = self.compile("")
        self.count = 0  # inputs typed so far
        self._shown: set[tuple[str, ...]] = set()

    # --- the program ----------------------------------------------------------------

    @property
    def source(self) -> str:
        """The session's program text: every statement, in order."""
        return "".join(e.text for e in self.entries)

    def compile(self, source: str) -> Program:
        """Check `source` as the session's program (its folder and registry)."""
        return compile_source(source, FILE, base_dir=self.base_dir, registry=self.registry)

    @property
    def env(self) -> dict[str, Any]:
        """The session's bindings (``{name: Symbol}``)."""
        return self.program.symbols

    def bindings(self) -> dict[str, str]:
        """``{name: type}`` for completion."""
        return {name: str(symbol.val.type) for name, symbol in self.env.items()}

    def next_label(self) -> str:
        """The name of the next typed input, ``<input N>``, which its diagnostics show."""
        self.count += 1
        return f"<input {self.count}>"

    # --- adding statements ------------------------------------------------------------

    def add(self, text: str, label: str) -> Outcome:
        """Add the statements of `text` (an input or a file); keep them only if the session still checks."""
        if not text.endswith("\n"):
            text += "\n"
        self.inputs[label] = text
        sources = self.sources()
        module, syntax_errors = parse_module(text, label)
        if module is None:
            return Outcome(False, syntax_errors, sources)
        new = list(_entries(module, text, label))
        entries, rebound = _rebind(self.entries, new)
        if entries is None:  # only a rebinding can close a cycle
            name = rebound[0][0] if rebound else "?"
            span = next((s.name_span for s in module.statements if getattr(s, "name", None) == name),
                        module.statements[0].span)
            message = f"rebinding '{name}' would make it depend on itself"
            return Outcome(False, [Diagnostic("error", message, span, code=ALREADY_DEFINED)], sources)
        program = self.compile("".join(e.text for e in entries))
        diagnostics = [d for d in map(lambda d: _map(d, entries), program.diagnostics) if d.code != UNUSED]
        if not program.ok:
            shown = [d for d in diagnostics if d.severity == "error" or _key(d) not in self._shown]
            return Outcome(False, shown, sources)
        self.entries, self.program = entries, program
        new_warnings = [d for d in diagnostics if _key(d) not in self._shown]
        self._shown.update(_key(d) for d in new_warnings)
        return Outcome(True, new_warnings, sources, [(n, self._users(n)) for n, _ in rebound], len(new))

    def _users(self, name: str) -> list[str]:
        return [n for e in self.entries if name in e.uses for n in sorted(e.binds)]

    def sources(self) -> SourceMap:
        """Every input's text by label, to render diagnostics against."""
        sources = SourceMap()
        for label, text in self.inputs.items():
            sources.add(label, text)
        return sources

    def diagnostics(self) -> tuple[list[Diagnostic], SourceMap]:
        """The session's diagnostics, as `:check` shows them."""
        program = self.compile(self.source)
        mapped = [_map(d, self.entries) for d in program.diagnostics]
        return [d for d in mapped if d.code != UNUSED], self.sources()

    # --- expressions -----------------------------------------------------------------

    def expression_type(self, expression: str, label: str) -> tuple[str | None, list[Diagnostic]]:
        """The type of an expression in the session, or (None, its errors). (None, []) if it is no expression."""
        name = "_"
        while name in self.env:
            name += "_"
        prefix = f"{name} = "
        line = prefix + " ".join(expression.split()) + "\n"
        _, errors = parse_module(line, FILE)
        if errors:
            return None, []
        program = self.compile(self.source + line)
        last = self.source.count("\n") + 1
        problems = [_shift(d, last, len(prefix), label) for d in program.diagnostics
                    if d.severity == "error" and d.span.line >= last]
        self.inputs[label] = line[len(prefix):]
        if problems or name not in program.symbols:
            return None, problems or [Diagnostic("error", "not an expression", Span(label, 1, 1, 1, 2))]
        return str(program.symbols[name].val.type), []


def _entries(module: ast.Module, text: str, label: str) -> Iterator[Entry]:
    """A module's statements as entries; each owns the lines after the previous statement (its comments)."""
    lines = text.splitlines(keepends=True)
    start = 1
    for statement in module.statements:
        end = statement.span.end_line
        body = "".join(lines[start - 1:end])
        yield Entry(body if body.endswith("\n") else body + "\n", label, start, frozenset(_binds(statement)),
                    frozenset(_uses(statement)))
        start = end + 1


def _binds(statement: ast.Node) -> set[str]:
    if isinstance(statement, (ast.Let, ast.Sample, ast.Param)):
        return {statement.name}
    if isinstance(statement, ast.Import) and statement.alias:
        return {statement.alias}
    return set()


def _uses(node: Any) -> Iterator[str]:
    """The names an AST node reads."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, list):
        for item in node:
            yield from _uses(item)
    elif dataclasses.is_dataclass(node) and isinstance(node, ast.Node):
        for f in dataclasses.fields(node):
            if f.name not in ("span", "name_span"):
                yield from _uses(getattr(node, f.name))


def _rebind(old: list[Entry], new: list[Entry]) -> tuple[list[Entry] | None, list[tuple[str, list[str]]]]:
    """The session with `new` added: a statement rebinding a name takes the place of the one it replaces.

    Returns the entries in dependency order (None when a rebinding makes a cycle) and the names rebound.
    """
    entries = list(old)
    rebound: list[tuple[str, list[str]]] = []
    for entry in new:
        place = next((i for i, e in enumerate(entries) if e in old and entry.binds & e.binds), None)
        if place is None:
            entries.append(entry)
        else:
            rebound += [(name, []) for name in sorted(entry.binds & entries[place].binds)]
            entries[place] = entry
    ordered = _dependency_order(entries)
    return ordered, rebound


def _dependency_order(entries: list[Entry]) -> list[Entry] | None:
    """A stable topological order: each statement after the ones binding the names it uses. None: a cycle."""
    binder = {name: i for i, e in enumerate(entries) for name in e.binds}
    needs = [{binder[n] for n in e.uses if n in binder and binder[n] != i} for i, e in enumerate(entries)]
    waiting = [len(n) for n in needs]
    users: dict[int, list[int]] = {}
    for i, ns in enumerate(needs):
        for j in ns:
            users.setdefault(j, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users.get(i, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    return [entries[i] for i in order] if len(order) == len(entries) else None


def _locate(line: int, entries: list[Entry]) -> tuple[Entry, int] | None:
    """The entry holding a line of the session's text, and the line within the entry's input."""
    start = 1
    for entry in entries:
        count = entry.text.count("\n")
        if start <= line < start + count:
            return entry, entry.first_line + line - start
        start += count
    return None


def _remap(span: Span, entries: list[Entry]) -> Span:
    if span.file != FILE:
        return span
    found = _locate(span.line, entries)
    if found is None:
        return span
    entry, line = found
    return Span(entry.label, line, span.col, line + span.end_line - span.line, span.end_col)


def _map(d: Diagnostic, entries: list[Entry]) -> Diagnostic:
    """A diagnostic of the session's text, pointing into the input each span came from."""
    notes = [(text, None if span is None else _remap(span, entries)) for text, span in d.notes]
    return dataclasses.replace(d, span=_remap(d.span, entries), notes=notes)


def _shift(d: Diagnostic, line: int, columns: int, label: str) -> Diagnostic:
    """A diagnostic of the synthetic line `_ = EXPR` (at `line`), on the expression as typed."""
    def move(span: Span) -> Span:
        if span.file != FILE or span.line != line:
            return span
        return Span(label, 1, max(span.col - columns, 1), 1, max(span.end_col - columns, 1))

    return dataclasses.replace(d, span=move(d.span), notes=[(t, s and move(s)) for t, s in d.notes])


def _key(d: Diagnostic) -> tuple[str, ...]:
    return (d.severity, d.message, d.span.file, str(d.span.line), str(d.span.col))


def render(diagnostics: Iterable[Diagnostic], sources: SourceMap, color: bool = False) -> str:
    return "\n".join(d.render(sources, color) for d in diagnostics)
