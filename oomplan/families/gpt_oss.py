"""gpt-oss: transformers/models/gpt_oss/configuration_gpt_oss.py and modeling_gpt_oss.py (5.24.0).

Alternating sliding (sliding_window 128) and full layers (layer_types; default: even layers slide);
a learned attention sink per head and layer (GptOssAttention.sinks [num_attention_heads]); q/k/v/o
biases (attention_bias, default True); every layer MoE: num_local_experts SwiGLU experts of
intermediate_size with biases (gate_up_proj_bias [E, 2I], down_proj_bias [E, h]) and a router with a
bias; untied embeddings. The experts ship in MXFP4 (quantization_config), which is the formats
registry's business: parameters are counted here.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, set_attention, sliding_every
from oomplan.families.config import HfConfig

DEFAULTS = dict(num_hidden_layers=36, num_local_experts=128, vocab_size=201_088, hidden_size=2880, intermediate_size=2880,
                head_dim=64, num_attention_heads=64, num_key_value_heads=8, sliding_window=128, max_position_embeddings=131_072,
                num_experts_per_tok=4, attention_bias=True)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    require(cfg, where, "num_local_experts", "num_experts_per_tok")
    bias = bool(cfg.attention_bias)
    f.update(qkv_bias=bias, o_bias=bias, gguf_arch="gpt-oss")
    sliding_every(cfg, where, f, 2)
    set_attention(f, lambda i: f["layers"][i].attention.model_copy(update={"sinks": True}))
    moe(f, tuple(range(f["num_layers"])), num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=f["intermediate_size"], expert_bias=True, router_bias=True)
    return f


FAMILY = Family("gpt_oss", ("gpt_oss",), build, "transformers/models/gpt_oss/modeling_gpt_oss.py (5.24.0)", defaults=DEFAULTS)
