"""What every written output says about how it was made: poelang's version, the program's hash, seed and settings.

The program hash is the SHA-256 of its canonical graph JSON (what
``poelang graph FILE`` prints for the program as run, ``--set`` overrides
included), so reformatting or commenting a program does not change it. The
record holds nothing that varies between two runs of the same program and
seed (no time, no absolute path): outputs stay byte-identical.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def version() -> str:
    """The installed poelang's version (the source tree's when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("poelang")
    except PackageNotFoundError:
        from poelang.version import __version__

        return __version__


def program_hash(graph) -> str:
    return hashlib.sha256(graph.to_json().encode()).hexdigest()


def record(program, sample_id: str | None = None) -> dict[str, Any]:
    """The provenance of one output; ``sample_id``: the sample it shows (None: a value such as a simulation)."""
    graph = program.graph
    samples = {s.id: s for s in graph.samples}
    out: dict[str, Any] = {"poelang": version(), "program": Path(program.file).name,
                           "program_sha256": program_hash(graph)}
    if sample_id in samples:
        settings = samples[sample_id].settings.model_dump(mode="json")
        out.update(sample=sample_id, seed=settings["seed"], settings=settings)
    else:
        out["seeds"] = {s.id: s.settings.seed for s in graph.samples}
    return out
