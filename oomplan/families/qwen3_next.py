"""Qwen3-Next: transformers/models/qwen3_next/configuration_qwen3_next.py, modeling_qwen3_next.py (5.24.0).

A hybrid of Gated DeltaNet layers (a fixed conv + recurrent state per sequence, no KV cache) and gated
full attention: q_proj is twice as wide (query and a sigmoid output gate), per-head q/k RMSNorm. Layer
kinds come from layer_types, else every full_attention_interval-th layer (default 4) is full attention.
Every layer is MoE (gated experts, a sigmoid-gated shared expert) unless mlp_only_layers /
decoder_sparse_step make it dense. The checkpoint's MTP layers (mtp_num_hidden_layers) are not
instantiated by transformers and are not counted.
"""
from __future__ import annotations

from typing import Any

from oomplan.families.base import Family, Fields, base_fields, qwen_style_moe, set_attention
from oomplan.families.config import HfConfig
from oomplan.families.hybrid import layer_kinds_from_types
from oomplan.specs.model import LayerAttention
from oomplan.specs.state import GatedDeltaNetMixer


class Qwen3NextConfig(HfConfig):
    """Keys Qwen3-Next adds, with Qwen3NextConfig's defaults."""

    head_dim: int | None = 256
    full_attention_interval: int = 4
    rope_parameters: dict[str, Any] | None = None  # transformers 5.x configs: rope_theta, partial_rotary_factor, ...
    linear_conv_kernel_dim: int = 4
    linear_key_head_dim: int = 128
    linear_value_head_dim: int = 128
    linear_num_key_heads: int = 16
    linear_num_value_heads: int = 32
    decoder_sparse_step: int | None = 1
    moe_intermediate_size: int | None = 512
    shared_expert_intermediate_size: int | None = 512
    num_experts_per_tok: int | None = 10
    num_experts: int | None = 512


def gated_deltanet(cfg: Qwen3NextConfig) -> GatedDeltaNetMixer:
    return GatedDeltaNetMixer(
        num_key_heads=cfg.linear_num_key_heads, num_value_heads=cfg.linear_num_value_heads,
        key_head_dim=cfg.linear_key_head_dim, value_head_dim=cfg.linear_value_head_dim, conv_kernel=cfg.linear_conv_kernel_dim,
    )


def build(cfg: Qwen3NextConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    if cfg.partial_rotary_factor is None:  # Qwen3NextConfig / Qwen3_5TextConfig: rotate a quarter of each head by default
        given = cfg.rope_parameters.get("partial_rotary_factor") if isinstance(cfg.rope_parameters, dict) else None
        partial = given if isinstance(given, (int, float)) and not isinstance(given, bool) and 0 < given <= 1 else 0.25
        f["rope"] = f["rope"].model_copy(update={"partial_rotary_factor": float(partial)})
    n = f["num_layers"]
    kinds = layer_kinds_from_types(cfg.layer_types, n, where) if cfg.layer_types else [
        "linear" if (i + 1) % cfg.full_attention_interval else "full" for i in range(n)]
    mixer = gated_deltanet(cfg)
    set_attention(f, lambda i: LayerAttention(kind="linear", state=mixer) if kinds[i] == "linear" else LayerAttention(kind="full"))
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), qk_norm=True, attn_output_gate=True,
             gguf_arch="qwen3next")
    if cfg.num_experts:
        shared = cfg.shared_expert_intermediate_size or 0
        qwen_style_moe(cfg, where, f, num_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared,
                       shared_expert_gate=bool(shared))
    return f


FAMILY = Family("qwen3_next", ("qwen3_next",), build, "transformers/models/qwen3_next/modeling_qwen3_next.py (5.24.0)",
                config=Qwen3NextConfig)
