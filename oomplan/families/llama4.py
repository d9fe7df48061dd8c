"""Llama 4 (Scout, Maverick): transformers/models/llama4/configuration_llama4.py and modeling_llama4.py (5.24.0).

Llama4TextConfig (model_type llama4_text):
- iRoPE: no_rope_layers[i] == 1 marks a RoPE layer (default: every no_rope_layer_interval-th layer, 4, is NoPE);
  layer_types defaults to "chunked_attention" on the RoPE layers when attention_chunk_size (8192) is set, else
  "full_attention"; NoPE layers attend over the whole prefix. Chunked layers keep a cache of attention_chunk_size
  tokens (cache_utils.py DynamicSlidingWindowLayer).
- MoE on moe_layers (default range(step - 1, n, interleave_moe_layer_step)): Llama4TextMoe = num_local_experts
  experts of intermediate_size (Llama4TextExperts gate_up_proj [E, h, 2I], down_proj [E, I, h], no biases), a
  bias-free router (nn.Linear(h, E)) and one shared expert Llama4TextMLP of intermediate_size; the router's
  sigmoid scores are cast back to the model dtype. Dense layers: Llama4TextMLP of intermediate_size_mlp.
- use_qk_norm: Llama4TextL2Norm on q and k of RoPE layers, which has no weight (no parameters).
- two RMSNorms per layer; attention_bias on q/k/v/o; tie_word_embeddings False by default.
Llama4ForConditionalGeneration (model_type llama4) describes the decoder in text_config and adds
Llama4VisionModel and Llama4MultiModalProjector (the `vision` component, memory/vision_params.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, moe, require, set_attention, set_mlp
from oomplan.families.config import HfConfig
from oomplan.specs.convert import build as validated
from oomplan.specs.model import LayerAttention, LayerMlp
from oomplan.specs.vision import Llama4VisionTower
from oomplan.text import clean

SOURCE = "transformers/models/llama4/modeling_llama4.py (5.24.0)"
# configuration_llama4.py Llama4TextConfig field defaults (the keys a config.json may omit)
DEFAULTS = dict(vocab_size=202_048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16_384, num_hidden_layers=48,
                num_attention_heads=40, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096 * 32,
                tie_word_embeddings=False, num_experts_per_tok=1, num_local_experts=16, interleave_moe_layer_step=1,
                use_qk_norm=True, no_rope_layer_interval=4, attention_chunk_size=8192, attention_bias=False)
_LAYER_TYPES = ("full_attention", "chunked_attention")


def _rope_flags(cfg: HfConfig, n: int, where: str) -> list[bool]:
    """Llama4TextConfig.__post_init__: no_rope_layers when non-empty, else a NoPE layer every no_rope_layer_interval."""
    if cfg.no_rope_layers:
        if len(cfg.no_rope_layers) < n:
            raise InputError(f"{where}: no_rope_layers has {len(cfg.no_rope_layers)} entries for {n} layers (num_hidden_layers)")
        return [bool(v) for v in cfg.no_rope_layers[:n]]
    interval = cfg.no_rope_layer_interval or 4
    return [bool((i + 1) % interval) for i in range(n)]


def _layer_types(cfg: HfConfig, rope: list[bool], where: str) -> list[str]:
    n = len(rope)
    if cfg.layer_types is None:
        return ["chunked_attention" if r and cfg.attention_chunk_size is not None else "full_attention" for r in rope]
    if len(cfg.layer_types) < n:
        raise InputError(f"{where}: layer_types has {len(cfg.layer_types)} entries for {n} layers (num_hidden_layers)")
    bad = next((t for t in cfg.layer_types[:n] if t not in _LAYER_TYPES), None)
    if bad is not None:
        raise InputError(f"{where}: layer_types entry {clean(str(bad))!r} is not one Llama 4 builds ({', '.join(_LAYER_TYPES)})")
    if "chunked_attention" in cfg.layer_types[:n] and cfg.attention_chunk_size is None:
        raise InputError(f"{where}: layer_types has chunked_attention layers but attention_chunk_size is null")
    return list(cfg.layer_types[:n])


def build(cfg: HfConfig, where: str) -> Fields:
    require(cfg, where, "intermediate_size_mlp", "num_local_experts", "num_experts_per_tok")
    f = base_fields(cfg, where, tie_default=False)
    n, dense = f["num_layers"], cfg.intermediate_size_mlp
    bias = bool(cfg.attention_bias)
    # qk_norm stays False: Llama4TextL2Norm has no weight, so use_qk_norm adds no parameters
    f.update(qkv_bias=bias, o_bias=bias, intermediate_size=dense, gguf_arch="llama4")
    rope = _rope_flags(cfg, n, where)
    types = _layer_types(cfg, rope, where)
    chunk = cfg.attention_chunk_size
    set_attention(f, lambda i: LayerAttention(kind="chunked", window_tokens=chunk, rope=rope[i]) if types[i] == "chunked_attention"
                  else LayerAttention(kind="full", rope=rope[i]))
    set_mlp(f, lambda i: LayerMlp(kind="gated", intermediate_size=dense))
    step = cfg.interleave_moe_layer_step or 1
    chosen = cfg.moe_layers if cfg.moe_layers is not None else list(range(step - 1, n, step))
    layers = tuple(i for i in range(n) if i in set(chosen))  # decoder layer i is MoE when i in config.moe_layers
    if layers:
        moe(f, layers, num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
            expert_intermediate_size=cfg.intermediate_size, num_shared_experts=1,
            shared_expert_intermediate_size=cfg.intermediate_size, routing_weights_fp32=False,
            stored_fused=True)  # meta-llama's safetensors: feed_forward.experts.gate_up_proj [E, h, 2I], as transformers holds it
    return f


class Llama4VisionConfig(HfConfig):
    """configuration_llama4.py Llama4VisionConfig's keys and defaults (5.24.0)."""

    hidden_size: int | None = 768
    intermediate_size: int | None = 5632
    num_hidden_layers: int | None = 34
    num_attention_heads: int | None = 16
    num_channels: int = 3
    image_size: int = 448
    patch_size: int = 14
    vision_output_dim: int = 7680
    projector_input_dim: int = 4096
    projector_output_dim: int = 4096
    pixel_shuffle_ratio: float = 0.5


def vision(raw: Mapping[str, Any], text_hidden_size: int, where: str) -> Llama4VisionTower:
    """Llama4VisionModel (vision_config; Llama4VisionConfig's defaults where absent) and Llama4MultiModalProjector
    (linear_1 [text hidden, vision_output_dim], no bias)."""
    vc = raw.get("vision_config")
    v = validated(Llama4VisionConfig, vc if isinstance(vc, dict) else {}, f"{where}: vision_config")
    assert v.hidden_size and v.intermediate_size and v.num_hidden_layers is not None and v.num_attention_heads
    return Llama4VisionTower(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_layers=v.num_hidden_layers,
        num_heads=v.num_attention_heads, num_channels=v.num_channels, image_size=v.image_size, patch_size=v.patch_size,
        vision_output_dim=v.vision_output_dim, projector_input_dim=v.projector_input_dim,
        projector_output_dim=v.projector_output_dim, pixel_shuffle_ratio=v.pixel_shuffle_ratio, text_hidden_size=text_hidden_size,
    )


TEXT = Family("llama4_text", ("llama4_text",), build, SOURCE, architectures=("Llama4ForCausalLM",), defaults=DEFAULTS)
WRAPPER = Family("llama4", ("llama4",), build, SOURCE, architectures=("Llama4ForConditionalGeneration",), defaults=DEFAULTS,
                 text_config=True, text_model_type="llama4_text", vision=vision)
