"""Entry points: how the standard library and third-party packages add experts and builtins.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."poelang.experts"]
    mine = "my_package.experts:EXPERTS"      # an ExpertSpec or a list of them
    [project.entry-points."poelang.builtins"]
    mine = "my_package.builtins:BUILTINS"    # a FunctionSpec, a list or a name → spec dict

poelang's own standard library (``poelang.stdlib``, the repository's ``stdlib_experts/``) registers itself the same
way. Installed metadata is read as usual; when poelang runs from a source
checkout (a development tree on ``PYTHONPATH``, say), the entry points that
checkout's ``pyproject.toml`` declares stand for the installed ``poelang``
distribution's, which may be older than the code that runs. The library's
modules themselves (``poelang.stdlib``) are found through the install's
``package_dir`` mapping, which points at the installed checkout's
``stdlib_experts/``: to change the library, install that checkout
(``pip install -e .``).
"""
from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

GROUPS = ("poelang.experts", "poelang.builtins")
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def entry_points(group: str) -> list[metadata.EntryPoint]:
    """The entry points of ``group``: third-party packages' and poelang's own (see the module doc)."""
    own = _checkout_entry_points(group)
    installed = metadata.entry_points(group=group)
    if own is None:
        return list(installed)
    return [ep for ep in installed if not _is_poelang(ep)] + own


def _is_poelang(ep: metadata.EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name == "poelang"


def _checkout_entry_points(group: str) -> list[metadata.EntryPoint] | None:
    """What the running checkout declares, or None when poelang runs from an installed copy."""
    if not _PYPROJECT.is_file():
        return None
    import tomllib

    try:
        project = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if project.get("name") != "poelang":
        return None
    declared = project.get("entry-points", {}).get(group, {})
    return [metadata.EntryPoint(name, value, group) for name, value in declared.items()]
