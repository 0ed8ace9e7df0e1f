"""Values as pictures: PIL images of images, masks and videos, and a contact sheet of a sample's particles.

Used by the REPL's ``:show`` and by :class:`poelang.results.Sample`'s
``images()``/``frames()``. Tensors follow the engine's conventions: an image
is ``[3, h, w]`` in [-1, 1], a mask or depth map ``[h, w]`` in [0, 1], a video
``[f, 3, h, w]``, a vector ``[d]``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["to_pil", "to_frames", "preview", "CELL", "MAX_PARTICLES"]

CELL = 128  # pixels of a particle's cell on a contact sheet
MAX_PARTICLES = 16
LABEL = 14  # pixels under each cell for its weight


def to_pil(image: Any) -> "Image":
    """One image ``[3, h, w]`` in [-1, 1] or mask ``[h, w]`` in [0, 1] as a PIL image (RGB or L)."""
    from PIL import Image

    from poelang.writers import to_uint8_image

    return Image.fromarray(to_uint8_image(image))


def to_frames(video: Any) -> "list[Image]":
    """A video ``[f, 3, h, w]`` in [-1, 1] as a list of PIL images."""
    return [to_pil(frame) for frame in video]


def preview(value: Any) -> "Image":
    """A picture of a value: an image or mask itself, a video's frames in a row, a sample's particles on a sheet.

    Raises ValueError for a value with no picture (a number, a box, a simulation).
    """
    if hasattr(value, "particles") and hasattr(value, "log_weights"):
        return _particle_sheet(value)
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) == 2 or (len(shape) == 3 and shape[0] == 3):
        return to_pil(value)
    if len(shape) == 4 and shape[1] == 3:
        from poelang.writers import frame_strip

        return frame_strip(value, min(int(shape[-2]), CELL), 16)
    if len(shape) == 1:
        import torch

        return _scatter(torch.as_tensor(value).reshape(1, -1), torch.ones(1))
    raise ValueError(f"a {type(value).__name__} has no picture; :show takes images, masks, videos and samples")


def _scatter(points: Any, weights: Any) -> "Image":
    import torch

    from poelang.plots import vector_plot

    points = torch.as_tensor(points).double()
    return vector_plot(points, weights.double(), title="final particles")


def _particle_sheet(result: Any) -> "Image":
    """The final particles of a sample, each with its normalised weight, best-weighted first."""
    import torch
    from PIL import Image, ImageDraw

    particles = result.particles.detach().cpu()
    weights = torch.softmax(result.log_weights.detach().double().cpu(), 0)
    if particles.dim() == 2:  # vectors
        return _scatter(particles, weights)
    order = torch.argsort(weights, descending=True)[:MAX_PARTICLES].tolist()
    cells = [preview(particles[i]) for i in order]
    width = max(c.width * CELL // c.height for c in cells)
    columns = min(len(cells), 4 if particles.dim() == 5 else 8)
    rows = (len(cells) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (width + 4), rows * (CELL + LABEL + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (i, cell) in enumerate(zip(order, cells)):
        x, y = (k % columns) * (width + 4), (k // columns) * (CELL + LABEL + 4)
        sheet.paste(cell.convert("RGB").resize((cell.width * CELL // cell.height, CELL), Image.NEAREST), (x, y))
        draw.text((x + 2, y + CELL + 1), f"#{i}  w={float(weights[i]):.3f}", fill="black")
    return sheet
