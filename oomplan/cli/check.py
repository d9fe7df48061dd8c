"""`oomplan check PLAN.yaml`: the CI gate. Exit 0 fits, 1 does not, 2 invalid input."""
from __future__ import annotations

from typing import Optional

import typer

from oomplan.cli.engine_opts import (
    GGUF_TYPE, GPU_MEMORY_UTILIZATION, MAX_MODEL_LEN, MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS, MEM_FRACTION_STATIC,
    ENGINE_VERSION, N_GPU_LAYERS, check_engine, refuse_engine_version_without_engine, check_engine_plan, engine_options,
)
from oomplan.cli.common import handle_errors, print_json, stdout, warn
from oomplan.cli.train import run_train_check
from oomplan.errors import EXIT_DOES_NOT_FIT, EXIT_OK
from oomplan.planner.recheck import recheck
from oomplan.report.estimate_json import estimate_json
from oomplan.report.estimate_table import budget_table
from oomplan.units import format_bytes, parse_count, parse_fraction


@handle_errors
def check_command(
    plan: str = typer.Argument(..., help="A plan file written by oomplan fit -o."),
    gpu: Optional[str] = typer.Option(None, "--gpu", "-g", help="Try the plan on another card."),
    ctx: Optional[str] = typer.Option(None, "--ctx", help="Override the plan's context length."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Override the plan's batch size."),
    margin: str = typer.Option("0%", "--margin", help="Headroom required, as a share of the card: 10% or 0.1."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (changed config, changed prediction) as errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate JSON with a 'check' object."),
    engine: Optional[str] = typer.Option(None, "--engine", help="hf, vllm, sglang or llamacpp (default: the plan's workload.engine)."),
    gpu_memory_utilization: Optional[str] = GPU_MEMORY_UTILIZATION,
    max_model_len: Optional[str] = MAX_MODEL_LEN,
    max_num_seqs: Optional[int] = MAX_NUM_SEQS,
    max_num_batched_tokens: Optional[str] = MAX_NUM_BATCHED_TOKENS,
    mem_fraction_static: Optional[str] = MEM_FRACTION_STATIC,
    gguf_type: Optional[str] = GGUF_TYPE,
    n_gpu_layers: Optional[int] = N_GPU_LAYERS,
    engine_version: Optional[str] = ENGINE_VERSION,
) -> None:
    """Re-compute a plan and gate on it. Exit 0 fits (with the margin), 1 does not, 2 invalid input."""
    required = parse_fraction(margin, "--margin", 0.0, 0.99)
    from oomplan.planner.train_recheck import is_training_plan

    if is_training_plan(plan):  # written by fit --train: oomplan/cli/train.py
        run_train_check(plan, gpu, ctx, batch, required, strict, as_json)
    result = recheck(plan, gpu, parse_count(ctx, "--ctx") if ctx else None, batch)
    warn(result.warnings, strict)
    engine_name = check_engine(engine) if engine else result.estimate.workload.engine
    if engine_name != "hf":
        opts = engine_options(gpu_memory_utilization, max_model_len, max_num_seqs, max_num_batched_tokens,
                              mem_fraction_static, gguf_type, n_gpu_layers, engine_version)
        check_engine_plan(engine_name, result.estimate, opts, required, plan, as_json, strict)
    refuse_engine_version_without_engine(engine_version)
    est, ok = result.estimate, result.fits_with_margin(required)
    total, cap = est.per_gpu.total_bytes, est.capacity_bytes
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: {format_bytes(total)} of {format_bytes(cap)} per GPU on {est.gpu.name}, "
        f"headroom {100 * (cap - total) / cap:.1f}% (required {100 * required:.0f}%)"
    )
    if as_json:
        print_json(estimate_json(est) | {"check": {"pass": ok, "margin": required, "plan_file": plan}})
    else:
        out = stdout()
        out.print(budget_table(est))
        out.print(verdict, style="green" if ok else "bold red")
    raise typer.Exit(EXIT_OK if ok else EXIT_DOES_NOT_FIT)
