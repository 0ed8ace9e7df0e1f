"""Calls: arguments bound to a signature, builtins and experts instantiated."""
from __future__ import annotations

from typing import Any

from poelang import graph as g
from poelang.builtins import input_file_problem
from poelang.diagnostics import Span, did_you_mean
from poelang.experts.spec import Bound, ExpertSpec, FunctionSpec, Param
from poelang.lower.messages import _describe_val, _hw, _num
from poelang.lower.products import _graph_domain
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, FactorVal, MAX_SIDE, ProductVal, Val
from poelang.syntax import ast
from poelang.types import (
    AnyT, BoolT, ExpertT, ListT, NoneT, NumberT, RewardT, TextT, TupleT, Type, same_dims, spatial_size,
)


class Calls(LoweringState):
    """Calls: a part of :class:`poelang.lower.Lowerer`."""

    def bind(self, name: str, params: tuple[Param, ...], args: list[ast.Arg], span: Span) -> tuple[dict[str, Val], dict[str, Span], bool]:
        """Match arguments to parameters; report unknown, duplicate, missing and ill-typed ones.

        Returns the values bound by parameter name, where each was written, and whether every argument was fine.
        """
        by_name = {p.name: p for p in params}
        bound: dict[str, Val] = {}
        spans: dict[str, Span] = {}
        ok = True
        after_named = False
        for i, arg in enumerate(args):
            after_named |= arg.name is not None
            param = self._parameter_for(name, params, by_name, arg, i, after_named)
            if param is not None and param.name in bound:
                self.diag.error(f"argument '{param.name}' of {name}() is given twice", _name_span(arg) if arg.name else arg.span)
                param = None
            if param is None:
                ok = False
                continue
            val = self.eval(arg.value)
            problem = None if val.bad else _argument_problem(name, param, val)
            if problem:
                self.diag.error(problem, arg.value.span)
            if val.bad or problem:
                ok = False
                continue
            bound[param.name] = val
            spans[param.name] = arg.value.span
        for param in params:
            if param.name not in bound and param.required and ok:  # after other errors, likely a cascade
                self.diag.error(f"{name}() is missing argument '{param.name}' ({param.type})", span)
                ok = False
        return bound, spans, ok

    def _parameter_for(self, name: str, params: tuple[Param, ...], by_name: dict[str, Param], arg: ast.Arg, i: int,
                       after_named: bool) -> Param | None:
        """The parameter the `i`-th argument fills, or None after reporting why it fills none."""
        if arg.name is None:
            if after_named:
                self.diag.error("a positional argument cannot follow a named one", arg.span)
                return None
            if i >= len(params):
                self.diag.error(f"{name}() takes at most {len(params)} positional argument{'s' * (len(params) != 1)}", arg.span)
                return None
            return params[i]
        if arg.name == "trust_remote_code" and arg.name not in by_name:
            self.diag.error("a program cannot let a model run its own code: that is the decision of whoever "
                            "runs it (poelang run --trust-remote-code, Program.run(trust_remote_code=True))",
                            _name_span(arg))
            return None
        if arg.name not in by_name:
            self.diag.error(f"{name}() has no argument '{arg.name}'{did_you_mean(arg.name, by_name)}", _name_span(arg))
            return None
        return by_name[arg.name]

    def _complete(self, params: tuple[Param, ...], bound: dict[str, Val]) -> tuple[dict[str, g.ArgValue], Bound]:
        args: dict[str, g.ArgValue] = {}
        info = Bound({}, {}, base_dir=self._base_dir)
        for param in params:
            if param.name in bound:
                val = bound[param.name]
                args[param.name] = val.arg
                info.types[param.name] = val.type
                info.values[param.name] = val.literal
                info.units[param.name] = val.unit
            else:
                args[param.name] = _default_arg(param.default)
                info.types[param.name] = _type_of_literal(param.default)
                info.values[param.name] = param.default
        return args, info

    def _report_bound_errors(self, info: Bound, spans: dict[str, Span], call_span: Span) -> bool:
        for message, param in info.errors:
            self.diag.error(message, spans.get(param, call_span) if param else call_span)
        return not info.errors

    def call_builtin(self, spec: FunctionSpec, args: list[ast.Arg], span: Span, hint: str | None) -> Val:
        """A call of a builtin function: its arguments checked, its typing rule applied, an input file it reads
        looked at (missing: a warning, unreadable: an error), and a value node added (named after `hint`,
        the binding it is assigned to)."""
        bound, spans, ok = self.bind(spec.name, spec.params, args, span)
        if not ok:
            return BAD
        graph_args, info = self._complete(spec.params, bound)
        result = spec.result(info)
        if not self._report_bound_errors(info, spans, span):
            return BAD
        if spec.name.startswith("load_") and isinstance(info.values.get("path"), str):
            problem = input_file_problem(self._base_dir / info.values["path"])
            if problem == "file not found":
                self.diag.warning(f"file not found: {info.values['path']} (the run will need it)", spans["path"])
            elif problem:
                return self.error(f"cannot read {info.values['path']}: {problem}", spans["path"])
        if spec.name == "box_mask":
            self._check_box_in_canvas(bound.get("region"), info, spans)
        val = self._value_node(spec.name, graph_args, result, hint)
        self.spans.setdefault(val.arg.ref, span)  # run-time failures (a missing file) point at the call
        return val

    def _check_box_in_canvas(self, region: Val | None, info: Bound, spans: dict[str, Span]) -> None:
        size = info.values.get("size")
        literal = self._box_literal(region) if region is not None else None
        if literal is None or not isinstance(size, tuple):
            return
        (x0, y0, x1, y1), units = literal
        H, W = size
        for value, unit, extent, axis in zip((x1, y1), units[2:], (W, H), ("x1", "y1")):
            if unit != "%" and value > extent:
                self.diag.error(f"region {axis} = {value:g} px is outside the {_hw((H, W))} canvas", spans["region"])

    def instantiate_expert(self, spec: ExpertSpec, args: list[ast.Arg], span: Span, hint: str | None) -> Val:
        """An expert made from its signature: arguments checked, its domain computed and image or video
        arguments matched against its canvas; an expert node added. A reward is a reward value, any other
        expert a product of one factor."""
        bound, spans, ok = self.bind(spec.name, spec.params, args, span)
        if not ok:
            return BAD
        graph_args, info = self._complete(spec.params, bound)
        domain = spec.domain(info) if spec.domain else None
        if spec.check is not None:
            spec.check(info)
        if not self._report_bound_errors(info, spans, span):
            return BAD
        if domain is not None and domain.kind in ("image", "video"):
            for name, val in bound.items():
                size = spatial_size(val.type)
                if size and not same_dims(size, domain.shape[-2:]):
                    return self.error(f"argument '{name}' is {_hw(size)} but {spec.name}'s canvas is {_hw(domain.shape[-2:])}",
                                      spans[name])
        node_id = self._new_id(spec.name, hint)
        self.graph.experts.append(g.ExpertNode(id=node_id, expert=spec.name, kind=spec.kind, args=graph_args,
                                               domain=_graph_domain(domain) if domain else None))
        self.spans[node_id] = span
        if spec.kind == "reward":
            return Val(RewardT(spec.scores), g.Ref(ref=node_id), rewards=[(node_id, 1.0)])
        factor = FactorVal(g.Factor(expert=node_id), domain, span)
        return Val(ExpertT(domain, spec.kind), g.Ref(ref=node_id), product=ProductVal([factor]))


def _unit_inside(items: list[Val]) -> str | None:
    for item in items:
        if item.unit in ("%", "px", "deg"):
            return _describe_val(item)
        if item.unit_inside:
            return item.unit_inside
    return None


def _numbers_only(literal: Any) -> bool:
    if isinstance(literal, (list, tuple)):
        return all(_numbers_only(v) for v in literal)
    return isinstance(literal, (int, float)) and not isinstance(literal, bool)



def _argument_problem(name: str, param: Param, val: Val) -> str | None:
    """What is wrong with `val` as the argument `param` of `name`(), if anything: its type, a size that is not
    whole pixels above 0 or is too large, a vector of the wrong length."""
    if not param.parsed.accepts(val.type, val.unit):
        return f"argument '{param.name}' of {name}() expects {param.parsed.describe()}, got {_describe_val(val)}"
    if _is_size(param.type) and isinstance(val.literal, tuple):
        shown = "(" + ", ".join(_num(v) for v in val.literal) + ")"
        if not all(isinstance(v, (int, float)) and v > 0 and float(v).is_integer() for v in val.literal):
            return f"argument '{param.name}' of {name}() must be a size (h, w) in whole pixels above 0, got {shown}"
        if any(v > MAX_SIDE for v in val.literal):
            return f"argument '{param.name}' of {name}() is {shown}: at most {MAX_SIDE} pixels per side"
    problem = _vector_problem(param.type, val)
    return f"argument '{param.name}' of {name}(): {problem}" if problem else None


def _vector_problem(spec: str, val: Val) -> str | None:
    """What is wrong with a vector or matrix argument: units on its numbers, or no numbers at all."""
    kinds = set(spec.rstrip("?").split("|"))
    if not kinds & {"Vector", "Matrix"} or not isinstance(val.type, (ListT, TupleT)):
        return None
    if kinds & {"Vec3", "Size"} and isinstance(val.type, TupleT):
        return None
    if val.unit_inside:
        return f"a vector takes plain numbers, not {val.unit_inside}"
    literal = val.literal
    if literal is not None and not _numbers_only(literal):
        return "a vector (or a matrix's row) holds numbers only"
    if isinstance(literal, (list, tuple)) and (not literal or any(isinstance(v, (list, tuple)) and not v for v in literal)):
        return "a vector needs at least one number"
    return None


def _default_arg(value: Any) -> g.ArgValue:
    if isinstance(value, (tuple, list)):
        return [_default_arg(v) for v in value]
    return value


def _type_of_literal(value: Any) -> Type:
    if value is None:
        return NoneT()
    if isinstance(value, bool):
        return BoolT()
    if isinstance(value, (int, float)):
        return NumberT()
    if isinstance(value, str):
        return TextT()
    if isinstance(value, tuple):
        return TupleT(tuple(_type_of_literal(v) for v in value))
    if isinstance(value, list):
        return ListT(_type_of_literal(value[0]) if value else AnyT())
    return AnyT()


def _name_span(arg: ast.Arg) -> Span:
    """The name of a named argument `name=value` (its span starts with the name)."""
    s = arg.span
    return Span(s.file, s.line, s.col, s.line, s.col + len(arg.name or ""))


def _is_size(spec: str) -> bool:
    return "Size" in spec.rstrip("?").split("|")
