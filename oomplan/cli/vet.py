"""`oomplan vet --gpu GPU -- <engine command>`: will this vLLM / SGLang / llama.cpp launch start, and serve?

Exit 0 it starts and serves its configured context, 1 it will fail (the reason and the flag that fixes it),
2 invalid input (an unknown GPU, a bad flag value, a model that cannot be resolved).
"""
from __future__ import annotations

from typing import Optional

import typer

from oomplan.cli.common import handle_errors, note, print_json, stdout
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError
from oomplan.profiles import load_gpu


@handle_errors
def vet_command(
    command: Optional[list[str]] = typer.Argument(None, help="The engine command line, after --: vllm serve ..., python -m sglang.launch_server ..., llama-server ..."),
    gpu: str = typer.Option(..., "--gpu", "-g", help="GPU profile name/alias (every GPU of the command is this kind); llama.cpp: a box of different cards joined by + (rtx-4090+rtx-3090), GPU 0 first."),
    model_profile: Optional[str] = typer.Option(None, "--model-profile", help="Model profile, config.json or folder to use instead of the command's model (needed for GGUF names that match no profile)."),
    gguf_type: Optional[str] = typer.Option(None, "--gguf-type", help="llama.cpp: the GGUF file type when the file name does not say it (Q4_K_M, Q8_0, ...)."),
    engine_version: Optional[str] = typer.Option(None, "--engine-version", help="vLLM/SGLang release whose accounting to use, X.Y (default: the newest modelled, stated in the output)."),
    strict: bool = typer.Option(False, "--strict", help="Also fail (exit 1) on warnings."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON object instead of the table."),
) -> int:
    """Predict what a real engine launch command will do on a GPU. Exit 0 ok, 1 will fail, 2 bad input."""
    if not command:
        raise InputError("vet: no engine command; use oomplan vet --gpu GPU -- vllm serve MODEL [flags]")
    from oomplan.engines.cmdline import parse_launch, resolve_model
    from oomplan.engines.registry import get_engine
    from oomplan.report.engine_report import vet_json

    from oomplan.cli.cards import resolve_box

    launch = parse_launch(list(command), gguf_type, engine_version)
    box = resolve_box(gpu)
    model, card = resolve_model(launch, model_profile), box[0] if box else load_gpu(gpu)
    settings = get_engine(launch.engine).with_devices(launch.settings, box) if box else launch.settings
    if launch.engine == "llamacpp" and model_profile is None and (model.checkpoint is None or model.checkpoint.kind != "gguf"):
        note(f"note: {launch.model_ref}: no such file here, so the model and the GGUF type come from its name "
             "(run vet where the file is to price its own tensors)")
    pred = get_engine(launch.engine).predict(model, card, settings)
    ok = pred.ok and not (strict and (pred.warnings or launch.unmodelled_flags))
    if as_json:
        print_json(vet_json(list(command), model.name, card.name, launch.ignored_flags, launch.unmodelled_flags, pred, ok))
    else:
        _render(pred, launch.ignored_flags, launch.unmodelled_flags)
    return EXIT_OK if ok else EXIT_DOES_NOT_FIT


def _render(pred, ignored: tuple[str, ...], unmodelled: tuple[str, ...] = ()) -> None:
    from oomplan.report.engine_report import engine_table, verdict_lines

    out = stdout()
    out.print(engine_table(pred))
    for line in pred.notes:
        out.print(f"note: {line}", soft_wrap=True)
    for warning in pred.warnings:
        out.print(f"warning: {warning}", style="yellow", soft_wrap=True)
    if ignored:
        out.print(f"not memory-relevant, read past: {' '.join(ignored)}", soft_wrap=True)
    if unmodelled:
        out.print(f"warning: memory-relevant but not modelled (the prediction assumes their defaults; --strict fails): "
                  f"{' '.join(unmodelled)}", style="yellow", soft_wrap=True)
    for line in verdict_lines(pred):
        out.print(line, soft_wrap=True)
