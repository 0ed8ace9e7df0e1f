"""The commands that read programs without running them: `check`, `fmt`, `graph`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import typer

from poelang.cli.app import app
from poelang.cli.output import color, print_diagnostics


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
        print_diagnostics(program)
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
        except (OSError, UnicodeDecodeError) as e:  # worded as run and check word it
            typer.echo(f"{name}: error: cannot read file: {e.strerror if isinstance(e, OSError) and e.strerror else e}",
                       err=True)
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
        typer.echo("\n".join(d.render(sources, color()) for d in errors), err=True)
        return None
    return format_source(module)


def _write_atomic(path: Path, text: str) -> None:
    """Rewrite the program in place; a symbolic link is written through (to the file it names), not replaced."""
    import os

    from poelang.outputs import write_text_atomic

    write_text_atomic(os.path.realpath(path), text)


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
    print_diagnostics(program)
    if not program.ok:
        raise typer.Exit(1)
    typer.echo(program.graph.to_dot() if as_dot else program.graph.to_json(), nl=False)
