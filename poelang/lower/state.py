"""The lowering's state, declared in one place, and the helpers every concern uses."""
from __future__ import annotations

from pathlib import Path

from poelang import graph as g
from poelang.diagnostics import DiagnosticBag, SourceMap, Span
from poelang.experts.registry import Registry
from poelang.imports import Imports
from poelang.lower.values import BAD, Symbol, Val
from poelang.params import ParamOverride
from poelang.syntax import ast
from poelang.types import Type


class LoweringState:
    """The lowering's state, declared in one place, and the helpers every concern uses."""

    def __init__(self, registry: Registry, sources: SourceMap, diagnostics: DiagnosticBag,
                 overrides: list[tuple[str | None, ast.Setting]] | None = None,
                 params: list[ParamOverride] | None = None, imports: Imports | None = None,
                 allow_outside: bool = False):
        self.registry = registry
        self.imports = imports or Imports()  # read and parsed before lowering (poelang.imports)
        self.sources = sources
        self.diag = diagnostics
        self.graph = g.Graph()
        self.spans: dict[str, Span] = {}
        self.env: dict[str, Symbol] = {}
        self.counters: dict[str, int] = {}
        self.overrides = overrides or []
        self.allow_outside = allow_outside  # the runner lets saves leave the output directory
        self._saved: dict[str, Span] = {}  # normalised save path → the save that writes it
        self.param_overrides = {p.name: p for p in params or []}
        self._override_uses: dict[Span, ParamOverride] = {}  # a use of an overridden parameter → its override
        self._declared_params: list[str] = []
        self._depth = 0  # how deep in imports the statements being lowered are
        self._loaded: set[tuple[Path, str]] = set()  # (file, name prefix) of every import lowered
        self._failed_import = False  # an import without `as` failed: its names are unknown
        self._prefix = ""
        self._base_dir = Path(".")
        self._value_types: dict[str, Type] = {}  # value node id → its static type

    def error(self, message: str, span: Span, *notes: tuple[str, Span | None], code: str = "") -> Val:
        """Report a mistake and return the poison value (``BAD``: it matches everything, so one mistake is one message)."""
        self.diag.error(message, span, *notes, code=code)
        return BAD

    def _value_node(self, op: str, args: dict[str, g.ArgValue], type_: Type, hint: str | None) -> Val:
        if hint is None:  # builtins are pure: `sim.rgb` written twice is one node, computed once
            for node in self.graph.values:
                if node.op == op and node.args == args and "#" in node.id:
                    return Val(self._value_types[node.id], g.Ref(ref=node.id))
        node_id = self._new_id(op, hint)
        self.graph.values.append(g.ValueNode(id=node_id, op=op, args=args, type=str(type_)))
        self._value_types[node_id] = type_
        return Val(type_, g.Ref(ref=node_id))

    def _new_id(self, op: str, hint: str | None) -> str:
        if hint is not None and self.graph.node(hint) is None:
            return hint
        self.counters[op] = self.counters.get(op, 0) + 1
        return f"{op}#{self.counters[op]}"
