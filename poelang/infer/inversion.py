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

An inversion costs as much as a run's levels, so it reports its progress:
``on_step(done, total)`` is called with 0 before the first step and after each
step (one per level of the schedule). A caller that does not call
:func:`invert` itself -- the sampler does, for ``init='inversion'`` -- listens
to everything it runs with :func:`reporting_steps`.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

import torch

from .divergence import Move, blame, largest
from .errors import NonFiniteOutput, SettingsError
from .product import ProductField

Tensor = torch.Tensor
StepHook = Callable[[int, int], None]  # (steps done, steps in all)

_LISTENERS: ContextVar[tuple[StepHook, ...]] = ContextVar("poelang_inversion_listeners", default=())


@contextmanager
def reporting_steps(on_step: StepHook) -> Iterator[None]:
    """Every :func:`invert` in this block reports to ``on_step`` (as well as to the hooks of enclosing blocks)."""
    token = _LISTENERS.set(_LISTENERS.get() + (on_step,))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def invert(field: ProductField, x0: Tensor, sigmas: Tensor, iters: int = 2,
           on_step: Optional[StepHook] = None) -> Tensor:
    """The canvas at ``sigmas[0]`` whose Euler descent along ``field``'s composed
    velocity on the schedule ``sigmas`` (decreasing, ending at 0) ends at ``x0``.

    ``x0`` is [B, *shape]; returns [B, *shape]. ``on_step(done, total)`` and the
    hooks :func:`reporting_steps` set follow the progress.
    """
    hooks = _LISTENERS.get() + ((on_step,) if on_step is not None else ())
    grid = [float(s) for s in sigmas.flip(0)]  # 0 = sigma_T < ... < sigma_0
    steps = len(grid) - 1
    for hook in hooks:
        hook(0, steps)
    x = x0
    for done, (lo, hi) in enumerate(zip(grid[:-1], grid[1:]), start=1):
        field.where = f"the inversion from sigma={lo:.4f} to sigma={hi:.4f}"
        # a fixed point that does not converge (too few levels for the velocity's slope) runs away
        move = Move("invert_iters", "the inversion's fixed-point iterations", iters, largest(x)) if iters else \
            Move("levels", "the inversion's Euler step", len(grid) - 1, largest(x))
        try:
            y = x + (hi - lo) * field.evaluate(x, lo, score=False).velocity
            for _ in range(iters):
                y = x + (hi - lo) * field.evaluate(y, hi, score=False).velocity
        except NonFiniteOutput as e:
            raise blame(move, e) from None
        move.check(y, field.where)
        x = y
        for hook in hooks:
            hook(done, steps)
    return x


def inversion_input(given, L: int, shape: tuple, what: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``settings.invert`` as [1, *shape] (one input for all particles) or [L, *shape] (one each)."""
    data = torch.as_tensor(given).to(device=device, dtype=dtype)
    if not bool(torch.isfinite(data).all()):
        raise SettingsError(f"the {what} to invert holds NaN or infinite values")
    if tuple(data.shape) == tuple(shape):
        return data.unsqueeze(0)
    if tuple(data.shape) != (L,) + tuple(shape):
        raise SettingsError(
            f"the {what} to invert has shape {tuple(data.shape)}; the experts sample {tuple(shape)} "
            f"(or give one per particle: {(L,) + tuple(shape)})"
        )
    return data
