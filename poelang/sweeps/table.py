"""A sweep's table: CSV (a header row of column names) or JSON Lines (one object per line).

Each cell keeps where it was typed, so that a bad value is reported as
`table.csv:12:3: error: …` with the line and a caret. An empty CSV cell, or a
JSON `null`, leaves the program's default in place.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from poelang.diagnostics import Diagnostic, Span


@dataclass
class Cell:
    column: str
    text: str  # the value as typed (a JSON string's contents)
    span: Span  # of the value
    name_span: Span  # of the column's name (the CSV header cell, the JSON key)
    verbatim: bool  # a text value that needs no quotes: a CSV cell not starting with '"', a JSON string


@dataclass
class Row:
    number: int  # 1-based, among the data rows
    span: Span  # the whole row (its first line)
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Table:
    file: str
    text: str
    rows: list[Row]


def read_table(path: str | Path) -> tuple[Table | None, list[Diagnostic]]:
    """Read a .csv or .jsonl table; every malformed line is reported, not only the first."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return None, [Diagnostic("error", f"cannot read table: {reason}", Span(file, 0, 0, 0, 0))]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows, errors = _read_csv(text, file)
    elif suffix in (".jsonl", ".ndjson"):
        rows, errors = _read_jsonl(text, file)
    else:
        return None, [Diagnostic("error", f"unknown table format '{suffix}'; use .csv or .jsonl", Span(file, 0, 0, 0, 0))]
    if not rows and not errors:
        errors.append(Diagnostic("error", "the table has no rows", Span(file, 0, 0, 0, 0)))
    return Table(file, text, rows), errors


# --- CSV ----------------------------------------------------------------------


def _read_csv(text: str, file: str) -> tuple[list[Row], list[Diagnostic]]:
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    errors: list[Diagnostic] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    columns = [(name.strip(), Span(file, 1, col, 1, col + max(len(name.strip()), 1)))
               for name, col in zip(header, _cell_columns(lines[0]))]
    seen: dict[str, Span] = {}
    for name, span in columns:
        if not name:
            errors.append(Diagnostic("error", "a column without a name", span))
        elif name in seen:
            errors.append(Diagnostic("error", f"column '{name}' appears twice", span, [("first here", seen[name])]))
        else:
            seen[name] = span
    rows: list[Row] = []
    end = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(Diagnostic("error", f"cannot read the row: {e}", Span(file, end + 1, 1, end + 1, 2)))
            break
        line, end = end + 1, reader.line_num
        if not any(v.strip() for v in record):
            continue  # a blank line
        source = lines[line - 1] if line <= len(lines) else ""
        row = Row(len(rows) + 1, Span(file, line, 1, line, max(len(source), 1) + 1))
        if len(record) > len(columns):
            col = _cell_columns(source)[len(columns)] if end == line else 1
            errors.append(Diagnostic("error", f"{len(record)} values but {len(columns)} columns", Span(file, line, col, line, col + 1)))
        starts = _cell_columns(source)
        for i, (value, (name, name_span)) in enumerate(zip(record, columns)):
            if not value.strip() or not name:
                continue
            col = starts[i] if end == line and i < len(starts) else 1
            stripped = value.strip()
            col += len(value) - len(value.lstrip()) + (1 if source[col - 1:col] == '"' else 0)
            row.cells.append(Cell(name, stripped, Span(file, line, col, line, col + len(stripped)), name_span,
                                  not stripped.startswith('"')))
        rows.append(row)
    return rows, errors


def _cell_columns(line: str) -> list[int]:
    """The 1-based column where each cell of a CSV line starts (commas inside quotes do not count)."""
    starts, quoted = [1], False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            starts.append(i + 2)
    return starts


# --- JSON Lines -----------------------------------------------------------------


def _read_jsonl(text: str, file: str) -> tuple[list[Row], list[Diagnostic]]:
    rows: list[Row] = []
    errors: list[Diagnostic] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = Row(len(rows) + 1, Span(file, number, 1, number, len(line) + 1))
        seen: set[str] = set()
        try:
            for key, key_at, value, start, stop in _json_members(line):
                if key in seen:  # json.loads would keep the last silently; a CSV column given twice is an error too
                    raise json.JSONDecodeError(f"key '{key}' appears twice", line, key_at)
                seen.add(key)
                if value is None:
                    continue
                name_span = Span(file, number, key_at + 1, number, key_at + 1 + len(json.dumps(key)))
                if isinstance(value, str):  # the string's contents, spanned inside its quotes
                    span = Span(file, number, start + 2, number, max(stop, start + 2))
                    row.cells.append(Cell(key, value, span, name_span, True))
                else:
                    span = Span(file, number, start + 1, number, stop + 1)
                    row.cells.append(Cell(key, line[start:stop], span, name_span, False))
        except ValueError as e:
            col = getattr(e, "colno", 1)
            errors.append(Diagnostic("error", f"not a JSON object: {getattr(e, 'msg', e)}", Span(file, number, col, number, col + 1)))
            continue
        rows.append(row)
    return rows, errors


def _json_members(line: str):
    """(key, key offset, value, value start, value end) of each member of a one-line JSON object."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(line) and line[i] in " \t\r":
            i += 1
        return i

    def expect(i: int, char: str) -> int:
        if line[i:i + 1] != char:
            raise json.JSONDecodeError(f"expected '{char}'", line, i)
        return i + 1

    i = expect(skip(0), "{")
    i = skip(i)
    if line[i:i + 1] == "}":
        return
    while True:
        key_at = i
        key, i = decoder.raw_decode(line, i)
        if not isinstance(key, str):
            raise json.JSONDecodeError("a key must be a string", line, key_at)
        i = skip(expect(skip(i), ":"))
        start = i
        value, i = decoder.raw_decode(line, i)
        yield key, key_at, value, start, i
        i = skip(i)
        if line[i:i + 1] == "}":
            if line[i + 1:].strip():
                raise json.JSONDecodeError("text after the object", line, i + 1)
            return
        i = skip(expect(i, ","))
