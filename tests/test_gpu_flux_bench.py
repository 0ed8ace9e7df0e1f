"""benchmarks/gpu_flux.py: its FLOP counter, its configs, and a smoke run of the script on tiny models (CPU)."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_flux.py"
ROWS = (
    "poelang level", "hand-written level", "ratio poelang / hand loop", "calls per level", "poelang whole sample",
    "transformer evaluations", "FLOP per call", "FLOP per level", "FLOP rate, poelang level", "FLOP rate, hand loop",
    "FLOP rate, whole sample", "peak memory, poelang", "peak memory, hand loop",
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_flux", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_flux"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_flux", None)


def _measured_flops(config: dict, latent: int, text_tokens: int, batch: int = 3) -> tuple[float, float]:
    """(forward, backward) FLOPs per sample that torch's FlopCounterMode sees, weights frozen as in the engine."""
    from diffusers import FluxTransformer2DModel
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from poelang.stdlib.codecs import image_ids

    torch.manual_seed(0)
    model = FluxTransformer2DModel(**config).eval().requires_grad_(False)
    n_img = latent * latent // 4
    x = torch.randn(batch, n_img, config["in_channels"], requires_grad=True)
    kwargs = dict(
        encoder_hidden_states=torch.randn(batch, text_tokens, config["joint_attention_dim"]),
        pooled_projections=torch.randn(batch, config["pooled_projection_dim"]), timestep=torch.rand(batch),
        guidance=torch.full((batch,), 3.5), txt_ids=torch.zeros(text_tokens, 3), img_ids=image_ids(latent, latent),
        return_dict=False,
    )
    with sdpa_kernel(SDPBackend.MATH):  # attention as matmuls, which the counter sees on CPU
        with FlopCounterMode(display=False) as forward:
            out = model(hidden_states=x, **kwargs)[0]
        with FlopCounterMode(display=False) as backward:
            torch.autograd.grad(out.square().sum(), x)
    return forward.get_total_flops() / batch, backward.get_total_flops() / batch


@pytest.mark.parametrize("shape", [dict(), dict(num_layers=2, num_single_layers=3, in_channels=16)])
def test_flop_counter_matches_torch_flop_counter(bench, shape):
    config = dict(bench.TINY["fill"], **shape)
    latent, text_tokens = (16, 24) if not shape else (32, 7)
    forward, backward = _measured_flops(config, latent, text_tokens)
    n_img = latent * latent // 4
    counted = bench.transformer_flops(config, n_img, text_tokens)
    counted_backward = bench.transformer_flops(config, n_img, text_tokens, backward=True)
    assert counted == pytest.approx(forward, rel=0.1)
    assert counted_backward == pytest.approx(backward, rel=0.1)
    # a hand count of the tiny config's forward: D = 32, 64 image + 24 text tokens, one block of each kind
    if not shape:
        d, s = 32, 88
        by_hand = (2 * 64 * 32 * d + 2 * 64 * d * 8 + 2 * 24 * 32 * d  # x_embedder, proj_out, context_embedder
                   + 2 * s * d * 12 * d * 2  # the two blocks' token matmuls, 12 D² weights per token each
                   + 2 * 2 * 2 * s * s * d  # QK^T and AV in both blocks
                   + 2 * (256 * d + d * d) * 2 + 2 * (32 * d + d * d)  # timestep, guidance, pooled-text MLPs
                   + 2 * 2 * d * 6 * d + 2 * d * 3 * d + 2 * d * 2 * d)  # AdaLN: double (2 streams), single, out
        assert counted == by_hand


def test_full_configs_are_the_published_models(bench):
    """Built on the meta device (no memory): the parameter counts of FLUX.1 Fill/Depth [dev] and their encoders."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    full = bench.FULL
    builders = {
        "fill": lambda: FluxTransformer2DModel(**full["fill"]),
        "depth": lambda: FluxTransformer2DModel(**full["depth"]),
        "vae": lambda: AutoencoderKL(**full["vae"]),
        "clip": lambda: CLIPTextModel(CLIPTextConfig(**full["clip"])),
        "t5": lambda: T5EncoderModel(T5Config(**full["t5"])),
    }
    with torch.device("meta"):
        counts = {k: sum(p.numel() for p in build().parameters()) for k, build in builders.items()}
    assert counts == {"fill": 11_902_391_360, "depth": 11_901_604_928, "vae": 83_819_683, "clip": 123_060_480,
                      "t5": 4_762_310_656}
    # 4096 image + 512 text tokens: about 74 TFLOP a forward, 89 a backward w.r.t. the input
    assert bench.transformer_flops(full["fill"], 4096, 512) == pytest.approx(74.39e12, rel=1e-3)
    assert bench.transformer_flops(full["depth"], 4096, 512, backward=True) == pytest.approx(89.2e12, rel=1e-3)


def _run(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.perf_counter() - start


def _table(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        for label in ROWS:
            if line.startswith(label + "  "):
                rows[label] = line[len(label):].strip()
    return rows


def _check_smoke_run(done, seconds: float, data: dict, levels: int, particles: int = 4) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert seconds < 60
    rows = _table(done.stdout)
    assert set(rows) == set(ROWS), done.stdout
    ratio = float(re.match(r"[0-9.eE+-]+", rows["ratio poelang / hand loop"]).group())
    assert math.isfinite(ratio) and ratio > 0
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)
    # the engine's calls: level 0 evaluates both experts once; each full level makes 4 fill and 4 depth
    # calls per particle, two of the depth calls with a backward (Eq. 7); the last level makes none
    assert data["evaluations"]["velocity_grad"] == particles * 2 * (levels - 1)
    assert data["calls"] == {"fill": particles * (1 + 4 * (levels - 1)), "depth": particles * (1 + 4 * (levels - 1))}
    assert data["calls_per_level"] == {"fill": 4 * particles, "depth": 4 * particles}
    fwd, bwd = data["flops_forward"], data["flops_backward"]
    total = sum(data["calls"][k] * fwd[k] for k in fwd) + data["evaluations"]["velocity_grad"] * bwd
    assert data["flops_sample"] == total
    assert data["flops_level"] == pytest.approx(4 * particles * (fwd["fill"] + fwd["depth"]) + 2 * particles * bwd)
    for key in ("poelang_level_s", "hand_level_s", "sample_s"):
        assert math.isfinite(data[key]) and data[key] > 0


def test_tiny_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "gpu_flux.json"
    done, seconds = _run("--tiny", "--device", "cpu", "--levels", "2", "--json", str(out))
    data = json.loads(out.read_text())
    _check_smoke_run(done, seconds, data, levels=2)
    assert data["random_weights"] is True
    assert "RANDOM" in done.stdout and "do not depend on the weights' values" in done.stdout


@pytest.mark.slow
def test_tiny_smoke_run_with_model_directories(tmp_path):
    """The real-weights path: diffusers directories loaded through FluxModel (tiny ones, saved here)."""
    spec = importlib.util.spec_from_file_location("tiny_flux", ROOT / "tests" / "experts" / "tiny_flux.py")
    tiny_flux = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_flux)
    fill, depth = tiny_flux.build(tmp_path / "fill", "fill"), tiny_flux.build(tmp_path / "depth", "depth")
    out = tmp_path / "gpu_flux.json"
    done, seconds = _run("--tiny", "--device", "cpu", "--levels", "2", "--fill-model", str(fill),
                         "--depth-model", str(depth), "--json", str(out))
    data = json.loads(out.read_text())
    _check_smoke_run(done, seconds, data, levels=2)
    assert data["random_weights"] is False
    assert f"real: {fill}" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_exits_0():
    done, _ = _run()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]
