"""Enumerate the space, evaluate every candidate exactly, keep what fits, rank by objective."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import product
from typing import Literal

from oomplan.errors import InputError
from oomplan.planner.evaluate import Evaluator, StageTotal
from oomplan.planner.quality import QualityRisk, quality_risk
from oomplan.planner.space import (
    ALLOCATIONS, PREFILL_CHUNKS, SearchLimits, kv_choices, kv_dtypes, parallel_layouts, weight_formats,
)
from oomplan.planner.speed import SpeedEstimate, StageTraffic, speed_estimate
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Attention, Logits, Plan, Workload
from oomplan.units import format_bytes

Objective = Literal["quality", "throughput", "gpus", "cost"]
OBJECTIVES: tuple[str, ...] = Objective.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Candidate:
    plan: Plan
    workload: Workload
    stages: tuple[StageTotal, ...]
    capacity_bytes: int
    quality: QualityRisk
    speed: SpeedEstimate

    @property
    def per_gpu(self) -> StageTotal:
        return max(self.stages, key=lambda s: s.total_bytes)

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.per_gpu.total_bytes

    @property
    def num_gpus(self) -> int:
        return self.plan.num_gpus

    @property
    def host_memory_bytes(self) -> int:
        """CPU memory the offloaded weights take, all GPUs together, plus an episodic KV policy's host store."""
        return sum(s.offloaded_bytes for s in self.stages) * self.plan.tensor_parallel + host_store_bytes(self.plan)

    @property
    def gpu_hours_per_million_tokens(self) -> float:
        return self.speed.gpu_hours_per_million_tokens(self.num_gpus)


@dataclass(frozen=True)
class SearchResult:
    model: ModelSpec
    gpu: GpuSpec
    workload: Workload
    objective: str
    plans: tuple[Candidate, ...]  # fitting, ranked, one per distinct choice of lossy knobs/GPUs/offload
    num_considered: int  # the whole space, every offload depth and pipeline depth included
    num_evaluated: int  # budgets actually computed (dominated offload and pipeline depths are skipped exactly)
    num_fitting: int
    closest: Candidate | None  # smallest per-GPU total among those that do not fit
    num_dominated: int = 0  # plans not shown: a shallower pipeline of the same knobs already fits (--all shows them)


def host_store_bytes(plan: Plan) -> int:
    """An episodic KV policy's store (Larimar-style): host or remote memory, not the GPU."""
    p = plan.kv_policy
    return p.host_bytes if p is not None and p.kind == "episodic" else 0


def significant(x: float) -> float:
    """x to 9 significant digits: speeds summed over stages in another order differ in the last
    bits, and such noise must not rank a 16-GPU plan above the identical 8-GPU one."""
    return float(f"{x:.9g}")


# The speed rule of the quality objective (README "What plan fits?", docs/memory-model.md "Ranking"): a plan
# whose decode speed is under a tenth of the fastest plan of the same quality ranks after every plan of that
# quality that is not. Tensor parallelism speeds decode by at most its degree (8 in a node) in this roofline,
# so in practice the slow ones are the plans that stream offloaded weights over the host link.
SLOW_DECODE_FACTOR = 10


def quality_key(c: Candidate) -> tuple[int, int, int]:
    """Fewest and mildest lossy choices: worst grade, sum of grades, count."""
    q = c.quality
    return (q.grade, sum(x.grade for x in q.choices), len(q.choices))


def is_slow(c: Candidate, fastest_tokens_per_s: float) -> bool:
    """Decodes under 1/SLOW_DECODE_FACTOR of `fastest_tokens_per_s` (the fastest plan of its quality)."""
    return significant(c.speed.decode_tokens_per_s) * SLOW_DECODE_FACTOR < fastest_tokens_per_s


def sort_key(c: Candidate, objective: str, fastest_tokens_per_s: float = 0.0) -> tuple:
    """quality: fewest and mildest lossy choices, then not slow (SLOW_DECODE_FACTOR against
    `fastest_tokens_per_s`, the fastest plan of the same quality: ranking_key), then GPUs, then speed."""
    quality = quality_key(c)
    tps = significant(c.speed.decode_tokens_per_s)
    if objective == "throughput":
        return (-tps, *quality, c.num_gpus)
    if objective == "gpus":
        return (c.num_gpus, *quality, -tps)
    if objective == "cost":
        return (significant(c.gpu_hours_per_million_tokens), *quality, c.num_gpus)
    return (*quality, is_slow(c, fastest_tokens_per_s), c.num_gpus, -tps)


def fastest_by_quality(candidates: Iterable[Candidate]) -> dict[tuple[int, int, int], float]:
    """The fastest decode (tokens/s, 9 significant digits) of each quality among `candidates`."""
    fastest: dict[tuple[int, int, int], float] = {}
    for c in candidates:
        q = quality_key(c)
        fastest[q] = max(fastest.get(q, 0.0), significant(c.speed.decode_tokens_per_s))
    return fastest


def ranking_key(candidates: Iterable[Candidate], objective: str) -> Callable[[Candidate], tuple]:
    """sort_key with the fastest decode of each quality among `candidates` (the set being ranked)."""
    fastest = fastest_by_quality(candidates)
    return lambda c: sort_key(c, objective, fastest.get(quality_key(c), 0.0))


def knob_sets(gpu: GpuSpec, limits: SearchLimits) -> tuple[tuple, ...]:
    """(weights, kv dtype, (DMS ratio, KV policy), (paged, block), prefill chunk) in the fixed search order."""
    chunks = PREFILL_CHUNKS if limits.allow_prefill_chunks else (None,)
    return tuple(product(weight_formats(gpu, limits), kv_dtypes(gpu, limits), kv_choices(limits), ALLOCATIONS, chunks))


def plan_groups(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits, attention: Attention, logits: Logits):
    """Every candidate before offload, grouped by lossy knobs and TP (weights, KV dtype, DMS, TP):
    each group a list of pipeline depths, ascending, each depth a list of its allocation/chunking
    variants as (order, pp, make). `make()` builds the Plan (plans are built only when reached);
    `order` is the candidate's place in the plain enumeration (TP, PP, knobs), which breaks
    ranking ties deterministically.
    """
    defaults = Plan().model_dump()
    by_tp: dict[int, list[tuple[int, int]]] = {}
    for index, (tp, pp) in enumerate(parallel_layouts(model, gpu, limits)):
        by_tp.setdefault(tp, []).append((index, pp))
    knobs = knob_sets(gpu, limits)
    lossy: dict[tuple, list[tuple[int, tuple]]] = {}
    for k, (weights, kv, dms, allocation, chunk) in enumerate(knobs):
        lossy.setdefault((weights, kv, dms), []).append((k, (allocation, chunk)))
    for tp, depths in by_tp.items():
        for (weights, kv, dms), variants in lossy.items():
            group = []
            for index, pp in depths:
                depth = []
                for k, ((paged, block), chunk) in variants:
                    fields = defaults | dict(weights=weights, kv_dtype=kv, dms_ratio=dms[0], kv_policy=dms[1], paged=paged, block_size=block,
                                             tensor_parallel=tp, pipeline_parallel=pp, prefill_chunk_tokens=chunk,
                                             attention=attention, logits=logits)
                    depth.append(((index, k), pp, partial(Plan.model_construct, **fields)))
                group.append(depth)
            yield group


def base_plans(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits, attention: Attention, logits: Logits):
    """Every candidate before offload, in the plain enumeration order."""
    flat = [(order, make) for group in plan_groups(model, gpu, limits, attention, logits) for depth in group for order, _, make in depth]
    for _, make in sorted(flat, key=lambda x: x[0]):
        yield make()


def space_size(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits) -> int:
    """Candidates in the whole space: a single-stage plan also stands for each of its offload depths."""
    layouts = parallel_layouts(model, gpu, limits)
    return len(knob_sets(gpu, limits)) * sum(model.num_layers + 1 if pp == 1 else 1 for _, pp in layouts)


def num_base_plans(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits) -> int:
    """Candidates before offload: layouts x knob sets."""
    return len(knob_sets(gpu, limits)) * len(parallel_layouts(model, gpu, limits))


def evaluate(ev: Evaluator, plan: Plan, workload: Workload) -> tuple[StageTotal, ...]:
    return ev.all_stages(plan, workload)


def min_offload_layers(ev: Evaluator, plan: Plan, workload: Workload, capacity: int) -> int | None:
    """Fewest whole layers to offload (single stage) so the plan fits; None when none does.

    Offloading one more layer never adds GPU bytes once the staging buffer exists, so binary search is exact.
    """
    prefix = ev.weights(plan, 0).largest_first_prefix
    num_layers = len(prefix) - 1
    if ev.stage_total(plan, workload, 0, prefix[num_layers]).peak_bytes > capacity:
        return None
    lo, hi = 1, num_layers
    while lo < hi:
        mid = (lo + hi) // 2
        if ev.stage_total(plan, workload, 0, prefix[mid]).peak_bytes <= capacity:
            hi = mid
        else:
            lo = mid + 1
    return lo


def make_candidate(ev: Evaluator, plan: Plan, workload: Workload, stages: tuple[StageTotal, ...]) -> Candidate:
    traffic = [StageTraffic(s.weights_bytes - s.expert_bytes, s.expert_bytes, s.kv_cache_bytes, s.offloaded_bytes) for s in stages]
    return Candidate(plan, workload, stages, ev.gpu.memory_bytes, quality_risk(ev.model, plan, workload.ctx_tokens),
                     speed_estimate(ev.model, ev.gpu, workload, plan, traffic))


def with_offload(plan: Plan, ev: Evaluator, layers: int) -> Plan:
    offload = ev.weights(plan, 0).largest_first_prefix[layers]
    return plan.model_copy(update={"offload_bytes": offload})  # keeps kv_policy a spec (model_dump would make it a dict)


def search(model: ModelSpec, gpu: GpuSpec, workload: Workload, limits: SearchLimits, objective: str = "quality",
           attention: Attention = "sdpa", logits: Logits = "last") -> SearchResult:
    """Every plan that fits, ranked. Dominance (docs/memory-model.md, "What the search skips"): once
    a set of knobs fits at pipeline depth p without offload, deeper pipelines of the same knobs use
    more GPUs for the same quality, no faster decode and no faster prefill, so they are not
    evaluated unless `limits.keep_dominated` (fit --all)."""
    for policy in limits.kv_policies:
        if policy.kind == "episodic" and policy.host_bytes > limits.host_memory_bytes:
            raise InputError(f"--kv-policy {policy.spec}: the episodic store ({format_bytes(policy.host_bytes)}) exceeds "
                             f"--host-mem ({format_bytes(limits.host_memory_bytes)})")
    ev = Evaluator(model, gpu, workload.num_images, workload.image_tokens, workload.image_size)
    capacity, fitting, dominated = gpu.memory_bytes, [], 0
    closest: tuple[int, Plan, tuple[StageTotal, ...]] | None = None
    for group in plan_groups(model, gpu, limits, attention, logits):
        for position, depth in enumerate(group):
            fits_here = False
            for order, pp, make in depth:
                plan = make()
                stages = evaluate(ev, plan, workload)
                worst = max(s.peak_bytes for s in stages)
                if worst <= capacity:
                    fitting.append((order, plan, stages))
                    fits_here = True
                    continue
                if closest is None or worst < closest[0]:
                    closest = (worst, plan, stages)
                layers = min_offload_layers(ev, plan, workload, capacity) if pp == 1 else None
                if layers is not None:
                    offloaded = with_offload(plan, ev, layers)
                    staged = evaluate(ev, offloaded, workload)
                    if staged[0].offloaded_bytes * plan.tensor_parallel + host_store_bytes(plan) <= limits.host_memory_bytes:
                        fitting.append((order, offloaded, staged))
            if fits_here and not limits.keep_dominated:
                dominated += len(group) - position - 1
                break
    made = [(order, make_candidate(ev, p, workload, s)) for order, p, s in fitting]
    key = ranking_key((c for _, c in made), objective)
    ranked = [c for _, c in sorted(made, key=lambda x: (key(x[1]), x[0]))]
    near = make_candidate(ev, closest[1], workload, closest[2]) if closest else None
    rows = dedupe(ranked)
    if not limits.keep_dominated:
        kept = drop_dominated(rows)
        dominated, rows = dominated + len(rows) - len(kept), kept
    return SearchResult(model, gpu, workload, objective, tuple(rows), space_size(model, gpu, limits),
                        ev.num_evaluated, len(ranked), near, dominated)


def signature(c: Candidate) -> tuple:
    """Plans that differ only in KV allocation or prefill chunking show as one row (the best)."""
    p = c.plan
    return (p.weights, p.kv_dtype, p.dms_ratio, p.kv_policy, p.tensor_parallel, p.pipeline_parallel, p.offload_bytes > 0)


def dedupe(ranked: list[Candidate]) -> list[Candidate]:
    seen, out = set(), []
    for c in ranked:
        key = signature(c)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def lossy_knobs(c: Candidate) -> tuple:
    """What a plan gives up, and its TP group: plans equal here differ only in stages, offload or allocation."""
    p = c.plan
    return (p.weights, p.kv_dtype, p.dms_ratio, p.kv_policy, p.tensor_parallel)


def drop_dominated(rows: list[Candidate], reach=None) -> list[Candidate]:
    """The dominance rule (docs/memory-model.md): a row is dominated when a row with the same lossy knobs
    and TP has fewer pipeline stages and no offload, and (with `reach`, for --ctx/--batch max) reaches
    at least as far; a row with offload is dominated by the same knobs fitting without it. Such a row
    costs more GPUs (or streams weights over the host link) for the same quality and no speed."""
    shallow: dict[tuple, list[Candidate]] = {}
    for c in rows:
        if not c.plan.offload_bytes:
            shallow.setdefault(lossy_knobs(c), []).append(c)

    def dominated(c: Candidate) -> bool:
        for d in shallow.get(lossy_knobs(c), ()):
            fewer = d.plan.pipeline_parallel < c.plan.pipeline_parallel or (c.plan.offload_bytes and d.plan.pipeline_parallel == 1)
            if fewer and (reach is None or reach(d) >= reach(c)):
                return True
        return False

    return [c for c in rows if not dominated(c)]
