"""Imports resolved before lowering: every file a program imports, read and parsed once, cycles found.

:func:`resolve_imports` walks the import statements depth first from the main
module, reads each file once (its text goes into the program's source map, its
syntax errors into the diagnostics), and reports what cannot be imported at the
``import`` statement: a missing or unreadable file, a cycle. Lowering then does
no I/O: it asks :class:`Imports` for the module a statement names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from poelang.builtins import input_file_problem
from poelang.diagnostics import DiagnosticBag, SourceMap, Span
from poelang.syntax import ast


@dataclass
class Imports:
    """The files a program imports: import statement (by the span of its path) → (file, its module)."""

    targets: dict[Span, tuple[Path, ast.Module] | None] = field(default_factory=dict)

    def module_for(self, statement: ast.Import) -> tuple[Path, ast.Module] | None:
        """The file and parsed module ``statement`` imports; None when it cannot be (already reported)."""
        return self.targets.get(statement.path_span)


def resolve_imports(module: ast.Module, main: Path, base_dir: Path, sources: SourceMap,
                    diagnostics: DiagnosticBag) -> Imports:
    """Read and parse everything ``module`` (the file ``main``) imports, transitively."""
    resolver = _Resolver(sources, diagnostics)
    resolver.visit(module, base_dir, [main.resolve()])
    return resolver.imports


class _Resolver:
    def __init__(self, sources: SourceMap, diagnostics: DiagnosticBag):
        self.sources, self.diag = sources, diagnostics
        self.imports = Imports()
        self.parsed: dict[Path, ast.Module | None] = {}  # each file read once

    def visit(self, module: ast.Module, base_dir: Path, stack: list[Path]) -> None:
        for statement in module.statements:
            if isinstance(statement, ast.Import):
                self.target(statement, (base_dir / statement.path).resolve(), stack)

    def target(self, statement: ast.Import, path: Path, stack: list[Path]) -> None:
        if path in stack:
            chain = [p.name for p in stack[stack.index(path):]] + [path.name]
            what = f"{chain[0]} imports itself" if len(chain) == 2 else " → ".join(chain)
            self.diag.error(f"import cycle: {what}", statement.path_span)
            self.imports.targets[statement.path_span] = None
            return
        first_time = path not in self.parsed
        if first_time:
            self.parsed[path] = self.read(statement, path)
        module = self.parsed[path]
        if module is None and not first_time:
            self.read(statement, path)  # each import of an unreadable file says so where it is written
        self.imports.targets[statement.path_span] = (path, module) if module is not None else None
        if module is not None and first_time:
            self.visit(module, path.parent, [*stack, path])

    def read(self, statement: ast.Import, path: Path) -> ast.Module | None:
        """The parsed module, or None after reporting why not."""
        from poelang.syntax.parser import parse_module

        if path.suffix != ".poe":  # never parse (and so echo in diagnostics) a file that is not a program
            self.diag.error(f"cannot import '{statement.path}': only .poe programs can be imported", statement.path_span)
            return None
        problem = input_file_problem(path)
        if problem:
            self.diag.error(f"cannot import '{statement.path}': {problem}", statement.path_span)
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.diag.error(f"cannot import '{statement.path}': {e}", statement.path_span)
            return None
        display = display_path(path)
        self.sources.add(display, text)
        module, errors = parse_module(text, display)
        self.diag.extend(errors)
        return module


def display_path(path: Path) -> str:
    """A path as diagnostics show it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
