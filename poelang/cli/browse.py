"""The commands for finding one's way: `repl`, `experts` (the registry), `examples` (the shipped programs)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from poelang.cli.app import app


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
