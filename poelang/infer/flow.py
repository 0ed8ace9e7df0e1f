"""The rectified-flow conventions, in one place.

poelang follows diffusers' rectified flow:

    x_sigma = (1 - sigma) * x0 + sigma * eps,   sigma: 1 (noise) -> 0 (data)
    the model predicts  v = eps - x0

so that, given a velocity prediction v at (x, sigma),

    x0_hat  = x - sigma * v
    eps_hat = x + (1 - sigma) * v
    score   = grad log p_sigma(x) = -eps_hat / sigma = -(x + (1 - sigma) v) / sigma

(the score follows from Tweedie: E[eps | x] = -sigma * score).

Every conversion in the engine goes through these three functions, so that a
single error here shows up everywhere -- the test suite injects one on purpose
and checks that the exactness tests then fail.

The score is singular at sigma = 0; callers pass ``sigma_min`` and the
denominator is clamped to it (the engine never runs a score-based move at
sigma = 0, where its step size is zero anyway).
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def _broadcast_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """Shape sigma ([B] or scalar) so that it broadcasts against x [B, ...]."""
    if not isinstance(sigma, torch.Tensor):
        return torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        return sigma.to(dtype=x.dtype)
    return sigma.to(dtype=x.dtype).reshape(sigma.shape[0], *([1] * (x.dim() - 1)))


def x0_from_velocity(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Predicted clean sample: x0_hat = x - sigma * v."""
    s = _broadcast_sigma(sigma, x)
    return x - s * v


def eps_from_velocity(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Predicted noise: eps_hat = x + (1 - sigma) * v."""
    s = _broadcast_sigma(sigma, x)
    return x + (1.0 - s) * v


def score_from_velocity(
    x: Tensor, v: Tensor, sigma: Tensor | float, sigma_min: float = 1e-3
) -> Tensor:
    """Score of the noised marginal: -(x + (1 - sigma) v) / max(sigma, sigma_min)."""
    s = _broadcast_sigma(sigma, x)
    return -(x + (1.0 - s) * v) / s.clamp_min(sigma_min)


def velocity_from_score(
    x: Tensor, score: Tensor, sigma: Tensor | float, sigma_max: float = 1.0 - 1e-3
) -> Tensor:
    """Inverse of :func:`score_from_velocity`: v = -(sigma * score + x) / (1 - sigma).

    Singular at sigma = 1 (where the score no longer depends on v); the
    denominator is clamped at 1 - sigma_max.
    """
    s = _broadcast_sigma(sigma, x)
    return -(s * score + x) / (1.0 - s).clamp_min(1.0 - sigma_max)


def euler(velocity, x: Tensor, levels: int) -> Tensor:
    """Plain Euler from sigma = 1 (``x`` is the noise) to 0 on evenly spaced sigmas, no gradient.

    One flow alone, no product and no steering: how the mini experts' tests and benchmarks judge an expert by itself.
    """
    sigmas = torch.linspace(1, 0, levels + 1)
    with torch.no_grad():
        for s0, s1 in zip(sigmas[:-1], sigmas[1:]):
            x = x + (s1 - s0) * velocity(x, torch.full((x.shape[0],), float(s0)))
    return x
