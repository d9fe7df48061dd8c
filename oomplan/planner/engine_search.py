"""`fit --engine`: search what the engine itself can realise (TP/PP, weight format, KV dtype) and keep
the configurations whose engine accounting serves the workload, ranked by the objective.
"""
from __future__ import annotations

from dataclasses import dataclass
import functools
from collections.abc import Callable, Iterator

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
    workload: Workload | None = None  # what it was priced at when fit --ctx/--batch max searched it (None: the search's)

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
    box: tuple[GpuSpec, ...] = ()  # --gpu a+b: the box's cards (gpu is GPU 0)
    want: str = ""  # "ctx" / "batch": each plan at its own largest context / batch (fit --ctx max / --batch max)


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
    rest = (c.plan.moe_layers_on_cpu, -c.prediction.max_concurrency)  # experts on the CPU decode slower
    # layers on the CPU (llama.cpp) cost more than another GPU of the box: every layer on a GPU first
    return (c.num_gpus, *quality, partial, *rest) if objective == "gpus" else (*quality, partial, c.num_gpus, *rest)


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
    return EngineSearchResult(engine, model, gpu, workload, objective, tuple(ranked), considered, closest, opts.devices)


def _serves(e: Engine, model: ModelSpec, gpu: GpuSpec, plan: Plan, workload: Workload, opts: EngineOptions,
            limits: SearchLimits) -> EnginePrediction | None:
    """The prediction when the engine serves the workload with every layer on the GPU (the inverse search, like the
    HF one, takes no offload: llama.cpp's --fit lowering -ngl trades speed for room), else None."""
    try:
        pred = e.predict(model, gpu, e.settings_for_plan(plan, workload, opts))
    except InputError:
        return None
    ngl = dict(pred.settings).get("-ngl")
    if ngl is not None and int(ngl) <= model.num_layers:
        return None
    host_ok = pred.host_bytes * plan.tensor_parallel <= limits.host_memory_bytes
    return pred if host_ok and pred.fits_workload(workload.ctx_tokens, workload.batch_size) else None


def _serves_at(e: Engine, model: ModelSpec, gpu: GpuSpec, plan: Plan, at: Callable[[int], Workload], opts: EngineOptions,
               limits: SearchLimits, n: int) -> EnginePrediction | None:
    return _serves(e, model, gpu, plan, at(n), opts, limits)


def largest_served(serves: Callable[[int], EnginePrediction | None], limit: int) -> tuple[int, EnginePrediction | None]:
    """The largest n in 1..limit the engine serves, by bisection: whether it serves only gets worse as the context
    or the batch grows (the pool is fixed by the card and the flags; each request needs more of it)."""
    best = serves(1)
    if best is None:
        return 0, None
    top = serves(limit)
    if top is not None:
        return limit, top
    lo, hi = 1, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (p := serves(mid)) is not None:
            lo, best = mid, p
        else:
            hi = mid
    return lo, best


def engine_search_max(engine: str, model: ModelSpec, gpu: GpuSpec, workload: Workload, limits: SearchLimits,
                      opts: EngineOptions, objective: str, what: str, limit: int) -> EngineSearchResult:
    """fit --engine X --ctx max / --batch max: each configuration at the largest context (or batch) it serves,
    exact to the token (llama.cpp's 256-cell padding makes its answers whole blocks), ranked by the objective and
    then by the reach."""
    e = get_engine(engine)
    found: list[tuple[int, EngineCandidate]] = []
    considered = 0
    def at(n: int) -> Workload:
        return workload.model_copy(update={"ctx_tokens": n} if what == "ctx" else {"batch_size": n})

    for plan in _with_variants(e, model, gpu, engine_plans(engine, model, gpu, limits), workload, opts):
        considered += 1
        reach, pred = largest_served(functools.partial(_serves_at, e, model, gpu, plan, at, opts, limits), limit)
        if pred is not None:
            found.append((reach, EngineCandidate(plan, pred, quality_risk(model, plan), at(reach))))
    ranked = [c for _, c in sorted(found, key=lambda x: (rank_key(x[1], objective)[:-1], -x[0]))]  # the reach, not concurrency
    return EngineSearchResult(engine, model, gpu, workload, objective, tuple(ranked), considered, None, opts.devices, what)
