"""OLMo 2 and OLMo 3: transformers/models/olmo2/modeling_olmo2.py, models/olmo3/modeling_olmo3.py (5.24.0).

Post-norms only (post_attention_layernorm, post_feedforward_layernorm: two RMSNorms per layer) and
q_norm / k_norm over all heads (RMSNorm(H * head_dim), RMSNorm(K * head_dim)); untied embeddings.
OLMo 3 adds sliding windows (sliding_window, default 4096): three sliding layers to one full one
unless layer_types says otherwise.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, rope_table_per_layer_type, sliding_every
from oomplan.families.config import HfConfig

DEFAULTS = dict(vocab_size=50304, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                max_position_embeddings=2048, attention_bias=False)


def build_olmo2(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    bias = bool(cfg.attention_bias)
    f.update(qkv_bias=bias, o_bias=bias, qk_norm=True, qk_norm_over_heads=True, gguf_arch="olmo2")
    return f


def build_olmo3(cfg: HfConfig, where: str) -> Fields:
    f = build_olmo2(cfg, where)
    sliding_every(cfg, where, f, 4)
    rope_table_per_layer_type(f)
    return f


OLMO2 = Family("olmo2", ("olmo2",), build_olmo2, "transformers/models/olmo2/modeling_olmo2.py (5.24.0)", defaults=DEFAULTS)
OLMO3 = Family("olmo3", ("olmo3",), build_olmo3, "transformers/models/olmo3/modeling_olmo3.py (5.24.0)",
               defaults=dict(DEFAULTS, sliding_window=4096))
