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
from oomplan.engines.sglang.constants import sglang_versions
from oomplan.engines.sglang.settings import KV_CACHE_DTYPES, SglangGiven, SglangResolved, resolve
from oomplan.engines.vllm.constants import vllm_constants
from oomplan.engines.vllm.profile import non_torch_bytes, profile_run
from oomplan.engines.weights import activation_dtype_bytes, served_plan, stage_weight_bytes
from oomplan.errors import InputError
from oomplan.families import engine_facts
from oomplan.memory.layout import pipeline_stages
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import TP_DEGREES, Plan
from oomplan.units import format_bytes

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
    pool_tokens: int
    cell_bytes: int


# configs/model_config.py 0.5.23 is_hybrid_swa_model: the architectures (of the families oomplan reads) whose sliding
# and full layers SGLang keeps in two pools (SWAKVPool, swa_full_tokens_ratio) unless --disable-hybrid-swa-memory
HYBRID_SWA_ARCHITECTURES = frozenset({"GptOssForCausalLM", "Llama4ForConditionalGeneration"})


def refuse_unmodelled_pools(model: ModelSpec) -> None:
    """SGLang pools oomplan does not price yet: an honest refusal naming the fields, never the all-full-layers cell
    (which would count recurrent-state layers as attention and drop the DSA indexer's keys)."""
    if model.state_layer_indices:
        raise InputError(f"{model.name}: SGLang 0.5.23's hybrid pool (the Mamba / linear-attention state of its "
                         f"{len(model.state_layer_indices)} state layers, sized by --mamba-full-memory-ratio or "
                         "--max-mamba-cache-size, dtype --mamba-ssm-dtype; mem_cache/kv_cache_configurator.py) is not "
                         "modelled; --engine vllm or --engine hf prices this model")
    if model.indexer is not None:
        raise InputError(f"{model.name}: SGLang 0.5.23's DSA pool (the MLA latent plus the lightning indexer's key cache, "
                         "mem_cache/memory_pool.py) is not modelled; --engine vllm --engine-version 0.26 or --engine hf prices this model")
    if engine_facts(model).architecture in HYBRID_SWA_ARCHITECTURES:
        raise InputError(f"{model.name}: SGLang 0.5.23 keeps its sliding-window and full-attention layers in two pools "
                         "(hybrid SWA memory, --swa-full-tokens-ratio); not modelled; --engine vllm or --engine hf prices this model")


def predict_stage(model: ModelSpec, gpu: GpuSpec, s: SglangResolved, plan: Plan, index: int) -> SglangStage:
    refuse_unmodelled_pools(model)
    st = pipeline_stages(model.num_layers, s.pp_size)[index]
    weights = stage_weight_bytes(model, plan, index, vllm_constants(CALIBRATED_PROFILE).vocab_padding)
    if s.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InputError(f"--kv-cache-dtype: {s.kv_cache_dtype!r} is not accepted; use one of {', '.join(KV_CACHE_DTYPES)}")
    kv_bytes = KV_CACHE_DTYPES[s.kv_cache_dtype] or activation_dtype_bytes(model, plan)
    cell = cell_bytes(model, len(st.layer_indices), s.tp_size, kv_bytes)
    static = int((gpu.memory_bytes - gpu.overhead.cuda_context_bytes) * s.mem_fraction_static)
    tokens = max(0, (static - weights) // cell) // s.page_size * s.page_size
    if s.max_total_tokens:
        tokens = min(tokens, s.max_total_tokens)
    return SglangStage(index, weights, static, tokens, cell)


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


def predict_sglang(model: ModelSpec, gpu: GpuSpec, given: SglangGiven) -> EnginePrediction:
    s, plan, st = _stage(model, gpu, given)
    pool = st.pool_tokens * st.cell_bytes
    items = (
        MemoryItem("weights", st.weights_bytes, "tensors, vocab padding, rope cache"),
        MemoryItem("KV pool", pool, f"{st.pool_tokens:,} tokens x {format_bytes(st.cell_bytes)}"),
        MemoryItem("static unused", max(0, st.static_bytes - st.weights_bytes - pool), "static share left over"),
        MemoryItem("activations", dynamic_bytes(model, s, plan), f"estimate: chunk {s.chunked_prefill_size}, decode graphs bs {s.cuda_graph_max_bs}"),
        MemoryItem("CUDA context", gpu.overhead.cuda_context_bytes, "before SGLang's measurement"),
    )
    failures = _failures(s, st)
    fixes = _fixes(model, gpu, given, s, st) if failures else []
    return _prediction(model, gpu, s, st, items, failures, fixes, given.engine_version)


def _failures(s: SglangResolved, st: SglangStage) -> list[str]:
    if st.pool_tokens <= 0:
        return [f"not enough memory for the KV pool: weights take {format_bytes(st.weights_bytes)} of the static "
                f"{format_bytes(st.static_bytes)} (mem_fraction_static {s.mem_fraction_static:g}); SGLang stops at start-up"]
    if st.pool_tokens - 1 < s.context_length:
        return [f"the token pool holds {st.pool_tokens:,} tokens: a request is capped at {st.pool_tokens - 1:,}, "
                f"less than --context-length {s.context_length}"]
    return []


def dynamic_bytes(model: ModelSpec, s: SglangResolved, plan: Plan) -> int:
    """What lives outside the static share: a prefill chunk's activations and logits, all-reduce buffers and
    CUDA graphs, estimated with vLLM's calibrated profile model (same kernels, same sampler shapes)."""
    c = vllm_constants(CALIBRATED_PROFILE)
    last = pipeline_stages(model.num_layers, s.pp_size)[-1]
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
    conc = st.pool_tokens / s.context_length if s.context_length else 0.0
    settings = tuple((k, str(v)) for k, v in (("--tp-size", s.tp_size), ("--pp-size", s.pp_size), ("--dtype", s.dtype),
                     ("--quantization", s.quantization or "none"), ("--kv-cache-dtype", s.kv_cache_dtype),
                     ("--context-length", s.context_length), ("--mem-fraction-static", s.mem_fraction_static),
                     ("--chunked-prefill-size", s.chunked_prefill_size), ("--cuda-graph-max-bs-decode", s.cuda_graph_max_bs),
                     ("--cuda-graph-max-bs-prefill", s.cuda_graph_max_bs_prefill)))
    how = "the newest modelled" if given_version is None else f"--engine-version {given_version}"
    notes = (f"SGLang {s.engine_version} accounting ({how}; modelled: {sglang_versions().describe()}), from its source "
             "without measured SGLang runs: expect a few percent",)
    return EnginePrediction(
        engine="sglang", model=model, gpu=gpu, num_gpus=s.tp_size * s.pp_size, settings=settings, items=items,
        gpu_total_bytes=total, kv_pool_bytes=items[1].bytes, kv_cache_tokens=st.pool_tokens,
        num_kv_blocks=st.pool_tokens // s.page_size, context_tokens=s.context_length, max_concurrency=conc,
        max_running_requests=max_running(s, st), starts=st.pool_tokens > 0, failures=tuple(failures), fixes=tuple(fixes),
        warnings=tuple(warnings), notes=notes, engine_version=s.engine_version)


def max_running(s: SglangResolved, st: SglangStage) -> int:
    """model_runner init_memory_pool: max_num_reqs = min(max(pool / context_len * 512, 2048), 4096) unless set."""
    if s.max_running_requests:
        return s.max_running_requests
    return min(max(int(st.pool_tokens / max(1, s.context_length) * 512), 2048), 4096)
