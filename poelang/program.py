"""Programs: parse, lower and check a `.poe` file into an expert graph.

    >>> import poelang
    >>> program = poelang.parse('x ~ gaussian(mean=[0.0, 1.0]) with { particles = 8 }')
    >>> program.ok, program.graph.samples[0].settings.particles
    (True, 8)
"""
from __future__ import annotations


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from poelang.diagnostics import Diagnostic, DiagnosticBag, PoeError, SourceMap, Span
from poelang.experts.registry import Registry, default_registry
from poelang.graph import Graph
from poelang.lower import Lowerer, Symbol
from poelang.params import ParamOverride, as_overrides
from poelang.results import LevelCallback, RunResult
from poelang.imports import resolve_imports
from poelang.syntax import ast
from poelang.syntax.parser import parse_module


@dataclass
class Program:
    """A checked program: its graph (when there are no errors) and its diagnostics.

    Made by :func:`parse`, :func:`load` or :meth:`poelang.build.ProgramBuilder.compile`; a Program is a
    value (checking again with other settings or parameters makes a new one, :meth:`with_settings`).

    ``file``, ``source``: where the text came from, and the text; ``module``: its AST (None when it
    could not be parsed); ``graph``: the typed expert graph, None when there are errors;
    ``diagnostics``: errors and warnings in source order, rendered against ``sources`` (the program's
    text and every imported file's); ``spans``: where each graph node was written; ``base_dir``: the
    folder the program's inputs are read from; ``symbols``: the names it binds.
    """

    file: str
    source: str
    module: ast.Module | None
    graph: Graph | None
    diagnostics: list[Diagnostic]
    sources: SourceMap
    spans: dict[str, Span] = field(default_factory=dict)
    base_dir: Path = Path(".")
    symbols: dict[str, Symbol] = field(default_factory=dict)  # the names the program binds (``m.name`` for imports)
    allow_outside: bool = False  # compiled with saves allowed outside the output directory

    @property
    def ok(self) -> bool:
        """True when the program has a graph and no error (warnings allowed): it can run."""
        return self.graph is not None and not any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        """The diagnostics that are errors, without the warnings."""
        return [d for d in self.diagnostics if d.severity == "error"]

    def render_diagnostics(self, color: bool = False) -> str:
        """Every diagnostic as the command line prints it: ``file:line:col: error: …``, the line, a caret
        (ANSI colours with ``color=True``); an empty string when there are none."""
        return "\n".join(d.render(self.sources, color) for d in self.diagnostics)

    def raise_for_errors(self) -> "Program":
        """The program itself when it is ok (so that calls chain: ``poelang.load(p).raise_for_errors().run()``);
        otherwise raises :class:`~poelang.diagnostics.PoeError`, whose ``str`` is the rendered errors."""
        if not self.ok:
            raise PoeError(self.errors, self.sources)
        return self

    def run(self, *, seed: int | None = None, device: str = "cpu", trace_dir: str | None = None,
            callback: LevelCallback | None = None, decode_x0_hat: bool = False, write: bool = False,
            params: Mapping[str, Any] | None = None, out_dir: str | Path = ".", trust_remote_code: bool = False,
            **overrides: Any) -> RunResult:
        """Sample every `~` statement; keyword arguments override settings (`particles=8`),
        `params` the program's parameters (`params={"prompt": "three dogs"}`).

        Returns a :class:`~poelang.results.RunResult`: ``result["x"]`` is the
        engine's Result of sample x, ``result.images("x")`` its PIL images. The
        program's `save` statements are carried out only with `write=True` (the
        command line always writes), into `out_dir`. ``callback(sample, info)`` is called after
        every level (returning False stops that sample there); with
        ``decode_x0_hat=True`` its ``info.x0_hat`` is in pixels even for
        experts that sample in a codec's latent space. See docs/python-api.md.
        ``trust_remote_code=True`` lets a model folder run its own Python code
        (transformers' ``trust_remote_code``): the runner's decision, never the program's.
        """
        from poelang.interpreter import run_program

        program = self
        if overrides or seed is not None or params:
            program = self.with_settings(params=params, **overrides, **({} if seed is None else {"seed": seed}))
        program.raise_for_errors()
        return run_program(program, device=device, trace_dir=trace_dir, callback=callback, write=write,
                           decode_x0_hat=decode_x0_hat, out_dir=out_dir, trust_remote_code=trust_remote_code)

    def with_settings(self, params: Mapping[str, Any] | Sequence[ParamOverride] | None = None,
                      typed: Mapping[str, str] | None = None, **overrides: Any) -> "Program":
        """The program checked again with settings overridden (`particles=8`, or `typed` as source text, as
        `--set` and the REPL's `:run` take them: `{"particles": "8"}`) and parameters set (`params`)."""
        settings = {**{k: _python_to_source(v) for k, v in overrides.items()}, **(typed or {})}
        return compile_source(self.source, self.file, base_dir=self.base_dir, overrides=settings, params=params,
                              allow_outside=self.allow_outside)


def _python_to_source(value: Any) -> str:
    """A setting's Python value as source: a name stays a name (`mcmc="langevin"`), a tuple is a list
    (`schedule=(1.0, 0.0)`); the rest as for parameters (:func:`poelang.params.python_to_source`)."""
    from poelang.params import python_to_source

    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_python_to_source(v) for v in value) + "]"
    if isinstance(value, str) and value.isidentifier():
        return value
    return python_to_source(value)


def parse_overrides(overrides: Mapping[str, str], diagnostics: DiagnosticBag, sources: SourceMap) -> list[tuple[str | None, ast.Setting]]:
    """`key=value` pairs from the command line or Python, as settings. `x.key` targets sample x."""
    parsed: list[tuple[str | None, ast.Setting]] = []
    for key, text in overrides.items():
        target, dot, name = key.rpartition(".")
        line = f"{name} = {text}"  # read as a binding, shown as it was typed
        where = f"<--set {key}>"
        sources.add(where, line)
        if dot and not target:
            diagnostics.error(f"--set {key}: a sample's name goes before the dot (x.{name}); without one the setting "
                              f"is every sample's ({name})", Span(where, 1, 1, 1, len(name) + 1))
            continue
        module, errors = parse_module(line, where)
        if errors or module is None or len(module.statements) != 1 or not isinstance(module.statements[0], ast.Let):
            diagnostics.extend(errors) if errors else diagnostics.error(
                f"cannot read --set {key}={text}: expected key=value", Span(where, 1, 1, 1, len(line) + 1))
            continue
        let = module.statements[0]
        parsed.append((target or None, ast.Setting(let.span, let.name, let.name_span, let.value)))
    return parsed


def compile_module(module: ast.Module | None, parse_errors: list[Diagnostic], source: str, file: str, *,
                   base_dir: Path, registry: Registry | None = None,
                   overrides: Mapping[str, str] | None = None,
                   params: Mapping[str, Any] | Sequence[ParamOverride] | None = None,
                   settings: Sequence[tuple[str | None, ast.Setting]] = (), allow_outside: bool = False) -> Program:
    """Lower an already parsed module (from text, or built from Python) into a Program.

    `overrides` are settings as typed (`--set`), `settings` settings already read
    (a sweep table's cells, `(sample or None, setting)`); `params` the parameters'
    values, as Python values by name or as overrides read from a command line or a table;
    `allow_outside`: saves may leave the output directory.
    """
    sources = SourceMap()
    sources.add(file, source)
    bag = DiagnosticBag()
    bag.extend(parse_errors)
    graph = None
    spans: dict[str, Span] = {}
    symbols: dict[str, Symbol] = {}
    if module is not None:
        settings = parse_overrides(overrides or {}, bag, sources) + list(settings)
        param_overrides = as_overrides(params)
        for override in param_overrides:
            if override.source is not None and override.source[0] not in sources:
                sources.add(*override.source)
        imports = resolve_imports(module, Path(file), base_dir, sources, bag)
        lowerer = Lowerer(registry or default_registry(), sources, bag, settings, param_overrides, imports,
                          allow_outside=allow_outside)
        lowerer.lower_module(module, base_dir)
        graph = lowerer.finish()
        spans = lowerer.spans
        symbols = dict(lowerer.env)
    if bag.has_errors:
        graph = None
    return Program(file, source, module, graph, bag.sorted(), sources, spans, base_dir, symbols)


def compile_source(source: str, file: str = "<string>", *, base_dir: Path | str | None = None,
                   registry: Registry | None = None, overrides: Mapping[str, str] | None = None,
                   params: Mapping[str, Any] | Sequence[ParamOverride] | None = None,
                   settings: Sequence[tuple[str | None, ast.Setting]] = (), allow_outside: bool = False) -> Program:
    """Parse, lower and check program text. `allow_outside`: saves may leave the output directory."""
    module, errors = parse_module(source, file)
    base = Path(base_dir) if base_dir is not None else Path(".")
    program = compile_module(module, errors, source, file, base_dir=base, registry=registry, overrides=overrides,
                             params=params, settings=settings, allow_outside=allow_outside)
    program.allow_outside = allow_outside
    return program


def parse(source: str, file: str = "<string>", **kwargs: Any) -> Program:
    """Check program text; relative paths in it are read from the current directory.

    Never raises for a mistake in the program: the returned :class:`Program` carries the diagnostics
    (``program.ok``, ``program.render_diagnostics()``). ``file`` is the name diagnostics show. Keyword
    arguments: ``base_dir`` (the folder inputs are read from), ``overrides`` (settings as
    ``poelang run --set`` takes them: ``{"particles": "8", "x.seed": "3"}``), ``params`` (the program's
    ``param`` values, ``{"prompt": "three dogs"}``), ``allow_outside`` (saves may leave the output
    directory), ``registry`` (experts other than the installed ones).
    """
    if not isinstance(source, str):
        raise TypeError(f"poelang.parse takes a program's text (a str), not {type(source).__name__}; "
                        "poelang.load reads a file")
    return compile_source(source, file, **kwargs)


def load(path: str | Path, **kwargs: Any) -> Program:
    """Read and check a `.poe` file.

    Paths the program reads (``load_image``, ``load_video``, ``mesh``,
    ``import``) are relative to the file's folder. The paths of its ``save``
    statements are relative to the output directory, ``Program.run(out_dir=…)``
    (``poelang run -o DIR``; default: the current directory), and must stay
    inside it unless ``allow_outside=True`` (``--allow-outside``).

    A file that cannot be read is a diagnostic too, as for :func:`parse` (whose
    keyword arguments, but ``base_dir``, this takes).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        bag = DiagnosticBag()
        bag.error(f"cannot read file: {e.strerror if isinstance(e, OSError) else e}", Span(str(path), 0, 0, 0, 0))
        return Program(str(path), "", None, None, bag.items, SourceMap())
    return compile_source(text, str(path), base_dir=path.parent, **kwargs)
