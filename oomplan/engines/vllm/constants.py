"""vLLM's constants (oomplan/data/engines/vllm.yaml), each with its source there."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from oomplan.engines.constants import DATA_DIR, load_constants
from oomplan.specs.base import Strict


class VllmConstants(Strict):
    schema_version: int = 1
    engine: str
    engine_version: str
    gpu_memory_utilization: float = Field(gt=0, le=1)
    block_size: int = Field(ge=1)
    vocab_padding: int = Field(ge=1)
    large_gpu_min_bytes: int
    large_gpu_max_num_batched_tokens: int
    large_gpu_max_num_seqs: int
    small_gpu_max_num_batched_tokens: int
    small_gpu_max_num_seqs: int
    sampler_fp32_tensors: int
    profile_extra_bytes: int
    non_torch_bytes: int
    allreduce_bytes: int
    allreduce_bytes_per_peer: int
    cuda_graph_bytes: int
    sources: dict[str, str]


@lru_cache(maxsize=1)
def vllm_constants() -> VllmConstants:
    return load_constants(DATA_DIR / "vllm.yaml", VllmConstants)
