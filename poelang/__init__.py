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
from poelang.diagnostics import Diagnostic, PoeError
from poelang.graph import Graph
from poelang.infer.errors import StopSampling
from poelang.program import Program, load, parse
from poelang.results import LevelCallback, RunResult
from poelang.sweeps import sweep

__all__ = ["Diagnostic", "Graph", "LevelCallback", "PoeError", "Program", "RunResult", "StopSampling", "load", "parse",
           "sweep"]
from poelang.version import __version__  # noqa: E402
