"""KV cache per GPU: MHA/GQA/MQA, MLA latent, sliding windows, KV dtype, paging, DMS and the bounded-KV policies."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan import formats
from oomplan.memory.layout import Stage
from oomplan.specs.model import ModelSpec
from oomplan.specs.kv_policy import EpisodicPolicy, SlotsPolicy, WindowPolicy
from oomplan.specs.plan import Plan
from oomplan.units import ceil_div, round_up

def resolved_kv_dtype(model: ModelSpec, plan: Plan) -> str:
    """--kv-dtype, else the KV format a checkpoint priced as shipped declares as its engines' default (ModelOpt's
    kv_cache_quant_algo FP8: oomplan/formats/declared.py _kv_scheme), else the model dtype (fp32 served as bf16)."""
    if plan.kv_dtype != "auto":
        return plan.kv_dtype
    d = model.declared_weights
    if d is not None and d.kv_cache_default and d.kv_cache_dtype and plan.weights == "auto":
        return d.kv_cache_dtype
    return "bf16" if model.dtype == "fp32" else model.dtype


def kv_vector_bytes(num_values: int, kv_dtype: str) -> int:
    """Bytes to store `num_values` cached values of one token (one K or V of one head, or one latent)."""
    return formats.get(kv_dtype).kv_vector_bytes(num_values)


def kv_heads_per_gpu(model: ModelSpec, tensor_parallel: int) -> int:
    """KV heads split over TP; past their count they are replicated (one per GPU at least).
    Falcon in transformers caches K/V broadcast to every query head."""
    heads = model.num_attention_heads if model.hf_expands_kv_cache else model.num_kv_heads
    return ceil_div(heads, tensor_parallel)


def kv_bytes_per_token_per_layer(model: ModelSpec, plan: Plan) -> int:
    """One token in one layer on one GPU."""
    kv_dtype = resolved_kv_dtype(model, plan)
    if model.mla is not None:
        # DeepSeek-V2 paper, eq. 9-10: cache c_kv (kv_lora_rank) + the shared RoPE key; not split by TP
        return kv_vector_bytes(model.mla.kv_lora_rank + model.mla.qk_rope_head_dim, kv_dtype)
    heads = kv_heads_per_gpu(model, plan.tensor_parallel)
    return 2 * heads * kv_vector_bytes(model.head_dim, kv_dtype)  # K and V


def indexer_bytes_per_token_per_layer(model: ModelSpec, plan: Plan) -> int:
    """DSA (DeepSeek-V3.2, GLM-5): the lightning indexer's own key cache, one [index_head_dim] key per token and
    layer (transformers cache_utils.py DynamicIndexedLayer.indexer_keys [B, S, index_head_dim]); not split by TP."""
    if model.indexer is None:
        return 0
    return kv_vector_bytes(model.indexer.head_dim, resolved_kv_dtype(model, plan))


def dms_kept_tokens(ctx_tokens: int, ratio: float, window_tokens: int) -> int:
    """Tokens a DMS head keeps: ctx / ratio plus the delayed-eviction window.

    Łańcucki et al. 2025, "Inference-Time Hyper-Scaling with KV Cache Compression".
    """
    if ratio <= 1:
        return ctx_tokens
    return min(ctx_tokens, ceil_div(ctx_tokens * 1000, round(ratio * 1000)) + window_tokens)


def forward_tokens(plan: Plan, ctx_tokens: int) -> int:
    """Tokens one forward pass adds to every layer at once: the prefill chunk, else the whole prompt."""
    return min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)


def policy_cap_tokens(plan: Plan, ctx_tokens: int) -> int | None:
    """The most tokens the plan's KV policy lets one sequence hold in one layer at its peak; None: no cap.

    window / slots / episodic evict between forward passes, so one pass of C tokens (forward_tokens) is
    written into every layer before anything is evicted: the peak is the resident part plus max(recent, C).
    StreamingLLM reference code (mit-han-lab/streaming-llm, kv_cache.py StartRecentKVCache.evict_for_space)
    makes room for C before the pass: sinks + max(window, C). budget: what a layer keeps after its own prefill
    compression (the one layer still holding its whole prompt is added in kv_budget).
    """
    p = plan.kv_policy
    if p is None:
        return None
    chunk = forward_tokens(plan, ctx_tokens)
    if p.kind == "budget":
        # budget: SnapKV (FasterDecoding/SnapKV@395b54d snapkv/monkeypatch/llama_hijack_4_37.py) compresses inside
        # each layer's prefill forward; with the prompt split into chunks it can only compress once the last
        # chunk is in, so every layer holds the whole prompt until then: no cap at the peak.
        return p.budget_tokens if chunk == ctx_tokens else None
    return _evicting_cap(p, chunk)


def _evicting_cap(p: WindowPolicy | SlotsPolicy | EpisodicPolicy, chunk: int) -> int:
    """window / slots / episodic after a pass of `chunk` tokens: the resident part plus max(recent, chunk)."""
    if isinstance(p, WindowPolicy):
        return p.sink_tokens + max(p.window_tokens, chunk)
    if isinstance(p, SlotsPolicy):
        return p.num_slots + max(p.window_tokens, chunk)
    assert isinstance(p, EpisodicPolicy), p.kind
    return max(p.read_tokens, chunk)


def policy_attended_tokens(plan: Plan, ctx_tokens: int, decode: bool) -> int:
    """Tokens one layer's attention reads under the plan's KV policy (activations.py): the last prefill pass
    (decode=False) or a decode step (decode=True). window / slots / episodic: what the cache holds during that
    pass, the resident part plus max(recent, pass) (policy_cap_tokens; a decode pass is one token: sinks +
    window, slots + window, the read buffer). budget: every prefill attends the whole prompt (the selection
    runs on the full K/V, SnapKV@395b54d llama_hijack_4_37.py), decode the N kept tokens. No policy: ctx."""
    p = plan.kv_policy
    if p is None:
        return ctx_tokens
    if p.kind == "budget":
        return min(ctx_tokens, p.budget_tokens) if decode else ctx_tokens
    return min(ctx_tokens, _evicting_cap(p, 1 if decode else forward_tokens(plan, ctx_tokens)))


def cached_tokens(model: ModelSpec, plan: Plan, ctx_tokens: int, sliding: bool, window_tokens: int | None = None,
                  policy: bool = True) -> int:
    """Tokens one sequence keeps in one layer, after window, DMS, the KV policy and block rounding
    (`window_tokens`: that layer's window; default the model's sliding window; policy=False: without the policy)."""
    tokens = dms_kept_tokens(ctx_tokens, plan.dms_ratio, plan.dms_window_tokens)
    window = window_tokens if window_tokens is not None else model.sliding_window_tokens
    if sliding and window is not None:
        tokens = min(tokens, window)
    cap = policy_cap_tokens(plan, ctx_tokens) if policy else None
    if cap is not None:
        tokens = min(tokens, cap)  # a layer already sliding keeps min(its window, the policy)
    if plan.paged:
        tokens = round_up(tokens, plan.block_size)
    return tokens


@dataclass(frozen=True)
class KvBudget:
    bytes: int
    bytes_per_token: int  # every layer on this GPU, one more token of one sequence
    tokens_per_sequence_full: int
    tokens_per_sequence_sliding: int
    num_layers: int
    num_windowed_layers: int = 0  # sliding / chunked layers whose window holds fewer tokens than the context
    window_tokens_max: int = 0  # the largest such window (tokens one sequence keeps there)
    prefill_transient_bytes: int = 0  # budget policy: the one layer holding its whole prompt before it compresses
    cross_bytes: int = 0  # Mllama --images: the cross-attention layers' K/V of the images, inside `bytes` (memory/vision_kv.py)


def kv_budget(model: ModelSpec, plan: Plan, ctx_tokens: int, batch_size: int, stage: Stage) -> KvBudget:
    """KV cache of `batch_size` sequences of `ctx_tokens` for the layers of one stage, at its peak."""
    per_layer = kv_bytes_per_token_per_layer(model, plan)
    indexer = indexer_bytes_per_token_per_layer(model, plan)
    full = cached_tokens(model, plan, ctx_tokens, sliding=False)
    window = cached_tokens(model, plan, ctx_tokens, sliding=True)
    compresses_in_layer = plan.kv_policy is not None and plan.kv_policy.kind == "budget"
    kept_bytes = num_kv_layers = num_indexed = transient = num_windowed = window_max = 0
    for i in stage.layer_indices:
        attn = model.layers[i].attention
        if attn.kind in ("linear", "none", "cross"):
            # no context KV: a Mamba / Gated DeltaNet layer keeps a fixed state instead (memory/state.py); a cross-attention
            # layer (Mllama) caches the image's projected vision states, per image, not per token (cross_kv_bytes)
            continue
        num_kv_layers += 1
        if attn.kind in ("full", "mla"):
            # MLA: the policy evicts tokens, so it drops their latent rows; DSA indexer keys follow the kept tokens
            tokens, sliding, window_tokens = full, False, None
        elif attn.kind in ("sliding", "chunked"):
            # cache_utils.py: chunked layers keep a DynamicSlidingWindowLayer of attention_chunk_size tokens
            sliding, window_tokens = True, attn.window_tokens
            tokens = cached_tokens(model, plan, ctx_tokens, sliding=True, window_tokens=window_tokens)
            if tokens < full:
                num_windowed, window_max = num_windowed + 1, max(window_max, tokens)
        else:
            raise ValueError(f"{model.name}: the KV cache of {attn.kind} layers is not priced yet")
        token_bytes = per_layer + (indexer if attn.indexed else 0)
        num_indexed += attn.indexed
        kept_bytes += token_bytes * tokens
        if compresses_in_layer:  # this layer, during its own prefill attention: the whole prompt, then the budget
            held = cached_tokens(model, plan, ctx_tokens, sliding=sliding, window_tokens=window_tokens, policy=False)
            transient = max(transient, token_bytes * (held - tokens))
    total = batch_size * (kept_bytes + transient)
    return KvBudget(total, per_layer * num_kv_layers + indexer * num_indexed, full, window, num_kv_layers, num_windowed, window_max,
                    batch_size * transient)
