"""Enumerate the space, evaluate every candidate exactly, keep what fits, rank by objective."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oomplan.planner.evaluate import Evaluator, StageTotal
from oomplan.planner.quality import QualityRisk, quality_risk
from oomplan.planner.space import (
    ALLOCATIONS, PREFILL_CHUNKS, SearchLimits, dms_ratios, kv_dtypes, parallel_layouts, weight_formats,
)
from oomplan.planner.speed import SpeedEstimate, StageTraffic, speed_estimate
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Attention, Logits, Plan, Workload

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
        """CPU memory the offloaded weights take, all GPUs together."""
        return sum(s.offloaded_bytes for s in self.stages) * self.plan.tensor_parallel

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
    num_considered: int  # the whole space, every offload depth included
    num_evaluated: int  # budgets actually computed (dominated offload depths are skipped exactly)
    num_fitting: int
    closest: Candidate | None  # smallest per-GPU total among those that do not fit


def sort_key(c: Candidate, objective: str) -> tuple:
    """quality: fewest and mildest lossy choices (worst grade, sum of grades, count), then GPUs, then speed."""
    q = c.quality
    quality = (q.grade, sum(x.grade for x in q.choices), len(q.choices))
    tps = c.speed.decode_tokens_per_s
    if objective == "throughput":
        return (-tps, *quality, c.num_gpus)
    if objective == "gpus":
        return (c.num_gpus, *quality, -tps)
    if objective == "cost":
        return (c.gpu_hours_per_million_tokens, *quality)
    return (*quality, c.num_gpus, -tps)


def base_plans(model: ModelSpec, gpu: GpuSpec, limits: SearchLimits, attention: Attention, logits: Logits):
    """Every candidate before offload, in a fixed order (so ties rank deterministically)."""
    defaults = Plan().model_dump()
    for tp, pp in parallel_layouts(model, gpu, limits):
        for weights in weight_formats(gpu, limits):
            for kv in kv_dtypes(gpu, limits):
                for dms in dms_ratios(limits):
                    for paged, block in ALLOCATIONS:
                        for chunk in PREFILL_CHUNKS:
                            yield Plan.model_construct(
                                **defaults | dict(
                                    weights=weights, kv_dtype=kv, dms_ratio=dms, paged=paged, block_size=block,
                                    tensor_parallel=tp, pipeline_parallel=pp, prefill_chunk_tokens=chunk,
                                    attention=attention, logits=logits,
                                )
                            )


def evaluate(ev: Evaluator, plan: Plan, workload: Workload) -> tuple[StageTotal, ...]:
    return tuple(ev.stage_total(plan, workload, s) for s in range(plan.pipeline_parallel))


def min_offload_layers(ev: Evaluator, plan: Plan, workload: Workload, capacity: int) -> int | None:
    """Fewest whole layers to offload (single stage) so the plan fits; None when none does.

    Offloading one more layer never adds GPU bytes once the staging buffer exists, so binary search is exact.
    """
    prefix = ev.weights(plan, 0).largest_first_prefix
    num_layers = len(prefix) - 1
    if ev.stage_total(plan, workload, 0, prefix[num_layers]).total_bytes > capacity:
        return None
    lo, hi = 1, num_layers
    while lo < hi:
        mid = (lo + hi) // 2
        if ev.stage_total(plan, workload, 0, prefix[mid]).total_bytes <= capacity:
            hi = mid
        else:
            lo = mid + 1
    return lo


def make_candidate(ev: Evaluator, plan: Plan, workload: Workload, stages: tuple[StageTotal, ...]) -> Candidate:
    traffic = [StageTraffic(s.weights_bytes - s.expert_bytes, s.expert_bytes, s.kv_cache_bytes, s.offloaded_bytes) for s in stages]
    return Candidate(plan, workload, stages, ev.gpu.memory_bytes, quality_risk(ev.model, plan),
                     speed_estimate(ev.model, ev.gpu, workload, plan, traffic))


def with_offload(plan: Plan, ev: Evaluator, layers: int) -> Plan:
    offload = ev.weights(plan, 0).largest_first_prefix[layers]
    return Plan.model_construct(**plan.model_dump() | {"offload_bytes": offload})


def search(model: ModelSpec, gpu: GpuSpec, workload: Workload, limits: SearchLimits, objective: str = "quality",
           attention: Attention = "sdpa", logits: Logits = "last") -> SearchResult:
    ev = Evaluator(model, gpu)
    capacity, fitting, considered = gpu.memory_bytes, [], 0
    closest: tuple[int, Plan, tuple[StageTotal, ...]] | None = None
    for plan in base_plans(model, gpu, limits, attention, logits):
        stages = evaluate(ev, plan, workload)
        single = plan.pipeline_parallel == 1
        considered += (len(ev.weights(plan, 0).largest_first_prefix) if single else 1)
        worst = max(s.total_bytes for s in stages)
        if worst <= capacity:
            fitting.append((plan, stages))
            continue
        if closest is None or worst < closest[0]:
            closest = (worst, plan, stages)
        layers = min_offload_layers(ev, plan, workload, capacity) if single else None
        if layers is not None:
            offloaded = with_offload(plan, ev, layers)
            staged = evaluate(ev, offloaded, workload)
            if staged[0].offloaded_bytes * plan.tensor_parallel <= limits.host_memory_bytes:
                fitting.append((offloaded, staged))
    ranked = sorted((make_candidate(ev, p, workload, s) for p, s in fitting), key=lambda c: sort_key(c, objective))
    near = make_candidate(ev, closest[1], workload, closest[2]) if closest else None
    return SearchResult(model, gpu, workload, objective, tuple(dedupe(ranked)), considered, ev.num_evaluated, len(ranked), near)


def signature(c: Candidate) -> tuple:
    """Plans that differ only in KV allocation or prefill chunking show as one row (the best)."""
    p = c.plan
    return (p.weights, p.kv_dtype, p.dms_ratio, p.tensor_parallel, p.pipeline_parallel, p.offload_bytes > 0)


def dedupe(ranked: list[Candidate]) -> list[Candidate]:
    seen, out = set(), []
    for c in ranked:
        key = signature(c)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
