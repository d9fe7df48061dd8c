"""Full-size checks of the peak formulas in docs/probe-findings.md (marked slow: ~10 s in all).

The configs are the published dimensions, written inline (not read from any shared folder).
Prefill and final-KV formulas are exact; decode formulas leave out O(B*h) activations (< 0.01 %).
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from oomplan.probe.meta_run import run_meta_probe  # noqa: E402

pytestmark = pytest.mark.slow
B16 = 2
LLAMA3_8B = dict(
    model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
    tie_word_embeddings=False,
)
GEMMA2_9B = dict(
    model_type="gemma2", hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
    num_attention_heads=16, num_key_value_heads=8, head_dim=256, vocab_size=256000, sliding_window=4096,
    query_pre_attn_scalar=256, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
)
MIXTRAL_8X7B = dict(
    LLAMA3_8B, model_type="mixtral", vocab_size=32000, num_local_experts=8, num_experts_per_tok=2,
    rope_theta=1e6,
)
DEEPSEEK_V3 = dict(
    model_type="deepseek_v3", hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
    num_hidden_layers=61, first_k_dense_replace=3, num_attention_heads=128, num_key_value_heads=128,
    n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8, n_group=8, topk_group=4,
    q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
    vocab_size=129280, tie_word_embeddings=False,
)


def _close(measured: int, predicted: int, rel: float = 1e-4) -> bool:
    return abs(measured - predicted) <= rel * measured


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_llama3_8b(batch, attention):
    h, inter, heads, kv_heads, d, layers = 4096, 14336, 32, 8, 128, 32
    r = run_meta_probe(LLAMA3_8B, ctx_tokens=8192, batch_size=batch, attention=attention)
    s, t = 8190, 8191
    tokens, w = batch * s, r.weights_bytes
    kv = lambda n: layers * 2 * batch * kv_heads * d * n * B16  # noqa: E731
    small = 2 * s * d * B16 + 8 * (tokens + s)
    if attention == "sdpa":
        prefill = w + kv(s) + tokens * (3 * inter + 4 * h) * B16 + small
        decode = w + kv(t + 1) + batch * kv_heads * d * t * B16
    else:
        scores = 10 * batch * heads * s * s + batch * s * s * B16 + 2 * batch * heads * s * d * B16
        prefill = w + kv(s) + scores + 3 * tokens * h * B16 + tokens * heads * d * B16 + small
        n = t + 1
        decode = w + kv(n) + 2 * batch * heads * n * d * B16 + 10 * batch * heads * n + batch * n * B16
    assert r.prefill_peak_bytes == prefill
    assert _close(r.steps[-1].peak_bytes, decode)
    assert r.kv_cache_bytes_final == kv(8192)


@pytest.mark.parametrize("batch", [1, 4])
def test_gemma2_9b_sdpa(batch):
    h, inter, kv_heads, d, layers, window = 3584, 14336, 8, 256, 42, 4096
    r = run_meta_probe(GEMMA2_9B, ctx_tokens=8192, batch_size=batch, attention="sdpa")
    s, t = 8190, 8191
    tokens, w, per_tok = batch * s, r.weights_bytes, 2 * batch * kv_heads * d * B16
    scalars = 8 * layers // 2  # int64 window size per sliding layer
    prefill = w + layers * per_tok * s + scalars + tokens * (3 * inter + 4 * h) * B16 + s * s
    prefill += 2 * s * d * B16 + 8 * (tokens + s)
    first_decode = w + layers * per_tok * s + scalars + 2 * batch * kv_heads * d * window * B16
    final = layers // 2 * per_tok * (t + 1) + layers // 2 * per_tok * window + scalars
    assert r.prefill_peak_bytes == prefill
    assert _close(r.steps[1].peak_bytes, first_decode)
    assert _close(r.steps[-1].peak_bytes, w + final + batch * kv_heads * d * t * B16)
    assert r.kv_cache_bytes_final == final


def test_mixtral_8x7b_sdpa():
    h, inter, kv_heads, d, layers, experts, k = 4096, 14336, 8, 128, 32, 8, 2
    r = run_meta_probe(MIXTRAL_8X7B, ctx_tokens=8192, batch_size=4, attention="sdpa")
    s, batch = 8190, 4
    tokens, pairs = batch * s, batch * s * k
    bookkeeping = tokens * experts * B16 + tokens * k * 12 + pairs * 24 + 8 * experts
    prefill = r.weights_bytes + layers * 2 * batch * kv_heads * d * s * B16 + pairs * (4 * inter + h) * B16
    prefill += 4 * tokens * h * B16 + 2 * s * d * B16 + 8 * (tokens + s) + bookkeeping
    assert r.experts_implementation == "grouped_mm"
    assert r.prefill_peak_bytes == prefill


def test_deepseek_v3_mla_32k():
    h, heads, layers, experts, k = 7168, 128, 61, 256, 8
    latent, rope, nope, v = 512, 64, 128, 128
    r = run_meta_probe(DEEPSEEK_V3, ctx_tokens=32768, batch_size=1, attention="sdpa")
    s = 32766
    pairs = s * k
    kv = lambda n: layers * n * (latent + rope) * B16  # noqa: E731
    bookkeeping = s * experts * 4 + s * k * 12 + pairs * 32 + 8 * experts
    prefill = r.weights_bytes + kv(s) + pairs * h * (2 * B16 + 8) + 4 * s * h * B16 + 2 * s * rope * B16
    prefill += 8 * 2 * s + bookkeeping
    decode = r.weights_bytes + kv(32768) + 32768 * heads * (2 * nope + v + rope) * B16
    assert r.prefill_peak_bytes == prefill
    assert _close(r.steps[-1].peak_bytes, decode)
    assert r.kv_cache_bytes_final == kv(32768)
