"""Statements: a module's bindings, imports, samples and saves, and the end-of-program checks."""
from __future__ import annotations

import os
from pathlib import Path

from poelang import graph as g
from poelang.diagnostics import UNUSED, Diagnostic, Span, did_you_mean
from poelang.lower.messages import _a
from poelang.lower.products import _graph_domain
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, Symbol, Val
from poelang.syntax import ast
from poelang.types import ImageT, MaskT, ModuleT, SimulationT, TraceT, VideoT, DepthT


class Statements(LoweringState):
    """Statements: a part of :class:`poelang.lower.Lowerer`."""

    def lower_module(self, module: ast.Module, base_dir: Path, is_import: bool = False) -> None:
        """Every statement in order; an imported file's (``is_import``) contribute bindings only: a `param` there
        is an error, its samples and saves a warning."""
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
        """The end-of-program checks (unused bindings, overrides and parameters that name nothing; errors at an
        overridden parameter's uses moved to the override), then the graph."""
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
        """`import "f.poe" [as m]`: the file (already read, see poelang.imports) lowered once per prefix, its
        bindings named ``m.name`` (or as they are, without an alias)."""
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
        """`name = value`: a new binding, an expert, a constant or a value by what the value is."""
        name = self._prefix + statement.name
        if self._check_new_name(name, statement.name_span):
            val = self.eval(statement.value, hint=name)
            kind = "expert" if val.product is not None or val.rewards is not None else (
                "constant" if val.is_const or isinstance(val.arg, (int, float, str, bool, g.Quantity)) else "value")
            self._define(name, Symbol(val, statement.name_span, kind, used=self._depth > 0))  # bindings of imported files may go unused

    def lower_sample(self, statement: ast.Sample) -> None:
        """`name ~ product with { settings }`: the product checked, its canvas found, the settings checked
        against it; a sample node added (a poisoned binding after an error, so uses are not reported again)."""
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
        if settings is not None and product is not None and not self.check_settings_for_factors(
                settings, written, [f.factor for f in product.factors], statement):
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
        for setting, span in written.value_spans.items():  # a run that diverges blames the setting where it was set
            self.spans[f"{name}:{setting}"] = span
        self._define(name, Symbol(Val(domain.value_type(), g.Ref(ref=name)), statement.name_span, "sample", used=True))

    def lower_save(self, statement: ast.Save) -> None:
        """`save value to "path" with { fps = … }`: the format from the suffix, a path inside the output
        directory, a value that format can hold; an output node added."""
        val = self.eval(statement.value)
        fmt = self._save_format(statement, val)  # the path is checked even when the value had an error
        if fmt is None or not self._check_save_path(statement) or val.bad:
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
        options = self._save_options(statement, fmt)
        self.spans[f"save:{len(self.graph.outputs)}"] = statement.span  # a failed write points here
        self.graph.outputs.append(g.OutputNode(value=val.arg, path=statement.path, format=fmt, options=options))

    def _save_format(self, statement: ast.Save, val: Val) -> str | None:
        """The output format the path's suffix names ("trace": a folder, for a trace), or None after an error."""
        suffix = Path(statement.path).suffix.lower()
        is_trace = isinstance(val.type, TraceT) or (
            val.bad and isinstance(statement.value, ast.Call) and isinstance(statement.value.func, ast.Name)
            and statement.value.func.id == "trace")
        if is_trace:
            if suffix:
                self.diag.error("a trace is saved to a directory: drop the file extension", statement.path_span)
                return None
            return "trace"
        if suffix in g.FILE_FORMATS:
            return g.FILE_FORMATS[suffix]
        known = ", ".join(sorted(g.FILE_FORMATS))
        what = f"unknown output format '{suffix}'" if suffix else f"no file extension in '{statement.path}' to tell the format"
        self.diag.error(f"{what}; use one of {known}", statement.path_span)
        return None

    def _save_options(self, statement: ast.Save, fmt: str) -> dict[str, g.ArgValue]:
        """The `with { ... }` of a save: only `fps`, a positive number, for videos; mistakes reported and left out."""
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
        return options

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
