"""Values for a program's parameters (`param name = default`) given from outside it.

An override keeps the text as the user typed it and where: a `--param
key=value` on the command line, a cell of a sweep table, a `params={...}`
entry from Python. The lowerer reads it once it knows the parameter's type,
so every mistake (an unknown name, a value of the wrong type, a value some
expert refuses) is a diagnostic pointing at the override itself.

For a text parameter, a value that does not start with a double quote is the
text itself: `--param prompt=three dogs` (the shell has eaten the quotes) and
a CSV cell `three dogs` both mean the string "three dogs".
"""
from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from poelang.diagnostics import Diagnostic, Span
from poelang.syntax import ast


@dataclass
class ParamOverride:
    name: str
    name_span: Span
    text: str  # the value as typed
    span: Span  # of the value
    verbatim: bool  # for a text parameter, `text` is the string itself (no quotes to read)
    source: tuple[str, str] | None = None  # (file, text) to show in diagnostics, when not a program file

    def expression(self) -> tuple[ast.Expr | None, list[Diagnostic]]:
        """The value read as a poelang expression, its spans where the text was typed."""
        return parse_value(self.text, self.span)


def from_command_line(key: str, text: str, option: str = "--param") -> ParamOverride:
    """`--param key=value`: shown as typed, in a pseudo-file `<--param key>`."""
    where = f"<{option} {key}>"
    value_col = len(key) + 2
    return ParamOverride(key, Span(where, 1, 1, 1, value_col - 1), text,
                         Span(where, 1, value_col, 1, value_col + max(len(text), 1)), not text.startswith('"'),
                         (where, f"{key}={text}"))


def from_python(key: str, value: Any) -> ParamOverride:
    """`program.run(params={key: value})`: a str is the text itself, other values are written as source."""
    text = value if isinstance(value, str) else python_to_source(value)
    override = from_command_line(key, text, option="param")
    override.verbatim = isinstance(value, str)
    return override


def as_overrides(params: "Mapping[str, Any] | Sequence[ParamOverride] | None") -> list[ParamOverride]:
    """Overrides as given: already read (command line, table), or Python values by name."""
    if not params:
        return []
    if isinstance(params, Mapping):
        return [from_python(k, v) for k, v in params.items()]
    return list(params)


def python_to_source(value: Any) -> str:
    """A Python constant as poelang source: True → true, (32, 32) → (32, 32), "a" → "a"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        items = [python_to_source(v) for v in value]
        return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(python_to_source(v) for v in value) + "]"
    if isinstance(value, str):
        from poelang.syntax.fmt import quote

        return quote(value)
    import numbers

    if isinstance(value, numbers.Integral):  # numpy's integers too
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{number} is not a number a program can hold")
        return repr(number)
    raise TypeError(f"a program takes numbers, strings, booleans, none and lists or tuples of them, "
                    f"not {type(value).__name__}")


def parse_value(text: str, at: Span) -> tuple[ast.Expr | None, list[Diagnostic]]:
    """Parse one expression typed at `at` (a command-line value, a table cell)."""
    from poelang.syntax.parser import parse_module

    prefix = "_ = "
    module, errors = parse_module(prefix + text, at.file)
    shift = lambda span: _shift(span, at, len(prefix))  # noqa: E731
    if errors or module is None:
        return None, [dataclasses.replace(d, span=shift(d.span), notes=[]) for d in errors]
    if len(module.statements) != 1 or not isinstance(module.statements[0], ast.Let):
        return None, [Diagnostic("error", "expected one value", at)]
    return _shift_spans(module.statements[0].value, shift), []


def _shift(span: Span, at: Span, prefix: int) -> Span:
    """A span in `_ = text` moved to where text was typed (later lines of a multi-line cell keep their columns)."""
    def col(line: int, c: int) -> int:
        return at.col + max(c - 1 - prefix, 0) if line == 1 else c

    return Span(at.file, at.line + span.line - 1, col(span.line, span.col), at.line + span.end_line - 1,
                col(span.end_line, span.end_col))


def _shift_spans(node: Any, shift) -> Any:
    if isinstance(node, Span):
        return shift(node)
    if isinstance(node, list):
        return [_shift_spans(n, shift) for n in node]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _shift_spans(getattr(node, f.name), shift) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node
