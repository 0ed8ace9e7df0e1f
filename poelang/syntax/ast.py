"""The abstract syntax tree: plain dataclasses, each node with its source span.

No Lark object reaches past the parser; the formatter, the lowering to the
expert graph and the Python operator API all work on these nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from poelang.diagnostics import Span


@dataclass(eq=False)
class Node:
    span: Span


# --- expressions -----------------------------------------------------------


@dataclass(eq=False)
class Name(Node):
    id: str


@dataclass(eq=False)
class Number(Node):
    value: float
    unit: str | None  # None, "%", "px" or "deg"
    text: str  # as written, kept by the formatter

    @property
    def is_int(self) -> bool:
        return self.unit is None and float(self.value).is_integer() and not any(
            c in self.text for c in ".eE"
        )


@dataclass(eq=False)
class String(Node):
    value: str


@dataclass(eq=False)
class Constant(Node):
    value: bool | None  # true, false, none


@dataclass(eq=False)
class ListExpr(Node):
    items: list["Expr"]


@dataclass(eq=False)
class TupleExpr(Node):
    items: list["Expr"]


@dataclass(eq=False)
class Arg(Node):
    name: str | None  # None for a positional argument
    value: "Expr"


@dataclass(eq=False)
class Call(Node):
    func: "Expr"
    args: list[Arg]


@dataclass(eq=False)
class Subscript(Node):
    value: "Expr"
    index: "Expr"


@dataclass(eq=False)
class Attribute(Node):
    value: "Expr"
    attr: str


@dataclass(eq=False)
class BinOp(Node):
    op: str  # one of | & + - * / ^ given
    left: "Expr"
    right: "Expr"


@dataclass(eq=False)
class UnaryOp(Node):
    op: str  # "-" or "!"
    operand: "Expr"


Expr = Union[Name, Number, String, Constant, ListExpr, TupleExpr, Call, Subscript, Attribute, BinOp, UnaryOp]


# --- statements ------------------------------------------------------------


@dataclass(eq=False)
class Setting(Node):
    name: str
    name_span: Span
    value: Expr


@dataclass(eq=False)
class Import(Node):
    path: str
    path_span: Span
    alias: str | None


@dataclass(eq=False)
class Let(Node):
    name: str
    name_span: Span
    value: Expr


@dataclass(eq=False)
class Param(Node):
    """`param name = default`: a binding the caller may override (its default is a constant)."""

    name: str
    name_span: Span
    value: Expr


@dataclass(eq=False)
class Sample(Node):
    name: str
    name_span: Span
    value: Expr
    settings: list[Setting] = field(default_factory=list)


@dataclass(eq=False)
class Save(Node):
    value: Expr
    path: str
    path_span: Span
    options: list[Setting] = field(default_factory=list)


Statement = Union[Import, Param, Let, Sample, Save]


@dataclass(eq=False)
class Comment:
    text: str  # including the leading '#'
    line: int
    col: int


@dataclass(eq=False)
class Module:
    """One parsed file: its statements and its comments (kept for `fmt`)."""

    file: str
    source: str
    statements: list[Statement]
    comments: list[Comment] = field(default_factory=list)
