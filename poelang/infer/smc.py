"""The sampler: annealed MCMC + Sequential Monte Carlo over a product of experts.

One level, from sigma_{n-1} down to sigma_n (T levels, L particles), in the
paper's order ('flow' path, and 'ais' without reward moves)::

    transition   flow: one Euler step with the composed velocity
                 ais:  weight by gamma_n(x) / gamma_{n-1}(x), no move
                 fk:   one step of the Feynman-Kac corrected SDE, and its
                       weight (velocities only; :mod:`.fk`)
    move         K MCMC moves at sigma_n on the product (Langevin / MALA / HMC)
    conditional  Eq. 7 updates of the factors that have parents (flow only)
    simulator    ``sim_updates`` gradient steps on the simulator factors
    reweight     score x0_hat with the rewards; multiply the weights by
                 exp(twist_n - twist_{n-1})  (exact)  or set them to
                 exp(twist_n)                          (greedy)
    resample     every level, when ESS < threshold * L, or at listed times

and, when the rewards take part in the moves ('ais' with reward_moves), the
order of an SMC sampler: transition + reweight at the unmoved particles,
resample, then MCMC moves that leave gamma_n * exp(twist_n) invariant.

The order of a level's steps is data (:data:`PAPER_ORDER`,
:data:`SMC_ORDER`): :func:`level` runs the plan's order, each step a function
``step(run, state) -> state`` on an immutable :class:`~.state.SamplerState`
(:mod:`.steps`: the transitions and moves; :mod:`.weighting`: reweighting
and resampling). Level 0 is the initial particles (:mod:`.start`: noise from
the product at sigma = 1, the flow-ODE inversion of an input, or a given
tensor), then :data:`START_ORDER`. :class:`Sampler` is the driver: an
iterator over the levels (``for state in sampler: ...``, after
``particles.SMC``), level 0 then 1..T of each *window* of its path
(:mod:`.window`): the joint path has one, the whole canvas; the
autoregressive path (:mod:`.autoregressive`) one per chunk of frames, given
to the same levels.

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

from dataclasses import asdict
from typing import Callable, Iterator, List, Optional

import torch

from .autoregressive import FramePath
from .divergence import Move, blame
from .errors import NonFiniteOutput, SamplerError, SettingsError, StopSampling
from .kernels import make_kernel
from .numerics import log_mean_exp, logsumexp
from .plan import resolve_plan
from .product import ProductField
from .protocol import Problem
from .resampling import multinomial
from .result import LevelInfo, Result
from .rewards import RewardSet
from .schedules import make_schedule
from .settings import Settings, resolved_shift
from .start import initial_particles
from .state import SamplerState
from .steps import conditional, move, simulator, transition
from .weighting import reweight, resample, x0_hat
from .window import JointPath

Tensor = torch.Tensor
Callback = Callable[[LevelInfo], Optional[bool]]  # returning False (or raising StopSampling) ends the run
Step = Callable[["Sampler", SamplerState], SamplerState]

# The order of a level's steps, as data.
PAPER_ORDER: tuple[Step, ...] = (transition, move, conditional, simulator, reweight, resample)
SMC_ORDER: tuple[Step, ...] = (transition, reweight, resample, move)  # rewards in the moves: move after resampling
START_ORDER: tuple[Step, ...] = (reweight, resample)  # level 0, after the initial particles
PATHS = {"joint": JointPath, "autoregressive": FramePath}


def level(run: "Sampler", state: SamplerState, steps: tuple[Step, ...]) -> SamplerState:
    """One level: ``steps`` in order, each from the state the one before returned.
    An expert's NaN/inf after a runaway move is the move's setting's (:mod:`.divergence`)."""
    run.field.where = run.window.label(state.n, run.sigma(state.n))
    try:
        for step in steps:
            state = step(run, state)
    except NonFiniteOutput as e:
        raise blame(run.last_move, e) from None
    return state


def _derived_seed(seed: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * stream) % (2**63 - 1)


class Sampler:
    """One run: the problem's path and windows, the rewards, the generators,
    the plan; an iterator over the levels (one pass), with :meth:`run` the
    loop that records them and returns the :class:`Result`."""

    def __init__(self, problem: Problem, settings: Settings, device: str | torch.device = "cpu") -> None:
        problem.validate()
        self.problem, self.settings = problem, settings
        self.device = torch.device(device)
        self.dtype = torch.float32 if settings.dtype == "float32" else torch.float64
        self.path = PATHS[settings.path](problem, settings, self.device, self.dtype)
        self.sims = [i for i, f in enumerate(problem.factors) if f.simulator]
        if settings.sim_updates > 0 and not self.sims:
            raise SettingsError(
                f"sim_updates={settings.sim_updates} takes gradient steps on the simulator experts, "
                f"but no factor of the product is a simulator"
            )
        self.children = [i for i, f in enumerate(problem.factors) if f.parents]
        shift = resolved_shift(settings.shift, problem.factors[0].expert if problem.factors else None)
        self.sigmas = make_schedule(settings.schedule, settings.levels, shift)
        self.T = self.sigmas.shape[0] - 1
        self._sigma_values = self.sigmas.tolist()  # read by every step: a list is faster to index than a tensor
        self.window = self.path.window(0, None)
        self.rewards = RewardSet(problem.rewards, settings.max_batch)
        self.plan = resolve_plan(problem, settings, self.field, self.sigmas)
        self.path.complete(self.plan, self.window)
        self.kernel = make_kernel(self.plan.kernel, settings.hmc_leapfrog)
        self.order = SMC_ORDER if self.plan.reward_moves else PAPER_ORDER
        # Moves and resampling draw from separate CPU generators, so that the
        # positions do not depend on whether (or how) particles are resampled:
        # L = 1 with SMC is then bit-identical to L = 1 without it.
        self.move_gen = torch.Generator().manual_seed(_derived_seed(settings.seed, 0))
        self.resample_gen = torch.Generator().manual_seed(_derived_seed(settings.seed, 1))
        self.resample_levels = {int(round(f * self.T)) for f in settings.resample_times}
        acc = settings.target_accept
        self.target_accept = acc if acc is not None else getattr(self.kernel, "default_accept", None)
        # the move that last changed the particles, for what an error says (like
        # field.where, it changes no result; :mod:`.divergence`)
        self.last_move: Optional[Move] = None
        self._started = False

    # -- what the steps read ---------------------------------------------------
    @property
    def field(self) -> ProductField:
        """The product's field over the current window."""
        return self.window.field

    @property
    def exact(self) -> bool:
        return self.settings.weighting == "exact"

    def sigma(self, n: int) -> float:
        """sigma_n, the noise level of level n."""
        return self._sigma_values[n]

    def is_final(self, n: int) -> bool:
        """Whether level n ends the window's schedule: the rewards' raw values are
        paid there, not softened (level 0 only if it is also the run's end)."""
        return n == self.T and (n > 0 or self.window.last)

    # -- the driver ----------------------------------------------------------------
    def __iter__(self) -> Iterator[SamplerState]:
        """Level 0, then levels 1..T, of each window of the path, as states."""
        if self._started:
            raise SamplerError("a Sampler runs once: make a new one for another run")
        self._started = True
        state = None
        for k in range(self.path.windows):
            if k > 0:
                self.window = self.path.window(k, state.particles)
            state = self.start(state)
            yield state
            for n in range(1, self.T + 1):
                state = level(self, state.at(n), self.order)
                yield state

    def start(self, previous: Optional[SamplerState]) -> SamplerState:
        """Level 0 of the current window: the initial particles (carrying the
        weights of the window before), weighed and maybe resampled."""
        self.field.where = self.window.label(0, self.sigma(0))  # an inversion labels its own steps
        self.last_move = None  # new particles: no move has thrown them out
        particles = initial_particles(self)
        state = SamplerState(particles) if previous is None else previous.next_window(particles)
        return level(self, state, START_ORDER)

    def run(self, callback: Optional[Callback] = None) -> Result:
        """Every level, each recorded (and shown to ``callback``), then the output."""
        keep = self.settings.keep_trace
        trace: List[LevelInfo] = []
        stopped_at, state = None, None
        for state in self:
            if keep is False and callback is None:
                continue
            info = self.info(state)
            if keep is not False:
                trace.append(info)
            if callback is not None and _stops(callback, info):
                stopped_at = info.level
                break
        return self.finish(state, trace, stopped_at)

    def info(self, state: SamplerState) -> LevelInfo:
        """The record of a level: the particles as weighted, before resampling."""
        weighted, sigma = state.weighted, self.sigma(state.n)
        x0 = x0_hat(self, weighted, sigma) if self.settings.keep_trace is True else None
        return LevelInfo(
            level=self.window.index * (self.T + 1) + state.n,
            sigma=sigma,
            x0_hat=x0.detach().cpu().clone() if x0 is not None else None,
            rewards=weighted.rewards.detach().cpu().clone(),
            scores=self.rewards.total(weighted.rewards).cpu(),
            log_weights=weighted.log_weights.detach().cpu().clone(),
            ancestors=state.particles.ancestors.cpu().clone(),
            ess=state.ess,
            resampled=state.resampled,
            accept_rate=state.accept,
            step_scale=state.step_scale if self.kernel.needs_log_density else None,
            temper=state.temper,
            frames=self.window.frames,
        )

    def finish(self, state: SamplerState, trace: List[LevelInfo], stopped_at: Optional[int]) -> Result:
        """Normalise the weights and pick the output."""
        p = self.path.whole(state.particles)
        log_w = p.log_weights
        evidence = self.exact and self.path.evidence_known(self.plan)
        log_evidence = state.log_evidence + float(log_mean_exp(log_w)) if evidence else None
        log_w_norm = (log_w - logsumexp(log_w)).cpu()
        scores = self.rewards.total(p.rewards).cpu()
        idx = self._output(log_w_norm, scores, p.size)
        evals = dict(self.field.counts)
        evals["reward"] = self.rewards.count
        return Result(
            samples=p.x[idx.to(p.x.device)],
            particles=p.x,
            log_weights=log_w_norm,
            scores=scores,
            reward_scores=p.rewards.cpu(),
            reward_names=list(self.rewards.names),
            trace=trace,
            log_evidence=log_evidence,
            plan=asdict(self.plan),
            evaluations=evals,
            sigmas=self.sigmas,
            output_indices=idx,
            stopped_at=stopped_at,
        )

    def _output(self, log_w_norm: Tensor, scores: Tensor, L: int) -> Tensor:
        """The particles the output is: all, the best, or draws by weight."""
        if self.plan.output == "all":
            return torch.arange(L)
        if self.plan.output == "best":
            best = torch.nonzero(scores == scores.max()).flatten()
            return best[torch.argmax(log_w_norm[best])].reshape(1)
        return multinomial(torch.exp(log_w_norm).to(torch.float64), self.settings.num_samples, self.resample_gen)


def _stops(callback: Callback, info: LevelInfo) -> bool:
    """Whether the callback asks to stop: it returned False or raised StopSampling."""
    try:
        return callback(info) is False
    except StopSampling:
        return True


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
    return Sampler(problem, settings or Settings(), device).run(callback)
