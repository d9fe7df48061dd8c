"""Qwen2 / Qwen2.5 and Qwen2-MoE: transformers/models/qwen2/modeling_qwen2.py, models/qwen2_moe/modeling_qwen2_moe.py (5.24.0).

q, k, v carry a bias, o_proj does not; sliding windows only with use_sliding_window, from layer
max_window_layers on. Qwen2-MoE: a sigmoid-gated shared expert of shared_expert_intermediate_size,
routing weights in the hidden dtype, sparse layers every decoder_sparse_step minus mlp_only_layers.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, qwen_style_moe, sliding_from_max_window_layers
from oomplan.families.config import HfConfig


def build_qwen2(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=True, training_probe_checked=True, gguf_arch="qwen2")
    sliding_from_max_window_layers(cfg, where, f)
    return f


def build_qwen2_moe(cfg: HfConfig, where: str) -> Fields:
    f = build_qwen2(cfg, where)
    f.update(training_probe_checked=False, gguf_arch="qwen2moe")
    shared = cfg.shared_expert_intermediate_size or 0
    qwen_style_moe(cfg, where, f, num_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared,
                   shared_expert_gate=bool(shared))
    return f


QWEN2 = Family("qwen2", ("qwen2",), build_qwen2, "transformers/models/qwen2/modeling_qwen2.py (5.24.0)")
QWEN2_MOE = Family("qwen2_moe", ("qwen2_moe",), build_qwen2_moe, "transformers/models/qwen2_moe/modeling_qwen2_moe.py (5.24.0)")
