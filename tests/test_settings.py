"""Sampler settings from programs, the command line and Python."""
import poelang


def test_none_keyword_names_the_none_choice():
    program = poelang.parse("x ~ gaussian(mean=[0.0]) with { resample = none, mcmc = none, max_batch = none }")
    assert program.ok, program.render_diagnostics()
    settings = program.graph.samples[0].settings
    assert (settings.resample, settings.mcmc, settings.max_batch) == ("none", "none", None)


def test_overrides_reach_one_sample_or_all():
    text = "x ~ gaussian(mean=[0.0])\ny ~ gaussian(mean=[1.0])\n"
    program = poelang.parse(text, overrides={"particles": "3", "y.levels": "7"})
    x, y = program.graph.samples
    assert (x.settings.particles, y.settings.particles) == (3, 3)
    assert (x.settings.levels, y.settings.levels) == (50, 7)


def test_output_auto_follows_weighting():
    exact = poelang.parse("x ~ gaussian(mean=[0.0])").graph.samples[0].settings
    greedy = poelang.parse("x ~ gaussian(mean=[0.0]) with { weighting = greedy }").graph.samples[0].settings
    assert (exact.output, greedy.output) == ("sample", "best")


def test_command_line_overrides_are_diagnosed_where_they_were_typed():
    program = poelang.parse("x ~ gaussian(mean=[0.0])", overrides={"levels": "3", "mcmc": "langevn"})
    assert not program.ok
    text = program.render_diagnostics()
    assert "<--set mcmc>:1:8: error: setting 'mcmc'" in text and "did you mean 'langevin'" in text
    assert "    1 | mcmc = langevn" in text
    broken = poelang.parse("x ~ gaussian(mean=[0.0])", overrides={"particles": "@@"})
    assert "<--set particles>:1:13: error: unexpected character '@'" in broken.render_diagnostics()
