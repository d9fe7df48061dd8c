"""Inverse questions by exact search: the longest context, or the most sequences, that fit.

Memory never decreases with context or batch (KV, activations and logits all grow or stay),
so a binary search over whole KV blocks (or tokens, for contiguous KV) is exact.
"""
from __future__ import annotations

from oomplan.planner.evaluate import Evaluator
from oomplan.planner.search import SearchResult, base_plans, evaluate, make_candidate, signature, sort_key
from oomplan.specs.plan import Plan, Workload


def fits(ev: Evaluator, plan: Plan, workload: Workload) -> bool:
    cap = ev.gpu.memory_bytes
    return all(ev.stage_total(plan, workload, s).total_bytes <= cap for s in range(plan.pipeline_parallel))


def _largest(ok, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] with ok(n), given ok is monotone (true then false); lo - 1 when none."""
    if not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def max_ctx_tokens(ev: Evaluator, plan: Plan, batch_size: int, limit_tokens: int) -> int:
    """Longest context (a whole number of KV blocks when paged) that fits; 0 when none does."""
    step = plan.block_size if plan.paged else 1

    def ok(units: int) -> bool:
        return fits(ev, plan, Workload(ctx_tokens=units * step, batch_size=batch_size))

    return max(0, _largest(ok, 1, limit_tokens // step)) * step


def max_batch_size(ev: Evaluator, plan: Plan, ctx_tokens: int, limit: int = 1 << 16) -> int:
    """Most concurrent sequences of ctx_tokens that fit; 0 when not even one does."""

    def ok(batch: int) -> bool:
        return fits(ev, plan, Workload(ctx_tokens=ctx_tokens, batch_size=batch))

    return max(0, _largest(ok, 1, limit))


def search_max(model, gpu, workload: Workload, limits, objective: str, what: str, limit: int,
               attention="sdpa", logits="last"):
    """`fit --ctx max` / `--batch max`: each plan at its own largest ctx (or batch), ranked.

    Plans are taken without offload here: offload trades speed for capacity and is searched by `fit`.
    """
    ev = Evaluator(model, gpu)
    found, considered = [], 0
    for plan in base_plans(model, gpu, limits, attention, logits):
        considered += 1
        if what == "ctx":
            best = max_ctx_tokens(ev, plan, workload.batch_size, limit)
            at = Workload(ctx_tokens=best, batch_size=workload.batch_size) if best else None
        else:
            best = max_batch_size(ev, plan, workload.ctx_tokens, limit)
            at = Workload(ctx_tokens=workload.ctx_tokens, batch_size=best) if best else None
        if at is not None:
            found.append(make_candidate(ev, plan, at, evaluate(ev, plan, at)))
    reach = (lambda c: c.workload.ctx_tokens) if what == "ctx" else (lambda c: c.workload.batch_size)
    best: dict[tuple, object] = {}
    for c in found:  # per signature, the variant that reaches furthest
        if signature(c) not in best or reach(c) > reach(best[signature(c)]):
            best[signature(c)] = c
    ranked = sorted(best.values(), key=lambda c: (sort_key(c, objective), -reach(c)))
    return SearchResult(model, gpu, workload, objective, tuple(ranked), considered, ev.num_evaluated, len(found), None)
