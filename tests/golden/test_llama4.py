"""Llama 4 (Scout, Maverick) against transformers 5.24 on the meta device (issue 13 parts 1, 2, 5).

Parameters: our count == sum(p.numel()) of Llama4ForConditionalGeneration (decoder, vision model, projector) built
from the published configs (tests/fixtures/configs/SOURCES.md), and of Llama4ForCausalLM / the vision tower on small
configs that set every structural key. KV: our bytes == the cache tensors after a meta forward (prefill + one decode
step) at two context lengths, below and above a 64-token attention chunk, on a few-layer variant (the NoPE / chunked
pattern kept). DynamicSlidingWindowLayer also holds an int64 window-size tensor per chunked layer: + 8 bytes each.
"""
from __future__ import annotations

import json
import warnings

import pytest
from conftest import FIXTURES

from oomplan.errors import InputError
from oomplan.families import parse_hf_config
from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.params import num_params
from oomplan.memory.vision_params import vision_tensors
from oomplan.specs.plan import Plan

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from oomplan.probe.meta_run import run_meta_probe  # noqa: E402

CONFIGS = FIXTURES / "configs"
SCOUT = json.loads((CONFIGS / "llama-4-scout-17b-16e-instruct.json").read_text())
MAVERICK = json.loads((CONFIGS / "llama-4-maverick-17b-128e-instruct.json").read_text())
TEXT = dict(model_type="llama4_text", hidden_size=64, intermediate_size=48, intermediate_size_mlp=96, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=100, num_local_experts=3, num_experts_per_tok=1)
VISION = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=56, patch_size=14,
              vision_output_dim=48, projector_input_dim=48, projector_output_dim=48, pixel_shuffle_ratio=0.5)


def _hf_text(raw: dict) -> dict:
    # some Scout configs (the base model's) carry attn_temperature_tuning: 4, which 5.24's strict config class refuses as a
    # non-bool; it scales NoPE queries only (no parameter, no cache)
    return {k: v for k, v in raw.items() if k not in ("attn_temperature_tuning", "torch_dtype", "model_type")}


def _meta_wrapper(raw: dict):
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype")}
    kw["text_config"] = _hf_text(raw["text_config"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Llama4Config(**kw)
        with torch.device("meta"):
            return transformers.Llama4ForConditionalGeneration(cfg)


def _meta_text_count(raw: dict) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Llama4TextConfig(**_hf_text(raw))
        with torch.device("meta"):
            model = transformers.Llama4ForCausalLM(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("raw, expected", [(SCOUT, 108_641_793_536), (MAVERICK, 401_583_781_376)], ids=["scout", "maverick"])
def test_real_configs_equal_the_meta_built_model(raw, expected):
    spec = parse_hf_config(raw, "llama4", "test")
    model = _meta_wrapper(raw)
    assert num_params(spec) == sum(p.numel() for p in model.parameters()) == expected
    tower = sum(t.num_params for t in vision_tensors(spec.vision))
    assert tower == sum(p.numel() for m in (model.vision_model, model.multi_modal_projector) for p in m.parameters())
    assert not spec.warnings


def test_scout_and_maverick_layer_structure():
    scout, maverick = parse_hf_config(SCOUT, "s", "t"), parse_hf_config(MAVERICK, "m", "t")
    # iRoPE: 3 chunked RoPE layers (8192-token chunks) then one NoPE full-attention layer
    assert [(a.attention.kind, a.attention.window_tokens, a.attention.rope) for a in scout.layers[:4]] == [
        ("chunked", 8192, True)] * 3 + [("full", None, False)]
    assert scout.layer_attention == maverick.layer_attention
    assert scout.moe.moe_layer_indices == tuple(range(48)) and scout.moe.num_experts == 16
    assert maverick.moe.moe_layer_indices == tuple(range(1, 48, 2)) and maverick.moe.num_experts == 128
    assert maverick.layers[0].mlp.intermediate_size == 16_384  # intermediate_size_mlp on the dense layers
    assert scout.moe.shared_expert_intermediate_size == 8192 and scout.moe.expert_intermediate_size == 8192
    assert not scout.tie_word_embeddings


@pytest.mark.parametrize("extra", [
    {}, {"interleave_moe_layer_step": 2}, {"moe_layers": [0, 3]}, {"no_rope_layers": [1, 0, 1, 0]}, {"attention_chunk_size": None},
    {"attention_bias": True}, {"use_qk_norm": False}, {"tie_word_embeddings": True}, {"no_rope_layer_interval": 2},
    {"layer_types": ["full_attention", "chunked_attention", "full_attention", "full_attention"]},
])
def test_text_model_equals_meta(extra):
    raw = dict(TEXT, **extra)
    assert num_params(parse_hf_config(raw, "t", "test")) == _meta_text_count(raw)


def test_sparse_text_config_takes_the_config_class_defaults():
    assert num_params(parse_hf_config({"model_type": "llama4_text"}, "t", "test")) == _meta_text_count({})


def test_vision_tower_and_projector_small_config():
    raw = {"model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"], "text_config": TEXT, "vision_config": VISION}
    spec = parse_hf_config(raw, "t", "test")
    model = _meta_wrapper(raw)
    assert num_params(spec) == sum(p.numel() for p in model.parameters())


def test_short_no_rope_layers_refused():
    with pytest.raises(InputError, match="no_rope_layers has 2 entries for 4 layers"):
        parse_hf_config(dict(TEXT, no_rope_layers=[1, 0]), "t", "cfg.json")


def _ours_kv(raw: dict, ctx: int) -> int:
    spec = parse_hf_config(raw, "t", "test")
    budget = kv_budget(spec, Plan(paged=False), ctx, 1, pipeline_stages(spec.num_layers, 1)[0]).bytes
    return budget + 8 * sum(layer.attention.kind == "chunked" for layer in spec.layers)


@pytest.mark.parametrize("raw", [SCOUT, MAVERICK], ids=["scout", "maverick"])
def test_kv_bytes_equal_the_meta_cache(raw):
    text = dict(_hf_text(raw["text_config"]), model_type="llama4_text", num_hidden_layers=4, attention_chunk_size=64)
    text.pop("moe_layers", None)
    text["no_rope_layers"] = (raw["text_config"].get("no_rope_layers") or [1, 1, 1, 0])[:4]
    for ctx in (40, 200):
        measured = run_meta_probe(text, ctx_tokens=ctx, batch_size=1, attention="sdpa", num_decode_steps=1).kv_cache_bytes_final
        assert _ours_kv(text, ctx) == measured, ctx


def test_vllm_prices_chunked_layers_as_their_own_groups():
    """vLLM's ChunkedLocalAttentionSpec (v1/kv_cache_interface.py 0.19.0 - 0.33.0; the hybrid manager stays on:
    envs.py VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1): Scout's 36 chunked layers form 3 groups
    of 12 beside the 12 full (NoPE) layers; a request holds cdiv(min(8192 + in-flight tokens, len), 16) blocks per
    chunked group. TP 4: 8 KV heads / 4 = 2 x 128 x 2 (K, V) x 2 bytes x 16 tokens = 16,384 bytes per page."""
    from typer.testing import CliRunner

    from oomplan.cli.app import app
    from oomplan.engines.vllm.kv import blocks_per_request
    from oomplan.engines.vllm.settings import VllmGiven
    from oomplan.engines.vllm.stages import predict_stages
    from oomplan.profiles import load_gpu, load_model

    s, (st,) = predict_stages(load_model("llama-4-scout-17b-16e"), load_gpu("h100"),
                              VllmGiven(tensor_parallel=4, max_model_len=65536, engine_version="0.19"))
    lay = st.layout
    assert (lay.num_full_layers, lay.num_chunked_layers, lay.chunk_tokens, lay.page_bytes) == (12, 36, 8192, 16384)
    assert (lay.group_size, lay.num_groups) == (12, 4)
    # 0.19: the in-flight tokens are one prefill chunk (8,192): 4,096 full blocks + 3 x cdiv(16,384, 16)
    assert blocks_per_request(lay, 65536, s.max_in_flight_tokens) == 4096 + 3 * 1024
    result = CliRunner().invoke(app, ["estimate", "llama-4-scout-17b-16e", "--gpu", "h100", "--tp", "4", "--engine", "vllm"])
    assert result.exit_code in (0, 1), result.output
    assert "chunked-attention and full-attention layers share the pool" in result.output
