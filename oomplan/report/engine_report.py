"""Rendering of an EnginePrediction: the engine's per-GPU accounting, the verdict, fixes, and JSON."""
from __future__ import annotations

from typing import Any, Literal

from rich.table import Table
from rich.text import Text

from oomplan import __version__
from oomplan.engines.registry import get_engine
from oomplan.engines.result import EnginePrediction
from oomplan.report.summary import plan_short
from oomplan.units import format_bytes



def engine_name(engine: str) -> str:
    """vLLM, SGLang, llama.cpp: the registry's display name."""
    return get_engine(engine).display_name


def engine_title(p: EnginePrediction) -> str:
    gpus = f"{p.num_gpus} x {p.gpu.display_name}" if p.num_gpus > 1 else p.gpu.display_name
    if len({g.name for g in p.box}) > 1:  # different cards in one box: the table is the tightest one's
        gpus = f"{' + '.join(g.display_name for g in p.box)} (table: {p.gpu.display_name}, the fullest)"
    return f"{p.model.name} on {gpus} · {engine_name(p.engine)}"


def engine_table(p: EnginePrediction) -> Table:
    cap = p.capacity_bytes
    caption = " ".join(f"{k} {v}" if v else k for k, v in p.settings)
    table = Table(title=engine_title(p), title_justify="left", caption=caption, caption_justify="left")
    table.add_column("component")
    table.add_column("per GPU", justify="right")
    table.add_column("of card", justify="right")
    table.add_column("detail")
    for item in p.items:
        table.add_row(item.name, format_bytes(item.bytes), f"{100 * item.bytes / cap:.1f}%", item.detail)
    table.add_section()
    table.add_row("total", format_bytes(p.gpu_total_bytes), f"{100 * p.gpu_total_bytes / cap:.1f}%", "what the process holds", style="bold")
    table.add_row("capacity", format_bytes(cap), "100.0%", "as the driver reports it")
    return table


def pool_line(p: EnginePrediction) -> str:
    blocks = f" = {p.num_kv_blocks:,} blocks" if p.num_kv_blocks and p.num_kv_blocks != p.kv_cache_tokens else ""
    return (f"KV pool {format_bytes(p.kv_pool_bytes)}{blocks}: {p.kv_cache_tokens:,} tokens; "
            f"max concurrency at {p.context_tokens:,} tokens per request: {p.max_concurrency:.2f}x")


def verdict_lines(p: EnginePrediction) -> list[Text]:
    name = engine_name(p.engine)
    if p.ok:
        lines = [Text(f"starts: {name} holds {format_bytes(p.gpu_total_bytes)} of {format_bytes(p.capacity_bytes)} per GPU", style="green")]
    else:
        head = "will not start" if not p.starts else "starts, but will not serve"
        lines = [Text(f"{head}: {why}", style="bold red") for why in p.failures]
        if p.fixes:
            lines.append(Text("fix: " + " | ".join(p.fixes), style="yellow"))
    return [Text(pool_line(p))] + lines


def engine_json(p: EnginePrediction) -> dict[str, Any]:
    """The `engine` object of estimate/check/vet --json (docs/json-schema.md)."""
    return {
        "name": p.engine,
        "version": p.engine_version,
        "settings": dict(p.settings),
        "num_gpus": p.num_gpus,
        "per_gpu": [{"name": i.name, "bytes": i.bytes, "detail": i.detail} for i in p.items],
        "gpu_total_bytes": p.gpu_total_bytes,
        "host_bytes": p.host_bytes,
        "kv_cache_bytes": p.kv_pool_bytes,
        "kv_cache_tokens": p.kv_cache_tokens,
        "num_kv_blocks": p.num_kv_blocks,
        "context_tokens": p.context_tokens,
        "shifts_context": p.shifts_context,
        "max_concurrency": round(p.max_concurrency, 4),
        "max_running_requests": p.max_running_requests,
        "starts": p.starts,
        "ok": p.ok,
        "failures": list(p.failures),
        "fixes": list(p.fixes),
        "warnings": list(p.warnings),
        "notes": list(p.notes),
    }


def engine_plan_short(engine: str, plan: Any, model: Any) -> str:
    """The knobs as the engine names them: 'fp8 · KV fp8 · TP2', 'Q4_K_M · KV q8_0'."""
    own = get_engine(engine).plan_summary(plan, model)
    return own if own is not None else plan_short(model, plan).replace(" · blk16", "")


def engine_fit_table(result: Any, top: int) -> Table:
    w, want = result.workload, getattr(result, "want", "")
    shape = (f"max ctx x {w.batch_size}" if want == "ctx" else f"{w.ctx_tokens:,} x max batch" if want == "batch"
             else f"{w.ctx_tokens:,} x {w.batch_size}")
    table = Table(title_justify="left", title=(
        f"{result.model.name} on {'+'.join(g.name for g in result.box) or result.gpu.name} · {engine_name(result.engine)} · {shape}"
        f" · by {result.objective}"))
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (("#", "right"), ("plan", "left"), ("GPUs", "right"),
                       *((("max ctx" if want == "ctx" else "max batch", "right"),) if want else ()), ("KV pool", "right"),
                       ("KV tokens", "right"), ("conc.", "right"), ("quality", "left"))
    for name, just in columns:
        table.add_column(name, justify=just, no_wrap=name not in ("plan", "quality"), min_width=18 if name == "plan" else None)
    for rank, c in enumerate(result.plans[:top], 1):
        p = c.prediction
        plan = engine_plan_short(result.engine, c.plan, result.model)
        if (ngl := dict(p.settings).get("-ngl")) is not None:
            plan += f" · ngl {ngl}/{result.model.num_layers + 1}"
        reach = () if not want else (f"{c.workload.ctx_tokens:,}" if want == "ctx" else f"{c.workload.batch_size:,}",)
        table.add_row(str(rank), plan, str(c.num_gpus), *reach, format_bytes(p.kv_pool_bytes).replace(" GiB", "G").replace(" MiB", "M"),
                      f"{p.kv_cache_tokens:,}", f"{p.max_concurrency:.1f}x", c.quality.label)
    return table


def engine_fit_json(result: Any, top: int) -> dict[str, Any]:
    return {
        "schema_version": 1, "oomplan_version": __version__, "engine": result.engine, "model": result.model.name,
        "gpu": result.gpu.name, "workload": result.workload.model_dump(), "objective": result.objective,
        "num_considered": result.num_considered, "num_fitting": len(result.plans),
        "plans": [{"plan": c.plan.model_dump(), "summary": engine_plan_short(result.engine, c.plan, result.model),
                   "num_gpus": c.num_gpus, "quality_risk": {"grade": c.quality.grade, "label": c.quality.label},
                   **({"workload": c.workload.model_dump()} if c.workload is not None else {}),
                   "engine": engine_json(c.prediction)} for c in result.plans[:top]],
    }


def vet_json(command: list[str], model_name: str, gpu_name: str, ignored_flags: tuple[str, ...],
             unmodelled_flags: tuple[str, ...], p: EnginePrediction, ok: bool) -> dict[str, Any]:
    """The `vet --json` object (docs/json-schema.md)."""
    return {"schema_version": 1, "oomplan_version": __version__, "command": list(command), "model": model_name,
            "gpu": gpu_name, "ignored_flags": list(ignored_flags), "unmodelled_flags": list(unmodelled_flags),
            "engine": engine_json(p), "ok": ok}
