"""CLI engine knobs shared by estimate/fit/check --engine (the plan-to-engine spellings are the format
registry's: oomplan/formats/spellings.py)."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.specs.hardware import GpuSpec

from oomplan.errors import FieldError


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
    engine_version: str | None = None  # None: the newest modelled release
    devices: tuple[GpuSpec, ...] = ()  # a box of different cards, GPU 0 first (--gpu a+b; llama.cpp only)


def refuse_expert_offload(moe_layers_on_cpu: int, engine: str) -> None:
    """vLLM and SGLang keep every expert on the GPU: a plan that offloads MoE layers is llama.cpp's."""
    if moe_layers_on_cpu:
        raise FieldError("moe_layers_on_cpu", f"{moe_layers_on_cpu} is a llama.cpp knob (--n-cpu-moe); {engine} has no "
                         "expert offload to the CPU (use --engine llamacpp)")


def engine_kv(table: dict[str, str], kv: str, engine: str) -> str:
    """A plan's KV dtype in the engine's spelling, or a FieldError naming kv_dtype and what the engine accepts."""
    if kv not in table:
        raise FieldError("kv_dtype", f"{kv!r} is not available in {engine}; accepted: {', '.join(table)}")
    return table[kv]
