"""A planner Plan + Workload (+ engine options) as an engine's own settings, for estimate/fit/check --engine."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.engines.llamacpp import LlamaCppSettings
from oomplan.engines.sglang import SglangSettings
from oomplan.engines.vllm import VllmSettings
from oomplan.errors import InputError
from oomplan.specs.plan import Plan, Workload

# Plan.weights -> (--dtype, --quantization) for vLLM/SGLang
SERVED_WEIGHTS = {
    "auto": ("auto", None), "bf16": ("bfloat16", None), "fp16": ("float16", None), "fp32": ("float32", None),
    "fp8": ("auto", "fp8"), "awq": ("auto", "awq"), "gptq": ("auto", "gptq"), "nf4": ("auto", "bitsandbytes"),
    "int8": ("auto", "compressed-tensors"),
}
VLLM_KV = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp8": "fp8"}
SGLANG_KV = {"auto": "auto", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8_e4m3"}
# Plan.weights -> the GGUF file type llama.cpp would load (GGUF has no fp8/AWQ/GPTQ: the nearest type)
GGUF_TYPES = {"auto": "F16", "bf16": "BF16", "fp16": "F16", "fp32": "F32", "fp8": "Q8_0", "int8": "Q8_0",
              "awq": "Q4_K_M", "gptq": "Q4_K_M", "nf4": "Q4_0"}
GGUF_KV = {"auto": "f16", "bf16": "bf16", "fp16": "f16", "fp32": "f32", "fp8": "q8_0", "int8": "q8_0", "int4": "q4_0"}


@dataclass(frozen=True)
class EngineOptions:
    """CLI engine knobs; None keeps the engine's default (or the workload's ctx where noted)."""

    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None  # default: the workload's ctx
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    mem_fraction_static: float | None = None
    gguf_type: str | None = None
    n_gpu_layers: int | None = None


def _kv(table: dict[str, str], kv: str, engine: str) -> str:
    if kv not in table:
        raise InputError(f"--kv-dtype: {kv!r} is not available in {engine}; accepted: {', '.join(table)}")
    return table[kv]


def vllm_settings(plan: Plan, workload: Workload, o: EngineOptions) -> VllmSettings:
    dtype, quant = SERVED_WEIGHTS[plan.weights]
    return VllmSettings(
        tensor_parallel=plan.tensor_parallel, pipeline_parallel=plan.pipeline_parallel, dtype=dtype, quantization=quant,
        kv_cache_dtype=_kv(VLLM_KV, plan.kv_dtype, "vLLM"), max_model_len=o.max_model_len or workload.ctx_tokens,
        gpu_memory_utilization=o.gpu_memory_utilization, max_num_seqs=o.max_num_seqs,
        max_num_batched_tokens=o.max_num_batched_tokens, block_size=plan.block_size,
        enable_expert_parallel=plan.expert_parallel, cpu_offload_bytes=plan.offload_bytes)


def sglang_settings(plan: Plan, workload: Workload, o: EngineOptions) -> SglangSettings:
    dtype, quant = SERVED_WEIGHTS[plan.weights]
    return SglangSettings(
        tp_size=plan.tensor_parallel, pp_size=plan.pipeline_parallel, dtype=dtype, quantization=quant,
        kv_cache_dtype=_kv(SGLANG_KV, plan.kv_dtype, "SGLang"), context_length=o.max_model_len or workload.ctx_tokens,
        mem_fraction_static=o.mem_fraction_static, max_running_requests=o.max_num_seqs,
        chunked_prefill_size=o.max_num_batched_tokens)


def llamacpp_settings(plan: Plan, workload: Workload, o: EngineOptions) -> LlamaCppSettings:
    """One slot per sequence: -c = ctx x batch, -np = batch (llama-server splits -c over the slots)."""
    if plan.num_gpus > 1:
        raise InputError("--engine llamacpp: oomplan models llama.cpp on one GPU; use --tp 1 --pp 1")
    kv = GGUF_KV.get(plan.kv_dtype)
    return LlamaCppSettings(
        gguf_type=(o.gguf_type or GGUF_TYPES[plan.weights]).upper(), n_gpu_layers=o.n_gpu_layers,
        ctx_tokens=workload.ctx_tokens * workload.batch_size, n_parallel=workload.batch_size,
        cache_type_k=kv, cache_type_v=kv, ubatch_tokens=plan.prefill_chunk_tokens)


def engine_settings(engine: str, plan: Plan, workload: Workload, o: EngineOptions):
    if engine == "vllm":
        return vllm_settings(plan, workload, o)
    if engine == "sglang":
        return sglang_settings(plan, workload, o)
    if engine == "llamacpp":
        return llamacpp_settings(plan, workload, o)
    raise InputError(f"--engine: {engine!r} is not accepted; use one of hf, vllm, sglang, llamacpp")
