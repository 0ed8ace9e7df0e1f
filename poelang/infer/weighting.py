"""The steps that weigh particles within a level: the rewards' potential paid
into the weights (:func:`reweight`) and resampling (:func:`resample`).

Each step is ``step(run, state) -> state``, like those of :mod:`.steps`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .errors import SamplerError
from .numerics import effective_sample_size, log_mean_exp, logsumexp, normalized_weights
from .resampling import resample as resample_with
from .rewards import rejection_message, soften
from .state import ParticleState, SamplerState

if TYPE_CHECKING:
    from .smc import Sampler

Tensor = torch.Tensor


def with_velocity(run: Sampler, p: ParticleState, sigma: float) -> ParticleState:
    """The composed velocity at (x, sigma), if not cached (and on the 'fk'
    path the second moment its weight needs: the same expert calls)."""
    fk_path = run.plan.annealing == "fk"
    if sigma > 0 and (p.velocity is None or (fk_path and p.velocity_sq is None)):
        fv = run.field.evaluate(p.x, sigma, score=False, velocity_sq=fk_path)
        p = p.with_(velocity=fv.velocity, velocity_sq=fv.velocity_sq)
    return p


def x0_hat(run: Sampler, p: ParticleState, sigma: float) -> Tensor:
    """Predicted clean canvas of every particle (on the autoregressive path the
    whole video: the particle's earlier frames, the chunk, zeros after)."""
    x0 = p.x if sigma <= 0 else run.field.x0_hat(p.x, p.velocity, sigma)
    return run.window.canvas(x0, p.context)


def reward_scores(run: Sampler, canvas: Tensor) -> Tensor:
    """Per-reward scores [L, J] of whole canvases; zero in a window the rewards
    do not score (they score whole videos: the last chunk)."""
    if not run.window.last:
        return torch.zeros(canvas.shape[0], len(run.rewards), dtype=torch.float64, device=canvas.device)
    return run.rewards.evaluate(canvas, run.field.where)


def twist(run: Sampler, raw: Tensor, temper: float, final: bool) -> Tensor:
    """lambda * sum_j w_j r~_j: the reward potential paid into the weights."""
    used = raw if final else soften(raw, run.settings.constraint_penalty)
    return temper * run.rewards.total(used)


def reweight(run: Sampler, state: SamplerState) -> SamplerState:
    """Score x0_hat; pay the reward potential's increment into the weights
    (exact), or set the weights to the potential (greedy)."""
    sigma, final = run.sigma(state.n), run.is_final(state.n)
    p = with_velocity(run, state.particles, sigma)
    raw = reward_scores(run, x0_hat(run, p, sigma))
    temper = state.temper
    if run.exact:
        if run.settings.adaptive_temper:
            temper = 1.0 if final else choose_temper(run, p, twist(run, raw, 1.0, final))
        potential = twist(run, raw, temper, final)
        log_w = p.log_weights + (potential - p.log_twist)
    else:
        potential = twist(run, raw, temper, final)
        log_w = potential.clone()
    p = p.with_(log_weights=log_w, log_twist=potential, rewards=raw)
    _check_alive(run, p)
    return state.with_(particles=p, temper=temper)


def choose_temper(run: Sampler, p: ParticleState, base: Tensor) -> float:
    """The largest lambda in [0, 1] whose incremental weights keep the ESS at
    temper_ess * L (a grid, then bisection at the boundary).

    lambda may go down as well as up: the potentials telescope for any
    sequence that ends at 1, so the target does not depend on it."""
    target = run.settings.temper_ess * p.size

    def ess(lams: Tensor) -> Tensor:
        log_w = p.log_weights[None, :] + lams[:, None].to(base) * base[None, :] - p.log_twist[None, :]
        w = torch.exp(log_w - torch.logsumexp(log_w, dim=1, keepdim=True))
        return torch.nan_to_num(1.0 / (w * w).sum(1), nan=0.0)

    if float(ess(torch.ones(1))[0]) >= target:
        return 1.0
    grid = torch.linspace(0.0, 1.0, 33, dtype=torch.float64)
    values = ess(grid)
    ok = torch.nonzero(values >= target).flatten()
    if ok.numel() == 0:
        return float(grid[int(values.argmax())])
    lo = float(grid[int(ok.max())])
    hi = min(1.0, lo + 1.0 / 32)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(ess(torch.tensor([mid], dtype=torch.float64))[0]) >= target else (lo, mid)
    return lo


def _check_alive(run: Sampler, p: ParticleState) -> None:
    if torch.isfinite(logsumexp(p.log_weights)):
        return
    where = run.field.where
    if p.rewards.shape[1] and bool(torch.isneginf(p.rewards).any()):
        raise SamplerError(rejection_message(p.rewards, run.rewards.names, run.rewards.weights, where))
    raise SamplerError(
        f"every particle has zero weight at {where}: the product of the generative experts "
        f"has zero density at every particle"
    )


def should_resample(run: Sampler, n: int, ess: float, L: int) -> bool:
    s = run.settings
    if s.resample == "none" or n == run.T:
        return False
    if s.resample_when == "always":
        return True
    if s.resample_when == "ess":
        return ess < s.ess_threshold * L
    return n in run.resample_levels


def resample(run: Sampler, state: SamplerState) -> SamplerState:
    """Resample the whole particle container when the rule says so; remember
    the particles as weighted, for the level's record."""
    p = state.particles
    if run.window.skips_equal_weights and bool((p.log_weights == p.log_weights[0]).all()):
        return _kept(state, float(p.size))  # nothing to select
    ess = effective_sample_size(p.log_weights)
    if not should_resample(run, state.n, ess, p.size):
        return _kept(state, ess)
    ancestors = resample_with(run.settings.resample, normalized_weights(p.log_weights), p.size, run.resample_gen)
    log_evidence = state.log_evidence
    moved = p.take(ancestors)
    if run.exact:
        log_evidence += float(log_mean_exp(p.log_weights))
        moved = moved.with_(log_weights=torch.zeros_like(moved.log_weights))
    run.window.bind(moved)  # the autoregressive path: the earlier frames moved with their particles
    return state.with_(particles=moved, weighted=p, ess=ess, resampled=True, log_evidence=log_evidence)


def _kept(state: SamplerState, ess: float) -> SamplerState:
    """The particles not resampled: each its own ancestor."""
    p = state.particles
    return state.with_(particles=p.with_(ancestors=torch.arange(p.size)), weighted=p, ess=ess, resampled=False)
