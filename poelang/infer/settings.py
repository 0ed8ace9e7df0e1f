"""Sampler settings, with defaults that work.

Every field can be overridden from the language, the command line or Python.
Choices the engine resolves from the problem (``kernel='auto'``,
``annealing='auto'``, ``output='auto'``) are recorded in ``Result.plan``, so a
run always says which sampler it actually was.

Step sizes. A score-based move at level sigma uses, per coordinate c,

    eta_c = step_size * sigma^2 / A_c,     A_c = sum_i a_i m_i(c)

(a_i the factor exponents, m_i its mask/region/support weight). Why: a flow
expert's noised marginal has variance >= sigma^2 per coordinate, and the
product of experts covering c is A_c times sharper, so the product's variance
is >= sigma^2 / A_c; with ``step_size`` < 2 the Langevin step is then stable
for every expert (step_size plays the role of eta / variance). Dividing by
A_c is a constant diagonal preconditioner, which leaves the target of
Langevin, MALA and HMC unchanged. MALA and HMC additionally adapt a global
factor on eta from the acceptance rate of the previous level (``adapt_step``);
adapting on the current particle population keeps SMC consistent.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence, Tuple, Union

from .errors import SettingsError

KERNELS = ("auto", "none", "langevin", "mala", "hmc")
WEIGHTINGS = ("exact", "greedy")
RESAMPLE_WHEN = ("always", "ess", "times")
ANNEALING = ("auto", "ais", "flow", "fk")
OUTPUTS = ("auto", "best", "all", "sample")
PATHS = ("joint", "autoregressive")


@dataclass
class Settings:
    """How to sample. Fields (defaults in brackets):

    levels [50]            T, number of annealing levels (noise levels).
    schedule ['linear']    'linear', 'flux_shift' (with ``shift``) or a list of
                           sigmas from the start down to 0.
    shift [3.0]            FLUX time shift for 'flux_shift'.
    particles [8]          L, number of particles.
    kernel ['auto']        MCMC move at each level: 'none', 'langevin' (ULA on
                           the composed score), 'mala', 'hmc'; 'auto' = 'mala'
                           when every factor has a log density (and the
                           annealing can be exact), else 'langevin'.
    mcmc_steps [1]         K moves per level.
    step_size [0.5]        eta / variance, see the module doc.
    adapt_step [True]      MALA/HMC: adapt eta from the acceptance rate.
    target_accept [None]   acceptance the adaptation aims at (None: 0.574 MALA,
                           0.65 HMC).
    hmc_leapfrog [3]       leapfrog steps per HMC move.
    cond_updates [2]       Eq. 7 updates per level for factors with parents.
    cond_lambda [0.1]      Eq. 7 step size.
    resample ['systematic'] 'multinomial', 'systematic', 'residual',
                           'stratified', 'median' (greedy only), 'none'.
    resample_when ['ess']  'always', 'ess' (ESS < ess_threshold * L), 'times'.
    ess_threshold [0.5]
    resample_times [(0.25, 0.5, 0.75)]  fractions of the schedule (level
                           n resamples when n == round(f * T)).
    weighting ['exact']    'exact': telescoping reward increments (+ annealed
                           importance weights when densities are known); the
                           output is a draw from the weighted particles.
                           'greedy': the paper's: particles ranked by their
                           current reward, output the best.
    annealing ['auto']     'ais': no Euler step, start from the product at
                           sigma = 1, weights log g_t(x) - log g_{t+1}(x), MALA
                           or HMC moves -- exact for analytic experts.
                           'flow': the paper's Euler transition + MCMC.
                           'fk': Feynman-Kac corrected SDE with weights from
                           the experts' velocities only -- exact (as L grows
                           and levels get finer) for flow networks; kernel
                           'auto' is then 'none' (see :mod:`~poelang.infer.fk`).
                           'auto': 'ais' when possible, else 'flow'.
    fk_noise [1.0]         'fk': eta >= 0, the SDE's noise (0: the ODE along
                           the velocity sum, weights only; 1: the reverse SDE).
    init ['noise']         'noise' (the product at sigma = 1: N(0, I / A_c) per
                           coordinate), 'inversion' (the flow-ODE inversion of
                           ``invert``, see :mod:`~poelang.infer.inversion`), or
                           a tensor [L, *shape] or [*shape] of particles at the
                           schedule's first sigma.
    invert [None]          init='inversion': the clean canvas to invert, [*shape]
                           (every particle starts from its inversion) or
                           [L, *shape] (one input per particle); in the experts'
                           space (latents when they sample through a codec).
    invert_iters [2]       fixed-point iterations per inversion step that make
                           each step the exact inverse of the sampler's Euler
                           step (0: plain explicit Euler, the paper's).
    path ['joint']         'joint': every level moves the whole canvas (the
                           paper's linear path). 'autoregressive': a video is
                           sampled chunk by chunk along its first event dim
                           (frames); each chunk runs all the levels with the
                           frames before it fixed (paper App. C); see
                           :mod:`~poelang.infer.autoregressive`.
    chunk [1]              path='autoregressive': frames per chunk (the last
                           chunk may be shorter).
    sim_updates [0]        per level, after the MCMC move: gradient steps on the
                           log density of the factors marked ``simulator`` only,
                           x <- x + sim_lambda * sigma^2 / A * sum_sim a m s_sim
                           (App. C: "8 gradient updates on the Gaussian loss");
                           a heuristic, like Eq. 7, so the run is on the 'flow'
                           path.
    sim_lambda [0.5]       step of those updates, relative to sigma^2 / A (< 1 is
                           stable for a Gaussian simulator expert).
    seed [0]
    output ['auto']        'best', 'all', 'sample' (num_samples draws from the
                           weighted particles); 'auto' = 'sample' when exact,
                           'best' when greedy.
    num_samples [1]
    max_batch [None]       split expert calls into chunks of this many
                           particles (less memory; identical results as long
                           as an expert's output for one row does not depend
                           on the batch size -- true of the analytic experts,
                           which avoid batch-size-dependent BLAS kernels).
    reward_moves ['auto']  True: MALA/HMC accept on gamma * exp(twist), the
                           rewards included, so moves leave the level's full
                           target invariant (the SMC sampler of Del Moral et al.
                           2006: reweight, resample, then move); costs one
                           reward call per proposal; makes sharp rewards and
                           rare constraints feasible. False: the paper's order
                           (move on the experts only, then score and resample).
                           'auto': True on the 'ais' path when there are
                           rewards; needs MH moves (not possible on 'flow').
    adaptive_temper [False] exact mode: per level, choose the reward's
                           tempering factor lambda in [0, 1] (grid + bisection)
                           as the largest that keeps the ESS of the incremental
                           weights at temper_ess * L; lambda = 1 at the last
                           level, so the target is unchanged (with few levels
                           the last step can still be a big one).
    temper_ess [0.5]
    constraint_penalty [2.0] before the last level a reward value of -inf
                           counts as -constraint_penalty, so a hard constraint
                           on a blurry x0_hat does not kill every particle early
                           (and lineages that violate early and satisfy late keep
                           representable weights); the last level uses the true
                           value, so the target is exact.
    sigma_min [1e-3]       clamp of sigma in the score's denominator.
    keep_trace [True]      True: record x0_hat of every particle at every level
                           (on CPU); 'scores': everything but x0_hat; False.
    dtype ['float32']      'float32' or 'float64' for the particles.
    """

    levels: int = 50
    schedule: Union[str, Sequence[float]] = "linear"
    shift: float = 3.0
    particles: int = 8
    kernel: str = "auto"
    mcmc_steps: int = 1
    step_size: float = 0.5
    adapt_step: bool = True
    target_accept: Optional[float] = None
    hmc_leapfrog: int = 3
    cond_updates: int = 2
    cond_lambda: float = 0.1
    resample: str = "systematic"
    resample_when: str = "ess"
    ess_threshold: float = 0.5
    resample_times: Tuple[float, ...] = (0.25, 0.5, 0.75)
    weighting: str = "exact"
    annealing: str = "auto"
    fk_noise: float = 1.0
    init: Any = "noise"
    invert: Any = None
    invert_iters: int = 2
    path: str = "joint"
    chunk: int = 1
    sim_updates: int = 0
    sim_lambda: float = 0.5
    seed: int = 0
    output: str = "auto"
    num_samples: int = 1
    max_batch: Optional[int] = None
    reward_moves: Union[str, bool] = "auto"
    adaptive_temper: bool = False
    temper_ess: float = 0.5
    constraint_penalty: float = 2.0
    sigma_min: float = 1e-3
    keep_trace: Union[bool, str] = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.validate()

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    def validate(self) -> None:
        from .resampling import RESAMPLERS  # noqa: PLC0415 (avoid a cycle at import)

        def bad(msg: str) -> SettingsError:
            return SettingsError(f"invalid settings: {msg}")

        if isinstance(self.schedule, str) and self.levels < 1:
            raise bad(f"levels must be >= 1, got {self.levels}")
        if self.particles < 1:
            raise bad(f"particles must be >= 1, got {self.particles}")
        if self.kernel not in KERNELS:
            raise bad(f"kernel {self.kernel!r} is not one of {', '.join(KERNELS)}")
        if self.mcmc_steps < 0:
            raise bad(f"mcmc_steps must be >= 0, got {self.mcmc_steps}")
        if not self.step_size > 0:
            raise bad(f"step_size must be positive, got {self.step_size}")
        if self.hmc_leapfrog < 1:
            raise bad(f"hmc_leapfrog must be >= 1, got {self.hmc_leapfrog}")
        if self.cond_updates < 0 or self.cond_lambda < 0:
            raise bad("cond_updates and cond_lambda must be >= 0")
        if self.resample not in RESAMPLERS:
            raise bad(f"resample {self.resample!r} is not one of {', '.join(RESAMPLERS)}")
        if self.resample_when not in RESAMPLE_WHEN:
            raise bad(f"resample_when {self.resample_when!r} is not one of {', '.join(RESAMPLE_WHEN)}")
        if not 0 <= self.ess_threshold <= 1:
            raise bad(f"ess_threshold must be in [0, 1], got {self.ess_threshold}")
        if any(not 0 < t < 1 for t in self.resample_times):
            raise bad("resample_times must be fractions in (0, 1)")
        if self.weighting not in WEIGHTINGS:
            raise bad(f"weighting {self.weighting!r} is not one of {', '.join(WEIGHTINGS)}")
        if self.weighting == "exact" and self.resample == "median":
            raise bad("resample='median' is greedy (biased); use it with weighting='greedy'")
        if self.annealing not in ANNEALING:
            raise bad(f"annealing {self.annealing!r} is not one of {', '.join(ANNEALING)}")
        if not self.fk_noise >= 0:
            raise bad(f"fk_noise must be >= 0, got {self.fk_noise}")
        if self.output not in OUTPUTS:
            raise bad(f"output {self.output!r} is not one of {', '.join(OUTPUTS)}")
        if self.num_samples < 1:
            raise bad("num_samples must be >= 1")
        if self.max_batch is not None and self.max_batch < 1:
            raise bad("max_batch must be >= 1 or None")
        if self.reward_moves not in ("auto", True, False):
            raise bad("reward_moves must be 'auto', True or False")
        if self.adaptive_temper and self.weighting != "exact":
            raise bad("adaptive_temper needs weighting='exact'")
        if not 0 < self.temper_ess <= 1:
            raise bad("temper_ess must be in (0, 1]")
        if not self.constraint_penalty > 0:
            raise bad("constraint_penalty must be positive")
        if not 0 < self.sigma_min < 1:
            raise bad("sigma_min must be in (0, 1)")
        if self.keep_trace not in (True, False, "scores"):
            raise bad("keep_trace must be True, False or 'scores'")
        if self.dtype not in ("float32", "float64"):
            raise bad("dtype must be 'float32' or 'float64'")
        if isinstance(self.init, str) and self.init not in ("noise", "inversion"):
            raise bad(f"init must be 'noise', 'inversion' or a tensor, got {self.init!r}")
        if isinstance(self.init, str) and self.init == "inversion" and self.invert is None:
            raise bad("init='inversion' needs invert=<the clean canvas to invert>")
        if self.invert is not None and not (isinstance(self.init, str) and self.init == "inversion"):
            raise bad("invert is used only with init='inversion'")
        if self.invert_iters < 0:
            raise bad(f"invert_iters must be >= 0, got {self.invert_iters}")
        if self.path not in PATHS:
            raise bad(f"path {self.path!r} is not one of {', '.join(PATHS)}")
        if self.chunk < 1:
            raise bad(f"chunk must be >= 1, got {self.chunk}")
        if self.path == "autoregressive" and not isinstance(self.init, str):
            raise bad("path='autoregressive' starts every chunk from noise or an inversion: init must be "
                      "'noise' or 'inversion', not a tensor")
        if self.sim_updates < 0:
            raise bad(f"sim_updates must be >= 0, got {self.sim_updates}")
        if not self.sim_lambda > 0:
            raise bad(f"sim_lambda must be positive, got {self.sim_lambda}")
        if self.target_accept is not None and not 0 < self.target_accept < 1:
            raise bad("target_accept must be in (0, 1)")
