"""`oomplan models [show NAME]` and `oomplan gpus [--detect]`: the catalogues."""
from __future__ import annotations

import typer

from oomplan.cli.common import handle_errors, stdout
from oomplan.errors import InputError
from oomplan.profiles import all_gpus, all_models, load_gpu, load_model
from oomplan.report.catalog import detected_table, gpus_table, model_card, models_table

models_app = typer.Typer(help="Shipped model profiles; `show NAME` for one model's derived facts.", invoke_without_command=True)


@models_app.callback()
@handle_errors
def models_list(ctx: typer.Context) -> None:
    """List the shipped (and user) model profiles."""
    if ctx.invoked_subcommand is None:
        stdout().print(models_table(all_models()))


@models_app.command("show")
@handle_errors
def models_show(name: str = typer.Argument(..., help="Profile name/alias, config.json or a folder holding one.")) -> None:
    """Architecture facts, parameters by component, KV bytes per token, max context."""
    stdout().print(model_card(load_model(name)))


@handle_errors
def gpus_command(detect: bool = typer.Option(False, "--detect", help="Read the local GPUs through NVML and match them to profiles.")) -> None:
    """List the GPU profiles, or detect the local GPUs (exit 3 without a driver)."""
    if not detect:
        stdout().print(gpus_table(sorted(all_gpus(), key=lambda g: g.memory_bytes)))
        return
    from oomplan.probe.detect import detect_gpus, profile_key

    found = detect_gpus()
    matches = []
    for d in found:
        try:
            matches.append(load_gpu(profile_key(d.name)).name)
        except InputError:
            matches.append("(no profile: pass --gpu NAME)")
    stdout().print(detected_table(found, matches))
