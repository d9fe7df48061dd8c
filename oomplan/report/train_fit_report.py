"""Rendering of a training-plan search: the ranked table, the summary, the no-fit lines, JSON, plan files."""
from __future__ import annotations

from typing import Any

from rich.table import Table

from oomplan.planner.train_search import TrainSearchResult
from oomplan.report.fit_report import search_json_header
from oomplan.report.train_report import train_estimate_json, training_summary
from oomplan.specs.training import TrainingPlan
from oomplan.units import format_bytes, format_count



def plan_short(p: TrainingPlan) -> str:
    """'DP8 · ZeRO-2 · rc full · mb2x4'; defaults left out."""
    parts = [f"{name}{n}" for name, n in (("DP", p.data_parallel), ("TP", p.tensor_parallel), ("PP", p.pipeline_parallel)) if n > 1]
    if p.shard_stage:
        parts.append(f"ZeRO-{p.shard_stage}")
    if p.offload_optimizer:
        parts.append("off opt" + ("+w" if p.offload_params else ""))
    if p.recompute != "none":
        parts.append(f"rc {p.recompute}")
    parts.append(f"mb{p.micro_batch_size}x{p.grad_accum_steps}")
    return " · ".join(parts)


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f}G"


def train_fit_table(result: TrainSearchResult, top: int) -> Table:
    r = result.request
    batch = f"global batch {result.limits.global_batch_size}" if result.limits.global_batch_size else "largest micro-batch"
    table = Table(title_justify="left", title=(
        f"{result.model.name} on {result.gpu.display_name} · {r.mode} · {r.optimizer} ({r.precision}) · "
        f"seq {format_count(r.seq_tokens)} · {batch} · by {result.objective}"))
    for name, just in (("#", "right"), ("plan", "left"), ("GPUs", "right"), ("per GPU", "right"), ("free", "right"),
                       ("tok/s", "right"), ("step", "right")):
        table.add_column(name, justify="right" if just == "right" else "left", no_wrap=name != "plan")
    for rank, c in enumerate(result.plans[:top], 1):
        est = c.estimate
        table.add_row(str(rank), plan_short(c.plan), str(c.num_gpus), _gib(est.per_gpu.total_bytes), _gib(est.headroom_bytes),
                      f"{c.speed.tokens_per_s:,.0f}", f"{c.speed.step_s:.2f}s")
    return table


def train_search_summary(result: TrainSearchResult, top: int) -> str:
    shown = min(top, len(result.plans))
    return (f"searched {result.num_considered:,} candidate plans ({result.num_evaluated:,} budgets computed), "
            f"{len(result.plans):,} fit; showing {shown}. tok/s: roofline (peak FLOPs, collectives not overlapped), "
            f"for ranking; expect 35-55% of it")


def train_nofit_lines(result: TrainSearchResult, wider: TrainSearchResult | None) -> list[str]:
    lines = ["nothing fits."]
    c = result.closest
    if c is not None:
        s = c.estimate.per_gpu
        parts = (f"weights {format_bytes(s.weights_bytes)}, gradients {format_bytes(s.gradient_bytes)}, optimizer "
                 f"{format_bytes(s.optimizer_bytes)}, activations {format_bytes(s.activation_bytes)}, overhead {format_bytes(s.overhead_bytes)}")
        est = c.estimate
        if est.headroom_bytes >= 0 and not est.host_fits:  # the GPUs hold it: CPU memory for offloaded states fails
            lines.append(f"nearest: {training_summary(c.plan)} fits on the GPUs ({format_bytes(s.total_bytes)} of "
                         f"{format_bytes(est.capacity_bytes)} per GPU) but its offloaded states need "
                         f"{format_bytes(est.host_bytes_per_node)} of CPU memory per node, "
                         f"{format_bytes(est.host_memory_limit_bytes or 0)} allowed (--host-mem)")
        else:
            lines.append(f"nearest: {training_summary(c.plan)} needs {format_bytes(s.total_bytes)} per GPU, "
                         f"{format_bytes(est.capacity_bytes)} available ({parts})")
    if wider is not None and wider.plans:
        best = wider.plans[0]
        lines.append(f"what would fit: {best.num_gpus} x {result.gpu.name} with {training_summary(best.plan)}")
    elif result.request.mode == "full":
        lines.append("what would fit: try --train lora or --train qlora, a shorter --seq, or more GPUs (--max-gpus)")
    return lines


def train_fit_json(result: TrainSearchResult, top: int) -> dict[str, Any]:
    return search_json_header(result.model, result.gpu) | {
        "training": result.request.model_dump(mode="json") | {"global_batch_size": result.limits.global_batch_size},
        "objective": result.objective,
        "num_considered": result.num_considered,
        "num_evaluated": result.num_evaluated,
        "num_fitting": len(result.plans),
        "plans": [train_estimate_json(c.estimate, c.speed) | {"summary": training_summary(c.plan)} for c in result.plans[:top]],
    }


