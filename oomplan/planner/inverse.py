"""Inverse questions by exact search: the longest context, or the most sequences, that fit.

Memory never decreases with context or batch (KV, activations and logits all grow or stay),
so a search over whole KV blocks (or tokens, for contiguous KV) is exact. The search
interpolates on the busiest stage's margin (memory is close to linear in tokens, so it lands
within a block in a few probes) and bisects every other step, so it never takes more than twice
binary search's probes.
"""
from __future__ import annotations

from collections.abc import Callable

from oomplan.planner.evaluate import Evaluator
from oomplan.planner.search import (
    Candidate, SearchResult, drop_dominated, evaluate, make_candidate, num_base_plans, plan_groups, signature, ranking_key,
)
from oomplan.specs.plan import Plan, Workload

MAX_BATCH_SIZE = 1 << 16  # `--batch max` (fit, the Python API) searches up to this many sequences


def margin_bytes(ev: Evaluator, plan: Plan, workload: Workload) -> int:
    """The busiest stage's total minus the card's memory: <= 0 fits."""
    return ev.worst_total_bytes(plan, workload) - ev.gpu.memory_bytes


def fits(ev: Evaluator, plan: Plan, workload: Workload) -> bool:
    return margin_bytes(ev, plan, workload) <= 0


def largest_fitting(margin: Callable[[int], int], lo: int, hi: int, start: int | None = None) -> int:
    """Largest n in [lo, hi] with margin(n) <= 0, given margin never decreases; lo - 1 when none.

    `start` (a value known to be a good guess, e.g. the answer one pipeline stage shallower) is tried
    first. Then regula falsi on the margin, alternating with bisection whenever a step fails to halve
    the interval: exact, and a handful of probes when memory is close to linear in n.
    """
    m_lo = margin(lo)
    if m_lo > 0:
        return lo - 1
    m_hi = margin(hi)
    if m_hi <= 0:
        return hi
    if start is not None and lo < start < hi:
        m = margin(start)
        if m <= 0:
            lo, m_lo = start, m
        else:
            hi, m_hi = start, m
    bisect = False
    while hi - lo > 1:  # margin(lo) <= 0 < margin(hi)
        if bisect:
            mid = (lo + hi) // 2
        else:
            mid = lo + (hi - lo) * -m_lo // (m_hi - m_lo)
            mid = min(max(mid, lo + 1), hi - 1)
        width = hi - lo
        m = margin(mid)
        if m <= 0:
            lo, m_lo = mid, m
        else:
            hi, m_hi = mid, m
        bisect = not bisect and (hi - lo) * 2 > width
    return lo


def max_ctx_tokens(ev: Evaluator, plan: Plan, batch_size: int, limit_tokens: int, start_tokens: int | None = None) -> int:
    """Longest context (a whole number of KV blocks when paged) that fits; 0 when none does."""
    step = plan.block_size if plan.paged else 1

    def margin(units: int) -> int:
        return ev.worst_total_at(plan, units * step, batch_size) - ev.gpu.memory_bytes

    start = start_tokens // step if start_tokens else None
    return max(0, largest_fitting(margin, 1, limit_tokens // step, start)) * step


def max_batch_size(ev: Evaluator, plan: Plan, ctx_tokens: int, limit: int = MAX_BATCH_SIZE, start: int | None = None) -> int:
    """Most concurrent sequences of ctx_tokens that fit; 0 when not even one does."""

    def margin(batch: int) -> int:
        return ev.worst_total_at(plan, ctx_tokens, batch) - ev.gpu.memory_bytes

    return max(0, largest_fitting(margin, 1, limit, start))


def search_max(model, gpu, workload: Workload, limits, objective: str, what: str, limit: int,
               attention="sdpa", logits="last") -> SearchResult:
    """`fit --ctx max` / `--batch max`: each plan at its own largest ctx (or batch), ranked.

    Plans are taken without offload here: offload trades speed for capacity and is searched by `fit`.
    Dominance: a deeper pipeline of the same knobs that reaches no further than a shallower one is
    skipped (more GPUs, no gain), and once a set of knobs reaches `limit` no deeper pipeline is tried,
    unless `limits.keep_dominated` (fit --all).
    """
    ev = Evaluator(model, gpu, workload.num_images, workload.image_tokens, workload.image_size)
    found: list[tuple[tuple, Candidate]] = []
    dominated = 0

    def reach_of(plan: Plan, start: int | None) -> int:
        if what == "ctx":
            return max_ctx_tokens(ev, plan, workload.batch_size, limit, start)
        return max_batch_size(ev, plan, workload.ctx_tokens, limit, start)

    def beats(plan: Plan, best: int) -> bool:
        """Whether the plan reaches past `best`: it fits at the next value it can hold (monotone)."""
        step = plan.block_size if what == "ctx" and plan.paged else 1
        nxt = (best // step + 1) * step
        if nxt > limit:
            return False
        ctx, batch = (nxt, workload.batch_size) if what == "ctx" else (workload.ctx_tokens, nxt)
        return ev.worst_total_at(plan, ctx, batch) <= ev.gpu.memory_bytes

    for group in plan_groups(model, gpu, limits, attention, logits):
        reached = 0  # the furthest a shallower pipeline of these knobs reached
        for position, depth in enumerate(group):
            best, chosen = 0, None
            for order, _, make in depth:  # allocation/chunking variants: the row shows the one reaching furthest
                plan = make()
                if limits.keep_dominated or best == 0 or beats(plan, best):
                    value = reach_of(plan, best or reached or None)
                    if value and limits.keep_dominated:
                        found.append((order, _candidate(ev, plan, workload, what, value)))
                    if value > best:
                        best, chosen = value, (order, plan)
            if chosen is None or limits.keep_dominated:
                continue
            if best <= reached:
                dominated += 1
                continue
            reached = best
            found.append((chosen[0], _candidate(ev, chosen[1], workload, what, best)))
            if best >= limit:
                dominated += len(group) - position - 1
                break
    reach = (lambda c: c.workload.ctx_tokens) if what == "ctx" else (lambda c: c.workload.batch_size)
    best_of: dict[tuple, tuple[tuple, Candidate]] = {}
    for order, c in sorted(found, key=lambda x: x[0]):  # per signature, the variant that reaches furthest
        key = signature(c)
        if key not in best_of or reach(c) > reach(best_of[key][1]):
            best_of[key] = (order, c)
    rank = ranking_key((c for _, c in best_of.values()), objective)
    ranked = [c for _, c in sorted(best_of.values(), key=lambda x: (rank(x[1]), -reach(x[1]), x[0]))]
    if not limits.keep_dominated:
        kept = drop_dominated(ranked, reach)
        dominated, ranked = dominated + len(ranked) - len(kept), kept
    return SearchResult(model, gpu, workload, objective, tuple(ranked), num_base_plans(model, gpu, limits),
                        ev.num_evaluated, len(found), None, dominated)


def _candidate(ev: Evaluator, plan: Plan, workload: Workload, what: str, value: int) -> Candidate:
    at = workload.model_copy(update={"ctx_tokens": value} if what == "ctx" else {"batch_size": value})
    return make_candidate(ev, plan, at, evaluate(ev, plan, at))

