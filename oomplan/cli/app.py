"""The typer application: one small module per command, registered here."""
from __future__ import annotations

import typer

from oomplan import __version__
from oomplan.cli.common import STATE
from oomplan.cli.catalog import gpus_command, models_app
from oomplan.cli.check import check_command
from oomplan.cli.estimate import estimate_command
from oomplan.cli.export import export_command
from oomplan.cli.fit import fit_command
from oomplan.cli.probe import probe_command
from oomplan.cli.vet import vet_command

app = typer.Typer(
    name="oomplan",
    help="Memory planner and OOM predictor for LLMs: how much memory, where it goes, and what plan fits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oomplan {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    STATE["debug"] = debug


app.command("estimate")(estimate_command)
app.command("fit")(fit_command)
app.command("check")(check_command)
app.command("export")(export_command)
app.add_typer(models_app, name="models")
app.command("gpus")(gpus_command)
app.command("probe")(probe_command)
app.command("vet")(vet_command)


def main() -> None:
    app()
