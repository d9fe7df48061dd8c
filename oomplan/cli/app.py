"""The typer application: one small module per command, registered here."""
from __future__ import annotations

import typer

from oomplan import __version__
from oomplan.cli.common import STATE
from oomplan.cli.catalog import gpus_command, models_app
from oomplan.cli.check import check_command
from oomplan.cli.curve import curve_command
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
app.command("curve")(curve_command)
app.add_typer(models_app, name="models")
app.command("gpus")(gpus_command)
app.command("probe")(probe_command)
app.command("vet")(vet_command)


def _click_exceptions():
    """typer >= 0.16 vendors click as typer._click; older typers use click itself."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException
    return typer.Abort, ClickException


def main() -> None:
    """The console script: usage errors become one line on stderr with exit 2, like every input error."""
    abort, click_exception = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except abort:
        typer.echo("error: aborted", err=True)
        raise SystemExit(130) from None
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `oomplan`: the help, not an error
            typer.echo(exc.format_message())
            raise SystemExit(0) from None
        if STATE["debug"]:
            raise
        typer.echo(f"error: {exc.format_message()} (see: oomplan {_command()}--help)", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _command() -> str:
    import sys

    known = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    return f"{words[0]} " if words and words[0] in known else ""
