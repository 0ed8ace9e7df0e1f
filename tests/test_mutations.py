"""Property tests: token-level mutations of the example programs.

Whatever a mutation does (tokens deleted, duplicated, swapped; punctuation,
keywords, numbers or strings inserted; the text truncated), checking the
result gives a valid program or diagnostics, never another exception. For a
mutated program that parses, `fmt` is idempotent, its output parses, and when
the mutated program checks, the formatted one checks to the same graph.
"""
from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poelang
from poelang.syntax.fmt import format_source
from poelang.syntax.parser import parse_module

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "programs").rglob("*.poe"))
SOURCES = {p: p.read_text(encoding="utf-8") for p in PROGRAMS}

TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"?'  # strings (maybe unterminated)
    r"|#[^\n]*"  # comments
    r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:%|px|deg)?"  # numbers with units
    r"|[A-Za-z_][A-Za-z0-9_]*"  # names and keywords
    r"|\n|[ \t]+|."  # newlines, spaces, single characters
)
PUNCTUATION = list("()[]{},=~*/+-^|&!.%#\\:;@$'") + ["\n", "\t", "\r", "\u00e9", "\u263a", "\x00"]
KEYWORDS = ["import", "save", "to", "with", "given", "as", "true", "false", "none", "exp", "trace", "gaussian",
            "flux", "flux_fill", "flux_depth", "vqascore", "wan_t2v", "box", "box_mask", "blur", "x", "prior",
            "particles", "levels", "resample", "median", "seed", "mcmc"]
NUMBERS = ["0", "1", "-1", "2.5", ".5", "1e309", "1e-400", "50%", "150%", "12px", "30deg", "99999999999999999999",
           "0.0", "65537"]
STRINGS = ['"x"', '"a.png"', '"out.mp4"', '"trace"', '"\\q"', '"', '"\\u{110000}"', '"\\u{41}"', '""', '"x.poe"',
           '"../analytic/tilted.poe"']
INSERTS = st.sampled_from(PUNCTUATION) | st.sampled_from(KEYWORDS) | st.sampled_from(NUMBERS) | st.sampled_from(STRINGS)


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text)


@st.composite
def mutated_programs(draw) -> tuple[Path, str]:
    path = draw(st.sampled_from(PROGRAMS))
    tokens = tokenize(SOURCES[path])
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            tokens = [draw(INSERTS)]
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace", "truncate"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "insert":
            tokens.insert(i, draw(INSERTS))
        elif op == "replace":
            tokens[i] = draw(INSERTS)
        else:
            text = "".join(tokens)
            tokens = tokenize(text[: draw(st.integers(0, len(text)))])
    return path, "".join(tokens)


def _check(path: Path, text: str) -> poelang.Program:
    program = poelang.parse(text, str(path.relative_to(ROOT)), base_dir=path.parent)
    rendered = program.render_diagnostics()  # rendering never fails either
    assert program.ok or program.errors, "a program that is not ok must say why"
    for d in program.diagnostics:
        assert d.message and d.message[0] == d.message[0].lower(), d.message
        assert "Traceback" not in rendered
    return program


FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(mutated_programs())
def test_mutated_programs_give_a_program_or_diagnostics(case):
    path, text = case
    _check(path, text)


@FUZZ
@given(mutated_programs())
def test_fmt_of_mutated_programs_is_idempotent_and_keeps_the_graph(case):
    path, text = case
    file = str(path.relative_to(ROOT))
    module, errors = parse_module(text, file)
    if module is None:
        assert errors, "no module and no diagnostics"
        return
    assert not errors
    formatted = format_source(module)
    again, errors = parse_module(formatted, file)
    assert again is not None, f"fmt output does not parse: {[str(e) for e in errors]}\n{formatted}"
    assert format_source(again) == formatted, "fmt is not idempotent"
    original = _check(path, text)
    if original.ok:
        reformatted = _check(path, formatted)
        assert reformatted.ok, reformatted.render_diagnostics()
        assert reformatted.graph == original.graph


def test_the_mutator_changes_programs():
    # a guard for the strategy itself: the examples tokenize back to themselves
    for path, text in SOURCES.items():
        assert "".join(tokenize(text)) == text, path
