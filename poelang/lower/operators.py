"""Binary operators, as a table: one small rule per operator and kinds of operands.

The kind of an operand is what the operator cares about: a number, a mask, a
reward expression, an expert product, or something else. :data:`RULES` is read
top to bottom and the first rule whose operator and kinds match decides, so a
case is one line of the table and one small function (after Preql's
``compile_binops``), not a branch of a ladder.
"""
from __future__ import annotations

import math

from poelang.diagnostics import Span
from poelang.lower.messages import _a, _hw, _num
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, FactorVal, ProductVal, Val
from poelang.syntax import ast
from poelang.types import MaskT, NumberT, ProductT, RegionT, same_dims


ANY = "any"


def kind(val: Val) -> str:
    """What an operand is, for the table: number, mask, reward, product or other."""
    if val.rewards is not None:
        return "reward"
    if val.product is not None:
        return "product"
    if isinstance(val.type, NumberT):
        return "number"
    if isinstance(val.type, MaskT):
        return "mask"
    return "other"


def combine_masks(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    lt, rt = left.type, right.type
    if not same_dims((lt.h, lt.w), (rt.h, rt.w)):
        return lw.error(f"masks of different sizes: {_hw((lt.h, lt.w))} and {_hw((rt.h, rt.w))}", expr.span)
    return lw._value_node("union" if expr.op == "|" else "intersect", {"a": left.arg, "b": right.arg},
                          MaskT(lt.h or rt.h, lt.w or rt.w, lt.f or rt.f), hint)


def not_masks(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    box = "; make a box a mask with box_mask(box, size=(h, w))" if RegionT() in (left.type, right.type) else ""
    return lw.error(f"'{expr.op}' combines masks, not {left.type} and {right.type}{box}", expr.span)


def scale_reward(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    number, reward = (left, right) if kind(left) == "number" else (right, left)
    if not number.is_const:
        return lw.error("a reward is a factor only as exp(reward)", reward.span)
    return Val(reward.type, rewards=[(e, w * number.literal) for e, w in reward.rewards])


def constant_factor(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    number = left if kind(left) == "number" else right
    return lw.error(f"a constant factor does not change a distribution; for a temperature write "
                    f"expert^{_num(number.literal)}", expr.span)


def reward_as_factor(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw.error("a reward is a factor only as exp(reward)", (left if kind(left) == "reward" else right).span)


def multiply_products(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    product = ProductVal(left.product.factors + right.product.factors, left.product.rewards + right.product.rewards)
    seen: dict[str, Span] = {}
    for f in product.factors:
        if f.factor.expert in seen:
            return lw.error(f"'{f.factor.expert}' appears twice in the product; use {f.factor.expert}^2 for its square",
                            f.span)
        seen[f.factor.expert] = f.span
    return Val(ProductT(None), product=product)


def cannot_multiply(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    masks = "; intersect masks with '&'" if kind(left) == kind(right) == "mask" else ""
    return lw.error(f"cannot multiply {_a(left.type)} and {_a(right.type)}{masks}", expr.span)


def divide_reward(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    if not (right.is_const and right.literal != 0):
        return cannot_divide(lw, expr, left, right, hint)
    return Val(left.type, rewards=[(e, w / right.literal) for e, w in left.rewards])


def cannot_divide(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw.error(f"cannot divide {_a(left.type)} by {_a(right.type)}", expr.span)


def add_rewards(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    sign = 1.0 if expr.op == "+" else -1.0
    return Val(left.type, rewards=left.rewards + [(e, sign * w) for e, w in right.rewards])


def reward_plus_constant(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw.error("adding a constant to a reward does not change the distribution", expr.span)


def cannot_add(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw.error(f"cannot {'add' if expr.op == '+' else 'subtract'} {_a(left.type)} and {_a(right.type)}", expr.span)


def power(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    """`expert^a`: a temperature, multiplying the exponents of every factor (and the weights of its rewards)."""
    if not (kind(right) == "number" and right.is_const and right.unit in (None, "int")):
        return lw.error(f"an exponent must be a number, got {_a(right.type)}", expr.right.span)
    if left.product is None:
        return lw.error(f"cannot raise {_a(left.type)} to a power", expr.span)
    if right.literal <= 0:
        return lw.error("an expert's exponent (temperature) must be positive", expr.right.span)
    factors = [FactorVal(f.factor.model_copy(update={"exponent": f.factor.exponent * right.literal}),
                         f.domain, f.span, f.region_literal) for f in left.product.factors]
    rewards = [(r.model_copy(update={"weight": r.weight * right.literal}), s) for r, s in left.product.rewards]
    return Val(left.type, left.arg, product=ProductVal(factors, rewards))


def arithmetic(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw._arithmetic(expr.op, left, right, expr)


def given(lw, expr: ast.BinOp, left: Val, right: Val, hint) -> Val:
    return lw._given(left, right, expr)


ARITHMETIC = ("+", "-", "*", "/", "^")
RULES = [  # (operators, left kind, right kind, rule): the first match decides
    (ARITHMETIC, "number", "number", arithmetic),
    (("|", "&"), "mask", "mask", combine_masks),
    (("|", "&"), ANY, ANY, not_masks),
    (("*",), "number", "reward", scale_reward),
    (("*",), "reward", "number", scale_reward),
    (("*",), "number", "product", constant_factor),
    (("*",), "product", "number", constant_factor),
    (("*",), "reward", ANY, reward_as_factor),
    (("*",), ANY, "reward", reward_as_factor),
    (("*",), "product", "product", multiply_products),
    (("*",), ANY, ANY, cannot_multiply),
    (("/",), "reward", "number", divide_reward),
    (("/",), ANY, ANY, cannot_divide),
    (("+", "-"), "reward", "reward", add_rewards),
    (("+", "-"), "reward", ANY, reward_plus_constant),
    (("+", "-"), ANY, "reward", reward_plus_constant),
    (("+", "-"), ANY, ANY, cannot_add),
    (("^",), ANY, ANY, power),
    (("given",), ANY, ANY, given),
]


def rule_for(op: str, left: Val, right: Val):
    lk, rk = kind(left), kind(right)
    for ops, want_left, want_right, rule in RULES:
        if op in ops and want_left in (ANY, lk) and want_right in (ANY, rk):
            return rule
    raise AssertionError(f"no rule for {op}")


class Operators(LoweringState):
    """Binary operators: a part of :class:`poelang.lower.Lowerer` (the cases are :data:`RULES`)."""

    def eval_BinOp(self, expr: ast.BinOp, hint) -> Val:
        left = self.eval(expr.left)
        right = self.eval(expr.right)
        if left.bad or right.bad:
            return BAD
        return rule_for(expr.op, left, right)(self, expr, left, right, hint)

    def _arithmetic(self, op: str, left: Val, right: Val, expr: ast.BinOp) -> Val:
        if not (left.is_const and right.is_const):
            return Val(NumberT())
        if {left.unit, right.unit} - {None, "int"}:
            return self.error("arithmetic on numbers with units (%, px, deg) is not supported", expr.span)
        a, b = left.literal, right.literal
        too_large = "arithmetic error: the result is too large"
        if op == "^" and isinstance(b, (int, float)) and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 1100:
            return self.error(too_large, expr.span)  # before Python spends minutes on a huge integer
        try:
            value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "^": lambda: a ** b}[op]()
        except OverflowError:
            return self.error(too_large, expr.span)
        except (ZeroDivisionError, ValueError) as e:
            return self.error(f"arithmetic error: {e}", expr.span)
        if isinstance(value, complex):
            return self.error("arithmetic error: complex result", expr.span)
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            return self.error(too_large, expr.span)
        unit = "int" if left.unit == right.unit == "int" and op in "+-*" else None
        return Val(NumberT(), value, value, unit)

    def _given(self, child: Val, parent: Val, expr: ast.BinOp) -> Val:
        if child.product is None or not child.product.factors:
            what = "a reward" if child.rewards is not None or child.product is not None else _a(child.type)
            return self.error(f"'given' conditions a generative expert, not {what}", expr.left.span)
        if parent.product is None or not parent.product.factors or parent.product.rewards:
            what = "a reward" if parent.rewards is not None or (parent.product and parent.product.rewards) else f"{_a(parent.type)}"
            return self.error(f"an expert is conditioned on a generative expert, not {what}", expr.right.span)
        parents = [f.factor.expert for f in parent.product.factors]
        factors = [FactorVal(f.factor.model_copy(update={"parents": f.factor.parents + parents}), f.domain, expr.span,
                             f.region_literal) for f in child.product.factors]
        return Val(child.type, child.arg, product=ProductVal(factors, list(child.product.rewards)))
