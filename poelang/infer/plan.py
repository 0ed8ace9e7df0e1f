"""What a run really is: the annealing path, kernel and output chosen from the
settings (the 'auto' ones resolved), and what its output is exact for.

:func:`resolve_plan` is the one place these choices are made; the sampler
follows the :class:`Plan` and records it in ``Result.plan``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from .errors import SettingsError
from .product import ProductField
from .protocol import Problem
from .settings import Settings, resolved_output, settings_blockers

Tensor = torch.Tensor


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
    blockers.extend(why for _, why in settings_blockers(s))
    if float(sigmas[0]) != 1.0 and not isinstance(s.schedule, list):  # a named schedule that does not start at 1
        blockers.append("the schedule does not start at sigma = 1")
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
