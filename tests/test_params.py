"""Program parameters (`param name = default`): the graph records them, and a
value given from outside (command line, Python, a table) is read with the
default's type; every mistake points at the value as it was typed."""
from __future__ import annotations

import json

import pytest

import poelang
from poelang.cli import main
from poelang.params import from_command_line

SHIFTED = """\
param centre = 2.0
param steps = 20
x ~ gaussian(mean=[0.0], std=1.0) * gaussian(mean=[centre], std=1.0) with {
    levels = steps
    particles = 128
    num_samples = 128
    seed = 1
}
"""

KINDS = """\
param count = 3
param scale = 0.5
param margin = 10%
param angle = 30deg
param caption = "two red cubes"
param flag = true
param size = (32, 32)
param weights = [1.0, 2.0]
"""


def test_the_graph_records_parameters_with_value_and_default():
    program = poelang.parse(SHIFTED, params={"centre": 4.0})
    assert program.ok, program.render_diagnostics()
    params = {p.id: (p.type, p.value, p.default) for p in program.graph.params}
    assert params == {"centre": ("Number", 4.0, 2.0), "steps": ("Number", 20, 20)}
    assert json.loads(program.graph.to_json())["params"][0] == {"default": 2.0, "id": "centre", "type": "Number",
                                                                "value": 4.0}
    assert program.graph.experts[1].args["mean"] == [4.0]
    assert program.graph.samples[0].settings.levels == 20


def test_a_graph_without_parameters_has_no_params_key():
    program = poelang.parse("x ~ gaussian(mean=[0.0])")
    assert "params" not in json.loads(program.graph.to_json())


def test_a_parameter_changes_what_is_sampled():
    """N(0, 1) · N(c, 1) = N(c / 2, 1/2): the mean follows the parameter."""
    program = poelang.parse(SHIFTED)
    at_default = program.run().samples["x"].samples.mean().item()
    moved = program.run(params={"centre": 6.0}).samples["x"].samples.mean().item()
    # The 128 draws come from 128 weighted, resampled particles and are correlated: over seeds their mean
    # has a standard deviation near 0.2 (measured over seeds 0-7), so 0.6 is three of them.
    assert at_default == pytest.approx(1.0, abs=0.6)
    assert moved == pytest.approx(3.0, abs=0.6)


@pytest.mark.parametrize("name,text", [
    ("count", "7"), ("scale", "2"), ("scale", "1e-3"), ("margin", "12px"), ("margin", "40%"), ("angle", "-15deg"),
    ("caption", "three blue spheres"), ("caption", '"quoted, with a comma"'), ("flag", "false"),
    ("size", "(64, 48)"), ("weights", "[3, 4.5, 5]"), ("weights", "[]"),
])
def test_values_of_the_defaults_kind_are_accepted(name, text):
    program = poelang.parse(KINDS, params=[from_command_line(name, text)])
    assert not program.errors, program.render_diagnostics()


def test_a_text_parameter_takes_text_as_typed():
    program = poelang.parse(KINDS, params=[from_command_line("caption", "three blue spheres")])
    assert program.graph.params[4].value == "three blue spheres"
    program = poelang.parse(KINDS, params=[from_command_line("caption", '"a \\"quoted\\" word"')])
    assert program.graph.params[4].value == 'a "quoted" word'


@pytest.mark.parametrize("name,text,message", [
    ("count", "2.5", "parameter 'count' takes an integer (its default is 3), got 2.5"),
    ("scale", "yes", "undefined name 'yes'"),
    ("scale", '"big"', "parameter 'scale' takes a number (its default is 0.5), got \"big\""),
    ("margin", "12deg", "parameter 'margin' takes a length (px or %) (its default is 10%), got 12deg"),
    ("angle", "3", "parameter 'angle' takes an angle (deg) (its default is 30deg), got 3"),
    ("flag", "1", "parameter 'flag' takes true or false (its default is true), got 1"),
    ("size", "(1, 2, 3)", "parameter 'size' takes a tuple of 2 (its default is [32, 32]), got [1, 2, 3]"),
    ("weights", '["a"]', "parameter 'weights' takes a list (its default is [1.0, 2.0]), got ['a']"),
    ("count", "[1", "'[' is never closed"),
])
def test_a_value_of_another_kind_is_an_error_at_the_value(name, text, message):
    program = poelang.parse(KINDS, params=[from_command_line(name, text)])
    [error] = program.errors
    assert message in error.message
    assert error.span.file == f"<--param {name}>" and error.span.col >= len(name) + 2


def test_an_unknown_parameter_is_an_error_at_its_name():
    program = poelang.parse(KINDS, params=[from_command_line("caption_", "x")])
    [error] = program.errors
    assert error.message == ("the program has no parameter 'caption_' (did you mean 'caption'?); "
                             "it has count, scale, margin, angle, caption, flag, size, weights")
    assert (error.span.file, error.span.col, error.span.end_col) == ("<--param caption_>", 1, 9)


def test_a_value_an_expert_refuses_is_reported_at_the_override_with_each_use_noted():
    source = 'param caption = "two red cubes"\nx ~ mini_flux(caption) * exp(mini_vqa(caption))\n'
    program = poelang.parse(source, "p.poe", params={"caption": "three dogs"})
    [error] = program.errors
    assert "'dogs' not in the mini experts' vocabulary" in error.message
    assert str(error.span) == "<param caption>:1:9"
    assert [(n, str(s)) for n, s in error.notes] == [("'caption' is used here", "p.poe:2:15"),
                                                     ("'caption' is used here", "p.poe:2:39")]


def test_a_setting_the_value_breaks_is_reported_at_the_override():
    program = poelang.parse(SHIFTED, "p.poe", params={"steps": 0})
    [error] = program.errors
    assert error.message.startswith("setting 'levels': must be ≥ 1")
    assert str(error.span) == "<param steps>:1:7" and str(error.notes[0][1]) == "p.poe:4:14"


def test_cli_param_override_and_its_diagnostic(tmp_path, capsys):
    path = tmp_path / "p.poe"
    path.write_text(SHIFTED + 'save x to "x.npy"\n', encoding="utf-8")
    code = main(["check", str(path)])
    assert code == 0
    code = main(["run", str(path), "-q", "--param", "centre=5", "--output", str(tmp_path / "out.npy")])
    assert code == 0 and (tmp_path / "out.npy").is_file()
    capsys.readouterr()
    code = main(["run", str(path), "-q", "--param", "centre=five"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[:3] == ["<--param centre>:1:8: error: undefined name 'five'",
                                    "    1 | centre=five", "      |        ^~~~"]
    assert "Traceback" not in err
    code = main(["run", str(path), "--param", "not an assignment"])
    assert code == 2


def test_fmt_writes_the_canonical_param_statement_and_keeps_the_graph():
    from poelang.syntax.fmt import format_source
    from poelang.syntax.parser import parse_module

    text = "param   caption=\"two red cubes\"   # the scene\nparam n=(1,2)\n"
    module, errors = parse_module(text)
    formatted = format_source(module)
    assert formatted == 'param caption = "two red cubes"  # the scene\nparam n = (1, 2)\n'
    assert format_source(parse_module(formatted)[0]) == formatted
    assert poelang.parse(formatted).graph == poelang.parse(text).graph
