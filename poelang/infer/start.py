"""The particles a window starts from, at sigmas[0]: noise from the product
at sigma = 1, N(0, I/A) per coordinate (A = the summed exponents covering
it), the flow-ODE inversion of an input (``init='inversion'``, the window's
own :meth:`invert`), or a given tensor.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from . import fk
from .errors import SettingsError
from .kernels import gaussian_noise
from .product import FieldValues
from .state import ParticleState

if TYPE_CHECKING:
    from .smc import Sampler

Tensor = torch.Tensor


def initial_particles(run: Sampler) -> ParticleState:
    """L particles at sigmas[0], with the weights their start needs."""
    L, init, shape = run.settings.particles, run.settings.init, run.window.shape
    log_w = torch.zeros(L, dtype=torch.float64, device=run.device)
    here = FieldValues(velocity=None)
    if isinstance(init, str) and init == "inversion":
        x = run.window.invert(run.settings, run.sigmas, L)
    elif isinstance(init, str):
        x, log_w, here = _from_noise(run, L, log_w, here)
    else:
        x = _given(run, init, L, shape)
    return ParticleState(
        x=x,
        log_weights=log_w,
        log_twist=torch.zeros(L, dtype=torch.float64, device=run.device),
        rewards=torch.zeros(L, len(run.rewards), dtype=torch.float64, device=run.device),
        ancestors=torch.arange(L),
        velocity=here.velocity,
        score=here.score,
        log_density=here.log_density,
        context=run.window.context,
    )


def _from_noise(run: Sampler, L: int, log_w: Tensor, here: FieldValues):
    """Noise from the product at sigma = 1; on the weighted paths the weight
    that makes it gamma_1 exactly."""
    A = run.field.coverage
    like = torch.zeros((), dtype=run.dtype, device=run.device)
    x = gaussian_noise((L,) + tuple(run.window.shape), run.move_gen, like) / torch.sqrt(A)
    if run.plan.annealing == "ais":
        # Importance weight gamma_1(x) / q(x): the constant log Z of
        # gamma_1 when every expert is exactly N(0, I) at sigma = 1.
        log_q = (-0.5 * torch.log(2 * math.pi / A) - 0.5 * A * x * x).reshape(L, -1).sum(1)
        here = run.field.evaluate(x, run.sigma(0), score=True, log_density=True)
        log_w = (here.log_density - log_q).to(torch.float64)
    elif run.plan.annealing == "fk":
        # the same constant weight: log Z_1, so that the evidence is the product's
        log_w = log_w + fk.log_normalizer_at_one(A)
    return x, log_w, here


def _given(run: Sampler, init, L: int, shape: tuple) -> Tensor:
    """``init`` as a tensor: one canvas for every particle, or one each."""
    x = torch.as_tensor(init).to(device=run.device, dtype=run.dtype)
    if tuple(x.shape) == shape:
        x = x.expand((L,) + shape)
    if tuple(x.shape) != (L,) + shape:
        raise SettingsError(f"init tensor has shape {tuple(x.shape)}; expected {shape} or {(L,) + shape}")
    if not bool(torch.isfinite(x).all()):
        raise SettingsError("the init tensor holds NaN or infinite values")
    return x.clone()
