"""run_meta_probe on tiny configs, checked against hand-computed weights and KV-cache bytes.

Expected KV layouts (transformers 5.x DynamicCache):
  * llama / mixtral / qwen3_moe: K and V per layer, (B, kv_heads, tokens, head_dim) each.
  * gemma2: full layers as llama; sliding layers keep the *storage* of the last `torch.cat`, which is
    `sliding_window` tokens once a decode step has run (the view kept is window - 1 tokens).
  * deepseek_v3 (MLA): the compressed latents, keys = (B, 1, tokens, kv_lora_rank) and
    values = (B, 1, tokens, qk_rope_head_dim); K/V are re-expanded from them every step.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from importlib.metadata import version  # noqa: E402

from packaging.version import Version  # noqa: E402

from oomplan.probe.meta_run import run_meta_probe  # noqa: E402

BF16, FP32 = 2, 4
# transformers 5.24.0 models/deepseek_v3/modeling_deepseek_v3.py:126,551 keeps the router's gate.weight in fp32;
# 5.23.0 (same file, :126,550) held it in the model dtype.
FP32_ROUTER = Version(version("transformers")) >= Version("5.24.0")
BATCH, CTX = 2, 24
VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER = 1000, 64, 4, 2, 16, 128

LLAMA = dict(
    model_type="llama", vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
    num_hidden_layers=2, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, tie_word_embeddings=False,
)
MIXTRAL = dict(LLAMA, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
QWEN3_MOE = dict(
    LLAMA, model_type="qwen3_moe", head_dim=HEAD_DIM, num_experts=4, num_experts_per_tok=2,
    moe_intermediate_size=32,
)
GEMMA2 = dict(
    LLAMA, model_type="gemma2", num_hidden_layers=4, head_dim=HEAD_DIM, sliding_window=8,
    query_pre_attn_scalar=HEAD_DIM, tie_word_embeddings=True,
)
DSV3 = dict(
    model_type="deepseek_v3", vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
    moe_intermediate_size=32, num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=HEADS,
    num_key_value_heads=HEADS, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
    topk_group=1, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
    tie_word_embeddings=False,
)


def _attn_params(q_out: int, kv_out: int) -> int:
    return HIDDEN * q_out + 2 * HIDDEN * kv_out + q_out * HIDDEN  # q, k, v, o (no bias)


def _llama_params(cfg: dict) -> int:
    per_layer = _attn_params(HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM) + 3 * HIDDEN * INTER + 2 * HIDDEN
    return 2 * VOCAB * HIDDEN + cfg["num_hidden_layers"] * per_layer + HIDDEN


def _moe_params(cfg: dict, num_experts: int, expert_inter: int, qk_norms: int = 0) -> int:
    attn = _attn_params(HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM) + qk_norms
    moe = HIDDEN * num_experts + num_experts * 3 * HIDDEN * expert_inter  # router + experts
    return 2 * VOCAB * HIDDEN + cfg["num_hidden_layers"] * (attn + moe + 2 * HIDDEN) + HIDDEN


def _gemma2_params() -> int:
    per_layer = _attn_params(HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM) + 3 * HIDDEN * INTER + 4 * HIDDEN
    return VOCAB * HIDDEN + GEMMA2["num_hidden_layers"] * per_layer + HIDDEN  # tied lm_head


def _dsv3_params(q_lora_rank: int | None) -> int:
    c = DSV3
    qk_head = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    if q_lora_rank is None:
        q = HIDDEN * HEADS * qk_head
    else:
        q = HIDDEN * q_lora_rank + q_lora_rank + q_lora_rank * HEADS * qk_head
    kv = HIDDEN * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) + c["kv_lora_rank"]
    kv += c["kv_lora_rank"] * HEADS * (c["qk_nope_head_dim"] + c["v_head_dim"])
    attn = q + kv + HEADS * c["v_head_dim"] * HIDDEN + 2 * HIDDEN  # + o_proj + 2 norms
    experts = c["n_routed_experts"] + c["n_shared_experts"]
    moe = HIDDEN * c["n_routed_experts"] + experts * 3 * HIDDEN * c["moe_intermediate_size"]
    num_dense = c["first_k_dense_replace"]
    layers = num_dense * (attn + 3 * HIDDEN * INTER) + (c["num_hidden_layers"] - num_dense) * (attn + moe)
    return 2 * VOCAB * HIDDEN + layers + HIDDEN


def _kv_bytes(num_layers: int, tokens: int, per_token_elems: int) -> int:
    return num_layers * BATCH * tokens * per_token_elems * BF16


def _dsv3_router_params() -> int:
    c = DSV3
    return (c["num_hidden_layers"] - c["first_k_dense_replace"]) * c["n_routed_experts"] * HIDDEN


def _check_common(result, num_params: int, kv_final: int, fp32_params: int = 0) -> None:
    assert result.num_params == num_params
    assert result.weights_bytes - result.buffer_bytes == (num_params - fp32_params) * BF16 + fp32_params * FP32
    assert result.kv_cache_bytes_final == kv_final
    assert result.peak_bytes >= result.weights_bytes + result.kv_cache_bytes_final
    assert result.peak_bytes == max(result.prefill_peak_bytes, result.decode_peak_bytes)
    parts = result.kv_cache_bytes_at_peak + result.activation_bytes_at_peak + result.logits_bytes_at_peak
    assert result.peak_bytes == result.weights_bytes + parts
    assert [s.phase for s in result.steps] == ["prefill", "decode", "decode"]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_llama_gqa(attention):
    r = run_meta_probe(LLAMA, ctx_tokens=CTX, batch_size=BATCH, attention=attention)
    _check_common(r, _llama_params(LLAMA), _kv_bytes(2, CTX, 2 * KV_HEADS * HEAD_DIM))
    assert r.experts_implementation is None and r.attn_implementation == attention


def test_llama_sdpa_prefill_peak_matches_the_documented_formula():
    # docs/probe-findings.md: last layer's MLP, act(gate) * up alive with up and act(gate) (3 x T*I),
    # four T*h tensors (embeddings, layer input, residual, norm output), rotary cos/sin (S*d each),
    # int64 input ids (T) and positions (S). T = batch * prompt tokens.
    seq = CTX - 2
    tokens = BATCH * seq
    r = run_meta_probe(LLAMA, ctx_tokens=CTX, batch_size=BATCH, attention="sdpa")
    prefill = r.steps[0]
    activations = tokens * (3 * INTER + 4 * HIDDEN) * BF16 + 2 * seq * HEAD_DIM * BF16 + 8 * (tokens + seq)
    assert prefill.activation_bytes == activations
    assert prefill.kv_cache_bytes == _kv_bytes(2, seq, 2 * KV_HEADS * HEAD_DIM)


def test_eager_prefill_holds_the_score_matrix_sdpa_does_not():
    ctx = 402  # long enough for the B*H*S*S scores to dwarf everything else
    seq = ctx - 2
    scores = BATCH * HEADS * seq * seq  # bf16 scores + fp32 up-cast copy + fp32 softmax = 10 bytes each
    eager = run_meta_probe(LLAMA, ctx_tokens=ctx, batch_size=BATCH, attention="eager")
    sdpa = run_meta_probe(LLAMA, ctx_tokens=ctx, batch_size=BATCH, attention="sdpa")
    assert eager.steps[0].activation_bytes >= 10 * scores
    assert sdpa.steps[0].activation_bytes < scores


def test_chunked_prefill_ends_with_the_same_cache():
    r = run_meta_probe(LLAMA, ctx_tokens=CTX, batch_size=BATCH, attention="sdpa", prefill_chunk_tokens=8)
    assert [s.num_query_tokens for s in r.steps] == [8, 8, 6, 1, 1]
    assert r.kv_cache_bytes_final == _kv_bytes(2, CTX, 2 * KV_HEADS * HEAD_DIM)


def test_mixtral_moe_runs_grouped_mm_on_meta():
    r = run_meta_probe(MIXTRAL, ctx_tokens=CTX, batch_size=BATCH, attention="sdpa")
    _check_common(r, _moe_params(MIXTRAL, 4, INTER), _kv_bytes(2, CTX, 2 * KV_HEADS * HEAD_DIM))
    assert r.experts_implementation == "grouped_mm"


def test_qwen3_moe():
    r = run_meta_probe(QWEN3_MOE, ctx_tokens=CTX, batch_size=BATCH, attention="sdpa")
    params = _moe_params(QWEN3_MOE, 4, 32, qk_norms=2 * HEAD_DIM)
    _check_common(r, params, _kv_bytes(2, CTX, 2 * KV_HEADS * HEAD_DIM))
    assert r.experts_implementation == "grouped_mm"


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_gemma2_sliding_window(attention):
    r = run_meta_probe(GEMMA2, ctx_tokens=CTX, batch_size=BATCH, attention=attention)
    per_token = 2 * KV_HEADS * HEAD_DIM
    window = GEMMA2["sliding_window"]
    window_scalars = 2 * 8  # each sliding layer also holds its window size as an int64 scalar tensor
    kv_final = _kv_bytes(2, CTX, per_token) + _kv_bytes(2, window, per_token) + window_scalars
    _check_common(r, _gemma2_params(), kv_final)
    # transformers >= 5.21 refuses sdpa for Gemma 2 (modeling_gemma2.py `_supports_sdpa = False`: softcapping), so
    # the probe registers its softcap-tolerant copy; 5.17-5.20 ran Gemma 2 on plain sdpa (_supports_sdpa = True).
    fused = "oomplan_fused_attention" if Version(version("transformers")) >= Version("5.21.0") else "sdpa"
    assert r.attn_implementation == ("eager" if attention == "eager" else fused)
    # until the first decode step the sliding layers still hold the whole prompt's storage
    assert r.steps[0].kv_cache_bytes >= _kv_bytes(4, CTX - 2, per_token)


@pytest.mark.parametrize("q_lora_rank", [32, None])
def test_deepseek_v3_mla_caches_latents(q_lora_rank):
    cfg = dict(DSV3, q_lora_rank=q_lora_rank)
    r = run_meta_probe(cfg, ctx_tokens=CTX, batch_size=BATCH, attention="sdpa")
    latent = cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]
    fp32_params = _dsv3_router_params() if FP32_ROUTER else 0
    _check_common(r, _dsv3_params(q_lora_rank), _kv_bytes(3, CTX, latent), fp32_params)
    assert r.experts_implementation == "grouped_mm"
    # decode re-expands a layer's whole cache: kv_b_proj output H*(nope+v) + a new key H*(nope+rope)
    per_head = 2 * cfg["qk_nope_head_dim"] + cfg["v_head_dim"] + cfg["qk_rope_head_dim"]
    expand = BATCH * CTX * HEADS * per_head * BF16
    assert r.steps[-1].activation_bytes >= expand


def test_gemma3_text_activations_match_the_meta_forward():
    """Gemma 3 keeps a global and a local rotary table (cos/sin [1, S, 256] each) through the whole forward
    (modeling_gemma3.py Gemma3TextModel.forward, 5.24.0); pricing one of them left the prediction one pair short
    (32 MiB at 32k for gemma-3-4b: measured 7,595,831,268 vs predicted 7,562,854,400 bytes). Here, 1,024 tokens: one
    pair is 2 x 1,022 x 256 x 2 = 1,046,528 bytes; the model now lands within 30 kB (25,644 bytes over)."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.budget import estimate
    from oomplan.probe.run import probe
    from oomplan.profiles import load_gpu
    from oomplan.specs.plan import Plan, Workload

    cfg = dict(model_type="gemma3_text", vocab_size=VOCAB, hidden_size=256, intermediate_size=512, num_hidden_layers=6,
               num_attention_heads=2, num_key_value_heads=1, head_dim=256, sliding_window=64)
    model = parse_hf_config(cfg, "gemma3-tiny", "test")
    report = probe(estimate(model, load_gpu("h100"), Workload(ctx_tokens=1024), Plan()), "meta", 2.0, 2)
    act = next(c for c in report.components if c.name == "activations")
    pair = 2 * 1022 * 256 * BF16
    assert abs(act.measured_bytes - act.predicted_bytes) < pair // 32, (act.measured_bytes, act.predicted_bytes)
