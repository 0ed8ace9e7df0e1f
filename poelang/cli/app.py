"""The Typer application every command registers on, and its global options (`--version`, `-h`)."""
from __future__ import annotations

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
