"""Weights up front: every model a program needs, present or not, before anything is simulated or loaded."""
from __future__ import annotations

from pathlib import Path

import pytest

from poelang import values
from poelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
TWO_CATS = ROOT / "programs" / "flux" / "two_cats.poe"
QUICKSTART = ROOT / "programs" / "quickstart.poe"
MODELS = ("black-forest-labs/FLUX.1-Fill-dev", "black-forest-labs/FLUX.1-Depth-dev", "Qwen/Qwen2.5-VL-7B-Instruct")


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, downloads off: the answer does not depend on this machine's cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("POELANG_ALLOW_DOWNLOAD", raising=False)


def test_check_weights_names_every_missing_model_with_its_download_command(capsys):
    assert main(["check", "--weights", str(TWO_CATS)]) == 1
    out = capsys.readouterr().out
    assert "needs 3 models" in out and "3 of 3 missing" in out
    for model in MODELS:
        assert f"missing  {model}" in out
        assert f"  hf download {model}\n" in out


def test_check_weights_of_the_quickstart_finds_the_shipped_mini_weights(capsys):
    assert main(["check", "--weights", str(QUICKSTART)]) == 0
    out = capsys.readouterr().out
    assert "present  mini_flux  for scene, red, blue" in out and "present  mini_vqa   for judge" in out
    assert "missing" not in out


def test_a_model_in_the_hub_cache_is_present(tmp_path, capsys):
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-7B-Instruct" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    assert main(["check", "--weights", str(TWO_CATS)]) == 1
    out = capsys.readouterr().out
    assert "present  Qwen/Qwen2.5-VL-7B-Instruct" in out and "2 of 3 missing" in out


def test_run_stops_before_simulating_with_one_diagnostic_per_missing_model(tmp_path, monkeypatch, capsys):
    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered before checking the weights")

    monkeypatch.setitem(values.OPS, "render", no_rendering)
    program = tmp_path / "p.poe"
    program.write_text(
        'ball = sphere(radius=0.2, position=(0.0, 0.0, 0.5), name="ball")\n'
        "view = render([ball], camera=camera(position=(0.0, -2.0, 0.5), lookat=(0.0, 0.0, 0.3), fov=40deg), "
        "size=(32, 32))\n"
        'x ~ flux_depth("a ball", depth=view.depth) * exp(clip_score("a ball"))\n'
        'save x to "x.png"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", str(program)]) == 1
    err = capsys.readouterr().err
    assert err.count(": error: model '") == 2, err
    assert "`hf download black-forest-labs/FLUX.1-Depth-dev`" in err
    assert "`hf download openai/clip-vit-large-patch14`" in err
    assert f"{program}:3:5: error" in err
