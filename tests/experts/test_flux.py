"""FLUX experts on tiny models built from configs: packing, regions, parity with diffusers' pipelines.

The models are saved with ``save_pretrained`` and loaded through the same code
as real weights. Parity runs poelang with one expert, one particle, no MCMC
and the pipeline's own σ schedule from the same initial noise, and compares
with FluxPipeline / FluxFillPipeline / FluxControlPipeline. The pipelines
*sample* the VAE posterior when they encode a condition; poelang takes its
mean (a condition is shared by every particle), so the tests give the
pipelines the mean too.
"""
from __future__ import annotations


import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution  # noqa: E402

import poelang  # noqa: E402
from poelang.experts.unavailable import ExpertUnavailable  # noqa: E402
from poelang.interpreter import ExpertContext, Interpreter, _Decoded  # noqa: E402
from poelang.stdlib import flux, hub  # noqa: E402
from poelang.stdlib.codecs import image_ids, pack, pack_mask, unpack  # noqa: E402

from . import tiny_flux  # noqa: E402
from .parity import loads_by_component, offline, poelang_run  # noqa: E402

PROMPT = "two red cats in a sunny living room"
SIZE = 32


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("flux")
    return {kind: tiny_flux.build(root / kind, kind) for kind in ("t2i", "fill", "depth")}


@pytest.fixture(autouse=True)
def fresh_components(monkeypatch):
    hub.clear()
    flux._PROMPTS.clear()
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())
    yield
    hub.clear()


def context(name="x", region=None):
    return ExpertContext(name, (3, SIZE, SIZE), "cpu", __import__("pathlib").Path("."), (3, SIZE, SIZE), region)


def test_packing_is_diffusers_packing_and_round_trips():
    from diffusers import FluxPipeline

    x = torch.randn(2, 4, 8, 6)
    tokens = pack(x)
    assert torch.equal(tokens, FluxPipeline._pack_latents(x, 2, 4, 8, 6))
    assert torch.equal(unpack(tokens, 8, 6), x)
    assert torch.equal(image_ids(8, 6), FluxPipeline._prepare_latent_image_ids(2, 4, 3, "cpu", torch.float32))


def test_fill_condition_is_the_pipelines(models):
    pipe = tiny_flux.pipeline_class("fill").from_pretrained(models["fill"])
    image = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 8:20, 4:28] = 1
    ref_mask, ref_latents = pipe.prepare_mask_latents(
        mask, image * (1 - mask), 1, tiny_flux.LATENT_CHANNELS, 1, SIZE, SIZE, torch.float32, "cpu", None)
    expert = flux.load_flux_fill({"prompt": PROMPT, "image": image[0], "mask": mask[0, 0], "guidance": 30.0,
                                  "model": str(models["fill"]), "dtype": "float32"}, context())
    token = 4 * tiny_flux.LATENT_CHANNELS
    torch.testing.assert_close(expert.condition[..., :token], ref_latents)
    torch.testing.assert_close(expert.condition[..., token:], ref_mask)
    assert torch.equal(pack_mask(mask, 2), ref_mask)


def test_velocity_is_the_transformers_output(models):
    pipe = tiny_flux.pipeline_class("t2i").from_pretrained(models["t2i"])
    expert = flux.load_flux({"prompt": PROMPT, "guidance": 3.5, "model": str(models["t2i"]), "dtype": "float32"},
                            context())
    embeds, pooled, text_ids = pipe.encode_prompt(PROMPT, PROMPT, max_sequence_length=24)
    x = torch.randn(3, tiny_flux.LATENT_CHANNELS, 16, 16)
    sigma = torch.tensor([0.9, 0.5, 0.1])
    with torch.no_grad():
        ref = pipe.transformer(hidden_states=pack(x), timestep=sigma, guidance=torch.full([3], 3.5),
                               pooled_projections=pooled.expand(3, -1), encoder_hidden_states=embeds.expand(3, -1, -1),
                               txt_ids=text_ids, img_ids=image_ids(16, 16), return_dict=False)[0]
    torch.testing.assert_close(expert.velocity(x, sigma), unpack(ref, 16, 16))


PROGRAMS = {
    "t2i": ('x ~ flux(prompt="{p}", model="{m}", size=(32, 32))', {}),
    "fill": ('bg = load_image("bg.png", size=(32, 32))\n'
             'hole = box_mask(box(25%, 25%, 75%, 75%), size=(32, 32))\n'
             'x ~ flux_fill(prompt="{p}", image=bg, mask=hole, model="{m}")', {}),
    "depth": ('d = load_depth("depth.png", size=(32, 32))\n'
              'x ~ flux_depth(prompt="{p}", depth=d, model="{m}")', {}),
}
SETTINGS = " with {\n    levels = 4\n    schedule = flux_shift\n    particles = 1\n    mcmc = none\n    annealing = flow\n}\n"


def _write_inputs(folder):
    from PIL import Image

    g = torch.Generator().manual_seed(7)
    rgb = (torch.rand(SIZE, SIZE, 3, generator=g) * 255).byte().numpy()
    Image.fromarray(rgb).save(folder / "bg.png")
    depth = (torch.linspace(0, 255, SIZE)[:, None].expand(SIZE, SIZE)).byte().numpy()
    Image.fromarray(depth).save(folder / "depth.png")



@pytest.mark.parametrize("kind", ["t2i", "fill", "depth"])
def test_one_expert_run_reproduces_the_diffusers_pipeline(kind, models, tmp_path):
    _write_inputs(tmp_path)
    template, _ = PROGRAMS[kind]
    source = template.format(p=PROMPT, m=models[kind]) + SETTINGS
    interp, problem, codec, noise, result = poelang_run(source, tmp_path)
    assert result.plan["kernel"] == "none" and problem.shape == (tiny_flux.LATENT_CHANNELS, 16, 16)

    pipe = tiny_flux.pipeline_class(kind).from_pretrained(models[kind])
    guidance = {"t2i": 3.5, "fill": 30.0, "depth": 10.0}[kind]
    extra = {}
    if kind == "fill":
        extra = {"image": (interp.value("bg")[None] + 1) / 2, "mask_image": interp.value("hole")[None, None]}
    if kind == "depth":
        extra = {"control_image": (interp.value("d") * 2 - 1).expand(3, SIZE, SIZE)[None]}
    common = dict(prompt=PROMPT, height=SIZE, width=SIZE, num_inference_steps=4, guidance_scale=guidance,
                  max_sequence_length=24, latents=pack(noise), **extra)
    latents = pipe(**common, output_type="latent").images
    torch.testing.assert_close(result.samples, unpack(latents, 16, 16), rtol=1e-4, atol=1e-4)
    images = pipe(**common, output_type="pt").images
    torch.testing.assert_close((codec.decode(result.samples) + 1) / 2, images, rtol=1e-4, atol=1e-4)


def test_true_cfg_reproduces_the_pipelines_true_cfg_scale(models, tmp_path):
    """flux(true_cfg = s, negative_prompt = n) samples what FluxPipeline(true_cfg_scale = s, negative_prompt = n) does."""
    negative = "a blurry photo"
    source = (f'x ~ flux(prompt="{PROMPT}", model="{models["t2i"]}", size=(32, 32), true_cfg=2.5, '
              f'negative_prompt="{negative}")' + SETTINGS)
    _, _, _, noise, result = poelang_run(source, tmp_path)
    pipe = tiny_flux.pipeline_class("t2i").from_pretrained(models["t2i"])
    common = dict(prompt=PROMPT, height=SIZE, width=SIZE, num_inference_steps=4, guidance_scale=3.5,
                  max_sequence_length=24, latents=pack(noise), output_type="latent")
    guided = pipe(**common, negative_prompt=negative, true_cfg_scale=2.5).images
    torch.testing.assert_close(result.samples, unpack(guided, 16, 16), rtol=1e-4, atol=1e-4)
    plain = pipe(**common).images
    assert (result.samples - unpack(plain, 16, 16)).abs().max() > 1e-2  # the guidance did something


def test_two_flux_experts_share_the_vae_and_text_encoders(models, tmp_path):
    _write_inputs(tmp_path)
    source = (f'bg = load_image("bg.png", size=(32, 32))\nhole = box_mask(box(25%, 25%, 75%, 75%), size=(32, 32))\n'
              f'fill = flux_fill(prompt="{PROMPT}", image=bg, mask=hole, model="{models["fill"]}")\n'
              f'depth = flux_depth(prompt="a red armchair", size=(32, 32), model="{models["depth"]}")\n'
              f'x ~ fill * (depth given fill)[hole]' + SETTINGS)
    _, problem, _, _, result = poelang_run(source, tmp_path)
    assert loads_by_component() == {"transformer": 2, "vae": 1, "text_encoder": 1, "text_encoder_2": 1,
                     "tokenizer": 1, "tokenizer_2": 1}
    assert problem.factors[0].expert.codec is problem.factors[1].expert.codec or \
        problem.factors[0].expert.codec == problem.factors[1].expert.codec
    assert torch.isfinite(result.samples).all()


def test_box_region_crops_latents_and_conditions_on_the_token_grid(models, tmp_path):
    _write_inputs(tmp_path)
    source = (f'bg = load_image("bg.png", size=(32, 32))\n'
              f'fill = flux_fill(prompt="{PROMPT}", image=bg, model="{models["fill"]}")\n'
              f'depth = flux_depth(prompt="a chair", size=(16, 16), model="{models["depth"]}")\n'
              f'x ~ fill * depth[box(0%, 25%, 50%, 75%)]' + SETTINGS)
    program = poelang.parse(source, str(tmp_path / "p.poe"), base_dir=tmp_path)
    problem, _ = Interpreter(program).problem(program.graph.samples[0])
    # pixels x 0..16, y 8..24 → latent (scale 2) rows 4..12, columns 0..8
    assert problem.factors[1].region == (slice(None), slice(4, 12), slice(0, 8))
    assert problem.factors[1].expert.condition.shape[1] == (8 // 2) * (8 // 2)
    x = torch.randn(2, *problem.shape)
    crop = x[(slice(None),) + problem.factors[1].region]
    assert problem.factors[1].expert.velocity(crop, torch.tensor([0.5, 0.5])).shape == crop.shape


def test_unaligned_box_is_snapped_outward_to_whole_tokens():
    from poelang.stdlib.codecs import PixelCodec

    codec = PixelCodec(2)  # a token is 4 px
    assert codec.snap((5, 14, 1, 31), (32, 32)) == (4, 16, 0, 32)


def test_masks_are_pooled_to_tokens():
    from poelang.stdlib.codecs import PixelCodec

    codec = PixelCodec(2)
    mask = torch.zeros(8, 8)
    mask[0:2, 0:4] = 1  # half of the first 4×4 token
    pooled = codec.pool_mask(mask)
    assert pooled.shape == (4, 4)
    assert torch.equal(pooled[:2, :2], torch.full((2, 2), 0.5)) and pooled[2:].sum() == 0


def test_rewards_see_decoded_pixels(models):
    seen = []

    class Reward:
        name = "r"

        def score(self, x0):
            seen.append(tuple(x0.shape))
            return x0.mean(dim=(1, 2, 3))

    model = flux.FluxModel(str(models["t2i"]), None, "float32", "cpu")
    scores = _Decoded(Reward(), model.codec).score(torch.randn(5, tiny_flux.LATENT_CHANNELS, 16, 16))
    assert seen == [(5, 3, 32, 32)] and scores.shape == (5,)


def test_prompt_is_encoded_once(models):
    args = {"prompt": PROMPT, "guidance": 3.5, "model": str(models["t2i"]), "dtype": "float32"}
    first = flux.load_flux(args, context("a"))
    calls = []
    model = flux.FluxModel(str(models["t2i"]), None, "float32", "cpu")
    handle = model.t5.register_forward_hook(lambda *a: calls.append(1))
    second = flux.load_flux(args, context("b"))
    handle.remove()
    assert calls == [] and second.prompt_embeds is first.prompt_embeds


def test_missing_model_names_it_and_touches_no_network(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
    with pytest.raises(ExpertUnavailable) as e:
        flux.load_flux({"prompt": "x", "guidance": 3.5, "model": "nobody/missing-flux", "dtype": "float32"}, context())
    assert "nobody/missing-flux" in str(e.value) and "hf download nobody/missing-flux" in str(e.value)


def test_a_directory_that_is_not_flux_says_what_is_missing(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(ExpertUnavailable, match="no text_encoder, text_encoder_2, tokenizer, tokenizer_2, vae"):
        flux.load_flux({"prompt": "x", "guidance": 3.5, "model": str(tmp_path), "dtype": "float32"}, context())
