"""CLI engine knobs shared by estimate/fit/check --engine, and the plan-to-engine spellings vLLM and SGLang share."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.errors import InputError

# Plan.weights -> (--dtype, --quantization) for vLLM/SGLang
SERVED_WEIGHTS: dict[str, tuple[str, str | None]] = {
    "auto": ("auto", None), "bf16": ("bfloat16", None), "fp16": ("float16", None), "fp32": ("float32", None),
    "fp8": ("auto", "fp8"), "awq": ("auto", "awq"), "gptq": ("auto", "gptq"), "nf4": ("auto", "bitsandbytes"),
    "int8": ("auto", "compressed-tensors"),
}


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


def engine_kv(table: dict[str, str], kv: str, engine: str) -> str:
    """A plan's KV dtype in the engine's spelling, or an error naming --kv-dtype and what the engine accepts."""
    if kv not in table:
        raise InputError(f"--kv-dtype: {kv!r} is not available in {engine}; accepted: {', '.join(table)}")
    return table[kv]
