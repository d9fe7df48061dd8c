"""DeepSeek-V2 / V3: transformers/models/deepseek_v2/modeling_deepseek_v2.py, models/deepseek_v3/modeling_deepseek_v3.py (5.24.0).

Multi-head latent attention on every layer (the cache keeps the kv_lora_rank latent plus the shared
RoPE key); the first first_k_dense_replace layers dense, then MoE every moe_layer_freq layers with
n_shared_experts shared experts of moe_intermediate_size each.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, set_attention
from oomplan.families.config import HfConfig
from oomplan.specs.model import LayerAttention, MlaSpec


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    require(cfg, where, "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    assert cfg.qk_nope_head_dim is not None and cfg.qk_rope_head_dim is not None
    f["mla"] = MlaSpec(
        q_lora_rank=cfg.q_lora_rank, kv_lora_rank=cfg.kv_lora_rank, qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim, v_head_dim=cfg.v_head_dim,
    )
    f.update(head_dim=cfg.qk_nope_head_dim + cfg.qk_rope_head_dim, gguf_arch="deepseek2")
    set_attention(f, lambda i: LayerAttention(kind="mla"))
    if cfg.n_routed_experts:
        first, freq = cfg.first_k_dense_replace or 0, cfg.moe_layer_freq or 1
        n_shared = cfg.n_shared_experts or 0
        moe(f, tuple(i for i in range(f["num_layers"]) if i >= first and i % freq == 0),
            num_experts=cfg.n_routed_experts, num_experts_per_token=cfg.num_experts_per_tok or 1,
            expert_intermediate_size=cfg.moe_intermediate_size or f["intermediate_size"],
            num_shared_experts=n_shared, shared_expert_intermediate_size=n_shared * (cfg.moe_intermediate_size or 0),
            # 5.24.0 modeling_deepseek_v2.py:92,483 / modeling_deepseek_v3.py:126,551: the TopkRouter's weight is made in
            # fp32 and listed in _keep_in_fp32_modules_strict ("gate.weight"), as in DeepSeek's own code; 5.23.0 held it
            # in the model dtype (modeling_deepseek_v3.py:126,550). The memory model follows the pinned transformers
            # (constraints.txt); vLLM/SGLang load it in the model dtype (oomplan/engines/weights.py subtracts it).
            router_fp32=True)
    return f


FAMILY = Family("deepseek", ("deepseek_v2", "deepseek_v3"), build,
                "transformers/models/deepseek_v3/modeling_deepseek_v3.py (5.24.0)")
