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
(logsumexp, ESS), ``state`` (the particle container and the sampler's state
between levels), ``plan`` (what a run really is), ``smc`` (the level recipe
and the driver), ``steps`` and ``weighting`` (the steps of a level),
``start`` (level 0's particles), ``window`` (the joint path: one window, the
whole canvas), ``result``, ``inversion`` (flow-ODE inversion of an input, for
``init='inversion'``), ``autoregressive`` (``path='autoregressive'``: a video
chunk by chunk, paper App. C, as windows given to the same driver).
"""
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as type checkers see them; at run time they load on first use
    from .errors import Divergence, SamplerError, SettingsError, StopSampling
    from .protocol import Factor, GenerativeExpert, Problem, RewardExpert, RewardFactor
    from .result import LevelInfo, Result
    from .settings import Settings
    from .plan import Plan, resolve_plan
    from .smc import Sampler, sample
    from .state import ParticleState, SamplerState

# Names load on first use (PEP 562), so that `poelang check` can validate
# settings (:mod:`.settings` imports no torch) without importing the engine.
_EXPORTS = {
    "FramePath": ("autoregressive", "FramePath"),
    "WindowField": ("autoregressive", "WindowField"),
    "chunk_frames": ("autoregressive", "chunk_frames"),
    "Divergence": ("errors", "Divergence"),
    "SamplerError": ("errors", "SamplerError"),
    "SettingsError": ("errors", "SettingsError"),
    "StopSampling": ("errors", "StopSampling"),
    "eps_from_velocity": ("flow", "eps_from_velocity"),
    "score_from_velocity": ("flow", "score_from_velocity"),
    "velocity_from_score": ("flow", "velocity_from_score"),
    "x0_from_velocity": ("flow", "x0_from_velocity"),
    "invert": ("inversion", "invert"),
    "reporting_inversion_steps": ("inversion", "reporting_steps"),
    "effective_sample_size": ("numerics", "effective_sample_size"),
    "logsumexp": ("numerics", "logsumexp"),
    "normalized_weights": ("numerics", "normalized_weights"),
    "FieldValues": ("product", "FieldValues"),
    "ProductField": ("product", "ProductField"),
    "Factor": ("protocol", "Factor"),
    "GenerativeExpert": ("protocol", "GenerativeExpert"),
    "Problem": ("protocol", "Problem"),
    "RewardExpert": ("protocol", "RewardExpert"),
    "RewardFactor": ("protocol", "RewardFactor"),
    "is_framewise": ("protocol", "is_framewise"),
    "RESAMPLERS": ("resampling", "RESAMPLERS"),
    "register_resampler": ("resampling", "register"),
    "resample": ("resampling", "resample"),
    "LevelInfo": ("result", "LevelInfo"),
    "Result": ("result", "Result"),
    "make_schedule": ("schedules", "make_schedule"),
    "Settings": ("settings", "Settings"),
    "Plan": ("plan", "Plan"),
    "Sampler": ("smc", "Sampler"),
    "resolve_plan": ("plan", "resolve_plan"),
    "sample": ("smc", "sample"),
    "ParticleState": ("state", "ParticleState"),
    "SamplerState": ("state", "SamplerState"),
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        try:  # a submodule: `infer.schedules`
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'poelang.infer' has no attribute '{name}'") from None
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


__all__ = [
    "Divergence",
    "Factor",
    "FieldValues",
    "FramePath",
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
    "SamplerState",
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
    "reporting_inversion_steps",
    "resample",
    "resolve_plan",
    "sample",
    "score_from_velocity",
    "velocity_from_score",
    "x0_from_velocity",
]
