"""Wan2.1 experts on tiny models built from configs: the video codec, conditions, parity with diffusers' pipelines.

The models are saved with ``save_pretrained`` and loaded through the same code
as real weights. Parity runs poelang with one expert, one particle, no MCMC,
from the same initial noise and on the σ schedule of diffusers'
FlowMatchEulerDiscreteScheduler, and compares with WanPipeline /
WanImageToVideoPipeline / WanVACEPipeline given that scheduler and that
noise (the pipelines encode conditions with the VAE posterior's mean, as
poelang does). Poelang keeps video latents frames first (``[B, f', C, h, w]``),
the pipelines channels first, hence the transposes.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402

import poelang  # noqa: E402
from poelang import infer  # noqa: E402
from poelang.experts.unavailable import ExpertUnavailable  # noqa: E402
from poelang.interpreter import ExpertContext, Interpreter, _Decoded  # noqa: E402
from poelang.stdlib import hub, wan  # noqa: E402
from poelang.stdlib.codecs import WanVaeCodec  # noqa: E402

from . import tiny_wan  # noqa: E402
from .parity import interpreter_for, loads_by_component, offline, poelang_run  # noqa: E402

PROMPT = "a red ball falls on the wooden table"
SIZE, FRAMES, LATENT_FRAMES = 32, 9, 3
LATENT = (LATENT_FRAMES, tiny_wan.LATENT_CHANNELS, SIZE // 8, SIZE // 8)
STEPS = 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    return {kind: tiny_wan.build(root / kind, kind) for kind in ("t2v", "i2v", "vace")}


@pytest.fixture(autouse=True)
def fresh_components(monkeypatch):
    from diffusers.pipelines.wan import pipeline_wan, pipeline_wan_i2v, pipeline_wan_vace

    # diffusers 0.42's I2V and VACE pipelines call ftfy without checking it is installed (WanPipeline checks);
    # the experts clean prompts with WanPipeline's function, so the pipelines get it too
    for module in (pipeline_wan_i2v, pipeline_wan_vace):
        monkeypatch.setattr(module, "prompt_clean", pipeline_wan.prompt_clean)
    hub.clear()
    wan._PROMPTS.clear()
    yield
    hub.clear()


def context(name="x", region=None):
    shape = (FRAMES, 3, SIZE, SIZE)
    return ExpertContext(name, shape, "cpu", Path("."), shape, region)


def args(kind, models, **extra):
    base = {"prompt": PROMPT, "guidance": 5.0, "model": str(models[kind]), "dtype": "float32"}
    return {**base, **extra}


def pipeline(kind, models):
    pipe = tiny_wan.pipeline_class(kind).from_pretrained(models[kind])
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=tiny_wan.FLOW_SHIFT)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _write_inputs(folder):
    from PIL import Image

    g = torch.Generator().manual_seed(7)
    Image.fromarray((torch.rand(SIZE, SIZE, 3, generator=g) * 255).byte().numpy()).save(folder / "first.png")
    depth = torch.linspace(0, 255, SIZE)[:, None].expand(SIZE, SIZE).byte().numpy()
    Image.fromarray(depth).save(folder / "depth.png")


# --- the codec ---------------------------------------------------------------------


def test_codec_shapes_frames_first_and_says_which_frame_counts_work(models):
    codec = wan.WanModel(str(models["t2v"]), None, "float32", "cpu", "t2v").codec
    assert (codec.scale, codec.temporal, codec.align, codec.channels) == (8, 4, 16, 16)
    assert codec.latent_shape((81, 3, 480, 832)) == (21, 16, 60, 104)
    assert codec.latent_shape((FRAMES, 3, SIZE, SIZE)) == LATENT
    with pytest.raises(ValueError, match="4k \\+ 1 frames .* got 32: use 29 or 33"):
        codec.latent_shape((32, 3, 480, 832))
    with pytest.raises(ValueError, match="multiple of 16 px"):
        codec.latent_shape((9, 3, 40, 32))
    video = torch.rand(2, FRAMES, 3, SIZE, SIZE) * 2 - 1
    latents = codec.encode(video)
    assert latents.shape == (2, *LATENT)
    assert codec.decode(latents).shape == video.shape


def test_codec_is_the_pipelines_normalisation(models):
    pipe = tiny_wan.pipeline_class("t2v").from_pretrained(models["t2v"])
    codec = WanVaeCodec(pipe.vae)
    video = torch.rand(1, 3, FRAMES, SIZE, SIZE) * 2 - 1
    raw = pipe.vae.encode(video).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    assert not torch.allclose(mean, torch.zeros_like(mean)) and not torch.allclose(std, torch.ones_like(std))
    torch.testing.assert_close(codec.encode(video.transpose(1, 2)), ((raw - mean) / std).transpose(1, 2))
    torch.testing.assert_close(codec.decode(((raw - mean) / std).transpose(1, 2)),
                               pipe.vae.decode(raw, return_dict=False)[0].transpose(1, 2))


def test_per_frame_masks_pool_over_each_latent_frames_pixel_frames():
    codec = WanVaeCodec.__new__(WanVaeCodec)
    codec.scale, codec.temporal = 8, 4
    mask = torch.zeros(FRAMES, SIZE, SIZE)
    mask[0, :16, :16] = 1  # the first frame alone is latent frame 0
    mask[1:3, 16:, 16:] = 1  # two of latent frame 1's four frames
    pooled = codec.pool_mask(mask)
    assert pooled.shape == (LATENT_FRAMES, 4, 4)
    assert torch.equal(pooled[0, :2, :2], torch.ones(2, 2)) and pooled[0].sum() == 4
    assert torch.equal(pooled[1, 2:, 2:], torch.full((2, 2), 0.5)) and pooled[1].sum() == 2
    assert pooled[2].sum() == 0
    assert codec.pool_mask(mask[0]).shape == (4, 4)  # one mask for every frame
    with pytest.raises(ValueError, match="4k \\+ 1 frames"):
        codec.pool_mask(torch.zeros(8, SIZE, SIZE))


# --- conditions and velocity ---------------------------------------------------------


def test_i2v_condition_and_image_embedding_are_the_pipelines(models, tmp_path):
    from PIL import Image

    _write_inputs(tmp_path)
    pil = Image.open(tmp_path / "first.png")
    image = poelang.values.load_image(poelang.values.Context(tmp_path, "cpu"), "first.png")
    pipe = pipeline("i2v", models)
    pixels = pipe.video_processor.preprocess(pil, height=SIZE, width=SIZE)
    torch.testing.assert_close(pixels[0], image, rtol=0, atol=0)
    noise = torch.zeros(1, tiny_wan.LATENT_CHANNELS, LATENT_FRAMES, SIZE // 8, SIZE // 8)
    _, ref = pipe.prepare_latents(pixels, 1, tiny_wan.LATENT_CHANNELS, SIZE, SIZE, FRAMES, torch.float32, "cpu",
                                  None, noise)
    expert = wan.load_wan_i2v(args("i2v", models, image=image), context())
    assert expert.condition.shape == (1, 4 + tiny_wan.LATENT_CHANNELS, LATENT_FRAMES, 4, 4)
    torch.testing.assert_close(expert.condition, ref)
    torch.testing.assert_close(expert.image_embeds, pipe.encode_image(pil, "cpu"))


def test_vace_control_of_a_depth_video_is_the_pipelines(models):
    from PIL import Image

    depth = torch.rand(FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    depth = (depth * 255).round() / 255  # exactly representable as 8-bit frames
    frames = [Image.fromarray((d * 255).round().byte().numpy()).convert("RGB") for d in depth]
    pipe = pipeline("vace", models)
    video, mask, refs = pipe.preprocess_conditions(frames, None, None, 1, SIZE, SIZE, FRAMES, torch.float32, "cpu")
    ref = torch.cat([pipe.prepare_video_latents(video, mask, refs, None, "cpu"), pipe.prepare_masks(mask, refs)], dim=1)
    expert = wan.load_wan_depth(args("vace", models, depth=depth), context())
    assert expert.control.shape == (1, 2 * tiny_wan.LATENT_CHANNELS + 64, LATENT_FRAMES, 4, 4)
    torch.testing.assert_close(expert.control, ref)
    with pytest.raises(ValueError, match="depth video is 5×32×32 but this expert.s video is 9×32×32"):
        wan.load_wan_depth(args("vace", models, depth=depth[:5]), context())


def test_vace_mask_and_kept_video_are_the_pipelines(models):
    """wan_depth(mask=m, video=v): VACE generates under m following the depth and sees v elsewhere -- the control
    WanVACEPipeline builds from the composite video (depth under the mask, v outside) and the same mask."""
    from PIL import Image

    g = torch.Generator().manual_seed(4)
    depth = (torch.rand(FRAMES, SIZE, SIZE, generator=g) * 255).round() / 255
    keep = (torch.rand(FRAMES, 3, SIZE, SIZE, generator=g) * 255).round() / 255 * 2 - 1
    mask = torch.zeros(FRAMES, SIZE, SIZE)
    for f in range(FRAMES):  # a square that moves, so that each latent frame has its own mask
        mask[f, 8:24, 2 + f:18 + f] = 1
    composite = torch.where(mask[:, None] > 0.5, (depth * 2 - 1)[:, None].expand(-1, 3, -1, -1), keep)
    to_pil = lambda t: Image.fromarray(((t + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())  # noqa: E731
    pipe = pipeline("vace", models)
    video, pmask, refs = pipe.preprocess_conditions(
        [to_pil(c) for c in composite], [Image.fromarray((m * 255).byte().numpy()).convert("RGB") for m in mask],
        None, 1, SIZE, SIZE, FRAMES, torch.float32, "cpu")
    ref = torch.cat([pipe.prepare_video_latents(video, pmask, refs, None, "cpu"), pipe.prepare_masks(pmask, refs)], dim=1)
    expert = wan.load_wan_depth(args("vace", models, depth=depth, mask=mask, video=keep), context())
    torch.testing.assert_close(expert.control, ref)
    plain = wan.load_wan_depth(args("vace", models, depth=depth), context())
    assert not torch.allclose(plain.control, expert.control)
    with pytest.raises(ValueError, match="the mask is 5×32×32 but this expert.s video is 9×32×32"):
        wan.load_wan_depth(args("vace", models, depth=depth, mask=mask[:5]), context())


@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_velocity_is_the_transformers_output_with_classifier_free_guidance(guidance, models):
    pipe = pipeline("t2v", models)
    expert = wan.load_wan_t2v(args("t2v", models, guidance=guidance, negative_prompt="blurry"), context())
    cond, uncond = pipe.encode_prompt(PROMPT, "blurry", max_sequence_length=512)
    x = torch.randn(2, *LATENT)
    sigma = torch.tensor([0.9, 0.3])
    latents = x.transpose(1, 2)
    with torch.no_grad():
        c = pipe.transformer(hidden_states=latents, timestep=sigma * 1000, encoder_hidden_states=cond.expand(2, -1, -1),
                             return_dict=False)[0]
        u = pipe.transformer(hidden_states=latents, timestep=sigma * 1000,
                             encoder_hidden_states=uncond.expand(2, -1, -1), return_dict=False)[0]
    ref = u + guidance * (c - u) if guidance > 1 else c
    assert not torch.allclose(c, u)
    torch.testing.assert_close(expert.velocity(x, sigma), ref.transpose(1, 2))
    assert (expert.negative_embeds is None) == (guidance <= 1)


def test_velocity_is_differentiable(models):
    expert = wan.load_wan_t2v(args("t2v", models), context())
    x = torch.randn(1, *LATENT, requires_grad=True)
    expert.velocity(x, torch.tensor([0.5])).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["i2v", "vace"])
def test_bfloat16_weights_with_a_float32_vae_as_on_a_gpu(kind, models, monkeypatch):
    """On CUDA the transformer and encoders run in bfloat16 and the VAE in float32: conditions follow the weights."""
    extra = {"image": torch.rand(3, SIZE, SIZE) * 2 - 1} if kind == "i2v" else {"depth": torch.rand(FRAMES, SIZE, SIZE)}
    load = wan.load_wan_i2v if kind == "i2v" else wan.load_wan_depth
    reference = load(args(kind, models, **extra), context())
    hub.clear()
    wan._PROMPTS.clear()
    monkeypatch.setattr(hub, "torch_dtype", lambda name, device: torch.bfloat16)
    expert = load(args(kind, models, **extra), context())
    assert expert.transformer.dtype == torch.bfloat16 and expert.codec.vae.dtype == torch.float32
    for t in (expert.prompt_embeds, expert.negative_embeds, expert.condition, expert.image_embeds, expert.control):
        assert t is None or t.dtype == torch.bfloat16
    x = torch.randn(2, *LATENT, dtype=torch.float64)
    sigma = torch.tensor([0.8, 0.2], dtype=torch.float64)
    v = expert.velocity(x, sigma)
    assert v.dtype == torch.float64
    ref = reference.velocity(x, sigma)
    assert float((v - ref).norm() / ref.norm()) < 0.05  # bfloat16 rounding (~2.5% here), amplified 5× by guidance


# --- one-expert runs against the pipelines ----------------------------------------------------


def euler_sigmas() -> list[float]:
    """The σ of FlowMatchEulerDiscreteScheduler(shift) at STEPS steps, down to 0, as the pipelines walk them."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=tiny_wan.FLOW_SHIFT)
    scheduler.set_timesteps(STEPS)
    return [float(s) for s in scheduler.sigmas]


PROGRAMS = {
    "t2v": f'x ~ wan_t2v(prompt="{{p}}", frames={FRAMES}, size=({SIZE}, {SIZE}), model="{{m}}")',
    "i2v": (f'first = load_image("first.png", size=({SIZE}, {SIZE}))\n'
            f'x ~ wan_i2v(prompt="{{p}}", image=first, frames={FRAMES}, model="{{m}}")'),
    "vace": (f'd = load_depth("depth.png", size=({SIZE}, {SIZE}))\n'
             f'x ~ wan_depth(prompt="{{p}}", depth=d, frames={FRAMES}, negative_prompt="blurry", model="{{m}}")'),
}


def settings(schedule: str) -> str:
    return f" with {{\n    schedule = {schedule}\n    particles = 1\n    mcmc = none\n    annealing = flow\n}}\n"



@pytest.mark.parametrize("kind", ["t2v", "i2v", "vace"])
def test_one_expert_run_reproduces_the_diffusers_pipeline(kind, models, tmp_path):
    from PIL import Image

    _write_inputs(tmp_path)
    sigmas = euler_sigmas()
    source = PROGRAMS[kind].format(p=PROMPT, m=models[kind]) + settings(str(sigmas))
    interp, problem, codec, noise, result = poelang_run(source, tmp_path)
    assert result.plan["kernel"] == "none" and problem.shape == LATENT
    assert result.sigmas.tolist() == sigmas  # the pipeline's σ, taken as they are (levels ignored)

    pipe = pipeline(kind, models)
    extra = {}
    if kind == "i2v":
        extra = {"image": Image.open(tmp_path / "first.png")}
    if kind == "vace":
        extra = {"video": [Image.open(tmp_path / "depth.png").convert("RGB")] * FRAMES, "negative_prompt": "blurry"}
    common = dict(prompt=PROMPT, height=SIZE, width=SIZE, num_frames=FRAMES, num_inference_steps=STEPS,
                  guidance_scale=5.0, max_sequence_length=512, latents=noise.transpose(1, 2), **extra)
    latents = pipe(**common, output_type="latent").frames
    assert torch.equal(pipe.scheduler.sigmas, torch.tensor(sigmas, dtype=torch.float32))
    torch.testing.assert_close(result.samples, latents.transpose(1, 2), rtol=1e-4, atol=1e-4)
    video = pipe(**common, output_type="pt").frames  # [B, f, 3, H, W] in [0, 1]
    torch.testing.assert_close((codec.decode(result.samples) + 1) / 2, video, rtol=1e-4, atol=1e-4)


def test_shift_auto_is_wans_flow_shift_and_flux_shift_is_wans_own_schedule(models, tmp_path):
    source = PROGRAMS["t2v"].format(p=PROMPT, m=models["t2v"]) + settings("flux_shift")
    program, interp = interpreter_for(source, tmp_path)
    node = program.graph.samples[0]
    problem, _ = interp.problem(node)
    assert problem.factors[0].expert.schedule_shift == tiny_wan.FLOW_SHIFT
    s = interp.settings(node.settings)
    shift = infer.settings.resolved_shift(s.shift, problem.factors[0].expert)  # what the sampler uses
    assert s.shift == "auto" and shift == tiny_wan.FLOW_SHIFT
    unipc = tiny_wan.scheduler()  # what Wan2.1's repositories ship: UniPC on shifted flow sigmas
    unipc.set_timesteps(s.levels)
    ours = infer.schedules.make_schedule(s.schedule, s.levels, shift)
    # the same shifted line, except that UniPC's unshifted steps end at 1/1000 rather than at 1/levels
    base = 1 - (1 - 1 / 1000) * torch.arange(s.levels, dtype=torch.float64) / s.levels
    unipc_sigmas = torch.cat([infer.schedules.flux_time_shift(base, shift), torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(unipc_sigmas.float(), unipc.sigmas)
    assert s.levels == 50 and float((ours - unipc_sigmas).abs().max()) < 3e-3


# --- products, sharing, loading -------------------------------------------------------------


def test_two_wan_experts_share_the_vae_and_text_encoder(models, tmp_path):
    _write_inputs(tmp_path)
    source = (f'first = load_image("first.png", size=({SIZE}, {SIZE}))\n'
              f'd = load_depth("depth.png", size=({SIZE}, {SIZE}))\n'
              f'hole = box_mask(box(25%, 25%, 75%, 75%), size=({SIZE}, {SIZE}))\n'
              f'video = wan_i2v(prompt="{PROMPT}", image=first, frames={FRAMES}, model="{models["i2v"]}")\n'
              f'depth = wan_depth(prompt="a red ball", depth=d, frames={FRAMES}, model="{models["vace"]}")\n'
              f'x ~ video * depth[hole] with {{\n    levels = 2\n    particles = 2\n    mcmc = none\n}}\n')
    program, interp = interpreter_for(source, tmp_path)
    problem, codec = interp.problem(program.graph.samples[0])
    assert loads_by_component() == {"transformer": 2, "vae": 1, "text_encoder": 1, "tokenizer": 1, "image_encoder": 1,
                     "image_processor": 1}
    first, second = (f.expert for f in problem.factors)
    assert first.codec == second.codec and first.prompt_embeds is not second.prompt_embeds
    assert first.negative_embeds is second.negative_embeds  # one "" embedding for both
    mask = problem.factors[1].mask
    assert mask.shape == LATENT and torch.equal(mask[:, 0], mask[:, 5])  # the same for every channel
    assert torch.equal(mask, torch.full(LATENT, 0.25))  # 8..24 px covers a quarter of each 16-px token
    result = interp.run_sample(program.graph.samples[0])  # decoded: [L, f, 3, H, W]
    assert result.samples.shape == (1, FRAMES, 3, SIZE, SIZE) and torch.isfinite(result.samples).all()


def test_a_per_frame_mask_becomes_a_mask_per_latent_frame(models, tmp_path):
    """What blur(sim.mask, …) gives a Wan product: masks [f, H, W], pooled to [f', h, w] for every channel."""
    _write_inputs(tmp_path)
    source = (f'm = box_mask(box(0%, 0%, 50%, 50%), size=({SIZE}, {SIZE}))\n'
              f'd = load_depth("depth.png", size=({SIZE}, {SIZE}))\n'
              f'scene = wan_t2v(prompt="{PROMPT}", frames={FRAMES}, size=({SIZE}, {SIZE}), model="{models["t2v"]}")\n'
              f'ball = wan_depth(prompt="a red ball", depth=d, frames={FRAMES}, model="{models["vace"]}")\n'
              f'x ~ scene * ball[m]' + settings("linear"))
    program, interp = interpreter_for(source, tmp_path)
    per_frame = torch.zeros(FRAMES, SIZE, SIZE)
    per_frame[0, :16, :16] = 1  # the ball in the top left corner at first ...
    per_frame[1:, 16:, 16:] = 1  # ... then in the bottom right one
    interp._values["m"] = per_frame  # a simulator's masks (the checker typed m as one mask; values may be per frame)
    problem, _ = interp.problem(program.graph.samples[0])
    mask = problem.factors[1].mask
    assert mask.shape == LATENT
    expected = torch.zeros(LATENT)
    expected[0, :, :2, :2] = 1
    expected[1:, :, 2:, 2:] = 1
    assert torch.equal(mask, expected)


def test_image_to_video_times_a_simulator_runs_in_the_wan_latent(models, tmp_path):
    """programs/video/physics_video.poe's product on the tiny I2V model: the simulator follows Wan's codec."""
    import imageio.v3 as iio

    g = torch.Generator().manual_seed(5)
    iio.imwrite(tmp_path / "sim.gif", (torch.rand(FRAMES, SIZE, SIZE, 3, generator=g) * 255).byte().numpy(),
                extension=".gif")
    source = (f'sim = load_video("sim.gif", size=({SIZE}, {SIZE}), frames={FRAMES})\n'
              f'video = wan_i2v(prompt="{PROMPT}", image=frame(sim, 0), frames={FRAMES}, model="{models["i2v"]}")\n'
              f'physics = simulator(target=sim, weight=20.0)\n'
              f'x ~ video * physics with {{\n    levels = 3\n    particles = 1\n    mcmc_steps = 1\n'
              f'    cond_updates = 0\n}}\n')
    program, interp = interpreter_for(source, tmp_path)
    node = program.graph.samples[0]
    problem, codec = interp.problem(node)
    physics = problem.factors[1].expert
    assert problem.shape == LATENT and physics.codec is codec
    sim = interp.value("sim")
    # at σ = 1 the noisy point says nothing of x0: x0_hat = x − v is the Gaussian's mean, E(sim) in Wan's latent
    v = physics.velocity(torch.zeros(1, *LATENT, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(-v, codec.encode(sim[None]).double())
    result = interp.run_sample(node)
    assert result.samples.shape == (1, FRAMES, 3, SIZE, SIZE) and torch.isfinite(result.samples).all()


def test_box_region_crops_latents_and_conditions_on_the_token_grid(models, tmp_path):
    _write_inputs(tmp_path)
    source = (f'd = load_depth("depth.png", size=(16, 16))\n'
              f'scene = wan_t2v(prompt="{PROMPT}", frames={FRAMES}, size=({SIZE}, {SIZE}), model="{models["t2v"]}")\n'
              f'ball = wan_depth(prompt="a red ball", depth=d, frames={FRAMES}, model="{models["vace"]}")\n'
              f'x ~ scene * ball[box(50%, 0%, 100%, 50%)]' + settings("linear"))
    program, interp = interpreter_for(source, tmp_path)
    problem, _ = interp.problem(program.graph.samples[0])
    # pixels x 16..32, y 0..16 → latent (scale 8) rows 0..2, columns 2..4, in every frame and channel
    assert problem.factors[1].region == (slice(None), slice(None), slice(0, 2), slice(2, 4))
    ball = problem.factors[1].expert
    assert ball.control.shape[-3:] == (LATENT_FRAMES, 2, 2)
    x = torch.randn(2, *problem.shape)
    crop = x[(slice(None),) + problem.factors[1].region]
    assert ball.velocity(crop, torch.tensor([0.5, 0.5])).shape == crop.shape == (2, LATENT_FRAMES, 16, 2, 2)
    # from Python, a condition the size of the canvas is cropped to the region
    d = interp.value("d")
    whole = torch.zeros(SIZE, SIZE)
    whole[0:16, 16:32] = d
    cropped = wan.load_wan_depth(args("vace", models, depth=whole), context("b", region=(0, 16, 16, 32)))
    torch.testing.assert_close(cropped.control, ball.control)


def test_i2v_first_frame_of_the_wrong_size_is_a_clear_error(models):
    with pytest.raises(ValueError, match="first frame is 16×16 px but this expert's frames are 32×32"):
        wan.load_wan_i2v(args("i2v", models, image=torch.zeros(3, 16, 16)), context())


def test_rewards_see_decoded_frames(models):
    seen = []

    class Reward:
        name = "r"

        def score(self, x0):
            seen.append(tuple(x0.shape))
            return x0.mean(dim=(1, 2, 3, 4))

    codec = wan.WanModel(str(models["t2v"]), None, "float32", "cpu", "t2v").codec
    scores = _Decoded(Reward(), codec).score(torch.randn(5, *LATENT))
    assert seen == [(5, FRAMES, 3, SIZE, SIZE)] and scores.shape == (5,)


def test_prompt_is_encoded_once(models):
    first = wan.load_wan_t2v(args("t2v", models), context("a"))
    calls = []
    model = wan.WanModel(str(models["t2v"]), None, "float32", "cpu", "t2v")
    handle = model.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    second = wan.load_wan_depth(args("vace", models, depth=torch.zeros(SIZE, SIZE)), context("b"))
    handle.remove()
    assert calls == [] and second.prompt_embeds is first.prompt_embeds
    assert second.negative_embeds is first.negative_embeds


def test_missing_model_names_it_and_touches_no_network(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
    with pytest.raises(ExpertUnavailable) as e:
        wan.load_wan_i2v({"prompt": "x", "image": torch.zeros(3, SIZE, SIZE), "guidance": 5.0,
                          "model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "dtype": "float32"}, context())
    message = str(e.value)
    assert "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers" in message
    assert "hf download Wan-AI/Wan2.1-I2V-14B-480P-Diffusers" in message and hub.ALLOW_DOWNLOAD_ENV in message


def test_a_directory_that_is_not_wan_says_what_is_missing(tmp_path, models):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(ExpertUnavailable, match="no text_encoder, tokenizer, vae"):
        wan.load_wan_t2v({"prompt": "x", "guidance": 5.0, "model": str(tmp_path), "dtype": "float32"}, context())
    with pytest.raises(ExpertUnavailable, match="holds a WanTransformer3DModel, not the WanVACETransformer3DModel"):
        wan.load_wan_depth(args("t2v", models, depth=torch.zeros(SIZE, SIZE)), context())
    with pytest.raises(ExpertUnavailable, match="is a text-to-video model: wan_i2v needs an image-to-video one"):
        wan.load_wan_i2v(args("t2v", models, image=torch.zeros(3, SIZE, SIZE)), context())
    with pytest.raises(ExpertUnavailable, match="is an image-to-video model: wan_t2v needs a text-to-video one"):
        wan.load_wan_t2v(args("i2v", models), context())


def test_run_errors_point_at_the_statement(models, tmp_path):
    source = (f'x ~ wan_t2v(prompt="{PROMPT}", frames=8, size=({SIZE}, {SIZE}), model="{models["t2v"]}")'
              + settings("linear"))
    program = poelang.parse(source, str(tmp_path / "p.poe"), base_dir=tmp_path)
    with pytest.raises(poelang.interpreter.RunError) as e:
        Interpreter(program).run(write=False)
    assert "4k + 1 frames" in str(e.value) and "use 5 or 9" in str(e.value)


def test_video_doc_examples_check():
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "experts" / "video.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```poe\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        program = poelang.parse(block, "docs/experts/video.md")
        assert program.ok, program.render_diagnostics()


def test_editing_starts_from_the_inversion_in_the_wan_latent(models, tmp_path):
    """programs/video/physics_edit.poe's start on the tiny I2V model: the inversion of the simulated video, in Wan's
    latent, regenerates it (no MCMC); a joint video model is refused on the autoregressive path without probing."""
    import imageio.v3 as iio

    g = torch.Generator().manual_seed(6)
    iio.imwrite(tmp_path / "sim.gif", (torch.rand(FRAMES, SIZE, SIZE, 3, generator=g) * 255).byte().numpy(),
                extension=".gif")
    head = (f'sim = load_video("sim.gif", size=({SIZE}, {SIZE}), frames={FRAMES})\n'
            f'video = wan_i2v(prompt="{PROMPT}", image=frame(sim, 0), frames={FRAMES}, model="{models["i2v"]}")\n'
            f'physics = simulator(target=sim, weight=2.0)\n')
    source = head + ("x ~ video * physics with {\n    init = inversion\n    invert = sim\n    levels = 12\n"
                     "    particles = 1\n    mcmc = none\n    cond_updates = 0\n    invert_iters = 4\n}\n")
    program, interp = interpreter_for(source, tmp_path)
    node = program.graph.samples[0]
    problem, codec = interp.problem(node)
    sim = interp.value("sim")
    result = interp.run_sample(node)
    assert result.plan["init"] == "inversion"
    torch.testing.assert_close(result.samples[0], codec.decode(codec.encode(sim[None]))[0], atol=1e-3, rtol=0)

    refused = poelang.parse(head + "x ~ video * physics with { path = autoregressive, levels = 2, particles = 1 }\n",
                            str(tmp_path / "q.poe"), base_dir=tmp_path)
    with pytest.raises(poelang.interpreter.RunError, match="frame_separable = False"):
        Interpreter(refused).run(write=False)
