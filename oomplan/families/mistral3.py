"""Mistral 3 (Mistral Small 3.x, Devstral, Magistral as multimodal checkpoints): transformers/models/mistral3/
modeling_mistral3.py (5.24.0). Mistral3ForConditionalGeneration wraps a text decoder (text_config,
model_type mistral by default) with a Pixtral vision tower and Mistral3MultiModalProjector; the decoder is
priced by its own family, the tower and projector as the `vision` component.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from oomplan.families.base import Family
from oomplan.families.config import HfConfig
from oomplan.families.mistral import build_mistral
from oomplan.specs.convert import build as validated
from oomplan.specs.vision import PixtralVisionTower


class PixtralVisionConfig(HfConfig):
    """models/pixtral/configuration_pixtral.py PixtralVisionConfig's keys and defaults (5.24.0)."""

    hidden_size: int | None = 1024
    intermediate_size: int | None = 4096
    num_hidden_layers: int | None = 24
    num_attention_heads: int | None = 16
    num_channels: int = 3
    patch_size: int = 16
    image_size: int = Field(default=1024, ge=1, le=2**16)


def vision(raw: Mapping[str, Any], text_hidden_size: int, where: str) -> PixtralVisionTower:
    """Mistral3Config: spatial_merge_size (2), multimodal_projector_bias (False), vision_feature_layer (-1, or a
    list whose features are concatenated before the projector)."""
    vc = raw.get("vision_config")
    v = validated(PixtralVisionConfig, vc if isinstance(vc, dict) else {}, f"{where}: vision_config")
    assert v.hidden_size and v.intermediate_size and v.num_hidden_layers and v.num_attention_heads
    layer = raw.get("vision_feature_layer", -1)
    merge = raw.get("spatial_merge_size", 2)
    return PixtralVisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_layers=v.num_hidden_layers,
        num_heads=v.num_attention_heads, num_channels=v.num_channels, patch_size=v.patch_size,
        spatial_merge_size=merge if isinstance(merge, int) and merge > 0 else 2,
        num_feature_layers=len(layer) if isinstance(layer, list) and layer else 1,
        feature_layer=layer if isinstance(layer, int) and not isinstance(layer, bool) else -1, image_size=v.image_size,
        projector_bias=raw.get("multimodal_projector_bias") is True, text_hidden_size=text_hidden_size,
    )


WRAPPER = Family("mistral3", ("mistral3",), build_mistral, "transformers/models/mistral3/modeling_mistral3.py (5.24.0)",
                 architectures=("Mistral3ForConditionalGeneration",), text_config=True, text_model_type="mistral",
                 vision=vision)
