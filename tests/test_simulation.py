"""Simulation in .poe: genesis-world scenes (simulate, render), the simulator expert in pixels and in a codec's
latent space, video files and traces, and the disk cache that spares a second run the simulation.

The simulation-only program programs/video/simulate_ball.poe runs end to end here on a CPU: a red ball dropped onto
the ground, the simulator's Gaussian expert alone, 16 frames of 64x64.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import poelang
from poelang.cli import main

pytest.importorskip("genesis")

from poelang.stdlib import scene  # noqa: E402
from poelang.stdlib.analytic import SimulatorGaussian  # noqa: E402
from poelang.stdlib.codecs import PixelCodec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BALL = ROOT / "programs" / "video" / "simulate_ball.poe"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty simulation cache of our own for the module (the user's ~/.cache is not touched)."""
    folder = tmp_path_factory.mktemp("poelang_cache")
    before = os.environ.get("POELANG_CACHE")
    os.environ["POELANG_CACHE"] = str(folder)
    scene.clear_memory()
    yield folder
    scene.clear_memory()
    if before is None:
        os.environ.pop("POELANG_CACHE", None)
    else:
        os.environ["POELANG_CACHE"] = before


def _run_ball(out: Path):
    """Run simulate_ball.poe with its outputs in `out`; (result, seconds, genesis builds during the run)."""
    cwd = os.getcwd()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    try:
        builds = scene.STATS["genesis_builds"]
        started = time.perf_counter()
        result = poelang.load(BALL).run(write=True)
        return result, time.perf_counter() - started, scene.STATS["genesis_builds"] - builds
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def first(cache, tmp_path_factory):
    """The first run: simulates (one genesis build), samples, writes the video, the mask and the trace."""
    out = tmp_path_factory.mktemp("first")
    result, seconds, builds = _run_ball(out)
    print(f"\nfirst run of simulate_ball.poe: {seconds:.1f} s, genesis builds {builds}, timings {scene.TIMINGS}")
    return out, result, builds


@pytest.fixture(scope="module")
def second(first, tmp_path_factory):
    """The same program again in this process, the in-memory copy forgotten: the disk cache answers."""
    scene.clear_memory()
    hits = scene.STATS["disk_hits"]
    out = tmp_path_factory.mktemp("second")
    result, seconds, builds = _run_ball(out)
    print(f"\nsecond run (disk cache): {seconds:.1f} s, genesis builds {builds}")
    return out, result, builds, scene.STATS["disk_hits"] - hits


def _program_values(result):
    """The sample x [16,3,64,64] and the simulation behind it (from the module's cache: no genesis build)."""
    cam, ball = _ball_scene()
    builds = scene.STATS["genesis_builds"]
    frames = scene.simulate([ball], cam, 16, 16, (64, 64))
    assert scene.STATS["genesis_builds"] == builds
    return result.samples["x"].samples[0], frames


def _ball_scene():
    """The scene of simulate_ball.poe, rebuilt in Python from the same numbers."""
    cam = scene.Camera((0.0, -1.6, 0.55), (0.0, 0.0, 0.4), 45.0)
    ball = scene.Body.sphere(0.2, (-0.15, 0.0, 0.75), (0.5, 0.0, 0.0), "red", "ball")
    return cam, ball


def _derived_mask(video: torch.Tensor, background: torch.Tensor, color) -> torch.Tensor:
    """Pixels whose colour is closer to the object's colour than to the rendered background there ([f,h,w] bool).

    video [f,3,h,w] and background [3,h,w] in [-1, 1]; color sRGB in [0, 1]. Nothing of the simulator's masks is used.
    """
    c = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1) * 2 - 1
    to_object = ((video.float() - c) ** 2).sum(1)
    to_background = ((video.float() - background.float().unsqueeze(0)) ** 2).sum(1)
    return to_object < to_background


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


# ---------------------------------------------------------------------------------------------------------------------
# The simulation-only program


def test_the_program_writes_a_video_a_mask_and_a_trace(first):
    import imageio.v3 as iio

    out, result, builds = first
    assert builds == 1  # the first run with an empty cache simulated once
    x = result.samples["x"].samples
    assert tuple(x.shape) == (1, 16, 3, 64, 64) and bool(torch.isfinite(x).all())
    mp4 = iio.imread(out / "simulate_ball.mp4", index=None)
    gif = iio.imread(out / "simulate_ball.gif", index=None)
    mask = iio.imread(out / "simulate_ball_mask.gif", index=None)
    assert mp4.shape[:3] == (16, 64, 64) and gif.shape[:3] == (16, 64, 64) and mask.shape[:3] == (16, 64, 64)
    assert not list(out.glob(".simulate_ball*"))  # written atomically: no temporary file left
    # the files show the sample: the GIF up to its palette, the MP4 up to H.264, which drops most of the sample's
    # pixel noise (std 1/sqrt(2w) = 0.05, 6.4 levels); a wrong frame order or colour would be off by tens of levels
    sample_u8 = ((x[0].clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(gif[..., :3].astype(float) - sample_u8).mean() < 4
    assert np.abs(mp4[..., :3].astype(float) - sample_u8).mean() < 10


def test_generated_ball_mask_matches_the_simulator_in_every_frame(first):
    """The ball's mask, read off the generated pixels by colour alone, overlaps the simulator's mask: IoU >= 0.9."""
    import imageio.v3 as iio

    out, result, _ = first
    x, frames = _program_values(result)
    cam, ball = _ball_scene()
    background = scene.render([], cam, (64, 64)).rgb  # the ground and the sky, no ball
    truth = torch.from_numpy(frames.masks[:, 0])
    assert frames.names == ("ball",)
    generated = _derived_mask(x, background, ball.color)
    ious = [_iou(generated[f], truth[f]) for f in range(16)]
    mp4 = torch.from_numpy(iio.imread(out / "simulate_ball.mp4", index=None)[..., :3].copy()).permute(0, 3, 1, 2)
    from_file = _derived_mask(mp4.float() / 127.5 - 1, background, ball.color)
    file_ious = [_iou(from_file[f], truth[f]) for f in range(16)]
    print("\nIoU per frame (sample):", " ".join(f"{v:.3f}" for v in ious))
    print("IoU per frame (mp4):   ", " ".join(f"{v:.3f}" for v in file_ious))
    assert min(ious) >= 0.9, ious
    assert min(file_ious) >= 0.9, file_ious
    assert truth.sum((1, 2)).min() > 100  # the ball is in view in every frame, not a speck
    rows = [float(torch.nonzero(truth[f])[:, 0].float().mean()) for f in range(16)]
    assert rows[6] > rows[0] + 10  # and it falls down the image


def test_same_program_and_seed_give_the_same_video(first, second):
    (out_a, result_a, _), (out_b, result_b, _, _) = first, second
    assert torch.equal(result_a.samples["x"].samples, result_b.samples["x"].samples)
    for name in ("simulate_ball.mp4", "simulate_ball.gif", "simulate_ball_mask.gif"):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes(), name
    other = poelang.load(BALL).run(seed=1).samples["x"].samples
    assert not torch.equal(other, result_a.samples["x"].samples)  # the seed matters


def test_second_run_reads_the_disk_cache_and_builds_nothing(first, second, cache):
    *_, builds, disk_hits = second
    assert builds == 0 and disk_hits == 1
    assert len(list((cache / "simulations").glob("*.npz"))) >= 1
    # a fresh process: the simulation comes from disk, genesis is not even imported
    script = (
        "import json, sys, time; started = time.perf_counter(); import poelang; "
        f"r = poelang.load({str(BALL)!r}).run(); from poelang.stdlib import scene; "
        "print(json.dumps({'stats': scene.STATS, 'genesis': 'genesis' in sys.modules, "
        "'seconds': time.perf_counter() - started}))"
    )
    env = {**os.environ, "POELANG_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nfresh process, warm disk cache: {report['seconds']:.1f} s, {report['stats']}")
    assert report["stats"]["disk_hits"] == 1 and report["stats"]["genesis_builds"] == 0
    assert report["genesis"] is False


def test_simulating_again_gives_identical_frames(first, tmp_path, monkeypatch):
    """Genesis is deterministic, so a cache entry is what a new simulation would give."""
    _, frames = _program_values(first[1])
    monkeypatch.setenv("POELANG_CACHE", str(tmp_path))  # an empty cache
    scene.clear_memory()
    cam, ball = _ball_scene()
    builds = scene.STATS["genesis_builds"]
    again = scene.simulate([ball], cam, 16, 16, (64, 64))
    scene.clear_memory()
    assert scene.STATS["genesis_builds"] == builds + 1
    assert again.key == frames.key
    np.testing.assert_array_equal(again.rgb_u8, frames.rgb_u8)
    np.testing.assert_array_equal(again.masks, frames.masks)
    np.testing.assert_array_equal(again.positions, frames.positions)


def test_the_trace_shows_a_frame_strip_per_particle(first):
    import base64
    import io

    from PIL import Image

    out, result, _ = first
    page = (out / "simulate_ball_trace" / "trace.html").read_text()
    strips = re.findall(r'<img class="strip" alt="frames of particle (\d+)" src="data:image/png;base64,([^"]+)"', page)
    assert [int(i) for i, _ in strips] == [0, 1]  # two particles
    strip = Image.open(io.BytesIO(base64.b64decode(strips[0][1])))
    assert strip.size == (16 * 64, 64)  # all 16 frames side by side
    final = result.samples["x"].particles[0]
    first_frame = np.asarray(strip)[:, :64]
    expected = ((final[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(first_frame, expected)
    sheet = Image.open(out / "simulate_ball_trace" / "trace.png")
    assert sheet.size[0] > 2 * 8 * 48  # each contact-sheet cell is a strip of 8 frames


def test_the_docs_example_runs(first, tmp_path, monkeypatch):
    """docs/language.md's simulation example (the same scene: the cache answers) writes its video and mask."""
    import imageio.v3 as iio

    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    block = re.search(r"```poe\n(.*?)```", doc[doc.index("## Simulation and rendering"):], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    builds = scene.STATS["genesis_builds"]
    poelang.parse(block).run(write=True)
    assert scene.STATS["genesis_builds"] == builds
    assert iio.imread(tmp_path / "ball.mp4", index=None).shape[:3] == (16, 64, 64)
    assert iio.imread(tmp_path / "ball_mask.gif", index=None).shape[:3] == (16, 64, 64)


# ---------------------------------------------------------------------------------------------------------------------
# render(): posed assets where the camera says they are


def test_render_puts_objects_where_the_camera_projects_them(cache):
    cam = scene.Camera((1.2, -2.0, 1.0), (0.0, 0.0, 0.3), 40.0)
    size = (48, 80)  # not square: the aspect ratio must follow
    for position in [(0.0, 0.0, 0.3), (0.35, 0.2, 0.5), (-0.4, -0.3, 0.15)]:
        ball = scene.Body.sphere(0.12, position, color="blue", name="b")
        frames = scene.render([ball], cam, size)
        assert frames.single and tuple(frames.rgb.shape) == (3, 48, 80) and tuple(frames.mask.shape) == (48, 80)
        rows, cols = np.nonzero(frames.masks[0, 0])
        assert len(rows) > 20
        col, row = cam.project([position], *size)[0]
        # a sphere's silhouette is centred on its centre's projection (up to perspective, well under a pixel here)
        assert abs(cols.mean() + 0.5 - col) < 0.75 and abs(rows.mean() + 0.5 - row) < 0.75, (position, col, row)
        # depth: the nearest point of the sphere along the ray through its centre
        eye = np.array(cam.position)
        distance = np.linalg.norm(np.array(position) - eye) - 0.12
        forward = np.subtract(cam.lookat, cam.position) / np.linalg.norm(np.subtract(cam.lookat, cam.position))
        ray = (np.array(position) - eye) / np.linalg.norm(np.array(position) - eye)
        measured = frames.metric_depth[0, int(row), int(col)]
        assert abs(measured - distance * float(ray @ forward)) < 0.03, (measured, distance)
        # its pixels are blue, and depth, mask and object_mask agree
        mean = frames.rgb_u8[0][frames.masks[0, 0]].mean(0) / 255
        assert mean[2] > mean[0] + 0.3 and mean[2] > mean[1] + 0.2
        assert torch.equal(frames.object_mask("b"), frames.mask)
        assert float(frames.depth[int(row), int(col)]) > float(frames.depth[0, 0])  # near is bright; the sky is 0


def test_render_in_a_program_gives_image_mask_and_depth(cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = """
cam = camera(position=(0.0, -2.0, 1.0), lookat=(0.0, 0.0, 0.3), fov=40deg)
box1 = cube(size=0.3, position=(0.0, 0.0, 0.15), rotation=(0deg, 0deg, 30deg), color="#20c040", name="box")
pose = render([box1], camera=cam, size=(32, 48))
save pose.rgb to "rgb.png"
save pose.mask to "mask.png"
save object_mask(pose, "box") to "box.png"
save pose.depth to "depth.png"
"""
    program = poelang.parse(source)
    assert program.ok, program.render_diagnostics()
    from poelang.interpreter import Interpreter

    Interpreter(program).run()
    from PIL import Image

    mask = np.asarray(Image.open("mask.png"))
    assert mask.shape == (32, 48) and mask.max() == 255 and np.array_equal(mask, np.asarray(Image.open("box.png")))
    rgb = np.asarray(Image.open("rgb.png")).astype(float)
    inside = rgb[mask > 0].mean(0)
    assert inside[1] > inside[0] + 40 and inside[1] > inside[2] + 40  # green


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_a_mesh_file_is_simulated_and_drawn_in_the_same_frame(cache, tmp_path, suffix):
    """An off-centre mesh (its origin is not its centre) falls and rests on the ground, in genesis and in the image.

    glTF files are Y-up: genesis turns them Z-up, and so must the renderer, or the slab would float or sink.
    """
    import trimesh

    box = trimesh.creation.box(extents=(0.3, 0.2, 0.1))
    box.apply_translation((0.2, 0.15, 0.0) if suffix == ".glb" else (0.2, 0.0, 0.15))  # origin below and beside it
    path = tmp_path / f"offset_box{suffix}"
    box.export(path)
    body = scene.Body.mesh(path, scale=1.0, position=(0.0, 0.0, 0.4), color="yellow", name="slab")
    cam = scene.Camera((0.0, -1.5, 0.6), (0.2, 0.0, 0.1), 40.0)
    frames = scene.simulate([body], cam, frames=12, fps=12, size=(48, 48))
    vertices = scene.local_mesh(body).vertices
    rest = vertices @ scene.quat_to_matrix(frames.quats[-1, 0]).T + frames.positions[-1, 0]
    assert abs(rest[:, 2].min()) < 0.01  # it lies on the ground, not under it or above it
    rows, cols = np.nonzero(frames.masks[-1, 0])
    col, row = cam.project([rest.mean(0)], 48, 48)[0]
    assert abs(cols.mean() + 0.5 - col) < 1.5 and abs(rows.mean() + 0.5 - row) < 1.5


# ---------------------------------------------------------------------------------------------------------------------
# The simulator expert in a codec's latent space


def test_simulator_adopts_a_codec_and_returns_to_pixels():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 8, 8, generator=gen) * 2 - 1
    mask = torch.zeros(8, 8)
    mask[0:4, 0:4] = 1  # one 4x4-pixel token of PixelCodec(2)
    mask[5, 5] = 1  # a lone pixel: too little of its token to count
    sim = SimulatorGaussian(target, 10.0, mask=mask.expand(3, 8, 8).clone())
    codec = PixelCodec(2)
    sim.use_codec(codec)
    assert sim.codec is codec and sim.event_shape == (12, 4, 4)
    torch.testing.assert_close(sim.mean, codec.encode(target[None])[0].double())
    expected = torch.zeros(12, 4, 4, dtype=torch.float64)
    expected[:, 0:2, 0:2] = 1
    assert torch.equal(sim.support, expected)
    sim.use_codec(None)
    assert sim.codec is None and sim.event_shape == (3, 8, 8) and torch.equal(sim.mean, target.double())
    video = SimulatorGaussian(torch.zeros(5, 3, 8, 8), 10.0)
    video.use_codec(codec)
    assert video.event_shape == (5, 12, 4, 4) and video.support is None
    with pytest.raises(ValueError):
        SimulatorGaussian([1.0, 2.0], 1.0).use_codec(codec)


def test_simulator_adopts_a_vae_codec_frame_by_frame():
    """A VAE (FLUX's layout; the tiny one of the FLUX tests) encodes the target, a video frame by frame."""
    pytest.importorskip("diffusers")
    from poelang.stdlib.codecs import VaeCodec
    from tests.experts.tiny_flux import _vae

    codec = VaeCodec(_vae().eval(), "tiny")
    gen = torch.Generator().manual_seed(2)
    video = torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1
    mask = torch.zeros(6, 3, 8, 8)
    mask[:, :, 4:, 4:] = 1
    sim = SimulatorGaussian(video, 10.0, mask=mask)
    sim.use_codec(codec)
    assert sim.event_shape == codec.latent_shape((6, 3, 8, 8)) == (6, 2, 4, 4)
    torch.testing.assert_close(sim.mean, codec.encode(video).double(), atol=1e-5, rtol=1e-5)
    expected = torch.zeros(6, 2, 4, 4, dtype=torch.float64)
    expected[..., 2:, 2:] = 1
    assert torch.equal(sim.support, expected)


def test_simulator_in_pixel_codec_latents_samples_the_same_distribution():
    """PixelCodec's latents are the pixels rearranged: the simulator's Gaussian is the same density in either space."""
    from poelang import infer

    gen = torch.Generator().manual_seed(1)
    target = torch.rand(3, 4, 4, generator=gen) * 2 - 1
    settings = infer.Settings(levels=30, particles=400, annealing="flow", output="all", seed=3)
    draws = {}
    for name, codec in (("pixels", None), ("latent", PixelCodec(2))):
        sim = SimulatorGaussian(target, 8.0)
        sim.use_codec(codec)
        shape = (3, 4, 4) if codec is None else codec.latent_shape((3, 4, 4))
        x = infer.sample(infer.Problem(shape, [infer.Factor(sim)]), settings).samples
        draws[name] = x if codec is None else torch.nn.functional.pixel_shuffle(x, 2)
    for x in draws.values():
        assert x.shape[0] == 400
        assert float((x.mean(0) - target).abs().max()) < 0.06  # mean: the target (s.e. 0.25/20 = 0.0125, 48 coords)
        assert abs(float(x.std(0).mean()) - 0.25) < 0.02  # std: 1/sqrt(2w) = 0.25
    assert float((draws["pixels"].mean(0) - draws["latent"].mean(0)).abs().max()) < 0.08


def test_interpreter_lets_the_simulator_follow_the_product_codec():
    from poelang.interpreter import Interpreter, RunError

    program = poelang.parse("x ~ simulator(target=[0.0, 1.0])")
    interp = Interpreter(program)
    node = program.graph.samples[0]

    class Latent:
        def __init__(self, codec):
            self.codec = codec

    sim = SimulatorGaussian(torch.zeros(3, 8, 8), 5.0)
    assert interp.codec(node, [("sim", sim)]) is None and sim.codec is None  # alone: pixels
    codec = PixelCodec(2)
    node8 = poelang.parse("x ~ gaussian(mean=0.0, size=(8, 8))").graph.samples[0]
    assert interp.codec(node8, [("sim", sim), ("mini", Latent(codec))]) is codec
    assert sim.codec is codec and sim.event_shape == (12, 4, 4)
    assert interp.codec(node8, [("sim", sim), ("pix", Latent(None))]) is None and sim.codec is None
    with pytest.raises(RunError, match="share their latent space"):  # two fixed latent spaces still must agree
        interp.codec(node8, [("a", Latent(codec)), ("sim", sim), ("b", Latent(PixelCodec(4)))])


def test_mini_flux_times_simulator_samples_in_the_mini_latent_space(cache, tmp_path):
    """mini_flux samples in PixelCodec(2) latents; the simulator on a rendered ball follows it there."""
    source = """
cam = camera(position=(0.0, -5.953, 4.589), lookat=(0.0, 0.6, 0.0), fov=28deg)
ball = sphere(radius=0.4, position=(0.0, 0.6, 0.4), color="red", name="ball")
pose = render([ball], camera=cam, size=(32, 32))
x ~ mini_flux("a red sphere") * simulator(target=pose.rgb, mask=pose.mask, weight=50.0) with {
    levels = 12
    particles = 2
}
"""
    program = poelang.parse(source)
    assert program.ok, program.render_diagnostics()
    from poelang.interpreter import Interpreter

    interp = Interpreter(program)
    result = interp.run(write=False)
    x = result.samples["x"].samples[0]
    assert tuple(x.shape) == (3, 32, 32)
    sim = next(e for (name, _), e in interp._experts.items() if name.startswith("simulator"))
    assert isinstance(sim.codec, PixelCodec) and sim.event_shape == (12, 16, 16)
    frames = next(v for v in scene._MEMORY.values() if v.rgb_u8.shape[1:3] == (32, 32) and v.names == ("ball",))
    supported = sim.support[0].repeat_interleave(2, 0).repeat_interleave(2, 1).bool()  # latent pixels → pixels
    assert int(supported.sum()) >= 16
    error = (x - frames.rgb).abs().mean(0)[supported]
    assert float(error.mean()) < 0.15  # inside its support the sample is the rendered ball (std 0.1)


# ---------------------------------------------------------------------------------------------------------------------
# Mistakes


def _run_source(tmp_path, source: str, capsys) -> tuple[int, str]:
    path = tmp_path / "scene.poe"
    path.write_text(source)
    code = main(["run", "-q", str(path)])
    return code, capsys.readouterr().err


def test_a_missing_mesh_file_is_a_diagnostic_not_a_traceback(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _run_source(tmp_path, (
        'cam = camera(position=(0.0, -2.0, 1.0), lookat=(0.0, 0.0, 0.3))\n'
        'chair = mesh("assets/chair.obj", name="chair")\n'
        'sim = simulate([chair], camera=cam, frames=4, size=(32, 32))\n'
        'x ~ simulator(target=sim.rgb)\n'), capsys)
    assert code == 1
    assert "scene.poe:2:9: error: mesh file not found: " in err and "assets/chair.obj" in err
    assert '^~~~' in err and "Traceback" not in err


@pytest.mark.parametrize("call, message", [
    ('sphere(radius=-0.1)', "radius must be positive"),
    ('sphere(color="mauve")', "unknown colour 'mauve'"),
    ('mesh("chair.fbx")', "a mesh is read from .obj"),
    ('camera(fov=190deg)', "fov must be between 0 and 180 degrees"),
    ('camera(position=(1.0, 1.0, 1.0), lookat=(1.0, 1.0, 1.0))', "looks at its own position"),
])
def test_bad_scene_values_are_caught_before_running(call, message):
    program = poelang.parse(f"o = {call}\nx ~ gaussian(mean=[0.0])")
    assert not program.ok
    assert any(message in d.message for d in program.errors), program.render_diagnostics()


def test_run_time_scene_mistakes_are_diagnostics(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _run_source(tmp_path, (
        'cam = camera(position=(0.0, -2.0, 1.0), lookat=(0.0, 0.0, 0.3))\n'
        'a = sphere(name="twin")\n'
        'b = cube(name="twin")\n'
        'sim = render([a, b], camera=cam, size=(32, 32))\n'
        'x ~ simulator(target=sim.rgb)\n'), capsys)
    assert code == 1 and "two objects are named 'twin'" in err and "Traceback" not in err
    code, err = _run_source(tmp_path, (
        'cam = camera(position=(0.0, -2.0, 1.0), lookat=(0.0, 0.0, 0.3))\n'
        'sim = render([sphere(name="ball")], camera=cam, size=(32, 32))\n'
        'x ~ simulator(target=sim.rgb, mask=object_mask(sim, "cube"))\n'), capsys)
    assert code == 1 and "no object named 'cube' in this scene; its objects are 'ball'" in err
    assert "Traceback" not in err


def test_physics_video_still_type_checks():
    program = poelang.load(ROOT / "programs" / "video" / "physics_video.poe")
    assert program.ok, program.render_diagnostics()
    assert [v.op for v in program.graph.values][:3] == ["camera", "sphere", "simulate"]


# ---------------------------------------------------------------------------------------------------------------------
# Video files


def test_video_writer_pads_odd_sizes_and_writes_atomically(tmp_path):
    import imageio.v3 as iio

    from poelang.writers import write_video

    frames = np.random.default_rng(0).integers(0, 255, (5, 31, 33, 3), dtype=np.uint8)
    write_video(str(tmp_path / "a.mp4"), frames, 12.0, "mp4")
    write_video(str(tmp_path / "a.gif"), frames[..., 0], 12.0, "gif")  # grey frames too
    assert iio.imread(tmp_path / "a.mp4", index=None).shape == (5, 32, 34, 3)
    assert iio.imread(tmp_path / "a.gif", index=None).shape[:3] == (5, 31, 33)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4"]


def test_a_gif_with_still_frames_reads_back_frame_for_frame(tmp_path):
    """Pillow stores a run of identical frames once; load_video gives every frame back (a ball at rest)."""
    from poelang import values as V
    from poelang.writers import write_video

    frames = np.zeros((6, 8, 8, 3), np.uint8)
    frames[1:4] = 200  # frames 1-3 identical, as are 4-5
    write_video(str(tmp_path / "still.gif"), frames, 8.0, "gif")
    video = V.load_video(V.Context(tmp_path), "still.gif")
    assert video.shape == (6, 3, 8, 8)
    assert ((video[:, 0, 0, 0] + 1) * 127.5).round().tolist() == [0, 200, 200, 200, 0, 0]
