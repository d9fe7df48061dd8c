"""Search training plans: TP/PP/DP layout, ZeRO stage and CPU offload, recompute policy, micro-batch and
gradient accumulation for a global batch; keep what fits (GPU and host memory), rank by roofline throughput.

Memory never decreases with the micro-batch, so each layout/sharding/recompute choice binary-searches its
largest fitting micro-batch and evaluates the speed of every smaller one (pipelines prefer more, smaller
micro-batches: fewer bubbles).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from oomplan.memory.train_estimate import TrainEstimate, estimate_training
from oomplan.memory.validate import check_parallel
from oomplan.planner.space import TP_DEGREES
from oomplan.planner.train_speed import TrainSpeed, train_speed
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.training import RECOMPUTES, TrainingPlan
from oomplan.units import DEFAULT_HOST_MEMORY_BYTES

TrainObjective = Literal["throughput", "gpus"]
TRAIN_OBJECTIVES: tuple[str, ...] = TrainObjective.__args__  # type: ignore[attr-defined]
PP_DEGREES = (1, 2, 4, 8, 16)
MAX_MICRO_BATCH = 64
# (ZeRO stage, offload optimizer, offload weights): DeepSpeed offloads from stage 1 up, weights at stage 3 only
SHARDINGS = ((0, False, False), (1, False, False), (2, False, False), (3, False, False), (2, True, False), (3, True, False), (3, True, True))


@dataclass(frozen=True)
class TrainLimits:
    """What the user allows or fixes."""

    max_gpus: int
    exact_gpus: int | None = None
    host_memory_bytes: int | None = DEFAULT_HOST_MEMORY_BYTES  # one node's CPU memory for offloaded states
    global_batch_size: int | None = None  # sequences per optimizer step; None: the largest micro-batch, no accumulation
    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    zero_stage: int | None = None
    recompute: str | None = None
    allow_offload: bool = True


@dataclass(frozen=True)
class TrainCandidate:
    estimate: TrainEstimate
    speed: TrainSpeed

    @property
    def plan(self) -> TrainingPlan:
        return self.estimate.plan

    @property
    def num_gpus(self) -> int:
        return self.plan.num_gpus


@dataclass(frozen=True)
class TrainSearchResult:
    model: ModelSpec
    gpu: GpuSpec
    request: TrainingPlan  # mode, optimizer, precision, sequence, attention, LoRA knobs
    limits: TrainLimits
    objective: str
    plans: tuple[TrainCandidate, ...]  # fitting, ranked, one per layout/sharding/recompute choice
    num_considered: int
    num_evaluated: int
    closest: TrainCandidate | None  # smallest per-GPU total among those that do not fit


def gpu_counts(limits: TrainLimits) -> list[int]:
    """Exactly --gpus, else powers of two up to the limit (and the limit itself)."""
    if limits.exact_gpus is not None:
        return [limits.exact_gpus]
    return sorted({1 << i for i in range(limits.max_gpus.bit_length()) if 1 << i <= limits.max_gpus} | {limits.max_gpus})


def layouts(model: ModelSpec, gpu: GpuSpec, limits: TrainLimits) -> list[tuple[int, int, int]]:
    """(tp, pp, dp): TP divides the heads and stays in a node; DP divides the global batch. A fixed TP/PP
    that cannot split the model is a FieldError, worded as `estimate --train` words it."""
    check_parallel(model, limits.tensor_parallel or 1, limits.pipeline_parallel or 1)
    tps = [limits.tensor_parallel] if limits.tensor_parallel else [t for t in TP_DEGREES if t <= gpu.num_gpus_per_node and model.num_attention_heads % t == 0]
    pps = [limits.pipeline_parallel] if limits.pipeline_parallel else [p for p in PP_DEGREES if p <= model.num_layers]
    out = []
    for tp in tps:
        for pp in pps:
            for n in gpu_counts(limits):
                dp = n // (tp * pp)
                if dp and n % (tp * pp) == 0 and (limits.global_batch_size is None or limits.global_batch_size % dp == 0):
                    out.append((tp, pp, dp))
    return out


def micro_batches(limits: TrainLimits, dp: int) -> list[int]:
    """Micro-batch sizes per DP rank: divisors of the rank's share of the global batch, up to 64."""
    if limits.global_batch_size is None:
        return [1 << i for i in range(7)]
    share = limits.global_batch_size // dp
    return [m for m in range(1, min(share, MAX_MICRO_BATCH) + 1) if share % m == 0]


def shardings(dp: int, limits: TrainLimits) -> list[tuple[int, bool, bool]]:
    out = [s for s in SHARDINGS if (dp > 1 or s[0] == 0 or s[1]) and (limits.allow_offload or not s[1])]
    return [s for s in out if limits.zero_stage is None or s[0] == limits.zero_stage]


def candidate_plan(request: TrainingPlan, layout: tuple[int, int, int], sharding: tuple[int, bool, bool], recompute: str,
                   micro: int, limits: TrainLimits) -> TrainingPlan:
    """The request with every searched knob set (sequence parallel whenever TP > 1: it only saves memory)."""
    (tp, pp, dp), (zero, offload_optimizer, offload_params) = layout, sharding
    accum = limits.global_batch_size // (dp * micro) if limits.global_batch_size else 1
    return request.model_copy(update=dict(
        tensor_parallel=tp, pipeline_parallel=pp, data_parallel=dp, sequence_parallel=tp > 1, zero_stage=zero, fsdp="none",
        offload_optimizer=offload_optimizer, offload_params=offload_params, recompute=recompute, micro_batch_size=micro,
        grad_accum_steps=accum,
    ))


@dataclass
class _Evaluator:
    model: ModelSpec
    gpu: GpuSpec
    host_memory_bytes: int | None
    num_evaluated: int = 0

    def __call__(self, plan: TrainingPlan) -> TrainEstimate:
        self.num_evaluated += 1
        return estimate_training(self.model, self.gpu, plan, self.host_memory_bytes)


def _largest_fitting(plans: list[TrainingPlan], ev: _Evaluator) -> tuple[int, TrainEstimate]:
    """Index of the largest micro-batch that fits (-1 when none) and the estimate of the last one tried."""
    lo, hi, found = 0, len(plans) - 1, -1
    last: TrainEstimate | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        last = ev(plans[mid])
        if last.fits:
            found, lo = mid, mid + 1
        else:
            hi = mid - 1
    assert last is not None, "_largest_fitting needs at least one plan"
    return found, last


def sort_key(c: TrainCandidate, objective: str) -> tuple:
    p = c.plan
    cheap = (p.offload_optimizer + p.offload_params, -p.micro_batch_size, c.estimate.per_gpu.total_bytes)  # ties: more headroom
    if objective == "gpus":
        return (c.num_gpus, -c.speed.tokens_per_s, *cheap)
    return (-c.speed.tokens_per_s, c.num_gpus, *cheap)


def search_training(model: ModelSpec, gpu: GpuSpec, request: TrainingPlan, limits: TrainLimits,
                    objective: str = "throughput") -> TrainSearchResult:
    ev = _Evaluator(model, gpu, limits.host_memory_bytes)
    found: list[TrainCandidate] = []
    closest: TrainCandidate | None = None
    considered = 0
    for layout in layouts(model, gpu, limits):
        micros = micro_batches(limits, layout[2])
        for sharding in shardings(layout[2], limits):
            for recompute in ([limits.recompute] if limits.recompute else RECOMPUTES):
                considered += len(micros)
                plans = [candidate_plan(request, layout, sharding, recompute, m, limits) for m in micros]
                k, last = _largest_fitting(plans, ev)
                if k < 0:
                    first = ev(plans[0]) if last.plan is not plans[0] else last
                    if closest is None or first.per_gpu.total_bytes < closest.estimate.per_gpu.total_bytes:
                        closest = TrainCandidate(first, train_speed(model, gpu, first.plan))
                    continue
                best = max(plans[: k + 1], key=lambda p: (train_speed(model, gpu, p).tokens_per_s, p.micro_batch_size))
                found.append(TrainCandidate(ev(best), train_speed(model, gpu, best)))
    ranked = sorted(found, key=lambda c: sort_key(c, objective))
    return TrainSearchResult(model, gpu, request, limits, objective, tuple(ranked), considered, ev.num_evaluated, closest)


def fewest_gpus(model: ModelSpec, gpu: GpuSpec, request: TrainingPlan, limits: TrainLimits, max_gpus: int) -> TrainSearchResult | None:
    """The smallest power-of-two GPU count above the limit where a plan fits (for the no-fit diagnosis)."""
    n = 1 << limits.max_gpus.bit_length()
    while n <= max_gpus:
        found = search_training(model, gpu, request, replace(limits, max_gpus=n, exact_gpus=n), "throughput")
        if found.plans:
            return found
        n *= 2
    return None
