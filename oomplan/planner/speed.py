"""Roofline speed: decode is memory-bound (bytes read per step over bandwidth), prefill is
compute-bound (FLOPs over peak). Ideal figures: real engines reach 50-80% of them."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan import formats
from oomplan.memory.params import num_active_params
from oomplan.memory.weights import resolved_weight_format
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan, Workload


@dataclass(frozen=True)
class StageTraffic:
    """Bytes one GPU of a stage reads per decode step."""

    dense_weight_bytes: int  # read every step
    expert_weight_bytes: int  # routed experts: only those the batch touches
    kv_cache_bytes: int
    offloaded_bytes: int  # streamed over the host link


@dataclass(frozen=True)
class SpeedEstimate:
    decode_step_s: float
    decode_tokens_per_s: float  # all sequences together
    prefill_s: float

    def gpu_hours_per_million_tokens(self, num_gpus: int) -> float:
        return num_gpus * 1e6 / self.decode_tokens_per_s / 3600


def experts_touched_fraction(model: ModelSpec, batch: int) -> float:
    """Expected share of experts a decode step reads when each token picks k of E uniformly."""
    if model.moe is None:
        return 1.0
    k, e = model.moe.num_experts_per_token, model.moe.num_experts
    return 1.0 - (1.0 - k / e) ** batch


def decode_step_s(model: ModelSpec, gpu: GpuSpec, batch: int, stages: list[StageTraffic]) -> float:
    """Stages run one after another for a token; each GPU of a stage reads its shard in parallel."""
    touched = experts_touched_fraction(model, batch)
    total = 0.0
    for s in stages:
        on_gpu = s.dense_weight_bytes + s.expert_weight_bytes * touched + s.kv_cache_bytes
        total += on_gpu / gpu.memory_bandwidth_bytes_per_s + s.offloaded_bytes / gpu.host_link.bandwidth_bytes_per_s
    return total


def prefill_flops(model: ModelSpec, workload: Workload) -> float:
    """2 x active params per token, plus causal attention: 2 matmuls x 2 FLOPs x ctx^2/2 x heads x dim per layer."""
    t, b = workload.ctx_tokens, workload.batch_size
    dense = 2.0 * num_active_params(model) * t * b
    attention = 2.0 * t * t * model.num_attention_heads * model.head_dim * model.num_layers * b
    return dense + attention


def compute_flops_per_s(model: ModelSpec, gpu: GpuSpec, plan: Plan) -> float:
    """fp8 weights run fp8 matmuls where the card has them; everything else runs bf16/fp16."""
    if formats.get(resolved_weight_format(model, plan)).row.native == "supports_fp8" and gpu.dense_fp8_flops_per_s:
        return gpu.dense_fp8_flops_per_s
    return gpu.dense_bf16_flops_per_s


def speed_estimate(model: ModelSpec, gpu: GpuSpec, workload: Workload, plan: Plan, stages: list[StageTraffic]) -> SpeedEstimate:
    step = decode_step_s(model, gpu, workload.batch_size, stages)
    # The stages of a pipeline run one after another on a prompt (transformers/accelerate device_map
    # dispatch: one device computes at a time), so only the TP group's GPUs share a stage's FLOPs.
    prefill = prefill_flops(model, workload) / (compute_flops_per_s(model, gpu, plan) * plan.tensor_parallel)
    offload_s = sum(s.offloaded_bytes for s in stages) / gpu.host_link.bandwidth_bytes_per_s
    return SpeedEstimate(step, workload.batch_size / step if step else float("inf"), prefill + offload_s)
