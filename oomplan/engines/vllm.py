"""vLLM (V1 engine): from `vllm serve` settings to the KV pool, its tokens, concurrency, and whether it starts.

KV pool per GPU = total_memory x gpu_memory_utilization - (weights + profile-run activation peak + non-torch
memory) (vllm/v1/worker/gpu_worker.py determine_available_memory), cut into blocks per layer group
(vllm/v1/core/kv_cache_utils.py); with pipeline parallelism every stage takes the smallest block count.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from oomplan.engines.constants import VllmConstants, vllm_constants
from oomplan.engines.vllm_kv import KvLayout, kv_layout, num_kv_blocks, request_bytes
from oomplan.engines.vllm_profile import ProfileRun, non_torch_bytes, profile_run
from oomplan.engines.weights import activation_dtype_bytes, stage_weight_bytes, weight_format
from oomplan.errors import InputError
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.validate import check_plan
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan

KV_CACHE_DTYPES = {"auto": None, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1}


@dataclass(frozen=True)
class VllmSettings:
    """`vllm serve` options that decide memory; None where vLLM derives a default."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enable_expert_parallel: bool = False
    cpu_offload_bytes: int = 0
    kv_cache_memory_bytes: int | None = None
    enforce_eager: bool = False


@dataclass(frozen=True)
class VllmStage:
    """One GPU of one pipeline stage."""

    stage: int
    weights_bytes: int
    profile: ProfileRun
    non_torch_bytes: int
    available_kv_bytes: int  # requested memory - non-KV memory, before cutting into blocks
    layout: KvLayout
    num_blocks: int  # this stage's own count (the engine then uses the minimum over stages)

    @property
    def non_kv_bytes(self) -> int:
        return self.weights_bytes + self.profile.activation_peak_bytes + self.non_torch_bytes


def derived_max_model_len(model: ModelSpec) -> int:
    """vllm/config/model.py _get_and_verify_max_len: max_position_embeddings, times a rope scaling factor
    (yarn: of original_max_position_embeddings); llama3/longrope scaling keeps it."""
    scaling = model.hf_config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if not scaling or kind in ("llama3", "longrope", "su", "default", "mrope") or "factor" not in scaling:
        return model.max_position_embeddings
    base = scaling.get("original_max_position_embeddings", model.max_position_embeddings) if kind == "yarn" else model.max_position_embeddings
    return int(base * float(scaling["factor"]))


def resolve(model: ModelSpec, gpu: GpuSpec, s: VllmSettings) -> VllmSettings:
    """Fill vLLM's defaults: engine/arg_utils.py get_batch_defaults and its clamps."""
    c = vllm_constants()
    max_len = s.max_model_len or derived_max_model_len(model)
    large = gpu.memory_bytes >= c.large_gpu_min_bytes and "a100" not in (gpu.name + gpu.display_name).lower()
    seqs = s.max_num_seqs or (c.large_gpu_max_num_seqs if large else c.small_gpu_max_num_seqs)
    tokens = s.max_num_batched_tokens
    if tokens is None:
        tokens = min(seqs * max_len, c.large_gpu_max_num_batched_tokens if large else c.small_gpu_max_num_batched_tokens)
    if s.max_num_seqs is None:
        seqs = min(seqs, tokens)
    return replace(s, max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=tokens,
                   gpu_memory_utilization=s.gpu_memory_utilization or c.gpu_memory_utilization,
                   block_size=s.block_size or c.block_size)


def engine_plan(model: ModelSpec, s: VllmSettings) -> Plan:
    """The memory model's Plan for the weights: format, TP/PP/EP (KV is vLLM's own, below)."""
    plan = Plan(weights=weight_format(s.dtype, s.quantization), tensor_parallel=s.tensor_parallel,
                pipeline_parallel=s.pipeline_parallel, expert_parallel=s.enable_expert_parallel)
    check_plan(model, plan)
    return plan


def kv_dtype_bytes(model: ModelSpec, plan: Plan, kv_cache_dtype: str) -> int:
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is not accepted; use one of {', '.join(KV_CACHE_DTYPES)}")
    return KV_CACHE_DTYPES[kv_cache_dtype] or activation_dtype_bytes(model, plan)


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: VllmSettings, plan: Plan, index: int, c: VllmConstants) -> VllmStage:
    st = pipeline_stages(model.num_layers, s.pipeline_parallel)[index]
    weights = max(0, stage_weight_bytes(model, plan, index, c.vocab_padding) - s.cpu_offload_bytes)
    dt = activation_dtype_bytes(model, plan)
    prof = profile_run(model, st.layer_indices, st.is_last, s.tensor_parallel, s.max_num_batched_tokens,
                       s.max_num_seqs, dt, c)
    nontorch = non_torch_bytes(s.tensor_parallel, c)
    requested = int(gpu.memory_bytes * s.gpu_memory_utilization)
    available = s.kv_cache_memory_bytes or requested - weights - prof.activation_peak_bytes - nontorch
    layout = kv_layout(model, st.layer_indices, s.tensor_parallel, kv_dtype_bytes(model, plan, s.kv_cache_dtype), s.block_size)
    return VllmStage(index, weights, prof, nontorch, available, layout, num_kv_blocks(layout, available))


def predict_stages(model: ModelSpec, gpu: GpuSpec, settings: VllmSettings) -> tuple[VllmSettings, tuple[VllmStage, ...]]:
    s = resolve(model, gpu, settings)
    plan, c = engine_plan(model, s), vllm_constants()
    return s, tuple(predict_stage(model, gpu, s, plan, i, c) for i in range(s.pipeline_parallel))


def busiest(stages: tuple[VllmStage, ...]) -> VllmStage:
    """The stage with the fewest blocks decides the pool (kv_cache_utils: min num_blocks over workers)."""
    return min(stages, key=lambda st: (st.num_blocks, -st.non_kv_bytes))


def refusal(st: VllmStage, s: VllmSettings) -> str | None:
    """Why vLLM raises at start-up on this stage, in its own terms, or None."""
    if st.available_kv_bytes <= 0:
        return (f"no memory left for the KV cache: weights, activations and non-torch memory take "
                f"{st.non_kv_bytes / 2**30:.2f} GiB of the {s.gpu_memory_utilization:g} x total budget")
    need = request_bytes(st.layout, s.max_model_len, s.max_num_batched_tokens)
    if need > st.available_kv_bytes:
        return (f"max_model_len {s.max_model_len} needs {need / 2**30:.2f} GiB of KV cache for one request, "
                f"larger than the available KV cache memory ({st.available_kv_bytes / 2**30:.2f} GiB)")
    return None
