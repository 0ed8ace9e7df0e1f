"""FLUX.1 Fill × Depth object insertion on a GPU: time, memory and FLOP utilisation of the real engine.

    python benchmarks/gpu_flux.py                                   # random bf16 weights, full size
    python benchmarks/gpu_flux.py --fill-model DIR --depth-model DIR  # real weights (diffusers directories)
    python benchmarks/gpu_flux.py --tiny --device cpu --levels 2    # tiny configs: a CI smoke run in seconds

The product is the paper's insertion program (``programs/flux/insert_object.poe``),

    x ~ fill * (depth given fill)[hole]    L = 4 particles, 1 Langevin step, 2 Eq. 7 updates, 1024 × 1024

built from FLUX.1 Fill [dev] and Depth [dev] transformers, the FLUX VAE and the
CLIP-L and T5-XXL text encoders at their published sizes (the configs below).
Without ``--fill-model/--depth-model`` the weights are random bf16 tensors built
directly on the GPU: the time and memory of a run do not depend on the
weights' values (nothing here is data-dependent but the NaN checks).

The experts are the real ones: :func:`poelang.stdlib.flux.load_flux_fill` and
``load_flux_depth`` are called as they are (for in-memory components, with
their ``FluxModel`` pointed at those components), so the prompt embeddings,
the Fill condition (VAE-encoded masked image + packed mask), the Depth
condition (VAE-encoded control image), the time shift exp(mu) and the
:class:`~poelang.stdlib.flux.FluxFlow` objects are what ``poelang run`` makes.
The sample goes through :func:`poelang.infer.sample`.

Measured, in one run:

* one level (the median of the whole sample's levels, from the engine's
  per-level callback) and the whole sample (``--levels``, default 28);
* the same level written by hand: the same transformer calls on packed tokens
  (per particle batch: velocity of fill and depth for the Langevin score, two
  Eq. 7 updates = fill velocity + depth velocity with backward, then fill and
  depth velocities for x0_hat / the next Euler step), so that the engine's
  overhead is a ratio;
* peak memory (``torch.cuda.max_memory_allocated``) of each;
* the fraction of the bf16 FLOP floor reached: matmul FLOPs of the transformer
  calls counted analytically from the config (:func:`transformer_flops`; the
  counts of calls from ``result.evaluations``), over the measured time,
  against the GPU's dense bf16 peak.

The backward pass of an Eq. 7 update differentiates with respect to the input
only (the experts' weights are frozen, ``requires_grad=False``): it costs one
forward's linear-layer FLOPs (no weight gradients) plus twice the attention
FLOPs (dQ, dK, dV, dP), not the 2× forward of training. Gradient checkpointing
(on by default here, ``--no-checkpointing`` to turn it off) recomputes each
block's forward during the backward; that recomputation is not counted, as
MFU conventions go.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# --- configs ------------------------------------------------------------------------
# The published configs of black-forest-labs/FLUX.1-Fill-dev and FLUX.1-Depth-dev
# (transformer/config.json, vae/config.json, text_encoder/config.json, text_encoder_2/config.json,
# scheduler/scheduler_config.json); the two repositories share the VAE and text encoders.

FLUX_TRANSFORMER = dict(
    patch_size=1, out_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FULL = dict(
    fill=dict(FLUX_TRANSFORMER, in_channels=384),  # 64 latent + 64 masked-image latent + 256 packed mask
    depth=dict(FLUX_TRANSFORMER, in_channels=128),  # 64 latent + 64 control latent
    vae=dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        act_fn="silu", latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611,
        shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
        mid_block_add_attention=True,
    ),
    clip=dict(  # openai/clip-vit-large-patch14, text tower
        vocab_size=49408, hidden_size=768, intermediate_size=3072, projection_dim=768, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    ),
    t5=dict(  # google/t5-v1_1-xxl, encoder
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ),
    scheduler=dict(use_dynamic_shifting=True, base_image_seq_len=256, max_image_seq_len=4096, base_shift=0.5,
                   max_shift=1.15, shift=3.0),
    size=1024, clip_tokens=77, t5_tokens=512,
)
# Tiny stand-ins (those of tests/experts/tiny_flux.py): 2-channel VAE of scale 2, one block of each kind.
TINY = dict(
    fill=dict(patch_size=1, in_channels=32, out_channels=8, num_layers=1, num_single_layers=1, attention_head_dim=16,
              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
              axes_dims_rope=(4, 4, 8)),
    vae=dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), layers_per_block=1, latent_channels=2,
        norm_num_groups=1, sample_size=32, scaling_factor=1.5035, shift_factor=0.0609, use_quant_conv=False,
        use_post_quant_conv=False,
    ),
    clip=dict(vocab_size=64, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
              max_position_embeddings=16, projection_dim=32, pad_token_id=0, bos_token_id=2, eos_token_id=3),
    t5=dict(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
            pad_token_id=0, eos_token_id=3, decoder_start_token_id=0),
    scheduler=dict(use_dynamic_shifting=True, base_image_seq_len=16, max_image_seq_len=256, base_shift=0.5,
                   max_shift=1.15),
    size=32, clip_tokens=16, t5_tokens=24,
)
TINY["depth"] = dict(TINY["fill"], in_channels=16)

PROMPT = "a red armchair in a sunny living room"
# GPU name (substring, checked in order) → dense bf16 peak, TFLOP/s
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
               ("L40S", 362.0))


def configs(tiny: bool) -> dict[str, Any]:
    return TINY if tiny else FULL


# --- FLOP counting ------------------------------------------------------------------


def transformer_flops(config: dict, image_tokens: int, text_tokens: int, backward: bool = False) -> int:
    """Matmul FLOPs (2 per multiply-add) of one FluxTransformer2DModel call on ONE sample.

    ``backward=False``: the forward pass. ``backward=True``: the backward pass
    of an Eq. 7 update, which differentiates with respect to the image tokens
    only (frozen weights): every matmul whose input depends on them again (the
    input gradient), attention twice (dQ, dK, dV, dP), and nothing for the
    parts that see only text, timestep and guidance (the context embedder, the
    first double block's text q/k/v, the AdaLN and embedding MLPs).
    """
    c = dict(config)
    d = c["num_attention_heads"] * c["attention_head_dim"]
    ff = 4 * d  # FeedForward(mult=4) in the double blocks, mlp_ratio=4 in the single blocks
    p2 = c.get("patch_size", 1) ** 2
    c_in, c_out = c["in_channels"], (c.get("out_channels") or c["in_channels"]) * p2
    n_img, n_txt = image_tokens, text_tokens
    s = n_img + n_txt
    double, single = c["num_layers"], c["num_single_layers"]

    def mm(m: int, k: int, n: int) -> int:
        return 2 * m * k * n

    image_io = mm(n_img, c_in, d) + mm(n_img, d, c_out)  # x_embedder, proj_out
    blocks = (double * (4 * mm(s, d, d) + 2 * mm(s, d, ff))  # q, k, v, out and the MLP of both streams
              + single * (3 * mm(s, d, d) + mm(s, d, ff) + mm(s, d + ff, d)))  # q, k, v, proj_mlp, proj_out
    attention = (double + single) * 2 * mm(s, s, d)  # QK^T and AV over all heads
    text_in = mm(n_txt, c["joint_attention_dim"], d)  # context_embedder
    embeddings = mm(1, 256, d) + mm(1, d, d)  # timestep MLP
    embeddings += (mm(1, 256, d) + mm(1, d, d)) if c.get("guidance_embeds") else 0
    embeddings += mm(1, c["pooled_projection_dim"], d) + mm(1, d, d)  # pooled text MLP
    modulation = double * 2 * mm(1, d, 6 * d) + single * mm(1, d, 3 * d) + mm(1, d, 2 * d)  # AdaLN
    if not backward:
        return image_io + blocks + attention + text_in + embeddings + modulation
    text_only = 3 * mm(n_txt, d, d) if double else 0  # block 0's text q, k, v see no image token yet
    return image_io + blocks - text_only + 2 * attention


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """The dense bf16 peak of the device: ``--peak-tflops``, else looked up by GPU name."""
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


# --- building -----------------------------------------------------------------------


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def frozen(module):
    """As :func:`poelang.stdlib.hub.shared` leaves a loaded component: eval mode, no parameter gradients."""
    module.eval()
    module.requires_grad_(False)
    return module


def random_components(cfg: dict, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict[str, Any]:
    """Every component from its config with random weights, built directly on ``device`` in ``dtype``."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from poelang.stdlib.wordlevel import make_tokenizer

    torch.manual_seed(seed)
    # Parameters are created on the device in their final dtype: Cls(**config).to(bf16) would first hold a float32
    # copy (48 GB for one FLUX transformer), which next to the other transformer does not fit in 80 GB.
    with torch.device(device), default_dtype(dtype):
        parts = {
            "fill": FluxTransformer2DModel(**cfg["fill"]),
            "depth": FluxTransformer2DModel(**cfg["depth"]),
            "vae": AutoencoderKL(**cfg["vae"]),
            "clip": CLIPTextModel(CLIPTextConfig(**cfg["clip"])),
            "t5": T5EncoderModel(T5Config(**cfg["t5"])),
        }
    for module in parts.values():
        frozen(module)
    # The prompt's words need a tokenizer only to become ids; a word-level one pads to the same lengths.
    words = PROMPT.split()
    parts["tokenizer"] = make_tokenizer(words, cfg["clip_tokens"])
    parts["tokenizer_2"] = make_tokenizer(words, cfg["t5_tokens"])
    return parts


def in_memory_models(parts: dict[str, Any], scheduler: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """``FluxModel`` objects (the loaders' view of a model directory) over in-memory components."""
    from poelang.stdlib import flux
    from poelang.stdlib.codecs import VaeCodec

    codec = VaeCodec(parts["vae"], "random-vae")  # one VAE and one pair of text encoders, shared as in the Hub repos
    models = {}
    for kind in ("fill", "depth"):
        model = flux.FluxModel.__new__(flux.FluxModel)  # its methods, none of its directory loading
        model.path, model.device, model.dtype = Path(f"<random {kind}>"), str(device), dtype
        model.transformer = parts[kind]
        model.clip, model.t5 = parts["clip"], parts["t5"]
        model.tokenizer, model.tokenizer_2 = parts["tokenizer"], parts["tokenizer_2"]
        model.codec = codec
        model.text_key = ("random", id(parts["clip"]), id(parts["t5"]))
        model.scheduler_config = dict(scheduler)
        models[kind] = model
    return models


@contextlib.contextmanager
def loaders_use(models: dict | None):
    """Run :mod:`poelang.stdlib.flux`'s loaders unchanged, with their FluxModel taken from ``models``
    (keyed by the ``model`` argument) instead of from disk; ``None``: load from disk as usual."""
    from poelang.stdlib import flux

    if models is None:
        yield
        return
    original = flux.FluxModel
    flux.FluxModel = lambda model, base_dir, dtype, device: models[model]
    try:
        yield
    finally:
        flux.FluxModel = original


def insertion_inputs(size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A background image, the object's soft hole and its depth map (what insert_object.poe renders)."""
    from poelang import values

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    image = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
    ctx = values.Context(Path("."))
    square = values.box_mask(ctx, values.box(ctx, 0.3 * size, 0.35 * size, 0.7 * size, 0.85 * size), (size, size))
    hole = values.blur(ctx, values.dilate(ctx, square, size / 128), size / 64)  # 8 px and 16 px at 1024
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    depth = (1 - (xx**2 + yy**2).sqrt() / 2).clamp(0, 1) * square
    return {"image": image, "hole": hole, "depth": depth}


def insertion_problem(args, cfg: dict, device: torch.device, dtype: torch.dtype):
    """The two FluxFlow experts through the real loaders, and the engine's Problem and Settings."""
    from poelang import infer
    from poelang.interpreter import ExpertContext
    from poelang.stdlib import flux

    size = cfg["size"]
    parts = models = None
    if args.fill_model is None:
        parts = random_components(cfg, device, dtype, args.seed)
        models = in_memory_models(parts, cfg["scheduler"], device, dtype)
    dtype_name = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")
    guidance = {s.name: next(p.default for p in s.params if p.name == "guidance") for s in flux.EXPERTS}
    inputs = insertion_inputs(size, args.seed)
    shape = (3, size, size)
    context = lambda name: ExpertContext(name, shape, str(device), Path("."), shape)  # noqa: E731
    with loaders_use(models):
        fill = flux.load_flux_fill({"prompt": PROMPT, "image": inputs["image"], "mask": inputs["hole"],
                                    "guidance": guidance["flux_fill"], "model": args.fill_model or "fill",
                                    "dtype": dtype_name}, context("fill"))
        depth = flux.load_flux_depth({"prompt": "a red armchair", "depth": inputs["depth"],
                                      "guidance": guidance["flux_depth"], "model": args.depth_model or "depth",
                                      "dtype": dtype_name}, context("depth"))
    if args.free_text_encoders:
        parts = None  # the flows hold the transformers and the VAE
        release_text_encoders(models)
    for flow in (fill, depth):
        if args.checkpointing:
            flow.transformer.enable_gradient_checkpointing()
    canvas = fill.codec.latent_shape(shape)
    mask = fill.codec.pool_mask(inputs["hole"]).expand(canvas).clone()  # as the interpreter makes depth[hole]
    problem = infer.Problem(shape=canvas, factors=[infer.Factor(fill), infer.Factor(depth, mask=mask, parents=(0,))])
    settings = infer.Settings(
        levels=args.levels, particles=args.particles, mcmc_steps=1, kernel="langevin", cond_updates=2,
        schedule="flux_shift", shift=fill.schedule_shift, weighting="greedy", keep_trace=False, seed=args.seed,
    )
    return problem, settings, fill, depth


def release_text_encoders(models: dict | None) -> None:
    """Drop CLIP and T5 once the prompts are embedded (the flows keep their transformers and the VAE)."""
    from poelang.stdlib import hub

    if models is None:
        hub.clear()  # the loaded components' only other owner
    else:
        for model in models.values():
            model.clip = model.t5 = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- timing -------------------------------------------------------------------------


class Clock:
    """Wall time that includes the device's queued work: synchronise, then perf_counter."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict, key: str):
    """``out[key]`` = peak bytes allocated on the device inside the block (None off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield
    out[key] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


@dataclass
class EngineRun:
    seconds: float
    level_seconds: list[float]  # levels 1 .. T-1 (level T only reweights: no transformer call)
    evaluations: dict[str, int]
    calls: dict[str, int]  # forward calls per expert (FluxFlow.calls), particles counted
    calls_at_start: dict[str, int]  # ... made before level 1 (the initial x0_hat)
    peak_bytes: int | None = None


def time_engine(problem, settings, device: torch.device, flows: dict[str, Any]) -> EngineRun:
    """One whole sample through poelang.infer.sample, with a timestamp after every level."""
    from poelang import infer

    clock = Clock(device)
    stamps: list[float] = []
    at_start: dict[str, int] = {}

    def callback(info) -> None:
        stamps.append(clock())
        if info.level == 0:
            at_start.update({name: f.calls for name, f in flows.items()})

    for f in flows.values():
        f.calls = 0
    memory: dict[str, Any] = {}
    with peak_memory(device, memory, "peak"):
        start = clock()
        result = infer.sample(problem, settings, callback=callback, device=device)
        seconds = clock() - start
    levels = [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]  # level n = stamps[n] - stamps[n-1], n < T
    calls = {name: f.calls for name, f in flows.items()}
    if sum(calls.values()) != result.evaluations["calls"]:
        raise RuntimeError(f"expert calls {calls} do not add up to the engine's count {result.evaluations}")
    return EngineRun(seconds, levels, dict(result.evaluations), calls, at_start, memory["peak"])


class HandLoop:
    """The same level written by hand: direct transformer calls on packed tokens, no engine.

    Per level, on the batch of L particles: Euler step; velocities of fill and
    depth for the Langevin score; ``cond_updates`` Eq. 7 updates (fill
    velocity, depth velocity with backward); velocities of fill and depth at
    the new positions (x0_hat and the next Euler step). That is the engine's
    call pattern: 4 fill calls, 2 depth calls, 2 depth calls with backward.
    """

    def __init__(self, fill, depth, mask: torch.Tensor, settings, device: torch.device):
        from poelang.stdlib.codecs import pack

        self.fill, self.depth, self.settings, self.device = fill, depth, settings, device
        self.channels, self.h, self.w = mask.shape[-3:]  # the latent canvas
        self.mask = pack(mask[None].to(device))  # depth's soft mask on tokens, [1, N, 4C]
        self.coverage = 1 + self.mask
        self.calls: dict[str, int] = {}  # transformer calls per expert, particles counted (as FluxFlow.calls)

    def velocity(self, flow, tokens: torch.Tensor, sigma: float) -> torch.Tensor:
        b = tokens.shape[0]
        self.calls[flow.name] = self.calls.get(flow.name, 0) + b
        hidden = torch.cat([tokens.to(flow.dtype), flow.condition.expand(b, -1, -1)], dim=2)
        out = flow.transformer(
            hidden_states=hidden, timestep=torch.full((b,), sigma, device=self.device, dtype=flow.dtype),
            guidance=None if flow.guidance is None else flow.guidance.expand(b),
            pooled_projections=flow.pooled.expand(b, -1), encoder_hidden_states=flow.prompt_embeds.expand(b, -1, -1),
            txt_ids=flow.text_ids, img_ids=flow.img_ids(self.h, self.w), return_dict=False,
        )[0]
        return out.float()

    def composed(self, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(velocity, score) of the product at x."""
        with torch.no_grad():
            vf, vd = self.velocity(self.fill, x, sigma), self.velocity(self.depth, x, sigma)
        score = lambda v: -(x + (1 - sigma) * v) / max(sigma, self.settings.sigma_min)  # noqa: E731
        return (vf + self.mask * vd) / self.coverage, score(vf) + self.mask * score(vd)

    def level(self, x: torch.Tensor, v: torch.Tensor, sigma_from: float, sigma: float):
        s = self.settings
        x = x + (sigma - sigma_from) * v  # Euler
        _, score = self.composed(x, sigma)  # Langevin
        eta = s.step_size * sigma**2 / self.coverage
        x = x + eta * score + (2 * eta).sqrt() * torch.randn_like(x)
        for _ in range(s.cond_updates):  # Eq. 7
            with torch.no_grad():
                v_parent = self.velocity(self.fill, x, sigma)
            xi = x.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = (self.mask * (self.velocity(self.depth, xi, sigma) - v_parent) ** 2).sum()
                (grad,) = torch.autograd.grad(loss, xi)
            x = xi.detach() - s.cond_lambda * grad
        v, _ = self.composed(x, sigma)  # x0_hat, and the next level's Euler step
        return x, v


def time_hand_loop(loop: HandLoop, sigmas: torch.Tensor, particles: int, levels: int, device: torch.device):
    """Seconds of ``levels`` hand-written levels (after one warm-up level) at mid-schedule sigmas, and peak bytes."""
    from poelang.stdlib.codecs import pack

    clock = Clock(device)
    g = torch.Generator(device=device).manual_seed(0)
    x = pack(torch.randn(particles, loop.channels, loop.h, loop.w, generator=g, device=device))
    v = torch.zeros_like(x)
    T = sigmas.numel() - 1
    picks = [max(1, min(T - 1, T // 2 + k)) for k in range(levels + 1)]
    seconds, memory = [], {}
    with peak_memory(device, memory, "peak"):
        for i, n in enumerate(picks):
            start = clock()
            x, v = loop.level(x, v, float(sigmas[n - 1]), float(sigmas[n]))
            if i:  # the first is a warm-up
                seconds.append(clock() - start)
    return seconds, memory["peak"]


# --- the report ---------------------------------------------------------------------


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, value: str, note: str = "", **data: Any) -> None:
        self.rows.append((label, value, note))
        self.data.update(data)

    def render(self) -> str:
        w0 = max(len(r[0]) for r in self.rows)
        w1 = max(len(r[1]) for r in self.rows)
        lines = [f"{'measurement':<{w0}}  {'value':>{w1}}  note", "-" * (w0 + w1 + 8)]
        lines += [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in self.rows]
        return "\n".join(lines)


def gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.2f} GiB"


def seconds_text(s: float) -> str:
    return f"{s:.3f} s" if s >= 0.1 else f"{s * 1e3:.2f} ms"


def flops_text(n: float, per: str = "") -> str:
    """FLOPs with an SI prefix: 1.23 PFLOP, 456 TFLOP/s, ..."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}FLOP{per}"
    return f"{n:.3g} FLOP{per}"


def calls_per_level(engine: EngineRun, loop: HandLoop, hand_levels: int) -> tuple[dict, dict]:
    """Transformer calls (particles counted) of one full level: the engine's and the hand loop's."""
    full = max(len(engine.level_seconds), 1)
    poelang = {k: (engine.calls[k] - engine.calls_at_start[k]) / full for k in engine.calls}
    hand = {k: loop.calls.get(k, 0) / hand_levels for k in engine.calls}
    return poelang, hand


def report(args, problem, fill, depth, engine: EngineRun, loop: HandLoop, hand: list[float], hand_peak, device,
           weights_bytes) -> Table:
    poelang_calls, hand_calls = calls_per_level(engine, loop, len(hand) + 1)  # + the warm-up level
    if poelang_calls != hand_calls:
        raise RuntimeError(f"the hand loop does not make the engine's calls: {hand_calls} vs {poelang_calls} per level")
    s_level = statistics.median(engine.level_seconds)
    s_hand = statistics.median(hand)
    ratio = s_level / s_hand
    n_img = problem.shape[-1] * problem.shape[-2] // 4
    n_txt = fill.prompt_embeds.shape[1]
    fwd = {name: transformer_flops(f.transformer.config, n_img, n_txt) for name, f in (("fill", fill), ("depth", depth))}
    bwd = transformer_flops(depth.transformer.config, n_img, n_txt, backward=True)  # depth is the only child
    grads = engine.evaluations["velocity_grad"]
    total = sum(engine.calls[k] * fwd[k] for k in fwd) + grads * bwd
    start = sum(engine.calls_at_start[k] * fwd[k] for k in fwd)
    full_levels = max(len(engine.level_seconds), 1)
    per_level = (total - start) / full_levels
    peak = peak_tflops(device, args.peak_tflops)

    def utilisation(flops: float, seconds: float) -> tuple[str, str, float | None]:
        achieved = flops / seconds / 1e12
        if peak is None:
            return flops_text(flops / seconds, "/s"), "no peak known: give --peak-tflops", None
        return (flops_text(flops / seconds, "/s"), f"{100 * achieved / peak:.1f}% of the {peak:g} TFLOP/s bf16 peak",
                achieved / peak)

    t = Table()
    T = args.levels
    t.add("poelang level", seconds_text(s_level), f"median of the sample's {len(engine.level_seconds)} full level(s)",
          poelang_level_s=s_level)
    t.add("hand-written level", seconds_text(s_hand), f"median of {len(hand)}, same transformer calls",
          hand_level_s=s_hand)
    t.add("ratio poelang / hand loop", f"{ratio:.3f}", "level time; 1.000 = no engine overhead", ratio=ratio)
    t.add("calls per level", f"{sum(poelang_calls.values()):g}",
          " + ".join(f"{k} {v:g}" for k, v in poelang_calls.items()) + ", the same in both (particles counted)",
          calls_per_level=poelang_calls)
    t.add("poelang whole sample", seconds_text(engine.seconds), f"{T} levels, flux_shift (shift {fill.schedule_shift:.3f})",
          sample_s=engine.seconds)
    t.add("transformer evaluations", f"{sum(engine.calls.values())}",
          f"one particle each: fill {engine.calls['fill']} + depth {engine.calls['depth']}, {grads} with backward",
          evaluations=engine.evaluations, calls=engine.calls)
    t.add("FLOP per call", flops_text(fwd["fill"]),
          f"fill forward, one particle; depth {flops_text(fwd['depth'])}, its backward {flops_text(bwd)} "
          f"({n_img} image + {n_txt} text tokens)", flops_forward=fwd, flops_backward=bwd)
    t.add("FLOP per level", flops_text(per_level), f"whole sample {flops_text(total)}",
          flops_level=per_level, flops_sample=total)
    for label, flops, secs, key in (("FLOP rate, poelang level", per_level, s_level, "util_level"),
                                    ("FLOP rate, hand loop", per_level, s_hand, "util_hand"),
                                    ("FLOP rate, whole sample", total, engine.seconds, "util_sample")):
        value, note, frac = utilisation(flops, secs)
        t.add(label, value, note, **{key: frac})
    t.add("peak memory, poelang", gib(engine.peak_bytes), f"resident before sampling (weights, conditions): {gib(weights_bytes)}",
          peak_bytes=engine.peak_bytes, weights_bytes=weights_bytes)
    note = "" if engine.peak_bytes is None else f"ratio {engine.peak_bytes / hand_peak:.3f}"
    t.add("peak memory, hand loop", gib(hand_peak), note, hand_peak_bytes=hand_peak)
    return t


# --- main ---------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (cpu only with --tiny)")
    p.add_argument("--tiny", action="store_true",
                   help="32 × 32 px and, without model directories, tiny configs: a smoke run of this script")
    p.add_argument("--fill-model", help="FLUX.1 Fill [dev] diffusers directory (real weights); needs --depth-model")
    p.add_argument("--depth-model", help="FLUX.1 Depth [dev] diffusers directory (real weights)")
    p.add_argument("--levels", type=int, default=28, help="annealing levels of the whole sample (>= 2)")
    p.add_argument("--particles", type=int, default=4)
    p.add_argument("--baseline-levels", type=int, default=3, help="hand-written levels timed (after one warm-up)")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, if its name is not known here")
    p.add_argument("--no-checkpointing", dest="checkpointing", action="store_false",
                   help="no gradient checkpointing in the Eq. 7 backward (more memory)")
    p.add_argument("--free-text-encoders", action="store_true",
                   help="drop CLIP and T5 after embedding the prompts (poelang run keeps them)")
    p.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                   help="random weights' dtype (default bfloat16 on GPU, float32 on CPU; loaded models follow "
                        "poelang.stdlib.hub: float32 on CPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads on --device cpu (tiny models gain nothing from more, and a busy machine makes "
                        "them much slower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the measurements here")
    args = p.parse_args(argv)
    if (args.fill_model is None) != (args.depth_model is None):
        p.error("--fill-model and --depth-model go together")
    if args.levels < 2:
        p.error("--levels must be at least 2 (the last level makes no transformer call)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_flux: no CUDA GPU here (torch.cuda.is_available() is False), so nothing to measure; "
              "run it on a GPU, or smoke-test the script with --tiny --device cpu")
        return 0
    if device.type != "cuda" and not args.tiny:
        print("gpu_flux: full-size FLUX on a CPU is not a benchmark (about 60 GB of weights); "
              "use a GPU, or --tiny --device cpu for a smoke run")
        return 0
    from poelang.stdlib import hub

    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    cfg = configs(args.tiny)
    dtype = hub.torch_dtype("bfloat16", str(device))  # bf16 on GPU; float32 on CPU, as the experts run there
    if args.dtype:
        dtype = getattr(torch, args.dtype)
    clock = Clock(device)

    start = clock()
    problem, settings, fill, depth = insertion_problem(args, cfg, device, dtype)
    build_s = clock() - start
    weights_bytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    flows = {"fill": fill, "depth": depth}

    from poelang import infer

    infer.sample(problem, settings.replace(levels=2), device=device)  # warm-up: one full level
    engine = time_engine(problem, settings, device, flows)
    loop = HandLoop(fill, depth, problem.factors[1].mask, settings, device)
    hand, hand_peak = time_hand_loop(loop, engine_sigmas(settings), args.particles, args.baseline_levels, device)

    size = cfg["size"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    weights = (f"real: {args.fill_model}, {args.depth_model}" if args.fill_model else
               "RANDOM, built on the device from the published configs (time and memory do not depend on the "
               "weights' values)")
    print(f"gpu_flux: FLUX.1 Fill x Depth insertion, {'TINY configs, ' if args.tiny else ''}{size}x{size} px, "
          f"L = {args.particles} particles, 1 Langevin step, 2 conditional updates, {args.levels} levels, "
          f"{str(dtype).replace('torch.', '')}")
    print(f"device: {name} ({device}); weights: {weights}; built in {build_s:.1f} s; "
          f"gradient checkpointing {'on' if args.checkpointing else 'off'}")
    table = report(args, problem, fill, depth, engine, loop, hand, hand_peak, device, weights_bytes)
    print(table.render())
    if args.json:
        args.json.write_text(json.dumps({"device": name, "tiny": args.tiny, "random_weights": not args.fill_model,
                                         "levels": args.levels, "particles": args.particles, **table.data},
                                        indent=2, default=str))
    return 0


def engine_sigmas(settings) -> torch.Tensor:
    from poelang.infer import make_schedule

    return make_schedule(settings.schedule, settings.levels, settings.shift)


if __name__ == "__main__":
    sys.exit(main())
