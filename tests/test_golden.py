"""Golden files: the canonical graph of every example program, and the exact
diagnostics of every bad program under tests/golden/errors/.

Regenerate with `pytest --update-golden`, then read the diff as a reviewer.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import poelang
from poelang.syntax.fmt import format_source
from poelang.syntax.parser import parse_module

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "programs").rglob("*.poe"))
ERRORS = sorted((ROOT / "tests" / "golden" / "errors").glob("*.poe"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(autouse=True)
def _run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # diagnostics print paths relative to the repository


@pytest.mark.parametrize("path", PROGRAMS, ids=_rel)
def test_program_graph(path, golden):
    program = poelang.load(_rel(path))
    assert program.ok, program.render_diagnostics()
    golden(ROOT / "tests" / "golden" / "programs" / (path.relative_to(ROOT / "programs").with_suffix(".json")),
           program.graph.to_json())


@pytest.mark.parametrize("path", PROGRAMS, ids=_rel)
def test_program_is_formatted_and_fmt_keeps_graph(path):
    text = path.read_text(encoding="utf-8")
    module, errors = parse_module(text, _rel(path))
    assert not errors
    formatted = format_source(module)
    assert formatted == text, f"{_rel(path)} is not in canonical form; run poelang fmt"
    again = poelang.parse(formatted, _rel(path), base_dir=path.parent)
    assert again.graph == poelang.load(_rel(path)).graph


@pytest.mark.parametrize("path", ERRORS, ids=_rel)
def test_error_diagnostics(path, golden):
    program = poelang.load(_rel(path))
    assert not program.ok, f"{_rel(path)} should have errors"
    golden(path.with_suffix(".txt"), program.render_diagnostics() + "\n")


def test_there_are_enough_error_programs():
    assert len(ERRORS) >= 30
