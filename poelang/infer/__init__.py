"""The inference engine: annealed MCMC + SMC over a product of experts.

Language-independent: it takes torch objects (experts that duck-type
:mod:`~poelang.infer.protocol`) and a :class:`Settings` dataclass.

    from poelang.infer import Factor, RewardFactor, Problem, Settings, sample
    result = sample(Problem(shape=(2,), factors=[Factor(a), Factor(b)]),
                    Settings(levels=50, particles=256))
    result.samples, result.trace, result.plan

Modules: ``flow`` (velocity/score/x0 conversions), ``schedules``,
``product`` (composition of experts), ``kernels`` (Euler, Langevin, MALA,
HMC), ``conditional`` (Eq. 7), ``rewards``, ``resampling``, ``numerics``
(logsumexp, ESS), ``state`` (the particle container), ``smc`` (the loop),
``result``, ``inversion`` (flow-ODE inversion of an input, for
``init='inversion'``), ``autoregressive`` (``path='autoregressive'``: a video
chunk by chunk, paper App. C).
"""
from .autoregressive import AutoregressiveSampler, WindowField, chunk_frames
from .errors import SamplerError, SettingsError
from .flow import eps_from_velocity, score_from_velocity, velocity_from_score, x0_from_velocity
from .inversion import invert
from .numerics import effective_sample_size, logsumexp, normalized_weights
from .product import FieldValues, ProductField
from .protocol import Factor, GenerativeExpert, Problem, RewardExpert, RewardFactor, is_framewise
from .resampling import RESAMPLERS, register as register_resampler, resample
from .result import LevelInfo, Result
from .schedules import make_schedule
from .settings import Settings
from .smc import Plan, Sampler, resolve_plan, sample
from .state import ParticleState

__all__ = [
    "AutoregressiveSampler",
    "Factor",
    "FieldValues",
    "GenerativeExpert",
    "LevelInfo",
    "ParticleState",
    "Plan",
    "Problem",
    "ProductField",
    "RESAMPLERS",
    "Result",
    "RewardExpert",
    "RewardFactor",
    "SamplerError",
    "Sampler",
    "Settings",
    "SettingsError",
    "WindowField",
    "chunk_frames",
    "effective_sample_size",
    "eps_from_velocity",
    "invert",
    "is_framewise",
    "logsumexp",
    "make_schedule",
    "normalized_weights",
    "register_resampler",
    "resample",
    "resolve_plan",
    "sample",
    "score_from_velocity",
    "velocity_from_score",
    "x0_from_velocity",
]
