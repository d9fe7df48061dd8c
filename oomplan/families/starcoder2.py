"""StarCoder2: transformers/models/starcoder2/configuration_starcoder2.py and modeling_starcoder2.py (5.24.0).

Plain (non-gated) MLP c_fc -> gelu -> c_proj of intermediate_size; LayerNorm (weight and bias) before
attention and MLP; use_bias (default True) on q/k/v/o and both MLP projections; sliding_window on every
layer when set (no layer_types: cache_utils get_layer_types_and_kwargs); tied embeddings by default.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, dense_layers, sliding
from oomplan.families.config import HfConfig

DEFAULTS = dict(vocab_size=49152, hidden_size=3072, intermediate_size=12288, num_hidden_layers=30, num_attention_heads=24,
                num_key_value_heads=2, max_position_embeddings=4096, use_bias=True)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=True)
    bias = cfg.use_bias is not False
    f.update(norm_kind="layer", mlp_kind="plain", layers=dense_layers(f["num_layers"], f["intermediate_size"], "plain"),
             qkv_bias=bias, o_bias=bias, mlp_bias=bias, gguf_arch="starcoder2")
    sliding(cfg, where, f, lambda i: True)
    return f


FAMILY = Family("starcoder2", ("starcoder2",), build, "transformers/models/starcoder2/modeling_starcoder2.py (5.24.0)",
                defaults=DEFAULTS)
