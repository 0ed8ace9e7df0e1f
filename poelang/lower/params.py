"""Program parameters: `param name = default`, and the values given from outside."""
from __future__ import annotations

from poelang import graph as g
from poelang.lower.messages import _a, _describe_param, _shown
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, Symbol, Val
from poelang.params import ParamOverride
from poelang.syntax import ast
from poelang.types import NoneT, TextT, TupleT, Type


class Params(LoweringState):
    """Program parameters: a part of :class:`poelang.lower.Lowerer`."""

    def lower_param(self, statement: ast.Param) -> None:
        """`param name = default`; the value is the override's when one is given, of the default's type."""
        name = statement.name
        if not self._check_new_name(name, statement.name_span):
            return
        if name in g.SETTING_NAMES:
            self.diag.error(f"'{name}' is the name of a sampler setting; a parameter needs another name "
                            f"(a sweep table's column '{name}' sets the setting)", statement.name_span)
            self._define(name, Symbol(BAD, statement.name_span, "param", used=True))
            return
        self._declared_params.append(name)
        default = self.eval(statement.value)
        if not default.bad and (not default.is_const or isinstance(default.type, NoneT)):
            self.diag.error(f"a parameter's default must be a constant (a number, a string, true or false, a list or "
                            f"a tuple of those), not {_a(default.type)}", statement.value.span)
            default = BAD
        override = self.param_overrides.get(name)
        val = default if default.bad or override is None else self._override_value(override, default)
        if val is None or val.bad:
            self._define(name, Symbol(BAD, statement.name_span, "param", used=True))
            return
        self.graph.params.append(g.ParamNode(id=name, type=str(default.type), value=val.arg, default=default.arg))
        self.spans[name] = statement.span
        symbol = Symbol(val, statement.name_span, "param")
        symbol.override = override
        self._define(name, symbol)

    def _override_value(self, override: ParamOverride, default: Val) -> Val | None:
        """The override read with the default's type in mind, or None after reporting why it does not fit."""
        if isinstance(default.type, TextT) and override.verbatim:
            return Val(TextT(), override.text, override.text, span=override.span)
        expr, errors = override.expression()
        if expr is None:
            self.diag.extend(errors)
            return None
        val = self.eval(expr)
        if val.bad:
            return None
        if not val.is_const:
            self.diag.error(f"parameter '{override.name}' takes a constant, not {_a(val.type)}", override.span)
            return None
        if not _same_kind(default.arg, default.type, val.arg, val.type):
            self.diag.error(f"parameter '{override.name}' takes {_describe_param(default)} (its default is "
                            f"{_shown(default)}), got {_shown(val)}", override.span)
            return None
        return val



def _same_kind(default: g.ArgValue, default_type: Type, given: g.ArgValue, given_type: Type) -> bool:
    """Whether an override may replace a parameter's default: same kind of value, an integer for an
    integer, a length (px or %) for a length, an angle for an angle, a tuple of the same size."""
    if isinstance(default, bool) or isinstance(given, bool):
        return isinstance(default, bool) and isinstance(given, bool)
    if isinstance(default, int):
        return isinstance(given, int)
    if isinstance(default, float):
        return isinstance(given, (int, float))
    if isinstance(default, g.Quantity):
        length = ("%", "px")
        return isinstance(given, g.Quantity) and (given.unit == default.unit or {given.unit, default.unit} <= set(length))
    if isinstance(default, str):
        return isinstance(given, str)
    if isinstance(default, list) and isinstance(given, list):
        if isinstance(default_type, TupleT):
            return isinstance(given_type, TupleT) and len(given) == len(default) and all(
                _same_kind(d, dt, v, vt) for d, dt, v, vt in zip(default, default_type.items, given, given_type.items))
        if isinstance(given_type, TupleT):
            return False
        if not default:
            return True
        return all(_same_kind(default[0], default_type.elem, v, given_type.elem) for v in given)
    return False
