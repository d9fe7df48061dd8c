"""Phi-3: transformers/models/phi3/modeling_phi3.py (5.24.0).

Fused qkv_proj and gate_up_proj (same element counts as split; v is a view of the qkv output, and
the gate_up output [T, 2I] stays alive while its halves are used); sliding_window on every layer.
"""
from __future__ import annotations

from oomplan.families.base import Family, Fields, base_fields, sliding
from oomplan.families.config import HfConfig


def build(cfg: HfConfig, where: str) -> Fields:
    f = base_fields(cfg, where, tie_default=False)
    f.update(fused_gate_up=True, fused_qkv=True, v_views_qkv=True, gguf_arch="phi3", training_probe_checked=True)
    sliding(cfg, where, f, lambda i: True)
    return f


FAMILY = Family("phi3", ("phi3",), build, "transformers/models/phi3/modeling_phi3.py (5.24.0)")
