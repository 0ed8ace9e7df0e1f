"""Sampler settings: one schema, declared once, for the engine and for programs.

Every field is declared here with its default, its range and a description;
the language's ``with { ... }`` settings and ``--set`` overrides are the
subset marked ``program`` (under the name programs write, which differs for
two: ``mcmc`` is :attr:`Settings.kernel`, ``leapfrog`` is
:attr:`Settings.hmc_leapfrog`), derived in :mod:`poelang.graph`. Rules
between settings live in :func:`check_rules`, stated once and worded as a
program writes them, so ``poelang check`` and the engine give the same
message for the same mistake. Resampler and kernel names are checked against
their registries, so a scheme registered with
:func:`~poelang.infer.resampling.register` reaches programs too.

Choices the engine resolves from the problem (``kernel='auto'``,
``annealing='auto'``, ``output='auto'``, ``shift='auto'``) are recorded in
``Result.plan``, so a run always says which sampler it actually was.

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

This module imports no torch (``poelang check`` validates settings without it).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import SettingsError
from .setting_messages import describe_errors


def kernel_names() -> tuple[str, ...]:
    from .kernels import KERNELS  # noqa: PLC0415 (the registry imports this module's users)

    return ("auto", *KERNELS)


def resampler_names() -> tuple[str, ...]:
    from .resampling import RESAMPLERS  # noqa: PLC0415

    return tuple(RESAMPLERS)


def _registered(names):
    """A validator: the value must be a name in a registry (read when validating, so late registrations count)."""

    def check(value: str) -> str:
        allowed = names()
        if value not in allowed:
            expected = " or ".join([", ".join(f"'{n}'" for n in allowed[:-1]), f"'{allowed[-1]}'"])
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    check.choices = names  # type: ignore[attr-defined]  # what editors offer (the REPL's completion)
    return AfterValidator(check)


def _resample_times(times: list[float]) -> list[float]:
    for t in times:
        if not 0 < t < 1:
            raise ValueError(f"resampling time {t:g} is outside (0, 1)")
    return sorted(times)


def _shift(shift):
    if shift != "auto" and not shift > 0:
        raise ValueError("must be positive, or auto")
    if shift != "auto" and not 1e-6 <= shift <= 1e6:  # beyond, float rounding puts the first σ at inf or the rest at 1
        raise ValueError(f"must be between 1e-6 and 1e6 (or auto), got {shift:g}")
    return shift


def sigma_list_problem(sigmas: list[float]) -> str | None:
    """What is wrong with an explicit schedule, or None."""
    if len(sigmas) < 2:
        return "a σ list needs at least two values"
    if any(not 0 <= s <= 1 for s in sigmas):
        return "σ values must lie in [0, 1]"
    if any(a <= b for a, b in zip(sigmas, sigmas[1:])):
        return "σ values must decrease"
    if sigmas[-1] != 0:
        return "σ values must end at 0"
    return None


def _schedule(schedule):
    if isinstance(schedule, list) and (problem := sigma_list_problem(schedule)):
        raise ValueError(problem)
    return schedule


def _init(init):
    if isinstance(init, str) and init not in ("noise", "inversion"):
        raise ValueError(f"init must be 'noise', 'inversion' or a tensor, got '{init}'")
    return init


def setting(default: Any = None, *, description: str, program: str | None | bool = True, **kw) -> Any:
    """A field of :class:`Settings`. ``program``: True (programs write the same
    name), a different name programs write, or False (engine only)."""
    name = program if isinstance(program, str) else None
    extra = {"program": bool(program)} | ({"program_name": name} if name else {})
    given = () if "default_factory" in kw else (default,)
    return Field(*given, description=description, json_schema_extra=extra, **kw)


class Settings(BaseModel):
    """How to sample; every field has a default that works (see each field's description).

    Built from keywords and validated on construction (and on assignment);
    a mistake raises :class:`SettingsError`. :meth:`replace` makes a validated copy.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_assignment=True)

    levels: int = setting(50, ge=1, le=100_000, description="annealing levels T (noise levels)")
    schedule: Annotated[Union[Literal["linear", "flux_shift"], list[float]], AfterValidator(_schedule)] = setting(
        "linear", description="σ schedule: linear, flux_shift (with shift), or σ values from the start down to 0")
    shift: Annotated[Union[float, Literal["auto"]], AfterValidator(_shift)] = setting(
        "auto", description="time shift of the flux_shift schedule; auto: the first expert's "
                            "(FLUX: from its token count), else 3")
    particles: int = setting(8, ge=1, le=65_536, description="particles L")
    kernel: Annotated[str, _registered(kernel_names)] = setting(
        "auto", program="mcmc", description="MCMC kernel at each level: none, langevin (ULA on the composed score), "
                                            "mala, hmc; auto: MALA when every expert has a density (and the annealing "
                                            "can be exact), else Langevin")
    mcmc_steps: int = setting(1, ge=0, le=10_000, description="MCMC steps K per level")
    step_size: float = setting(0.5, gt=0, le=2, description="MCMC step size η/variance, relative to σ² (stable below 2)")
    adapt_step: bool = setting(True, description="MALA/HMC: adapt η from the acceptance rate")
    target_accept: Optional[float] = setting(
        None, gt=0, lt=1, description="acceptance the adaptation aims at (none: 0.574 MALA, 0.65 HMC)")
    hmc_leapfrog: int = setting(3, ge=1, le=1000, program="leapfrog", description="HMC leapfrog steps")
    cond_updates: int = setting(2, ge=0, le=1000, description="conditional-expert updates per level (paper Eq. 7)")
    cond_lambda: float = setting(
        0.1, ge=0, le=1, description="step λ of the conditional updates, in the experts' units (x -= λ ∇|v_child - "
                                     "v_parents|²): above 1 a step overshoots even for experts of unit scale, and "
                                     "narrow experts need a smaller one")
    resample: Annotated[str, _registered(resampler_names)] = setting(
        "systematic", description="resampling scheme (a registered name); median: the paper's "
                                  "keep-the-top-half scheme, greedy only")
    resample_when: Literal["always", "ess", "times"] = setting(
        "ess", description="resample every level, under an ESS threshold, or at listed times")
    ess_threshold: float = setting(0.5, gt=0, le=1, description="resample when ESS < threshold · L")
    resample_times: Annotated[list[float], AfterValidator(_resample_times)] = setting(
        default_factory=list, description="fractions of the schedule in (0, 1) to resample at "
                                          "(level n resamples when n == round(f · T))")
    weighting: Literal["exact", "greedy"] = setting(
        "exact", description="exact: telescoping weights, output drawn from the weighted particles; "
                             "greedy: the paper's, particles ranked by their current reward, output the best")
    annealing: Literal["auto", "ais", "flow", "fk"] = setting(
        "auto", description="ais: exact annealed importance weights (analytic experts); flow: the paper's "
                            "Euler + MCMC path; fk: Feynman-Kac corrected SDE, exact from the experts' velocities "
                            "alone (as L grows and levels get finer; mcmc auto = none); auto: ais when possible, "
                            "else flow")
    fk_noise: float = setting(
        1.0, ge=0, le=1e6, description="annealing = fk: the SDE's noise η (0: the ODE along the velocity sum, "
                                       "weights only; 1: the reverse SDE; at most 1e6, far inside float64 for η²)")
    adaptive_temper: bool = setting(
        False, description="temper the reward weight by bisection on ESS (exact weighting); λ = 1 at the last level")
    init: Annotated[Any, AfterValidator(_init)] = setting(
        "noise", description="noise (the product at σ = 1), inversion (the flow-ODE inversion of invert), or "
                             "(engine only) a tensor [L, *shape] or [*shape] of particles at the first σ")
    invert: Any = setting(
        None, description="init = inversion: the canvas the particles start from, inverted along the product's "
                          "flow ([*shape] for all particles or [L, *shape] one each, in the experts' space)")
    invert_iters: int = setting(
        2, ge=0, le=100, description="fixed-point iterations per inversion step (0: plain Euler, the paper's)")
    path: Literal["joint", "autoregressive"] = setting(
        "joint", description="joint: anneal the whole canvas; autoregressive: a video chunk by chunk (paper App. C)")
    chunk: int = setting(
        1, ge=1, le=100_000, description="path = autoregressive: frames per chunk (latent frames with a video codec)")
    sim_updates: int = setting(
        0, ge=0, le=1000, description="gradient updates per level on the simulator experts' Gaussian loss "
                                      "(paper App. C: 8); a heuristic, so the run is on the flow path")
    sim_lambda: float = setting(0.5, gt=0, le=2, description="step of the simulator updates, relative to σ²")
    seed: int = setting(0, ge=0, description="random seed: the same program and seed give the same result")
    output: Literal["auto", "best", "all", "sample"] = setting(
        "auto", description="auto: sample for exact weighting, best for greedy; sample: num_samples draws from "
                            "the weighted particles")
    num_samples: int = setting(1, ge=1, le=1_000_000, description="draws from the weighted particles when output = sample")
    max_batch: Optional[int] = setting(
        None, ge=1, description="split expert calls into batches of at most this many particles (identical results "
                                "when an expert's output for one row does not depend on the batch size)")
    reward_moves: Union[Literal["auto"], bool] = setting(
        "auto", description="MALA/HMC accept on the rewards too, so moves leave the level's full "
                                           "target invariant (needs annealing = ais); auto: on when there are rewards")
    temper_ess: float = setting(0.5, gt=0, le=1,
                                description="adaptive_temper: the ESS fraction each level's tempering keeps")
    constraint_penalty: float = setting(
        2.0, gt=0, description="before the last level a reward of -inf counts as -constraint_penalty")
    sigma_min: float = setting(1e-3, gt=0, lt=1, description="clamp of σ in the score's denominator")
    keep_trace: Union[bool, Literal["scores"]] = setting(
        True, program=False, description="record x0_hat of every particle at every level; scores: all but x0_hat")
    dtype: Literal["float32", "float64"] = setting("float32", description="the particles' dtype")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SettingsError("invalid settings: " + "; ".join(describe_errors(e, values))) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise SettingsError("invalid settings: " + "; ".join(describe_errors(e, {name: value}))) from None

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (validated)."""
        return type(self)(**{**dict(self), **changes})

    @model_validator(mode="after")
    def _rules(self) -> "Settings":
        check_rules(self)
        return self


def program_fields() -> dict[str, str]:
    """The settings programs may write: program name → engine field name."""
    names = {}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra or {}
        if extra.get("program"):
            names[extra.get("program_name", name)] = name
    return names


def resolved_output(output: str, weighting: str) -> str:
    """``output = auto``: a draw from the weighted particles when exact, the best when greedy."""
    return output if output != "auto" else ("sample" if weighting == "exact" else "best")


def resolved_shift(shift: float | str, first_expert: Any = None) -> float:
    """``shift = auto``: the first expert's own preference (FLUX: exp(mu) of its token count), else 3."""
    if shift != "auto":
        return float(shift)
    return float(getattr(first_expert, "schedule_shift", 3.0))


class RuleError(ValueError):
    """A rule between settings was broken; ``settings`` are the engine names it concerns, the first to blame."""

    def __init__(self, message: str, *settings: str):
        super().__init__(message)
        self.settings = settings


def settings_blockers(s: Any) -> list[tuple[str, str]]:
    """What in the settings alone keeps the weighted particles from targeting the product exactly, each with
    the setting to blame (the problem adds soft masks and conditional experts: see ``plan.exactness_blockers``).
    ``annealing = ais`` refuses them (:func:`check_rules`); ``annealing = auto`` takes the flow path for them."""
    blockers = []
    if not isinstance(s.init, str):
        blockers.append(("init", "init is a given tensor"))
    elif s.init == "inversion":
        blockers.append(("init", "init is an inversion (the particles do not start from the product at sigma = 1)"))
    if s.sim_updates > 0:
        blockers.append(("sim_updates", "simulator updates (sim_updates) are on"))
    if isinstance(s.schedule, list) and s.schedule and s.schedule[0] != 1.0:
        blockers.append(("schedule", "the schedule does not start at sigma = 1"))
    if s.weighting != "exact":
        blockers.append(("weighting", "weighting is greedy"))
    if s.kernel == "langevin":
        blockers.append(("kernel", "kernel 'langevin' does not leave the product invariant"))
    return blockers


def ignored_settings(s: Any) -> list[tuple[str, str]]:
    """Settings that have no effect with the others as they are, each with why: a program that writes one
    is told (a warning), rather than left to think it changed the run. ``s`` has the engine's field names."""
    kernel_moves = s.kernel not in ("none",)
    rules = [
        ("num_samples", resolved_output(s.output, s.weighting) != "sample",
         "it counts the draws of output = sample"),
        ("target_accept", s.kernel in ("none", "langevin"), "it tunes the step of mcmc = mala or hmc"),
        ("hmc_leapfrog", s.kernel not in ("hmc",), "it is the number of leapfrog steps of mcmc = hmc"),
        ("step_size", not kernel_moves or s.mcmc_steps == 0, "there are no MCMC moves (mcmc = none or mcmc_steps = 0)"),
        ("chunk", s.path != "autoregressive", "it is the chunk size of path = autoregressive"),
        ("invert_iters", not (isinstance(s.init, str) and s.init == "inversion"), "it is used by init = inversion"),
        ("shift", s.schedule != "flux_shift", "it shifts schedule = flux_shift"),
        ("fk_noise", s.annealing != "fk", "it is the noise of annealing = fk"),
        ("sim_lambda", s.sim_updates == 0, "it is the step of sim_updates, which is 0"),
        ("temper_ess", not s.adaptive_temper, "it is the target of adaptive_temper"),
        ("ess_threshold", s.resample_when != "ess", "it is the threshold of resample_when = ess"),
    ]
    return [(name, why) for name, ignored, why in rules if ignored]


def check_rules(s: Any) -> None:
    """The rules between settings, each stated once. ``s`` has the engine's field names."""
    if s.annealing == "ais" and (blocked := settings_blockers(s)):
        raise RuleError("annealing='ais' is not possible: " + "; ".join(why for _, why in blocked),
                        blocked[0][0], "annealing")
    if s.resample_when == "times" and not s.resample_times:
        raise RuleError("resample_when = times needs resample_times", "resample_when")
    if s.resample == "median" and not s.resample_times:
        raise RuleError("resample = median (the paper's scheme) needs resample_times", "resample")
    if s.resample == "median" and s.weighting == "exact":
        raise RuleError("resample = median is greedy (biased); use it with weighting = greedy", "resample", "weighting")
    if s.adaptive_temper and s.weighting != "exact":
        raise RuleError("adaptive_temper needs weighting = exact", "adaptive_temper", "weighting")
    if s.reward_moves is True and (s.annealing in ("flow", "fk") or s.kernel in ("none", "langevin")):
        raise RuleError("reward_moves = true needs annealing = ais with mcmc = mala or hmc", "reward_moves")
    if isinstance(s.init, str) and s.init == "inversion" and s.invert is None:
        raise RuleError("init = inversion needs invert = <the image or video to invert>", "init")
    if s.invert is not None and not (isinstance(s.init, str) and s.init == "inversion"):
        raise RuleError("invert is used by init = inversion; add init = inversion", "invert")
    if s.path == "autoregressive" and not isinstance(s.init, str):
        raise RuleError("path = autoregressive starts every chunk from noise or an inversion: init must be "
                        "noise or inversion, not a tensor", "path", "init")
