"""Gemma 3: transformers/models/gemma3/configuration_gemma3.py and modeling_gemma3.py (5.24.0).

Gemma3TextConfig (model_type gemma3_text): Gemma 2's layer (four RMSNorms) plus per-head q_norm/k_norm;
five sliding layers (sliding_window, default 4096) to one full layer (sliding_window_pattern 6, or
layer_types); tied embeddings unless the config says otherwise; no soft-capping by default. The
multimodal wrapper Gemma3ForConditionalGeneration (model_type gemma3) describes its decoder in
text_config (sparse: the keys it omits take Gemma3TextConfig's defaults, below).
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, sliding_every
from oomplan.families.config import HfConfig

# configuration_gemma3.py Gemma3TextConfig field defaults
DEFAULTS = dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                num_key_value_heads=4, head_dim=256, max_position_embeddings=131_072, sliding_window=4096,
                attention_bias=False)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=True)
    f.update(num_norms_per_layer=4, qkv_bias=bool(cfg.attention_bias), o_bias=bool(cfg.attention_bias), qk_norm=True,
             final_logit_softcapping=cfg.final_logit_softcapping or None, attn_logit_softcapping=cfg.attn_logit_softcapping or None,
             rms_norm_fp32_output=True, gguf_arch="gemma3")
    pattern = cfg.sliding_window_pattern if isinstance(cfg.sliding_window_pattern, int) else 6
    sliding_every(cfg, where, f, pattern)
    return f


TEXT = Family("gemma3_text", ("gemma3_text",), build, "transformers/models/gemma3/modeling_gemma3.py (5.24.0)",
              architectures=("Gemma3ForCausalLM",), defaults=DEFAULTS)
WRAPPER = Family("gemma3", ("gemma3",), build, "transformers/models/gemma3/modeling_gemma3.py (5.24.0)",
                 architectures=("Gemma3ForConditionalGeneration",), text_config=True, text_model_type="gemma3_text")
