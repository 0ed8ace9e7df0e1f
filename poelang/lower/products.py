"""Products of experts: one canvas, regions inside it, exponents in range, parents without cycles."""
from __future__ import annotations

from poelang import graph as g
from poelang.diagnostics import Span
from poelang.experts.spec import ExpertSpec
from poelang.lower.messages import _a, _hw
from poelang.lower.state import LoweringState
from poelang.lower.values import FLOAT32_MAX, FLOAT32_TINY, FactorVal, ProductVal, Val
from poelang.syntax import ast
from poelang.types import Domain, Type, box_pixels, same_dims, spatial_size


class Products(LoweringState):
    """Products of experts: a part of :class:`poelang.lower.Lowerer`."""

    def _as_product(self, val: Val, span: Span) -> ProductVal | None:
        if val.bad:
            return None
        if val.product is None:
            if val.rewards is not None:
                self.diag.error("a reward is a factor only as exp(reward)", span)
            else:
                self.diag.error(f"nothing to sample: {_a(val.type)} is not a product of experts", span)
            return None
        return val.product

    def check_product(self, product: ProductVal, statement: ast.Sample) -> Domain | None:
        """The canvas of a product (the domain its unrestricted experts share), after checking that there is one,
        that regions fit it, exponents and weights are sane and rewards score its kind; None after an error."""
        if not product.factors:
            self.diag.error("nothing to sample: the product has no generative expert, only rewards", statement.value.span)
            return None
        full = [f for f in product.factors if f.factor.region_kind != "box"]
        if not full:
            self.diag.error("cannot tell the canvas: every expert is restricted to a box; add one over the whole canvas",
                            statement.value.span)
            return None
        canvas = full[0].domain
        ok = True
        for f in full[1:]:
            if f.domain is not None and canvas is not None and not f.domain.compatible(canvas):
                first = full[0].factor.expert
                self.diag.error(f"cannot multiply experts over {canvas} and {f.domain}", f.span,
                                (f"'{first}' is over {canvas}", self.spans.get(first, full[0].span)))
                ok = False
        if canvas is None:
            return None
        for f in product.factors:
            ok &= self._check_region(f, canvas)
        for f in product.factors:
            ok &= self._check_magnitude("exponent", f.factor.expert, f.factor.exponent, f.span)
        for reward, span in product.rewards:
            spec = self._spec_of(reward.expert)
            if spec is not None and canvas.kind not in spec.scores:
                self.diag.error(f"'{spec.name}' scores {' or '.join(spec.scores)}s, not {canvas.kind}s", span)
                ok = False
            ok &= self._check_magnitude("weight", reward.expert, reward.weight, span)
            if spec is not None and spec.hard and reward.weight < 0:
                self.diag.error(f"'{reward.expert}' is a hard constraint (−∞ where it is violated): its weight must not be "
                                f"negative, got {reward.weight:g}", span)
                ok = False
        ok &= self._check_parents(product)
        return canvas if ok else None

    def _check_magnitude(self, what: str, expert: str, value: float, span: Span) -> bool:
        """Exponents and weights are float32 on the device: they must neither overflow nor vanish there."""
        if abs(value) > FLOAT32_MAX or (what == "exponent" and value < FLOAT32_TINY):
            self.diag.error(f"the {what} of '{expert}' is {value:g}: too {'large' if abs(value) > 1 else 'small'} "
                            f"for float32 (between {FLOAT32_TINY:g} and {FLOAT32_MAX:g})", span)
            return False
        return True

    def _spec_of(self, expert_id: str) -> ExpertSpec | None:
        node = self.graph.node(expert_id)
        return self.registry.get(node.expert) if isinstance(node, g.ExpertNode) else None

    def _check_region(self, f: FactorVal, canvas: Domain) -> bool:
        if f.factor.region_kind is not None and canvas.kind == "vector":
            what = "a mask" if f.factor.region_kind == "mask" else "a box"
            self.diag.error(f"{what} restricts an expert to part of an image or a video; this canvas is {canvas}", f.span)
            return False
        if f.factor.region_kind == "mask":
            mask_type = self._type_of_ref(f.factor.region)
            size = spatial_size(mask_type) if mask_type else None
            if size and canvas.kind in ("image", "video") and not same_dims(size, canvas.shape[-2:]):
                self.diag.error(f"mask is {_hw(size)} but the canvas is {_hw(canvas.shape[-2:])}", f.span)
                return False
            return True
        if f.factor.region_kind != "box" or f.region_literal is None or canvas.kind == "vector":
            return True
        (x0, y0, x1, y1), units = f.region_literal
        H, W = canvas.shape[-2:]
        if H is None or W is None:
            return True
        pixels = []
        for value, unit, extent in zip((x0, y0, x1, y1), units, (W, H, W, H)):
            pixels.append(value / 100 * extent if unit == "%" else value)
        if pixels[2] > W or pixels[3] > H:
            self.diag.error(f"region reaches ({pixels[2]:g}, {pixels[3]:g}) px, outside the {_hw((H, W))} canvas", f.span)
            return False
        px0, py0, px1, py1 = box_pixels(tuple(zip((x0, y0, x1, y1), units)), H, W)  # the run's own rounding
        crop = (py1 - py0, px1 - px0)
        if 0 in crop:
            self.diag.error(f"the box covers no whole pixel of the {_hw((H, W))} canvas (it rounds to {_hw(crop)}); "
                            "widen it", f.span)
            return False
        if f.domain is not None and not same_dims(f.domain.shape[-2:], crop):
            self.diag.error(
                f"the expert is over {_hw(f.domain.shape[-2:])} but its region is {_hw(crop)}; give it size={crop}", f.span)
            return False
        return True

    def _type_of_ref(self, ref: g.Ref | None) -> Type | None:
        if ref is None:
            return None
        node = self.graph.node(ref.ref)
        if isinstance(node, g.ValueNode):
            return self._value_types.get(node.id)
        return None

    def _check_parents(self, product: ProductVal) -> bool:
        experts = {f.factor.expert: f for f in product.factors}
        ok = True
        for f in product.factors:
            for parent in f.factor.parents:
                if parent == f.factor.expert:
                    self.diag.error(f"'{parent}' is conditioned on itself", f.span)
                    ok = False
                elif parent not in experts:
                    self.diag.error(f"'{f.factor.expert}' is conditioned on '{parent}', which is not a factor of this product", f.span)
                    ok = False
        if not ok:
            return False
        # A cycle in parent conditioning: depth-first search with colours.
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> list[str] | None:
            state[node] = 1
            for parent in experts[node].factor.parents:
                if state.get(parent) == 1:
                    return path + [node, parent]
                if parent not in state:
                    cycle = visit(parent, path + [node])
                    if cycle:
                        return cycle
            state[node] = 2
            return None

        for name in experts:
            if name not in state:
                cycle = visit(name, [])
                if cycle:
                    loop = cycle[cycle.index(cycle[-1]):]
                    steps = ", ".join(f"{a} given {b}" for a, b in zip(loop, loop[1:]))
                    self.diag.error(f"cycle in parent conditioning: {steps}", experts[cycle[-2]].span)
                    return False
        return True



def _graph_domain(domain: Domain) -> g.Domain:
    return g.Domain(kind=domain.kind, shape=list(domain.shape))
