"""Run-time implementations of the builtin value functions.

Images are float tensors [3, h, w] in [-1, 1] (the flow experts' pixel
convention), masks and depths [h, w] (or [f, h, w]) in [0, 1]. Lengths in
percent are resolved against the canvas size, which the interpreter passes as
`canvas` (h, w) when it is known. Libraries' builtins (the standard library's
scene objects, simulations and renders) follow the same conventions: a
simulation has ``.rgb``, ``.depth`` and ``.mask``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poelang._lazy import lazy_import

torch = lazy_import("torch")


@dataclass(frozen=True)
class Box:
    """A rectangle whose coordinates are (value, unit) with unit "px" or "%"."""

    x0: tuple[float, str]
    y0: tuple[float, str]
    x1: tuple[float, str]
    y1: tuple[float, str]

    def pixels(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in pixels on an h × w canvas."""

        def resolve(coord: tuple[float, str], extent: int) -> int:
            value, unit = coord
            return int(round(value / 100 * extent)) if unit == "%" else int(round(value))

        return resolve(self.x0, w), resolve(self.y0, h), resolve(self.x1, w), resolve(self.y1, h)


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str | None

    def pixels(self, extent: int) -> float:
        return self.value / 100 * extent if self.unit == "%" else self.value


@dataclass
class Context:
    base_dir: Path
    device: str = "cpu"


def _coord(value: Any) -> tuple[float, str]:
    if isinstance(value, Quantity):
        return (value.value, value.unit or "px")
    return (float(value), "px")


def box(ctx: Context, x0, y0, x1, y1) -> Box:
    return Box(_coord(x0), _coord(y0), _coord(x1), _coord(y1))


def box_mask(ctx: Context, region: Box, size) -> "torch.Tensor":
    h, w = int(size[0]), int(size[1])
    x0, y0, x1, y1 = region.pixels(h, w)
    mask = torch.zeros(h, w)
    mask[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = 1.0
    return mask


def _radius(radius: Any, mask: "torch.Tensor") -> float:
    if isinstance(radius, Quantity):
        return radius.pixels(mask.shape[-1])
    return float(radius)


def blur(ctx: Context, mask: "torch.Tensor", radius) -> "torch.Tensor":
    """Gaussian blur with σ = radius / 2, separable, reflect-padded (a soft mask stays in [0, 1])."""
    r = _radius(radius, mask)
    if r <= 0:
        return mask.clone()
    sigma = r / 2
    half = max(int(math.ceil(3 * sigma)), 1)
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    pad_h, pad_w = min(half, x.shape[-2] - 1), min(half, x.shape[-1] - 1)
    kh = kernel[half - pad_h: half + pad_h + 1] if pad_h < half else kernel
    kw = kernel[half - pad_w: half + pad_w + 1] if pad_w < half else kernel
    kh, kw = kh / kh.sum(), kw / kw.sum()
    x = torch.nn.functional.pad(x, (0, 0, pad_h, pad_h), mode="reflect") if pad_h else x
    x = torch.nn.functional.conv2d(x, kh.view(1, 1, -1, 1))
    x = torch.nn.functional.pad(x, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w else x
    x = torch.nn.functional.conv2d(x, kw.view(1, 1, 1, -1))
    return x.reshape(mask.shape).clamp(0, 1)


def _morph(mask: "torch.Tensor", radius: float, grow: bool) -> "torch.Tensor":
    r = int(round(radius))
    if r <= 0:
        return mask.clone()
    x = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    pooled = torch.nn.functional.max_pool2d(x if grow else -x, 2 * r + 1, stride=1, padding=r)
    return (pooled if grow else -pooled).reshape(mask.shape)


def dilate(ctx: Context, mask, radius):
    return _morph(mask, _radius(radius, mask), grow=True)


def erode(ctx: Context, mask, radius):
    return _morph(mask, _radius(radius, mask), grow=False)


def complement(ctx: Context, mask):
    return 1.0 - mask


def union(ctx: Context, a, b):
    return torch.maximum(a, b)


def intersect(ctx: Context, a, b):
    return torch.minimum(a, b)


def _open_image(ctx: Context, path: str, size, mode: str):
    from PIL import Image

    full = ctx.base_dir / path
    try:
        image = Image.open(full).convert(mode)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"cannot read {path}: {e}") from None
    if size is not None:
        image = image.resize((int(size[1]), int(size[0])), Image.BICUBIC)
    import numpy as np

    return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()) / 255.0


def load_image(ctx: Context, path, size=None):
    return _open_image(ctx, path, size, "RGB").permute(2, 0, 1) * 2 - 1


def load_mask(ctx: Context, path, size=None):
    return _open_image(ctx, path, size, "L")


def load_depth(ctx: Context, path, size=None):
    return _open_image(ctx, path, size, "L")


def _gif_repeats(path: Path) -> list[int] | None:
    """How many frames each stored GIF frame stands for. GIF writers (Pillow's, so imageio's and poelang's)
    store a run of identical frames once, with the run's total duration: a ball at rest at the end of a clip
    would come back as fewer frames. One frame lasts 1/fps where the file says its fps (poelang's GIFs do, in
    their comment), else as long as the shortest stored frame."""
    import re

    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        found = re.search(rb"fps=([0-9.]+)", image.info.get("comment", b"") or b"")
        durations = [f.info.get("duration", 0) or 0 for f in ImageSequence.Iterator(image)]
    one = 1000 / float(found.group(1)) if found else min((d for d in durations if d > 0), default=0)
    return [max(1, round(d / one)) for d in durations] if one else None


def load_video(ctx: Context, path, size=None, frames=None):
    import imageio.v3 as iio
    import numpy as np

    full = ctx.base_dir / path
    data = iio.imread(full, index=None)
    if full.suffix.lower() == ".gif" and (repeats := _gif_repeats(full)) and len(repeats) == len(data):
        data = np.repeat(data, repeats, axis=0)
    data = data[..., :3]
    video = torch.from_numpy(data[: frames or len(data)]).float().permute(0, 3, 1, 2) / 127.5 - 1
    if size is not None:
        video = torch.nn.functional.interpolate(video, size=(int(size[0]), int(size[1])), mode="bilinear")
    return video


def frame(ctx: Context, video, index):
    return video[int(index)]


def trace(ctx: Context, sample):
    return sample  # the interpreter writes the sample's trace; the value names which sample


def _attribute(name: str):
    def get(ctx: Context, of):
        return getattr(of, name)

    return get


# The graph's operator and attribute ops → implementation, called as op(context, **args). Builtin
# functions (load_image, box, …) are reached through their specs' loaders (poelang.builtins).
OPS = {
    "complement": complement, "union": union, "intersect": intersect,
    "rgb": _attribute("rgb"), "depth": _attribute("depth"), "mask": _attribute("mask"),
}
