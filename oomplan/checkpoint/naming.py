"""Which part of the model a stored tensor belongs to, from its name (HF safetensors and llama.cpp GGUF names).

Used to place header bytes on pipeline stages and to split them over tensor parallelism the way the
config's inventory splits the same component (oomplan/memory/params.py).
"""
from __future__ import annotations

import re

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer|blk|decoder\.layers)\.(\d+)\.")
_EMBED = ("embed_tokens", "wte.", "word_embeddings", "embed_in.", "tok_embeddings", "wpe.", "token_embd", "embeddings.")
_HEAD = ("lm_head", "embed_out", "output.weight", "output.bias")


def layer_index(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def component(name: str) -> str:
    """One of COMPONENTS (embedding, attention, mlp, experts, router, norm, lm_head)."""
    n = name.lower()
    layer = layer_index(n)
    if layer is None:
        if any(k in n for k in _HEAD):
            return "lm_head"
        if "norm" in n or n.startswith(("ln_f", "transformer.ln_f")):
            return "norm"
        return "embedding"
    if "norm" in n or ".ln_" in n or "layernorm" in n:
        return "norm"
    if "shared_expert" in n or "shexp" in n:
        return "mlp"
    if "exps" in n or ".experts." in n:
        return "experts"
    if n.endswith(("mlp.gate.weight", "mlp.gate.e_score_correction_bias", "block_sparse_moe.gate.weight", "router.weight",
                   "router.bias", "ffn_gate_inp.weight")) or ".router." in n:
        return "router"
    if any(k in n for k in ("mlp", "feed_forward", "ffn", "dense_h_to_4h", "dense_4h_to_h")):
        return "mlp"
    return "attention"
