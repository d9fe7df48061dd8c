"""Llama 3.2 Vision (Mllama) against transformers 5.24 on the meta device (issue 13 parts 1, 5).

Parameters: our count == sum(p.numel()) of MllamaForConditionalGeneration built from the 11B Vision config
(tests/fixtures/configs/families/SOURCES.md) and from small configs. Cross-attention K/V: our bytes == the cache
tensors of the cross-attention layers after a meta forward with pixel_values (B sequences x I images x max_num_tiles
tiles); the self-attention layers' KV equals the text cache at two context lengths, and no context KV is counted
for the cross-attention layers.
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
from oomplan.memory.vision_kv import cross_kv_bytes
from oomplan.memory.vision_params import vision_tensors
from oomplan.specs.plan import Plan

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VISION_11B = json.loads((FIXTURES / "configs" / "families" / "llama-3.2-11b-vision.json").read_text())
TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, cross_attention_layers=[1, 3])
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=4, image_size=28,
              patch_size=14, vision_output_dim=64, max_num_tiles=4, intermediate_layers_indices=[0])


def _meta(raw: dict):
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.MllamaConfig(**kw)
        with torch.device("meta"):
            return transformers.MllamaForConditionalGeneration(cfg).to(torch.bfloat16), cfg


def _raw(text=TEXT, vision=VISION) -> dict:
    return {"model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"], "text_config": dict(text),
            "vision_config": dict(vision)}


def test_llama_3_2_11b_vision_equals_the_meta_built_model():
    spec = parse_hf_config(VISION_11B, "llama-3.2-11b-vision", "test")
    model, _ = _meta(VISION_11B)
    assert num_params(spec) == sum(p.numel() for p in model.parameters()) == 10_670_220_835
    tower = sum(p.numel() for m in (model.model.vision_model, model.model.multi_modal_projector) for p in m.parameters())
    assert sum(t.num_params for t in vision_tensors(spec.vision)) == tower
    assert [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "cross"] == [3, 8, 13, 18, 23, 28, 33, 38]
    assert spec.vision.tokens_per_image == 4 * (40 * 40 + 1)  # 560 / 14 = 40 patches a side, + the class token, x 4 tiles
    assert spec.num_attention_layers == 32


@pytest.mark.parametrize("text, vision", [
    ({}, {}), ({"tie_word_embeddings": True}, {}), ({"cross_attention_layers": [0]}, {"num_global_layers": 0}),
    ({}, {"supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]], "max_num_tiles": 2}),
])
def test_small_configs_equal_meta(text, vision):
    raw = _raw(dict(TEXT, **text), dict(VISION, **vision))
    model, _ = _meta(raw)
    assert num_params(parse_hf_config(raw, "t", "test")) == sum(p.numel() for p in model.parameters())


def _cache_bytes(layers) -> int:
    return sum(t.untyped_storage().nbytes() for layer in layers for t in (layer.keys, layer.values))


@pytest.mark.parametrize("batch, images, seq", [(1, 1, 12), (2, 3, 20)])
def test_cross_kv_and_self_kv_equal_the_meta_cache(batch, images, seq):
    raw = _raw()
    spec = parse_hf_config(raw, "t", "test")
    model, cfg = _meta(raw)
    tiles = VISION["max_num_tiles"]
    cache = transformers.DynamicCache(config=cfg)
    meta = dict(device="meta")
    with torch.no_grad():
        model(input_ids=torch.zeros(batch, seq, dtype=torch.long, **meta),
              pixel_values=torch.zeros(batch, images, tiles, 3, 28, 28, dtype=torch.bfloat16, **meta),
              aspect_ratio_ids=torch.zeros(batch, images, dtype=torch.long, **meta),
              aspect_ratio_mask=torch.ones(batch, images, tiles, dtype=torch.long, **meta),
              cross_attention_mask=torch.ones(batch, seq, images, tiles, dtype=torch.long, **meta),
              cache=cache, use_cache=True, logits_to_keep=1)
    cross = set(TEXT["cross_attention_layers"])
    stage = pipeline_stages(spec.num_layers, 1)[0]
    assert cross_kv_bytes(spec, Plan(paged=False), images, batch, stage) == _cache_bytes(
        layer for i, layer in enumerate(cache.layers) if i in cross)
    assert kv_budget(spec, Plan(paged=False), seq, batch, stage).bytes == _cache_bytes(
        layer for i, layer in enumerate(cache.layers) if i not in cross)
