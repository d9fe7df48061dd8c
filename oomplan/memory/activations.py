"""Transient (activation) memory per GPU for inference with HF transformers' forward pass.

Prefill: the peak of one decoder layer (attention or MLP, whichever is larger) on top of the
residual stream, plus eager attention's N x N scores, plus the logits. Decode: the per-step
transients of the cache update and attention over the cached tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from oomplan.memory.kv_cache import kv_heads_per_gpu
from oomplan.specs.model import ModelSpec
from oomplan.specs.plan import Plan
from oomplan.units import ceil_div

FP32 = 4


@dataclass(frozen=True)
class ActivationBudget:
    prefill_layer_bytes: int  # largest per-layer transient during prefill
    attention_scores_bytes: int  # eager: scores + fp32 softmax + mask (0 with fused attention)
    logits_bytes: int
    decode_step_bytes: int

    @property
    def peak_bytes(self) -> int:
        prefill = self.prefill_layer_bytes + self.attention_scores_bytes + self.logits_bytes
        return max(prefill, self.decode_step_bytes)


def _dims(model: ModelSpec, plan: Plan) -> tuple[int, int, int, int]:
    """(heads, kv heads, intermediate, expert intermediate) per GPU under TP."""
    tp = plan.tensor_parallel
    heads = ceil_div(model.num_attention_heads, tp)
    inter = ceil_div(model.intermediate_size, tp)
    expert = ceil_div(model.moe.expert_intermediate_size, tp) if model.moe else 0
    return heads, kv_heads_per_gpu(model, tp), inter, expert


def attention_projection_bytes(model: ModelSpec, plan: Plan, tokens: int, dtype_bytes: float) -> int:
    """q, k, v (after RoPE) and the attention output of one layer for `tokens` tokens."""
    heads, kv_heads, _, _ = _dims(model, plan)
    if model.mla is not None:
        a = model.mla
        per_token = heads * (2 * (a.qk_nope_head_dim + a.qk_rope_head_dim) + a.v_head_dim) + a.kv_lora_rank + a.qk_rope_head_dim
    else:
        per_token = (2 * heads + 2 * kv_heads) * model.head_dim
    return int(tokens * per_token * dtype_bytes)


def mlp_bytes(model: ModelSpec, plan: Plan, tokens: int, dtype_bytes: float) -> int:
    """act(gate(x)), up(x) and their product alive at once (plain MLP: two)."""
    _, _, inter, expert = _dims(model, plan)
    width = inter
    if model.moe is not None:
        # routed tokens: each token visits num_experts_per_token experts of expert width
        routed = model.moe.num_experts_per_token * expert + ceil_div(model.moe.shared_expert_intermediate_size, plan.tensor_parallel)
        width = max(inter if len(model.moe.moe_layer_indices) < model.num_layers else 0, routed)
    factor = 3 if model.mlp_kind == "gated" else 2
    return int(tokens * width * factor * dtype_bytes)


def eager_scores_bytes(model: ModelSpec, plan: Plan, batch: int, q_tokens: int, kv_tokens: int, dtype_bytes: float) -> int:
    """Eager attention: scores (model dtype) + fp32 softmax + its cast back, plus the 4-D mask."""
    heads = _dims(model, plan)[0]
    scores = batch * heads * q_tokens * kv_tokens
    return int(scores * (2 * dtype_bytes + FP32) + batch * q_tokens * kv_tokens * dtype_bytes)


def logits_bytes(model: ModelSpec, plan: Plan, batch: int, tokens: int, dtype_bytes: float) -> int:
    """Logits in the model dtype plus generate()'s fp32 copy for the next-token scores."""
    positions = 1 if plan.logits == "last" else tokens
    vocab = model.vocab_size
    return int(batch * positions * vocab * (dtype_bytes + FP32))


def activation_budget(model: ModelSpec, plan: Plan, ctx_tokens: int, batch: int, dtype_bytes: float, is_last_stage: bool = True) -> ActivationBudget:
    """Prefill and decode transients per GPU; logits only on the last pipeline stage."""
    chunk = min(ctx_tokens, plan.prefill_chunk_tokens or ctx_tokens)
    tokens = batch * chunk
    residual = 2 * tokens * model.hidden_size * dtype_bytes
    layer = residual + max(attention_projection_bytes(model, plan, tokens, dtype_bytes), mlp_bytes(model, plan, tokens, dtype_bytes))
    scores = eager_scores_bytes(model, plan, batch, chunk, ctx_tokens, dtype_bytes) if plan.attention == "eager" else 0
    logits = logits_bytes(model, plan, batch, chunk, dtype_bytes) if is_last_stage else 0
    decode = decode_step_bytes(model, plan, ctx_tokens, batch, dtype_bytes)
    return ActivationBudget(int(layer), scores, logits, decode)


def decode_step_bytes(model: ModelSpec, plan: Plan, ctx_tokens: int, batch: int, dtype_bytes: float) -> int:
    """One decode step: DynamicCache's torch.cat copy of one layer's K and V; eager also
    expands KV heads to query heads (transformers repeat_kv) and builds 1 x ctx scores."""
    heads, kv_heads, _, _ = _dims(model, plan)
    if model.mla is not None:
        per_token = heads * (model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim + model.mla.v_head_dim)
    else:
        per_token = 2 * kv_heads * model.head_dim
    step = batch * ctx_tokens * per_token * dtype_bytes
    if plan.attention == "eager":
        step += 2 * batch * ctx_tokens * heads * model.head_dim * dtype_bytes
        step += eager_scores_bytes(model, plan, batch, 1, ctx_tokens, dtype_bytes)
    return int(step + logits_bytes(model, plan, batch, 1, dtype_bytes))
