"""Bamba (IBM Bamba-9B): transformers/models/bamba/configuration_bamba.py, modeling_bamba.py (5.24.0).

Per layer (BambaConfig.layers_block_type): full attention on the layers attn_layer_indices names, a Mamba-2
mixer (BambaMixer, the same code as GraniteMoeHybridMambaLayer: hybrid.prefixed_mixer) on every other;
then a gated MLP of intermediate_size (mlp_bias) and two RMSNorms (input_layernorm, pre_ff_layernorm).
Attention has q/k/v/o biases with attention_bias and RoPE, which BambaConfig.__post_init__ forces to
partial_rotary_factor 0.5 whatever the config says ("hardcode for BC"). lm_head is untied by default.
"""
from __future__ import annotations

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, set_attention
from oomplan.families.hybrid import MambaPrefixedConfig, layer_kinds_from_types, prefixed_mixer
from oomplan.specs.model import LayerAttention


# BambaConfig's values for keys a config.json may omit (Bamba-9B's: 32 x 4096, GQA 32/8, MLP 3.5x)
DEFAULTS = dict(vocab_size=128000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, max_position_embeddings=262144, attention_bias=False, mlp_bias=False)


class BambaConfig(MambaPrefixedConfig):
    """Keys Bamba adds, with BambaConfig's defaults (the mamba_* keys: hybrid.MambaPrefixedConfig)."""

    attn_layer_indices: list[int] | None = None
    layers_block_type: list[str] | None = None


def build(cfg: BambaConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    n = f["num_layers"]
    attention = set(cfg.attn_layer_indices or ())
    kinds = ["full" if i in attention else "linear" for i in range(n)]  # BambaConfig.layers_block_type
    for field in ("layer_types", "layers_block_type"):
        # BambaConfig derives the layers from attn_layer_indices alone: 5.24 cannot set either key (it warns on
        # layer_types and raises on layers_block_type), so a list that says otherwise would be priced as a guess
        given = getattr(cfg, field)
        if given and layer_kinds_from_types(given, n, where, field) != kinds:
            raise InputError(f"{where}: {field} disagrees with attn_layer_indices {sorted(attention)}; bamba's layers come from "
                             f"attn_layer_indices (transformers 5.24 BambaConfig.layers_block_type): drop {field} or make them agree")
    m = prefixed_mixer(cfg, where)
    set_attention(f, lambda i: LayerAttention(kind="linear", state=m) if kinds[i] == "linear" else LayerAttention(kind="full"))
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), mlp_bias=bool(cfg.mlp_bias), gguf_arch="granitehybrid",
             rope=f["rope"].model_copy(update={"partial_rotary_factor": 0.5}))
    return f


FAMILY = Family("bamba", ("bamba",), build, "transformers/models/bamba/modeling_bamba.py (5.24.0)", config=BambaConfig,
                defaults=DEFAULTS)
