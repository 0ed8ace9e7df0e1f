"""Errors raised by the inference engine.

The engine stops instead of silently repairing bad input (diffusers'
"simple over easy"): every message names what failed -- the expert, the
reward, the level and its noise level sigma -- so the interpreter can show it
to the user without a traceback.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class SamplerError(RuntimeError):
    """A run that cannot continue: non-finite expert output, every particle
    rejected, a problem that does not fit together."""


class SettingsError(SamplerError, ValueError):
    """Settings that are invalid on their own or for the given problem."""


class NonFiniteOutput(SamplerError):
    """An expert returned NaN/inf. ``input_scale`` is the largest |x| among the particles it failed on
    (inf when they were not finite): how the sampler tells an expert's fault from a runaway move's."""

    def __init__(self, what: str, where: str, input_scale: float) -> None:
        super().__init__(f"{what} at {where}")
        self.what, self.where, self.input_scale = what, where, input_scale


class Divergence(SamplerError):
    """A setting that sizes a move (``setting``: the engine's name) sent the particles to NaN/inf, or so far
    out that an expert failed there; or (``factor``: a factor's name) an exponent overflowed the product."""

    def __init__(self, message: str, setting: str | None = None, factor: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.factor = factor


class StopSampling(Exception):
    """Raised by a level callback (or signalled by it returning False) to end a run early.

    The sampler finishes at the level reached: the result holds the particles
    as they are after that level (still noisy unless it was the last) and
    ``Result.stopped_at`` names the level.
    """


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or an empty string when nothing is close."""
    meant = closest(word, candidates)
    return f" (did you mean '{meant}'?)" if meant else ""
