"""FLUX.1 [dev], Fill [dev] and Depth [dev] (Black Forest Labs) through diffusers.

The checker reads the signatures in :data:`EXPERTS`; ``run`` calls the
loaders, which build a :class:`FluxFlow`: the transformer's velocity on the
expert's latent (``[B, C, h, w]``, unpacked so that regions crop it like an
image), with what diffusers' pipelines compute once per call computed once
per run here -- prompt embeddings, the VAE encodings of the conditions
(Fill's masked image and mask, Depth's control image), positional ids.

A model is a diffusers directory (``transformer/``, ``text_encoder/``,
``text_encoder_2/``, ``tokenizer/``, ``tokenizer_2/``, ``scheduler/`` and
``vae/``) or a Hugging Face id in the local cache; :mod:`poelang.stdlib.hub`
finds it offline and loads each component once per process, so a Fill and a
Depth expert share one VAE and one pair of text encoders. A directory with
``codec.json`` instead of ``vae/`` samples in pixel space
(:class:`~poelang.stdlib.codecs.PixelCodec`): the project's mini experts are
such directories and run through this same code.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from poelang.experts.spec import ExpertSpec, Param, image_domain
from poelang.experts.unavailable import ExpertUnavailable
from .hub import model_weights

_COMMON = (
    Param("size", "Size", (1024, 1024), "canvas (h, w) in pixels when no image fixes it"),
    Param("guidance", "Number", 3.5, "FLUX guidance-embedding scale"),
    Param("dtype", "Text", "bfloat16", "weights' dtype on GPU (float32 on CPU)"),
    Param("device", "Text?", None, "device for this expert, e.g. \"cuda:1\"; default: the run's"),
)


# FluxPipeline's true classifier-free guidance; FLUX.1 [dev] is guidance-distilled and needs none, so it is off
_TRUE_CFG = (
    Param("true_cfg", "Number", 1.0, "classifier-free guidance scale s: the flow of p(x|prompt)^s p(x|negative)^(1-s); "
          "above 1 each step runs the transformer on both prompts"),
    Param("negative_prompt", "Text", "", "what true_cfg steers away from"),
)


def _with(params: tuple[Param, ...], model: str, guidance: float) -> tuple[Param, ...]:
    common = tuple(Param(p.name, p.type, guidance, p.doc) if p.name == "guidance" else p for p in _COMMON)
    return params + common + (Param("model", "Text", model, "local diffusers directory or Hugging Face id"),)


# --- the flow ----------------------------------------------------------------------


class FluxFlow:
    """One FLUX transformer as a poelang generative expert (velocity ``v = eps - x0``).

    ``condition``: packed condition tokens ``[1, N, C']`` concatenated to the
    latent tokens along channels (Fill: masked-image latents and mask; Depth:
    control latents), or None for text-to-image.

    ``negative`` and ``true_cfg``: classifier-free guidance as FluxPipeline's
    ``true_cfg_scale`` does it, ``v = v_neg + s (v - v_neg)`` with ``v_neg``
    the velocity given the negative prompt's embeddings -- the flow of
    p(x | prompt)^s p(x | negative)^(1-s), one batched call on both prompts.
    """

    def __init__(self, name: str, transformer, codec, text, guidance: float, condition=None,
                 schedule_shift: float = 3.0, negative=None, true_cfg: float = 1.0):
        import torch

        self.name = name
        self.transformer = transformer
        self.codec = codec
        self.prompt_embeds, self.pooled, self.text_ids = text
        self.true_cfg = float(true_cfg)
        if self.true_cfg != 1.0:  # both prompts in one batch: [prompt; negative]
            self.prompt_embeds = torch.cat([self.prompt_embeds, negative[0]])
            self.pooled = torch.cat([self.pooled, negative[1]])
        self.condition = condition
        self.schedule_shift = schedule_shift
        self.dtype = transformer.dtype
        self.device = transformer.device
        use_guidance = bool(transformer.config.guidance_embeds)
        self.guidance = torch.full([1], float(guidance), dtype=torch.float32, device=self.device) if use_guidance else None
        self._ids: dict[tuple[int, int], Any] = {}
        self.calls = 0

    def img_ids(self, h: int, w: int):
        from .codecs import image_ids

        if (h, w) not in self._ids:
            self._ids[(h, w)] = image_ids(h, w, self.device, self.text_ids.dtype)
        return self._ids[(h, w)]

    def velocity(self, x, sigma):
        import torch

        from .codecs import pack, unpack

        b, _, h, w = x.shape
        tokens = pack(x.to(self.device, self.dtype))
        if self.condition is not None:
            tokens = torch.cat([tokens, self.condition.expand(b, -1, -1)], dim=2)
        prompts = self.prompt_embeds.shape[0]  # 1, or 2 with guidance: every particle is seen with both prompts
        timestep = sigma.to(self.device, self.dtype).expand(b)
        if prompts > 1:
            tokens, timestep = tokens.repeat(prompts, 1, 1), timestep.repeat(prompts)
        n = b * prompts
        self.calls += n
        # one prompt is broadcast to the particles (a view, no copy); two are repeated, [prompt × b; negative × b]
        per_item = (lambda t: t.expand(b, *t.shape[1:])) if prompts == 1 else (lambda t: t.repeat_interleave(b, dim=0))
        # no torch.no_grad() here: Eq. 7 differentiates a child expert's velocity (the engine decides)
        out = self.transformer(
            hidden_states=tokens,
            timestep=timestep,
            guidance=None if self.guidance is None else self.guidance.expand(n),
            pooled_projections=per_item(self.pooled),
            encoder_hidden_states=per_item(self.prompt_embeds),
            txt_ids=self.text_ids,
            img_ids=self.img_ids(h, w),
            return_dict=False,
        )[0]
        if prompts > 1:
            positive, negative = out.chunk(2)
            out = negative + self.true_cfg * (positive - negative)
        return unpack(out, h, w).to(x.device, x.dtype)


# --- loading -----------------------------------------------------------------------


class FluxModel:
    """A FLUX model directory's components, each from :func:`hub.shared` (loaded once per process)."""

    def __init__(self, model: str, base_dir: Path | None, dtype: str, device: str):
        from diffusers import FluxTransformer2DModel
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        from . import hub
        from .codecs import PixelCodec, VaeCodec

        self.path = hub.resolve_model(model, base_dir)
        self.device = device
        self.dtype = hub.torch_dtype(dtype, device)
        missing = [d for d in ("transformer", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
                   if not (self.path / d).is_dir()]
        if not (self.path / "vae").is_dir() and not (self.path / "codec.json").is_file():
            missing.append("vae")
        if missing:
            raise ExpertUnavailable(f"'{self.path}' is not a FLUX diffusers directory: no {', '.join(missing)}")
        hub.announce_memory(model, self.path, self.dtype, device)
        load = lambda sub, cls: hub.shared(self.path, sub, self.dtype, device, cls.from_pretrained)  # noqa: E731
        self.transformer = load("transformer", FluxTransformer2DModel)
        # Eq. 7 backpropagates through a child expert: at 1024 px and 4 particles its activations would take
        # ~100 GiB; recomputing them per block costs one more forward and only runs when gradients are on
        self.transformer.enable_gradient_checkpointing()
        self.clip = load("text_encoder", CLIPTextModel)
        self.t5 = load("text_encoder_2", T5EncoderModel)
        self.tokenizer = hub.shared(self.path, "tokenizer", None, device, AutoTokenizer.from_pretrained)
        self.tokenizer_2 = hub.shared(self.path, "tokenizer_2", None, device, AutoTokenizer.from_pretrained)
        if (self.path / "vae").is_dir():
            from diffusers import AutoencoderKL

            vae = load("vae", AutoencoderKL)
            self.codec = VaeCodec(vae, hub.fingerprint(self.path, "vae"))
        else:
            self.codec = PixelCodec(int(json.loads((self.path / "codec.json").read_text())["pixels"]))
        self.text_key = (hub.fingerprint(self.path, "text_encoder"), hub.fingerprint(self.path, "text_encoder_2"))
        sched = self.path / "scheduler" / "scheduler_config.json"
        self.scheduler_config = json.loads(sched.read_text()) if sched.is_file() else {}

    def encode_prompt(self, prompt: str, max_sequence_length: int = 512):
        """(T5 sequence embeddings, CLIP pooled embedding, text ids) as FluxPipeline.encode_prompt makes them."""
        import torch

        key = (self.text_key, prompt, max_sequence_length, str(self.device))
        if key in _PROMPTS:
            return _PROMPTS[key]
        with torch.no_grad():
            ids = self.tokenizer([prompt], padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            pooled = self.clip(ids.to(self.clip.device), output_hidden_states=False).pooler_output.to(self.clip.dtype)
            ids2 = self.tokenizer_2([prompt], padding="max_length", max_length=max_sequence_length,
                                    truncation=True, return_tensors="pt").input_ids
            embeds = self.t5(ids2.to(self.t5.device), output_hidden_states=False)[0].to(self.t5.dtype)
        text_ids = torch.zeros(embeds.shape[1], 3, device=self.device, dtype=self.clip.dtype)
        _PROMPTS[key] = (embeds.to(self.device, self.dtype), pooled.to(self.device, self.dtype), text_ids)
        return _PROMPTS[key]

    def schedule_shift(self, image_seq_len: int) -> float:
        """FLUX's resolution-dependent time shift exp(mu) (diffusers' calculate_shift)."""
        c = self.scheduler_config
        if not c.get("use_dynamic_shifting", True):
            return float(c.get("shift", 1.0))
        base_len, max_len = c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096)
        base, top = c.get("base_shift", 0.5), c.get("max_shift", 1.15)
        m = (top - base) / (max_len - base_len)
        return math.exp(image_seq_len * m + base - m * base_len)


_PROMPTS: dict[tuple, Any] = {}  # prompt embeddings, shared by experts with the same text encoders


def _crop(t, box):
    if box is None:
        return t
    y0, y1, x0, x1 = box
    return t[..., y0:y1, x0:x1]


def _pixel_box(context, codec) -> tuple[int, int, int, int] | None:
    """The expert's region on the canvas, snapped to whole tokens (the interpreter snaps it the same way)."""
    box = getattr(context, "region", None)
    if box is None:
        return None
    return codec.snap(box, tuple(context.canvas[-2:]))


def _flow(args: dict, context, condition_of=None) -> FluxFlow:
    """Shared part of the three loaders; ``condition_of(model, box, h, w)`` builds condition tokens."""
    device = args.get("device") or context.device
    model = FluxModel(args["model"], context.base_dir, args.get("dtype", "bfloat16"), device)
    codec = model.codec
    box = _pixel_box(context, codec)
    h, w = (box[1] - box[0], box[3] - box[2]) if box else tuple(context.event_shape[-2:])
    lh, lw = codec.latent_shape((3, h, w))[-2:]
    # FluxPipeline pads T5 prompts to 512 tokens; a tokenizer made for shorter texts (the mini experts') says less
    max_len = int(args.get("max_sequence_length") or min(512, model.tokenizer_2.model_max_length))
    text = model.encode_prompt(args.get("prompt", ""), max_len)
    true_cfg = float(args.get("true_cfg", 1.0))
    negative = model.encode_prompt(args.get("negative_prompt", ""), max_len) if true_cfg != 1.0 else None
    condition = condition_of(model, box, h, w) if condition_of else None
    return FluxFlow(context.name, model.transformer, codec, text, float(args["guidance"]), condition,
                    schedule_shift=model.schedule_shift((lh // 2) * (lw // 2)), negative=negative, true_cfg=true_cfg)


def load_flux(args: dict, context) -> FluxFlow:
    return _flow(args, context)


def load_flux_fill(args: dict, context) -> FluxFlow:
    import torch

    from .codecs import pack, pack_mask

    def condition(model: FluxModel, box, h: int, w: int):
        image, mask = args.get("image"), args.get("mask")
        image = torch.zeros(3, h, w) if image is None else _crop(_as_image(image), box)
        mask = torch.ones(h, w) if mask is None else _crop(_as_mask(mask, context), box)
        mask = (mask >= 0.5).float()[None, None]  # FluxFillPipeline binarises the mask
        masked = (image[None] * (1 - mask)).to(model.device, model.dtype)
        latents = model.codec.encode(masked)
        return torch.cat([pack(latents), pack_mask(mask.to(model.device, model.dtype), model.codec.scale)], dim=2)

    return _flow(args, context, condition)


def load_flux_depth(args: dict, context) -> FluxFlow:
    import torch

    from .codecs import pack

    def condition(model: FluxModel, box, h: int, w: int):
        depth = args.get("depth")
        depth = torch.full((h, w), 0.5) if depth is None else _crop(_as_mask(depth, context), box)
        control = (depth * 2 - 1).expand(3, h, w)[None].to(model.device, model.dtype)
        return pack(model.codec.encode(control))

    return _flow(args, context, condition)


def _as_image(value):
    import torch

    t = torch.as_tensor(value, dtype=torch.float32)
    return t if t.dim() == 3 else t.expand(3, *t.shape[-2:])


def _as_mask(value, context):
    """A mask or depth argument as an ``[H, W]`` float tensor; a box region becomes its mask."""
    import torch

    from poelang import values

    if isinstance(value, values.Box):
        return values.box_mask(None, value, tuple(context.canvas[-2:])).float()
    t = torch.as_tensor(value, dtype=torch.float32)
    return t if t.dim() == 2 else t.mean(dim=0)


EXPERTS = [
    ExpertSpec(
        "flux", "generative", "FLUX.1 [dev] text-to-image flow model",
        _with((Param("prompt", "Text", doc="what the image shows"), *_TRUE_CFG), "black-forest-labs/FLUX.1-dev", 3.5),
        loader="poelang.stdlib.flux:load_flux", domain=image_domain(), family="flux",
        weights=model_weights(),
    ),
    ExpertSpec(
        "flux_fill", "generative", "FLUX.1 Fill [dev]: inpaints the masked part of an image",
        _with(
            (
                Param("prompt", "Text", "", "what the filled region shows"),
                Param("image", "Image?", None, "the image to fill; none: a blank canvas"),
                Param("mask", "Mask|Region?", None, "where to paint; none: everywhere"),
            ),
            "black-forest-labs/FLUX.1-Fill-dev", 30.0,
        ),
        loader="poelang.stdlib.flux:load_flux_fill", domain=image_domain("image", "mask"), family="flux",
        weights=model_weights(),
    ),
    ExpertSpec(
        "flux_depth", "generative", "FLUX.1 Depth [dev]: text-to-image following a depth map",
        _with(
            (
                Param("prompt", "Text", "", "what the image shows"),
                Param("depth", "Depth?", None, "the control depth map; none: a constant depth"),
            ),
            "black-forest-labs/FLUX.1-Depth-dev", 10.0,
        ),
        loader="poelang.stdlib.flux:load_flux_depth", domain=image_domain("depth"), family="flux",
        weights=model_weights(),
    ),
]
