"""Small plots drawn with Pillow (no plotting library needed): particles of a vector sample and
curves over levels, each with axes, ticks, labels and a legend. Used by the trace page and ``:show``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["nice_ticks", "vector_plot", "curves_plot", "HEAVY", "LIGHT"]

HEAVY = (200, 40, 40)  # particles of at least half the largest weight
LIGHT = (60, 90, 200)  # the others
COLORS = [(200, 40, 40), (60, 90, 200), (40, 150, 60), (150, 90, 20)]
GREY, BLACK = (150, 150, 150), (0, 0, 0)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 12, 22, 34


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}"


class _Axes:
    """A plotting area in an image: data coordinates → pixels, a frame with ticks and axis labels."""

    def __init__(self, image: "Image", box: tuple[int, int, int, int], xlim: tuple[float, float],
                 ylim: tuple[float, float]) -> None:
        from PIL import ImageDraw

        self.draw = ImageDraw.Draw(image)
        self.left, self.top, self.right, self.bottom = box
        self.xlim, self.ylim = xlim, ylim

    def px(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        u = self.left + (x - x0) / (x1 - x0 or 1) * (self.right - self.left)
        v = self.bottom - (y - y0) / (y1 - y0 or 1) * (self.bottom - self.top)
        return u, v

    def inside(self, u: float, v: float) -> bool:
        return self.left <= u <= self.right and self.top <= v <= self.bottom

    def frame(self, xlabel: str, ylabel: str, title: str) -> None:
        d = self.draw
        d.rectangle([self.left, self.top, self.right, self.bottom], outline=BLACK)
        for t in nice_ticks(*self.xlim):
            u, _ = self.px(t, self.ylim[0])
            if self.left - 0.5 <= u <= self.right + 0.5:
                d.line([(u, self.bottom), (u, self.bottom + 4)], fill=BLACK)
                d.text((u, self.bottom + 6), _label(t), fill=BLACK, anchor="ma")
        for t in nice_ticks(*self.ylim):
            _, v = self.px(self.xlim[0], t)
            if self.top - 0.5 <= v <= self.bottom + 0.5:
                d.line([(self.left - 4, v), (self.left, v)], fill=BLACK)
                d.text((self.left - 6, v), _label(t), fill=BLACK, anchor="rm")
        d.text(((self.left + self.right) / 2, self.bottom + 20), xlabel, fill=BLACK, anchor="ma")
        d.text((4, self.top - 14), ylabel, fill=BLACK)
        d.text(((self.left + self.right) / 2, 4), title, fill=BLACK, anchor="ma")


def weighty_bounds(points: Any, weights: Any, pad: float = 0.08) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits holding every particle whose weight is at least 1e-3 of the largest, padded."""
    import torch

    points = torch.as_tensor(points).double()
    weights = torch.as_tensor(weights).double()
    keep = weights >= 1e-3 * float(weights.max()) if weights.numel() else torch.ones(len(points), dtype=torch.bool)
    kept = points[keep] if bool(keep.any()) else points
    lo, hi = kept.min(0).values, kept.max(0).values
    span = torch.clamp(hi - lo, min=1e-3)
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def vector_plot(points: Any, weights: Any, *, title: str = "", size: int = 240,
                limits: tuple[tuple[float, float], tuple[float, float]] | None = None) -> "Image":
    """A scatter of the first two coordinates (or the first against 0), dot area ∝ weight, with a legend.

    Particles outside `limits` (those of negligible weight, by :func:`weighty_bounds`) are drawn as
    hollow marks on the frame's edge, so none disappears.
    """
    import torch
    from PIL import Image

    points = torch.as_tensor(points).double()
    if points.shape[1] == 1:
        points = torch.cat([points, torch.zeros_like(points)], 1)
    points = points[:, :2]
    weights = torch.as_tensor(weights).double().reshape(-1)
    xlim, ylim = limits or weighty_bounds(points, weights)
    legend_height = 30
    image = Image.new("RGB", (size + MARGIN_LEFT + MARGIN_RIGHT, size + MARGIN_TOP + MARGIN_BOTTOM + legend_height),
                      "white")
    axes = _Axes(image, (MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT + size, MARGIN_TOP + size), xlim, ylim)
    axes.frame("x[0]", "x[1]", title)
    scale = weights / max(float(weights.max()), 1e-300)
    for (x, y), w in sorted(zip(points.tolist(), scale.tolist()), key=lambda p: p[1]):  # heavy dots on top
        u, v = axes.px(x, y)
        r = 1.5 + 3 * w ** 0.5
        color = HEAVY if w >= 0.5 else LIGHT
        if axes.inside(u, v):
            axes.draw.ellipse([u - r, v - r, u + r, v + r], fill=color)
        else:
            u, v = min(max(u, axes.left), axes.right), min(max(v, axes.top), axes.bottom)
            axes.draw.ellipse([u - 3, v - 3, u + 3, v + 3], outline=color)
    top = MARGIN_TOP + size + MARGIN_BOTTOM
    d = axes.draw
    d.ellipse([8, top + 2, 16, top + 10], fill=HEAVY)
    d.text((20, top + 1), "weight >= max/2", fill=BLACK)
    d.ellipse([118, top + 2, 126, top + 10], fill=LIGHT)
    d.text((130, top + 1), "lower weight", fill=BLACK)
    d.ellipse([8, top + 16, 16, top + 24], outline=GREY)
    d.text((20, top + 15), "off the axes (weight < max/1000); dot area ~ weight", fill=BLACK)
    return image


def curves_plot(x: Sequence[float], series: dict[str, Sequence[float]], *, title: str = "", xlabel: str = "level",
                ylabel: str = "", width: int = 420, height: int = 200,
                ylim: tuple[float, float] | None = None) -> "Image":
    """Lines over `x`, one per series, with axes, ticks and a legend; non-finite points are left out."""
    from PIL import Image

    finite = [v for s in series.values() for v in s if math.isfinite(v)]
    lo, hi = ylim or ((min(finite), max(finite)) if finite else (0.0, 1.0))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    image = Image.new("RGB", (width + MARGIN_LEFT + MARGIN_RIGHT, height + MARGIN_TOP + MARGIN_BOTTOM + 16), "white")
    axes = _Axes(image, (MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT + width, MARGIN_TOP + height),
                 (float(min(x)), float(max(x)) if len(x) > 1 else float(x[0]) + 1), (lo - pad, hi + pad))
    axes.frame(xlabel, ylabel, title)
    legend_x = MARGIN_LEFT
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        points = [axes.px(a, b) for a, b in zip(x, values) if math.isfinite(b)]
        if len(points) > 1:
            axes.draw.line(points, fill=color, width=2)
        for u, v in points if len(points) <= 60 else []:
            axes.draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=color)
        top = MARGIN_TOP + height + MARGIN_BOTTOM
        axes.draw.line([(legend_x, top + 6), (legend_x + 16, top + 6)], fill=color, width=3)
        axes.draw.text((legend_x + 20, top), name, fill=BLACK)
        legend_x += 30 + 7 * len(name)
    return image
