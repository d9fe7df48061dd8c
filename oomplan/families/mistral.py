"""Mistral and Mixtral: transformers/models/mistral/modeling_mistral.py, models/mixtral/modeling_mixtral.py (5.24.0).

Mistral v0.1: sliding_window on every layer (v0.3 sets it to null). Mixtral: every layer's MLP is
num_local_experts routed experts of intermediate_size, top num_experts_per_tok, fp32 routing weights.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, sliding
from oomplan.families.config import HfConfig


def build_mistral(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(training_probe_checked=True, gguf_arch="llama")  # convert_hf_to_gguf: MistralForCausalLM -> llama
    sliding(cfg, where, f, lambda i: True)
    return f


def build_mixtral(cfg: HfConfig, where: str) -> Fields:
    f = build_mistral(cfg, where)
    f["training_probe_checked"] = False
    require(cfg, where, "num_local_experts", "num_experts_per_tok")
    moe(f, tuple(range(f["num_layers"])), num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=f["intermediate_size"])
    return f


MISTRAL = Family("mistral", ("mistral",), build_mistral, "transformers/models/mistral/modeling_mistral.py (5.24.0)")
MIXTRAL = Family("mixtral", ("mixtral",), build_mixtral, "transformers/models/mixtral/modeling_mixtral.py (5.24.0)")
