"""Rendering of a plan search: the ranked table, the quality legend, the no-fit diagnosis, JSON."""
from __future__ import annotations

from typing import Any

from rich.table import Table

from oomplan import __version__
from oomplan.planner.diagnose import Diagnosis
from oomplan.planner.search import Candidate, SearchResult
from oomplan.report.summary import plan_short, plan_summary
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.units import format_bytes, format_count

SCHEMA_VERSION = 1


def _tps(c: Candidate) -> str:
    tps = c.speed.decode_tokens_per_s
    return f"{tps:.1f}" if tps < 100 else f"{tps:,.0f}"


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f}G"


def fit_table(result: SearchResult, top: int, show: str, price: float | None) -> Table:
    """show: 'ctx' or 'batch' adds the reached value; cost columns when price is set or objective is cost."""
    table = Table(title_justify="left", title=(
        f"{result.model.name} on {result.gpu.display_name} · ctx {format_count(result.workload.ctx_tokens)}"
        f" x batch {result.workload.batch_size} · by {result.objective}"))
    for name, just in (("#", "right"), ("plan", "left"), ("GPUs", "right"), ("per GPU", "right"), ("free", "right"), ("quality", "left"), ("tok/s", "right"), ("prefill", "right")):
        table.add_column(name, justify="right" if just == "right" else "left", no_wrap=name != "plan")
    if show in ("ctx", "batch"):
        table.add_column("max " + show, justify="right")
    cost = price is not None or result.objective == "cost"
    if cost:
        table.add_column("GPU-h/Mtok", justify="right")
        if price is not None:
            table.add_column("$/Mtok", justify="right")
    for rank, c in enumerate(result.plans[:top], 1):
        row = [str(rank), plan_short(result.model, c.plan), str(c.num_gpus), _gib(c.per_gpu.total_bytes),
               _gib(c.headroom_bytes), c.quality.label, _tps(c), f"{c.speed.prefill_s:.1f}s"]
        if show == "ctx":
            row.append(format_count(c.workload.ctx_tokens))
        elif show == "batch":
            row.append(str(c.workload.batch_size))
        if cost:
            row.append(f"{c.gpu_hours_per_million_tokens:.2f}")
            if price is not None:
                row.append(f"{c.gpu_hours_per_million_tokens * price:.2f}")
        table.add_row(*row)
    return table


def quality_legend(result: SearchResult, top: int) -> list[str]:
    seen, lines = set(), []
    for c in result.plans[:top]:
        for choice in c.quality.choices:
            if (choice.knob, choice.value) not in seen:
                seen.add((choice.knob, choice.value))
                lines.append(f"{choice.knob}={choice.value}: {choice.reason} [{choice.source}]")
    return lines + slow_legend(result, top)


def slow_legend(result: SearchResult, top: int) -> list[str]:
    """--objective quality: which shown plans rank late for decoding under a tenth of their quality's fastest."""
    from oomplan.planner.search import SLOW_DECODE_FACTOR, fastest_by_quality, is_slow, quality_key

    if result.objective != "quality":
        return []
    fastest = fastest_by_quality(result.plans)
    slow = [(i + 1, fastest[quality_key(c)]) for i, c in enumerate(result.plans[:top]) if is_slow(c, fastest[quality_key(c)])]
    if not slow:
        return []
    rows = ", ".join(f"#{i}" for i, _ in slow)
    best = ", ".join(dict.fromkeys(f"{f:,.1f}" for _, f in slow))
    return [f"{rows}: decode under 1/{SLOW_DECODE_FACTOR} of the fastest plan of the same quality ({best} tok/s), so ranked after "
            "the others of that quality (docs/memory-model.md, Ranking)"]


def search_summary(result: SearchResult, top: int) -> str:
    shown = min(top, len(result.plans))
    hidden = (f"; {result.num_dominated:,} dominated (more stages or offload for no gain) not shown, --all shows them"
              if result.num_dominated else "")
    return (f"searched {result.num_considered:,} candidate plans ({result.num_evaluated:,} budgets computed), "
            f"{result.num_fitting:,} fit; {len(result.plans):,} distinct, showing {shown}{hidden}")


def diagnosis_lines(result: SearchResult, d: Diagnosis) -> list[str]:
    lines = ["nothing fits."]
    m = result.model
    if d.closest:
        s = d.closest.per_gpu
        state = f"recurrent state {format_bytes(s.state_bytes)}, " if s.state_bytes else ""
        parts = f"weights {format_bytes(s.weights_bytes)}, KV cache {format_bytes(s.kv_cache_bytes)}, {state}activations {format_bytes(s.activation_bytes)}, overhead {format_bytes(s.overhead_bytes)}"
        lines.append(f"nearest: {plan_summary(m, d.closest.plan)} needs {format_bytes(s.total_bytes)} per GPU, "
                     f"{format_bytes(d.closest.capacity_bytes)} available: {format_bytes(-d.closest.headroom_bytes)} over ({parts})")
    lines.append("what would fit:")
    if d.shorter_ctx:
        lines.append(f"  - a shorter context: up to --ctx {d.shorter_ctx.workload.ctx_tokens} with {plan_summary(m, d.shorter_ctx.plan)}")
    if d.more_gpus:
        lines.append(f"  - more GPUs: {d.more_gpus.num_gpus} x {result.gpu.name} with {plan_summary(m, d.more_gpus.plan)} ({d.more_gpus.quality.label})")
    if d.larger_card:
        name, c = d.larger_card
        lines.append(f"  - a larger card: {c.num_gpus} x {name} with {plan_summary(m, c.plan)} ({c.quality.label})")
    if len(lines) == 3 and not (d.shorter_ctx or d.more_gpus or d.larger_card):
        lines.append("  - nothing in the search space: no shipped card, GPU count or context makes it fit")
    return lines


def candidate_json(c: Candidate, model) -> dict[str, Any]:
    s = c.per_gpu
    return {
        "plan": c.plan.model_dump(),
        "summary": plan_summary(model, c.plan),
        "workload": c.workload.model_dump(),
        "num_gpus": c.num_gpus,
        "per_gpu": {"weights_bytes": s.weights_bytes, "kv_cache_bytes": s.kv_cache_bytes, "state_bytes": s.state_bytes, "activation_bytes": s.activation_bytes,
                    "overhead_bytes": s.overhead_bytes, "total_bytes": s.total_bytes, "capacity_bytes": c.capacity_bytes,
                    "headroom_bytes": c.headroom_bytes, "offloaded_bytes": s.offloaded_bytes},
        "host_memory_bytes": c.host_memory_bytes,
        "quality_risk": {"grade": c.quality.grade, "label": c.quality.label,
                         "choices": [{"knob": x.knob, "value": x.value, "grade": x.grade, "reason": x.reason, "source": x.source} for x in c.quality.choices]},
        "decode_tokens_per_s": c.speed.decode_tokens_per_s,
        "prefill_s": c.speed.prefill_s,
        "gpu_hours_per_million_tokens": c.gpu_hours_per_million_tokens,
    }


def search_json_header(model: ModelSpec, gpu: GpuSpec) -> dict[str, Any]:
    """The keys every plan-search JSON (fit, fit --train) starts with."""
    return {
        "schema_version": SCHEMA_VERSION,
        "oomplan_version": __version__,
        "model": {"name": model.name, "config_sha256": model.config_sha256},
        "gpu": {"name": gpu.name, "memory_bytes": gpu.memory_bytes},
    }


def fit_json(result: SearchResult, top: int) -> dict[str, Any]:
    return search_json_header(result.model, result.gpu) | {
        "workload": result.workload.model_dump(),
        "objective": result.objective,
        "num_considered": result.num_considered,
        "num_evaluated": result.num_evaluated,
        "num_fitting": result.num_fitting,
        "num_dominated": result.num_dominated,
        "plans": [candidate_json(c, result.model) for c in result.plans[:top]],
    }
