"""What a run returns: the output, the final particles, and a trace per level.

The trace is what the paper's Fig. 8 draws: at every level, each particle's
predicted clean canvas x0_hat, its reward scores, its log weight, which
particles it was resampled from, and the effective sample size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch

Tensor = torch.Tensor


@dataclass
class LevelInfo:
    """One annealing level (level 0 is the initial noise at sigmas[0]).

    x0_hat       [L, *shape] (CPU) predicted clean canvas of each particle, or
                 None when ``keep_trace`` is not True.
    rewards      [L, J] raw per-reward scores of x0_hat (CPU, float64).
    scores       [L] sum_j w_j r_j of x0_hat (raw values).
    log_weights  [L] log weights after this level's reweighting, before
                 resampling (CPU, float64; unnormalised).
    ancestors    [L] parent index of each particle after resampling at this
                 level (identity when not resampled).
    ess          effective sample size of ``log_weights``.
    resampled    whether the particles were resampled after this level.
    accept_rate  mean MH acceptance of this level's moves (MALA/HMC), else None.
    step_scale   the adapted factor on the MCMC step size, else None.
    temper       the reward's tempering factor lambda (1 unless adaptive).
    frames       autoregressive path: [first, end) frames of the chunk this
                 level samples (``level`` then counts on across chunks, each
                 chunk's levels 0..T); None on the joint path.
    """

    level: int
    sigma: float
    x0_hat: Optional[Tensor]
    rewards: Tensor
    scores: Tensor
    log_weights: Tensor
    ancestors: Tensor
    ess: float
    resampled: bool
    accept_rate: Optional[float] = None
    step_scale: Optional[float] = None
    temper: float = 1.0
    frames: Optional[Tuple[int, int]] = None


@dataclass
class Result:
    """The outcome of :func:`poelang.infer.sample`.

    samples        the chosen output: [1, *shape] ('best'), [L, *shape]
                   ('all') or [num_samples, *shape] ('sample').
    particles      [L, *shape] final particles.
    log_weights    [L] final *normalised* log weights (logsumexp = 0).
    scores         [L] final sum_j w_j r_j(x) (raw, may be -inf).
    reward_scores  [L, J] final per-reward scores.
    reward_names   names of the J rewards.
    trace          one :class:`LevelInfo` per level, from the start (empty when
                   ``keep_trace`` is False).
    log_evidence   SMC estimate of log Z: with annealing='ais' the log of the
                   target's normaliser, int prod_i p_i^{a_i} exp(sum w r); with
                   'flow' the log of E_base[exp(sum w r)] under the base sampler.
                   None in greedy mode.
    plan           the sampler actually run (resolved 'auto' choices).
    evaluations    counts of expert evaluations (one per particle per expert).
    sigmas         the schedule.
    stopped_at     the level at which a callback stopped the run (returning
                   False or raising StopSampling), else None.
    """

    samples: Tensor
    particles: Tensor
    log_weights: Tensor
    scores: Tensor
    reward_scores: Tensor
    reward_names: List[str]
    trace: List[LevelInfo]
    log_evidence: Optional[float]
    plan: Dict[str, Any]
    evaluations: Dict[str, int]
    sigmas: Tensor
    output_indices: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    stopped_at: Optional[int] = None

    @property
    def weights(self) -> Tensor:
        """Final normalised weights [L]."""
        return torch.exp(self.log_weights)

    def weighted_mean(self) -> Tensor:
        """sum_i W_i x_i: the self-normalised estimate of the target mean."""
        w = self.weights.to(self.particles.dtype).to(self.particles.device)
        return torch.einsum("l,l...->...", w, self.particles)
