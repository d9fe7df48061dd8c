"""Jamba: transformers/models/jamba/configuration_jamba.py, modeling_jamba.py (5.24.0).

Attention on layers i % attn_layer_period == attn_layer_offset, a Mamba (S6) mixer elsewhere (conv +
SSM state per sequence, Jamba's dt/B/C RMSNorms); MoE (gated experts of intermediate_size, no shared
expert) on layers i % expert_layer_period == expert_layer_offset, a gated MLP elsewhere; two RMSNorms.
"""
from __future__ import annotations

import math

from oomplan.families.base import Family, Fields, base_fields, moe, set_attention
from oomplan.families.config import HfConfig
from oomplan.specs.model import LayerAttention
from oomplan.specs.state import Mamba1Mixer


class JambaConfig(HfConfig):
    """Keys Jamba adds, with JambaConfig's defaults."""

    num_experts: int | None = 16
    num_experts_per_tok: int | None = 2
    expert_layer_period: int = 2
    expert_layer_offset: int = 1
    attn_layer_period: int = 8
    attn_layer_offset: int = 4
    mamba_d_state: int = 16
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_dt_rank: int | str = "auto"
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False


def build(cfg: JambaConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    n, h = f["num_layers"], f["hidden_size"]
    rank = math.ceil(h / 16) if cfg.mamba_dt_rank == "auto" else int(cfg.mamba_dt_rank)
    m = Mamba1Mixer(inner_size=cfg.mamba_expand * h, state_size=cfg.mamba_d_state, conv_kernel=cfg.mamba_d_conv, dt_rank=rank,
                    conv_bias=cfg.mamba_conv_bias, proj_bias=cfg.mamba_proj_bias)
    # JambaAttention applies no rotary embedding (JambaModel has no rotary_emb; modeling_jamba.py)
    set_attention(f, lambda i: LayerAttention(kind="full", rope=False) if i % cfg.attn_layer_period == cfg.attn_layer_offset
                  else LayerAttention(kind="linear", state=m))
    f["gguf_arch"] = "jamba"
    experts = tuple(i for i in range(n) if i % cfg.expert_layer_period == cfg.expert_layer_offset)
    if (cfg.num_experts or 1) > 1 and experts:
        moe(f, experts, num_experts=cfg.num_experts, num_experts_per_token=cfg.num_experts_per_tok,
            expert_intermediate_size=f["intermediate_size"])
    return f


FAMILY = Family("jamba", ("jamba",), build, "transformers/models/jamba/modeling_jamba.py (5.24.0)", config=JambaConfig)
