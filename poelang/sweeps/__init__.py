"""Sweeps: one program run once per row of a table, on workers that keep their experts loaded.

    >>> import poelang
    >>> records = poelang.sweep("programs/mini/captioned.poe",
    ...                         [{"caption": "two red cubes", "seed": 1}, {"caption": "a blue sphere", "seed": 2}],
    ...                         "out/")                                                     # doctest: +SKIP

The table's columns are the program's parameters and sampler settings (and an
optional `id`); every row is checked before any model loads. Each row's files
go to OUTDIR/<id>/, its record to OUTDIR/manifest.jsonl, and OUTDIR/index.html
shows them all. See docs/sweep.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from poelang.diagnostics import PoeError
from poelang.sweeps.dispatch import DEFAULT_ATTEMPTS
from poelang.sweeps.manifest import Manifest, done_ids
from poelang.sweeps.plan import Plan, plan_sweep, rows_from_python
from poelang.sweeps.progress import ProgressReporter, SweepProgress
from poelang.sweeps.table import Table, read_table

__all__ = ["SweepError", "SweepProgress", "check_sweep", "run_sweep", "sweep"]


class SweepError(PoeError):
    """The program or the table has mistakes: nothing was run."""


def check_sweep(program: str | Path, rows: str | Path | Iterable[Mapping[str, Any]]) -> Plan:
    """Read the table and check every row against the program; loads no model."""
    if isinstance(rows, (str, Path)):
        table, errors = read_table(rows)
        if table is None:
            table = Table(str(rows), "", [])
    else:
        table, errors = rows_from_python(rows), []
    return plan_sweep(Path(program), table, errors)


def sweep(program: str | Path, rows: str | Path | Iterable[Mapping[str, Any]], out_dir: str | Path, *,
          backend: str = "local", workers: int | None = None, devices: list[str] | None = None,
          address: str | None = None, resume: bool = False, progress: bool = False,
          callback: Callable[[SweepProgress], None] | None = None, attempts: int = DEFAULT_ATTEMPTS,
          on_start: Callable[[str, int], None] | None = None, stall_timeout: float | None = None,
          threads: int | None = None) -> list[dict[str, Any]]:
    """Run `program` once per row (a .csv/.jsonl path, or dicts) into `out_dir`; returns each row's
    manifest record, in the table's order. Raises SweepError, before anything loads, when a row is bad.

    `backend` is "local" (one process per device in `devices`, or `workers` on the CPU) or "ray"
    (actors on the cluster at `address`, or on a Ray started here; `devices=["cuda"]` puts one per GPU).
    `progress` draws a bar on stderr; `callback` gets a SweepProgress after every row. A worker that
    dies mid-row is replaced and its row run again, up to `attempts` times; `on_start(row id, worker pid)`
    is told when a worker takes a row. `stall_timeout` (Ray): fail when no row finishes for that long.
    `threads`: torch threads per worker (default: the cores shared evenly locally, 1 per Ray CPU actor).
    """
    plan = check_sweep(program, rows)
    if not plan.ok:
        raise SweepError(plan.diagnostics, plan.sources)
    return run_sweep(plan, out_dir, backend=backend, workers=workers, devices=devices, address=address,
                     resume=resume, progress=progress, callback=callback, attempts=attempts, on_start=on_start,
                     stall_timeout=stall_timeout, threads=threads)


def run_sweep(plan: Plan, out_dir: str | Path, *, backend: str = "local", workers: int | None = None,
              devices: list[str] | None = None, address: str | None = None, resume: bool = False,
              progress: bool = False, callback: Callable[[SweepProgress], None] | None = None,
              attempts: int = DEFAULT_ATTEMPTS, on_start: Callable[[str, int], None] | None = None,
              stall_timeout: float | None = None, threads: int | None = None) -> list[dict[str, Any]]:
    """Run a checked plan (see :func:`sweep`)."""
    from poelang.sweeps.gallery import write_gallery

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir)
    skip = done_ids(manifest.records(), plan.jobs) if resume else set()
    jobs = [j for j in plan.jobs if j.id not in skip]
    program_file = Path(plan.program_file)
    runner_args = {"source": program_file.read_text(encoding="utf-8"), "file": str(program_file),
                   "base_dir": str(program_file.parent), "out_dir": str(out_dir.resolve())}
    reporter = ProgressReporter(len(jobs), len(skip), progress, callback)

    def on_record(record: dict) -> None:
        manifest.append(record)
        reporter.record(record)

    try:
        if jobs:
            _run_backend(backend, jobs, runner_args, on_record, workers, devices, address, attempts, on_start,
                         stall_timeout, threads)
    finally:
        reporter.close()
        latest = manifest.latest()
        records = [latest[j.id] for j in plan.jobs if j.id in latest]
        write_gallery(out_dir, records, f"{program_file.name}: {len(records)} rows")
    return records


def _run_backend(backend, jobs, runner_args, on_record, workers, devices, address, attempts, on_start,
                 stall_timeout, threads) -> None:
    if backend == "local":
        from poelang.sweeps.local import run_local

        if devices and workers:
            raise ValueError("give either devices or workers, not both")
        run_local(jobs, runner_args, devices or ["cpu"] * (workers or 1), on_record, attempts, on_start, threads)
    elif backend == "ray":
        from poelang.sweeps.ray_backend import run_ray

        gpus = bool(devices) and any(d.startswith("cuda") for d in devices)
        run_ray(jobs, runner_args, on_record, address=address, workers=workers, gpus=gpus, attempts=attempts,
                on_start=on_start, stall_timeout=stall_timeout, threads=threads)
    else:
        raise ValueError(f"unknown backend '{backend}'; use local or ray")
