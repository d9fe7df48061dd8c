"""Granite 4.0 (GraniteMoeHybrid): transformers/models/granitemoehybrid/configuration_granitemoehybrid.py,
modeling_granitemoehybrid.py (5.24.0).

Per layer (layer_types; legacy 'mamba' / 'attention' names accepted): a Mamba-2 mixer or attention,
then a gated shared MLP of shared_intermediate_size and, with num_local_experts > 0, a MoE whose
gated experts are intermediate_size wide; two RMSNorms. The mixer is mamba_expand x hidden_size wide
(mamba_d_head 'auto': that width / mamba_n_heads). Multipliers and NoPE hold no parameters.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, set_attention, set_mlp
from oomplan.families.hybrid import MambaPrefixedConfig, layer_kinds_from_types, prefixed_mixer
from oomplan.specs.model import LayerAttention, LayerMlp


class GraniteMoeHybridConfig(MambaPrefixedConfig):
    """Keys Granite 4.0 adds, with GraniteMoeHybridConfig's defaults (the mamba_* keys: hybrid.MambaPrefixedConfig)."""

    shared_intermediate_size: int = 1024
    num_local_experts: int | None = 8
    num_experts_per_tok: int | None = 2
    position_embedding_type: str | None = None


def build(cfg: GraniteMoeHybridConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    n = f["num_layers"]
    kinds = layer_kinds_from_types(cfg.layer_types, n, where) if cfg.layer_types else ["linear"] * n
    m = prefixed_mixer(cfg, where)
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
