"""llama.cpp's constants (oomplan/data/engines/llamacpp.yaml), each with its source there."""
from __future__ import annotations

from functools import lru_cache

from oomplan.engines.constants import DATA_DIR, load_constants
from oomplan.specs.base import Strict


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
    host_memory_bandwidth_bytes_per_s: float
    fit_margin_bytes: int
    compute_scratch_rows: int
    flash_attn_head_dims: tuple[int, ...]
    row_split_mmq_y_rows: int
    row_split_small_mmq_y_rows: int
    row_split_small_mmq_y_architectures: tuple[str, ...]
    matrix_row_padding_elems: int
    sources: dict[str, str]


@lru_cache(maxsize=1)
def llamacpp_constants() -> LlamaCppConstants:
    return load_constants(DATA_DIR / "llamacpp.yaml", LlamaCppConstants)
