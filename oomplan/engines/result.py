"""What every engine model returns: one frozen, engine-neutral prediction the reports render."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec


@dataclass(frozen=True)
class MemoryItem:
    """One line of the per-GPU accounting: a name, bytes on the busiest GPU, and how it was derived."""

    name: str
    bytes: int
    detail: str


@dataclass(frozen=True, kw_only=True)
class EnginePrediction:
    """Built by keyword (every engine fills the same fields by name)."""

    engine: str  # vllm | sglang | llamacpp
    model: ModelSpec
    gpu: GpuSpec
    num_gpus: int
    settings: tuple[tuple[str, str], ...]  # the resolved engine options, as (flag, value) for display
    items: tuple[MemoryItem, ...]  # the busiest GPU's accounting, in the engine's own terms
    gpu_total_bytes: int  # what the engine process holds on the busiest GPU
    kv_pool_bytes: int  # KV cache memory on the busiest GPU
    kv_cache_tokens: int  # tokens the pool holds (what the engine logs)
    num_kv_blocks: int  # blocks (pages) of the pool; 0 where the engine has no blocks
    context_tokens: int  # max_model_len / context length the engine is configured for
    max_concurrency: float  # requests of context_tokens the pool holds at once
    max_running_requests: int  # the scheduler's cap (vLLM max_num_seqs, SGLang max_running_requests, llama.cpp slots)
    starts: bool  # the engine starts (loads, profiles, allocates) with these settings
    failures: tuple[str, ...]  # why it will not start / not serve, one sentence each
    fixes: tuple[str, ...]  # flag changes that would make it start
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    engine_version: str | None = None  # the modelled release range whose accounting this is (None: unversioned)
    box: tuple[GpuSpec, ...] = ()  # every GPU, in order, when they are not all `gpu` (llama.cpp --gpu a+b); `gpu` is the fullest
    host_bytes: int = 0  # CPU memory the engine keeps for the model (llama.cpp's CPU layers and KV, vLLM --cpu-offload-gb)
    shifts_context: bool = False  # llama.cpp --context-shift: a sequence longer than context_tokens keeps generating

    @property
    def capacity_bytes(self) -> int:
        return self.gpu.memory_bytes

    @property
    def ok(self) -> bool:
        """Starts and serves requests of its configured context length."""
        return self.starts and not self.failures

    def fits_workload(self, ctx_tokens: int, batch_size: int) -> bool:
        """It is ok, a sequence of ctx_tokens fits the context (or the context shifts), and batch_size of them run at once."""
        return (self.ok and (ctx_tokens <= self.context_tokens or self.shifts_context) and batch_size <= self.max_running_requests
                and batch_size <= self.max_concurrency + 1e-9)
