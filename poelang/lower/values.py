"""The values lowering computes with: what an expression is (Val), a bound name (Symbol), products."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from poelang import graph as g
from poelang.diagnostics import Span
from poelang.params import ParamOverride
from poelang.types import AnyT, Domain, Type


FLOAT32_MAX = 3.4e38  # exponents and weights become float32 tensors on the device


FLOAT32_TINY = 1.2e-38


MAX_SIDE = 16_384  # pixels per side of any size (h, w): larger canvases do not fit any device


SPECIAL_FUNCTIONS = {"exp": "exp(reward): a discriminative expert as the factor exp(reward)"}


@dataclass
class WrittenSettings:
    """How a sample's settings were written, for the checks against what it samples."""

    value_spans: dict[str, Span] = field(default_factory=dict)  # setting → the span of its value
    invert_type: Type | None = None  # the type of `invert`'s value


@dataclass
class FactorVal:
    factor: g.Factor
    domain: Domain | None
    span: Span
    region_literal: Any = None  # the box's literal coordinates, for canvas checks


@dataclass
class ProductVal:
    factors: list[FactorVal] = field(default_factory=list)
    rewards: list[tuple[g.Reward, Span]] = field(default_factory=list)


@dataclass
class Val:
    type: Type
    arg: g.ArgValue = None
    literal: Any = None  # Python value of a constant, else None
    unit: str | None = None  # numbers: None (real), "int", "%", "px", "deg"
    product: ProductVal | None = None  # experts and products
    rewards: list[tuple[str, float]] | None = None  # reward expressions: (expert id, weight)
    span: Span | None = None
    bad: bool = False  # already reported
    unit_inside: str | None = None  # lists and tuples: the first item written with a unit (`5deg`), if any

    @property
    def is_const(self) -> bool:
        return self.literal is not None


BAD = Val(AnyT(), bad=True)


@dataclass
class Symbol:
    val: Val
    span: Span
    kind: str  # "value", "expert", "sample", "module", "constant", "param"
    used: bool = False
    file: str = ""
    override: ParamOverride | None = None  # a parameter's value given from outside the program


class _Invalid:
    pass


_INVALID = _Invalid()


def _copy(val: Val, span: Span, at_use: bool = False) -> Val:
    """A copy of a bound value; with at_use, its factors point at this use of the name
    (so a diagnostic about a product points into the product, not at a definition)."""
    product = val.product
    if at_use and product is not None:
        product = ProductVal([FactorVal(f.factor, f.domain, span, f.region_literal) for f in product.factors],
                             [(r, span) for r, _ in product.rewards])
    return Val(val.type, val.arg, val.literal, val.unit, product, val.rewards, span, val.bad, val.unit_inside)
