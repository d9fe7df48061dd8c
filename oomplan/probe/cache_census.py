"""What transformers' cache holds after a short meta forward: KV bytes and recurrent-state bytes apart.

`cache_census` builds the model from an HF config on the meta device (no data), prefills
`ctx_tokens - 1` tokens and decodes one, as generate() does, then sums the cache layers' tensors:
keys/values (DynamicLayer, DynamicSlidingWindowLayer) as KV, conv_states / recurrent_states
(cache_utils.LinearAttentionLayer and its hybrids) as state. Used by the golden tests of the
hybrid families and the benchmark table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oomplan.probe.meta_run import DtypeName


@dataclass(frozen=True)
class CacheCensus:
    num_params: int  # sum(p.numel()) of the meta model (tied tensors once)
    kv_cache_bytes: int
    state_bytes: int
    num_state_layers: int


def _nbytes(t) -> int:
    return t.numel() * t.element_size()


def cache_census(hf_config: dict, ctx_tokens: int, batch_size: int = 1, dtype: DtypeName = "bf16") -> CacheCensus:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from oomplan.probe.meta_run import _torch_dtype, build_config, cache_kwarg

    cfg = build_config(hf_config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=_torch_dtype(dtype))
    model.eval()
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        for n in (ctx_tokens - 1, 1):
            ids = torch.zeros(batch_size, n, dtype=torch.long, device="meta")
            model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})
    kv = state = layers = 0
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            kv += _nbytes(t) if isinstance(t, torch.Tensor) else 0
        held = [t for name in ("conv_states", "recurrent_states")
                for t in (getattr(layer, name, None) or {}).values() if isinstance(t, torch.Tensor)]
        state += sum(_nbytes(t) for t in held)
        layers += bool(held)
    return CacheCensus(sum(p.numel() for p in model.parameters()), kv, state, layers)
