"""Granite 4.0 (GraniteMoeHybrid): transformers/models/granitemoehybrid/configuration_granitemoehybrid.py,
modeling_granitemoehybrid.py (5.24.0).

Per layer (layer_types; legacy 'mamba' / 'attention' names accepted): a Mamba-2 mixer or attention,
then a gated shared MLP of shared_intermediate_size and, with num_local_experts > 0, a MoE whose
gated experts are intermediate_size wide; two RMSNorms. The mixer is mamba_expand x hidden_size wide
(mamba_d_head 'auto': that width / mamba_n_heads). Multipliers and NoPE hold no parameters.
"""
from __future__ import annotations

from pydantic import Field

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, moe, set_attention, set_mlp
from oomplan.families.config import HfConfig
from oomplan.families.hybrid import layer_kinds_from_types
from oomplan.specs.model import LayerAttention, LayerMlp
from oomplan.specs.state import Mamba2Mixer


class GraniteMoeHybridConfig(HfConfig):
    """Keys Granite 4.0 adds, with GraniteMoeHybridConfig's defaults."""

    shared_intermediate_size: int = 1024
    num_local_experts: int | None = 8
    num_experts_per_tok: int | None = 2
    mamba_n_heads: int = 128
    mamba_n_groups: int = 1
    mamba_d_state: int = 256
    mamba_d_head: int | str = "auto"
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    position_embedding_type: str | None = None
    mamba_chunk_size: int | None = Field(default=256, ge=1, le=2**31)


def mixer(cfg: GraniteMoeHybridConfig, where: str) -> Mamba2Mixer:
    assert cfg.hidden_size is not None
    inner = cfg.mamba_expand * cfg.hidden_size
    head_dim = inner // cfg.mamba_n_heads if cfg.mamba_d_head == "auto" else int(cfg.mamba_d_head)
    if head_dim * cfg.mamba_n_heads != inner:  # GraniteMoeHybridConfig.validate_architecture
        raise InputError(f"{where}: mamba_d_head x mamba_n_heads ({head_dim * cfg.mamba_n_heads}) must equal mamba_expand x hidden_size ({inner})")
    return Mamba2Mixer(num_heads=cfg.mamba_n_heads, head_dim=head_dim, num_groups=cfg.mamba_n_groups, state_size=cfg.mamba_d_state,
                       conv_kernel=cfg.mamba_d_conv, conv_bias=cfg.mamba_conv_bias, proj_bias=cfg.mamba_proj_bias,
                       chunk_size=cfg.mamba_chunk_size or 256)


def build(cfg: GraniteMoeHybridConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    n = f["num_layers"]
    kinds = layer_kinds_from_types(cfg.layer_types, n, where) if cfg.layer_types else ["linear"] * n
    m = mixer(cfg, where)
    rope = cfg.position_embedding_type == "rope"  # GraniteMoeHybridModel: rotary_emb only for "rope" (default None: NoPE)
    set_attention(f, lambda i: LayerAttention(kind="linear", state=m) if kinds[i] == "linear" else LayerAttention(kind="full", rope=rope))
    shared = cfg.shared_intermediate_size
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), gguf_arch="granitehybrid")
    if cfg.num_local_experts:
        moe(f, tuple(range(n)), num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
            expert_intermediate_size=f["intermediate_size"], num_shared_experts=1, shared_expert_intermediate_size=shared)
    else:
        set_mlp(f, lambda i: LayerMlp(kind="gated", intermediate_size=shared))
    return f


FAMILY = Family("granitemoehybrid", ("granitemoehybrid",), build,
                "transformers/models/granitemoehybrid/modeling_granitemoehybrid.py (5.24.0)", config=GraniteMoeHybridConfig)
