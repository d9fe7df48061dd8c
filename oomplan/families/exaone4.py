"""EXAONE 4: transformers/models/exaone4/configuration_exaone4.py and modeling_exaone4.py (5.24.0).

Post-norms (two RMSNorms per layer) and per-head q_norm / k_norm; no biases; untied embeddings;
sliding windows (sliding_window, default 4096) on three of every four layers (sliding_window_pattern
4) unless layer_types says otherwise; none without a window.
"""
from __future__ import annotations

from oomplan.errors import InputError
from oomplan.families.base import Family, Fields, base_fields, sliding_every
from oomplan.families.config import HfConfig

DEFAULTS = dict(vocab_size=102400, hidden_size=4096, intermediate_size=16384, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32, max_position_embeddings=2048, sliding_window=4096)


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(qk_norm=True, gguf_arch="exaone4")
    pattern = cfg.sliding_window_pattern if isinstance(cfg.sliding_window_pattern, int) else 4
    if isinstance(cfg.sliding_window_pattern, str) and not cfg.layer_types:
        raise InputError(f"{where}: sliding_window_pattern {cfg.sliding_window_pattern!r} needs layer_types (accepted: an int)")
    sliding_every(cfg, where, f, pattern)
    return f


FAMILY = Family("exaone4", ("exaone4",), build, "transformers/models/exaone4/modeling_exaone4.py (5.24.0)", defaults=DEFAULTS)
