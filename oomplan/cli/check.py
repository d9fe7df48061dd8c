"""`oomplan check PLAN.yaml [PLAN.yaml ...]`: the CI gate. One file: its budget and verdict (exit 0 fits, 1 does
not, 2 invalid input). Several files (or --format junit|github): one summary, exit the worst code
(oomplan/planner/gate.py: pass 0 < fail 1 < bad input 2 < runtime 3)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oomplan.cli.engine_opts import (
    GGUF_TYPE, GPU_MEMORY_UTILIZATION, MAX_MODEL_LEN, MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS, MEM_FRACTION_STATIC,
    ENGINE_VERSION, N_GPU_LAYERS, check_engine, refuse_engine_version_without_engine, refuse_unread_engine_knobs, check_engine_plan, engine_options,
)
from oomplan.cli.common import handle_errors, note, print_json, stdout, warn
from oomplan.cli.train import run_train_check
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK, InputError
from oomplan.planner.gate import GateOptions
from oomplan.planner.gate import headroom_line
from oomplan.planner.recheck import box_options, recheck, refuse_kv_policy_for_engine
from oomplan.report.estimate_json import estimate_json
from oomplan.report.estimate_table import budget_table
from oomplan.report.plan_yaml import check_output, write_atomic
from oomplan.text import shorten
from oomplan.units import parse_count, parse_fraction


@handle_errors
def check_command(
    plans: list[str] = typer.Argument(..., help="Plan files written by oomplan fit -o (several: one summary, exit the worst code).", metavar="PLAN"),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="Try the plan on another card."),
    ctx: Optional[str] = typer.Option(None, "--ctx", help="Override the plan's context length."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Override the plan's batch size."),
    margin: str = typer.Option("0%", "--margin", help="Headroom required, as a share of the card: 10% or 0.1."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (changed config, changed prediction) as errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate JSON with a 'check' object (several files: one row per file)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="hf, vllm, sglang or llamacpp (default: the plan's workload.engine)."),
    gpu_memory_utilization: Optional[str] = GPU_MEMORY_UTILIZATION,
    max_model_len: Optional[str] = MAX_MODEL_LEN,
    max_num_seqs: Optional[int] = MAX_NUM_SEQS,
    max_num_batched_tokens: Optional[str] = MAX_NUM_BATCHED_TOKENS,
    mem_fraction_static: Optional[str] = MEM_FRACTION_STATIC,
    gguf_type: Optional[str] = GGUF_TYPE,
    n_gpu_layers: Optional[int] = N_GPU_LAYERS,
    engine_version: Optional[str] = ENGINE_VERSION,
    output_format: str = typer.Option("text", "--format", help="text (one file: its budget; several: a summary table), junit (JUnit XML) or github (workflow annotations)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="--format junit: write the XML to this file (atomically) instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing -o file."),
) -> int:
    """Re-compute plans and gate on them. Exit 0 fits (with the margin), 1 does not, 2 invalid input, 3 runtime failure; several files: the worst."""
    required = parse_fraction(margin, "--margin", 0.0, 0.99)
    fmt = output_format.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"--format: {shorten(output_format, 40)!r} is not accepted; use one of {', '.join(FORMATS)}")
    if output is not None and fmt != "junit":
        raise InputError("-o/--output: only with --format junit (the other formats print to stdout)")
    if len(plans) > 1 or fmt != "text":
        if output is not None:  # before any work
            check_output(output, force, inputs=tuple(plans))
        gate_opts = GateOptions(gpu=gpu, ctx_tokens=parse_count(ctx, "--ctx") if ctx else None, batch_size=batch, margin=required,
                                strict=strict, engine=check_engine(engine) if engine else None,
                                engine_options=engine_options(gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                                                              mem_fraction_static, gguf_type, n_gpu_layers, engine_version))
        if gate_opts.engine is not None:  # without --engine each plan's own engine reads them
            refuse_unread_engine_knobs(gate_opts.engine, gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                                       mem_fraction_static, gguf_type, n_gpu_layers)
        if gate_opts.engine == "hf":
            refuse_engine_version_without_engine(engine_version)
        return run_gate(plans, gate_opts, fmt, output, force, as_json)
    plan = plans[0]
    from oomplan.planner.train_recheck import is_training_plan

    if is_training_plan(plan):  # written by fit --train: oomplan/cli/train.py
        refuse_unread_engine_knobs(None, gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                                   mem_fraction_static, gguf_type, n_gpu_layers)
        return run_train_check(plan, gpu, ctx, batch, required, strict, as_json)
    result = recheck(plan, gpu, parse_count(ctx, "--ctx") if ctx else None, batch)
    warn(result.warnings, strict)
    engine_name = check_engine(engine) if engine else result.estimate.workload.engine
    refuse_kv_policy_for_engine(plan, result.estimate.plan, engine_name)
    refuse_unread_engine_knobs(engine_name, gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                               mem_fraction_static, gguf_type, n_gpu_layers)
    opts = box_options(plan, result, engine_name, engine_options(gpu_memory_utilization, max_model_len, max_num_seqs,
                                                                 max_num_batched_tokens, mem_fraction_static, gguf_type, n_gpu_layers,
                                                                 engine_version))
    if engine_name != "hf":
        return check_engine_plan(engine_name, result.estimate, opts, required, plan, as_json, strict)
    refuse_engine_version_without_engine(engine_version)
    est, ok = result.estimate, result.fits_with_margin(required)
    total, cap = est.per_gpu.total_bytes, est.capacity_bytes
    verdict = headroom_line(ok, total, cap, est.gpu.name, required)
    if as_json:
        print_json(estimate_json(est) | {"check": {"pass": ok, "margin": required, "plan_file": plan}})
    else:
        out = stdout()
        out.print(budget_table(est))
        out.print(verdict, style="green" if ok else "bold red")
    return EXIT_OK if ok else EXIT_DOES_NOT_FIT


FORMATS = ("text", "junit", "github")


def run_gate(plans: list[str], opts: GateOptions, fmt: str, output: Optional[Path], force: bool, as_json: bool) -> int:
    """Every plan file through the gate in this process; one summary; exit the worst code."""
    from oomplan.planner.gate import gate_file, worst_exit_code
    from oomplan.report.gate import gate_github, gate_json, gate_junit, gate_table, summary_line

    verdicts = [gate_file(path, opts) for path in plans]
    for v in verdicts:
        warn(list(v.warnings), strict=False)
    if fmt == "junit":
        xml = gate_junit(verdicts)
        if output is None:
            typer.echo(xml, nl=False)
        else:
            write_atomic(output, xml, force)
            note(f"wrote JUnit XML ({len(verdicts)} test cases) to {output}")
    elif fmt == "github":
        typer.echo(gate_github(verdicts))
    elif as_json:
        print_json(gate_json(verdicts))
    if fmt == "text" and not as_json or output is not None:
        out = stdout()
        out.print(gate_table(verdicts))
        out.print(summary_line(verdicts), soft_wrap=True)
    return worst_exit_code(verdicts)
