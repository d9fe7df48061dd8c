"""Llama 3.2 Vision (Mllama): transformers/models/mllama/configuration_mllama.py and modeling_mllama.py (5.24.0).

MllamaForConditionalGeneration (model_type mllama) describes its decoder in text_config (MllamaTextConfig, model_type
mllama_text_model): a llama decoder whose layers listed in cross_attention_layers (default [3, 8, ..., 38]) are
MllamaCrossAttentionDecoderLayer: q/k/v/o as self-attention (head_dim = hidden_size // num_attention_heads) plus
per-head q_norm / k_norm and two tanh gates, attending to the projected vision states instead of the context. Those
layers keep no per-token KV; they cache the image's K/V (num_images x max_num_tiles x ((image_size // patch_size)**2 + 1)
tokens, as MllamaForConditionalGeneration._prepare_static_cache sizes it), priced per image (memory/vision_kv.py cross_kv_bytes).
embed_tokens has vocab_size + 8 rows; lm_head is never tied (the wrapper's _tied_weights_keys is commented out).
The vision model (MllamaVisionModel: local transformer + gated global transformer, tile embeddings) and the
projector (nn.Linear(vision_output_dim, text hidden, bias=True)) are the `vision` component.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, set_attention
from oomplan.families.config import HfConfig
from oomplan.specs.convert import build as validated
from oomplan.specs.model import LayerAttention
from oomplan.specs.vision import MllamaVisionTower

SOURCE = "transformers/models/mllama/modeling_mllama.py (5.24.0)"
DEFAULTS = dict(vocab_size=128_256, hidden_size=4096, num_hidden_layers=40, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=14_336, max_position_embeddings=131_072, tie_word_embeddings=False)
DEFAULT_CROSS_LAYERS = [3, 8, 13, 18, 23, 28, 33, 38]  # MllamaTextConfig.__post_init__
DEFAULT_ASPECT_RATIOS = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]  # MllamaVisionConfig.__post_init__


class MllamaTextConfig(HfConfig):
    cross_attention_layers: list[int] | None = None


def build(cfg: MllamaTextConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    assert cfg.hidden_size is not None and cfg.num_attention_heads is not None
    # MllamaTextSelfAttention / CrossAttention: head_dim = hidden_size // num_attention_heads (a head_dim key is not read)
    f.update(head_dim=cfg.hidden_size // cfg.num_attention_heads, tie_word_embeddings=False, num_extra_embedding_rows=8,
             gguf_arch="mllama")
    cross = set(DEFAULT_CROSS_LAYERS if cfg.cross_attention_layers is None else cfg.cross_attention_layers)
    set_attention(f, lambda i: LayerAttention(kind="cross") if i in cross else f["layers"][i].attention)
    notes = []
    if cfg.tie_word_embeddings:
        notes.append("tie_word_embeddings is set, but MllamaForConditionalGeneration never ties lm_head (transformers 5.24): counted untied")
    f["notes"] = (*f["notes"], *notes)
    return f


class MllamaVisionConfig(HfConfig):
    """configuration_mllama.py MllamaVisionConfig's keys and defaults (5.24.0)."""

    hidden_size: int | None = 1280
    intermediate_size: int | None = 5120
    num_hidden_layers: int | None = 32
    num_global_layers: int = Field(default=8, ge=0, le=1000)
    attention_heads: int = Field(default=16, ge=1, le=2**12)
    num_channels: int = 3
    image_size: int = 448
    patch_size: int = 14
    vision_output_dim: int = 7680
    max_num_tiles: int = Field(default=4, ge=1, le=1024)
    supported_aspect_ratios: list[list[int]] | None = None


def vision(raw: Mapping[str, Any], text_hidden_size: int, where: str) -> MllamaVisionTower:
    vc = raw.get("vision_config")
    v = validated(MllamaVisionConfig, vc if isinstance(vc, dict) else {}, f"{where}: vision_config")
    assert v.hidden_size and v.intermediate_size and v.num_hidden_layers is not None
    ratios = DEFAULT_ASPECT_RATIOS if v.supported_aspect_ratios is None else v.supported_aspect_ratios
    if not ratios:
        raise InputError(f"{where}: vision_config: field 'supported_aspect_ratios' is empty; Mllama needs at least one")
    return MllamaVisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_layers=v.num_hidden_layers,
        num_global_layers=v.num_global_layers, num_heads=v.attention_heads, num_channels=v.num_channels, image_size=v.image_size,
        patch_size=v.patch_size, vision_output_dim=v.vision_output_dim, max_num_tiles=v.max_num_tiles,
        num_aspect_ratios=len(ratios), text_hidden_size=text_hidden_size,
    )


TEXT = Family("mllama_text_model", ("mllama_text_model",), build, SOURCE, config=MllamaTextConfig, defaults=DEFAULTS,
              architectures=("MllamaForCausalLM",))
WRAPPER = Family("mllama", ("mllama",), build, SOURCE, architectures=("MllamaForConditionalGeneration",), config=MllamaTextConfig,
                 defaults=DEFAULTS, text_config=True, text_model_type="mllama_text_model", vision=vision)
