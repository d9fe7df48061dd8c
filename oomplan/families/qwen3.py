"""Qwen3 and Qwen3-MoE: transformers/models/qwen3/modeling_qwen3.py, models/qwen3_moe/modeling_qwen3_moe.py (5.24.0).

Per-head RMSNorm on q and k; attention_bias covers q, k, v and o. Qwen3-MoE: no shared expert,
routing weights cast to the hidden dtype, sparse layers every decoder_sparse_step minus mlp_only_layers.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, qwen_style_moe, sliding_from_max_window_layers
from oomplan.families.config import HfConfig


def build_qwen3(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), qk_norm=True, training_probe_checked=True, gguf_arch="qwen3")
    sliding_from_max_window_layers(cfg, where, f)
    return f


def build_qwen3_moe(cfg: HfConfig, where: str) -> Fields:
    if cfg.num_experts is None and cfg.num_local_experts:
        # 5.24.0 configuration_qwen3_moe.py:51 attribute_map {"num_experts": "num_local_experts"}: configs saved by
        # transformers 5.x spell the expert count num_local_experts (the published checkpoints: num_experts)
        cfg = cfg.model_copy(update={"num_experts": cfg.num_local_experts})
    f = build_qwen3(cfg, where)
    f.update(training_probe_checked=False, gguf_arch="qwen3moe")
    qwen_style_moe(cfg, where, f)  # modeling_qwen3_moe: routing_weights.to(hidden_states.dtype)
    return f


QWEN3 = Family("qwen3", ("qwen3",), build_qwen3, "transformers/models/qwen3/modeling_qwen3.py (5.24.0)")
QWEN3_MOE = Family("qwen3_moe", ("qwen3_moe",), build_qwen3_moe, "transformers/models/qwen3_moe/modeling_qwen3_moe.py (5.24.0)")
