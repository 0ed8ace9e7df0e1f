"""The particle system as ONE container (after BlackJAX's SMCState).

Resampling must move everything that belongs to a particle together --
its position, weight, last rewards, cached field values, ancestry -- or the
weights silently stop matching the positions. :meth:`ParticleState.take`
does that for every tensor field at once, so there is exactly one place
where particles are permuted.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

import torch

Tensor = torch.Tensor


@dataclass
class ParticleState:
    """L particles at one noise level.

    x            [L, *shape]  positions (on the run's device).
    log_weights  [L]          unnormalised log weights since the last resampling
                              (exact mode) or the current scores (greedy).
    log_twist    [L]          the reward potential already paid into the
                              weights: sum_j w_j * lambda * r~_j(x0_hat) at the
                              current level (telescoping, exact mode).
    rewards      [L, J]       per-reward scores of the current x0_hat.
    ancestors    [L]          index of each particle's parent at the previous
                              level (identity when no resampling happened).
    velocity     [L, *shape]  composed velocity at (x, sigma), cached for the
                              next Euler step / x0_hat; None when stale.
    score        [L, *shape]  composed score at (x, sigma); None when stale.
    log_density  [L]          log gamma_sigma(x) when densities are known.
    velocity_sq  [L, *shape]  sum_i a_i m_i v_i^2 at (x, sigma), cached for the
                              'fk' path's weight; None when stale.
    context      [L, k, ...]  autoregressive path: the frames sampled before the
                              current chunk (clean), which belong to the particle
                              as much as x does; None on the joint path.

    The cached fields are valid at the current sigma only; the sampler sets
    them to None whenever x or sigma changes without recomputing them
    (:meth:`moved` does it for all of them).
    """

    x: Tensor
    log_weights: Tensor
    log_twist: Tensor
    rewards: Tensor
    ancestors: Tensor
    velocity: Optional[Tensor] = None
    score: Optional[Tensor] = None
    log_density: Optional[Tensor] = None
    velocity_sq: Optional[Tensor] = None
    context: Optional[Tensor] = None

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: Tensor) -> "ParticleState":
        """The particles ``index`` (ancestor indices), every field permuted alike.

        ``ancestors`` becomes ``index`` itself: the genealogy of this step.
        """
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ancestors":
                moved[f.name] = index.clone()
            elif isinstance(value, torch.Tensor):
                moved[f.name] = value[index.to(value.device)]
            else:
                moved[f.name] = value
        return ParticleState(**moved)

    def moved(self, x: Tensor) -> "ParticleState":
        """New positions, every cached field value invalidated."""
        return replace(self, x=x, velocity=None, score=None, log_density=None, velocity_sq=None)

    def with_(self, **changes) -> "ParticleState":
        """A copy with some fields replaced."""
        return replace(self, **changes)
