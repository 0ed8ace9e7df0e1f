"""`poelang run`: check a program, sample every `~` statement, write the outputs (`--json`: a summary)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from poelang.cli.app import app
from poelang.cli.output import color, import_torch, print_diagnostics

def _parse_sets(sets: List[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        if key.strip() in overrides and overrides[key.strip()] != value.strip():
            raise typer.BadParameter(f"{key.strip()} is set twice ({overrides[key.strip()]} and {value.strip()})",
                                     param_hint="--set")
        overrides[key.strip()] = value.strip()
    return overrides


def _parse_params(items: List[str]) -> list:
    from poelang.params import from_command_line

    params = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise typer.BadParameter(f"expected name=value, got {item!r}", param_hint="--param")
        params.append(from_command_line(key.strip(), value))
    return params


@app.command()
def run(
    file: Path = typer.Argument(..., help="the .poe program"),
    out_dir: Path = typer.Option(Path("."), "-o", "--out-dir", help="the output directory: save paths resolve against it"),
    output: Optional[Path] = typer.Option(None, "--output", help="save the (first) sample to this file instead of its save path"),
    set_: List[str] = typer.Option([], "--set", help="override a sampler setting: key=value, or sample.key=value"),
    param: List[str] = typer.Option([], "--param", help="give a program parameter a value: name=value "
                                    "(text needs no quotes: --param prompt='three dogs')"),
    seed: Optional[int] = typer.Option(None, "--seed", help="base random seed (overrides the program's); each sample draws from its own stream derived from it and the sample's name"),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu, cuda, cuda:1"),
    trace: Optional[Path] = typer.Option(None, "--trace", help="write the per-level trace (PNG contact sheet + HTML) here"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="only errors and the 'wrote …' lines"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="also loading details: sizes in MiB, placement"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout (outputs, seeds, settings, "
                                 "plans, timings) instead of the 'wrote' lines"),
    allow_outside: bool = typer.Option(False, "--allow-outside", help="let save paths leave the output directory (absolute or ../ paths)"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="let model folders run their own Python code (transformers' trust_remote_code); only for models you trust"),
) -> None:
    """Check FILE, then sample every `~` statement and write its outputs.

    Progress goes to stderr; stdout carries only the "wrote PATH" lines.
    """
    from poelang import progress
    from poelang.program import load

    if quiet and verbose:
        raise typer.BadParameter("choose one of -q and -v")
    _refuse_a_file_as_out_dir(out_dir)
    verbosity = progress.QUIET if quiet else progress.VERBOSE if verbose else progress.NORMAL
    progress.configure(verbosity)

    if file.suffix.lower() == ".json":
        typer.echo(f"{file}: error: poelang runs .poe programs, not graph JSON (the graph has no source to point "
                   "diagnostics at, and its paths are relative to the program it came from; see docs/cli.md)", err=True)
        raise typer.Exit(1)
    overrides = _parse_sets(set_)
    if seed is not None:
        overrides["seed"] = str(seed)
    program = load(file, overrides=overrides, params=_parse_params(param), allow_outside=allow_outside)
    print_diagnostics(program)
    if not program.ok:
        raise typer.Exit(1)
    if trace is not None and not program.graph.samples:
        typer.echo(f"warning: --trace {trace}: the program has no sample (no `~` statement), so there is no trace", err=True)
    import_torch()
    from poelang.diagnostics import PoeError
    from poelang.interpreter import RunError, run_program

    try:
        result = run_program(program, device=device, trace_dir=str(trace) if trace else None,
                             output=str(output) if output else None, reporter=progress.Reporter(verbosity),
                             out_dir=out_dir, trust_remote_code=trust_remote_code,
                             on_write=None if as_json else lambda path: typer.echo(f"wrote {path}"))
    except (PoeError, RunError) as e:
        typer.echo(e.render(color=color()), err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(_run_summary(program, result))


def _refuse_a_file_as_out_dir(out_dir: Path) -> None:
    """`-o out.png` meant "write the sample to out.png" before -o became the output directory: say so
    instead of silently making a folder named out.png."""
    from poelang.graph import FILE_FORMATS

    if out_dir.suffix.lower() in FILE_FORMATS and not out_dir.is_dir():
        raise typer.BadParameter(f"-o is the output directory; to write the sample to a file, use --output {out_dir}",
                                 param_hint="-o")


def import_torch() -> None:
    """Import torch and numpy now, with Ctrl-C held back until they are complete: an interrupt in the
    middle of their initialisation leaves half-made modules behind (and has crashed the process)."""
    from poelang.interrupts import held

    with held():
        import numpy
        import torch

        numpy.ndarray, torch.Tensor  # noqa: B018 - a module made by poelang._lazy loads on first attribute access


def _run_summary(program, result) -> str:
    """`run --json`: what a script needs to know about a run, one JSON object."""
    import json

    from poelang import provenance
    from poelang.writers import _jsonable

    samples = {}
    for node in program.graph.samples:
        sampled = result.samples.get(node.id)
        samples[node.id] = {"seed": node.settings.seed, "settings": node.settings.model_dump(mode="json"),
                            "plan": _jsonable(getattr(sampled, "plan", None)),
                            "seconds": round(result.sample_seconds.get(node.id, 0.0), 3)}
    return json.dumps({"poelang": provenance.version(), "program": program.file,
                       "program_sha256": provenance.program_hash(program.graph), "outputs": result.written,
                       "samples": samples, "seconds": round(result.seconds, 3)}, indent=1, sort_keys=True)
