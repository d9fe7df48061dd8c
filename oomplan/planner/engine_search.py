"""`fit --engine`: search what the engine itself can realise (TP/PP, weight format, KV dtype) and keep
the configurations whose engine accounting serves the workload, ranked by the objective.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterator

from oomplan.engines.options import EngineOptions
from oomplan.engines.protocol import Engine
from oomplan.engines.registry import get_engine
from oomplan.engines.result import EnginePrediction
from oomplan.errors import InputError
from oomplan.planner.quality import QualityRisk, quality_risk
from oomplan.planner.space import SearchLimits, kv_dtypes, parallel_layouts, weight_formats
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload


@dataclass(frozen=True)
class EngineCandidate:
    plan: Plan
    prediction: EnginePrediction
    quality: QualityRisk

    @property
    def num_gpus(self) -> int:
        return self.plan.num_gpus


@dataclass(frozen=True)
class EngineSearchResult:
    engine: str
    model: ModelSpec
    gpu: GpuSpec
    workload: Workload
    objective: str
    plans: tuple[EngineCandidate, ...]  # serving the workload, ranked
    num_considered: int
    closest: EngineCandidate | None  # the largest pool among those that do not serve it


def engine_plans(engine: str, model: ModelSpec, gpu: GpuSpec, limits: SearchLimits) -> Iterator[Plan]:
    """What the engine itself can realise (its weight and KV formats; TP/PP where it runs on several GPUs)."""
    e = get_engine(engine)
    layouts = parallel_layouts(model, gpu, limits) if e.multi_gpu else [(1, 1)]
    weights = [w for w in weight_formats(gpu, limits) if w in e.weight_formats]
    kvs = [k for k in kv_dtypes(gpu, limits) if k in e.kv_formats]
    for tp, pp in layouts:
        for w in weights:
            for kv in kvs:
                yield Plan.model_validate(dict(weights=w, kv_dtype=kv, tensor_parallel=tp, pipeline_parallel=pp))


def _with_variants(e: Engine, model: ModelSpec, gpu: GpuSpec, plans: Iterator[Plan], workload: Workload,
                   opts: EngineOptions) -> Iterator[Plan]:
    """Each plan, then the engine's variants of it (llama.cpp: MoE experts on the CPU)."""
    for plan in plans:
        yield plan
        try:
            yield from e.plan_variants(model, gpu, plan, workload, opts)
        except InputError:
            continue


def rank_key(c: EngineCandidate, objective: str) -> tuple:
    q = c.quality
    quality = (q.grade, sum(x.grade for x in q.choices), len(q.choices))
    partial = int(dict(c.prediction.settings).get("-ngl", c.prediction.model.num_layers + 1)) <= c.prediction.model.num_layers
    rest = (partial, c.plan.moe_layers_on_cpu, -c.prediction.max_concurrency)  # experts on the CPU decode slower
    return (c.num_gpus, *quality, *rest) if objective == "gpus" else (*quality, c.num_gpus, *rest)


def _closeness(p: EnginePrediction) -> tuple[int, int]:
    """Among those that fail: the largest pool, then the least weight per GPU."""
    return p.kv_cache_tokens, -p.items[0].bytes


def engine_search(engine: str, model: ModelSpec, gpu: GpuSpec, workload: Workload, limits: SearchLimits,
                  opts: EngineOptions, objective: str) -> EngineSearchResult:
    fitting: list[EngineCandidate] = []
    closest: EngineCandidate | None = None
    considered, e = 0, get_engine(engine)
    for plan in _with_variants(e, model, gpu, engine_plans(engine, model, gpu, limits), workload, opts):
        try:
            pred = e.predict(model, gpu, e.settings_for_plan(plan, workload, opts))
        except InputError:
            continue  # e.g. a layout the model's heads cannot split
        considered += 1
        cand = EngineCandidate(plan, pred, quality_risk(model, plan, workload.ctx_tokens))
        host_ok = pred.host_bytes * plan.tensor_parallel <= limits.host_memory_bytes
        if host_ok and pred.fits_workload(workload.ctx_tokens, workload.batch_size):
            fitting.append(cand)
        elif closest is None or _closeness(pred) > _closeness(closest.prediction):
            closest = cand
    ranked = sorted(fitting, key=lambda c: rank_key(c, objective))
    return EngineSearchResult(engine, model, gpu, workload, objective, tuple(ranked), considered, closest)
