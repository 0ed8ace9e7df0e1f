"""The particle system as ONE container (after BlackJAX's SMCState), and the
sampler's state between levels around it.

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


@dataclass(frozen=True)
class SamplerState:
    """Everything that changes from level to level, in one immutable value
    (after BlackJAX's ``TemperedSMCState``); each step of a level returns a new one.

    particles     the particle system after the step.
    n             the level within the current window (0: the initial particles).
    step_scale    the adapted factor on the MCMC step size (MALA/HMC).
    temper        the rewards' tempering factor lambda (1 unless adaptive).
    log_evidence  the sum of log mean weights at each resampling (exact weighting).

    and what level n saw, for its record (:class:`~.result.LevelInfo`):

    weighted      the particles as weighted, before this level's resampling.
    ess           the effective sample size of ``weighted``.
    resampled     whether the particles were resampled at this level.
    accept        the mean MH acceptance of this level's moves, else None.
    """

    particles: ParticleState
    n: int = 0
    step_scale: float = 1.0
    temper: float = 1.0
    log_evidence: float = 0.0
    weighted: Optional[ParticleState] = None
    ess: float = 0.0
    resampled: bool = False
    accept: Optional[float] = None

    def at(self, n: int) -> "SamplerState":
        """The state entering level n: nothing seen there yet."""
        return self.with_(n=n, weighted=None, ess=0.0, resampled=False, accept=None)

    def next_window(self, particles: ParticleState) -> "SamplerState":
        """Level 0 of the next window (the autoregressive path's next chunk):
        new particles carrying these particles' weights, the step size and
        the evidence so far; the rewards' tempering starts again at 1."""
        carried = particles.with_(log_weights=particles.log_weights + self.particles.log_weights)
        return SamplerState(carried, step_scale=self.step_scale, log_evidence=self.log_evidence)

    def with_(self, **changes) -> "SamplerState":
        """A copy with some fields replaced. (Every step makes one: copying the
        fields costs a fraction of what ``dataclasses.replace``, which runs
        ``__init__`` again, does.)"""
        unknown = changes.keys() - _SAMPLER_FIELDS
        if unknown:
            raise TypeError(f"SamplerState has no field {', '.join(sorted(unknown))}")
        new = object.__new__(SamplerState)
        new.__dict__.update(self.__dict__, **changes)
        return new


_SAMPLER_FIELDS = frozenset(f.name for f in fields(SamplerState))
