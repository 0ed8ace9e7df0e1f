"""Moves at one noise level: the Euler transition and the MCMC kernels.

Each MCMC kernel is a small class with one method (after NumPyro/BlackJAX):

    step(x, here, target, eta, generator) -> (x, here, accept_rate)

* ``x`` [L, *shape] positions, ``here`` the :class:`FieldValues` at x (or
  None when stale), ``target(x, full)`` evaluates the product's field at the
  level's sigma (``full=False``: the score is enough, skip log densities
  and rewards), ``eta`` the per-coordinate step (broadcastable to x),
  ``generator`` the CPU generator all noise comes from.
* It returns the new positions, the field there when it was computed anyway
  (MALA/HMC) or None (Langevin), and the mean acceptance rate (None for
  kernels without an accept step).

Which kernel leaves what invariant:

* ``langevin`` (ULA): x <- x + eta s(x) + sqrt(2 eta) xi. Needs only the
  score, so it works with flow networks; it is *not* exactly invariant (bias
  O(eta)), hence approximate.
* ``mala``: the same proposal with a Metropolis-Hastings accept on
  ``log_target`` (the product's log density, plus the reward twist when the
  rewards take part in the moves) -- exactly invariant for that target.
* ``hmc``: leapfrog with inverse mass 2*eta per coordinate (one leapfrog step
  is then the MALA proposal), Metropolis accept -- exactly invariant.
* ``none``: no move.

MH correctness needs only the log density: a wrong score only slows MALA/HMC
down, it does not bias them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Tuple

from poelang._lazy import lazy_import

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .product import FieldValues
else:
    torch = lazy_import("torch")  # the names are checked by `poelang check`, which never loads torch

Target = Callable[["Tensor"], "FieldValues"]
StepResult = Tuple["Tensor", Optional["FieldValues"], Optional[float]]


def gaussian_noise(shape: tuple, generator: torch.Generator, like: Tensor) -> Tensor:
    """Standard normal noise drawn on CPU from ``generator`` (bit-reproducible),
    then moved to the particles' device and dtype."""
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(
        device=like.device, dtype=like.dtype
    )


def uniform(n: int, generator: torch.Generator, like: Tensor) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64).to(device=like.device)


def euler_step(x: Tensor, velocity: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
    """One Euler step of the flow ODE dx/dsigma = v from sigma_from to sigma_to."""
    return x + (sigma_to - sigma_from) * velocity


def _sum_event(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


class NoMove:
    needs_log_density = False
    name = "none"

    def step(self, x, here, target, eta, generator) -> StepResult:
        return x, here, None


class Langevin:
    """Unadjusted Langevin (the paper's kernel): score only, approximate."""

    needs_log_density = False
    name = "langevin"

    def step(self, x, here, target, eta, generator) -> StepResult:
        if here is None or here.score is None:
            here = target(x, False)
        noise = gaussian_noise(tuple(x.shape), generator, x)
        return x + eta * here.score + torch.sqrt(2 * eta) * noise, None, None


class MALA:
    """Metropolis-adjusted Langevin: exact for gamma_sigma given log densities."""

    needs_log_density = True
    name = "mala"
    default_accept = 0.574

    def step(self, x, here, target, eta, generator) -> StepResult:
        if here is None or here.log_target is None or here.score is None:
            here = target(x, True)
        noise = gaussian_noise(tuple(x.shape), generator, x)
        forward_mean = x + eta * here.score
        y = forward_mean + torch.sqrt(2 * eta) * noise
        there = target(y, True)
        backward_mean = y + eta * there.score
        log_q_forward = -_sum_event((y - forward_mean) ** 2 / (4 * eta))
        log_q_backward = -_sum_event((x - backward_mean) ** 2 / (4 * eta))
        log_alpha = there.log_target - here.log_target + log_q_backward - log_q_forward
        log_alpha = torch.nan_to_num(log_alpha, nan=-float("inf"))
        accept = torch.log(uniform(x.shape[0], generator, x)) < log_alpha.to(torch.float64)
        return _select(accept, y, there, x, here)


class HMC:
    """Hamiltonian Monte Carlo with ``leapfrog`` steps; exact given log densities."""

    needs_log_density = True
    name = "hmc"
    default_accept = 0.65

    def __init__(self, leapfrog: int = 3) -> None:
        self.leapfrog = leapfrog

    def step(self, x, here, target, eta, generator) -> StepResult:
        if here is None or here.log_target is None or here.score is None:
            here = target(x, True)
        inv_mass = 2 * eta
        inv_mass = inv_mass.expand_as(x) if isinstance(inv_mass, torch.Tensor) else torch.full_like(x, inv_mass)
        p0 = gaussian_noise(tuple(x.shape), generator, x) / torch.sqrt(inv_mass)
        h0 = -here.log_target + 0.5 * _sum_event(p0 * p0 * inv_mass)
        y, there = x, here
        p = p0 + 0.5 * here.score
        for k in range(self.leapfrog):
            y = y + inv_mass * p
            last = k == self.leapfrog - 1
            there = target(y, last)
            p = p + (0.5 if last else 1.0) * there.score
        h1 = -there.log_target + 0.5 * _sum_event(p * p * inv_mass)
        log_alpha = torch.nan_to_num(h0 - h1, nan=-float("inf"))
        accept = torch.log(uniform(x.shape[0], generator, x)) < log_alpha.to(torch.float64)
        return _select(accept, y, there, x, here)


def _pick(a: Tensor, new: Optional[Tensor], old: Optional[Tensor]) -> Optional[Tensor]:
    if new is None or old is None:
        return None
    return torch.where(a.to(new.device).reshape((-1,) + (1,) * (new.dim() - 1)), new, old)


def _select(accept: Tensor, y: Tensor, there: FieldValues, x: Tensor, here: FieldValues) -> StepResult:
    """Accepted proposals take y and everything computed there, the rest stay."""
    merged = type(here)(
        velocity=_pick(accept, there.velocity, here.velocity),
        score=_pick(accept, there.score, here.score),
        log_density=_pick(accept, there.log_density, here.log_density),
        twist=_pick(accept, there.twist, here.twist),
        rewards=_pick(accept, there.rewards, here.rewards),
    )
    return _pick(accept, y, x), merged, float(accept.to(torch.float64).mean())


KERNELS: dict[str, Callable[[int], object]] = {
    "none": lambda leapfrog: NoMove(),
    "langevin": lambda leapfrog: Langevin(),
    "mala": lambda leapfrog: MALA(),
    "hmc": HMC,
}
"""The kernels by name: each entry builds one from the number of leapfrog steps
(only HMC uses it). ``Settings.kernel`` is checked against these names."""


def make_kernel(name: str, hmc_leapfrog: int = 3):
    """The kernel registered under ``name``."""
    return KERNELS[name](hmc_leapfrog)
