"""Qwen3.5 and Qwen3.5-MoE: transformers/models/qwen3_5/{configuration,modeling}_qwen3_5.py and
models/qwen3_5_moe/ (5.24.0).

The text model is Qwen3-Next's hybrid (Gated DeltaNet layers with split in_proj_qkv / z / b / a, same
counts; gated full attention every full_attention_interval-th layer), with a dense MLP (qwen3_5) or
a MoE with a sigmoid-gated shared expert (qwen3_5_moe). The checkpoints are Qwen3_5ForConditionalGeneration:
`text_config` holds the text model, `vision_config` a Qwen3-VL-style ViT (counted as the `vision`
component); a bare `qwen3_5_text` / `qwen3_5_moe_text` config is the text model alone. MTP layers
(mtp_num_hidden_layers) are not instantiated by transformers and are not counted.
"""
from __future__ import annotations

from typing import Any

from oomplan.families.base import Family, Fields
from oomplan.families.config import HfConfig
from oomplan.families.qwen3_next import Qwen3NextConfig
from oomplan.families.qwen3_next import build as build_qwen3_next
from oomplan.specs.convert import build as validated
from oomplan.specs.vision import Qwen3VisionTower


class Qwen35TextConfig(Qwen3NextConfig):
    """Qwen3_5TextConfig's defaults where they differ from Qwen3-Next's (no experts unless the config has them)."""

    vocab_size: int | None = 248320
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None


class Qwen35Config(Qwen35TextConfig):
    """The wrapper (its text and vision sub-configs), or a bare qwen3_5_text / qwen3_5_moe_text config: the text
    keys parse at the top level too, so a bare text config's Gated DeltaNet keys are read, never dropped."""

    text_config: dict[str, Any] | None = None
    vision_config: dict[str, Any] | None = None


class Qwen35VisionConfig(HfConfig):
    """Qwen3_5VisionConfig's keys and defaults (attribute_map: num_heads, depth)."""

    depth: int = 27
    hidden_size: int | None = 1152
    intermediate_size: int | None = 4304
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 16
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    out_hidden_size: int = 3584
    num_position_embeddings: int = 2304


def vision_tower(v: Qwen35VisionConfig, num_deepstack_mergers: int = 0, num_deepstack_in_last_block: int = 0) -> Qwen3VisionTower:
    """The Qwen3-VL-style ViT of a Qwen3.5 / Qwen3-VL vision_config (Qwen3-VL adds its DeepStack mergers)."""
    assert v.hidden_size is not None and v.intermediate_size is not None
    return Qwen3VisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, depth=v.depth, num_heads=v.num_heads,
        in_channels=v.in_channels, patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
        spatial_merge_size=v.spatial_merge_size, out_hidden_size=v.out_hidden_size,
        num_position_embeddings=v.num_position_embeddings, num_deepstack_mergers=num_deepstack_mergers,
        num_deepstack_in_last_block=num_deepstack_in_last_block,
    )


def build(cfg: Qwen35Config, where: str) -> Fields:
    raw = cfg.model_dump(exclude={"text_config", "vision_config"}, exclude_unset=True)
    text = validated(Qwen35TextConfig, {**raw, **(cfg.text_config or {})}, f"{where}: text_config")
    f = build_qwen3_next(text, where)
    # Qwen3_5GatedDeltaNet: in_proj_qkv / in_proj_z / in_proj_b / in_proj_a instead of the fused qkvz / ba (modeling_qwen3_5.py)
    f["layers"] = tuple(layer.model_copy(update={"attention": layer.attention.model_copy(update={"state": layer.attention.state.model_copy(
        update={"fused_projections": False})})}) if layer.attention.state is not None else layer for layer in f["layers"])
    f["gguf_arch"] = "qwen35moe" if text.num_experts else "qwen35"
    # Qwen3_5TextModel.forward expands position_ids to (4, B, S): the rotary cos/sin are per sequence (modeling_qwen3_5.py:1245)
    f["rope"] = f["rope"].model_copy(update={"per_sequence_tables": True})
    if cfg.vision_config is not None:
        f["vision"] = vision_tower(validated(Qwen35VisionConfig, cfg.vision_config, f"{where}: vision_config"))
    return f


FAMILY = Family("qwen3_5", ("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"), build,
                "transformers/models/qwen3_5/modeling_qwen3_5.py, models/qwen3_5_moe/modeling_qwen3_5_moe.py (5.24.0)",
                architectures=("Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"), config=Qwen35Config)
