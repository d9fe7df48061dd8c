"""`python -m sglang.launch_server` settings: *given* (None where SGLang derives a default) and *resolved*
(after server_args.py's defaults, every field set)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from oomplan import formats
from oomplan.engines.sglang.constants import SglangBucket, SglangConstants, sglang_constants
from oomplan.engines.vllm.settings import derived_max_model_len
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.units import MIB

# --kv-cache-dtype -> bytes per value (None: the model dtype), from the format registry's SGLang spellings
KV_CACHE_DTYPES: dict[str, int | None] = {"auto": None} | {k: formats.get(f).kv_vector_bytes(1) for k, f in formats.engine_kv_names("sglang").items()}


@dataclass(frozen=True)
class SglangGiven:
    tp_size: int = 1
    pp_size: int = 1
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    context_length: int | None = None
    mem_fraction_static: float | None = None
    page_size: int | None = None
    max_running_requests: int | None = None
    max_total_tokens: int | None = None
    chunked_prefill_size: int | None = None
    cuda_graph_max_bs: int | None = None  # decode graphs (--cuda-graph-max-bs-decode)
    disable_cuda_graph: bool = False  # both phases (--disable-cuda-graph, deprecated in 0.5.23)
    cuda_graph_max_bs_prefill: int | None = None  # tokens of the largest prefill graph
    disable_decode_cuda_graph: bool = False
    disable_prefill_cuda_graph: bool = False
    engine_version: str | None = None  # None: the newest modelled release
    # hybrid and windowed pools (pools.py); None: SGLang's default
    swa_full_tokens_ratio: float | None = None
    disable_hybrid_swa_memory: bool = False
    mamba_ssm_dtype: str | None = None  # float32 | bfloat16 | float16
    max_mamba_cache_size: int | None = None
    mamba_full_memory_ratio: float | None = None
    mamba_radix_cache_strategy: str = "auto"
    disable_radix_cache: bool = False
    disable_overlap_schedule: bool = False
    dsa_prefill_backend: str | None = None
    dsa_decode_backend: str | None = None


@dataclass(frozen=True)
class SglangResolved:
    tp_size: int
    pp_size: int
    dtype: str
    quantization: str | None  # None: the checkpoint's dtype
    kv_cache_dtype: str
    context_length: int
    mem_fraction_static: float
    page_size: int
    max_running_requests: int | None  # None: derived from the pool (max_running, predict.py)
    max_total_tokens: int | None  # None: no cap on the pool
    chunked_prefill_size: int
    cuda_graph_max_bs: int  # decode graphs; 0: none
    disable_cuda_graph: bool
    cuda_graph_max_bs_prefill: int  # prefill graphs (tokens); 0: none
    disable_decode_cuda_graph: bool
    disable_prefill_cuda_graph: bool
    engine_version: str  # the modelled release ("0.5.23")
    swa_full_tokens_ratio: float
    disable_hybrid_swa_memory: bool
    mamba_ssm_dtype: str | None  # None: the config's, else the release default (pools.py mamba_state_bytes)
    max_mamba_cache_size: int | None
    mamba_full_memory_ratio: float
    mamba_radix_cache_strategy: str
    disable_radix_cache: bool
    disable_overlap_schedule: bool
    dsa_prefill_backend: str | None
    dsa_decode_backend: str | None


def _bucket(gpu: GpuSpec, c: SglangConstants) -> SglangBucket:
    mib = gpu.memory_bytes / MIB
    return next(b for b in c.memory_buckets if mib < b.below_mib)


def _decode_graph_bs(s: SglangGiven, b: SglangBucket) -> int:
    """handle_gpu_memory_settings: the bucket's decode max_bs, capped to --max-running-requests when given."""
    if s.disable_cuda_graph or s.disable_decode_cuda_graph:
        return 0
    if s.cuda_graph_max_bs:
        return s.cuda_graph_max_bs
    bs = b.cuda_graph_max_bs if s.tp_size < 4 else b.cuda_graph_max_bs_tp4
    return min(bs, s.max_running_requests) if s.max_running_requests else bs


def _prefill_graph_tokens(model: ModelSpec, s: SglangGiven, chunk: int, c: SglangConstants) -> int:
    """handle_gpu_memory_settings: prefill max_bs = chunked_prefill_size (MLA: at most 8192); 0: no prefill graphs."""
    if s.disable_cuda_graph or s.disable_prefill_cuda_graph:
        return 0
    if s.cuda_graph_max_bs_prefill:
        return s.cuda_graph_max_bs_prefill
    top = min(chunk, c.prefill_graph_max_tokens_mla) if model.mla is not None else chunk
    return min(top, s.max_total_tokens) if s.max_total_tokens else top


def prefill_graph_sizes(max_tokens: int, c: SglangConstants) -> list[int]:
    """cuda_graph_hook.py generate_prefill_cuda_graph_batch_sizes."""
    sizes = [n for first, last, step in c.prefill_graph_sizes for n in range(first, (last or max_tokens) + 1, step)]
    return [n for n in sizes if n <= max_tokens]


def prefill_graph_reserve_mib(model: ModelSpec, prefill_tokens: int, c: SglangConstants) -> float:
    """reserve_for_graph_mb: 8 MiB per captured prefill size (MLA backends: 1.5 GiB)."""
    if not prefill_tokens:
        return 0.0
    if model.mla is not None:
        return c.reserve_mib_prefill_graphs_mla
    return len(prefill_graph_sizes(prefill_tokens, c)) * c.reserve_mib_per_prefill_graph


def resolve(model: ModelSpec, gpu: GpuSpec, s: SglangGiven) -> SglangResolved:
    """arg_groups/memory_hook.py handle_gpu_memory_settings: chunked prefill, graph sizes and mem_fraction_static."""
    c = sglang_constants(s.engine_version)
    b = _bucket(gpu, c)
    chunk = s.chunked_prefill_size or b.chunked_prefill_size
    graph_bs, prefill_tokens = _decode_graph_bs(s, b), _prefill_graph_tokens(model, s, chunk, c)
    frac = s.mem_fraction_static or default_mem_fraction(gpu, chunk, graph_bs, s.tp_size * s.pp_size, c,
                                                         prefill_graph_reserve_mib(model, prefill_tokens, c))
    given = {f.name: getattr(s, f.name) for f in fields(s)}
    return SglangResolved(**given | dict(
        context_length=s.context_length or derived_max_model_len(model), mem_fraction_static=frac,
        page_size=s.page_size or c.page_size, chunked_prefill_size=chunk, cuda_graph_max_bs=graph_bs,
        cuda_graph_max_bs_prefill=prefill_tokens, engine_version=c.engine_version,
        swa_full_tokens_ratio=s.swa_full_tokens_ratio or c.swa_full_tokens_ratio,
        mamba_full_memory_ratio=s.mamba_full_memory_ratio or c.mamba_full_memory_ratio))


def reserved_mib(gpu: GpuSpec, chunk: int, graph_bs: int, world: int, c: SglangConstants, prefill_graphs_mib: float = 0.0) -> float:
    """SGLang's own estimate of activations + CUDA graphs + parallel buffers (MiB)."""
    mib = c.reserve_base_mib + max(chunk, c.reserve_min_prefill_tokens) * c.reserve_mib_per_prefill_token
    return mib + graph_bs * c.reserve_mib_per_graph_batch + world / 8 * c.reserve_mib_per_eighth_of_parallel + prefill_graphs_mib


def default_mem_fraction(gpu: GpuSpec, chunk: int, graph_bs: int, world: int, c: SglangConstants,
                         prefill_graphs_mib: float = 0.0) -> float:
    mib = gpu.memory_bytes / MIB
    reserve = reserved_mib(gpu, chunk, graph_bs, world, c, prefill_graphs_mib)
    if mib > c.large_gpu_min_mib:
        reserve = max(reserve, c.reserve_floor_mib_large_gpu)
    return round((mib - reserve) / mib, 3)
