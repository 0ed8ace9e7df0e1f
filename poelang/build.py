"""Build programs from Python with operators, like micrograd builds a graph.

    >>> from poelang import build as P
    >>> prog = P.ProgramBuilder()
    >>> mask = prog.let("mask", P.blur(P.box_mask(P.box(P.pct(20), P.pct(30), P.pct(80), P.pct(90)),
    ...                                             size=(1024, 1024)), P.px(16)))
    >>> x = prog.sample("x", P.flux_fill * P.flux_depth[mask] * P.exp(P.vqascore("two cats")))
    >>> print(prog.source(), end="")
    mask = blur(box_mask(box(20%, 30%, 80%, 90%), size=(1024, 1024)), 16px)
    x ~ flux_fill * flux_depth[mask] * exp(vqascore("two cats"))
    >>> prog.compile().ok
    True

Every expert, builtin function and `exp` is an attribute of this module;
``*``, ``[ ]``, ``**`` (the language's ``^``), ``+``, ``-``, ``|``, ``&``,
``~`` (the language's ``!``) and ``.given()`` build the same AST the parser
builds. The program is then printed in canonical form and compiled like any
`.poe` text, so a graph built here equals the graph of the equivalent file,
and mistakes get the same diagnostics.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from poelang.diagnostics import NO_SPAN
from poelang.syntax import ast
from poelang.syntax.fmt import format_source

if TYPE_CHECKING:
    from poelang.graph import Graph
    from poelang.program import Program

__all__ = ["Expr", "ProgramBuilder", "deg", "lift", "pct", "px"]


class Expr:
    """A poelang expression under construction."""

    __slots__ = ("node",)
    __array_priority__ = 1000  # numpy scalars defer to our __rmul__

    def __init__(self, node: ast.Expr):
        self.node = node

    # products, weights, temperatures
    def __mul__(self, other: object) -> "Expr":
        return _bin("*", self, other)

    def __rmul__(self, other: object) -> "Expr":
        return _bin("*", other, self)

    def __truediv__(self, other: object) -> "Expr":
        return _bin("/", self, other)

    def __pow__(self, other: object) -> "Expr":
        return _bin("^", self, other)

    def __add__(self, other: object) -> "Expr":
        return _bin("+", self, other)

    def __radd__(self, other: object) -> "Expr":
        return _bin("+", other, self)

    def __sub__(self, other: object) -> "Expr":
        return _bin("-", self, other)

    def __rsub__(self, other: object) -> "Expr":
        return _bin("-", other, self)

    def __neg__(self) -> "Expr":
        return Expr(ast.UnaryOp(NO_SPAN, "-", self.node))

    # mask algebra
    def __or__(self, other: object) -> "Expr":
        return _bin("|", self, other)

    def __and__(self, other: object) -> "Expr":
        return _bin("&", self, other)

    def __invert__(self) -> "Expr":
        return Expr(ast.UnaryOp(NO_SPAN, "!", self.node))

    # restriction, conditioning, calls, attributes
    def __getitem__(self, region: object) -> "Expr":
        return Expr(ast.Subscript(NO_SPAN, self.node, lift(region).node))

    def given(self, parent: object) -> "Expr":
        """`self given parent`: a conditional expert given another sample (the language's ``given``)."""
        return _bin("given", self, parent)

    def __call__(self, *args: object, **kwargs: object) -> "Expr":
        arguments = [ast.Arg(NO_SPAN, None, lift(a).node) for a in args]
        arguments += [ast.Arg(NO_SPAN, k, lift(v).node) for k, v in kwargs.items()]
        return Expr(ast.Call(NO_SPAN, self.node, arguments))

    def attr(self, name: str) -> "Expr":
        """Attribute access (`sim.rgb` is `sim.attr("rgb")`; plain attributes also work)."""
        return Expr(ast.Attribute(NO_SPAN, self.node, name))

    def __getattr__(self, name: str) -> "Expr":
        if name.startswith("_"):
            raise AttributeError(name)
        return self.attr(name)

    def __repr__(self) -> str:
        from poelang.syntax.fmt import format_expr

        return f"<poelang {format_expr(self.node)}>"

    def __bool__(self) -> bool:
        raise TypeError("a poelang expression has no truth value (did you mean `&` or `|`?)")


def _bin(op: str, left: object, right: object) -> Expr:
    return Expr(ast.BinOp(NO_SPAN, op, lift(left).node, lift(right).node))


def lift(value: object) -> Expr:
    """A Python value as a poelang expression."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool) or value is None:
        return Expr(ast.Constant(NO_SPAN, value))
    if isinstance(value, int):
        return Expr(ast.Number(NO_SPAN, float(value), None, str(value)))
    if isinstance(value, float):
        return Expr(ast.Number(NO_SPAN, value, None, repr(value)))
    if isinstance(value, str):
        return Expr(ast.String(NO_SPAN, value))
    if isinstance(value, tuple):
        return Expr(ast.TupleExpr(NO_SPAN, [lift(v).node for v in value]))
    if isinstance(value, list):
        return Expr(ast.ListExpr(NO_SPAN, [lift(v).node for v in value]))
    raise TypeError(f"cannot use a {type(value).__name__} in a poelang program")


def _quantity(value: float, unit: str) -> Expr:
    text = f"{value:g}{unit}"
    return Expr(ast.Number(NO_SPAN, float(value), unit, text))


def pct(value: float) -> Expr:
    """`40%`: a length relative to the canvas."""
    return _quantity(value, "%")


def px(value: float) -> Expr:
    """`12px`."""
    return _quantity(value, "px")


def deg(value: float) -> Expr:
    """`30deg`."""
    return _quantity(value, "deg")


def name(identifier: str) -> Expr:
    """A reference to a binding, an expert or a builtin by name."""
    return Expr(ast.Name(NO_SPAN, identifier))


class ProgramBuilder:
    """Statements in order; `compile()` gives the same Program a `.poe` file would."""

    def __init__(self, base_dir: str | Path = "."):
        self.statements: list[ast.Statement] = []
        self.base_dir = Path(base_dir)

    def let(self, binding: str, value: object) -> Expr:
        """`binding = value`; returns the name, to use in later statements."""
        self.statements.append(ast.Let(NO_SPAN, binding, NO_SPAN, lift(value).node))
        return name(binding)

    def sample(self, binding: str, product: object, **settings: object) -> Expr:
        """`binding ~ product with { settings }` (a symbol is a plain string: ``mcmc="mala"``); returns the name."""
        block = [ast.Setting(NO_SPAN, k, NO_SPAN, _setting(v).node) for k, v in settings.items()]
        self.statements.append(ast.Sample(NO_SPAN, binding, NO_SPAN, lift(product).node, block))
        return name(binding)

    def save(self, value: object, path: str, **options: object) -> None:
        """`save value to "path" with { options }` (e.g. ``fps=8``)."""
        block = [ast.Setting(NO_SPAN, k, NO_SPAN, lift(v).node) for k, v in options.items()]
        self.statements.append(ast.Save(NO_SPAN, lift(value).node, path, NO_SPAN, block))

    def imports(self, path: str, alias: str | None = None) -> Expr | None:
        """`import "path"` (its names join this program's) or `import "path" as alias`; returns the alias's name."""
        self.statements.append(ast.Import(NO_SPAN, path, NO_SPAN, alias))
        return name(alias) if alias else None

    def source(self) -> str:
        """The program as canonical `.poe` text (what ``poelang fmt`` would write)."""
        return format_source(ast.Module("<python>", "", self.statements, []))

    def compile(self, **kwargs: Any) -> "Program":
        """The checked :class:`~poelang.program.Program`, with diagnostics as for a file; keyword arguments
        as :func:`poelang.parse` takes them (``overrides``, ``params``, ``allow_outside``)."""
        from poelang.program import compile_source

        return compile_source(self.source(), "<python>", base_dir=self.base_dir, **kwargs)

    @property
    def graph(self) -> "Graph":
        """The typed expert graph; raises :class:`~poelang.diagnostics.PoeError` when the program has errors."""
        graph = self.compile().raise_for_errors().graph
        assert graph is not None  # a program without errors has a graph
        return graph


def _setting(value: object) -> Expr:
    # Settings' symbols (mcmc = langevin) are bare names in the language.
    if isinstance(value, str) and value.isidentifier():
        return name(value)
    return lift(value)


def __getattr__(attribute: str) -> Expr:
    """Experts, builtins and `exp` by name: `P.flux_fill`, `P.box(...)`, `P.exp(...)`."""
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return name(attribute)
