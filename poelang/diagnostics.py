"""Source spans and diagnostics.

Every mistake a user can make is reported as a :class:`Diagnostic` that points
at the source (`file:line:col: error: message`, the line, a caret under the
span), never as a Python traceback. Stages collect diagnostics into a
:class:`DiagnosticBag` instead of raising at the first one, so a file with
three mistakes gets three messages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

from poelang.infer.errors import closest, did_you_mean  # noqa: F401 (one definition, shared with the engine's settings)

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Span:
    """A range of source text; lines and columns count from 1, `end_*` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of self to the end of other."""
        return Span(self.file, self.line, self.col, other.end_line, other.end_col)


NO_SPAN = Span("<python>", 0, 0, 0, 0)


# Stable codes for diagnostics that tools act on (the REPL, editors); a tool
# branches on the code, never on the message, which may be reworded.
UNUSED = "unused"  # a name is bound and never used
UNCLOSED = "unclosed"  # the input ends inside an open bracket: more lines can complete it
ALREADY_DEFINED = "already-defined"  # a name is bound twice


@dataclass
class Diagnostic:
    severity: Severity
    message: str
    span: Span
    notes: list[tuple[str, Span | None]] = field(default_factory=list)
    code: str = ""  # one of the codes above, or "" for one no tool acts on

    def render(self, sources: "SourceMap | None" = None, color: bool = False) -> str:
        """GNU style: `file:line:col: error: message`, then the line and a caret."""
        lines = [_headline(self.severity, self.message, self.span, color)]
        lines += _excerpt(self.span, sources, color, self.severity)
        for note, span in self.notes:
            if span is None:
                lines.append(f"  = note: {note}")
            else:
                lines.append(_headline("note", note, span, color))
                lines += _excerpt(span, sources, color, "note")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.span}: {self.severity}: {self.message}"


_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;35m", "note": "\x1b[1;36m"}


def _headline(severity: str, message: str, span: Span, color: bool) -> str:
    where = f"{span.file}:{span.line}:{span.col}" if span.line else span.file
    if color:
        return f"\x1b[1m{where}:\x1b[0m {_COLORS[severity]}{severity}:\x1b[0m {message}"
    return f"{where}: {severity}: {message}"


def _excerpt(span: Span, sources: "SourceMap | None", color: bool, severity: str) -> list[str]:
    if sources is None or span.line <= 0:
        return []
    text = sources.line(span.file, span.line)
    if text is None:
        return []
    text = text.expandtabs(1)
    gutter = f"{span.line:>5} | "
    start = max(span.col - 1, 0)
    if span.end_line == span.line and span.end_col > span.col:
        width = span.end_col - span.col
    else:  # a multi-line span: underline to the end of its first line
        width = max(len(text.rstrip()) - start, 1)
    marks = "^" + "~" * (width - 1)
    if color:
        marks = f"{_COLORS[severity]}{marks}\x1b[0m"
    return [gutter + text.rstrip("\n"), " " * 5 + " | " + " " * start + marks]


class SourceMap:
    """The text of every file a program reads, for rendering excerpts."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, file: str, text: str) -> None:
        self._lines[file] = text.splitlines()

    def __contains__(self, file: str) -> bool:
        return file in self._lines

    def line(self, file: str, number: int) -> str | None:
        lines = self._lines.get(file)
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]


class DiagnosticBag:
    """Collects diagnostics from all stages, in source order when rendered."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, message: str, span: Span, *notes: tuple[str, Span | None], code: str = "") -> Diagnostic:
        return self._add(Diagnostic("error", message, span, list(notes), code))

    def warning(self, message: str, span: Span, *notes: tuple[str, Span | None], code: str = "") -> Diagnostic:
        return self._add(Diagnostic("warning", message, span, list(notes), code))

    def _add(self, diagnostic: Diagnostic) -> Diagnostic:
        self.items.append(diagnostic)
        return diagnostic

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.items.extend(diagnostics)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.span.file, d.span.line, d.span.col))




class PoeError(Exception):
    """A user-facing failure carrying diagnostics; the CLI prints them and exits 1."""

    def __init__(self, diagnostics: list[Diagnostic], sources: SourceMap | None = None):
        self.diagnostics = diagnostics
        self.sources = sources
        super().__init__("\n".join(str(d) for d in diagnostics))

    def render(self, color: bool = False) -> str:
        return "\n".join(d.render(self.sources, color) for d in self.diagnostics)
