"""Windows: the part of the canvas one pass of levels samples, and the joint path.

The sampler (:class:`~.smc.Sampler`) anneals one window at a time, from
sigmas[0] down to 0; a *path* is the sequence of its windows. The joint path
has one, the whole canvas (:class:`Canvas`); the autoregressive path has one
per chunk of frames (:class:`~.autoregressive.Chunk`), each bound to the
frames sampled before it. A window tells the sampler:

    field            the product's field over the window (a ProductField)
    shape            the shape of one particle in the window
    index            the window's number: its levels are numbered on from index * (T + 1)
    frames           [first, end) frames of a chunk, or None
    last             whether this is the last window (the rewards score in it)
    context          the frames before a chunk, [L, first, ...], or None
    skips_equal_weights  whether resampling leaves equal weights alone
    label(n, sigma)      where level n is, for messages
    canvas(x, context)   the whole canvas of positions in the window
    bind(particles)      let the field follow the particles after resampling
    invert(settings, sigmas, L)  init = inversion: the window's start

and a path (:class:`JointPath`, :class:`~.autoregressive.FramePath`):

    windows              how many
    window(k, previous)  window k, after the particles ``previous`` of window k - 1
    complete(plan, first)  what the path adds to the plan; the checks that come after it
    whole(particles)     the particles on the whole canvas, at the end
    evidence_known(plan) whether the SMC evidence estimates log Z
"""
from __future__ import annotations

from typing import Optional

import torch

from .errors import SettingsError
from .inversion import invert, inversion_input
from .product import ProductField
from .protocol import Problem
from .settings import Settings
from .state import ParticleState

Tensor = torch.Tensor


class Canvas:
    """The joint path's one window: the whole canvas."""

    index = 0
    frames = None
    last = True
    context = None
    skips_equal_weights = False  # the joint path resamples equal weights as any others

    def __init__(self, field: ProductField) -> None:
        self.field = field
        self.shape = field.shape

    def label(self, n: int, sigma: float) -> str:
        return f"level {n} (sigma={sigma:.4f})"

    def canvas(self, x: Tensor, context: Optional[Tensor]) -> Tensor:
        return x

    def bind(self, particles: ParticleState) -> None:
        pass

    def invert(self, settings: Settings, sigmas: Tensor, L: int) -> Tensor:
        """The flow-ODE inversion of ``settings.invert`` along the product's
        composed velocity (one input for all particles, or one each)."""
        data = inversion_input(settings.invert, L, self.shape, "canvas", self.field.device, self.field.dtype)
        x = invert(self.field, data, sigmas, settings.invert_iters)
        return x.expand((L,) + self.shape).clone() if x.shape[0] != L else x


class JointPath:
    """``path='joint'``: the whole canvas at once."""

    windows = 1

    def __init__(self, problem: Problem, settings: Settings, device: torch.device, dtype: torch.dtype) -> None:
        for f in problem.factors:
            if not hasattr(f.expert, "velocity"):
                raise SettingsError(
                    f"expert '{f.name}' is frame-wise only (it has chunk_velocity, no velocity over the "
                    f"whole video): sample it with path='autoregressive'"
                )
        self.problem, self.settings, self.device, self.dtype = problem, settings, device, dtype

    def window(self, k: int, previous: Optional[ParticleState]) -> Canvas:
        s = self.settings
        return Canvas(ProductField(self.problem.factors, tuple(self.problem.shape), device=self.device,
                                   dtype=self.dtype, max_batch=s.max_batch, sigma_min=s.sigma_min))

    def complete(self, plan, first: Canvas) -> None:
        pass

    def whole(self, particles: ParticleState) -> ParticleState:
        return particles

    def evidence_known(self, plan) -> bool:
        return True
