"""Wan2.1 text-to-video, image-to-video and VACE depth-to-video (Wan-AI) through diffusers.

The checker reads the signatures in :data:`EXPERTS`; ``run`` calls the
loaders, which build a :class:`WanFlow`: the transformer's classifier-free
guided velocity on the video latent ``[B, f', C, h, w]`` (frames first, like
the pixels ``[B, f, 3, H, W]``; see :class:`~poelang.stdlib.codecs.WanVaeCodec`),
with what diffusers' pipelines compute once per call computed once per run
here -- the prompt and negative-prompt embeddings, the VAE encodings of the
conditions (I2V: the first frame followed by blank frames, and its mask;
VACE: the control video), the CLIP embedding of I2V's first frame.

A model is a diffusers directory (``transformer/``, ``text_encoder/``,
``tokenizer/``, ``vae/``, ``scheduler/``; I2V also ``image_encoder/`` and
``image_processor/``) or a Hugging Face id in the local cache;
:mod:`poelang.stdlib.hub` finds it offline and loads each component once per
process, so a Wan I2V and a VACE expert share one VAE and one UMT5 text
encoder (the Wan2.1 repositories ship the same files). The VAE always runs in
float32, as diffusers recommends for Wan.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poelang.experts.spec import ExpertSpec, Param, video_domain
from poelang.experts.unavailable import ExpertUnavailable
from .hub import model_weights

# --- the flow ----------------------------------------------------------------------


class WanFlow:
    """One Wan transformer as a poelang generative expert (velocity ``v = eps - x0``).

    ``text``: (prompt embeddings, negative-prompt embeddings or None), each
    ``[1, L, D]``; with a negative prompt the velocity is classifier-free
    guided, ``v = v(neg) + guidance * (v(prompt) - v(neg))``, as in WanPipeline.
    ``condition``: I2V's ``[1, 4 + C, f', h, w]`` (first-frame mask and
    latents), concatenated to the latent along channels. ``image_embeds``:
    I2V's CLIP tokens. ``control``: VACE's ``[1, 2C + 64, f', h, w]`` and its
    per-layer scale.
    """

    # A joint video model: every frame attends to every other, so on path = autoregressive (more than one chunk)
    # the engine refuses it with a message instead of probing a 14B transformer to find out.
    frame_separable = False

    def __init__(self, name: str, transformer, codec, text, guidance: float, *, condition=None,
                 image_embeds=None, control=None, control_scale: float = 1.0, schedule_shift: float = 3.0,
                 train_steps: int = 1000):
        import torch

        from .codecs import execution_device

        self.name = name
        self.transformer = transformer
        self.codec = codec
        self.prompt_embeds, self.negative_embeds = text
        self.guidance = float(guidance)
        self.condition = condition
        self.image_embeds = image_embeds
        self.control = control
        self.control_scale = None
        if control is not None:
            layers = len(transformer.config.vace_layers)
            self.control_scale = torch.full([layers], float(control_scale), device=execution_device(transformer),
                                            dtype=transformer.dtype)
        self.schedule_shift = schedule_shift
        self.train_steps = train_steps  # the transformer's timestep is sigma * num_train_timesteps
        self.dtype = transformer.dtype
        self.device = execution_device(transformer)  # the accelerator, also when the weights are streamed there
        self.calls = 0

    def _forward(self, latents, timestep, embeds):
        b = latents.shape[0]
        extra: dict[str, Any] = {}
        if self.image_embeds is not None:
            extra["encoder_hidden_states_image"] = self.image_embeds.expand(b, -1, -1)
        if self.control is not None:
            extra["control_hidden_states"] = self.control.expand(b, -1, -1, -1, -1)
            extra["control_hidden_states_scale"] = self.control_scale
        return self.transformer(hidden_states=latents, timestep=timestep,
                                encoder_hidden_states=embeds.expand(b, -1, -1), return_dict=False, **extra)[0]

    def velocity(self, x, sigma):
        import torch

        b = x.shape[0]
        latents = x.transpose(1, 2).to(self.device, self.dtype)  # [B, C, f', h, w], the transformer's layout
        if self.condition is not None:
            latents = torch.cat([latents, self.condition.expand(b, -1, -1, -1, -1)], dim=1)
        # WanPipeline passes the scheduler's float32 timesteps, whatever the weights' dtype
        timestep = (sigma.to(self.device, torch.float32) * self.train_steps).expand(b)
        self.calls += b if self.negative_embeds is None else 2 * b  # transformer evaluations of one item
        # no torch.no_grad() here: Eq. 7 differentiates a child expert's velocity (the engine decides)
        v = self._forward(latents, timestep, self.prompt_embeds)
        if self.negative_embeds is not None:
            v_neg = self._forward(latents, timestep, self.negative_embeds)
            v = v_neg + self.guidance * (v - v_neg)
        return v.transpose(1, 2).to(x.device, x.dtype)


# --- loading -----------------------------------------------------------------------

_KINDS = {"t2v": "WanTransformer3DModel", "i2v": "WanTransformer3DModel", "vace": "WanVACETransformer3DModel"}
_NAMES = {"t2v": "wan_t2v", "i2v": "wan_i2v", "vace": "wan_depth"}


class WanModel:
    """A Wan2.1 diffusers directory's components, each from :func:`hub.shared` (loaded once per process)."""

    def __init__(self, model: str, base_dir: Path | None, dtype: str, device: str, kind: str):
        import diffusers
        import torch
        from transformers import AutoTokenizer, UMT5EncoderModel

        from . import hub
        from .codecs import WanVaeCodec

        self.path = hub.resolve_model(model, base_dir)
        self.device = device
        self.dtype = hub.torch_dtype(dtype, device)
        needed = ["transformer", "text_encoder", "tokenizer", "vae"]
        transformer_config = _read_json(self.path / "transformer" / "config.json")
        self.needs_image = kind == "i2v" and transformer_config.get("image_dim") is not None
        if self.needs_image:
            needed += ["image_encoder", "image_processor"]
        missing = [d for d in needed if not (self.path / d).is_dir()]
        if missing:
            raise ExpertUnavailable(f"'{self.path}' is not a Wan2.1 diffusers directory: no {', '.join(missing)}")
        index = _read_json(self.path / "model_index.json")
        if (index.get("transformer_2") or [None])[0] or index.get("boundary_ratio") or index.get("expand_timesteps"):
            raise ExpertUnavailable(f"'{model}' is a Wan2.2 model (two transformers or per-token timesteps); "
                                    "these experts run Wan2.1 models")
        found, expected = transformer_config.get("_class_name"), _KINDS[kind]
        if found and found != expected:
            raise ExpertUnavailable(f"'{model}' holds a {found}, not the {expected} that {_NAMES[kind]} needs")
        if kind != "vace":  # I2V's transformer also takes the first frame's mask and latents
            i2v = transformer_config.get("in_channels", 16) != transformer_config.get("out_channels", 16)
            if i2v != (kind == "i2v"):
                what = ("an image-to-video", "a text-to-video")
                raise ExpertUnavailable(f"'{model}' is {what[not i2v]} model: {_NAMES[kind]} needs {what[i2v]} one")
        hub.announce_memory(model, self.path, self.dtype, device)
        load = lambda sub, cls, dt=self.dtype: hub.shared(self.path, sub, dt, device, cls.from_pretrained)  # noqa: E731
        self.transformer = load("transformer", getattr(diffusers, _KINDS[kind]))
        # Eq. 7 backpropagates through a child expert; recomputing activations per block keeps that in memory
        self.transformer.enable_gradient_checkpointing()
        self.text_encoder = load("text_encoder", UMT5EncoderModel)
        self.tokenizer = hub.shared(self.path, "tokenizer", None, device, AutoTokenizer.from_pretrained)
        vae = load("vae", diffusers.AutoencoderKLWan, torch.float32)  # diffusers' advice for Wan's VAE
        self.codec = WanVaeCodec(vae, hub.fingerprint(self.path, "vae"))
        if self.needs_image:
            from transformers import CLIPImageProcessor, CLIPVisionModel

            self.image_encoder = load("image_encoder", CLIPVisionModel)
            self.image_processor = hub.shared(self.path, "image_processor", None, device,
                                              CLIPImageProcessor.from_pretrained)
        self.text_key = hub.fingerprint(self.path, "text_encoder")
        self.scheduler_config = _read_json(self.path / "scheduler" / "scheduler_config.json")

    def encode_prompt(self, prompt: str, max_sequence_length: int = 512):
        """UMT5 embeddings ``[1, L, D]``, zero past the prompt's tokens, as WanPipeline.encode_prompt makes them."""
        import torch
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        from .codecs import execution_device

        key = (self.text_key, prompt, max_sequence_length, str(self.device))
        if key not in _PROMPTS:
            inputs = self.tokenizer([prompt_clean(prompt)], padding="max_length", max_length=max_sequence_length,
                                    truncation=True, add_special_tokens=True, return_attention_mask=True,
                                    return_tensors="pt")
            device = execution_device(self.text_encoder)
            ids, mask = inputs.input_ids.to(device), inputs.attention_mask.to(device)
            with torch.no_grad():
                embeds = self.text_encoder(ids, mask).last_hidden_state
            n = int(mask.gt(0).sum())
            embeds = torch.cat([embeds[:, :n], embeds.new_zeros(1, max_sequence_length - n, embeds.shape[2])], dim=1)
            _PROMPTS[key] = embeds.to(self.device, self.dtype)
        return _PROMPTS[key]

    def encode_image(self, image):
        """CLIP's penultimate hidden states of a ``[3, H, W]`` image in [-1, 1], as WanImageToVideoPipeline's."""
        import torch
        from PIL import Image

        from .codecs import execution_device

        pixels = ((image.detach().cpu().float() + 1) * 127.5).round().clamp(0, 255).byte()
        inputs = self.image_processor(images=Image.fromarray(pixels.permute(1, 2, 0).numpy()), return_tensors="pt")
        with torch.no_grad():
            out = self.image_encoder(**inputs.to(execution_device(self.image_encoder)), output_hidden_states=True)
        return out.hidden_states[-2].to(self.device, self.dtype)

    def schedule_shift(self, h: int, w: int) -> float:
        """Wan's flow shift: the scheduler config's, else Wan's advice (5 from 720p up, 3 below)."""
        c = self.scheduler_config
        shift = c.get("flow_shift") or c.get("shift")
        return float(shift) if shift else (5.0 if h * w >= 720 * 1280 else 3.0)


_PROMPTS: dict[tuple, Any] = {}  # prompt embeddings, shared by experts with the same text encoder


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fit(value, box, canvas):
    """A condition as a float tensor over the expert's frames: one the canvas' size is cropped to the region.

    Through the language a region expert's conditions already have the region's size (the checker sees to
    it); from Python they may cover the whole canvas.
    """
    import torch

    t = torch.as_tensor(value, dtype=torch.float32)
    if box is None or tuple(t.shape[-2:]) != tuple(canvas[-2:]):
        return t
    y0, y1, x0, x1 = box
    return t[..., y0:y1, x0:x1]


def _flow(args: dict, context, kind: str, condition_of=None) -> WanFlow:
    """Shared part of the three loaders; ``condition_of(model, box, frames, h, w)`` returns WanFlow keywords."""
    device = args.get("device") or context.device
    model = WanModel(args["model"], context.base_dir, args.get("dtype", "bfloat16"), device, kind)
    codec = model.codec
    box = None if getattr(context, "region", None) is None else codec.snap(context.region, tuple(context.canvas[-2:]))
    frames = context.event_shape[0]
    h, w = (box[1] - box[0], box[3] - box[2]) if box else tuple(context.event_shape[-2:])
    codec.latent_shape((frames, 3, h, w))  # a clear error for a frame count or size the VAE cannot take
    max_len = int(args.get("max_sequence_length") or 512)  # WanPipeline's default; Wan2.1 I2V assumes 512
    guidance = float(args["guidance"])
    prompt = model.encode_prompt(args.get("prompt", ""), max_len)
    negative = model.encode_prompt(args.get("negative_prompt") or "", max_len) if guidance > 1 else None
    extra = condition_of(model, box, frames, h, w) if condition_of else {}
    c = model.scheduler_config
    return WanFlow(context.name, model.transformer, codec, (prompt, negative), guidance,
                   schedule_shift=model.schedule_shift(*context.canvas[-2:]),
                   train_steps=int(c.get("num_train_timesteps", 1000)), **extra)


def load_wan_t2v(args: dict, context) -> WanFlow:
    return _flow(args, context, "t2v")


def load_wan_i2v(args: dict, context) -> WanFlow:
    import torch

    def condition(model: WanModel, box, frames: int, h: int, w: int) -> dict:
        image = _fit(args["image"], box, context.canvas)
        if image.dim() == 2:
            image = image.expand(3, *image.shape)
        if tuple(image.shape[-2:]) != (h, w):
            raise ValueError(f"the first frame is {image.shape[-2]}×{image.shape[-1]} px but this expert's frames "
                             f"are {h}×{w}: load it with size=({h}, {w})")
        # WanImageToVideoPipeline.prepare_latents: the image, then black frames, encoded together ...
        video = torch.cat([image[None, :, None], image.new_zeros(1, 3, frames - 1, h, w)], dim=2)
        latents = model.codec.encode_channels_first(video)
        # ... and a mask saying which latent frames are given: the first (4 channels, one per packed pixel frame)
        lf, lh, lw = latents.shape[2:]
        mask = torch.zeros(1, model.codec.temporal, lf, lh, lw)
        mask[:, :, 0] = 1
        cond = torch.cat([mask.to(latents.device), latents], dim=1).to(model.device, model.dtype)
        embeds = model.encode_image(image) if model.needs_image else None
        return {"condition": cond, "image_embeds": embeds}

    return _flow(args, context, "i2v", condition)


def load_wan_depth(args: dict, context) -> WanFlow:
    import torch

    def condition(model: WanModel, box, frames: int, h: int, w: int) -> dict:
        depth = _fit(args["depth"], box, context.canvas)
        if depth.dim() == 2:  # one depth map: the same for every frame
            depth = depth.expand(frames, *depth.shape)
        if tuple(depth.shape) != (frames, h, w):
            raise ValueError(f"the depth video is {'×'.join(map(str, depth.shape))} but this expert's video is "
                             f"{frames}×{h}×{w}")
        mask = _vace_mask(args.get("mask"), box, context.canvas, frames, h, w)
        keep = args.get("video")
        keep = torch.zeros(frames, 3, h, w) if keep is None else _fit(keep, box, context.canvas)
        if tuple(keep.shape) != (frames, 3, h, w):
            raise ValueError(f"the video to keep is {'×'.join(map(str, keep.shape))} but this expert's video is "
                             f"{frames}×3×{h}×{w}")
        # WanVACEPipeline's control video: the depth frames as RGB in [-1, 1] where the mask is set (generated, the
        # 'reactive' part), the video to keep elsewhere (the 'inactive' part), each encoded on its own ...
        m = mask[None, None]
        depth_rgb = (depth * 2 - 1)[None, None].expand(1, 3, frames, h, w)
        reactive = model.codec.encode_channels_first(depth_rgb * m)
        inactive = model.codec.encode_channels_first(keep.transpose(0, 1)[None] * (1 - m))
        # ... and the mask, space-to-depth over the VAE's 8×8 pixels, nearest latent frame in time
        lf, lh, lw = reactive.shape[2:]
        s = model.codec.scale
        mask = mask.view(frames, lh, s, lw, s).permute(2, 4, 0, 1, 3).flatten(0, 1)
        mask = torch.nn.functional.interpolate(mask[None], size=(lf, lh, lw), mode="nearest-exact").to(reactive.device)
        control = torch.cat([inactive, reactive, mask], dim=1).to(model.device, model.dtype)
        return {"control": control, "control_scale": float(args.get("control_scale", 1.0))}

    return _flow(args, context, "vace", condition)


def _vace_mask(value, box, canvas, frames: int, h: int, w: int):
    """VACE's mask as ``[f, h, w]`` of 0/1 (the pipeline binarises it): 1 where the video is generated."""
    import torch

    if value is None:
        return torch.ones(frames, h, w)
    mask = _fit(value, box, canvas)
    if mask.dim() == 2:  # one mask for every frame
        mask = mask.expand(frames, h, w)
    if tuple(mask.shape) != (frames, h, w):
        raise ValueError(f"the mask is {'×'.join(map(str, mask.shape))} but this expert's video is {frames}×{h}×{w}")
    return (mask > 0.5).float()


def _common(model: str) -> tuple[Param, ...]:
    return (
        Param("negative_prompt", "Text", "", "what the video should not show (classifier-free guidance)"),
        Param("frames", "Int", 81, "number of frames (4k + 1) when no video fixes it"),
        Param("size", "Size", (480, 832), "frame (h, w), multiples of 16, when no image or video fixes it"),
        Param("guidance", "Number", 5.0, "classifier-free guidance scale (1: no negative prompt pass)"),
        Param("model", "Text", model, "local diffusers directory or Hugging Face id"),
        Param("dtype", "Text", "bfloat16", "weights' dtype on GPU (float32 on CPU; the VAE is always float32)"),
        Param("device", "Text?", None, "device for this expert; default: the run's"),
    )


EXPERTS = [
    ExpertSpec(
        "wan_t2v", "generative", "Wan2.1 text-to-video",
        (Param("prompt", "Text", doc="what the video shows"),) + _common("Wan-AI/Wan2.1-T2V-14B-Diffusers"),
        loader="poelang.stdlib.wan:load_wan_t2v", domain=video_domain(), family="wan",
        weights=model_weights(),
    ),
    ExpertSpec(
        "wan_i2v", "generative", "Wan2.1 image-to-video from a first frame",
        (Param("prompt", "Text", doc="what the video shows"), Param("image", "Image", doc="the first frame"))
        + _common("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"),
        loader="poelang.stdlib.wan:load_wan_i2v", domain=video_domain("image"), family="wan",
        weights=model_weights(),
    ),
    ExpertSpec(
        "wan_depth", "generative", "Wan2.1 VACE video following per-frame depth",
        (Param("prompt", "Text", doc="what the video shows"),
         Param("depth", "Depth", doc="per-frame depth maps (inverse depth, near is bright), or one for every frame"),
         Param("control_scale", "Number", 1.0, "how strongly the depth steers (VACE's conditioning_scale)"),
         Param("mask", "Mask?", None, "where VACE generates (per frame, or one for all); none: everywhere"),
         Param("video", "Video?", None, "the frames VACE keeps where the mask is not set; none: black"))
        + _common("Wan-AI/Wan2.1-VACE-14B-diffusers"),
        loader="poelang.stdlib.wan:load_wan_depth", domain=video_domain("depth"), family="wan",
        weights=model_weights(),
    ),
]
