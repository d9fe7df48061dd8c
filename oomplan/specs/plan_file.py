"""The plan file (`fit -o plan.yaml`): versioned, strict, everything needed to re-check it.

Documented in docs/plan-schema.md. schema_version bumps on any incompatible change.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from oomplan.specs.base import Strict
from oomplan.specs.plan import Plan, Workload
from oomplan.specs.training import TrainingPlan

PLAN_SCHEMA_VERSION: Literal[1] = 1


class PlanModel(Strict):
    ref: str = Field(description="what to load: a profile name/alias, a config.json path or a Hugging Face repo id")
    revision: str | None = Field(default=None, max_length=256, description="the repo revision (branch, tag or commit) "
                                 "fit was given; check and export load that revision")
    name: str
    config_sha256: str


class PlanGpu(Strict):
    ref: str = Field(description="GPU profile name or path")
    num_gpus: int = Field(ge=1)


class PredictedBudget(Strict):
    """What oomplan predicted per GPU (the busiest one) when the plan was written."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    total_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    quality_risk: str
    decode_tokens_per_s: float
    state_bytes: int = 0  # recurrent state (Mamba / Gated DeltaNet layers); counted in total_bytes
    gradient_bytes: int = 0  # training plans: total_bytes also counts gradients and optimizer states
    optimizer_bytes: int = 0
    tokens_per_s: float | None = Field(default=None, description="training plans: roofline tokens per second, all GPUs")


class PlanFile(Strict):
    schema_version: Literal[1] = PLAN_SCHEMA_VERSION  # anything else: newer (refused) or invalid
    oomplan_version: str
    model: PlanModel
    gpu: PlanGpu
    workload: Workload
    plan: Plan
    predicted: PredictedBudget
    training: TrainingPlan | None = Field(default=None, description="present in plans written by fit --train")
