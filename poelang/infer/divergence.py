"""Runaway moves: divergence blamed on the setting that sized the step.

Every move of a level is sized by one setting: the MCMC kernel's
``step_size``, the conditional updates' ``cond_lambda``, the simulator
updates' ``sim_lambda``, the fk transport's ``fk_noise``, the inversion's
fixed point (``invert_iters``). A step too large for the product does not
fail where it is taken: it throws the particles out (to NaN/inf, or so far
that an expert fails there), and the first thing to notice is the next
expert call. Blaming that expert would send the user looking in the wrong
place, so the sampler remembers the last move and how far out the particles
were before it (:class:`Move`), and :func:`blame` decides:

* particles that a move made non-finite: the move's setting;
* an expert that fails on particles at least :data:`RUNAWAY` times farther
  out than they were before the last move (and than 1): the move's setting;
* anything else: the expert, as it said.

Exponents that overflow the product's sums are caught where the sums are
formed (:func:`check_overflow`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import Divergence, NonFiniteOutput

Tensor = torch.Tensor

RUNAWAY = 1e3  # how many times farther out than before the move (and than |x| = 1) counts as thrown out

_ADVICE = {
    "step_size": "lower step_size",
    "cond_lambda": "lower cond_lambda (its step is in the experts' units: narrow experts need a small one)",
    "sim_lambda": "lower sim_lambda",
    "fk_noise": "lower fk_noise, or add levels",
    "invert_iters": "add levels (the fixed point converges when the level spacing times the velocity's slope "
                    "is below 1), or set invert_iters = 0",
    "levels": "add levels",
}


def largest(x: Tensor) -> float:
    """max |x| (inf when x holds NaN or inf; 0 when empty)."""
    if x.numel() == 0:
        return 0.0
    if not bool(torch.isfinite(x).all()):
        return math.inf
    return float(x.detach().abs().max())


@dataclass(frozen=True)
class Move:
    """The last move of the particles: the setting that sized it and how far out they were before."""

    setting: str  # the engine's name (all the blamed settings have the same name in programs)
    what: str  # "the langevin move"
    value: float
    before: float  # max |x| before the move

    def diverged(self, where: str, happened: str) -> Divergence:
        value = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return Divergence(f"the sampler diverged at {where} after {self.what} ({self.setting} = {value}): "
                          f"{happened}; {_ADVICE.get(self.setting, f'lower {self.setting}')}", setting=self.setting)

    def check(self, x: Tensor, where: str) -> None:
        """Particles the move made non-finite are its setting's fault."""
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(dim=1).sum())
            raise self.diverged(where, f"{bad} of {x.shape[0]} particles became NaN/inf")


def blame(move: Move | None, error: NonFiniteOutput) -> Exception:
    """The error to report for an expert's NaN/inf: the last move's setting when the move threw the
    particles out, else the expert's own message."""
    if move is None or math.isinf(move.before) or not error.input_scale >= RUNAWAY * max(move.before, 1.0):
        return error  # (particles already non-finite before the move came from its input, not from the move)
    scale = "NaN/inf" if math.isinf(error.input_scale) else f"|x| = {error.input_scale:.3g}"
    return move.diverged(error.where, f"it threw the particles from |x| ≤ {move.before:.3g} out to {scale}, "
                                      f"where {error.what}")


def check_overflow(field, sums, lp: Tensor | None, zero: Tensor) -> None:
    """Every expert's output was finite (the field checks each call); a non-finite weighted sum of them
    (``sums``, the log density ``lp`` where no expert gave zero density) is the exponents' doing: a_i times
    a velocity or a log density beyond the dtype's range."""
    finite = all(t is None or bool(torch.isfinite(t).all()) for t in sums)
    if finite and (lp is None or bool((torch.isfinite(lp) | zero).all())):
        return
    kind = str(field.dtype).removeprefix("torch.")
    i = max(range(len(field.factors)), key=lambda k: abs(float(field.factors[k].exponent)))
    a = float(field.factors[i].exponent)
    if abs(a) <= 1:
        raise Divergence(f"the product of the experts' outputs overflowed {kind} at {field.where}; "
                         "use dtype = float64")
    raise Divergence(f"the exponent {a:g} of '{field.names[i]}' overflows {kind} at {field.where}: "
                     f"{a:g} times its velocity or log density is beyond {kind}'s range; use a smaller "
                     "exponent, or dtype = float64", factor=field.names[i])
