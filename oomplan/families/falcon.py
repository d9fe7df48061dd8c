"""Falcon: transformers/models/falcon/configuration_falcon.py and modeling_falcon.py (5.24.0).

n_head / n_layer are aliases; LayerNorm with bias; plain (non-gated) MLP of ffn_hidden_size;
one fused query_key_value. The new decoder architecture (40B/180B) has num_kv_heads groups and
two norms (ln_attn, ln_mlp) reading the same input; the old one multi-query with one shared norm
when attention and MLP run in parallel. FalconAttention repeats K/V to every head before
attention (and, in the new architecture, before the cache update), materialises its own causal
mask, and runs its eager softmax in the hidden dtype.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, dense_layers
from oomplan.families.config import HfConfig


def build(cfg: HfConfig, where: str) -> Fields:
    raw = cfg.model_dump()
    raw["num_attention_heads"] = cfg.num_attention_heads or cfg.n_head
    raw["num_hidden_layers"] = cfg.num_hidden_layers or cfg.n_layer
    fixed = HfConfig.model_validate(raw)
    f = base_fields(fixed, where, tie_default=True)
    heads = f["num_attention_heads"]
    if cfg.new_decoder_architecture:
        kv, norms = cfg.num_kv_heads or heads, 2
    else:
        kv, norms = (1 if cfg.multi_query is not False else heads), (1 if cfg.parallel_attn is not False else 2)
    width = cfg.ffn_hidden_size or 4 * f["hidden_size"]
    f.update(
        num_kv_heads=kv, norm_kind="layer", num_norms_per_layer=norms, mlp_kind="plain", intermediate_size=width,
        layers=dense_layers(f["num_layers"], width, "plain"),
        qkv_bias=bool(cfg.bias), o_bias=bool(cfg.bias), mlp_bias=bool(cfg.bias),
        hf_expands_kv_cache=bool(cfg.new_decoder_architecture), eager_softmax_fp32=False,
        parallel_attention=bool(cfg.new_decoder_architecture or cfg.parallel_attn is not False),
        sdpa_causal_mask=True, hf_repeats_kv=True, fused_qkv=True, norms_share_input=bool(cfg.new_decoder_architecture),
        gguf_arch="falcon",
    )
    return f


FAMILY = Family("falcon", ("falcon",), build, "transformers/models/falcon/modeling_falcon.py (5.24.0)")
