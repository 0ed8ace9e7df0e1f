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
        """(x0, y0, x1, y1) in pixels on an h × w canvas (:func:`poelang.types.box_pixels`)."""
        from poelang.types import box_pixels

        return box_pixels((self.x0, self.y0, self.x1, self.y1), h, w)


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
    """The radius in pixels, at most twice the mask's size (beyond that every radius acts alike)."""
    value = radius.pixels(mask.shape[-1]) if isinstance(radius, Quantity) else float(radius)
    return min(value, 2.0 * max(mask.shape[-2:]))


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


IMAGE_SUFFIXES_16BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _input(ctx: Context, path: str) -> Path:
    """The input file `path` (relative to the program), which must be a regular file:
    a FIFO or a device would block the read, or never end."""
    from poelang.builtins import input_file_problem

    full = ctx.base_dir / path
    problem = input_file_problem(full)
    if problem:
        raise FileNotFoundError(f"cannot read {path}: {problem}")
    return full


def _open_image(ctx: Context, path: str, size, channels: int, keep_range: bool = False):
    """An image file as float32 [h, w] (channels=1) or [h, w, 3] in [0, 1], at full precision:
    8-bit files / 255, 16-bit files / 65535, float files as they are (clipped to [0, 1]
    unless `keep_range`, which depth maps use to keep metres)."""
    import warnings

    from PIL import Image

    full = _input(ctx, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(full) as image:
                image.load()
                pixels = _pixels(image, channels, size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"cannot read {path}: {_too_large(e)}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # PIL's errors for broken or unknown files
        raise ValueError(f"cannot read {path}: {e}") from None
    tensor = torch.from_numpy(pixels)
    bad = int((~torch.isfinite(tensor)).reshape(tensor.shape[0], tensor.shape[1], -1).any(-1).sum())
    if bad:  # a float file (a depth sensor's holes): NaN would reach the experts and look like their failure
        raise ValueError(f"cannot read {path}: {bad} of its pixels are NaN or infinite; an image, mask or depth map "
                         "must be finite (fill the holes first)")
    return tensor if keep_range else tensor.clamp(0, 1)


def _too_large(error: Exception) -> str:
    import re

    from PIL import Image

    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)) / 1e6:.0f} Mpx" if found else "too many pixels"
    return f"image too large ({size}; poelang reads at most {Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx)"


def _pixels(image, channels: int, size):
    """The decoded pixels as float32 numpy, resized to `size` (h, w) when given."""
    import numpy as np
    from PIL import Image

    precise = image.mode in IMAGE_SUFFIXES_16BIT or image.mode in ("I", "F")
    if not precise:  # 8-bit: PIL converts and resizes, as it always has
        image = image.convert("RGB" if channels == 3 else "L")
        if size is not None:
            image = image.resize((int(size[1]), int(size[0])), Image.BICUBIC)
        return np.asarray(image, dtype=np.float32) / 255.0
    scale = 1.0 if image.mode == "F" else 65535.0
    grey = np.asarray(image, dtype=np.float64).astype(np.float32) / scale
    if size is not None:
        grey = np.asarray(Image.fromarray(grey).resize((int(size[1]), int(size[0])), Image.BICUBIC))
    grey = np.array(grey, dtype=np.float32)  # a writable copy (PIL hands out read-only views)
    return np.repeat(grey[..., None], 3, axis=-1) if channels == 3 else grey


def load_image(ctx: Context, path, size=None):
    return _open_image(ctx, path, size, 3).permute(2, 0, 1) * 2 - 1


def load_mask(ctx: Context, path, size=None):
    return _open_image(ctx, path, size, 1)


def load_depth(ctx: Context, path, size=None):
    """Integer files normalised to [0, 1] (8-bit / 255, 16-bit / 65535); float files (TIFF) as they are, e.g. metres."""
    return _open_image(ctx, path, size, 1, keep_range=True)


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
    """Frames [f, 3, h, w] in [-1, 1]: 8- or 16-bit, grey, RGB or RGBA frames of any format imageio reads."""
    import numpy as np

    full = _input(ctx, path)
    stored = _read_frames(full, path)
    if full.suffix.lower() == ".gif" and (repeats := _gif_repeats(full)) and len(repeats) == len(stored):
        stored = [f for f, n in zip(stored, repeats) for _ in range(n)]
    if frames is not None and int(frames) > len(stored):
        raise ValueError(f"{path} has {len(stored)} frame{'s' * (len(stored) != 1)}, {int(frames)} requested")
    data = np.stack(stored[: int(frames) if frames is not None else len(stored)])
    video = torch.from_numpy(data).permute(0, 3, 1, 2) / 127.5 - 1
    if size is not None:
        video = torch.nn.functional.interpolate(video, size=(int(size[0]), int(size[1])), mode="bilinear")
    return video


def _read_frames(full: Path, path: str) -> list:
    """Every stored frame as float32 [h, w, 3] in 8-bit units [0, 255] (16-bit frames / 257); any decoder
    failure is a ValueError naming the file."""
    import imageio.v3 as iio
    import numpy as np

    try:
        raw = [np.asarray(f) for f in iio.imiter(full)]
    except Exception as e:  # imageio's plugins raise many types (OSError, SyntaxError, RuntimeError, …) for bad files
        raise ValueError(f"cannot read {path}: {e}") from None
    if not raw:
        raise ValueError(f"cannot read {path}: it has no frames")
    frames = []
    for f in raw:
        if f.dtype == np.uint16:
            f = f.astype(np.float32) / 257.0
        elif f.dtype != np.uint8:  # float frames in [0, 1]
            f = np.clip(f.astype(np.float32), 0, 1) * 255.0
        f = f.astype(np.float32)
        f = np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f[..., :3]
        if f.ndim != 3 or f.shape[-1] != 3:
            raise ValueError(f"cannot read {path}: frames of shape {tuple(f.shape)} are not images")
        frames.append(f)
    if len({f.shape for f in frames}) > 1:
        raise ValueError(f"cannot read {path}: its frames differ in size")
    return frames


def frame(ctx: Context, video, index):
    n = video.shape[0]
    if not -n <= int(index) < n:
        raise ValueError(f"frame {int(index)} is out of range for a video of {n} frame{'s' * (n != 1)}")
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
