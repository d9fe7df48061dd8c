"""Rendering of a card comparison (`fit --gpu a,b,c`, `estimate --gpu a,b,c`): one row per card, JSON."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oomplan import __version__
from oomplan.planner.cards import CardChoice
from oomplan.report.fit_report import SCHEMA_VERSION, candidate_json
from oomplan.report.summary import plan_short
from oomplan.units import format_count

if TYPE_CHECKING:
    from rich.table import Table

    from oomplan.memory.budget import Estimate
    from oomplan.planner.curve import CurveSet


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f}G"


def _tps(tps: float) -> str:
    return f"{tps:.1f}" if tps < 100 else f"{tps:,.0f}"


def cards_table(choices: list[CardChoice], objective: str, top: int) -> Table:
    """The first `top` cards of the ranking (the title counts them all)."""
    from rich.table import Table

    first = choices[0].result
    priced = any(c.price is not None for c in choices)
    table = Table(title_justify="left", title=(
        f"{first.model.name} · ctx {format_count(first.workload.ctx_tokens)} x batch {first.workload.batch_size}"
        f" · {len(choices)} cards by {objective}"))
    columns = ["#", "card", "GPUs", "best plan", "per GPU", "quality", "tok/s"] + (["$/Mtok"] if priced else [])  # the $/h given: --json
    for name in columns:  # card, plan and quality wrap (80 columns with --gpu all); the plan keeps room for a knob a line
        table.add_column(name, justify="left" if name in ("card", "best plan", "quality") else "right", overflow="fold",
                         no_wrap=name not in ("card", "best plan", "quality"), min_width=12 if name == "best plan" else None)
    rank = 0
    for c in choices[:top]:
        best = c.best
        if best is None:
            table.add_row("-", c.gpu.name, "-", "nothing fits", "-", "-", "-", *(["-"] if priced else []))
            continue
        rank += 1
        cost = [f"{c.usd_per_million_tokens:.2f}" if c.usd_per_million_tokens is not None else "-"] if priced else []
        table.add_row(str(rank), c.gpu.name, str(best.num_gpus), plan_short(c.result.model, best.plan), _gib(best.per_gpu.total_bytes),
                      best.quality.label, _tps(best.speed.decode_tokens_per_s), *cost)
    return table


def cards_summary(choices: list[CardChoice], objective: str, top: int) -> str:
    fitting = sum(c.best is not None for c in choices)
    shown = f"showing {top}, --top N shows more; " if top < len(choices) else ""
    return (f"{len(choices)} cards searched, {fitting} with a plan that fits; {shown}each row is that card's best plan by {objective}"
            " (oomplan fit MODEL --gpu CARD shows the others)")


def cards_json(choices: list[CardChoice], objective: str, top: int) -> dict[str, Any]:
    """docs/json-schema.md 'Card comparison': the first `top` cards ranked, each with its best plan (null: nothing fits)."""
    first = choices[0].result
    return {
        "schema_version": SCHEMA_VERSION,
        "oomplan_version": __version__,
        "model": {"name": first.model.name, "config_sha256": first.model.config_sha256},
        "workload": first.workload.model_dump(),
        "objective": objective,
        "num_cards": len(choices),
        "cards": [{
            "rank": i + 1 if c.best is not None else None,
            "gpu": {"ref": c.ref, "name": c.gpu.name, "display_name": c.gpu.display_name, "memory_bytes": c.gpu.memory_bytes},
            "fits": c.best is not None,
            "num_considered": c.result.num_considered,
            "num_fitting": c.result.num_fitting,
            "usd_per_gpu_hour": c.price.usd_per_gpu_hour if c.price else None,
            "price_source": c.price.source if c.price else None,
            "usd_per_million_tokens": c.usd_per_million_tokens,
            "best": candidate_json(c.best, c.result.model) if c.best is not None else None,
        } for i, c in enumerate(choices[:top])],
    }


def estimates_table(rows: list[tuple[str, Estimate]]) -> Table:
    from rich.table import Table

    est0 = rows[0][1]
    table = Table(title_justify="left", title=(
        f"{est0.model.name} · ctx {format_count(est0.workload.ctx_tokens)} x batch {est0.workload.batch_size} · one row per card"))
    for name in ("card", "GPUs", "per GPU", "capacity", "free", "verdict"):
        table.add_column(name, justify="left" if name in ("card", "verdict") else "right", no_wrap=True)
    for _, est in rows:
        table.add_row(est.gpu.name, str(est.plan.num_gpus), _gib(est.per_gpu.total_bytes), _gib(est.capacity_bytes),
                      _gib(est.headroom_bytes), "fits" if est.fits else "does not fit")
    return table


def curves_table(sets: list[tuple[str, CurveSet]]) -> Table:
    """One row per card: its capacity and, per plan, the largest ctx (or batch) that fits (0: none)."""
    from rich.table import Table

    first = sets[0][1]
    fixed = f"batch {first.fixed}" if first.axis == "ctx" else f"ctx {format_count(first.fixed)}"
    table = Table(title_justify="left", title=f"{first.model.name} · {fixed} · max {first.axis} that fits, one row per card")
    table.add_column("card", no_wrap=True)
    table.add_column("capacity", justify="right")
    for curve in first.curves:
        table.add_column(curve.label, justify="right")
    for _, cs in sets:
        cells = []
        for curve in cs.curves:
            last, oom = curve.cliff.last_fit, curve.cliff.first_oom
            value = "none" if last == 0 else format_count(last) if cs.axis == "ctx" else str(last)
            cells.append(value + ("" if oom is not None or last == 0 else "+"))
        table.add_row(cs.gpu.name, _gib(cs.capacity_bytes), *cells)
    return table
