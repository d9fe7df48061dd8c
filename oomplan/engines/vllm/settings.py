"""`vllm serve` settings: *given* (what the command or the plan passes; None where vLLM derives a default)
and *resolved* (after vLLM's defaults and clamps, every field set)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from oomplan import formats
from oomplan.engines.vllm.constants import VllmConstants, vllm_constants
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec

# --kv-cache-dtype -> bytes per value (None: the model dtype), from the format registry's vLLM spellings
KV_CACHE_DTYPES: dict[str, int | None] = {"auto": None} | {k: formats.get(f).kv_vector_bytes(1) for k, f in formats.engine_kv_names("vllm").items()}


@dataclass(frozen=True)
class VllmGiven:
    """`vllm serve` options that decide memory, as given; None where vLLM derives a default."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enable_expert_parallel: bool = False
    cpu_offload_bytes: int = 0
    kv_cache_memory_bytes: int | None = None
    enforce_eager: bool = False
    engine_version: str | None = None  # X.Y[.Z]; None: the newest modelled release
    num_gpu_blocks_override: int | None = None  # kv_cache_utils: the pool gets exactly this many blocks
    performance_mode: str = "balanced"  # throughput: get_batch_defaults' defaults doubled (arg_utils.py)
    no_async_scheduling: bool = False  # --no-async-scheduling: one batch in flight (config/vllm.py max_concurrent_batches)
    # hybrid (Mamba / GDN) state: config/cache.py CacheConfig (oomplan/engines/vllm/mamba.py)
    mamba_cache_dtype: str = "auto"
    mamba_ssm_cache_dtype: str = "auto"
    mamba_cache_mode: str | None = None
    mamba_block_size: int | None = None
    enable_prefix_caching: bool = False  # --enable-prefix-caching (on by default from 0.26 for hybrids)
    disable_prefix_caching: bool = False  # --no-enable-prefix-caching / --disable-prefix-caching


@dataclass(frozen=True)
class VllmResolved:
    """The same options after vLLM's defaults (engine/arg_utils.py, config/*.py): nothing left to derive."""

    tensor_parallel: int
    pipeline_parallel: int
    dtype: str
    quantization: str | None  # None: no --quantization (the checkpoint's dtype)
    kv_cache_dtype: str
    max_model_len: int
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    enable_expert_parallel: bool
    cpu_offload_bytes: int
    kv_cache_memory_bytes: int | None  # None: sized from gpu_memory_utilization
    enforce_eager: bool
    engine_version: str  # the modelled range holding the requested release ("0.33")
    num_gpu_blocks_override: int | None
    performance_mode: str
    no_async_scheduling: bool
    mamba_cache_dtype: str
    mamba_ssm_cache_dtype: str
    mamba_cache_mode: str | None
    mamba_block_size: int | None
    enable_prefix_caching: bool
    disable_prefix_caching: bool
    model_runner_v2: bool  # which GPU model runner profiles (config/vllm.py use_v2_model_runner)
    max_in_flight_tokens: int  # what a sliding-window request may hold beyond its window (config/vllm.py)


def derived_max_model_len(model: ModelSpec) -> int:
    """vllm/config/model.py _get_and_verify_max_len: max_position_embeddings, times a rope scaling factor
    (yarn: of original_max_position_embeddings); llama3/longrope scaling keeps it."""
    r = model.rope
    if r.scaling_type in ("llama3", "longrope", "su", "default", "mrope") or r.scaling_factor is None:
        return model.max_position_embeddings
    base = model.max_position_embeddings
    if r.scaling_type == "yarn" and r.original_max_position_embeddings is not None:
        base = r.original_max_position_embeddings
    return int(base * r.scaling_factor)


def declared_kv_cache_dtype(model: ModelSpec, s: VllmGiven) -> str:
    """engine/arg_utils.py -> utils/torch_utils.py resolve_kv_cache_dtype_string (0.19.0, 0.33.0): `--kv-cache-dtype
    auto` on a ModelOpt checkpoint served as shipped takes its kv_cache_quant_algo / kv_cache_scheme FP8 as 'fp8_e4m3'
    (MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP); compressed-tensors' kv_cache_scheme is not read there (auto stays the dtype)."""
    d = model.declared_weights
    if s.kv_cache_dtype == "auto" and s.quantization is None and d is not None and d.kv_cache_default and d.kv_cache_dtype == "fp8":
        return "fp8_e4m3"
    return s.kv_cache_dtype


def batch_defaults(gpu: GpuSpec, c: VllmConstants) -> tuple[int, int]:
    """engine/arg_utils.py get_batch_defaults for `vllm serve`: (max_num_batched_tokens, max_num_seqs)."""
    if c.huge_gpu_min_bytes is not None and gpu.memory_bytes >= c.huge_gpu_min_bytes:
        return c.huge_gpu_max_num_batched_tokens, c.huge_gpu_max_num_seqs
    if gpu.memory_bytes >= c.large_gpu_min_bytes and "a100" not in (gpu.name + gpu.display_name).lower():
        return c.large_gpu_max_num_batched_tokens, c.large_gpu_max_num_seqs
    return c.small_gpu_max_num_batched_tokens, c.small_gpu_max_num_seqs


def uses_model_runner_v2(model: ModelSpec, c: VllmConstants) -> bool:
    """config/vllm.py use_v2_model_runner with VLLM_USE_V2_MODEL_RUNNER unset (see the constants' sources):
    "architectures" (0.24) only the listed HF architectures; "dense" (0.26) non-MoE models or a listed one, and
    0.26.0 _is_default_v2_model_runner_model also keeps hybrid (Mamba / GDN) models on the V1 runner."""
    listed = any(a in c.v2_architectures for a in model.architectures)
    if c.model_runner_v2 == "architectures":
        return listed
    if c.model_runner_v2 == "dense":
        return (model.moe is None or listed) and not model.state_layer_indices
    return c.model_runner_v2 == "all"


def in_flight_batches(c: VllmConstants, pipeline_parallel: int, v2: bool, async_scheduling: bool = True) -> int:
    """config/vllm.py max_concurrent_batches with async scheduling on (the default): V2 pp + 1; V1 2 without
    PP, else pp. Before sliding windows counted in-flight batches (0.26): one prefill chunk."""
    if not c.sliding_window_counts_in_flight:
        return 1
    if not async_scheduling:
        return pipeline_parallel
    return pipeline_parallel + 1 if v2 else (2 if pipeline_parallel <= 1 else pipeline_parallel)


def resolve(model: ModelSpec, gpu: GpuSpec, s: VllmGiven, c: VllmConstants | None = None) -> VllmResolved:
    """Fill vLLM's defaults: engine/arg_utils.py get_batch_defaults and its clamps, for the given release."""
    c = c or vllm_constants(s.engine_version)
    max_len = s.max_model_len or derived_max_model_len(model)
    default_tokens, default_seqs = batch_defaults(gpu, c)
    if s.performance_mode == "throughput":  # arg_utils.py: both defaults doubled when left unset
        default_tokens, default_seqs = 2 * default_tokens, 2 * default_seqs
    seqs = s.max_num_seqs or default_seqs
    tokens = s.max_num_batched_tokens
    if tokens is None:
        tokens = min(seqs * max_len, default_tokens)
    if s.max_num_seqs is None:
        seqs = min(seqs, tokens)
    v2 = uses_model_runner_v2(model, c)
    given = {f.name: getattr(s, f.name) for f in fields(s)}
    return VllmResolved(**given | dict(
        kv_cache_dtype=declared_kv_cache_dtype(model, s), max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=tokens,
        gpu_memory_utilization=s.gpu_memory_utilization or c.gpu_memory_utilization, block_size=s.block_size or c.block_size,
        engine_version=c.engine_version, model_runner_v2=v2,
        max_in_flight_tokens=in_flight_batches(c, s.pipeline_parallel, v2, not s.no_async_scheduling) * tokens))
