"""Latent spaces that image and video experts sample in, and FLUX's token packing.

A codec maps pixel images ``[B, 3, H, W]`` in [-1, 1] to the state the
experts' flows run on, ``[B, C, H / scale, W / scale]``, and back (videos
``[B, f, 3, H, W]``: :class:`WanVaeCodec`). FLUX and Wan transformers then
*patch* that state into tokens of 2×2 latent pixels, so a region or a mask
must follow the token grid: ``align = 2 * scale`` pixels.

The interpreter asks every generative expert for its ``codec``: the experts
of one product must share one (compared with ``key``), the canvas becomes
the latent, rewards and outputs see ``decode(x)``. Codecs never sample
(``encode`` takes the posterior mean): conditions are encoded once and shared
by every particle, so they must not carry one particle's noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in pixels


class Codec:
    """Shared behaviour; subclasses set ``scale``, ``channels``, ``key`` and the two maps."""

    scale: int = 1
    channels: int = 3
    key: tuple = ()

    @property
    def align(self) -> int:
        return 2 * self.scale  # one packed token

    def latent_shape(self, pixel_shape: tuple[int, ...]) -> tuple[int, ...]:
        *lead, _, h, w = pixel_shape
        if h % self.align or w % self.align:
            raise ValueError(
                f"image size {h}×{w} must be a multiple of {self.align} px for these experts "
                f"(latent scale {self.scale}, 2×2 token packing)"
            )
        return (*lead, self.channels, h // self.scale, w // self.scale)

    def snap(self, box: Box, size: tuple[int, int]) -> Box:
        """The smallest token-aligned box containing ``box`` (clipped to the image)."""
        a = self.align
        y0, y1, x0, x1 = box
        h, w = size
        return (y0 // a * a, min(h, -(-y1 // a) * a), x0 // a * a, min(w, -(-x1 // a) * a))

    def latent_box(self, box: Box) -> Box:
        y0, y1, x0, x1 = box
        s = self.scale
        return (y0 // s, y1 // s, x0 // s, x1 // s)

    def pool_mask(self, mask: Tensor) -> Tensor:
        """A pixel mask ``[..., H, W]`` averaged over each token, at latent resolution."""
        lead = mask.shape[:-2]
        m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
        tokens = F.avg_pool2d(m, self.align)
        latent = F.interpolate(tokens, scale_factor=2, mode="nearest")
        return latent.reshape(*lead, *latent.shape[-2:])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


class VaeCodec(Codec):
    """A diffusers ``AutoencoderKL`` with FLUX's latent normalisation (shift, then scale)."""

    def __init__(self, vae, fingerprint: str = ""):
        self.vae = vae
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = vae.config.latent_channels
        self.shift = vae.config.shift_factor or 0.0
        self.scaling = vae.config.scaling_factor
        self.key = ("vae", fingerprint or id(vae))

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        p = pixels.to(self.vae.device, self.vae.dtype)
        latents = self.vae.encode(p).latent_dist.mode()
        return ((latents - self.shift) * self.scaling).to(pixels.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        z = latents.to(self.vae.device, self.vae.dtype) / self.scaling + self.shift
        return self.vae.decode(z, return_dict=False)[0].to(latents.dtype).clamp(-1, 1)


class WanVaeCodec(Codec):
    """Wan2.1's causal video VAE (``AutoencoderKLWan``) with WanPipeline's latent normalisation.

    Videos ``[B, f, 3, H, W]`` in [-1, 1] become ``[B, f', C, H / 8, W / 8]``
    with ``f' = (f - 1) / 4 + 1``: the first frame has a latent frame of its
    own, each later latent frame stands for 4 pixel frames. Latents are kept
    frames-first, like the pixels, so that regions and per-frame masks index
    them the same way; the Wan experts move channels first for the
    transformer. A token is 2×2 latent pixels (Wan's patch ``(1, 2, 2)``), so
    regions follow a 16-px grid.
    """

    def __init__(self, vae, fingerprint: str = ""):
        self.vae = vae
        c = vae.config
        self.scale = int(getattr(c, "scale_factor_spatial", None) or 2 ** len(c.temperal_downsample))
        self.temporal = int(getattr(c, "scale_factor_temporal", None) or 2 ** sum(c.temperal_downsample))
        self.channels = c.z_dim
        self.mean = torch.tensor(c.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(c.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.key = ("wan-vae", fingerprint or id(vae))

    def latent_frames(self, frames: int) -> int:
        if frames < 1 or (frames - 1) % self.temporal:
            near = max(1, (frames - 1) // self.temporal * self.temporal + 1)
            raise ValueError(
                f"a Wan video has {self.temporal}k + 1 frames (the VAE keeps the first frame and compresses "
                f"the others {self.temporal}:1), got {frames}: use {near} or {near + self.temporal}"
            )
        return (frames - 1) // self.temporal + 1

    def latent_shape(self, pixel_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(pixel_shape) != 4:
            raise ValueError(f"the Wan VAE encodes videos (f, 3, h, w), not a tensor of shape {tuple(pixel_shape)}")
        f, _, h, w = pixel_shape
        c, lh, lw = super().latent_shape((3, h, w))
        return (self.latent_frames(f), c, lh, lw)

    def pool_mask(self, mask: Tensor) -> Tensor:
        """``[H, W]`` → ``[h, w]``, ``[f, H, W]`` → ``[f', h, w]`` (each latent frame averages its pixel frames)."""
        if mask.dim() < 3:
            return super().pool_mask(mask)
        first, rest = mask[..., :1, :, :], mask[..., 1:, :, :]
        self.latent_frames(mask.shape[-3])
        if rest.shape[-3]:
            rest = rest.unflatten(-3, (-1, self.temporal)).float().mean(dim=-3)
            first = torch.cat([first.float(), rest], dim=-3)
        return super().pool_mask(first)

    def normalise(self, latents: Tensor) -> Tensor:
        """Raw VAE latents ``[B, C, f', h, w]`` → the flow's (WanPipeline's ``(z - mean) / std``)."""
        return (latents.float() - self.mean.to(latents.device)) * (1.0 / self.std.to(latents.device))

    @torch.no_grad()
    def encode_channels_first(self, video: Tensor) -> Tensor:
        """``[B, 3, f, H, W]`` → normalised ``[B, C, f', h, w]``, the posterior mean (WanPipeline's ``argmax``)."""
        latents = self.vae.encode(video.to(execution_device(self.vae), self.vae.dtype)).latent_dist.mode()
        return self.normalise(latents)

    def encode(self, pixels: Tensor) -> Tensor:
        latents = self.encode_channels_first(pixels.transpose(1, 2))
        return latents.transpose(1, 2).to(pixels.device, pixels.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        z = latents.transpose(1, 2).to(execution_device(self.vae), torch.float32)
        z = z / (1.0 / self.std.to(z.device)) + self.mean.to(z.device)  # WanPipeline's arithmetic, to the bit
        video = self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0]
        return video.transpose(1, 2).to(latents.device, latents.dtype).clamp(-1, 1)


def execution_device(module) -> torch.device:
    """Where a module's inputs go: its device, or the accelerator when diffusers streams it there (group offloading)."""
    try:
        from diffusers.utils.torch_utils import get_module_execution_device
    except ImportError:  # an older diffusers: no offloading hooks to ask
        return module.device
    return get_module_execution_device(module)


class PixelCodec(Codec):
    """Pixels themselves, space-to-depth by ``factor``: an exact, weightless 'VAE' for the mini experts."""

    def __init__(self, factor: int = 2):
        self.factor = self.scale = factor
        self.channels = 3 * factor * factor
        self.key = ("pixels", factor)

    def encode(self, pixels: Tensor) -> Tensor:
        return F.pixel_unshuffle(pixels, self.factor)

    def decode(self, latents: Tensor) -> Tensor:
        return F.pixel_shuffle(latents, self.factor).clamp(-1, 1)


# --- FLUX token packing (diffusers' FluxPipeline._pack_latents and friends) ----------


def pack(latents: Tensor) -> Tensor:
    """``[B, C, h, w]`` → ``[B, h/2 * w/2, 4C]`` tokens of 2×2 latent pixels."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`pack` for a latent of ``h × w``."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device=None, dtype=torch.float32) -> Tensor:
    """FLUX's positional ids of an ``h × w`` latent's tokens: ``[(h/2)(w/2), 3]`` = (0, row, col)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


def pack_mask(mask: Tensor, scale: int) -> Tensor:
    """FLUX Fill's mask input: ``[B, 1, H, W]`` pixels → ``[B, tokens, 4 scale²]`` (space-to-depth, then pack)."""
    b, _, hh, ww = mask.shape
    h, w = hh // scale, ww // scale
    m = mask[:, 0].view(b, h, scale, w, scale).permute(0, 2, 4, 1, 3).reshape(b, scale * scale, h, w)
    return pack(m)
