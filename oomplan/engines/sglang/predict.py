"""SGLang: `--mem-fraction-static` and the token pool.

python/sglang/srt/model_executor/model_runner.py profile_max_num_token: rest = free memory after loading -
free memory at start-up x (1 - mem_fraction_static), i.e. static (weights + KV pool) = mem_fraction_static x the
free memory at start-up; max_total_num_tokens = rest // cell_size (the KV bytes of one token, every layer),
rounded down to the page size. Activations and CUDA graphs live in the other 1 - mem_fraction_static.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from oomplan.engines.result import EnginePrediction, MemoryItem
from oomplan.engines.sglang.constants import sglang_constants, sglang_versions
from oomplan.engines.sglang.pools import (
    SglangPool, dsa_pool, hybrid_swa_pool, mamba_pool, max_running_requests, multimodal_reserve_bytes, pool_kind,
    sglang_stages,
)
from oomplan.engines.sglang.settings import KV_CACHE_DTYPES, SglangGiven, SglangResolved, resolve
from oomplan.engines.vllm.constants import vllm_constants
from oomplan.engines.vllm.profile import non_torch_bytes, profile_run
from oomplan.engines.weights import activation_dtype_bytes, served_plan, stage_weight_bytes
from oomplan.errors import InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import TP_DEGREES, Plan
from oomplan.units import GIB, format_bytes

CALIBRATED_PROFILE = "0.19"  # the vLLM release whose measured runs calibrate the shared profile-run terms

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
    pool: SglangPool
    reserved_bytes: int = 0  # the multimodal reservation taken out of the KV budget

    @property
    def pool_tokens(self) -> int:
        return self.pool.tokens

    @property
    def cell_bytes(self) -> int:
        return self.pool.cell_bytes


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: SglangResolved, plan: Plan, index: int) -> SglangStage:
    c = sglang_constants(s.engine_version)
    kind = pool_kind(model, s, c)
    layers = sglang_stages(model.num_layers, s.pp_size)[index].layer_indices  # get_pp_indices: extra layers last
    weights = stage_weight_bytes(model, plan, index, vllm_constants(CALIBRATED_PROFILE).vocab_padding, layers)
    if s.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InputError(f"--kv-cache-dtype: {s.kv_cache_dtype!r} is not accepted; use one of {', '.join(KV_CACHE_DTYPES)}")
    kv_bytes = KV_CACHE_DTYPES[s.kv_cache_dtype] or activation_dtype_bytes(model, plan)
    static = int((gpu.memory_bytes - gpu.overhead.cuda_context_bytes) * s.mem_fraction_static)
    reserved = multimodal_reserve_bytes(model, c)
    budget = max(0, static - weights - reserved)
    if kind in ("hybrid_swa", "swa_request_cap"):
        pool = hybrid_swa_pool(model, s, c, layers, kv_bytes, budget, kind)
    elif kind == "mamba":
        pool = mamba_pool(model, s, c, index, layers, kv_bytes, budget)
    elif kind == "dsa":
        pool = dsa_pool(model, gpu, s, c, layers, budget)
    else:
        cell = cell_bytes(model, len(layers), s.tp_size, kv_bytes)
        tokens = budget // cell // s.page_size * s.page_size
        if s.max_total_tokens:
            tokens = min(tokens, s.max_total_tokens)
        pool = SglangPool("default", tokens, cell, s.page_size)
    return SglangStage(index, weights, static, pool, reserved)


def _stage(model: ModelSpec, gpu: GpuSpec, given: SglangGiven) -> tuple[SglangResolved, Plan, SglangStage]:
    s = resolve(model, gpu, given)
    plan = served_plan(model, s.dtype, s.quantization, s.tp_size, s.pp_size)
    stages = [predict_stage(model, gpu, s, plan, i) for i in range(s.pp_size)]
    return s, plan, min(stages, key=lambda x: x.pool_tokens)


def _serves(model: ModelSpec, gpu: GpuSpec, given: SglangGiven) -> bool:
    try:
        s, _, st = _stage(model, gpu, given)
    except InputError:
        return False
    return st.pool_tokens - 1 >= s.context_length


def _fixes(model: ModelSpec, gpu: GpuSpec, given: SglangGiven, s: SglangResolved, st: SglangStage) -> list[str]:
    out = []
    if st.pool_tokens > 1:
        out.append(f"--context-length {st.pool_tokens - 1}")
    free = gpu.memory_bytes - gpu.overhead.cuda_context_bytes
    need = math.ceil((st.weights_bytes + (s.context_length + 1) * st.cell_bytes) / free * 100) / 100
    if need <= 0.95 and _serves(model, gpu, replace(given, mem_fraction_static=need)):
        out.append(f"--mem-fraction-static {need:.2f}")
    if s.kv_cache_dtype == "auto" and _serves(model, gpu, replace(given, kv_cache_dtype="fp8_e4m3")):
        out.append("--kv-cache-dtype fp8_e4m3")
    tps = [t for t in TP_DEGREES if t > s.tp_size and t <= gpu.num_gpus_per_node and model.num_attention_heads % t == 0]
    if (tp := next((t for t in tps if _serves(model, gpu, replace(given, tp_size=t))), None)):
        out.append(f"--tp-size {tp}")
    return out


def pool_items(st: SglangStage) -> list[MemoryItem]:
    """The static share as SGLang fills it: the token pool, the SWA pool, the Mamba state slots, reservations."""
    pool = st.pool
    what = {"dsa": "latent + indexer keys", "mamba": "full-attention layers", "hybrid_swa": "full layers",
            "swa_request_cap": "full layers"}.get(pool.kind)
    items = [MemoryItem("KV pool", pool.full_bytes, f"{pool.tokens:,} tokens x {format_bytes(pool.cell_bytes)}"
                        + (f" ({what})" if what else ""))]
    if pool.kind in ("hybrid_swa", "swa_request_cap"):
        items.append(MemoryItem("SWA pool", pool.swa_bytes, f"{pool.swa_tokens:,} tokens x {format_bytes(pool.swa_cell_bytes)} "
                                f"(sliding layers, window {pool.window_tokens})"))
    if pool.kind == "mamba":
        items.append(MemoryItem("Mamba state", pool.state_bytes, f"{max(0, pool.state_slots):,} slots + 1 x "
                                f"{format_bytes(pool.state_bytes_per_slot)} (conv + ssm, every state layer)"))
    if st.reserved_bytes:
        items.append(MemoryItem("multimodal reserve", st.reserved_bytes, "SGLANG_VLM_CACHE_SIZE_MB, out of the KV budget"))
    return items


def predict_sglang(model: ModelSpec, gpu: GpuSpec, given: SglangGiven) -> EnginePrediction:
    s, plan, st = _stage(model, gpu, given)
    static_items = pool_items(st)
    used = st.weights_bytes + sum(i.bytes for i in static_items)
    items = (
        MemoryItem("weights", st.weights_bytes, "tensors, vocab padding, rope cache"),
        *static_items,
        MemoryItem("static unused", max(0, st.static_bytes - used), "static share left over"),
        MemoryItem("activations", dynamic_bytes(model, s, plan), f"estimate: chunk {s.chunked_prefill_size}, decode graphs bs {s.cuda_graph_max_bs}"),
        MemoryItem("CUDA context", gpu.overhead.cuda_context_bytes, "before SGLang's measurement"),
    )
    failures = _failures(s, st)
    fixes = _fixes(model, gpu, given, s, st) if failures else []
    return _prediction(model, gpu, s, st, items, failures, fixes, given.engine_version)


def _failures(s: SglangResolved, st: SglangStage) -> list[str]:
    if st.pool.failure:
        return [st.pool.failure]
    if st.pool_tokens <= 0:
        return [f"not enough memory for the KV pool: weights take {format_bytes(st.weights_bytes)} of the static "
                f"{format_bytes(st.static_bytes)} (mem_fraction_static {s.mem_fraction_static:g}); SGLang stops at start-up"]
    if st.pool_tokens - 1 < s.context_length:
        return [f"the token pool holds {st.pool_tokens:,} tokens: a request is capped at {st.pool_tokens - 1:,}, "
                f"less than --context-length {s.context_length}"]
    return []


def pool_notes(s: SglangResolved, st: SglangStage) -> tuple[str, ...]:
    """What SGLang logs for the pool, and what it means per request."""
    pool = st.pool
    if pool.kind in ("hybrid_swa", "swa_request_cap"):
        how = (f"--swa-full-tokens-ratio {s.swa_full_tokens_ratio:g}" if pool.kind == "hybrid_swa" else
               f"the request cap of --max-running-requests {s.max_running_requests} without the radix cache")
        floor = pool.window_tokens + pool.page_size
        return (f"SGLang logs 'Use sliding window memory pool. full_layer_tokens={pool.tokens}, swa_layer_tokens={pool.swa_tokens}' "
                f"({how}) and max_total_num_tokens={pool.tokens}: one request holds up to {max(0, pool.tokens - 1):,} tokens in "
                f"the full layers; each running request keeps its last {pool.window_tokens} tokens (+ a page) in the SWA pool, "
                f"so about {pool.swa_tokens // floor:,} requests hold a full window at once",)
    if pool.kind == "mamba":
        conv = (pool.state_slots + 1) * pool.conv_bytes_per_slot
        return (f"SGLang logs 'Mamba Cache is allocated. max_mamba_cache_size: {pool.state_slots}, conv_state size: "
                f"{conv / GIB:.2f}GB, ssm_state size: {(pool.state_bytes - conv) / GIB:.2f}GB' and max_total_num_tokens="
                f"{pool.tokens} (the full-attention layers' tokens); each running request holds {pool.slots_per_request} "
                f"state slot(s), so at most {max(0, pool.state_slots) // max(1, pool.slots_per_request):,} run at once",)
    if pool.kind == "dsa":
        return (f"DSA: {format_bytes(pool.cell_bytes)} per token (MLA latent rows of every layer and the indexer's fp8 keys "
                f"with their scales), pages of {pool.page_size} tokens; SGLang logs max_total_num_tokens={pool.tokens}",)
    return ()


def dynamic_bytes(model: ModelSpec, s: SglangResolved, plan: Plan) -> int:
    """What lives outside the static share: a prefill chunk's activations and logits, all-reduce buffers and
    CUDA graphs, estimated with vLLM's calibrated profile model (same kernels, same sampler shapes)."""
    c = vllm_constants(CALIBRATED_PROFILE)
    last = sglang_stages(model.num_layers, s.pp_size)[-1]
    run = profile_run(model, last.layer_indices, True, s.tp_size, s.chunked_prefill_size, max(1, s.cuda_graph_max_bs),
                      activation_dtype_bytes(model, plan), c)
    graphs = c.cuda_graph_bytes if s.cuda_graph_max_bs else 0
    return run.activation_peak_bytes + non_torch_bytes(s.tp_size, c) + graphs


def _prediction(model: ModelSpec, gpu: GpuSpec, s: SglangResolved, st: SglangStage, items: tuple[MemoryItem, ...],
                failures: list[str], fixes: list[str], given_version: str | None) -> EnginePrediction:
    total = sum(i.bytes for i in items)
    warnings: list[str] = []
    if total > gpu.memory_bytes:
        warnings.append(f"{format_bytes(total)} needed with activations and CUDA graphs, more than "
                        f"{format_bytes(gpu.memory_bytes)}: prefill or CUDA graph capture may run out of memory "
                        "(lower --mem-fraction-static)")
    conc = concurrency(s, st.pool)
    settings = tuple((k, str(v)) for k, v in (("--tp-size", s.tp_size), ("--pp-size", s.pp_size), ("--dtype", s.dtype),
                     ("--quantization", s.quantization or "none"), ("--kv-cache-dtype", s.kv_cache_dtype),
                     ("--context-length", s.context_length), ("--mem-fraction-static", s.mem_fraction_static),
                     ("--chunked-prefill-size", s.chunked_prefill_size), ("--cuda-graph-max-bs-decode", s.cuda_graph_max_bs),
                     ("--cuda-graph-max-bs-prefill", s.cuda_graph_max_bs_prefill)))
    how = "the newest modelled" if given_version is None else f"--engine-version {given_version}"
    notes = (f"SGLang {s.engine_version} accounting ({how}; modelled: {sglang_versions().describe()}), from its source "
             "without measured SGLang runs: expect a few percent", *pool_notes(s, st))
    return EnginePrediction(
        engine="sglang", model=model, gpu=gpu, num_gpus=s.tp_size * s.pp_size, settings=settings, items=items,
        gpu_total_bytes=total, kv_pool_bytes=st.pool.full_bytes + st.pool.swa_bytes, kv_cache_tokens=st.pool_tokens,
        num_kv_blocks=st.pool_tokens // st.pool.page_size, context_tokens=s.context_length, max_concurrency=conc,
        max_running_requests=max_running_requests(s, st.pool),
        starts=st.pool_tokens > 0 and st.pool.failure is None, failures=tuple(failures), fixes=tuple(fixes),
        warnings=tuple(warnings), notes=notes, engine_version=s.engine_version)


def concurrency(s: SglangResolved, pool: SglangPool) -> float:
    """Requests of --context-length the pools hold at once: the full pool's tokens / context; the SWA pool holds each
    running request's min(context, window) + a page (validate_swa_pool_size's admission floor); the state pool
    max_mamba_cache_size // slots per request."""
    if not s.context_length:
        return 0.0
    conc = pool.tokens / s.context_length
    if pool.kind in ("hybrid_swa", "swa_request_cap"):
        conc = min(conc, pool.swa_tokens / (min(s.context_length, pool.window_tokens) + pool.page_size))
    if pool.kind == "mamba":
        conc = min(conc, max(0, pool.state_slots) // max(1, pool.slots_per_request))
    return conc
