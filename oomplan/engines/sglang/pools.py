"""SGLang 0.5.23's token pools beyond one pool of every layer: hybrid sliding-window models (a full and an SWA pool),
Mamba / Gated DeltaNet hybrids (a state pool beside the attention layers' pool) and DSA (the MLA latent plus the
lightning indexer's keys). Pure functions over bytes; constants in oomplan/data/engines/sglang/0.5.23.yaml.

Source, sglang 0.5.23 (python/sglang/srt/):
  model_executor/pool_configurator.py create_memory_pool_configurator: DSV4 / hybrid SWA (SWARequestCapPoolConfigurator
    when the radix cache is off and --max-running-requests is given, else HybridSWAPoolConfigurator) / the default;
  HybridSWAPoolConfigurator: cell = full_per_token x full layers + swa_full_tokens_ratio x swa_per_token x swa layers,
    max_total_num_tokens = budget // cell, full = that rounded to pages, swa = int(full x ratio) rounded to pages;
  DefaultPoolConfigurator: Mamba hybrids count only their full-attention layers; MLA rows from calculate_mla_kv_cache_dim,
    DSA adds _compute_dsa_indexer_cell_size;
  mem_cache/kv_cache_configurator.py _profile_available_bytes (budget = free memory - pre-load free x (1 - fraction)
    - the multimodal reservation), _handle_max_mamba_cache (the state pool comes out of the budget first),
    _calculate_mamba_ratio and resolve_max_num_reqs (the running-request cap);
  configs/mamba_utils.py Mamba2StateShape.create / mamba_cache_per_req (the per-request state; the shapes are
    oomplan/engines/state_shapes.py, shared with vLLM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oomplan.engines.sglang.constants import SglangConstants
from oomplan.engines.sglang.settings import SglangResolved
from oomplan.engines.state_shapes import SGLANG_RULES, STATE_DTYPE_BYTES, uniform_state_elements
from oomplan.errors import InputError
from oomplan.families import engine_facts
from oomplan.memory.layout import Stage, stage_at
from oomplan.specs.hardware import GpuSpec
from oomplan.specs.model import ModelSpec
from oomplan.units import MIB

PoolKind = Literal["default", "hybrid_swa", "swa_request_cap", "mamba", "dsa"]
LLAMA4 = "Llama4ForConditionalGeneration"


@dataclass(frozen=True)
class SglangPool:
    """One GPU's pools as SGLang 0.5.23 sizes them."""

    kind: PoolKind
    tokens: int  # max_total_num_tokens: the (full-attention) token pool, what the scheduler logs
    cell_bytes: int  # one token of that pool over its layers
    page_size: int
    swa_tokens: int = 0  # the SWA pool (hybrid SWA)
    swa_cell_bytes: int = 0  # one token of the SWA pool over the sliding layers
    window_tokens: int = 0
    state_slots: int = 0  # max_mamba_cache_size (Mamba hybrids)
    state_bytes_per_slot: int = 0  # mamba_cache_per_req of this stage
    conv_bytes_per_slot: int = 0
    slots_per_request: int = 0  # _calculate_mamba_ratio
    failure: str | None = None  # SGLang stops at start-up with this

    @property
    def full_bytes(self) -> int:
        return self.tokens * self.cell_bytes

    @property
    def swa_bytes(self) -> int:
        return self.swa_tokens * self.swa_cell_bytes

    @property
    def state_bytes(self) -> int:
        """MambaPool: every state tensor is [layers, max_mamba_cache_size + 1, ...] (the +1 a padding slot)."""
        return (self.state_slots + 1) * self.state_bytes_per_slot if self.state_slots > 0 else 0


def pool_kind(model: ModelSpec, s: SglangResolved, c: SglangConstants) -> PoolKind:
    """Which configurator SGLang 0.5.23 builds for this model; an honest refusal where oomplan does not price it."""
    arch = engine_facts(model).architecture
    if model.state_layer_indices:
        if arch not in c.mamba_architectures:
            raise InputError(f"{model.name}: architecture {arch or '(none)'} keeps a recurrent state that SGLang 0.5.23's "
                             f"hybrid pool is not modelled for (modelled: {', '.join(c.mamba_architectures)}); "
                             "--engine vllm or --engine hf prices this model")
        if not any(kind in ("full", "sliding") for kind in model.layer_attention):
            raise InputError(f"{model.name}: no attention layer; SGLang 0.5.23's pure state-space pool (no token pool) is not "
                             "modelled; --engine vllm or --engine hf prices this model")
        return "mamba"
    if model.indexer is not None:
        return "dsa"
    if arch == LLAMA4:
        raise InputError(f"{model.name}: SGLang 0.5.23 serves {LLAMA4} with multimodal off (configs/model_config.py "
                         "mm_disabled_models; models/mllama4.py then builds no vision tower) and its chunked-attention layers "
                         "in the SWA pool (is_hybrid_swa_model); neither is modelled; --engine vllm or --engine hf prices this model")
    if arch in c.hybrid_swa_architectures and not s.disable_hybrid_swa_memory:
        if not model.num_sliding_layers:
            raise InputError(f"{model.name}: {arch} without sliding-window layers: SGLang 0.5.23's hybrid SWA pool asserts "
                             "at least one (pool_configurator.py HybridSWAPoolConfigurator); pass --disable-hybrid-swa-memory")
        if s.max_running_requests and s.disable_radix_cache and s.chunked_prefill_size > 0 and "full" in model.layer_attention:
            return "swa_request_cap"
        return "hybrid_swa"
    return "default"


def multimodal_reserve_bytes(model: ModelSpec, c: SglangConstants) -> int:
    """mm_runtime_reservation_gb: SGLANG_VLM_CACHE_SIZE_MB out of the KV budget when multimodal is on."""
    arch = engine_facts(model).architecture
    on = model.vision is not None and arch in c.multimodal_architectures and arch not in c.multimodal_disabled_architectures
    return int(c.vlm_cache_mib * MIB) if on else 0


def _page(tokens: int, page: int) -> int:
    return max(0, tokens) // page * page


def kv_head_bytes(model: ModelSpec, tp: int, kv_bytes: int) -> int:
    """One layer's K and V of one token on one GPU: get_num_kv_heads = max(1, kv_heads // tp), head_dim + v_head_dim."""
    return max(1, model.num_kv_heads // tp) * model.head_dim * 2 * kv_bytes


def hybrid_swa_pool(model: ModelSpec, s: SglangResolved, c: SglangConstants, layers: tuple[int, ...], kv_bytes: int,
                    budget_bytes: int, kind: PoolKind) -> SglangPool:
    """HybridSWAPoolConfigurator / SWARequestCapPoolConfigurator (pool_configurator.py 0.5.23)."""
    page = s.page_size
    kinds = model.layer_attention
    full_layers = sum(kinds[i] == "full" for i in layers)
    swa_layers = sum(kinds[i] == "sliding" for i in layers)
    per_token = kv_head_bytes(model, s.tp_size, kv_bytes)  # gpt-oss: the same heads in both (get_swa_num_kv_heads)
    full_cell, swa_cell = per_token * full_layers, per_token * swa_layers
    window = model.sliding_window_tokens or 0
    if kind == "swa_request_cap":
        # compute_swa_request_cap: (window + eviction interval x 1 draft token + page) + one page of decode per request,
        # plus the prefill chunks in flight (2 with the overlap schedule) and a page
        per_request = window + c.swa_eviction_interval_tokens + page + page
        cap = per_request * max(1, s.max_running_requests or 1) + (1 if s.disable_overlap_schedule else 2) * s.chunked_prefill_size + page
        swa = -(-cap // page) * page
        full = _page(int((budget_bytes - swa * swa_cell) // full_cell), page)
        if s.max_total_tokens and s.max_total_tokens < full:
            full, swa = _page(s.max_total_tokens, page), min(swa, s.max_total_tokens)
        cap_failure = None if full > 0 else (f"the SWA pool's request cap ({swa:,} tokens for --max-running-requests "
                                             f"{s.max_running_requests}) leaves no room for the full KV pool; SGLang stops at start-up")
        return SglangPool(kind, full, full_cell, page, swa, swa_cell, window, failure=cap_failure)
    ratio = s.swa_full_tokens_ratio
    cell = full_cell + ratio * swa_cell if full_layers else swa_cell
    if not full_layers:  # all-SWA: max_total = the SWA pool, no ratio
        swa = _page(int(budget_bytes // cell), page)
        if s.max_total_tokens:
            swa = min(swa, _page(s.max_total_tokens, page))
        return SglangPool(kind, swa, swa_cell, page, 0, 0, window)
    full = _page(int(budget_bytes // cell), page)
    if s.max_total_tokens and s.max_total_tokens < full:  # config_from_budget: re-solved from the capped tokens
        full = _page(s.max_total_tokens, page)
    swa = _page(int(full * ratio), page)
    failure: str | None = None
    if full > 0 and window + page >= swa:  # validate_swa_pool_size
        failure = (f"the SWA pool ({swa:,} tokens) cannot hold even one request: the prefill admission floor is the "
                   f"sliding window ({window}) + page_size ({page}); SGLang stops at start-up (raise --swa-full-tokens-ratio)")
    return SglangPool(kind, full, full_cell, page, swa, swa_cell, window, failure=failure)


def mamba_ssm_dtype(model: ModelSpec, s: SglangResolved, c: SglangConstants) -> str:
    """mamba2_state_dtype: --mamba-ssm-dtype (SGLANG_MAMBA_SSM_DTYPE) > the config's mamba_ssm_dtype (an unknown value
    is warned about and dropped) for the configs that pass it > float32."""
    if s.mamba_ssm_dtype:
        return s.mamba_ssm_dtype
    facts = engine_facts(model)
    if facts.architecture in c.mamba_config_dtype_architectures and facts.mamba_ssm_dtype in STATE_DTYPE_BYTES:
        return facts.mamba_ssm_dtype
    return c.mamba_ssm_dtype


def mamba_layer_bytes(model: ModelSpec, tp: int, ssm_bytes: int, conv_bytes: int) -> tuple[int, int]:
    """(conv + ssm bytes, conv bytes) of one request's state in one layer on one GPU: Mamba2StateShape.create
    (oomplan/engines/state_shapes.py, SGLANG_RULES: GDN key heads widened like Mamba-2 groups, Mamba-1 refused)."""
    mixers = [model.layers[i].attention.state for i in model.state_layer_indices]
    e = uniform_state_elements(model, [m for m in mixers if m is not None], tp, SGLANG_RULES)
    return e.bytes(conv_bytes, ssm_bytes), e.conv_elements * conv_bytes


def sglang_pp_layers(num_layers: int, pp: int, rank: int) -> range:
    """python/sglang/srt/distributed/utils.py get_pp_indices (sglang 0.5.23), without SGLANG_PP_LAYER_PARTITION:
    base = num_layers // pp, and the LAST num_layers % pp ranks take base + 1 (vLLM's get_pp_indices gives the extra
    layers to the ranks before the last: oomplan/memory/layout.py pipeline_stages). utils/common.py make_layers builds
    exactly these layers on the rank; the embedding sits on the first rank, the final norm and lm_head on the last."""
    base, rem = divmod(num_layers, pp)
    if rank >= pp - rem:
        start = rank * (base + 1) - (pp - rem)
        return range(start, start + base + 1)
    return range(rank * base, rank * base + base)


def sglang_stages(num_layers: int, pp: int) -> tuple[Stage, ...]:
    """Every pipeline stage as SGLang 0.5.23 builds it (sglang_pp_layers)."""
    return tuple(stage_at(num_layers, pp, r, tuple(sglang_pp_layers(num_layers, pp, r))) for r in range(pp))


def mamba_slots_per_request(model: ModelSpec, s: SglangResolved, c: SglangConstants) -> int:
    """_calculate_mamba_ratio: 1 without the radix cache, else 3 + the extra buffer's tracking slots
    (_mamba_radix_cache_resolution: 'auto' -> extra_buffer with the overlap schedule on or pages > 1, for the
    architectures that support it; else no_buffer)."""
    if s.disable_radix_cache:
        return 1
    strategy = s.mamba_radix_cache_strategy
    overlap = not s.disable_overlap_schedule
    if strategy == "auto":
        supported = engine_facts(model).architecture in c.mamba_extra_buffer_architectures
        strategy = "extra_buffer" if supported and (overlap or s.page_size > 1) else "no_buffer"
        overlap = overlap and strategy == "extra_buffer"  # no_buffer turns the overlap schedule off
    extra = {"no_buffer": 0, "extra_buffer_lazy": c.mamba_tracking_slots_lazy,
             "extra_buffer": c.mamba_tracking_slots_overlap if overlap else c.mamba_tracking_slots_no_overlap}[strategy]
    return c.mamba_slots_per_request + extra


def mamba_pool(model: ModelSpec, s: SglangResolved, c: SglangConstants, stage: int, layers: tuple[int, ...],
               kv_bytes: int, budget_bytes: int) -> SglangPool:
    """_handle_max_mamba_cache, then DefaultPoolConfigurator over the stage's full-attention layers."""
    ssm_bytes = STATE_DTYPE_BYTES[mamba_ssm_dtype(model, s, c)]
    layer_bytes, conv_layer_bytes = mamba_layer_bytes(model, s.tp_size, ssm_bytes, c.mamba_conv_dtype_bytes)
    state_layers = model.state_layer_indices
    per_stage = max(sum(i in sglang_pp_layers(model.num_layers, s.pp_size, r) for i in state_layers) for r in range(s.pp_size))
    per_req = int(layer_bytes * len(state_layers) * (per_stage / len(state_layers)))  # pp_layer_scale
    if s.max_mamba_cache_size:
        slots = s.max_mamba_cache_size
    elif s.disable_radix_cache and s.max_running_requests:
        slots = max(1, s.max_running_requests)
    else:  # the ratio-based budget, with the pool's +1 padding slot
        budget = budget_bytes * s.mamba_full_memory_ratio / (1 + s.mamba_full_memory_ratio)
        slots = int((budget - per_req) // per_req)
    ratio = mamba_slots_per_request(model, s, c)
    full_layers = sum(model.layer_attention[i] == "full" for i in layers)
    cell = kv_head_bytes(model, s.tp_size, kv_bytes) * full_layers
    if cell == 0:
        raise InputError(f"{model.name}: pipeline stage {stage} holds no attention layer; SGLang 0.5.23's token pool "
                         "for it is not modelled; use another --pp-size")
    if slots <= 0:
        return SglangPool("mamba", 0, cell, s.page_size, state_slots=slots, state_bytes_per_slot=per_req,
                          slots_per_request=ratio, failure=f"not enough memory for the hybrid state cache: max_mamba_cache_size "
                          f"{slots} (mamba_cache_per_req {per_req / MIB:.2f} MiB); SGLang stops at start-up")
    rest = budget_bytes - (slots + 1) * per_req
    tokens = _page(int(rest // cell), s.page_size)
    if s.max_total_tokens:
        tokens = min(tokens, _page(s.max_total_tokens, s.page_size))
    failure: str | None = None
    if slots // ratio <= 0:  # resolve_max_num_reqs raises
        failure = (f"the hybrid state cache ({slots} slots, {ratio} per request) is too small to serve any request; "
                   "SGLang stops at start-up")
    conv = int(conv_layer_bytes * per_stage)
    return SglangPool("mamba", tokens, cell, s.page_size, state_slots=slots, state_bytes_per_slot=per_req,
                      conv_bytes_per_slot=conv, slots_per_request=ratio, failure=failure)


def dsa_row_bytes(model: ModelSpec, gpu: GpuSpec, s: SglangResolved, c: SglangConstants) -> tuple[int, str]:
    """(one layer's latent row in bytes, the KV dtype) for DSA: _dsa_kv_cache_dtype_default (auto: fp8_e4m3 on compute
    capability >= 10, else bfloat16), _dsa_split_backend_resolution (fp8: trtllm on >= 10, flashmla_kv below) and
    calculate_mla_kv_cache_dim (raw kv_lora_rank + rope rows for trtllm or tilelang on both sides, else fp8 rows with a
    4-byte scale per 128 values and the rope kept in bf16)."""
    assert model.mla is not None
    arch = engine_facts(model).architecture
    if gpu.vendor != "nvidia":
        raise InputError(f"{model.name}: SGLang 0.5.23's DSA pool on {gpu.display_name} (ROCm / other: aiter or triton "
                         "backends, page size by kernel availability) is not modelled; an NVIDIA card is")
    blackwell = gpu.architecture == "blackwell"
    dtype = s.kv_cache_dtype if s.kv_cache_dtype != "auto" else ("fp8_e4m3" if blackwell else "bfloat16")
    latent, rope = model.mla.kv_lora_rank, model.mla.qk_rope_head_dim
    if dtype in ("bf16", "bfloat16"):
        return (latent + rope) * 2, dtype
    if dtype != "fp8_e4m3":
        raise InputError(f"--kv-cache-dtype {dtype}: SGLang 0.5.23's DSA pool is modelled for auto, bfloat16 and fp8_e4m3")
    if blackwell and arch == "GlmMoeDsaForCausalLM" and not (s.dsa_prefill_backend and s.dsa_decode_backend):
        raise InputError(f"{model.name}: SGLang 0.5.23 picks GLM's fp8 DSA backends by compute capability (flashinfer_sparse_mla, "
                         "scaled rows, on SM120; trtllm, raw rows, on SM100) and oomplan's Blackwell profiles do not say "
                         "which; pass --dsa-prefill-backend and --dsa-decode-backend, or --kv-cache-dtype bfloat16")
    default = "trtllm" if blackwell else "flashmla_kv"
    prefill, decode = s.dsa_prefill_backend or default, s.dsa_decode_backend or default
    if "trtllm" in (prefill, decode) or prefill == decode == "tilelang":
        return latent + rope, dtype
    return latent + latent // c.dsa_quant_block_size * c.dsa_scale_bytes + rope * c.dsa_rope_bytes, dtype


def dsa_pool(model: ModelSpec, gpu: GpuSpec, s: SglangResolved, c: SglangConstants, layers: tuple[int, ...],
             budget_bytes: int) -> SglangPool:
    """DefaultPoolConfigurator for DSA: the latent rows of every layer plus _compute_dsa_indexer_cell_size (index_head_dim
    + index_head_dim // 128 x 4 uint8 per token, in each layer that computes its own top-k); page 64 on CUDA."""
    assert model.indexer is not None
    row, _ = dsa_row_bytes(model, gpu, s, c)
    head = model.indexer.head_dim
    indexed = sum(model.layers[i].attention.indexed for i in layers)
    cell = row * len(layers) + (head + head // c.dsa_quant_block_size * c.dsa_scale_bytes) * indexed
    page = c.dsa_page_tokens
    tokens = _page(int(budget_bytes // cell), page)
    if s.max_total_tokens:
        tokens = min(tokens, _page(s.max_total_tokens, page))
    return SglangPool("dsa", tokens, cell, page)


def max_running_requests(s: SglangResolved, pool: SglangPool) -> int:
    """resolve_max_num_reqs: --max-running-requests, else max(min(tokens / context_len x 512, 4096), 2048); at most
    tokens // 2; Mamba hybrids at most max_mamba_cache_size // slots per request."""
    if s.max_running_requests:
        reqs = min(s.max_running_requests, pool.tokens // 2)
    else:
        reqs = min(max(min(int(pool.tokens / max(1, s.context_length) * 512), 4096), 2048), pool.tokens // 2)
    if pool.kind == "mamba" and pool.slots_per_request:
        reqs = min(reqs, max(0, pool.state_slots) // pool.slots_per_request)
    return reqs
