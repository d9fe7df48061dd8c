"""What the classifier needs to know at a peak: which module is running, which storages the KV cache
holds, whether a cache update is in flight, whether the LM head has started.

Rules (applied at the moment of each new peak, see `ProbeWatch.classify`):
  * kv_cache    - a storage referenced by a tensor attribute of a cache layer right now, or one created
                  inside the cache update that is still running (the `torch.cat` result that is about to
                  replace `layer.keys`);
  * logits      - created inside `lm_head` or after it in the same forward (Gemma 2 soft-capping);
  * activations - everything else that is not a parameter / buffer.
Parameters and buffers are registered up front as "preexisting" and are the weights.

Only import this module from oomplan.probe (it imports torch at import time).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import torch

from oomplan.probe.tracker import StorageInfo, StorageTracker

WEIGHTS, KV_CACHE, ACTIVATIONS, LOGITS = "weights", "kv_cache", "activations", "logits"
_KV_TAG = "kv:"


class ProbeWatch:
    """Context labels for new storages and the component classifier for peak snapshots."""

    def __init__(self) -> None:
        self.tracker: StorageTracker | None = None
        self._modules: list[str] = []
        self._update_ids = itertools.count()
        self._update_in_flight: int | None = None
        self._in_head = False
        self._cache = None
        self._cache_seqs: frozenset[int] = frozenset()

    # --- context for the tracker ------------------------------------------------------
    def context(self) -> tuple[str, str]:
        origin = self._modules[-1] if self._modules else "<model>"
        if self._update_in_flight is not None:
            return origin, f"{_KV_TAG}{self._update_in_flight}"
        return origin, LOGITS if self._in_head else ""

    def classify(self, info: StorageInfo) -> str:
        if info.preexisting:
            return WEIGHTS
        if info.seq in self._cache_seqs or self._is_in_flight_kv(info):
            return KV_CACHE
        return LOGITS if info.tag == LOGITS else ACTIVATIONS

    def _is_in_flight_kv(self, info: StorageInfo) -> bool:
        return self._update_in_flight is not None and info.tag == f"{_KV_TAG}{self._update_in_flight}"

    # --- module stack ------------------------------------------------------------------
    def hook_modules(self, model: torch.nn.Module, head: torch.nn.Module) -> None:
        for name, module in model.named_modules():
            module.register_forward_pre_hook(functools.partial(self._push, name or "<model>"))
            module.register_forward_hook(self._pop, always_call=True)
        head.register_forward_pre_hook(self._enter_head)

    def _push(self, name: str, module, args) -> None:
        self._modules.append(name)

    def _pop(self, module, args, output) -> None:
        if self._modules:
            self._modules.pop()

    def _enter_head(self, module, args) -> None:
        self._in_head = True

    def end_forward(self) -> None:
        """Call after each top-level forward: the next storages are no longer logits."""
        self._in_head = False
        self._modules.clear()

    # --- the KV cache --------------------------------------------------------------------
    def watch_cache(self, cache) -> None:
        """Wraps every `update*` method of the cache object (per instance) to follow its storages."""
        self._cache = cache
        for name in dir(cache):
            method = getattr(cache, name, None)
            if name.startswith("update") and callable(method):
                setattr(cache, name, self._wrap_update(method))

    def _wrap_update(self, method):
        @functools.wraps(method)
        def update(*args, **kwargs):
            self._update_in_flight = next(self._update_ids)
            try:
                return method(*args, **kwargs)
            finally:
                self._update_in_flight = None
                self.refresh_cache_seqs()

        return update

    def refresh_cache_seqs(self) -> None:
        assert self.tracker is not None
        infos = (self.tracker.info(t) for t in cache_tensors(self._cache))
        self._cache_seqs = frozenset(i.seq for i in infos if i is not None)

    def cache_bytes(self) -> int:
        """Bytes of the distinct live storages the cache holds now."""
        assert self.tracker is not None
        infos = (self.tracker.info(t) for t in cache_tensors(self._cache))
        return sum({i.seq: i.nbytes for i in infos if i is not None}.values())


def cache_tensors(cache) -> Iterator[torch.Tensor]:
    """Every tensor held as an attribute (or in a list/tuple/dict attribute) of the cache's layers:
    K/V, and a linear-attention layer's conv_states / recurrent_states dicts (cache_utils.LinearAttentionLayer)."""
    for layer in getattr(cache, "layers", ()) if cache is not None else ():
        for value in vars(layer).values():
            value = list(value.values()) if isinstance(value, dict) else value
            items = value if isinstance(value, (list, tuple)) else (value,)
            yield from (t for t in items if isinstance(t, torch.Tensor))
