"""The plan file a chosen plan becomes (`fit -o`, `fit --engine -o`, `fit --train -o`), built once here.

The CLI picks the plan and writes the text (oomplan/report/plan_yaml.py); what goes into the file is decided here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from oomplan import __version__
from oomplan.memory.budget import Estimate
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.plan_file import PlanFile, PlanGpu, PlanModel, PredictedBudget

if TYPE_CHECKING:
    from oomplan.planner.engine_search import EngineSearchResult
    from oomplan.planner.search import SearchResult
    from oomplan.planner.train_search import TrainCandidate


def plan_model(model_ref: str, model: ModelSpec) -> PlanModel:
    """The plan's model entry: a repo id's revision (org/name@REV or --revision) in its own field, which
    check and export load."""
    rev = model.hf_revision
    ref = model_ref.removesuffix(f"@{rev}") if rev else model_ref
    return PlanModel(ref=ref, revision=rev, name=model.name, config_sha256=model.config_sha256)


def predicted_budget(est: Estimate, quality_risk: str, decode_tokens_per_s: float) -> PredictedBudget:
    """What the plan file records of an inference estimate: the busiest GPU's budget, the risk and the speed."""
    s = est.per_gpu
    return PredictedBudget(
        weights_bytes=s.weights_bytes, kv_cache_bytes=s.kv_cache_bytes, activation_bytes=s.activation_bytes,
        state_bytes=s.state_bytes, overhead_bytes=s.overhead_bytes, total_bytes=s.total_bytes,
        capacity_bytes=est.capacity_bytes, headroom_bytes=est.headroom_bytes, quality_risk=quality_risk,
        decode_tokens_per_s=round(decode_tokens_per_s, 3),
    )


def inference_plan_file(model_ref: str, gpu_ref: str, est: Estimate, quality_risk: str, decode_tokens_per_s: float) -> PlanFile:
    """The plan file of an inference plan (HF or an engine's: `est.workload.engine` says which)."""
    return PlanFile(
        oomplan_version=__version__,
        model=plan_model(model_ref, est.model),
        gpu=PlanGpu(ref=gpu_ref, num_gpus=est.plan.num_gpus),
        workload=est.workload, plan=est.plan, predicted=predicted_budget(est, quality_risk, decode_tokens_per_s),
    )


def search_plan_file(model_ref: str, gpu_ref: str, result: SearchResult, index: int) -> PlanFile:
    """The plan file of `fit`'s ranked plan `index` (0-based)."""
    from oomplan.memory.budget import estimate
    from oomplan.planner.quality import quality_risk

    chosen = result.plans[index]
    est = estimate(result.model, result.gpu, chosen.workload, chosen.plan)
    return inference_plan_file(model_ref, gpu_ref, est, quality_risk(result.model, chosen.plan, chosen.workload.ctx_tokens).label, chosen.speed.decode_tokens_per_s)


def engine_plan_file(model_ref: str, gpu_ref: str, result: EngineSearchResult, index: int) -> PlanFile:
    """The plan file of `fit --engine`'s ranked configuration `index` (0-based): the HF budget and speed of its plan."""
    from oomplan.memory.budget import estimate
    from oomplan.planner.evaluate import Evaluator
    from oomplan.planner.search import evaluate, make_candidate

    chosen = result.plans[index]
    workload = chosen.workload or result.workload  # fit --ctx/--batch max: the value this configuration reached
    est = estimate(result.model, result.gpu, workload, chosen.plan)
    ev = Evaluator(result.model, result.gpu, workload.num_images, workload.image_tokens, workload.image_size)
    speed = make_candidate(ev, chosen.plan, workload, evaluate(ev, chosen.plan, workload)).speed
    return inference_plan_file(model_ref, gpu_ref, est, chosen.quality.label, speed.decode_tokens_per_s)


def training_plan_file(model_ref: str, gpu_ref: str, chosen: TrainCandidate) -> PlanFile:
    """A plan file with a `training` section; `plan`/`workload` carry the matching TP/PP, sequence and micro-batch."""
    est, p = chosen.estimate, chosen.plan
    s = est.per_gpu
    predicted = PredictedBudget(
        weights_bytes=s.weights_bytes, kv_cache_bytes=0, activation_bytes=s.activation_bytes, overhead_bytes=s.overhead_bytes,
        total_bytes=s.total_bytes, capacity_bytes=est.capacity_bytes, headroom_bytes=est.headroom_bytes,
        quality_risk="near-lossless" if p.mode == "qlora" else "lossless", decode_tokens_per_s=0.0, gradient_bytes=s.gradient_bytes,
        optimizer_bytes=s.optimizer_bytes, tokens_per_s=round(chosen.speed.tokens_per_s, 3),
    )
    return PlanFile(
        oomplan_version=__version__, model=plan_model(model_ref, est.model),
        gpu=PlanGpu(ref=gpu_ref, num_gpus=p.num_gpus), workload=Workload(ctx_tokens=p.seq_tokens, batch_size=p.micro_batch_size),
        plan=Plan(tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel, attention=p.attention),
        predicted=predicted, training=p,
    )
