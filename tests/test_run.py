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
    assert "error: cannot load 'flux_fill#1'" in err and "hf download black-forest-labs/FLUX.1-Fill-dev" in err
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
