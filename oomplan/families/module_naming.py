"""Each family's checkpoint module names (oomplan.specs.model.ModuleNaming), read from transformers 5.24's modelling code
(models/<family>/modeling_*.py: the attribute names of the decoder layer and its MoE block); families not listed use
llama's (self_attn, mlp, mlp.gate, mlp.shared_expert)."""
from __future__ import annotations

from oomplan.specs.model import ModuleNaming

_W = (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2"))
NAMING: dict[str, ModuleNaming] = {
    # modeling_mixtral.py MixtralSparseMoeBlock / modeling_minimax_m2.py: block_sparse_moe.gate, experts.<j>.w1/w2/w3
    "mixtral": ModuleNaming(block="block_sparse_moe", experts=_W), "minimax_m2": ModuleNaming(block="block_sparse_moe", experts=_W),
    # modeling_llama4.py Llama4TextMoe: feed_forward.router, feed_forward.shared_expert; modeling_gpt_oss.py: mlp.router
    "llama4_text": ModuleNaming(block="feed_forward", router="router"), "llama4": ModuleNaming(block="feed_forward", router="router"),
    "gpt_oss": ModuleNaming(router="router"),
    # modeling_deepseek_v3.py and the families on its layout: mlp.gate, mlp.shared_experts
    **{t: ModuleNaming(shared="shared_experts") for t in ("deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "glm4_moe", "glm_moe_dsa")},
    # modeling_qwen3_next.py / modeling_qwen3_5*.py: linear_attn for the Gated DeltaNet layers
    **{t: ModuleNaming(mixer="linear_attn") for t in ("qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text")},
    # modeling_nemotron_h.py: every block is `mixer` (attention, Mamba-2, MLP and MoE alike)
    "nemotron_h": ModuleNaming(attention="mixer", mixer="mixer", block="mixer", shared="shared_experts"),
    # modeling_jamba.py / modeling_falcon_h1.py / modeling_granitemoehybrid.py: the Mamba mixer is `mamba`
    "jamba": ModuleNaming(mixer="mamba", block="feed_forward", router="router"),
    "falcon_h1": ModuleNaming(mixer="mamba", block="feed_forward"),
    "granitemoehybrid": ModuleNaming(mixer="mamba", block="block_sparse_moe", router="router"),
}


def naming_for(model_type: str) -> ModuleNaming:
    return NAMING.get(model_type, ModuleNaming())
