"""Qwen2.5-VL: transformers/models/qwen2_5_vl/{configuration,modeling}_qwen2_5_vl.py (5.24.0).

Qwen2_5_VLForConditionalGeneration: a Qwen2 text model (q/k/v biases) whose keys sit in `text_config`
(or, in the released config.json files, at the top level), and a ViT with a patch merger from
`vision_config` (counted as the `vision` component). Images have a dynamic token count.
"""
from __future__ import annotations

from typing import Any

from oomplan.families.base import Family, Fields
from oomplan.families.config import HfConfig
from oomplan.families.qwen2 import build_qwen2
from oomplan.specs.convert import build as validated
from oomplan.specs.vision import Qwen25VisionTower


class Qwen25VLConfig(HfConfig):
    text_config: dict[str, Any] | None = None
    vision_config: dict[str, Any] | None = None


class Qwen25VisionConfig(HfConfig):
    """Qwen2_5_VLVisionConfig's keys and defaults."""

    depth: int = 32
    hidden_size: int | None = 3584
    intermediate_size: int | None = 3420
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    out_hidden_size: int = 3584


def build(cfg: Qwen25VLConfig, where: str) -> Fields:
    raw = cfg.model_dump(exclude={"text_config", "vision_config"}, exclude_none=True)
    text = validated(HfConfig, {**raw, **(cfg.text_config or {})}, f"{where}: text_config")
    f = build_qwen2(text, where)
    f.update(training_probe_checked=False, gguf_arch="qwen2vl")
    v = validated(Qwen25VisionConfig, cfg.vision_config or {}, f"{where}: vision_config")
    assert v.hidden_size is not None and v.intermediate_size is not None
    f["vision"] = Qwen25VisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, depth=v.depth, num_heads=v.num_heads,
        in_channels=v.in_channels, patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
        spatial_merge_size=v.spatial_merge_size, out_hidden_size=v.out_hidden_size,
    )
    return f


FAMILY = Family("qwen2_5_vl", ("qwen2_5_vl",), build, "transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py (5.24.0)",
                architectures=("Qwen2_5_VLForConditionalGeneration",), config=Qwen25VLConfig)
