"""Errors raised by the inference engine.

The engine stops instead of silently repairing bad input (diffusers'
"simple over easy"): every message names what failed -- the expert, the
reward, the level and its noise level sigma -- so the interpreter can show it
to the user without a traceback.
"""
from __future__ import annotations


class SamplerError(RuntimeError):
    """A run that cannot continue: non-finite expert output, every particle
    rejected, a problem that does not fit together."""


class SettingsError(SamplerError, ValueError):
    """Settings that are invalid on their own or for the given problem."""
