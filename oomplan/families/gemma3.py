"""Gemma 3: transformers/models/gemma3/configuration_gemma3.py and modeling_gemma3.py (5.24.0).

Gemma3TextConfig (model_type gemma3_text): Gemma 2's layer (four RMSNorms) plus per-head q_norm/k_norm;
five sliding layers (sliding_window, default 4096) to one full layer (sliding_window_pattern 6, or
layer_types); tied embeddings unless the config says otherwise; no soft-capping by default. The
multimodal wrapper Gemma3ForConditionalGeneration (model_type gemma3) describes its decoder in
text_config (sparse: the keys it omits take Gemma3TextConfig's defaults, below).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oomplan.families.base import Family, Fields, base_fields, rope_table_per_layer_type, sliding_every
from oomplan.families.config import HfConfig
from oomplan.specs.convert import build as validated
from oomplan.specs.vision import SiglipVisionTower

# configuration_gemma3.py Gemma3TextConfig field defaults
DEFAULTS = dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                num_key_value_heads=4, head_dim=256, max_position_embeddings=131_072, sliding_window=4096,
                attention_bias=False)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=True)
    f.update(num_norms_per_layer=4, qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), qk_norm=True,
             final_logit_softcapping=cfg.final_logit_softcapping or None, attn_logit_softcapping=cfg.attn_logit_softcapping or None,
             rms_norm_fp32_output=True, gguf_arch="gemma3")
    pattern = cfg.sliding_window_pattern if isinstance(cfg.sliding_window_pattern, int) else 6
    sliding_every(cfg, where, f, pattern)
    rope_table_per_layer_type(f)  # a global and a local rotary table
    return f


class SiglipVisionConfig(HfConfig):
    """models/siglip/configuration_siglip.py SiglipVisionConfig's keys and defaults (5.24.0)."""

    hidden_size: int | None = 768
    intermediate_size: int | None = 3072
    num_hidden_layers: int | None = 12
    num_attention_heads: int | None = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    vision_use_head: bool = True


def vision(raw: Mapping[str, Any], text_hidden_size: int, where: str) -> SiglipVisionTower:
    """Gemma3ForConditionalGeneration: a SigLIP vision tower (vision_config; SiglipVisionConfig's defaults when
    absent) and Gemma3MultiModalProjector into the text width; mm_tokens_per_image (default 256) per image."""
    vc = raw.get("vision_config")
    v = validated(SiglipVisionConfig, vc if isinstance(vc, dict) else {}, f"{where}: vision_config")
    tokens = raw.get("mm_tokens_per_image")
    assert v.hidden_size and v.intermediate_size and v.num_hidden_layers and v.num_attention_heads
    return SiglipVisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_layers=v.num_hidden_layers,
        num_heads=v.num_attention_heads, num_channels=v.num_channels, patch_size=v.patch_size, image_size=v.image_size,
        use_head=v.vision_use_head, text_hidden_size=text_hidden_size, tokens_per_image=tokens if isinstance(tokens, int) and tokens > 0 else 256,
    )


TEXT = Family("gemma3_text", ("gemma3_text",), build, "transformers/models/gemma3/modeling_gemma3.py (5.24.0)",
              architectures=("Gemma3ForCausalLM",), defaults=DEFAULTS)
WRAPPER = Family("gemma3", ("gemma3",), build, "transformers/models/gemma3/modeling_gemma3.py (5.24.0)",
                 architectures=("Gemma3ForConditionalGeneration",), text_config=True, text_model_type="gemma3_text",
                 vision=vision)
