"""What a run shows while it inverts an input, and that every progress line fits the terminal.

* ``init = inversion`` has its own bar (steps done / total) in the same display as the levels, fed by the
  engine's hook (``poelang.infer.inversion``: a callback, nothing of the display); one line per finished
  inversion in a log; nothing under ``-q``;
* at 80 columns no progress line wraps, for the longest labels: autoregressive "chunk k/K level l/L",
  long sample names, model-loading lines.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.cells import cell_len
from rich.console import Console

import poelang
from poelang.interpreter import run_program
from poelang.progress import QUIET, LevelBar, Reporter

ROOT = Path(__file__).resolve().parent.parent
CLIP = "programs/assets/ball.gif"
VIDEO_INVERSION = (f'v = load_video("{CLIP}", size=(8, 8), frames=4)\n'
                   "clip ~ simulator(target=v) with { path = autoregressive, chunk = 2, init = inversion, "
                   "invert = v, levels = 3, particles = 2, mcmc = none }\n")


@pytest.fixture(autouse=True)
def _from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _info(level: int, sigma: float = 0.123, ess: float = 63.9, best: float = -1234.0) -> SimpleNamespace:
    return SimpleNamespace(level=level, sigma=sigma, ess=ess, scores=torch.tensor([best]))


# -- the engine's hook ---------------------------------------------------------------------

def test_invert_reports_every_step_to_its_hook():
    from poelang.infer import Factor, ProductField, invert, make_schedule, reporting_inversion_steps

    class Gaussian:  # N(0.3, I): an analytic velocity, enough for the hook
        name, has_log_prob = "g", False

        def velocity(self, x, sigma):
            return x - 0.3 if sigma == 0 else (x - (1 - sigma) * 0.3) / sigma - 0.3

    field = ProductField([Factor(Gaussian())], (2,))
    sigmas = make_schedule("linear", 5)
    seen, inner = [], []
    invert(field, torch.zeros(1, 2), sigmas, on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 5) for k in range(6)]
    outer = []
    with reporting_inversion_steps(lambda done, total: outer.append(done)):
        with reporting_inversion_steps(lambda done, total: inner.append(done)):  # a block inside another:
            invert(field, torch.zeros(1, 2), sigmas, iters=0)                  # both are told
        invert(field, torch.zeros(1, 2), sigmas)
    invert(field, torch.zeros(1, 2), sigmas)  # outside the blocks: nobody is told
    assert inner == list(range(6)) and outer == list(range(6)) * 2


# -- through the interpreter -----------------------------------------------------------------

def test_a_log_gets_one_line_per_finished_inversion():
    """stderr to a file or pipe: the inversion of each chunk is one line, printed when it ends, before the levels'."""
    stream = io.StringIO()
    program = poelang.parse(VIDEO_INVERSION, "t.poe")
    assert program.ok, program.render_diagnostics()
    run_program(program, write=False, reporter=Reporter(console=Console(file=stream, width=160)))
    lines = [re.sub(r"  [\d.]+ s  ", " | ", line) for line in stream.getvalue().splitlines()]
    assert lines[-3:-1] == ["✓ clip ~ | inverting  chunk 1/2  step 3/3", "✓ clip ~ | inverting  chunk 2/2  step 3/3"]
    assert lines[-1].startswith("✓ clip ~ | chunk 2/2  level 3/3  σ=0.000  ESS=")


def test_the_live_display_shows_the_inversion_as_a_bar():
    stream = io.StringIO()
    console = Console(file=stream, width=80, force_terminal=True, color_system=None)
    with Reporter(console=console) as reporter:
        bar = reporter.sampling("clip", levels=3, chunks=2, inverting=True)
        for done in range(4):
            bar.inversion_step(done, 3)
    text = _plain(stream.getvalue())
    assert "inverting  chunk 1/2  step 3/3" in text and "━━━━━━━━" in text  # a full bar: all steps done


def test_quiet_shows_no_inversion(tmp_path):
    program = tmp_path / "invert.poe"
    program.write_text(VIDEO_INVERSION.replace(CLIP, str(ROOT / CLIP)) + 'save clip to "clip.gif"\n')
    env = dict(os.environ, PYTHONWARNINGS="default")
    proc = subprocess.run([sys.executable, "-m", "poelang", "run", "-q", str(program)], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("wrote clip.gif\n", "")


def test_a_quiet_reporter_ignores_the_hook():
    bar = Reporter(QUIET).sampling("x", levels=3, inverting=True)
    bar.inversion_step(0, 3)
    bar.update(_info(1))  # nothing to draw on, nothing raised


# -- widths ------------------------------------------------------------------------------------

def _plain(output: str) -> str:
    """The text a terminal shows, each piece between cursor moves on a line of its own."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "\n", output)


def _longest_labels(width: int) -> str:
    stream = io.StringIO()
    console = Console(file=stream, width=width, force_terminal=True, color_system=None)
    with Reporter(console=console) as reporter:
        with reporter.step("loading a_scene_with_a_long_name (flux_fill_depth_and_more)"):
            pass
        with reporter.step("loading judge (mini_vqa)"):
            pass
        with reporter.step("simulating the_whole_physics_of_a_room"):
            pass
        bar = reporter.sampling("a_rather_long_sample_name_for_the_video", levels=200, chunks=12, inverting=True)
        for done in range(201):
            bar.inversion_step(done, 200)
        bar.update(_info(1000, ess=1023.9, best=-123.456))
        bar.inversion_step(0, 200)
        short = reporter.sampling("x", levels=20)
        short.update(_info(20, ess=4.0, best=-0.5))
    return _plain(stream.getvalue())


@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
def test_no_progress_line_wraps(width):
    lines = [line for line in _longest_labels(width).split("\n") if line.strip()]
    assert lines and all(cell_len(line) <= width for line in lines), "\n".join(lines)
    # a wrapped line would go on under the spinner column: every line starts with a spinner or a check mark
    assert all(line[0] == "✓" or "\u2800" <= line[0] <= "\u28ff" for line in lines), "\n".join(lines)


def test_a_terminal_too_narrow_for_the_columns_still_gets_one_line_per_task():
    lines = [line for line in _longest_labels(40).split("\n") if line.strip()]
    assert lines and all(cell_len(line) <= 40 for line in lines), "\n".join(lines)
    assert not any(line.startswith(" ") for line in lines), "\n".join(lines)  # no continuation lines


def test_at_80_columns_the_numbers_that_matter_stay():
    text = _longest_labels(80)
    assert "loading judge (mini_vqa)" in text  # a model-loading line whole
    assert "chunk 5/12 level 196/200 best=-123" in text  # σ and the ESS give way, not where nor the best
    assert "level 20/20 ESS=4.0 best=-0.5" in text
    assert "inverting  chunk 1/12  step 200/200" in text


def test_the_numbers_give_way_in_order():
    bar = LevelBar(None, "x", levels=20, chunks=8, inverting=False, info_width=None)
    assert bar.text(_info(30)) == "chunk 2/8  level 9/20  σ=0.123  ESS=63.9  best=-1.23e+03"
    for width, text in [(60, "chunk 2/8  level 9/20  σ=0.123  ESS=63.9  best=-1.23e+03"),
                        (52, "chunk 2/8 level 9/20 σ=0.123 ESS=63.9 best=-1.23e+03"),
                        (45, "chunk 2/8 level 9/20 ESS=63.9 best=-1.23e+03"),
                        (36, "chunk 2/8 level 9/20 best=-1.23e+03"),
                        (10, "chunk 2/8 level 9/20 best=-1.23e+03")]:  # the display cuts it with …
        bar.info_width = width
        assert bar.text(_info(30)) == text
