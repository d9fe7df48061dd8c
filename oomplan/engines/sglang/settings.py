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
    cuda_graph_max_bs: int | None = None
    disable_cuda_graph: bool = False


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
    cuda_graph_max_bs: int  # 0: no CUDA graphs
    disable_cuda_graph: bool


def _bucket(gpu: GpuSpec, c: SglangConstants) -> SglangBucket:
    mib = gpu.memory_bytes / MIB
    return next(b for b in c.memory_buckets if mib < b.below_mib)


def resolve(model: ModelSpec, gpu: GpuSpec, s: SglangGiven) -> SglangResolved:
    """server_args.py _handle_gpu_memory_settings: chunked prefill, graph batch and mem_fraction_static defaults."""
    c = sglang_constants()
    b = _bucket(gpu, c)
    chunk = s.chunked_prefill_size or b.chunked_prefill_size
    graph_bs = 0 if s.disable_cuda_graph else s.cuda_graph_max_bs or (b.cuda_graph_max_bs if s.tp_size < 4 else b.cuda_graph_max_bs_tp4)
    frac = s.mem_fraction_static or default_mem_fraction(gpu, chunk, graph_bs, s.tp_size * s.pp_size, c)
    given = {f.name: getattr(s, f.name) for f in fields(s)}
    return SglangResolved(**given | dict(
        context_length=s.context_length or derived_max_model_len(model), mem_fraction_static=frac,
        page_size=s.page_size or c.page_size, chunked_prefill_size=chunk, cuda_graph_max_bs=graph_bs))


def reserved_mib(gpu: GpuSpec, chunk: int, graph_bs: int, world: int, c: SglangConstants) -> float:
    """SGLang's own estimate of activations + CUDA graphs + parallel buffers (MiB)."""
    mib = c.reserve_base_mib + max(chunk, c.reserve_min_prefill_tokens) * c.reserve_mib_per_prefill_token
    return mib + graph_bs * c.reserve_mib_per_graph_batch + world / 8 * c.reserve_mib_per_eighth_of_parallel


def default_mem_fraction(gpu: GpuSpec, chunk: int, graph_bs: int, world: int, c: SglangConstants) -> float:
    mib = gpu.memory_bytes / MIB
    reserve = reserved_mib(gpu, chunk, graph_bs, world, c)
    if mib > c.large_gpu_min_mib:
        reserve = max(reserve, c.reserve_floor_mib_large_gpu)
    return round((mib - reserve) / mib, 3)
