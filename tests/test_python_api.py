"""The Python API: typed results (tensors, PIL images, video frames), the per-level callback that can stop a
run, decoded x0_hat on request, and `mypy --strict` on a user's script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import poelang
from poelang import RunResult, StopSampling

ROOT = Path(__file__).resolve().parent.parent
TILTED = ROOT / "programs" / "analytic" / "tilted.poe"
QUICKSTART = ROOT / "programs" / "quickstart.poe"


def test_a_callback_returning_false_stops_the_run_with_what_was_sampled():
    program = poelang.load(TILTED).raise_for_errors()
    seen: list[int] = []

    def until_level_3(sample: str, info: poelang.infer.LevelInfo) -> bool:
        seen.append(info.level)
        return info.level < 3

    result = program.run(seed=1, levels=10, particles=8, callback=until_level_3)
    x = result["x"]
    assert seen == [0, 1, 2, 3] and x.stopped_at == 3
    assert len(x.trace) == 4 and x.particles.shape[0] == 8 and torch.isfinite(x.samples).all()
    full = program.run(seed=1, levels=10, particles=8)
    assert full["x"].stopped_at is None and len(full["x"].trace) == 11
    # the levels before the stop are the same levels a full run makes
    assert torch.equal(x.trace[2].log_weights, full["x"].trace[2].log_weights)


def test_raising_stop_sampling_stops_too():
    def at_once(sample: str, info: poelang.infer.LevelInfo) -> None:
        raise StopSampling

    result = poelang.load(TILTED).run(seed=1, levels=10, particles=4, callback=at_once)
    assert result["x"].stopped_at == 0 and len(result["x"].trace) == 1


def test_results_as_tensors_pil_images_and_frames():
    result = RunResult()
    with pytest.raises(KeyError, match="no sample 'x'"):
        result["x"]
    from poelang.infer import Result

    def engine_result(samples: torch.Tensor) -> Result:
        n = samples.shape[0]
        return Result(samples, samples, torch.zeros(n), torch.zeros(n), torch.zeros(n, 0), [], [], None, {}, {},
                      torch.zeros(1))

    image = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 5).clone()
    video = torch.zeros(2, 6, 3, 4, 5)
    result.samples.update(image=engine_result(image), video=engine_result(video))
    [pil] = result.images("image")
    assert pil.size == (5, 4) and pil.mode == "RGB"
    assert pil.getpixel((0, 0)) == pil.getpixel((4, 3)) == (0, 128, 255)  # [-1, 1] → [0, 255]
    frames = result.videos("video")
    assert len(frames) == 2 and len(frames[0]) == 6 and frames[0][0].size == (5, 4)
    assert torch.equal(result.tensor("image"), image)
    with pytest.raises(ValueError, match="not an image"):
        result.images("video")


@pytest.mark.slow
def test_decoded_x0_hat_on_request_for_a_latent_expert():
    """mini_flux samples in its codec's latents; decode_x0_hat=True hands the callback pixels."""
    program = poelang.load(QUICKSTART).raise_for_errors()
    shapes: dict[bool, set[tuple[int, ...]]] = {True: set(), False: set()}
    for decode in (False, True):
        def record(sample: str, info: poelang.infer.LevelInfo, decode: bool = decode) -> bool:
            assert info.x0_hat is not None
            shapes[decode].add(tuple(info.x0_hat.shape))
            return info.level < 1

        result = program.run(seed=0, levels=3, particles=2, callback=record, decode_x0_hat=decode)
        assert result["x"].stopped_at == 1
    assert shapes[True] == {(2, 3, 32, 32)}  # pixels
    assert shapes[False] != shapes[True]  # latents
    [image] = result.images("x")
    assert image.size == (32, 32)


USER_SCRIPT = '''\
import poelang
from poelang.infer import LevelInfo


def stop_early(sample: str, info: LevelInfo) -> bool:
    return info.level < 3


program = poelang.load("programs/analytic/tilted.poe").raise_for_errors()
result = program.run(seed=1, particles=8, callback=stop_early)
x = result["x"]
print(x.samples.shape, float(x.scores.max()), x.stopped_at, result.seconds, result.written)
'''


@pytest.mark.slow
def test_mypy_strict_sees_no_any_from_poelang(tmp_path):
    """`mypy --strict --disallow-any-expr` on a user's script: every expression typed, none of them Any."""
    pytest.importorskip("mypy")
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT, encoding="utf-8")
    # the script is type-checked alone; poelang (found on MYPYPATH, as its py.typed marks it) is analysed silently
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--disallow-any-expr", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
    # and the check can fail: an untyped value from poelang is reported
    script.write_text(USER_SCRIPT + "settings = poelang.load('x.poe').graph.samples[0].settings.model_dump()\n",
                      encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--disallow-any-expr", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 1 and '"Any"' in result.stdout, result.stdout
    assert (ROOT / "poelang" / "py.typed").exists()


def test_the_python_api_page_runs(monkeypatch, capsys):
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    import re

    [block] = re.findall(r"```python\n(.*?)```", page, re.S)
    monkeypatch.chdir(ROOT)
    exec(compile(block, "docs/python-api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "x: level 0, ESS" in out and "torch.Size([1, 2])" in out
