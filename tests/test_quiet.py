"""Quiet by default, loud on request: progress only on stderr, `-q` leaves the "wrote" lines, `-v` adds details,
and no warning from poelang's own code on a normal run."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from poelang.progress import LevelBar

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "programs" / "quickstart.poe"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="default")  # warnings shown, so that -q must be what hides them
    return subprocess.run([sys.executable, "-m", "poelang", "run", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_quiet_quickstart_prints_only_the_wrote_line(tmp_path):
    proc = _run("-q", QUICKSTART, "--set", "levels=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote quickstart.png\n"
    assert proc.stderr == ""


def test_progress_goes_to_stderr_and_stdout_keeps_only_results(tmp_path):
    proc = _run(QUICKSTART, "--set", "levels=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote quickstart.png\n"
    assert "loading judge (mini_vqa)" in proc.stderr and "level 2/2" in proc.stderr
    assert "Loading weights" not in proc.stderr  # transformers' own bars
    assert "Warning" not in proc.stderr and "GiB" not in proc.stderr


def test_verbose_adds_loading_details_in_mib(tmp_path):
    proc = _run("-v", QUICKSTART, "--set", "levels=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "wrote quickstart.png\n"
    assert "MiB of weights (float32), on cpu" in proc.stderr


def _info(level: int) -> SimpleNamespace:
    return SimpleNamespace(level=level, sigma=0.0, ess=4.0, scores=torch.tensor([-1.0, -0.5]))


def test_the_autoregressive_bar_counts_levels_within_each_chunk():
    bar = LevelBar(None, "x", levels=20, chunks=8, inverting=False)
    assert bar.total == 167  # what the trace numbers the last level
    assert bar.text(_info(167)).startswith("chunk 8/8  level 20/20  σ=0.000")
    assert bar.text(_info(21)).startswith("chunk 2/8  level 0/20")
    assert LevelBar(None, "x", levels=30, chunks=1, inverting=False).text(_info(30)).startswith("level 30/30")


def test_an_inverting_run_says_so_before_each_chunk():
    bar = LevelBar(None, "x", levels=4, chunks=3, inverting=True)
    assert bar.text(_info(4)) == "chunk 1/3  level 4/4  inverting chunk 2"
    assert "inverting" not in bar.text(_info(14))


def test_loading_the_mini_judges_raises_no_warning():
    from poelang.stdlib.mini import judges, vqa

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vqa.MiniVQA()  # the shipped mini_vqa
        judges.PatchVQA(vocab=8)  # the baseline mini_vqa_v1


def test_a_log_gets_one_line_per_finished_step_as_it_finishes():
    """stderr to a file or pipe (CI): no live display, which would print nothing until the end."""
    import io

    from rich.console import Console

    from poelang.progress import Reporter

    stream = io.StringIO()
    with Reporter(console=Console(file=stream, width=160)) as reporter:
        with reporter.step("loading scene (mini_flux [dev])"):
            assert stream.getvalue() == ""
        assert stream.getvalue().startswith("✓ loading scene (mini_flux [dev])  ")  # markup escaped, printed now
        bar = reporter.sampling("x", levels=2)
        bar.update(_info(1))
        assert "x ~" not in stream.getvalue()
        bar.update(_info(2))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("✓ x ~  ") and lines[1].endswith("level 2/2  σ=0.000  ESS=4.0  best=-0.5")
