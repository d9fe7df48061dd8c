"""Engine constants read from oomplan/data/engines/*.yaml: each value carries its provenance there."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError

from oomplan.errors import InputError
from oomplan.profiles import read_yaml, validation_message
from oomplan.specs.base import Strict

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "engines"


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


class LlamaCppConstants(Strict):
    schema_version: int = 1
    engine: str
    ggml_types: dict[str, tuple[int, int]]
    ftype_default: dict[str, str]
    fallback: dict[str, str]
    cache_types: tuple[str, ...]
    default_ctx_tokens: int
    ctx_padding_tokens: int
    default_ubatch_tokens: int
    fit_margin_bytes: int
    compute_scratch_rows: int
    flash_attn_head_dims: tuple[int, ...]
    sources: dict[str, str]


def _load(name: str, model: type[Strict]) -> Strict:
    path = DATA_DIR / f"{name}.yaml"
    data = read_yaml(path, "engine constants file")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(path, exc, tuple(model.model_fields))) from None


@lru_cache(maxsize=1)
def vllm_constants() -> VllmConstants:
    return _load("vllm", VllmConstants)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def sglang_constants() -> SglangConstants:
    return _load("sglang", SglangConstants)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def llamacpp_constants() -> LlamaCppConstants:
    return _load("llamacpp", LlamaCppConstants)  # type: ignore[return-value]
