"""Which models a program needs and whether they are on this machine: all of them at once, before anything loads.

Each expert's signature states the models its loader reads, given its
arguments (:attr:`poelang.experts.spec.ExpertSpec.weights`); this module only
asks them. ``poelang check --weights`` prints the list; ``poelang run`` (and
:meth:`Program.run`) stops before simulating or loading when any is missing,
with one diagnostic per missing model, each with the command that fetches it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from poelang import graph as g
from poelang.diagnostics import Diagnostic, Span
from poelang.experts.registry import default_registry
from poelang.experts.spec import Weights


@dataclass
class Need:
    """One model and the experts of the program that load it."""

    weights: Weights
    experts: list[str] = field(default_factory=list)  # expert node ids

    @property
    def missing(self) -> bool:
        return self.weights.found is None


def needs(program) -> list[Need]:
    """Every model the program's experts read, in the order they appear, each once."""
    registry = default_registry()
    found: dict[str, Need] = {}
    for node in program.graph.experts:
        spec = registry.get(node.expert)
        if spec is None or spec.weights is None:
            continue
        args = {name: _constant(value) for name, value in node.args.items()}
        for weights in spec.weights(args, program.base_dir):
            found.setdefault(weights.model, Need(weights)).experts.append(node.id)
    return list(found.values())


def _constant(value: g.ArgValue) -> Any:
    """An argument as a plain value; None where it is computed at run time (a reference, a quantity)."""
    if isinstance(value, (g.Ref, g.Quantity)):
        return None
    if isinstance(value, list):
        return [_constant(v) for v in value]
    return value


def missing_diagnostics(program, found: list[Need]) -> list[Diagnostic]:
    """One error per missing model that its loader will not download, at the first expert that loads it."""
    diagnostics = []
    for need in found:
        if need.missing and not need.weights.downloads:
            span = program.spans.get(need.experts[0]) or Span(program.file, 0, 0, 0, 0)
            users = ", ".join(f"'{e}'" for e in need.experts)
            diagnostics.append(Diagnostic("error", f"model '{need.weights.model}' (for {users}) is not on this "
                                                   f"machine; fetch it with `{need.weights.fetch}`", span))
    return diagnostics


def report(found: list[Need]) -> str:
    """A line per model (present or missing, the experts using it, where it is), then how to fetch the missing."""
    if not found:
        return "needs no model weights\n"
    width = max(len(n.weights.model) for n in found)
    lines = [f"needs {len(found)} model{'s' if len(found) > 1 else ''}:"]
    for n in found:
        where = n.weights.found or ("will be downloaded by the run" if n.weights.downloads else "")
        lines.append(f"  {'missing' if n.missing else 'present':8} {n.weights.model:{width}}  "
                     f"for {', '.join(n.experts)}" + (f"  ({where})" if where else ""))
    fetch = [n.weights.fetch for n in found if n.missing]
    if fetch:
        lines += [f"{len(fetch)} of {len(found)} missing; fetch {'them' if len(fetch) > 1 else 'it'} with:"]
        lines += [f"  {command}" for command in fetch]
    return "\n".join(lines) + "\n"
