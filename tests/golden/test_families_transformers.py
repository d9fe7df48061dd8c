"""Each 2025-26 family against transformers 5.x on the meta device (issue 13 parts 1, 2, 4).

Parameters: our count == sum(p.numel()) of the model transformers builds from the config (text decoder
and lm_head for multimodal wrappers). KV: our bytes == the cache tensors after a meta forward (prefill +
one decode step) at two context lengths, on a few-layer variant of the config (the per-layer pattern is
kept; only num_hidden_layers and the per-layer lists are cut). DynamicSlidingWindowLayer also holds an
int64 window-size tensor per sliding/chunked layer (cache_utils.py), counted by the meta probe: + 8 bytes each.
Configs: tests/fixtures/configs/SOURCES.md (real public config.json files, REAL below) and
tests/fixtures/configs/families/SOURCES.md (gpt-oss-20b and the sparse configs).
"""
from __future__ import annotations

import json
import warnings

import pytest
from conftest import FIXTURES

from oomplan.families import parse_hf_config
from oomplan.memory.kv_cache import kv_budget
from oomplan.memory.layout import pipeline_stages
from oomplan.memory.params import num_params
from oomplan.specs.plan import Plan

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from oomplan.probe.meta_run import run_meta_probe  # noqa: E402

CONFIGS = FIXTURES / "configs" / "families"
GPT_OSS_20B = json.loads((CONFIGS / "gpt-oss-20b.json").read_text())
# Real public config.json files (tests/fixtures/configs/<name>.json, sources in SOURCES.md there):
# name -> (model_type transformers builds it as where 5.24 lacks the config's own, layers kept for the
# meta forward, two context lengths: below and above gpt-oss's 128-token window).
# Kimi-K2's card: the checkpoint runs as deepseek_v3 where kimi_k2 is unknown (transformers 5.24 has no kimi_k2).
REAL = {
    "gpt-oss-120b": (None, 4, (64, 300)),
    "kimi-k2-instruct": ("deepseek_v3", 2, (40, 120)),
    "deepseek-v3.2": (None, 4, (40, 120)),
    "glm-5": (None, 4, (40, 120)),
    "minimax-m2.7": (None, 2, (40, 120)),
}


def _real(name: str) -> dict:
    return json.loads((FIXTURES / "configs" / f"{name}.json").read_text())
# sparse configs: the family's configuration-class defaults fill every omitted key
SPARSE = {
    "gpt_oss": {"model_type": "gpt_oss"},
    "gemma3_text": {"model_type": "gemma3_text"},
    "starcoder2": {"model_type": "starcoder2", "sliding_window": 4096},
    "olmo2": {"model_type": "olmo2"},
    "olmo3": {"model_type": "olmo3"},
    "exaone4": {"model_type": "exaone4"},
    "glm4_moe": {"model_type": "glm4_moe", "use_qk_norm": True},
    "minimax_m2": {"model_type": "minimax_m2", "rotary_dim": 64},
    "deepseek_v32": {"model_type": "deepseek_v32"},
    "glm_moe_dsa": {"model_type": "glm_moe_dsa", "index_topk_freq": 3},
}
# the Gemma 3 4B wrapper's text_config is sparse too; the vision tower is not part of this count
GEMMA3_WRAPPER = {
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "mm_tokens_per_image": 256,
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
                    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                      "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False},
}
KIMI_K2 = {"model_type": "kimi_k2", "n_routed_experts": 384, "num_attention_heads": 64, "num_key_value_heads": 64,
           "first_k_dense_replace": 1, "vocab_size": 163840, "num_nextn_predict_layers": 0}


def _hf_config(raw: dict, model_type: str | None = None):
    cfg = {k: v for k, v in raw.items() if k not in ("model_type", "quantization_config", "torch_dtype", "dtype")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoConfig.for_model(model_type or raw["model_type"], **cfg)


def _meta_count(raw: dict, model_type: str | None = None) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(_hf_config(raw, model_type))
    return sum(p.numel() for p in model.parameters())


def _ours_kv(raw: dict, ctx: int) -> int:
    spec = parse_hf_config(raw, "t", "test")
    budget = kv_budget(spec, Plan(paged=False), ctx, 1, pipeline_stages(spec.num_layers, 1)[0]).bytes
    windowed = sum(layer.attention.kind in ("sliding", "chunked") for layer in spec.layers)
    return budget + 8 * windowed


def _few_layers(raw: dict, n: int) -> dict:
    out = dict(raw, num_hidden_layers=n)
    for key in ("layer_types", "mlp_layer_types", "indexer_types", "attn_type_list"):
        if out.get(key):
            out[key] = out[key][:n]
    return out


@pytest.mark.parametrize("name", sorted(SPARSE))
def test_params_equal_transformers(name):
    raw = SPARSE[name]
    assert num_params(parse_hf_config(raw, name, "test")) == _meta_count(raw)


def test_gpt_oss_20b_real_config():
    spec = parse_hf_config(GPT_OSS_20B, "gpt-oss-20b", "test")
    assert num_params(spec) == _meta_count(GPT_OSS_20B) == 20_914_757_184
    assert spec.layer_attention == ("sliding", "full") * 12 and spec.sliding_window_tokens == 128
    assert all(layer.attention.sinks for layer in spec.layers) and spec.moe.expert_bias and spec.moe.router_bias


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_config_params_equal_transformers(name):
    """Full depth, full size, on meta (a few seconds for the 1T Kimi-K2)."""
    raw, (model_type, _, _) = _real(name), REAL[name]
    spec = parse_hf_config(raw, name, "test")
    assert num_params(spec) == _meta_count(raw, model_type)
    assert not [w for w in spec.warnings if "not counted" in w or "ignored" in w]


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_config_kv_equals_the_meta_cache(name):
    model_type, layers, contexts = REAL[name]
    small = _few_layers(_real(name), layers)
    probe_cfg = dict(small, model_type=model_type) if model_type else small
    for ctx in contexts:
        measured = run_meta_probe(probe_cfg, ctx_tokens=ctx, batch_size=1, attention="sdpa", num_decode_steps=1)
        assert _ours_kv(small, ctx) == measured.kv_cache_bytes_final, ctx


def test_gpt_oss_120b_published_total():
    """An independent figure: gpt-oss-120b's 116.83B parameters, 5.13B active (the card's active count leaves out
    the input embedding), OpenAI's gpt-oss model card, https://openai.com/index/gpt-oss-model-card/ table 1."""
    from oomplan.memory.params import num_active_params

    spec = parse_hf_config(_real("gpt-oss-120b"), "g", "test")
    embedding = spec.vocab_size * spec.hidden_size
    assert (round(num_params(spec) / 1e7), round((num_active_params(spec) - embedding) / 1e7)) == (11_683, 513)


def test_kimi_k2_is_deepseek_v3():
    """Kimi-K2's card: the checkpoint runs as model_type deepseek_v3 where kimi_k2 is unknown."""
    spec = parse_hf_config(KIMI_K2, "kimi", "test")
    assert spec.mla is not None and spec.moe.num_experts == 384
    assert num_params(spec) == _meta_count(KIMI_K2, "deepseek_v3")


def test_gemma3_wrapper_text_part_and_vision_tower():
    spec = parse_hf_config(GEMMA3_WRAPPER, "gemma-3-4b", "test")
    assert spec.tie_word_embeddings and spec.num_sliding_layers == 29 and spec.sliding_window_tokens == 1024
    assert spec.vision is not None and not any("not counted" in w for w in spec.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            model = transformers.AutoModelForImageTextToText.from_config(_hf_config(GEMMA3_WRAPPER))
    # the whole model: decoder, SigLIP tower, projector (the lm_head is tied to the embedding)
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert num_params(spec) == sum(p.numel() for p in model.parameters())


# (config, layers kept, two context lengths: below and above the window / chunk where there is one)
KV_CASES = {
    "gpt-oss-20b": (GPT_OSS_20B, 4, (64, 300)),
    "gemma3_text": (dict(SPARSE["gemma3_text"], sliding_window=64), 6, (40, 200)),
    "olmo3": (dict(SPARSE["olmo3"], sliding_window=64), 4, (40, 200)),
    "exaone4": (dict(SPARSE["exaone4"], sliding_window=64), 4, (40, 200)),
    "starcoder2": (dict(SPARSE["starcoder2"], sliding_window=64), 2, (40, 200)),
    "olmo2": (SPARSE["olmo2"], 2, (40, 200)),
    "glm4_moe": (SPARSE["glm4_moe"], 2, (40, 200)),
    "minimax_m2": (SPARSE["minimax_m2"], 2, (40, 200)),
    "deepseek_v32": (SPARSE["deepseek_v32"], 4, (40, 120)),
    "glm_moe_dsa": (SPARSE["glm_moe_dsa"], 5, (40, 120)),
}


@pytest.mark.parametrize("name", sorted(KV_CASES))
def test_kv_bytes_equal_the_meta_cache(name):
    raw, layers, contexts = KV_CASES[name]
    small = _few_layers(raw, layers)
    for ctx in contexts:
        measured = run_meta_probe(small, ctx_tokens=ctx, batch_size=1, attention="sdpa", num_decode_steps=1).kv_cache_bytes_final
        assert _ours_kv(small, ctx) == measured, ctx


def test_dsa_indexer_keys_are_counted():
    """DeepSeek-V3.2: the indexer's [index_head_dim] key per token and layer besides the latent (part 4)."""
    spec = parse_hf_config(SPARSE["deepseek_v32"], "v32", "test")
    without = spec.model_copy(update={"indexer": None, "layers": tuple(
        layer.model_copy(update={"attention": layer.attention.model_copy(update={"indexed": False})}) for layer in spec.layers)})
    stage = pipeline_stages(spec.num_layers, 1)[0]
    extra = kv_budget(spec, Plan(paged=False), 8192, 1, stage).bytes - kv_budget(without, Plan(paged=False), 8192, 1, stage).bytes
    assert extra == 61 * 8192 * 128 * 2  # layers x tokens x index_head_dim x bf16
