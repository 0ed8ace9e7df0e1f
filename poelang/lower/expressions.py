"""Expressions: literals, lists, subscripts (regions), unary operators and calls."""
from __future__ import annotations

import math

from poelang import graph as g
from poelang.diagnostics import did_you_mean
from poelang.lower.calls import _unit_inside
from poelang.lower.messages import _a
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, FactorVal, ProductVal, Symbol, Val
from poelang.syntax import ast
from poelang.types import (
    AnyT, BoolT, ListT, MaskT, ModuleT, NoneT, NumberT, ProductT, RegionT, TextT, TupleT, Type, VideoT, DepthT,
)


class Expressions(LoweringState):
    """Expressions: a part of :class:`poelang.lower.Lowerer`."""

    def eval(self, expr: ast.Expr, hint: str | None = None) -> Val:
        """The typed value of an expression, by its node's ``eval_<Node>`` method; errors are reported and give the
        poison value ``BAD`` (which later checks stay quiet about). ``hint``: the binding it is assigned to, which
        names the graph node it makes."""
        method = getattr(self, "eval_" + type(expr).__name__)
        val = method(expr, hint)
        if val.span is None:
            val.span = expr.span
        return val

    def eval_Number(self, expr: ast.Number, hint) -> Val:
        """A number, an integer or a quantity with its unit (``40%``, ``12px``, ``30deg``)."""
        if not math.isfinite(expr.value):
            shown = expr.text if len(expr.text) <= 20 else expr.text[:16] + "..."
            return self.error(f"number {shown} is too large", expr.span)
        if expr.unit:
            return Val(NumberT(), g.Quantity(value=expr.value, unit=expr.unit), expr.value, expr.unit)
        if expr.is_int:
            return Val(NumberT(), int(expr.value), int(expr.value), "int")
        return Val(NumberT(), expr.value, expr.value, None)

    def eval_String(self, expr: ast.String, hint) -> Val:
        """A text constant."""
        return Val(TextT(), expr.value, expr.value)

    def eval_Constant(self, expr: ast.Constant, hint) -> Val:
        """``true``, ``false`` or ``none``."""
        if expr.value is None:
            return Val(NoneT(), None, None)
        return Val(BoolT(), expr.value, expr.value)

    def eval_ListExpr(self, expr: ast.ListExpr, hint) -> Val:
        """``[a, b, ...]``: items of one type (a vector when they are numbers)."""
        items = [self.eval(i) for i in expr.items]
        if any(i.bad for i in items):
            return BAD
        elem: Type = AnyT()
        for item in items:
            if isinstance(elem, AnyT):
                elem = item.type
            elif type(item.type) is not type(elem):
                return self.error(f"list items must have one type: {elem} and {item.type}", item.span)
        literal = [i.literal for i in items] if all(i.is_const for i in items) else None
        return Val(ListT(elem, tuple(i.type for i in items)), [i.arg for i in items], literal,
                   unit_inside=_unit_inside(items))

    def eval_TupleExpr(self, expr: ast.TupleExpr, hint) -> Val:
        """``(a, b, ...)``: a size, a position, a colour."""
        items = [self.eval(i) for i in expr.items]
        if any(i.bad for i in items):
            return BAD
        literal = tuple(i.literal for i in items) if all(i.is_const for i in items) else None
        return Val(TupleT(tuple(i.type for i in items)), [i.arg for i in items], literal, unit_inside=_unit_inside(items))

    def eval_Subscript(self, expr: ast.Subscript, hint) -> Val:
        """``expert[region]``: an expert restricted to a box or a mask; ``video[i]``: a frame."""
        value = self.eval(expr.value)
        index = self.eval(expr.index)
        if value.bad or index.bad:
            return BAD
        if value.product is not None:
            if not isinstance(index.type, (RegionT, MaskT, AnyT)):
                return self.error(f"an expert is restricted to a Region or a Mask, not {_a(index.type)}", expr.index.span)
            kind = "box" if isinstance(index.type, RegionT) else "mask"
            factors = []
            for f in value.product.factors:
                if f.factor.region is not None:
                    return self.error(f"'{f.factor.expert}' is already restricted to a region", expr.span)
                region_literal = self._box_literal(index)
                factors.append(FactorVal(f.factor.model_copy(update={"region": index.arg, "region_kind": kind}),
                                         f.domain, expr.span, region_literal))
            return Val(value.type, value.arg, product=ProductVal(factors, list(value.product.rewards)))
        if isinstance(value.type, (VideoT, MaskT, DepthT)) and getattr(value.type, "f", None) is not False:
            return self.call_builtin(self.registry.builtins["frame"], [ast.Arg(expr.value.span, None, expr.value),
                                                        ast.Arg(expr.index.span, None, expr.index)], expr.span, hint)
        return self.error(f"{_a(value.type)} cannot be indexed", expr.span)

    def _box_literal(self, region: Val):
        node = self.graph.node(region.arg.ref) if isinstance(region.arg, g.Ref) else None
        if not isinstance(node, g.ValueNode) or node.op != "box":
            return None
        coords, units = [], []
        for p in ("x0", "y0", "x1", "y1"):
            a = node.args[p]
            if isinstance(a, g.Quantity):
                coords.append(a.value)
                units.append(a.unit)
            elif isinstance(a, (int, float)):
                coords.append(float(a))
                units.append("px")
            else:
                return None
        return coords, units

    def eval_UnaryOp(self, expr: ast.UnaryOp, hint) -> Val:
        """``-x`` (a number, or a reward's weight negated) and ``!mask`` (its complement)."""
        operand = self.eval(expr.operand)
        if operand.bad:
            return BAD
        t = operand.type
        if expr.op == "-":
            if isinstance(t, NumberT) and operand.is_const:
                v = -operand.literal
                return Val(NumberT(), g.Quantity(value=v, unit=operand.unit) if operand.unit in ("%", "px", "deg") else v,
                           v, operand.unit)
            if operand.rewards is not None:
                return Val(t, rewards=[(e, -w) for e, w in operand.rewards])
            hint = "; the complement of a mask is !mask" if isinstance(t, MaskT) else ""
            return self.error(f"cannot negate {_a(t)}{hint}", expr.span)
        if isinstance(t, MaskT):
            return self._value_node("complement", {"mask": operand.arg}, t, hint)
        return self.error(f"'!' takes a Mask, not {_a(t)}", expr.span)

    def eval_Call(self, expr: ast.Call, hint) -> Val:
        """A call: of ``exp``, of a builtin function, or of an expert's signature."""
        func = expr.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and isinstance(
                self.env.get(func.value.id, Symbol(BAD, expr.span, "")).val.type, ModuleT):
            return self.error("calling a module's binding is not supported; bind the call in that module", func.span)
        if not isinstance(func, ast.Name):
            return self.error("only functions and experts can be called", func.span)
        name = func.id
        if name in self.env:
            symbol = self.env[name]
            symbol.used = True
            return self.error(f"'{name}' is a {symbol.val.type}, not a function", func.span)
        if name == "exp":
            return self.call_exp(expr)
        if name in self.registry.builtins:
            return self.call_builtin(self.registry.builtins[name], expr.args, expr.span, hint)
        spec = self.registry.get(name)
        if spec is not None:
            return self.instantiate_expert(spec, expr.args, expr.span, hint)
        return self.error(f"unknown function or expert '{name}'{did_you_mean(name, self._known_names())}", func.span)

    def call_exp(self, expr: ast.Call) -> Val:
        """``exp(reward)``: a reward as a factor of the product (a product of rewards only)."""
        if len(expr.args) != 1 or expr.args[0].name is not None:
            return self.error("exp takes one reward: exp(reward)", expr.span)
        inner = self.eval(expr.args[0].value)
        if inner.bad:
            return BAD
        if inner.rewards is None:
            if inner.product is not None:
                self.diag.error("exp() takes a reward; a generative expert is a factor as it is", expr.args[0].span)
            elif isinstance(inner.type, NumberT):
                self.diag.error("exp of a constant is a constant factor: it does not change the distribution", expr.args[0].span)
            else:
                self.diag.error(f"exp() takes a reward, not {_a(inner.type)}", expr.args[0].span)
            return BAD
        rewards = [(g.Reward(expert=e, weight=w), expr.span) for e, w in inner.rewards]
        return Val(ProductT(None), product=ProductVal([], rewards))
