"""Recurrent layers' prefill activations (oomplan/memory/ssm_activations.py) against the meta probe.

The analytic transient (estimate's activation_bytes) must equal what run_meta_probe measures above the weights and
the final cache (KV + recurrent state), for 1-4 layer configs of each Mamba-2, Gated DeltaNet and Mamba-1 family, at
prompt lengths shorter than one chunk (5), not a multiple of the chunk (20, 203 with chunk_size 8 or DeltaNet's 64) and
at batch 1 and 2 (batch 1 lets einsum operands through without a copy). transformers 5.24's PyTorch path (no mamba_ssm /
causal_conv1d / flash-linear-attention here).
"""
from __future__ import annotations

import json
import warnings

import pytest
from conftest import FIXTURES

pytest.importorskip("torch")
pytest.importorskip("transformers")

from oomplan.families import parse_hf_config  # noqa: E402
from oomplan.memory.budget import estimate  # noqa: E402
from oomplan.probe.meta_run import run_meta_probe  # noqa: E402
from oomplan.profiles import load_gpu  # noqa: E402
from oomplan.specs.plan import Plan, Workload  # noqa: E402

SMALL = dict(vocab_size=1000, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
MAMBA2 = dict(model_type="mamba2", vocab_size=1000, hidden_size=30, num_hidden_layers=1, num_heads=6, head_dim=10, expand=2,
              n_groups=2, state_size=12, conv_kernel=4, chunk_size=8)
CONFIGS = {
    "mamba2": MAMBA2,
    "mamba2-2-layers-groups-eq-heads": dict(MAMBA2, num_hidden_layers=2, n_groups=6),
    "nemotron_h": dict(SMALL, model_type="nemotron_h", hybrid_override_pattern="M*M", mamba_num_heads=8, mamba_head_dim=16,
                       n_groups=2, ssm_state_size=16, conv_kernel=4, chunk_size=8, head_dim=16),
    "granitemoehybrid-rope": dict(SMALL, model_type="granitemoehybrid", position_embedding_type="rope", num_hidden_layers=3,
                                  layer_types=["mamba", "attention", "mamba"], shared_intermediate_size=64, num_local_experts=4,
                                  num_experts_per_tok=2, mamba_n_heads=8, mamba_n_groups=2, mamba_d_state=16, mamba_d_head=16,
                                  mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=8),
    "falcon_h1": dict(SMALL, model_type="falcon_h1", num_hidden_layers=2, head_dim=16, mamba_d_ssm=96, mamba_n_heads=6,
                      mamba_d_head=16, mamba_n_groups=2, mamba_d_state=16, mamba_d_conv=4, mamba_chunk_size=8, projectors_bias=True),
}
CONFIGS["bamba"] = dict(SMALL, model_type="bamba", num_hidden_layers=3, attn_layer_indices=[1], mamba_n_heads=8, mamba_n_groups=2,
                        mamba_d_state=16, mamba_d_head=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=8)  # RoPE at 0.5
CONFIGS["falcon_h1-gated-norm"] = dict(CONFIGS["falcon_h1"], mamba_rms_norm=True, mamba_norm_before_gate=False)
GDN = dict(linear_key_head_dim=12, linear_value_head_dim=10, linear_conv_kernel_dim=4, head_dim=16)
CONFIGS.update({  # Gated DeltaNet: chunk 64 (torch_chunk_gated_delta_rule's default), value heads grouped over key heads or not
    "qwen3_next": dict(SMALL, **GDN, model_type="qwen3_next", num_hidden_layers=2, layer_types=["linear_attention", "full_attention"],
                       linear_num_key_heads=2, linear_num_value_heads=6, num_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=32, shared_expert_intermediate_size=32),
    "qwen3_next-ungrouped": dict(SMALL, **GDN, model_type="qwen3_next", num_hidden_layers=3,
                                 layer_types=["full_attention", "linear_attention", "linear_attention"], linear_num_key_heads=4,
                                 linear_num_value_heads=4, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                 shared_expert_intermediate_size=32),
    "qwen3_5_text": dict(SMALL, model_type="qwen3_5_text", hidden_size=80, num_hidden_layers=4, head_dim=16, linear_key_head_dim=8,
                         linear_value_head_dim=12, linear_num_key_heads=2, linear_num_value_heads=4, full_attention_interval=2),
})
CONFIGS["jamba"] = dict(SMALL, model_type="jamba", num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1,
                        expert_layer_period=2, expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8,
                        mamba_d_conv=4, mamba_expand=2)  # Mamba-1: token-by-token loop, no chunks
CASES = [(1, 5), (2, 20), (1, 203)]  # 203: not a multiple of chunk 8 (Mamba-2) nor 64 (Gated DeltaNet)


def _both(cfg: dict, batch: int, tokens: int, chunk: int | None = None) -> tuple[int, int]:
    spec = parse_hf_config(cfg, cfg["model_type"], "test")
    est = estimate(spec, load_gpu("h100-80g"), Workload(ctx_tokens=tokens, batch_size=batch),
                   Plan(paged=False, prefill_chunk_tokens=chunk))
    assert not any("not priced" in w for w in est.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_meta_probe(cfg, ctx_tokens=tokens, batch_size=batch, attention="sdpa", num_decode_steps=0,
                           prefill_chunk_tokens=chunk)
    assert r.kv_cache_bytes_final == est.per_gpu.kv_cache_bytes + est.per_gpu.state_bytes
    return est.per_gpu.activation_bytes, r.peak_bytes - r.weights_bytes - r.kv_cache_bytes_final


@pytest.mark.parametrize("batch,tokens", CASES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_prefill_activations_equal_the_meta_probe(name, batch, tokens):
    """Also the prompt shorter than the conv kernel (update_conv_state left-pads it) in test_prompts_shorter_than_the_conv."""
    predicted, measured = _both(CONFIGS[name], batch, tokens)
    assert predicted == measured
    assert measured > 2 * (tokens * batch * 64 * 2)  # the scan, not the residual stream, sets the peak


@pytest.mark.parametrize("name", ["mamba2", "qwen3_5_text", "jamba"])
def test_prompts_shorter_than_the_conv_kernel(name):
    for batch, tokens in ((1, 1), (2, 3)):
        predicted, measured = _both(CONFIGS[name], batch, tokens)
        assert predicted == measured


@pytest.mark.parametrize("name", ["mamba2-2-layers-groups-eq-heads", "nemotron_h", "qwen3_next", "qwen3_5_text", "jamba"])
def test_later_prefill_chunks_start_from_the_cached_state(name):
    """--prefill-chunk 40 over 120 tokens: passes 2 and 3 concatenate the cached conv state and scan from the cached state."""
    predicted, measured = _both(CONFIGS[name], 2, 120, chunk=40)
    assert predicted == measured


def test_the_estimate_names_the_priced_path():
    for name, words in (("nemotron_h", "Mamba-2 layers priced"), ("qwen3_next", "Gated DeltaNet layers priced"),
                        ("jamba", "Mamba layers priced")):
        est = estimate(parse_hf_config(CONFIGS[name], name, "test"), load_gpu("h100-80g"), Workload(ctx_tokens=64), Plan())
        assert any(words in n and "5.24" in n and "not priced" in n for n in est.notes), est.notes
        assert not any("prefill activations" in w for w in est.warnings)


@pytest.mark.parametrize("tokens", [63, 1000])
def test_qwen3_5_27b_first_layers_equal_the_meta_probe(tokens):
    """The published Qwen3.5-27B text config (tests/fixtures/configs/SOURCES.md), its first four layers (3 Gated DeltaNet,
    1 gated attention), below one 64-token chunk and across 16."""
    text = json.loads((FIXTURES / "configs" / "qwen3.5-27b.json").read_text())["text_config"]
    cfg = dict(text, num_hidden_layers=4, layer_types=text["layer_types"][:4])
    predicted, measured = _both(cfg, 1, tokens)
    assert predicted == measured
@pytest.mark.parametrize("tokens", [127, 513])
def test_nemotron_3_nano_first_layers_equal_the_meta_probe(tokens):
    """The published Nemotron 3 Nano config (tests/fixtures/configs/SOURCES.md), its first six blocks (Mamba-2, MoE,
    Mamba-2, MoE, Mamba-2, attention: the last attention's K/V is written after the peak), around its chunk_size 128."""
    cfg = dict(json.loads((FIXTURES / "configs" / "nemotron-3-nano-30b-a3b.json").read_text()),
               hybrid_override_pattern="MEMEM*", num_hidden_layers=6)
    predicted, measured = _both(cfg, 1, tokens)
    assert predicted == measured
