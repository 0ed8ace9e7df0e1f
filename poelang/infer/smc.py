"""The sampler: annealed MCMC + Sequential Monte Carlo over a product of experts.

One level, from sigma_{n-1} down to sigma_n (T levels, L particles), in the
paper's order ('flow' path, and 'ais' without reward moves)::

    transition   flow: one Euler step with the composed velocity
                 ais:  weight by gamma_n(x) / gamma_{n-1}(x), no move
                 fk:   one step of the Feynman-Kac corrected SDE, and its
                       weight (velocities only; :mod:`.fk`)
    mcmc         K moves at sigma_n on the product (Langevin / MALA / HMC)
    conditional  Eq. 7 updates of the factors that have parents (flow only),
                 then ``sim_updates`` gradient steps on the simulator factors
    reweight     score x0_hat with the rewards; multiply the weights by
                 exp(twist_n - twist_{n-1})  (exact)  or set them to
                 exp(twist_n)                          (greedy)
    resample     every level, when ESS < threshold * L, or at listed times

and, when the rewards take part in the moves ('ais' with reward_moves), the
order of an SMC sampler: transition + reweight at the unmoved particles,
resample, then MCMC moves that leave gamma_n * exp(twist_n) invariant.

The initial particles are noise from the product at sigma = 1, or the
flow-ODE inversion of a given canvas (:mod:`.inversion`). The
autoregressive path (:mod:`.autoregressive`) runs these same levels once per
chunk of frames.

Why 'exact' is exact. The reward potentials telescope: the product over
levels of exp(twist_n - twist_{n-1}) times the initial exp(twist_0) is
exp(sum_j w_j r_j(x)) at sigma = 0, whatever the moves in between. So the
weighted particles target law_of_moves(x) * exp(sum w r). On the 'ais' path
(every expert has a log density) the particles start from gamma at sigma = 1,
carry annealed importance weights, and move with MH kernels invariant for
the level's target, so law_of_moves is the product of experts itself and the
output targets prod_i p_i^{a_i} exp(sum w r) exactly (consistent as L grows).
On the 'flow' path (flow networks: no densities) the base law is the paper's
Euler + Langevin sampler, which is only approximately the product. On the
'fk' path (velocities only) the particles start from gamma at sigma = 1 and
the SDE's Feynman-Kac weights make the weighted particles target gamma_n at
every level, so the output targets the product as on 'ais' -- up to the
weights' time discretisation, O(level spacing).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import torch

from .conditional import conditional_updates, simulator_updates
from . import fk
from .divergence import Move, blame, largest
from .errors import NonFiniteOutput, SamplerError, SettingsError, StopSampling
from .inversion import invert
from .kernels import euler_step, gaussian_noise, make_kernel
from .numerics import effective_sample_size, log_mean_exp, logsumexp, normalized_weights
from .product import FieldValues, ProductField
from .protocol import Problem
from .resampling import multinomial, resample
from .result import LevelInfo, Result
from .rewards import RewardSet, rejection_message, soften
from .schedules import make_schedule
from .settings import Settings, resolved_output, resolved_shift
from .state import ParticleState

Tensor = torch.Tensor
Callback = Callable[[LevelInfo], Optional[bool]]  # returning False (or raising StopSampling) ends the run


@dataclass
class Plan:
    """The sampler a run actually is, after resolving the 'auto' settings."""

    annealing: str  # 'ais', 'flow' or 'fk'
    kernel: str
    weighting: str
    output: str
    euler: bool
    reward_moves: bool
    init: str  # 'noise', 'inversion' or 'tensor'
    exact: str  # what the output is exact for, in words
    notes: List[str] = field(default_factory=list)
    path: str = "joint"  # or 'autoregressive'
    chunks: List[List[int]] = field(default_factory=list)  # autoregressive: [first, end) frames of each chunk
    fk_noise: Optional[float] = None  # 'fk': eta, the SDE's extra noise


def exactness_blockers(problem: Problem, settings: Settings, field_: ProductField, sigmas: Tensor) -> List[str]:
    """What keeps the weighted particles from targeting the product exactly,
    on any path (the 'ais' path adds: every expert needs a log density)."""
    s = settings
    blockers = []
    blockers.extend(field_.mask_blockers)
    if any(f.parents for f in problem.factors) and s.cond_updates > 0:
        blockers.append("conditional (Eq. 7) updates are on")
    if not isinstance(s.init, str):
        blockers.append("init is a given tensor")
    elif s.init == "inversion":
        blockers.append("init is an inversion (the particles do not start from the product at sigma = 1)")
    if s.sim_updates > 0:
        blockers.append("simulator updates (sim_updates) are on")
    if float(sigmas[0]) != 1.0:
        blockers.append("the schedule does not start at sigma = 1")
    if s.weighting != "exact":
        blockers.append("weighting is greedy")
    if s.kernel == "langevin":
        blockers.append("kernel 'langevin' does not leave the product invariant")
    return blockers


def resolve_plan(problem: Problem, settings: Settings, field_: ProductField, sigmas: Tensor) -> Plan:
    """Choose the annealing path, kernel and output; say why in ``notes``."""
    s = settings
    blockers = exactness_blockers(problem, settings, field_, sigmas)
    without = [n for n, ok in zip(field_.names, field_.factor_has_log_prob) if not ok]
    ais_blockers = ([f"expert(s) {', '.join(repr(n) for n in without)} have no log density"] if without else []) + blockers

    if s.annealing == "ais" and ais_blockers:
        raise SettingsError("annealing='ais' is not possible: " + "; ".join(ais_blockers))
    annealing = s.annealing if s.annealing != "auto" else ("flow" if ais_blockers else "ais")

    kernel = s.kernel
    if kernel == "auto":
        kernel = {"ais": "mala", "fk": "none"}.get(annealing, "langevin")
    if kernel in ("mala", "hmc") and not field_.has_log_prob:
        raise SettingsError(
            f"kernel '{kernel}' needs log densities, but expert(s) "
            f"{', '.join(repr(n) for n in without)} have none: use kernel='langevin'"
        )
    if kernel in ("mala", "hmc") and not field_.binary_weights:
        raise SettingsError(
            f"kernel '{kernel}' needs a log density of the product, which a mask left as a weight does not "
            f"define ({'; '.join(field_.mask_blockers)}): use region= or the expert's support, or kernel='langevin'"
        )

    mh = annealing == "ais" and kernel in ("mala", "hmc")
    if s.reward_moves is True and not mh:
        raise SettingsError("reward_moves=True needs annealing='ais' with kernel 'mala' or 'hmc'")
    reward_moves = bool(s.reward_moves) if s.reward_moves != "auto" else (mh and len(problem.rewards) > 0)

    output = resolved_output(s.output, s.weighting)
    notes = []
    if annealing == "ais":
        exact = "exact: the weighted particles target prod_i p_i^a_i * exp(sum w r) (consistent in L)"
    elif annealing == "fk":
        exact = _fk_exactness(blockers)
    elif s.weighting == "exact":
        exact = (
            f"exact in the reward tilt only: the weighted particles target "
            f"law(Euler + {kernel} base sampler) * exp(sum w r)"
        )
        if ais_blockers and s.annealing == "auto":
            notes.append("flow path because " + "; ".join(ais_blockers))
    else:
        exact = "greedy (the paper's): not a sampler of the tilted product"
    return Plan(
        annealing=annealing,
        kernel=kernel,
        weighting=s.weighting,
        output=output,
        euler=annealing == "flow",
        reward_moves=reward_moves,
        init=s.init if isinstance(s.init, str) else "tensor",
        exact=exact,
        notes=notes,
        path=s.path,
        fk_noise=s.fk_noise if annealing == "fk" else None,
    )


def _fk_exactness(blockers: List[str]) -> str:
    if not blockers:
        return (
            "exact: the Feynman-Kac weighted particles target prod_i p_i^a_i * exp(sum w r) "
            "(consistent in L, up to the O(level spacing) discretisation of the weights)"
        )
    if "weighting is greedy" in blockers:
        return "greedy (the paper's): not a sampler of the tilted product"
    return "not exact: Feynman-Kac weights, but " + "; ".join(blockers)


def _derived_seed(seed: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * stream) % (2**63 - 1)


class Sampler:
    """One run: the problem's field, the rewards, the generators, the plan.

    :meth:`level` is the per-level recipe, :meth:`run` the loop.
    """

    def __init__(self, problem: Problem, settings: Settings, device: str | torch.device = "cpu") -> None:
        problem.validate()
        if settings.path != "joint" and type(self) is Sampler:
            raise SettingsError(
                f"path={settings.path!r} is sampled by AutoregressiveSampler (or sample()), not Sampler"
            )
        if settings.path == "joint":
            for f in problem.factors:
                if not hasattr(f.expert, "velocity"):
                    raise SettingsError(
                        f"expert '{f.name}' is frame-wise only (it has chunk_velocity, no velocity over the "
                        f"whole video): sample it with path='autoregressive'"
                    )
        self.sims = [i for i, f in enumerate(problem.factors) if f.simulator]
        if settings.sim_updates > 0 and not self.sims:
            raise SettingsError(
                f"sim_updates={settings.sim_updates} takes gradient steps on the simulator experts, "
                f"but no factor of the product is a simulator"
            )
        self.problem = problem
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = torch.float32 if settings.dtype == "float32" else torch.float64
        self.shape = tuple(problem.shape)
        shift = resolved_shift(settings.shift, problem.factors[0].expert if problem.factors else None)
        self.sigmas = make_schedule(settings.schedule, settings.levels, shift)
        self.T = self.sigmas.shape[0] - 1
        self.field = self.make_field()
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
        self.last_move: Optional[Move] = None  # the move that last changed the particles (:mod:`.divergence`)
        self.temper = 1.0
        self.log_evidence = 0.0
        self.trace: List[LevelInfo] = []
        self.stopped_at: Optional[int] = None  # the level a callback stopped the run at
        self.resample_levels = {int(round(f * self.T)) for f in settings.resample_times}
        acc = settings.target_accept
        self.target_accept = acc if acc is not None else getattr(self.kernel, "default_accept", None)

    def make_field(self) -> ProductField:
        """The product's field over the canvas (the autoregressive path: over the first chunk)."""
        return ProductField(
            self.problem.factors,
            self.shape,
            device=self.device,
            dtype=self.dtype,
            max_batch=self.settings.max_batch,
            sigma_min=self.settings.sigma_min,
        )

    # -- small helpers -------------------------------------------------------
    @property
    def exact(self) -> bool:
        return self.settings.weighting == "exact"

    def _where(self, n: int, sigma: float) -> str:
        return f"level {n} (sigma={sigma:.4f})"

    def _twist(self, raw: Tensor, final: bool) -> Tensor:
        """lambda * sum_j w_j r~_j: the reward potential paid into the weights."""
        used = raw if final else soften(raw, self.settings.constraint_penalty)
        return self.temper * self.rewards.total(used)

    def _check_alive(self, state: ParticleState, where: str) -> None:
        if torch.isfinite(logsumexp(state.log_weights)):
            return
        if state.rewards.shape[1] and bool(torch.isneginf(state.rewards).any()):
            raise SamplerError(rejection_message(state.rewards, self.rewards.names, self.rewards.weights, where))
        raise SamplerError(
            f"every particle has zero weight at {where}: the product of the generative experts "
            f"has zero density at every particle"
        )

    def _canvas(self, x: Tensor) -> Tensor:
        """The whole canvas of a batch of positions (the autoregressive path
        embeds its chunk among the frames around it)."""
        return x

    def _score(self, x0: Tensor, where: str) -> Tensor:
        """Per-reward scores [L, J] of whole canvases."""
        return self.rewards.evaluate(x0, where)

    def _x0_hat(self, state: ParticleState, sigma: float) -> Tensor:
        """Predicted clean canvas of every particle."""
        if sigma <= 0:
            return self._canvas(state.x)
        return self._canvas(self.field.x0_hat(state.x, state.velocity, sigma))

    def _with_velocity(self, state: ParticleState, sigma: float) -> ParticleState:
        """The composed velocity at (x, sigma) (and on the 'fk' path the second
        moment its weight needs: the same expert calls)."""
        fk_path = self.plan.annealing == "fk"
        if sigma > 0 and (state.velocity is None or (fk_path and state.velocity_sq is None)):
            fv = self.field.evaluate(state.x, sigma, score=False, velocity_sq=fk_path)
            state = state.with_(velocity=fv.velocity, velocity_sq=fv.velocity_sq)
        return state

    # -- the pieces of a level ----------------------------------------------
    def initial_state(self) -> ParticleState:
        """Particles at sigmas[0]: the product at sigma = 1, N(0, I/A) per
        coordinate (A = the summed exponents covering it), or the given init."""
        L, s = self.settings.particles, self.settings
        like = torch.zeros((), dtype=self.dtype, device=self.device)
        log_w = torch.zeros(L, dtype=torch.float64, device=self.device)
        here = FieldValues(velocity=None)
        if isinstance(s.init, str) and s.init == "inversion":
            x = self.inverted(L)
        elif isinstance(s.init, str):
            A = self.field.coverage
            x = gaussian_noise((L,) + self.shape, self.move_gen, like) / torch.sqrt(A)
            if self.plan.annealing == "ais":
                # Importance weight gamma_1(x) / q(x): the constant log Z of
                # gamma_1 when every expert is exactly N(0, I) at sigma = 1.
                log_q = (-0.5 * torch.log(2 * math.pi / A) - 0.5 * A * x * x).reshape(L, -1).sum(1)
                here = self.field.evaluate(x, float(self.sigmas[0]), score=True, log_density=True)
                log_w = (here.log_density - log_q).to(torch.float64)
            elif self.plan.annealing == "fk":
                # the same constant weight: log Z_1, so that the evidence is the product's
                log_w = log_w + fk.log_normalizer_at_one(A)
        else:
            init = torch.as_tensor(s.init).to(device=self.device, dtype=self.dtype)
            if tuple(init.shape) == self.shape:
                init = init.expand((L,) + self.shape)
            if tuple(init.shape) != (L,) + self.shape:
                raise SettingsError(
                    f"init tensor has shape {tuple(init.shape)}; expected {self.shape} or {(L,) + self.shape}"
                )
            x = init.clone()
        return ParticleState(
            x=x,
            log_weights=log_w,
            log_twist=torch.zeros(L, dtype=torch.float64, device=self.device),
            rewards=torch.zeros(L, len(self.rewards), dtype=torch.float64, device=self.device),
            ancestors=torch.arange(L),
            velocity=here.velocity,
            score=here.score,
            log_density=here.log_density,
        )

    def inverted(self, L: int) -> Tensor:
        """Particles at sigmas[0] from the flow-ODE inversion of ``settings.invert``
        along the product's composed velocity (one input for all, or one each)."""
        data = self.inversion_input(L, self.shape, "canvas")
        x = invert(self.field, data, self.sigmas, self.settings.invert_iters)
        return x.expand((L,) + self.shape).clone() if x.shape[0] != L else x

    def inversion_input(self, L: int, shape: tuple, what: str) -> Tensor:
        """``settings.invert`` as [1, *shape] (one input for all particles) or [L, *shape] (one each)."""
        data = torch.as_tensor(self.settings.invert).to(device=self.device, dtype=self.dtype)
        if tuple(data.shape) == tuple(shape):
            return data.unsqueeze(0)
        if tuple(data.shape) != (L,) + tuple(shape):
            raise SettingsError(
                f"the {what} to invert has shape {tuple(data.shape)}; the experts sample {tuple(shape)} "
                f"(or give one per particle: {(L,) + tuple(shape)})"
            )
        return data

    def transition(self, state: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
        """flow: Euler step with the cached composed velocity.
        ais: the annealed importance weight gamma_to(x) / gamma_from(x) at the
        unmoved particle, and the field at sigma_to there (for the moves)."""
        if self.plan.euler:
            x = euler_step(state.x, state.velocity, sigma_from, sigma_to)
            return state.moved(x)
        if self.plan.annealing == "fk":
            return self.fk_transition(state, sigma_from, sigma_to)
        if sigma_to > 0:
            fv = self.field.evaluate(state.x, sigma_to, score=True, log_density=True)
            velocity, score, density = fv.velocity, fv.score, fv.log_density
        else:
            velocity, score, density = None, None, self.field.log_density(state.x, sigma_to)
        log_w = state.log_weights + (density - state.log_density).to(torch.float64)
        return state.with_(log_weights=log_w, velocity=velocity, score=score, log_density=density)

    def fk_transition(self, state: ParticleState, sigma_from: float, sigma_to: float) -> ParticleState:
        """One step of the Feynman-Kac corrected SDE and its weight (:mod:`.fk`),
        from the velocities at (x, sigma_from): E expert calls for L particles."""
        state = self._with_velocity(state, sigma_from)
        A = self.field.coverage
        W = state.velocity * A  # the velocity sum, sum_i a_i m_i v_i
        rate = fk.log_weight_rate(state.x, W, state.velocity_sq, A, sigma_from)
        noise = gaussian_noise(tuple(state.x.shape), self.move_gen, state.x)
        self._moving("fk_noise", "the fk transport", state)
        x = fk.transport(state.x, W, A, self.settings.fk_noise, sigma_from, sigma_to, noise)
        log_w = state.log_weights + (sigma_from - sigma_to) * rate
        return self._moved(state.moved(x).with_(log_weights=log_w))

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
        with_rewards = self.plan.reward_moves
        where = self.field.where

        def target(y: Tensor, full: bool = True) -> FieldValues:
            fv = self.field.evaluate(y, sigma, score=True, log_density=needs_density and full)
            if with_rewards and full:
                raw = self._score(self._canvas(self.field.x0_hat(y, fv.velocity, sigma)), where)
                fv.rewards, fv.twist = raw, self._twist(raw, final=False)
            return fv

        here = None
        if state.score is not None:
            here = FieldValues(
                velocity=state.velocity,
                score=state.score,
                log_density=state.log_density,
                twist=state.log_twist if with_rewards else None,
                rewards=state.rewards if with_rewards else None,
            )
        eta = self.step_size(sigma)
        scaled = f", adapted ×{self.step_scale:.3g}" if self.step_scale != 1.0 else ""
        self._moving("step_size", f"the {self.plan.kernel} move{scaled}", state)
        x, rates = state.x, []
        for _ in range(K):
            x, here, rate = self.kernel.step(x, here, target, eta, self.move_gen)
            if rate is not None:
                rates.append(rate)
        accept = sum(rates) / len(rates) if rates else None
        self.last_move.check(x, self.field.where)
        if accept is not None and self.settings.adapt_step and self.target_accept is not None:
            factor = math.exp(2.0 * (accept - self.target_accept))
            self.step_scale = min(max(self.step_scale * factor, 1e-6), 1e6)
        if here is None:  # Langevin: nothing known at the new positions
            return state.moved(x), accept
        moved = state.moved(x).with_(velocity=here.velocity, score=here.score, log_density=here.log_density)
        if with_rewards:
            moved = moved.with_(log_twist=here.twist, rewards=here.rewards)
        return moved, accept

    def conditional(self, state: ParticleState, sigma: float) -> ParticleState:
        """Eq. 7 pulls of the conditioned factors toward their parents."""
        s = self.settings
        if not self.children or s.cond_updates == 0 or sigma <= 0:
            return state
        self._moving("cond_lambda", "the conditional updates", state)
        x = conditional_updates(self.field, state.x, sigma, self.children, s.cond_lambda, s.cond_updates)
        return self._moved(state.moved(x))

    def simulator(self, state: ParticleState, sigma: float) -> ParticleState:
        """``sim_updates`` gradient steps on the simulator factors' log density."""
        s = self.settings
        if s.sim_updates == 0 or sigma <= 0:
            return state
        self._moving("sim_lambda", "the simulator updates", state)
        x = simulator_updates(self.field, state.x, sigma, self.sims, s.sim_lambda, s.sim_updates)
        return self._moved(state.moved(x))

    def reweight(self, state: ParticleState, sigma: float, final: bool, where: str) -> ParticleState:
        """Score x0_hat; pay the reward potential's increment into the weights."""
        state = self._with_velocity(state, sigma)
        raw = self._score(self._x0_hat(state, sigma), where)
        if self.exact:
            if self.settings.adaptive_temper:
                self.temper = 1.0
                if not final:
                    self.temper = self._choose_temper(state, self._twist(raw, final))
            twist = self._twist(raw, final)
            log_w = state.log_weights + (twist - state.log_twist)
        else:
            twist = self._twist(raw, final)
            log_w = twist.clone()
        state = state.with_(log_weights=log_w, log_twist=twist, rewards=raw)
        self._check_alive(state, where)
        return state

    def _choose_temper(self, state: ParticleState, base: Tensor) -> float:
        """The largest lambda in [0, 1] whose incremental weights keep the ESS at
        temper_ess * L (a grid, then bisection at the boundary).

        lambda may go down as well as up: the potentials telescope for any
        sequence that ends at 1, so the target does not depend on it."""
        target = self.settings.temper_ess * state.size

        def ess(lams: Tensor) -> Tensor:
            log_w = state.log_weights[None, :] + lams[:, None].to(base) * base[None, :] - state.log_twist[None, :]
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
        """Resample the whole particle container when the rule says so."""
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

    def _level_index(self, n: int) -> int:
        """The trace's level number of level n (the autoregressive path counts on across chunks)."""
        return n

    def _frames(self):
        return None

    def record(self, n, sigma, weighted, x0, ess, resampled, ancestors, accept, callback) -> None:
        """Append a LevelInfo (the particles as weighted, before resampling)."""
        keep = self.settings.keep_trace
        if keep is False and callback is None:
            return
        info = LevelInfo(
            level=self._level_index(n),
            sigma=sigma,
            x0_hat=x0.detach().cpu().clone() if keep is True else None,
            rewards=weighted.rewards.detach().cpu().clone(),
            scores=self.rewards.total(weighted.rewards).cpu(),
            log_weights=weighted.log_weights.detach().cpu().clone(),
            ancestors=ancestors.cpu().clone(),
            ess=ess,
            resampled=resampled,
            accept_rate=accept,
            step_scale=self.step_scale if self.kernel.needs_log_density else None,
            temper=self.temper,
            frames=self._frames(),
        )
        if keep is not False:
            self.trace.append(info)
        if callback is not None:
            try:
                stop = callback(info) is False
            except StopSampling:
                stop = True
            if stop and self.stopped_at is None:
                self.stopped_at = info.level

    def level(self, state: ParticleState, n: int, callback: Optional[Callback]) -> ParticleState:
        """One annealing level; an expert's NaN/inf after a runaway move is the move's setting's (:mod:`.divergence`)."""
        try:
            return self._level(state, n, callback)
        except NonFiniteOutput as e:
            raise blame(self.last_move, e) from None

    def _moving(self, setting: str, what: str, state: ParticleState) -> None:
        """Remember the move about to be taken (see :mod:`.divergence`); a run of moves sized by the same
        setting keeps the scale from before the first, so a runaway over several levels is still seen."""
        before = largest(state.x)
        if self.last_move is not None and self.last_move.setting == setting:
            before = min(before, self.last_move.before)
        self.last_move = Move(setting, what, getattr(self.settings, setting), before)

    def _moved(self, state: ParticleState) -> ParticleState:
        self.last_move.check(state.x, self.field.where)
        return state

    def _level(self, state: ParticleState, n: int, callback: Optional[Callback]) -> ParticleState:
        sigma_from, sigma = float(self.sigmas[n - 1]), float(self.sigmas[n])
        final = n == self.T
        where = self.field.where = self._where(n, sigma)
        state = self.transition(state, sigma_from, sigma)
        if self.plan.reward_moves:  # SMC sampler: reweight, resample, move
            state = self.reweight(state, sigma, final, where)
            weighted, x0 = state, self._x0_hat(state, sigma)
            state, ess, resampled = self.maybe_resample(state, n)
            state, accept = self.mcmc(state, sigma)
        else:  # the paper's order: move, then score and resample
            state, accept = self.mcmc(state, sigma)
            state = self.conditional(state, sigma)
            state = self.simulator(state, sigma)
            state = self.reweight(state, sigma, final, where)
            weighted, x0 = state, self._x0_hat(state, sigma)
            state, ess, resampled = self.maybe_resample(state, n)
        self.record(n, sigma, weighted, x0, ess, resampled, state.ancestors, accept, callback)
        return state

    # -- the loop ------------------------------------------------------------
    def run(self, callback: Optional[Callback] = None) -> Result:
        """Initial particles (level 0), then T levels, then the output."""
        sigma0 = float(self.sigmas[0])
        where = self.field.where = self._where(0, sigma0)
        state = self.initial_state()
        self.field.where = where  # the inversion labels its own steps
        state = self.reweight(state, sigma0, final=self.T == 0, where=where)
        weighted, x0 = state, self._x0_hat(state, sigma0)
        state, ess, resampled = self.maybe_resample(state, 0)
        self.record(0, sigma0, weighted, x0, ess, resampled, state.ancestors, None, callback)
        for n in range(1, self.T + 1):
            if self.stopped_at is not None:
                break
            state = self.level(state, n, callback)
        return self.finish(state)

    def finish(self, state: ParticleState) -> Result:
        """Normalise the weights and pick the output."""
        log_w = state.log_weights
        log_evidence = self.log_evidence + float(log_mean_exp(log_w)) if self.exact else None
        log_w_norm = (log_w - logsumexp(log_w)).cpu()
        scores = self.rewards.total(state.rewards).cpu()
        if self.plan.output == "all":
            idx = torch.arange(state.size)
        elif self.plan.output == "best":
            best = torch.nonzero(scores == scores.max()).flatten()
            idx = best[torch.argmax(log_w_norm[best])].reshape(1)
        else:
            idx = multinomial(torch.exp(log_w_norm).to(torch.float64), self.settings.num_samples, self.resample_gen)
        evals = dict(self.field.counts)
        evals["reward"] = self.rewards.count
        return Result(
            samples=state.x[idx.to(state.x.device)],
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
            stopped_at=self.stopped_at,
        )


def sample(
    problem: Problem,
    settings: Optional[Settings] = None,
    callback: Optional[Callback] = None,
    device: str | torch.device = "cpu",
) -> Result:
    """Sample the product of experts of ``problem``.

    ``callback(level_info)`` is called after every level, including level 0
    (the initial noise), with a :class:`LevelInfo`; on the autoregressive
    path, after every level of every chunk.
    """
    settings = settings or Settings()
    if settings.path == "autoregressive":
        from .autoregressive import AutoregressiveSampler  # noqa: PLC0415 (it subclasses Sampler)

        return AutoregressiveSampler(problem, settings, device).run(callback)
    return Sampler(problem, settings, device).run(callback)
