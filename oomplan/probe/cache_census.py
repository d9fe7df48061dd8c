"""What transformers' cache holds after a short meta forward: KV bytes and recurrent-state bytes apart.

`cache_census` builds the model from an HF config on the meta device (no data), prefills
`ctx_tokens - 1` tokens and decodes one, as generate() does, then sums the cache layers' tensors:
keys/values (DynamicLayer, DynamicSlidingWindowLayer) as KV, conv_states / recurrent_states
(cache_utils.LinearAttentionLayer and its hybrids) as state, each as the bytes of its distinct storages. Used by the golden tests of the
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


def _storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors`: a cache layer may keep a view (DynamicSlidingWindowLayer keeps
    W-1 tokens of the W-token tensor its update concatenated, transformers 5.24 cache_utils.py), and the storage, not
    the view, is what stays allocated."""
    storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


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
    kv_tensors, state_tensors, layers = [], [], 0
    for layer in cache.layers:
        kv_tensors += [t for name in ("keys", "values") if isinstance(t := getattr(layer, name, None), torch.Tensor)]
        held = [t for name in ("conv_states", "recurrent_states")
                for t in (getattr(layer, name, None) or {}).values() if isinstance(t, torch.Tensor)]
        state_tensors += held
        layers += bool(held)
    return CacheCensus(sum(p.numel() for p in model.parameters()), _storage_bytes(kv_tensors), _storage_bytes(state_tensors), layers)
