"""The `poelang` command line: run, sweep, check, fmt, graph, repl, experts.

Exit codes: 0 success, 1 diagnostics in a program or a failed run, 2 usage.
No user mistake ends in a Python traceback: diagnostics are printed GNU
style (`file:line:col: error: message`, the line, a caret).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="poelang: compose visual generative experts (product of experts, annealed MCMC + SMC).",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _color() -> bool:
    return sys.stderr.isatty()


def _print_diagnostics(program) -> None:
    if program.diagnostics:
        typer.echo(program.render_diagnostics(color=_color()), err=True)


def _parse_sets(sets: List[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
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
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="where to save the (first) sample; overrides its save path"),
    set_: List[str] = typer.Option([], "--set", help="override a sampler setting: key=value, or sample.key=value"),
    param: List[str] = typer.Option([], "--param", help="give a program parameter a value: name=value "
                                    "(text needs no quotes: --param prompt='three dogs')"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the program's)"),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu, cuda, cuda:1"),
    trace: Optional[Path] = typer.Option(None, "--trace", help="write the per-level trace (PNG contact sheet + HTML) here"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="only errors and the final 'wrote …' lines"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="also loading details: sizes in MiB, placement"),
) -> None:
    """Check FILE, then sample every `~` statement and write its outputs.

    Progress goes to stderr; stdout carries only the "wrote PATH" lines.
    """
    from poelang import progress
    from poelang.program import load

    if quiet and verbose:
        raise typer.BadParameter("choose one of -q and -v")
    verbosity = progress.QUIET if quiet else progress.VERBOSE if verbose else progress.NORMAL
    progress.configure(verbosity)

    overrides = _parse_sets(set_)
    if seed is not None:
        overrides["seed"] = str(seed)
    program = load(file, overrides=overrides, params=_parse_params(param))
    _print_diagnostics(program)
    if not program.ok:
        raise typer.Exit(1)
    from poelang.diagnostics import PoeError
    from poelang.interpreter import RunError, run_program

    try:
        result = run_program(program, device=device, trace_dir=str(trace) if trace else None,
                             output=str(output) if output else None, reporter=progress.Reporter(verbosity))
    except (PoeError, RunError) as e:
        typer.echo(e.render(color=_color()), err=True)
        raise typer.Exit(1)
    for path in result.written:
        typer.echo(f"wrote {path}")


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
    plan = check_sweep(file, table)
    if plan.diagnostics:
        typer.echo(plan.render(color=_color()), err=True)
    if not plan.ok:
        bad = len({d.span.line for d in plan.diagnostics if d.severity == "error" and d.span.file == str(table)})
        what = f"{table}: {bad} bad row{'s' * (bad != 1)}" if bad else f"{file}: the program has errors"
        typer.echo(f"{what}; nothing was run", err=True)
        raise typer.Exit(1)
    try:
        records = run_sweep(plan, out_dir, backend=backend, workers=workers, devices=device_list, address=address,
                            resume=resume, progress=not quiet, threads=threads)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; finished rows are in {out_dir / 'manifest.jsonl'}: run again with --resume "
                   "to do the rest", err=True)
        raise typer.Exit(130)
    except RuntimeError as e:  # Ray missing or unreachable, a worker that cannot start
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        typer.echo(f"row {r['id']} failed:\n{r['error']}", err=True)
    typer.echo(f"{len(records) - len(failed)} of {len(plan.jobs)} rows ok; {out_dir / 'index.html'}")
    if failed:
        raise typer.Exit(1)


@app.command()
def check(files: List[Path] = typer.Argument(..., help="programs to check")) -> None:
    """Parse and type-check programs without loading any model."""
    from poelang.program import load

    failed = False
    for file in files:
        program = load(file)
        _print_diagnostics(program)
        failed |= not program.ok
    if failed:
        raise typer.Exit(1)
    for file in files:
        typer.echo(f"{file}: ok")


@app.command()
def fmt(
    files: List[Path] = typer.Argument(..., help="programs to format in place"),
    check_only: bool = typer.Option(False, "--check", help="only report files that would change (exit 1 if any)"),
) -> None:
    """Rewrite programs in canonical form (comments kept)."""
    from poelang.syntax.fmt import format_source
    from poelang.syntax.parser import parse_module
    from poelang.diagnostics import SourceMap

    changed, failed = [], False
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            typer.echo(f"{file}: error: cannot read file: {e}", err=True)
            failed = True
            continue
        module, errors = parse_module(text, str(file))
        if module is None:
            sources = SourceMap()
            sources.add(str(file), text)
            typer.echo("\n".join(d.render(sources, _color()) for d in errors), err=True)
            failed = True
            continue
        formatted = format_source(module)
        if formatted != text:
            changed.append(file)
            if not check_only:
                try:
                    _write_atomic(file, formatted)
                except OSError as e:
                    typer.echo(f"{file}: error: cannot write file: {e.strerror or e}", err=True)
                    failed = True
    for file in changed:
        typer.echo(f"{'would reformat' if check_only else 'reformatted'} {file}")
    if failed or (check_only and changed):
        raise typer.Exit(1)


def _write_atomic(path: Path, text: str) -> None:
    from poelang.outputs import write_text_atomic

    write_text_atomic(path, text)


@app.command()
def graph(
    file: Path = typer.Argument(..., help="the .poe program"),
    as_json: bool = typer.Option(False, "--json", help="canonical graph JSON (the default)"),
    as_dot: bool = typer.Option(False, "--dot", help="Graphviz dot"),
) -> None:
    """Print the typed expert graph of a program."""
    from poelang.program import load

    if as_json and as_dot:
        raise typer.BadParameter("choose one of --json and --dot")
    program = load(file)
    _print_diagnostics(program)
    if not program.ok:
        raise typer.Exit(1)
    typer.echo(program.graph.to_dot() if as_dot else program.graph.to_json(), nl=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def repl(ctx: typer.Context) -> None:
    """Explore interactively: declare experts, inspect types and the graph, run, show and save samples.

    `poelang repl [FILE ...] [--history PATH] [--no-history] [--no-banner] [--script]`;
    `poelang repl --help` lists the options (defined once, in poelang.repl.prompt).
    """
    from poelang.repl import main as repl_main

    raise typer.Exit(repl_main(list(ctx.args)))


@app.command()
def experts(name: Optional[str] = typer.Argument(None, help="show one expert's parameters")) -> None:
    """List the registered experts and their signatures."""
    from rich.console import Console
    from rich.table import Table

    from poelang.diagnostics import did_you_mean
    from poelang.experts.registry import default_registry

    registry = default_registry()
    console = Console()
    if name is not None:
        spec = registry.get(name)
        if spec is None:
            typer.echo(f"error: no expert '{name}'{did_you_mean(name, registry.names())}", err=True)
            raise typer.Exit(1)
        console.print(f"[bold]{spec.name}[/bold] ({spec.kind}): {spec.doc}")
        table = Table("parameter", "type", "default", "doc")
        for p in spec.params:
            table.add_row(p.name, p.type, "" if p.required else repr(p.default), p.doc)
        console.print(table)
        return
    table = Table("expert", "kind", "signature", "doc")
    for expert_name in registry.names():
        spec = registry.get(expert_name)
        table.add_row(spec.name, spec.kind, spec.signature(), spec.doc)
    console.print(table)
    for problem in registry.problems:
        typer.echo(f"warning: {problem}", err=True)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors, as Click does)."""
    try:
        app(args=argv, prog_name="poelang")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def console_main() -> None:
    sys.exit(main())
