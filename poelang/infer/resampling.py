"""Resampling schemes, registered by name (after ``particles.resampling``).

A scheme maps normalised weights W (a 1-D float64 CPU tensor summing to 1)
to ``n`` ancestor indices. The random schemes are *unbiased*: the expected
number of copies of particle i is n * W_i (tested). They differ in variance:

* ``multinomial`` -- n independent draws (highest variance).
* ``stratified``  -- one uniform in each stratum [k/n, (k+1)/n).
* ``systematic``  -- one uniform shifted across all strata (lowest in practice).
* ``residual``    -- floor(n W_i) copies deterministically, the rest multinomial.
* ``median``      -- the paper's greedy scheme: keep the particles whose weight
  (equivalently score) is in the top half and duplicate each of them; it is
  *not* unbiased and only makes sense with ``weighting='greedy'``.
* ``none``        -- keep every particle (identity).

All randomness comes from the ``torch.Generator`` passed in (CPU), so a seed
fixes the ancestors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict

from poelang._lazy import lazy_import

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")  # the names are checked by `poelang check`, which never loads torch

Resampler = Callable[["Tensor", int, "torch.Generator"], "Tensor"]

RESAMPLERS: Dict[str, Resampler] = {}
UNBIASED = {"multinomial", "stratified", "systematic", "residual"}


def register(name: str) -> Callable[[Resampler], Resampler]:
    """Decorator: make a scheme available under ``name`` in Settings.resample."""

    def deco(fn: Resampler) -> Resampler:
        RESAMPLERS[name] = fn
        return fn

    return deco


def inverse_cdf(weights: Tensor, uniforms: Tensor) -> Tensor:
    """Indices i with cdf[i-1] <= u < cdf[i]; zero-weight particles are never hit."""
    cdf = torch.cumsum(weights, dim=0)
    u = uniforms * cdf[-1]  # in [0, total): immune to cdf[-1] = 0.99999...
    idx = torch.searchsorted(cdf, u, right=True)
    return idx.clamp_max(weights.shape[0] - 1)


@register("multinomial")
def multinomial(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    u = torch.rand(n, dtype=torch.float64, generator=generator)
    return inverse_cdf(weights, u)


@register("stratified")
def stratified(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    u = (torch.arange(n, dtype=torch.float64) + torch.rand(n, dtype=torch.float64, generator=generator)) / n
    return inverse_cdf(weights, u)


@register("systematic")
def systematic(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    u0 = torch.rand(1, dtype=torch.float64, generator=generator)
    u = (torch.arange(n, dtype=torch.float64) + u0) / n
    return inverse_cdf(weights, u)


@register("residual")
def residual(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    scaled = weights * n
    counts = torch.floor(scaled).to(torch.long)
    rest = n - int(counts.sum())
    kept = torch.repeat_interleave(torch.arange(weights.shape[0]), counts)
    if rest == 0:
        return kept
    remainder = (scaled - counts.to(scaled.dtype)).clamp_min(0)
    u = torch.rand(rest, dtype=torch.float64, generator=generator)
    return torch.cat([kept, inverse_cdf(remainder / remainder.sum(), u)])


@register("median")
def median(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Keep the top ceil(n/2) particles by weight, two copies each (ties: lower
    index first); when n is odd the last kept one gets a single copy.
    Particles with zero weight are never kept while others remain."""
    order = torch.sort(-weights, stable=True).indices
    keep = (n + 1) // 2
    copies = torch.full((keep,), 2, dtype=torch.long)
    if 2 * keep > n:
        copies[-1] = 1
    chosen = order[:keep]
    if bool((weights[chosen] == 0).any()) and bool((weights > 0).any()):
        alive = order[: int((weights > 0).sum())]
        chosen = alive[torch.arange(keep) % alive.shape[0]]
    ancestors = torch.repeat_interleave(chosen, copies)
    return torch.sort(ancestors).values


@register("none")
def identity(weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    return torch.arange(n)


def resample(name: str, weights: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Ancestor indices for the scheme registered under ``name``."""
    return RESAMPLERS[name](weights.to(torch.float64).cpu(), n, generator)
