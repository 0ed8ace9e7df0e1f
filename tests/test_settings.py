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


import pytest  # noqa: E402

from poelang import graph as g  # noqa: E402
from poelang.infer import RESAMPLERS, Settings, SettingsError, register_resampler  # noqa: E402

# The same mistake written in a program and given to the engine: (program settings, engine keywords)
SAME_MISTAKES = [
    ("resample = median, resample_times = [0.5]", dict(resample="median", resample_times=[0.5])),
    ("schedule = [1.0, 0.5]", dict(schedule=[1.0, 0.5])),
    ("adaptive_temper = true, weighting = greedy", dict(adaptive_temper=True, weighting="greedy")),
    ("resample_when = times", dict(resample_when="times")),
    ("particles = 0", dict(particles=0)),
    ("mcmc = gibbs", dict(kernel="gibbs")),
]


@pytest.mark.parametrize("written, keywords", SAME_MISTAKES, ids=[w for w, _ in SAME_MISTAKES])
def test_check_and_engine_say_the_same(written, keywords):
    """The checker's message is the engine's: the same rule text, about the setting under its program name."""
    program = poelang.parse(f"x ~ gaussian(mean=[0.0, 1.0]) with {{ {written} }}")
    checked = program.errors[0].message
    with pytest.raises(SettingsError) as engine:
        Settings(**keywords)
    said = str(engine.value).removeprefix("invalid settings: ")
    if ": " in said and said.split(": ", 1)[0] in Settings.model_fields:  # a mistake in one value: `name: message`
        name, said = said.split(": ", 1)
        said = f"setting '{g.ENGINE_TO_PROGRAM.get(name, name)}': {said}"
    assert checked == said


def test_program_settings_are_the_engines_program_subset():
    engine_names = {g.PROGRAM_SETTINGS[n] for n in g.SETTING_NAMES}
    assert engine_names <= set(Settings.model_fields) and {"mcmc", "leapfrog"} <= set(g.SETTING_NAMES)
    defaults = Settings()
    for name, engine in g.PROGRAM_SETTINGS.items():
        if name != "output":  # the graph records the output `auto` resolves to
            assert getattr(g.SamplerSettings(), name) == getattr(defaults, engine), name


def test_a_registered_resampler_reaches_programs():
    text = "x ~ gaussian(mean=[0.0]) with { resample = keep_all }"
    assert "expected" in poelang.parse(text).render_diagnostics()
    register_resampler("keep_all")(RESAMPLERS["none"])
    try:
        assert poelang.parse(text).ok
    finally:
        del RESAMPLERS["keep_all"]
