"""`oomplan export PLAN.yaml --to vllm|sglang|llamacpp|hf`: the command that realises a plan."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oomplan.cli.common import handle_errors, note, warn
from oomplan.errors import InputError
from oomplan.planner.recheck import recheck
from oomplan.report.exports import ENGINES, EXPORTERS
from oomplan.report.plan_yaml import check_output, write_atomic


@handle_errors
def export_command(
    plan: str = typer.Argument(..., help="A plan file written by oomplan fit -o."),
    to: str = typer.Option(..., "--to", help="vllm | sglang | llamacpp | hf."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to a file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing -o file."),
) -> None:
    """Print the launch command (or Python snippet) for an engine; knobs it cannot realise are named."""
    engine = to.strip().lower()
    if engine not in EXPORTERS:
        raise InputError(f"--to: {to!r} is not accepted; use one of {', '.join(ENGINES)}")
    if output is not None:  # before any work
        check_output(output, force, inputs=(plan,))
    result = recheck(plan)
    warn(result.warnings, strict=False)
    text = EXPORTERS[engine](result.estimate).render() + "\n"
    if output is not None:
        write_atomic(output, text, force)
        note(f"wrote {engine} command to {output}")
    else:
        typer.echo(text, nl=False)
