"""Qwen3-VL and Qwen3-VL-MoE: transformers/models/qwen3_vl/{configuration,modeling}_qwen3_vl.py and
models/qwen3_vl_moe/ (5.24.0).

Qwen3VLForConditionalGeneration / Qwen3VLMoeForConditionalGeneration describe the decoder in text_config
(Qwen3VLTextConfig: Qwen3's layer, per-head q/k RMSNorms, attention_bias on q/k/v/o; Qwen3VLMoeTextConfig: Qwen3-MoE's
sparse layers every decoder_sparse_step, minus mlp_only_layers, no shared expert) and a ViT in vision_config (the
Qwen3VisionTower, with one DeepStack merger per deepstack_visual_indexes entry) counted as the `vision` component.
lm_head is tied to embed_tokens when the wrapper's tie_word_embeddings says so (Qwen3VLConfig: False by default), whatever
text_config says (Qwen3VLMoeTextConfig defaults to True; the meta-built model follows the wrapper).
Images have a dynamic token count (--image-tokens).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oomplan.families.base import Family
from oomplan.families.qwen3 import build_qwen3, build_qwen3_moe
from oomplan.families.qwen3_5 import Qwen35VisionConfig, vision_tower
from oomplan.specs.convert import build as validated
from oomplan.specs.vision import Qwen3VisionTower

SOURCE = "transformers/models/qwen3_vl/modeling_qwen3_vl.py, models/qwen3_vl_moe/modeling_qwen3_vl_moe.py (5.24.0)"
# configuration_qwen3_vl.py Qwen3VLTextConfig / configuration_qwen3_vl_moe.py Qwen3VLMoeTextConfig field defaults
TEXT_DEFAULTS = dict(vocab_size=151_936, hidden_size=4096, intermediate_size=22_016, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=32, head_dim=128, max_position_embeddings=128_000, attention_bias=False,
                     tie_word_embeddings=False)
MOE_DEFAULTS = dict(vocab_size=151_936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                    num_key_value_heads=16, max_position_embeddings=128_000, attention_bias=False, decoder_sparse_step=1,
                    moe_intermediate_size=1408, num_experts_per_tok=4, num_experts=60, tie_word_embeddings=False)


class Qwen3VLVisionConfig(Qwen35VisionConfig):
    """Qwen3VLVisionConfig / Qwen3VLMoeVisionConfig: Qwen3.5's ViT keys and defaults plus the DeepStack layers."""

    deepstack_visual_indexes: list[int] = [8, 16, 24]


def vision(raw: Mapping[str, Any], text_hidden_size: int, where: str) -> Qwen3VisionTower:
    vc = raw.get("vision_config")
    v = validated(Qwen3VLVisionConfig, vc if isinstance(vc, dict) else {}, f"{where}: vision_config")
    # Qwen3VLVisionModel.forward runs DeepStack merger i right after block deepstack_visual_indexes[i]
    return vision_tower(v, len(v.deepstack_visual_indexes), sum(i < v.depth - 1 for i in v.deepstack_visual_indexes))


TEXT = Family("qwen3_vl_text", ("qwen3_vl_text",), build_qwen3, SOURCE, defaults=TEXT_DEFAULTS)
MOE_TEXT = Family("qwen3_vl_moe_text", ("qwen3_vl_moe_text",), build_qwen3_moe, SOURCE, defaults=MOE_DEFAULTS)
WRAPPER = Family("qwen3_vl", ("qwen3_vl",), build_qwen3, SOURCE, architectures=("Qwen3VLForConditionalGeneration",),
                 defaults=TEXT_DEFAULTS, text_config=True, text_model_type="qwen3_vl_text", vision=vision,
                 wrapper_tie_default=False)
MOE_WRAPPER = Family("qwen3_vl_moe", ("qwen3_vl_moe",), build_qwen3_moe, SOURCE, architectures=("Qwen3VLMoeForConditionalGeneration",),
                     defaults=MOE_DEFAULTS, text_config=True, text_model_type="qwen3_vl_moe_text", vision=vision,
                     wrapper_tie_default=False)
