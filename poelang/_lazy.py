"""Lazy imports, so that `poelang check` never pays for torch.

Expert files import ``torch`` through :func:`lazy_import`; the real import
happens on first attribute access, which only ``run`` reaches.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def lazy_import(name: str) -> types.ModuleType:
    """Return module ``name``, loaded on first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        # Let the real import raise its usual error when used.
        return importlib.import_module(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
