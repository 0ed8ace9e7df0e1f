"""End-to-end runs of analytic programs: CLI, Python API, outputs, determinism."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import poelang
from poelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "programs" / "analytic" / "gaussian_product.poe"


def test_cli_run_writes_samples_and_trace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", str(PRODUCT), "--set", "particles=128", "--set", "num_samples=128"]) == 0
    x = np.load(tmp_path / "gaussian_product.npy")
    assert x.shape == (128, 2)
    # N(0, 1) · N(2, 0.5²) = N(1.6, 0.2) per coordinate; 128 draws → s.e. of the mean ≈ 0.04
    assert np.allclose(x.mean(0), 1.6, atol=0.2)
    assert np.allclose(x.var(0), 0.2, rtol=0.5)
    for name in ("trace.png", "trace.html", "trace.json"):
        assert (tmp_path / "gaussian_product_trace" / name).stat().st_size > 0


def test_same_program_and_seed_give_the_same_result():
    program = poelang.load(PRODUCT)
    a = program.run(particles=32, levels=10).samples["x"].samples
    b = program.run(particles=32, levels=10).samples["x"].samples
    c = program.run(particles=32, levels=10, seed=8).samples["x"].samples
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_output_override_and_atomic_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", str(PRODUCT), "--output", "out.safetensors", "--set", "levels=5"]) == 0
    from safetensors.torch import load_file

    assert load_file(tmp_path / "out.safetensors")["samples"].shape[1] == 2
    assert main(["run", "-q", str(PRODUCT), "--output", "out.npy", "--set", "levels=5"]) == 0
    assert np.load(tmp_path / "out.npy").shape[1] == 2
    assert not list(tmp_path.glob(".out*"))  # no temporary files left behind


def test_missing_model_is_a_diagnostic_not_a_traceback(tmp_path, monkeypatch, capsys):
    pytest.importorskip("diffusers")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache, whatever this machine has
    monkeypatch.delenv("POELANG_ALLOW_DOWNLOAD", raising=False)
    code = main(["run", "-q", str(ROOT / "programs" / "flux" / "two_cats.poe")])
    err = capsys.readouterr().err
    assert code == 1
    # all three models named at once, before anything loads (poelang.weights)
    assert "error: model 'black-forest-labs/FLUX.1-Fill-dev' (for 'flux_fill#1') is not on this machine" in err
    assert "hf download black-forest-labs/FLUX.1-Fill-dev" in err and "hf download Qwen/Qwen2.5-VL-7B-Instruct" in err
    assert "Traceback" not in err


def test_bad_setting_from_the_command_line_is_a_diagnostic(capsys):
    assert main(["run", "-q", str(PRODUCT), "--set", "particles=0"]) == 1
    assert "particles" in capsys.readouterr().err


def test_per_level_callback():
    seen = []
    poelang.load(PRODUCT).run(levels=6, particles=8, callback=lambda sample, info: seen.append((sample, info.level)))
    assert [s for s, _ in seen] == ["x"] * len(seen) and seen[-1][1] == 6


@pytest.mark.parametrize("program", sorted((ROOT / "programs" / "analytic").glob("*.poe")), ids=lambda p: p.name)
def test_every_analytic_example_runs(program, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", str(program), "--set", "levels=8", "--set", "particles=16"]) == 0


# --- the trace page ------------------------------------------------------------------


def _level(level: int, points, log_weights, scores=None):
    import torch

    from poelang.infer import LevelInfo

    n = len(points)
    scores = torch.zeros(n, dtype=torch.float64) if scores is None else torch.tensor(scores, dtype=torch.float64)
    return LevelInfo(level, 1.0 - level / 2, torch.tensor(points, dtype=torch.float64), scores[:, None], scores,
                     torch.tensor(log_weights, dtype=torch.float64), torch.arange(n), 1.5, False)


def test_the_vector_plots_keep_every_particle_that_carries_weight():
    import torch

    from poelang.plots import weighty_bounds

    points = torch.tensor([[0.0, 0.0], [0.1, 0.2], [9.0, -7.0], [1e6, 1e6]])
    weights = torch.tensor([1.0, 0.5, 0.01, 1e-9])  # the far outlier at (9, -7) weighs 1% of the heaviest
    (x0, x1), (y0, y1) = weighty_bounds(points, weights)
    assert x0 < 0.0 and x1 > 9.0 and y0 < -7.0 and y1 > 0.2  # a 0.99 quantile would have clipped it
    assert x1 < 1e6  # the particle of negligible weight does not squash the plot; it is drawn on the frame


def test_trace_page_has_a_title_provenance_plots_and_a_legend(tmp_path):
    import base64
    import json
    import re

    import torch
    from PIL import Image

    from poelang.infer import Result
    from poelang.writers import write_trace

    trace = [_level(k, [[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], [0.0, -1.0, -2.0], [0.5 * k, 1.0, float("-inf")])
             for k in range(3)]
    result = Result(torch.zeros(1, 2), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3), torch.zeros(3, 1),
                    ["near_one"], trace, None, {"kernel": "mala"}, {}, torch.linspace(1, 0, 3))
    provenance = {"poelang": "0.1.0", "program": "tilted.poe", "program_sha256": "ab" * 32, "sample": "x",
                  "seed": 7, "settings": {"particles": 3, "levels": 2}}
    written = write_trace(str(tmp_path), "x", result, provenance)
    assert sorted(Path(p).name for p in written) == ["trace.html", "trace.json", "trace.png"]
    page = (tmp_path / "trace.html").read_text(encoding="utf-8")
    assert "<h1>tilted.poe: x — trace</h1>" in page
    assert "0.1.0" in page and "ab" * 32 in page and "particles = 3" in page and "<th>seed</th><td>7</td>" in page
    assert "red for weights of at least half the largest" in page  # the colours are explained
    images = re.findall(r'id="(\w+)" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in images] == ["sheet", "levels"]
    levels = Image.open(__import__("io").BytesIO(base64.b64decode(images[1][1])))
    assert levels.height > 300  # the ESS plot and the score plot
    assert json.loads((tmp_path / "trace.json").read_text())["provenance"]["seed"] == 7

    from poelang.trace_page import score_series

    steps, ess, scores = score_series(result)
    assert steps == [0.0, 1.0, 2.0] and ess == {"ESS": [1.5, 1.5, 1.5]}
    assert scores["best score"] == [1.0, 1.0, 1.0]  # -inf is left out
    w = torch.softmax(torch.tensor([0.0, -1.0]), 0)
    assert abs(scores["mean score (weighted)"][2] - float(w[0] * 1.0 + w[1] * 1.0)) < 1e-12


def test_a_run_writes_a_trace_page_titled_by_program_and_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    program = Path(__file__).resolve().parent.parent / "programs" / "analytic" / "tilted.poe"
    assert main(["run", "-q", str(program), "--set", "levels=4", "--set", "particles=16", "--seed", "3",
                 "--trace", "t"]) == 0
    page = (tmp_path / "t" / "trace.html").read_text(encoding="utf-8")
    assert "<h1>tilted.poe: x — trace</h1>" in page
    assert "<th>seed</th><td>3</td>" in page and "particles = 16" in page and "resample = systematic" in page
    assert 'id="levels"' in page and "best and the weight-averaged reward score" in page
