"""Transient (activation) memory per GPU for inference with HF transformers (5.x) forward passes.

The peak is the largest of a few moments, each reproduced from what the meta probe measured
alive (docs/probe-findings.md): the last layer's MLP or MoE dispatch during prefill, its attention
(eager scores, repeat_kv copies, masks), the logits, and a decode step's cache update.
The KV of all layers is not part of these: it is the KV budget.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.memory.kv_cache import kv_heads_per_gpu, policy_attended_tokens, resolved_kv_dtype
from oomplan.memory.ssm_activations import ssm_layer_moment_bytes
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import DTYPE_BYTES, FP32, INT64, ceil_div


@dataclass(frozen=True)
class ActivationBudget:
    prefill_bytes: int  # largest transient during prefill (the last layer's)
    attention_scores_bytes: int  # eager N x N scores and masks inside prefill_bytes (0 when fused)
    logits_bytes: int  # the logits moment after the last layer
    decode_step_bytes: int  # largest transient of one decode step

    @property
    def peak_bytes(self) -> int:
        return max(self.prefill_bytes, self.logits_bytes, self.decode_step_bytes)


@dataclass(frozen=True)
class Dims:
    """Per-GPU sizes under TP, and element sizes."""

    heads: int
    kv_heads: int
    inter: int
    expert_inter: int
    b: float  # activations
    kv_b: float  # KV cache
    fp16: bool


def dims(model: ModelSpec, plan: Plan, b: float, fp16: bool = False) -> Dims:
    tp = plan.tensor_parallel
    expert = ceil_div(model.moe.expert_intermediate_size, tp) if model.moe else 0
    return Dims(ceil_div(model.num_attention_heads, tp), kv_heads_per_gpu(model, tp), ceil_div(model.intermediate_size, tp),
                expert, b, DTYPE_BYTES[resolved_kv_dtype(model, plan)], fp16)


def score_bytes(d: Dims, softmax_fp32: bool = True) -> int:  # noqa: D401
    """Bytes per eager attention score at softmax(scores, dtype=float32) (aten SoftMax.cpp):
    bf16: scores + fp32 up-cast copy + fp32 result; fp16 (half_to_float, cast back) and fp32: 8.
    Falcon (softmax in the model dtype, after `scores + mask`): four score-sized tensors."""
    if not softmax_fp32:
        return int(4 * d.b)
    return 10 if d.b == 2 and not d.fp16 else 8


def dense_mlp_bytes(model: ModelSpec, d: Dims, tokens: int, width: int) -> int:
    """act(gate(x)) * up(x): three [T, I] alive (gate's output is freed by act); a fused gate_up
    output [T, 2I] stays alive while its halves are used (Phi-3): four; plain MLP: two."""
    factor = 2 if model.mlp_kind == "plain" else (4 if model.fused_gate_up else 3)
    return int(tokens * width * factor * d.b)


def moe_bytes(model: ModelSpec, d: Dims, tokens: int) -> int:
    """transformers' grouped_mm experts (5.x default): the gate/up moment or the fp32 re-ordering one.

    Gathered input, gate_up [S_k, 2I], act * up; then down [S_k, h], `* routing weights` promotes
    to fp32 and `[inv_perm]` copies it; plus the router's logits, top-k and sort bookkeeping.
    """
    e, h = model.moe, model.hidden_size
    assert e is not None  # called only for MoE layers
    pairs = tokens * e.num_experts_per_token
    gate_up = pairs * (4 * d.expert_inter + h) * d.b
    weighted = FP32 if e.routing_weights_fp32 else d.b  # `* routing weights`, then `[inv_perm]`
    reorder = pairs * h * (2 * d.b + 2 * weighted)
    router = tokens * e.num_experts * FP32 + tokens * e.num_experts_per_token * (INT64 + FP32) + pairs * 32 + 8 * e.num_experts
    return int(max(gate_up, reorder) + router)


def ffn_moment_bytes(model: ModelSpec, d: Dims, tokens: int) -> int:
    """The busiest layer kind's FFN on top of four [T, h] tensors (embeddings, layer input,
    residual, normed input; parallel attention keeps a fifth, its output); a narrow MLP leaves
    the post-attention norm's 7 x [T, h] the larger."""
    h = model.hidden_size
    stream = 5 if model.parallel_attention else 4
    moe_layers = len(model.moe.moe_layer_indices) if model.moe else 0
    ffn = dense_mlp_bytes(model, d, tokens, d.inter) if moe_layers < model.num_layers else 0
    if moe_layers:
        ffn = max(ffn, moe_bytes(model, d, tokens))
    return int(max(ffn + stream * tokens * h * d.b, 7 * tokens * h * d.b))


def mask_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, q_len: int, kv_len: int) -> int:
    """Masks live for the whole forward. Eager: one [B, 1, q, kv] per attention kind (full, sliding),
    batch-materialised. Fused: a bool [1, 1, q, kv] where one is needed (chunks; windows shorter than kv)."""
    window = model.sliding_window_tokens
    has_full = model.num_sliding_layers < model.num_layers
    needs_sliding = bool(model.num_sliding_layers) and window is not None and kv_len > window
    if plan.attention == "eager":
        return int((int(has_full) + int(bool(model.num_sliding_layers))) * batch * q_len * kv_len * d.b)
    full_mask = has_full and (q_len < kv_len or model.sdpa_causal_mask)
    return q_len * kv_len * (int(full_mask) + int(needs_sliding))


def forward_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, q_len: int, kv_len: int) -> int:
    """Alive for the whole forward: masks, rotary cos/sin (batch-expanded only with per_sequence_tables), ids and positions; without attention
    layers (Mamba-2) only the ids (Mamba2Model.forward makes no mask, positions or rotary tables)."""
    if model.num_attention_layers == 0:
        return INT64 * batch * q_len
    # cos/sin cover the rotary part of a head only (partial_rotary_factor: Qwen3-Next, MiniMax-M2 rotate a quarter / half)
    rope = model.mla.qk_rope_head_dim if model.mla else int(model.head_dim * model.rope.partial_rotary_factor)
    if not any(layer.attention.rope for layer in model.layers if layer.attention.kind not in ("none", "linear")):
        rope = 0  # no rotary table (Nemotron-H's attention has no positional embedding)
    # one cos/sin pair per rotary table (Gemma 3, OLMo 3: one per layer type, RopeSpec.num_tables)
    tables = 2 * q_len * rope * d.b * (batch if model.rope.per_sequence_tables else 1) * model.rope.num_tables
    return int(mask_bytes(model, plan, d, batch, q_len, kv_len) + tables + INT64 * (batch * q_len + q_len))


def attention_moment_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, q_len: int, kv_len: int) -> tuple[int, int]:
    """(bytes, of which eager scores) of one layer's attention over kv_len tokens, masks excluded.

    Fused with no mask: q, k, v and the output. A mask turns off SDPA's GQA path, so repeat_kv
    copies K and V to every head (transformers sdpa_attention). Eager: scores, their fp32 softmax,
    repeat_kv's copies. MLA: the per-head expansion of the latent (modeling_deepseek_v3).
    """
    h, hd, tokens = model.hidden_size, model.head_dim, batch * q_len
    stream = 3 * tokens * h * d.b
    if model.mla is not None:
        a = model.mla
        per_token = d.heads * (3 * (a.qk_nope_head_dim + a.qk_rope_head_dim) + 2 * a.v_head_dim + a.qk_nope_head_dim)
        scores = batch * d.heads * q_len * kv_len * score_bytes(d, model.eager_softmax_fp32) if plan.attention == "eager" else 0
        return int(stream + tokens * per_token * d.b + scores), int(scores)
    repeat = 2 * batch * d.heads * kv_len * hd * d.b
    if plan.attention == "eager":
        scores = batch * d.heads * q_len * kv_len * score_bytes(d, model.eager_softmax_fp32)
        return int(stream + tokens * d.heads * hd * d.b + repeat + scores), int(scores)
    window = model.sliding_window_tokens
    if q_len < kv_len or (model.num_sliding_layers and window is not None and kv_len > window):
        return int(stream + 3 * tokens * d.heads * hd * d.b + repeat), 0
    return int(stream + tokens * (2 * d.heads + 2 * d.kv_heads) * hd * d.b), 0


def sliding_extra_bytes(model: ModelSpec, d: Dims, batch: int, q_len: int, kv_len: int, num_sliding: int) -> int:
    """HF's DynamicSlidingWindowLayer keeps a *view* of the whole update, so after a prefill pass a
    sliding layer still holds window - 1 + q_len tokens until the next step (cache_utils.py)."""
    window = model.sliding_window_tokens
    if not num_sliding or window is None:
        return 0
    held = min(kv_len, window - 1 + q_len)
    return int(num_sliding * 2 * batch * d.kv_heads * model.head_dim * max(0, held - window) * d.kv_b)


def logits_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, q_len: int) -> int:
    """After the last layer: the logits (doubled by Gemma 2's final soft-capping) and the final norm
    output; with logits for the last position only, generate()'s fp32 next-token scores too."""
    if plan.logits == "last":
        return int(batch * model.vocab_size * (d.b + FP32))
    tokens = batch * q_len
    return int(tokens * model.vocab_size * d.b * (2 if model.logit_softcapping else 1) + 2 * tokens * model.hidden_size * d.b)


def decode_step_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, ctx: int, num_sliding: int) -> int:
    """One decode step over ctx cached tokens: the largest of torch.cat's copy of one full layer's V
    (DynamicLayer.update), a sliding layer's two cats (the first step still sees the whole prompt),
    and eager attention's repeat_kv + scores or MLA's latent expansion; plus the step's logits."""
    hd, window = model.head_dim, model.sliding_window_tokens
    moments = [batch * d.kv_heads * hd * ctx * d.kv_b]
    if num_sliding and window is not None:
        first = sliding_extra_bytes(model, d, batch, ctx, ctx, num_sliding) + 2 * batch * d.kv_heads * hd * min(ctx, window) * d.kv_b
        moments.append(first)
    if model.mla is not None:
        a = model.mla
        expand = batch * ctx * d.heads * (2 * a.qk_nope_head_dim + a.v_head_dim + a.qk_rope_head_dim) * d.b
        eager = batch * d.heads * ctx * score_bytes(d, model.eager_softmax_fp32) + batch * ctx * d.b if plan.attention == "eager" else 0
        moments.append(expand + eager)
    elif plan.attention == "eager":
        moments.append(2 * batch * d.heads * ctx * hd * d.b + batch * d.heads * ctx * score_bytes(d, model.eager_softmax_fp32) + batch * ctx * d.b)
    small = (3 * model.hidden_size + d.heads * hd) * batch * d.b
    return int(max(moments) + small + batch * model.vocab_size * d.b)


def activation_budget(model: ModelSpec, plan: Plan, ctx_tokens: int, batch: int, dtype_bytes: float,
                      is_last_stage: bool = True, num_sliding_layers: int | None = None, fp16: bool = False) -> ActivationBudget:
    """Prefill (whole prompt or its last chunk), logits (last stage only) and decode transients."""
    d = dims(model, plan, dtype_bytes, fp16)
    q_len = min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)
    sliding = model.num_sliding_layers if num_sliding_layers is None else num_sliding_layers
    kv_len = policy_attended_tokens(plan, ctx_tokens, decode=False)  # a bounded KV policy: what the pass attends
    attention, scores = attention_moment_bytes(model, plan, d, batch, q_len, kv_len)
    attention += budget_selection_bytes(model, plan, d, batch, q_len, ctx_tokens)
    layer = max(ffn_moment_bytes(model, d, batch * q_len), attention,
                ssm_layer_moment_bytes(model, plan, batch, q_len, int(dtype_bytes), int(2 * batch * d.kv_heads * model.head_dim * d.kv_b),
                                       later_chunks=q_len < ctx_tokens))
    prefill = forward_bytes(model, plan, d, batch, q_len, kv_len) + layer + sliding_extra_bytes(model, d, batch, q_len, kv_len, sliding)
    logits = logits_bytes(model, plan, d, batch, q_len) if is_last_stage else 0
    decode = decode_step_bytes(model, plan, d, batch, policy_attended_tokens(plan, ctx_tokens, decode=True), sliding)
    return ActivationBudget(int(prefill), scores, logits, decode)


# SnapKV's observation window: the last 32 prompt queries score every prompt key
# (FasterDecoding/SnapKV@395b54d snapkv/monkeypatch/snapkv_utils.py init_snapkv: config.window_size = 32).
SNAPKV_OBSERVATION_TOKENS = 32


def budget_selection_bytes(model: ModelSpec, plan: Plan, d: Dims, batch: int, q_len: int, ctx_tokens: int) -> int:
    """budget:N's selection, priced as SnapKV's (snapkv_utils.py SnapKVCluster.update_kv, in each layer's prefill,
    q, k, v of the whole prompt alive): scores of the last w queries against all L keys [B, H, w, L] in the
    model dtype and their softmax(dtype=float32): B x H x w x L x score_bytes (the same moment as eager scores;
    the cast back to the model dtype afterwards holds less).
    It runs only on an unchunked prompt of at least the budget (update_kv returns the K/V unchanged otherwise;
    chunked prefill never compresses: kv_cache.policy_cap_tokens). H2O's reference code scores with eager
    attention instead: --attention eager prices that."""
    p = plan.kv_policy
    if p is None or p.kind != "budget" or q_len < ctx_tokens or ctx_tokens < p.budget_tokens:
        return 0
    w = min(SNAPKV_OBSERVATION_TOKENS, ctx_tokens)
    return int(batch * d.heads * w * ctx_tokens * score_bytes(d))
