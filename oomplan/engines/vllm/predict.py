"""vLLM prediction: the busiest GPU's accounting, the pool, concurrency, start-up checks and fixes."""
from __future__ import annotations

import math
from dataclasses import replace

from oomplan.engines.result import EnginePrediction, MemoryItem
from oomplan.engines.vllm.constants import VllmConstants, vllm_constants, vllm_versions
from oomplan.engines.vllm.kv import KvLayout, estimate_max_model_len, kv_tokens, logged_kv_tokens, max_concurrency, max_request_tokens
from oomplan.engines.vllm.settings import VllmGiven, VllmResolved, derived_max_model_len
from oomplan.engines.vllm.stages import VllmStage, busiest, engine_plan, indexer_token_bytes, predict_stages, refusal
from oomplan.engines.weights import has_mxfp4_experts
from oomplan.errors import InputError
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import TP_DEGREES
from oomplan.units import format_bytes


def _starts(model: ModelSpec, gpu: GpuSpec, s: VllmGiven) -> bool:
    try:
        return not _failures(model, gpu, s, *predict_stages(model, gpu, s))
    except InputError:
        return False


def _startup_free_fraction(gpu: GpuSpec) -> float:
    """gpu_worker.init_device: free memory at start-up (total - CUDA context) must cover the requested share."""
    return (gpu.memory_bytes - gpu.overhead.cuda_context_bytes) / gpu.memory_bytes


def _failures(model: ModelSpec, gpu: GpuSpec, given: VllmGiven, s: VllmResolved, stages: tuple[VllmStage, ...]) -> list[str]:
    out = []
    derived = derived_max_model_len(model)
    if given.max_model_len and given.max_model_len > derived:
        out.append(f"max_model_len {given.max_model_len} is greater than the derived max_model_len ({derived}, "
                   f"from {model.name}'s config); vLLM refuses unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1")
    if s.gpu_memory_utilization > _startup_free_fraction(gpu):
        out.append(f"gpu_memory_utilization {s.gpu_memory_utilization:g} asks for more than the free memory at start-up "
                   f"({format_bytes(gpu.memory_bytes - gpu.overhead.cuda_context_bytes)} after the CUDA context)")
    out += [f"stage {st.stage}: {why}" if len(stages) > 1 else why for st in stages if (why := refusal(st, s))]
    if s.num_gpu_blocks_override or s.kv_cache_memory_bytes:
        out += [f"stage {st.stage}: {why}" if len(stages) > 1 else why for st in stages if (why := _pool_overflow(gpu, s, st))]
    return out


def _pool_overflow(gpu: GpuSpec, s: VllmResolved, st: VllmStage) -> str | None:
    """A pool sized by --num-gpu-blocks-override or --kv-cache-memory-bytes skips the memory budget (v1/core/kv_cache_utils.py:
    the override wins; v1/worker/gpu_worker.py determine_available_memory returns kv_cache_memory_bytes unprofiled) and is
    allocated whole (gpu_model_runner.py initialize_kv_cache_tensors, torch.zeros): past the card's memory that is a CUDA OOM."""
    pool = max(0, st.num_blocks) * st.layout.page_bytes * st.layout.group_size
    held = st.weights_bytes + st.non_torch_bytes + st.persistent_bytes + gpu.overhead.cuda_context_bytes
    if held + pool <= gpu.memory_bytes:
        return None
    flag = "--num-gpu-blocks-override" if s.num_gpu_blocks_override else "--kv-cache-memory-bytes"
    return (f"{flag}: a KV pool of {format_bytes(pool)} does not fit in the {format_bytes(max(0, gpu.memory_bytes - held))} the card has "
            "left after weights, non-torch memory and the CUDA context; allocating it is a CUDA out-of-memory error")


def _first_that_starts(model: ModelSpec, gpu: GpuSpec, candidates: list[VllmGiven]) -> VllmGiven | None:
    return next((c for c in candidates if _starts(model, gpu, c)), None)


def _lowest_utilization(model: ModelSpec, gpu: GpuSpec, given: VllmGiven, s: VllmResolved) -> float | None:
    """Binary search over 0.01 steps up to what start-up allows: a larger share only grows the pool."""
    lo, hi = math.ceil(s.gpu_memory_utilization * 100) + 1, math.floor(_startup_free_fraction(gpu) * 100)
    if lo > hi or not _starts(model, gpu, replace(given, gpu_memory_utilization=hi / 100)):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _starts(model, gpu, replace(given, gpu_memory_utilization=mid / 100)) else (mid + 1, hi)
    return lo / 100


def _fixes(model: ModelSpec, gpu: GpuSpec, given: VllmGiven, s: VllmResolved, st: VllmStage) -> list[str]:
    out = []
    derived = derived_max_model_len(model)
    longest = estimate_max_model_len(st.layout, st.available_kv_bytes, s.max_in_flight_tokens, min(s.max_model_len, derived))
    if 0 < longest < s.max_model_len and _starts(model, gpu, replace(given, max_model_len=longest)):
        out.append(f"--max-model-len {longest}")
    top = math.floor(_startup_free_fraction(gpu) * 100) / 100
    if s.gpu_memory_utilization > top and _starts(model, gpu, replace(given, gpu_memory_utilization=top)):
        out.append(f"--gpu-memory-utilization {top:.2f}")
    elif (u := _lowest_utilization(model, gpu, given, s)) is not None:
        out.append(f"--gpu-memory-utilization {u:.2f}")
    if s.kv_cache_dtype not in ("fp8", "fp8_e4m3", "fp8_e5m2") and _starts(model, gpu, replace(given, kv_cache_dtype="fp8")):
        out.append("--kv-cache-dtype fp8")
    tps = [t for t in TP_DEGREES if t > s.tensor_parallel and t <= gpu.num_gpus_per_node and model.num_attention_heads % t == 0]
    if (t := _first_that_starts(model, gpu, [replace(given, tensor_parallel=x) for x in tps])):
        out.append(f"--tensor-parallel-size {t.tensor_parallel}")
    if s.quantization is None and _starts(model, gpu, replace(given, quantization="fp8")):
        out.append("--quantization fp8")
    return out


def _items(gpu: GpuSpec, s: VllmResolved, st: VllmStage, blocks: int, graphs: int) -> tuple[MemoryItem, ...]:
    page = st.layout.page_bytes * st.layout.group_size
    state = (MemoryItem("sampler state", st.persistent_bytes, "Model Runner V2 penalty counts [max_num_seqs, vocab] (0.27+)"),
             ) if st.persistent_bytes else ()
    return (
        MemoryItem("weights", st.weights_bytes, "tensors, vocab padding, rope cache"),
        MemoryItem("activation peak", st.profile.activation_peak_bytes,
                   f"profile run: {s.max_num_batched_tokens} tokens, {min(s.max_num_seqs, s.max_num_batched_tokens)} rows"),
        MemoryItem("non-torch", st.non_torch_bytes, "NCCL / all-reduce buffers" if s.tensor_parallel > 1 else "outside torch's allocator"),
        MemoryItem("KV pool", blocks * page, f"{blocks:,} blocks x {st.layout.block_size} tokens"
                   + (" (attention and Mamba state share them)" if st.layout.num_mamba_layers else "")),
        *state,
        MemoryItem("CUDA graphs", graphs, "--enforce-eager" if not graphs else
                   "inside the budget (profile_cudagraph_memory)" if st.cuda_graph_bytes else "outside the budget"),
        MemoryItem("CUDA context", gpu.overhead.cuda_context_bytes, "before vLLM's snapshot"),
    )


def predict_vllm(model: ModelSpec, gpu: GpuSpec, given: VllmGiven) -> EnginePrediction:
    s, stages = predict_stages(model, gpu, given)
    st = busiest(stages)
    failures = _failures(model, gpu, given, s, stages)
    blocks = max(0, st.num_blocks)
    c = vllm_constants(s.engine_version)
    graphs = 0 if s.enforce_eager else c.cuda_graph_bytes
    items = _items(gpu, s, st, blocks, graphs)
    total = sum(i.bytes for i in items)
    warnings: list[str] = []
    if not failures and total > gpu.memory_bytes:
        warnings.append(f"the process would hold {format_bytes(total)} of {format_bytes(gpu.memory_bytes)}: "
                        "CUDA graph capture may run out of memory (lower --gpu-memory-utilization or add --enforce-eager)")
    conc = max_concurrency(st.layout, blocks, s.max_model_len, s.max_in_flight_tokens) if blocks else 0.0
    tokens = (logged_kv_tokens(st.layout, blocks, s.max_model_len, s.max_in_flight_tokens)
              if c.kv_tokens_logged == "concurrency" else kv_tokens(st.layout, blocks, s.max_model_len))
    return EnginePrediction(
        engine="vllm", model=model, gpu=gpu, num_gpus=s.tensor_parallel * s.pipeline_parallel, settings=_settings(s, st),
        items=items, gpu_total_bytes=total, kv_pool_bytes=items[3].bytes, kv_cache_tokens=tokens,
        num_kv_blocks=blocks, context_tokens=s.max_model_len, max_concurrency=conc, max_running_requests=s.max_num_seqs,
        starts=not failures, failures=tuple(failures), fixes=tuple(_fixes(model, gpu, given, s, st)) if failures else (),
        warnings=tuple(warnings), notes=tuple(_notes(model, gpu, given, s, c, st, blocks)), host_bytes=s.cpu_offload_bytes,
        engine_version=s.engine_version,
    )


def _settings(s: VllmResolved, st: VllmStage) -> tuple[tuple[str, str], ...]:
    """The resolved options; --block-size as the KV manager runs it (a hybrid's raised attention block, DSA's 64)."""
    pairs = [("--tensor-parallel-size", s.tensor_parallel), ("--pipeline-parallel-size", s.pipeline_parallel),
             ("--dtype", s.dtype), ("--quantization", s.quantization or "none"), ("--kv-cache-dtype", s.kv_cache_dtype),
             ("--max-model-len", s.max_model_len), ("--gpu-memory-utilization", s.gpu_memory_utilization),
             ("--max-num-seqs", s.max_num_seqs), ("--max-num-batched-tokens", s.max_num_batched_tokens),
             ("--block-size", st.layout.block_size)]
    return tuple((k, str(v)) for k, v in pairs)


def version_note(given_version: str | None, c: VllmConstants) -> str:
    """Which release's accounting this is, and how it was chosen."""
    table = vllm_versions()
    how = (f"the newest modelled (--engine-version X.Y picks another: {table.describe()})" if given_version is None
           else f"--engine-version {given_version}")
    return (f"vLLM {c.engine_version} accounting, {how}; "
            "calibrated on vLLM 0.19.0 H100 runs (docs/engines.md)")


def _mxfp4_note(gpu: GpuSpec, c: VllmConstants) -> str:
    """Which MXFP4 MoE backend layout the weights carry on this card (fused_moe/oracle/mxfp4.py, 0.19.yaml sources)."""
    if gpu.vendor == "nvidia" and gpu.architecture in c.mxfp4_triton_layout.architectures:
        return f"MXFP4 experts: the TRITON MoE backend's weight swizzle on {gpu.display_name} is priced (vLLM {c.engine_version})"
    if gpu.vendor == "nvidia" and gpu.architecture in c.mxfp4_moe_padding:
        return f"MXFP4 experts: the MARLIN MoE backend's padding on {gpu.display_name} is priced"
    return (f"MXFP4 experts: the layout vLLM's MoE backend gives them on {gpu.display_name} ({gpu.architecture}) is not "
            "modelled; priced as the checkpoint's tensors, an under-count where the backend pads them")


def _notes(model: ModelSpec, gpu: GpuSpec, given: VllmGiven, s: VllmResolved, c: VllmConstants, st: VllmStage,
           blocks: int) -> list[str]:
    out = [version_note(given.engine_version, c)]
    if s.quantization == "fp8" and not gpu.supports_fp8:
        out.append(f"{gpu.display_name} has no fp8 tensor cores: vLLM runs fp8 weights weight-only (Marlin), same memory")
    if s.quantization in ("awq", "gptq", "awq_marlin", "gptq_marlin", "bitsandbytes", "compressed-tensors"):
        out.append(f"--quantization {s.quantization} needs a checkpoint quantised that way; sized as {model.name} in that format")
    if has_mxfp4_experts(model, engine_plan(model, s)):
        out.append(_mxfp4_note(gpu, c))
    lay = st.layout
    windowed = lay.num_sliding_layers or lay.num_chunked_layers
    if windowed and (lay.num_full_layers or lay.num_mamba_layers):
        counted = ("the logged token count is concurrency x max_model_len (windows at their cap)"
                   if c.kv_tokens_logged == "concurrency" else "the logged token count treats every layer as full")
        out.append(f"{'chunked-attention' if lay.num_chunked_layers else 'sliding-window'} and full-attention layers share "
                   f"the pool (hybrid KV cache manager): {counted}; concurrency counts windows")
    if lay.mamba is not None:
        out.append(_mamba_note(lay, s, c, model))
    if model.indexer is not None:
        latent = ("656 bytes (fp8_ds_mla)" if s.kv_cache_dtype.startswith("fp8") else
                  f"{lay.page_bytes // lay.block_size - indexer_token_bytes(model, c)} bytes")
        out.append(f"DSA: each layer keeps the MLA latent ({latent}) and the lightning indexer's fp8 key with its scales "
                   f"({indexer_token_bytes(model, c)} bytes) per token, in {lay.block_size}-token blocks (FLASHMLA_SPARSE)")
    if blocks and (windowed or lay.num_mamba_layers) and lay.num_groups > 1:
        # the pool's real per-request capacity: the longest one request it admits (windows at their cap, state blocks fixed)
        upper = blocks * lay.block_size * lay.num_groups
        longest = max_request_tokens(lay, blocks, s.max_in_flight_tokens, upper)
        extra = "windowed layers keep at most their window plus the in-flight tokens" if windowed else \
            f"each request also holds {lay.mamba.state_blocks(s.max_model_len) if lay.mamba else 0} state block(s) per state group"
        out.append(f"per-request capacity: the pool holds one request of up to {longest:,} tokens ({blocks:,} blocks of "
                   f"{lay.block_size} tokens in {lay.num_groups} groups of {lay.group_size} layers; {extra}); "
                   f"requests of {s.max_model_len:,} tokens: {max_concurrency(lay, blocks, s.max_model_len, s.max_in_flight_tokens):.2f} at once")
    return out


def _mamba_note(lay: KvLayout, s: VllmResolved, c: VllmConstants, model: ModelSpec) -> str:
    """What the hybrid manager did with the state layers (mamba.py, kv.py): the raise, the padding, the mode."""
    m = lay.mamba
    assert m is not None, "called for hybrid layouts"
    pad = 100 * (lay.page_bytes - m.state_bytes) / m.state_bytes
    mode = {"none": "prefix caching off: one state per request",
            "align": f"prefix caching on ('align'): {m.blocks_per_request_fixed} state blocks per request",
            "all": f"prefix caching on ('all'): one state per {m.mamba_block_size} tokens"}[m.mode]
    raised = f"attention block raised to {lay.block_size} tokens" if lay.block_size != s.block_size else f"attention block {lay.block_size} tokens"
    return (f"{model.name}: {lay.num_mamba_layers} state layers keep a {format_bytes(m.state_bytes)} state each "
            f"(conv {m.conv_dtype}, ssm {m.ssm_dtype}) in the KV pool; {raised} so a page holds one state, the state "
            f"page padded {pad:.2f}%; {mode} (vLLM {c.engine_version} defaults; --enable-prefix-caching / "
            "--no-enable-prefix-caching and --mamba-ssm-cache-dtype change it)")

