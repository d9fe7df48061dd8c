"""vLLM's KV cache manager on one GPU: per-layer KV specs, groups, blocks, tokens, concurrency.

Mirrors vllm/v1/kv_cache_interface.py (page sizes, max_memory_usage_bytes) and
vllm/v1/core/kv_cache_utils.py (grouping, get_num_blocks, max concurrency, the start-up check).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oomplan.errors import InputError
from oomplan.specs.model import ModelSpec
from oomplan.units import ceil_div


@dataclass(frozen=True)
class KvLayout:
    """The attention layers of one GPU as vLLM groups them; all layers share one page size."""

    page_bytes: int  # one block of one layer
    block_size: int
    num_full_layers: int
    num_sliding_layers: int
    sliding_window_tokens: int | None

    @property
    def num_layers(self) -> int:
        return self.num_full_layers + self.num_sliding_layers

    @property
    def group_size(self) -> int:
        """kv_cache_utils _get_kv_cache_config_uniform_page_size: the smallest layer count of a type."""
        counts = [n for n in (self.num_full_layers, self.num_sliding_layers) if n]
        return min(counts) if len(counts) > 1 else self.num_layers

    @property
    def num_groups(self) -> int:
        return sum(ceil_div(n, self.group_size) for n in (self.num_full_layers, self.num_sliding_layers) if n)

    @property
    def bytes_per_token(self) -> int:
        """Every layer of this GPU, one token (the pool's tokens are counted this way)."""
        return self.page_bytes * self.num_layers // self.block_size


def page_bytes(model: ModelSpec, tensor_parallel: int, kv_dtype_bytes: float, block_size: int,
               scale_bytes_per_head: int = 0) -> int:
    """kv_cache_interface AttentionSpec.page_size_bytes; MLAAttentionSpec: one latent 'head', not split by TP.
    Per-token-head KV modes (vLLM >= 0.20) add an fp32 scale per token per head for K and for V
    (TritonAttentionBackend.customize_spec: content = (head_size_k + head_size_v) x dtype + 2 x 4)."""
    if model.mla is not None:
        return int(block_size * (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * kv_dtype_bytes)
    heads = max(1, model.num_kv_heads // tensor_parallel)  # vllm ModelConfig.get_num_kv_heads
    return int(block_size * heads * (2 * model.head_dim * kv_dtype_bytes + scale_bytes_per_head))


def kv_layout(model: ModelSpec, layer_indices: tuple[int, ...], tensor_parallel: int, kv_dtype_bytes: float,
              block_size: int, scale_bytes_per_head: int = 0) -> KvLayout:
    kinds = [model.layer_attention[i] for i in layer_indices]
    if any(k not in ("full", "sliding", "mla") for k in kinds):
        # e.g. Llama 4's chunked local attention (its own KV group in vLLM) or Mllama's cross-attention (encoder) cache:
        # an honest refusal (exit 2), not a guess
        raise InputError(f"{model.name}: vLLM's KV layout of {', '.join(sorted(set(kinds) - {'full', 'sliding', 'mla'}))} "
                         "attention layers is not modelled; --engine hf prices this model")
    num_sliding = kinds.count("sliding")
    return KvLayout(page_bytes(model, tensor_parallel, kv_dtype_bytes, block_size, scale_bytes_per_head), block_size,
                    len(kinds) - num_sliding, num_sliding, model.sliding_window_tokens)


def num_kv_blocks(layout: KvLayout, available_bytes: int) -> int:
    """kv_cache_utils get_num_blocks: available // page_size // num_layers (per group_size for hybrids)."""
    return max(0, available_bytes // layout.page_bytes // layout.group_size)


def kv_tokens(layout: KvLayout, num_blocks: int) -> int:
    """The 'GPU KV cache size: N tokens' line before 0.21: num_blocks // num_groups * block_size."""
    return num_blocks // layout.num_groups * layout.block_size


def logged_kv_tokens(layout: KvLayout, num_blocks: int, max_model_len: int, max_in_flight_tokens: int) -> int:
    """The 'GPU KV cache size' line from 0.21 (kv_cache_utils._report_kv_cache_config):
    int(max concurrency x max_model_len), windowed groups counted at their per-request cap."""
    return int(max_concurrency(layout, num_blocks, max_model_len, max_in_flight_tokens) * max_model_len)


def _sliding_blocks(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """SlidingWindowSpec.max_memory_usage_bytes: window - 1 + the in-flight tokens (one prefill chunk before 0.26;
    max_in_flight_tokens after), +1 block for misalignment."""
    assert layout.sliding_window_tokens is not None, "sliding-window layers carry their window"
    tokens = min(layout.sliding_window_tokens - 1 + in_flight_tokens, max_model_len)
    return ceil_div(tokens, layout.block_size) + 1


def blocks_per_request(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """get_max_concurrency_for_kv_cache_config: one request's blocks, summed over the groups."""
    full = ceil_div(layout.num_full_layers, layout.group_size) * ceil_div(max_model_len, layout.block_size)
    if not layout.num_sliding_layers:
        return full
    sliding = ceil_div(layout.num_sliding_layers, layout.group_size)
    return full + sliding * _sliding_blocks(layout, max_model_len, in_flight_tokens)


def request_bytes(layout: KvLayout, max_model_len: int, in_flight_tokens: int) -> int:
    """check_enough_kv_cache_memory: what one request of max_model_len needs, every layer."""
    full = layout.num_full_layers * ceil_div(max_model_len, layout.block_size)
    sliding = layout.num_sliding_layers * (_sliding_blocks(layout, max_model_len, in_flight_tokens)
                                           if layout.num_sliding_layers else 0)
    return (full + sliding) * layout.page_bytes


def max_concurrency(layout: KvLayout, num_blocks: int, max_model_len: int, in_flight_tokens: int) -> float:
    return num_blocks / blocks_per_request(layout, max_model_len, in_flight_tokens)


def max_request_tokens(layout: KvLayout, num_blocks: int, in_flight_tokens: int, upper: int) -> int:
    """The longest single request the pool admits (0: none): the largest length whose blocks, summed over the
    groups (get_max_concurrency_for_kv_cache_config's per-request count, windows at their cap), fit num_blocks.
    For full attention only this is num_blocks // num_groups x block_size; sliding windows make it longer."""
    return _longest(lambda n: blocks_per_request(layout, n, in_flight_tokens) <= num_blocks, upper)


def estimate_max_model_len(layout: KvLayout, available_bytes: int, in_flight_tokens: int, upper: int) -> int:
    """kv_cache_utils estimate_max_model_len: binary search for the longest len whose request fits (0: none)."""
    return _longest(lambda n: request_bytes(layout, n, in_flight_tokens) <= available_bytes, upper)


def _longest(fits: Callable[[int], bool], upper: int) -> int:
    """Largest n in [1, upper] with fits(n), fits monotone (true, then false); 0 when none."""
    lo, hi, best = 1, upper, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
