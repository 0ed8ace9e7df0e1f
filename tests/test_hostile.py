"""Hostile input, faults and security (issue 15): what a program, an input file or the runner can do
wrong ends in a diagnostic (exit 1), never a traceback, a hang or a file where it should not be.

Bad programs that `check` refuses live in tests/golden/errors/ (300-324); these are the cases that
need files, flags, a run, or a signal.
"""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import poelang
from poelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = "x ~ gaussian(mean=[0.0, 0.0]) with { levels = 3, particles = 4 }\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


# --- S1: a program cannot run code --------------------------------------------------------------


EVIL_PROCESSOR = '''
import os, pathlib
pathlib.Path(os.environ["POELANG_TEST_MARK"]).write_text("code from a model folder ran")
from transformers import ProcessorMixin
class EvilProcessor(ProcessorMixin):
    attributes = []
'''


@pytest.fixture
def evil_model(tmp_path, monkeypatch):
    """A model folder whose processor is its own Python code, which leaves a mark when it runs."""
    folder = tmp_path / "evil_model"
    config = json.dumps({"auto_map": {"AutoProcessor": "evil_mod.EvilProcessor"}, "processor_class": "EvilProcessor"})
    write(folder, "processor_config.json", config)
    write(folder, "config.json", config)
    write(folder, "evil_mod.py", EVIL_PROCESSOR)
    mark = tmp_path / "PWNED"
    monkeypatch.setenv("POELANG_TEST_MARK", str(mark))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # transformers copies remote code under HF_HOME/modules
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf" / "modules"))
    program = write(tmp_path, "rce.poe", 'x ~ gaussian(mean=0.0, size=(8, 8)) * exp(vqascore("a cat", model="evil_model")) '
                                         "with { levels = 2, particles = 2 }\n")
    return program, mark


def test_a_model_folder_runs_no_code_unless_the_runner_allows_it(evil_model, capsys):
    pytest.importorskip("transformers")
    program, mark = evil_model
    code, _, err = run(["run", "-q", str(program)], capsys)
    assert code == 1 and not mark.exists()
    assert "ships its own Python code" in err and "--trust-remote-code" in err
    run(["run", "-q", "--trust-remote-code", str(program)], capsys)  # it fails later (no tokenizer), but it ran
    assert mark.exists()


def test_trust_remote_code_is_not_a_program_argument(tmp_path, capsys):
    program = write(tmp_path, "p.poe", 'x ~ gaussian(mean=0.0, size=(8, 8)) * exp(vqascore("a cat", model="m", '
                                       "trust_remote_code=true))\n")
    code, _, err = run(["check", str(program)], capsys)
    assert code == 1 and "that is the decision of whoever runs it (poelang run --trust-remote-code" in err


# --- S2: import reads programs only ---------------------------------------------------------------


def test_import_never_echoes_another_file(tmp_path, capsys):
    write(tmp_path, "secret.txt", "api_key = \"hunter2\"\nroot:x:0:0:root:/root:/bin/bash\n")
    for target in ("secret.txt", "/etc/passwd", str(tmp_path / "secret.txt")):
        program = write(tmp_path, "p.poe", f'import "{target}" as s\n' + SMALL)
        code, _, err = run(["check", str(program)], capsys)
        assert code == 1 and "only .poe programs can be imported" in err
        assert "hunter2" not in err and "root:x" not in err


def test_import_of_a_fifo_named_like_a_program_does_not_block(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.poe")
    program = write(tmp_path, "p.poe", 'import "pipe.poe"\n' + SMALL)
    code, _, err = run(["check", str(program)], capsys)
    assert code == 1 and "not a regular file" in err


# --- S3: writes stay in the output directory ------------------------------------------------------


def test_saves_resolve_against_the_output_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    program = write(tmp_path, "sub/p.poe", SMALL + 'save x to "x.npy"\nsave x to "deep/y.npy"\n')
    code, out, _ = run(["run", "-q", str(program), "-o", "results"], capsys)
    assert code == 0 and (tmp_path / "results" / "x.npy").is_file() and (tmp_path / "results" / "deep" / "y.npy").is_file()
    said = [line for line in out.splitlines() if not line.endswith(".json")]  # .npy files have a provenance sidecar
    assert said == [f"wrote {Path('results') / 'x.npy'}", f"wrote {Path('results') / 'deep' / 'y.npy'}"]
    assert not (tmp_path / "sub" / "x.npy").exists() and not (tmp_path / "x.npy").exists()


def test_a_file_name_given_as_the_output_directory_points_at_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    program = write(tmp_path, "p.poe", SMALL + 'save x to "x.npy"\n')
    code, _, err = run(["run", "-q", str(program), "-o", "x.png"], capsys)
    assert code == 2 and "--output x.png" in err and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("path", ["../escape.npy", "a/../../escape.npy", "/tmp/poelang-escape.npy"])
def test_saves_outside_need_the_runners_flag(tmp_path, monkeypatch, capsys, path):
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "out"
    program = write(tmp_path, "p.poe", SMALL + f'save x to "{path}"\n')
    code, _, err = run(["run", "-q", str(program), "-o", str(inside)], capsys)
    assert code == 1 and "--allow-outside" in err
    assert not (tmp_path / "escape.npy").exists() and not Path("/tmp/poelang-escape.npy").exists()
    code, _, _ = run(["run", "-q", "--allow-outside", str(program), "-o", str(inside)], capsys)
    target = Path(path) if Path(path).is_absolute() else inside / path
    assert code == 0 and target.resolve().is_file()
    target.resolve().unlink()


def test_python_saves_go_to_out_dir(tmp_path):
    program = poelang.parse(SMALL + 'save x to "x.npy"\n')
    result = program.run(write=True, out_dir=tmp_path / "o")
    assert result.written[0] == str(tmp_path / "o" / "x.npy") and (tmp_path / "o" / "x.npy").is_file()


# --- inputs: regular files only, full precision, every failure named --------------------------------


@pytest.mark.parametrize("loader", ["load_image", "load_mask", "load_depth", "load_video"])
def test_a_fifo_input_is_refused_at_check_time_without_blocking(tmp_path, capsys, loader):
    os.mkfifo(tmp_path / "fifo.png")
    program = write(tmp_path, "p.poe", f'v = {loader}("fifo.png")\nx ~ gaussian(mean=[0.0])\n')
    started = time.monotonic()
    code, _, err = run(["check", str(program)], capsys)
    assert code == 1 and "not a regular file" in err and time.monotonic() - started < 30


def _png16(path: Path) -> np.ndarray:
    from PIL import Image

    ramp = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 … 65472
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return ramp


def test_16_bit_images_masks_and_depths_keep_their_precision(tmp_path):
    ramp = _png16(tmp_path / "gray16.png")
    from poelang import values as V

    ctx = V.Context(tmp_path)
    expected = torch.from_numpy(ramp.astype(np.float32) / 65535)
    torch.testing.assert_close(V.load_mask(ctx, "gray16.png"), expected)
    torch.testing.assert_close(V.load_depth(ctx, "gray16.png"), expected)
    torch.testing.assert_close(V.load_image(ctx, "gray16.png"), (expected * 2 - 1).expand(3, 32, 32))
    assert len(torch.unique(V.load_depth(ctx, "gray16.png"))) == 1024  # 8 bits would keep at most 256 levels
    half = V.load_depth(ctx, "gray16.png", size=(16, 16))
    assert half.shape == (16, 16) and 0.2 < float(half.mean()) < 0.8  # scaled, not clipped to white


def test_float_depth_keeps_metres(tmp_path):
    from PIL import Image

    from poelang import values as V

    metres = np.linspace(0.5, 12.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(metres).save(tmp_path / "depth.tif")
    torch.testing.assert_close(V.load_depth(V.Context(tmp_path), "depth.tif"), torch.from_numpy(metres))
    assert float(V.load_mask(V.Context(tmp_path), "depth.tif").max()) == 1.0  # a mask stays in [0, 1]


def _gif(path: Path, frames: int = 3) -> None:
    from PIL import Image

    images = [Image.new("RGB", (16, 16), (40 * i, 0, 0)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


@pytest.mark.parametrize("name, make, frames, message", [
    ("corrupt.gif", lambda p: p.write_bytes(b"GIF89a" + bytes(194)), 2, "cannot read corrupt.gif"),
    ("zero.gif", lambda p: p.write_bytes(b""), 2, "cannot read zero.gif"),
    ("text.gif", lambda p: p.write_text("not a video"), 2, "cannot read text.gif"),
    ("adir.gif", lambda p: p.mkdir(), 2, "directory"),
    ("anim.gif", _gif, 50, "anim.gif has 3 frames, 50 requested"),
])
def test_load_video_failures_are_diagnostics(tmp_path, capsys, name, make, frames, message):
    make(tmp_path / name)
    program = write(tmp_path, "p.poe", f'v = load_video("{name}", size=(16, 16), frames={frames})\n'
                                       "x ~ simulator(target=v, weight=2.0) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and message in err


def test_a_still_image_or_16_bit_png_is_a_one_frame_video(tmp_path):
    from PIL import Image

    from poelang import values as V

    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "still.png")
    _png16(tmp_path / "gray16.png")
    assert V.load_video(V.Context(tmp_path), "still.png").shape == (1, 3, 8, 8)
    assert V.load_video(V.Context(tmp_path), "gray16.png").shape == (1, 3, 32, 32)


def test_frame_out_of_range_at_run_time(tmp_path, capsys):
    _gif(tmp_path / "anim.gif")
    program = write(tmp_path, "p.poe", 'v = load_video("anim.gif", size=(16, 16))\nf = frame(v, 5)\n'
                                       "x ~ simulator(target=f, weight=2.0) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "frame 5 is out of range for a video of 3 frames" in err


def test_a_decompression_bomb_is_refused_at_check_time(tmp_path, capsys):
    from PIL import Image

    Image.new("L", (12000, 8000)).save(tmp_path / "big.png")  # 96 Mpx of one grey: a small file
    program = write(tmp_path, "p.poe", 'img = load_image("big.png", size=(32, 32))\n'
                                       "x ~ simulator(target=img, weight=2.0)\n")
    code, _, err = run(["check", str(program)], capsys)
    assert code == 1 and "big.png is too large to read (96 Mpx; poelang reads at most 89 Mpx)" in err


def test_an_input_whose_size_check_could_not_tell_is_read_for_its_real_error(tmp_path, capsys):
    program = write(tmp_path, "p.poe", 'img = load_image("missing.png")\n'
                                       "x ~ simulator(target=img, weight=2.0) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program)], capsys)
    assert code == 1 and "cannot read missing.png: file not found" in err


# --- the runner's options -----------------------------------------------------------------------


@pytest.mark.parametrize("device, message", [
    ("bogus", "unknown device 'bogus'"), ("meta", "the meta device holds no data"), ("cuda:x", "unknown device"),
    *([("cuda", "this torch (")] if torch.version.cuda is None else []),
])
def test_device_mistakes_are_diagnostics(tmp_path, capsys, device, message):
    program = write(tmp_path, "p.poe", SMALL)
    code, _, err = run(["run", "-q", str(program), "--device", device], capsys)
    assert code == 1 and f"<command line>: error: --device {device}: " in err and message in err


@pytest.mark.parametrize("source, output, message", [
    ("m = box_mask(box(0%, 0%, 50%, 50%), size=(8, 8))\nsave m to \"m.png\"\n", "out.png", "the program has no sample"),
    ("x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\n", "v.gif", "vector[1], which cannot be saved as GIF"),
    ("x ~ gaussian(mean=[0.0, 1.0, 2.0]) with { levels = 2, particles = 2 }\n", "v.png", "cannot be saved as PNG"),
    ("x ~ gaussian(mean=0.0, size=(8, 8)) with { levels = 2, particles = 2 }\n", "i.gif", "image[8,8], which cannot be saved as GIF"),
])
def test_output_override_follows_the_save_rules(tmp_path, capsys, source, output, message):
    program = write(tmp_path, "p.poe", source)
    code, _, err = run(["run", "-q", str(program), "--output", str(tmp_path / output)], capsys)
    assert code == 1 and message in err and not (tmp_path / output).exists()


def test_trace_and_save_write_failures_point_at_their_cause(tmp_path, capsys):
    write(tmp_path, "afile", "a file, not a folder")
    program = write(tmp_path, "p.poe", SMALL + 'save x to "afile/x.npy"\n')
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path)], capsys)
    assert code == 1 and "p.poe:2:1: error: cannot write" in err and "Not a directory" in err
    program = write(tmp_path, "q.poe", SMALL)
    for target in ("/proc/poelang-trace", str(program)):
        code, _, err = run(["run", "-q", str(program), "--trace", target, "-o", str(tmp_path)], capsys)
        assert code == 1 and f"cannot write {target}" in err


def test_set_on_a_missing_sample_is_an_error(tmp_path, capsys):
    program = write(tmp_path, "p.poe", SMALL)
    for key in ("y.levels=3", "x.y.levels=2"):
        code, _, err = run(["run", "-q", str(program), "--set", key], capsys)
        assert code == 1 and "no sample" in err and "(samples: x)" in err


def test_trace_of_a_program_without_samples_says_so(tmp_path, capsys):
    program = write(tmp_path, "p.poe", 'm = box_mask(box(0%, 0%, 50%, 50%), size=(8, 8))\nsave m to "m.png"\n')
    code, _, err = run(["run", "-q", str(program), "--trace", str(tmp_path / "t"), "-o", str(tmp_path)], capsys)
    assert code == 0 and "the program has no sample" in err


# --- numerics --------------------------------------------------------------------------------------


def test_the_documented_weighted_reward_form_runs(tmp_path):
    """exp(2.0 * r1 - 0.5 * r2), a negative weight: N(0, 1) · exp(-2 (x-1)² + 0.5 x²) is N(1, 1/4)."""
    program = poelang.parse("r1 = quadratic(center=[1.0])\nr2 = quadratic(center=[0.0])\n"
                            "x ~ gaussian(mean=[0.0]) * exp(2.0 * r1 - 0.5 * r2) with { levels = 20, particles = 256, "
                            "num_samples = 256, seed = 3 }\n")
    assert program.ok, program.render_diagnostics()
    x = program.run().samples["x"].samples.double()
    # log density: -x²/2 - 2(x-1)² + x²/2 = -2(x-1)²: N(1, 1/4)
    assert abs(float(x.mean()) - 1.0) < 0.15 and abs(float(x.var()) - 0.25) < 0.15


def test_a_schedule_that_does_not_start_at_one_is_a_warning():
    program = poelang.parse("x ~ gaussian(mean=[2.0, 2.0], std=0.5) with { schedule = [0.5, 0.25, 0.0], particles = 8 }\n")
    [warning] = program.diagnostics
    assert program.ok and warning.severity == "warning" and warning.message.startswith("the schedule starts at σ = 0.5, not 1")


def test_trace_json_is_strict_json(tmp_path):
    program = poelang.parse("x ~ gaussian(mean=[0.0, 0.0]) * exp(halfspace(normal=[1.0, 0.0], offset=0.0)) "
                            'with { levels = 4, particles = 8 }\nsave trace(x) to "hs_trace"\n')
    program.run(write=True, out_dir=tmp_path)
    text = (tmp_path / "hs_trace" / "trace.json").read_text(encoding="utf-8")
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in trace.json"))
    assert "Infinity" not in text and "NaN" not in text and "null" in text  # rejected particles: -inf -> null


def test_each_sample_draws_from_its_own_stream(tmp_path):
    program = poelang.parse("a ~ gaussian(mean=[0.0]) with { levels = 3, particles = 4 }\n"
                            "b ~ gaussian(mean=[0.0]) with { levels = 3, particles = 4 }\n")
    result = program.run()
    a, b = result.samples["a"].samples, result.samples["b"].samples
    assert not torch.equal(a, b)
    again = program.run()
    assert torch.equal(again.samples["a"].samples, a)  # still one result per program and seed
    alone = poelang.parse("a ~ gaussian(mean=[0.0]) with { levels = 3, particles = 4 }\n").run()
    assert torch.equal(alone.samples["a"].samples, a)  # a sample's draws do not depend on its neighbours


def test_an_overflowing_exponent_is_blamed_at_its_factor_not_at_an_expert(tmp_path, capsys):
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[5.0])^1e38 * gaussian(mean=[0.0]) with { levels = 3, particles = 2 }\n"
                                       "save x to \"x.npy\"\n")
    code, out, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert "p.poe:1:5: error: the exponent 1e+38 of 'gaussian#1' overflows float32 at level 0 (sigma=1.0000)" in err
    assert "dtype = float64" in err
    code, _, _ = run(["run", "-q", str(program), "-o", str(tmp_path / "o"), "--set", "dtype=float64"], capsys)
    assert code == 0 and np.isfinite(np.load(tmp_path / "o" / "x.npy")).all()


@pytest.mark.parametrize("where", ["program", "--set"])
def test_a_divergence_points_at_the_setting_where_it_was_written(tmp_path, where):
    """The engine's Divergence names a setting (tests/infer/test_divergence.py); the run points at it."""
    from poelang import infer
    from poelang.interpreter import Interpreter, _blamed_span

    setting = "cond_lambda = 0.5, " if where == "program" else ""
    source = f"a = gaussian(mean=[0.0])\nx ~ a * (gaussian(mean=[1.0]) given a) with {{ {setting}levels = 3 }}\n"
    program = poelang.parse(source, "p.poe")
    if where == "--set":
        program = program.with_settings(cond_lambda=0.5)
    divergence = infer.Divergence("the sampler diverged at level 2 (sigma=0.3333) after …", setting="cond_lambda")
    key = _blamed_span("x", divergence, program.spans)
    assert key == "x:cond_lambda"
    rendered = Interpreter(program).fail(str(divergence), key).render()
    assert ("p.poe:2:61" if where == "program" else "<--set cond_lambda>:1:15") in rendered, rendered
    assert _blamed_span("x", infer.Divergence("…", setting="step_size"), program.spans) == "x"  # not written: the sample


def test_fk_noise_and_cond_lambda_beyond_their_ranges_are_check_errors(tmp_path, capsys):
    for setting, bound in (("fk_noise = 1e200", "must be ≤ 1e+06"), ("cond_lambda = 2", "must be ≤ 1")):
        program = write(tmp_path, "p.poe", f"x ~ gaussian(mean=[0.0]) with {{ annealing = fk, {setting} }}\n")
        code, _, err = run(["check", str(program)], capsys)
        assert code == 1 and bound in err, err


class MemoryBoundNet(torch.nn.Module):
    """A tiny velocity network on a device that holds at most ``limit`` particles at once: above that, its
    forward raises torch.OutOfMemoryError, the exception torch raises when CUDA (or the CPU allocator) runs out."""

    def __init__(self, dim: int, limit: int, name: str) -> None:
        super().__init__()
        self.name, self.limit = name, limit
        self.layer = torch.nn.Linear(dim + 1, dim)
        torch.nn.init.zeros_(self.layer.weight)
        torch.nn.init.zeros_(self.layer.bias)

    def forward(self, x, sigma):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0] * 2} MiB "
                                         f"(GPU 0; {self.limit} particles fit)")
        return self.layer(torch.cat([x, sigma[:, None].to(x.dtype)], dim=1))

    def velocity(self, x, sigma):
        return x + self.forward(x, sigma)  # N(0, I)'s velocity plus what the (untrained, zero) layer adds


def load_memory_bound_net(args: dict, context):
    return MemoryBoundNet(context.event_shape[0], int(args["limit"]), context.name)


@pytest.fixture
def memory_bound_net():
    """`bounded(dim=…, limit=…)`: the network above as a plugin expert (registered the way entry points are)."""
    from poelang.experts.registry import default_registry
    from poelang.experts.spec import ExpertSpec, Param
    from poelang.types import Domain

    registry = default_registry()
    registry.register(ExpertSpec(
        "bounded", "generative", "a velocity network that runs out of memory above `limit` particles",
        (Param("dim", "Int"), Param("limit", "Int")), loader=f"{__name__}:load_memory_bound_net",
        domain=lambda bound: Domain("vector", (int(bound.values["dim"]),))))
    yield
    del registry.experts["bounded"]


def test_out_of_memory_halves_max_batch_once_then_names_sample_level_and_expert(tmp_path, capsys, memory_bound_net):
    source = ("x ~ bounded(dim=2, limit={limit}) with {{ levels = 3, particles = 8, mcmc = none }}\n"
              'save x to "x.npy"\n')
    program = write(tmp_path, "p.poe", source.format(limit=4))
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "halved")], capsys)
    assert code == 0, err
    assert err.count("ran out of memory") == 1  # said once, then retried at half the batch
    assert "poelang: 'x' ran out of memory at level 0 in 'bounded#1'; retrying with max_batch = 4 " in err
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "direct"), "--set", "max_batch=4"], capsys)
    assert code == 0 and "memory" not in err
    assert np.array_equal(np.load(tmp_path / "halved" / "x.npy"), np.load(tmp_path / "direct" / "x.npy"))

    program = write(tmp_path, "p.poe", source.format(limit=3))  # 8 → 4 → 2 particles at a time
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "quarter")], capsys)
    assert code == 0 and err.count("ran out of memory") == 1
    assert np.array_equal(np.load(tmp_path / "quarter" / "x.npy"), np.load(tmp_path / "direct" / "x.npy"))

    program = write(tmp_path, "p.poe", source.format(limit=0))  # not even one particle fits
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "none")], capsys)
    assert code == 1 and "Traceback" not in err and not (tmp_path / "none").exists()
    assert ("p.poe:1:1: error: not enough memory to sample 'x' at level 0 in 'bounded#1', even one particle at a "
            "time (max_batch = 1)") in err
    assert err.count("ran out of memory") == 1


# --- SIGKILL -------------------------------------------------------------------------------------

_KILLED_WRITER = """
import sys, time
from poelang.outputs import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a file")
    print(tmp, flush=True)
    time.sleep(60)  # killed here, mid-write
"""


def test_a_sigkilled_writers_temp_file_is_removed_by_the_next_run(tmp_path):
    """SIGKILL cannot be caught: the killed writer's hidden temp file stays until the next write into the folder."""
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out / "x.npy")], stdout=subprocess.PIPE,
                              text=True, env=env)
    temp = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert temp.exists() and temp.name.startswith(f".x.npy.poetmp{writer.pid}.")
    os.utime(temp, (time.time() - 10, time.time() - 10))  # untouched for longer than STALE_AFTER
    not_ours = [out / ".x.npy.3ycnr9dd.npy", out / "notes.poetmp.txt",  # another tool's temp names, a user's file
                out / f".y.npy.poetmp{os.getpid()}.abcdefgh.npy"]  # a live writer's (this test process)
    for path in not_ours:
        path.write_text("keep me")
        os.utime(path, (time.time() - 10, time.time() - 10))
    program = write(tmp_path, "p.poe", 'x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\nsave x to "x.npy"\n')
    done = subprocess.run([sys.executable, "-m", "poelang", "run", "-q", str(program), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not temp.exists()
    assert all(path.read_text() == "keep me" for path in not_ours)
    assert sorted(p.name for p in out.iterdir()) == sorted(["x.npy", "x.npy.json"] + [p.name for p in not_ours])


def test_a_fresh_temp_file_of_a_gone_writer_is_left_for_a_moment(tmp_path):
    """A writer on another machine sharing the folder has a pid this machine does not know: while it writes
    (its file touched in the last STALE_AFTER seconds) the file is not removed."""
    from poelang.outputs import is_stale_temp

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    temp = tmp_path / f".x.png.poetmp{int(gone.stdout)}.abcd_123.png"
    temp.write_bytes(b"")
    assert not is_stale_temp(temp)
    assert is_stale_temp(temp, now=time.time() + 10)


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5, 3.0])
def test_ctrl_c_at_any_moment_says_interrupted_and_leaves_no_partial_file(tmp_path, delay):
    """SIGINT from the imports (typer, torch) to the writes: exit 130 or a finished run, one line, no traceback.
    (Before ~0.1 s the interpreter itself is starting: Python's own handler is all there is.)"""
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=0.0, size=(64, 64)) with { levels = 30, particles = 8 }\n"
                    + "".join(f'save x to "x{i}.png"\n' for i in range(50)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "poelang", "run", "-q", str(program), "-o", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even when pytest runs in the background
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err and "Error" not in err, err
    if proc.returncode == 130:
        assert err.strip().splitlines()[-1] == "interrupted"
    written = {Path(line.removeprefix("wrote ")).name for line in out.splitlines()}
    on_disk = {p.name for p in (tmp_path / "o").glob("*")} if (tmp_path / "o").exists() else set()
    assert on_disk == written  # every file said, nothing half-written or hidden left behind


# --- A second round of hostile inputs (not in the appendix) ----------------------------

def test_a_device_name_with_a_space_is_a_diagnostic_not_a_traceback(tmp_path, capsys):
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program), "--device", "cpu "], capsys)
    assert code == 1 and "Traceback" not in err and "unknown device 'cpu '" in err


def test_set_with_a_dot_but_no_sample_name_is_an_error(tmp_path, capsys):
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program), "--set", ".levels=3"], capsys)
    assert code == 1 and "--set .levels: a sample's name goes before the dot (x.levels)" in err


def test_mixture_weights_near_the_float_limit_are_normalised_without_overflow(tmp_path):
    from poelang import infer
    from poelang.stdlib.analytic import MixtureFlow

    huge = MixtureFlow([1e308, 1e308], [[0.0], [1.0]])
    assert torch.allclose(huge.weights, torch.tensor([0.5, 0.5], dtype=huge.weights.dtype))
    result = infer.sample(infer.Problem(shape=(1,), factors=[infer.Factor(huge)]),
                          infer.Settings(levels=2, particles=4, keep_trace=False))
    assert bool(torch.isfinite(result.samples).all())


def test_a_box_the_check_accepts_has_the_size_the_run_crops(tmp_path):
    """box(5%, 0%, 45%, 100%) of 8 px: the run rounds each edge (0.4 → 0, 3.6 → 4), so the expert is 4 wide."""
    source = "x ~ gaussian(mean=0.0, size=(8, 8)) * gaussian(mean=1.0, size=(8, 4))[box(5%, 0%, 45%, 100%)] " \
             "with { levels = 2, particles = 2 }\n"
    result = poelang.parse(source).run()
    assert tuple(result.samples["x"].samples.shape[-2:]) == (8, 8)


def test_an_undecodable_program_name_does_not_break_the_trace(tmp_path, capsys):
    name = tmp_path / "p\udcff.poe"  # a file name with the byte 0xff, as Python carries it
    name.write_text("x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\nsave trace(x) to \"t\"\n")
    code, _, err = run(["run", "-q", str(name), "-o", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "t" / "trace.json").read_text())["sample"] == "x"
    assert "p?.poe" in (tmp_path / "o" / "t" / "trace.html").read_text(encoding="utf-8")


def test_a_symbolic_link_in_the_output_directory_does_not_lead_saves_out(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir(), elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    (out / "y.npy").symlink_to(elsewhere / "target.npy")  # a link as the file's own name is replaced, not followed
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\n"
                                       'save x to "y.npy"\nsave x to "link/x.npy"\n')
    code, _, err = run(["run", "-q", str(program), "-o", str(out)], capsys)
    assert code == 1 and "p.poe:3:1: error: cannot write" in err and "a symbolic link leads it out" in err
    assert list(elsewhere.iterdir()) == [] and not (out / "y.npy").is_symlink()
    code, _, err = run(["run", "-q", str(program), "-o", str(out), "--allow-outside"], capsys)
    assert code == 0 and (elsewhere / "x.npy").exists()


def test_sweep_options_and_tables_that_used_to_crash_or_pass(tmp_path, capsys):
    program = write(tmp_path, "p.poe", "param n = 2\nx ~ gaussian(mean=[0.0]) with { levels = n, particles = 2 }\n")
    table = write(tmp_path, "t.csv", "n\n2\n")
    write(tmp_path, "file", "not a folder")
    code, _, err = run(["sweep", str(program), str(table), "-o", str(tmp_path / "file")], capsys)
    said = " ".join(line.strip("│ ") for line in err.splitlines())
    assert code == 2 and "Traceback" not in err and "is a file; give a folder" in said
    code, _, err = run(["sweep", str(program), str(table), "-o", str(tmp_path / "o"), "--devices", "cpu,cuda:7"], capsys)
    said = " ".join(line.strip("│ ") for line in err.splitlines())
    assert code == 2 and "internal error" not in err and "cuda:7: no CUDA device" in said and not (tmp_path / "o").exists()
    twice = write(tmp_path, "t.jsonl", '{"n": 2, "n": 3}\n')
    code, _, err = run(["sweep", str(program), str(twice), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "t.jsonl:1:10: error: not a JSON object: key 'n' appears twice" in err


@pytest.mark.parametrize("loader", ["load_depth", "load_mask", "load_image"])
def test_a_float_input_with_nan_or_inf_pixels_is_refused_at_its_call(tmp_path, capsys, loader):
    """A depth sensor's holes (NaN) used to reach the experts, and the run blamed an expert or the inversion."""
    from PIL import Image

    values = np.ones((8, 8), dtype=np.float32)
    values[2, 3], values[4, 4] = np.nan, np.inf
    Image.fromarray(values).save(tmp_path / "holes.tiff")
    use = {"load_depth": 'd = load_depth("holes.tiff")\nsave d to "d.png"\n',
           "load_mask": 'm = load_mask("holes.tiff")\nx ~ gaussian(mean=0.0, size=(8, 8))[m] * gaussian(mean=0.0, size=(8, 8))\n',
           "load_image": 'img = load_image("holes.tiff")\nx ~ gaussian(mean=0.0, size=(8, 8)) with { init = inversion, invert = img }\n'}
    program = write(tmp_path, "p.poe", use[loader])
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert "error: cannot read holes.tiff: 2 of its pixels are NaN or infinite" in err and "expert" not in err


def test_an_init_or_inversion_tensor_with_nan_is_a_settings_error():
    from poelang import infer
    from poelang.stdlib.analytic import GaussianFlow

    problem = infer.Problem(shape=(2,), factors=[infer.Factor(GaussianFlow(torch.zeros(2)))])
    bad = torch.tensor([0.0, float("nan")])
    with pytest.raises(infer.SettingsError, match="the init tensor holds NaN or infinite values"):
        infer.sample(problem, infer.Settings(levels=2, particles=2, init=bad))
    with pytest.raises(infer.SettingsError, match="the canvas to invert holds NaN or infinite values"):
        infer.sample(problem, infer.Settings(levels=2, particles=2, init="inversion", invert=bad))


def test_python_values_a_program_cannot_hold_are_python_errors_that_say_so(tmp_path):
    program = poelang.parse("param n = 2.0\nx ~ gaussian(mean=[n]) with { levels = 2, particles = 2 }\n")
    with pytest.raises(ValueError, match="nan is not a number a program can hold"):
        program.run(particles=float("nan"))  # was: setting 'particles': expected an integer, got 'nan'
    with pytest.raises(ValueError, match="inf is not a number"):
        program.run(params={"n": float("inf")})  # was: undefined name 'inf'
    with pytest.raises(TypeError, match="not Tensor"):
        program.run(schedule=torch.tensor([1.0, 0.0]))  # was: unknown function or expert 'tensor'
    with pytest.raises(TypeError, match="poelang.parse takes a program's text"):
        poelang.parse(3)  # was: AttributeError deep in the parser
    with pytest.raises(ValueError, match="nan is not a number"):
        poelang.sweep(write(tmp_path, "p.poe", "param n = 2.0\n"), [{"n": float("nan")}], tmp_path / "o")
    with pytest.raises(TypeError, match="row 1 is a str"):
        poelang.sweep(tmp_path / "p.poe", ["n=3"], tmp_path / "o")
    with pytest.raises(poelang.PoeError, match="setting 'seed': expected an integer, got 1.5"):
        program.run(seed=1.5)  # was truncated to 1 silently
    import numpy

    assert program.run(levels=numpy.int64(2), device=torch.device("cpu")).samples["x"].samples.shape == (1, 1)


def test_fmt_writes_through_a_symbolic_link_and_keeps_the_files_mode(tmp_path, capsys):
    """fmt used to replace a link with a formatted copy (the real program unformatted, the link gone) and to
    reset a 0640 program to 0644."""
    real = write(tmp_path, "real.poe", "x ~ gaussian(mean=[0.0])   with {levels=2}\n")
    real.chmod(0o640)
    link = tmp_path / "link.poe"
    link.symlink_to(real)
    code, _, err = run(["fmt", str(link)], capsys)
    assert code == 0, err
    assert link.is_symlink() and real.read_text() == "x ~ gaussian(mean=[0.0]) with {\n    levels = 2\n}\n"
    assert real.stat().st_mode & 0o777 == 0o640


def test_meshes_and_scene_values_the_simulator_cannot_take(tmp_path, capsys):
    """A one-triangle mesh used to end in qhull's traceback inside genesis; 1e30 m/s in the renderer's
    'zfar must be >0 and >znear'."""
    pytest.importorskip("trimesh")
    write(tmp_path, "flat.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    write(tmp_path, "far.obj", "v 1e30 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    for mesh, message in (("flat.obj", "it is flat (its vertices lie in one plane)"),
                          ("far.obj", "a vertex lies 1e+30 m from the origin")):
        program = write(tmp_path, "p.poe", f'm = mesh("{mesh}")\nr = render([m], camera=camera())\nsave r.rgb to "r.png"\n')
        code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o")], capsys)
        assert code == 1 and "Traceback" not in err and message in err, err
    program = write(tmp_path, "p.poe", "b = sphere(velocity=(1e30, 0.0, 0.0))\nr = render([b], camera=camera())\n"
                                       'save r.rgb to "r.png"\n')
    code, _, err = run(["check", str(program)], capsys)
    assert code == 1 and "velocity 1e+30 m/s is beyond the simulator's range" in err


def test_a_simulator_backend_error_becomes_a_value_error():
    from poelang.stdlib.scene_builtins import _backend

    class QhullError(RuntimeError):  # the kind of exception genesis lets through from its libraries
        pass

    def fails():
        raise QhullError("QH6214 qhull input error: not enough points\nWhile executing: | qhull i QJ")

    with pytest.raises(ValueError, match=r"the simulator could not handle this scene \(QhullError: QH6214 .*points\)$"):
        _backend(fails)


def test_a_setting_given_twice_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[0.0]) with { levels = 2, particles = 2 }\n")
    code, _, err = run(["run", "-q", str(program), "--set", "levels=2", "--set", "levels=3"], capsys)
    assert code == 2 and "levels is set twice (2 and 3)" in " ".join(line.strip("│ ") for line in err.splitlines())


def test_fmt_says_a_missing_file_as_run_and_check_say_it(tmp_path, capsys):
    missing = str(tmp_path / "nope.poe")
    said = [run([command, missing], capsys)[2].strip() for command in ("fmt", "check")]
    assert said[0] == said[1] == f"{missing}: error: cannot read file: No such file or directory"


class CubicNet(torch.nn.Module):
    """A velocity network that is linear near the data and cubic far out (a network outside its training range)."""

    def __init__(self, dim: int, name: str) -> None:
        super().__init__()
        self.name = name
        self.cubic = torch.nn.Parameter(torch.tensor(0.05), requires_grad=False)

    def velocity(self, x, sigma):
        d = x - 1.0
        return d + self.cubic * d ** 3


def load_cubic_net(args: dict, context):
    return CubicNet(context.event_shape[0], context.name)


@pytest.fixture
def cubic_net():
    from poelang.experts.registry import default_registry
    from poelang.experts.spec import ExpertSpec, Param
    from poelang.types import Domain

    registry = default_registry()
    registry.register(ExpertSpec(
        "cubic", "generative", "a velocity network that grows like x³ far from its data", (Param("dim", "Int"),),
        loader=f"{__name__}:load_cubic_net", domain=lambda bound: Domain("vector", (int(bound.values["dim"]),))))
    yield
    del registry.experts["cubic"]


@pytest.mark.parametrize("where", ["program", "--set"])
def test_a_runaway_conditional_update_stops_the_run_at_cond_lambda(tmp_path, capsys, cubic_net, where):
    """End to end: the run's diagnostic names cond_lambda, the level and σ, and points where it was written."""
    setting = "cond_lambda = 1, " if where == "program" else ""
    program = write(tmp_path, "p.poe", "prior = gaussian(mean=[0.0, 0.0])\n"
                    f"x ~ prior * (cubic(dim=2) given prior) with {{ {setting}cond_updates = 4, mcmc = none, "
                    "levels = 6, particles = 8 }\nsave x to \"x.npy\"\n")
    extra = ["--set", "cond_lambda=1"] if where == "--set" else []
    code, _, err = run(["run", "-q", str(program), "-o", str(tmp_path / "o"), *extra], capsys)
    assert code == 1 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert re.search(r"error: the sampler diverged at level \d \(sigma=0\.\d{4}\) after the conditional updates "
                     r"\(cond_lambda = 1\)", err), err
    assert ("p.poe:2:" if where == "program" else "<--set cond_lambda>:1:15") in err
    assert ("cond_lambda = 1, cond_updates" if where == "program" else "cond_lambda = 1\n") in err
    code, _, _ = run(["run", "-q", str(program), "-o", str(tmp_path / "o"), "--set", "cond_lambda=0.001"], capsys)
    assert code == 0 and np.isfinite(np.load(tmp_path / "o" / "x.npy")).all()


def test_a_written_setting_that_has_no_effect_is_a_warning(tmp_path, capsys):
    """A run used to ignore these silently; the rule is the engine's (infer.settings.ignored_settings)."""
    program = write(tmp_path, "p.poe", "x ~ gaussian(mean=[0.0]) with { output = best, num_samples = 5, "
                                       "mcmc = mala, leapfrog = 10, chunk = 4, shift = 5 }\n")
    code, _, err = run(["check", str(program)], capsys)
    assert code == 0
    for message in ("num_samples has no effect here: it counts the draws of output = sample",
                    "leapfrog has no effect here: it is the number of leapfrog steps of mcmc = hmc",
                    "chunk has no effect here: it is the chunk size of path = autoregressive",
                    "shift has no effect here: it shifts schedule = flux_shift"):
        assert message in err, err
    code, _, err = run(["check", str(program), "--set", "target_accept=0.7"], capsys)
    assert "target_accept has no effect" not in err  # mala uses it
