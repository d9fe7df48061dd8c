"""SGLang: `--mem-fraction-static` and the token pool.

python/sglang/srt/model_executor/model_runner.py profile_max_num_token: rest = free memory after loading -
free memory at start-up x (1 - mem_fraction_static), i.e. static (weights + KV pool) = mem_fraction_static x the
free memory at start-up; max_total_num_tokens = rest // cell_size (the KV bytes of one token, every layer),
rounded down to the page size. Activations and CUDA graphs live in the other 1 - mem_fraction_static.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from oomplan.engines.constants import SglangConstants, sglang_constants, vllm_constants
from oomplan.engines.result import EnginePrediction, MemoryItem
from oomplan.engines.vllm import derived_max_model_len
from oomplan.engines.vllm_profile import non_torch_bytes, profile_run
from oomplan.engines.weights import activation_dtype_bytes, stage_weight_bytes, weight_format
from oomplan.errors import InputError
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.validate import check_plan
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import MIB, format_bytes

KV_CACHE_DTYPES = {"auto": None, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8": 1}


@dataclass(frozen=True)
class SglangSettings:
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


def _bucket(gpu: GpuSpec, c: SglangConstants):
    mib = gpu.memory_bytes / MIB
    return next(b for b in c.memory_buckets if mib < b.below_mib)


def resolve(model: ModelSpec, gpu: GpuSpec, s: SglangSettings) -> SglangSettings:
    """server_args.py _handle_gpu_memory_settings: chunked prefill, graph batch and mem_fraction_static defaults."""
    c = sglang_constants()
    b = _bucket(gpu, c)
    chunk = s.chunked_prefill_size or b.chunked_prefill_size
    graph_bs = 0 if s.disable_cuda_graph else s.cuda_graph_max_bs or (b.cuda_graph_max_bs if s.tp_size < 4 else b.cuda_graph_max_bs_tp4)
    frac = s.mem_fraction_static or default_mem_fraction(gpu, chunk, graph_bs, s.tp_size * s.pp_size, c)
    return replace(s, context_length=s.context_length or derived_max_model_len(model), mem_fraction_static=frac,
                   page_size=s.page_size or c.page_size, chunked_prefill_size=chunk, cuda_graph_max_bs=graph_bs)


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


def cell_bytes(model: ModelSpec, layers: int, tp: int, kv_bytes: int) -> int:
    """model_runner profile_max_num_token cell_size: MLA latent, or max(1, kv_heads // tp) x head_dim x 2."""
    if model.mla is not None:
        return (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * layers * kv_bytes
    return max(1, model.num_kv_heads // tp) * model.head_dim * layers * 2 * kv_bytes


@dataclass(frozen=True)
class SglangStage:
    stage: int
    weights_bytes: int
    static_bytes: int  # mem_fraction_static x free memory at start-up
    pool_tokens: int
    cell_bytes: int


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: SglangSettings, plan: Plan, index: int) -> SglangStage:
    st = pipeline_stages(model.num_layers, s.pp_size)[index]
    weights = stage_weight_bytes(model, plan, index, vllm_constants().vocab_padding)
    if s.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InputError(f"--kv-cache-dtype: {s.kv_cache_dtype!r} is not accepted; use one of {', '.join(KV_CACHE_DTYPES)}")
    kv_bytes = KV_CACHE_DTYPES[s.kv_cache_dtype] or activation_dtype_bytes(model, plan)
    cell = cell_bytes(model, len(st.layer_indices), s.tp_size, kv_bytes)
    static = int((gpu.memory_bytes - gpu.overhead.cuda_context_bytes) * s.mem_fraction_static)
    tokens = max(0, (static - weights) // cell) // s.page_size * s.page_size
    if s.max_total_tokens:
        tokens = min(tokens, s.max_total_tokens)
    return SglangStage(index, weights, static, tokens, cell)


def _stage(model: ModelSpec, gpu: GpuSpec, given: SglangSettings) -> tuple[SglangSettings, Plan, SglangStage]:
    s = resolve(model, gpu, given)
    plan = Plan(weights=weight_format(s.dtype, s.quantization), tensor_parallel=s.tp_size, pipeline_parallel=s.pp_size)
    check_plan(model, plan)
    stages = [predict_stage(model, gpu, s, plan, i) for i in range(s.pp_size)]
    return s, plan, min(stages, key=lambda x: x.pool_tokens)


def _serves(model: ModelSpec, gpu: GpuSpec, given: SglangSettings) -> bool:
    try:
        s, _, st = _stage(model, gpu, given)
    except InputError:
        return False
    return st.pool_tokens - 1 >= s.context_length


def _fixes(model: ModelSpec, gpu: GpuSpec, given: SglangSettings, s: SglangSettings, st: SglangStage) -> list[str]:
    out = []
    if st.pool_tokens > 1:
        out.append(f"--context-length {st.pool_tokens - 1}")
    free = gpu.memory_bytes - gpu.overhead.cuda_context_bytes
    need = math.ceil((st.weights_bytes + (s.context_length + 1) * st.cell_bytes) / free * 100) / 100
    if need <= 0.95 and _serves(model, gpu, replace(given, mem_fraction_static=need)):
        out.append(f"--mem-fraction-static {need:.2f}")
    if s.kv_cache_dtype == "auto" and _serves(model, gpu, replace(given, kv_cache_dtype="fp8_e4m3")):
        out.append("--kv-cache-dtype fp8_e4m3")
    tps = [t for t in (2, 4, 8) if t > s.tp_size and t <= gpu.num_gpus_per_node and model.num_attention_heads % t == 0]
    if (tp := next((t for t in tps if _serves(model, gpu, replace(given, tp_size=t))), None)):
        out.append(f"--tp-size {tp}")
    return out


def predict_sglang(model: ModelSpec, gpu: GpuSpec, given: SglangSettings) -> EnginePrediction:
    s, plan, st = _stage(model, gpu, given)
    pool = st.pool_tokens * st.cell_bytes
    items = (
        MemoryItem("weights", st.weights_bytes, "tensors, vocab padding, rope cache"),
        MemoryItem("KV pool", pool, f"{st.pool_tokens:,} tokens x {format_bytes(st.cell_bytes)}"),
        MemoryItem("static unused", max(0, st.static_bytes - st.weights_bytes - pool), "static share left over"),
        MemoryItem("activations", dynamic_bytes(model, s, plan), f"estimate: chunk {s.chunked_prefill_size}, graphs bs {s.cuda_graph_max_bs}"),
        MemoryItem("CUDA context", gpu.overhead.cuda_context_bytes, "before SGLang's measurement"),
    )
    failures = _failures(s, st)
    fixes = _fixes(model, gpu, given, s, st) if failures else []
    return _prediction(model, gpu, s, st, items, failures, fixes)


def _failures(s: SglangSettings, st: SglangStage) -> list[str]:
    if st.pool_tokens <= 0:
        return [f"not enough memory for the KV pool: weights take {format_bytes(st.weights_bytes)} of the static "
                f"{format_bytes(st.static_bytes)} (mem_fraction_static {s.mem_fraction_static:g}); SGLang stops at start-up"]
    if st.pool_tokens - 1 < s.context_length:
        return [f"the token pool holds {st.pool_tokens:,} tokens: a request is capped at {st.pool_tokens - 1:,}, "
                f"less than --context-length {s.context_length}"]
    return []


def dynamic_bytes(model: ModelSpec, s: SglangSettings, plan: Plan) -> int:
    """What lives outside the static share: a prefill chunk's activations and logits, all-reduce buffers and
    CUDA graphs, estimated with vLLM's calibrated profile model (same kernels, same sampler shapes)."""
    c = vllm_constants()
    last = pipeline_stages(model.num_layers, s.pp_size)[-1]
    run = profile_run(model, last.layer_indices, True, s.tp_size, s.chunked_prefill_size, max(1, s.cuda_graph_max_bs),
                      activation_dtype_bytes(model, plan), c)
    graphs = c.cuda_graph_bytes if s.cuda_graph_max_bs else 0
    return run.activation_peak_bytes + non_torch_bytes(s.tp_size, c) + graphs


def _prediction(model: ModelSpec, gpu: GpuSpec, s: SglangSettings, st: SglangStage, items, failures, fixes) -> EnginePrediction:
    total = sum(i.bytes for i in items)
    warnings = []
    if total > gpu.memory_bytes:
        warnings.append(f"{format_bytes(total)} needed with activations and CUDA graphs, more than "
                        f"{format_bytes(gpu.memory_bytes)}: prefill or CUDA graph capture may run out of memory "
                        "(lower --mem-fraction-static)")
    conc = st.pool_tokens / s.context_length if s.context_length else 0.0
    settings = tuple((k, str(v)) for k, v in (("--tp-size", s.tp_size), ("--pp-size", s.pp_size), ("--dtype", s.dtype),
                     ("--quantization", s.quantization or "none"), ("--kv-cache-dtype", s.kv_cache_dtype),
                     ("--context-length", s.context_length), ("--mem-fraction-static", s.mem_fraction_static),
                     ("--chunked-prefill-size", s.chunked_prefill_size), ("--cuda-graph-max-bs", s.cuda_graph_max_bs)))
    notes = ("SGLang model from its source (no measured SGLang runs shipped): expect a few percent",)
    return EnginePrediction("sglang", model, gpu, s.tp_size * s.pp_size, settings, items, total, items[1].bytes,
                            st.pool_tokens, st.pool_tokens // s.page_size, s.context_length,
                            conc, max_running(s, st), st.pool_tokens > 0, tuple(failures), tuple(fixes), tuple(warnings), notes)


def max_running(s: SglangSettings, st: SglangStage) -> int:
    """model_runner init_memory_pool: max_num_reqs = min(max(pool / context_len * 512, 2048), 4096) unless set."""
    if s.max_running_requests:
        return s.max_running_requests
    return min(max(int(st.pool_tokens / max(1, s.context_length) * 512), 2048), 4096)
