"""AST → typed expert graph, with every static check on the way.

The lowering walks the statements in order, evaluates each expression to a
:class:`Val` (its type, how it appears as a graph argument, its literal value
when it is a constant, and the factors it contributes when it is an expert
product) and reports mistakes into a :class:`DiagnosticBag` instead of
stopping at the first. An expression that failed gets the type ``AnyT``, which
matches everything, so one mistake gives one message.
"""
from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from poelang import graph as g
from poelang.builtins import SIMULATION_ATTRIBUTES, input_file_problem
from poelang.diagnostics import (
    ALREADY_DEFINED, UNUSED, Diagnostic, DiagnosticBag, SourceMap, Span, closest, did_you_mean,
)
from poelang.experts.registry import Registry
from poelang.experts.spec import Bound, ExpertSpec, FunctionSpec, Param
from poelang.imports import Imports
from poelang.infer.setting_messages import explain, source_text
from poelang.params import ParamOverride
from poelang.syntax import ast
from poelang.types import (
    AnyT, BoolT, Domain, ExpertT, ImageT, ListT, MaskT, ModuleT, NoneT, NumberT, ProductT,
    RegionT, RewardT, SimulationT, TextT, TraceT, TupleT, Type, VideoT, DepthT, same_dims,
    spatial_size,
)

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


class Lowerer:
    """Lowers one program (a main module and its imports) into a Graph."""

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

    # --- statements ------------------------------------------------------------

    def lower_module(self, module: ast.Module, base_dir: Path, is_import: bool = False) -> None:
        self._base_dir = base_dir
        for statement in module.statements:
            if isinstance(statement, ast.Import):
                self.lower_import(statement, base_dir)
            elif isinstance(statement, ast.Param) and is_import:
                self.diag.error("a parameter is declared by the program that is run, not by an imported file; "
                                "write it as a binding here", statement.span)
                self._define(self._prefix + statement.name, Symbol(BAD, statement.name_span, "param", used=True))
            elif isinstance(statement, ast.Param):
                self.lower_param(statement)
            elif isinstance(statement, ast.Let):
                self.lower_let(statement)
            elif is_import:
                self.diag.warning("samples and saves of an imported file are not run", statement.span)
            elif isinstance(statement, ast.Sample):
                self.lower_sample(statement)
            elif isinstance(statement, ast.Save):
                self.lower_save(statement)

    def finish(self) -> g.Graph:
        self._report_unused_overrides()
        for name, symbol in self.env.items():
            if not symbol.used and symbol.kind in ("value", "expert", "constant", "param") and "." not in name:
                self.diag.warning(f"'{name}' is defined but never used", symbol.span, code=UNUSED)
        declared = self._declared_params
        for name, override in self.param_overrides.items():
            if name not in declared:
                known = f"; it has {', '.join(declared)}" if declared else "; it declares none"
                self.diag.error(f"the program has no parameter '{name}'{did_you_mean(name, declared)}{known}",
                                override.name_span)
        self._blame_overrides()
        return self.graph

    def _report_unused_overrides(self) -> None:
        """`--set y.levels=3` where no sample is called y: say so rather than ignore it."""
        samples = [name for name, symbol in self.env.items() if symbol.kind == "sample"]
        listed = f"samples: {', '.join(samples)}" if samples else "the program has no sample"
        for target, setting in self.overrides:
            if target is None and not samples:
                self.diag.error(f"--set {setting.name}: {listed}", setting.name_span)
            elif target is not None and target not in samples:
                self.diag.error(f"--set {target}.{setting.name}: no sample '{target}'{did_you_mean(target, samples)} ({listed})",
                                setting.name_span)
    def _blame_overrides(self) -> None:
        """An error at a use of an overridden parameter is the override's: point there, note the use."""
        blamed: dict[tuple[str, Span], Diagnostic] = {}  # one error per override and message, noting every use
        kept = []
        for d in self.diag.items:
            override = self._override_uses.get(d.span)
            if override is None or d.severity != "error":
                kept.append(d)
                continue
            note = (f"'{override.name}' is used here", d.span)
            if (d.message, override.span) in blamed:
                blamed[d.message, override.span].notes.append(note)
                continue
            blamed[d.message, override.span] = Diagnostic(d.severity, d.message, override.span, [note, *d.notes])
            kept.append(blamed[d.message, override.span])
        self.diag.items[:] = kept

    def lower_import(self, statement: ast.Import, base_dir: Path) -> None:
        prefix = f"{self._prefix}{statement.alias}." if statement.alias else self._prefix
        target = self.imports.module_for(statement)
        path, module = target if target else (None, None)
        if (path, prefix) in self._loaded:
            return  # imported already (a diamond: two files import a third): its bindings are there
        if module is None:  # reported; the names it would have bound are not reported again
            if statement.alias:
                self._define(statement.alias, Symbol(Val(ModuleT(statement.path), bad=True), statement.span, "module",
                                                     used=True))
            else:
                self._failed_import = True
            return
        self._loaded.add((path, prefix))
        if statement.alias:
            self._define(statement.alias, Symbol(Val(ModuleT(statement.path)), statement.span, "module", used=True))
        saved_prefix, saved_dir = self._prefix, self._base_dir
        self._prefix = prefix
        self._depth += 1
        try:
            self.lower_module(module, path.parent, is_import=True)
        finally:
            self._depth -= 1
            self._prefix, self._base_dir = saved_prefix, saved_dir

    def lower_let(self, statement: ast.Let) -> None:
        name = self._prefix + statement.name
        if self._check_new_name(name, statement.name_span):
            val = self.eval(statement.value, hint=name)
            kind = "expert" if val.product is not None or val.rewards is not None else (
                "constant" if val.is_const or isinstance(val.arg, (int, float, str, bool, g.Quantity)) else "value")
            self._define(name, Symbol(val, statement.name_span, kind, used=self._depth > 0))  # bindings of imported files may go unused

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

    def lower_sample(self, statement: ast.Sample) -> None:
        name = statement.name
        if not self._check_new_name(name, statement.name_span):
            return
        val = self.eval(statement.value)
        settings, written = self.lower_settings(statement)
        product = self._as_product(val, statement.value.span)
        domain = None
        if product is not None:
            domain = self.check_product(product, statement)
        if settings is not None and domain is not None and not self.check_settings_for(settings, written, domain, statement):
            settings = None
        if product is None or domain is None or settings is None:
            self._define(name, Symbol(BAD, statement.name_span, "sample", used=True))
            return
        node = g.SampleNode(
            id=name, domain=_graph_domain(domain), factors=[f.factor for f in product.factors],
            rewards=[r for r, _ in product.rewards], settings=settings,
        )
        self.graph.samples.append(node)
        self.spans[name] = statement.span
        self._define(name, Symbol(Val(domain.value_type(), g.Ref(ref=name)), statement.name_span, "sample", used=True))

    def lower_save(self, statement: ast.Save) -> None:
        val = self.eval(statement.value)
        suffix = Path(statement.path).suffix.lower()
        # The path is checked even when the value had an error: it is a mistake of its own.
        is_trace = isinstance(val.type, TraceT) or (
            val.bad and isinstance(statement.value, ast.Call) and isinstance(statement.value.func, ast.Name)
            and statement.value.func.id == "trace")
        if is_trace:
            if suffix:
                self.diag.error("a trace is saved to a directory: drop the file extension", statement.path_span)
                return
            fmt = "trace"
        elif suffix in g.FILE_FORMATS:
            fmt = g.FILE_FORMATS[suffix]
        else:
            known = ", ".join(sorted(g.FILE_FORMATS))
            what = f"unknown output format '{suffix}'" if suffix else f"no file extension in '{statement.path}' to tell the format"
            self.diag.error(f"{what}; use one of {known}", statement.path_span)
            return
        if not self._check_save_path(statement):
            return
        if val.bad:
            return
        if not isinstance(val.arg, g.Ref):
            self.diag.error(f"cannot save {_a(val.type)}: save a sample, an image, a video, a mask or a trace", statement.value.span)
            return
        t = val.type
        if fmt in ("png", "jpg") and not isinstance(t, (ImageT, MaskT, DepthT)):
            hint = "; use .mp4 or .gif" if isinstance(t, (VideoT, SimulationT)) else ""
            self.diag.error(f"{_a(t)} cannot be saved as {fmt.upper()}{hint}", statement.path_span)
            return
        if fmt in ("mp4", "gif") and not isinstance(t, (VideoT, SimulationT)) and not (
                isinstance(t, (MaskT, DepthT)) and t.f):
            self.diag.error(f"{_a(t)} is not a video; save it as .png", statement.path_span)
            return
        options: dict[str, g.ArgValue] = {}
        for setting in statement.options:
            if setting.name != "fps":
                self.diag.error(f"unknown save option '{setting.name}'{did_you_mean(setting.name, ['fps'])}", setting.name_span)
                continue
            option = self.eval(setting.value)
            if option.bad:
                continue
            if not (isinstance(option.literal, (int, float)) and option.literal > 0):
                self.diag.error("fps must be a positive number", setting.value.span)
                continue
            if fmt not in ("mp4", "gif"):
                self.diag.error("fps applies to videos only", setting.name_span)
                continue
            options["fps"] = option.literal
        self.spans[f"save:{len(self.graph.outputs)}"] = statement.span  # a failed write points here
        self.graph.outputs.append(g.OutputNode(value=val.arg, path=statement.path, format=fmt, options=options))

    def _check_save_path(self, statement: ast.Save) -> bool:
        """A save path is a name the OS can take, written once, inside the output directory
        (relative, no `..` out of it) unless the runner allows more (`--allow-outside`)."""
        path = statement.path
        problem = save_path_problem(path, self.allow_outside)
        if problem:
            self.diag.error(problem, statement.path_span)
            return False
        key = os.path.normpath(path)
        if key in self._saved:
            self.diag.error(f"'{path}' is written by an earlier save", statement.path_span, ("first written here", self._saved[key]))
            return False
        self._saved[key] = statement.path_span
        return True

    # --- settings -------------------------------------------------------------

    def lower_settings(self, statement: ast.Sample) -> tuple[g.SamplerSettings | None, WrittenSettings]:
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}  # whole settings: `name = value`
        written = WrittenSettings()
        value_spans = written.value_spans
        ok = True
        given = [(None, s) for s in statement.settings] + [
            (target, s) for target, s in self.overrides if target in (None, statement.name)]
        seen_in_program: set[str] = set()
        for target, setting in given:
            if setting.name not in g.SETTING_NAMES:
                hint = g.ENGINE_TO_PROGRAM.get(setting.name)
                hint = f" (programs call it '{hint}')" if hint else did_you_mean(setting.name, g.SETTING_NAMES)
                self.diag.error(f"unknown setting '{setting.name}'{hint}", setting.name_span)
                ok = False
                continue
            from_program = setting in statement.settings
            if from_program and setting.name in seen_in_program:
                first = next(s.name_span for s in statement.settings if s.name == setting.name)
                self.diag.error(f"setting '{setting.name}' is given twice", setting.name_span, ("first given here", first))
                ok = False
                continue
            if from_program:
                seen_in_program.add(setting.name)
            value = self.invert_value(setting.value, written) if setting.name == "invert" else self.setting_value(setting.value)
            if value is _INVALID:
                ok = False
                continue
            if isinstance(value, bool) and not _admits_bool(g.SamplerSettings.model_fields[setting.name].annotation):
                self.diag.error(f"setting '{setting.name}': expected a number or a name, got {'true' if value else 'false'}",
                                setting.value.span)
                ok = False
                continue
            if value is None and g.SamplerSettings.model_fields[setting.name].default is not None:
                value = "none"  # `mcmc = none`: the keyword names the choice "none"
            values[setting.name] = value
            spans[setting.name] = setting.span
            value_spans[setting.name] = setting.value.span
        try:
            settings = g.SamplerSettings(**values) if ok else None
        except ValidationError as e:
            for mistake in explain(e.errors(), values):
                if mistake.setting:
                    self.diag.error(f"setting '{mistake.setting}': {mistake.message}",
                                    value_spans.get(mistake.setting, statement.span))
                else:  # a rule between settings: point at the first it blames that the program wrote
                    named = [g.ENGINE_TO_PROGRAM.get(n, n) for n in mistake.blamed]
                    span = next((spans[n] for n in named if n in spans), statement.span)
                    self.diag.error(mistake.message, span)
            return None, written
        schedule = settings.schedule if settings is not None else None
        if isinstance(schedule, list) and schedule[0] != 1.0 and settings.init != "inversion":
            self.diag.warning(f"the schedule starts at σ = {schedule[0]:g}, not 1: the particles still start from "
                              "σ = 1 noise, so the sampler takes the inexact flow path (start at 1, or use "
                              "init = inversion)", value_spans.get("schedule", statement.span))
        return settings, written

    def invert_value(self, expr: ast.Expr, written: WrittenSettings) -> Any:
        """`invert = bg`: a value (image, video, a vector sample) or a list of numbers, not a constant symbol."""
        val = self.eval(expr)
        if val.bad:
            return _INVALID
        written.invert_type = val.type
        if isinstance(val.type, NoneT):
            return None
        if isinstance(val.arg, g.Ref) and isinstance(val.type, (ImageT, VideoT, ListT)):
            return val.arg
        if isinstance(val.literal, list) and val.literal and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in val.literal):
            return [float(v) for v in val.literal]
        self.diag.error(f"invert takes the image, video or vector to invert, got {_a(val.type)}", expr.span)
        return _INVALID

    def check_settings_for(self, settings: g.SamplerSettings, written: WrittenSettings, domain: Domain,
                           statement: ast.Sample) -> bool:
        """The settings that depend on what is sampled: `path = autoregressive`
        needs a video (and no more frames per chunk than it has), `invert` must
        be the sample's own kind and size."""
        spans = written.value_spans
        ok = True
        if settings.path == "autoregressive":
            span = spans.get("path", statement.span)
            if domain.kind != "video":
                self.diag.error(f"path = autoregressive samples a video frame by frame, but '{statement.name}' is "
                                f"{'an' if domain.kind == 'image' else 'a'} {domain}", span)
                ok = False
            elif domain.shape[0] is not None and settings.chunk > domain.shape[0]:
                self.diag.error(f"chunk = {settings.chunk} is more than the video's {domain.shape[0]} frames",
                                spans.get("chunk", span))
                ok = False
        if settings.invert is not None:
            span = spans.get("invert", statement.span)
            t = written.invert_type
            if isinstance(settings.invert, list):
                if domain.kind != "vector":
                    self.diag.error(f"invert is a vector of {len(settings.invert)} numbers, but '{statement.name}' "
                                    f"is over {domain}", span)
                    ok = False
                elif domain.shape[0] is not None and len(settings.invert) != domain.shape[0]:
                    self.diag.error(f"invert has {len(settings.invert)} numbers, but '{statement.name}' is over {domain}",
                                    span)
                    ok = False
            elif isinstance(t, ImageT) and domain.kind == "image" or isinstance(t, VideoT) and domain.kind == "video":
                dims = (t.h, t.w) if isinstance(t, ImageT) else (t.f, t.h, t.w)
                if not same_dims(dims, domain.shape):
                    what = _hw(dims) if isinstance(t, ImageT) else f"{dims[0] or '?'} frames of {_hw(dims[1:])}"
                    canvas = _hw(domain.shape) if domain.kind == "image" else (
                        f"{domain.shape[0] or '?'} frames of {_hw(domain.shape[1:])}")
                    self.diag.error(f"invert is {what} but the canvas is {canvas}", span)
                    ok = False
            elif not (isinstance(t, ListT) and domain.kind == "vector"):
                self.diag.error(f"cannot invert {_a(t)} into a sample over {domain}", span)
                ok = False
        return ok

    def setting_value(self, expr: ast.Expr) -> Any:
        """Settings are constants; a bare name is a symbol (`mcmc = langevin`)."""
        if isinstance(expr, ast.Name) and expr.id not in self.env:
            return expr.id
        if isinstance(expr, ast.ListExpr):
            items = [self.setting_value(i) for i in expr.items]
            return _INVALID if any(i is _INVALID for i in items) else items
        val = self.eval(expr)
        if val.bad:
            return _INVALID
        if val.literal is None and not isinstance(val.type, NoneT):
            self.diag.error(f"a setting must be a constant, got {_a(val.type)}", expr.span)
            return _INVALID
        if val.unit in ("%", "px", "deg"):
            self.diag.error(f"a setting takes a plain number, not {_describe_val(val)}", expr.span)
            return _INVALID
        return val.literal

    # --- products -------------------------------------------------------------

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
        crop = (round(pixels[3] - pixels[1]), round(pixels[2] - pixels[0]))
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

    # --- expressions ----------------------------------------------------------

    def eval(self, expr: ast.Expr, hint: str | None = None) -> Val:
        method = getattr(self, "eval_" + type(expr).__name__)
        val = method(expr, hint)
        if val.span is None:
            val.span = expr.span
        return val

    def eval_Number(self, expr: ast.Number, hint) -> Val:
        if not math.isfinite(expr.value):
            shown = expr.text if len(expr.text) <= 20 else expr.text[:16] + "..."
            self.diag.error(f"number {shown} is too large", expr.span)
            return BAD
        if expr.unit:
            return Val(NumberT(), g.Quantity(value=expr.value, unit=expr.unit), expr.value, expr.unit)
        if expr.is_int:
            return Val(NumberT(), int(expr.value), int(expr.value), "int")
        return Val(NumberT(), expr.value, expr.value, None)

    def eval_String(self, expr: ast.String, hint) -> Val:
        return Val(TextT(), expr.value, expr.value)

    def eval_Constant(self, expr: ast.Constant, hint) -> Val:
        if expr.value is None:
            return Val(NoneT(), None, None)
        return Val(BoolT(), expr.value, expr.value)

    def eval_ListExpr(self, expr: ast.ListExpr, hint) -> Val:
        items = [self.eval(i) for i in expr.items]
        if any(i.bad for i in items):
            return BAD
        elem: Type = AnyT()
        for item in items:
            if isinstance(elem, AnyT):
                elem = item.type
            elif type(item.type) is not type(elem):
                self.diag.error(f"list items must have one type: {elem} and {item.type}", item.span)
                return BAD
        literal = [i.literal for i in items] if all(i.is_const for i in items) else None
        return Val(ListT(elem), [i.arg for i in items], literal, unit_inside=_unit_inside(items))

    def eval_TupleExpr(self, expr: ast.TupleExpr, hint) -> Val:
        items = [self.eval(i) for i in expr.items]
        if any(i.bad for i in items):
            return BAD
        literal = tuple(i.literal for i in items) if all(i.is_const for i in items) else None
        return Val(TupleT(tuple(i.type for i in items)), [i.arg for i in items], literal, unit_inside=_unit_inside(items))

    def eval_Name(self, expr: ast.Name, hint) -> Val:
        name = expr.id
        if name in self.env:
            symbol = self.env[name]
            symbol.used = True
            if symbol.override is not None:
                self._override_uses[expr.span] = symbol.override
            if symbol.kind == "module":
                self.diag.error(f"'{name}' is an imported module; use {name}.NAME", expr.span)
                return BAD
            return _copy(symbol.val, expr.span, at_use=True)
        spec = self.registry.get(name)
        if spec is not None:
            return self.instantiate_expert(spec, [], expr.span, hint)
        if name in self.registry.builtins or name in SPECIAL_FUNCTIONS:
            self.diag.error(f"'{name}' is a function; call it: {name}(...)", expr.span)
            return BAD
        if self._failed_import:  # perhaps defined in the file that could not be imported: already reported
            return BAD
        meant = closest(name, self._known_names())
        self.diag.error(f"undefined name '{name}'{did_you_mean(name, self._known_names())}", expr.span)
        if meant in self.env:  # the name the program meant is not also "never used"
            self.env[meant].used = True
        return BAD

    def _known_names(self) -> list[str]:
        return [*self.env, *self.registry.names(), *self.registry.builtins, *SPECIAL_FUNCTIONS]

    def eval_Attribute(self, expr: ast.Attribute, hint) -> Val:
        if isinstance(expr.value, ast.Name) and isinstance(self.env.get(expr.value.id, Symbol(BAD, expr.span, "")).val.type, ModuleT):
            self.env[expr.value.id].used = True
            if self.env[expr.value.id].val.bad:  # the module could not be imported: already reported
                return BAD
            qualified = f"{expr.value.id}.{expr.attr}"
            if qualified in self.env:
                return self.eval_Name(ast.Name(expr.span, qualified), hint)
            names = [n.split(".", 1)[1] for n in self.env if n.startswith(expr.value.id + ".")]
            self.diag.error(f"module '{expr.value.id}' has no '{expr.attr}'{did_you_mean(expr.attr, names)}", expr.span)
            return BAD
        value = self.eval(expr.value)
        if value.bad:
            return BAD
        if isinstance(value.type, SimulationT):
            rule = SIMULATION_ATTRIBUTES.get(expr.attr)
            if rule is None:
                self.diag.error(f"a simulation has no '{expr.attr}'{did_you_mean(expr.attr, SIMULATION_ATTRIBUTES)}; "
                                f"it has {', '.join(SIMULATION_ATTRIBUTES)}", expr.span)
                return BAD
            return self._value_node(expr.attr, {"of": value.arg}, rule(value.type), hint)
        self.diag.error(f"{_a(value.type)} has no attribute '{expr.attr}'", expr.span)
        return BAD

    def eval_Subscript(self, expr: ast.Subscript, hint) -> Val:
        value = self.eval(expr.value)
        index = self.eval(expr.index)
        if value.bad or index.bad:
            return BAD
        if value.product is not None:
            if not isinstance(index.type, (RegionT, MaskT, AnyT)):
                self.diag.error(f"an expert is restricted to a Region or a Mask, not {_a(index.type)}", expr.index.span)
                return BAD
            kind = "box" if isinstance(index.type, RegionT) else "mask"
            factors = []
            for f in value.product.factors:
                if f.factor.region is not None:
                    self.diag.error(f"'{f.factor.expert}' is already restricted to a region", expr.span)
                    return BAD
                region_literal = self._box_literal(index)
                factors.append(FactorVal(f.factor.model_copy(update={"region": index.arg, "region_kind": kind}),
                                         f.domain, expr.span, region_literal))
            return Val(value.type, value.arg, product=ProductVal(factors, list(value.product.rewards)))
        if isinstance(value.type, (VideoT, MaskT, DepthT)) and getattr(value.type, "f", None) is not False:
            return self.call_builtin(self.registry.builtins["frame"], [ast.Arg(expr.value.span, None, expr.value),
                                                        ast.Arg(expr.index.span, None, expr.index)], expr.span, hint)
        self.diag.error(f"{_a(value.type)} cannot be indexed", expr.span)
        return BAD

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
            self.diag.error(f"cannot negate {_a(t)}{hint}", expr.span)
            return BAD
        if isinstance(t, MaskT):
            return self._value_node("complement", {"mask": operand.arg}, t, hint)
        self.diag.error(f"'!' takes a Mask, not {_a(t)}", expr.span)
        return BAD

    def eval_BinOp(self, expr: ast.BinOp, hint) -> Val:
        left = self.eval(expr.left)
        right = self.eval(expr.right)
        if left.bad or right.bad:
            return BAD
        op = expr.op
        lt, rt = left.type, right.type
        if isinstance(lt, NumberT) and isinstance(rt, NumberT) and op in "+-*/^":
            return self._arithmetic(op, left, right, expr)
        if op in ("|", "&"):
            if isinstance(lt, MaskT) and isinstance(rt, MaskT):
                if not same_dims((lt.h, lt.w), (rt.h, rt.w)):
                    self.diag.error(f"masks of different sizes: {_hw((lt.h, lt.w))} and {_hw((rt.h, rt.w))}", expr.span)
                    return BAD
                return self._value_node("union" if op == "|" else "intersect", {"a": left.arg, "b": right.arg},
                                        MaskT(lt.h or rt.h, lt.w or rt.w, lt.f or rt.f), hint)
            hint_text = "; make a box a mask with box_mask(box, size=(h, w))" if RegionT() in (lt, rt) else ""
            self.diag.error(f"'{op}' combines masks, not {lt} and {rt}{hint_text}", expr.span)
            return BAD
        if op == "*":
            return self._multiply(left, right, expr)
        if op == "/":
            if left.rewards is not None and isinstance(rt, NumberT) and right.is_const and right.literal != 0:
                return Val(lt, rewards=[(e, w / right.literal) for e, w in left.rewards])
            self.diag.error(f"cannot divide {_a(lt)} by {_a(rt)}", expr.span)
            return BAD
        if op in "+-":
            if left.rewards is not None and right.rewards is not None:
                sign = 1.0 if op == "+" else -1.0
                return Val(lt, rewards=left.rewards + [(e, sign * w) for e, w in right.rewards])
            if left.rewards is not None or right.rewards is not None:
                self.diag.error("adding a constant to a reward does not change the distribution", expr.span)
                return BAD
            self.diag.error(f"cannot {'add' if op == '+' else 'subtract'} {_a(lt)} and {_a(rt)}", expr.span)
            return BAD
        if op == "^":
            if not (isinstance(rt, NumberT) and right.is_const and right.unit in (None, "int")):
                self.diag.error(f"an exponent must be a number, got {_a(rt)}", expr.right.span)
                return BAD
            if left.product is not None:
                if right.literal <= 0:
                    self.diag.error("an expert's exponent (temperature) must be positive", expr.right.span)
                    return BAD
                factors = [FactorVal(f.factor.model_copy(update={"exponent": f.factor.exponent * right.literal}),
                                     f.domain, f.span, f.region_literal) for f in left.product.factors]
                rewards = [(r.model_copy(update={"weight": r.weight * right.literal}), s) for r, s in left.product.rewards]
                return Val(lt, left.arg, product=ProductVal(factors, rewards))
            self.diag.error(f"cannot raise {_a(lt)} to a power", expr.span)
            return BAD
        if op == "given":
            return self._given(left, right, expr)
        raise AssertionError(op)

    def _arithmetic(self, op: str, left: Val, right: Val, expr: ast.BinOp) -> Val:
        if not (left.is_const and right.is_const):
            return Val(NumberT())
        if {left.unit, right.unit} - {None, "int"}:
            self.diag.error("arithmetic on numbers with units (%, px, deg) is not supported", expr.span)
            return BAD
        a, b = left.literal, right.literal
        too_large = "arithmetic error: the result is too large"
        if op == "^" and isinstance(b, (int, float)) and b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > 1100:
            self.diag.error(too_large, expr.span)  # before Python spends minutes on a huge integer
            return BAD
        try:
            value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "^": lambda: a ** b}[op]()
        except OverflowError:
            self.diag.error(too_large, expr.span)
            return BAD
        except (ZeroDivisionError, ValueError) as e:
            self.diag.error(f"arithmetic error: {e}", expr.span)
            return BAD
        if isinstance(value, complex):
            self.diag.error("arithmetic error: complex result", expr.span)
            return BAD
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            self.diag.error(too_large, expr.span)
            return BAD
        unit = "int" if left.unit == right.unit == "int" and op in "+-*" else None
        return Val(NumberT(), value, value, unit)

    def _multiply(self, left: Val, right: Val, expr: ast.BinOp) -> Val:
        for number, other in ((left, right), (right, left)):
            if isinstance(number.type, NumberT):
                if other.rewards is not None and number.is_const:
                    return Val(other.type, rewards=[(e, w * number.literal) for e, w in other.rewards])
                if other.product is not None:
                    self.diag.error(
                        f"a constant factor does not change a distribution; for a temperature write expert^{_num(number.literal)}",
                        expr.span)
                    return BAD
        for side in (left, right):
            if side.rewards is not None:
                self.diag.error("a reward is a factor only as exp(reward)", side.span)
                return BAD
        if left.product is not None and right.product is not None:
            product = ProductVal(left.product.factors + right.product.factors, left.product.rewards + right.product.rewards)
            seen: dict[str, Span] = {}
            for f in product.factors:
                if f.factor.expert in seen:
                    self.diag.error(f"'{f.factor.expert}' appears twice in the product; use {f.factor.expert}^2 for its square",
                                    f.span)
                    return BAD
                seen[f.factor.expert] = f.span
            return Val(ProductT(None), product=product)
        masks = isinstance(left.type, MaskT) and isinstance(right.type, MaskT)
        self.diag.error(f"cannot multiply {_a(left.type)} and {_a(right.type)}" + ("; intersect masks with '&'" if masks else ""),
                        expr.span)
        return BAD

    def _given(self, child: Val, parent: Val, expr: ast.BinOp) -> Val:
        if child.product is None or not child.product.factors:
            what = "a reward" if child.rewards is not None or child.product is not None else _a(child.type)
            self.diag.error(f"'given' conditions a generative expert, not {what}", expr.left.span)
            return BAD
        if parent.product is None or not parent.product.factors or parent.product.rewards:
            what = "a reward" if parent.rewards is not None or (parent.product and parent.product.rewards) else f"{_a(parent.type)}"
            self.diag.error(f"an expert is conditioned on a generative expert, not {what}", expr.right.span)
            return BAD
        parents = [f.factor.expert for f in parent.product.factors]
        factors = [FactorVal(f.factor.model_copy(update={"parents": f.factor.parents + parents}), f.domain, expr.span,
                             f.region_literal) for f in child.product.factors]
        return Val(child.type, child.arg, product=ProductVal(factors, list(child.product.rewards)))

    def eval_Call(self, expr: ast.Call, hint) -> Val:
        func = expr.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and isinstance(
                self.env.get(func.value.id, Symbol(BAD, expr.span, "")).val.type, ModuleT):
            self.diag.error("calling a module's binding is not supported; bind the call in that module", func.span)
            return BAD
        if not isinstance(func, ast.Name):
            self.diag.error("only functions and experts can be called", func.span)
            return BAD
        name = func.id
        if name in self.env:
            symbol = self.env[name]
            symbol.used = True
            self.diag.error(f"'{name}' is a {symbol.val.type}, not a function", func.span)
            return BAD
        if name == "exp":
            return self.call_exp(expr)
        if name in self.registry.builtins:
            return self.call_builtin(self.registry.builtins[name], expr.args, expr.span, hint)
        spec = self.registry.get(name)
        if spec is not None:
            return self.instantiate_expert(spec, expr.args, expr.span, hint)
        self.diag.error(f"unknown function or expert '{name}'{did_you_mean(name, self._known_names())}", func.span)
        return BAD

    def call_exp(self, expr: ast.Call) -> Val:
        if len(expr.args) != 1 or expr.args[0].name is not None:
            self.diag.error("exp takes one reward: exp(reward)", expr.span)
            return BAD
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

    # --- calls ----------------------------------------------------------------

    def bind(self, name: str, params: tuple[Param, ...], args: list[ast.Arg], span: Span) -> tuple[dict[str, Val], dict[str, Span], bool]:
        """Match arguments to parameters; report unknown, duplicate, missing and ill-typed ones."""
        by_name = {p.name: p for p in params}
        bound: dict[str, Val] = {}
        spans: dict[str, Span] = {}
        ok = True
        positional_done = False
        for i, arg in enumerate(args):
            if arg.name is None:
                if positional_done:
                    self.diag.error("a positional argument cannot follow a named one", arg.span)
                    ok = False
                    continue
                if i >= len(params):
                    self.diag.error(f"{name}() takes at most {len(params)} positional argument{'s' * (len(params) != 1)}", arg.span)
                    ok = False
                    continue
                param = params[i]
            else:
                positional_done = True
                if arg.name == "trust_remote_code" and arg.name not in by_name:
                    self.diag.error("a program cannot let a model run its own code: that is the decision of whoever "
                                    "runs it (poelang run --trust-remote-code, Program.run(trust_remote_code=True))",
                                    _name_span(arg))
                    ok = False
                    continue
                if arg.name not in by_name:
                    self.diag.error(f"{name}() has no argument '{arg.name}'{did_you_mean(arg.name, by_name)}", _name_span(arg))
                    ok = False
                    continue
                param = by_name[arg.name]
            if param.name in bound:
                self.diag.error(f"argument '{param.name}' of {name}() is given twice", _name_span(arg) if arg.name else arg.span)
                ok = False
                continue
            val = self.eval(arg.value)
            if val.bad:
                ok = False
                continue
            if not param.parsed.accepts(val.type, val.unit):
                self.diag.error(f"argument '{param.name}' of {name}() expects {param.parsed.describe()}, got {_describe_val(val)}",
                                arg.value.span)
                ok = False
                continue
            if _is_size(param.type) and isinstance(val.literal, tuple) and not all(
                    isinstance(v, (int, float)) and v > 0 and float(v).is_integer() for v in val.literal):
                shown = "(" + ", ".join(_num(v) for v in val.literal) + ")"
                self.diag.error(f"argument '{param.name}' of {name}() must be a size (h, w) in whole pixels above 0, got {shown}",
                                arg.value.span)
                ok = False
                continue
            if _is_size(param.type) and isinstance(val.literal, tuple) and any(v > MAX_SIDE for v in val.literal):
                shown = "(" + ", ".join(_num(v) for v in val.literal) + ")"
                self.diag.error(f"argument '{param.name}' of {name}() is {shown}: at most {MAX_SIDE} pixels per side",
                                arg.value.span)
                ok = False
                continue
            problem = _vector_problem(param.type, val)
            if problem:
                self.diag.error(f"argument '{param.name}' of {name}(): {problem}", arg.value.span)
                ok = False
                continue
            bound[param.name] = val
            spans[param.name] = arg.value.span
        for param in params:
            if param.name not in bound and param.required and ok:  # after other errors, likely a cascade
                self.diag.error(f"{name}() is missing argument '{param.name}' ({param.type})", span)
                ok = False
        return bound, spans, ok

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
                self.diag.error(f"cannot read {info.values['path']}: {problem}", spans["path"])
                return BAD
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
                    self.diag.error(f"argument '{name}' is {_hw(size)} but {spec.name}'s canvas is {_hw(domain.shape[-2:])}",
                                    spans[name])
                    return BAD
        node_id = self._new_id(spec.name, hint)
        self.graph.experts.append(g.ExpertNode(id=node_id, expert=spec.name, kind=spec.kind, args=graph_args,
                                               domain=_graph_domain(domain) if domain else None))
        self.spans[node_id] = span
        if spec.kind == "reward":
            return Val(RewardT(spec.scores), g.Ref(ref=node_id), rewards=[(node_id, 1.0)])
        factor = FactorVal(g.Factor(expert=node_id), domain, span)
        return Val(ExpertT(domain, spec.kind), g.Ref(ref=node_id), product=ProductVal([factor]))

    # --- helpers --------------------------------------------------------------

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

    def _check_new_name(self, name: str, span: Span) -> bool:
        if name in self.env:
            previous = self.env[name].span
            self.diag.error(f"'{name}' is already defined", span, ("first defined here", previous), code=ALREADY_DEFINED)
            self.env[name].used = True  # the statement that redefines it is not lowered: no "never used" as well
            return False
        return True

    def _define(self, name: str, symbol: Symbol) -> None:
        self.env[name] = symbol


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


def save_path_problem(path: str, allow_outside: bool = False) -> str | None:
    """Why `path` cannot be a save path (a message), or None. Save paths resolve against the
    output directory; leaving it (an absolute path, `..` above it) needs the runner's consent."""
    if not path:
        return "empty save path"
    if "\x00" in path:
        return "a path cannot contain a NUL character"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "a path cannot contain a lone surrogate code point"
    if allow_outside:
        return None
    if os.path.isabs(path):
        return (f"'{path}' is an absolute path: save paths are relative to the output directory (poelang run -o DIR); "
                "the runner can allow other places with --allow-outside")
    if os.path.normpath(path).split(os.sep)[0] == "..":
        return (f"'{path}' leaves the output directory (poelang run -o DIR); "
                "the runner can allow it with --allow-outside")
    return None


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


def _a(t: Any) -> str:
    """A type with its article: 'a Number', 'an Image[64,64]'."""
    text = str(t)
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def _hw(size) -> str:
    h, w = size
    return f"{'?' if h is None else h}×{'?' if w is None else w}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "2"


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


def _shown(val: Val) -> str:
    """A constant as the program writes it: 30, 12px, "two cats", [1, 2]."""
    if isinstance(val.type, (NumberT, TextT)):
        return _describe_val(val)
    return source_text(val.literal)


def _describe_param(default: Val) -> str:
    def kind(arg: g.ArgValue, t: Type) -> str:
        if isinstance(arg, bool):
            return "true or false"
        if isinstance(arg, int):
            return "an integer"
        if isinstance(arg, float):
            return "a number"
        if isinstance(arg, g.Quantity):
            return "an angle (deg)" if arg.unit == "deg" else "a length (px or %)"
        if isinstance(arg, str):
            return "a string"
        if isinstance(t, TupleT):
            return f"a tuple of {len(arg)}"
        return "a list"

    return kind(default.arg, default.type)


def _describe_val(val: Val) -> str:
    if isinstance(val.type, NumberT) and val.is_const:
        return f"{val.literal:g}{val.unit if val.unit in ('%', 'px', 'deg') else ''}"
    if isinstance(val.type, TextT) and val.is_const:
        return f'"{val.literal}"'
    return str(val.type)


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or bool in typing.get_args(annotation)


def _graph_domain(domain: Domain) -> g.Domain:
    return g.Domain(kind=domain.kind, shape=list(domain.shape))
