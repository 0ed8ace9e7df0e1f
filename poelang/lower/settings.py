"""A sample's `with { ... }` settings: checked by the engine's one schema, then against what is sampled."""
from __future__ import annotations

import typing
from typing import Any

from pydantic import ValidationError

from poelang import graph as g
from poelang.diagnostics import Span, did_you_mean
from poelang.infer.setting_messages import explain
from poelang.lower.messages import _a, _describe_val, _hw
from poelang.lower.state import LoweringState
from poelang.lower.values import WrittenSettings, _INVALID
from poelang.syntax import ast
from poelang.types import Domain, ImageT, ListT, NoneT, VideoT, same_dims


class SettingsLowering(LoweringState):
    """A sample's `with { ... }` settings: a part of :class:`poelang.lower.Lowerer`."""

    def lower_settings(self, statement: ast.Sample) -> tuple[g.SamplerSettings | None, WrittenSettings]:
        """A sample's settings, from its `with { ... }` and the `--set` overrides that target it (or every sample),
        validated by the one schema; None after an error. ``WrittenSettings`` keeps where each value was written."""
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}  # whole settings: `name = value`
        written = WrittenSettings()
        ok = True
        given = [(None, s) for s in statement.settings] + [
            (target, s) for target, s in self.overrides if target in (None, statement.name)]
        seen_in_program: set[str] = set()
        for _, setting in given:
            value = self._setting_entry(setting, statement, seen_in_program, written)
            if value is _INVALID:
                ok = False
                continue
            values[setting.name] = value
            spans[setting.name] = setting.span
            written.value_spans[setting.name] = setting.value.span
        try:
            settings = g.SamplerSettings(**values) if ok else None
        except ValidationError as e:
            self._report_invalid(e, values, spans, written.value_spans, statement)
            return None, written
        self._warn_ignored(settings, values, written.value_spans)
        schedule = settings.schedule if settings is not None else None
        if isinstance(schedule, list) and schedule[0] != 1.0 and settings.init != "inversion":
            self.diag.warning(f"the schedule starts at σ = {schedule[0]:g}, not 1: the particles still start from "
                              "σ = 1 noise, so the sampler takes the inexact flow path (start at 1, or use "
                              "init = inversion)", written.value_spans.get("schedule", statement.span))
        return settings, written

    def _setting_entry(self, setting: ast.Setting, statement: ast.Sample, seen_in_program: set[str],
                       written: WrittenSettings) -> Any:
        """One `name = value` of a sample's settings as the schema takes it, or _INVALID after reporting why not
        (an unknown name, a name given twice in the program, a value of the wrong kind)."""
        if setting.name not in g.SETTING_NAMES:
            hint = g.ENGINE_TO_PROGRAM.get(setting.name)
            hint = f" (programs call it '{hint}')" if hint else did_you_mean(setting.name, g.SETTING_NAMES)
            self.diag.error(f"unknown setting '{setting.name}'{hint}", setting.name_span)
            return _INVALID
        from_program = setting in statement.settings
        if from_program and setting.name in seen_in_program:
            first = next(s.name_span for s in statement.settings if s.name == setting.name)
            self.diag.error(f"setting '{setting.name}' is given twice", setting.name_span, ("first given here", first))
            return _INVALID
        if from_program:
            seen_in_program.add(setting.name)
        value = self.invert_value(setting.value, written) if setting.name == "invert" else self.setting_value(setting.value)
        if value is _INVALID:
            return _INVALID
        if isinstance(value, bool) and not _admits_bool(g.SamplerSettings.model_fields[setting.name].annotation):
            self.diag.error(f"setting '{setting.name}': expected a number or a name, got {'true' if value else 'false'}",
                            setting.value.span)
            return _INVALID
        if value is None and g.SamplerSettings.model_fields[setting.name].default is not None:
            return "none"  # `mcmc = none`: the keyword names the choice "none"
        return value

    def _report_invalid(self, error: ValidationError, values: dict[str, Any], spans: dict[str, Span],
                        value_spans: dict[str, Span], statement: ast.Sample) -> None:
        """The schema's objections, each at the value it is about; a rule between settings at the first
        setting it blames that the program wrote."""
        for mistake in explain(error.errors(), values):
            if mistake.setting:
                self.diag.error(f"setting '{mistake.setting}': {mistake.message}",
                                value_spans.get(mistake.setting, statement.span))
            else:
                named = [g.ENGINE_TO_PROGRAM.get(n, n) for n in mistake.blamed]
                span = next((spans[n] for n in named if n in spans), statement.span)
                self.diag.error(mistake.message, span)

    def _warn_ignored(self, settings: g.SamplerSettings | None, written: dict[str, Any], spans: dict[str, Span]) -> None:
        """A written setting that has no effect with the others (the engine's :func:`ignored_settings`)."""
        from poelang.infer.settings import ignored_settings

        if settings is None:
            return
        for engine_name, why in ignored_settings(settings.engine_view()):
            name = g.ENGINE_TO_PROGRAM.get(engine_name, engine_name)
            if name in written and name in spans:
                self.diag.warning(f"{name} has no effect here: {why}", spans[name])

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

    def check_settings_for_factors(self, settings: g.SamplerSettings, written: WrittenSettings,
                                   factors: list[g.Factor], statement: ast.Sample) -> bool:
        """The settings that depend on the product's factors, worded as the engine words them: simulator
        updates need a simulator factor; exact annealing cannot have conditional updates."""
        spans = written.value_spans
        if settings.sim_updates > 0 and not any(
                getattr(self.graph.node(f.expert), "kind", None) == "simulator" for f in factors):
            self.diag.error(f"sim_updates={settings.sim_updates} takes gradient steps on the simulator experts, but no "
                            "factor of the product is a simulator", spans.get("sim_updates", statement.span))
            return False
        if settings.annealing == "ais" and settings.cond_updates > 0 and any(f.parents for f in factors):
            self.diag.error("annealing='ais' is not possible: conditional (Eq. 7) updates are on (a `given` factor); "
                            "use cond_updates = 0 or annealing = flow", spans.get("annealing", statement.span))
            return False
        return True

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



def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or bool in typing.get_args(annotation)
