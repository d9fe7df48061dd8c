"""Hybrid families against transformers 5.24 built on the meta device.

* parameters == sum(p.numel()) of AutoModelForCausalLM.from_config(cfg) on meta (full depth);
* KV cache and recurrent-state bytes == the tensors transformers' cache holds after a meta prefill +
  one decode step (oomplan.probe.cache_census), at two context lengths: KV grows, the state does not.

Real configs: tests/fixtures/configs/<name>.json, sources in SOURCES.md there (Qwen3-Next 80B-A3B,
Nemotron 3 Nano 30B-A3B and Super 120B-A12B, Nemotron-H 56B, Qwen3.5 27B / 35B-A3B / 397B-A17B).
The forward uses the first layers only (stated per case: the cache of a layer does not depend on depth).
granitemoehybrid, falcon_h1, jamba, mamba2 and bamba: small configs with every structural key set (layer patterns,
groups, biases) stand in, counted at full depth. Published jamba, mamba2 and falcon_h1 (0.5B) configs are counted in
tests/golden/test_real_configs.py; none was found for granitemoehybrid or bamba (what was searched: SOURCES.md there).
"""
from __future__ import annotations

import json
import warnings

import pytest

from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.budget import estimate
from oomplan.memory.params import num_params
from oomplan.profiles import load_gpu
from oomplan.specs.plan import Plan, Workload

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from oomplan.probe.cache_census import cache_census  # noqa: E402
from oomplan.probe.meta_run import build_config  # noqa: E402


def _real(name: str) -> dict:
    return json.loads((FIXTURES / "configs" / f"{name}.json").read_text())


QWEN3_NEXT = _real("qwen3-next-80b-a3b")
NEMOTRON_3_NANO = _real("nemotron-3-nano-30b-a3b")
NEMOTRON_3_SUPER = _real("nemotron-3-super-120b-a12b-fp8")  # its FP8 scheme is in hf_quant_config.json, not here
NEMOTRON_H_56B = _real("nemotron-h-56b-base-8k")
SMALL = dict(vocab_size=1000, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
GRANITE = dict(SMALL, model_type="granitemoehybrid", num_hidden_layers=3, layer_types=["mamba", "attention", "mamba"],
               shared_intermediate_size=64, num_local_experts=4, num_experts_per_tok=2, mamba_n_heads=8, mamba_n_groups=2,
               mamba_d_state=16, mamba_d_head=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=8)
FALCON_H1 = dict(SMALL, model_type="falcon_h1", num_hidden_layers=2, head_dim=16, mamba_d_ssm=96, mamba_n_heads=6,
                 mamba_d_head=16, mamba_n_groups=2, mamba_d_state=16, mamba_d_conv=4, mamba_chunk_size=8, projectors_bias=True)
JAMBA = dict(SMALL, model_type="jamba", num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
             expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2)
# Bamba: attention by index, every bias on (BambaConfig defaults them off), conv without its bias, two groups
BAMBA = dict(SMALL, model_type="bamba", num_hidden_layers=4, attn_layer_indices=[1, 3], attention_bias=True, mlp_bias=True,
             mamba_n_heads=8, mamba_n_groups=2, mamba_d_state=16, mamba_d_head=16, mamba_d_conv=4, mamba_expand=2,
             mamba_chunk_size=8, mamba_proj_bias=True, mamba_conv_bias=False)
MAMBA2 = dict(model_type="mamba2", vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16, expand=2,
              n_groups=2, state_size=16, conv_kernel=4, chunk_size=8)

# (config, its first layers for the forward)
CASES = {
    "qwen3_next": (QWEN3_NEXT, dict(num_hidden_layers=4)),  # 3 Gated DeltaNet + 1 gated attention
    "nemotron_h": (NEMOTRON_3_NANO, dict(hybrid_override_pattern="MEMEM*", num_hidden_layers=6)),
    "nemotron-3-super": (NEMOTRON_3_SUPER, dict(hybrid_override_pattern="MEMEMEM*E", num_hidden_layers=9)),
    "nemotron-h-56b": (NEMOTRON_H_56B, dict(hybrid_override_pattern="M-M-M-M*", num_hidden_layers=9)),
    "granitemoehybrid": (GRANITE, {}),
    "falcon_h1": (FALCON_H1, {}),
    "jamba": (JAMBA, {}),
    "mamba2": (MAMBA2, {}),
    "bamba": (BAMBA, {}),
}


def _meta_count(cfg: dict) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(build_config(cfg))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", list(CASES))
def test_parameters_equal_transformers(family):
    cfg, _ = CASES[family]
    assert num_params(parse_hf_config(cfg, family, "test")) == _meta_count(cfg)


@pytest.mark.parametrize("family", list(CASES))
def test_kv_and_state_equal_the_cache_after_a_meta_forward(family):
    cfg, first_layers = CASES[family]
    cfg = dict(cfg, **first_layers)
    spec = parse_hf_config(cfg, family, "test")
    gpu, plan = load_gpu("h100-80g"), Plan(paged=False)
    seen = []
    for ctx in (33, 65):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            measured = cache_census(cfg, ctx, batch_size=2)
        per_gpu = estimate(spec, gpu, Workload(ctx_tokens=ctx, batch_size=2), plan).per_gpu
        assert (per_gpu.kv_cache_bytes, per_gpu.state_bytes) == (measured.kv_cache_bytes, measured.state_bytes)
        assert per_gpu.state.num_layers == measured.num_state_layers > 0
        seen.append(measured)
    assert seen[0].state_bytes == seen[1].state_bytes  # fixed per sequence


def test_published_totals():
    """Independent figures: Qwen3-Next-80B-A3B's 79,674,391,296 parameters (3,874,929,408 active)."""
    from oomplan.memory.params import num_active_params

    spec = parse_hf_config(QWEN3_NEXT, "qwen3-next", "test")
    assert (num_params(spec), num_active_params(spec)) == (79_674_391_296, 3_874_929_408)


# Qwen3.5 / Qwen3.5-MoE ship as *ForConditionalGeneration: text_config (the hybrid) + vision_config (a ViT).
VIT = dict(depth=2, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=80, num_position_embeddings=64)
QWEN3_5_TEXT = dict(SMALL, hidden_size=80, num_hidden_layers=4, head_dim=16, linear_key_head_dim=8, linear_value_head_dim=12,
                    linear_num_key_heads=2, linear_num_value_heads=4, full_attention_interval=2)
QWEN3_5_MOE_TEXT = dict(QWEN3_5_TEXT, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32)


QWEN3_5_REAL = ("qwen3.5-27b", "qwen3.5-35b-a3b", "qwen3.5-397b-a17b")


@pytest.mark.parametrize("name", QWEN3_5_REAL)
def test_qwen3_5_real_wrapper_counts_text_vision_kv_and_state(name):
    """The published Qwen3.5 configs: the whole *ForConditionalGeneration at full size on meta; KV and state on
    the first 4 text layers (3 Gated DeltaNet + 1 gated attention) at two contexts."""
    raw = _real(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = transformers.AutoModelForImageTextToText.from_config(build_config(raw))
    assert num_params(parse_hf_config(raw, name, "test")) == sum(p.numel() for p in model.parameters())
    text = dict(raw["text_config"], num_hidden_layers=4, layer_types=raw["text_config"]["layer_types"][:4])
    spec = parse_hf_config(dict(raw, text_config=text), name, "test")
    seen = []
    for ctx in (33, 65):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            measured = cache_census(text, ctx, batch_size=2)
        per_gpu = estimate(spec, load_gpu("h100-80g"), Workload(ctx_tokens=ctx, batch_size=2), Plan(paged=False)).per_gpu
        assert (per_gpu.kv_cache_bytes, per_gpu.state_bytes) == (measured.kv_cache_bytes, measured.state_bytes)
        seen.append(measured.state_bytes)
    assert seen[0] == seen[1] > 0


@pytest.mark.parametrize("model_type,arch,config_class,text", [
    ("qwen3_5", "Qwen3_5ForConditionalGeneration", "Qwen3_5Config", QWEN3_5_TEXT),
    ("qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration", "Qwen3_5MoeConfig", QWEN3_5_MOE_TEXT),
])
def test_qwen3_5_wrapper_counts_text_and_vision(model_type, arch, config_class, text):
    raw = {"model_type": model_type, "architectures": [arch], "text_config": dict(text), "vision_config": dict(VIT)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = getattr(transformers, config_class)(text_config=dict(text), vision_config=dict(VIT))
        with torch.device("meta"):
            model = getattr(transformers, arch)(cfg)
    spec = parse_hf_config(raw, model_type, "test")
    assert num_params(spec) == sum(p.numel() for p in model.parameters())
    measured = cache_census(dict(text, model_type=f"{model_type}_text"), 33, batch_size=2)
    per_gpu = estimate(spec, load_gpu("h100-80g"), Workload(ctx_tokens=33, batch_size=2), Plan(paged=False)).per_gpu
    assert (per_gpu.kv_cache_bytes, per_gpu.state_bytes) == (measured.kv_cache_bytes, measured.state_bytes)
