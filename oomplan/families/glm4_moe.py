"""GLM-4.5 / 4.6 / 4.7 (Glm4MoeForCausalLM): transformers/models/glm4_moe/{configuration,modeling}_glm4_moe.py (5.24.0).

GQA attention with q/k/v biases (attention_bias) and no o_proj bias, optional per-head q_norm/k_norm
(use_qk_norm), partial RoPE (partial_rotary_factor, default 0.5); the first first_k_dense_replace
layers dense (intermediate_size), the rest MoE: n_routed_experts of moe_intermediate_size, top
num_experts_per_tok, one shared MLP of n_shared_experts * moe_intermediate_size; the router weight is
an fp32 parameter, e_score_correction_bias a buffer. MTP layers ship but are not built (a note).
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require
from oomplan.families.config import HfConfig

DEFAULTS = dict(vocab_size=151552, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46, num_attention_heads=96,
                num_key_value_heads=8, max_position_embeddings=131072, attention_bias=False, moe_intermediate_size=1408,
                num_experts_per_tok=8, n_shared_experts=1, n_routed_experts=128, first_k_dense_replace=1, use_qk_norm=False,
                partial_rotary_factor=0.5, num_mtp_layers=1)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    require(cfg, where, "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size")
    f.update(qkv_bias=bool(cfg.attention_bias), qk_norm=bool(cfg.use_qk_norm), gguf_arch="glm4moe")
    first, n_shared = cfg.first_k_dense_replace or 0, cfg.n_shared_experts or 0
    moe(f, tuple(range(first, f["num_layers"])), num_experts=cfg.n_routed_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=cfg.moe_intermediate_size, num_shared_experts=n_shared,
        shared_expert_intermediate_size=n_shared * (cfg.moe_intermediate_size or 0),
        router_fp32=True)  # modeling_glm4_moe.py: _keep_in_fp32_modules_strict = [..., "gate.weight"]
    return f


FAMILY = Family("glm4_moe", ("glm4_moe",), build, "transformers/models/glm4_moe/modeling_glm4_moe.py (5.24.0)", defaults=DEFAULTS)
