"""Flow-ODE inversion: the noise that the sampler's own ODE maps to a given canvas.

The paper starts its particles from the inversion of an input video instead
of random noise when a simulation covers the whole scene (§4.3, Alg. 1
line 2): integrate the flow ODE dx/dsigma = v(x, sigma) *upwards*, from the
clean canvas at sigma = 0 to the schedule's first sigma, along the velocity
the sampler will descend with -- the product's composed velocity, so the
Euler transitions of the run retrace the inversion when nothing else moves
the particles.

The inversion walks the run's own schedule backwards. Plain (explicit) Euler,
    x_hi = x_lo + (hi - lo) v(x_lo, lo),
is the paper's; it does not undo the sampler's step
    x_lo = x_hi - (hi - lo) v(x_hi, hi),
which evaluates the velocity at the other end, so a round trip is off by
O(1 / levels). ``iters`` fixed-point iterations
    x_hi <- x_lo + (hi - lo) v(x_hi, hi)
solve for the exact inverse of that step (they converge when
(hi - lo) * Lip(v) < 1, true for any reasonable number of levels), so that
inversion followed by Euler regeneration reproduces the input up to the
fixed point's residual. Each iteration costs one more velocity evaluation
per level.
"""
from __future__ import annotations

import torch

from .errors import SettingsError
from .product import ProductField

Tensor = torch.Tensor


def invert(field: ProductField, x0: Tensor, sigmas: Tensor, iters: int = 2) -> Tensor:
    """The canvas at ``sigmas[0]`` whose Euler descent along ``field``'s composed
    velocity on the schedule ``sigmas`` (decreasing, ending at 0) ends at ``x0``.

    ``x0`` is [B, *shape]; returns [B, *shape].
    """
    grid = [float(s) for s in sigmas.flip(0)]  # 0 = sigma_T < ... < sigma_0
    x = x0
    for lo, hi in zip(grid[:-1], grid[1:]):
        field.where = f"inversion from sigma={lo:.4f} to sigma={hi:.4f}"
        y = x + (hi - lo) * field.evaluate(x, lo, score=False).velocity
        for _ in range(iters):
            y = x + (hi - lo) * field.evaluate(y, hi, score=False).velocity
        x = y
    return x


def inversion_input(given, L: int, shape: tuple, what: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``settings.invert`` as [1, *shape] (one input for all particles) or [L, *shape] (one each)."""
    data = torch.as_tensor(given).to(device=device, dtype=dtype)
    if tuple(data.shape) == tuple(shape):
        return data.unsqueeze(0)
    if tuple(data.shape) != (L,) + tuple(shape):
        raise SettingsError(
            f"the {what} to invert has shape {tuple(data.shape)}; the experts sample {tuple(shape)} "
            f"(or give one per particle: {(L,) + tuple(shape)})"
        )
    return data
