"""`path = autoregressive` and `init = inversion` in the language: settings,
static diagnostics, and runs through the interpreter (codecs included)."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

import poelang
from poelang import values as V
from poelang.diagnostics import PoeError
from poelang.experts.registry import default_registry
from poelang.experts.spec import ExpertSpec, Param, image_domain

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
ROOM = "programs/assets/living_room.png"
CLIP = "programs/assets/ball.gif"


@pytest.fixture(autouse=True)
def _from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def errors(source: str) -> list[str]:
    program = poelang.parse(source, "t.poe")
    return [d.message for d in program.errors]


# -- settings and diagnostics ----------------------------------------------------------

def test_settings_reach_the_graph():
    program = poelang.parse(f'v = load_video("{CLIP}", size=(16, 16), frames=8)\n'
                            "x ~ simulator(target=v) with { path = autoregressive, chunk = 3, sim_updates = 8, "
                            "sim_lambda = 0.25 }\n"
                            f'room = load_image("{ROOM}", size=(16, 16))\n'
                            "y ~ gaussian(mean=0.0, size=(16, 16)) with { init = inversion, invert = room, "
                            "invert_iters = 0 }", "t.poe")
    assert program.ok, program.render_diagnostics()
    x, y = (s.settings for s in program.graph.samples)
    assert (x.path, x.chunk, x.sim_updates, x.sim_lambda, x.init) == ("autoregressive", 3, 8, 0.25, "noise")
    assert (y.init, y.invert.ref, y.invert_iters, y.path) == ("inversion", "room", 0, "joint")
    again = poelang.graph.Graph.from_json(program.graph.to_json())
    assert again == program.graph


@pytest.mark.parametrize("source,message", [
    ('x ~ gaussian(mean=[0.0, 1.0]) with { init = inversion }', "init = inversion needs invert"),
    ('x ~ gaussian(mean=[0.0, 1.0]) with { invert = [0.1, 0.2] }', "invert is used by init = inversion"),
    ('x ~ gaussian(mean=[0.0, 1.0]) with { init = inversion, invert = [0.1, 0.2, 0.3] }',
     "invert has 3 numbers, but 'x' is over vector[2]"),
    (f'r = load_image("{ROOM}", size=(32, 32))\nx ~ gaussian(mean=0.0, size=(64, 64)) with {{ init = inversion, invert = r }}',
     "invert is 32×32 but the canvas is 64×64"),
    (f'r = load_image("{ROOM}", size=(32, 32))\nx ~ gaussian(mean=[0.0]) with {{ init = inversion, invert = r }}',
     "cannot invert an Image[32,32] into a sample over vector[1]"),
    (f'v = load_video("{CLIP}", size=(16, 16), frames=4)\nx ~ simulator(target=load_video("{CLIP}", size=(16, 16), frames=8)) '
     "with { init = inversion, invert = v }", "invert is 4 frames of 16×16 but the canvas is 8 frames of 16×16"),
    ('g = gaussian(mean=[0.0])\nx ~ g with { init = inversion, invert = g }',
     "invert takes the image, video or vector to invert, got an Expert[vector[1]]"),
    ('x ~ gaussian(mean=[0.0]) with { init = inversion, invert = nowhere }', "undefined name 'nowhere'"),
    ('x ~ gaussian(mean=0.0, size=(16, 16)) with { path = autoregressive }',
     "path = autoregressive samples a video frame by frame, but 'x' is an image[16,16]"),
    ('x ~ gaussian(mean=[0.0]) with { path = autoregressive }', "but 'x' is a vector[1]"),
    (f'v = load_video("{CLIP}", size=(16, 16), frames=8)\nx ~ simulator(target=v) with {{ path = autoregressive, chunk = 9 }}',
     "chunk = 9 is more than the video's 8 frames"),
    ('x ~ gaussian(mean=[0.0]) with { path = sideways }', "expected 'joint' or 'autoregressive'"),
    ('x ~ gaussian(mean=[0.0]) with { chunk = 0 }', "setting 'chunk': must be ≥ 1"),
])
def test_diagnostics(source, message):
    found = errors(source)
    assert any(message in m for m in found), found


def test_the_diagnostic_points_at_the_setting():
    program = poelang.parse("x ~ gaussian(mean=[0.0, 1.0]) with { init = inversion, invert = [0.1] }", "t.poe")
    text = program.render_diagnostics()
    assert "t.poe:1:65: error: invert has 1 numbers" in text, text


def test_overrides_from_python_and_the_command_line():
    program = poelang.load("programs/analytic/gaussian_product.poe")
    result = program.run(init="inversion", invert=[0.5, 0.5], mcmc="none", particles=2, levels=30, output="all")
    assert torch.allclose(result.samples["x"].particles, torch.tensor([0.5, 0.5]).expand(2, 2), atol=1e-4)
    with pytest.raises(PoeError, match="invert has 3 numbers"):
        program.run(init="inversion", invert=[0.5, 0.5, 0.5])


# -- runs ---------------------------------------------------------------------------------

def test_image_inversion_round_trip_through_the_interpreter():
    room = V.load_image(V.Context(ROOT, "cpu"), ROOM, size=(16, 16))
    program = poelang.parse(f'room = load_image("{ROOM}", size=(16, 16))\n'
                            "x ~ gaussian(mean=0.0, size=(16, 16)) * gaussian(mean=0.3, std=0.5, size=(16, 16)) "
                            "with { init = inversion, invert = room, mcmc = none, particles = 2, levels = 30 }", "t.poe")
    result = program.run().samples["x"]
    assert result.plan["init"] == "inversion"
    assert float((result.samples[0] - room).abs().max()) < 1e-4  # float32; the engine's tests check 1e-9 in float64


def test_a_sample_can_start_from_another_samples_inversion():
    program = poelang.parse("x ~ gaussian(mean=[0.0, 1.0]) with { particles = 4 }\n"
                            "y ~ gaussian(mean=[2.0, 2.0]) with { init = inversion, invert = x, mcmc = none, levels = 30 }",
                            "t.poe")
    run = program.run()
    assert torch.allclose(run.samples["y"].samples[0], run.samples["x"].samples[0], atol=1e-4)


def test_a_size_only_known_at_run_time_is_a_run_time_diagnostic():
    # load_video without size= has no static frame size: the engine finds the mismatch, reported at the sample
    program = poelang.parse(f'v = load_video("{CLIP}", frames=8)\n'
                            f'x ~ simulator(target=load_video("{CLIP}", size=(8, 8), frames=8)) '
                            "with { init = inversion, invert = v, levels = 4 }", "t.poe")
    assert program.ok, program.render_diagnostics()
    with pytest.raises(PoeError) as failure:
        program.run()
    text = str(failure.value)
    assert "t.poe:2:1: error: the canvas to invert has shape (8, 3, 16, 16); the experts sample (8, 3, 8, 8)" in text
    assert "Traceback" not in text


class _Spy:
    """A Gaussian over a PixelCodec's latents that records the shapes it is called on."""

    def __init__(self, inner, codec):
        self.inner, self.codec, self.name, self.shapes = inner, codec, inner.name, []
        self.has_log_prob = False

    def velocity(self, x, sigma):
        self.shapes.append(tuple(x.shape[1:]))
        return self.inner.velocity(x, sigma)


def test_inversion_happens_in_the_codecs_latent_space(monkeypatch):
    from poelang.stdlib.analytic import GaussianFlow
    from poelang.stdlib.codecs import PixelCodec

    made = []

    def load(args, context):
        codec = PixelCodec(2)
        latent = codec.latent_shape(context.event_shape)
        expert = _Spy(GaussianFlow(torch.full(latent, 0.1), var=0.5, name=context.name), codec)
        made.append(expert)
        return expert

    module = types.ModuleType("poe_test_latent_experts")
    module.load = load
    monkeypatch.setitem(sys.modules, "poe_test_latent_experts", module)
    spec = ExpertSpec("latent_gaussian", "generative", "a Gaussian over PixelCodec latents (test)",
                      (Param("size", "Size", (16, 16)),), loader="poe_test_latent_experts:load",
                      domain=image_domain(), family="test")
    monkeypatch.setitem(default_registry().experts, "latent_gaussian", spec)
    room = V.load_image(V.Context(ROOT, "cpu"), ROOM, size=(16, 16))
    program = poelang.parse(f'room = load_image("{ROOM}", size=(16, 16))\n'
                            "x ~ latent_gaussian(size=(16, 16)) with { init = inversion, invert = room, mcmc = none, "
                            "particles = 1, levels = 20 }", "t.poe")
    assert program.ok, program.render_diagnostics()
    result = program.run().samples["x"]
    assert set(made[0].shapes) == {(12, 8, 8)}  # every call, inversion included, on latents
    assert result.samples.shape == (1, 3, 16, 16)  # decoded back to pixels
    assert float((result.samples[0] - room).abs().max()) < 1e-4


def test_autoregressive_video_run_marks_simulators_and_traces_chunks():
    program = poelang.parse(f'v = load_video("{CLIP}", size=(16, 16), frames=8)\n'
                            "x ~ simulator(target=v, weight=4.0) with { path = autoregressive, chunk = 3, "
                            "sim_updates = 8, levels = 6, particles = 3 }", "t.poe")
    seen = []
    run = poelang.interpreter.run_program(program, write=False, callback=lambda sid, info: seen.append(info.level))
    result = run.samples["x"]
    assert result.samples.shape == (1, 8, 3, 16, 16)
    assert result.plan["path"] == "autoregressive" and result.plan["chunks"] == [[0, 3], [3, 6], [6, 8]]
    assert seen == list(range(3 * 7))
    assert [t.frames for t in result.trace][::7] == [(0, 3), (3, 6), (6, 8)]
    # sim_updates acted: the simulator factor was marked (else the engine refuses sim_updates)
    clip = V.load_video(V.Context(ROOT, "cpu"), CLIP, size=(16, 16), frames=8)
    without = program.run(sim_updates=0).samples["x"].samples
    assert (result.samples - clip).pow(2).mean() < (without - clip).pow(2).mean()


def test_video_inversion_round_trip_on_the_autoregressive_path():
    """The interpreter's plumbing (the engine's test, tests/infer/test_autoregressive.py, checks a frame-wise
    expert): chunk by chunk, each inverted; with no MCMC the video comes back."""
    clip = V.load_video(V.Context(ROOT, "cpu"), CLIP, size=(16, 16), frames=6)
    program = poelang.parse(f'v = load_video("{CLIP}", size=(16, 16), frames=6)\n'
                            "x ~ simulator(target=v, weight=1.0) "
                            "with { path = autoregressive, chunk = 4, init = inversion, invert = v, mcmc = none, "
                            "levels = 30, particles = 2 }", "t.poe")
    assert program.ok, program.render_diagnostics()
    result = program.run().samples["x"]
    assert result.plan["init"] == "inversion" and result.plan["chunks"] == [[0, 4], [4, 6]]
    assert float((result.samples[0] - clip).abs().max()) < 1e-4


DOC = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
RUNNABLE = [b for b in re.findall(r"```poe\n(.*?)```", DOC, re.S) if "path = autoregressive" in b or "init = inversion" in b]


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"doc{i}" for i in range(len(RUNNABLE))])
def test_the_docs_examples_run(block):
    program = poelang.parse(block, "docs/language.md")
    assert program.ok, program.render_diagnostics()
    run = program.run()
    (result,) = run.samples.values()
    assert torch.isfinite(result.samples).all()


def test_there_are_runnable_doc_examples():
    assert len(RUNNABLE) >= 2
