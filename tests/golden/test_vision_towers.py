"""Vision towers + projectors: our tensor lists against the modules transformers 5.24 builds on meta.

Small configs with every structural key set (each tower's own config class; the wrapper's projector
sizes come from its text config), counted against the tower and projector modules of the
*ForConditionalGeneration model.
"""
from __future__ import annotations

import warnings

import pytest

from oomplan.memory.vision_params import vision_tensors
from oomplan.specs.vision import PixtralVisionTower, Qwen3VisionTower, Qwen25VisionTower, SiglipVisionTower

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXT = dict(hidden_size=80, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            vocab_size=100, head_dim=16)
VIT = dict(depth=4, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=80)
QWEN = dict(hidden_size=64, intermediate_size=96, depth=4, num_heads=4, temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=80)


def _meta(config_cls, model_cls, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = getattr(transformers, config_cls)(**kw)
        with torch.device("meta"):
            return getattr(transformers, model_cls)(cfg).model


def _count(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _ours(tower) -> int:
    return sum(t.num_params for t in vision_tensors(tower))


def test_qwen2_5_vl():
    m = _meta("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", vision_config=VIT, text_config=TEXT)
    assert _ours(Qwen25VisionTower(patch_size=14, **QWEN)) == _count(m.visual)


def test_qwen3_vl_with_deepstack_mergers():
    vision = dict(VIT, num_position_embeddings=64, deepstack_visual_indexes=[1, 2])
    m = _meta("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", vision_config=vision, text_config=TEXT)
    tower = Qwen3VisionTower(patch_size=16, num_position_embeddings=64, num_deepstack_mergers=2, **QWEN)
    assert _ours(tower) == _count(m.visual)


def test_qwen3_5():
    m = _meta("Qwen3_5Config", "Qwen3_5ForConditionalGeneration", vision_config=dict(VIT, num_position_embeddings=64),
              text_config=dict(TEXT, layer_types=["full_attention"]))
    assert _ours(Qwen3VisionTower(patch_size=16, num_position_embeddings=64, **QWEN)) == _count(m.visual)


def test_gemma3_siglip_and_projector():
    vision = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, image_size=112, patch_size=14,
                  vision_use_head=False)
    m = _meta("Gemma3Config", "Gemma3ForConditionalGeneration", vision_config=vision, text_config=TEXT, mm_tokens_per_image=16)
    tower = SiglipVisionTower(hidden_size=64, intermediate_size=96, num_layers=3, num_heads=4, patch_size=14, image_size=112,
                              text_hidden_size=80, tokens_per_image=16)
    assert _ours(tower) == _count(m.vision_tower, m.multi_modal_projector)


def test_mistral3_pixtral_and_projector():
    vision = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, patch_size=14, head_dim=16)
    m = _meta("Mistral3Config", "Mistral3ForConditionalGeneration", vision_config=vision, text_config=TEXT)
    tower = PixtralVisionTower(hidden_size=64, intermediate_size=96, num_layers=3, num_heads=4, patch_size=14,
                               spatial_merge_size=2, text_hidden_size=80)
    assert _ours(tower) == _count(m.vision_tower, m.multi_modal_projector)


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("nested", [False, True])
def test_qwen2_5_vl_wrapper_is_read_and_counted(tie, nested):
    """*ForConditionalGeneration is read through the registry: text (top-level keys, as released, or text_config) + tower."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.params import num_params

    text = dict(TEXT, num_hidden_layers=2)
    text.pop("head_dim")
    raw = {"model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"], "vision_config": dict(VIT),
           "tie_word_embeddings": tie, **({"text_config": dict(text, tie_word_embeddings=tie)} if nested else text)}
    kw = {k: v for k, v in raw.items() if k not in ("model_type", "architectures")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.AutoConfig.for_model("qwen2_5_vl", **kw)
        with torch.device("meta"):
            model = transformers.Qwen2_5_VLForConditionalGeneration(cfg)
    assert num_params(parse_hf_config(raw, "qwen2.5-vl", "test")) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("use_head", [False, True])
def test_gemma3_wrapper_counts_text_tower_and_projector(use_head):
    """Gemma3ForConditionalGeneration read through the registry: decoder + SigLIP tower + projector, equal to the
    whole meta-built model (tied lm_head counted once)."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.params import num_params

    vision = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, image_size=112, patch_size=14,
                  vision_use_head=use_head)
    text = dict(TEXT, num_hidden_layers=2)
    raw = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "vision_config": vision,
           "text_config": dict(text, model_type="gemma3_text"), "mm_tokens_per_image": 16}
    spec = parse_hf_config(raw, "tiny-gemma3", "test")
    assert spec.vision is not None and spec.vision.tokens_per_image == 16
    assert not any("not counted" in w for w in spec.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Gemma3Config(vision_config=vision, text_config=text, mm_tokens_per_image=16)
        with torch.device("meta"):
            model = transformers.Gemma3ForConditionalGeneration(cfg)
    assert num_params(spec) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("tie", [False, True])
def test_mistral3_wrapper_counts_text_tower_and_projector(tie):
    """Mistral3ForConditionalGeneration read through the registry: decoder + Pixtral tower + projector, equal to the
    whole meta-built model."""
    from oomplan.families import parse_hf_config
    from oomplan.memory.params import num_params

    vision = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, patch_size=14, head_dim=16)
    text = dict(TEXT, num_hidden_layers=2, model_type="mistral")
    raw = {"model_type": "mistral3", "architectures": ["Mistral3ForConditionalGeneration"], "vision_config": vision,
           "text_config": text, "tie_word_embeddings": tie}
    spec = parse_hf_config(raw, "tiny-mistral3", "test")
    assert spec.vision is not None and not any("not counted" in w for w in spec.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = transformers.Mistral3Config(vision_config=vision, text_config=text, tie_word_embeddings=tie)
        with torch.device("meta"):
            model = transformers.Mistral3ForConditionalGeneration(cfg)
    tied = model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert spec.tie_word_embeddings == tied
    assert num_params(spec) == sum(p.numel() for p in model.parameters())
