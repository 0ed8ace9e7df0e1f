"""The registry of experts and builtin functions: poelang's core builtins plus every plugin.

Plugins, the standard library among them, register through entry points
(:mod:`poelang.experts.plugins`): the group ``poelang.experts`` names
:class:`ExpertSpec` objects, ``poelang.builtins`` :class:`FunctionSpec`
objects. Reading the registry imports only signature modules, never torch.
"""
from __future__ import annotations

import functools

from poelang.experts.plugins import entry_points
from poelang.experts.spec import ExpertSpec, FunctionSpec


class Registry:
    def __init__(self) -> None:
        from poelang.builtins import CORE_BUILTINS

        self.experts: dict[str, ExpertSpec] = {}
        self.builtins: dict[str, FunctionSpec] = dict(CORE_BUILTINS)
        self.problems: list[str] = []  # plugins that failed to load, shown by `poelang experts`

    def register(self, spec: ExpertSpec | FunctionSpec) -> None:
        table = self.builtins if isinstance(spec, FunctionSpec) else self.experts
        if spec.name in self.experts or spec.name in self.builtins:
            self.problems.append(f"'{spec.name}' is registered twice; keeping the first")
            return
        table[spec.name] = spec

    def get(self, name: str) -> ExpertSpec | None:
        return self.experts.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.experts

    def names(self) -> list[str]:
        return sorted(self.experts)

    def load_plugins(self, group: str, kind: type) -> None:
        for ep in entry_points(group):
            try:
                specs = _specs_of(ep.load(), kind)
            except Exception as e:  # a broken plugin must not break every program
                self.problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {e}")
                continue
            for spec in specs:
                self.register(spec)


def _specs_of(obj, kind: type) -> list:
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, kind):
        return [obj]
    if isinstance(obj, (list, tuple)) and all(isinstance(o, kind) for o in obj):
        return list(obj)
    raise TypeError(f"expected {'an' if kind.__name__[0] in 'AEIOU' else 'a'} {kind.__name__} or a list of them, "
                    f"got {type(obj).__name__}")


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    registry = Registry()
    registry.load_plugins("poelang.experts", ExpertSpec)
    registry.load_plugins("poelang.builtins", FunctionSpec)
    return registry
