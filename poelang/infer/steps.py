"""The steps that move particles within a level: the transition from
sigma_{n-1} to sigma_n (one per annealing path), the MCMC moves at sigma_n,
the paper's Eq. 7 updates and the simulator updates.

Each step is ``step(run, state) -> state``: ``run`` is the
:class:`~.smc.Sampler` (settings, plan, field, generators), ``state`` the
:class:`~.state.SamplerState` entering the step. The sampler strings them
together with :mod:`.weighting`'s steps in the order its plan names
(:data:`.smc.PAPER_ORDER`, :data:`.smc.SMC_ORDER`). A step that moves the
particles first says so (:func:`moving`), so that a divergence is blamed on
the setting that sized the move.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import torch

from . import fk
from .conditional import conditional_updates, simulator_updates
from .divergence import Move, largest
from .kernels import euler_step, gaussian_noise
from .product import FieldValues
from .state import ParticleState, SamplerState
from .weighting import reward_scores, twist, with_velocity

if TYPE_CHECKING:
    from .smc import Sampler

Tensor = torch.Tensor


# -- transitions: one per annealing path ----------------------------------------
def euler_transition(run: Sampler, p: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
    """'flow': an Euler step along the cached composed velocity."""
    return p.moved(euler_step(p.x, p.velocity, sigma_from, sigma_to))


def ais_transition(run: Sampler, p: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
    """'ais': the annealed importance weight gamma_to(x) / gamma_from(x) at the
    unmoved particle, and the field at sigma_to there (for the moves)."""
    if sigma_to > 0:
        fv = run.field.evaluate(p.x, sigma_to, score=True, log_density=True)
        velocity, score, density = fv.velocity, fv.score, fv.log_density
    else:
        velocity, score, density = None, None, run.field.log_density(p.x, sigma_to)
    log_w = p.log_weights + (density - p.log_density).to(torch.float64)
    return p.with_(log_weights=log_w, velocity=velocity, score=score, log_density=density)


def fk_transition(run: Sampler, p: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
    """'fk': one step of the Feynman-Kac corrected SDE and its weight (:mod:`.fk`),
    from the velocities at (x, sigma_from): E expert calls for L particles."""
    p = with_velocity(run, p, sigma_from)
    A = run.field.coverage
    W = p.velocity * A  # the velocity sum, sum_i a_i m_i v_i
    rate = fk.log_weight_rate(p.x, W, p.velocity_sq, A, sigma_from)
    noise = gaussian_noise(tuple(p.x.shape), run.move_gen, p.x)
    watched = moving(run, "fk_noise", "the fk transport", p)
    x = fk.transport(p.x, W, A, run.settings.fk_noise, sigma_from, sigma_to, noise)
    watched.check(x, run.field.where)
    return p.moved(x).with_(log_weights=p.log_weights + (sigma_from - sigma_to) * rate)


TRANSITIONS = {"flow": euler_transition, "ais": ais_transition, "fk": fk_transition}


def transition(run: Sampler, state: SamplerState) -> SamplerState:
    """From sigma_{n-1} to sigma_n along the plan's annealing path."""
    step = TRANSITIONS[run.plan.annealing]
    return state.with_(particles=step(run, state.particles, run.sigma(state.n - 1), run.sigma(state.n)))


# -- moves at sigma_n -------------------------------------------------------------
def move(run: Sampler, state: SamplerState) -> SamplerState:
    """K kernel moves at sigma_n (none at sigma = 0, where eta = 0); MALA/HMC
    adapt the step size toward the target acceptance."""
    sigma = run.sigma(state.n)
    if run.plan.kernel == "none" or run.settings.mcmc_steps == 0 or sigma <= 0:
        return state
    p, here = state.particles, _known_field(run, state.particles)
    target = _target(run, p, sigma, state.temper)
    eta = run.settings.step_size * state.step_scale * sigma * sigma / run.field.coverage  # per coordinate (see Settings)
    scaled = f", adapted ×{state.step_scale:.3g}" if state.step_scale != 1.0 else ""
    watched = moving(run, "step_size", f"the {run.plan.kernel} move{scaled}", p)
    x, rates = p.x, []
    for _ in range(run.settings.mcmc_steps):
        x, here, rate = run.kernel.step(x, here, target, eta[None], run.move_gen)
        if rate is not None:
            rates.append(rate)
    watched.check(x, run.field.where)
    accept = sum(rates) / len(rates) if rates else None
    return state.with_(particles=_moved(run, p, x, here), accept=accept,
                       step_scale=_adapted(run, state.step_scale, accept))


def _target(run: Sampler, p: ParticleState, sigma: float, temper: float):
    """The kernels' target at sigma: the product's field (with the rewards'
    potential on x0_hat when the moves include the rewards)."""
    needs_density = run.kernel.needs_log_density
    with_rewards = run.plan.reward_moves

    def target(y: Tensor, full: bool = True) -> FieldValues:
        fv = run.field.evaluate(y, sigma, score=True, log_density=needs_density and full)
        if with_rewards and full:
            raw = reward_scores(run, run.window.canvas(run.field.x0_hat(y, fv.velocity, sigma), p.context))
            fv.rewards, fv.twist = raw, twist(run, raw, temper, final=False)
        return fv

    return target


def _known_field(run: Sampler, p: ParticleState) -> Optional[FieldValues]:
    """What is already known at the particles (after an 'ais' transition), so
    that the first move needs no new expert call."""
    if p.score is None:
        return None
    with_rewards = run.plan.reward_moves
    return FieldValues(velocity=p.velocity, score=p.score, log_density=p.log_density,
                       twist=p.log_twist if with_rewards else None, rewards=p.rewards if with_rewards else None)


def _moved(run: Sampler, p: ParticleState, x: Tensor, here: Optional[FieldValues]) -> ParticleState:
    """The particles at their new positions, with what the kernel learnt there."""
    if here is None:  # Langevin: nothing known at the new positions
        return p.moved(x)
    moved = p.moved(x).with_(velocity=here.velocity, score=here.score, log_density=here.log_density)
    if run.plan.reward_moves:
        moved = moved.with_(log_twist=here.twist, rewards=here.rewards)
    return moved


def _adapted(run: Sampler, scale: float, accept: Optional[float]) -> float:
    """The step scale after a level's moves: up when they accept more often
    than the target rate, down when less."""
    if accept is None or not run.settings.adapt_step or run.target_accept is None:
        return scale
    factor = math.exp(2.0 * (accept - run.target_accept))
    return min(max(scale * factor, 1e-6), 1e6)


def conditional(run: Sampler, state: SamplerState) -> SamplerState:
    """Eq. 7 pulls of the conditioned factors toward their parents."""
    s, sigma = run.settings, run.sigma(state.n)
    if not run.children or s.cond_updates == 0 or sigma <= 0:
        return state
    watched = moving(run, "cond_lambda", "the conditional updates", state.particles)
    x = conditional_updates(run.field, state.particles.x, sigma, run.children, s.cond_lambda, s.cond_updates)
    watched.check(x, run.field.where)
    return state.with_(particles=state.particles.moved(x))


def simulator(run: Sampler, state: SamplerState) -> SamplerState:
    """``sim_updates`` gradient steps on the simulator factors' log density."""
    s, sigma = run.settings, run.sigma(state.n)
    if s.sim_updates == 0 or sigma <= 0:
        return state
    watched = moving(run, "sim_lambda", "the simulator updates", state.particles)
    x = simulator_updates(run.field, state.particles.x, sigma, run.sims, s.sim_lambda, s.sim_updates)
    watched.check(x, run.field.where)
    return state.with_(particles=state.particles.moved(x))


def moving(run: Sampler, setting: str, what: str, p: ParticleState) -> Move:
    """Remember the move about to be taken: an expert's NaN/inf after it is the
    setting's fault if the move threw the particles out (:mod:`.divergence`).
    A run of moves sized by the same setting keeps the scale from before the
    first, so a runaway over several levels is still seen."""
    before = largest(p.x)
    last = run.last_move
    if last is not None and last.setting == setting:
        before = min(before, last.before)
    run.last_move = Move(setting, what, getattr(run.settings, setting), before)
    return run.last_move
