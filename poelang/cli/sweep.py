"""`poelang sweep`: a program once per row of a table, every row checked before any model loads."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from poelang.cli.app import app
from poelang.cli.output import color

@app.command()
def sweep(
    file: Path = typer.Argument(..., help="the .poe program"),
    table: Path = typer.Argument(..., help="a .csv or .jsonl table: a column per parameter or setting, optional id"),
    out_dir: Path = typer.Option(..., "-o", "--output", help="folder for each row's outputs, manifest.jsonl, index.html"),
    resume: bool = typer.Option(False, "--resume", help="skip rows already done with the same program and row"),
    backend: str = typer.Option("local", "--backend", help="local (processes on this machine) or ray"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="worker processes on the CPU (local), actors (ray)"),
    devices: Optional[str] = typer.Option(None, "--devices", help="one worker per device: cpu or cuda:0,cuda:1 (local); cuda (ray: one per GPU)"),
    address: Optional[str] = typer.Option(None, "--address", help="the Ray cluster to join (ray start's address); default: start Ray here"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads per worker (default: cores / workers locally, 1 per Ray CPU actor)"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="no progress bar"),
) -> None:
    """Run FILE once per row of TABLE; every row is checked before any model loads."""
    from poelang.sweeps import check_sweep, run_sweep

    if backend not in ("local", "ray"):
        raise typer.BadParameter("use local or ray", param_hint="--backend")
    if devices and workers:
        raise typer.BadParameter("give --devices or --workers, not both", param_hint="--workers")
    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if out_dir.exists() and not out_dir.is_dir():
        raise typer.BadParameter(f"{out_dir} is a file; give a folder (created if missing)", param_hint="-o")
    if backend == "local":
        from poelang.devices import device_problem

        for device in device_list or ():
            problem = device_problem(device)
            if problem:
                raise typer.BadParameter(f"{device}: {problem}", param_hint="--devices")
    plan = check_sweep(file, table)
    if plan.diagnostics:
        typer.echo(plan.render(color=color()), err=True)
    if not plan.ok:
        bad = len({d.span.line for d in plan.diagnostics if d.severity == "error" and d.span.file == str(table)})
        what = f"{table}: {bad} bad row{'s' * (bad != 1)}" if bad else f"{file}: the program has errors"
        typer.echo(f"{what}; nothing was run", err=True)
        raise typer.Exit(1)
    try:
        records = run_sweep(plan, out_dir, backend=backend, workers=workers, devices=device_list, address=address,
                            resume=resume, progress=not quiet, threads=threads)
    except KeyboardInterrupt:
        typer.echo(f"finished rows are in {out_dir / 'manifest.jsonl'}: run again with --resume "
                   "to do the rest", err=True)
        raise typer.Exit(130)
    except RuntimeError as e:  # Ray missing or unreachable, a worker that cannot start
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    except OSError as e:  # the output folder cannot be made or written
        typer.echo(f"error: cannot write in {out_dir}: {e.strerror or e}", err=True)
        raise typer.Exit(1)
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        typer.echo(f"row {r['id']} failed:\n{r['error']}", err=True)
    typer.echo(f"{len(records) - len(failed)} of {len(plan.jobs)} rows ok; {out_dir / 'index.html'}")
    if failed:
        raise typer.Exit(1)
