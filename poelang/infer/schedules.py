"""Noise schedules: the decreasing list of sigmas that the levels walk.

A schedule of T levels is a tensor of T + 1 sigmas, ``sigmas[0]`` where the
particles start (1.0 = pure noise) and ``sigmas[T] == 0`` (data). Level n
moves the particles from ``sigmas[n - 1]`` to ``sigmas[n]``.

* ``"linear"``: sigma = 1 - n / T.
* ``"flux_shift"``: the linear sigmas pushed toward the noise end by FLUX's
  time shift, sigma' = shift * sigma / (1 + (shift - 1) * sigma); shift = 1
  is linear, FLUX.1 [dev] uses about 3 at 1024 px.
* an explicit list of sigmas, decreasing, in [0, 1], ending at 0.

Endpoints: sigma = 1 is fine for every conversion (x0_hat = x - v); the score
is singular at sigma = 0, so the engine never takes a score step there (step
sizes scale with sigma^2, and the last level only reweights).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import SettingsError
from .settings import sigma_list_problem


def flux_time_shift(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """FLUX / SD3 time shift: shift * s / (1 + (shift - 1) * s)."""
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def make_schedule(
    schedule: str | Sequence[float], levels: int, shift: float = 3.0
) -> torch.Tensor:
    """Return the float64 tensor of ``levels + 1`` sigmas, from start to 0."""
    if isinstance(schedule, str):
        if levels < 1:
            raise SettingsError(f"levels must be at least 1, got {levels}")
        base = torch.linspace(1.0, 0.0, levels + 1, dtype=torch.float64)
        if schedule == "linear":
            return base
        if schedule == "flux_shift":
            if shift <= 0:
                raise SettingsError(f"shift must be positive, got {shift}")
            return flux_time_shift(base, shift)
        raise SettingsError(
            f"unknown schedule {schedule!r}: use 'linear', 'flux_shift' or a list of sigmas"
        )
    problem = sigma_list_problem([float(v) for v in schedule])
    if problem:
        raise SettingsError(f"invalid schedule: {problem}")
    return torch.as_tensor(list(schedule), dtype=torch.float64)
