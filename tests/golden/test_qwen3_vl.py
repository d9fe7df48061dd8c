"""Qwen3-VL and Qwen3-VL-MoE wrappers against transformers 5.24 on the meta device (issue 13 part 1): decoder, ViT with its
DeepStack mergers, and lm_head (tied or not, as the wrapper's tie_word_embeddings says) == sum(p.numel()) of the
meta-built *ForConditionalGeneration, on small configs that set every structural key and on sparse ones (each
configuration class's defaults: Qwen3VLConfig's docstring checkpoint is Qwen/Qwen3-VL-4B-Instruct)."""
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

TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=100)
MOE = dict(TEXT, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1)
VISION = dict(depth=3, hidden_size=32, intermediate_size=48, num_heads=4, out_hidden_size=64, num_position_embeddings=16,
              deepstack_visual_indexes=[0, 2], patch_size=8)
QWEN3_VL_4B = json.loads((FIXTURES / "configs" / "families" / "qwen3-vl-4b-instruct.json").read_text())
CLASSES = {"qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
           "qwen3_vl_moe": ("Qwen3VLMoeConfig", "Qwen3VLMoeForConditionalGeneration")}


def _meta_count(model_type: str, raw: dict) -> int:
    config_cls, model_cls = CLASSES[model_type]
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = getattr(transformers, config_cls)(**kw)
        with torch.device("meta"):
            model = getattr(transformers, model_cls)(cfg)
    return sum(p.numel() for p in model.parameters())


CASES = [
    ("qwen3_vl", {"text_config": TEXT, "vision_config": VISION}),
    ("qwen3_vl", {"text_config": TEXT, "vision_config": VISION, "tie_word_embeddings": True}),
    ("qwen3_vl", {"text_config": dict(TEXT, attention_bias=True), "vision_config": dict(VISION, deepstack_visual_indexes=[])}),
    ("qwen3_vl", {}),
    ("qwen3_vl_moe", {"text_config": MOE, "vision_config": VISION}),
    ("qwen3_vl_moe", {"text_config": dict(MOE, mlp_only_layers=[0], decoder_sparse_step=2), "vision_config": VISION,
                      "tie_word_embeddings": True}),
    ("qwen3_vl_moe", {"text_config": dict(MOE, tie_word_embeddings=True), "vision_config": VISION}),
    ("qwen3_vl_moe", {"text_config": dict(MOE, tie_word_embeddings=False), "vision_config": VISION, "tie_word_embeddings": True}),
    ("qwen3_vl_moe", {}),
]


def test_qwen3_vl_4b_real_config():
    spec = parse_hf_config(QWEN3_VL_4B, "qwen3-vl-4b", "test")
    assert spec.tie_word_embeddings and spec.vision.num_deepstack_mergers == 3 and spec.qk_norm
    assert num_params(spec) == _meta_count("qwen3_vl", QWEN3_VL_4B) == 4_437_815_808


@pytest.mark.parametrize("model_type, raw", CASES)
def test_wrapper_equals_the_meta_built_model(model_type, raw):
    arch = CLASSES[model_type][1]
    spec = parse_hf_config(dict(raw, model_type=model_type, architectures=[arch]), model_type, "test")
    assert spec.vision is not None and not spec.warnings
    assert num_params(spec) == _meta_count(model_type, raw)


@pytest.mark.parametrize("model_type, text", [("qwen3_vl", TEXT), ("qwen3_vl_moe", MOE)])
def test_text_kv_equals_the_meta_cache(model_type, text):
    """Text-only prefill through the meta-built wrapper at two context lengths: the DynamicCache tensors."""
    config_cls, model_cls = CLASSES[model_type]
    raw = {"model_type": model_type, "architectures": [model_cls], "text_config": text, "vision_config": VISION}
    spec = parse_hf_config(raw, "t", "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = getattr(transformers, config_cls)(text_config=text, vision_config=VISION)
        with torch.device("meta"):
            model = getattr(transformers, model_cls)(cfg).to(torch.bfloat16)
    for ctx in (40, 200):
        cache = transformers.DynamicCache(config=cfg)
        with torch.no_grad():
            model(input_ids=torch.zeros(1, ctx, dtype=torch.long, device="meta"), cache=cache, use_cache=True, logits_to_keep=1)
        measured = sum(t.untyped_storage().nbytes() for layer in cache.layers for t in (layer.keys, layer.values))
        assert kv_budget(spec, Plan(paged=False), ctx, 1, pipeline_stages(spec.num_layers, 1)[0]).bytes == measured, ctx
