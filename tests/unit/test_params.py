"""Parameter counts by component, hand-computed on a 2-layer GQA llama."""
from conftest import tiny_llama

from oomplan.memory.params import num_active_params, num_params, params_by_component
from oomplan.profiles import load_model
from oomplan.families import parse_hf_config

# V=1000 h=64 I=128 L=2 H=8 K=2 d=8
EMBED = 1000 * 64
ATTN_PER_LAYER = 64 * 64 + 2 * (2 * 8 * 64) + 64 * 64  # q, k, v, o = 10,240
MLP_PER_LAYER = 3 * 128 * 64  # 24,576
NORMS = 2 * 2 * 64 + 64  # two per layer + final


def test_components_by_hand(tiny_llama_spec):
    counts = params_by_component(tiny_llama_spec)
    assert counts["embedding"] == EMBED
    assert counts["lm_head"] == EMBED
    assert counts["attention"] == 2 * ATTN_PER_LAYER
    assert counts["mlp"] == 2 * MLP_PER_LAYER
    assert counts["norm"] == NORMS
    assert num_params(tiny_llama_spec) == 197_952


def test_tied_lm_head_counted_once():
    spec = parse_hf_config(tiny_llama(tie_word_embeddings=True), "t", "test")
    assert params_by_component(spec)["lm_head"] == 0
    assert num_params(spec) == 197_952 - EMBED


def test_explicit_head_dim_and_biases():
    # head_dim 16 != 64/8; q,k,v,o biases with attention_bias
    spec = parse_hf_config(tiny_llama(head_dim=16, attention_bias=True), "t", "test")
    q, kv, o = 8 * 16 * 64 + 8 * 16, 2 * (2 * 16 * 64 + 2 * 16), 64 * 8 * 16 + 64
    assert params_by_component(spec)["attention"] == 2 * (q + kv + o)


def test_llama3_70b_lm_head_is_untied():
    # the miscount other tools make: Llama 3 has tie_word_embeddings false
    counts = params_by_component(load_model("llama-3-70b"))
    assert counts["lm_head"] == 128256 * 8192
    assert counts["embedding"] == 128256 * 8192


def test_moe_active_params_mixtral():
    spec = load_model("mixtral-8x7b")
    counts = params_by_component(spec)
    assert counts["experts"] == 32 * 8 * 3 * 14336 * 4096
    assert counts["router"] == 32 * 8 * 4096
    # 2 of 8 experts per token: published "12.9B active"
    assert num_active_params(spec) == num_params(spec) - counts["experts"] * 6 // 8
    assert round(num_active_params(spec) / 1e9, 1) == 12.9


def test_deepseek_v3_dense_and_moe_layers():
    spec = load_model("deepseek-v3")
    assert spec.moe.moe_layer_indices == tuple(range(3, 61))
    assert spec.mla.q_lora_rank == 1536 and spec.mla.kv_lora_rank == 512
    # published: 671B total, 37B activated per token (DeepSeek-V3 technical report)
    assert round(num_params(spec) / 1e9) == 671
    assert int(num_active_params(spec) / 1e9) == 37  # 37.55B with embeddings and lm_head
