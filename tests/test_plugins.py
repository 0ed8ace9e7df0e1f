"""Experts and builtins arrive through entry points; the standard library is registered like any plugin."""
from __future__ import annotations

from poelang.experts import plugins
from poelang.experts.registry import Registry, default_registry
from poelang.experts.spec import ExpertSpec, FunctionSpec


def test_the_standard_library_registers_through_its_entry_points():
    values = {ep.value for ep in plugins.entry_points("poelang.experts")}
    assert "poelang.stdlib.flux:EXPERTS" in values
    registry = default_registry()
    assert {"gaussian", "flux", "vqascore"} <= set(registry.names())
    assert {"load_image", "blur"} <= set(registry.builtins)  # the core's
    assert {"sphere", "simulate", "render"} <= set(registry.builtins)  # the standard library's
    assert registry.problems == []


def test_a_checkout_declares_its_own_entry_points(tmp_path, monkeypatch):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "poelang"\n[project.entry-points."poelang.builtins"]\n'
                         'broken = "no_such_module:BUILTINS"\n', encoding="utf-8")
    monkeypatch.setattr(plugins, "_PYPROJECT", pyproject)
    assert [ep.value for ep in plugins.entry_points("poelang.builtins")] == ["no_such_module:BUILTINS"]
    registry = Registry()
    registry.load_plugins("poelang.builtins", FunctionSpec)
    assert registry.problems == ["plugin 'broken' (no_such_module:BUILTINS) failed to load: No module named 'no_such_module'"]
    assert "load_image" in registry.builtins  # a broken plugin breaks nothing else
    registry.load_plugins("poelang.experts", ExpertSpec)  # the group this checkout leaves out: no experts from it
    assert registry.names() == []
