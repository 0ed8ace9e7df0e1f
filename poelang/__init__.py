"""poelang: a language for composing visual generative experts at inference time.

    >>> import poelang
    >>> program = poelang.parse('x ~ gaussian(mean=[1.0, 2.0])')
    >>> program.ok
    True

The front doors are :func:`parse` and :func:`load` (text or a file → a checked
:class:`Program`), the ``poelang`` command line, and :mod:`poelang.build` for
building the same graphs with Python operators. :meth:`Program.run` returns a
:class:`RunResult` (tensors, PIL images, video frames); docs/python-api.md
describes the per-level callback and :class:`StopSampling`. :func:`sweep` runs a
program once per row of a table (docs/sweep.md).
"""
from __future__ import annotations

from poelang.version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `poelang` starts before Ctrl-C is caught
if TYPE_CHECKING:
    from typing import Any

    from poelang.diagnostics import Diagnostic, PoeError
    from poelang.graph import Graph
    from poelang.infer.errors import StopSampling
    from poelang.program import Program, load, parse
    from poelang.results import LevelCallback, RunResult
    from poelang.sweeps import sweep

__all__ = ["Diagnostic", "Graph", "LevelCallback", "PoeError", "Program", "RunResult", "StopSampling", "load", "parse",
           "sweep"]

# Imported on first use (PEP 562), so that `poelang`'s executable can catch Ctrl-C before pydantic and lark load.
_HOMES = {"Diagnostic": "poelang.diagnostics", "PoeError": "poelang.diagnostics", "Graph": "poelang.graph",
          "StopSampling": "poelang.infer.errors", "Program": "poelang.program", "load": "poelang.program",
          "parse": "poelang.program", "LevelCallback": "poelang.results", "RunResult": "poelang.results",
          "sweep": "poelang.sweeps"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'poelang' has no attribute '{name}'")
    from importlib import import_module

    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
