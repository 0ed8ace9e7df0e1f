"""The example programs and their assets, for an installed poelang as for a checkout.

A wheel installs ``programs/`` as the data package ``poelang._examples``
(see setup.py); a checkout reads ``programs/`` beside the ``poelang``
package. ``poelang examples`` lists them, ``poelang examples copy DIR`` copies
them (assets included, so their relative paths keep working) to run or edit.
"""
from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["root", "programs", "copy"]


def root() -> Path:
    """The folder holding the example programs."""
    import importlib.util

    spec = importlib.util.find_spec("poelang._examples")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "quickstart.poe").is_file():
                return Path(location)
    return Path(__file__).resolve().parent.parent / "programs"


def programs() -> list[Path]:
    """Every example program, relative to :func:`root`."""
    base = root()
    return sorted(p.relative_to(base) for p in base.rglob("*.poe"))


def copy(destination: Path, *, force: bool = False) -> list[Path]:
    """Copy the programs and their assets into `destination`; returns the files written.

    Files that exist already are left alone (FileExistsError names them) unless `force`.
    """
    base = root()
    files = sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    targets = [destination / p.relative_to(base) for p in files]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        shown = ", ".join(str(t) for t in existing[:3]) + (" …" if len(existing) > 3 else "")
        raise FileExistsError(f"{len(existing)} file{'s' if len(existing) != 1 else ''} exist already: {shown}")
    for source, target in zip(files, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return targets
