"""Mistral, Ministral 3 and Mixtral: transformers/models/mistral/modeling_mistral.py, models/ministral3/modeling_ministral3.py,
models/mixtral/modeling_mixtral.py (5.24.0).

Mistral v0.1: sliding_window on every layer (v0.3 sets it to null). Ministral 3 (Ministral 3, Devstral 2, Mistral Small
3.2-era text decoders: model_type ministral3) is Mistral's decoder class for class (Ministral3DecoderLayer(MistralDecoderLayer));
its attention only rescales the queries by position (llama_4_scaling_beta), which holds no tensor, so the same layout with
Ministral3Config's defaults. Mixtral: every layer's MLP is num_local_experts routed experts of intermediate_size, top
num_experts_per_tok, fp32 routing weights.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, moe, require, sliding
from oomplan.families.config import HfConfig


def build_mistral(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(training_probe_checked=True, gguf_arch="llama")  # convert_hf_to_gguf: MistralForCausalLM -> llama
    sliding(cfg, where, f, lambda i: True)
    return f


def build_ministral3(cfg: HfConfig, where: str) -> Fields:
    f = build_mistral(cfg, where)
    f.update(training_probe_checked=False, gguf_arch="mistral3")  # convert_hf_to_gguf: Ministral3 -> MODEL_ARCH.MISTRAL3
    return f


# models/ministral3/configuration_ministral3.py Ministral3Config (5.24.0): the values for keys a config.json omits
MINISTRAL3_DEFAULTS = dict(vocab_size=131072, hidden_size=4096, intermediate_size=14336, num_hidden_layers=34, num_attention_heads=32,
                           num_key_value_heads=8, head_dim=128, max_position_embeddings=262144, tie_word_embeddings=False)


def build_mixtral(cfg: HfConfig, where: str) -> Fields:
    f = build_mistral(cfg, where)
    f["training_probe_checked"] = False
    require(cfg, where, "num_local_experts", "num_experts_per_tok")
    moe(f, tuple(range(f["num_layers"])), num_experts=cfg.num_local_experts, num_experts_per_token=cfg.num_experts_per_tok,
        expert_intermediate_size=f["intermediate_size"])
    return f


MISTRAL = Family("mistral", ("mistral",), build_mistral, "transformers/models/mistral/modeling_mistral.py (5.24.0)")
MINISTRAL3 = Family("ministral3", ("ministral3",), build_ministral3,
                    "transformers/models/ministral3/modeling_ministral3.py (5.24.0)", defaults=MINISTRAL3_DEFAULTS)
MIXTRAL = Family("mixtral", ("mixtral",), build_mixtral, "transformers/models/mixtral/modeling_mixtral.py (5.24.0)")
