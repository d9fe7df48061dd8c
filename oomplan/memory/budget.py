"""The per-GPU budget: every component, the total, and whether it fits."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from oomplan.memory.activations import ActivationBudget, activation_budget
from oomplan.memory.images import image_load, tower_name
from oomplan.memory.kv_cache import KvBudget, kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.load_peak import LoadPeak, load_peak, load_total_bytes
from oomplan.memory.overhead import OverheadBudget, allocator_fraction, overhead_budget
from oomplan.memory.state import StateBudget, state_budget
from oomplan.memory.validate import check_plan, plan_notes, plan_warnings
from oomplan.memory.vision_activations import NO_VISION, VisionActivations, vision_activations
from oomplan.memory.vision_kv import cross_kv_bytes
from oomplan.text import plural
from oomplan.memory.weights import WeightsBudget, dense_dtype, weights_budget
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload
from oomplan.units import DTYPE_BYTES, format_bytes


@dataclass(frozen=True)
class StageBudget:
    """One GPU of one pipeline stage."""

    stage: int
    weights: WeightsBudget
    kv: KvBudget
    activations: ActivationBudget
    overhead: OverheadBudget
    state: StateBudget = StateBudget(0, 0, 0, None)
    load: LoadPeak | None = None  # transformers' load-time transient, when it has one (memory/load_peak.py)
    load_total_bytes: int = 0  # what the GPU holds at that peak (weights + transient + context + allocator)
    vision: VisionActivations = NO_VISION  # --images: the tower's prefill moment and what it keeps alive (first stage)

    @property
    def load_exceeds_steady(self) -> bool:
        return self.load is not None and self.load_total_bytes > self.total_bytes

    @property
    def peak_bytes(self) -> int:
        """The most this GPU holds at any time: the steady total or the load-time peak."""
        return max(self.total_bytes, self.load_total_bytes)

    @property
    def weights_bytes(self) -> int:
        return self.weights.gpu_bytes

    @property
    def kv_cache_bytes(self) -> int:
        return self.kv.bytes

    @property
    def state_bytes(self) -> int:
        return self.state.bytes

    @property
    def activation_bytes(self) -> int:
        return self.vision.peak(self.activations)

    @property
    def overhead_bytes(self) -> int:
        return self.overhead.total

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.state_bytes + self.activation_bytes + self.overhead_bytes


class BusiestGpu:
    """For estimates made of per-stage budgets (`stages`, each with `total_bytes`) on one `gpu`."""

    if TYPE_CHECKING:  # fields of the dataclasses that use this mixin
        stages: Sequence[Any]
        gpu: GpuSpec

    @property
    def per_gpu(self) -> Any:
        """The busiest GPU: it decides whether the plan fits."""
        return max(self.stages, key=lambda s: s.total_bytes)

    @property
    def capacity_bytes(self) -> int:
        return self.gpu.memory_bytes

    @property
    def headroom_bytes(self) -> int:
        busiest: int = self.per_gpu.total_bytes
        return self.capacity_bytes - busiest


@dataclass(frozen=True)
class Estimate(BusiestGpu):
    model: ModelSpec
    gpu: GpuSpec
    workload: Workload
    plan: Plan
    stages: tuple[StageBudget, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def load_peak_stage(self) -> StageBudget | None:
        """The stage whose load-time peak is highest, when one exceeds its steady total."""
        over = [s for s in self.stages if s.load_exceeds_steady]
        return max(over, key=lambda s: s.load_total_bytes) if over else None

    @property
    def fits(self) -> bool:
        """Steady state fits and so does the load-time peak."""
        peak = self.load_peak_stage
        return self.headroom_bytes >= 0 and (peak is None or peak.load_total_bytes <= self.capacity_bytes)

    @property
    def num_gpus(self) -> int:
        return self.plan.num_gpus


def stage_budget(model: ModelSpec, gpu: GpuSpec, workload: Workload, plan: Plan, stage_index: int) -> StageBudget:
    stage = pipeline_stages(model.num_layers, plan.pipeline_parallel)[stage_index]
    weights = weights_budget(model, plan, stage_index)
    images = image_load(model, workload)
    kv = with_cross_kv(kv_budget(model, plan, workload.ctx_tokens, workload.batch_size, stage),
                       cross_kv_bytes(model, plan, images.num_images if images and images.cross_attention else 0, workload.batch_size, stage))
    dtype = dense_dtype(model, plan)
    num_sliding = sum(model.layer_attention[i] == "sliding" for i in stage.layer_indices)
    acts = activation_budget(model, plan, workload.ctx_tokens, workload.batch_size, DTYPE_BYTES[dtype], stage.is_last,
                             num_sliding, fp16=dtype == "fp16")
    state = state_budget(model, plan, workload.batch_size, stage, dtype)
    vision = vision_activations(model, plan, images, workload.batch_size, workload.ctx_tokens, DTYPE_BYTES[dtype]) if stage.is_first else NO_VISION
    tensors = weights.gpu_bytes + kv.bytes + state.bytes + vision.peak(acts)
    overhead = overhead_budget(gpu, tensors, plan.num_gpus)
    load = load_peak(model, plan, stage_index, gpu)
    load_total = 0 if load is None else load_total_bytes(weights.gpu_bytes, load.transient_bytes, overhead.cuda_context_bytes,
                                                         allocator_fraction(gpu))
    return StageBudget(stage_index, weights, kv, acts, overhead, state, load, load_total, vision)


def with_cross_kv(kv: KvBudget, cross_bytes: int) -> KvBudget:
    """Mllama's cross-attention K/V of the images, folded into the KV cache (its own row and JSON field)."""
    return replace(kv, bytes=kv.bytes + cross_bytes, cross_bytes=cross_bytes) if cross_bytes else kv


def estimate(model: ModelSpec, gpu: GpuSpec, workload: Workload, plan: Plan) -> Estimate:
    """Budget every pipeline stage of the plan on one GPU of its TP group."""
    check_plan(model, plan)
    stages = tuple(stage_budget(model, gpu, workload, plan, s) for s in range(plan.pipeline_parallel))
    warnings = tuple(model.warnings) + tuple(plan_warnings(model, gpu, workload, plan))
    return Estimate(model, gpu, workload, plan, stages, warnings, tuple(plan_notes(model, plan, workload.ctx_tokens)) + image_notes(model, workload, stages))


def image_notes(model: ModelSpec, workload: Workload, stages: tuple[StageBudget, ...]) -> tuple[str, ...]:
    """One line on the images: their tokens, where they come from, and where they are priced."""
    images = image_load(model, workload)
    if images is None or model.vision is None:
        return ()
    n, t = images.num_images, images.tokens_per_image
    first, tower = stages[0], tower_name(model.vision)
    vision = (f"{tower} tower on {plural(first.vision.num_images, 'image')}: {format_bytes(first.vision.encoder_bytes)} at its prefill "
              f"moment, {format_bytes(first.vision.prefill_held_bytes)} kept through the decoder's prefill (stage 0's activations)")
    if images.cross_attention:
        cross = sum(s.kv.cross_bytes for s in stages)
        return (f"images: {n} per sequence, {t:,} vision tokens each ({images.source}) in the cross-attention K/V "
                f"({format_bytes(cross)} over all stages, in the KV cache); one <|image|> token each in the context; {vision}",)
    return (f"images: {n} per sequence x {t:,} tokens ({images.source}) = {n * t:,} of the {workload.ctx_tokens:,} context "
            f"tokens (priced as context in the KV cache and the decoder's prefill); {vision}",)
