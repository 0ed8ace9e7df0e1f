"""The shipped mini experts: they load offline, are small, and each meets a real criterion.

Criteria are judged on held-out scenes and captions (``world.split_of``) by
the rule checker, never by the model that is being tested.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from poelang.cli import main  # noqa: E402
from poelang.infer import flow  # noqa: E402
from poelang.interpreter import ExpertContext  # noqa: E402
from poelang.stdlib import mini_experts  # noqa: E402
from poelang.stdlib.mini import judges, rules, world  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "stdlib_experts" / "mini" / "weights"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_weights_are_shipped_and_small():
    files = [f for f in WEIGHTS.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    assert total < 30 * 2**20, f"{total / 2**20:.1f} MB of weights"
    for name in ("mini_flux", "mini_flux_fill", "mini_flux_depth", "mini_video", "mini_vqa", "segmenter"):
        assert (WEIGHTS / name).is_dir(), name
    assert not [f for f in files if f.suffix in (".bin", ".pt", ".pth", ".pkl")]  # safetensors only


def _context(shape=(3, 32, 32)):
    return ExpertContext("x", shape, "cpu", ROOT, shape, None)


def _sample(expert, n: int, levels: int = 30, seed: int = 0) -> torch.Tensor:
    """Plain Euler on the expert's flow from noise: the expert alone, no steering."""
    noise = torch.randn((n, expert.codec.channels, 16, 16), generator=torch.Generator().manual_seed(seed))
    return expert.codec.decode(flow.euler(expert.velocity, noise, levels))


def _held_out_single_captions(n: int) -> list[tuple[str, str, str]]:
    out = []
    for color in world.COLORS:
        for shape in world.SHAPES:
            out.append((f"a {color} {shape}", color, shape))
    return out[:n]


def test_mini_flux_draws_the_requested_color_and_shape():
    """The rule checker finds an object of the caption's colour and shape in at least 80% of samples.

    With mini_flux's own guidance (true_cfg = 3): 86/96 when this was written; without it (true_cfg = 1) the same
    weights give 69/96, blobs of the right colour that read as spheres (docs/results.md).
    """
    hits, total = 0, 0
    for caption, color, shape in _held_out_single_captions(24):
        expert = mini_experts.load_mini_flux({"prompt": caption, "size": (32, 32)}, _context())
        images = _sample(expert, 4, seed=total)
        for seg in judges.segment(images):
            hits += rules.exists(rules.facts_from_segmentation(seg), color, shape)
            total += 1
    assert hits / total >= 0.8, f"{hits}/{total}"


def test_segmenter_and_rules_agree_with_ground_truth_on_held_out_scenes():
    rng = np.random.default_rng(12345)
    agree, n = 0, 0
    while n < 60:
        scene = world.sample_scene(rng)
        text = world.caption(scene, rng)
        render = world.render_scene(scene)
        image = torch.from_numpy(render.rgb).permute(2, 0, 1).float()[None] / 127.5 - 1
        truth = rules.satisfies(text, rules.facts_from_segmentation(rules.segmentation_labels(render)))
        agree += judges.check(image, text)[0] == truth
        n += 1
    assert agree / n >= 0.85, f"{agree}/{n}"


def test_a_segmenter_saved_elsewhere_checks_as_a_twin_and_leaves_the_checker_alone(tmp_path):
    checker = judges.load("segmenter")
    shipped = (judges.WEIGHTS / "segmenter" / "model.safetensors").read_bytes()
    twin = judges.load_segmenter(judges.save(checker, "segmenter", {"seed": 0}, tmp_path / "twin"))
    assert (judges.WEIGHTS / "segmenter" / "model.safetensors").read_bytes() == shipped
    scene = world.sample_scene(np.random.default_rng(7))
    image = torch.from_numpy(world.render_scene(scene).rgb).permute(2, 0, 1).float()[None] / 127.5 - 1
    text = world.caption(scene, np.random.default_rng(7))
    assert (judges.segment(image, twin) == judges.segment(image)).all()
    assert judges.check(image, text, twin) == judges.check(image, text)


def test_a_word_outside_the_vocabulary_lists_the_vocabulary(tmp_path, capsys):
    program = tmp_path / "dog.poe"
    program.write_text('x ~ mini_flux("a red dog")\nsave x to "dog.png"\n')
    assert main(["check", str(program)]) == 1
    err = capsys.readouterr().err
    assert "'dog' not in the mini experts' vocabulary" in err and "cube" in err and "sphere" in err


def test_quickstart_runs_in_under_a_minute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    assert main(["run", "-q", str(ROOT / "programs" / "quickstart.poe"), "--trace", "trace"]) == 0
    assert time.perf_counter() - started < 60
    assert (tmp_path / "quickstart.png").stat().st_size > 0
    assert (tmp_path / "trace" / "trace.html").exists()


def _insertion_cases(n: int, seed: int = 4321):
    """Held-out scenes of two objects; one is taken out: (background, mask, noun phrase, colour)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        scene = world.sample_scene(rng, n_objects=2)
        full = world.render_scene(scene)
        if full.masks[1].sum() < 12:
            continue
        obj = scene.objects[1]
        background = world.render_scene(replace(scene, objects=scene.objects[:1])).rgb
        cases.append((background, full.masks[1], world.noun_phrase(1, obj.color, obj.shape), obj.color))
    return cases


def test_mini_flux_fill_keeps_the_picture_and_paints_the_object_in_the_hole():
    from scipy.ndimage import binary_dilation

    hits, errors = 0, []
    for i, (background, mask, text, color) in enumerate(_insertion_cases(6)):
        image = torch.from_numpy(background).permute(2, 0, 1).float() / 127.5 - 1
        hole = torch.from_numpy(binary_dilation(mask, iterations=1)).float()
        expert = mini_experts.load_mini_flux_fill({"prompt": text, "image": image, "mask": hole, "size": (32, 32)},
                                                  _context())
        out = _sample(expert, 1, levels=20, seed=i)
        x = (out[0].permute(1, 2, 0).numpy() + 1) / 2
        outside = ~binary_dilation(mask, iterations=2)
        errors.append(((x - background / 255.0) ** 2)[outside].mean())
        labels = judges.segment(out)[0][mask]
        colors = [rules.class_name(int(c))[0] for c in labels if c]
        hits += colors.count(color) >= 0.3 * mask.sum()
    assert max(errors) < 0.004, errors  # the picture outside the hole is kept
    assert hits >= 4, f"the requested colour fills the hole in {hits}/6"


def test_mini_video_starts_from_its_first_frame_exactly():
    image = torch.rand(3, 32, 32) * 2 - 1
    context = ExpertContext("video", (8, 3, 32, 32), "cpu", ROOT, (8, 3, 32, 32), None)
    expert = mini_experts.load_mini_video({"prompt": "a red sphere", "image": image, "frames": 8, "size": (32, 32)}, context)
    first = expert.codec.encode(image[None])[:, None]
    x = torch.randn(2, 1, *first.shape[2:])
    sigma = torch.full((2,), 0.4)
    step = x - 0.4 * expert.chunk_velocity(x, sigma, first[:, :0].expand(2, 0, -1, -1, -1))
    assert torch.allclose(step, first.expand(2, -1, -1, -1, -1), atol=1e-5)  # Euler to sigma = 0 lands on it
    v = expert.chunk_velocity(x, sigma, first.expand(2, 1, -1, -1, -1))
    assert v.shape == x.shape and torch.isfinite(v).all()
    with pytest.raises(ValueError, match="one frame at a time"):
        expert.chunk_velocity(torch.randn(2, 2, *first.shape[2:]), sigma, first.expand(2, 1, -1, -1, -1))


@pytest.mark.slow
def test_mini_physics_video_follows_the_simulated_fall(tmp_path, monkeypatch):
    import imageio.v3 as iio

    pytest.importorskip("genesis")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POELANG_CACHE", str(tmp_path / "cache"))
    assert main(["run", "-q", str(ROOT / "programs" / "mini" / "physics_video.poe")]) == 0
    video = iio.imread(tmp_path / "physics_video.gif", index=None)[..., :3].astype(float)
    simulated = iio.imread(tmp_path / "physics_video_simulation.gif", index=None)[..., :3].astype(float)
    assert video.shape == simulated.shape == (8, 32, 32, 3)

    ious = [(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(_red(video), _red(simulated))]
    assert np.mean(ious[1:]) >= 0.5, ious


def _red(frames):  # the ball is the only red thing in these scenes
    return (frames[..., 0] > 150) & (frames[..., 1] < 90) & (frames[..., 2] < 90)


@pytest.mark.slow
def test_mini_physics_edit_moves_the_ball_and_keeps_the_rest_of_the_clip(tmp_path, monkeypatch):
    """The edited clip follows the new throw (ball IoU against its simulation) and, away from where the ball was
    and goes, is the input clip (the inverted start). Measured: IoU 0.86, background MSE 0.00013 (images in
    [0, 1]); from noise instead of the inversion 0.68 and 0.0057; the inversion alone (no edit) keeps the old
    fall, IoU 0.12."""
    from poelang import values

    pytest.importorskip("genesis")
    from scipy.ndimage import binary_dilation  # genesis-world brings scipy
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POELANG_CACHE", str(tmp_path / "cache"))
    assert main(["run", "-q", str(ROOT / "programs" / "mini" / "physics_edit.poe")]) == 0

    def load(name):  # [f, h, w, 3] in 0..255, every frame (a GIF stores still runs once)
        return ((values.load_video(values.Context(tmp_path), name) + 1) * 127.5).permute(0, 2, 3, 1).numpy()

    edited, clip, throw = (load(f"physics_edit{s}.gif") for s in ("", "_input", "_simulation"))
    assert edited.shape == clip.shape == throw.shape == (8, 32, 32, 3)
    ious = [(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(_red(edited), _red(throw))]
    assert np.mean(ious[1:]) >= 0.75, ious
    away = ~np.stack([binary_dilation(a | b, iterations=2) for a, b in zip(_red(clip), _red(throw))])
    background = float((((edited - clip) / 255.0) ** 2).mean(-1)[away].mean())
    assert background <= 0.0005, background
