"""Llama (1/2/3/3.x): transformers/models/llama/configuration_llama.py and modeling_llama.py (5.24.0).

attention_bias covers q, k, v and o; mlp_bias the three MLP projections; embeddings untied unless the
config says so (LlamaConfig tie_word_embeddings=False).
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields
from oomplan.families.config import HfConfig


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), mlp_bias=bool(cfg.mlp_bias),
             training_probe_checked=True, gguf_arch="llama")
    return f


FAMILY = Family("llama", ("llama",), build, "transformers/models/llama/modeling_llama.py (5.24.0)")
