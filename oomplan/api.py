"""The Python API: what the commands do, as functions returning typed results (docs/python-api.md).

Models and GPUs are given as profile names, paths (as on the command line) or already loaded specs.
Errors are `oomplan.errors.InputError` (bad input, naming the field) and `OomplanError` (runtime/I-O).
Nothing here imports typer or rich; `probe` imports torch only when called.
"""
from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Literal

from oomplan.memory.budget import Estimate
from oomplan.memory.budget import estimate as _estimate
from oomplan.memory.train_estimate import TrainEstimate, estimate_training as _estimate_training
from oomplan.planner.curve import CurveSet, memory_curves
from oomplan.planner.inverse import MAX_BATCH_SIZE, search_max
from oomplan.planner.recheck import Recheck, recheck
from oomplan.planner.search import SearchResult, search
from oomplan.planner.space import SearchLimits
from oomplan.planner.train_search import TrainLimits, TrainSearchResult, search_training
from oomplan.profiles import load_gpu as _load_gpu
from oomplan.profiles import load_model as _load_model
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.training import TrainingPlan
from oomplan.units import DEFAULT_HOST_MEMORY_BYTES

if TYPE_CHECKING:
    from oomplan.engines.result import EnginePrediction
    from oomplan.probe.compare import ProbeReport


def load_model(ref: str | ModelSpec) -> ModelSpec:
    """A shipped profile name or alias, a config.json, a folder holding one, or a profile YAML."""
    return ref if isinstance(ref, ModelSpec) else _load_model(ref)


def load_gpu(ref: str | GpuSpec) -> GpuSpec:
    """A shipped GPU profile name or alias, or a GPU profile YAML."""
    return ref if isinstance(ref, GpuSpec) else _load_gpu(ref)


def estimate(model: str | ModelSpec, gpu: str | GpuSpec, ctx_tokens: int = 4096, batch_size: int = 1,
             plan: Plan | None = None) -> Estimate:
    """`oomplan estimate`: the per-GPU budget of every pipeline stage; `.fits`, `.per_gpu`, `.headroom_bytes`."""
    return _estimate(load_model(model), load_gpu(gpu), Workload(ctx_tokens=ctx_tokens, batch_size=batch_size), plan or Plan())


def estimate_training(model: str | ModelSpec, gpu: str | GpuSpec, plan: TrainingPlan,
                      host_memory_bytes: int | None = None) -> TrainEstimate:
    """`oomplan estimate --train`: one training step per GPU (weights, gradients, optimizer, activations)."""
    return _estimate_training(load_model(model), load_gpu(gpu), plan, host_memory_bytes)


def fit(model: str | ModelSpec, gpu: str | GpuSpec, ctx_tokens: int | Literal["max"] = 4096,
        batch_size: int | Literal["max"] = 1, objective: str = "quality", max_gpus: int | None = None,
        num_gpus: int | None = None, host_memory_bytes: int = DEFAULT_HOST_MEMORY_BYTES, allow_dms: bool = True,
        show_dominated: bool = False, kv_policies: tuple[str, ...] = ()) -> SearchResult:
    """`oomplan fit`: every plan that fits, ranked by `objective` (quality | throughput | gpus | cost).

    `kv_policies`: lossy bounded-KV policies to search too, as `--kv-policy` spells them ("window:4096,sinks:4").

    `ctx_tokens="max"` (or `batch_size="max"`) asks for each plan's longest context (most sequences).
    `max_gpus` defaults to one node of the card; `num_gpus` fixes the count.
    """
    from oomplan.specs.kv_policy import searched_kv_policies

    spec, card = load_model(model), load_gpu(gpu)
    limits = SearchLimits(max_gpus=max_gpus or num_gpus or card.num_gpus_per_node, exact_gpus=num_gpus,
                          host_memory_bytes=host_memory_bytes, allow_dms=allow_dms, keep_dominated=show_dominated,
                          kv_policies=searched_kv_policies(kv_policies))
    if ctx_tokens == "max" and batch_size == "max":
        from oomplan.errors import InputError

        raise InputError("ctx_tokens='max' and batch_size='max' together have no single answer; fix one of them")
    if ctx_tokens == "max":
        return search_max(spec, card, Workload(ctx_tokens=1, batch_size=int(batch_size)), limits, objective, "ctx",
                          spec.max_position_embeddings)
    if batch_size == "max":
        return search_max(spec, card, Workload(ctx_tokens=int(ctx_tokens)), limits, objective, "batch", MAX_BATCH_SIZE)
    return search(spec, card, Workload(ctx_tokens=int(ctx_tokens), batch_size=int(batch_size)), limits, objective)


def fit_training(model: str | ModelSpec, gpu: str | GpuSpec, request: TrainingPlan, global_batch_size: int | None = None,
                 max_gpus: int | None = None, objective: str = "throughput",
                 host_memory_bytes: int | None = DEFAULT_HOST_MEMORY_BYTES) -> TrainSearchResult:
    """`oomplan fit --train`: layouts, ZeRO/offload, recompute and micro-batching that fit, ranked."""
    spec, card = load_model(model), load_gpu(gpu)
    limits = TrainLimits(max_gpus=max_gpus or card.num_gpus_per_node, host_memory_bytes=host_memory_bytes,
                         global_batch_size=global_batch_size)
    return search_training(spec, card, request, limits, objective)


def check(path: str, gpu: str | None = None, ctx_tokens: int | None = None, batch_size: int | None = None) -> Recheck:
    """`oomplan check`: re-estimate a plan file (fit -o), optionally on another card or workload."""
    return recheck(path, gpu, ctx_tokens, batch_size)


def vet(command: str | list[str], gpu: str | GpuSpec, model_profile: str | None = None) -> EnginePrediction:
    """`oomplan vet`: what a vLLM / SGLang / llama.cpp launch command will do on `gpu` (`.ok`, `.failures`, `.fixes`)."""
    from oomplan.engines.cmdline import parse_launch, resolve_model
    from oomplan.engines.registry import get_engine

    launch = parse_launch(shlex.split(command) if isinstance(command, str) else list(command))
    return get_engine(launch.engine).predict(resolve_model(launch, model_profile), load_gpu(gpu), launch.settings)


def curve(model: str | ModelSpec, gpu: str | GpuSpec, plan: Plan | None = None, axis: Literal["ctx", "batch"] = "ctx",
          fixed: int = 1, from_x: int = 1024, to_x: int | None = None, num_points: int = 24) -> CurveSet:
    """`oomplan curve`: memory per GPU against context (axis='ctx', `fixed` = batch) or batch (`fixed` = ctx), with the exact cliff."""
    spec, card = load_model(model), load_gpu(gpu)
    end = to_x or (spec.max_position_embeddings if axis == "ctx" else 256)
    return memory_curves(spec, card, (("base", plan or Plan()),), axis, fixed, from_x, end, num_points)


def probe(est: Estimate, device: str = "auto", tolerance_pct: float = 2.0) -> ProbeReport:
    """`oomplan probe`: run the estimate's plan with torch (meta device or CUDA) and compare; needs the probe extra."""
    from oomplan.probe.run import probe as _probe

    return _probe(est, device, tolerance_pct)


__all__ = ["Estimate", "Plan", "TrainingPlan", "Workload", "check", "curve", "estimate", "estimate_training", "fit",
           "fit_training", "load_gpu", "load_model", "probe", "vet"]
