"""KV cache per GPU: MHA/GQA/MQA, MLA latent, sliding windows, KV dtype, paging, DMS."""
from __future__ import annotations

from dataclasses import dataclass

from oomplan import formats
from oomplan.memory.layout import Stage
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import ceil_div

def resolved_kv_dtype(model: ModelSpec, plan: Plan) -> str:
    if plan.kv_dtype != "auto":
        return plan.kv_dtype
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


def cached_tokens(model: ModelSpec, plan: Plan, ctx_tokens: int, sliding: bool, window_tokens: int | None = None) -> int:
    """Tokens one sequence keeps in one layer, after window, DMS and block rounding
    (`window_tokens`: that layer's window; default the model's sliding window)."""
    tokens = dms_kept_tokens(ctx_tokens, plan.dms_ratio, plan.dms_window_tokens)
    window = window_tokens if window_tokens is not None else model.sliding_window_tokens
    if sliding and window is not None:
        tokens = min(tokens, window)
    if plan.paged:
        tokens = ceil_div(tokens, plan.block_size) * plan.block_size
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


def kv_budget(model: ModelSpec, plan: Plan, ctx_tokens: int, batch_size: int, stage: Stage) -> KvBudget:
    """KV cache of `batch_size` sequences of `ctx_tokens` for the layers of one stage."""
    per_layer = kv_bytes_per_token_per_layer(model, plan)
    indexer = indexer_bytes_per_token_per_layer(model, plan)
    full = cached_tokens(model, plan, ctx_tokens, sliding=False)
    window = cached_tokens(model, plan, ctx_tokens, sliding=True)
    tokens = num_kv_layers = indexer_bytes = num_indexed = num_windowed = window_max = 0
    for i in stage.layer_indices:
        attn = model.layers[i].attention
        if attn.kind in ("linear", "none", "cross"):
            # no context KV: a Mamba / Gated DeltaNet layer keeps a fixed state instead (memory/state.py); a cross-attention
            # layer (Mllama) caches the image's projected vision states, per image, not per token (cross_kv_bytes)
            continue
        num_kv_layers += 1
        if attn.indexed:  # the DSA indexer's keys: every token, like the latent
            indexer_bytes += indexer * full
            num_indexed += 1
        if attn.kind in ("full", "mla"):
            tokens += full
        elif attn.kind in ("sliding", "chunked"):
            # cache_utils.py: chunked layers keep a DynamicSlidingWindowLayer of attention_chunk_size tokens
            kept = cached_tokens(model, plan, ctx_tokens, sliding=True, window_tokens=attn.window_tokens)
            tokens += kept
            if kept < full:
                num_windowed, window_max = num_windowed + 1, max(window_max, kept)
        else:
            raise ValueError(f"{model.name}: the KV cache of {attn.kind} layers is not priced yet")
    total = batch_size * (per_layer * tokens + indexer_bytes)
    return KvBudget(total, per_layer * num_kv_layers + indexer * num_indexed, full, window, num_kv_layers, num_windowed, window_max)
