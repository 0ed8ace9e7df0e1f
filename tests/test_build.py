"""The Python operator API builds the same graph as the equivalent .poe text."""
from __future__ import annotations

from pathlib import Path

import pytest

import poelang
from poelang import build as P

ROOT = Path(__file__).resolve().parent.parent


def test_brief_example_equals_the_parsed_program(monkeypatch):
    monkeypatch.chdir(ROOT)
    prog = P.ProgramBuilder(base_dir="programs/flux")
    mask = prog.let("mask", P.blur(P.box_mask(P.box(P.pct(20), P.pct(30), P.pct(80), P.pct(90)), size=(1024, 1024)),
                                   P.px(16)))
    x = prog.sample("x", P.flux_fill * P.flux_depth[mask] * P.exp(P.vqascore("two cats")))
    prog.save(x, "two_cats.png")
    assert prog.graph == poelang.load("programs/flux/two_cats.poe").graph


def test_insertion_with_conditioning_weights_and_settings(monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (ROOT / "programs/flux/regional_t2i.poe").read_text()
    prog = P.ProgramBuilder()
    left = prog.let("left", P.box(P.pct(0), P.pct(0), P.pct(50), P.pct(100)))
    right = prog.let("right", P.box(P.pct(50), P.pct(0), P.pct(100), P.pct(100)))
    scene = prog.let("scene", P.flux(prompt="a cat and a dog on a sofa", size=(1024, 1024)))
    cat = prog.let("cat", P.flux(prompt="a ginger cat sitting", size=(1024, 512)))
    dog = prog.let("dog", P.flux(prompt="a black dog sitting", size=(1024, 512)))
    judge = prog.let("judge", P.vqascore("a ginger cat to the left of a black dog on a sofa"))
    x = prog.sample("x", scene * cat[left] * dog[right] * P.exp(judge), levels=28, schedule="flux_shift", particles=4,
                    resample="median", resample_when="times", resample_times=[0.25, 0.5, 0.75], weighting="greedy")
    prog.save(x, "regional_t2i.png")
    prog.save(P.trace(x), "regional_t2i_trace")
    assert prog.graph == poelang.parse(text).graph


def test_operators_cover_the_language():
    prog = P.ProgramBuilder()
    a = prog.let("a", P.gaussian(mean=[0.0, 0.0]))
    b = prog.let("b", P.gaussian(mean=[1.0, 1.0], std=0.5))
    r = prog.let("r", P.quadratic(center=[1.0, 1.0]))
    prog.sample("x", a ** 0.5 * b.given(a) * P.exp(2.0 * r - 0.5 * r), particles=8)
    text = prog.source()
    assert "x ~ a^0.5 * b given a * exp(2.0 * r - 0.5 * r) with {" in text
    program = prog.compile()
    # r appears twice in one exp: weights add up to two reward terms of the same expert
    assert program.ok, program.render_diagnostics()
    sample = program.graph.samples[0]
    assert [f.exponent for f in sample.factors] == [0.5, 1.0]
    assert sample.factors[1].parents == ["a"]
    assert [r.weight for r in sample.rewards] == [2.0, -0.5]


def test_mistakes_get_diagnostics_not_exceptions():
    prog = P.ProgramBuilder()
    prog.sample("x", 2.0 * P.gaussian(mean=[0.0]))
    program = prog.compile()
    assert not program.ok
    assert "for a temperature write expert^2" in program.render_diagnostics()
    with pytest.raises(poelang.PoeError):
        prog.graph


def test_python_values_that_have_no_poelang_form_are_rejected():
    with pytest.raises(TypeError):
        P.lift(object())
    with pytest.raises(TypeError):
        bool(P.name("x") & P.name("y"))
