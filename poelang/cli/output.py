"""What every command shares: colour only on a terminal, diagnostics on stderr, torch imported safely."""
from __future__ import annotations

import sys

import typer


def color() -> bool:
    """Colour diagnostics only when stderr is a terminal (never in a pipe or a CI log)."""
    return sys.stderr.isatty()


def print_diagnostics(program) -> None:
    """A program's diagnostics, GNU style, on stderr (nothing when there are none)."""
    if program.diagnostics:
        typer.echo(program.render_diagnostics(color=color()), err=True)


def import_torch() -> None:
    """Import torch and numpy now, with Ctrl-C held back until they are complete: an interrupt in the
    middle of their initialisation leaves half-made modules behind (and has crashed the process)."""
    from poelang.interrupts import held

    with held():
        import numpy
        import torch

        numpy.ndarray, torch.Tensor  # noqa: B018 - a module made by poelang._lazy loads on first attribute access
