"""The sampler: annealed MCMC + Sequential Monte Carlo over a product of experts.

One level, from sigma_{n-1} down to sigma_n (T levels, L particles)::

    transition   flow path: one Euler step with the composed velocity
                 ais path:  weight by gamma_n(x) / gamma_{n-1}(x), no move
    mcmc         K moves at sigma_n on the product (Langevin / MALA / HMC)
    conditional  Eq. 7 updates of the factors that have parents (flow path)
    reweight     score x0_hat with the rewards, multiply the weights by
                 exp(twist_n - twist_{n-1})  (exact)   or set them to
                 exp(twist_n)                           (greedy)
    resample     every level, when ESS < threshold * L, or at listed times

Why it is exact (weighting='exact'). The reward potentials telescope: the
product over levels of exp(twist_n(x_n) - twist_{n-1}(x_{n-1})) times the
initial exp(twist_0) is exp(sum_j w_j r_j(x_T)) at sigma = 0, whatever the
moves in between, so SMC targets  law_of_moves(x) * exp(sum w r). On the
'ais' path (every expert has a log density) the moves are MH kernels that
leave gamma_n invariant, the particles start from gamma at sigma = 1 and
carry annealed importance weights, so law_of_moves is replaced by the
product of experts itself: the weighted particles target
prod_i p_i^{a_i} exp(sum w r) exactly (consistent as L -> inf). On the
'flow' path (flow networks: no densities) the base law is that of the
paper's Euler + Langevin sampler, which is only approximately the product.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import torch

from .conditional import conditional_updates
from .errors import SamplerError, SettingsError
from .kernels import euler_step, gaussian_noise, make_kernel
from .numerics import effective_sample_size, log_mean_exp, logsumexp, normalized_weights
from .product import FieldValues, ProductField
from .protocol import Problem
from .resampling import resample
from .result import LevelInfo, Result
from .rewards import RewardSet, rejection_message, soften
from .schedules import make_schedule
from .settings import Settings
from .state import ParticleState

Tensor = torch.Tensor
Callback = Callable[[LevelInfo], None]


@dataclass
class Plan:
    """The sampler a run actually is, after resolving the 'auto' settings."""

    annealing: str  # 'ais' or 'flow'
    kernel: str
    weighting: str
    output: str
    euler: bool
    init: str
    exact: str  # what the output is exact for, in words
    notes: List[str] = field(default_factory=list)


def resolve_plan(problem: Problem, settings: Settings, field_: ProductField, sigmas: Tensor) -> Plan:
    """Choose the annealing path and kernel; explain why in ``notes``."""
    s = settings
    blockers = []
    without = [f.name for f in problem.factors if not f.has_log_prob]
    if without:
        blockers.append(f"expert(s) {', '.join(repr(n) for n in without)} have no log density")
    if not field_.binary_weights:
        blockers.append("a factor has a soft mask")
    if any(f.parents for f in problem.factors) and s.cond_updates > 0:
        blockers.append("conditional (Eq. 7) updates are on")
    if not isinstance(s.init, str):
        blockers.append("init is a given tensor")
    if float(sigmas[0]) != 1.0:
        blockers.append("the schedule does not start at sigma = 1")
    if s.weighting != "exact":
        blockers.append("weighting is greedy")
    if s.kernel == "langevin":
        blockers.append("kernel 'langevin' does not leave gamma invariant")

    if s.annealing == "ais" and blockers:
        raise SettingsError("annealing='ais' is not possible: " + "; ".join(blockers))
    annealing = s.annealing if s.annealing != "auto" else ("flow" if blockers else "ais")

    kernel = s.kernel
    if kernel == "auto":
        kernel = "mala" if annealing == "ais" else "langevin"
    if kernel in ("mala", "hmc") and not field_.has_log_prob:
        raise SettingsError(
            f"kernel '{kernel}' needs log densities, but expert(s) "
            f"{', '.join(repr(n) for n in without)} have none: use kernel='langevin'"
        )
    if kernel in ("mala", "hmc") and not field_.binary_weights:
        raise SettingsError(
            f"kernel '{kernel}' needs a log density of the product, which a soft mask does not "
            f"define: use region= or the expert's support, or kernel='langevin'"
        )

    output = s.output if s.output != "auto" else ("sample" if s.weighting == "exact" else "best")
    notes = []
    if annealing == "ais":
        exact = "exact: the weighted particles target prod_i p_i^a_i * exp(sum w r) (consistent in L)"
    elif s.weighting == "exact":
        exact = (
            "exact in the reward tilt only: the weighted particles target "
            "law(Euler+%s base sampler) * exp(sum w r)" % kernel
        )
        if blockers and s.annealing == "auto":
            notes.append("flow path because " + "; ".join(blockers))
    else:
        exact = "greedy (the paper's): not a sampler of the tilted product"
    return Plan(
        annealing=annealing,
        kernel=kernel,
        weighting=s.weighting,
        output=output,
        euler=annealing == "flow",
        init="noise" if isinstance(s.init, str) else "tensor",
        exact=exact,
        notes=notes,
    )


def _derived_seed(seed: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * stream) % (2**63 - 1)


class Sampler:
    """One run: holds the problem's field, the rewards, the generators, the plan.

    The per-level recipe is :meth:`level`; :meth:`run` is the loop.
    """

    def __init__(self, problem: Problem, settings: Settings, device: str | torch.device = "cpu") -> None:
        settings.validate()
        self.problem = problem
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = torch.float32 if settings.dtype == "float32" else torch.float64
        self.shape = tuple(problem.shape)
        self.sigmas = make_schedule(settings.schedule, settings.levels, settings.shift)
        self.T = self.sigmas.shape[0] - 1
        self.field = ProductField(
            problem.factors,
            self.shape,
            device=self.device,
            dtype=self.dtype,
            max_batch=settings.max_batch,
            sigma_min=settings.sigma_min,
        )
        self.rewards = RewardSet(problem.rewards, settings.max_batch)
        self.plan = resolve_plan(problem, settings, self.field, self.sigmas)
        self.kernel = make_kernel(self.plan.kernel, settings.hmc_leapfrog)
        self.children = [i for i, f in enumerate(problem.factors) if f.parents]
        # Moves and resampling draw from separate CPU generators, so that the
        # positions do not depend on whether (or how) particles are resampled:
        # L = 1 with SMC is then bit-identical to L = 1 without it.
        self.move_gen = torch.Generator().manual_seed(_derived_seed(settings.seed, 0))
        self.resample_gen = torch.Generator().manual_seed(_derived_seed(settings.seed, 1))
        self.step_scale = 1.0
        self.temper = 1.0 if not settings.adaptive_temper else 0.0
        self.log_evidence = 0.0
        self.trace: List[LevelInfo] = []
        times = {int(round(f * self.T)) for f in settings.resample_times}
        self.resample_levels = times
        acc = settings.target_accept
        self.target_accept = acc if acc is not None else getattr(self.kernel, "default_accept", None)

    # -- helpers -------------------------------------------------------------
    @property
    def ais(self) -> bool:
        return self.plan.annealing == "ais"

    @property
    def exact(self) -> bool:
        return self.settings.weighting == "exact"

    def _where(self, n: int, sigma: float) -> str:
        return f"level {n} (sigma={sigma:.4f})"

    def _check_alive(self, state: ParticleState, rewards: Tensor, where: str) -> None:
        if torch.isfinite(logsumexp(state.log_weights)):
            return
        if rewards.shape[1] and bool(torch.isneginf(rewards).any()):
            raise SamplerError(rejection_message(rewards, self.rewards.names, self.rewards.weights, where))
        raise SamplerError(
            f"every particle has zero weight at {where}: the product of the generative experts "
            f"has zero density at every particle"
        )

    # -- the pieces of a level ----------------------------------------------
    def initial_state(self) -> ParticleState:
        """Particles at sigmas[0]: the product at sigma = 1 (N(0, I/A) per
        coordinate), or the given init tensor."""
        L, s = self.settings.particles, self.settings
        like = torch.zeros((), dtype=self.dtype, device=self.device)
        log_w = torch.zeros(L, dtype=torch.float64, device=self.device)
        density = None
        if isinstance(s.init, str):
            eps = gaussian_noise((L,) + self.shape, self.move_gen, like)
            A = self.field.coverage
            x = eps / torch.sqrt(A)
            if self.ais:
                # Importance weight gamma_1(x) / q(x): a constant (log Z of
                # gamma_1) when every expert is exactly N(0, I) at sigma = 1.
                log_q = (-0.5 * torch.log(2 * math.pi / A) - 0.5 * A * x * x).reshape(L, -1).sum(1)
                density = self.field.log_density(x, float(self.sigmas[0]))
                log_w = (density - log_q).to(torch.float64)
        else:
            init = torch.as_tensor(s.init).to(device=self.device, dtype=self.dtype)
            if tuple(init.shape) == self.shape:
                init = init.expand((L,) + self.shape)
            if tuple(init.shape) != (L,) + self.shape:
                raise SettingsError(
                    f"init tensor has shape {tuple(init.shape)}; expected {self.shape} or "
                    f"{(L,) + self.shape}"
                )
            x = init.clone()
        return ParticleState(
            x=x,
            log_weights=log_w,
            log_twist=torch.zeros(L, dtype=torch.float64, device=self.device),
            rewards=torch.zeros(L, len(self.rewards), dtype=torch.float64, device=self.device),
            ancestors=torch.arange(L),
            velocity=None,
            log_density=density,
        )

    def transition(self, state: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
        """Flow: Euler step with the cached composed velocity. AIS: the annealed
        importance weight gamma_to(x) / gamma_from(x) at the unmoved particle."""
        if self.plan.euler:
            x = euler_step(state.x, state.velocity, sigma_from, sigma_to)
            return state.with_(x=x, velocity=None, log_density=None)
        density = self.field.log_density(state.x, sigma_to)
        log_w = state.log_weights + (density - state.log_density).to(torch.float64)
        return state.with_(log_weights=log_w, velocity=None, log_density=density)

    def step_size(self, sigma: float) -> Tensor:
        """eta per coordinate: step_size * scale * sigma^2 / A (see Settings)."""
        eta = self.settings.step_size * self.step_scale * sigma * sigma / self.field.coverage
        return eta.unsqueeze(0)

    def mcmc(self, state: ParticleState, sigma: float) -> tuple[ParticleState, Optional[float]]:
        """K kernel moves at sigma (none at sigma = 0, where eta = 0)."""
        K = self.settings.mcmc_steps
        if self.plan.kernel == "none" or K == 0 or sigma <= 0:
            return state, None
        needs_density = self.kernel.needs_log_density

        def target(y: Tensor) -> FieldValues:
            return self.field.evaluate(y, sigma, score=True, log_density=needs_density)

        eta = self.step_size(sigma)
        x, here, rates = state.x, None, []
        for _ in range(K):
            x, here, rate = self.kernel.step(x, here, target, eta, self.move_gen)
            if rate is not None:
                rates.append(rate)
        accept = sum(rates) / len(rates) if rates else None
        if accept is not None and self.settings.adapt_step and self.target_accept is not None:
            self.step_scale = min(max(self.step_scale * math.exp(2.0 * (accept - self.target_accept)), 1e-6), 1e6)
        if here is None:
            return state.with_(x=x, velocity=None, log_density=None), accept
        return state.with_(x=x, velocity=here.velocity, log_density=here.log_density), accept

    def conditional(self, state: ParticleState, sigma: float) -> ParticleState:
        """Eq. 7 pulls of the conditioned factors toward their parents."""
        s = self.settings
        if not self.children or s.cond_updates == 0 or sigma <= 0:
            return state
        x = conditional_updates(self.field, state.x, sigma, self.children, s.cond_lambda, s.cond_updates)
        return state.with_(x=x, velocity=None, log_density=None)

    def reweight(self, state: ParticleState, sigma: float, final: bool, where: str) -> tuple[ParticleState, Tensor]:
        """Score x0_hat; pay the reward potential's increment into the weights."""
        if sigma > 0 and state.velocity is None:
            state = state.with_(velocity=self.field.evaluate(state.x, sigma, score=False).velocity)
        x0 = state.x if sigma <= 0 else self.field.x0_hat(state.x, state.velocity, sigma)
        raw = self.rewards.evaluate(x0, where)
        used = raw if final else soften(raw, self.settings.constraint_penalty)
        base = self.rewards.total(used)
        if self.exact:
            if self.settings.adaptive_temper:
                self.temper = 1.0 if final else self._choose_temper(state, base)
            twist = self.temper * base
            log_w = state.log_weights + (twist - state.log_twist)
        else:
            twist = base
            log_w = twist.clone()
        state = state.with_(log_weights=log_w, log_twist=twist, rewards=raw)
        self._check_alive(state, raw, where)
        return state, x0

    def _choose_temper(self, state: ParticleState, base: Tensor) -> float:
        """Largest lambda in [previous, 1] keeping ESS >= temper_ess * L (bisection)."""
        target = self.settings.temper_ess * state.size

        def ess(lam: float) -> float:
            return effective_sample_size(state.log_weights + lam * base - state.log_twist)

        if ess(1.0) >= target:
            return 1.0
        lo, hi = self.temper, 1.0
        if ess(lo) < target:
            return lo
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ess(mid) >= target else (lo, mid)
        return lo

    def should_resample(self, n: int, ess: float, L: int) -> bool:
        s = self.settings
        if s.resample == "none" or n == self.T:
            return False
        if s.resample_when == "always":
            return True
        if s.resample_when == "ess":
            return ess < s.ess_threshold * L
        return n in self.resample_levels

    def maybe_resample(self, state: ParticleState, n: int) -> tuple[ParticleState, float, bool]:
        ess = effective_sample_size(state.log_weights)
        if not self.should_resample(n, ess, state.size):
            return state.with_(ancestors=torch.arange(state.size)), ess, False
        weights = normalized_weights(state.log_weights)
        ancestors = resample(self.settings.resample, weights, state.size, self.resample_gen)
        if self.exact:
            self.log_evidence += float(log_mean_exp(state.log_weights))
        state = state.take(ancestors)
        if self.exact:
            state = state.with_(log_weights=torch.zeros_like(state.log_weights))
        return state, ess, True

    def record(self, n, sigma, state_before, x0, ess, resampled, ancestors, accept, callback) -> None:
        keep = self.settings.keep_trace
        if keep is False and callback is None:
            return
        info = LevelInfo(
            level=n,
            sigma=sigma,
            x0_hat=x0.detach().cpu().clone() if keep is True else None,
            rewards=state_before.rewards.detach().cpu().clone(),
            scores=self.rewards.total(state_before.rewards).cpu(),
            log_weights=state_before.log_weights.detach().cpu().clone(),
            ancestors=ancestors.cpu().clone(),
            ess=ess,
            resampled=resampled,
            accept_rate=accept,
            step_scale=self.step_scale if self.kernel.needs_log_density else None,
            temper=self.temper,
        )
        if keep is not False:
            self.trace.append(info)
        if callback is not None:
            callback(info)

    def level(self, state: ParticleState, n: int, callback: Optional[Callback]) -> ParticleState:
        """One annealing level: transition, MCMC, conditional, reweight, resample."""
        sigma_from, sigma = float(self.sigmas[n - 1]), float(self.sigmas[n])
        where = self._where(n, sigma)
        self.field.where = where
        state = self.transition(state, sigma_from, sigma)
        state, accept = self.mcmc(state, sigma)
        state = self.conditional(state, sigma)
        state, x0 = self.reweight(state, sigma, final=n == self.T, where=where)
        before = state
        state, ess, resampled = self.maybe_resample(state, n)
        self.record(n, sigma, before, x0, ess, resampled, state.ancestors, accept, callback)
        return state

    # -- the loop ------------------------------------------------------------
    def run(self, callback: Optional[Callback] = None) -> Result:
        state = self.initial_state()
        sigma0 = float(self.sigmas[0])
        where = self._where(0, sigma0)
        self.field.where = where
        state, x0 = self.reweight(state, sigma0, final=self.T == 0, where=where)
        before = state
        state, ess, resampled = self.maybe_resample(state, 0)
        self.record(0, sigma0, before, x0, ess, resampled, state.ancestors, None, callback)
        for n in range(1, self.T + 1):
            state = self.level(state, n, callback)
        return self.finish(state)

    def finish(self, state: ParticleState) -> Result:
        log_w = state.log_weights
        total = logsumexp(log_w)
        log_evidence = self.log_evidence + float(log_mean_exp(log_w)) if self.exact else None
        log_w_norm = (log_w - total).cpu()
        scores = self.rewards.total(state.rewards).cpu()
        output = self.plan.output
        if output == "all":
            idx = torch.arange(state.size)
        elif output == "best":
            key = torch.nan_to_num(scores, nan=-float("inf"))
            best = torch.nonzero(key == key.max()).flatten()
            idx = best[torch.argmax(log_w_norm[best])].reshape(1)
        else:
            from .resampling import multinomial

            idx = multinomial(torch.exp(log_w_norm), self.settings.num_samples, self.resample_gen)
        samples = state.x[idx.to(state.x.device)]
        evals = dict(self.field.counts)
        evals["reward"] = self.rewards.count
        evals["per_particle"] = (evals["velocity"] + evals["velocity_grad"] + evals["log_prob"]) // max(
            state.size, 1
        )
        return Result(
            samples=samples,
            particles=state.x,
            log_weights=log_w_norm,
            scores=scores,
            reward_scores=state.rewards.cpu(),
            reward_names=list(self.rewards.names),
            trace=self.trace,
            log_evidence=log_evidence,
            plan=asdict(self.plan),
            evaluations=evals,
            sigmas=self.sigmas,
            output_indices=idx,
        )


def sample(
    problem: Problem,
    settings: Optional[Settings] = None,
    callback: Optional[Callback] = None,
    device: str | torch.device = "cpu",
) -> Result:
    """Sample the product of experts of ``problem``.

    ``callback(level_info)`` is called after every level (including level 0,
    the initial noise) with a :class:`LevelInfo`.
    """
    return Sampler(problem, settings or Settings(), device).run(callback)
