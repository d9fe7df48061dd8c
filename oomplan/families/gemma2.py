"""Gemma 2: transformers/models/gemma2/configuration_gemma2.py and modeling_gemma2.py (5.24.0).

Four RMSNorms per layer (Gemma2RMSNorm computes x * (1 + weight) in fp32); even layers use the
sliding window (layer_types when given); embeddings tied when the key is absent (Gemma2Config
tie_word_embeddings=True); final and attention logits soft-capped.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, sliding
from oomplan.families.config import HfConfig


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=True)
    f.update(num_norms_per_layer=4, qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias),
             final_logit_softcapping=cfg.final_logit_softcapping or None,
             attn_logit_softcapping=cfg.attn_logit_softcapping or None,
             rms_norm_fp32_output=True, training_probe_checked=True, gguf_arch="gemma2")
    sliding(cfg, where, f, lambda i: i % 2 == 0)
    return f


FAMILY = Family("gemma2", ("gemma2",), build, "transformers/models/gemma2/modeling_gemma2.py (5.24.0)")
