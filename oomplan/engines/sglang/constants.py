"""SGLang's constants (oomplan/data/engines/sglang.yaml), each with its source there."""
from __future__ import annotations

from functools import lru_cache

from oomplan.engines.constants import DATA_DIR, load_constants
from oomplan.specs.base import Strict


class SglangBucket(Strict):
    below_mib: float
    chunked_prefill_size: int
    cuda_graph_max_bs: int
    cuda_graph_max_bs_tp4: int


class SglangConstants(Strict):
    schema_version: int = 1
    engine: str
    page_size: int
    reserve_base_mib: float
    reserve_mib_per_prefill_token: float
    reserve_min_prefill_tokens: int
    reserve_mib_per_graph_batch: float
    reserve_mib_per_eighth_of_parallel: float
    reserve_floor_mib_large_gpu: float
    large_gpu_min_mib: float
    memory_buckets: tuple[SglangBucket, ...]
    sources: dict[str, str]


@lru_cache(maxsize=1)
def sglang_constants() -> SglangConstants:
    return load_constants(DATA_DIR / "sglang.yaml", SglangConstants)
