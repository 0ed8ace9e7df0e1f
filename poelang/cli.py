"""The `poelang` command line: run, sweep, check, fmt, graph, repl, experts.

Exit codes: 0 success, 1 diagnostics in a program or a failed run, 2 usage,
130 interrupted (Ctrl-C).
No user mistake ends in a Python traceback: diagnostics are printed GNU
style (`file:line:col: error: message`, the line, a caret).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    help="poelang: compose visual generative experts (product of experts, annealed MCMC + SMC).",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from poelang.provenance import version

        typer.echo(f"poelang {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="print poelang's version and exit"),
) -> None:
    """poelang: compose visual generative experts (product of experts, annealed MCMC + SMC)."""


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
    _print_diagnostics(program)
    if not program.ok:
        raise typer.Exit(1)
    if trace is not None and not program.graph.samples:
        typer.echo(f"warning: --trace {trace}: the program has no sample (no `~` statement), so there is no trace", err=True)
    _import_torch()
    from poelang.diagnostics import PoeError
    from poelang.interpreter import RunError, run_program

    try:
        result = run_program(program, device=device, trace_dir=str(trace) if trace else None,
                             output=str(output) if output else None, reporter=progress.Reporter(verbosity),
                             out_dir=out_dir, trust_remote_code=trust_remote_code,
                             on_write=None if as_json else lambda path: typer.echo(f"wrote {path}"))
    except (PoeError, RunError) as e:
        typer.echo(e.render(color=_color()), err=True)
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


def _import_torch() -> None:
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
        typer.echo(f"finished rows are in {out_dir / 'manifest.jsonl'}: run again with --resume "
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
def check(
    files: List[Path] = typer.Argument(..., help="programs to check"),
    allow_outside: bool = typer.Option(False, "--allow-outside", help="accept save paths outside the output directory"),
    weights: bool = typer.Option(False, "--weights", help="also list the models each program needs, whether each is "
                                 "on this machine (nothing is downloaded) and how to fetch the missing ones"),
) -> None:
    """Parse and type-check programs without loading any model."""
    from poelang.program import load

    failed = False
    programs = []
    for file in files:
        program = load(file, allow_outside=allow_outside)
        _print_diagnostics(program)
        failed |= not program.ok
        programs.append(program)
    if failed:
        raise typer.Exit(1)
    for file, program in zip(files, programs):
        if weights:
            from poelang import weights as model_weights

            found = model_weights.needs(program)
            typer.echo(f"{file}: " + model_weights.report(found), nl=False)
            failed |= any(n.missing for n in found)
        else:
            typer.echo(f"{file}: ok")
    if failed:
        raise typer.Exit(1)


@app.command()
def fmt(
    files: List[Path] = typer.Argument(..., help="programs to format in place; '-' reads stdin and writes stdout"),
    check_only: bool = typer.Option(False, "--check", help="only report files that would change (exit 1 if any)"),
    diff: bool = typer.Option(False, "--diff", help="print a unified diff of the changes instead of writing them "
                              "(exit 1 if any)"),
) -> None:
    """Rewrite programs in canonical form (comments kept)."""
    changed, failed = [], False
    for file in files:
        stdin = str(file) == "-"
        name = "<stdin>" if stdin else str(file)
        try:
            text = sys.stdin.read() if stdin else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            typer.echo(f"{name}: error: cannot read file: {e}", err=True)
            failed = True
            continue
        formatted = _formatted(text, name)
        if formatted is None:
            failed = True
            continue
        if stdin and not (check_only or diff):
            sys.stdout.write(formatted)
            continue
        if formatted == text:
            continue
        changed.append(name)
        if diff:
            import difflib

            sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                                                       f"a/{name}", f"b/{name}"))
        elif not check_only:
            try:
                _write_atomic(file, formatted)
            except OSError as e:
                typer.echo(f"{file}: error: cannot write file: {e.strerror or e}", err=True)
                failed = True
    if not diff:
        for name in changed:
            typer.echo(f"{'would reformat' if check_only else 'reformatted'} {name}",
                       err=any(str(f) == "-" for f in files))
    if failed or ((check_only or diff) and changed):
        raise typer.Exit(1)


def _formatted(text: str, name: str) -> str | None:
    """The canonical text, or None after printing the parse errors."""
    from poelang.diagnostics import SourceMap
    from poelang.syntax.fmt import format_source
    from poelang.syntax.parser import parse_module

    module, errors = parse_module(text, name)
    if module is None:
        sources = SourceMap()
        sources.add(name, text)
        typer.echo("\n".join(d.render(sources, _color()) for d in errors), err=True)
        return None
    return format_source(module)


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
def experts(name: Optional[str] = typer.Argument(None, help="show one expert's or builtin's parameters")) -> None:
    """List the registered experts, their signatures and whether their weights are here; or show one (or a builtin)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from poelang.diagnostics import did_you_mean
    from poelang.experts.registry import default_registry

    registry = default_registry()
    builtins = registry.builtins  # the core's and plugins' builtin functions
    console = Console()
    if name is not None:
        spec = registry.get(name) or builtins.get(name)
        if spec is None:
            typer.echo(f"error: no expert or builtin '{name}'{did_you_mean(name, [*registry.names(), *builtins])}",
                       err=True)
            raise typer.Exit(1)
        kind = getattr(spec, "kind", "builtin")
        console.print(f"[bold]{escape(spec.name)}[/bold] ({kind}): {escape(spec.doc)}", soft_wrap=True)
        if kind != "builtin":
            console.print(f"weights: {escape(_weights_text(spec, full=True))}", soft_wrap=True)
        table = Table("parameter", "type", "default", "doc")
        for p in spec.params:
            table.add_row(escape(p.name), escape(p.type), escape(p.default_text()), escape(p.doc))
        console.print(table)
        return
    table = Table("expert", "kind", "signature", "weights", "doc")
    for expert_name in registry.names():
        spec = registry.get(expert_name)
        table.add_row(escape(spec.name), spec.kind, escape(spec.signature()), escape(_weights_text(spec)),
                      escape(spec.doc))
    console.print(table)
    console.print(f"builtins: {escape(', '.join(sorted(builtins)))} (poelang experts NAME shows one)")
    for problem in registry.problems:
        typer.echo(f"warning: {problem}", err=True)


def _weights_text(spec, full: bool = False) -> str:
    """Whether the models an expert loads with its default arguments are here ('-': it loads none)."""
    if spec.weights is None:
        return "-"
    defaults = {p.name: None if p.required else p.default for p in spec.params}
    found = spec.weights(defaults, Path("."))
    if not found:
        return "-"
    missing = [w for w in found if w.found is None]
    if not full:
        return "missing" if missing else "installed"
    return "; ".join(f"{w.model}: " + (f"installed at {w.found}" if w.found else f"missing, fetch with `{w.fetch}`")
                     for w in found)


@app.command()
def examples(
    action: str = typer.Argument("list", help="list: show the example programs; copy: copy them to DIR"),
    directory: Optional[Path] = typer.Argument(None, help="copy: where to put them (created if needed)"),
    force: bool = typer.Option(False, "--force", help="copy: overwrite files that exist"),
) -> None:
    """The example programs that ship with poelang (and their assets): list them, or copy them to DIR."""
    from poelang import examples as shipped

    if action == "list":
        typer.echo(f"# in {shipped.root()}")
        for program in shipped.programs():
            typer.echo(str(program))
        return
    if action != "copy" or directory is None:
        raise typer.BadParameter("use `poelang examples` (list) or `poelang examples copy DIR`")
    try:
        written = shipped.copy(directory, force=force)
    except FileExistsError as e:
        typer.echo(f"error: {e}; use --force to overwrite", err=True)
        raise typer.Exit(1)
    except OSError as e:
        typer.echo(f"error: cannot copy to {directory}: {e.strerror or e}", err=True)
        raise typer.Exit(1)
    typer.echo(f"copied {len(written)} files to {directory}; try: poelang run {directory / 'quickstart.poe'}")


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors, as Click does, 130 after Ctrl-C)."""
    from poelang.interrupts import EXIT_INTERRUPTED, interrupted

    try:
        app(args=argv, prog_name="poelang")
    except KeyboardInterrupt:
        return interrupted()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return interrupted() if code == EXIT_INTERRUPTED else code  # typer turns Ctrl-C into a silent exit 130
    return 0


def console_main() -> None:
    """The entry point of installations made before poelang._entry (which also catches Ctrl-C during imports)."""
    from poelang.interrupts import exit_with

    exit_with(main())
