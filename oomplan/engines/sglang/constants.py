"""SGLang's constants, one file per modelled release (oomplan/data/engines/sglang/<X.Y.Z>.yaml), each
value with its source file and release there."""
from __future__ import annotations

from functools import lru_cache

from oomplan.engines.constants import DATA_DIR
from oomplan.engines.versions import VersionTable, constants_for, versions_in
from oomplan.specs.base import Strict

VERSIONS_DIR = DATA_DIR / "sglang"


class SglangBucket(Strict):
    below_mib: float
    chunked_prefill_size: int
    cuda_graph_max_bs: int
    cuda_graph_max_bs_tp4: int


class SglangConstants(Strict):
    schema_version: int = 1
    engine: str
    engine_version: str
    first_release: str
    releases_read: tuple[str, ...]
    page_size: int
    reserve_base_mib: float
    reserve_mib_per_prefill_token: float
    reserve_min_prefill_tokens: int
    reserve_mib_per_graph_batch: float
    reserve_mib_per_eighth_of_parallel: float
    reserve_floor_mib_large_gpu: float
    large_gpu_min_mib: float
    reserve_mib_per_prefill_graph: float
    reserve_mib_prefill_graphs_mla: float
    prefill_graph_max_tokens_mla: int
    prefill_graph_sizes: tuple[tuple[int, int | None, int], ...]
    memory_buckets: tuple[SglangBucket, ...]
    # hybrid and windowed pools (oomplan/engines/sglang/pools.py)
    hybrid_swa_architectures: tuple[str, ...]
    swa_full_tokens_ratio: float
    swa_eviction_interval_tokens: int
    mamba_architectures: tuple[str, ...]
    mamba_config_dtype_architectures: tuple[str, ...]
    mamba_extra_buffer_architectures: tuple[str, ...]
    mamba_full_memory_ratio: float
    mamba_conv_dtype_bytes: int
    mamba_ssm_dtype: str
    mamba_slots_per_request: int
    mamba_tracking_slots_overlap: int
    mamba_tracking_slots_no_overlap: int
    mamba_tracking_slots_lazy: int
    dsa_page_tokens: int
    dsa_quant_block_size: int
    dsa_scale_bytes: int
    dsa_rope_bytes: int
    multimodal_architectures: tuple[str, ...]
    multimodal_disabled_architectures: tuple[str, ...]
    vlm_cache_mib: float
    sources: dict[str, str]


@lru_cache(maxsize=1)
def sglang_versions() -> VersionTable:
    return versions_in(VERSIONS_DIR, "SGLang")


@lru_cache(maxsize=16)
def sglang_constants(version: str | None = None) -> SglangConstants:
    return constants_for(sglang_versions(), version, SglangConstants)
