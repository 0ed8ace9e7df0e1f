"""Running one row, in whatever process holds the worker: a local process or a Ray actor.

A :class:`RowRunner` lives as long as its worker. It lowers each row's
program (milliseconds) and runs it; the weights, shared components and prompt
embeddings the experts load are cached in the process (``poelang.stdlib.hub``,
the FLUX adapters' prompt cache), so only a worker's first row pays for them.
A failing row (a NaN, a missing file, an expert that cannot load) becomes a
manifest record with its diagnostic; the worker goes on with the next row.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from poelang.sweeps.plan import Job


class RowRunner:
    def __init__(self, source: str, file: str, base_dir: str, out_dir: str, device: str = "cpu",
                 threads: int | None = None):
        if threads:  # torch's threads for this worker (workers sharing a machine share its cores)
            import torch

            torch.set_num_threads(threads)
        self.source, self.file, self.base_dir = source, file, base_dir
        self.out_dir = Path(out_dir)
        self.device = device
        self.name = f"{socket.gethostname()}:{os.getpid()}:{device}"

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: Job, attempt: int = 1) -> dict[str, Any]:
        """The row's manifest record; never raises for a failure of the row itself."""
        from poelang.version import __version__
        from poelang.diagnostics import PoeError
        from poelang.interpreter import Interpreter
        from poelang.program import compile_source

        started = time.perf_counter()
        record: dict[str, Any] = {
            "id": job.id, "row": job.number, "status": "failed", "outputs": [], "seed": None,
            "params": {}, "settings": {}, "given": job.given, "scores": {}, "program_hash": job.program_hash,
            "row_hash": job.row_hash, "poelang": __version__, "seconds": 0.0, "error": None,
            "worker": self.name, "attempt": attempt,
        }
        row_dir = self.out_dir / job.id
        try:
            program = compile_source(self.source, self.file, base_dir=self.base_dir, params=job.params,
                                     settings=job.settings)
            program.raise_for_errors()
            _describe_row(program.graph, job, record)
            result = Interpreter(program, self.device).run(output_dir=str(row_dir), every_sample=True)
            record["outputs"] = [_relative(p, self.out_dir) for p in result.written]
            record["scores"] = {name: _output_scores(r) for name, r in result.samples.items()}
            record["status"] = "ok"
        except PoeError as e:
            record["error"] = e.render(color=False)
        except Exception as e:  # a defect, not the row's mistake: keep the sweep going, say where it happened
            frame = traceback.extract_tb(e.__traceback__)[-1]
            record["error"] = f"internal error: {type(e).__name__}: {e} ({Path(frame.filename).name}:{frame.lineno})"
        record["seconds"] = round(time.perf_counter() - started, 3)
        return record


def _describe_row(graph, job: Job, record: dict) -> None:
    record["params"] = {p.id: p.value for p in graph.params}
    if graph.samples:
        settings = graph.samples[0].settings.model_dump(mode="json")
        record["seed"] = settings["seed"]
        record["settings"] = {s.name: settings[s.name] for _, s in job.settings if s.name in settings}


def _output_scores(result) -> list[float]:
    """The scores of the samples the result chose (rewards; 0 without any), rounded for the manifest."""
    scores = result.scores
    if getattr(result, "output_indices", None) is not None and result.output_indices.numel():
        scores = scores[result.output_indices]
    return [round(float(s), 6) for s in scores.flatten()[:64]]


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
