"""MiniMax-M2 / M2.x: transformers/models/minimax_m2/{configuration,modeling}_minimax_m2.py (5.24.0).

Every layer MoE: num_local_experts SwiGLU experts of intermediate_size, sigmoid router without a bias
(e_score_correction_bias is a buffer), no shared expert; GQA attention without biases, q_norm/k_norm
over all heads (RMSNorm(H * head_dim), RMSNorm(K * head_dim)); partial RoPE (rotary_dim / head_dim);
untied embeddings. MTP modules (num_mtp_modules) ship but are not built.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, rope
from oomplan.families.config import HfConfig

DEFAULTS = dict(vocab_size=200064, hidden_size=3072, intermediate_size=1536, num_hidden_layers=62, num_attention_heads=48,
                num_key_value_heads=8, head_dim=128, max_position_embeddings=196608, num_experts_per_tok=8, num_local_experts=256)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    require(cfg, where, "num_local_experts", "num_experts_per_tok")
    partial = (cfg.rotary_dim / f["head_dim"]) if cfg.rotary_dim and not cfg.partial_rotary_factor else None
    r = rope(cfg)
    f.update(qk_norm=True, qk_norm_over_heads=True, gguf_arch="minimax-m2",
             rope=r.model_copy(update={"partial_rotary_factor": partial}) if partial and partial <= 1 else r)
    moe(f, tuple(range(f["num_layers"])), num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=f["intermediate_size"])
    return f


FAMILY = Family("minimax_m2", ("minimax_m2",), build, "transformers/models/minimax_m2/modeling_minimax_m2.py (5.24.0)",
                defaults=DEFAULTS)
