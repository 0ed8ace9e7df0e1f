"""The expert registry: the standard library plus third-party plugins.

Plugins register under the entry-point group ``poelang.experts``; each entry
point names an :class:`ExpertSpec` or a list of them. Reading the registry
imports only signature modules, never torch.
"""
from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from poelang.experts.spec import ExpertSpec

ENTRY_POINT_GROUP = "poelang.experts"
STDLIB_MODULES = (
    "stdlib_experts.analytic_experts",
    "stdlib_experts.flux",
    "stdlib_experts.vlm",
    "stdlib_experts.mini_experts",
    "stdlib_experts.wan",
)


class Registry:
    def __init__(self) -> None:
        self.experts: dict[str, ExpertSpec] = {}
        self.problems: list[str] = []  # plugins that failed to load, shown by `poelang experts`

    def register(self, spec: ExpertSpec) -> None:
        if spec.name in self.experts:
            self.problems.append(f"expert '{spec.name}' is registered twice; keeping the first")
            return
        self.experts[spec.name] = spec

    def get(self, name: str) -> ExpertSpec | None:
        return self.experts.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.experts

    def names(self) -> list[str]:
        return sorted(self.experts)


def _specs_of(obj) -> list[ExpertSpec]:
    if isinstance(obj, ExpertSpec):
        return [obj]
    if isinstance(obj, (list, tuple)) and all(isinstance(o, ExpertSpec) for o in obj):
        return list(obj)
    raise TypeError(f"expected an ExpertSpec or a list of them, got {type(obj).__name__}")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    registry = Registry()
    for module_name in STDLIB_MODULES:
        module = importlib.import_module(module_name)
        for spec in module.EXPERTS:
            registry.register(spec)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value.split(":")[0] in STDLIB_MODULES:
            continue
        try:
            for spec in _specs_of(ep.load()):
                registry.register(spec)
        except Exception as e:  # a broken plugin must not break every program
            registry.problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {e}")
    return registry
