"""From a program and a table to the jobs of a sweep, every row checked before anything loads.

Each row is lowered and checked as the program with that row's values, so a
row that passes here cannot fail at run time for a reason `check` could have
seen. All bad rows are reported at once; a mistake shared by every row (a
column the program does not have) is reported once, at the header.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from poelang import graph as g
from poelang.diagnostics import Diagnostic, SourceMap, Span
from poelang.params import ParamOverride, parse_value, python_to_source
from poelang.program import Program, compile_source
from poelang.sweeps.table import Cell, Row, Table
from poelang.syntax import ast

ID_COLUMN = "id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Job:
    """One row to run: what a worker needs, small enough to send to another process or machine."""

    id: str
    number: int
    params: list[ParamOverride]
    settings: list[tuple[str | None, ast.Setting]]
    row_hash: str
    program_hash: str
    given: dict[str, str] = field(default_factory=dict)  # the row's cells as typed, for the manifest
    experts: tuple[str, ...] = ()  # the experts the row loads (a worker that has them takes it)


@dataclass
class Plan:
    program_file: str
    program_hash: str
    jobs: list[Job]
    diagnostics: list[Diagnostic]
    sources: SourceMap

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def render(self, color: bool = False) -> str:
        return "\n".join(d.render(self.sources, color) for d in self.diagnostics)


def program_hash(program: Program) -> str:
    """What a row's results depend on besides the row: the program's graph at its defaults
    (a comment or a reformatting does not change it; any value, expert or setting does)."""
    return hashlib.sha256(program.graph.to_json().encode("utf-8")).hexdigest()[:16]


def plan_sweep(program_path: str | Path, table: Table, table_errors: Iterable[Diagnostic] = ()) -> Plan:
    """Check the program, then every row of the table against it."""
    program_path = Path(program_path)
    base = load_program(program_path)
    sources = base.sources
    sources.add(table.file, table.text)
    diagnostics = list(table_errors)
    if not base.ok:
        return Plan(str(program_path), "", [], base.diagnostics + diagnostics, sources)
    phash = program_hash(base)
    jobs: list[Job] = []
    seen_ids: dict[str, Span] = {}
    reported: set[tuple[str, Span]] = set()
    for row in table.rows:
        job, errors = _plan_row(row, table, base, phash, seen_ids)
        for d in errors:
            if (d.message, d.span) not in reported:  # a header mistake, reported by every row, once
                reported.add((d.message, d.span))
                diagnostics.append(d)
        if job is not None:
            jobs.append(job)
    diagnostics.sort(key=lambda d: (d.span.file != table.file, d.span.line, d.span.col))
    return Plan(str(program_path), phash, jobs, diagnostics, sources)


def load_program(path: Path, **kwargs: Any) -> Program:
    from poelang.program import load

    return load(path, **kwargs)


def _plan_row(row: Row, table: Table, base: Program, phash: str, seen_ids: dict[str, Span]) -> tuple[Job | None, list[Diagnostic]]:
    errors: list[Diagnostic] = []
    row_id = f"{row.number:04d}"
    params: list[ParamOverride] = []
    settings: list[tuple[str | None, ast.Setting]] = []
    for cell in row.cells:
        if cell.column == ID_COLUMN:
            row_id = cell.text
            if not _SAFE_ID.match(row_id) or len(row_id) > 128:
                errors.append(Diagnostic("error", "a row id is a file name: letters, digits, '.', '_' and '-', "
                                                  "starting with a letter or digit", cell.span))
            elif row_id in seen_ids:
                errors.append(Diagnostic("error", f"row id '{row_id}' is used twice", cell.span,
                                         [("first used here", seen_ids[row_id])]))
            continue
        target, _, name = cell.column.rpartition(".")
        if name in g.SETTING_NAMES:
            expr, parse_errors = parse_value(cell.text, cell.span)
            errors += parse_errors
            if expr is not None:
                settings.append((target or None, ast.Setting(cell.span, name, cell.name_span, expr)))
        else:
            params.append(ParamOverride(cell.column, cell.name_span, cell.text, cell.span, cell.verbatim))
    if row_id in seen_ids or errors:
        return None, errors
    seen_ids[row_id] = row.span
    program = compile_source(base.source, base.file, base_dir=base.base_dir, params=params, settings=settings)
    errors += [d for d in program.diagnostics if d.severity == "error"]
    if errors:
        return None, errors
    given = {c.column: c.text for c in row.cells}
    row_hash = hashlib.sha256(json.dumps(given, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    experts = tuple(sorted({e.expert for e in program.graph.experts}))
    return Job(row_id, row.number, params, settings, row_hash, phash, given, experts), []


def rows_from_python(rows: Iterable[Mapping[str, Any]], file: str = "<rows>") -> Table:
    """`poelang.sweep(program, rows=[{...}, ...])`: Python values, shown as one JSON line each in diagnostics."""
    from poelang.sweeps.table import _read_jsonl

    rows = list(rows)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {number} is a {type(row).__name__}; each row maps column names to values")
    lines = [json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) for row in rows]
    text = "\n".join(lines) + "\n"
    parsed, errors = _read_jsonl(text, file)
    assert not errors, errors  # json.dumps wrote them
    return Table(file, text, parsed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return python_to_source(value)  # raises: JSON would write NaN, which no program can read back
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (list, str, int, float, bool)) or value is None:
        return value
    return python_to_source(value)
